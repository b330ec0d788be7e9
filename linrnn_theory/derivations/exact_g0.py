r"""Exact solution of the gradient flow at ``g = 0`` (large N: ``w^T m = 0``).

With ``W0 = 0`` the chains close after one step (``R = I``): ``Delta W`` stays in
``span{w, m} (x) span{w, m}``. In the orthonormal basis ``e_1 = w/|w|``, ``e_2 = m/|m|``
write ``Delta W = E C E^T`` and ``M = (I - C)^{-1}``; then ``z = M_12`` and

.. math:: \dot C = e\,(M^T e_1)(M e_2)^T .

The flow commutes with ``C -> P C^T P`` (``P`` swaps ``e_1, e_2``; it swaps the roles of
``w`` and ``m``), so from ``C = 0`` it keeps ``C_11 = C_22 = alpha``; with ``C_12 = gamma``,
``C_21 = delta`` and ``D = (1 - alpha)^2 - gamma delta``:

.. math:: \dot\alpha = e(1-\alpha)\gamma/D^2,\quad \dot\gamma = e(1-\alpha)^2/D^2,\quad
          \dot\delta = e\gamma^2/D^2 .

Hence ``d[(1-alpha)^2 + gamma^2] = 0``: ``1 - alpha = cos(theta)``, ``gamma = sin(theta)``,
and ``d delta / d gamma = tan(theta)^2`` integrates to
``delta = artanh(sin theta) - sin theta``. Everything is explicit in ``theta``:

.. math:: D = 1 - \sin\theta\,\mathrm{artanh}(\sin\theta),\qquad
          z = \sin\theta / D,\qquad
          \frac{d\theta}{d\tau} = (\hat z - z)\cos\theta / D^2,

the outlier eigenvalue of ``W`` is ``1 - cos(theta) + sqrt(sin(theta) delta)`` and the
singular values of ``Delta W`` are those of ``[[alpha, gamma], [delta, alpha]]``. Only the
map ``theta -> tau`` needs a quadrature (or this one-dimensional ODE).
"""

from __future__ import annotations

import sympy as sp

from .tps import TPS

__all__ = ["theta", "tau", "closed_form", "verify_closed_form", "g0_series"]

theta = sp.Symbol("theta", real=True)
tau = sp.Symbol("tau", nonnegative=True)
_zhat = sp.Symbol("zhat", positive=True)


def closed_form():
    """Expressions in ``theta``: ``alpha, gamma, delta, D, z, dtheta/dtau, outlier``.

    Examples
    --------
    >>> cf = closed_form()
    >>> sp.simplify(cf["z"].subs(theta, 0))
    0
    """
    s = sp.sin(theta)
    alpha = 1 - sp.cos(theta)
    gamma = s
    delta = sp.atanh(s) - s
    D = (1 - alpha) ** 2 - gamma * delta
    z = gamma / D
    rate = (_zhat - z) * sp.cos(theta) / D ** 2
    outlier = alpha + sp.sqrt(gamma * delta)
    return {"alpha": alpha, "gamma": gamma, "delta": delta, "D": D, "z": z,
            "rate": rate, "outlier": outlier, "zhat": _zhat}


def verify_closed_form() -> bool:
    """Check symbolically that the parametrisation solves the 2 x 2 flow.

    With ``theta' = rate``, each of ``alpha', gamma', delta'`` must equal the flow's
    right-hand side, and ``z`` must equal ``[(I - C)^{-1}]_12``.

    Examples
    --------
    >>> verify_closed_form()
    True
    """
    cf = closed_form()
    a, gm, d, D, z, rate = (cf[k] for k in ("alpha", "gamma", "delta", "D", "z", "rate"))
    e = cf["zhat"] - z
    C = sp.Matrix([[a, gm], [d, a]])
    M = (sp.eye(2) - C).inv()
    p = M.T[:, 0]
    q = M[:, 1]
    rhs = e * p * q.T
    lhs = sp.Matrix([[sp.diff(a, theta), sp.diff(gm, theta)],
                     [sp.diff(d, theta), sp.diff(a, theta)]]) * rate
    ok_flow = all(sp.simplify(sp.expand_trig(v)) == 0 for v in (lhs - rhs))
    ok_z = sp.simplify(M[0, 1] - z) == 0
    return bool(ok_flow and ok_z)


def g0_series(order: int):
    """Taylor series in ``tau`` (``= tau_tilde`` at ``g = 0``) of ``theta``, ``z``, the two
    singular values of ``Delta W`` and the outlier eigenvalue, exact in ``z_hat > 0``.

    Returns
    -------
    dict of lists of coefficients (index = power of ``tau``).

    Examples
    --------
    >>> s = g0_series(3)
    >>> [sp.factor(c) for c in s["z"]]
    [0, zhat, -zhat/2, zhat*(8*zhat**2 + 1)/6]
    >>> sp.simplify(s["outlier"][2] / s["zhat"] ** 2 - (sp.Rational(1, 2) + 1 / sp.sqrt(3)))
    0
    """
    want = order + 1
    n = order + 7          # internal length: shifts by tau^4 and divisions lose terms
    cf = closed_form()
    zh = cf["zhat"]
    # theta' = F(theta): expand F in theta, then solve order by order
    F = sp.series(cf["rate"], theta, 0, n + 1).removeO()
    Fc = [sp.expand(F.coeff(theta, j)) for j in range(n + 1)]
    th = TPS([0], n)
    for k in range(n - 1):
        # compose F(theta(tau)) mod tau^(k+1)
        acc = TPS([Fc[0]], n)
        powk = TPS([1], n)
        for j in range(1, n + 1):
            powk = powk * th
            acc = acc + powk * Fc[j]
        coeffs = list(th.coeffs)
        coeffs[k + 1] = sp.expand(acc.coeffs[k] / (k + 1))
        th = TPS(coeffs, n)

    def compose(expr):
        ser = sp.series(expr, theta, 0, n + 1).removeO()
        out = TPS([0], n)
        powk = TPS([1], n)
        for j in range(0, n + 1):
            cj = sp.expand(ser.coeff(theta, j))
            if j:
                powk = powk * th
            out = out + powk * cj
        return [sp.expand(c) for c in out.coeffs]

    z = compose(cf["z"])
    alpha = compose(cf["alpha"])
    gd = TPS(compose(cf["gamma"] * cf["delta"]), n).shift(4)   # (gamma delta) / tau^4
    root = gd.sqrt()                                            # sqrt(gamma delta) / tau^2
    outlier = [sp.expand(alpha[k] + (root.coeffs[k - 2] if k >= 2 else 0))
               for k in range(want)]
    # singular values of [[a, c], [d, a]]: sigma^2 are the roots of s^2 - T s + Det^2,
    # T = 2 a^2 + c^2 + d^2, Det = a^2 - c d; sigma_1 = O(tau), sigma_2 = |Det| / sigma_1
    a_, c_, d_ = (TPS(compose(cf[k]), n) for k in ("alpha", "gamma", "delta"))
    T2 = (a_ * a_ * 2 + c_ * c_ + d_ * d_).shift(2)               # T / tau^2
    Det = a_ * a_ - c_ * d_                                       # O(tau^4)
    disc = T2 * T2 - (Det * Det).shift(4) * 4
    s1sq = (T2 + disc.sqrt(root0=T2.coeffs[0])) * sp.Rational(1, 2)
    sig1 = s1sq.sqrt(root0=zh)                                    # sigma_1 / tau
    lead = sp.sign(sp.simplify(Det.coeffs[4]))                    # -z_hat^4 / 12 < 0
    q = (Det.shift(4) * lead) / sig1                              # sigma_2 / tau^3
    sigma1 = [sp.Integer(0)] + [sp.expand(c) for c in sig1.coeffs]
    sigma2 = [sp.Integer(0)] * 3 + [sp.expand(c) for c in q.coeffs]
    for name, lst in (("outlier", outlier), ("sigma1", sigma1), ("sigma2", sigma2)):
        if len(lst) < want:
            raise ArithmeticError(f"internal series too short for {name}")
    return {"theta": th.coeffs[:want], "z": z[:want], "outlier": outlier[:want],
            "sigma1": sigma1[:want], "sigma2": sigma2[:want], "zhat": zh}
