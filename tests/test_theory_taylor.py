"""The Taylor-step integrator of the reduced flow against DOP853, and the outlier bound."""

import numpy as np
import pytest

import linrnn_theory as lt
from linrnn_theory.theory.instance import instance_model
from linrnn_theory.theory.large_n import large_n_model, outlier_terms
from linrnn_theory.theory.observables import _flow_states
from linrnn_theory.theory.reduced import _outlier_safe, integrate_many
from linrnn_theory.theory.traces import beta_of
from reference import assert_outliers_match_root_search


def _both(models, target, tau, **kw):
    a = integrate_many(models, target, tau, **kw)
    b = integrate_many(models, target, tau, integrator="taylor", **kw)
    return a, b


@pytest.mark.parametrize("g,target", [(0.0, 2.0), (0.5, 1.0), (0.9, -0.7), (0.99, 1.0)])
def test_taylor_equals_dop853_large_n(g, target):
    """A joint run of several depths: the same trajectories, convergence times and hold.
    Both run at rtol 1e-11 (DOP853's error is a few rtol), so 1e-9 leaves a margin of
    ten; at g = 0.99 the Taylor coefficients at unit time scale grow as beta^(2k) ~ 1e100
    (the steps rescale time)."""
    tau = np.linspace(0.0, 3.0 / beta_of(g) ** 2, 60)
    models = [large_n_model(g, d) for d in ((4, 6, 8) if g < 0.99 else (4,))]
    a, b = _both(models, target, tau)
    for x, y in zip(a, b):
        assert np.max(np.abs(x.readout - y.readout)) < 1e-9 * abs(target)
        assert np.max(np.abs(x.C - y.C)) < 1e-9 * np.max(np.abs(x.C))
        assert np.isfinite(x.t_hold) == np.isfinite(y.t_hold)
        if np.isfinite(x.t_hold):
            # both held where |z_hat - z| = 10 rtol |z_hat| (the crossing time itself is
            # sensitive: there |z_hat - z| decays as exp(-S tau) from 1e-10)
            for sol in (x, y):
                assert abs(abs(target - sol.readout[-1]) / abs(target) - 1e-10) < 1e-13
    assert b[0].nfev < a[0].nfev


def test_taylor_equals_dop853_instance():
    """A network's model (A not symmetric, r_w != r_m): the general recursion."""
    net = lt.init_network(N=60, g=0.6, seed=5)
    models = [instance_model(net, d) for d in (4, 6)]
    assert not np.array_equal(models[0].A, models[0].A.T)
    tau = np.linspace(0.0, 2.0, 40)
    a, b = _both(models, 1.3, tau)
    for x, y in zip(a, b):
        assert np.max(np.abs(x.readout - y.readout)) < 1e-9
        assert np.max(np.abs(x.C - y.C)) < 1e-9 * np.max(np.abs(x.C))


def test_hold_at_the_learning_time():
    """``hold = sqrt(rel_loss)``: each flow stops at its learning time, the root of the loss
    that the DOP853 path finds on its dense output; the states there agree."""
    build = lambda d: large_n_model(0.6, d)  # noqa: E731
    old = _flow_states(build, [1.5], 0.05, 1e-9, "dop853")[0]
    new = _flow_states(build, [1.5], 0.05, 1e-9, "taylor")[0]
    assert abs(new.tau - old.tau) < 1e-10 * old.tau
    assert np.max(np.abs(new.C - old.C)) < 1e-9 * np.max(np.abs(old.C))
    assert abs(new.grad_integral - old.grad_integral) < 1e-9 * old.grad_integral
    tau = np.linspace(0.0, 2.0 * new.tau, 9)
    sol = integrate_many([build(new.depth)], 1.5, tau, integrator="taylor",
                         hold=np.sqrt(0.05))[0]
    assert abs(sol.t_hold - new.tau) < 1e-12 * new.tau
    assert np.all(sol.C[tau > sol.t_hold] == sol.C[-1])          # held after
    assert abs(abs(1.5 - sol.readout[-1]) - 1.5 * np.sqrt(0.05)) < 1e-12


def test_integrator_name_is_checked():
    with pytest.raises(ValueError, match="integrator"):
        integrate_many([large_n_model(0.5, 4)], 1.0, [0.0, 1.0], integrator="rk4")


@pytest.mark.parametrize("g", [0.3, 0.9])
def test_outlier_bound_is_safe(g):
    """Wherever the bound says safe, ``det(I - C M(lambda))`` is positive: semidefinite
    ``C`` of random spectra (some with ``rho(C M) > 1``) against a grid of ``lambda``."""
    rng = np.random.default_rng(11)
    d = 8
    mdl = large_n_model(g, d)
    p = mdl.shape[0]
    grid = np.linspace(g * (1 + 1e-9) + 1e-12, 1.5, 120)
    Mg = mdl.info["outlier_matrices"](grid)
    Q = np.linalg.qr(rng.standard_normal((40, p, p)))[0]
    lam = rng.uniform(0.0, 1.0, (40, p)) * np.logspace(0, -8, p) * rng.uniform(0.05, 3, (40, 1))
    lam[::2] *= -1                                                # negative semidefinite too
    Cs = Q @ (lam[:, :, None] * np.swapaxes(Q, 1, 2))
    safe = _outlier_safe(Cs, Mg, grid, outlier_terms(g, d))
    det = np.linalg.det(np.eye(p) - Cs[:, None] @ Mg[None])
    assert np.all(det[safe] > 0)
    assert safe.mean() > 0.3 and not safe.all()
    plain = _outlier_safe(Cs, Mg, grid, None)                     # the norm bound
    assert np.all(safe[plain])                                    # the new one is tighter


@pytest.mark.parametrize("g", [0.0, 0.6])
def test_vectorised_outliers_equal_brentq_from_the_first_cell(g):
    """From the start of learning on, where the outlier is still next to the bulk (at
    g = 0 in the lowest grid cell), the joint refinement finds the root that brentq finds
    cell by cell (steps kept inside the bracket, a bisection at least every two steps)."""
    from linrnn_theory.theory.reduced import integrate
    mdl = large_n_model(g, 6)
    tau = np.concatenate([np.linspace(0.0, 0.05, 10), np.linspace(0.1, 3.0, 10)])
    Cs = integrate(mdl, 1.0, tau / beta_of(g) ** 2).C
    fast = assert_outliers_match_root_search(mdl, Cs)
    assert np.isfinite(fast[1 if g == 0 else -5:]).all()


@pytest.mark.parametrize("g,target", [(0.0, 0.5), (0.6, -1.5), (0.9, 2.0)])
def test_taylor_error_against_a_tight_reference(g, target):
    """Against DOP853 at rtol 1e-13 (its own error ~1e-13) with the same hold: the Taylor
    steps at the default rtol 1e-11 stay within 2e-12 over the whole flow (measured
    2e-13; DOP853 at rtol 1e-11 is off by ~1e-11)."""
    tau = np.linspace(0.0, 3.0 / beta_of(g) ** 2, 100)
    models = [large_n_model(g, d) for d in (4, 8)]
    ref = integrate_many(models, target, tau, rtol=1e-13, atol=1e-16, hold=1e-10)
    new = integrate_many(models, target, tau, integrator="taylor")
    for r, n in zip(ref, new):
        assert np.max(np.abs(r.readout - n.readout)) < 2e-12 * abs(target)
