"""One training run of a tanh RNN on a neuroscience task, plus the paper's sweep presets.

:func:`run_nonlinear` trains ``W_in``, ``W`` and ``W_out`` with Adam on fresh random
batches (one batch = one parameter update = one "epoch", as in the paper's code) and
evaluates a fixed test batch after every update. It returns a :class:`NonlinearRun` of
numpy arrays and scalars (see :func:`run_nonlinear` for the fields), with a JSON round
trip and a plain-dictionary form for caches (``as_record``).

Presets (docs/paper.md section 3): :data:`FULL` is the paper's setting, :data:`QUICK` a small
one for smoke tests and the documentation (see ``docs/nonlinear.md`` for its measured run
time and results).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable

import numpy as np

from .._checks import check_int, check_positive, check_range
from ..trajectory import Result, Status
from .adam import Adam
from .analysis import (eigenvalues, learning_epoch, shuffle_losses, singular_values,
                       truncation_losses, variance_explained, zero_output_loss)
from .rnn import BPTTWorkspace, init_params, limit_blas_threads, loss, loss_and_grad
from .tasks import TASK_NAMES, TEST_SEED, make_task

__all__ = ["run_nonlinear", "NonlinearRun", "SweepPreset", "QUICK", "FULL", "PAPER_EPOCHS",
           "run_preset"]

#: Training epochs of the paper per task (docs/paper.md section 3).
PAPER_EPOCHS = {"flipflop": 1000, "mante": 2000, "romo": 6000}
#: Largest g of the paper's sweep per task (g from 0 in steps of 0.3).
PAPER_G_MAX = {"flipflop": 2.1, "mante": 2.7, "romo": 3.0}


def _eig_pairs(M: np.ndarray) -> np.ndarray:
    ev = eigenvalues(M)
    return np.stack([ev.real, ev.imag], axis=1)


@dataclass(kw_only=True, repr=False)
class NonlinearRun(Result):
    """One training run of a tanh RNN (:func:`run_nonlinear`); fields as listed there.

    :meth:`~linrnn_theory.trajectory.Result.as_record` gives the plain dictionary that the
    sweeps cache; :meth:`~linrnn_theory.trajectory.Result.save` and ``load`` the JSON round
    trip.
    """

    schema: ClassVar[str] = "linrnn-theory/nonlinear-run/1"
    array_fields: ClassVar[tuple[str, ...]] = (
        "train_loss", "test_loss", "sv_delta", "delta_fro", "truncation_loss",
        "variance_explained", "shuffle_losses", "eig_W0", "eig_W", "eig_dW", "W0", "W_in",
        "W", "W_out")
    int_fields: ClassVar[tuple[str, ...]] = ("test_epochs", "record_epochs",
                                             "truncation_ranks")
    summary_fields: ClassVar[tuple[str, ...]] = ("task", "g", "seed", "N", "trained_loss")

    task: str
    g: float
    seed: int
    N: int
    epochs: int
    batch: int
    lr: float
    dt: float
    dtype: str
    record_every: int
    n_test: int
    test_seed: int
    n_shuffles: int
    status: Status
    message: str
    epochs_completed: int
    train_loss: np.ndarray
    test_epochs: np.ndarray
    test_loss: np.ndarray
    test_every: int
    n_threads: int
    record_epochs: np.ndarray
    sv_delta: np.ndarray
    delta_fro: np.ndarray
    initial_loss: float
    trained_loss: float
    zero_output_loss: float
    truncation_ranks: np.ndarray
    truncation_loss: np.ndarray
    variance_explained: np.ndarray
    shuffle_losses: np.ndarray
    shuffle_loss: float
    eig_W0: np.ndarray
    eig_W: np.ndarray
    eig_dW: np.ndarray
    learning_threshold_rel: float
    learning_threshold: float
    learning_epoch: int | None
    learning_time: float | None
    wall_time_s: float
    ms_per_epoch: float
    W0: np.ndarray | None = None
    W_in: np.ndarray | None = None
    W: np.ndarray | None = None
    W_out: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.status = Status(self.status)


def run_nonlinear(task: str, g: float, seed: int, N: int = 256, epochs: int | None = None,
                  batch: int = 32, lr: float | None = None, record_every: int = 10,
                  dtype=np.float64, *, dt: float = 0.5, n_test: int = 64,
                  test_seed: int = TEST_SEED, n_shuffles: int = 5, n_sv: int = 25,
                  max_rank: int = 25, learning_threshold: float = 0.1, test_every: int = 1,
                  n_threads: int = 1, blas_threads: int | None = 1,
                  return_weights: bool = False) -> NonlinearRun:
    """Train one tanh RNN on a task and analyse ``Delta W = W - W0``.

    Parameters
    ----------
    task : {"flipflop", "mante", "romo"}
    g : float
        Strength of the initial random connectivity ``W0 = g J``.
    seed : int
        Seed of the weights (``init_params``: same ``J`` for every ``g``), of the training
        batches (an independent stream) and of the ``W0`` shuffles.
    N : int
        Number of neurons (paper: 256).
    epochs : int, optional
        Parameter updates (default: the paper's 1000 / 2000 / 6000).
    batch : int
        Trials per update (paper: 32).
    lr : float, optional
        Adam learning rate (default ``0.05 / N``, the paper's).
    record_every : int
        Singular values of ``Delta W`` are stored every ``record_every`` epochs (and at the
        first and last one).
    dtype : {numpy.float64, numpy.float32}
        Precision of the simulation (the analyses run in float64).
    dt : float
        Euler step.
    n_test, test_seed : int
        Size and seed of the fixed test batch (the same for every run by default).
    n_shuffles : int
        Independent shuffles of ``W0`` averaged in ``shuffle_loss``.
    n_sv : int
        Number of top singular values stored per recorded epoch.
    max_rank : int
        Truncation ranks ``R = 0 ... min(max_rank, N)``.
    learning_threshold : float
        Learning time = first epoch with test loss below
        ``learning_threshold * zero_output_loss(test batch)`` (loss of the network with
        output 0, which is also the initial loss up to O(1/N)).
    test_every : int
        Evaluate the test batch every ``test_every`` epochs (and after the last one). The
        evaluation costs about 2/3 of a training epoch with ``n_test = 64``; the learning
        time is resolved to ``test_every`` epochs.
    n_threads : int
        Batch-parallel threads for the simulation (see
        :class:`~linrnn_theory.nonlinear.rnn.BPTTWorkspace`); 1 for sweeps that run one
        process per core.
    blas_threads : int or None
        OpenBLAS threads during the run (``None``: leave as is). 1 is fastest for these
        small GEMMs on a busy 2-core machine and lets sweeps run one process per core.
    return_weights : bool
        Also return ``W0`` and the trained ``W_in``, ``W``, ``W_out``.

    Returns
    -------
    NonlinearRun
        ``task, g, seed, N, epochs, batch, lr, dt, dtype, record_every, n_test, test_seed``
        (parameters); ``status`` ("ok" or "diverged"), ``message``,
        ``epochs_completed``; ``train_loss`` (epochs_completed,) -- loss of the batch each
        update was computed on; ``test_epochs`` and ``test_loss`` -- fixed test batch after
        ``test_epochs[i]`` updates (every epoch ``0 ... epochs_completed`` by default);
        ``record_epochs`` (n_rec,), ``sv_delta`` (n_rec, n_sv) and
        ``delta_fro`` (n_rec,) -- singular values and Frobenius norm of ``Delta W``;
        ``initial_loss``, ``trained_loss``, ``zero_output_loss`` (test batch);
        ``truncation_ranks``, ``truncation_loss`` and ``variance_explained`` (R = 0 ... );
        ``shuffle_losses`` (n_shuffles,), ``shuffle_loss`` (their mean); ``eig_W0``,
        ``eig_W``, ``eig_dW`` -- (N, 2) arrays of (real, imag) parts sorted by decreasing
        real part; ``learning_threshold`` (absolute), ``learning_epoch`` and
        ``learning_time`` (= lr * epoch; ``None`` if the threshold was never reached);
        ``wall_time_s``, ``ms_per_epoch``.

    Notes
    -----
    Divergence: if a training loss or gradient is not finite, or the test loss after an
    update is not finite, that update is skipped (or undone) and training stops;
    ``status`` is ``"diverged"``, ``message`` says when, the loss arrays hold only the
    completed epochs (all finite) and the analyses use the last weights with a finite loss.

    Examples
    --------
    >>> r = run_nonlinear("romo", g=0.9, seed=0, N=16, epochs=20, batch=8, n_test=8,
    ...                   record_every=10, lr=0.01)
    >>> r.status, r.test_loss.shape, r.sv_delta.shape, r.truncation_loss.shape
    ('ok', (21,), (3, 16), (17,))
    >>> bool(r.test_loss[-1] < r.test_loss[0])
    True
    """
    if task not in TASK_NAMES:
        raise ValueError(f"task must be one of {TASK_NAMES}, got {task!r}")
    g = check_range("g", g, 0.0, np.inf)
    seed = check_int("seed", seed, minimum=0)
    N = check_int("N", N, minimum=2)
    epochs = PAPER_EPOCHS[task] if epochs is None else check_int("epochs", epochs, minimum=1)
    batch = check_int("batch", batch, minimum=1)
    lr = 0.05 / N if lr is None else check_positive("lr", lr)
    record_every = check_int("record_every", record_every, minimum=1)
    n_test = check_int("n_test", n_test, minimum=1)
    n_shuffles = check_int("n_shuffles", n_shuffles, minimum=1)
    n_sv = min(check_int("n_sv", n_sv, minimum=1), N)
    max_rank = min(check_int("max_rank", max_rank, minimum=0), N)
    learning_threshold = check_positive("learning_threshold", learning_threshold)
    test_every = check_int("test_every", test_every, minimum=1)
    n_threads = check_int("n_threads", n_threads, minimum=1)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be numpy.float32 or numpy.float64, got {dtype}")

    tk = make_task(task, dt=dt)
    params = init_params(N, tk.n_in, tk.n_out, g, seed, dtype)
    W0 = params.W.copy()
    data_rng = np.random.default_rng([seed, 1])   # independent of the weight stream
    test = tk.test_batch(seed=test_seed, batch=n_test)
    u_t, y_t, m_t = (np.asarray(a, dtype) for a in test[:3])
    opt = Adam(params.arrays(), lr=lr)
    ws_train = BPTTWorkspace.like(params, tk.n_steps, batch, n_threads)
    ws_test = BPTTWorkspace.like(params, tk.n_steps, n_test, n_threads)

    train_loss = np.empty(epochs)
    test_epochs, test_loss = [], []
    rec_epochs, rec_sv, rec_fro = [], [], []
    status, message = Status.OK, f"trained for {epochs} epochs"

    def record(ep: int) -> None:
        s = singular_values(params.W - W0)
        rec_epochs.append(ep)
        rec_sv.append(s[:n_sv])
        rec_fro.append(float(np.sqrt(np.sum(s ** 2))))

    def evaluate() -> float:
        return loss(params, u_t, y_t, m_t, dt, workspace=ws_test)

    t0 = time.perf_counter()
    done = 0
    with limit_blas_threads(blas_threads):
        test_epochs.append(0)
        test_loss.append(evaluate())
        record(0)
        last_good = [a.copy() for a in params.arrays()]   # weights before the update
        for ep in range(epochs):
            b = tk.sample(batch, data_rng)
            L, grads = loss_and_grad(params, b.u, b.target, b.mask, dt, workspace=ws_train)
            if not (np.isfinite(L) and grads.all_finite()):
                status = Status.DIVERGED
                message = (f"diverged at epoch {ep + 1}: non-finite training loss or "
                           f"gradient; update skipped, weights after epoch {ep} kept")
                break
            for keep, a in zip(last_good, params.arrays()):
                np.copyto(keep, a)
            opt.step(params.arrays(), grads.arrays())
            if (ep + 1) % test_every == 0 or ep + 1 == epochs:
                Lt = evaluate()
                if not np.isfinite(Lt):
                    for keep, a in zip(last_good, params.arrays()):
                        np.copyto(a, keep)
                    status = Status.DIVERGED
                    message = (f"diverged at epoch {ep + 1}: non-finite test loss after the "
                               f"update; update undone, weights after epoch {ep} kept")
                    break
                test_epochs.append(ep + 1)
                test_loss.append(Lt)
            train_loss[ep] = L
            done = ep + 1
            if done % record_every == 0 or done == epochs:
                record(done)
        elapsed = time.perf_counter() - t0
        if test_epochs[-1] != done:
            test_epochs.append(done)
            test_loss.append(evaluate())
        if rec_epochs[-1] != done:
            record(done)
        train_loss = train_loss[:done]
        test_epochs = np.array(test_epochs)
        test_loss = np.array(test_loss)

        ranks = range(max_rank + 1)
        trunc = truncation_losses(params, W0, (u_t, y_t, m_t), dt, ranks=ranks)
        var = variance_explained(params.W - W0, ranks=ranks)
        shuf = shuffle_losses(params, W0, (u_t, y_t, m_t), dt, n_shuffles=n_shuffles, seed=seed)

    L0 = zero_output_loss(test)
    thr = learning_threshold * L0
    idx = learning_epoch(test_loss, thr)
    l_ep = None if idx is None else int(test_epochs[idx])
    out: dict = {
        "task": task, "g": g, "seed": seed, "N": N, "epochs": epochs, "batch": batch,
        "lr": lr, "dt": float(dt), "dtype": dtype.name, "record_every": record_every,
        "n_test": n_test, "test_seed": test_seed, "n_shuffles": n_shuffles,
        "status": status, "message": message, "epochs_completed": done,
        "train_loss": train_loss, "test_epochs": test_epochs, "test_loss": test_loss,
        "test_every": test_every, "n_threads": n_threads,
        "record_epochs": np.array(rec_epochs), "sv_delta": np.array(rec_sv),
        "delta_fro": np.array(rec_fro),
        "initial_loss": float(test_loss[0]), "trained_loss": float(test_loss[-1]),
        "zero_output_loss": L0,
        "truncation_ranks": np.arange(max_rank + 1), "truncation_loss": trunc,
        "variance_explained": var,
        "shuffle_losses": shuf, "shuffle_loss": float(np.mean(shuf)),
        "eig_W0": _eig_pairs(W0), "eig_W": _eig_pairs(params.W),
        "eig_dW": _eig_pairs(params.W - W0),
        "learning_threshold_rel": learning_threshold, "learning_threshold": thr,
        "learning_epoch": l_ep, "learning_time": None if l_ep is None else lr * l_ep,
        "wall_time_s": elapsed, "ms_per_epoch": 1e3 * elapsed / max(done, 1),
    }
    if return_weights:
        out.update(W0=W0, W_in=params.W_in.copy(), W=params.W.copy(),
                   W_out=params.W_out.copy())
    return NonlinearRun(**out)


def _g_grid(g_max: float, step: float = 0.3) -> tuple[float, ...]:
    n = int(round(g_max / step))
    return tuple(round(step * k, 10) for k in range(n + 1))


@dataclass(frozen=True, eq=False)
class SweepPreset:
    """A set of :func:`run_nonlinear` runs: tasks x g values x seeds.

    Parameters
    ----------
    name : str
    N : int
    g_values : dict
        Task name -> tuple of g.
    epochs : dict
        Task name -> number of epochs.
    seeds : tuple of int
    batch : int
    lr : float or None
        ``None``: the paper's ``0.05 / N``.
    extra : dict
        Further keyword arguments of :func:`run_nonlinear` (e.g. ``n_test``).

    Examples
    --------
    >>> len(FULL.runs("flipflop")), FULL.runs("romo")[-1]["g"]
    (40, 3.0)
    """

    name: str
    N: int
    g_values: dict
    epochs: dict
    seeds: tuple
    batch: int = 32
    lr: float | None = None
    extra: dict = field(default_factory=dict)

    def runs(self, tasks: str | Iterable[str] | None = None) -> list[dict]:
        """Keyword arguments of every run, for the given task(s) (default: every task of
        the preset, in the order of ``g_values``).

        Examples
        --------
        >>> QUICK.runs("mante")[0]["epochs"], len(QUICK.runs())
        (600, 9)
        """
        if tasks is None:
            tasks = tuple(self.g_values)
        elif isinstance(tasks, str):
            tasks = (tasks,)
        out = []
        for t in tasks:
            if t not in self.g_values:
                raise ValueError(f"tasks must be among {tuple(self.g_values)}, got {t!r}")
            for g in self.g_values[t]:
                for s in self.seeds:
                    out.append(dict(task=t, g=g, seed=s, N=self.N, epochs=self.epochs[t],
                                    batch=self.batch, lr=self.lr, **self.extra))
        return out


#: The paper's sweep (docs/paper.md section 3): N = 256, g = 0, 0.3, ... up to 2.1 / 2.7 / 3.0,
#: 1000 / 2000 / 6000 epochs, 5 seeds, batch 32, lr = 0.05 / N.
FULL = SweepPreset(
    name="full", N=256,
    g_values={t: _g_grid(PAPER_G_MAX[t]) for t in TASK_NAMES},
    epochs=dict(PAPER_EPOCHS), seeds=(0, 1, 2, 3, 4),
)

#: A small sweep that trains all three tasks in well under 2 minutes on 2 cores (measured
#: numbers in docs/nonlinear.md): N = 64, g = 0, 0.9, 1.8, one seed, 500 / 600 / 800
#: epochs. Its learning rate 0.035 / N is below the paper's 0.05 / N: at N = 64 the
#: paper's rate gave loss spikes, after one of which a Mante run stayed stuck.
QUICK = SweepPreset(
    name="quick", N=64,
    g_values={t: (0.0, 0.9, 1.8) for t in TASK_NAMES},
    epochs={"flipflop": 500, "mante": 600, "romo": 800}, seeds=(0,),
    lr=0.035 / 64, extra={"n_test": 64},
)


def run_preset(preset: SweepPreset, cache_dir: str | os.PathLike,
               tasks: str | Iterable[str] | None = None, *, jobs: int | None = 1,
               backend: str = "loky", fresh: bool = False, progress: bool = False,
               **overrides: Any) -> list[dict]:
    """Every run of a preset through the cached sweep of :mod:`linrnn_theory.sweep`; one
    record (:meth:`NonlinearRun.as_record`) per run, in the order of
    :meth:`SweepPreset.runs`.

    Each run is a task of the ``nonlinear`` figure of ``reproduce``, keyed on its
    parameters and a digest of the package source
    (:func:`linrnn_theory.reproduce.code_scope`): finished runs are read back from
    ``cache_dir``, the others computed (in ``jobs`` processes) and stored as each
    finishes. ``reproduce nonlinear --out DIR`` caches the same tasks in ``DIR/cache``.

    Parameters
    ----------
    preset : SweepPreset
    cache_dir : path
        Folder of the cache files (created if missing).
    tasks : str or iterable of str, optional
        Task names (default: all of the preset's).
    jobs, backend, fresh, progress
        See :func:`linrnn_theory.sweep.run_tasks`.
    **overrides
        JSON-able keyword arguments of :func:`run_nonlinear` that replace those of every
        run (e.g. ``dtype="float32"``).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> tiny = SweepPreset("tiny", N=8, g_values={"romo": (0.0,)}, epochs={"romo": 2},
    ...                    seeds=(0,), batch=4, extra={"n_test": 4})
    >>> cache = tempfile.mkdtemp()
    >>> [r["status"] for r in run_preset(tiny, cache)]
    ['ok']
    >>> len(list(pathlib.Path(cache).glob("*.npz")))          # one cached run
    1
    """
    from ..reproduce.figure import code_scope, get_figure, sweep_task
    from ..sweep import run_tasks
    fig = get_figure("nonlinear")
    version = code_scope(fig.name, "sim")
    calls = [sweep_task(fig.task("sim", **{**kw, **overrides}), version)
             for kw in preset.runs(tasks)]
    outcome = run_tasks(calls, cache_dir, backend=backend, jobs=jobs, fresh=fresh,
                        progress=progress, desc=f"{preset.name} runs")
    return [{k: v for k, v in r.items() if k not in ("figure", "kind")}
            for r in outcome.results]
