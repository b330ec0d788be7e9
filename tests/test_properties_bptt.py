r"""Property tests, exact identity: the bptt gradient tends to the fixed-point gradient as
``t_max -> infinity``, within an explicit bound on the Euler transient.

Structure (checkers and must-fail tests), notation and shared helpers:
``tests/reference.py``; run with ``pytest -m property`` (``docs/testing.md``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, note
from hypothesis import strategies as st

import linrnn_theory as lt

import strategies as S
from reference import EPS, resolvent_data

pytestmark = pytest.mark.property


# =================================== bptt gradient -> fixed-point gradient as t_max -> inf

def transient_bound(W: np.ndarray, net: lt.Network, task: lt.FixedPointTask) -> float:
    r"""Bound on ``|G_bptt - G_fp|_F`` from the decay of the Euler transient.

    Euler scheme (``task.py``): ``x_{k+1} = A x_k + dt u_k m``, ``A = (1 - dt) I + dt W``,
    ``u_k = c`` from step ``n_f`` on. With ``R = (I - W)^{-1}`` and ``dt sum_{j<n} A^j =
    R (I - A^n)``, after ``n = k - n_f`` input steps

        ``x_k = c R (I - A^n) m``,   ``z_k = z* - c w^T R A^n m``,   ``z* = c w^T R m``.

    BPTT differentiates ``z_k`` exactly: ``dz_k/dW = dt sum_i (A^T)^(k-1-i) w x_i^T``, and
    summing the two geometric series gives

        ``dz_k/dW = c a b^T - c R^T (A^T)^(n-1) w b^T
                    - c dt sum_{l=0}^{n-2} (A^T)^l w (A^(n-1-l) m)^T R^T``

    (``a = R^T w``, ``b = R m``; ``c a b^T`` is the fixed-point ``dz*/dW``). With
    ``L = (1/2 n_d) sum_{k in decision} (z_k - z_hat)^2`` and ``G_fp = (z* - z_hat) c a b^T``:

        ``G_bptt - G_fp = (1/n_d) sum_k [(z_k - z*) dz_k/dW + (z* - z_hat)(dz_k/dW - c a b^T)]``.

    For diagonalisable ``W = V D V^{-1}``: ``|A^j|_2 <= kappa_V rho^j`` with ``kappa_V =
    cond(V)`` and ``rho = max_i |1 - dt + dt lambda_i|`` (the spectral radius of ``A``; for
    real eigenvalues this is ``|1 - dt (1 - lambda)|``, the naive rate, but complex
    ones can be slower). Hence, per decision step,

        ``|z_k - z*| <= |c| |a| kappa_V rho^n |m|``
        ``|dz_k/dW - c a b^T|_F <= |c| |R|_2 kappa_V rho^(n-1) |w| (|b| + dt (n-1) kappa_V |m|)``

    (the ``(n-1) kappa_V^2`` prefactor is the convolution of two geometric transients), and
    the bound is the maximum over the decision steps of the combination above. Round-off
    (``T`` matrix-vector products forwards and backwards, each ``~N eps |A|``, propagated by
    ``|A^j| <= kappa_V``) adds ``2 T N eps kappa_V`` relative to the gradient scale.
    """
    N = net.N
    dt, c, zh = task.dt, task.input_amp, task.target
    lam, V = np.linalg.eig(W)
    kappa_v = float(np.linalg.cond(V))
    rho = float(np.max(np.abs(1.0 - dt + dt * lam)))
    z_star, a, b, R2, _ = resolvent_data(W, net)
    z_star *= c
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    nm, nw = float(np.linalg.norm(net.m)), float(np.linalg.norm(net.w))
    n = task.decision_steps() - task.n_fixation
    # rho >= 1 (an Euler step that does not contract, e.g. complex eigenvalues far from the
    # real axis with dt = 1): the bound grows with T and may overflow to inf, which is the
    # honest answer ("no bound"); steps_for then gives up and the example is discarded
    with np.errstate(over="ignore", invalid="ignore"):
        dz = abs(c) * na * kappa_v * rho ** n * nm
        dg = abs(c) * R2 * kappa_v * rho ** (n - 1.0) * nw * (nb + dt * (n - 1) * kappa_v * nm)
        bound = float(np.max(dz * (abs(c) * na * nb + dg) + abs(z_star - zh) * dg))
    if not math.isfinite(bound):                 # inf, or 0 * inf at z* = z_hat
        return math.inf
    scale = abs(c) * na * nb * (abs(z_star - zh) + abs(c) * na * nm * kappa_v)
    return bound + 2.0 * task.n_steps * N * EPS * kappa_v * scale


def check_bptt_converges_to_fixed_point(G_bptt, G_fp, bound):
    """``|G_bptt - G_fp|_F <= bound`` (the transient bound of :func:`transient_bound`)."""
    d = float(np.linalg.norm(G_bptt - G_fp))
    assert d <= bound, f"|G_bptt - G_fp| = {d:.3e} > transient bound {bound:.3e}"


def steps_for(W, net, task_of, rel):
    """Smallest number of steps ``T`` (doubling search, then bisection) at which the
    transient bound falls below ``rel |G_fp|``."""
    _, G = lt.gradient(W, net, task_of(64), mode="fixed_point")
    g = float(np.linalg.norm(G))
    lo, hi = 8, 16
    while transient_bound(W, net, task_of(hi)) > rel * g:
        lo, hi = hi, 2 * hi
        if hi > 1 << 15:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if transient_bound(W, net, task_of(mid)) > rel * g else (lo, mid)
    return hi


def bptt_case(net, seed, target, dt, c, rel):
    """Weights ``W = W0 + Delta W`` (a random rank-2 ``Delta W`` of norm ~0.3, as after some
    training) and the task at the ``t_max`` where the bound reaches ``rel |G_fp|``."""
    rng = np.random.default_rng(seed)
    N = net.N
    P = rng.standard_normal((N, 2)) @ rng.standard_normal((2, N)) / N
    W = net.W0 + 0.3 * P / max(np.linalg.norm(P, 2), 1e-300)

    def task_of(T):
        return lt.FixedPointTask(target=target, t_max=T * dt, dt=dt, input_amp=c)
    if S.spectral_abscissa(W) >= 0.95:          # no fixed point to converge to
        return W, task_of, None
    return W, task_of, steps_for(W, net, task_of, rel)


@given(net=S.networks(N=S.sizes(2, 32), w0=["ginibre", "orthogonal", "symmetric"]),
       seed=S.seeds(), target=S.targets(), dt=st.sampled_from([0.25, 0.5, 1.0]),
       c=st.floats(0.5, 2.0), rel=st.sampled_from([1e-3, 1e-9]))
def test_bptt_gradient_converges_to_fixed_point_gradient(net, seed, target, dt, c, rel):
    """At the ``t_max`` where the transient bound is ``rel |G_fp|`` (``1e-3``: the finite-time
    regime; ``1e-9``: essentially converged) the two gradients differ by at most the bound."""
    W, task_of, T = bptt_case(net, seed, target, dt, c, rel)
    assume(T is not None)
    task = task_of(T)
    _, Gb = lt.gradient(W, net, task, mode="bptt")
    _, Gf = lt.gradient(W, net, task, mode="fixed_point")
    bound = transient_bound(W, net, task)
    note(f"T = {T}, bound = {bound:.2e}, |G_fp| = {np.linalg.norm(Gf):.2e}, "
         f"|diff| = {np.linalg.norm(Gb - Gf):.2e}")
    check_bptt_converges_to_fixed_point(Gb, Gf, bound)


FP_FIXED = S.make_network(12, 0.7, 31, pair="overlap", rho=0.6)


def test_bptt_checker_rejects_perturbed_fixed_point_gradient():
    """Rejected, once the transient has decayed (bound ``1e-9 |G_fp|``): ``G_fp`` scaled by
    ``1 + 1e-3``, ``G_fp`` without the input amplitude ``c``, and ``dt G_fp`` (forgetting
    that ``dt sum_j A^j = (I - W)^{-1}``)."""
    c, dt = 1.7, 0.5
    W, task_of, T = bptt_case(FP_FIXED, 5, -0.8, dt, c, 1e-9)
    task = task_of(T)
    _, Gb = lt.gradient(W, FP_FIXED, task, mode="bptt")
    _, Gf = lt.gradient(W, FP_FIXED, task, mode="fixed_point")
    bound = transient_bound(W, FP_FIXED, task)
    check_bptt_converges_to_fixed_point(Gb, Gf, bound)                     # sanity
    for bad in (Gf * (1 + 1e-3), Gf / c, Gf * dt):
        with pytest.raises(AssertionError):
            check_bptt_converges_to_fixed_point(Gb, bad, bound)
    # and at short t_max (bound 1e-3 |G_fp|) the difference is a real transient, far above
    # round-off (~T N eps kappa_V |G| ~ 1e-12 |G| here)
    W2, task_of2, T2 = bptt_case(FP_FIXED, 5, -0.8, dt, c, 1e-3)
    _, Gb2 = lt.gradient(W2, FP_FIXED, task_of2(T2), mode="bptt")
    _, Gf2 = lt.gradient(W2, FP_FIXED, task_of2(T2), mode="fixed_point")
    assert np.linalg.norm(Gb2 - Gf2) > 1e-8 * np.linalg.norm(Gf2)
