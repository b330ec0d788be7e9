"""Sweep machinery: cache keys, atomic storage, resume after interruption, backends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from linrnn_theory.sweep import Task, TaskError, run_tasks
from linrnn_theory.sweep import cache as C
from linrnn_theory.sweep.runner import cache_lock

HERE = Path(__file__).resolve().parent
ME = "test_sweep"          # this module, importable by name (tests/ is on sys.path)


# -- task functions used below (module level: importable by name) -----------------------

def square_task(params: dict) -> dict:
    """y = x^2 plus an array; raises KeyboardInterrupt at ``stop_at`` while ``flag`` exists."""
    if params.get("flag") and os.path.exists(params["flag"]) and params["x"] == params["stop_at"]:
        raise KeyboardInterrupt
    if params.get("fail") and params["x"] == params["fail"]:
        raise ValueError("planned failure")
    rng = np.random.default_rng(int(params["x"]))
    return {"y": float(params["x"]) ** 2, "a": rng.standard_normal(5), "status": "ok",
            "none": None}


BATCH_CALLS: list[int] = []


def square_batch(params: list[dict]) -> list[dict]:
    """Batch function of :func:`square_task`; records each call's size."""
    BATCH_CALLS.append(len(params))
    return [square_task(p) for p in params]


def short_batch(params: list[dict]) -> list[dict]:
    """A broken batch function: one result short."""
    return [square_task(p) for p in params[1:]]


def _tasks(n: int, **extra) -> list[Task]:
    return [Task(f"{ME}:square_task", {"x": i, **extra}, "v-test") for i in range(n)]


def _npz(d: Path) -> list[Path]:
    return sorted(d.glob("*.npz"))


# -- keys ---------------------------------------------------------------------------------

def test_keys_stable_and_distinct():
    p = {"g": 0.6, "seeds": (0, 1), "mode": "bptt"}
    k = C.task_key("m:f", p, "v1")
    assert k == C.task_key("m:f", {"mode": "bptt", "seeds": [0, 1], "g": 0.6}, "v1")
    assert k == C.task_key("m:f", {"g": np.float64(0.6), "seeds": [np.int64(0), 1],
                                   "mode": "bptt"}, "v1")
    assert len(k) == 32 and int(k, 16) >= 0                        # 32 hex digits
    others = [C.task_key("m:f", {**p, "g": 0.6000000000000001}, "v1"),
              C.task_key("m:f", {**p, "seeds": (0, 2)}, "v1"),
              C.task_key("m:g", p, "v1"), C.task_key("m:f", p, "v2")]
    assert len({k, *others}) == 5
    # the same key in a fresh interpreter (no dependence on hash randomisation)
    code = ("from linrnn_theory.sweep.cache import task_key; "
            "print(task_key('m:f', {'g': 0.6, 'seeds': (0, 1), 'mode': 'bptt'}, 'v1'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONHASHSEED": "123"})
    assert out.stdout.strip() == k
    with pytest.raises(ValueError, match="finite"):
        C.task_key("m:f", {"g": float("nan")}, "v1")


def test_code_version_tracks_sources(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    h1 = C.source_hash(["*.py"], root=tmp_path)
    assert h1 == C.source_hash(["*.py"], root=tmp_path)
    (tmp_path / "a.py").write_text("x = 3\n")
    assert C.source_hash(["*.py"], root=tmp_path) != h1
    assert C.source_hash(["*.py"], exclude=["a.py"], root=tmp_path) == \
        C.source_hash(["b.py"], root=tmp_path)
    with pytest.raises(ValueError, match="matches no file"):
        C.source_hash(["nope/*.py"], root=tmp_path)
    from linrnn_theory.reproduce import code_scope
    assert code_scope("fig4", "sim").startswith("0.")


@pytest.mark.parametrize("module", ["theory/failure.py", "simulation/dense.py",
                                    "reproduce/diverge.py", "nonlinear/rnn.py", "task.py"])
def test_editing_any_package_module_changes_every_task_key(tmp_path, monkeypatch, module):
    """The diverge simulations call the failure theory: an edit there (or anywhere in the
    package) must change the cache key of those tasks, so no stale result is served."""
    import shutil
    from linrnn_theory.reproduce import code_scope
    from linrnn_theory.sweep import Task
    copy = tmp_path / "linrnn_theory"
    shutil.copytree(C._PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(C, "_PACKAGE_ROOT", copy)
    params = {"figure": "diverge", "kind": "sim", "g": 0.6, "target": 2.0, "seed": 0}
    before = Task("linrnn_theory.reproduce.figure:run_task", params,
                  code_scope("diverge", "sim")).key
    with open(copy / module, "a") as fh:
        fh.write("\n# edited\n")
    after = Task("linrnn_theory.reproduce.figure:run_task", params,
                 code_scope("diverge", "sim")).key
    assert before != after


# -- atomic storage -------------------------------------------------------------------------

def test_store_load_roundtrip_exact(tmp_path):
    res = {"a": np.array([0.1, np.nan, 1e-300]), "c": np.array([1 + 2j]), "s": "ok",
           "n": None, "f": float("nan"), "i": np.int64(3), "lst": [1, 2.5], "st": np.array(["x"])}
    C.store_result(tmp_path, "k", res)
    back = C.load_result(tmp_path, "k")
    norm = C.normalise_result(res)
    assert back.keys() == norm.keys()
    for k in back:
        if isinstance(back[k], np.ndarray):
            np.testing.assert_array_equal(back[k], norm[k])
            assert back[k].dtype == norm[k].dtype
        elif isinstance(back[k], float) and np.isnan(back[k]):
            assert np.isnan(norm[k])
        else:
            assert back[k] == norm[k]


def test_crash_during_write_leaves_no_readable_file(tmp_path, monkeypatch):
    """A crash between writing the temporary file and renaming it leaves nothing that
    load_result would accept; the leftover temp file is removed by the next sweep."""
    real_replace = os.replace

    def crash(src, dst):
        raise KeyboardInterrupt                       # killed right before the rename

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        C.store_result(tmp_path, "k", {"a": np.arange(10)})
    monkeypatch.setattr(os, "replace", real_replace)
    assert not (tmp_path / "k.npz").exists()
    assert C.load_result(tmp_path, "k") is None
    # a temp file left by a SIGKILL (simulated) is ignored and cleaned
    (tmp_path / ".k.npz.abc123.tmp").write_bytes(b"PK\x03\x04partial")
    out = run_tasks(_tasks(2), tmp_path, jobs=1, progress=False)
    assert out.computed == 2
    assert not list(tmp_path.glob("*.tmp"))


def test_corrupt_cache_file_is_recomputed(tmp_path):
    tasks = _tasks(3)
    first = run_tasks(tasks, tmp_path, jobs=1, progress=False)
    p = tmp_path / f"{tasks[1].key}.npz"
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])      # truncated file
    q = tmp_path / f"{tasks[2].key}.npz"
    C.store_result(tmp_path, "other-key", {"y": 0.0})                # wrong key inside
    os.replace(tmp_path / "other-key.npz", q)
    again = run_tasks(tasks, tmp_path, jobs=1, progress=False)
    assert (again.computed, again.reused) == (2, 1)
    assert [r["y"] for r in again.results] == [r["y"] for r in first.results]
    assert len(list(tmp_path.glob("*.corrupt"))) == 2


# -- interruption and resume ---------------------------------------------------------------

def test_interrupt_then_rerun_recomputes_only_unfinished(tmp_path):
    flag = tmp_path / "interrupt"
    flag.write_text("1")
    tasks = _tasks(6, flag=str(flag), stop_at=3)
    with pytest.raises(KeyboardInterrupt):
        run_tasks(tasks, tmp_path / "c", jobs=1, progress=False)
    assert len(_npz(tmp_path / "c")) == 3                             # tasks 0, 1, 2
    flag.unlink()
    out = run_tasks(tasks, tmp_path / "c", jobs=1, progress=False)
    assert (out.computed, out.reused) == (3, 3)
    assert out.was_computed == [False, False, False, True, True, True]
    assert [r["y"] for r in out.results] == [float(i * i) for i in range(6)]
    again = run_tasks(tasks, tmp_path / "c", jobs=1, progress=False)
    assert (again.computed, again.reused) == (0, 6)
    fresh = run_tasks(tasks, tmp_path / "c", jobs=1, progress=False, fresh=True)
    assert (fresh.computed, fresh.reused) == (6, 0)


def test_failed_task_others_cached(tmp_path):
    tasks = _tasks(4, fail=2)
    with pytest.raises(TaskError, match="planned failure") as info:
        run_tasks(tasks, tmp_path, jobs=1, progress=False)
    assert len(info.value.failures) == 1
    assert len(_npz(tmp_path)) == 3


def _batched(xs, label="b", func="square_batch") -> list[Task]:
    return [Task(f"{ME}:square_task", {"x": x}, "v-test", batch=label,
                 batch_func=f"{ME}:{func}") for x in xs]


def test_batched_tasks_run_as_one_call_and_cache_per_task(tmp_path):
    BATCH_CALLS.clear()
    tasks = (_batched([0, 1, 2]) + [Task(f"{ME}:square_task", {"x": 5}, "v-test")]
             + _batched([3, 4], label="other"))
    out = run_tasks(tasks, tmp_path, jobs=1, progress=False)
    assert sorted(BATCH_CALLS) == [2, 3] and out.computed == 6
    plain = run_tasks(_tasks(5), tmp_path / "plain", jobs=1, progress=False)
    # the same results as one call per task, under the same keys (the batch is not keyed)
    assert [r["y"] for r in out.results] == [0.0, 1.0, 4.0, 25.0, 9.0, 16.0]
    assert out.keys[:3] == plain.keys[:3] and out.keys[4:] == plain.keys[3:]
    assert all(np.array_equal(a["a"], b["a"]) for a, b in zip(out.results[:3], plain.results))
    assert out.seconds[0] == out.seconds[1]          # a batch's time, shared evenly
    # cached members are not recomputed; the one missing member runs on its own
    (tmp_path / f"{out.keys[1]}.npz").unlink()
    BATCH_CALLS.clear()
    again = run_tasks(tasks, tmp_path, jobs=1, progress=False)
    assert (again.computed, again.reused, BATCH_CALLS) == (1, 5, [])


def test_a_batch_function_with_too_few_results_fails_every_member(tmp_path):
    with pytest.raises(TaskError, match="not a list of one result per task") as info:
        run_tasks(_batched([0, 1, 2], func="short_batch"), tmp_path, jobs=1, progress=False)
    assert len(info.value.failures) == 3 and not _npz(tmp_path)
    with pytest.raises(ValueError, match="both batch and batch_func"):
        Task(f"{ME}:square_task", {"x": 0}, batch="b")


def test_lock_refuses_concurrent_sweep(tmp_path):
    with cache_lock(tmp_path):
        with pytest.raises(ValueError, match="in use"):
            run_tasks(_tasks(1), tmp_path, jobs=1, progress=False)


def test_kill_cli_then_rerun_counts(tmp_path):
    """SIGKILL a real ``reproduce fig4 --full`` (tiny overrides) after some tasks finished;
    the rerun computes exactly the tasks that had no cache file. The runs of one g train
    as one batch, so the kill leaves whole batches and single theory tasks cached."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "linrnn_theory.cli", "reproduce", "fig4", "--full",
           "--out", str(out), "--jobs", "1", "--no-progress",
           "--set", "fig4.N=48", "--set", "fig4.g_values=[0.0,0.2,0.4,0.6]",
           "--set", "fig4.targets=[0.5]", "--set", "fig4.seeds=[0,1,2]",
           "--set", "fig4.t_max=41.0"]
    n_tasks = 4 * (4 + 3)                     # per g: 4 theory quantities + 3 runs
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cache = out / "cache"
    t0 = time.time()
    while time.time() - t0 < 60:
        if cache.is_dir() and len(_npz(cache)) >= 6:
            break
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(_npz(cache))
    assert 6 <= done < n_tasks, f"{done} tasks finished before the kill; make them slower"
    assert not (out / "manifest.json").exists()
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    man = json.loads((out / "manifest.json").read_text())
    assert man["sweep"]["tasks"] == n_tasks
    assert man["sweep"]["reused"] == done
    assert man["sweep"]["computed"] == n_tasks - done
    assert man["figures"]["fig4"]["computed"] == n_tasks - done


# -- backends -------------------------------------------------------------------------------

def _fig3_tiny_tasks():
    from linrnn_theory.reproduce import FIGURES, code_scope
    from linrnn_theory.reproduce.figure import sweep_task
    from linrnn_theory.reproduce.presets import TINY, with_overrides
    pre = with_overrides(TINY, fig3={"g_values": (0.6,), "targets": (2.0,), "seeds": (0, 1)})
    return [sweep_task(p, code_scope("fig3", p["kind"])) for p in FIGURES["fig3"].tasks(pre)]


def _assert_identical(a: list[dict], b: list[dict]) -> None:
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        for k in ra:
            if isinstance(ra[k], np.ndarray):
                assert ra[k].dtype == rb[k].dtype
                assert ra[k].tobytes() == rb[k].tobytes(), k          # bit-identical
            else:
                assert ra[k] == rb[k] or (ra[k] != ra[k] and rb[k] != rb[k]), k


def test_dask_matches_default_backend(tmp_path):
    distributed = pytest.importorskip("distributed")
    tasks = _fig3_tiny_tasks()
    ref = run_tasks(tasks, tmp_path / "loky", jobs=2, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        got = run_tasks(tasks, tmp_path / "dask", backend="dask",
                        scheduler=cluster.scheduler_address, progress=False)
    assert got.computed == len(tasks) and got.executor.startswith("dask")
    assert ref.executor.startswith("joblib")
    _assert_identical(ref.results, got.results)
    # and both equal the serial computation in this process
    ser = run_tasks(tasks, tmp_path / "serial", jobs=1, progress=False)
    _assert_identical(ref.results, ser.results)


def test_recovered_cache_files_are_counted_and_only_the_latest_kept(tmp_path):
    tasks = _tasks(2)
    run_tasks(tasks, tmp_path, jobs=1, progress=False)
    p = tmp_path / f"{tasks[0].key}.npz"
    for junk in (b"first junk", b"second junk"):
        p.write_bytes(junk)
        again = run_tasks(tasks, tmp_path, jobs=1, progress=False)
        assert (again.computed, again.reused) == (1, 1)
        assert again.summary()["recovered"] == 1
        [rec] = again.recovered
        assert rec["key"] == tasks[0].key and rec["file"] == p.name + ".corrupt"
        assert rec["func"] == tasks[0].func and rec["reason"].startswith("ValueError")
    corrupt = list(tmp_path.glob("*.corrupt"))
    assert [c.name for c in corrupt] == [p.name + ".corrupt"]
    assert corrupt[0].read_bytes() == b"second junk"
    clean = run_tasks(tasks, tmp_path, jobs=1, progress=False)
    assert clean.recovered == [] and clean.summary()["recovered"] == 0
