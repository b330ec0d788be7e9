r"""Property tests, rank: ``rank Delta W <= 2`` at ``g = 0``; ``sigma_k = O(tau^(2k-1))``
for ``g > 0`` (the depth structure of the Krylov chains).

Structure (checkers and must-fail tests), notation and shared helpers:
``tests/reference.py``; run with ``pytest -m property`` (``docs/testing.md``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import linrnn_theory as lt
from linrnn_theory import theory

import strategies as S
from reference import (norm_product, resolvent_data, stable_train, symmetry_runs,
                       trajectory_tolerances)

pytestmark = pytest.mark.property


# ========================================================================== rank

def check_rank_at_most(sv: np.ndarray, rank: int, tol: float):
    """Every singular value of ``Delta W`` beyond the ``rank``-th is at most ``tol`` (rows:
    epochs, columns: singular values, largest first)."""
    sv = np.atleast_2d(sv)
    worst = float(np.max(sv[:, rank:])) if sv.shape[1] > rank else 0.0
    assert worst <= tol, f"sigma_{rank + 1} = {worst:.3e} > {tol:.3e}: rank of Delta W > {rank}"


@given(net=S.networks(N=S.sizes(3, 32), g=0.0, w0="zero"), t=S.targets(),
       tt_end=st.floats(0.1, 2.0), epochs=st.integers(2, 20), mode=S.modes(), engine=S.engines())
def test_g0_delta_w_has_rank_at_most_two(net, t, tt_end, epochs, mode, engine):
    """``g = 0`` (``W0 = 0``), user ``m, w`` (orthogonal, overlapping, parallel, any norms),
    both signs of ``z_hat``, both modes and engines: ``Delta W`` stays in
    ``span{w} x span{m}`` plus round-off. The part outside the span comes only from
    rounding errors of the steps, so it is bounded by the round-off ``tol_W`` of
    :func:`trajectory_tolerances` (the growth factor covers its feedback through ``a, b``).
    The large-N and finite-N ``exact_g0`` theories are rank 2 by construction (third
    singular value exactly 0)."""
    task, lr = symmetry_runs(net, t, tt_end, epochs, mode, engine)
    run = stable_train(net, task, lr, epochs, mode, engine)
    tol_w = trajectory_tolerances(run, net, task, mode, engine)[0]
    check_rank_at_most(run.singular_values, 2, tol_w)
    check_rank_at_most(np.linalg.svd(run.W - net.W0, compute_uv=False), 2, tol_w)
    p = theory.predict(target=task.target, tau=run.tau, method="exact_g0", network=net,
                       n_singular=3, outlier=False, grad_norm=False)
    check_rank_at_most(p.singular_values, 2, 0.0)


def test_rank_checker_rejects_g_positive():
    """Rejected: the same kind of run at ``g = 0.3`` (``sigma_3 ~ tau^5 != 0``)."""
    net = S.make_network(16, 0.3, 51)
    task, lr = symmetry_runs(net, 1.0, 1.0, 10, "fixed_point", "dense")
    run = stable_train(net, task, lr, 10, "fixed_point", "dense")
    tol_w = trajectory_tolerances(run, net, task, "fixed_point", "dense")[0]
    with pytest.raises(AssertionError):
        check_rank_at_most(run.singular_values, 2, tol_w)


def check_depth_structure(sv_tau, sv_half, exponents, band=0.5):
    r"""``sigma_k(tau) / sigma_k(tau/2) = 2^(p_k)`` with ``p_k`` within ``band`` of the
    claimed exponent (``sigma_k ~ tau^(p_k)``); ``band = 0.5`` separates integers."""
    for k, p in enumerate(exponents):
        got = math.log2(sv_tau[k] / sv_half[k])
        assert abs(got - p) <= band, \
            f"sigma_{k + 1}: log2 ratio under tau -> tau/2 is {got:.3f}, claimed {p}"


def depth_case(net, target, x, n=32):
    r"""Singular values of ``Delta W`` after ``n`` gradient-descent steps to ``tau`` and to
    ``tau/2`` (same ``n``: ``Delta W`` is then a fixed polynomial map of ``tau`` and the
    leading powers are those of the flow), with ``tau = x / Lambda``.

    Scale. ``Lambda = kappa_0 + |e_0| |a_0| |b_0| |R|_2`` is the fastest rate in the flow at
    ``tau = 0``: ``kappa_0`` that of ``z``, and ``|e||a||b||R|`` bounds the relative rate of
    change of ``a`` and ``b`` (``da/dtau = e |a|^2 R^T b``, ``db/dtau = e |b|^2 R a``).
    ``sigma_k = c_k tau^(2k-1) (1 + rho_k tau + ...)`` with ``|rho_k| <~ Lambda``, so the
    measured exponent deviates by ``log2((1 + rho_k tau) / (1 + rho_k tau / 2)) ~
    rho_k tau / (2 ln 2)``: at ``x = Lambda tau = 0.02`` about 0.015 per unit of
    ``rho_k / Lambda``, far inside the band of 0.5 unless ``|rho_k| > 30 Lambda``.

    Precision. ``sigma_3 / sigma_1`` is tiny (``c (z_hat x)^4``, down to ~1e-20 for small
    targets), far below ``eps``: a dense SVD of ``W - W0`` cannot see it. The fast engine
    stores ``Delta W = U C V^T`` with the columns of ``U, V`` in the order the chain
    directions appear (``a_0``, then the new part of ``a_1``, ...), so ``C`` is graded,
    ``C_ij ~ tau^(i+j-1)``, and each entry carries a *relative* error ~``eps / (Lambda
    tau)^(i+j-2)`` (its factors are the small components of ``a`` and ``b``, each computed to
    ``eps`` relative to ``|a|``, ``|b|``). Singular values of a graded matrix inherit
    relative entry errors as relative errors, and ``U, V`` orthonormal to ``eps`` perturb
    them by a factor ``1 + O(eps)``; so the singular values of ``C`` are evaluated exactly
    (50-digit arithmetic), and ``sigma_3`` is then known to ~``eps / x^4 ~ 1e-9`` relative."""
    import mpmath as mp

    from linrnn_theory.simulation.fixed_point import FixedPointEngine

    z0, a, b, r2, _ = resolvent_data(net.W0, net)
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    lam = na * na * nb * nb + abs(target - z0) * na * nb * r2
    tau = x / lam
    task = lt.FixedPointTask(target=target)
    out = []
    for t in (tau, tau / 2):
        eng = FixedPointEngine(net, task)
        for _ in range(n):
            eng.evaluate()
            eng.step(t / n)
        with mp.workdps(50):
            s = mp.svd_r(mp.matrix(eng.C.tolist()), compute_uv=False)
            sv = np.zeros(4)
            vals = sorted((float(v) for v in s), reverse=True)[:4]
            sv[: len(vals)] = vals
        out.append(sv)
    return out


@given(net=S.networks(N=S.sizes(8, 48), g=S.gains(0.2, 0.9),
                      w0=["ginibre", "orthogonal", "symmetric"]), t=S.targets())
def test_singular_values_follow_the_depth_structure(net, t):
    """``g > 0``: ``sigma_1 ~ tau``, ``sigma_2 ~ tau^3``, ``sigma_3 ~ tau^5`` at small
    ``tau`` (each new rank needs two more steps along the Krylov chains ``R^T w``,
    ``R R^T w``, ...; cf. the ``tau~^3`` start of the ``sigma_2`` series)."""
    sv_tau, sv_half = depth_case(net, t * norm_product(net), 0.02)
    check_depth_structure(sv_tau, sv_half, (1, 3, 5))


def test_depth_checker_rejects_wrong_exponents():
    """Rejected: exponents ``(1, 2, 3)``, and ``sigma_2`` data that scale like ``tau^2``."""
    sv_tau, sv_half = depth_case(S.make_network(24, 0.6, 61), 1.0, 0.02)
    check_depth_structure(sv_tau, sv_half, (1, 3, 5))                      # sanity
    with pytest.raises(AssertionError):
        check_depth_structure(sv_tau, sv_half, (1, 2, 3))
    bad = sv_half.copy()
    bad[1] = sv_tau[1] / 4.0
    with pytest.raises(AssertionError):
        check_depth_structure(sv_tau, bad, (1, 3, 5))
