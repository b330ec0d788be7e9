r"""The reduced model of the ``N -> infinity`` limit, built from normalised traces alone.

In the large-N limit the Gram matrices of the Krylov chains (see :mod:`.reduced`) become
(``|w| = |m| = 1``, unit input amplitude, cross ``w``-``m`` terms -> 0)::

    <u_i, u_j> = <v_i, v_j> = phi_{(i+j)/2}              (i + j even, else 0)
    <v_i, R u_j> = <v_i, v_{j+1}>,   U^T R^T w = <u_i, u_1>,   V^T R m = <v_i, v_1>,   s0 = 0
    <v_i, u_j> = chi_{(i+j-1)/2}                          (i + j odd, else 0; v_0 = w, u_0 = m)
    <v_i, G(lambda) u_j> = psi_{(i+j-1)/2}(lambda)        (i + j odd, else 0)

with ``phi, chi, psi`` from :mod:`.traces`. The Hankel Gram matrices are ill-conditioned
(``phi_n`` grows geometrically), so everything up to the projected operators is computed
in fixed-point integer arithmetic (:func:`.traces.fixed_moments`) with as many bits as the
growth of the traces needs, and only the projected operators are rounded to float64.

How it is made fast:

* the chains are orthonormalised by Gram-Schmidt *in chain order* (rank revealing: a chain
  vector whose residual is below ``10**-(dps - 20)`` of its norm is dropped, which closes
  the chains exactly at ``g = 0``), so the basis of depth ``d`` is the leading part of the
  basis of any larger depth: one build of size 12, 24, 48, ... serves every depth up to
  its size by slicing (cached per ``g`` and size; a depth always comes from the same
  size, so its values do not depend on the order of the calls);
* the outlier matrix ``M(lambda)`` is a polynomial in ``t = 1/(lambda - g^2)``; its
  Chebyshev coefficients are computed once per ``g`` (on first use) and evaluated for many
  ``lambda`` at once (:func:`outlier_matrices`).

The cached arrays are read-only; every call returns a new :class:`.reduced.ReducedModel`
(with its own ``info`` dict) around them.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import mpmath as mp
import numpy as np

from .reduced import ReducedModel
from .traces import fixed_moments, fixed_psi_moments, to_fixed

__all__ = ["large_n_model", "outlier_matrices", "outlier_terms", "LAMBDA_MAX", "clear_cache"]

#: Upper end of the real interval searched for outlier eigenvalues.
LAMBDA_MAX = 1.5

#: Gains whose build is kept (the deepest build per gain).
_CACHE_SIZE = 64
_BUILDS: OrderedDict[tuple[float, int], "_Build"] = OrderedDict()


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=float)
    a.setflags(write=False)
    return a


def _parity_split(T: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None:
    """The blocks of ``T`` (``(L, K)`` object array) that join chain vectors of one parity
    of index to basis vectors: ``[(rows, cols, T[rows][:, cols])]`` for even and odd
    rows, where every other entry of ``T`` is zero (the chains of even and odd index are
    orthogonal, so Gram-Schmidt in chain order keeps them apart); ``None`` where ``T``
    mixes them.

    Examples
    --------
    >>> T = np.array([[1, 0, 2], [0, 3, 0], [0, 0, 4]], dtype=object)
    >>> [(r.tolist(), c.tolist()) for r, c, _ in _parity_split(T)]
    [([0, 2], [0, 2]), ([1], [1])]
    """
    L, K = T.shape
    nz = np.array([v != 0 for v in T.ravel()], dtype=bool).reshape(L, K)
    rows = (np.arange(0, L, 2), np.arange(1, L, 2))
    on = [nz[r].any(axis=0) for r in rows]
    if np.any(on[0] & on[1]):
        return None
    return [(r, np.nonzero(c)[0], T[np.ix_(r, np.nonzero(c)[0])]) for r, c in zip(rows, on)]


def _sandwich(Tt: np.ndarray, X: np.ndarray, T: np.ndarray | None, bits: int,
              split: list | None = None) -> np.ndarray:
    """``Tt X T`` (or ``Tt X`` for ``T=None``) of fixed-point object arrays, as float64.

    With ``split`` (:func:`_parity_split` of ``T``) only the products of its blocks are
    formed, and those of the blocks of ``X`` that are not all zero (the Gram matrices of the
    chains vanish between indices of one parity or of the other): the same integers, as
    the entries left out are exact zeros, for a quarter of the products."""
    if split is None:
        P = Tt @ X if T is None else (Tt @ X) @ T
    elif T is None:
        P = np.zeros((Tt.shape[0],) + X.shape[1:], dtype=object)
        for r, c, Tb in split:
            if r.size and c.size:
                P[c] = Tb.T @ X[r]
    else:
        P = np.zeros((Tt.shape[0], Tt.shape[0]), dtype=object)
        for ra, ca, Ta in split:
            for rb, cb, Tb in split:
                Xab = X[np.ix_(ra, rb)]
                if ca.size and cb.size and any(v != 0 for v in Xab.ravel()):
                    P[np.ix_(ca, cb)] = (Ta.T @ Xab) @ Tb
    scale = 1 << (bits * (2 if T is None else 3))
    return np.array([v / scale for v in P.ravel()], dtype=float).reshape(P.shape)


@dataclass
class _Build:
    """Everything of one gain at depth ``L``, in the nested orthonormal basis."""

    g: float
    L: int
    dps: int
    bits: int
    keep: list[int]                 # chain indices (0-based) kept by Gram-Schmidt
    T: np.ndarray                   # (L, K) fixed-point object array, upper triangular
    chi: list[int]
    arrays: dict[str, np.ndarray]
    cheb: np.ndarray | None = None  # (n_nodes, K, K), on first use
    t_range: tuple[float, float] = (0.0, 0.0)
    extra: dict = field(default_factory=dict)

    def rank(self, depth: int) -> int:
        """Number of kept chain vectors among the first ``depth``."""
        return sum(1 for i in self.keep if i < depth)

    def chebyshev(self) -> np.ndarray:
        if self.cheb is None:
            self.cheb = _frozen(_chebyshev_coefficients(self))
        return self.cheb


def _gram(phi: list[int], i: int, j: int) -> int:
    """``<u_i, u_j>`` (1-based chain indices) in fixed point."""
    return phi[(i + j) // 2] if (i + j) % 2 == 0 else 0


def _cross(chi: list[int], i: int, j: int) -> int:
    return chi[(i + j - 1) // 2] if (i + j) % 2 == 1 else 0


def _precision(g: float, L: int) -> int:
    """Decimal digits: 40 plus the decades the traces grow over ``L + 2`` powers."""
    ratio = 1.0
    if g > 0:
        phi, chi = [1.0], [1.0]
        g2 = g * g
        for n in range(1, L + 3):
            p = (chi[n - 1] + g2 * sum(phi[k] * chi[n - k] for k in range(1, n))) / (1 - g2)
            phi.append(p)
            chi.append((p + g2 * sum(chi[k] * chi[n - k] for k in range(1, n))) / (1 - g2))
        ratio = max(phi[k + 1] / phi[k] for k in range(L + 2))
    return 40 + int((L + 2) * max(1.0, np.log10(max(ratio, 10.0))))


def _build(g: float, L: int) -> _Build:
    dps = _precision(g, L)
    bits = int(math.ceil(dps * math.log2(10))) + 16
    one = 1 << bits
    phi, chi = fixed_moments(g, L + 2, bits)
    idx = range(1, L + 1)
    G = [[_gram(phi, i, j) for j in idx] for i in idx]
    # Gram-Schmidt in chain order on the coefficient vectors (G inner product)
    cols: list[list[int]] = []
    keep: list[int] = []
    drop = 10 ** (dps - 20)
    for i in range(L):
        gcol = [G[j][i] for j in range(L)]
        c = [sum(t[j] * gcol[j] for j in range(i)) >> bits for t in cols]
        r = [0] * L
        r[i] = one
        for ck, t in zip(c, cols):
            for j in range(i):
                r[j] -= (ck * t[j]) >> bits
        n2 = G[i][i] - (sum(ck * ck for ck in c) >> bits)
        if n2 * drop <= G[i][i]:
            continue
        nrm = math.isqrt(n2 << bits)
        cols.append([(x << bits) // nrm for x in r])
        keep.append(i)
    T = np.array(cols, dtype=object).T.reshape(L, len(cols))
    Tt = T.T
    obj = lambda rows: np.array(rows, dtype=object)   # noqa: E731
    B = obj([[_gram(phi, i, j + 1) for j in idx] for i in idx])
    rc = obj([_gram(phi, i, 1) for i in idx])
    X = obj([[_cross(chi, i, j) for j in idx] for i in idx])
    x0 = obj([_cross(chi, 0, j) for j in idx])             # <w, u_j> and <v_i, m>
    Gs = obj([[_gram(phi, i + 1, j + 1) for j in idx] for i in idx])
    cs = obj([_gram(phi, i + 1, 1) for i in idx])
    # chain vectors in the orthonormal basis: U~ = U (T^T G), so Delta W = U~ Ct V~^T
    # has C = (T^T G) Ct (T^T G)^T
    # by parity blocks where the products outweigh the indexing (builds of 24 and more:
    # 10-20% faster there, slower at 12)
    sp = _parity_split(T) if T.shape[1] > 12 else None
    arrays = {"A": _sandwich(Tt, B, T, bits, sp), "r": _sandwich(Tt, rc, None, bits, sp),
              "VU": _sandwich(Tt, X, T, bits, sp), "t0": _sandwich(Tt, x0, None, bits, sp),
              "G_s": _sandwich(Tt, Gs, T, bits, sp), "c_s": _sandwich(Tt, cs, None, bits, sp),
              "T_inv": _sandwich(Tt, obj(G), None, bits, sp)}
    arrays = {k: _frozen(v) for k, v in arrays.items()}
    t_lo, t_hi = 1.0 / (LAMBDA_MAX - g * g), 1.0 / max(g - g * g, 1e-3)
    return _Build(g=g, L=L, dps=dps, bits=bits, keep=keep, T=T, chi=chi, arrays=arrays,
                  t_range=(t_lo, t_hi), extra={"phi1": phi[1] / one})


def _chebyshev_coefficients(b: _Build) -> np.ndarray:
    """Chebyshev coefficients (in ``x``, ``t = mid + half x``) of ``M = V^T G(lambda) U``.

    ``M`` is a polynomial of degree ``<= L`` in ``t = 1/(lambda - g^2)`` without constant
    term (``psi_n = P_n(lambda) / (lambda - g^2)^(n+1)``, ``deg P_n <= n``): interpolated
    exactly at ``L + 2`` Chebyshev nodes in fixed point.
    """
    L, bits = b.L, b.bits
    n_nodes = L + 2
    t_lo, t_hi = b.t_range
    mid, half = (Fraction(t_hi) + Fraction(t_lo)) / 2, (Fraction(t_hi) - Fraction(t_lo)) / 2
    with mp.workdps(b.dps + 10):
        xs = [int(mp.nint(mp.ldexp(mp.cos(mp.pi * (k + mp.mpf(1) / 2) / n_nodes), bits)))
              for k in range(n_nodes)]
    n_psi = L
    psis = []
    for x in xs:
        t = to_fixed(mid, bits) + ((to_fixed(half, bits) * x) >> bits)
        psis.append(fixed_psi_moments(b.g, t, b.chi[:n_psi], bits))
    # Psi[j, n] = w_j sum_k T_j(x_k) psi_n(t_k) (exact integer sums: one object product)
    Tj = [[1 << bits] * n_nodes, list(xs)]
    for j in range(2, n_nodes):
        Tj.append([((2 * x * p1) >> bits) - p0 for x, p1, p0 in zip(xs, Tj[-1], Tj[-2])])
    S = np.array(Tj, dtype=object) @ np.array(psis, dtype=object)     # (n_nodes, n_psi)
    Psi = np.array([[v * (2 if j else 1) // (n_nodes << bits) for v in row]
                    for j, row in enumerate(S)], dtype=object)
    # T^T H_j T with H_j[i, k] = Psi[j, (i + k - 1) / 2] (i + k odd) is sum_n Psi[j, n] F_n,
    # F_n = sum_{i + k = 2n + 1} T[i]^T T[k] (rows of T, 1-based i, k): exact, as before
    T = b.T
    K = T.shape[1]
    F = np.empty((n_psi, K * K), dtype=object)
    for n in range(n_psi):
        i = np.arange(max(1, 2 * n + 1 - L), min(L, 2 * n) + 1)
        F[n] = (T[i - 1].T @ T[2 * n + 1 - i - 1]).ravel() if i.size else 0
    P = (Psi @ F).reshape(n_nodes, K, K)
    scale = 1 << (3 * bits)
    return np.array([v / scale for v in P.ravel()], dtype=float).reshape(P.shape)


def _build_size(depth: int) -> int:
    """The size of the build that serves ``depth``: 12, 24, 48, ... A model of a given depth
    always comes from the same build, so its values do not depend on which depths were
    asked for before (a slice of a deeper build, made at a higher working precision, can
    differ in the last bits)."""
    size = 12
    while size < depth:
        size *= 2
    return size


def _get_build(g: float, depth: int) -> _Build:
    key = (g, _build_size(depth))
    b = _BUILDS.get(key)
    if b is None:
        b = _build(g, key[1])
        _BUILDS[key] = b
        while len(_BUILDS) > _CACHE_SIZE:
            _BUILDS.popitem(last=False)
    _BUILDS.move_to_end(key)
    return b


def clear_cache() -> None:
    """Forget every cached build (for benchmarks that time cold calls)."""
    _BUILDS.clear()


def _chebyshev_sum(x: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """``sum_j coef[j] T_j(x)`` for a batch ``x`` (``(m,)`` -> ``(m,) + coef.shape[1:]``):
    the ``T_j(x)`` by their recurrence, then one matrix product."""
    n = coef.shape[0]
    Tx = _chebyshev_values(x, n)
    return (Tx @ coef.reshape(n, -1)).reshape((x.size,) + coef.shape[1:])


def _chebyshev_values(x: np.ndarray, n: int) -> np.ndarray:
    """``T_j(x)`` for ``j < n``: shape ``(x.size, n)`` (by the recurrence)."""
    Tx = np.empty((x.size, n))
    Tx[:, 0] = 1.0
    if n > 1:
        Tx[:, 1] = x
    for j in range(2, n):
        Tx[:, j] = 2.0 * x * Tx[:, j - 1] - Tx[:, j - 2]
    return Tx


def _lambda_to_x(b: _Build, lam: np.ndarray) -> np.ndarray:
    """The Chebyshev variable ``x`` of ``lambda`` (``t = 1/(lambda - g^2)`` mapped to
    ``[-1, 1]`` over the build's range of ``t``)."""
    t = 1.0 / (np.asarray(lam, dtype=float).ravel() - b.g * b.g)
    t_lo, t_hi = b.t_range
    return (2.0 * t - (t_hi + t_lo)) / (t_hi - t_lo)


def outlier_terms(g: float, depth: int) -> tuple[np.ndarray, Callable[[np.ndarray],
                                                                       np.ndarray]]:
    """``M(lambda)`` of :func:`outlier_matrices` as a linear combination of fixed
    matrices: ``(B, phi)`` with ``M(lambda) = sum_j phi(lambda)[j] B[j]`` (``B``:
    ``(n, p, q)``, the Chebyshev coefficients; ``phi``: an array of ``m`` lambdas ->
    ``(m, n)``, NaN rows outside the interpolated range of ``lambda``, where the series
    is an extrapolation). :meth:`.reduced.ReducedModel.largest_outliers` uses it to bound
    ``det(I - C M(lambda))`` away from zero for many ``C`` and ``lambda`` at once.

    Examples
    --------
    >>> B, phi = outlier_terms(0.5, 4)
    >>> M = np.einsum("mj,jpq->mpq", phi(np.array([0.9, 1.2])), B)
    >>> bool(np.allclose(M, outlier_matrices(0.5, 4, [0.9, 1.2])))
    True
    """
    b = _get_build(float(g), int(depth))
    K = b.rank(int(depth))
    coef = b.chebyshev()[:, :K, :K]

    def phi(lam: np.ndarray) -> np.ndarray:
        x = _lambda_to_x(b, lam)
        out = _chebyshev_values(np.clip(x, -1.0, 1.0), coef.shape[0])
        out[np.abs(x) > 1.0 + 1e-12] = np.nan
        return out

    return coef, phi


def outlier_matrices(g: float, depth: int, lam) -> np.ndarray:
    """``M(lambda) = V^T (lambda - W0)^{-1} U`` of ``large_n_model(g, depth)`` for an array
    of real ``lambda`` outside the bulk: shape ``lam.shape + (p, q)``.

    Examples
    --------
    >>> M = outlier_matrices(0.5, 4, [0.9, 1.2])
    >>> M.shape, bool(np.allclose(M[1], large_n_model(0.5, 4).outlier_matrix(1.2)))
    ((2, 4, 4), True)
    """
    b = _get_build(float(g), int(depth))
    lam = np.asarray(lam, dtype=float)
    K = b.rank(int(depth))
    return _chebyshev_sum(_lambda_to_x(b, lam),
                          b.chebyshev()[:, :K, :K]).reshape(lam.shape + (K, K))


def large_n_model(g: float, depth: int) -> ReducedModel:
    """Large-N reduced model with ``depth`` chain vectors per side.

    Parameters
    ----------
    g : float
        ``0 <= g < 1``.
    depth : int
        Number of chain vectors ``L`` on each side (``>= 2``; half of them belong to the
        ``w`` family, half to the ``m`` family).

    Returns
    -------
    ReducedModel
        A new object on every call; its arrays are read-only views of the cached build of
        ``g`` (copy them to modify).

    Examples
    --------
    >>> mdl = large_n_model(0.5, 4)
    >>> mdl.shape, round(float(mdl.r_w @ mdl.r_w), 12)   # |U^T R^T w|^2 = phi_1 = beta
    ((4, 4), 1.333333333333)
    >>> mdl.A.flags.writeable
    False
    """
    if not 0.0 <= g < 1.0:
        raise ValueError(f"g must lie in [0, 1) for the large-N theory, got {g}")
    L = int(depth)
    if L < 2:
        raise ValueError(f"depth must be >= 2, got {depth}")
    g = float(g)
    b = _get_build(g, L)
    K = b.rank(L)
    a = b.arrays
    A, r, VU, G_s = a["A"][:K, :K], a["r"][:K], a["VU"][:K, :K], a["G_s"][:K, :K]
    c_s, t0, T_inv = a["c_s"][:K], a["t0"][:K], a["T_inv"][:K, :L]
    phi1 = b.extra["phi1"]

    def outlier_matrix(lam: float) -> np.ndarray:
        return outlier_matrices(g, L, np.array([float(lam)]))[0]

    return ReducedModel(
        A=A, r_w=r, r_m=r, s0=0.0, norm_data=(phi1, c_s, G_s, phi1, c_s, G_s),
        shuffle_data=(0.0, t0, t0, VU), outlier_matrix=outlier_matrix,
        bulk_radius=g, depth=L, source="large_n",
        info={"dps": b.dps, "rank": (K, K), "T_inv": T_inv,
              "outlier_matrices": lambda lam: outlier_matrices(g, L, lam),
              "outlier_terms": lambda: outlier_terms(g, L)},
    )
