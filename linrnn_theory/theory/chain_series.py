r"""Order-by-order Taylor series of the gradient flow in chain coordinates.

Set-up (docs/paper.md section 4, fixed-point limit): ``z = w^T (I - W)^{-1} m`` and
``dW/dtau = e a b^T`` with ``e = z_hat - z``, ``a = (I - W)^{-T} w``, ``b = (I - W)^{-1} m``.
With ``R = (I - W0)^{-1}`` define the chains ``u_1 = R^T w``, ``v_1 = R m``,
``u_{k+1} = R^T v_k``, ``v_{k+1} = R u_k`` (and ``v_0 = w``, ``u_0 = m``). By Woodbury,
``Delta W = sum_ij Ct_ij u_i v_j^T`` stays in their span, and in chain coordinates

.. math::
   y = r_m + B\tilde C y,\quad x = r_w + B^T\tilde C^T x,\quad z = s_0 + r_w^T \tilde C y,\quad
   a = e_1 + S\tilde C^T x,\quad b = e_1 + S\tilde C y,\quad
   \frac{d\tilde C}{d\tau} = e\,a\,b^T,

with ``B_ij = <v_i, v_{j+1}>``, ``r_m[i] = <v_i, v_1>``, ``r_w[i] = <u_i, u_1>`` and the
shift ``S e_j = e_{j+1}``. No truncation enters: ``Ct`` at order ``tau^k`` only touches
chain indices ``<= k``. Writing ``Ct = sum_k C_k tau^k``, ``(k + 1) C_{k+1} = [e a b^T]_k``
needs only ``C_1 .. C_k``.

The arithmetic is generic (numpy object arrays): floats give numbers, sympy expressions give
the symbolic series of :mod:`linrnn_theory.derivations.flow_series`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["large_n_gram", "large_n_cross", "flow_series", "FlowSeries", "shuffled_readout_series"]


def large_n_gram(L: int, phi: Sequence[Any]) -> tuple[Any, Any, Any, Any, Any]:
    """Large-N Gram data of the chains of length ``L`` (indices 1..L, arrays 0-based).

    Returns ``Gu, Gv, B, r_w, r_m`` as numpy object arrays, from moments
    ``phi[0..L+1]`` (``phi[0] = 1``).

    Examples
    --------
    >>> Gu, Gv, B, r_w, r_m = large_n_gram(2, [1, 2, 5, 9])
    >>> Gu.tolist(), B.tolist(), r_w.tolist()
    ([[2, 0], [0, 5]], [[0, 5], [5, 0]], [2, 0])
    """
    def gram(i, j):
        return phi[(i + j) // 2] if (i + j) % 2 == 0 else 0 * phi[0]

    idx = range(1, L + 1)
    Gu = np.array([[gram(i, j) for j in idx] for i in idx], dtype=object)
    Gv = Gu.copy()
    B = np.array([[gram(i, j + 1) for j in idx] for i in idx], dtype=object)
    r_w = np.array([gram(i, 1) for i in idx], dtype=object)
    r_m = r_w.copy()
    return Gu, Gv, B, r_w, r_m


@dataclass
class FlowSeries:
    """Coefficients of the series in ``tau`` (unscaled learning time).

    Attributes
    ----------
    C : list of (L, L) arrays
        ``C[k]`` multiplies ``tau^k`` in the chain-coordinate ``Delta W``.
    z : list
        Readout coefficients ``z[k]``.
    a, b : list of arrays
        Chain coordinates of ``a = (I - W)^{-T} w`` and ``b = (I - W)^{-1} m`` per order.
    """

    C: list
    z: list
    order: int
    a: list | None = None
    b: list | None = None


def flow_series(order: int, zh: Any, Gu, Gv, B, r_w, r_m, s0: Any = 0,
                simplify: Callable[[Any], Any] | None = None) -> FlowSeries:
    """Solve the chain-coordinate gradient flow order by order up to ``tau^order``.

    Works over any field of coefficients (floats, Fractions, sympy expressions, polynomial
    ring elements) stored in numpy object arrays.

    Parameters
    ----------
    order : int
        Highest power of ``tau`` in the readout.
    zh : scalar
        Target ``z_hat``.
    Gu, Gv, B, r_w, r_m : arrays
        Chain data (see :func:`large_n_gram`), chain length ``L >= order + 1``.
    s0 : scalar
        ``w^T R m`` (0 at large N).
    simplify : callable, optional
        Applied to every new coefficient (e.g. ``sympy.expand``).

    Examples
    --------
    >>> from fractions import Fraction
    >>> data = large_n_gram(4, [Fraction(1)] * 6)        # g = 0: all phi_n = 1
    >>> fs = flow_series(3, Fraction(1), *data)
    >>> [str(c) for c in fs.z]                            # 1/6 (1 + 8) = 3/2 at z_hat = 1
    ['0', '1', '-1/2', '3/2']
    """
    L = B.shape[0]
    if L < order + 1:
        raise ValueError(f"chain length L = {L} must be >= order + 1 = {order + 1}")
    simp = simplify or (lambda v: v)
    zero = 0 * r_w[0]
    Z = np.full((L, L), zero, dtype=object)
    C = [Z.copy()]                  # C[0] = 0
    y, x, z, e, a, b = [], [], [], [], [], []
    e1 = np.full(L, zero, dtype=object)
    e1[0] = zero + 1

    def shift(v):
        out = np.full(L, zero, dtype=object)
        out[1:] = v[:-1]
        return out

    for k in range(order + 1):
        # y_k = B sum_{j=1..k} C_j y_{k-j};  x_k = B^T sum_j C_j^T x_{k-j}
        if k == 0:
            yk, xk = r_m.copy(), r_w.copy()
        else:
            sy = sum((C[j].dot(y[k - j]) for j in range(1, k + 1)), np.full(L, zero, dtype=object))
            sx = sum((C[j].T.dot(x[k - j]) for j in range(1, k + 1)), np.full(L, zero, dtype=object))
            yk = np.array([simp(v) for v in B.dot(sy)], dtype=object)
            xk = np.array([simp(v) for v in B.T.dot(sx)], dtype=object)
        y.append(yk)
        x.append(xk)
        zk = s0 if k == 0 else zero
        for j in range(1, k + 1):
            zk = zk + r_w.dot(C[j].dot(y[k - j]))
        zk = simp(zk)
        z.append(zk)
        e.append(simp((zh - zk) if k == 0 else -zk))
        ak = e1.copy() if k == 0 else np.full(L, zero, dtype=object)
        bk = e1.copy() if k == 0 else np.full(L, zero, dtype=object)
        for j in range(1, k + 1):
            ak = ak + shift(C[j].T.dot(x[k - j]))
            bk = bk + shift(C[j].dot(y[k - j]))
        a.append(np.array([simp(v) for v in ak], dtype=object))
        b.append(np.array([simp(v) for v in bk], dtype=object))
        if k == order:
            break
        F = np.full((L, L), zero, dtype=object)
        for i in range(k + 1):
            for j in range(k + 1 - i):
                F = F + e[i] * np.outer(a[j], b[k - i - j])
        C.append(np.array([[simp(v / (k + 1)) for v in row] for row in F], dtype=object))
    return FlowSeries(C=C, z=z, order=order, a=a, b=b)


def large_n_cross(L: int, chi: Sequence[Any]) -> tuple[Any, Any, Any]:
    """Large-N cross Gram data ``(U^T w, V^T m, V^T U)`` in chain coordinates, from
    ``chi[0..L]``: ``<v_i, u_j> = chi_{(i+j-1)/2}`` for odd ``i + j`` (``v_0 = w``,
    ``u_0 = m``), zero otherwise.

    Examples
    --------
    >>> uw, vm, X = large_n_cross(2, [1, 3, 7])
    >>> uw.tolist(), X.tolist()
    ([1, 0], [[0, 3], [3, 0]])
    """
    def cross(i, j):
        return chi[(i + j - 1) // 2] if (i + j) % 2 == 1 else 0 * chi[0]

    idx = range(1, L + 1)
    uw = np.array([cross(0, j) for j in idx], dtype=object)
    vm = np.array([cross(i, 0) for i in idx], dtype=object)
    X = np.array([[cross(i, j) for j in idx] for i in idx], dtype=object)
    return uw, vm, X


def shuffled_readout_series(C: list, uw, vm, X, wm: Any = 0,
                            simplify: Callable[[Any], Any] | None = None) -> list:
    """Series of ``w^T (I - Delta W)^{-1} m`` for ``Delta W = sum_k C_k tau^k`` in chain
    coordinates (the readout once ``W0`` is replaced by an independent draw, large N).

    Examples
    --------
    >>> C = [np.zeros((1, 1)), np.ones((1, 1))]          # Delta W = tau u_1 v_1^T
    >>> shuffled_readout_series(C, np.array([2.0]), np.array([3.0]), np.zeros((1, 1)))
    [0, 6.0]
    """
    simp = simplify or (lambda v: v)
    K = len(C) - 1
    L = len(uw)
    zero = 0 * uw[0]
    y = [vm.copy()]
    out = [wm]
    for k in range(1, K + 1):
        acc = np.full(L, zero, dtype=object)
        for j in range(1, k + 1):
            acc = acc + C[j].dot(y[k - j])
        out.append(simp(uw.dot(acc)))
        y.append(np.array([simp(v) for v in X.dot(acc)], dtype=object))
    return out
