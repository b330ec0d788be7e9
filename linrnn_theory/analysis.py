"""Analyses of a trained network: shuffled initial connectivity, rank truncation of
``Delta W``, and whether its descent was gradient flow (the step rate)."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ._checks import check_int, check_square
from ._checks import check_type as _check_type
from .gradient import loss as _loss
from .network import Network
from .task import FixedPointTask

__all__ = ["shuffle_loss", "truncation_losses", "delta_singular_values", "step_rate"]


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


def step_rate(readout, target: float, floor: float = 1e-4) -> float:
    r"""Largest relative approach to the target in one step of a learning curve.

    On the fixed-point task (one readout, loss ``(z_hat - z)^2 / 2``) a gradient flow
    approaches its target monotonically, ``dz/dtau = (z_hat - z) |dz/dW|^2``, so over one
    step of ``dtau`` the distance ``d = z_hat - z`` shrinks by the factor ``exp(-r)``, with
    the step rate ``r`` the integral of ``|dz/dW|^2`` over the step. Gradient descent with
    the same step multiplies it by ``1 - r`` instead: it is flow to a relative error of
    about ``r / 2`` in the rate while ``r`` is small, it overshoots (crosses the target,
    where a flow never can) once ``r > 1`` and oscillates once ``r > 2``. This returns
    ``max_e -log(d[e + 1] / d[e])`` over the epochs with ``|d[e]| > floor * |z_hat|``
    (below that is convergence to rounding), ``inf`` where the curve crosses the target.

    Parameters
    ----------
    readout : (n,) array_like
        Readout ``z`` at each epoch of one run (``TrainResult.readout``).
    target : float
        Its target ``z_hat`` (non-zero).
    floor : float
        Distances below ``floor * |target|`` are not looked at.

    Returns
    -------
    float
        The largest step rate, ``0`` if no step is looked at.

    Raises
    ------
    ValueError
        If ``target`` is zero or not finite, or ``readout`` is not a 1-d array.

    Examples
    --------
    >>> import numpy as np, linrnn_theory as lt
    >>> tau = 0.01 * np.arange(200)
    >>> round(lt.step_rate(1.0 - np.exp(-3.0 * tau), 1.0), 6)   # a flow: rate * step
    0.03
    >>> lt.step_rate([0.0, 0.6, 1.1, 0.95, 1.01], 1.0)   # crosses the target
    inf
    >>> net = lt.init_network(N=64, g=0.6, seed=0)
    >>> run = lt.train(net, lt.FixedPointTask(target=2.0), lr=0.01, epochs=200,
    ...                mode="fixed_point")
    >>> lt.step_rate(run.readout, 2.0) > 0.1   # late in learning: not flow at this lr
    True
    """
    z = np.asarray(readout, dtype=float)
    if z.ndim != 1:
        raise ValueError(f"readout must be a 1-d array, got shape {z.shape}")
    if not np.isfinite(target) or target == 0:
        raise ValueError(f"target must be finite and non-zero, got {target}")
    d = target - z
    looked = np.abs(d[:-1]) > floor * abs(target)
    if not looked.any():
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        q = d[1:][looked] / d[:-1][looked]
    if np.any(q <= 0.0):
        return float("inf")
    return float(np.max(-np.log(q)))
