"""Theory II: the reduced ODE (large N and instance), observables, failure of learning."""

import numpy as np
import pytest

import linrnn_theory as lt
from linrnn_theory import theory
from linrnn_theory.theory import failure
from linrnn_theory.theory.traces import beta_of

from reference import full_gradient_flow


@pytest.mark.parametrize("g,target", [(0.3, 2.0), (0.9, 1.0)])
def test_instance_equals_full_flow(g, target):
    """The instance reduced ODE reproduces the full N x N flow to ODE accuracy over the whole
    trajectory to convergence. Both integrators run at rtol <= 1e-11 and the automatic depth
    converges to 1e-9, so agreement to 1e-7 relative leaves a factor 100 of margin."""
    net = lt.init_network(N=40, g=g, seed=3)
    taus = np.linspace(0.0, 6.0 / beta_of(g) ** 2, 25)
    p = theory.predict(target=target, tau=taus, method="instance", network=net)
    assert p.status == "ok"
    assert p.loss[-1] < 1e-8 * 0.5 * target ** 2          # to convergence
    ref = full_gradient_flow(net, target, taus, rtol=1e-12, atol=1e-14)
    z, sv = ref["z"], ref["sv"][:, :2]
    assert np.max(np.abs(p.readout - z)) < 1e-7 * abs(target)
    assert np.max(np.abs(p.singular_values - sv)) < 1e-7 * sv[:, 0].max()


@pytest.mark.parametrize("g", [0.3, 0.6, 0.8])
def test_large_n_depth_converges(g):
    """Deeper chains change nothing: depth d (automatic) and d + 8 agree to 1e-8."""
    taus = np.linspace(0.0, 3.0 / beta_of(g) ** 2, 31)
    p = theory.predict(g=g, target=1.0, tau=taus, method="ode", outlier=False)
    assert p.status == "ok"
    d = p.params["depth"]
    q = theory.predict(g=g, target=1.0, tau=taus, method="ode", depth=d + 8, outlier=False)
    assert np.max(np.abs(p.readout - q.readout)) < 1e-8
    assert np.max(np.abs(p.singular_values - q.singular_values)) < 1e-8


@pytest.mark.parametrize("target", [0.5, 2.0, -1.0])
def test_large_n_ode_equals_exact_g0(target):
    """At g = 0 the large-N chains close on span{w, m}: the ODE equals the closed form."""
    taus = np.linspace(0.0, 4.0, 41)
    o = theory.predict(g=0.0, target=target, tau=taus, method="ode")
    e = theory.predict(g=0.0, target=target, tau=taus, method="exact_g0")
    assert o.params["shape"] == (2, 2)
    assert np.max(np.abs(o.readout - e.readout)) < 1e-8 * abs(target)
    assert np.max(np.abs(o.singular_values - e.singular_values)) < 1e-8
    ok = ~np.isnan(e.outlier_eigenvalue)
    assert np.array_equal(ok, ~np.isnan(o.outlier_eigenvalue)) and ok[1:].all()
    assert np.max(np.abs(o.outlier_eigenvalue[ok] - e.outlier_eigenvalue[ok])) < 1e-7
    assert np.max(np.abs(o.grad_norm - e.grad_norm)) < 1e-7 * e.grad_norm.max()


@pytest.mark.parametrize("g", [0.0, 0.3, 0.6, 0.8])
def test_small_target_closed_forms(g):
    """The z_hat -> 0 limits in closed form (docs/theory.md) against the ODE at
    z_hat = 1e-3: the corrections are O(z_hat^2) = 1e-6 relative (the series coefficients
    are odd polynomials in z_hat), so 1e-4 leaves margin for the ODE tolerance."""
    zh = 1e-3
    lim = theory.small_target_limits(g)
    assert theory.learning_time(g, zh) == pytest.approx(lim["learning_time"], rel=1e-4)
    assert theory.dw_norm(g, zh) / zh == pytest.approx(lim["dw_norm_per_target"], rel=1e-4)
    assert theory.mean_gradient_norm(g, zh) / zh == pytest.approx(
        lim["mean_gradient_norm_per_target"], rel=1e-4)
    assert theory.shuffle_loss(g, zh) == pytest.approx(lim["shuffle_loss"], rel=1e-4)


def test_observables_follow_the_papers_trends():
    """Fig. 4: with larger g learning is faster, Delta W smaller, the gradient larger and
    the shuffled-W0 loss larger (z_hat = 1)."""
    gs = [0.0, 0.3, 0.6, 0.8]
    lt_ = [theory.learning_time(g, 1.0) for g in gs]
    dw = [theory.dw_norm(g, 1.0) for g in gs]
    gn = [theory.mean_gradient_norm(g, 1.0) for g in gs]
    sh = [theory.shuffle_loss(g, 1.0) for g in gs]
    assert np.all(np.diff(lt_) < 0) and np.all(np.diff(dw) < 0)
    assert np.all(np.diff(gn) > 0) and np.all(np.diff(sh) > 0)
    assert sh[0] == pytest.approx(0.05, rel=1e-6)           # g = 0: nothing to shuffle


def test_series_observables_agree_with_ode_at_small_target():
    """At the learning time (tau~ ~ 1.5) the series converges only for small z_hat: its
    z_hat^3 beta part is an alternating sum whose terms at tau~ = 1.5 reach ~10 z_hat^3 beta,
    so at z_hat = 0.05 an order-8 truncation is still ~5 % off (the reason for the reduced
    ODE), while at z_hat = 0.005 the remainder is ~100 times smaller."""
    for q in (theory.learning_time, theory.dw_norm, theory.shuffle_loss):
        s, o = q(0.5, 0.005, method="series", order=8), q(0.5, 0.005, method="ode")
        assert s == pytest.approx(o, rel=2e-3)
    s, o = theory.learning_time(0.5, 0.05, method="series", order=8), \
        theory.learning_time(0.5, 0.05)
    assert abs(s / o - 1) > 0.02                        # the series is not enough there


def test_shuffle_formula_against_shuffled_networks():
    """Large-N shuffle rule w^T (I - W0' - Delta W)^{-1} m -> w^T (I - Delta W)^{-1} m:
    averaged over independent W0' at N = 600 the two agree within the O(N^-1/2) spread."""
    N, g = 600, 0.6
    net = lt.init_network(N=N, g=g, seed=1)
    task = lt.FixedPointTask(target=1.0)
    run = lt.train(net, task, lr=0.02 / beta_of(g) ** 2, epochs=60, mode="fixed_point")
    dW = run.W - net.W0
    z_free = net.w @ np.linalg.solve(np.eye(N) - dW, net.m)
    rng = np.random.default_rng(7)
    zs = []
    for _ in range(6):
        W0p = g * rng.standard_normal((N, N)) / np.sqrt(N)
        zs.append(net.w @ np.linalg.solve(np.eye(N) - W0p - dW, net.m))
    zs = np.array(zs)
    sem = zs.std(ddof=1) / np.sqrt(zs.size)
    assert abs(zs.mean() - z_free) < 4 * sem + 3.0 / N      # 1/N: finite-N bias scale


def test_failure_theory_basic_facts():
    """Gradient flow never reaches lambda = 1; small steps converge, big ones diverge."""
    ok = failure.predict_failure(0.6, 2.0, lr0=0.002, epochs=800)
    assert not ok.fails and ok.status == "ok"
    assert ok.lambda_final < 1.0 and ok.lr_sharpness_final < 2.0
    bad = failure.predict_failure(0.8, 4.0, lr0=0.002, epochs=800)
    assert bad.fails and bad.lambda_final < 1.0      # the flow itself stays stable
    assert bad.lr_sharpness_final > 2.0


def test_failure_prediction_matches_finite_time_simulation():
    """The reduced descent of the network's own instance model predicts whether the
    finite-time (bptt) training of that network diverges (t_max = 201, docs/paper.md section 5)."""
    net = lt.init_network(N=96, g=0.8, seed=0)
    task = lt.FixedPointTask(target=4.0, t_max=201.0)
    outcomes = {}
    for lr0 in (0.0005, 0.004):
        pred = failure.predict_failure(0.8, 4.0, lr0=lr0, epochs=600, network=net)
        run = lt.train(net, task, lr=lr0 * (1 - 0.64) ** 2, epochs=600, mode="bptt")
        outcomes[lr0] = (pred.fails, run.status == "diverged")
    for lr0, (predicted, observed) in outcomes.items():
        assert predicted == observed, (lr0, outcomes)
    assert outcomes[0.004] == (True, True) and outcomes[0.0005] == (False, False)
