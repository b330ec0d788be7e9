"""The perturbative series in ``tau_tilde = beta^2 tau``: symbolic derivation, generated
module, numeric evaluation and convergence towards the gradient flow.

* The order-3 readout equals the paper's published expansion symbolically.
* Re-deriving to order 5 reproduces the stored strings of the generated module
  ``linrnn_theory/theory/_series_coefficients.py`` (symbolic equality) -- so the numeric
  ``method="series"`` evaluates what the derivation produces.
* At ``g = 0`` (``beta = 1``) the general series agree with the exact closed form, and for
  ``z_hat -> 0`` with the linear flow ``z = z_hat (1 - exp(-tau_tilde))``.
* The residual of the order-K series against the flow scales as ``tau_tilde^(K+1)``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

from linrnn_theory.derivations.exact_g0 import g0_series, verify_closed_form
from linrnn_theory.derivations.flow_series import symbolic_series
from linrnn_theory.derivations.generate import derive_all
from linrnn_theory import theory
from linrnn_theory.theory import _series_coefficients as gen
from linrnn_theory.theory import series as ser
from linrnn_theory.theory.traces import beta_of

ZP = sp.Symbol("zhat", positive=True)     # symbol used by derive_all / the stored strings
ZR = sp.Symbol("zhat", real=True)         # symbol of flow_series.symbolic_series
B = sp.Symbol("beta", positive=True)
TT = sp.Symbol("tau_tilde", nonnegative=True)
STORED = ("readout", "sigma1", "sigma2", "outlier_g0", "ab_norm_sq", "shuffled_readout")
DERIVE_ORDER = 5                          # re-derivation order (~17 s; the module holds 8)


def stored(key: str) -> list[sp.Expr]:
    """Coefficients stored in the generated module, parsed with the derivation's symbols."""
    return [sp.sympify(s, locals={"zhat": ZP, "beta": B}) for s in getattr(gen, key.upper())]


def is_zero(expr) -> bool:
    return sp.simplify(sp.expand(expr)) == 0


@pytest.fixture(scope="module")
def derived():
    """All series re-derived from scratch (free probability -> chain recursion -> TPS)."""
    return derive_all(DERIVE_ORDER)


# -- the published expansion ------------------------------------------------------------
def test_order3_readout_equals_published_expansion():
    """docs/paper.md section 4: z = zh tt - zh tt^2/2 + zh tt^3/6 (1 + 8 zh^2 beta) + O(tt^4)."""
    c = symbolic_series(3)
    assert len(c) == 4
    published = ZR * TT - ZR * TT ** 2 / 2 + ZR * TT ** 3 / 6 * (1 + 8 * ZR ** 2 * B)
    ours = sum(ck * TT ** k for k, ck in enumerate(c))
    assert is_zero(ours - published)


def test_lower_orders_do_not_depend_on_truncation():
    """Deriving to a higher order leaves the lower coefficients unchanged."""
    c3, c5 = symbolic_series(3), symbolic_series(5)
    assert all(is_zero(a - b) for a, b in zip(c3, c5[:4]))


# -- derivation == generated module --------------------------------------------------------
def test_generated_module_order():
    assert gen.ORDER >= DERIVE_ORDER
    assert ser.MAX_ORDER == gen.ORDER
    for key in STORED:
        assert len(getattr(gen, key.upper())) == gen.ORDER + 1


@pytest.mark.parametrize("key", STORED)
def test_rederived_coefficients_equal_generated_module(derived, key):
    """Symbolic equality of every coefficient up to order 5 with the stored string."""
    ours, theirs = derived[key], stored(key)
    assert len(ours) == DERIVE_ORDER + 1
    for k in range(DERIVE_ORDER + 1):
        assert is_zero(ours[k] - theirs[k]), f"{key}[{k}]: derived {ours[k]} != stored {theirs[k]}"


def test_loss_series_is_half_squared_error(derived):
    z, loss = derived["readout"], derived["loss"]
    zs = sum(c * TT ** k for k, c in enumerate(z))
    ls = sp.expand((ZP - zs) ** 2 / 2)
    for k in range(DERIVE_ORDER + 1):
        assert is_zero(ls.coeff(TT, k) - loss[k])


@pytest.mark.parametrize("key", STORED)
def test_generated_functions_evaluate_stored_strings(key):
    """``gen.<key>_coefficients`` (the code ``method="series"`` runs) equals the stored
    strings, exactly evaluated, at all orders; also for array arguments."""
    fn = getattr(gen, f"{key}_coefficients")
    exprs = stored(key)
    for zh, b in ((0.5, 1.0), (1.0, 1.5625), (2.0, 1.0 / (1 - 0.81)), (-1.3, 1.1)):
        if key in ("sigma1", "sigma2", "outlier_g0", "ab_norm_sq") and zh < 0:
            continue                                    # even quantities: stored for zhat > 0
        args = (zh,) if key == "outlier_g0" else (zh, b)
        num = fn(*args)
        for k, e in enumerate(exprs):
            exact = float(e.subs({ZP: sp.nsimplify(zh), B: sp.nsimplify(b)}).evalf(30)) \
                if zh > 0 else float(e.subs({ZP: zh, B: b}, simultaneous=True).evalf(30))
            assert math.isclose(float(num[k]), exact, rel_tol=1e-12, abs_tol=1e-14)
    zarr = np.array([0.5, 1.0, 2.0])
    arr = fn(zarr) if key == "outlier_g0" else fn(zarr, 1.5)
    assert all(np.shape(a) == (3,) for a in arr)


# -- numeric evaluation of the series ------------------------------------------------------
def _poly(coeffs, x, order):
    return sum(float(coeffs[k]) * x ** k for k in range(order + 1))


@pytest.mark.parametrize("g", [0.0, 0.3, 0.6, 0.9])
def test_numeric_series_evaluate_generated_coefficients(g):
    b = beta_of(g)
    x = np.array([0.0, 0.05, 0.2, 0.7])
    for zh in (0.5, 2.0):
        cz = [c.subs({ZP: zh, B: b}) for c in stored("readout")]
        c1 = [c.subs({ZP: zh, B: b}) for c in stored("sigma1")]
        c2 = [c.subs({ZP: zh, B: b}) for c in stored("sigma2")]
        for K in range(1, gen.ORDER + 1):
            np.testing.assert_allclose(ser.readout_series(g, zh, x, K), _poly(cz, x, K),
                                       rtol=1e-13, atol=1e-15)
            if K >= 3:
                sv = ser.singular_value_series(g, zh, x, K)
                np.testing.assert_allclose(sv[:, 0], _poly(c1, x, K), rtol=1e-13, atol=1e-15)
                np.testing.assert_allclose(sv[:, 1], _poly(c2, x, K), rtol=1e-13, atol=1e-15)
        # odd readout, even singular values
        np.testing.assert_allclose(ser.readout_series(g, -zh, x, 5), -ser.readout_series(g, zh, x, 5))
        np.testing.assert_allclose(ser.singular_value_series(g, -zh, x, 5),
                                   ser.singular_value_series(g, zh, x, 5))
    co = [c.subs({ZP: 1.5}) for c in stored("outlier_g0")]
    np.testing.assert_allclose(ser.outlier_series_g0(1.5, x, 6), _poly(co, x, 6), rtol=1e-13)


def test_predict_series_uses_rescaled_time_and_input_amplitude():
    """``predict(method="series")`` evaluates the series at ``tau_tilde = beta^2 tau``; an input
    amplitude ``c`` maps to target ``z_hat / c`` and time ``c^2 tau`` (readout times ``c``)."""
    g, zh, K = 0.6, 1.0, 5
    b = beta_of(g)
    tau = np.linspace(0.0, 0.2, 9)
    p = theory.predict(g=g, target=zh, tau=tau, method="series", order=K, outlier=False)
    np.testing.assert_allclose(p.tau_tilde, b * b * tau)
    np.testing.assert_allclose(p.readout, ser.readout_series(g, zh, b * b * tau, K), rtol=1e-14)
    np.testing.assert_allclose(p.loss, 0.5 * (zh - p.readout) ** 2, rtol=1e-14)
    np.testing.assert_allclose(p.singular_values,
                               ser.singular_value_series(g, zh, b * b * tau, K), rtol=1e-14)
    c = 2.0
    q = theory.predict(g=g, target=zh, tau=tau, method="series", order=K, outlier=False,
                       input_amp=c)
    np.testing.assert_allclose(q.readout, c * ser.readout_series(g, zh / c, c * c * b * b * tau, K),
                               rtol=1e-14)


@pytest.mark.parametrize("g", [0.3, 0.6])
def test_numeric_chain_recursion_matches_generated_coefficients(g):
    """The float run of the chain recursion (``chain_series.flow_series`` on ``traces.moments``,
    the path of ``series.delta_chain_series``) reproduces the generated readout
    coefficients ``c_k beta^(2k)`` in unscaled ``tau``; ``Delta W = z_hat tau u_1 v_1^T + ...``"""
    import mpmath as mp

    from linrnn_theory.theory.chain_series import flow_series, large_n_gram
    from linrnn_theory.theory.traces import moments
    zh, K, b = 1.3, 6, beta_of(g)
    with mp.workdps(40):
        phi, _ = moments(g, K + 3)
    fs = flow_series(K, zh, *large_n_gram(K + 1, [float(p) for p in phi]))
    c = gen.readout_coefficients(zh, b)
    for k in range(K + 1):
        assert float(fs.z[k]) == pytest.approx(c[k] * b ** (2 * k), rel=1e-10, abs=1e-14)
    Cs = ser.delta_chain_series(g, zh, 3)
    assert Cs[1][0, 0] == pytest.approx(zh, rel=1e-14)
    assert np.count_nonzero(Cs[1]) == 1


# -- g = 0 and small-target limits -------------------------------------------------------
def test_g0_closed_form_solves_the_flow():
    assert verify_closed_form()


def test_general_series_at_beta_1_equal_g0_closed_form(derived):
    """The general series (chains, Rayleigh-Schroedinger for ``sigma_1``, deflation for
    ``sigma_2``) at ``beta = 1`` equal the Taylor series of the exact ``g = 0`` solution
    (angle parametrisation): two independent routes."""
    g0 = g0_series(DERIVE_ORDER)
    zh0 = g0["zhat"]
    for key, g0key in (("readout", "z"), ("sigma1", "sigma1"), ("sigma2", "sigma2")):
        for k in range(DERIVE_ORDER + 1):
            general = derived[key][k].subs(B, 1).subs(ZP, zh0)
            assert is_zero(general - g0[g0key][k]), f"{key}[{k}]"
    for k in range(DERIVE_ORDER + 1):
        assert is_zero(derived["outlier_g0"][k] - g0["outlier"][k].subs(zh0, ZP))


@pytest.mark.parametrize("target", [0.5, 1.0, 2.0, 4.0])
def test_g0_series_converges_to_exact_solution(target):
    """Numeric: at g = 0 the order-K readout, top singular value and outlier approach the
    exact closed form with residual ~ tau^(K+1) (the paper: O(tau^4) at order 3).

    Window ``tau in [0.005, 0.05] / z_hat^2``: the ratio of successive coefficients is
    ``|rho| <~ 5 z_hat^2`` (stored tables at beta = 1), so the fitted slope deviates from
    K + 1 by about ``|rho| <tau> = 5 * 0.045 / ln(10) ~ 0.1``; band 0.25. Round-off floor:
    readout and singular value are computed to ~1e-16 relative, but the outlier
    ``1 - cos(theta) + sqrt(gamma delta)`` only to ~1e-16 *absolute* (cancellation), so
    points whose residual is below 100x that floor (only the order-5 outlier at
    z_hat >= 2 near the lower end) are left out of the fit."""
    tau = np.geomspace(5e-3, 5e-2, 8) / target ** 2
    p = theory.predict(g=0.0, target=target, tau=tau, method="exact_g0", grad_norm=False)
    for K in (3, 4, 5):
        s = theory.predict(g=0.0, target=target, tau=tau, method="series", order=K)
        for name, ref, approx in (("readout", p.readout, s.readout),
                                  ("sigma1", p.singular_values[:, 0], s.singular_values[:, 0]),
                                  ("outlier", p.outlier_eigenvalue, s.outlier_eigenvalue)):
            r = np.abs(ref - approx)
            keep = r > 100 * 1.1e-16 * (1.0 if name == "outlier" else np.abs(ref))
            assert keep.sum() >= 4, (name, K)          # >= half a decade in tau
            slope = np.polyfit(np.log(tau[keep]), np.log(r[keep]), 1)[0]
            assert abs(slope - (K + 1)) < 0.25, (name, K, slope)


def test_small_target_limit_is_the_linear_flow():
    """``z_hat -> 0``: the flow is linear, ``z = z_hat (1 - exp(-tau_tilde))``,
    ``Delta W = (int e) R^T w (R m)^T`` so ``sigma_1 = z_hat (1 - exp(-tau_tilde)) / beta``,
    the shuffled readout ``w^T Delta W m = z_hat (1 - exp(-tau_tilde)) / beta^2`` and
    ``|a|^2 |b|^2 = beta^2`` (closed forms of ``theory/observables.py``)."""
    lin = [sp.Integer(0)] + [sp.Integer(-1) ** (k + 1) / sp.factorial(k)
                             for k in range(1, gen.ORDER + 1)]
    for key, scale in (("readout", 1), ("sigma1", 1 / B), ("shuffled_readout", 1 / B ** 2)):
        for k, c in enumerate(stored(key)):
            assert is_zero(sp.limit(c / ZP, ZP, 0) - lin[k] * scale), (key, k)
    for k, c in enumerate(stored("ab_norm_sq")):
        assert is_zero(c.subs(ZP, 0) - (B ** 2 if k == 0 else 0)), ("ab_norm_sq", k)
    for k, c in enumerate(stored("sigma2")):
        assert is_zero(sp.limit(c / ZP, ZP, 0)), ("sigma2", k)     # sigma_2 = O(z_hat^3)


# -- convergence to the flow: residual of order K ~ tau_tilde^(K+1) ------------------------
TT_WINDOW = np.geomspace(0.01, 0.1, 13)


def _ode_reference(g, target, tau):
    """Large-N gradient flow (reduced ODE on the Krylov chains), deep enough and tight
    enough to be exact at the level of the smallest residual tested; returns it and a
    shallower solution (depth 12) for the convergence check."""
    kw = dict(g=g, target=target, tau=tau, method="ode", rtol=1e-13, outlier=False,
              grad_norm=False)
    return theory.predict(depth=16, **kw), theory.predict(depth=12, **kw)


@pytest.mark.parametrize("g", [0.3, 0.6])
@pytest.mark.parametrize("target", [0.5, 1.0])
def test_series_residual_scales_as_next_power(g, target):
    """For ``K = 1..5``, ``r_K = z_flow - z_series,K = c_{K+1} tt^{K+1} (1 + rho_K tt + ...)``
    with ``rho_K = c_{K+2} / c_{K+1}``. The least-squares log-log slope over the window
    ``tt in [0.01, 0.1]`` is then ``K + 1 + rho_K <tt>`` to first order, with
    ``<tt> = (0.1 - 0.01) / ln 10 = 0.039`` the mean of a log-uniform grid; the largest
    ``|rho_K|`` at these (g, z_hat) is 4.5 (K = 1, g = 0.6, z_hat = 1: 1.82 measured), so
    ``|slope - (K+1)| < 0.25`` both holds and identifies the exponent (neighbours differ
    by 1). At ``tt = 0.01`` the prefactor itself is checked: ``r_K / (c_{K+1} tt^{K+1})``
    lies within ``2 |rho_K| tt`` of 1.

    Reference: the large-N reduced ODE, which *is* the large-N gradient flow (its
    truncation error is checked to be < 1e-3 of the smallest residual used); the
    simulation check at finite N is ``validation/series_vs_simulation.py``."""
    b = beta_of(g)
    tau = TT_WINDOW / b ** 2
    ref, shallow = _ode_reference(g, target, tau)
    c = gen.readout_coefficients(target, b)
    for K in range(1, 6):
        s = theory.predict(g=g, target=target, tau=tau, method="series", order=K, outlier=False)
        r = ref.readout - s.readout
        # reference converged in depth and tolerance far below every residual (measured <= 1e-4)
        assert np.all(np.abs(ref.readout - shallow.readout) < 1e-3 * np.abs(r))
        assert np.all(np.sign(r) == np.sign(c[K + 1]))          # no zero crossing in window
        slope = np.polyfit(np.log(TT_WINDOW), np.log(np.abs(r)), 1)[0]
        assert abs(slope - (K + 1)) < 0.25, (K, slope)
        rho = c[K + 2] / c[K + 1]
        pref = r[0] / (c[K + 1] * TT_WINDOW[0] ** (K + 1))
        assert abs(pref - 1) < 2 * abs(rho) * TT_WINDOW[0], (K, pref)


@pytest.mark.parametrize("g", [0.3, 0.6])
def test_singular_value_series_residual_scales_as_next_power(g):
    """Same for the top two singular values of ``Delta W`` (orders 3..5, z_hat = 1)."""
    b = beta_of(g)
    tau = TT_WINDOW / b ** 2
    ref, shallow = _ode_reference(g, 1.0, tau)
    for K in (3, 4, 5):
        s = theory.predict(g=g, target=1.0, tau=tau, method="series", order=K, outlier=False)
        for j in (0, 1):
            r = np.abs(ref.singular_values[:, j] - s.singular_values[:, j])
            dev = np.abs(ref.singular_values[:, j] - shallow.singular_values[:, j])
            assert np.all(dev < 1e-2 * r), (K, j)
            slope = np.polyfit(np.log(TT_WINDOW), np.log(r), 1)[0]
            assert abs(slope - (K + 1)) < 0.25, (K, j, slope)
