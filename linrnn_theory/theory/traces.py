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
g = 0.8), so they are computed in high precision: with ``mpmath`` at a working precision
chosen by the caller (:func:`moments`, :func:`psi_moments`), or as fixed-point Python
integers (:func:`fixed_moments`, :func:`fixed_psi_moments`: a value ``x`` is the integer
``round(x * 2**bits)``), which is what the large-N model (:mod:`.large_n`) is built from
because integer arithmetic is an order of magnitude cheaper than ``mpmath``'s.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Sequence

import mpmath as mp

__all__ = ["moments", "psi_moments", "fixed_moments", "fixed_psi_moments", "to_fixed",
           "beta_of"]


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


def to_fixed(x: float | int | Fraction, bits: int) -> int:
    """``round(x * 2**bits)`` exactly (``x`` a float, integer or fraction).

    Examples
    --------
    >>> to_fixed(0.75, 4), to_fixed(-1, 3)
    (12, -8)
    """
    return round(Fraction(x) * (1 << bits))


def fixed_moments(g: float, n_max: int, bits: int) -> tuple[list[int], list[int]]:
    """``phi_0..phi_n_max`` and ``chi_0..chi_n_max`` in fixed point (``round(x * 2**bits)``).

    The float ``g`` is taken exactly; every product and quotient is truncated to
    ``2**-bits``, so the absolute error is a few units of ``2**-bits`` times the growth of
    the sequences.

    Examples
    --------
    >>> phi, chi = fixed_moments(0.6, 2, 60)
    >>> [round(p / 2 ** 60, 10) for p in phi]       # 1, beta, beta^4
    [1.0, 1.5625, 5.9604644775]
    """
    one = 1 << bits
    g2 = to_fixed(Fraction(g) ** 2, bits)
    den = one - g2
    phi, chi = [one], [one]
    for n in range(1, n_max + 1):
        acc = sum(phi[k] * chi[n - k] for k in range(1, n)) >> bits
        p = ((chi[n - 1] + ((g2 * acc) >> bits)) << bits) // den
        phi.append(p)
        acc = sum(chi[k] * chi[n - k] for k in range(1, n)) >> bits
        chi.append(((p + ((g2 * acc) >> bits)) << bits) // den)
    return phi, chi


def fixed_psi_moments(g: float, t: int, chi: Sequence[int], bits: int) -> list[int]:
    """``psi_0..psi_n`` at ``lambda = g^2 + 1/t`` in fixed point (``t`` and ``chi`` fixed
    point too): ``psi_n = t (chi_n + g^2 sum_{k<n} psi_k chi_{n-k})``, a polynomial of
    degree ``n + 1`` in ``t``.

    Examples
    --------
    >>> phi, chi = fixed_moments(0.5, 1, 60)
    >>> t = to_fixed(1 / (0.9 - 0.25), 60)
    >>> round(fixed_psi_moments(0.5, t, chi, 60)[0] / 2 ** 60, 10)   # 1/(lambda - g^2)
    1.5384615385
    """
    g2 = to_fixed(Fraction(g) ** 2, bits)
    psi: list[int] = []
    for n in range(len(chi)):
        acc = sum(psi[k] * chi[n - k] for k in range(n)) >> bits
        psi.append((t * (chi[n] + ((g2 * acc) >> bits))) >> bits)
    return psi
