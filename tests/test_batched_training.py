"""Training several networks in one call (``lt.train(nets, ...)``) gives each network the
result it gets alone: every array, the status, the message and the stopping epoch.

The checker :func:`assert_same_run` demands equality to ``RTOL`` relative (per array, against
its largest entry; NaN where NaN) and is shown to catch a network that differs by a
perturbation of ``W0`` at the level of round-off.
"""

from __future__ import annotations

import numpy as np
import pytest

import linrnn_theory as lt

#: Largest relative difference allowed between a batched and a lone run, per array.
RTOL = 1e-12
ARRAYS = ("tau", "loss", "readout", "grad_norm", "singular_values", "W", "eigenvalues",
          "record_epochs")
SCALARS = ("status", "message", "stop_epoch", "converged_epoch", "params")

TASK = lt.FixedPointTask(target=1.0, t_max=30.0)
LR = 0.05


def run_differences(a: lt.TrainResult, b: lt.TrainResult, rtol: float = RTOL) -> list[str]:
    """Names (with the size of the difference) of the fields in which two runs differ."""
    out = [f"{k}: {getattr(a, k)!r} != {getattr(b, k)!r}" for k in SCALARS
           if getattr(a, k) != getattr(b, k)]
    for k in ARRAYS:
        x, y = getattr(a, k), getattr(b, k)
        if x is None or y is None:
            if not (x is None and y is None):
                out.append(f"{k}: one is None")
            continue
        if x.shape != y.shape:
            out.append(f"{k}: shapes {x.shape} != {y.shape}")
            continue
        if not np.array_equal(np.isnan(x), np.isnan(y)):
            out.append(f"{k}: NaN in different places")
            continue
        diff = np.nan_to_num(np.abs(x - y), nan=0.0)
        scale = np.nanmax(np.abs(y)) if y.size and np.any(np.isfinite(y)) else 0.0
        if diff.size and diff.max() > rtol * scale:
            out.append(f"{k}: max difference {diff.max():.3g} (relative {diff.max() / scale:.3g})")
    return out


def assert_same_run(a: lt.TrainResult, b: lt.TrainResult, rtol: float = RTOL) -> None:
    """Raise ``AssertionError`` listing the fields in which two runs differ."""
    diffs = run_differences(a, b, rtol)
    assert not diffs, "runs differ: " + "; ".join(diffs)


def _nets(N: int = 48, gains=(0.5, 0.3, 0.0, 0.6)) -> list[lt.Network]:
    return [lt.init_network(N=N, g=g, seed=i) for i, g in enumerate(gains)]


def _compare(nets, tasks, mode, lr=LR, **kw) -> list[lt.TrainResult]:
    batched = lt.train(nets, tasks, lr, kw.pop("epochs", 40), mode, **kw)
    assert isinstance(batched, list) and len(batched) == len(nets)
    epochs = batched[0].params["epochs"]
    tasks = tasks if isinstance(tasks, list) else [tasks] * len(nets)
    rates = lr if isinstance(lr, list) else [lr] * len(nets)
    for net, task, rate, run in zip(nets, tasks, rates, batched):
        assert_same_run(run, lt.train(net, task, rate, epochs, mode, **kw))
    return batched


@pytest.mark.parametrize("mode", ["bptt", "fixed_point"])
def test_batched_equals_one_by_one_with_mixed_targets_and_a_divergence(mode):
    # target 8 diverges (bptt: the loss overflows to inf; fixed point: the outlier crosses
    # 1), the others converge; record_every > 1 leaves NaN rows
    tasks = [TASK.with_target(8.0), TASK.with_target(0.5), TASK, TASK.with_target(-1.0)]
    runs = _compare(_nets(), tasks, mode, epochs=40, record_every=3)
    assert [r.status for r in runs] == ["diverged", "ok", "ok", "ok"]
    assert runs[0].stop_epoch < 10 < runs[1].stop_epoch == 40
    assert np.isnan(runs[1].singular_values[1]).all()
    assert runs[1].params["engine"] == "fast"
    if mode == "bptt":
        assert "non-finite" in runs[0].message


@pytest.mark.parametrize("mode", ["bptt", "fixed_point"])
def test_early_stop_and_eigenvalues_in_a_batch(mode):
    runs = _compare(_nets(gains=(0.5, 0.2, 0.7)), TASK, mode, epochs=60, stop_rel_loss=1e-4,
                    record_every=7, record_eigenvalues=True)
    assert [r.status for r in runs].count("converged") >= 2
    assert len({r.stop_epoch for r in runs}) > 1       # they stop at different epochs
    assert runs[0].eigenvalues.shape == (runs[0].record_epochs.size, 48)


@pytest.mark.parametrize("mode", ["bptt", "fixed_point"])
def test_one_learning_rate_per_network(mode):
    # one network under two targets with the rates of each (as a Fig. 4 cell uses them)
    nets = _nets(gains=(0.6, 0.6, 0.3))
    nets = [nets[0], nets[0], nets[2]]
    tasks = [TASK.with_target(0.5), TASK.with_target(2.0), TASK]
    runs = _compare(nets, tasks, mode, lr=[0.08, 0.02, 0.05], epochs=25, record_every=4)
    assert [r.params["lr"] for r in runs] == [0.08, 0.02, 0.05]
    assert np.allclose(runs[1].tau, 0.02 * np.arange(25))
    # the checker sees a rate given to the wrong network
    swapped = lt.train(nets[0], tasks[0], 0.02, 25, mode, record_every=4)
    assert run_differences(runs[0], swapped)


def test_one_seed_at_several_gains_in_a_batch_equals_each_alone_from_empty_caches():
    # each lone run starts from empty caches, so it decomposes its W0 again and must
    # still get the numbers of its run in the batch
    from linrnn_theory.simulation import bptt
    nets = [lt.init_network(N=48, g=g, seed=7) for g in (0.2, 0.5, 0.8)]
    batched = lt.train(nets, TASK, LR, 30, "bptt", record_every=3)
    for net, run in zip(nets, batched):
        bptt._cached_eigenbasis.cache_clear()
        assert_same_run(run, lt.train(net, TASK, LR, 30, "bptt", record_every=3))
    assert len({r.stop_epoch for r in batched}) == 1 and batched[0].params["engine"] == "fast"


def test_dense_engine_loops_and_a_refused_network_falls_back_inside_a_batch():
    _compare(_nets(N=16, gains=(0.5, 0.3)), TASK, "fixed_point", engine="dense", epochs=10)
    W0 = np.diag(np.full(16, 0.3)) + 0.5 * np.diag(np.ones(15), 1)   # defective
    rng = np.random.default_rng(0)
    odd = lt.Network(W0=W0, m=rng.standard_normal(16), w=rng.standard_normal(16) / 16)
    runs = _compare([*_nets(N=16, gains=(0.5,)), odd], TASK, "bptt", epochs=10)
    assert [r.params["engine"] for r in runs] == ["fast", "dense"]
    assert "refused" in runs[1].message


def test_the_checker_catches_a_perturbed_network():
    nets = _nets()
    batched = lt.train(nets, TASK, LR, 30, "bptt")
    k = 1
    W0 = nets[k].W0 + 1e-10 * np.random.default_rng(5).standard_normal(nets[k].W0.shape)
    other = lt.Network(W0=W0, m=nets[k].m, w=nets[k].w)
    alone = lt.train(other, TASK, LR, 30, "bptt")
    diffs = run_differences(batched[k], alone)
    assert any(d.startswith(("loss", "W")) for d in diffs), diffs
    with pytest.raises(AssertionError, match="runs differ"):
        assert_same_run(batched[k], alone)
    assert_same_run(batched[k], lt.train(nets[k], TASK, LR, 30, "bptt"))


def test_a_sequence_of_one_gives_a_list_and_bad_batches_are_refused():
    net = lt.init_network(N=16, g=0.5, seed=0)
    runs = lt.train([net], TASK, LR, 3, "fixed_point")
    assert isinstance(runs, list) and len(runs) == 1
    assert_same_run(runs[0], lt.train(net, TASK, LR, 3, "fixed_point"))
    with pytest.raises(ValueError, match="different N"):
        lt.train([net, lt.init_network(N=17, g=0.5, seed=0)], TASK, LR, 3)
    with pytest.raises(ValueError, match="2 tasks for 1 networks"):
        lt.train([net], [TASK, TASK], LR, 3)
    with pytest.raises(ValueError, match="time grid"):
        lt.train([net, net], [TASK, lt.FixedPointTask(1.0, t_max=20.0)], LR, 3)
    with pytest.raises(ValueError, match="2 learning rates for 1 networks"):
        lt.train([net], TASK, [LR, LR], 3)
    with pytest.raises(ValueError, match=r"lr\[1\]"):
        lt.train([net, net], TASK, [LR, -LR], 3)
    with pytest.raises(ValueError, match="at least one"):
        lt.train([], TASK, LR, 3)
    with pytest.raises(TypeError):
        lt.train("net", TASK, LR, 3)
    with pytest.raises(ValueError, match="network 1: W0 is unstable"):
        lt.train([net, lt.init_network(N=16, g=3.0, seed=0)], TASK, LR, 3, "fixed_point")


def test_simulator_doc_examples_run():
    """The examples of docs/simulator.md (batched training among them) run as written."""
    import doctest
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "docs" / "simulator.md"
    result = doctest.testfile(str(path), module_relative=False, verbose=False)
    assert result.attempted >= 8 and result.failed == 0, result
