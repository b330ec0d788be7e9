"""Run a list of tasks: reuse cached results, compute the missing ones, return all in order.

Guarantees
----------
* **Incremental**: each result is written to the cache (atomically) as soon as its task
  finishes, so an interrupted sweep (Ctrl-C, ``kill``) loses only the tasks in flight;
  rerun with the same tasks, it recomputes exactly the missing ones.
* **Safe**: a folder lock (``<cache_dir>/.lock``, ``fcntl.flock``) keeps two sweeps from
  writing into one cache at once; leftover temporary files are removed at start; a corrupt
  cache file is set aside (``.corrupt``) and recomputed.
* **Counted**: :class:`SweepOutcome` says how many tasks were computed, reused from the
  cache, or failed.
* **Batched**: tasks that name the same batch (:attr:`Task.batch`) and all need computing
  run as one call of their batch function, e.g. several networks trained together; each
  result is still cached under its own task's key.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from .backends import execute
from .cache import (clean_temporary, load_result, normalise_result, store_result, task_key)

__all__ = ["Task", "SweepOutcome", "TaskError", "run_tasks", "cache_lock"]


@dataclass(frozen=True)
class Task:
    """One pure function call ``func(params)``.

    Parameters
    ----------
    func : str
        ``"package.module:function"``; the function takes the params dict and returns a
        flat dict of numpy arrays and JSON-able scalars.
    params : dict
        JSON-able parameters (the whole input of the call).
    version : str
        Code version of everything the result depends on
        (:func:`~linrnn_theory.sweep.cache.code_version`).
    batch : str
        Group label: the tasks of one label that :func:`run_tasks` has to compute run as
        one call ``batch_func([params, ...])`` (in task order), which must return one
        result per task, each the one ``func(params)`` gives. Not part of the cache key
        (a result does not depend on the batch it was computed in). Empty: no batch.
    batch_func : str
        ``"package.module:function"`` of the batch call (needed with ``batch``).

    Examples
    --------
    >>> t = Task("math:sqrt", {"x": 1.0}, "v1")
    >>> t.key == Task("math:sqrt", {"x": 1.0}, "v1", batch="b", batch_func="m:f").key
    True
    """

    func: str
    params: dict
    version: str = ""
    batch: str = ""
    batch_func: str = ""

    def __post_init__(self) -> None:
        if bool(self.batch) != bool(self.batch_func):
            raise ValueError("a Task needs both batch and batch_func, or neither")

    @property
    def key(self) -> str:
        """Cache key (see :func:`~linrnn_theory.sweep.cache.task_key`)."""
        return task_key(self.func, self.params, self.version)


@dataclass
class SweepOutcome:
    """What :func:`run_tasks` did.

    Attributes
    ----------
    results : list of dict
        One result per task, in the order of the tasks.
    keys : list of str
        Cache keys, in the order of the tasks.
    computed, reused : int
        Number of distinct tasks computed now / read from the cache.
    seconds, cpu_seconds : list of float
        Wall-clock and CPU time of each task's computation (possibly in an earlier run;
        NaN if unknown).
    executor : str
        What ran the computed tasks.
    wall_s : float
        Wall-clock time of the call.
    was_computed : list of bool
        Per task: computed now (True) or read from the cache (False).
    failed : list of (Task, str)
        Failed tasks and tracebacks (only set on the exception, see :class:`TaskError`).
    recovered : list of dict
        Unusable cache files set aside (renamed ``*.corrupt``) and recomputed:
        ``{"key", "func", "file", "reason"}`` each (``file`` relative to the cache folder).
    """

    results: list
    keys: list
    computed: int
    reused: int
    seconds: list
    executor: str
    wall_s: float
    was_computed: list = field(default_factory=list)
    cpu_seconds: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    recovered: list = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Counts and timings as a JSON-able dict (for the manifest).

        Examples
        --------
        >>> SweepOutcome([], [], 1, 2, [], "serial", 0.5).summary()["reused"]
        2
        """
        return {"tasks": len(self.results), "computed": self.computed,
                "reused": self.reused, "failed": len(self.failed),
                "recovered": len(self.recovered), "executor": self.executor,
                "wall_s": self.wall_s}


class TaskError(ValueError):
    """Some tasks raised; the others finished and are cached.

    Attributes
    ----------
    failures : list of (Task, str)
        The failed tasks with their tracebacks.
    """

    def __init__(self, failures: list):
        self.failures = failures
        task, tb = failures[0]
        last = tb.strip().splitlines()[-1] if tb.strip() else "unknown error"
        super().__init__(f"{len(failures)} task(s) failed; first: {task.func} with "
                         f"{task.params}: {last}")


@contextlib.contextmanager
def cache_lock(cache_dir: str | os.PathLike) -> Iterator[Path]:
    """Exclusive lock on a cache folder for the duration of a sweep.

    Raises
    ------
    ValueError
        If another process holds the lock.

    Examples
    --------
    >>> import tempfile
    >>> with cache_lock(tempfile.mkdtemp()) as d:
    ...     d.is_dir()
    True
    """
    d = Path(cache_dir)
    d.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:                                   # pragma: no cover (Windows)
        yield d
        return
    fh = open(d / ".lock", "a+")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"cache {d} is in use by another running sweep "
                             "(wait for it to finish or use another --out)") from None
        yield d
    finally:
        fh.close()


def run_tasks(tasks: Sequence[Task], cache_dir: str | os.PathLike, *, backend: str = "loky",
              jobs: int | None = None, scheduler: str | None = None, fresh: bool = False,
              progress: bool = True, desc: str = "tasks",
              blas_threads: int | None = 1) -> SweepOutcome:
    """Run ``tasks`` with caching; results come back in the order of ``tasks``.

    Parameters
    ----------
    tasks : sequence of Task
    cache_dir : path
        Folder of the cache files ``<key>.npz`` (created if missing).
    backend, jobs, scheduler, progress, blas_threads
        See :func:`linrnn_theory.sweep.backends.execute`.
    fresh : bool
        Ignore cached results (recompute everything; the cache is overwritten).
    desc : str
        Progress-bar label.

    Returns
    -------
    SweepOutcome

    Raises
    ------
    TaskError
        After all other tasks finished (and were cached) if some task raised.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> ts = [Task("linrnn_theory.sweep.runner:_square", {"x": x}) for x in (1.0, 2.0)]
    >>> out = run_tasks(ts, d, jobs=1, progress=False)
    >>> [r["y"] for r in out.results], out.computed, out.reused
    ([1.0, 4.0], 2, 0)
    >>> run_tasks(ts, d, jobs=1, progress=False).reused
    2
    """
    t0 = time.perf_counter()
    tasks = list(tasks)
    keys = [t.key for t in tasks]
    first_of: dict[str, int] = {}
    for i, k in enumerate(keys):
        first_of.setdefault(k, i)
    results: dict[str, dict] = {}
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}
    with cache_lock(cache_dir) as d:
        clean_temporary(d)
        missing = []
        recovered: list[dict] = []
        for k, i in first_of.items():

            def note(path: Path, reason: str, k: str = k, i: int = i) -> None:
                recovered.append({"key": k, "func": tasks[i].func,
                                  "file": path.name, "reason": reason})

            cached = None if fresh else load_result(d, k, on_corrupt=note)
            if cached is None:
                missing.append(i)
            else:
                seconds[k] = float(cached.pop("_seconds", float("nan")))
                cpu[k] = float(cached.pop("_cpu_seconds", float("nan")))
                results[k] = cached
        reused = len(first_of) - len(missing)
        failures = []

        def on_result(i: int, ok: bool, payload: Any, wall: float, cpu_s: float) -> None:
            k = keys[i]
            if not ok:
                failures.append((tasks[i], payload))
                return
            res = normalise_result(payload)
            store_result(d, k, {**res, "_seconds": wall, "_cpu_seconds": cpu_s})
            results[k] = res
            seconds[k] = wall
            cpu[k] = cpu_s

        computed_now = set(missing)
        calls, members = _calls(tasks, missing)

        def on_call(i: int, ok: bool, payload: Any, wall: float, cpu_s: float) -> None:
            idx = members.get(i)
            if idx is None:
                on_result(i, ok, payload, wall, cpu_s)
                return
            if ok and not (isinstance(payload, list) and len(payload) == len(idx)):
                ok, payload = False, (f"batch function {tasks[idx[0]].batch_func} returned "
                                      f"{type(payload).__name__} for {len(idx)} tasks, not a "
                                      "list of one result per task")
            for j, k in enumerate(idx):          # the batch's time, shared evenly
                on_result(k, ok, payload[j] if ok else payload, wall / len(idx),
                          cpu_s / len(idx))

        label = f"{desc} ({reused} cached)" if reused else desc
        executor = execute(calls, on_call, backend=backend, jobs=jobs, scheduler=scheduler,
                           progress=progress, desc=label, blas_threads=blas_threads)
    if failures:
        raise TaskError(failures)
    return SweepOutcome(results=[results[k] for k in keys], keys=keys,
                        computed=len(missing), reused=reused,
                        seconds=[seconds.get(k, float("nan")) for k in keys],
                        cpu_seconds=[cpu.get(k, float("nan")) for k in keys],
                        executor=executor, wall_s=time.perf_counter() - t0,
                        was_computed=[first_of[k] in computed_now for k in keys],
                        recovered=recovered)


def _calls(tasks: Sequence[Task], missing: Sequence[int]
           ) -> tuple[list[tuple[int, str, Any]], dict[int, list[int]]]:
    """The calls that compute the ``missing`` tasks: one per task, or one per batch of two
    or more tasks (ids ``-1, -2, ...``, with their task indices in the returned dict).

    Examples
    --------
    >>> ts = [Task("m:f", {"x": x}, batch="b" if x < 2 else "", batch_func="m:g" if x < 2
    ...            else "") for x in range(3)]
    >>> _calls(ts, [0, 1, 2])
    ([(2, 'm:f', {'x': 2}), (-1, 'm:g', [{'x': 0}, {'x': 1}])], {-1: [0, 1]})
    """
    calls: list[tuple[int, str, Any]] = []
    groups: dict[tuple[str, str], list[int]] = {}
    for i in missing:
        t = tasks[i]
        if t.batch:
            groups.setdefault((t.batch_func, t.batch), []).append(i)
        else:
            calls.append((i, t.func, t.params))
    members: dict[int, list[int]] = {}
    for (func, _), idx in groups.items():
        if len(idx) == 1:
            calls.append((idx[0], tasks[idx[0]].func, tasks[idx[0]].params))
            continue
        cid = -1 - len(members)
        members[cid] = idx
        calls.append((cid, func, [tasks[i].params for i in idx]))
    return calls, members


def _square(params: dict) -> dict:
    """Tiny example task (used in the docstring examples and tests)."""
    return {"y": float(params["x"]) ** 2}


def _squares(params: list[dict]) -> list[dict]:
    """The batch function of :func:`_square` (tests)."""
    return [_square(p) for p in params]
