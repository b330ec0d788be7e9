r"""Exact learning dynamics at ``g = 0`` (derivation: :mod:`linrnn_theory.derivations.exact_g0`).

Large N (``w^T m = 0``): with ``theta(tau)`` solving
``d theta / d tau = (z_hat - z) cos(theta) / D^2`` from ``theta(0) = 0``,

* ``D = 1 - sin(theta) artanh(sin(theta))``, ``z = sin(theta) / D``;
* ``Delta W = E [[alpha, gamma], [delta, alpha]] E^T`` in the orthonormal basis
  ``(w/|w|, m/|m|)`` with ``alpha = 1 - cos(theta)``, ``gamma = sin(theta)``,
  ``delta = artanh(sin(theta)) - sin(theta)``;
* outlier eigenvalue ``alpha + sqrt(gamma delta)``.

The learning converges to the root ``theta*`` of ``z(theta) = z_hat`` (which exists for every
target since ``z -> infinity`` where ``D -> 0``); ``theta`` approaches it exponentially.
For a finite network (random overlap ``w^T m``) the flow still stays in ``span{w, m}``;
there it is integrated as the exact 2 x 2 reduced ODE (:mod:`.instance`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.integrate import quad, solve_ivp
from scipy.optimize import brentq

__all__ = ["theta_of_tau", "closed_form", "g0_trajectory", "at_loss"]


def closed_form(theta: Any) -> tuple[Any, Any, Any, Any, Any, Any]:
    """``(alpha, gamma, delta, D, z, outlier)`` as arrays for angles ``theta``.

    Examples
    --------
    >>> a, c, d, D, z, lam = closed_form(np.array([0.0]))
    >>> float(z[0]), float(lam[0])
    (0.0, 0.0)
    """
    th = np.asarray(theta, dtype=float)
    s = np.sin(th)
    alpha = 2.0 * np.sin(0.5 * th) ** 2            # = 1 - cos(theta) without cancellation
    gamma = s
    # artanh(s) - s = s^3/3 + s^5/5 + ...: the series avoids cancellation at small s
    s2 = s * s
    small = np.abs(s) < 0.05
    series = s * s2 * (1 / 3 + s2 * (1 / 5 + s2 * (1 / 7 + s2 * (1 / 9 + s2 * (1 / 11 + s2 / 13)))))
    with np.errstate(invalid="ignore", divide="ignore"):
        direct = np.arctanh(s) - s
    delta = np.where(small, series, direct)
    D = np.cos(th) ** 2 - gamma * delta
    z = gamma / D
    outlier = alpha + np.sqrt(np.maximum(gamma * delta, 0.0))
    return alpha, gamma, delta, D, z, outlier


def at_loss(target: float, rel_loss: float) -> tuple[float, float, float]:
    """The angle, the time and ``int |dL/dW| dtau`` where the loss first falls to
    ``rel_loss z_hat^2 / 2`` (large N), without integrating the flow.

    There ``|z_hat - z| = |z_hat| sqrt(rel_loss)``: ``theta_c`` is the root of
    ``sin(theta) = z_c D(theta)``, ``z_c = |z_hat| (1 - sqrt(rel_loss))`` (``z`` increases
    with ``|theta|`` up to the pole ``D = 0``; bracketed below ``sin(theta) = 0.9``, where
    ``D < 0``), with the sign of ``z_hat``. Along the flow ``d theta = (z_hat - z)
    cos(theta) / D^2 d tau``, so

    * ``tau_c = int_0^|theta_c| D^3 / (cos(theta) (|z_hat| D - sin(theta))) d theta``
      (adaptive Gauss-Kronrod quadrature to ``1e-13`` relative; the integrand is smooth on
      the whole range, where ``z < z_c``);
    * ``|dL/dW| = |z_hat - z| |a| |b|`` with ``|a| |b| = 1 / D^2`` (``(I - Delta W)^-1`` in
      the basis of the module docstring has ``det = D`` and rows and columns of norm 1 /
      ``|D|``, as ``cos^2 + sin^2 = 1``), hence ``int_0^tau_c |dL/dW| dtau =
      int_0^|theta_c| d theta / cos(theta) = artanh(sin |theta_c|)``.

    :mod:`.observables` takes the large-N state at ``g = 0`` from here; the reduced ODE
    gives the same values within ``1e-10`` relative (tested).

    Parameters
    ----------
    target : float
        ``z_hat`` (non-zero).
    rel_loss : float
        In ``(0, 1)``.

    Returns
    -------
    theta_c : float
        Signed as ``z_hat``.
    tau_c : float
    grad_integral : float

    Examples
    --------
    >>> th, tau, gi = at_loss(1.0, 0.05)
    >>> _, _, _, D, z, _ = closed_form(th)
    >>> bool(abs(z - (1 - 0.05 ** 0.5)) < 1e-15), bool(gi == np.arctanh(np.sin(th)))
    (True, True)
    >>> tau_small = at_loss(1e-4, 0.05)[1]            # small target: ln(1/r) / 2
    >>> bool(abs(tau_small - np.log(20) / 2) < 1e-3)
    True
    """
    a = abs(float(target))
    z_c = a * (1.0 - math.sqrt(rel_loss))

    def excess(th: float) -> float:                   # sin - z_c D, increasing
        s = math.sin(th)
        return s - z_c * (1.0 - s * math.atanh(s))

    eps4 = 4 * np.finfo(float).eps
    th = brentq(excess, 0.0, math.asin(0.9), xtol=eps4, rtol=eps4)

    def dtau(t: float) -> float:
        s = math.sin(t)
        D = 1.0 - s * math.atanh(s)
        return D ** 3 / (math.cos(t) * (a * D - s))

    tau = quad(dtau, 0.0, th, epsabs=0.0, epsrel=1e-13, limit=200)[0]
    return math.copysign(th, target), tau, math.atanh(math.sin(th))


def theta_of_tau(target: float, tau: np.ndarray, rtol: float = 1e-13) -> np.ndarray:
    """Solve ``d theta/d tau = (z_hat - z(theta)) cos(theta) / D(theta)^2``, ``theta(0) = 0``.

    Examples
    --------
    >>> th = theta_of_tau(1.0, np.array([0.0, 1e-3]))
    >>> bool(abs(th[1] - 1e-3) < 1e-6)       # theta ~ z_hat tau at small tau
    True
    """
    tau = np.asarray(tau, dtype=float)

    def rhs(_t, y):
        _, _, _, D, z, _ = closed_form(y)
        return (target - z) * np.cos(y) / D ** 2

    if tau.size == 0 or tau[-1] <= 0:
        return np.zeros_like(tau)
    sol = solve_ivp(rhs, (0.0, float(tau[-1])), [0.0], method="DOP853", t_eval=tau,
                    rtol=rtol, atol=1e-15)
    if sol.status != 0:
        raise RuntimeError(f"g = 0 angle ODE failed: {sol.message}")
    return sol.y[0]


def g0_trajectory(target: float, tau: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Readout, top-2 singular values, outlier and gradient norm along ``tau`` (large N).

    Returns
    -------
    readout : (n,) ndarray
    singular_values : (n, 2) ndarray
    outlier : (n,) ndarray
    grad_norm : (n,) ndarray
        ``|z_hat - z| |a| |b|`` with ``a = (I - W)^{-T} w``, ``b = (I - W)^{-1} m``.

    Examples
    --------
    >>> z, sv, lam, gn = g0_trajectory(1.0, np.array([0.0, 5.0]))
    >>> bool(abs(z[-1] - 1.0) < 1e-6), bool(sv[-1, 0] > sv[-1, 1] > 0)
    (True, True)
    """
    th = theta_of_tau(target, tau)
    alpha, gamma, delta, D, z, outlier = closed_form(th)
    # an outlier must lie outside the bulk (here the point 0): none before learning starts
    outlier = np.where(outlier > 0.0, outlier, np.nan)
    sv = np.zeros((th.size, 2))
    gn = np.zeros(th.size)
    for i in range(th.size):
        C = np.array([[alpha[i], gamma[i]], [delta[i], alpha[i]]])
        sv[i] = np.linalg.svd(C, compute_uv=False)
        M = np.linalg.inv(np.eye(2) - C)
        gn[i] = abs(target - z[i]) * np.linalg.norm(M.T[:, 0]) * np.linalg.norm(M[:, 1])
    return z, sv, outlier, gn
