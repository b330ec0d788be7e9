"""Tests of the nonlinear (tanh) part: exact BPTT, tasks, Adam, training and analyses."""

from __future__ import annotations

import json

import numpy as np
import pytest

from linrnn_theory.nonlinear import (
    Adam, FlipFlopTask, ManteTask, RomoTask, TASK_NAMES, adam_update, eigenvalues, init_params,
    learning_epoch, limit_blas_threads, loss, loss_and_grad, make_figures, make_task,
    rank_to_recover, report_section, run_nonlinear, shuffle_losses, simulate,
    truncation_losses, variance_explained,
)
from linrnn_theory.nonlinear.experiment import FULL, QUICK
from linrnn_theory._blas import openblas_handles


# ----------------------------------------------------------------------------- gradients

def _fd_gradient(params, batch, h=1e-5):
    """Central finite differences of the loss w.r.t. every entry of W_in, W, W_out."""
    out = []
    for arr in params.arrays():
        fd = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + h
            lp = loss(params, *batch[:3])
            arr[idx] = old - h
            lm = loss(params, *batch[:3])
            arr[idx] = old
            fd[idx] = (lp - lm) / (2 * h)
        out.append(fd)
    return out


@pytest.mark.parametrize("task_name", TASK_NAMES)
def test_gradient_matches_central_differences(task_name):
    task = make_task(task_name)
    batch = task.sample(2, np.random.default_rng(3))
    params = init_params(N=8, n_in=task.n_in, n_out=task.n_out, g=1.5, seed=1)
    # move W_out away from its tiny initial scale so that all three gradients are sizeable
    params.W_out[:] *= 8.0
    L, grads = loss_and_grad(params, *batch[:3])
    assert L == pytest.approx(loss(params, *batch[:3]), rel=1e-13)
    for name, fd, g in zip(("W_in", "W", "W_out"), _fd_gradient(params, batch), grads.arrays()):
        rel = np.linalg.norm(fd - g) / np.linalg.norm(g)
        assert rel < 1e-6, f"{task_name} {name}: relative error {rel:.2e}"


def test_gradient_with_weighted_mask_and_dt_one():
    rng = np.random.default_rng(0)
    params = init_params(N=6, n_in=2, n_out=3, g=2.0, seed=4)
    params.W_out[:] *= 5.0
    u = rng.normal(size=(7, 3, 2))
    target = rng.normal(size=(7, 3, 3))
    mask = rng.uniform(0, 2, size=(7, 3, 3)) * (rng.uniform(size=(7, 3, 3)) > 0.3)
    for dt in (0.5, 1.0, 0.1):
        L, grads = loss_and_grad(params, u, target, mask, dt)
        for arr, g in zip(params.arrays(), grads.arrays()):
            fd = np.zeros_like(arr)
            for idx in np.ndindex(arr.shape):
                old = arr[idx]
                arr[idx] = old + 1e-5
                lp = loss(params, u, target, mask, dt)
                arr[idx] = old - 1e-5
                lm = loss(params, u, target, mask, dt)
                arr[idx] = old
                fd[idx] = (lp - lm) / 2e-5
            assert np.linalg.norm(fd - g) / np.linalg.norm(g) < 1e-6


def test_loss_definition_and_float32_agreement():
    task = ManteTask()
    b = task.sample(4, np.random.default_rng(0))
    p = init_params(N=20, n_in=4, n_out=1, g=1.2, seed=0)
    z = simulate(p, b.u).z
    expected = 0.5 * np.sum(b.mask * (z - b.target) ** 2) / np.sum(b.mask)
    assert loss(p, *b[:3]) == pytest.approx(expected, rel=1e-12)
    L64, g64 = loss_and_grad(p, *b[:3])
    L32, g32 = loss_and_grad(p.astype(np.float32), *b[:3])
    assert g32.W.dtype == np.float32
    assert L32 == pytest.approx(L64, rel=1e-5)
    for a, c in zip(g32.arrays(), g64.arrays()):
        assert np.linalg.norm(a - c) / np.linalg.norm(c) < 1e-4


def test_batch_parallel_threads_give_the_same_result():
    task = FlipFlopTask()
    b = task.sample(7, np.random.default_rng(0))
    p = init_params(N=24, n_in=2, n_out=2, g=1.5, seed=3)
    L1, g1 = loss_and_grad(p, *b[:3])
    L2, g2 = loss_and_grad(p, *b[:3], n_threads=3)
    assert L2 == pytest.approx(L1, rel=1e-13)
    for a, c in zip(g2.arrays(), g1.arrays()):
        assert np.allclose(a, c, rtol=1e-12, atol=1e-16 * np.abs(c).max())
    assert loss(p, *b[:3], n_threads=2) == pytest.approx(L1, rel=1e-13)


def test_simulate_follows_the_euler_equation():
    p = init_params(N=5, n_in=1, n_out=1, g=1.0, seed=2)
    u = np.random.default_rng(0).normal(size=(4, 1, 1))
    traj = simulate(p, u, dt=0.5)
    x = np.zeros(5)
    for t in range(4):
        x = 0.5 * x + 0.5 * (p.W @ np.tanh(x) + p.W_in[:, 0] * u[t, 0, 0])
        assert np.allclose(traj.x[t + 1, 0], x, rtol=1e-13, atol=1e-15)
        assert traj.z[t, 0, 0] == pytest.approx(p.W_out[:, 0] @ np.tanh(x), rel=1e-12)


# ----------------------------------------------------------------------------- init

def test_init_params_conventions_and_seed():
    p = init_params(N=200, n_in=3, n_out=2, g=2.0, seed=7)
    assert np.allclose(np.linalg.norm(p.W_in, axis=0), np.sqrt(200))
    assert np.allclose(np.linalg.norm(p.W_out, axis=0), 1 / np.sqrt(200))
    J = p.W / 2.0
    assert abs(J.std() * np.sqrt(200) - 1) < 0.02          # J_ij ~ N(0, 1/N)
    q = init_params(N=200, n_in=3, n_out=2, g=0.7, seed=7)
    assert np.allclose(q.W / 0.7, J)                       # same J for every g
    assert np.array_equal(p.W_in, q.W_in) and np.array_equal(p.W_out, q.W_out)
    r = init_params(N=200, n_in=3, n_out=2, g=2.0, seed=8)
    assert not np.allclose(r.W, p.W)
    z = init_params(N=10, n_in=1, n_out=1, g=0.0, seed=0)
    assert not z.W.any()


@pytest.mark.parametrize("kwargs, name", [
    (dict(N=1), "N"), (dict(g=-1.0), "g"), (dict(seed=-3), "seed"),
    (dict(dtype=np.int32), "dtype"), (dict(n_in=0), "n_in"),
])
def test_init_params_validation(kwargs, name):
    args = dict(N=8, n_in=1, n_out=1, g=1.0, seed=0) | kwargs
    with pytest.raises(ValueError, match=name):
        init_params(**args)


def test_loss_validation():
    p = init_params(N=4, n_in=1, n_out=1, g=1.0, seed=0)
    u, y, m = np.zeros((3, 2, 1)), np.zeros((3, 2, 1)), np.ones((3, 2, 1))
    with pytest.raises(ValueError, match="u must"):
        loss(p, np.zeros((3, 2, 2)), y, m)
    with pytest.raises(ValueError, match="target"):
        loss(p, u, np.zeros((3, 1, 1)), m)
    with pytest.raises(ValueError, match="mask"):
        loss(p, u, y, np.zeros((3, 2, 1)))
    with pytest.raises(ValueError, match="dt"):
        loss(p, u, y, m, dt=1.5)


# ----------------------------------------------------------------------------- tasks

@pytest.mark.parametrize("task", [FlipFlopTask(), ManteTask(), RomoTask()])
def test_tasks_reproducible_from_seed(task):
    a = task.sample(16, np.random.default_rng(11))
    b = task.sample(16, np.random.default_rng(11))
    c = task.sample(16, np.random.default_rng(12))
    for x, y in zip(a[:3], b[:3]):
        assert np.array_equal(x, y)
    assert not np.array_equal(a.u, c.u)
    assert np.array_equal(task.test_batch(5, 8).u, task.test_batch(5, 8).u)
    assert a.u.shape == (task.n_steps, 16, task.n_in)
    assert a.target.shape == a.mask.shape == (task.n_steps, 16, task.n_out)
    with pytest.raises(ValueError, match="rng"):
        task.sample(2, 0)
    with pytest.raises(ValueError, match="batch"):
        task.sample(0, np.random.default_rng(0))


def test_flipflop_rules():
    task = FlipFlopTask()
    T = task.n_steps
    assert T == 100
    b = task.sample(400, np.random.default_rng(0))
    on, ch, sg = b.info["onsets"], b.info["channels"], b.info["signs"]
    firsts = on[:, 0]
    assert firsts.min() >= 10 and firsts.max() <= 50
    assert set(firsts.tolist()) == set(range(10, 51))         # all gaps of the grid occur
    for i in range(400):
        k = int(b.info["n_pulses"][i])
        assert k >= 1 and np.all(on[i, k:] == -1)
        d = np.diff(on[i, :k])
        assert np.all((d >= 20) & (d <= 60))                  # 5 + U[5, 25] time units
        # independent reconstruction of the trial
        u = np.zeros((T, 2))
        y = np.zeros((T, 2))
        m = np.ones((T, 2))
        for j in range(k):
            s, c = int(on[i, j]), int(ch[i, j])
            assert s + 2 <= T and sg[i, j] in (-1.0, 1.0)
            u[s:s + 2, c] = sg[i, j]
            y[s:, c] = 0.5 * sg[i, j]
            m[s:s + 10, c] = 0.0
        assert np.array_equal(b.u[:, i], u)
        assert np.array_equal(b.target[:, i], y)
        assert np.array_equal(b.mask[:, i], m)
    assert set(np.unique(b.u).tolist()) == {-1.0, 0.0, 1.0}


def test_mante_rules():
    task = ManteTask()
    assert task.n_steps == 96
    B = 300
    b = task.sample(B, np.random.default_rng(1))
    coh, ctx = b.info["coherences"], b.info["context"]
    assert set(np.round(np.abs(coh) * 8).ravel().tolist()) == {1, 2, 4, 8}
    stim = slice(6, 46)
    # sensory and context inputs are silent outside the stimulus
    assert not b.u[:6].any() and not b.u[46:].any()
    assert np.array_equal(b.u[stim, np.arange(B), 2 + ctx], np.ones((40, B)))
    assert not b.u[stim, np.arange(B), 3 - ctx].any()
    # sensory = coherence + white noise of std 0.05 / sqrt(dt) per step
    noise = b.u[stim, :, :2] - coh[None]
    assert abs(noise.std() / (0.05 / np.sqrt(0.5)) - 1) < 0.02
    assert abs(noise.mean()) < 0.002
    # targets and mask
    cued = coh[np.arange(B), ctx]
    assert np.array_equal(b.target[56:, :, 0], np.broadcast_to(0.5 * np.sign(cued), (40, B)))
    assert not b.target[:56].any()
    expected_mask = np.r_[np.ones(46), np.zeros(10), np.ones(40)]
    assert np.array_equal(b.mask[:, :, 0], np.broadcast_to(expected_mask[:, None], (96, B)))


def test_romo_rules():
    task = RomoTask()
    assert task.n_steps == 56
    B = 500
    b = task.sample(B, np.random.default_rng(2))
    f1, f2, d, dec = (b.info[k] for k in ("f1", "f2", "delay_steps", "decision_onset"))
    assert f1.min() >= 0.5 and f1.max() <= 1.5 and f2.min() >= 0.5 and f2.max() <= 1.5
    assert np.all(np.abs(f1 - f2) >= 0.2)
    assert set(d.tolist()) == set(range(4, 17))              # delay U[2, 8] on the grid
    for i in range(B):
        u = np.zeros(56)
        u[6:8] = f1[i]
        s2 = 8 + d[i]
        u[s2:s2 + 2] = f2[i]
        assert np.array_equal(b.u[:, i, 0], u)
        assert dec[i] == s2 + 2 + 10
        m = np.zeros(56)
        m[:6] = 1
        m[dec[i]:dec[i] + 20] = 1
        assert np.array_equal(b.mask[:, i, 0], m) and np.array_equal(b.mask[:, i, 1], m)
        y = np.zeros((56, 2))
        y[dec[i]:dec[i] + 20, 0 if f1[i] > f2[i] else 1] = 0.5
        assert np.array_equal(b.target[:, i], y)


def test_task_parameter_validation():
    with pytest.raises(ValueError, match="dt"):
        RomoTask(dt=0.0)
    with pytest.raises(ValueError, match="gap_max"):
        FlipFlopTask(gap_min=10, gap_max=5)
    with pytest.raises(ValueError, match="task"):
        make_task("copy")


# ----------------------------------------------------------------------------- Adam

def test_adam_matches_hand_computed_steps():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    # step 1, gradient 0.5: m = 0.05, v = 0.00025, m_hat = 0.5, v_hat = 0.25
    p1 = 1.0 - lr * 0.5 / (0.5 + eps)
    # step 2, gradient -1: m = 0.045 - 0.1, v = 0.999 * 0.00025 + 0.001
    m2, v2 = 0.9 * 0.05 - 0.1, 0.999 * 0.00025 + 0.001
    p2 = p1 - lr * (m2 / (1 - 0.9 ** 2)) / (np.sqrt(v2 / (1 - 0.999 ** 2)) + eps)
    assert p2 == pytest.approx(p1 + 0.1 * 0.289473684210526 / 0.790688, rel=1e-6)

    x = np.array([1.0])
    opt = Adam([x], lr=lr, beta1=b1, beta2=b2, eps=eps)
    opt.step([x], [np.array([0.5])])
    assert x[0] == pytest.approx(p1, rel=1e-15)
    opt.step([x], [np.array([-1.0])])
    assert x[0] == pytest.approx(p2, rel=1e-15)
    assert opt.t == 2 and opt.m[0][0] == pytest.approx(m2) and opt.v[0][0] == pytest.approx(v2)

    q, m, v = adam_update(1.0, 0.5, 0.0, 0.0, t=1, lr=lr)
    q, m, v = adam_update(q, -1.0, m, v, t=2, lr=lr)
    assert float(q) == pytest.approx(p2, rel=1e-15)
    with pytest.raises(ValueError, match="lr"):
        Adam([x], lr=0.0)


# ----------------------------------------------------------------------------- training

def test_short_training_lowers_the_loss_and_is_reproducible():
    kw = dict(N=32, epochs=100, batch=16, n_test=32, lr=0.003, record_every=25)
    r = run_nonlinear("flipflop", g=0.9, seed=0, **kw)
    assert r.status == "ok" and r.epochs_completed == 100
    assert r.test_loss.shape == (101,) and r.train_loss.shape == (100,)
    assert r.test_loss[-1] < 0.2 * r.test_loss[0]
    assert r.train_loss[-10:].mean() < 0.3 * r.train_loss[:10].mean()
    assert list(r.record_epochs) == [0, 25, 50, 75, 100]
    assert not r.sv_delta[0].any() and r.sv_delta[-1][0] > 0
    r2 = run_nonlinear("flipflop", g=0.9, seed=0, **kw)
    assert np.array_equal(r.test_loss, r2.test_loss)
    # the result writes itself as JSON and reads itself back
    back = type(r).from_json(r.to_json())
    assert back.status == r.status and np.array_equal(back.test_loss, r.test_loss)
    assert np.array_equal(back.eig_W, r.eig_W) and back.record_epochs.dtype.kind == "i"
    assert json.loads(r.to_json())["schema"] == "linrnn-theory/nonlinear-run/1"


def test_test_every_and_threads_in_a_run():
    kw = dict(N=16, epochs=23, batch=6, n_test=8, lr=0.003, record_every=10)
    a = run_nonlinear("romo", g=1.0, seed=2, **kw)
    b = run_nonlinear("romo", g=1.0, seed=2, test_every=5, n_threads=2, **kw)
    assert list(b.test_epochs) == [0, 5, 10, 15, 20, 23]
    assert np.allclose(b.test_loss, a.test_loss[b.test_epochs], rtol=1e-9)
    assert np.allclose(b.train_loss, a.train_loss, rtol=1e-9)
    assert list(a.test_epochs) == list(range(24))


def test_divergence_is_reported_not_returned_as_nan():
    r = run_nonlinear("romo", g=1.0, seed=0, N=16, epochs=20, batch=4, n_test=4, lr=1e200)
    assert r.status == "diverged"
    assert "epoch" in r.message
    assert r.epochs_completed < 20
    for key in ("train_loss", "test_loss", "sv_delta", "truncation_loss", "variance_explained",
                "eig_W"):
        assert np.all(np.isfinite(getattr(r, key))), key
    assert len(r.test_loss) == r.epochs_completed + 1


def test_run_validation():
    with pytest.raises(ValueError, match="task"):
        run_nonlinear("xor", g=1.0, seed=0)
    with pytest.raises(ValueError, match="epochs"):
        run_nonlinear("romo", g=1.0, seed=0, epochs=0)
    with pytest.raises(ValueError, match="dtype"):
        run_nonlinear("romo", g=1.0, seed=0, dtype=np.int64)


def test_presets():
    assert FULL.N == 256 and FULL.seeds == (0, 1, 2, 3, 4)
    assert FULL.g_values["flipflop"] == (0.0, 0.3, 0.6, 0.9, 1.2, 1.5, 1.8, 2.1)
    assert FULL.g_values["mante"][-1] == 2.7 and FULL.g_values["romo"][-1] == 3.0
    assert FULL.epochs == {"flipflop": 1000, "mante": 2000, "romo": 6000}
    assert {r["task"] for r in QUICK.runs()} == set(TASK_NAMES)


# ----------------------------------------------------------------------------- analyses

@pytest.fixture(scope="module")
def trained():
    r = run_nonlinear("romo", g=1.2, seed=1, N=24, epochs=40, batch=8, n_test=16, lr=0.01,
                      return_weights=True)
    return r


def test_truncation_endpoints(trained):
    from linrnn_theory.nonlinear import RNNParams
    r = trained
    p = RNNParams(r.W_in, r.W, r.W_out)
    test = RomoTask().test_batch(batch=16)
    L = truncation_losses(p, r.W0, test, ranks=[0, 24])
    assert L[1] == pytest.approx(r.trained_loss, rel=1e-10)   # full rank: trained
    assert L[0] == pytest.approx(loss(p.replace_W(r.W0), *test[:3]), rel=1e-12)
    assert r.truncation_loss[0] == pytest.approx(L[0], rel=1e-12)
    # with untrained W_in, W_out, rank 0 is exactly the initial loss
    p0 = init_params(N=24, n_in=1, n_out=2, g=1.2, seed=1)
    rng = np.random.default_rng(0)
    p_only_W = p0.replace_W(p0.W + 0.3 * np.outer(rng.normal(size=24), rng.normal(size=24)) / 24)
    L0 = truncation_losses(p_only_W, p0.W, test, ranks=[0, 1, 24])
    assert L0[0] == pytest.approx(loss(p0, *test[:3]), rel=1e-12)
    assert L0[1] == pytest.approx(L0[2], rel=1e-10)               # Delta W had rank 1


def test_variance_explained_monotone_and_complete(trained):
    dW = trained.W - trained.W0
    v = variance_explained(dW, ranks=range(25))
    assert v[0] == 0.0 and v[-1] == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.diff(v) >= 0)
    rng = np.random.default_rng(0)
    low = rng.normal(size=(10, 3)) @ rng.normal(size=(3, 10))
    v3 = variance_explained(low, ranks=range(11))
    assert v3[3] == pytest.approx(1.0) and v3[2] < 1.0
    assert np.all(variance_explained(np.zeros((4, 4)), ranks=[0, 2]) == 1.0)


def test_shuffle_g0_changes_nothing_and_g_positive_does():
    r = run_nonlinear("flipflop", g=0.0, seed=0, N=16, epochs=10, batch=4, n_test=8, lr=0.01,
                      n_shuffles=3)
    assert np.all(r.shuffle_losses == r.trained_loss)
    p = init_params(N=16, n_in=2, n_out=2, g=1.5, seed=0)
    test = FlipFlopTask().test_batch(batch=8)
    s = shuffle_losses(p, p.W, test, n_shuffles=3, seed=0)
    assert np.all(s != loss(p, *test[:3]))
    assert np.array_equal(s, shuffle_losses(p, p.W, test, n_shuffles=3, seed=0))  # seeded


def test_eigen_learning_time_and_rank_helpers(trained):
    r = trained
    ev = eigenvalues(r.W)
    assert np.allclose(np.sort_complex(ev), np.sort_complex(np.linalg.eigvals(r.W)))
    assert np.allclose(r.eig_W[:, 0], ev.real) and np.allclose(r.eig_W[:, 1], ev.imag)
    assert learning_epoch([0.5, 0.3, 0.05, 0.2, 0.01], 0.1) == 2
    assert learning_epoch([0.5, 0.3], 0.1) is None
    le = r.learning_epoch
    if le is not None:
        assert r.test_loss[le] < r.learning_threshold <= r.test_loss[:le].min()
    assert rank_to_recover([2.0, 1.2, 1.05, 1.0], 1.0, 0.1) == 2
    assert rank_to_recover([2.0, 1.5], 1.0, 0.1) is None


def test_figures_and_report(tmp_path):
    rs = [run_nonlinear(t, g=g, seed=s, N=12, epochs=15, batch=4, n_test=8, lr=0.01,
                        record_every=5).as_record() for t in ("mante", "romo")
          for g in (0.0, 1.0) for s in (0, 1)]
    paths = make_figures(rs, tmp_path / "figs")
    names = sorted(p.name for p in paths)
    assert names == sorted(f"nonlinear_{n}.{e}" for n in ("mante", "romo", "summary")
                           for e in ("png", "pdf"))
    assert all(p.stat().st_size > 10_000 for p in paths)
    md = report_section(rs)
    assert "### Context-dependent decision (Mante)" in md and "### Parametric working" in md
    assert md.count("| 0 |") == 2 and md.count("| 1 |") == 2
    assert "N = 12" in md and "epochs = 15" in md


def test_blas_thread_limit_restores():
    handles = openblas_handles()
    before = [int(get()) for get, _ in handles]
    with limit_blas_threads(1):
        assert all(int(get()) == 1 for get, _ in handles)
    assert [int(get()) for get, _ in handles] == before
    with pytest.raises(ValueError, match="n"):
        with limit_blas_threads(0):
            pass


# ------------------------------------------------------------- runs of a preset, cached

def test_run_preset_goes_through_the_sweep_cache_shared_with_reproduce(tmp_path,
                                                                      monkeypatch):
    """run_preset computes each run once, as the task of `reproduce nonlinear`: after
    `reproduce nonlinear --tiny --out D` it reads every run from D/cache."""
    import linrnn_theory.nonlinear.experiment as ex
    from linrnn_theory.nonlinear import run_preset
    from linrnn_theory.reproduce import reproduce
    from linrnn_theory.reproduce.presets import TINY
    out = tmp_path / "D"
    reproduce(["nonlinear"], "tiny", out, jobs=1, progress=False)

    def refuse(*args, **kwargs):
        raise AssertionError("run_nonlinear called although the run is cached")
    monkeypatch.setattr(ex, "run_nonlinear", refuse)
    records = run_preset(TINY.nonlinear, out / "cache")
    runs = TINY.nonlinear.runs()
    assert [(r["task"], r["g"], r["seed"]) for r in records] == \
        [(kw["task"], kw["g"], kw["seed"]) for kw in runs]
    assert all("figure" not in r and "kind" not in r for r in records)
    with np.load(out / "data" / "nonlinear.npz") as d:
        for i, r in enumerate(records):
            np.testing.assert_array_equal(d[f"run{i}_test_loss"], r["test_loss"])
    monkeypatch.undo()
    fresh = tmp_path / "fresh"
    again = run_preset(TINY.nonlinear, fresh, epochs=3)             # overrides every run
    assert [r["epochs"] for r in again] == [3] * len(runs)
    assert len(list(fresh.glob("*.npz"))) == len(runs)
