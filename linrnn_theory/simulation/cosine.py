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

import numpy as np

from .._checks import check_int, check_positive
from ..network import Network
from ..task import CosineTask
from ..training import train
from .dense import linear_bptt

__all__ = ["cosine_network", "train_cosine"]


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


def train_cosine(N: int, g: float, seed: int, lr: float, epochs: int,
                 task: CosineTask | None = None, *, record_every: int = 10,
                 n_singular: int = 8, diverge_factor: float = 1e6) -> dict:
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
        Number of singular values recorded (>= 4).
    diverge_factor : float
        The run stops as "diverged" when the loss is non-finite or exceeds
        ``diverge_factor * max(L0, initial loss)``.

    Returns
    -------
    dict
        ``loss`` (epochs + 1,): loss before each update and after the last one (fewer
        entries if the run diverged); ``grad_norm`` (epochs,); ``record_epochs`` and
        ``singular_values`` (n_rec, n_singular); ``z_initial`` and ``z_final`` (T,)
        output traces (``z_final`` at the last weights with a finite loss) with ``times``,
        ``target`` and ``mask``; ``best_epoch`` (lowest loss); ``eig_initial``,
        ``eig_final`` (N,) eigenvalues of ``W0`` and of the last finite ``W``; ``sv_final``
        (N,) all singular values of its ``Delta W``; ``status`` ("completed" or
        "diverged"), ``message``, ``epochs_completed``, ``L0`` and the parameters.

    Examples
    --------
    >>> r = train_cosine(N=16, g=0.4, seed=0, lr=0.1, epochs=5,
    ...                  task=CosineTask(dt=0.5, t_max=4.0, period=2.0, n_periods_loss=1))
    >>> r["status"], r["loss"].shape, r["singular_values"].shape
    ('completed', (6,), (2, 8))
    """
    task = CosineTask() if task is None else task
    epochs = check_int("epochs", epochs, minimum=1)
    W0, m = cosine_network(N, g, seed)
    net = Network(W0=W0, m=m, w=m / N, g=g, seed=seed)
    opts = {"record_every": record_every, "n_singular": n_singular,
            "diverge_factor": diverge_factor}
    run = train(net, task, lr, epochs, **opts)
    args = (net.m, net.w, task.inputs(), task.targets(), task.mask(), task.dt)
    loss, rec_ep, rec_sv = list(run.loss), list(run.record_epochs), list(run.singular_values)
    status, message = run.status, run.message
    W_last = run.W
    if status == "completed":            # the loss after the last update
        L, _, _ = linear_bptt(W_last, *args, x0=m)
        cap = diverge_factor * max(task.L0, loss[0])
        if math.isfinite(L) and L <= cap:
            loss.append(L)
            rec_ep.append(epochs)
            rec_sv.append(_top_singular_values(W_last - W0, n_singular))
        else:
            status = "diverged"
            message = f"loss became {L:.3g} at epoch {epochs} (limit {cap:.3g})"
    n_finite = len(loss)
    if status == "diverged":             # the last weights with a finite loss
        message += f"; arrays hold epochs 0..{n_finite - 1}"
        W_last = W0 if n_finite <= 1 else train(net, task, lr, n_finite - 1, **opts).W
    _, _, z_final = linear_bptt(W_last, *args, x0=m)
    _, _, z_initial = linear_bptt(W0, *args, x0=m)
    loss_arr = np.array(loss)
    best = n_finite - 1 - int(np.argmin(loss_arr[::-1])) if n_finite else 0
    return {
        "N": N, "g": float(g), "seed": seed, "lr": float(lr), "epochs": epochs,
        "dt": task.dt, "t_max": task.t_max, "period": task.period,
        "amplitude": task.amplitude,
        "n_periods_loss": task.n_periods_loss, "L0": task.L0,
        "status": status, "message": message, "epochs_completed": max(n_finite - 1, 0),
        "loss": loss_arr, "grad_norm": run.grad_norm,
        "record_epochs": np.array(rec_ep, dtype=int),
        "singular_values": np.array(rec_sv).reshape(len(rec_sv), n_singular),
        "times": task.times(), "target": task.targets(), "mask": task.mask(),
        "z_initial": z_initial, "z_final": z_final, "best_epoch": best,
        "eig_initial": np.linalg.eigvals(W0), "eig_final": np.linalg.eigvals(W_last),
        "sv_final": np.linalg.svd(W_last - W0, compute_uv=False),
    }


def _top_singular_values(M: np.ndarray, k: int) -> np.ndarray:
    s = np.linalg.svd(M, compute_uv=False)[:k]
    out = np.zeros(k)
    out[: s.size] = s
    return out
