r"""Property tests, exact identities: theory equals the gradient flow of the same network.

(a) ``g = 0``: ``predict(method="exact_g0", network=net)`` equals gradient descent on the
    same network (``lt.train``, fixed-point mode), once its Euler error is removed by
    Richardson extrapolation over three step sizes;
(b) ``predict(method="instance")`` equals the full ``N x N`` gradient flow (DOP853,
    :func:`reference.full_gradient_flow`).

Structure (checkers and must-fail tests), notation and shared helpers:
``tests/reference.py``; run with ``pytest -m property`` (``docs/testing.md``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

import linrnn_theory as lt
from linrnn_theory import theory

import strategies as S
from reference import (EPS, RTOLS, full_gradient_flow, initial_rate, norm_product,
                       resolvent_data, stable_train)

pytestmark = pytest.mark.property


# ================================================ (a) g = 0: closed form == gradient descent

def richardson(z_h: np.ndarray, z_h2: np.ndarray, z_h4: np.ndarray):
    r"""Richardson extrapolation of gradient descent (Euler on the gradient flow).

    ``z_h = z + h d1 + h^2 d2 + O(h^3)`` on a common grid of learning times, so
    ``R1 = 2 z_{h/2} - z_h = z - h^2 d2 / 2 + O(h^3)`` and ``R2 = 2 z_{h/4} - z_{h/2} =
    z - h^2 d2 / 8 + O(h^3)``: ``R2 - z = (R1 - R2) / 3 + O(h^3)``. Returns ``R2`` and the
    error estimate ``|R1 - R2| / 3`` (sup over the trajectory)."""
    R1 = 2.0 * z_h2 - z_h
    R2 = 2.0 * z_h4 - z_h2
    return R2, float(np.max(np.abs(R1 - R2))) / 3.0


def check_g0_closed_form(pred_z, pred_sv, gd_z, gd_sv, floor):
    r"""Closed form (``exact_g0`` with the network) == gradient flow of the same network,
    observed through gradient descent at steps ``h, h/2, h/4``.

    ``gd_z``: three readout arrays on the common grid (``lt.train`` at step ``h``,
    ``h/2``, ``h/4``, subsampled to the grid of step ``h``); ``gd_sv``: the top two
    singular values of ``Delta W`` at the end of each run.

    Tolerance: ``2 x`` the Richardson estimate ``|R1 - R2| / 3`` (the factor 2 covers the
    ``O(h^3)`` remainder, relative size ``h |d3 / d2| <~ h kappa << 1`` for the steps used)
    plus a round-off floor. The extrapolant is compared, not the raw runs, so the
    tolerance is ``O(h^2)`` (here ~1e-6 relative) instead of the ``O(h)`` Euler error.
    """
    R2, est = richardson(*gd_z)
    dz = float(np.max(np.abs(R2 - pred_z)))
    assert dz <= 2.0 * est + floor, f"readout: |GD(extrapolated) - theory| = {dz:.3e} > " \
                                    f"2 x {est:.3e} + {floor:.1e}"
    S2, est_s = richardson(*gd_sv)
    ds = float(np.max(np.abs(S2 - pred_sv)))
    assert ds <= 2.0 * est_s + floor, f"singular values: {ds:.3e} > 2 x {est_s:.3e} + {floor:.1e}"


def g0_gradient_descent(net, target, tau_end, n, engine):
    """Gradient descent at steps ``h = tau_end / n``, ``h/2``, ``h/4`` on a ``g = 0``
    network; readouts on the grid ``k h`` and final top-2 singular values."""
    zs, svs = [], []
    task = lt.FixedPointTask(target=target)
    for j in (1, 2, 4):
        nj = n * j
        run = stable_train(net, task, lr=tau_end / nj, epochs=nj + 1, mode="fixed_point",
                           engine=engine, record_every=nj)
        zs.append(run.readout[::j])
        svs.append(run.singular_values[-1, :2])
    return zs, svs, run.W


def g0_case(net, target, tt_end, engine="fast", n_min=256, n_max=2048):
    """Everything the g = 0 property compares, for one network, up to ``tt_end / kappa_0``.

    Step: the Euler error of gradient descent is governed by ``h S`` with ``S = |a|^2 |b|^2``
    the sharpness (the non-zero Hessian eigenvalue of the loss at the flow), which grows
    along the run (up to ~20 kappa_0 for |z_hat| = 2). ``n`` steps are taken such that
    ``h S_max <= 0.02`` (between ``n_min`` and ``n_max``), with ``S_max`` read off the
    theory's own gradient norm ``|e| |a| |b|``.
    """
    kappa0 = initial_rate(net)
    tau_end = tt_end / kappa0
    probe = theory.predict(target=target, tau=np.linspace(0.0, tau_end, 65), method="exact_g0",
                           network=net, outlier=False)
    e = np.abs(target - probe.readout)
    live = e > 1e-9 * abs(target)
    s_max = float(np.max((probe.grad_norm[live] / e[live]) ** 2)) if live.any() else kappa0
    n = int(min(max(n_min, math.ceil(tau_end * s_max / 0.02)), n_max))
    zs, svs, W_end = g0_gradient_descent(net, target, tau_end, n, engine)
    tau = np.linspace(0.0, tau_end, n + 1)
    pred = theory.predict(target=target, tau=tau, method="exact_g0", network=net,
                          n_singular=2, outlier=False, grad_norm=False)
    # Round-off floor: each of the 4n steps of the finest run solves with I - W, relative
    # error <= N eps cond(I - W) (backward-stable LU); the errors add up along the run and
    # the extrapolant 2 z_{h/4} - z_{h/2} weighs them by 3. cond(I - W) grows with Delta W:
    # take it at the end of the run (W moves monotonically away from W0 = 0).
    cond = max(resolvent_data(W_end, net)[4], 1.0)
    scale = max(abs(target), float(np.max(np.abs(pred.readout))), 1.0)
    floor = 3.0 * 4 * n * net.N * EPS * cond * scale
    # The theory's own accuracy at convergence: its integrator stops once |e| <= 10 rtol
    # |z_hat| (rtol = 1e-11, docs/theory.md section 3) and holds the state, so the readout
    # may still miss by that much and Delta W by the remaining |dC| <= |e| / (|a||b|)
    # (dC/dtau = e x y^T decays at the rate |a|^2 |b|^2); |a||b| from the probe, its
    # smallest value along the run.
    ab_min = float(np.min(probe.grad_norm[live] / e[live])) if live.any() else 1.0
    floor += 10.0 * 1e-11 * abs(target) / min(ab_min, 1.0)
    return pred, zs, svs, floor


@given(net=S.networks(N=S.sizes(2, 32), g=0.0, w0="zero"), t=S.targets(),
       tt_end=st.floats(0.25, 2.0), engine=st.sampled_from(["fast", "dense"]))
def test_g0_closed_form_equals_gradient_descent(net, t, tt_end, engine):
    """``g = 0``, user ``m, w`` (independent, exactly orthogonal, strongly overlapping or
    parallel; arbitrary norms), ``z_hat = t |m||w|`` of either sign, up to
    ``tt_end / kappa_0``."""
    target = t * norm_product(net)
    pred, zs, svs, floor = g0_case(net, target, tt_end, engine=engine)
    note(f"overlap w.m = {net.overlap():.3g}, kappa0 = {initial_rate(net):.3g}")
    check_g0_closed_form(pred.readout, pred.singular_values[-1], zs, svs, floor)


G0_FIXED = [S.make_network(16, 0.0, 11, pair="overlap", w0="zero", rho=0.8),
            S.make_network(9, 0.0, 12, pair="orthogonal", w0="zero", log2_norms=(0.5, -0.3))]


@pytest.mark.parametrize("net", G0_FIXED, ids=["overlap", "orthogonal"])
def test_g0_checker_rejects_perturbed_closed_form(net):
    """The same checker rejects the closed form scaled by ``1 + 1e-3`` and, for an
    overlapping pair, the large-N closed form that neglects ``w^T m``."""
    target = -1.3
    pred, zs, svs, floor = g0_case(net, target, 1.5)
    check_g0_closed_form(pred.readout, pred.singular_values[-1], zs, svs, floor)  # sanity
    with pytest.raises(AssertionError):
        check_g0_closed_form(pred.readout * (1 + 1e-3), pred.singular_values[-1], zs, svs,
                             floor)
    with pytest.raises(AssertionError):
        check_g0_closed_form(pred.readout, pred.singular_values[-1] * (1 + 1e-3), zs, svs,
                             floor)
    if abs(net.overlap()) > 0.1:
        # the w^T m = 0 closed form (the large-N limit) in units of |m||w|
        c = float(np.linalg.norm(net.m) * np.linalg.norm(net.w))
        tau = np.linspace(0.0, 1.5 / initial_rate(net), zs[0].size)
        big = theory.predict(g=0.0, target=target / c, tau=tau * c * c, method="exact_g0",
                             outlier=False, grad_norm=False)
        with pytest.raises(AssertionError):
            check_g0_closed_form(c * big.readout, pred.singular_values[-1], zs, svs, floor)


# ===================================== (b) instance reduced ODE == full N x N gradient flow

def instance_case(net, target, tt_end, n_tau=17):
    """Full flow and ``predict(method="instance", depth=N)`` at two tolerances each."""
    tau = np.linspace(0.0, tt_end / initial_rate(net), n_tau)
    flows = [full_gradient_flow(net, target, tau, rtol=r) for r in RTOLS]
    kw = dict(target=target, tau=tau, method="instance", network=net, depth=net.N,
              n_singular=3, outlier=False, grad_norm=False)
    preds = [theory.predict(rtol=r, **kw) for r in RTOLS]
    return tau, flows, preds


def instance_tolerances(net, flows, preds):
    r"""Tolerances for ``|instance - full flow|`` of the fine solutions.

    (i) Integration. DOP853's global error scales like ``rtol^(8/9)`` (order 8 method with
    per-step control), so the fine solutions (``rtol = 1e-11``) are ~60 times more accurate
    than the coarse ones (``1e-9``) and ``|coarse - fine|`` bounds the coarse error to 2 %,
    hence the fine error with a margin of ~60. Tolerance: the sum of the two estimates
    (readout and singular values separately; Weyl: singular values move by at most
    ``|delta Delta W|_2``).

    (ii) Floor, independent of the tolerances. ``instance_model`` drops a chain vector whose
    residual is below ``1e-10`` of its norm (deflation), so the projected gradient misses at
    most ``1e-10`` of each of the ``<= N`` chain levels; and every right-hand side solves
    with ``I - W`` (relative error ``N eps cond(I - W)``), accumulated over the ``~nfev/12``
    steps. In units of the largest readout / singular value.
    """
    est_z = float(np.max(np.abs(flows[0]["z"] - flows[1]["z"]))
                  + np.max(np.abs(preds[0].readout - preds[1].readout)))
    est_s = float(np.max(np.abs(flows[0]["sv"][:, :3] - flows[1]["sv"][:, :3]))
                  + np.max(np.abs(preds[0].singular_values - preds[1].singular_values)))
    f = flows[1]
    cond = float(np.max(f["cond"]))
    n_steps = f["nfev"] / 12.0
    rel = net.N * 1e-10 + n_steps * net.N * EPS * cond
    scale_z = max(float(np.max(np.abs(f["z"]))), abs(preds[1].params["target"]))
    floor_z = rel * scale_z
    # Delta W itself is at least as accurate as the gradient that builds it: even where the
    # target equals the initial readout (e = 0 exactly, nothing to learn), the computed e is
    # N eps cond |z| and builds |Delta W| <= tau |e| |a||b| of pure round-off
    floor_s = rel * float(np.max(f["sv"][:, 0])) \
        + net.N * EPS * cond * scale_z * float(np.max(f["ab"])) * float(f["tau"][-1])
    return est_z + floor_z, est_s + floor_s


def check_instance_matches_flow(pred, flow, tol_z, tol_s):
    """Readout and top-3 singular values of ``Delta W`` of the instance reduced ODE equal
    those of the full gradient flow within ``tol_z``, ``tol_s`` along the whole run."""
    dz = float(np.max(np.abs(pred.readout - flow["z"])))
    assert dz <= tol_z, f"readout: |instance - full flow| = {dz:.3e} > {tol_z:.3e}"
    ds = float(np.max(np.abs(pred.singular_values[:, :3] - flow["sv"][:, :3])))
    assert ds <= tol_s, f"singular values: |instance - full flow| = {ds:.3e} > {tol_s:.3e}"


@given(net=S.networks(N=S.sizes(3, 32)), t=S.targets(), tt_end=st.floats(0.25, 2.0))
def test_instance_reduced_ode_equals_full_gradient_flow(net, t, tt_end):
    """Any ``g in [0, 0.9]``, every kind of ``W0`` and ``(m, w)``, ``z_hat = t |m||w|``."""
    target = t * norm_product(net)
    _, flows, preds = instance_case(net, target, tt_end)
    tol_z, tol_s = instance_tolerances(net, flows, preds)
    note(f"tol_z = {tol_z:.2e}, tol_s = {tol_s:.2e}")
    check_instance_matches_flow(preds[1], flows[1], tol_z, tol_s)


INSTANCE_FIXED = [S.make_network(24, 0.6, 21), S.make_network(12, 0.8, 22, pair="overlap",
                                                                  w0="symmetric", rho=-0.7)]


@pytest.mark.parametrize("net", INSTANCE_FIXED, ids=["paper", "overlap-symmetric"])
def test_instance_checker_rejects_perturbed_prediction(net):
    """Rejected: readout or singular values scaled by ``1 + 1e-3``, and the reduced ODE on
    chains truncated at depth 2 (``Delta W`` confined to ``span{R^T w, R^T R m} x
    span{R m, R R^T w}``, which misses ``sigma_3`` and bends the readout at O(tau~^3))."""
    target = 1.2 * norm_product(net)
    tau, flows, preds = instance_case(net, target, 1.5)
    tol_z, tol_s = instance_tolerances(net, flows, preds)
    check_instance_matches_flow(preds[1], flows[1], tol_z, tol_s)          # sanity
    for field in ("readout", "singular_values"):
        bad = theory.Prediction(**{**preds[1].__dict__})
        setattr(bad, field, getattr(bad, field) * (1 + 1e-3))
        with pytest.raises(AssertionError):
            check_instance_matches_flow(bad, flows[1], tol_z, tol_s)
    shallow = theory.predict(target=target, tau=tau, method="instance", network=net, depth=2,
                             n_singular=3, outlier=False, grad_norm=False, rtol=RTOLS[1])
    with pytest.raises(AssertionError):
        check_instance_matches_flow(shallow, flows[1], tol_z, tol_s)
