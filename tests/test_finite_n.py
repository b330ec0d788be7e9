"""The finite-N theory (linrnn_theory.theory.finite_n).

What is checked, and against what:

* the Gauss quadrature reproduces the trace moments ``phi_n`` (:mod:`.traces`);
* the surrogate network's Krylov-chain Gram entries are the quadrature sums, and at the
  mean weights its reduced flow is the large-N flow (``method="ode"``);
* the fluctuation modes carry the covariance of the Gram entries of random unit
  directions, checked by sampling directions for one fixed ``W0``;
* the spread property: the predicted standard deviation of the readout along the
  learning curve equals the sampled one of the same Gram-fluctuation model (surrogate
  flows at Gaussian-distributed bin weights, at a size where the expansion is exact), and
  a prediction scaled by ``1 + 10 %`` is rejected (must-fail partner);
* the method's interface: status and message from the validity indicator, shapes,
  argument checks.
"""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest

import linrnn_theory as lt
from linrnn_theory import theory
from linrnn_theory.theory import finite_n as fn
from linrnn_theory.theory.instance import instance_model
from linrnn_theory.theory.methods import Request
from linrnn_theory.theory.reduced import integrate_many
from linrnn_theory.theory.traces import beta_of, moments


@pytest.mark.parametrize("g", [0.3, 0.6, 0.9])
def test_quadrature_reproduces_the_trace_moments(g):
    q = fn.quadrature(g, 8)
    with mp.workdps(40):
        phi, _ = moments(g, 15)
    for k in range(16):
        assert abs(float(q.p @ q.t ** k) / float(phi[k]) - 1) < 1e-11
    assert not q.t.flags.writeable and not q.p.flags.writeable


def test_surrogate_gram_entries_are_the_quadrature_sums():
    """``w^T H^n w = sum A_i t_i^n``, ``m^T K^n m = sum B_i t_i^n`` and
    ``w^T H^n R m = sum C_i t_i^(n + 1/2)`` for the surrogate (``H = R R^T``, ``K = R^T R``)."""
    q = fn.quadrature(0.7, 5)
    rng = np.random.default_rng(0)
    A, B = q.p * (1 + 0.1 * rng.standard_normal(5)), q.p * (1 + 0.1 * rng.standard_normal(5))
    C = 0.3 * np.sqrt(A * B) * rng.standard_normal(5)
    net = fn.surrogate_network(q, A, B, C)
    R = np.linalg.inv(np.eye(net.N) - net.W0)
    H, K = R @ R.T, R.T @ R
    for n in range(4):
        Hn = np.linalg.matrix_power(H, n)
        assert np.isclose(net.w @ Hn @ net.w, A @ q.t ** n, rtol=1e-12)
        assert np.isclose(net.m @ np.linalg.matrix_power(K, n) @ net.m, B @ q.t ** n,
                          rtol=1e-12)
        assert np.isclose(net.w @ Hn @ R @ net.m, C @ q.t ** (n + 0.5), rtol=1e-12)


@pytest.mark.parametrize("g", [0.0, 0.5, 0.8])
def test_surrogate_at_the_mean_is_the_large_n_flow(g):
    tau = np.linspace(0.0, 3.0 / beta_of(g) ** 2, 40)
    ode = theory.predict(g=g, target=1.0, tau=tau, method="ode", outlier=False)
    q = fn.quadrature(g, ode.depth + 2)
    net = fn.surrogate_network(q, q.p, q.p, np.zeros(q.p.size))
    sur = theory.predict(target=1.0, tau=tau, method="instance", network=net,
                         depth=ode.depth, outlier=False)
    assert np.max(np.abs(sur.readout - ode.readout)) < 1e-9
    assert np.max(np.abs(sur.singular_values - ode.singular_values)) < 1e-9


def test_modes_carry_the_covariance_of_random_directions():
    """For one fixed ``W0`` (N = 300, g = 0.5), draw 4000 pairs of independent uniform unit
    directions and compare the covariance of ``(w^T H w, w^T H^2 w, w^T R m)`` with the
    one the modes give (moments of the quadrature; exact for polynomials of degree <= 2n-1).
    Tolerance: 5 standard errors of a sampled (co)variance, ``sqrt(2/n)`` relative for a
    variance (Gaussian fourth moments), plus the O(1/sqrt(N)) difference between this
    ``W0``'s traces and their large-N values."""
    N, g, n = 300, 0.5, 4000
    net = lt.init_network(N=N, g=g, seed=11)
    R = np.linalg.inv(np.eye(N) - net.W0)
    H = R @ R.T
    rng = np.random.default_rng(5)
    w = rng.standard_normal((n, N))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    m = rng.standard_normal((n, N))
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    Hw = w @ H
    samples = np.column_stack([np.einsum("ij,ij->i", Hw, w),
                               np.einsum("ij,ij->i", Hw @ H, w),
                               np.einsum("ij,ij->i", w @ R, m)])
    measured = np.cov(samples.T)
    q = fn.quadrature(g, 4)
    d = fn.fluctuation_modes(q, N)                          # (K, 3, n) changes of A, B, C
    J = np.array([[q.t @ x[0], q.t ** 2 @ x[0], np.sqrt(q.t) @ x[2]] for x in d])
    predicted = J.T @ J
    tol = 5 * np.sqrt(2 / n) + 3 / np.sqrt(N)
    for i in range(3):
        assert abs(measured[i, i] / predicted[i, i] - 1) < tol, (i, measured, predicted)
    scale = np.sqrt(np.outer(np.diag(predicted), np.diag(predicted)))
    assert abs(measured[0, 1] / scale[0, 1] - predicted[0, 1] / scale[0, 1]) < tol
    assert abs(measured[0, 2]) / scale[0, 2] < 5 / np.sqrt(n)     # uncorrelated


# ------------------------------------------------------------------- the spread property

N_LARGE = 10 ** 9          # neglected orders O(N^-1/2); every bin weight stays positive
N_SAMPLES = 2000           # sampled std: relative standard error 1/sqrt(2 n) = 1.6 %


@pytest.fixture(scope="module")
def spread_data():
    """Prediction and a sample of the Gram-fluctuation model itself at g = 0.6, z_hat = 1.

    Each sample draws the bin weights ``(A, B, C) = mean + sum_k xi_k d_k`` with
    independent standard normal ``xi_k`` over the modes ``d_k`` (their exact Gaussian law at
    this order) and integrates that surrogate's flow."""
    g, target = 0.6, 1.0
    tau = np.linspace(0.0, 1.2 / beta_of(g) ** 2, 25)
    pred = theory.predict(g=g, target=target, tau=tau, method="finite_n", N=N_LARGE,
                          outlier=False, grad_norm=False)
    depth = pred.depth
    q = fn.quadrature(g, depth + 2)
    d = fn.fluctuation_modes(q, N_LARGE)
    base = np.array([q.p, q.p, np.zeros(q.p.size)])
    rng = np.random.default_rng(2024)
    xi = rng.standard_normal((N_SAMPLES, len(d)))
    Z = []
    for chunk in np.array_split(xi, 20):
        nets = [fn.surrogate_network(q, *(base + np.tensordot(x, d, axes=1))) for x in chunk]
        sols = integrate_many([instance_model(net, depth) for net in nets], target, tau)
        Z.extend(s.readout for s in sols)
    return pred, np.array(Z)


def check_spread(pred_std: np.ndarray, samples: np.ndarray) -> None:
    """The predicted std equals the sampled one where the spread is resolved (above 1e-3
    of its largest value): within 4 standard errors of a sampled std (``1/sqrt(2 n)``
    relative, 6.3 % at n = 2000) plus the O(N^-1/2) expansion error."""
    s = samples.std(axis=0, ddof=1)
    live = s > 1e-3 * s.max()
    assert live.sum() >= 10
    tol = 4 / np.sqrt(2 * samples.shape[0]) + 1 / np.sqrt(N_LARGE)
    rel = pred_std[live] / s[live] - 1
    assert np.max(np.abs(rel)) < tol, (rel, tol)


def test_predicted_spread_equals_sampled_spread(spread_data):
    pred, Z = spread_data
    check_spread(pred.readout_std, Z)
    sem = Z.std(axis=0, ddof=1) / np.sqrt(Z.shape[0])
    # the mean: 5 standard errors plus the resolution of the passage-time levels
    # (4e-6 of z_hat, see finite_n._PASSAGE_LOGIT)
    assert np.all(np.abs(pred.readout - Z.mean(axis=0)) < 5 * sem + 1e-5)


def test_spread_scaled_by_ten_percent_is_rejected(spread_data):
    pred, Z = spread_data
    with pytest.raises(AssertionError):
        check_spread(1.1 * pred.readout_std, Z)


# ------------------------------------------------------------------------ the interface

def test_validity_flags_g_near_one_and_small_n():
    assert fn.validity(0.6, 1024).ok and fn.validity(0.3, 256).ok
    for g, N in [(0.9, 256), (0.9, 1024), (0.8, 256)]:
        v = fn.validity(g, N)
        assert not v.ok and "finite-size effects dominate" in v.message
    tau = np.linspace(0.0, 0.05, 5)
    p = theory.predict(g=0.9, target=1.0, tau=tau, method="finite_n", N=256,
                       outlier=False)
    assert p.status == lt.Status.FINITE_SIZE and "N = 256" in p.message
    assert not p.status.valid


def test_finite_n_prediction_shapes_and_round_trip(tmp_path):
    tau = np.linspace(0.0, 0.6, 7)
    p = theory.predict(g=0.5, target=1.0, tau=tau, method="finite_n", N=512, n_singular=2)
    assert p.status == "ok" and p.method == "finite_n" and p.params["N"] == 512
    for name in ("readout", "loss", "readout_std", "loss_std"):
        assert getattr(p, name).shape == (7,)
    assert p.singular_values.shape == p.singular_values_std.shape == (7, 2)
    assert p.readout_std[0] == pytest.approx(np.sqrt(beta_of(0.5) / 512), rel=1e-9)
    p.save(tmp_path / "p.json")
    back = lt.trajectory.load(tmp_path / "p.json")
    np.testing.assert_array_equal(back.readout_std, p.readout_std)


def test_size_argument_is_checked():
    tau = np.linspace(0.0, 0.5, 3)
    with pytest.raises(ValueError, match="N is required"):
        theory.predict(g=0.5, target=1.0, tau=tau, method="finite_n")
    with pytest.raises(ValueError, match="not used by method='ode'"):
        theory.predict(g=0.5, target=1.0, tau=tau, method="ode", N=256)
    with pytest.raises(ValueError, match="N"):
        theory.predict(g=0.5, target=1.0, tau=tau, method="finite_n", N=1)


def test_learning_time_spread_matches_the_expansion_of_the_flows():
    """The learning-time spread is the expansion of the surrogates' own passage times:
    recompute it from :func:`finite_n.expand` on an independent grid."""
    g, target, N = 0.6, 1.0, 1024
    mean, std = fn.learning_time_spread(g, target, N, own_initial_loss=True)
    T_large = theory.learning_time(g, target)
    depth = theory.predict(g=g, target=target, tau=np.linspace(0, 3 * T_large, 5),
                           method="ode").depth
    q = fn.quadrature(g, depth + 2)
    req = Request(g=g, target=target, tau=np.zeros(1), grad_norm=False, n_singular=1)
    u = np.linspace(0.0, 12 * T_large, 3001)
    r = fn.expand(q, N, lambda nets, grid: fn._outputs(nets, req, depth, grid, full=False),
                  u, u[:1], levels=(0.05,))
    T0, s = r["crossings"][0.05]
    assert T0 == pytest.approx(T_large, rel=1e-6)
    assert mean == pytest.approx(T0 * np.exp(s * s / 2), rel=1e-6)
    assert std == pytest.approx(mean * np.sqrt(np.expm1(s * s)), rel=1e-5)


def _spread_by_observables(g: float, target: float, N: int, scale: float = 1.0) -> dict:
    """The first-order spreads recomputed independently: each surrogate's observables by
    :func:`theory.all_observables` (threshold by root finding on the dense output, gradient
    integral by Gauss-Legendre) at half the expansion's steps; ``scale`` multiplies the
    result (the must-fail partner)."""
    T_large = theory.learning_time(g, target)
    depth = theory.predict(g=g, target=target, tau=np.linspace(0, 3 * T_large, 5),
                           method="ode").depth
    q = fn.quadrature(g, depth + 2)
    modes = fn.fluctuation_modes(q, N)
    base = np.array([q.p, q.p, np.zeros(q.p.size)])
    steps = 0.5 * fn._steps(base, modes)
    names = fn.SPREAD_OBSERVABLES

    def values(net):
        obs = theory.all_observables(target=target, network=net)
        return np.array([np.log(obs[names[0]])] + [obs[k] for k in names[1:]])

    slopes = np.array([(values(fn.surrogate_network(q, *(base + h * d)))
                        - values(fn.surrogate_network(q, *(base - h * d)))) / (2 * h)
                       for d, h in zip(modes, steps)])
    sd = np.sqrt(np.sum(slopes ** 2, axis=0))
    return {k: scale * v for k, v in zip(names, sd)}


def check_observable_spreads(pred: dict, ref: dict) -> None:
    """Predicted standard deviations against the recomputed ones: 1e-3 relative (central
    differences at two steps, O(h^2), and two ways of locating the learning time)."""
    T, s = pred["learning_time"]
    log_sd = np.sqrt(np.log1p((s / T) ** 2))          # log-normal: sd of log T
    assert abs(log_sd / ref["learning_time"] - 1) < 1e-3, (log_sd, ref)
    for k in fn.SPREAD_OBSERVABLES[1:]:
        assert abs(pred[k][1] / ref[k] - 1) < 1e-3, (k, pred[k], ref[k])


@pytest.fixture(scope="module")
def observable_spreads():
    g, target, N = 0.6, 1.0, 1024
    return g, target, N, fn.observables_spread(g, target, N)


def test_observable_spreads_equal_an_independent_expansion(observable_spreads):
    g, target, N, pred = observable_spreads
    check_observable_spreads(pred, _spread_by_observables(g, target, N))
    # the means are the large-N values (the learning time: log-normal around it)
    assert pred["dw_norm"][0] == pytest.approx(theory.dw_norm(g, target), rel=1e-6)
    assert pred["mean_gradient_norm"][0] == pytest.approx(
        theory.mean_gradient_norm(g, target), rel=1e-6)
    assert theory.dw_norm(g, target, N=N, spread=True) == pred["dw_norm"]


def test_observable_spreads_scaled_by_ten_percent_are_rejected(observable_spreads):
    g, target, N, pred = observable_spreads
    with pytest.raises(AssertionError):
        check_observable_spreads(pred, _spread_by_observables(g, target, N, scale=1.1))


def test_learning_time_conventions_differ_by_the_initial_readout():
    """Against z_hat^2/2 the initial readout w^T R m moves the learning time; against each
    network's own initial loss the two effects cancel at g = 0, z_hat = 1 (first order)."""
    paper = fn.learning_time_spread(0.0, 1.0, 256)
    own = fn.learning_time_spread(0.0, 1.0, 256, own_initial_loss=True)
    assert paper[1] > 20 * own[1]
    # against the exact flows of sampled networks (at g = 0 only w^T m varies): 300
    # networks give the sd to 1/sqrt(2 * 299) = 4 % (one standard error)
    sample = [theory.learning_time(target=1.0, network=lt.init_network(N=256, g=0.0, seed=s))
              for s in range(300)]
    assert paper[1] == pytest.approx(np.std(sample, ddof=1), rel=0.1)
    assert paper[0] == pytest.approx(np.mean(sample), abs=3 * paper[1] / np.sqrt(300))
    with pytest.raises(ValueError, match="shuffled loss"):
        theory.shuffle_loss(0.3, 1.0, N=256)


def test_learning_time_takes_the_size():
    mean, std = theory.learning_time(0.3, 1.0, N=512, spread=True)
    assert (mean, std) == fn.learning_time_spread(0.3, 1.0, 512)
    assert theory.learning_time(0.3, 1.0, N=512) == mean
    assert isinstance(theory.learning_time(0.3, 1.0), float)          # large N as before
    with pytest.raises(ValueError, match="needs the network size"):
        theory.learning_time(0.3, 1.0, spread=True)
    with pytest.raises(ValueError, match="scalar"):
        theory.learning_time([0.3, 0.6], 1.0, N=512)


def test_cli_predicts_finite_n(tmp_path):
    import json

    from linrnn_theory.cli import main
    out = tmp_path / "p.json"
    assert main(["predict", "--g", "0.6", "--target", "1", "--method", "finite_n", "--N",
                 "256", "--tau-max", "0.3", "--n-tau", "4", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["method"] == "finite_n" and len(doc["readout_std"]) == 4
    assert main(["predict", "--g", "0.6", "--target", "1", "--method", "ode", "--N", "256",
                 "--tau-max", "0.3"]) == 2


def test_sample_readout_std_at_the_start_is_the_chi_law():
    """At tau = 0 the readout is the Gaussian w^T R m, so the sample variance of n networks
    is sigma^2 chi^2_{n-1} / (n - 1) exactly: the quantiles drawn from the law match it."""
    from scipy.stats import chi2

    n, q = 16, np.array([0.1, 0.5, 0.9])
    tau = np.array([0.0, 0.05])
    got = fn.sample_readout_std(0.6, 1.0, tau, 1024, n, draws=4000, quantiles=q, seed=3)
    sigma = theory.predict(g=0.6, target=1.0, tau=tau, method="finite_n",
                           N=1024).readout_std[0]
    exact = sigma * np.sqrt(chi2.ppf(q, n - 1) / (n - 1))
    # sampling error of a quantile of 4000 draws: about 1.5 % here
    np.testing.assert_allclose(got[:, 0], exact, rtol=0.03)
    assert got.shape == (3, 2)
    # the same seed gives the same draws, another seed other draws
    again = fn.sample_readout_std(0.6, 1.0, tau, 1024, n, draws=50, seed=1)
    np.testing.assert_array_equal(
        again, fn.sample_readout_std(0.6, 1.0, tau, 1024, n, draws=50, seed=1))
    assert not np.array_equal(
        again, fn.sample_readout_std(0.6, 1.0, tau, 1024, n, draws=50, seed=2))


def test_sample_readout_std_of_a_large_sample_is_the_population_std():
    tau = np.linspace(0.0, 0.2, 9)           # before the tail of convergence
    med = fn.sample_readout_std(0.6, 1.0, tau, 1024, 4000, draws=5, quantiles=[0.5])[0]
    pop = theory.predict(g=0.6, target=1.0, tau=tau, method="finite_n",
                         N=1024).readout_std
    # relative standard error of a standard deviation over 4000 networks: 1.1 %
    np.testing.assert_allclose(med, pop, rtol=0.03)


@pytest.mark.parametrize("kwargs, name", [
    ({"networks": 1}, "networks"), ({"draws": 1}, "draws"), ({"N": 1}, "N"),
    ({"quantiles": [1.5]}, "quantiles"), ({"g": 1.0}, "g"), ({"input_amp": 0.0}, "input_amp"),
    ({"tau": [0.2, 0.1]}, "tau")])
def test_sample_readout_std_checks_its_arguments(kwargs, name):
    args = {"g": 0.5, "target": 1.0, "tau": [0.0, 0.1], "N": 256, "networks": 8, **kwargs}
    with pytest.raises(ValueError, match=name):
        fn.sample_readout_std(**args)


# ------------------------------------------------------- truncation of the modes, splines

def test_truncation_estimate_bounds_geometric_tails():
    """For contributions falling geometrically the estimate bounds the true tail; it is
    ``inf`` when they do not fall (or too few are known) and 0 when all are known."""
    for ratio in (0.5, 0.1, 1e-3):
        shares = ratio ** np.arange(12)
        for k in range(3, 12):
            est = fn.truncation_estimate(shares[:k], 12)
            assert est >= shares[k:].sum() * (1 - 1e-12)
            assert est <= 2 * shares[k:].sum() / (1 - ratio)
    assert fn.truncation_estimate(np.array([1.0, 0.5, 0.6]), 10) == np.inf
    assert fn.truncation_estimate(np.array([1.0, 0.1]), 10) == np.inf
    assert fn.truncation_estimate(np.array([1.0, 0.5, 0.6]), 3) == 0.0


def _expansion_setup(g: float, target: float, N: int):
    """``(tau, req, depth, q, u)`` of an expansion as ``predict(method="finite_n")`` sets it
    up: 60 times up to three large-N learning times, the request, the large-N depth, the
    quadrature at that depth + 2, and the integration grid."""
    tau = np.linspace(0.0, 3.0 * theory.learning_time(g, target), 60)
    req = Request(g=g, target=target, tau=tau, N=N)
    depth = theory.predict(g=g, target=target, tau=tau, method="ode").depth
    q = fn.quadrature(g, depth + 2)
    u = fn._grid(fn.validity(g, N).rate_spread, float(tau[-1]))
    return tau, req, depth, q, u


@pytest.fixture(scope="module")
def truncated_and_full():
    """The expansion at g = 0.8, z_hat = 2, N = 1024 with the default (truncated) modes and
    with every mode of :func:`fluctuation_modes` (``B`` evaluated, not mirrored)."""
    g, target, N = 0.8, 2.0, 1024
    tau, req, depth, q, u = _expansion_setup(g, target, N)

    def flows(nets, grid):
        return fn._outputs(nets, req, depth, grid)
    full = fn.expand(q, N, flows, u, tau, target=target, modes=fn.fluctuation_modes(q, N))
    return fn.expand(q, N, flows, u, tau, target=target), full


def test_truncated_modes_give_the_spread_of_all_modes(truncated_and_full):
    """Leaving out the modes past the truncation estimate, and mirroring ``B`` from ``A``,
    changes the standard deviations by less than the estimate allows (a share ``e`` of a
    variance moves its square root by ``e / 2``), plus 1e-7 for the integrations."""
    trunc, full = truncated_and_full
    (kA, nA, tA), (kC, nC, tC) = trunc["modes"]
    assert kA < nA and kC < nC                       # it did truncate
    assert max(tA, tC) <= fn.TRUNCATION_TOL
    assert full["modes"][0][:2] == (nA + nA + nC,) * 2
    live = full["std"] > 1e-3 * full["std"].max(axis=0)
    rel = np.abs(trunc["std"][live] / full["std"][live] - 1)
    assert rel.max() <= max(tA, tC) / 2 + 1e-7, rel.max()
    assert np.max(np.abs(trunc["mean"] - full["mean"])) <= 1e-7 * np.max(np.abs(full["mean"]))


def test_modes_that_do_not_fall_off_are_all_evaluated():
    """Must-fail partner of the truncation: a response that weighs the nodes by random
    numbers (not a smooth function of t) has no decaying contributions, so every mode is
    evaluated and the spread is the one of all modes. (Symmetric in ``A`` and ``B``, as
    every output of a network is under swapping ``w`` and ``m``.)"""
    q = fn.quadrature(0.6, 12)
    rho = np.random.default_rng(7).standard_normal((2, q.t.size))

    def flows(nets, u):
        out = []
        for n in nets:
            A, B = n.w[0::2] ** 2, n.m[0::2] ** 2 + n.m[1::2] ** 2
            C = n.w[0::2] * n.m[0::2]
            x = rho[0] @ (A + B) + rho[1] @ C
            out.append(np.column_stack([np.full(u.size, x), np.exp(-u), np.exp(-u / 2)]))
        return np.array(out)
    u = np.linspace(0.0, 5.0, 101)
    r = fn.expand(q, 1000, flows, u, u[:3])
    assert [k for k, _, _ in r["modes"]] == [n for _, n, _ in r["modes"]]
    full = fn.expand(q, 1000, flows, u, u[:3], modes=fn.fluctuation_modes(q, 1000))
    np.testing.assert_allclose(r["std"][:, 0], full["std"][:, 0], rtol=1e-9)


@pytest.mark.parametrize("g, target", [(0.5, 1.0), (0.9, 2.0)])
def test_strided_outputs_equal_the_outputs_at_every_time(g, target):
    """Gradient norms and singular values computed at every fourth time and interpolated
    (refined where the spline's estimated error exceeds SPLINE_TOL, e.g. the abrupt
    convergence at g = 0.9, z_hat = 2) equal those computed at every time to 1e-6 of
    each curve's range (the readout and the loss are computed everywhere: exactly)."""
    tau = np.linspace(0.0, 3.0 * theory.learning_time(g, target), 5)
    req = Request(g=g, target=target, tau=tau, N=1024)
    depth = theory.predict(g=g, target=target, tau=tau, method="ode").depth
    q = fn.quadrature(g, depth + 2)
    dA, dC = fn._mode_groups(q, 1024)
    nets, _ = fn._pair_networks(q, np.concatenate([dA[:1], dC[:1]]))
    u = fn._grid(fn.validity(g, 1024).rate_spread, float(tau[-1]))
    every = fn._outputs(nets, req, depth, u)
    strided = fn._outputs(nets, req, depth, u, stride=4)
    np.testing.assert_array_equal(strided[:, :, :2], every[:, :, :2])
    scale = np.ptp(every, axis=1, keepdims=True)
    assert np.max(np.abs(strided - every) / scale) < 1e-6


def test_passage_law_curves_are_its_single_curves():
    tau = np.linspace(0.0, 0.4, 21)
    req = Request(g=0.6, target=1.0, tau=tau, N=1024, n_singular=1, outlier=False)
    law = fn._expansion(req)[3]["law"]
    xi, zeta = np.array([-1.5, 0.0, 2.0]), np.array([0.3, -2.0, 1.0])
    z, L = law.curves(xi, zeta, tau)
    for i in range(3):
        zi, Li = law.curve(xi[i], zeta[i], tau)
        np.testing.assert_allclose(z[i], zi, rtol=0, atol=1e-13)
        np.testing.assert_allclose(L[i], Li, rtol=0, atol=1e-13)


@pytest.fixture(scope="module")
def variational_and_differences():
    """The expansion at g = 0.6, z_hat = 1, N = 1024 from the variational equations (as
    predict computes it) and from central differences of whole surrogate flows at the
    default step, at half of it, and at half of it on a grid twice as fine."""
    g, target, N = 0.6, 1.0, 1024
    tau, req, depth, q, u = _expansion_setup(g, target, N)
    fine = np.linspace(0, u[-1], 2 * u.size - 1)
    var = [fn._statistics(fn._tangent_expansion(q, N, req, depth, grid), grid, tau, target, ())
           for grid in (u, fine)]

    def flows(nets, grid):
        return fn._outputs(nets, req, depth, grid)
    counts = [k for k, _, _ in var[0]["modes"]]
    modes = np.concatenate([d[:k] for d, k in zip(fn._mode_groups(q, N), counts)])
    weights = np.repeat([np.sqrt(2.0), 1.0], counts)
    diffs = []
    for step, grid in ((fn.STEP, u), (fn.STEP / 2, u), (fn.STEP / 2, fine)):
        old, fn.STEP = fn.STEP, step
        try:
            # the A modes stand for A and B: scaled by sqrt(2), as the default expansion
            diffs.append(fn.expand(q, N, flows, grid, tau, target=target,
                                   modes=modes * weights[:, None, None]))
        finally:
            fn.STEP = old
    return var, diffs


def check_variational(var: list, diffs: list, scale: float = 1.0) -> None:
    """The variational expansion equals the limit of the central differences: within the
    Richardson estimate of the error of the half step (a third of its change from the
    full step), plus the grid errors of both (each expansion interpolates on the grid,
    O(spacing^2): 4/3 of its change on a grid twice as fine), plus 1e-5 of each column's
    largest value (the passage-time responses: Hermite interpolation of the loss and of
    its derivative against differences of interpolated passage times)."""
    for key in ("mean", "std"):
        full, half, fine = (d[key] for d in diffs)
        got, got_fine = (v[key] * (scale if key == "std" else 1.0) for v in var)
        big = np.max(np.abs(half), axis=0)
        bound = (np.abs(half - full) / 3 + 4 / 3 * (np.abs(fine - half)
                                                    + np.abs(got_fine - got)) + 1e-5 * big)
        assert np.all(np.abs(got - half) <= bound), \
            (key, np.max((np.abs(got - half) - bound) / big, axis=0))


def test_variational_expansion_is_the_limit_of_central_differences(
        variational_and_differences):
    check_variational(*variational_and_differences)


def test_variational_spread_scaled_by_ten_percent_is_rejected(variational_and_differences):
    var, diffs = variational_and_differences
    with pytest.raises(AssertionError):
        check_variational(var, diffs, scale=1.1)


@pytest.fixture(scope="module")
def tangents_and_differences():
    """The tangents of :func:`fn._tangent_flow` (Taylor steps of the stack of flows at
    ``theta +- TANGENT_STEP theta'``) at g = 0.6, z_hat = 1, N = 1024 along two modes of ``A`` and
    two of ``C``, and central differences of separate DOP853 runs (rtol 1e-13) of the
    models at ``theta +- h theta'`` for ``h = 1e-2`` and ``5e-3``, on times before and
    past the hold of the mean flow."""
    from linrnn_theory.theory.reduced import ReducedModel

    g, target, N = 0.6, 1.0, 1024
    depth = theory.predict(g=g, target=target, tau=[0.0, 1.0], method="ode").depth
    q = fn.quadrature(g, depth + 2)
    dA, dC = fn._mode_groups(q, N)
    th, dth = fn._param_tangents(q, depth, np.concatenate([dA[:2], dC[:2]]))
    u = np.linspace(0.0, 6.0 * theory.learning_time(g, target), 61)
    C, dCt, index = fn._tangent_flow(th, dth, target, u, 1e-11, 1e-14)

    def model(shift, k):
        par = {key: th[key] + shift * dth[key][k] for key in fn._PARAMS}
        return ReducedModel(A=par["A"], r_w=par["r_w"], r_m=par["r_m"], s0=float(par["s0"]),
                            norm_data=tuple(par[key] for key in fn._PARAMS[4:]))

    diffs = []
    for h in (1e-2, 5e-3):
        models = [model(s, k) for k in range(len(dth["s0"])) for s in (h, -h)]
        sols = integrate_many(models, target, u, rtol=1e-13, atol=1e-16)
        diffs.append(np.array([(sols[2 * k].C - sols[2 * k + 1].C) / (2.0 * h)
                               for k in range(len(models) // 2)]))
    ref = integrate_many([model(0.0, 0)], target, u, rtol=1e-13, atol=1e-16)[0].C
    return C[index], dCt[:, index], ref, diffs


def check_tangents(dC: np.ndarray, diffs: list, scale: float = 1.0) -> None:
    """The tangents equal the limit of the central differences: within twice the
    Richardson estimate of the error of the half step (a third of its change from the
    full step) plus 1e-8 of each tangent's largest entry (the DOP853 runs' own error,
    ~1e-13 over the step)."""
    full, half = diffs
    big = np.max(np.abs(half), axis=(1, 2, 3), keepdims=True)
    bound = 2.0 * np.abs(half - full) / 3 + 1e-8 * big
    assert np.all(np.abs(scale * dC - half) <= bound), np.max((np.abs(scale * dC - half)
                                                                 - bound) / big)


def test_taylor_tangents_are_the_limit_of_central_differences(tangents_and_differences):
    C, dC, ref, diffs = tangents_and_differences
    assert np.max(np.abs(C - ref)) <= 1e-10 * np.max(np.abs(ref))
    assert np.all(np.max(np.abs(dC), axis=(1, 2, 3)) > 0)
    check_tangents(dC, diffs)


def test_taylor_tangents_scaled_by_one_percent_are_rejected(tangents_and_differences):
    _, dC, _, diffs = tangents_and_differences
    with pytest.raises(AssertionError):
        check_tangents(dC, diffs, scale=1.01)
