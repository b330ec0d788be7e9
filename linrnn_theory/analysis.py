"""Analyses of a trained network: shuffled initial connectivity, rank truncation of ``Delta W``."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ._checks import check_int, check_square
from ._checks import check_type as _check_type
from .gradient import loss as _loss
from .network import Network
from .task import FixedPointTask

__all__ = ["shuffle_loss", "truncation_losses", "delta_singular_values"]


def delta_singular_values(W, net: Network, k: int | None = None) -> np.ndarray:
    """Singular values of ``Delta W = W - W0`` (largest first).

    Arguments in the order of :func:`linrnn_theory.loss`: weights, network, then options.

    Examples
    --------
    >>> import numpy as np, linrnn_theory as lt
    >>> net = lt.init_network(N=8, g=0.5, seed=0)
    >>> lt.delta_singular_values(net.W0 + np.eye(8), net, k=2)
    array([1., 1.])
    """
    W = check_square("W", W, net.N)
    s = np.linalg.svd(W - net.W0, compute_uv=False)
    return s if k is None else s[:k]


def shuffle_loss(W, net: Network, task: FixedPointTask, seed: int = 0, mode: str = "bptt",
                 n_shuffles: int = 1) -> float:
    """Loss after shuffling the entries of ``W0`` while keeping ``Delta W = W - W0``,
    relative to ``L0`` (the loss of a silent network), as
    :func:`linrnn_theory.theory.shuffle_loss` predicts it.

    The shuffled network is ``P(W0) + Delta W`` with ``P`` a uniformly random permutation of
    the N^2 entries (docs/paper.md section 3). With ``n_shuffles > 1`` the mean loss over
    independent permutations is returned. In fixed-point mode an unstable shuffled network
    has loss ``inf``.

    Parameters
    ----------
    W : (N, N) array_like
        Trained weights.
    net : Network
    task : FixedPointTask
    seed : int
        Seed of the permutation generator.
    mode : {"bptt", "fixed_point"}
    n_shuffles : int

    Returns
    -------
    float
        Mean shuffled loss divided by ``task.L0``.

    Examples
    --------
    >>> import linrnn_theory as lt
    >>> net = lt.init_network(N=32, g=0.0, seed=0)
    >>> task = lt.FixedPointTask(target=1.0)
    >>> lt.shuffle_loss(net.W0, net, task) == lt.loss(net.W0, net, task) / task.L0  # W0 = 0
    True
    """
    _check_type("net", net, Network)
    _check_type("task", task, FixedPointTask)
    W = check_square("W", W, net.N)
    seed = check_int("seed", seed, minimum=0)
    n_shuffles = check_int("n_shuffles", n_shuffles, minimum=1)
    rng = np.random.default_rng(seed)
    dW = W - net.W0
    flat = net.W0.ravel()
    out = []
    for _ in range(n_shuffles):
        W0s = rng.permutation(flat).reshape(net.N, net.N)
        out.append(_loss(W0s + dW, net, task, mode))
    return float(np.mean(out)) / task.L0


def truncation_losses(W, net: Network, task: FixedPointTask, ranks: Iterable[int] = range(6),
                      mode: str = "bptt") -> np.ndarray:
    """Loss when ``Delta W`` is replaced by its best rank-R approximation, for each R.

    Parameters
    ----------
    W : (N, N) array_like
    net : Network
    task : FixedPointTask
    ranks : iterable of int
        Ranks R >= 0 (R = 0 gives the loss of ``W0``).
    mode : {"bptt", "fixed_point"}

    Returns
    -------
    (len(ranks),) ndarray

    Examples
    --------
    >>> import numpy as np, linrnn_theory as lt
    >>> net = lt.init_network(N=16, g=0.3, seed=0)
    >>> task = lt.FixedPointTask(target=1.0)
    >>> run = lt.train(net, task, lr=0.05, epochs=30, mode="fixed_point")
    >>> L = lt.truncation_losses(run.W, net, task, ranks=[0, 16], mode="fixed_point")
    >>> bool(np.isclose(L[1], lt.loss(run.W, net, task, mode="fixed_point")))
    True
    """
    _check_type("net", net, Network)
    _check_type("task", task, FixedPointTask)
    W = check_square("W", W, net.N)
    ranks = [check_int("ranks", r, minimum=0) for r in ranks]
    U, s, Vt = np.linalg.svd(W - net.W0)
    out = np.empty(len(ranks))
    for i, r in enumerate(ranks):
        r = min(r, net.N)
        out[i] = _loss(net.W0 + (U[:, :r] * s[:r]) @ Vt[:r], net, task, mode)
    return out
