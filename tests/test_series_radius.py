"""The series in tau_tilde has a finite radius: its estimate, and the status beyond it."""

from __future__ import annotations

import numpy as np
import pytest

from linrnn_theory import theory
from linrnn_theory.theory.exact_g0 import g0_trajectory
from linrnn_theory.theory.series import readout_series
from linrnn_theory.theory.series_radius import readout_coefficients_numeric, series_radius


def test_numeric_coefficients_equal_the_generated_ones():
    for g, zh in ((0.0, 1.0), (0.6, 2.0)):
        c = readout_coefficients_numeric(g, zh, theory.MAX_ORDER)
        x = np.array([0.013])
        for order in range(1, theory.MAX_ORDER + 1):
            poly = np.polyval(c[: order + 1][::-1], x)
            assert poly == pytest.approx(readout_series(g, zh, x, order), rel=1e-10)


def test_radius_is_stable_in_the_number_of_terms():
    for g, zh in ((0.0, 1.0), (0.6, 1.0), (0.9, 2.0)):
        assert series_radius(g, zh, 16) == pytest.approx(series_radius(g, zh, 28), rel=0.05)


def test_radius_matches_where_successive_orders_stop_converging_at_g0():
    """Independent check against the exact g = 0 flow: inside the estimated radius the
    truncation error of the order-K partial sums falls with K, beyond it it grows."""
    R = series_radius(0.0, 1.0)
    c = readout_coefficients_numeric(0.0, 1.0, 28)
    for x, falls in ((0.8 * R, True), (1.25 * R, False)):
        exact = g0_trajectory(1.0, np.array([x]))[0][0]
        err = [abs(np.polyval(c[: K + 1][::-1], x) - exact) for K in (16, 22, 28)]
        assert (err[2] < err[1] < err[0]) if falls else (err[2] > err[1] > err[0]), (x, err)


def test_series_beyond_radius_is_flagged():
    p = theory.predict(g=0.6, target=1.0, tau=np.linspace(0, 1, 11) * 0.64 ** 2,
                       method="series", order=5)          # tau_tilde up to 1
    assert p.status == "beyond_radius"
    assert "use method='ode'" in p.message and "R = 0.36" in p.message
    p = theory.predict(g=0.999, target=1.0, tau=np.linspace(0, 0.3, 7), method="series")
    assert p.status == "beyond_radius"


def test_series_inside_radius_stays_ok_and_records_the_radius():
    p = theory.predict(g=0.6, target=1.0, tau=np.linspace(0, 0.1, 5), method="series")
    assert p.status == "ok"
    assert p.params["radius_tau_tilde"] == pytest.approx(series_radius(0.6, 1.0))
    assert p.tau_tilde[-1] < p.params["radius_tau_tilde"]


def test_radius_in_user_units_scales_with_the_input_amplitude():
    """The flow with input c is the unit flow with target z/c at time c^2 tau."""
    p = theory.predict(g=0.3, target=1.0, tau=[0.0, 0.01], method="series", input_amp=2.0)
    assert p.params["radius_tau_tilde"] == pytest.approx(series_radius(0.3, 0.5) / 4.0)


def test_cli_prints_the_status(capsys):
    from linrnn_theory.cli import main
    assert main(["predict", "--g", "0.6", "--target", "1", "--method", "series", "--order",
                 "5", "--tau-max", "1", "--tilde", "--n-tau", "11"]) == 0
    assert "status beyond_radius" in capsys.readouterr().out
