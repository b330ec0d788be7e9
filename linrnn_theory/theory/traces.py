r"""Large-N normalised traces needed by the theory, evaluated in high precision.

With ``R = (I - W0)^{-1}``, ``H = R R^T`` and ``G(lambda) = (lambda - W0)^{-1}`` for
``W0 = g J`` (``J_ij ~ N(0, 1/N)``), the limits ``N -> infinity`` of

* ``phi_n = tr(H^n) / N``,
* ``chi_n = tr(R^T H^n) / N``,
* ``psi_n(lambda) = tr(G(lambda) R^T H^n) / N``

obey the Schwinger-Dyson convolution recursions of the circular element (derived
symbolically in :mod:`linrnn_theory.derivations.free_probability`, which also checks them against
non-crossing pairings and sampled matrices)::

    phi_n = chi_{n-1} + g^2 sum_{k=1}^{n} phi_k chi_{n-k}
    chi_n = phi_n     + g^2 sum_{k=1}^{n} chi_k chi_{n-k}
    lambda psi_n = chi_n + g^2 sum_{k=0}^{n} psi_k chi_{n-k}

(``phi_0 = chi_0 = 1``). The sequences grow roughly geometrically (by 20-90 per power at
g = 0.8), so they are computed with ``mpmath`` at a working precision chosen by the caller.
"""

from __future__ import annotations

from typing import Any, Sequence

import mpmath as mp

__all__ = ["moments", "psi_moments", "beta_of"]


def beta_of(g: float) -> float:
    """``beta = 1 / (1 - g^2)``, the large-N norm gain ``tr(R R^T) / N``.

    Examples
    --------
    >>> beta_of(0.6)
    1.5625
    """
    return 1.0 / (1.0 - g * g)


def moments(g: Any, n_max: int) -> tuple[list[Any], list[Any]]:
    """``phi_0..phi_n_max`` and ``chi_0..chi_n_max`` as ``mpmath.mpf`` (current precision).

    Examples
    --------
    >>> phi, chi = moments(0.6, 2)
    >>> [round(float(p), 10) for p in phi]       # 1, beta, beta^4
    [1.0, 1.5625, 5.9604644775]
    """
    g2 = mp.mpf(g) ** 2
    phi = [mp.mpf(1)]
    chi = [mp.mpf(1)]
    for n in range(1, n_max + 1):
        p = (chi[n - 1] + g2 * mp.fsum(phi[k] * chi[n - k] for k in range(1, n))) / (1 - g2)
        phi.append(p)
        c = (p + g2 * mp.fsum(chi[k] * chi[n - k] for k in range(1, n))) / (1 - g2)
        chi.append(c)
    return phi, chi


def psi_moments(g: Any, lam: Any, chi: Sequence[Any]) -> list[Any]:
    """``psi_0..psi_n(lambda)`` for the ``chi`` sequence given (same length).

    Examples
    --------
    >>> phi, chi = moments(0.5, 1)
    >>> [round(float(p), 10) for p in psi_moments(0.5, 0.9, chi)][:1]   # 1/(lambda - g^2)
    [1.5384615385]
    """
    g2 = mp.mpf(g) ** 2
    lam = mp.mpf(lam)
    psi = []
    for n in range(len(chi)):
        s = chi[n] + g2 * mp.fsum(psi[k] * chi[n - k] for k in range(0, n))
        psi.append(s / (lam - g2 * chi[0]))
    return psi
