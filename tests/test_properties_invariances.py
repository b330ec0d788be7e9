r"""Property tests, invariances: symmetries of learning in a finite network, and the parity
in ``z_hat`` of the large-N theory.

* joint rotation ``(W0, m, w) -> (Q W0 Q^T, Q m, Q w)``; ``m -> c m, w -> w/c``;
  ``(w, z_hat) -> (-w, -z_hat)`` (and ``(m, z_hat) -> (-m, -z_hat)``): the same run,
  in both modes and both engines;
* the large-N theory (series, reduced ODE): readout odd, singular values even in ``z_hat``.

Structure (checkers and must-fail tests), notation and shared helpers:
``tests/reference.py``; run with ``pytest -m property`` (``docs/testing.md``).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

import linrnn_theory as lt
from linrnn_theory import theory
from linrnn_theory.theory import _series_coefficients as gen
from linrnn_theory.theory.traces import beta_of

import strategies as S
from reference import EPS, RTOLS, stable_train, symmetry_runs, trajectory_tolerances

pytestmark = pytest.mark.property


# ===================================================================== symmetries (simulation)

def check_same_trajectory(run, other, tols, readout_sign=1.0, map_W=None):
    """Two gradient-descent runs agree: loss, readout (times ``readout_sign``), singular
    values of ``Delta W`` at every epoch, and the final ``W`` after ``map_W``."""
    tol_w, tol_loss, tol_z = tols
    dl = float(np.max(np.abs(run.loss - other.loss)))
    assert dl <= tol_loss, f"loss curves differ by {dl:.3e} > {tol_loss:.3e}"
    dz = float(np.max(np.abs(readout_sign * run.readout - other.readout)))
    assert dz <= tol_z, f"readouts differ by {dz:.3e} > {tol_z:.3e}"
    ds = float(np.max(np.abs(run.singular_values - other.singular_values)))
    assert ds <= tol_w, f"singular values of Delta W differ by {ds:.3e} > {tol_w:.3e}"
    if map_W is not None:
        dw = float(np.linalg.norm(map_W(run.W) - other.W, 2))
        assert dw <= tol_w, f"final W differ by {dw:.3e} > {tol_w:.3e}"


@given(net=S.networks(N=S.sizes(2, 24)), seed=S.seeds(), t=S.targets(),
       tt_end=st.floats(0.1, 1.0), epochs=st.integers(3, 12), mode=S.modes(), engine=S.engines())
def test_rotation_leaves_learning_unchanged(net, seed, t, tt_end, epochs, mode, engine):
    """``(W0, m, w) -> (Q W0 Q^T, Q m, Q w)`` with a Haar ``Q``: ``z``, ``L`` and ``W`` are
    invariant (``W -> Q W Q^T``), so the loss curve, the readout and the singular values of
    ``Delta W`` are unchanged, in both modes and both engines."""
    Q = S.haar_orthogonal(net.N, np.random.default_rng(seed))
    rot = lt.Network(W0=Q @ net.W0 @ Q.T, m=Q @ net.m, w=Q @ net.w)
    task, lr = symmetry_runs(net, t, tt_end, epochs, mode, engine)
    a = stable_train(net, task, lr, epochs, mode, engine)
    b = stable_train(rot, task, lr, epochs, mode, engine)
    tols = trajectory_tolerances(a, net, task, mode, engine)
    note(f"tolerances (W, loss, readout) = {tols}")
    check_same_trajectory(a, b, tols, map_W=lambda W: Q @ W @ Q.T)


@given(net=S.networks(N=S.sizes(2, 24)), t=S.targets(), tt_end=st.floats(0.1, 1.0),
       epochs=st.integers(3, 12), mode=S.modes(), engine=S.engines(),
       c=st.one_of(st.floats(0.125, 8.0), st.sampled_from([0.25, 0.5, 2.0, 4.0])))
def test_input_output_rescaling_leaves_learning_unchanged(net, t, tt_end, epochs, mode,
                                                          engine, c):
    """``m -> c m``, ``w -> w / c``: ``a -> a / c``, ``b -> c b``, so ``z`` and the update
    ``e a b^T`` are unchanged and ``Delta W`` is *exactly* invariant (not only its singular
    values), in both modes. (For powers of two every floating-point operation commutes with
    the scaling, and the runs agree bit for bit; the check allows round-off for any ``c``.)"""
    scaled = lt.Network(W0=net.W0, m=c * net.m, w=net.w / c)
    task, lr = symmetry_runs(net, t, tt_end, epochs, mode, engine)
    a = stable_train(net, task, lr, epochs, mode, engine)
    b = stable_train(scaled, task, lr, epochs, mode, engine)
    tols = trajectory_tolerances(a, net, task, mode, engine)
    check_same_trajectory(a, b, tols, map_W=lambda W: W)


@given(net=S.networks(N=S.sizes(2, 24)), t=S.targets(), tt_end=st.floats(0.1, 1.0),
       epochs=st.integers(3, 12), mode=S.modes(), engine=S.engines(),
       flip=st.sampled_from(["w", "m"]))
def test_target_sign_flip_with_output_flip(net, t, tt_end, epochs, mode, engine, flip):
    r"""What holds exactly for a finite network under ``z_hat -> -z_hat``.

    Flipping ``z_hat`` alone is *not* a symmetry: ``z(0) = w^T R m`` is generically non-zero,
    so the runs towards ``+z_hat`` and ``-z_hat`` start at different distances (and even with
    ``z(0) = 0``, ``Delta W`` is not odd: its ``tau^2`` term is even in ``z_hat``). What is
    exact: ``(w, z_hat) -> (-w, -z_hat)`` (or ``(m, z_hat) -> (-m, -z_hat)``) maps
    ``z -> -z``, ``e -> -e``, ``a -> -a`` (resp. ``b -> -b``), so ``e a b^T`` -- hence
    ``Delta W`` -- is unchanged, the readout flips and the loss is unchanged. Averaged over
    the ensemble (where ``w`` and ``-w`` are equally likely) this is the oddness of the
    readout and the evenness of ``Delta W``'s singular values in ``z_hat`` (tested on the
    large-N theory below)."""
    sign = np.array([-1.0, 1.0]) if flip == "w" else np.array([1.0, -1.0])
    other = lt.Network(W0=net.W0, m=sign[1] * net.m, w=sign[0] * net.w)
    task, lr = symmetry_runs(net, t, tt_end, epochs, mode, engine)
    a = stable_train(net, task, lr, epochs, mode, engine)
    b = stable_train(other, task.with_target(-task.target), lr, epochs, mode, engine)
    tols = trajectory_tolerances(a, net, task, mode, engine)
    check_same_trajectory(a, b, tols, readout_sign=-1.0, map_W=lambda W: W)


SYM_FIXED = S.make_network(10, 0.6, 41, pair="overlap", rho=0.7, log2_norms=(0.3, -0.2))


@pytest.mark.parametrize("mode", ["fixed_point", "bptt"])
def test_symmetry_checker_rejects_wrong_symmetries(mode):
    """Rejected: rotating ``W0`` but not ``m, w``; the rotated run's loss scaled by
    ``1 + 1e-3``; ``m -> c m`` without ``w -> w / c``; ``z_hat -> -z_hat`` without flipping
    ``w`` (this network has ``z(0) = w^T R m != 0``, so the flipped target is a different
    problem)."""
    net, engine, epochs = SYM_FIXED, "fast", 8
    task, lr = symmetry_runs(net, 0.9, 0.8, epochs, mode, engine)
    a = stable_train(net, task, lr, epochs, mode, engine)
    tols = trajectory_tolerances(a, net, task, mode, engine)
    Q = S.haar_orthogonal(net.N, np.random.default_rng(3))
    rot = stable_train(lt.Network(W0=Q @ net.W0 @ Q.T, m=Q @ net.m, w=Q @ net.w), task, lr,
                       epochs, mode, engine)
    check_same_trajectory(a, rot, tols, map_W=lambda W: Q @ W @ Q.T)        # sanity
    half = stable_train(lt.Network(W0=Q @ net.W0 @ Q.T, m=net.m, w=net.w), task, lr, epochs,
                        mode, engine)
    with pytest.raises(AssertionError):
        check_same_trajectory(a, half, tols)
    rot.loss = rot.loss * (1 + 1e-3)
    with pytest.raises(AssertionError):
        check_same_trajectory(a, rot, tols)
    m_only = stable_train(lt.Network(W0=net.W0, m=1.5 * net.m, w=net.w), task, lr, epochs,
                          mode, engine)
    with pytest.raises(AssertionError):
        check_same_trajectory(a, m_only, tols, map_W=lambda W: W)
    flipped = stable_train(net, task.with_target(-task.target), lr, epochs, mode, engine)
    with pytest.raises(AssertionError):
        check_same_trajectory(a, flipped, tols, readout_sign=-1.0, map_W=lambda W: W)


# ================================================ parity in z_hat of the large-N theory

def check_parity(plus, minus, tol_z, tol_s):
    """Large-N theory: ``z(-z_hat) = -z(z_hat)`` and ``sigma_k(-z_hat) = sigma_k(z_hat)``."""
    dz = float(np.max(np.abs(plus.readout + minus.readout)))
    assert dz <= tol_z, f"readout not odd in z_hat: |z(+) + z(-)| = {dz:.3e} > {tol_z:.3e}"
    ds = float(np.max(np.abs(plus.singular_values - minus.singular_values)))
    assert ds <= tol_s, f"singular values not even in z_hat: {ds:.3e} > {tol_s:.3e}"


def parity_case(g, zh, method, order, tt_max):
    r"""Predictions at ``+-z_hat`` and the tolerances.

    Series: the coefficients are odd (readout) / even (singular values) polynomials in
    ``z_hat``; Horner evaluation of a degree-K polynomial errs by at most
    ``2 K eps sum_k |c_k tau~^k|`` (Higham, Accuracy and Stability, eq. 5.3), per sign.
    ODE: both integrations are within their global error of the exact (mirror-image)
    flows; the error of each is bounded by the difference of two solutions at ``rtol =
    1e-9`` and ``1e-11`` (see ``test_properties_flow.instance_tolerances``)."""
    b = beta_of(g)
    tau = np.linspace(0.0, tt_max, 9) / b ** 2
    kw = dict(g=g, tau=tau, method=method, outlier=False, grad_norm=False)
    if method == "series":
        kw["order"] = order
        p, q = (theory.predict(target=s * zh, **kw) for s in (1, -1))
        tt = tau * b * b
        cz = np.abs(gen.readout_coefficients(zh, b))
        c1 = np.abs(gen.sigma1_coefficients(abs(zh), b))
        c2 = np.abs(gen.sigma2_coefficients(abs(zh), b))
        mag = lambda c: float(np.max(sum(c[k] * tt ** k for k in range(order + 1))))  # noqa
        return p, q, 4 * order * EPS * mag(cz), 4 * order * EPS * max(mag(c1), mag(c2))
    preds = {(s, r): theory.predict(target=s * zh, rtol=r, **kw)
             for s in (1, -1) for r in RTOLS}
    est_z = sum(float(np.max(np.abs(preds[s, RTOLS[0]].readout - preds[s, RTOLS[1]].readout)))
                for s in (1, -1))
    est_s = sum(float(np.max(np.abs(preds[s, RTOLS[0]].singular_values
                                    - preds[s, RTOLS[1]].singular_values))) for s in (1, -1))
    floor = 8 * EPS * abs(zh)
    return preds[1, RTOLS[1]], preds[-1, RTOLS[1]], est_z + floor, est_s + floor


@given(g=S.gains(), zh=st.floats(0.25, 2.0), method=st.sampled_from(["series", "ode"]),
       order=st.integers(3, gen.ORDER))
def test_large_n_readout_is_odd_and_singular_values_even_in_target(g, zh, method, order):
    """The large-N theory (series of any order, reduced ODE): readout odd, singular values
    of ``Delta W`` even in ``z_hat`` -- the ensemble average of the exact finite-network
    symmetry ``(w, z_hat) -> (-w, -z_hat)``."""
    p, q, tol_z, tol_s = parity_case(g, zh, method, order, 0.5 if method == "series" else 2.0)
    check_parity(p, q, tol_z, tol_s)


@pytest.mark.parametrize("method", ["series", "ode"])
def test_parity_checker_rejects_even_readout_terms(method):
    """Rejected: an even term ``1e-3 z_hat^2 tau~^2`` added to the readout, an odd factor
    ``1 + 1e-3 z_hat`` on the singular values, and the claim that the readout is even."""
    g, zh = 0.5, 1.2
    p, q, tol_z, tol_s = parity_case(g, zh, method, 5, 0.5)
    check_parity(p, q, tol_z, tol_s)                                        # sanity
    tt = p.tau * beta_of(g) ** 2
    for bad_p, bad_q in (
            ({"readout": p.readout + 1e-3 * zh ** 2 * tt ** 2},
             {"readout": q.readout + 1e-3 * zh ** 2 * tt ** 2}),
            ({"singular_values": p.singular_values * (1 + 1e-3 * zh)},
             {"singular_values": q.singular_values * (1 - 1e-3 * zh)}),
            ({}, {"readout": -q.readout})):
        pp = theory.Prediction(**{**p.__dict__, **bad_p})
        qq = theory.Prediction(**{**q.__dict__, **bad_q})
        with pytest.raises(AssertionError):
            check_parity(pp, qq, tol_z, tol_s)
