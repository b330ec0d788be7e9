r"""Autonomous cosine task (the paper's supplementary material, section on the autonomous
cosine) and exact dense BPTT for a linear RNN with a general time-varying input, target,
mask and initial state.

Task definition (the paper's set-up)
------------------------------------
Euler scheme of the linear RNN (``phi`` = identity), no input at any time::

    x_0     = m,                 |m| = sqrt(N)
    x_{i+1} = (1 - dt) x_i + dt W x_i,   i = 0 .. T-1,   T = round(t_max / dt)
    z_i     = w^T x_{i+1},       w = m / N,              i = 0 .. T-1

* The output ``z_i`` is read after the ``i``-th Euler step and compared with
  ``zhat_i = amplitude * cos(2 pi i dt / period)`` (the time convention of the paper's code).
* **Loss**: ``L = 1/2 * mean over i = 0 .. K-1 of (z_i - zhat_i)^2`` on the **first**
  ``n_periods_loss`` periods (default ``K = 100``: ``i dt < 10``); the network then runs on,
  unscored, to ``t_max``. A silent network has ``L0 = 1/2 * mean(zhat^2) = amplitude^2 / 4``.
* Only ``W`` is trained, plain gradient descent, batch 1 (deterministic task);
  ``W0 = g J``, ``J_ij ~ N(0, 1/N)``.

The gradient (:func:`linear_bptt`) is the adjoint recursion
``lambda_T = w eps_T``, ``lambda_k = A^T lambda_{k+1} + w eps_k`` with ``A = (1 - dt) I + dt W``
and ``eps_k = mask_k (z_k - zhat_k) / sum(mask)``, and ``dL/dW = dt sum_k lambda_{k+1} x_k^T``
(the initial state is fixed, so it does not add a term). It is exact (checked against
central finite differences in ``tests/test_reproduce.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._checks import check_finite_scalar, check_int, check_positive, check_range

__all__ = ["CosineTask", "cosine_network", "linear_bptt", "train_cosine"]


@dataclass(frozen=True)
class CosineTask:
    """The autonomous cosine task (see the module docstring for the exact definition).

    Parameters
    ----------
    dt : float
        Euler step, ``0 < dt < 2`` (paper: 0.1).
    t_max : float
        Trial duration (paper: 20, 200 steps).
    period : float
        Period of the target cosine (paper: 5).
    amplitude : float
        Amplitude of the target (paper: 1).
    n_periods_loss : float
        The loss counts the first ``n_periods_loss`` periods (paper: 2).

    Examples
    --------
    >>> task = CosineTask()
    >>> task.n_steps, int(task.mask().sum()), round(task.L0, 12)
    (200, 100, 0.25)
    """

    dt: float = 0.1
    t_max: float = 20.0
    period: float = 5.0
    amplitude: float = 1.0
    n_periods_loss: float = 2.0

    def __post_init__(self) -> None:
        dt = check_range("dt", self.dt, 0.0, 2.0, lo_open=True, hi_open=True)
        t_max = check_positive("t_max", self.t_max)
        period = check_positive("period", self.period)
        check_finite_scalar("amplitude", self.amplitude)
        npl = check_positive("n_periods_loss", self.n_periods_loss)
        n = t_max / dt
        if abs(n - round(n)) > 1e-9 * max(1.0, n) or round(n) < 2:
            raise ValueError(f"t_max must be a multiple of dt = {dt} (>= 2 steps), got {t_max}")
        if npl * period > t_max:
            raise ValueError(f"n_periods_loss * period = {npl * period} exceeds t_max = {t_max}")

    @property
    def n_steps(self) -> int:
        """Number of Euler steps ``T`` (outputs ``z_0 .. z_{T-1}``)."""
        return int(round(self.t_max / self.dt))

    def times(self) -> np.ndarray:
        """Target times ``i dt`` of the outputs ``z_0 .. z_{T-1}``.

        Examples
        --------
        >>> CosineTask(dt=0.5, t_max=2.0, period=1.0).times()
        array([0. , 0.5, 1. , 1.5])
        """
        return self.dt * np.arange(self.n_steps)

    def inputs(self) -> np.ndarray:
        """Inputs ``u_0 .. u_{T-1}``: zero (the task has no input).

        Examples
        --------
        >>> CosineTask(dt=0.5, t_max=2.0, period=1.0).inputs()
        array([0., 0., 0., 0.])
        """
        return np.zeros(self.n_steps)

    def targets(self) -> np.ndarray:
        """Targets ``amplitude cos(2 pi i dt / period)`` for ``i = 0 .. T-1``."""
        return self.amplitude * np.cos(2.0 * np.pi * self.times() / self.period)

    def mask(self) -> np.ndarray:
        """1.0 on the first ``n_periods_loss`` periods (``i dt < n period``), else 0.

        Examples
        --------
        >>> CosineTask(dt=0.5, t_max=4.0, period=1.0).mask()
        array([1., 1., 1., 1., 0., 0., 0., 0.])
        """
        end = self.n_periods_loss * self.period
        return (self.times() < end - 1e-9 * self.dt).astype(float)

    @property
    def L0(self) -> float:
        """Loss of a silent network, ``1/2 mean_mask(zhat^2)``."""
        m = self.mask()
        return 0.5 * float(np.sum(m * self.targets() ** 2) / np.sum(m))


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


def linear_bptt(W: np.ndarray, m: np.ndarray, w: np.ndarray, u: np.ndarray,
                target: np.ndarray, mask: np.ndarray, dt: float,
                x0: np.ndarray | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """Loss, exact gradient ``dL/dW`` and output trace of a linear RNN (dense BPTT).

    Parameters
    ----------
    W : (N, N) ndarray
    m, w : (N,) ndarray
        Input and output vectors.
    u : (T,) ndarray
        Inputs ``u_0 .. u_{T-1}``.
    target, mask : (T,) ndarray
        Targets and non-negative weights of the outputs ``z_1 .. z_T``
        (``sum(mask) > 0``).
    dt : float
    x0 : (N,) ndarray, optional
        Initial state (default zero). The cosine task uses ``x0 = m`` and ``u = 0``.

    Returns
    -------
    loss : float
        ``1/2 sum_k mask_k (z_k - zhat_k)^2 / sum_k mask_k`` (inf or NaN, without a
        warning, if the dynamics overflow).
    grad : (N, N) ndarray
    z : (T,) ndarray
        Outputs ``z_k = w^T x_{k+1}``, ``k = 0 .. T-1`` (the state after each step).

    Examples
    --------
    >>> task = CosineTask(dt=0.5, t_max=4.0, period=2.0)
    >>> W0, m = cosine_network(8, 0.0, seed=0)
    >>> L, G, z = linear_bptt(W0, m, m / 8, task.inputs(), task.targets(), task.mask(),
    ...                       task.dt, x0=m)
    >>> z.shape, G.shape, round(float(z[0]), 12)         # W0 = 0: z_0 = (1 - dt) w^T m
    ((8,), (8, 8), 0.5)
    """
    T = u.shape[0]
    N = W.shape[0]
    A = (1.0 - dt) * np.eye(N) + dt * W
    X = np.zeros((T + 1, N))
    if x0 is not None:
        X[0] = x0
    # an unstable W overflows to inf/NaN; callers detect that from the returned loss
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(T):
            X[k + 1] = A @ X[k] + (dt * u[k]) * m
        z = X[1:] @ w
        err = z - target
        M = float(np.sum(mask))
        loss = 0.5 * float(np.sum(mask * err * err)) / M
        eps = mask * err / M                      # eps[k - 1] belongs to z_k
        lam = np.zeros((T + 1, N))
        lam[T] = eps[T - 1] * w
        At = A.T
        for k in range(T - 1, 0, -1):
            lam[k] = At @ lam[k + 1] + eps[k - 1] * w
        grad = dt * (lam[1:].T @ X[:-1])
    return loss, grad, z


def train_cosine(N: int, g: float, seed: int, lr: float, epochs: int,
                 task: CosineTask | None = None, *, record_every: int = 10,
                 n_singular: int = 8, diverge_factor: float = 1e6) -> dict:
    """Train ``W`` on the cosine task by plain gradient descent.

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
    dict
        ``loss`` (epochs + 1,): loss before each update and after the last one (fewer
        entries if the run diverged);
        ``grad_norm`` (n_done,); ``record_epochs`` and ``singular_values``
        (n_rec, n_singular); ``z_initial`` and ``z_final`` (T,) output traces (``z_final``
        at the last epoch with a finite loss), ``z_best`` at ``best_epoch`` (lowest loss)
        with ``times``, ``target`` and ``mask``; ``eig_initial``, ``eig_final`` (N,) eigenvalues
        of ``W0`` and of the last finite ``W``; ``sv_final`` (N,) all singular values of
        its ``Delta W``; ``status`` ("completed" or "diverged"),
        ``message``, ``epochs_completed``, ``L0`` and the parameters.

    Examples
    --------
    >>> r = train_cosine(N=16, g=0.4, seed=0, lr=0.1, epochs=5,
    ...                  task=CosineTask(dt=0.5, t_max=4.0, period=2.0, n_periods_loss=1))
    >>> r["status"], r["loss"].shape, r["singular_values"].shape
    ('completed', (6,), (2, 8))
    """
    task = CosineTask() if task is None else task
    lr = check_positive("lr", lr)
    epochs = check_int("epochs", epochs, minimum=1)
    record_every = check_int("record_every", record_every, minimum=1)
    n_singular = check_int("n_singular", n_singular, minimum=1)
    W0, m = cosine_network(N, g, seed)
    w = m / N
    u, zhat, mask = task.inputs(), task.targets(), task.mask()
    W = W0.copy()
    losses, gnorms, rec_ep, rec_sv = [], [], [], []
    status, message = "completed", f"ran all {epochs} epochs"
    cap = None
    z_init = None

    def record(ep: int) -> None:
        s = np.linalg.svd(W - W0, compute_uv=False)[:n_singular]
        out = np.zeros(n_singular)
        out[: s.size] = s
        rec_ep.append(ep)
        rec_sv.append(out)

    done = 0
    z_last = None
    W_last = W0.copy()
    best = (math.inf, 0, None)
    for ep in range(epochs + 1):
        L, G, z = linear_bptt(W, m, w, u, zhat, mask, task.dt, x0=m)
        if z_init is None:
            z_init = z.copy()
            cap = diverge_factor * max(task.L0, L)
        if not (math.isfinite(L) and L <= cap and np.all(np.isfinite(G))):
            status = "diverged"
            message = (f"loss {L:.3g} at epoch {ep} is non-finite or above {cap:.3g}; "
                       f"arrays hold epochs 0..{ep - 1}")
            break
        losses.append(L)
        z_last = z
        W_last = W.copy()
        if L <= best[0]:
            best = (L, ep, z)
        if ep % record_every == 0 or ep == epochs:
            record(ep)
        if ep == epochs:
            break
        gnorms.append(float(np.linalg.norm(G)))
        W -= lr * G
        done = ep + 1
    return {
        "N": N, "g": float(g), "seed": seed, "lr": lr, "epochs": epochs,
        "dt": task.dt, "t_max": task.t_max, "period": task.period,
        "amplitude": task.amplitude,
        "n_periods_loss": task.n_periods_loss, "L0": task.L0,
        "status": status, "message": message, "epochs_completed": done,
        "loss": np.array(losses), "grad_norm": np.array(gnorms),
        "record_epochs": np.array(rec_ep, dtype=int),
        "singular_values": np.array(rec_sv).reshape(len(rec_sv), n_singular),
        "times": task.times(), "target": zhat, "mask": mask,
        "z_initial": z_init, "z_final": z_last, "z_best": best[2], "best_epoch": best[1],
        "eig_initial": np.linalg.eigvals(W0), "eig_final": np.linalg.eigvals(W_last),
        "sv_final": np.linalg.svd(W_last - W0, compute_uv=False),
    }
