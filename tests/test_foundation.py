"""Foundation of the simulator: exact gradients, the finite-time model against its
fixed-point limit, the rank of Delta W at g = 0, reproducibility, input validation, the
fast fixed-point engine against the dense reference, and the analyses of trained networks.

Tolerances are justified where they are used. Networks are drawn from explicit seeds
(``numpy.random.default_rng``); hypothesis draws the seeds and parameters.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import linrnn_theory as lt

#: The paper's learning rates, lr = lr0 (1 - g^2)^2 (docs/paper.md section 4).
PAPER_LR0 = {0.5: 0.015, 1.0: 0.009, 2.0: 0.003}


def paper_lr(g: float, target: float) -> float:
    return PAPER_LR0[target] * (1.0 - g * g) ** 2


# ----------------------------------------------------------------------------- gradients

def _fd_gradient(W: np.ndarray, net, task, mode: str, h: float) -> np.ndarray:
    """Central differences of ``lt.loss`` with respect to every entry of W."""
    G = np.empty_like(W)
    for i, j in np.ndindex(W.shape):
        Wp, Wm = W.copy(), W.copy()
        Wp[i, j] += h
        Wm[i, j] -= h
        G[i, j] = (lt.loss(Wp, net, task, mode) - lt.loss(Wm, net, task, mode)) / (2 * h)
    return G


@given(N=st.integers(2, 8), g=st.floats(0.0, 0.9), target=st.floats(-3.0, 3.0),
       seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(["bptt", "fixed_point"]),
       t_max=st.sampled_from([6.0, 8.0, 10.0]), dt=st.sampled_from([0.25, 0.5, 1.0]),
       input_amp=st.floats(0.5, 2.0))
def test_gradient_matches_central_differences(N, g, target, seed, mode, t_max, dt, input_amp):
    """``lt.gradient`` equals central finite differences of ``lt.loss`` to 1e-6 relative.

    The full N x N matrix is compared (relative Frobenius error), at a point W = W0 + P with
    a random perturbation P (not only at W0, where Delta W = 0). Step h = 1e-6 relative to
    the largest entry of W (at least 1e-6): the truncation error of central differences is
    O(h^2 |d^3 L|) ~ 1e-12 and the rounding error O(eps |L| / h) ~ 1e-10 relative to the
    gradient (measured worst case 1.3e-9 over 200 random cases), so 1e-6 leaves three orders
    of margin while any wrong factor (dt, 1/n_decision,
    input amplitude) or missing term gives an O(1) error. Fixed-point mode needs a stable W:
    examples with max Re(lambda) >= 0.9 are discarded (near 1 the resolvent, hence the
    third derivative, blows up).
    """
    net = lt.init_network(N=N, g=g, seed=seed)
    task = lt.FixedPointTask(target=target, t_max=t_max, dt=dt, input_amp=input_amp)
    rng = np.random.default_rng([seed, 1])
    W = net.W0 + 0.2 * rng.standard_normal((N, N)) / np.sqrt(N)
    if mode == "fixed_point":
        assume(np.max(np.linalg.eigvals(W).real) < 0.9)
    L, G = lt.gradient(W, net, task, mode=mode)
    assume(L > 1e-3)          # the relative error of a vanishing gradient is meaningless
    h = 1e-6 * max(1.0, float(np.max(np.abs(W))))
    G_fd = _fd_gradient(W, net, task, mode, h)
    assert np.linalg.norm(G_fd - G) <= 1e-6 * np.linalg.norm(G)
    assert L == lt.loss(W, net, task, mode)


@given(N=st.integers(2, 10), g=st.floats(0.0, 1.2), seed=st.integers(0, 2**32 - 1),
       dt=st.sampled_from([0.125, 0.5, 1.0]),
       # subnormal amplitudes excluded: their products round with an absolute error of
       # 5e-324, so no relative bound can hold (found by hypothesis: input_amp = 5e-324)
       input_amp=st.floats(-2.0, 2.0, allow_subnormal=False))
def test_euler_readout_has_closed_form(N, g, seed, dt, input_amp):
    """The finite-time readout is the fixed-point readout minus a transient:
    ``z_k = c w^T (I - W)^{-1} (I - A^j) m`` with ``A = (1 - dt) I + dt W`` and
    ``j = k - n_fixation`` input steps (sum of the geometric series of the Euler scheme).
    This is why bptt approaches the fixed-point limit as ``rho(A)^{t_max/dt}``, and why the
    two differ visibly when training pushes an eigenvalue of W close to 1. Any W, stable or
    not (only I - W must be invertible). Tolerance 1e-9 relative to the largest term: the
    two sides are computed by different algorithms (T matrix-vector products against one
    solve and a matrix power) whose rounding is ~1e-14 times the condition numbers."""
    net = lt.init_network(N=N, g=g, seed=seed)
    task = lt.FixedPointTask(target=0.0, t_max=6.0, dt=dt, input_amp=input_amp)
    W = net.W0
    assume(abs(np.linalg.det(np.eye(N) - W)) > 1e-3)
    from linrnn_theory.simulation.dense import euler_states
    X = euler_states(W, net, task)
    A = (1 - task.dt) * np.eye(N) + task.dt * W
    b = np.linalg.solve(np.eye(N) - W, net.m)
    for k in task.decision_steps():
        j = k - task.n_fixation
        closed = input_amp * net.w @ (b - np.linalg.matrix_power(A, j) @ b)
        scale = abs(input_amp) * (np.linalg.norm(net.w) * np.linalg.norm(b)
                                  * (1 + np.linalg.norm(np.linalg.matrix_power(A, j), 2)))
        assert abs(X[k] @ net.w - closed) <= 1e-9 * scale


# ------------------------------------------------------- finite time vs fixed-point limit

# (target, g): the paper's targets with their learning rates. For target 1 at g = 0.6 the
# claim does NOT hold for every seed at N = 128: training pushes the outlier eigenvalue of
# W to ~0.85, the Euler transient decays only as (1 - dt (1 - 0.85))^200 ~ 2e-7 within
# t_max = 101, and once the loss is small the relative loss difference exceeds 1e-6 (seed 0:
# 1.3e-6 already at loss 1e-2 L0). That is a real difference between the two models, not an
# error (see test_euler_readout_has_closed_form); the regime is therefore limited to
# g <= 0.6 at target 0.5 and g <= 0.5 at target 1.
_AGREE = [(0.5, 0.0), (0.5, 0.3), (0.5, 0.6), (1.0, 0.0), (1.0, 0.3), (1.0, 0.5)]


@pytest.mark.parametrize("target,g", _AGREE)
def test_bptt_and_fixed_point_loss_curves_agree(target, g):
    """Default t_max = 101: bptt (dense reference) and fixed-point loss curves agree to
    1e-6 relative at every one of 100 epochs, for three seeds. Measured worst case 8.5e-9
    (target 1, g = 0.5); below ~1e-13 the two differ only by rounding."""
    task = lt.FixedPointTask(target=target)
    assert task.t_max == 101.0
    for seed in range(3):
        net = lt.init_network(N=128, g=g, seed=seed)
        lr = paper_lr(g, target)
        a = lt.train(net, task, lr=lr, epochs=100, mode="bptt", engine="dense")
        b = lt.train(net, task, lr=lr, epochs=100, mode="fixed_point")
        assert a.status == b.status == "ok"
        assert a.loss.shape == b.loss.shape == (100,)
        assert b.loss[-1] < 0.2 * task.L0              # learning actually happened
        np.testing.assert_array_less(np.abs(a.loss - b.loss), 1e-6 * b.loss)


# ------------------------------------------------------------------------- rank at g = 0

@pytest.mark.parametrize("mode,engine", [("bptt", "dense"), ("bptt", "fast"),
                                         ("fixed_point", "dense"), ("fixed_point", "fast")])
@given(seed=st.integers(0, 2**32 - 1), target=st.sampled_from([-1.0, 0.5, 2.0]))
def test_delta_w_has_rank_two_at_g0(mode, engine, seed, target):
    """At g = 0 the dynamics stay in span{w, m}: every singular value of Delta W after the
    second is < 1e-10 times the first, at every recorded epoch and for the final W.
    Rounding leaves components ~1e-16 |Delta W| outside the span per step, so 1e-10 is six
    orders above what exact arithmetic plus rounding can produce, and far below the
    O(1e-3) third singular value of any g > 0 run."""
    # N = 64 keeps the random overlap w^T m moderate (|w^T m| <~ 0.4); with N = 24 and a
    # strongly anti-aligned pair, lr = 0.05 legitimately pushes an eigenvalue across 1 and
    # the finite-time run diverges (a genuine failure of learning, not a rank violation).
    net = lt.init_network(N=64, g=0.0, seed=seed)
    task = lt.FixedPointTask(target=target)
    run = lt.train(net, task, lr=0.03, epochs=15, mode=mode, engine=engine, n_singular=6)
    assert run.status == "ok", run.message
    sv = run.singular_values[1:]                      # epoch 0: Delta W = 0
    assert np.all(sv[:, 0] > 0)
    assert np.all(sv[:, 2:] < 1e-10 * sv[:, :1])
    s = np.linalg.svd(run.W - net.W0, compute_uv=False)
    assert np.all(s[2:] < 1e-10 * s[0])


# --------------------------------------------------------------------- reproducibility

_ARRAYS = ("tau", "loss", "readout", "grad_norm", "record_epochs", "singular_values", "W",
           "eigenvalues")


@pytest.mark.parametrize("mode,engine", [("bptt", "dense"), ("bptt", "fast"),
                                         ("fixed_point", "dense"), ("fixed_point", "fast")])
def test_same_seed_gives_bit_identical_runs(mode, engine):
    task = lt.FixedPointTask(target=1.0, t_max=21.0)
    runs, nets = [], []
    for _ in range(2):
        net = lt.init_network(N=32, g=0.6, seed=1234)
        nets.append(net)
        runs.append(lt.train(net, task, lr=0.02, epochs=12, mode=mode, engine=engine,
                             record_eigenvalues=True))
    for name in ("W0", "m", "w"):
        assert np.array_equal(getattr(nets[0], name), getattr(nets[1], name))
    for name in _ARRAYS:
        assert np.array_equal(getattr(runs[0], name), getattr(runs[1], name)), name
    assert runs[0].to_dict() == runs[1].to_dict()


def test_different_seeds_give_different_networks():
    a, b = lt.init_network(N=32, g=0.6, seed=0), lt.init_network(N=32, g=0.6, seed=1)
    for name in ("W0", "m", "w"):
        # independent Gaussian draws: every entry differs (probability 1)
        assert np.all(getattr(a, name) != getattr(b, name))
    task = lt.FixedPointTask(target=1.0)
    la = lt.train(a, task, lr=0.01, epochs=5, mode="fixed_point").loss
    lb = lt.train(b, task, lr=0.01, epochs=5, mode="fixed_point").loss
    assert not np.array_equal(la, lb)
    # the same seed gives the same J for every g (common random numbers across a g sweep)
    c = lt.init_network(N=32, g=0.3, seed=0)
    np.testing.assert_allclose(c.W0 / 0.3, a.W0 / 0.6, rtol=1e-15, atol=0)


# ---------------------------------------------------------------------- bad inputs

def _net(**kw):
    args = dict(W0=np.zeros((3, 3)), m=np.ones(3), w=np.ones(3) / 3)
    args.update(kw)
    return lt.Network(**args)


def _train(**kw):
    args = dict(net=lt.init_network(N=8, g=0.3, seed=0), task=lt.FixedPointTask(target=1.0),
                lr=0.01, epochs=3, mode="fixed_point")
    args.update(kw)
    return lt.train(**args)


_NAN = float("nan")
_INF = float("inf")
BAD_INPUTS = {
    "N<2": (lambda: lt.init_network(N=1, g=0.5, seed=0), "N"),
    "N=0": (lambda: lt.init_network(N=0, g=0.5, seed=0), "N"),
    "g<0": (lambda: lt.init_network(N=8, g=-0.1, seed=0), "g"),
    "g=nan": (lambda: lt.init_network(N=8, g=_NAN, seed=0), "g"),
    "g=inf": (lambda: lt.init_network(N=8, g=_INF, seed=0), "g"),
    "seed<0": (lambda: lt.init_network(N=8, g=0.5, seed=-1), "seed"),
    "target=nan": (lambda: lt.FixedPointTask(target=_NAN), "target"),
    "target=inf": (lambda: lt.FixedPointTask(target=-_INF), "target"),
    "dt=0": (lambda: lt.FixedPointTask(target=1.0, dt=0.0), "dt"),
    "dt<0": (lambda: lt.FixedPointTask(target=1.0, dt=-0.5), "dt"),
    "dt=2": (lambda: lt.FixedPointTask(target=1.0, dt=2.0), "dt"),
    "dt=nan": (lambda: lt.FixedPointTask(target=1.0, dt=_NAN), "dt"),
    "t_max short": (lambda: lt.FixedPointTask(target=1.0, t_max=2.0), "t_max"),
    "t_max tiny": (lambda: lt.FixedPointTask(target=1.0, t_max=0.5), "t_max"),
    "lr=0": (lambda: _train(lr=0.0), "lr"),
    "lr<0": (lambda: _train(lr=-0.01), "lr"),
    "lr=nan": (lambda: _train(lr=_NAN), "lr"),
    "lr=inf": (lambda: _train(lr=_INF), "lr"),
    "epochs=0": (lambda: _train(epochs=0), "epochs"),
    "mode": (lambda: _train(mode="euler"), "mode"),
    "engine": (lambda: _train(engine="gpu"), "engine"),
    "W0 not square": (lambda: _net(W0=np.zeros((3, 4))), "W0"),
    "W0 1x1": (lambda: _net(W0=np.zeros((1, 1)), m=[1.0], w=[1.0]), "W0"),
    "m wrong length": (lambda: _net(m=np.ones(4)), "m"),
    "w wrong shape": (lambda: _net(w=np.ones((3, 1))), "w"),
    "W0 nan": (lambda: _net(W0=np.diag([0.0, _NAN, 0.0])), "W0"),
    "m inf": (lambda: _net(m=[1.0, _INF, 0.0]), "m"),
    "w nan": (lambda: _net(w=[_NAN, 0.0, 0.0]), "w"),
    "unstable W0": (lambda: _train(net=_net(W0=np.diag([0.5, 1.5, 0.0]))), "W0"),
    "unstable W0 (dense)": (lambda: _train(net=_net(W0=1.2 * np.eye(3)), engine="dense"),
                            "W0"),
    "gradient W nan": (lambda: lt.gradient(np.full((8, 8), _NAN),
                                           lt.init_network(N=8, g=0.3, seed=0),
                                           lt.FixedPointTask(1.0)), "W"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_raises_value_error_naming_the_parameter(case):
    fn, name = BAD_INPUTS[case]
    with pytest.raises(ValueError) as info:
        fn()
    assert str(info.value).split()[0] == name, str(info.value)


def test_unstable_w0_is_fine_in_bptt_mode():
    """Only the fixed-point limit needs a stable W0; the finite-time task is defined for
    any W (and diverges, with status "diverged", only if the loss explodes)."""
    net = _net(W0=np.diag([0.5, 1.5, 0.0]))
    run = lt.train(net, lt.FixedPointTask(target=1.0, t_max=6.0), lr=1e-3, epochs=3,
                   mode="bptt")
    assert run.status in ("ok", "diverged")


@pytest.mark.parametrize("g, stable", [(0.0, True), (0.5, True), (1.3, False)])
def test_stability_check_above_the_lanczos_size(g, stable):
    """N > 600 takes the Lanczos path of ``numerical_abscissa``; W0 = 0 (g = 0) gives it
    no Krylov space (a regression: ARPACK stopped with "starting vector is zero")."""
    net = lt.init_network(N=640, g=g, seed=3)
    if stable:
        net.check_stable()
        assert net.numerical_abscissa() == pytest.approx(
            np.linalg.eigvalsh(0.5 * (net.W0 + net.W0.T))[-1], abs=1e-9)
    else:
        with pytest.raises(ValueError, match="unstable"):
            net.check_stable()


# ------------------------------------------------------------ fast vs dense fixed point

# (N, g, target, lr): paper learning rates, plus two large ones that drive the loss to
# rounding level (where the relative comparison stops: loss <= 1e-10 L0).
_ENGINE_CASES = [(64, 0.3, 1.0, paper_lr(0.3, 1.0)), (128, 0.6, 1.0, paper_lr(0.6, 1.0)),
                 (128, 0.9, 0.5, paper_lr(0.9, 0.5)), (96, 0.0, 2.0, paper_lr(0.0, 2.0)),
                 (64, 0.5, 1.0, 0.1), (64, 0.7, -1.5, 0.02)]


@pytest.mark.parametrize("N,g,target,lr", _ENGINE_CASES)
def test_fast_fixed_point_engine_equals_dense(N, g, target, lr):
    """Fast (Woodbury, factored Delta W) and dense (LU per epoch) fixed-point engines:
    loss curves within 1e-9 relative wherever loss > 1e-10 L0 (below that the loss is a
    difference of nearly equal numbers and carries no relative precision), singular values
    within 1e-12 absolute. Measured: <= 2.2e-10 relative, <= 1.2e-15 absolute."""
    net = lt.init_network(N=N, g=g, seed=3)
    task = lt.FixedPointTask(target=target)
    a = lt.train(net, task, lr=lr, epochs=200, mode="fixed_point", engine="dense")
    b = lt.train(net, task, lr=lr, epochs=200, mode="fixed_point", engine="fast")
    assert a.status == b.status == "ok"
    mask = a.loss > 1e-10 * task.L0
    assert mask.sum() >= 50
    np.testing.assert_array_less(np.abs(a.loss - b.loss)[mask], 1e-9 * a.loss[mask])
    np.testing.assert_allclose(b.singular_values, a.singular_values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.W, a.W, rtol=0, atol=1e-12)


def test_fast_and_dense_fixed_point_engines_diverge_together():
    """A learning rate far too large: both engines detect the loss of the fixed point at
    the same epoch. Here Delta W grows to O(100), so the singular values are compared
    relative to their scale (1e-12 of the largest)."""
    net = lt.init_network(N=128, g=0.8, seed=3)
    task = lt.FixedPointTask(target=-1.0)
    a = lt.train(net, task, lr=0.05, epochs=200, mode="fixed_point", engine="dense")
    b = lt.train(net, task, lr=0.05, epochs=200, mode="fixed_point", engine="fast")
    assert a.status == b.status == "diverged"
    assert a.stop_epoch == b.stop_epoch
    np.testing.assert_allclose(b.loss, a.loss, rtol=1e-9, atol=0)
    scale = np.max(a.singular_values)
    np.testing.assert_allclose(b.singular_values, a.singular_values, rtol=0,
                               atol=1e-12 * scale)


# ------------------------------------------------------------------- analyses

@pytest.fixture(scope="module")
def trained():
    """Fixed-point runs at g = 0 and g = 0.6 (N = 64), stopped at the first epoch with
    loss < 1e-3 L0 (so that relative comparisons of the loss are meaningful)."""
    out = {}
    task = lt.FixedPointTask(target=1.0)
    for g in (0.0, 0.6):
        net = lt.init_network(N=64, g=g, seed=7)
        run = lt.train(net, task, lr=2 * paper_lr(g, 1.0), epochs=500, mode="fixed_point",
                       stop_rel_loss=1e-3)
        assert run.status == "converged"
        out[g] = (net, run, task)
    return out


@pytest.mark.parametrize("g", [0.0, 0.6])
def test_truncation_losses_limits(trained, g):
    """Rank 0 keeps W0 alone: exactly the initial loss. Rank N keeps the whole Delta W:
    the trained loss up to the SVD reconstruction error (~1e-15 |Delta W|, which moves the
    readout by ~1e-14 and the loss by < 1e-9 relative at these loss levels)."""
    net, run, task = trained[g]
    L_trained = lt.loss(run.W, net, task, mode="fixed_point")
    L = lt.truncation_losses(run.W, net, task, ranks=[0, 1, 2, net.N], mode="fixed_point")
    assert L[0] == lt.loss(net.W0, net, task, mode="fixed_point")
    assert abs(L[3] - L_trained) <= 1e-9 * L_trained
    assert L[1] > L_trained                          # rank one is not the whole story
    if g == 0.0:                                     # Delta W has rank 2: rank 2 is exact
        assert abs(L[2] - L_trained) <= 1e-9 * L_trained


def test_shuffle_loss_properties(trained):
    net0, run0, task = trained[0.0]
    L0_trained = lt.loss(run0.W, net0, task, mode="fixed_point")
    # g = 0: W0 = 0, and a permutation of zeros is zero: nothing changes, exactly
    assert lt.shuffle_loss(run0.W, net0, task, seed=3, mode="fixed_point") == L0_trained / task.L0
    net, run, _ = trained[0.6]
    L_trained = lt.loss(run.W, net, task, mode="fixed_point")
    s1 = lt.shuffle_loss(run.W, net, task, seed=5, mode="fixed_point", n_shuffles=3)
    s2 = lt.shuffle_loss(run.W, net, task, seed=5, mode="fixed_point", n_shuffles=3)
    assert s1 == s2                                  # seeded permutations
    # claim 3 of the paper: Delta W is tuned to W0; on a shuffled W0 it fails (the theory
    # predicts ~0.6 L0 at g = 0.6; the trained loss is < 0.05 L0)
    assert L_trained < 0.05 * task.L0
    assert s1 > 0.2                                  # relative to L0, like the theory
    # shuffling W0 and keeping the trained W0 are different networks in bptt mode as well
    assert lt.shuffle_loss(run.W, net, task, seed=5, mode="bptt") > 10 * L_trained / task.L0
