"""Cached, resumable, parallel sweeps of pure task functions.

* :mod:`.cache` -- cache keys (task parameters + code version), atomic store, safe load.
* :mod:`.backends` -- serial, joblib (loky) and Dask distributed execution with progress.
* :mod:`.runner` -- :func:`run_tasks`: load cached, compute missing, return in order.

Examples
--------
>>> import tempfile
>>> from linrnn_theory.sweep import Task, run_tasks
>>> tasks = [Task("linrnn_theory.sweep.runner:_square", {"x": 3.0}, version="demo")]
>>> out = run_tasks(tasks, tempfile.mkdtemp(), jobs=1, progress=False)
>>> out.results[0]["y"], out.computed, out.reused
(9.0, 1, 0)
"""

from .backends import BACKENDS, default_jobs, execute
from .cache import code_version, load_result, source_hash, store_result, task_key
from .runner import SweepOutcome, Task, TaskError, run_tasks

__all__ = ["Task", "SweepOutcome", "TaskError", "run_tasks", "execute", "BACKENDS",
           "default_jobs", "code_version", "source_hash", "task_key", "store_result",
           "load_result"]
