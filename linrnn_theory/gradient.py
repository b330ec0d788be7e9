"""Exact loss and gradient ``dL/dW`` of a task at given weights."""

from __future__ import annotations

import numpy as np

from ._checks import check_square
from ._checks import check_type as _check_type
from .network import Network
from .simulation.dense import bptt_loss, bptt_loss_grad, fixed_point_loss_grad
from .simulation.engine import normalise_mode
from .task import Task

__all__ = ["gradient", "loss"]


def _check_args(net: Network, task: Task, mode: str) -> str:
    _check_type("net", net, Network)
    _check_type("task", task, Task)
    mode = normalise_mode(mode)
    if mode not in task.modes:
        raise ValueError(f"{type(task).__name__} has no mode {mode!r} (it has: "
                         f"{', '.join(task.modes)})")
    return mode


def _check_W(W, net: Network, mode: str) -> np.ndarray:
    W = check_square("W", W, net.N)
    if mode == "fixed_point":
        re = float(np.max(np.linalg.eigvals(W).real))
        if re >= 1.0:
            raise ValueError(f"W is unstable: an eigenvalue has real part {re:.6g} >= 1, "
                             "so the fixed point is not reached")
    return W


def gradient(W, net: Network, task: Task, mode: str = "bptt") -> tuple[float, np.ndarray]:
    """Loss and exact gradient ``dL/dW``.

    Parameters
    ----------
    W : (N, N) array_like
        Recurrent weights at which to evaluate.
    net : Network
        Supplies ``m`` and ``w`` (and ``N``).
    task : Task
    mode : {"bptt", "fixed_point"}
        ``"bptt"``: Euler dynamics over ``t_max`` and back-propagation through time.
        ``"fixed_point"`` (:class:`~linrnn_theory.FixedPointTask` only):
        ``z = w^T (I - W)^{-1} m`` and its closed-form gradient.

    Returns
    -------
    loss : float
    grad : (N, N) ndarray

    Examples
    --------
    >>> import linrnn_theory as lt
    >>> net = lt.init_network(N=16, g=0.5, seed=0)
    >>> task = lt.FixedPointTask(target=1.0)
    >>> L1, G1 = lt.gradient(net.W0, net, task, mode="bptt")
    >>> L2, G2 = lt.gradient(net.W0, net, task, mode="fixed_point")
    >>> bool(abs(L1 - L2) < 1e-10 and abs(G1 - G2).max() < 1e-10)
    True
    """
    mode = _check_args(net, task, mode)
    W = _check_W(W, net, mode)
    fn = bptt_loss_grad if mode == "bptt" else fixed_point_loss_grad
    L, G, _ = fn(W, net, task)
    return float(L), G


def loss(W, net: Network, task: Task, mode: str = "bptt") -> float:
    """Loss at given weights (see :func:`gradient`).

    In fixed-point mode an unstable ``W`` has no fixed point and the loss is ``inf``.

    Examples
    --------
    >>> import linrnn_theory as lt
    >>> net = lt.init_network(N=16, g=0.0, seed=0)
    >>> L = lt.loss(net.W0, net, lt.FixedPointTask(target=1.0), mode="fixed_point")
    >>> bool(abs(L - 0.5 * (1 - net.overlap()) ** 2) < 1e-14)   # W = 0: z = w^T m
    True
    """
    mode = _check_args(net, task, mode)
    W = check_square("W", W, net.N)
    if mode == "fixed_point":
        if float(np.max(np.linalg.eigvals(W).real)) >= 1.0:
            return float("inf")
        return float(fixed_point_loss_grad(W, net, task)[0])
    return float(bptt_loss(W, net, task))
