r"""Covariance of the Krylov-chain Gram entries over random input and output directions.

The reduced flow of a network depends on it only through ``Q^w_n = w^T H^n w``,
``Q^m_n = m^T K^n m`` and ``X_n = w^T H^n R m`` (``R = (I - W0)^{-1} = P S Q^T``, ``H = R R^T``,
``K = R^T R``, unit ``w`` and ``m``; docs/theory.md, "Finite N"). With ``alpha = P^T w`` and
``gamma = Q^T m`` (again independent and uniform on the unit sphere) these are sums over the
eigen-directions ``j`` of ``H`` with eigenvalues ``t_j``:

.. math:: Q^w_n = \sum_j \alpha_j^2 t_j^n, \qquad X_n = \sum_j \alpha_j \gamma_j t_j^{n+1/2}.

Group the directions into bins ``i`` of ``n_i = p_i N`` directions (the nodes of a
quadrature of the spectral measure). This module derives, for ``x`` uniform on the sphere
``S^{N-1}`` and the bin sums ``A_i = sum_{j in i} x_j^2`` and ``C_i = sum_{j in i} x_j y_j``
(``y`` an independent copy):

1. the sphere moments ``E[x_j^2] = 1/N``, ``E[x_j^4] = 3/(N(N+2))``,
   ``E[x_j^2 x_k^2] = 1/(N(N+2))`` (``j != k``), from a Gaussian vector ``g = |g| x`` with
   ``|g|`` independent of ``x`` and ``E|g|^4 = N(N+2)`` (:func:`sphere_moments`);
2. ``Cov(A_i, A_k) = 2/(N+2) (p_i delta_ik - p_i p_k)`` (:func:`bin_weight_covariance`);
3. ``E[C_i] = 0``, ``Var(C_i) = p_i / N``, ``C`` uncorrelated with ``A`` and across bins
   (:func:`bin_overlap_variance`).

Hence ``Cov(Q^w_a, Q^w_b) = 2/(N+2) (phi_{a+b} - phi_a phi_b)`` and
``Cov(X_a, X_b) = phi_{a+b+1} / N`` whenever the quadrature is exact to the degrees
involved (``n`` Gauss nodes: degree ``2n - 1``). :mod:`linrnn_theory.theory.finite_n` uses
these covariances; :func:`check_gram_covariance` recovers the two closed forms from the
bin covariances symbolically.
"""

from __future__ import annotations

import sympy as sp

__all__ = ["sphere_moments", "bin_weight_covariance", "bin_overlap_variance",
           "check_gram_covariance"]

N = sp.Symbol("N", positive=True, integer=True)


def sphere_moments() -> dict[str, sp.Expr]:
    """Second and fourth moments of one coordinate of a uniform unit vector in ``R^N``.

    From ``g ~ N(0, I_N)``, ``g = |g| x`` with ``|g|`` and ``x`` independent:
    ``E[g_j^2] = E|g|^2 E[x_j^2]``, ``E[g_j^4] = E|g|^4 E[x_j^4]`` and
    ``E[g_j^2 g_k^2] = E|g|^4 E[x_j^2 x_k^2]``, with ``E|g|^2 = N`` and
    ``E|g|^4 = Var|g|^2 + N^2 = 2N + N^2`` (chi-square with ``N`` degrees of freedom).

    Returns
    -------
    dict
        ``"x2"``, ``"x4"``, ``"x2x2"`` as expressions in ``N``.

    Examples
    --------
    >>> m = sphere_moments()
    >>> m["x4"], m["x2x2"]
    (3/(N*(N + 2)), 1/(N*(N + 2)))
    """
    E_g2, E_g4, E_g2g2 = sp.Integer(1), sp.Integer(3), sp.Integer(1)   # Gaussian moments
    norm2, norm4 = N, N * (N + 2)
    return {"x2": sp.simplify(E_g2 / norm2), "x4": sp.factor(E_g4 / norm4),
            "x2x2": sp.factor(E_g2g2 / norm4)}


def bin_weight_covariance() -> dict[str, sp.Expr]:
    """Variance and covariance of the bin weights ``A_i = sum_{j in bin i} x_j^2``.

    With ``n_i = p_i N`` directions in bin ``i``:
    ``Var A_i = n_i E[x^4] + n_i (n_i - 1) E[x^2 x^2] - (n_i / N)^2`` and, for two bins,
    ``Cov(A_i, A_k) = n_i n_k E[x^2 x^2] - n_i n_k / N^2``.

    Returns
    -------
    dict
        ``"var"`` and ``"cov"`` in terms of ``N``, ``p_i``, ``p_k``.

    Examples
    --------
    >>> c = bin_weight_covariance()
    >>> c["var"], c["cov"]
    (-2*p_i*(p_i - 1)/(N + 2), -2*p_i*p_k/(N + 2))
    """
    m = sphere_moments()
    p_i, p_k = sp.symbols("p_i p_k", positive=True)
    n_i, n_k = p_i * N, p_k * N
    var = n_i * m["x4"] + n_i * (n_i - 1) * m["x2x2"] - (n_i * m["x2"]) ** 2
    cov = n_i * n_k * m["x2x2"] - (n_i * m["x2"]) * (n_k * m["x2"])
    return {"var": sp.factor(sp.simplify(var)), "cov": sp.factor(sp.simplify(cov))}


def bin_overlap_variance() -> sp.Expr:
    """``Var C_i`` for ``C_i = sum_{j in bin i} x_j y_j`` with ``x, y`` independent uniform
    unit vectors: ``n_i E[x_j^2] E[y_j^2]`` (the cross terms vanish by the sign symmetry
    ``y -> -y`` of each coordinate).

    Examples
    --------
    >>> bin_overlap_variance()
    p_i/N
    """
    m = sphere_moments()
    p_i = sp.Symbol("p_i", positive=True)
    return sp.simplify(p_i * N * m["x2"] * m["x2"])


def check_gram_covariance(n_nodes: int = 3) -> bool:
    """Recover ``Cov(Q_a, Q_b) = 2/(N+2) (phi_{a+b} - phi_a phi_b)`` and
    ``Var(X_a) = phi_{2a+1} / N`` from the bin covariances, for symbolic nodes ``t_i`` and
    weights ``p_i`` (``phi_n = sum_i p_i t_i^n``, ``sum_i p_i = 1``).

    Examples
    --------
    >>> check_gram_covariance()
    True
    """
    t = sp.symbols(f"t0:{n_nodes}", positive=True)
    p = list(sp.symbols(f"p0:{n_nodes - 1}", positive=True))
    p.append(1 - sum(p))
    c = bin_weight_covariance()
    p_i, p_k = sp.symbols("p_i p_k", positive=True)

    def cov_A(i: int, k: int) -> sp.Expr:
        expr = c["var"] if i == k else c["cov"]
        return expr.subs({p_i: p[i], p_k: p[k]})

    def phi(n: int) -> sp.Expr:
        return sum(p[i] * t[i] ** n for i in range(n_nodes))

    ok = True
    for a, b in [(1, 1), (1, 2), (2, 3)]:
        lhs = sum(t[i] ** a * t[k] ** b * cov_A(i, k)
                  for i in range(n_nodes) for k in range(n_nodes))
        ok &= sp.simplify(lhs - 2 / (N + 2) * (phi(a + b) - phi(a) * phi(b))) == 0
    v = bin_overlap_variance()
    for a in (0, 1, 2):
        lhs = sum(t[i] ** (2 * a + 1) * v.subs(sp.Symbol("p_i", positive=True), p[i])
                  for i in range(n_nodes))
        ok &= sp.simplify(lhs - phi(2 * a + 1) / N) == 0
    return bool(ok)
