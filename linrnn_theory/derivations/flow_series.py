r"""Taylor series of the large-N gradient flow in learning time, to any order.

The flow in chain coordinates, exact for any network, and its order-by-order solution are
those of :mod:`linrnn_theory.theory.chain_series` (docs/paper.md section 4, docs/theory.md
section 5); this module runs that recursion on sympy expressions.

Large N (:mod:`linrnn_theory.derivations.free_probability`): cross terms between the ``w``
and ``m`` families vanish and ``<u_i, u_j> = <v_i, v_j> = phi_{(i+j)/2}`` if ``i + j`` is even, 0
otherwise (``|w| = |m| = 1``; the flow is invariant under ``m -> c m``, ``w -> w / c``).
Cross Gram ``<v_i, u_j> = chi_{(i+j-1)/2}`` (``i + j`` odd) enters the shuffle loss, and
``<v_i, G(lambda) u_j> = psi_{(i+j-1)/2}(lambda)`` the outlier eigenvalue.

The recursions are solved order by order: writing ``Ct = sum_k C_k tau^k``,
``(k + 1) C_{k+1} = [e a b^T]_k`` where ``[.]_k`` needs only ``C_1 .. C_k``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import sympy as sp

from linrnn_theory.theory.chain_series import (FlowSeries, flow_series, large_n_cross,
                                              large_n_gram, shuffled_readout_series)

from .free_probability import beta, g, moment_sequences

__all__ = ["FlowSeries", "flow_series", "zhat", "tau_t", "large_n_gram", "symbolic_series",
           "singular_value_series", "auxiliary_series"]

zhat = sp.Symbol("zhat", real=True)
tau_t = sp.Symbol("tau_tilde", nonnegative=True)


def symbolic_series(order: int):
    """Readout series ``z(tau_tilde)`` to ``order``, exact in ``z_hat`` and ``beta``.

    ``tau_tilde = beta^2 tau``; the moments ``phi_n`` come from
    :func:`derivations.free_probability.moment_sequences` with ``g^2 = 1 - 1/beta``.

    Returns
    -------
    list of sympy expressions
        ``c[k]`` multiplies ``tau_tilde^k``.

    Examples
    --------
    >>> c = symbolic_series(3)
    >>> sp.factor(c[3])
    zhat*(8*beta*zhat**2 + 1)/6
    """
    L = order + 1
    phi_g, _ = moment_sequences(L + 1)
    phi = [sp.expand(sp.cancel(p.subs(g ** 2, 1 - 1 / beta))) for p in phi_g]
    data = large_n_gram(L, phi)
    fs = flow_series(order, zhat, *data, simplify=sp.expand)
    return [sp.factor(sp.expand(fs.z[k] / beta ** (2 * k))) for k in range(order + 1)]


def _matrix_series_traces(Ms, power: int, n: int):
    """Traces of ``M(t)^power`` for a matrix series ``Ms[k]`` (object arrays) mod ``t^n``."""
    from .tps import TPS
    cur = [M.copy() for M in Ms[:n]]
    for _ in range(power - 1):
        nxt = []
        for k in range(n):
            acc = None
            for i in range(k + 1):
                term = cur[i].dot(Ms[k - i])
                acc = term if acc is None else acc + term
            nxt.append(acc)
        cur = nxt
    return TPS([sp.expand(np.trace(M)) for M in cur], n)


def singular_value_series(order: int, zh: Any = None, moments_phi: Sequence[Any] | None = None):
    """Taylor series of the top two singular values of ``Delta W`` in ``tau_tilde``.

    ``sigma_1 = sum_{k=1}^{order} a_k tau_tilde^k`` and
    ``sigma_2 = sum_{k=3}^{order} b_k tau_tilde^k`` (``sigma_2 = O(tau^3)``,
    ``sigma_3 = O(tau^5)``), exact in ``z_hat > 0`` and ``beta`` (the singular values are
    even in ``z_hat``).

    Method: ``sigma^2`` are the eigenvalues of ``M = Ct G_v Ct^T G_u``. The top one,
    simple at ``tau -> 0``, follows from Rayleigh-Schroedinger perturbation theory of
    ``M / tau^2``; the second from the deflated characteristic polynomial
    ``q(s) = s^2 - f_1 s + f_2`` with ``f_1 = e_1 - s_1``, ``f_2 = e_2 - s_1 f_1``
    (``e_k``: elementary symmetric functions of the eigenvalues), whose neglected cubic
    term is of relative order ``tau^12``.

    Examples
    --------
    >>> s1, s2 = singular_value_series(4)
    >>> sp.factor(s1[1]), sp.factor(s1[2])
    (zhat/beta, -zhat/(2*beta))
    """
    from .tps import TPS
    if order < 3:
        raise ValueError("order must be >= 3 (sigma_2 starts at tau^3)")
    if order >= 14:
        raise ValueError("order must be < 14 (the deflation neglects terms of relative order tau^12)")
    zpos = sp.Symbol("zhat", positive=True) if zh is None else zh
    KC = order + 2
    L = KC + 1
    if moments_phi is None:
        phi_g, _ = moment_sequences(L + 1)
        moments_phi = [sp.expand(sp.cancel(p.subs(g ** 2, 1 - 1 / beta))) for p in phi_g]
    phi = moments_phi
    data = large_n_gram(L, phi)
    Gu, Gv = data[0], data[1]
    fs = flow_series(KC, zpos, *data, simplify=sp.expand)
    C = fs.C
    nM = KC  # M'_n for n = 0 .. KC-1
    Ms = []
    for n in range(nM):
        acc = None
        for i in range(1, n + 2):
            j = n + 2 - i
            if j < 1 or j > KC:
                continue
            term = C[i].dot(Gv).dot(C[j].T).dot(Gu)
            acc = term if acc is None else acc + term
        Ms.append(np.vectorize(sp.expand, otypes=[object])(acc))
    # top eigenvalue by Rayleigh-Schroedinger (left eigenvector l = Gu[0, :])
    ell = Gu[0, :]
    s = [sp.expand(ell.dot(Ms[0][:, 0]) / phi[1])]
    v = [np.array([sp.Integer(1)] + [sp.Integer(0)] * (L - 1), dtype=object)]
    for n in range(1, nM):
        mv = sum((Ms[j].dot(v[n - j]) for j in range(1, n + 1)), np.zeros(L, dtype=object) * 0)
        sn = sp.expand(ell.dot(mv) / phi[1])
        s.append(sn)
        x = sum((s[j] * v[n - j] for j in range(1, n + 1)), np.zeros(L, dtype=object) * 0) - mv
        v.append(np.array([sp.expand(-xi / s[0]) for xi in x], dtype=object))
    s1 = TPS(s, nM)
    p1 = _matrix_series_traces(Ms, 1, nM)
    p2 = _matrix_series_traces(Ms, 2, nM)
    e1 = p1
    e2 = (p1 * p1 - p2) * sp.Rational(1, 2)
    f1 = e1 - s1
    f2 = e2 - s1 * f1
    for k in range(4):
        if sp.simplify(f1.coeffs[k]) != 0:
            raise ArithmeticError(f"unexpected term tau^{k} in f1")
    F1 = f1.shift(4)
    for k in range(12):
        if k < f2.n and sp.simplify(f2.coeffs[k]) != 0:
            raise ArithmeticError(f"unexpected term tau^{k} in f2")
    F2 = f2.shift(12) if f2.n > 12 else TPS([0], max(F1.n - 4, 1))
    # S = s2 / tau^4 solves S^2 - F1 S + tau^4 F2 = 0
    nS = F1.n
    t4F2 = TPS([0] * 4 + list(F2.coeffs), nS)
    disc = F1 * F1 - 4 * t4F2
    S = (F1 + disc.sqrt(root0=F1.coeffs[0])) * sp.Rational(1, 2)
    sig1 = s1.sqrt(root0=zpos * phi[1])           # sigma_1 / tau
    sig2 = S.sqrt()                               # sigma_2 / tau^3
    a = [sp.Integer(0)] + [sp.factor(sp.expand(sig1.coeffs[k] / beta ** (2 * (k + 1))))
                           for k in range(order)]
    b = [sp.Integer(0)] * 3 + [sp.factor(sp.expand(sig2.coeffs[k] / beta ** (2 * (k + 3))))
                               for k in range(order - 2)]
    return a, b


def auxiliary_series(order: int):
    """Series in ``tau_tilde`` of ``|a|^2 |b|^2`` (so that ``|dL/dW| = |z_hat - z| |a| |b|``)
    and of the shuffled readout ``z_shuf = w^T (I - Delta W)^{-1} m`` (large N: an
    independent ``W0'`` averages to zero inside the resolvent, see
    :mod:`linrnn_theory.derivations`).

    Returns
    -------
    ab2, zshuf : lists of sympy expressions in ``zhat`` and ``beta``

    Examples
    --------
    >>> ab2, zs = auxiliary_series(2)
    >>> ab2[0], sp.factor(zs[1])
    (beta**2, zhat/beta**2)
    """
    L = order + 1
    phi_g, chi_g = moment_sequences(L + 1)
    sub = lambda e: sp.expand(sp.cancel(e.subs(g ** 2, 1 - 1 / beta)))  # noqa: E731
    phi = [sub(p) for p in phi_g]
    chi = [sub(c) for c in chi_g]
    data = large_n_gram(L, phi)
    Gu, Gv = data[0], data[1]
    fs = flow_series(order, zhat, *data, simplify=sp.expand)
    a2 = [sp.expand(sum(fs.a[i].dot(Gu).dot(fs.a[k - i]) for i in range(k + 1)))
          for k in range(order + 1)]
    b2 = [sp.expand(sum(fs.b[i].dot(Gv).dot(fs.b[k - i]) for i in range(k + 1)))
          for k in range(order + 1)]
    ab2 = [sp.expand(sum(a2[i] * b2[k - i] for i in range(k + 1))) for k in range(order + 1)]
    zs = shuffled_readout_series(fs.C, *large_n_cross(L, chi), simplify=sp.expand)
    scale = lambda seq: [sp.factor(sp.expand(c / beta ** (2 * k))) for k, c in enumerate(seq)]  # noqa: E731
    return scale(ab2), scale(zs)
