"""Execute task calls serially, with joblib (loky processes) or with Dask distributed.

Every backend calls ``on_result(i, ok, payload, seconds)`` in the calling process *as each
task finishes* (completion order, not submission order), so the caller can cache results
incrementally; a progress bar (tqdm) shows tasks done / total and the estimated time left.

Tasks run with single-threaded BLAS (``blas_threads=1``) on every backend: one process per
core is the faster layout for these sizes, and it makes results bit-identical across
backends (the summation order of a multi-threaded BLAS depends on the thread count).
"""

from __future__ import annotations

import importlib
import os
import time
import traceback
from typing import Any, Callable, Sequence

__all__ = ["BACKENDS", "resolve", "call_task", "execute", "default_jobs", "check_backend"]

#: Accepted backend names ("serial" is used for ``jobs == 1`` on the default backend).
BACKENDS = ("loky", "dask", "serial")

OnResult = Callable[[int, bool, Any, float, float], None]


def default_jobs() -> int:
    """Number of usable CPU cores (at least 1).

    Examples
    --------
    >>> default_jobs() >= 1
    True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:                              # pragma: no cover (not Linux)
        return max(1, os.cpu_count() or 1)


def check_backend(backend: str) -> None:
    """Fail early if ``backend`` is unknown or its packages are not importable.

    Parameters
    ----------
    backend : {"loky", "dask", "serial"}

    Raises
    ------
    ValueError
        One line saying what is missing and how to install it.

    Examples
    --------
    >>> check_backend("serial")
    >>> check_backend("mpi")
    Traceback (most recent call last):
    ...
    ValueError: backend must be one of loky, dask, serial, got 'mpi'
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    needs = {"loky": ("joblib",), "dask": ("dask", "distributed"), "serial": ()}[backend]
    for mod in needs:
        try:
            importlib.import_module(mod)
        except ImportError:
            extra = " (pip install 'linrnn-theory[dask]')" if backend == "dask" else ""
            raise ValueError(f"backend {backend!r} needs the package {mod!r}, which is not "
                             f"installed{extra}") from None


def resolve(func: str) -> Callable[[dict], dict]:
    """Import ``"package.module:function"``.

    Examples
    --------
    >>> resolve("math:sqrt")(4.0)
    2.0
    """
    mod, sep, name = func.partition(":")
    if not sep or not mod or not name:
        raise ValueError(f"func must look like 'package.module:function', got {func!r}")
    return getattr(importlib.import_module(mod), name)


def _set_blas_threads(n: int | None) -> None:
    if n is None:
        return
    from .._blas import openblas_handles as _openblas_handles
    import ctypes
    for _, set_ in _openblas_handles():
        set_(ctypes.c_int(int(n)))


def call_task(i: int, func: str, params: dict, blas_threads: int | None = 1
              ) -> tuple[int, bool, Any, float, float]:
    """Run one task; returns ``(i, ok, result_or_traceback, wall_seconds, cpu_seconds)``.

    Exceptions (not ``KeyboardInterrupt``/``SystemExit``) are caught and returned as the
    formatted traceback with ``ok = False``, so one failing task does not abort the others.

    Examples
    --------
    >>> call_task(3, "math:sqrt", 9.0)[:3]
    (3, True, 3.0)
    >>> i, ok, tb, wall, cpu = call_task(0, "math:sqrt", -1.0); ok, tb.splitlines()[-1]
    (False, 'ValueError: math domain error')
    """
    _set_blas_threads(blas_threads)
    t0 = time.perf_counter()
    c0 = time.process_time()
    try:
        out = resolve(func)(params)
        ok = True
    except Exception:                                    # noqa: BLE001 (reported upstream)
        out = traceback.format_exc()
        ok = False
    return i, ok, out, time.perf_counter() - t0, time.process_time() - c0


def _progress(total: int, desc: str, enabled: bool):
    import sys

    from tqdm.auto import tqdm
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tqdm(total=total, desc=desc, unit="task",
                disable=not enabled or total == 0 or not tty,
                smoothing=0.1, dynamic_ncols=True)


def execute(calls: Sequence[tuple[int, str, dict]], on_result: OnResult, *,
            backend: str = "loky", jobs: int | None = None, scheduler: str | None = None,
            progress: bool = True, desc: str = "tasks", blas_threads: int | None = 1) -> str:
    """Run ``calls`` (``(index, func, params)`` triples) and report each result.

    Parameters
    ----------
    calls : sequence of (int, str, dict)
    on_result : callable
        ``on_result(index, ok, payload, wall_seconds, cpu_seconds)``, called in this process as each task
        finishes; ``payload`` is the result dict or, if ``ok`` is False, the traceback.
    backend : {"loky", "dask", "serial"}
        ``"loky"`` (joblib processes; serial in this process when ``jobs == 1``),
        ``"dask"`` (Dask distributed: ``scheduler`` address, or a ``LocalCluster`` of
        ``jobs`` single-threaded worker processes) or ``"serial"``.
    jobs : int, optional
        Parallel workers (default: number of cores).
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:port``), Dask only.
    progress : bool
        Show a tqdm progress bar.
    desc : str
        Label of the progress bar.
    blas_threads : int or None
        OpenBLAS threads in the workers (``None``: leave as is).

    Returns
    -------
    str
        A description of what executed the tasks (for the manifest).

    Examples
    --------
    >>> got = []
    >>> execute([(0, "math:sqrt", 4.0), (1, "math:sqrt", 9.0)],
    ...         lambda i, ok, r, w, c: got.append((i, r)), backend="serial", progress=False)
    'serial (this process)'
    >>> sorted(got)
    [(0, 2.0), (1, 3.0)]
    """
    check_backend(backend)
    if scheduler is not None and backend != "dask":
        raise ValueError("scheduler is only used with backend 'dask'")
    jobs = default_jobs() if jobs is None else int(jobs)
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    calls = list(calls)
    bar = _progress(len(calls), desc, progress)

    def report(i, ok, payload, wall, cpu):
        on_result(i, ok, payload, wall, cpu)
        bar.update(1)

    try:
        if not calls:
            return "nothing to run"
        if backend == "dask":
            return _run_dask(calls, report, jobs, scheduler, blas_threads)
        if backend == "serial" or jobs == 1 or len(calls) == 1:
            _run_serial(calls, report, blas_threads)
            return "serial (this process)"
        return _run_loky(calls, report, jobs, blas_threads)
    finally:
        bar.close()


def _run_serial(calls, report, blas_threads) -> None:
    from .._blas import limit_blas_threads
    with limit_blas_threads(blas_threads):
        for i, func, params in calls:
            report(*call_task(i, func, params, None))


def _run_loky(calls, report, jobs, blas_threads) -> str:
    from joblib import Parallel, delayed
    n = min(jobs, len(calls))
    gen = Parallel(n_jobs=n, backend="loky", return_as="generator_unordered")(
        delayed(call_task)(i, func, params, blas_threads) for i, func, params in calls)
    for item in gen:
        report(*item)
    return f"joblib loky, {n} worker processes"


def _run_dask(calls, report, jobs, scheduler, blas_threads) -> str:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:                                  # pragma: no cover
        raise ValueError("backend 'dask' needs dask[distributed] "
                         "(pip install 'linrnn-theory[dask]')") from None
    from .._blas import limit_blas_threads
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
        where = f"dask LocalCluster, {jobs} worker processes"
    else:
        try:
            client = Client(scheduler, timeout=30)
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"scheduler {scheduler!r} not reachable: {exc}") from None
        where = f"dask scheduler {scheduler}"
    futures = []
    try:
        # the client process itself runs single-threaded BLAS too (in-process workers)
        with limit_blas_threads(blas_threads):
            futures = [client.submit(call_task, i, func, params, blas_threads, pure=False)
                       for i, func, params in calls]
            for fut in as_completed(futures):
                report(*fut.result())
    finally:
        for f in futures:
            f.cancel()
        client.close()
        if cluster is not None:
            cluster.close()
    return where

