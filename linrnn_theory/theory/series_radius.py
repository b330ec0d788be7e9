r"""Radius of convergence of the series in ``tau_tilde`` (large N).

The readout series ``z(tau~) = sum_k c_k tau~^k`` has a finite radius ``R``: its coefficients
grow like ``c_k ~ R^{-k}`` (a singularity of the analytic continuation of the flow at
``|tau~| = R``). No order of the truncated series is accurate beyond ``R``, and below it the
truncation error of order ``K`` falls off only like ``(tau~ / R)^{K+1}``.

``R`` is estimated from the coefficients themselves, computed numerically to ``n_terms``
orders by the chain recursion (:func:`.chain_series.flow_series`, the same recursion that
generates the symbolic coefficients): a least-squares fit of ``log |c_k|`` against ``k``
over the upper half of the orders gives the growth rate ``1/R`` (root test with the
sub-exponential prefactor fitted away). Measured values are in ``docs/theory.md`` section 5;
at ``g = 0`` the estimate lies a few per cent above the radius of the exact flow
(0.44 against 0.42 at ``z_hat = 1``), so points just inside the estimate may already be
past the true radius.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["readout_coefficients_numeric", "series_radius"]


def readout_coefficients_numeric(g: float, target: float, n_terms: int = 24) -> np.ndarray:
    """Coefficients ``c_0..c_n_terms`` of the readout series in ``tau_tilde`` (floats).

    Examples
    --------
    >>> readout_coefficients_numeric(0.0, 1.0, 3).tolist()     # z~ - z~^2/2 + 3 z~^3/2
    [0.0, 1.0, -0.5, 1.5]
    """
    import mpmath as mp

    from .chain_series import flow_series, large_n_gram
    from .traces import beta_of, moments
    L = n_terms + 1
    with mp.workdps(30):
        phi, _ = moments(g, L + 2)
        b2 = mp.mpf(beta_of(g)) ** 2
        try:          # floats: fast; near g = 1 the beta^(2k) growth overflows them
            with np.errstate(over="raise", invalid="raise"):
                fs = flow_series(n_terms, float(target),
                                 *large_n_gram(L, [float(p) for p in phi]))
                z = [mp.mpf(c) for c in fs.z]
        except FloatingPointError:   # mpf arithmetic: no overflow, about 30x slower
            fs = flow_series(n_terms, mp.mpf(target), *large_n_gram(L, phi))
            z = list(fs.z)
        return np.array([float(c / b2 ** k) for k, c in enumerate(z)])


@lru_cache(maxsize=256)
def series_radius(g: float, target: float, n_terms: int = 20) -> float:
    """Estimated radius of convergence of the readout series in ``tau_tilde``.

    Parameters
    ----------
    g : float
        ``0 <= g < 1``.
    target : float
        ``z_hat`` (the radius depends on ``|z_hat|`` only; ``inf`` at ``z_hat = 0``).
    n_terms : int
        Orders used (the fit takes the upper half).

    Returns
    -------
    float

    Examples
    --------
    >>> round(series_radius(0.0, 1.0), 2)
    0.44
    >>> series_radius(0.6, 1.0) < series_radius(0.0, 1.0)      # shrinks with g
    True
    """
    target = abs(float(target))
    if target == 0.0:
        return float("inf")
    c = readout_coefficients_numeric(float(g), target, int(n_terms))
    k = np.arange(n_terms // 2, n_terms + 1)
    k = k[np.abs(c[k]) > 0]
    slope = np.polyfit(k, np.log(np.abs(c[k])), 1)[0]
    return float(np.exp(-slope))
