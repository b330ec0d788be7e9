"""Hypothesis strategies for networks, tasks and training parameters (property-based tests).

Every random object is drawn from an explicit ``numpy.random.default_rng(seed)`` whose
``seed`` hypothesis draws, so a failing example printed by hypothesis (or replayed with
``@reproduce_failure``) rebuilds the same arrays bit for bit.

Strategies
----------
``seeds()``                   integers in ``[0, 2^32 - 1]``
``sizes(lo, hi)``             network sizes N
``gains(lo, hi)``             ``g`` in ``[0, 0.9]`` by default
``targets(lo, hi)``           ``z_hat`` of either sign, ``lo <= |z_hat| <= hi``
``learning_rates(lo, hi)``    log-uniform learning rates
``modes()``, ``engines()``    training modes (``fixed_point``, ``bptt``) and engines
                              (``fast``, ``dense``) of :func:`linrnn_theory.train`
``orthogonal_matrices(N)``    Haar-random orthogonal ``Q`` (for the rotation symmetry)
``networks(...)``             :class:`linrnn_theory.Network` built from drawn
                              ``(W0, m, w)``: the paper's ensemble or user weights with
                              exactly orthogonal, strongly overlapping or parallel ``m, w``,
                              arbitrary norms, and several kinds of ``W0``.

The kinds of ``(m, w)`` (``pair=``):

* ``"paper"``       -- :func:`linrnn_theory.init_network`: independent directions,
  ``|m| = sqrt(N)``, ``|w| = 1/sqrt(N)`` (overlap ``w^T m = O(N^-1/2)``);
* ``"orthogonal"``  -- ``m`` and ``w`` supported on complementary random index sets, so
  ``w^T m = 0`` *exactly* in floating point (every product in the sum is ``0 * x``);
* ``"overlap"``     -- ``w`` at a drawn cosine ``rho`` with ``m``, ``0.5 <= |rho| <= 0.95``
  (strongly overlapping, either sign);
* ``"parallel"``    -- ``w = +-|w| m/|m|`` (``rho = +-1``, the degenerate edge).

For every kind but ``"paper"`` the norms are drawn too: ``|m| = sqrt(N) 2^s1``,
``|w| = 2^s2 / sqrt(N)`` with ``s1, s2`` in ``[-1, 1]``.

The kinds of ``W0`` (``w0=``): ``"ginibre"`` (``g J``, ``J_ij ~ N(0, 1/N)``: the paper),
``"orthogonal"`` (``g Q``: normal, every eigenvalue on the circle of radius ``g``),
``"symmetric"`` (``g (J + J^T) / (2 sqrt 2)``: real spectrum filling ``[-g, g]`` at large
N, the semicircle of the same radius as the Ginibre disc) and ``"zero"``.
Networks whose ``W0`` has an eigenvalue with real part ``>= max_abscissa`` (default 0.95)
are rejected (``assume``): the fixed point must exist, and near 1 the resolvent, hence
every condition number below, blows up.
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

import linrnn_theory as lt

__all__ = ["seeds", "sizes", "gains", "targets", "learning_rates", "modes", "engines",
           "orthogonal_matrices", "networks", "PAIRS", "W0_KINDS", "haar_orthogonal",
           "make_network", "spectral_abscissa"]

PAIRS = ("paper", "orthogonal", "overlap", "parallel")
W0_KINDS = ("ginibre", "orthogonal", "symmetric", "zero")


def seeds() -> st.SearchStrategy[int]:
    """Seeds of ``numpy.random.default_rng``."""
    return st.integers(0, 2 ** 32 - 1)


def sizes(lo: int = 4, hi: int = 32) -> st.SearchStrategy[int]:
    """Network sizes ``N``."""
    return st.integers(lo, hi)


def gains(lo: float = 0.0, hi: float = 0.9) -> st.SearchStrategy[float]:
    """Gains ``g`` of the random initial connectivity (no subnormal numbers: ``g J`` would
    underflow, and ``W0`` would no longer be a scaled Gaussian matrix)."""
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def targets(lo: float = 0.25, hi: float = 2.0) -> st.SearchStrategy[float]:
    """Targets ``z_hat`` with ``lo <= |z_hat| <= hi``, both signs."""
    mag = st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    return st.tuples(mag, st.sampled_from([1.0, -1.0])).map(lambda t: t[0] * t[1])


def learning_rates(lo: float = 1e-3, hi: float = 0.1) -> st.SearchStrategy[float]:
    """Log-uniform learning rates in ``[lo, hi]``."""
    return st.floats(np.log(lo), np.log(hi)).map(lambda x: float(np.exp(x)))


def modes() -> st.SearchStrategy[str]:
    """Training modes of :func:`linrnn_theory.train`."""
    return st.sampled_from(["fixed_point", "bptt"])


def engines() -> st.SearchStrategy[str]:
    """Engines of :func:`linrnn_theory.train`."""
    return st.sampled_from(["fast", "dense"])


def haar_orthogonal(N: int, rng: np.random.Generator) -> np.ndarray:
    """Haar-distributed orthogonal matrix (QR of a Gaussian matrix with the sign fix of
    Mezzadri 2007, so that the distribution is exactly Haar)."""
    Z = rng.standard_normal((N, N))
    Q, R = np.linalg.qr(Z)
    return Q * np.sign(np.diag(R))


@st.composite
def orthogonal_matrices(draw, N: int) -> np.ndarray:
    """Haar-random ``N x N`` orthogonal matrix from a drawn seed."""
    return haar_orthogonal(N, np.random.default_rng(draw(seeds())))


def spectral_abscissa(W: np.ndarray) -> float:
    """Largest real part of the eigenvalues of ``W``."""
    return float(np.max(np.linalg.eigvals(W).real))


def make_network(N: int, g: float, seed: int, pair: str = "paper", w0: str = "ginibre",
                 rho: float = 0.0, log2_norms: tuple[float, float] = (0.0, 0.0)) -> lt.Network:
    """Deterministic network from explicit parameters (what :func:`networks` draws).

    Parameters
    ----------
    N, g, seed : network size, gain and seed of ``numpy.random.default_rng``.
    pair : one of :data:`PAIRS`.
    w0 : one of :data:`W0_KINDS`.
    rho : cosine between ``w`` and ``m`` for ``pair="overlap"``.
    log2_norms : ``(s1, s2)``; ``|m| = sqrt(N) 2^s1``, ``|w| = 2^s2 / sqrt(N)`` (ignored
        for ``pair="paper"``).

    Examples
    --------
    >>> net = make_network(8, 0.0, 1, pair="orthogonal", w0="zero")
    >>> float(net.w @ net.m)
    0.0
    """
    if pair not in PAIRS:
        raise ValueError(f"pair must be one of {PAIRS}, got {pair!r}")
    if w0 not in W0_KINDS:
        raise ValueError(f"w0 must be one of {W0_KINDS}, got {w0!r}")
    if pair == "paper" and w0 == "ginibre":
        return lt.init_network(N=N, g=g, seed=seed)
    rng = np.random.default_rng([seed, 7])
    J = rng.standard_normal((N, N)) / np.sqrt(N)
    if w0 == "ginibre":
        W0 = g * J
    elif w0 == "orthogonal":
        W0 = g * haar_orthogonal(N, rng)
    elif w0 == "symmetric":
        W0 = g * (J + J.T) / (2.0 * np.sqrt(2.0))
    else:
        W0 = np.zeros((N, N))
    m = rng.standard_normal(N)
    n = rng.standard_normal(N)
    if pair == "paper":
        w = n
    elif pair == "orthogonal":
        k = int(rng.integers(1, N))               # |support of m| in [1, N - 1]
        perm = rng.permutation(N)
        m[perm[k:]] = 0.0
        n[perm[:k]] = 0.0
        w = n
    else:
        mh = m / np.linalg.norm(m)
        n = n - (n @ mh) * mh
        nh = n / np.linalg.norm(n)
        r = float(np.clip(rho, -1.0, 1.0)) if pair == "overlap" else (1.0 if rho >= 0 else -1.0)
        w = r * mh + np.sqrt(max(1.0 - r * r, 0.0)) * nh
    s1, s2 = (0.0, 0.0) if pair == "paper" else log2_norms
    m = m * (np.sqrt(N) * 2.0 ** s1 / np.linalg.norm(m))
    w = w * (2.0 ** s2 / (np.sqrt(N) * np.linalg.norm(w)))
    meta_g = float(g) if w0 == "ginibre" else (0.0 if w0 == "zero" else None)
    return lt.Network(W0=W0, m=m, w=w, g=meta_g, seed=seed)


@st.composite
def networks(draw, N=None, g=None, pair=None, w0=None, max_abscissa: float = 0.95):
    """A stable :class:`linrnn_theory.Network` (see the module docstring).

    Parameters
    ----------
    N, g : int, float or strategy, optional
        Fixed values or strategies (defaults: ``sizes()``, ``gains()``).
    pair, w0 : str, sequence of str or None
        Kind(s) of ``(m, w)`` and of ``W0`` to draw from (default: all).
    max_abscissa : float
        Reject networks whose ``W0`` has an eigenvalue with real part at or above this.
    """
    def value(x, default):
        if x is None:
            return draw(default)
        if isinstance(x, st.SearchStrategy):
            return draw(x)
        return x

    n = value(N, sizes())
    gain = value(g, gains())
    pairs = PAIRS if pair is None else ((pair,) if isinstance(pair, str) else tuple(pair))
    kinds = W0_KINDS if w0 is None else ((w0,) if isinstance(w0, str) else tuple(w0))
    p = draw(st.sampled_from(pairs))
    k = draw(st.sampled_from(kinds))
    seed = draw(seeds())
    rho = 0.0
    if p == "overlap":
        rho = draw(st.floats(0.5, 0.95)) * draw(st.sampled_from([1.0, -1.0]))
    elif p == "parallel":
        rho = draw(st.sampled_from([1.0, -1.0]))
    norms = (0.0, 0.0)
    if p != "paper":
        norms = (draw(st.floats(-1.0, 1.0)), draw(st.floats(-1.0, 1.0)))
    net = make_network(n, gain, seed, pair=p, w0=k, rho=rho, log2_norms=norms)
    assume(net.max_real_eig() < max_abscissa)
    return net
