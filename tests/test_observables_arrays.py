"""Observables over arrays of (g, target), and the cache behind them.

Claims: *array arguments broadcast like numpy and give, at every point, the value of the
scalar call computed on its own to 1e-10 relative (the reduced models of a gain are built
once for all its targets, each target then takes the single call's route); scalars still
give floats; the
cached state at the learning time cannot be changed through what a call returns.*
"""

from __future__ import annotations

import numpy as np
import pytest

from linrnn_theory.theory import observables as ob
from linrnn_theory.theory.grid import broadcast

FUNCS = [ob.learning_time, ob.dw_norm, ob.mean_gradient_norm, ob.shuffle_loss]


@pytest.mark.parametrize("fn", FUNCS, ids=lambda f: f.__name__)
def test_arrays_broadcast_and_equal_the_scalar_calls(fn):
    g = np.array([0.0, 0.5, 0.9])
    z = np.array([[0.5], [1.5], [-1.0]])
    ob.clear_cache()
    many = fn(g, z)
    assert isinstance(many, np.ndarray) and many.shape == (3, 3)
    for i in range(3):
        for j in range(3):
            ob.clear_cache()                          # each point alone, from scratch
            one = fn(float(g[j]), float(z[i, 0]))
            assert isinstance(one, float)
            assert many[i, j] == pytest.approx(one, rel=1e-10)


def test_broadcast_shapes_and_scalar_target():
    t = ob.learning_time([0.2, 0.4, 0.6], 1.0)
    assert t.shape == (3,)
    np.testing.assert_array_equal(t, broadcast(ob.learning_time, [0.2, 0.4, 0.6], 1.0))
    assert np.all(np.diff(t) < 0)                     # random connectivity speeds learning


def test_input_amp_and_rel_loss_pass_through_arrays():
    a = ob.learning_time([0.3], [2.0], rel_loss=0.1, input_amp=2.0)
    assert a[0] == pytest.approx(ob.learning_time(0.3, 2.0, rel_loss=0.1, input_amp=2.0),
                                 rel=1e-12)


def test_mutating_the_returned_state_does_not_change_the_next_call():
    st = ob.at_learning_time(0.45, 1.0)
    ref_C, ref_tau = st["C"].copy(), st["tau"]
    with pytest.raises(ValueError):
        st["C"][0, 0] = 99.0                          # read-only
    st["tau"] = -1.0                                  # a new dict per call
    st["model"].A = np.zeros_like(st["model"].A)      # a copy of the cached model
    again = ob.at_learning_time(0.45, 1.0)
    assert again["tau"] == ref_tau
    np.testing.assert_array_equal(again["C"], ref_C)
    assert ob.dw_norm(0.45, 1.0) == pytest.approx(float(np.linalg.norm(ref_C)), rel=1e-15)
    assert np.any(again["model"].A != 0)


def test_a_copy_of_the_state_can_be_changed_freely():
    """The must-fail partner: the copy is writable, and its change does not leak."""
    C = ob.at_learning_time(0.45, 1.0)["C"].copy()
    C[0, 0] += 1.0
    assert ob.at_learning_time(0.45, 1.0)["C"][0, 0] != C[0, 0]
