r"""Shared helpers of the property tests, and the dense gradient-flow reference.

The property tests (``tests/test_properties_*.py``, run with ``pytest -m property``; see
``docs/testing.md``) check the theory against simulation across the parameter space.
Hypothesis strategies live in ``tests/strategies.py``; this module holds what several
test files use: the resolvent data of a network, the time scale of learning, the
:func:`full_gradient_flow` reference, a training wrapper that discards unstable runs, and
the round-off tolerances of two gradient-descent runs that agree in exact arithmetic.

Structure of the property tests. Every property is a checker ``check_xxx(...) -> None``
that raises ``AssertionError`` when the property fails. Each checker is used twice:

* by the property test, on data drawn by hypothesis (networks, targets, gains, seeds,
  learning rates: ``tests/strategies.py``), and
* by a *must-fail* test, on the same kind of data with the prediction (or the claimed
  symmetry) perturbed -- scaled by ``1 + 1e-3``, a series term dropped, ``beta`` in place of
  ``beta^2``, a sign flipped, a wrong exponent -- which the same checker must reject
  (``pytest.raises(AssertionError)``). A checker that cannot fail proves nothing.

Tolerances are derived, not fitted; each derivation sits next to the code that uses it.
Notation: ``R_W = (I - W)^{-1}``, ``a = R_W^T w``, ``b = R_W m``, ``e = z_hat - z``,
``kappa = |a|^2 |b|^2`` (the rate of the linearised flow, ``dz/dtau = e kappa``),
``beta = 1/(1 - g^2)``, ``tau~ = beta^2 tau``, ``eps`` = float64 machine epsilon.

Properties, by file (``tests/test_properties_<family>.py``)
-----------------------------------------------------------
``flow``        exact identities: (a) ``g = 0``: ``predict(method="exact_g0", network=net)``
                equals gradient descent on the same network once its Euler error is removed
                by Richardson extrapolation; (b) ``predict(method="instance")`` equals the
                full ``N x N`` gradient flow (:func:`full_gradient_flow`).
``bptt``        the bptt gradient tends to the fixed-point gradient as ``t_max -> infinity``,
                within an explicit bound on the Euler transient.
``invariances`` joint rotation of ``(W0, m, w)``; ``m -> c m, w -> w/c``; ``(w, z_hat) ->
                (-w, -z_hat)`` for a finite network, and the parity in ``z_hat`` of the
                large-N theory.
``rank``        ``rank Delta W <= 2`` at ``g = 0``; ``sigma_k = O(tau^(2k-1))`` for ``g > 0``.
``large_n``     ``|z_N - z_infinity| <= 6 s(tau) / sqrt(N)`` with ``s`` derived from the
                fluctuations of the Gram entries of the Krylov chains.
``series``      the order-K error is ``c_{K+1} tau~^(K+1) (1 + O(tau~))`` against the
                large-N ODE.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg as sla
from hypothesis import assume
from hypothesis.control import currently_in_test_context
from scipy.integrate import solve_ivp

import linrnn_theory as lt
from linrnn_theory.simulation.engine import EngineRefused

EPS = float(np.finfo(float).eps)

#: coarse and fine relative tolerances of the DOP853 integrations whose difference
#: estimates their error (instance reduced ODE and full flow; large-N ODE)
RTOLS = (1e-9, 1e-11)


# ====================================================================== network data

def resolvent_data(W: np.ndarray, net: lt.Network):
    """``(z, a, b, |R_W|_2, cond(I - W))`` at weights ``W`` (dense LU and SVD)."""
    M = np.eye(net.N) - W
    lu = sla.lu_factor(M)
    b = sla.lu_solve(lu, net.m)
    a = sla.lu_solve(lu, net.w, trans=1)
    s = np.linalg.svd(M, compute_uv=False)
    return float(net.w @ b), a, b, float(1.0 / s[-1]), float(s[0] / s[-1])


def initial_rate(net: lt.Network) -> float:
    """``kappa_0 = |R^T w|^2 |R m|^2``: ``dz/dtau = e kappa`` at ``tau = 0``, so ``1/kappa_0``
    is the time scale of learning of this network (``= beta^2`` at large N)."""
    _, a, b, _, _ = resolvent_data(net.W0, net)
    return float((a @ a) * (b @ b))


def norm_product(net: lt.Network) -> float:
    """``|m| |w|``: the flow is invariant under ``m -> c m, w -> w/c``, and the
    dimensionless target is ``z_hat / (|m| |w|)`` (targets are drawn in these units)."""
    return float(np.linalg.norm(net.m) * np.linalg.norm(net.w))


# =================================================== the dense gradient-flow reference

def full_gradient_flow(net: lt.Network, target: float, tau, rtol: float,
                       atol: float = 1e-16) -> dict:
    r"""The fixed-point gradient flow of all ``N^2`` entries of ``Delta W``: the reference.

    Integrates (docs/paper.md section 4)

        ``dDelta W/dtau = (z_hat - z) a b^T``,  ``a = (I - W)^{-T} w``,
        ``b = (I - W)^{-1} m``,  ``z = w^T b``,  ``W = W0 + Delta W``,  ``Delta W(0) = 0``,

    the gradient flow of ``L = (z_hat - z)^2 / 2`` in the fixed-point limit, with scipy's
    DOP853 and one dense LU of ``I - W`` per right-hand side (O(N^3) per evaluation). It
    knows nothing of chains, ranks, closed forms or the package's engines and simulators,
    which are checked against it, and it uses nothing of them.

    Parameters
    ----------
    net : linrnn_theory.Network
        ``W0``, ``m``, ``w``.
    target : float
        ``z_hat``.
    tau : array_like
        Increasing learning times, starting at or after 0, where the flow is reported.
    rtol, atol : float
        Tolerances of the integrator (``atol`` far below the O(1/N) entries of
        ``Delta W``).

    Returns
    -------
    dict
        Along ``tau`` (first axis): ``"dW"`` (``Delta W``, shape ``(len(tau), N, N)``),
        ``"z"`` (readout), ``"sv"`` (all singular values of ``Delta W``, largest first),
        ``"cond"`` (``cond(I - W)``), ``"ab"`` (``|a| |b|``), ``"grad_norm"`` (``|z_hat - z|
        |a| |b|``, the norm of the gradient of ``L``), ``"outlier"`` (the largest real part
        of an eigenvalue of ``W``); and ``"tau"`` and ``"nfev"`` (the number of right-hand
        side evaluations).

    Raises
    ------
    RuntimeError
        If the integration fails (e.g. ``I - W`` becomes singular).
    """
    tau = np.asarray(tau, dtype=float)
    N = net.N
    eye = np.eye(N)

    def rhs(_t, y):
        lu = sla.lu_factor(eye - net.W0 - y.reshape(N, N))
        b = sla.lu_solve(lu, net.m)
        a = sla.lu_solve(lu, net.w, trans=1)
        return ((target - net.w @ b) * np.outer(a, b)).ravel()

    sol = solve_ivp(rhs, (0.0, float(tau[-1])), np.zeros(N * N), method="DOP853",
                    t_eval=tau, rtol=rtol, atol=atol)
    if sol.status != 0:
        raise RuntimeError(f"gradient flow integration failed: {sol.message}")
    dWs = sol.y.T.reshape(tau.size, N, N)
    z = np.empty(tau.size)
    sv = np.empty((tau.size, N))
    cond = np.empty(tau.size)
    ab = np.empty(tau.size)
    outlier = np.empty(tau.size)
    for i, d in enumerate(dWs):
        z[i], aa, bb, _, cond[i] = resolvent_data(net.W0 + d, net)
        ab[i] = np.linalg.norm(aa) * np.linalg.norm(bb)
        sv[i] = np.linalg.svd(d, compute_uv=False)
        outlier[i] = float(np.max(np.linalg.eigvals(net.W0 + d).real))
    return {"dW": dWs, "z": z, "sv": sv, "cond": cond, "ab": ab,
            "grad_norm": np.abs(target - z) * ab, "outlier": outlier, "tau": tau,
            "nfev": int(sol.nfev)}


# ===================================================================== training runs

def stable_train(net, task, lr, epochs, mode, engine, **kw):
    """``lt.train`` with every epoch's singular values. A run that loses its fixed point
    (or diverges) has nothing to compare: such examples are discarded (``assume``); they
    occur when the sharpness ``S`` grows beyond ``2 / lr`` during the run.

    A network the fast engine refuses (a numerically defective ``W0``) is trained with
    the default engine choice instead, which must say that it used the dense engine.

    Six singular values are recorded (unless ``n_singular`` is given): the rank and
    symmetry checks look beyond the top two that ``lt.train`` records by default."""
    kw.setdefault("n_singular", 6)
    try:
        run = lt.train(net, task, lr=lr, epochs=epochs, mode=mode, engine=engine, **kw)
    except EngineRefused:
        run = lt.train(net, task, lr=lr, epochs=epochs, mode=mode, **kw)
        assert run.params["engine"] == "dense" and "refused" in run.message, run.message
    if currently_in_test_context():
        assume(run.status == "ok")
    else:                                  # fixed examples (must-fail tests) are stable
        assert run.status == "ok", run.message
    return run


def symmetry_runs(net, t, tt_end, epochs, mode, engine):
    """Task and learning rate of a symmetry check: ``z_hat = t |m||w|``, learning time
    ``tt_end / kappa_0`` in ``epochs`` steps; bptt with ``t_max = 20`` (40 steps)."""
    target = t * norm_product(net)
    task = lt.FixedPointTask(target=target, t_max=20.0 if mode == "bptt" else 101.0)
    lr = tt_end / (initial_rate(net) * epochs)
    return task, lr


# ========================= round-off of two gradient-descent runs equal in exact arithmetic

def step_error(net: lt.Network, task: lt.FixedPointTask, mode: str, engine: str) -> float:
    r"""Relative round-off of one computed gradient, from the condition numbers.

    * fixed point: ``a``, ``b`` from a backward-stable LU of ``I - W``:
      ``2 N eps cond(I - W0)``; the fast engine also drops directions whose residual is
      below its ``rtol = 1e-13`` (relative);
    * bptt: ``T`` matrix-vector products forwards and backwards, each ``~N eps |A| |x|``,
      carried by ``|A^j| <= kappa_V`` (eigenvector condition number): ``2 T N eps kappa_V``;
      the fast engine works in the eigenbasis ``S`` of ``W0`` and drops the part of the
      gradient below its sketch tolerance ``max(1e-13, 10 cond(S)^2 eps)``, and its states
      carry ``cond(S)^2 eps`` each step.
    """
    N = net.N
    if mode == "fixed_point":
        base = 2.0 * N * EPS * resolvent_data(net.W0, net)[4]
        return base + (1e-13 if engine == "fast" else 0.0)
    kv = float(np.linalg.cond(np.linalg.eig(net.W0)[1]))
    base = 2.0 * task.n_steps * N * EPS * kv
    if engine == "fast":
        base += max(1e-13, 10.0 * kv * kv * EPS) + task.n_steps * kv * kv * EPS
    return base


def resolvent_norm(W: np.ndarray, net: lt.Network, task: lt.FixedPointTask, mode: str) -> float:
    """``|R_W|_2`` (fixed point) or the norm of the finite-time resolvent
    ``dt sum_{j < T_in} A^j`` that maps the input to the state at the end of the trial
    (bptt; ``T_in`` input steps, ``A = (1 - dt) I + dt W``)."""
    if mode == "fixed_point":
        return resolvent_data(W, net)[3]
    A = (1.0 - task.dt) * np.eye(net.N) + task.dt * W
    P, M = np.eye(net.N), np.zeros((net.N, net.N))
    for _ in range(task.n_steps - task.n_fixation):
        M += P
        P = P @ A
    return float(task.dt * np.linalg.norm(M, 2))


def growth_factor(run: lt.TrainResult, net: lt.Network, task: lt.FixedPointTask,
                  mode: str) -> float:
    r"""A-priori amplification of a perturbation of ``W`` along a gradient-descent run.

    The step map ``W -> W - lr grad L`` has Jacobian ``I - lr H`` with ``H = grad z grad z^T
    - e grad^2 z``. The Gauss-Newton part has eigenvalues in ``[0, S]`` and does not expand
    while ``lr S <= 2``; the rest expands by at most ``1 + lr |e| |grad^2 z|`` per step with
    ``|grad^2 z| <= 2 |a| |b| |R_W|_2`` (``z(W + X) = ... + a^T X R_W X b + ...``). As
    ``|e| |a| |b| = |grad L|`` this is ``exp(2 |R|_2 sum_k lr |grad L_k|)``: twice the
    resolvent norm times the path length of ``W``. Bptt: ``R_W`` is replaced by the
    finite-time resolvent (:func:`resolvent_norm`). The norm is taken at the larger of the
    two ends of the (short) run.
    """
    r = max(resolvent_norm(net.W0, net, task, mode), resolvent_norm(run.W, net, task, mode))
    path = float(run.params["lr"]) * float(np.sum(run.grad_norm))
    return math.exp(min(2.0 * r * path, 700.0))


def trajectory_tolerances(run, net, task, mode, engine):
    """Tolerances for comparing two runs that are equal in exact arithmetic.

    Every *evaluation* of the readout carries ``eps_step`` (:func:`step_error`) relative to
    the scale of its terms, ``dz = 2 eps_step |c| |w| |m| |R|``, and so does ``e = z_hat -
    z`` -- which matters near convergence, where ``e`` is a difference of nearly equal
    numbers. Each step therefore errs in ``W`` by ``lr |a||b| (|e| eps_step + dz) + eps
    |W|_F`` (``|a||b| = |grad L| / |e|``); both runs' errors, amplified by at most
    :func:`growth_factor` ``Gamma``, give ``|delta W| <= 2 Gamma sum_k (...)``. The loss then
    differs by ``<= |e| dz + dz^2 / 2 + |grad L| |delta W|`` (first order in ``delta W``),
    the readout by ``dz + |a||b| |delta W|`` and the singular values of ``Delta W`` by
    ``<= |delta W|_2`` (Weyl). Returns ``(tol_W, tol_loss, tol_readout)`` (scalars).
    """
    lr = float(run.params["lr"])
    es = step_error(net, task, mode, engine)
    gamma = growth_factor(run, net, task, mode)
    r = max(resolvent_norm(net.W0, net, task, mode), resolvent_norm(run.W, net, task, mode))
    z_scale = abs(task.input_amp) * float(np.linalg.norm(net.w) * np.linalg.norm(net.m)) * r
    dz = 2.0 * es * z_scale
    e = np.sqrt(2.0 * run.loss)
    # |a||b| = |grad L| / |e|; where e = 0 exactly (the run starts at its target) the run
    # says nothing about it, and the network's own |a||b| at W0 is used
    with np.errstate(divide="ignore", invalid="ignore"):
        ab = np.where(e > 0, run.grad_norm / e, math.sqrt(initial_rate(net)))
    wnorm = float(np.linalg.norm(run.W))
    tol_w = 2.0 * gamma * float(np.sum(lr * ab * (e * es + dz) + EPS * wnorm))
    tol_loss = float(np.max(e)) * dz + dz * dz / 2 + float(np.max(run.grad_norm)) * tol_w
    tol_z = dz + float(np.max(ab)) * tol_w
    return tol_w, tol_loss, tol_z


def assert_outliers_match_root_search(model, Cs: np.ndarray) -> np.ndarray:
    """``model.largest_outliers(Cs)`` (top-down scan, joint refinement) against
    ``model.outliers(C)`` (grid and brentq) for each ``C``: the same largest root to 1e-12
    relative or 1e-12 absolute (as ``pytest.approx(root, rel=1e-12)``; roots near
    ``lambda = 0`` at ``g = 0`` early in learning), NaN where there is none. Returns the
    vectorised roots."""
    fast = model.largest_outliers(Cs)
    for C, lam in zip(Cs, fast):
        roots = model.outliers(C)
        if roots.size:
            assert abs(lam - roots[0]) <= max(1e-12 * abs(roots[0]), 1e-12), (lam, roots[0])
        else:
            assert np.isnan(lam)
    return fast
