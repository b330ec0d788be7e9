r"""Property tests, series: the error of the order-K series against the large-N ODE is
``c_{K+1} tau~^(K+1) (1 + theta)``, ``|theta| <= 1/3``, and perturbed coefficients are
caught.

Structure (checkers and must-fail tests), notation and shared helpers:
``tests/reference.py``; run with ``pytest -m property`` (``docs/testing.md``).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from linrnn_theory import theory
from linrnn_theory.theory import _series_coefficients as gen
from linrnn_theory.theory.traces import beta_of

import strategies as S
from reference import EPS

pytestmark = pytest.mark.property


# ============================================ series: order-K error ~ c_{K+1} tau~^(K+1)

def series_window(g: float, zh: float, K: int):
    r"""Window of ``tau~`` where the order-K error is dominated by its first neglected term.

    With the known coefficients ``c_0 .. c_8`` (``readout_coefficients``), let
    ``rho = max_{j = K+2..8} (|c_j| / |c_{K+1}|)^(1/(j-K-1))`` (root test: every known
    coefficient obeys ``|c_j| <= |c_{K+1}| rho^(j-K-1)``) and assume the unknown ones
    (``j > 8``) grow no faster than ``2 rho`` per order. Then for ``tau~ <= 1 / (8 rho)``

        ``|r_K - c_{K+1} tau~^(K+1)| <= |c_{K+1}| tau~^(K+1) (2 rho tau~) / (1 - 2 rho tau~)
        <= |c_{K+1}| tau~^(K+1) / 3``,

    i.e. ``r_K = c_{K+1} tau~^(K+1) (1 + theta)``, ``|theta| <= 1/3`` (a two-sided bound:
    the error is neither larger nor smaller than its order says)."""
    b = beta_of(g)
    c = np.array(gen.readout_coefficients(zh, b), dtype=float)
    lead = abs(c[K + 1])
    rho = max((abs(c[j]) / lead) ** (1.0 / (j - K - 1)) for j in range(K + 2, gen.ORDER + 1))
    return c, 1.0 / (8.0 * max(rho, 1e-12))


def check_series_remainder(tt, z_ref, z_series, c_next, K, floor):
    r"""``|r_K - c_{K+1} tt^(K+1)| <= |c_{K+1}| tt^(K+1) / 3 + floor`` at every point
    (``r_K = z_ref - z_series``), see :func:`series_window`."""
    r = np.asarray(z_ref) - np.asarray(z_series)
    lead = c_next * np.asarray(tt) ** (K + 1)
    dev = np.abs(r - lead)
    bound = np.abs(lead) / 3.0 + floor
    worst = float(np.max(dev / bound))
    assert worst <= 1.0, f"order {K}: residual deviates from c_(K+1) tau~^(K+1) by " \
                         f"{worst:.2f} x the allowed |c_(K+1)| tau~^(K+1)/3 + floor"


def series_case(g, zh, K):
    """Reference (large-N ODE, depth 16, ``rtol = 1e-13``) and series on the window."""
    c, tt_max = series_window(g, zh, K)
    b = beta_of(g)
    tt = np.geomspace(tt_max / 8.0, tt_max, 6)
    kw = dict(g=g, target=zh, tau=tt / b ** 2, outlier=False, grad_norm=False)
    ref = theory.predict(method="ode", depth=16, rtol=1e-13, **kw)
    ser = theory.predict(method="series", order=K, **kw)
    # floor: the ODE's global error (~1e3 rtol |z_hat|: a few hundred steps at rtol 1e-13)
    # plus the rounding of the series (Horner, 2 K eps sum |c_k tt^k|)
    floor = 1e-10 * abs(zh) + 2 * K * EPS * float(np.max(np.abs(c) @ tt[None, :] ** np.arange(
        c.size)[:, None]))
    return tt, ref, ser, c, floor


@given(g=S.gains(), zh=S.targets(), K=st.integers(1, gen.ORDER - 2))
def test_series_error_is_the_next_term(g, zh, K):
    """Any ``g in [0, 0.9]``, ``z_hat`` of either sign, orders ``K = 1 .. 6``: the error of
    the order-K series against the large-N ODE is ``c_{K+1} tau~^(K+1) (1 + theta)``,
    ``|theta| <= 1/3``, on the window of :func:`series_window`. Points whose leading term is
    below ``1e3`` times the numerical floor carry no information; where fewer than two
    remain (high orders with a narrow window) the next lower order is tested instead."""
    for k in range(K, 0, -1):
        tt, ref, ser, c, floor = series_case(g, zh, k)
        keep = np.abs(c[k + 1]) * tt ** (k + 1) > 1e3 * floor
        if keep.sum() >= 2:
            break
    note(f"order {k}, window tau~ <= {tt[-1]:.3g}, {keep.sum()} points")
    assert keep.sum() >= 2
    check_series_remainder(tt[keep], ref.readout[keep], ser.readout[keep], c[k + 1], k, floor)


def test_series_checker_rejects_wrong_series():
    """Rejected: the series with its ``K``-th term dropped, the series evaluated with
    ``beta`` in place of ``beta^2`` in ``tau~``, and the series scaled by ``1 + 1e-3``."""
    g, zh, K = 0.6, 1.0, 3
    tt, ref, ser, c, floor = series_case(g, zh, K)
    check_series_remainder(tt, ref.readout, ser.readout, c[K + 1], K, floor)     # sanity
    dropped = ser.readout - c[K] * tt ** K
    with pytest.raises(AssertionError):
        check_series_remainder(tt, ref.readout, dropped, c[K + 1], K, floor)
    b = beta_of(g)
    wrong_beta = theory.predict(g=g, target=zh, tau=tt / b ** 2 / b, method="series", order=K,
                                outlier=False, grad_norm=False)
    with pytest.raises(AssertionError):
        check_series_remainder(tt, ref.readout, wrong_beta.readout, c[K + 1], K, floor)
    with pytest.raises(AssertionError):
        check_series_remainder(tt, ref.readout, ser.readout * (1 + 1e-3), c[K + 1], K, floor)


@pytest.mark.parametrize("k, rel", [(1, 1e-3), (2, 1e-3), (3, 1e-2)])
def test_series_property_rejects_a_perturbed_generated_coefficient(monkeypatch, k, rel):
    """Deliberately broken theory: one coefficient ``c_k`` of the generated series
    (``_series_coefficients.readout_coefficients``, as ``predict(method="series")`` reads
    it) scaled by ``1 + rel``. The series property of order 3 rejects it.

    Sensitivity: the order-K check allows ``|c_{K+1}| tau~^(K+1) / 3``, so a relative error
    ``rel`` of the *last* kept coefficient ``c_K`` is resolved where ``3 rel |c_K| >
    |c_{K+1}| tau~`` at the smallest ``tau~`` of the window: ``rel >~ 3e-3`` for ``c_3`` at
    ``g = 0.6`` (measured: ``1e-2`` exceeds the bound 3-fold, ``3e-3`` reaches 0.9 of it).
    Lower coefficients carry lower powers of ``tau~`` and are resolved at ``1e-3``."""
    g, zh, K = 0.6, 1.0, 3
    tt, ref, ser, c, floor = series_case(g, zh, K)
    check_series_remainder(tt, ref.readout, ser.readout, c[K + 1], K, floor)     # sanity
    original = gen.readout_coefficients

    def perturbed(zhat, beta):
        cs = list(original(zhat, beta))
        cs[k] = cs[k] * (1 + rel)
        return cs
    monkeypatch.setattr(gen, "readout_coefficients", perturbed)
    bad = theory.predict(g=g, target=zh, tau=tt / beta_of(g) ** 2, method="series", order=K,
                         outlier=False, grad_norm=False)
    assert np.any(bad.readout != ser.readout)            # the patch reached the prediction
    with pytest.raises(AssertionError):
        check_series_remainder(tt, ref.readout, bad.readout, c[K + 1], K, floor)
