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

from typing import Any

import numpy as np
from scipy.integrate import solve_ivp

__all__ = ["theta_of_tau", "closed_form", "g0_trajectory"]


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
