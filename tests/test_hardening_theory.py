"""Argument validation of the theory and simulation entry points."""

from __future__ import annotations

import numpy as np
import pytest

import linrnn_theory as lt
from linrnn_theory import theory
from linrnn_theory.benchmark import bench

TAU = np.linspace(0.0, 0.1, 3)


@pytest.fixture(scope="module")
def net():
    return lt.init_network(N=16, g=0.5, seed=0)


def test_instance_rejects_inconsistent_g(net):
    with pytest.raises(ValueError, match="network.g"):
        theory.predict(method="instance", g=0.9, network=net, tau=TAU, outlier=False)


def test_large_n_rejects_network(net):
    with pytest.raises(ValueError, match="network"):
        theory.predict(method="ode", g=0.5, network=net, tau=TAU)


def test_zero_input_amp_rejected(net):
    task = lt.FixedPointTask(target=1.0, input_amp=0.0)
    with pytest.raises(ValueError, match="input_amp must be non-zero"):
        lt.train(net, task, lr=0.01, epochs=2, mode="fixed_point")


def test_cli_simulate_zero_input_amp_exits_2(tmp_path):
    from linrnn_theory.cli import main
    code = main(["simulate", "--N", "8", "--g", "0.5", "--target", "1", "--lr0", "0.009",
                 "--input-amp", "0", "--out", str(tmp_path / "run.json")])
    assert code == 2


def test_series_n_singular_above_two_rejected():
    with pytest.raises(ValueError, match="n_singular must be <= 2"):
        theory.predict(g=0.5, tau=TAU, method="series", order=5, n_singular=5)


def test_init_network_has_no_dtype():
    with pytest.raises(TypeError):
        lt.init_network(N=8, g=0.5, seed=0, dtype=np.float32)


def test_complex_W0_rejected():
    W0 = np.zeros((3, 3), dtype=complex)
    W0[0, 1] = 1j
    with pytest.raises(TypeError, match="W0 must be real"):
        lt.Network(W0=W0, m=[1.0, 0, 0], w=[0, 1.0, 0])


def test_bench_negative_lr0_rejected():
    with pytest.raises(ValueError, match="lr0 must be > 0"):
        bench(Ns=(8,), epochs=1, lr0=-1.0, modes=("fixed_point",))


def test_cli_bench_negative_lr0_exits_2(capsys):
    from linrnn_theory.cli import main
    with pytest.raises(SystemExit) as e:
        code = main(["bench", "--N", "8", "--epochs", "1", "--lr0", "-1"])
        raise SystemExit(code)
    assert e.value.code == 2


@pytest.mark.parametrize("fn", ["loss", "gradient"])
def test_swapped_arguments_type_error(net, fn):
    task = lt.FixedPointTask(target=1.0)
    W = np.array(net.W0)
    with pytest.raises(TypeError, match="net must be a Network"):
        getattr(lt, fn)(net, W, task)


def test_train_shuffle_truncation_type_errors(net):
    task = lt.FixedPointTask(target=1.0)
    W = np.array(net.W0)
    with pytest.raises(TypeError, match="net must be a Network"):
        lt.train(W, task, lr=0.01, epochs=1)
    with pytest.raises(TypeError, match="task must be a FixedPointTask"):
        lt.shuffle_loss(W, net, 1.0)
    with pytest.raises(TypeError, match="net must be a Network"):
        lt.truncation_losses(W, W, task)


def test_predict_network_array_type_error(net):
    with pytest.raises(TypeError, match="network must be a Network"):
        theory.predict(method="instance", network=np.array(net.W0), tau=TAU)


def test_ode_near_g_one_refuses_quickly_instead_of_hanging():
    """g = 0.999 used to integrate for more than ten minutes; the step budget of the
    reduced ODE turns a flow too stiff for it into a clear error within seconds (no timing
    assertion: the budget is a count of right-hand side evaluations, or of Taylor
    coefficients). The Taylor steps of the large-N flows reach g = 0.9998; g = 0.9999
    exceeds them. The learning time needs the flow only up to the loss threshold, before
    its stiff tail: it comes back, below the small-target limit as at every g."""
    from linrnn_theory.theory.observables import small_target_limits
    from linrnn_theory.theory.reduced import StepLimitError
    with pytest.raises(StepLimitError, match="too stiff"):
        theory.predict(g=0.9999, target=1.0, tau=np.linspace(0, 1e-2, 3), method="ode")
    lt = theory.learning_time(0.9999, 1.0)
    assert 0 < lt < small_target_limits(0.9999)["learning_time"]


def test_ode_step_budget_falls_back_to_last_integrated_depth():
    """With DOP853 at g = 0.998 depth 16 exceeds the budget: the depth-12 result comes back
    with its last change (predict flags it unconverged). The Taylor steps of predict
    integrate depth 16 there, and it converges."""
    from linrnn_theory.theory.large_n import large_n_model
    from linrnn_theory.theory.methods import converged_model
    tau = np.linspace(0, 1e-2, 3)
    model, traj, depth, change = converged_model(lambda d: large_n_model(0.998, d), 1.0, tau,
                                                 None, 1e-9, 1e-11, integrator="dop853")
    assert depth == 12 and not change < 1e-9
    assert abs(traj.readout[-1] - 1.0) < 1e-6
    p = theory.predict(g=0.998, target=1.0, tau=tau, method="ode")
    assert p.status == "ok" and p.params["depth"] == 16
    assert abs(p.readout[-1] - traj.readout[-1]) < 1e-6


def test_ode_step_budget_is_an_integrator_argument():
    from linrnn_theory.theory.large_n import large_n_model
    from linrnn_theory.theory.reduced import StepLimitError, integrate
    model = large_n_model(0.6, 4)
    full = integrate(model, 1.0, np.linspace(0, 1.0, 5))
    assert full.nfev > 10
    with pytest.raises(StepLimitError):
        integrate(model, 1.0, np.linspace(0, 1.0, 5), max_nfev=10)
