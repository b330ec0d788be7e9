"""The finite-N validation compares the theory of gradient *flow* with gradient descent:
its simulation (``validation/finite_n_vs_simulation.py``) refines the step of every network
whose descent is not flow, seen by its step rate. Checked here: the step rate against
exact curves, and the refined simulation against each network's exact flow (the
instance reduced ODE), with the unrefined descent as the must-fail partner."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import linrnn_theory as lt
from linrnn_theory import theory

_spec = importlib.util.spec_from_file_location(
    "finite_n_vs_simulation",
    Path(__file__).resolve().parents[1] / "validation" / "finite_n_vs_simulation.py")
fnsim = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fnsim)


def test_step_rate_of_exact_curves():
    tau = 0.01 * np.arange(300)
    # a flow approaching at rate c: every step shrinks the distance by exp(-c dtau)
    assert lt.step_rate(2.0 - 2.0 * np.exp(-3.0 * tau), 2.0) == pytest.approx(
        0.03, rel=1e-12)
    # descent on a quadratic with step rate r: the factor 1 - r, rate -log(1 - r)
    r = 0.4
    z = 1.0 - (1.0 - r) ** np.arange(40)
    assert lt.step_rate(z, 1.0) == pytest.approx(-np.log(1.0 - r), rel=1e-12)
    # step rate above 1: the curve crosses the target
    z = 1.0 - (1.0 - 1.5) ** np.arange(40)
    assert lt.step_rate(z, 1.0) == np.inf
    # converged to the floor: nothing is looked at
    assert lt.step_rate(np.full(10, 1.0), 1.0) == 0.0
    # a negative target is approached from above
    assert lt.step_rate(-1.0 + np.exp(-2.0 * tau), -1.0) == pytest.approx(
        0.02, rel=1e-12)


@pytest.mark.parametrize("readout, target", [
    (np.zeros((2, 3)), 1.0), (np.zeros(3), 0.0), (np.zeros(3), np.nan)])
def test_step_rate_rejects_bad_input(readout, target):
    with pytest.raises(ValueError, match="readout|target"):
        lt.step_rate(readout, target)


def _flow_error(Z: np.ndarray, tau: np.ndarray, N: int, g: float, target: float) -> float:
    """Largest distance of the simulated readouts from each network's exact flow."""
    err = 0.0
    for seed, z in enumerate(Z):
        net = lt.init_network(N=N, g=g, seed=seed)
        flow = theory.predict(target=target, tau=tau, method="instance", network=net,
                              outlier=False, grad_norm=False)
        err = max(err, float(np.max(np.abs(z - flow.readout))))
    return err


def test_refined_descent_is_flow(monkeypatch):
    N, g, target, seeds, h = 48, 0.6, 2.0, 8, 0.005
    tau, Z, T, lr, epochs, refine = fnsim.simulate(N, g, target, seeds, h)
    assert Z.shape == (seeds, epochs) and tau.shape == (epochs,)
    assert np.all(refine > 1)                 # at this step no network is flow ...
    assert np.all(refine <= fnsim.MAX_REFINE)  # ... and all are once refined
    refined = _flow_error(Z, tau, N, g, target)
    # must-fail partner: the same networks without refinement
    monkeypatch.setattr(fnsim, "MAX_STEP_RATE", np.inf)
    tau0, Z0, *_, refine0 = fnsim.simulate(N, g, target, seeds, h)
    assert np.all(refine0 == 1) and np.array_equal(tau0, tau)
    coarse = _flow_error(Z0, tau0, N, g, target)
    # a step rate below 0.1 puts descent within a few per cent of the flow's rate
    assert refined < 0.02 * abs(target)
    assert coarse > 4.0 * refined
