"""The fast large-N model build (``theory/large_n.py``, fixed-point traces).

Claims: *the fixed-point traces equal the mpmath recursions; the projected operators equal
those of an independent mpmath orthonormalisation (symmetric eigendecomposition of the
Gram matrix) up to the choice of orthonormal basis; the basis is nested, so a shallow model
is the leading block of a deep one; cached values cannot be changed through a returned
model.*
"""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest

from linrnn_theory.theory import large_n
from linrnn_theory.theory.large_n import large_n_model, outlier_matrices
from linrnn_theory.theory.traces import fixed_moments, moments, psi_moments
from reference import assert_outliers_match_root_search


@pytest.mark.parametrize("g", [0.0, 0.37, 0.9])
def test_fixed_point_traces_equal_mpmath(g):
    bits = 300
    phi, chi = fixed_moments(g, 14, bits)
    with mp.workdps(100):
        ref_phi, ref_chi = moments(g, 14)
        for a, b in zip(phi + chi, ref_phi + ref_chi):
            assert abs(mp.mpf(a) / mp.mpf(2) ** bits - b) <= mp.mpf(10) ** -60 * abs(b)


def _mp_reference(g: float, L: int, lam: float) -> dict[str, np.ndarray]:
    """Basis-invariant spectra of the projected operators, eigen-orthonormalised in mpmath."""
    with mp.workdps(120):
        phi, chi = moments(g, L + 2)
        gram = lambda i, j: phi[(i + j) // 2] if (i + j) % 2 == 0 else mp.mpf(0)  # noqa: E731
        cross = lambda s, i, j: s[(i + j - 1) // 2] if (i + j) % 2 else mp.mpf(0)  # noqa: E731
        idx = range(1, L + 1)
        G = mp.matrix([[gram(i, j) for j in idx] for i in idx])
        E, Q = mp.eigsy(G)
        T = mp.matrix(L, L)
        for c in range(L):
            for r in range(L):
                T[r, c] = Q[r, c] / mp.sqrt(E[c])
        sand = lambda X: np.array((T.T * X * T).tolist(), dtype=float)  # noqa: E731
        psi = psi_moments(g, lam, chi[:L])
        out = {
            "A": sand(mp.matrix([[gram(i, j + 1) for j in idx] for i in idx])),
            "VU": sand(mp.matrix([[cross(chi, i, j) for j in idx] for i in idx])),
            "G_s": sand(mp.matrix([[gram(i + 1, j + 1) for j in idx] for i in idx])),
            "M": sand(mp.matrix([[cross(psi, i, j) for j in idx] for i in idx])),
            "r": np.array((T.T * mp.matrix([gram(i, 1) for i in idx])).tolist(), dtype=float),
        }
    return out


@pytest.mark.parametrize("g, L", [(0.3, 6), (0.6, 8), (0.9, 8)])
def test_projected_operators_equal_an_independent_orthonormalisation(g, L):
    ref = _mp_reference(g, L, 1.2)
    mdl = large_n_model(g, L)
    new = {"A": mdl.A, "VU": mdl.shuffle_data[3], "G_s": mdl.norm_data[2],
           "M": mdl.outlier_matrix(1.2)}
    for k, X in new.items():                 # same basis on both sides: similarity
        s_ref = np.linalg.svd(ref[k], compute_uv=False)
        np.testing.assert_allclose(np.linalg.svd(X, compute_uv=False), s_ref,
                                   rtol=1e-10, atol=1e-12 * s_ref[0], err_msg=k)
    ev = np.sort_complex(np.linalg.eigvals(mdl.A))
    np.testing.assert_allclose(ev, np.sort_complex(np.linalg.eigvals(ref["A"])), rtol=1e-9)
    assert np.linalg.norm(mdl.r_w) == pytest.approx(np.linalg.norm(ref["r"]), rel=1e-13)
    # the invariant readout form r^T A^k r
    for k in range(4):
        a = mdl.r_w @ np.linalg.matrix_power(mdl.A, k) @ mdl.r_m
        b = ref["r"].ravel() @ np.linalg.matrix_power(ref["A"], k) @ ref["r"].ravel()
        assert a == pytest.approx(b, rel=1e-10)


def test_basis_is_nested_so_shallow_models_are_leading_blocks():
    large_n.clear_cache()
    shallow = large_n_model(0.7, 6)           # built at depth 6
    large_n.clear_cache()
    deep = large_n_model(0.7, 14)
    sliced = large_n_model(0.7, 6)            # sliced from the depth-14 build
    p = shallow.shape[0]
    np.testing.assert_allclose(sliced.A, shallow.A, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(deep.A[:p, :p], shallow.A, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(sliced.r_w, shallow.r_w, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(outlier_matrices(0.7, 6, [1.1, 1.3]),
                               np.array([shallow.outlier_matrix(x) for x in (1.1, 1.3)]),
                               rtol=1e-11, atol=1e-13)


def test_chains_close_at_g0():
    assert large_n_model(0.0, 12).shape == (2, 2)


def test_mutating_a_returned_model_does_not_change_the_next_call():
    a = large_n_model(0.55, 6)
    ref = a.A.copy()
    with pytest.raises(ValueError):
        a.A[0, 0] = 123.0                     # read-only cached array
    with pytest.raises(ValueError):
        a.norm_data[1][0] = 1.0
    a.A = np.zeros_like(ref)                  # rebinding touches only this object
    a.info["T_inv"] = None
    b = large_n_model(0.55, 6)
    assert b is not a
    np.testing.assert_array_equal(b.A, ref)
    assert b.info["T_inv"] is not None


def test_a_writable_copy_is_independent_of_the_cache():
    """The must-fail partner: a copy can be changed, and the change does not leak."""
    c = large_n_model(0.55, 6).A.copy()
    c[0, 0] += 1.0
    assert large_n_model(0.55, 6).A[0, 0] != c[0, 0]


def test_joint_integration_equals_separate_runs():
    """integrate_many (one ODE for several depths and targets) against one run each."""
    from linrnn_theory.theory.reduced import integrate, integrate_many
    tau = np.linspace(0.0, 1.5, 31)
    models = [large_n_model(0.6, d) for d in (4, 8, 12)]
    targets = [0.5, 1.0, 2.0]
    joint = integrate_many(models, targets, tau)
    for m, t, j in zip(models, targets, joint):
        alone = integrate(m, t, tau)
        np.testing.assert_allclose(j.readout, alone.readout, rtol=0, atol=1e-9 * t)
        np.testing.assert_allclose(j.C, alone.C, rtol=0, atol=1e-9 * np.abs(alone.C).max())


def test_vectorised_outliers_equal_the_per_matrix_root_search():
    """largest_outliers (top-down scan, joint refinement) against outliers(C) one by one."""
    from linrnn_theory.theory.reduced import integrate
    mdl = large_n_model(0.6, 8)
    Cs = integrate(mdl, 1.5, np.linspace(0.0, 1.0, 12)).C
    fast = assert_outliers_match_root_search(mdl, Cs)
    assert np.isfinite(fast[-1])


def test_the_outlier_comparison_sees_a_root_off_by_1e_9():
    # the partner of the test above: vectorised roots moved by 1e-9 relative are rejected
    from linrnn_theory.theory.reduced import integrate
    mdl = large_n_model(0.6, 8)
    Cs = integrate(mdl, 1.5, np.linspace(0.5, 1.0, 4)).C

    class Shifted:
        def largest_outliers(self, C):
            return mdl.largest_outliers(C) * (1 + 1e-9)

        def outliers(self, C):
            return mdl.outliers(C)

    assert_outliers_match_root_search(mdl, Cs)
    with pytest.raises(AssertionError):
        assert_outliers_match_root_search(Shifted(), Cs)


def test_learning_path_gives_the_flow_of_every_target():
    """One path in s, read at s(tau), against the flow in tau of two targets."""
    from linrnn_theory.theory.reduced import integrate, integrate_paths
    mdl = large_n_model(0.5, 8)
    path, = integrate_paths([mdl], 1.0, 1.9)
    s = np.linspace(0.0, path.s_end, 4001)
    z = mdl.readouts(path.at(s))
    for target in (0.8, 2.0):
        # tau(s) = int ds / (z_hat - z) by the trapezoid rule, up to z = 0.9 z_hat
        keep = z <= 0.9 * target
        f = 1.0 / (target - z[keep])
        tau = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(s[keep]))])
        flow = integrate(mdl, target, tau[::400])
        np.testing.assert_allclose(flow.readout, z[keep][::400], rtol=0, atol=1e-5 * target)


@pytest.mark.parametrize("target", [0.5, 2.0, -1.0, 1e-3, 20.0])
@pytest.mark.parametrize("rel_loss", [0.05, 1e-4])
def test_g0_closed_form_state_equals_the_reduced_ode(target, rel_loss):
    """At g = 0 the observables take the closed form of exact_g0; the Taylor-integrated
    reduced ODE (the route of every g > 0) must give the same state within 1e-10."""
    from linrnn_theory.theory import observables as ob
    ob.clear_cache()
    st = ob.at_learning_time(0.0, target, rel_loss)
    ode = ob._flow_states(lambda d: large_n_model(0.0, d), [target], rel_loss, 1e-9,
                          "taylor")[0]
    assert st["depth"] == ode.depth and st["model"].shape == ode.model.shape
    assert abs(st["tau"] - ode.tau) <= 1e-10 * ode.tau
    assert abs(st["grad_integral"] - ode.grad_integral) <= 1e-10 * ode.grad_integral
    assert np.max(np.abs(st["C"] - ode.C)) <= 1e-10 * np.max(np.abs(ode.C))
    # the state sits on the threshold of the loss
    z = st["model"].readout(st["C"])
    assert abs(abs(target - z) - abs(target) * np.sqrt(rel_loss)) <= 1e-12 * abs(target)


def test_g0_closed_form_comparison_can_fail():
    """The must-fail partner: a state at a slightly different loss threshold (rel_loss
    off by 1e-6 relative) is caught by the 1e-10 comparison."""
    from linrnn_theory.theory import observables as ob
    ob.clear_cache()
    st = ob.at_learning_time(0.0, 1.0, 0.05 * (1 + 1e-6))
    ode = ob._flow_states(lambda d: large_n_model(0.0, d), [1.0], 0.05, 1e-9, "taylor")[0]
    assert abs(st["tau"] - ode.tau) > 1e-10 * ode.tau
    assert np.max(np.abs(st["C"] - ode.C)) > 1e-10 * np.max(np.abs(ode.C))


@pytest.mark.parametrize("g", [0.0, 0.6, 0.95])
def test_parity_block_products_equal_the_full_products(g):
    """The build of 24 forms its projections by parity blocks: bit-identical to the full
    object products (the left-out entries are exact zeros)."""
    b = large_n._build(g, 24)
    split = large_n._parity_split(b.T)
    assert split is not None
    phi, chi = large_n.fixed_moments(g, 26, b.bits)
    idx = range(1, 25)
    for X in (np.array([[large_n._gram(phi, i, j + 1) for j in idx] for i in idx],
                       dtype=object),
              np.array([[large_n._cross(chi, i, j) for j in idx] for i in idx],
                       dtype=object)):
        for T in (b.T, None):
            full = large_n._sandwich(b.T.T, X, T, b.bits)
            blocks = large_n._sandwich(b.T.T, X, T, b.bits, split)
            np.testing.assert_array_equal(blocks, full)


def test_parity_split_refuses_a_mixing_basis():
    """The must-fail partner: a basis vector with entries of both parities is not split
    (its products would lose terms)."""
    T = np.array([[1, 0], [1, 1]], dtype=object)
    assert large_n._parity_split(T) is None
    X = np.array([[0, 1], [1, 0]], dtype=object)
    good = large_n._sandwich(T.T, X, T, 0)
    wrong_split = [(np.array([0]), np.array([0]), T[:1, :1]),
                   (np.array([1]), np.array([1]), T[1:, 1:])]
    assert not np.array_equal(large_n._sandwich(T.T, X, T, 0, wrong_split), good)
