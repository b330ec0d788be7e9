"""The engine interface and registry, and training any task through ``lt.train``."""

from __future__ import annotations

import numpy as np
import pytest

import linrnn_theory as lt
from linrnn_theory.simulation import engine as engine_mod
from linrnn_theory.simulation.cosine import cosine_network, train_cosine
from linrnn_theory.simulation.dense import DenseEngine, linear_bptt
from linrnn_theory.simulation.engine import Engine, EngineRefused, make_engine, register_engine
from linrnn_theory.theory.cosine_reduced import train_full

SMALL_COSINE = lt.CosineTask(dt=0.1, t_max=4.0, period=1.0)


def _defective_network(N: int = 8) -> lt.Network:
    """A Jordan-like W0: its eigenvector matrix is singular to working precision."""
    W0 = np.diag(np.full(N, 0.3)) + 0.5 * np.diag(np.ones(N - 1), 1)
    rng = np.random.default_rng(0)
    return lt.Network(W0=W0, m=rng.standard_normal(N), w=rng.standard_normal(N) / N)


def test_cosine_trains_through_train_as_the_paper_set_it_up():
    N = 24
    W0, m = cosine_network(N, 0.4, seed=0)
    run = lt.train(lt.Network(W0=W0, m=m, w=m / N), SMALL_COSINE, lr=0.15, epochs=30,
                   record_every=5, record_eigenvalues=True)
    assert isinstance(run, lt.TrainResult) and run.status == "ok"
    assert run.params["engine"] == "dense" and run.params["task"]["kind"] == "CosineTask"
    assert run.L0 == pytest.approx(SMALL_COSINE.L0)
    assert run.loss.shape == (30,) and run.singular_values.shape == (30, 2)
    assert run.recorded_singular_values.shape == (6, 2)
    assert np.isnan(run.singular_values[1]).all() and not np.isnan(run.singular_values[5]).any()
    assert run.eigenvalues.shape == (6, N)
    assert run.loss[-1] < 0.9 * run.loss[0]
    # the same updates as the direct loop on Delta W (which adds W0 + Delta W each epoch
    # instead of updating W in place: round-off only)
    ref = train_full(W0, m, lr=0.15, epochs=29, task=SMALL_COSINE, record_every=5)
    np.testing.assert_allclose(run.loss, ref.loss, rtol=1e-14, atol=0)
    # the figure's driver is train plus the loss after the last update
    drv = train_cosine(N, 0.4, 0, lr=0.15, epochs=30, task=SMALL_COSINE, record_every=5)
    np.testing.assert_array_equal(drv.loss[:-1], run.loss)
    L_end = linear_bptt(run.W, m, m / N, SMALL_COSINE.inputs(), SMALL_COSINE.targets(),
                        SMALL_COSINE.mask(), SMALL_COSINE.dt, x0=m)[0]
    assert drv.loss[-1] == L_end


def test_cosine_readout_is_the_overlap_with_the_target():
    task = lt.CosineTask()
    assert task.readout(task.targets()) == 1.0
    assert task.readout(-0.5 * task.targets()) == -0.5
    N = 16
    W0, m = cosine_network(N, 0.0, seed=1)
    run = lt.train(lt.Network(W0=W0, m=m, w=m / N), task, lr=0.2, epochs=2)
    y = linear_bptt(W0, m, m / N, task.inputs(), task.targets(), task.mask(), task.dt,
                    x0=m)[2]
    assert run.readout[0] == task.readout(y)


def test_fixed_point_task_through_the_general_bptt_matches_its_definition():
    """The fixed-point task's mask and targets reproduce the decision-window loss."""
    net = lt.init_network(N=12, g=0.5, seed=2)
    task = lt.FixedPointTask(target=1.5, t_max=12.0, dt=0.5, decision=2.0)
    from linrnn_theory.simulation.dense import euler_states
    X = euler_states(net.W0, net, task)
    z = X[task.decision_steps()] @ net.w
    L, G = lt.gradient(net.W0, net, task)
    assert L == pytest.approx(0.5 * np.mean((z - 1.5) ** 2), rel=1e-14)
    assert task.mask().sum() == task.n_decision


def test_modes_a_task_does_not_have_are_refused():
    N = 8
    W0, m = cosine_network(N, 0.4, seed=0)
    net = lt.Network(W0=W0, m=m, w=m / N)
    with pytest.raises(ValueError, match="CosineTask has no mode 'fixed_point'"):
        lt.train(net, SMALL_COSINE, lr=0.1, epochs=2, mode="fixed_point")
    with pytest.raises(ValueError, match="engine 'fast' cannot train CosineTask"):
        lt.train(net, SMALL_COSINE, lr=0.1, epochs=2, engine="fast")
    with pytest.raises(ValueError, match="engine must be one of"):
        lt.train(net, SMALL_COSINE, lr=0.1, epochs=2, engine="gpu")
    with pytest.raises(ValueError, match="CosineTask has no mode"):
        lt.gradient(W0, net, SMALL_COSINE, mode="fixed_point")


def test_default_engine_choice_reports_a_refusal():
    net = _defective_network()
    task = lt.FixedPointTask(1.0, t_max=10.0)
    run = lt.train(net, task, lr=0.05, epochs=3)
    assert run.params["engine"] == "dense"
    assert "engine 'fast' refused the network" in run.message
    assert "numerically defective" in run.params["engine_notes"][0]
    with pytest.raises(EngineRefused, match="numerically defective"):
        lt.train(net, task, lr=0.05, epochs=3, engine="fast")
    # a network the fast engine accepts leaves no note
    ok = lt.train(lt.init_network(N=8, g=0.3, seed=0), task, lr=0.05, epochs=3)
    assert ok.params["engine"] == "fast" and "engine_notes" not in ok.params


def test_a_registered_engine_is_used_by_train():
    calls = []

    @register_engine
    class CountingEngine(DenseEngine):
        name = "counting"
        priority = -1                      # preferred over the built-in engines

        def evaluate(self):
            calls.append(1)
            return super().evaluate()

    try:
        net = lt.init_network(N=8, g=0.3, seed=0)
        task = lt.FixedPointTask(1.0, t_max=10.0)
        run = lt.train(net, task, lr=0.05, epochs=4)
        assert run.params["engine"] == "counting" and len(calls) == 4
        ref = lt.train(net, task, lr=0.05, epochs=4, engine="dense")
        np.testing.assert_array_equal(run.loss, ref.loss)
        assert engine_mod.engine_names(task, "bptt")[0] == "counting"
    finally:
        for mode in CountingEngine.modes:
            engine_mod._REGISTRY.pop(("counting", mode))
    assert "counting" not in engine_mod.engine_names()


def test_registration_checks_its_argument():
    with pytest.raises(TypeError, match="Engine subclass"):
        register_engine(object)

    class Nameless(DenseEngine):
        name = ""

    with pytest.raises(ValueError, match="name must be a non-empty string"):
        register_engine(Nameless)

    class BadMode(DenseEngine):
        name = "bad"
        modes = ("sideways",)

    with pytest.raises(ValueError, match="modes must be"):
        register_engine(BadMode)


def test_every_built_in_engine_implements_the_interface():
    net = lt.init_network(N=8, g=0.3, seed=0)
    task = lt.FixedPointTask(1.0, t_max=10.0)
    for mode in ("bptt", "fixed_point"):
        for name in engine_mod.engine_names(task, mode):
            eng = make_engine(net, task, mode, name)
            assert isinstance(eng, Engine) and eng.name == name and eng.mode == mode
            L, z = eng.evaluate()
            assert np.isfinite(L) and np.isfinite(eng.grad_norm())
            eng.step(0.05)
            assert eng.singular_values(4).shape == (4,)
            assert eng.weights().shape == (8, 8) and eng.unstable() is False


def test_architecture_doc_examples_run():
    """The examples of docs/architecture.md (result twins, an engine, a theory method, a
    figure) run as written."""
    import doctest
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
    result = doctest.testfile(str(path), module_relative=False, verbose=False)
    assert result.attempted >= 30 and result.failed == 0, result


def _stepwise_gap(engines) -> float:
    """Largest relative difference between the blocked recursions of
    :meth:`BPTTEngine._propagate` (several engines in one batch) and the forward and
    adjoint recursions of the module docstring run step by step, one engine at a time."""
    from linrnn_theory.simulation.bptt import BPTTEngine
    R, H = BPTTEngine._propagate(engines)
    B, worst = len(engines), 0.0
    for b, e in enumerate(engines):
        T, dt, De, p, q = e.task.n_steps, e.task.dt, e.D, e.U.n, e.V.n
        Uh, Vc, d = e.U.image, e.V.image, e.d
        x, mu = np.zeros(De), e.wh.copy()
        xs, mus, ys, zs = [x], [mu], [], []
        for k in range(T):
            y, z = Vc.T @ x, Uh.T @ mu
            x = ((d * x.view(complex)).view(float) + dt * e.u[k] * e.mh
                 + dt * Uh @ (e.C @ y))
            mu = (d.conj() * mu.view(complex)).view(float) + dt * Vc @ (e.C.T @ z)
            xs.append(x)
            mus.append(mu)
            ys.append(y)
            zs.append(z)
        pairs = [(R[:, b, 0, 2:De], np.array(xs)[:, 2:]), (R[:, B + b, 0, :De], np.array(mus)),
                 (H[b, :, 1:1 + q], np.array(ys)), (H[B + b, :, 1:1 + p], np.array(zs))]
        for got, ref in pairs:
            worst = max(worst, float(np.abs(got - ref).max() / np.abs(ref).max()))
    return worst


def _trained_fast_engines():
    """Three fast engines of different ranks after a few epochs, on a task whose input
    switches on inside a block of time steps."""
    from linrnn_theory.simulation.bptt import BLOCK, BPTTEngine
    task = lt.FixedPointTask(target=1.0, t_max=30.0, fixation=3.5, decision=2.0)
    assert task.n_fixation % BLOCK != 0
    engines = [BPTTEngine(lt.init_network(N=40, g=g, seed=s), task.with_target(z))
               for s, (g, z) in enumerate([(0.5, 1.0), (0.3, -2.0), (0.7, 0.5)])]
    for epochs, e in zip((3, 6, 9), engines):
        for _ in range(epochs):
            e.evaluate()
            e.step(0.05)
    assert len({e.rank for e in engines}) > 1
    return engines


def test_blocked_propagation_equals_the_step_by_step_recursions():
    assert _stepwise_gap(_trained_fast_engines()) < 1e-12


def test_stepwise_check_catches_a_missing_feedback_inside_a_block(monkeypatch):
    # the partner of the test above: without the kernels Gamma_n the reads of a block miss
    # the feedback of its earlier steps, and the comparison must see it
    from linrnn_theory.simulation.bptt import BPTTEngine
    engines = _trained_fast_engines()
    monkeypatch.setattr(BPTTEngine, "_gammas", lambda self, fwd, adj: None)
    assert _stepwise_gap(engines) > 1e-6


def test_same_weights_train_to_the_same_bits_whatever_the_network_knows_of_its_draw():
    # a network loaded from a file has no seed or g: its run must equal that of the
    # network drawn by init_network bit for bit (the decomposition depends on W0 alone)
    task = lt.FixedPointTask(target=1.0, t_max=20.0)
    for g in (0.3, 0.7):
        drawn = lt.init_network(N=48, g=g, seed=5)
        loaded = lt.Network(W0=drawn.W0.copy(), m=drawn.m.copy(), w=drawn.w.copy())
        a = lt.train(drawn, task, lr=0.05, epochs=6, mode="bptt", engine="fast")
        b = lt.train(loaded, task, lr=0.05, epochs=6, mode="bptt", engine="fast")
        assert np.array_equal(a.loss, b.loss) and np.array_equal(a.W, b.W)


def test_the_bit_check_sees_one_ulp_of_W0():
    # the partner of the test above: one entry of W0 one ulp off changes the numbers
    task = lt.FixedPointTask(target=1.0, t_max=20.0)
    net = lt.init_network(N=48, g=0.3, seed=5)
    W0 = net.W0.copy()
    W0[0, 0] = np.nextafter(W0[0, 0], np.inf)
    other = lt.Network(W0=W0, m=net.m, w=net.w)
    a = lt.train(net, task, lr=0.05, epochs=6, mode="bptt", engine="fast")
    b = lt.train(other, task, lr=0.05, epochs=6, mode="bptt", engine="fast")
    assert not np.array_equal(a.W, b.W)
