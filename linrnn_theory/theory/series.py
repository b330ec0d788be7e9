"""Evaluate the perturbative series in ``tau_tilde = beta^2 tau`` (any order up to the
generated one), from the coefficients derived symbolically in :mod:`linrnn_theory.derivations`.

The readout series is odd in ``z_hat`` and the singular-value series even; the published
third-order readout (docs/paper.md section 4) is
``z = z_hat tau~ - z_hat tau~^2/2 + z_hat tau~^3 (1 + 8 z_hat^2 beta)/6``.
"""

from __future__ import annotations

import numpy as np

from . import _series_coefficients as gen
from .traces import beta_of

__all__ = ["MAX_ORDER", "readout_series", "singular_value_series", "outlier_series_g0",
           "delta_chain_series"]

MAX_ORDER = gen.ORDER


def _check_order(order: int, lowest: int = 1) -> int:
    if not isinstance(order, (int, np.integer)) or isinstance(order, bool):
        raise ValueError(f"order must be an integer, got {order!r}")
    if not lowest <= order <= MAX_ORDER:
        raise ValueError(f"order must lie in [{lowest}, {MAX_ORDER}] (generated coefficients; "
                         f"derive more with `linrnn-theory derive --write-module`), got {order}")
    return int(order)


def _poly(coeffs, x, order):
    out = np.zeros_like(x, dtype=float)
    for k in range(order, -1, -1):
        out = out * x + coeffs[k]
    return out


def readout_series(g: float, target: float, tau_tilde: np.ndarray, order: int) -> np.ndarray:
    """Readout ``z`` truncated after ``tau_tilde^order``.

    Examples
    --------
    >>> readout_series(0.0, 1.0, np.array([0.1]), 3)       # 0.1 - 0.005 + 0.0015
    array([0.0965])
    """
    order = _check_order(order)
    c = gen.readout_coefficients(float(target), beta_of(g))
    return _poly(c, np.asarray(tau_tilde, dtype=float), order)


def singular_value_series(g: float, target: float, tau_tilde: np.ndarray, order: int
                          ) -> np.ndarray:
    """Top two singular values of ``Delta W`` truncated after ``tau_tilde^order``
    (``order >= 3``; ``sigma_2 = O(tau_tilde^3)``). Returns an ``(n, 2)`` array.

    Examples
    --------
    >>> singular_value_series(0.0, 1.0, np.array([0.1]), 3).round(6).tolist()
    [[0.09575, 8.3e-05]]
    """
    order = _check_order(order, 3)
    b = beta_of(g)
    zh = abs(float(target))
    x = np.asarray(tau_tilde, dtype=float)
    s1 = _poly(gen.sigma1_coefficients(zh, b), x, order)
    s2 = _poly(gen.sigma2_coefficients(zh, b), x, order)
    return np.column_stack([s1, s2])


def outlier_series_g0(target: float, tau: np.ndarray, order: int) -> np.ndarray:
    """Outlier eigenvalue of ``W`` at ``g = 0`` truncated after ``tau^order``.

    Examples
    --------
    >>> float(outlier_series_g0(1.0, np.array([0.01]), 2)[0] / 1e-4).__round__(6)  # 1/2 + 1/sqrt(3)
    1.07735
    """
    order = _check_order(order)
    c = gen.outlier_g0_coefficients(abs(float(target)))
    return _poly(c, np.asarray(tau, dtype=float), order)


def delta_chain_series(g: float, target: float, order: int) -> list[np.ndarray]:
    """Chain-coordinate coefficients ``C_k`` (k = 0..order) of ``Delta W`` in ``tau``
    (numeric), from the generic recursion :func:`.chain_series.flow_series`.

    Examples
    --------
    >>> Cs = delta_chain_series(0.5, 1.0, 2)
    >>> float(Cs[1][0, 0])               # Delta W = z_hat tau u_1 v_1^T + O(tau^2)
    1.0
    """
    import mpmath as mp

    from .chain_series import flow_series, large_n_gram
    from .traces import moments
    L = order + 1
    with mp.workdps(40):
        phi, _ = moments(g, L + 2)
    data = large_n_gram(L, [float(p) for p in phi])
    fs = flow_series(order, float(target), *data)
    return [np.array(C, dtype=float) for C in fs.C]
