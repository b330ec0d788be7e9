r"""The paper's autonomous-cosine experiment (docs/paper.md, section 5): its network and
the training run that ``reproduce cosine`` draws.

The task itself is :class:`linrnn_theory.CosineTask` (no input, ``x_0 = m``, the loss on
the first two periods); the network is ``W0 = g J`` (``J_ij ~ N(0, 1/N)``) with
``|m| = sqrt(N)`` and ``w = m / N`` (:func:`cosine_network`). Only ``W`` is trained, by
plain gradient descent, batch 1 (deterministic task): :func:`train_cosine` runs
:func:`linrnn_theory.train` (dense BPTT, :func:`~.dense.linear_bptt`) and adds the output
traces, eigenvalues and singular values the figure shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .._checks import check_int, check_positive
from ..network import Network
from ..task import CosineTask
from ..trajectory import Status
from ..training import TrainResult, train
from .dense import linear_bptt

__all__ = ["cosine_network", "train_cosine", "CosineRun"]


def cosine_network(N: int, g: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Initial weights ``(W0, m)`` for the cosine task: ``W0 = g J``, ``|m| = sqrt(N)``.

    One ``numpy.random.default_rng(seed)`` draws ``J`` (N x N, entries ``N(0, 1/N)``) and
    then the direction of ``m``, so the same seed gives the same ``J`` for every ``g``.
    The initial state is ``x_0 = m`` and the readout ``w = m / N`` (so ``w^T m = 1``).

    Parameters
    ----------
    N : int
        Network size.
    g : float
        Gain of the random connectivity.
    seed : int
        Seed of the generator.

    Returns
    -------
    W0 : (N, N) ndarray
    m : (N,) ndarray

    Examples
    --------
    >>> W0, m = cosine_network(16, 0.5, seed=0)
    >>> W0.shape, round(float(np.linalg.norm(m)), 12)
    ((16, 16), 4.0)
    """
    N = check_int("N", N, minimum=2)
    g = check_positive("g", g, strict=False)
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    J = rng.standard_normal((N, N)) / math.sqrt(N)
    m = rng.standard_normal(N)
    m *= math.sqrt(N) / np.linalg.norm(m)
    return g * J, m


@dataclass(kw_only=True, repr=False)
class CosineRun(TrainResult):
    """A cosine training run (:func:`train_cosine`): a :class:`~linrnn_theory.TrainResult`
    with one more row, after the last update, and what the cosine figure draws.

    Attributes
    ----------
    tau, loss, readout, grad_norm, singular_values
        As in :class:`~linrnn_theory.TrainResult`, plus the row after the last update
        (for a run that did not diverge): ``epochs + 1`` rows.
    times, target, mask : (T,) ndarray
        The task's time grid, target and loss mask.
    z_initial, z_final : (T,) ndarray
        Output traces at ``W0`` and at the last weights with a finite loss.
    best_epoch : int
        Epoch of the lowest loss.
    eig_initial, eig_final : (N,) complex ndarray
        Eigenvalues of ``W0`` and of the last finite ``W``.
    sv_final : (N,) ndarray
        All singular values of its ``Delta W``.
    epochs_completed : int
        Updates behind the last row.
    """

    schema: ClassVar[str] = "linrnn-theory/cosine-run/1"
    array_fields: ClassVar[tuple[str, ...]] = TrainResult.array_fields + (
        "times", "target", "mask", "z_initial", "z_final", "eig_initial", "eig_final",
        "sv_final")

    times: np.ndarray
    target: np.ndarray
    mask: np.ndarray
    z_initial: np.ndarray
    z_final: np.ndarray
    best_epoch: int
    eig_initial: np.ndarray
    eig_final: np.ndarray
    sv_final: np.ndarray
    epochs_completed: int


def train_cosine(N: int, g: float, seed: int, lr: float, epochs: int,
                 task: CosineTask | None = None, *, record_every: int = 10,
                 n_singular: int = 8, diverge_factor: float = 1e6) -> CosineRun:
    """Train the paper's cosine network (:func:`cosine_network`) with
    :func:`linrnn_theory.train`, and add what the cosine figure shows.

    Parameters
    ----------
    N, g, seed : network size, gain and seed (:func:`cosine_network`).
    lr : float
        Learning rate.
    epochs : int
        Gradient steps.
    task : CosineTask, optional
        Default ``CosineTask()`` (the paper's parameters). The network starts at
        ``x_0 = m`` (``|m| = sqrt(N)``), reads out with ``w = m / N`` and gets no input.
    record_every : int
        Singular values of ``Delta W`` are recorded every this many epochs and at the end.
    n_singular : int
        Number of singular values recorded.
    diverge_factor : float
        The run stops as "diverged" when the loss is non-finite or exceeds
        ``diverge_factor * max(L0, initial loss)``.

    Returns
    -------
    CosineRun
        ``status`` is "ok" or "diverged"; for "diverged" the arrays hold the epochs with a
        finite loss.

    Examples
    --------
    >>> r = train_cosine(N=16, g=0.4, seed=0, lr=0.1, epochs=5,
    ...                  task=CosineTask(dt=0.5, t_max=4.0, period=2.0, n_periods_loss=1))
    >>> r.status, r.loss.shape, r.recorded_singular_values.shape, r.record_epochs.tolist()
    ('ok', (6,), (2, 8), [0, 5])
    """
    task = CosineTask() if task is None else task
    epochs = check_int("epochs", epochs, minimum=1)
    W0, m = cosine_network(N, g, seed)
    net = Network(W0=W0, m=m, w=m / N, g=g, seed=seed)
    opts = {"record_every": record_every, "n_singular": n_singular,
            "diverge_factor": diverge_factor}
    run = train(net, task, lr, epochs, **opts)
    args = (net.m, net.w, task.inputs(), task.targets(), task.mask(), task.dt)
    rows = {"loss": run.loss, "readout": run.readout, "grad_norm": run.grad_norm,
            "singular_values": run.singular_values}
    rec_ep = list(run.record_epochs)
    status, message = run.status, run.message
    W_last = run.W
    if status == Status.OK:            # the row after the last update
        L, grad, z = linear_bptt(W_last, *args, x0=m)
        cap = diverge_factor * max(task.L0, run.loss[0])
        if math.isfinite(L) and L <= cap:
            last = {"loss": L, "readout": task.readout(z), "grad_norm": np.linalg.norm(grad),
                    "singular_values": _top_singular_values(W_last - W0, n_singular)}
            rows = {k: np.concatenate([v, np.asarray(last[k])[None]]) for k, v in rows.items()}
            rec_ep.append(epochs)
        else:
            status = Status.DIVERGED
            message = f"loss became {L:.3g} at epoch {epochs} (limit {cap:.3g})"
    n_finite = len(rows["loss"])
    if status == Status.DIVERGED:      # the last weights with a finite loss
        message += f"; arrays hold epochs 0..{n_finite - 1}"
        W_last = W0 if n_finite <= 1 else train(net, task, lr, n_finite - 1, **opts).W
    _, _, z_final = linear_bptt(W_last, *args, x0=m)
    _, _, z_initial = linear_bptt(W0, *args, x0=m)
    loss = rows["loss"]
    best = n_finite - 1 - int(np.argmin(loss[::-1])) if n_finite else 0
    return CosineRun(
        tau=lr * np.arange(n_finite, dtype=float), **rows,
        record_epochs=np.array(rec_ep, dtype=int), stop_epoch=run.stop_epoch,
        converged_epoch=run.converged_epoch, W=W_last, status=status, message=message,
        params={**run.params, "N": N, "g": float(g), "seed": seed},
        times=task.times(), target=task.targets(), mask=task.mask(), z_initial=z_initial,
        z_final=z_final, best_epoch=best, eig_initial=np.linalg.eigvals(W0),
        eig_final=np.linalg.eigvals(W_last),
        sv_final=np.linalg.svd(W_last - W0, compute_uv=False),
        epochs_completed=max(n_finite - 1, 0))


def _top_singular_values(M: np.ndarray, k: int) -> np.ndarray:
    s = np.linalg.svd(M, compute_uv=False)[:k]
    out = np.zeros(k)
    out[: s.size] = s
    return out
