r"""The reduced gradient flow: ``Delta W = U C V^T`` on a fixed pair of subspaces.

Restricting the fixed-point gradient flow to ``Delta W in span(U) (x) span(V)`` (orthonormal
``U``: N x p, ``V``: N x q) gives the ODE

.. math:: \frac{dC}{d\tau} = (\hat z - z)\, x\, y^T, \qquad
          y = (I - A C)^{-1} r_m,\quad x = (I - A^T C^T)^{-1} r_w,\quad z = s_0 + r_w^T C y

(:mod:`linrnn_theory.lowrank`), which is the exact gradient flow of the loss restricted to
the subspace. It reproduces the full flow when ``U, V`` contain the Krylov chains
``u_{k+1} = R^T v_k``, ``v_{k+1} = R u_k`` deep enough (:mod:`.instance`,
:mod:`.large_n`). Everything else the theory reports is read off ``C``:

* singular values of ``Delta W`` = singular values of ``C``;
* gradient norm ``|e| |a| |b|`` with ``|a|^2 = |R^T w|^2 + 2 c_a^T C^T x + (C^T x)^T G_a (C^T x)``
  (``G_a = V^T R R^T V``, ``c_a = V^T R R^T w``) and likewise for ``|b|``;
* shuffled ``W0`` (large N): ``z_shuf = w^T (I - Delta W)^{-1} m`` (:meth:`ReducedModel.shuffled_readout`);
* outlier eigenvalues of ``W``: roots of ``det(I - C M(lambda)) = 0``, ``M = V^T (lambda - W0)^{-1} U``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from scipy.integrate import solve_ivp
from scipy.linalg.lapack import dgesv as gesv

from ..lowrank import reduced_readout, reduced_readouts
from ..trajectory import Status

__all__ = ["ReducedModel", "FlowSolution", "integrate", "integrate_many", "LearningPath",
           "integrate_paths", "StepLimitError", "MAX_NFEV", "equal_runs"]

#: Default budget of right-hand side evaluations of one integration. A converged depth
#: needs about a thousand (measured for 0 <= g <= 0.998); near ``g = 1`` deep chains become so stiff that an
#: explicit integrator would take hours, and the budget turns that into an error.
MAX_NFEV = 20_000


class StepLimitError(ValueError):
    """The reduced ODE needed more right-hand side evaluations than its budget.

    A :class:`ValueError` because it is the parameters (``g`` too close to 1) that put the
    problem outside the range the theory is computed for.
    """


@dataclass
class ReducedModel:
    """Projected operators of a network (or of its large-N limit) on two subspaces.

    Attributes
    ----------
    A : (q, p) ndarray
        ``V^T R U``.
    r_w : (p,) ndarray
        ``U^T R^T w``.
    r_m : (q,) ndarray
        ``V^T R m`` (``m`` includes the input amplitude).
    s0 : float
        ``w^T R m``.
    norm_data : tuple
        ``(|R^T w|^2, c_a, G_a, |R m|^2, c_b, G_b)`` for gradient norms.
    shuffle_data : tuple or None
        ``(w^T m, U^T w, V^T m, V^T U)`` describing ``w^T (I - Delta W)^{-1} m``.
    outlier_matrix : callable or None
        ``lambda -> V^T (lambda - W0)^{-1} U`` for real ``lambda`` outside the bulk.
    bulk_radius : float
        Spectral radius of ``W0`` (eigenvalues of ``W`` outside it are outliers).
    depth : int
        Number of chain vectors per side that generated ``U`` and ``V``.
    source : str
        ``"large_n"`` or ``"instance"``.
    weights : callable or None
        Instance models: ``C -> W0 + U C V^T``, the dense weights of the network for the
        coefficients ``C`` (used for its outlier eigenvalue, where no large-N secular
        equation exists); ``None`` for large-N models.
    info : dict
        Further data of the construction (instance: the bases ``U``, ``V``; large N: the
        chain transforms).
    """

    A: np.ndarray
    r_w: np.ndarray
    r_m: np.ndarray
    s0: float
    norm_data: tuple
    shuffle_data: tuple | None = None
    outlier_matrix: Callable[[float], np.ndarray] | None = None
    bulk_radius: float = 0.0
    depth: int = 0
    source: str = ""
    weights: Callable[[np.ndarray], np.ndarray] | None = None
    info: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """``(p, q)``: dimensions of the left and right subspaces."""
        return self.r_w.size, self.r_m.size

    def readout(self, C: np.ndarray) -> float:
        """``z = w^T (I - W)^{-1} m`` for ``Delta W = U C V^T``."""
        return reduced_readout(C, self.A, self.r_w, self.r_m, self.s0)[0]

    def grad_norm(self, C: np.ndarray, target: float) -> float:
        """Frobenius norm ``|z_hat - z| |a| |b|`` of the gradient of the full loss."""
        z, x, y = reduced_readout(C, self.A, self.r_w, self.r_m, self.s0)
        aw, c_a, G_a, bm, c_b, G_b = self.norm_data
        s = C.T @ x
        t = C @ y
        a2 = aw + 2.0 * (c_a @ s) + s @ (G_a @ s)
        b2 = bm + 2.0 * (c_b @ t) + t @ (G_b @ t)
        return abs(target - z) * float(np.sqrt(max(a2, 0.0) * max(b2, 0.0)))

    def shuffled_readout(self, C: np.ndarray) -> float:
        """Readout after replacing ``W0`` by an independent draw (large-N limit).

        An independent ``W0'`` is free from ``Delta W``, so
        ``E[(I - W0' - Delta W)^{-1}] = (I - Delta W)^{-1}`` (the circular element has no
        moments without its adjoint) and ``z_shuf = w^T (I - Delta W)^{-1} m``.
        """
        if self.shuffle_data is None:
            raise ValueError("this reduced model carries no shuffle data")
        wm, Uw, Vm, VU = self.shuffle_data
        p, q = C.shape
        if p == 0 or q == 0:
            return float(wm)
        y = np.linalg.solve(np.eye(q) - VU @ C, Vm)
        return float(wm + Uw @ (C @ y))

    def outliers(self, C: np.ndarray, lam_max: float = 1.5, n_grid: int = 200) -> np.ndarray:
        """Real outlier eigenvalues of ``W``: roots of ``det(I - C M(lambda))`` in
        ``(bulk_radius, lam_max)``, largest first (empty if none)."""
        if self.outlier_matrix is None:
            raise ValueError("this reduced model carries no outlier data")
        lo = self.bulk_radius * (1 + 1e-9) + 1e-12
        if C.size == 0 or lo >= lam_max:
            return np.zeros(0)
        p = C.shape[0]

        def f(lam: float) -> float:
            return float(np.linalg.det(np.eye(p) - C @ self.outlier_matrix(lam)))

        grid = np.linspace(lo, lam_max, n_grid)
        vals = np.array([f(x) for x in grid])
        roots = []
        from scipy.optimize import brentq
        for i in range(n_grid - 1):
            if vals[i] == 0.0:
                roots.append(grid[i])
            elif vals[i] * vals[i + 1] < 0:
                roots.append(brentq(f, grid[i], grid[i + 1], xtol=1e-14, rtol=1e-13))
        return np.array(sorted(roots, reverse=True))

    def readouts(self, Cs: np.ndarray) -> np.ndarray:
        """:meth:`readout` for a stack ``Cs`` of shape ``(n, p, q)`` (one batched solve)."""
        return np.asarray(reduced_readouts(Cs, self.A, self.r_w, self.r_m, self.s0)[0])

    def grad_norms(self, Cs: np.ndarray, target: float) -> np.ndarray:
        """:meth:`grad_norm` for a stack ``Cs`` of shape ``(n, p, q)``."""
        Cs = np.asarray(Cs, dtype=float)
        z, x, y = reduced_readouts(Cs, self.A, self.r_w, self.r_m, self.s0)
        aw, c_a, G_a, bm, c_b, G_b = self.norm_data
        s = np.einsum("npq,np->nq", Cs, x)
        t = np.einsum("npq,nq->np", Cs, y)
        a2 = aw + 2.0 * (s @ c_a) + np.einsum("nq,nq->n", s, s @ np.transpose(G_a))
        b2 = bm + 2.0 * (t @ c_b) + np.einsum("np,np->n", t, t @ np.transpose(G_b))
        return np.abs(target - z) * np.sqrt(np.maximum(a2, 0.0) * np.maximum(b2, 0.0))

    def _outlier_batch(self, lam: np.ndarray) -> np.ndarray:
        many = self.info.get("outlier_matrices")
        if many is not None:
            return many(lam)
        return np.array([self.outlier_matrix(float(x)) for x in lam])

    def largest_outliers(self, Cs: np.ndarray, lam_max: float = 1.5,
                         n_grid: int = 200) -> np.ndarray:
        """The largest root of :meth:`outliers` for each ``C`` of a stack ``(n, p, q)``
        (NaN where there is none), vectorised over ``C`` and ``lambda``.

        Same grid and brackets as :meth:`outliers` (the largest root lies in the highest
        grid cell where ``det(I - C M(lambda))`` changes sign); the determinants are
        evaluated from the top of the grid down, in blocks, only until every ``C`` has
        found its cell, and a ``C`` whose spectral radius bound ``rho(C M(lambda)) < 1``
        holds on a grid point has a positive determinant there without evaluating it
        (:func:`_outlier_safe`). Equal ``C`` (a flow held after its convergence) are
        solved once. The roots are refined for all ``C`` at once (bracketing Illinois
        steps, tolerance as ``brentq(xtol=1e-14, rtol=1e-13)``).
        """
        if self.outlier_matrix is None:
            raise ValueError("this reduced model carries no outlier data")
        Cs = np.asarray(Cs, dtype=float)
        lo = self.bulk_radius * (1 + 1e-9) + 1e-12
        if Cs.shape[0] == 0 or Cs[0].size == 0 or lo >= lam_max:
            return np.full(Cs.shape[0], np.nan)
        first, run = equal_runs(Cs)                          # a held flow: equal C
        if first.size < Cs.shape[0]:
            return self.largest_outliers(Cs[first], lam_max, n_grid)[run]
        n = Cs.shape[0]
        out = np.full(n, np.nan)
        p = Cs.shape[1]
        eye = np.eye(p)
        grid = np.linspace(lo, lam_max, n_grid)
        Mg = self._outlier_batch(grid)                       # (n_grid, q, p)
        terms = self.info.get("outlier_terms")
        unsafe = ~_outlier_safe(Cs, Mg, grid, terms() if terms is not None else None)

        def det_at(i: np.ndarray, k: np.ndarray) -> np.ndarray:
            return np.linalg.det(eye - Cs[i] @ Mg[k])

        # Safe points are positive, so the highest bracket is the cell [k, k + 1] above the
        # highest unsafe point k with a value <= 0 (any k < n_grid - 1). Unsafe points are
        # evaluated from the top down, a few per C at a time (usually the first is it).
        keys = np.sort(np.where(unsafe, np.arange(n_grid), -1), axis=1)[:, ::-1]
        n_unsafe = unsafe.sum(axis=1)
        cell = np.full(n, -1)                                # highest bracket index
        fa = np.zeros(n)
        top_neg = np.zeros(n, dtype=bool)                    # rare: top grid point <= 0
        rows = np.nonzero(n_unsafe)[0]
        pos, chunk = 0, 2
        while rows.size:
            ks = keys[rows, pos:pos + chunk]                 # (rows, <= chunk), -1 padded
            valid = ks >= 0
            rr, cc = np.nonzero(valid)
            v = np.ones(ks.shape)
            v[rr, cc] = det_at(rows[rr], ks[rr, cc])
            neg = valid & (v <= 0.0)
            has = neg.any(axis=1)
            first = np.argmax(neg, axis=1)
            hit, k_hit = rows[has], ks[has, first[has]]
            cell[hit], fa[hit] = k_hit, v[has, first[has]]
            top_neg[hit] = k_hit == n_grid - 1
            pos += chunk
            rows = rows[~has & (n_unsafe[rows] > pos)]
            chunk *= 2
        for i in np.nonzero(top_neg)[0]:                     # the general rule on all points
            vals = det_at(np.full(n_grid, i), np.arange(n_grid))
            v0, v1 = vals[:-1], vals[1:]
            hit = np.nonzero((v0 == 0.0) | (v0 * v1 < 0))[0]
            cell[i] = hit[-1] if hit.size else -1
            fa[i] = vals[cell[i]] if hit.size else 0.0
        found = np.nonzero(cell >= 0)[0]
        if not found.size:
            return out
        j = cell[found]
        a, b = grid[j], grid[j + 1]
        fa = fa[found]
        exact = fa == 0.0
        out[found[exact]] = a[exact]
        idx = found[~exact]
        a, b, fa, j = a[~exact], b[~exact], fa[~exact], j[~exact]
        fb = det_at(idx, j + 1)                              # the true value, for the steps

        def f(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
            return np.linalg.det(eye - Cs[rows] @ self._outlier_batch(x))

        x = _bracketed_roots(f, a, b, fa, fb, idx)
        out[idx] = x
        return out


def equal_runs(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of equal consecutive entries of a stack ``X`` (``(n, ...)``): the index of each
    run's first entry, and each entry's run, so ``f(X[first])[run]`` is ``f(X)`` for any
    function ``f`` of the entries (a flow held after its convergence repeats its last
    ``C``).

    Examples
    --------
    >>> first, run = equal_runs(np.array([1.0, 2.0, 2.0, 2.0, 3.0]))
    >>> first.tolist(), run.tolist()
    ([0, 1, 4], [0, 1, 1, 1, 2])
    """
    n = X.shape[0]
    if n < 2:
        return np.arange(n), np.arange(n)
    flat = X.reshape(n, -1)
    new = ~np.all(flat[1:] == flat[:-1], axis=1)
    return (np.concatenate([[0], np.nonzero(new)[0] + 1]),
            np.concatenate([[0], np.cumsum(new)]))


def _outlier_safe(Cs: np.ndarray, Mg: np.ndarray, grid: np.ndarray,
                  terms: tuple | None) -> np.ndarray:
    """``(n, n_grid)``: where ``det(I - C M(lambda)) > 0`` is certain without evaluating it,
    from a bound ``rho(C M) < 1`` (then no real eigenvalue of ``C M`` reaches 1).

    The bound is ``|C|_2 |M|_2``; where ``M`` is a combination of fixed symmetric
    matrices (``terms = (B, phi)``, ``M(lambda) = sum_j phi(lambda)_j B_j``, every large-N
    model) and ``C`` is symmetric semidefinite (every large-N flow: ``C = int e y y^T``
    with ``e`` of one sign), it is the much tighter ``sqrt(tr(C M C M))``: the nonzero
    eigenvalues of ``C M`` are those of the symmetric ``C^{1/2} M C^{1/2}``, whose
    Frobenius norm that is; ``tr(C B_j C B_l)`` is formed once per ``C``. Safe means
    below ``1 - 1e-6`` after adding a bound on the rounding of ``tr(C M C M)`` (the sum
    of terms ``tr(C B_j C B_l) phi_j phi_l``, ``|phi_j| <= 1``, can cancel); ``phi`` NaN
    (``lambda`` outside the range of ``terms``) is never safe.

    Examples
    --------
    >>> C = np.diag([0.5, 0.0]); M = np.array([[[1.0, 0.0], [0.0, 100.0]]])
    >>> _outlier_safe(C[None], M, np.array([1.0]), None)         # |C| |M| = 50
    array([[False]])
    >>> _outlier_safe(C[None], M, np.array([1.0]), (M, lambda lam: np.ones((lam.size, 1))))
    array([[ True]])
    """
    margin = 1.0 - 1e-6
    n = Cs.shape[0]
    safe = np.zeros((n, grid.size), dtype=bool)
    sd = np.zeros(n, dtype=bool)
    if terms is not None and Cs.shape[1] == Cs.shape[2]:
        B, phi = terms
        if np.array_equal(B, np.swapaxes(B, 1, 2)):
            sym = 0.5 * (Cs + np.swapaxes(Cs, 1, 2))
            w = np.linalg.eigvalsh(sym)
            big = np.max(np.abs(w), axis=1)
            sd = (w[:, 0] >= -1e-12 * big) | (w[:, -1] <= 1e-12 * big)
    if sd.any():
        Csd = Cs[sd]
        m, p = Csd.shape[0], Csd.shape[1]
        nb = B.shape[0]
        # C B_j for all j as one product: N[m, a, j, b] = (C B_j)[a, b]
        N = (Csd @ np.swapaxes(B, 0, 1).reshape(p, nb * p)).reshape(m, p, nb, p)
        Nf = N.transpose(0, 2, 1, 3).reshape(m, nb, p * p)
        NTf = N.transpose(0, 2, 3, 1).reshape(m, nb, p * p)
        G = Nf @ np.swapaxes(NTf, 1, 2)                         # tr(C B_j C B_l)
        Phi = phi(grid)                                         # (n_grid, nb)
        PP = (Phi[:, :, None] * Phi[:, None, :]).reshape(grid.size, nb * nb)
        F2 = G.reshape(m, nb * nb) @ PP.T                       # phi^T G phi per lambda
        # rounding: |G_jl| <= |C B_j|_F |C B_l|_F, each formed and summed in float64
        S = np.sqrt(np.einsum("mjk,mjk->mj", Nf, Nf)).sum(axis=1)
        err = (p * p + nb * nb) * 1e-15 * S * S
        safe[sd] = F2 + err[:, None] < margin * margin          # False where phi is NaN
    if not sd.all():
        mnorm = np.linalg.norm(Mg, ord=2, axis=(1, 2))
        cnorm = np.linalg.norm(Cs[~sd], ord=2, axis=(1, 2))
        safe[~sd] = cnorm[:, None] * mnorm[None, :] < 1.0
    return safe


def _bracketed_roots(f: Callable[[np.ndarray, np.ndarray], np.ndarray], a: np.ndarray,
                     b: np.ndarray, fa: np.ndarray, fb: np.ndarray, rows: np.ndarray,
                     xtol: float = 1e-14, rtol: float = 1e-13, maxiter: int = 200
                     ) -> np.ndarray:
    """Roots of ``f(x, rows)[i]`` in the brackets ``[a_i, b_i]`` (``fa_i fb_i < 0``), all at
    once, to ``|x - root| <= xtol + rtol |root|`` (as :func:`scipy.optimize.brentq`).

    Illinois (modified regula falsi) steps, a bisection whenever a bracket did not halve in
    two steps, every step at least the tolerance inside the bracket; once a step moves by
    less than the tolerance, the bracket ``[x - tol, x + tol]`` is tested, and a sign
    change there ends that root.
    """
    a, b, fa, fb = (np.array(v, dtype=float) for v in (a, b, fa, fb))
    out = np.empty(a.size)
    act = np.arange(a.size)
    side = np.zeros(a.size, dtype=int)
    width = b - a                                  # the bracket two steps ago
    last = b - a                                   # and one step ago
    x_old = np.full(a.size, np.nan)
    for _ in range(maxiter):
        tol = xtol + rtol * np.maximum(np.abs(a), np.abs(b))
        done = (b - a) <= 2.0 * tol
        if done.any():
            out[act[done]] = 0.5 * (a[done] + b[done])
            keep = ~done
            a, b, fa, fb, act, side, width, last, x_old = (
                v[keep] for v in (a, b, fa, fb, act, side, width, last, x_old))
            tol = tol[keep]
        if not act.size:
            return out
        x = (a * fb - b * fa) / (fb - fa)
        slow = (b - a) > 0.5 * width
        # at least tol inside the bracket (as Brent's steps; a secant step rounded onto an
        # end moves tol off it): a root next to one end then closes the bracket at once
        x = np.minimum(np.maximum(x, a + tol), b - tol)
        x = np.where(slow | ~((x > a) & (x < b)), 0.5 * (a + b), x)
        near = np.abs(x - x_old) <= tol
        # a converged iterate: bracket it tightly (the next step tests x -/+ tol)
        x = np.where(near & (x - tol > a) & (x - a < b - x), x - tol, x)
        x = np.where(near & (x + tol < b) & (x - a >= b - x), x + tol, x)
        width, last = last, b - a
        fx = f(x, rows[act])
        zero = fx == 0.0
        if zero.any():
            out[act[zero]] = x[zero]
            keep = ~zero
            a, b, fa, fb, act, side, width, last, x, fx = (
                v[keep] for v in (a, b, fa, fb, act, side, width, last, x, fx))
            if not act.size:
                return out
        x_old = x
        left = np.sign(fx) == np.sign(fa)          # root in [x, b]
        # Illinois: halve the stale end's value when the same end is kept twice
        fb = np.where(left & (side == 1), 0.5 * fb, fb)
        fa = np.where(~left & (side == -1), 0.5 * fa, fa)
        a, fa = np.where(left, x, a), np.where(left, fx, fa)
        b, fb = np.where(left, b, x), np.where(left, fb, fx)
        side = np.where(left, 1, -1)
    out[act] = 0.5 * (a + b)
    return out


@dataclass(frozen=True)
class FlowSolution:
    """Solution of the reduced ODE at the requested learning times (:func:`integrate`).

    Attributes
    ----------
    tau : (n,) ndarray
        The requested learning times.
    C : (n, p, q) ndarray
        The reduced coordinates of ``Delta W = U C V^T`` along ``tau``.
    readout : (n,) ndarray
        ``z(tau)``.
    grad_int : (n,) ndarray
        ``int_0^tau |dL/dW| dtau'`` (zeros unless requested).
    status : Status
        :attr:`Status.OK` (failures raise instead: :class:`StepLimitError`,
        :class:`RuntimeError`).
    message : str
        The integrator's message, or where the flow stopped and was held.
    nfev : int
        Right-hand side evaluations.
    dense : callable or None
        ``t -> (C(t), int_0^t |dL/dW|)`` from the integrator's dense output (held after
        the stop; ``t`` a float or an array; :func:`integrate_many` with ``dense=True``),
        else ``None``. Its attribute ``steps`` holds the integrator's step times.
    t_hold : float
        The time from which the flow is held (``|z_hat - z|`` reached the hold threshold
        of :func:`integrate_many`), ``inf`` if it never did.
    """

    tau: np.ndarray
    C: np.ndarray
    readout: np.ndarray
    grad_int: np.ndarray
    status: Status
    message: str
    nfev: int
    dense: Callable[[float], tuple[np.ndarray, float]] | None = field(default=None,
                                                                     repr=False,
                                                                     compare=False)
    t_hold: float = float("inf")


def integrate(model: ReducedModel, target: float, tau: np.ndarray, rtol: float = 1e-11,
              atol: float = 1e-14, with_grad_integral: bool = False,
              max_nfev: int = MAX_NFEV) -> FlowSolution:
    """Integrate the reduced flow from ``C = 0`` and evaluate it at ``tau``.

    Parameters
    ----------
    model : ReducedModel
    target : float
    tau : (n,) ndarray
        Non-decreasing learning times >= 0.
    rtol, atol : float
        Tolerances of scipy's DOP853.
    with_grad_integral : bool
        Also integrate ``int_0^tau |dL/dW| dtau'``.
    max_nfev : int
        Budget of right-hand side evaluations.

    Returns
    -------
    FlowSolution

    Raises
    ------
    StepLimitError
        If the integration needs more than ``max_nfev`` evaluations (a stiff, deep model
        near ``g = 1``).

    Examples
    --------
    >>> from linrnn_theory.theory.large_n import large_n_model
    >>> sol = integrate(large_n_model(0.5, 6), 1.0, [0.0, 0.5, 10.0])
    >>> sol.C.shape, bool(abs(sol.readout[-1] - 1.0) < 1e-9)
    ((3, 6, 6), True)
    """
    return integrate_many([model], target, tau, rtol=rtol, atol=atol,
                          with_grad_integral=with_grad_integral, max_nfev=max_nfev)[0]


def _stack(models: Sequence[ReducedModel]) -> tuple:
    """The models padded to a common shape: ``(shapes, P, Q, A (K, Q, P), r_w (K, P),
    r_m (K, Q), s0 (K,), flat, symmetric)``, with ``flat`` the positions of the real
    coordinates in the padded ``(K, P, Q)`` stack and ``symmetric`` whether every ``A``
    is symmetric with ``r_w = r_m`` (every large-N model: ``C`` stays symmetric and
    ``x = y``)."""
    K = len(models)
    shapes = [m.shape for m in models]
    P = max(p for p, _ in shapes)
    Q = max(q for _, q in shapes)
    A = np.zeros((K, Q, P))
    r_w, r_m = np.zeros((K, P)), np.zeros((K, Q))
    s0 = np.array([float(m.s0) for m in models])
    for k, (m, (p, q)) in enumerate(zip(models, shapes)):
        A[k, :q, :p], r_w[k, :p], r_m[k, :q] = m.A, m.r_w, m.r_m
    flat = np.concatenate([k * P * Q + (np.arange(p)[:, None] * Q + np.arange(q)).ravel()
                           for k, (p, q) in enumerate(shapes)]).astype(np.intp)
    symmetric = P == Q and all(np.array_equal(m.A, np.transpose(m.A))
                               and np.array_equal(m.r_w, m.r_m) for m in models)
    return shapes, P, Q, A, r_w, r_m, s0, flat, symmetric


def integrate_many(models: Sequence[ReducedModel], target: float | Sequence[float],
                   tau: np.ndarray, rtol: float = 1e-11, atol: float = 1e-14,
                   with_grad_integral: bool = False, max_nfev: int = MAX_NFEV,
                   dense: bool = False, integrator: str = "dop853",
                   hold: float | None = None) -> list[FlowSolution]:
    """Integrate the reduced flows of several models as one ODE (one DOP853 run).

    The models (e.g. the depths of an automatic depth search) are padded to a common shape
    inside the right-hand side, which solves all their systems in one batched call; the
    state holds only the real coordinates. The step control uses the RMS error over all of
    them (the models are similar, so each is held to about ``rtol, atol``: the results
    differ from separate runs by a few ``rtol``). A symmetric ``A`` with ``r_w = r_m``
    (every large-N model) keeps ``C`` symmetric and ``x = y``: one solve per evaluation
    instead of two. Each model is held from its own convergence time on
    (``|z_hat - z| <= 10 rtol |z_hat|``, where a run of its own would stop and hold,
    located on the dense output), so the stiff tail the run integrates while other models
    still learn never enters the results; the run stops once every model has converged,
    and a model too stiff to converge within ``max_nfev`` makes the joint run exceed it
    too.

    Parameters and exceptions as :func:`integrate`, with a sequence of models; ``target``
    may also be one target per model. With ``dense=True`` each solution carries
    :attr:`FlowSolution.dense`. ``integrator="taylor"`` integrates by Taylor steps of
    high order instead (:func:`.taylor.taylor_flow`: the same convergence times and
    hold, some twenty steps instead of ~1e3 right-hand side evaluations; ``nfev`` then
    counts Taylor coefficients); it does not integrate the gradient norm, so
    ``with_grad_integral=True`` always takes DOP853. ``hold`` replaces the factor
    ``10 rtol`` of the threshold ``|z_hat - z| <= 10 rtol |z_hat|`` from which a model is
    held: ``hold = sqrt(rel_loss)`` holds each flow at its learning time (the loss at
    ``rel_loss`` times the initial one), which is then :attr:`FlowSolution.t_hold`.

    Returns
    -------
    list of FlowSolution
        One per model, in order (``nfev`` is that of the joint run).

    Examples
    --------
    >>> from linrnn_theory.theory.large_n import large_n_model
    >>> a, b = integrate_many([large_n_model(0.5, 4), large_n_model(0.5, 8)], 1.0, [0.0, 2.0])
    >>> a.C.shape, b.C.shape, bool(abs(a.readout[-1] - b.readout[-1]) < 1e-6)
    ((2, 4, 4), (2, 8, 8), True)
    """
    models = list(models)
    if not models:
        return []
    tau = np.asarray(tau, dtype=float)
    K = len(models)
    targets = np.broadcast_to(np.asarray(target, dtype=float), (K,)).copy()
    shapes, P, Q, A, r_w, r_m, s0, flat, symmetric = _stack(models)
    At = np.ascontiguousarray(np.swapaxes(A, 1, 2))
    n = flat.size
    eye = np.eye(Q)
    gn = None
    if with_grad_integral:
        gn = [np.zeros((K, Q)), np.zeros((K, Q, Q)), np.zeros((K, P)), np.zeros((K, P, P))]
        aw = np.array([float(m.norm_data[0]) for m in models])
        bm = np.array([float(m.norm_data[3]) for m in models])
        for k, (m, (p, q)) in enumerate(zip(models, shapes)):
            _, c_a, G_a, _, c_b, G_b = m.norm_data
            gn[0][k, :q], gn[1][k, :q, :q], gn[2][k, :p], gn[3][k, :p, :p] = c_a, G_a, c_b, G_b
    calls = [0]
    buf = np.zeros(K * P * Q)
    single = K == 1
    thr = (10.0 * rtol if hold is None else float(hold)) * np.maximum(np.abs(targets),
                                                                      1e-300)
    # column / row vectors for batched matrix products (einsum is slower on these sizes)
    r_w_row, r_m_col = r_w[:, None, :], r_m[:, :, None]
    if gn is not None:
        c_a_row, G_a, c_b_row, G_b = gn[0][:, None, :], gn[1], gn[2][:, None, :], gn[3]

    def rhs(_t, state):
        calls[0] += 1
        if calls[0] > max_nfev:
            raise StepLimitError(f"the reduced ODE (shape {shapes[-1][0]} x {shapes[-1][1]}) "
                                 f"needed more than {max_nfev} right-hand side evaluations: "
                                 "the flow is too stiff to integrate (deep chains near g = 1)")
        if single:
            C = state[:n].reshape(1, P, Q)
        else:
            buf[flat] = state[:n]
            C = buf.reshape(K, P, Q)
        M = eye - A @ C
        if symmetric:             # C stays symmetric and x = y
            if single:            # LAPACK directly: numpy's batched wrapper costs more
                _, _, y, info = gesv(M[0], r_m_col[0])
                if info:
                    raise np.linalg.LinAlgError("singular matrix in the reduced flow")
                y = y[None]
            else:
                y = np.linalg.solve(M, r_m_col)                    # (K, Q, 1)
            x = y
            Cy = C @ y
            e = targets - s0 - (r_w_row @ Cy)[:, 0, 0]
            s_col = Cy                                             # C^T x = C y
        else:
            Ctr = np.swapaxes(C, 1, 2) @ r_w[:, :, None]           # (K, Q, 1)
            sol = np.linalg.solve(np.concatenate([M, np.swapaxes(M, 1, 2)]),
                                  np.concatenate([r_m_col, Ctr]))
            y, u = sol[:K], sol[K:]
            x = r_w[:, :, None] + At @ u
            e = targets - s0 - (np.swapaxes(Ctr, 1, 2) @ y)[:, 0, 0]
            Cy = C @ y
            s_col = np.swapaxes(C, 1, 2) @ x
        d = ((e[:, None, None] * x) * np.swapaxes(y, 1, 2)).reshape(-1)
        d = d if single else d[flat]
        if gn is None:
            return d
        a2 = aw + (2.0 * (c_a_row @ s_col) + np.swapaxes(s_col, 1, 2) @ (G_a @ s_col))[:, 0, 0]
        b2 = bm + (2.0 * (c_b_row @ Cy) + np.swapaxes(Cy, 1, 2) @ (G_b @ Cy))[:, 0, 0]
        g_norm = np.abs(e) * np.sqrt(np.maximum(a2, 0.0) * np.maximum(b2, 0.0))
        return np.concatenate([d, g_norm])

    last = models[-1]
    p_l, q_l = shapes[-1]
    size = n + (K if with_grad_integral else 0)
    s_init = np.zeros(size)
    t_end = float(tau[-1]) if tau.size else 0.0

    # Once |z_hat - z| <= 10 rtol |z_hat| (the integrator's own resolution) learning is over
    # (dC/dtau = e x y^T), but e keeps decaying at the rate S = |a|^2 |b|^2, which makes
    # the tail stiff for an explicit integrator: stop there and hold the state (the
    # remaining change of C is below |e| |x| |y| / S).
    def done(_t, state):
        if K == 1:
            return abs(targets[0] - last.readout(state[:n].reshape(p_l, q_l))) - thr[0]
        buf[flat] = state[:n]
        z = reduced_readouts(buf.reshape(K, P, Q), A, r_w, r_m, s0, symmetric)[0]
        return float(np.max(np.abs(targets - z) - thr))
    done.terminal = True
    done.direction = -1

    if integrator not in ("dop853", "taylor"):
        raise ValueError(f"integrator must be 'dop853' or 'taylor', got {integrator!r}")
    ode = None
    t_done = np.full(K, np.inf)
    if t_end <= 0.0:
        sol_y = np.zeros((size, tau.size))
        msg, nfev = "no time to integrate", 0
    elif integrator == "taylor" and not with_grad_integral:
        from .taylor import taylor_flow
        ode, t_done, t_stop, nfev = taylor_flow(A, r_w, r_m, s0, targets, flat, symmetric,
                                                t_end, thr, rtol, atol, max_nfev)
        sol_y = ode(np.minimum(tau, t_stop)) if tau.size else np.zeros((size, 0))
        msg = ("The solver successfully reached the end of the integration interval."
               if np.isinf(t_done).any() else f"converged at tau = {t_stop:.6g}; held after")
    else:
        sol = solve_ivp(rhs, (0.0, t_end), s_init, method="DOP853", dense_output=True,
                        events=done, rtol=rtol, atol=atol)
        if sol.status == -1 or not np.all(np.isfinite(sol.y)):
            raise RuntimeError(f"reduced ODE failed: {sol.message}")
        ode = sol.sol
        t_stop = float(sol.t[-1])
        if sol.status == 1:
            t_done[:] = t_stop
        if K > 1:
            t_done = np.minimum(t_done, _convergence_times(
                sol, flat, (K, P, Q), (A, r_w, r_m, s0, symmetric), targets, thr))
        sol_y = ode(np.minimum(tau, t_stop)) if tau.size else np.zeros((size, 0))
        nfev = int(sol.nfev)
        msg = sol.message if sol.status == 0 else f"converged at tau = {t_stop:.6g}; held after"
    out = []
    start = 0
    for k, (m, (p, q)) in enumerate(zip(models, shapes)):
        rows = list(range(start, start + p * q)) + ([n + k] if with_grad_integral else [])
        Y = sol_y[rows]
        late = tau > t_done[k]
        if late.any():                  # held from its convergence on, as a run of its own
            Y[:, late] = ode(t_done[k])[rows][:, None]
        Cs = np.ascontiguousarray(Y[:p * q].T).reshape(tau.size, p, q)
        gi = Y[p * q].copy() if with_grad_integral else np.zeros(tau.size)
        ev = _dense_view(ode, min(t_done[k], t_end), start, p, q,
                         n + k if with_grad_integral else None) if dense else None
        start += p * q
        first, run = equal_runs(Cs)                   # held: one readout per run
        z = reduced_readouts(Cs[first], m.A, m.r_w, m.r_m, m.s0, symmetric)[0][run]
        out.append(FlowSolution(tau=tau, C=Cs, readout=np.asarray(z), grad_int=gi,
                                status=Status.OK, message=msg, nfev=nfev, dense=ev,
                                t_hold=float(t_done[k])))
    return out


def _convergence_times(sol, flat: np.ndarray, dims: tuple[int, int, int], batch: tuple,
                       targets: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """First time each model of a joint run has ``|z_hat - z| <= thr`` (``inf`` if never):
    the first step point below, refined on the dense output for all models at once
    (:func:`_bracketed_roots`, to four ulps as :func:`scipy.optimize.brentq` would)."""
    K, P, Q = dims
    A, r_w, r_m, s0, symmetric = batch
    n = flat.size
    Cp = np.zeros((sol.t.size, K * P * Q))
    Cp[:, flat] = sol.y[:n].T
    Cs = Cp.reshape(sol.t.size, K, P, Q)
    z = reduced_readouts(Cs, A, r_w, r_m, s0, symmetric)[0]
    below = np.abs(targets - z) - thr <= 0                   # (steps, K)
    out = np.full(K, np.inf)
    hit = np.nonzero(below.any(axis=0))[0]
    j = np.argmax(below[:, hit], axis=0)
    at_start = j == 0
    out[hit[at_start]] = float(sol.t[0])
    ks, j = hit[~at_start], j[~at_start]
    if not ks.size:
        return out

    def f(t: np.ndarray, rows: np.ndarray) -> np.ndarray:
        k = ks[rows]
        buf = np.zeros((t.size, K * P * Q))
        buf[:, flat] = sol.sol(t)[:n].T
        C = buf.reshape(t.size, K, P, Q)[np.arange(t.size), k]
        zk = reduced_readouts(C, A[k], r_w[k], r_m[k], s0[k], symmetric)[0]
        return np.abs(targets[k] - zk) - thr[k]

    a, b = sol.t[j - 1], sol.t[j]
    rows = np.arange(ks.size)
    eps4 = 4 * np.finfo(float).eps
    out[ks] = _bracketed_roots(f, a, b, f(a, rows), f(b, rows), rows, xtol=eps4, rtol=eps4)
    return out


def _dense_view(ode, t_stop: float, start: int, p: int, q: int, gi_index: int | None
                ) -> Callable[[Any], tuple[np.ndarray, Any]]:
    """``t -> (C(t), int_0^t |grad|)`` of one model of a joint run (held after ``t_stop``);
    ``t`` a float, or an array (then ``C`` has a leading axis)."""
    def at(t: Any) -> tuple[np.ndarray, Any]:
        tt = np.clip(np.asarray(t, dtype=float), 0.0, t_stop)
        if ode is None:
            return np.zeros(tt.shape + (p, q)), np.zeros(tt.shape)[()]
        y = ode(tt)
        gi = y[gi_index] if gi_index is not None else np.zeros(tt.shape)
        C = np.moveaxis(y[start:start + p * q], 0, -1).reshape(tt.shape + (p, q))
        return C, (float(gi) if tt.ndim == 0 else gi)
    at.steps = np.array([0.0, t_stop]) if ode is None else np.asarray(ode.ts)
    return at


@dataclass(frozen=True)
class LearningPath:
    """The path of the reduced flow in ``C``, parametrised by ``s = int |z_hat - z| dtau``
    (:func:`integrate_paths`).

    Attributes
    ----------
    model : ReducedModel
    sign : float
        ``+1`` for positive targets, ``-1`` for negative ones.
    s_end : float
        Where the path stops (``sign z >= z_goal``).
    steps : ndarray
        The integrator's step points in ``s``.
    at : callable
        ``s -> C(s)`` (``s`` a float or an array; then ``C`` has a leading axis).
    """

    model: ReducedModel
    sign: float
    s_end: float
    steps: np.ndarray
    at: Callable[[Any], np.ndarray] = field(repr=False, compare=False)


def integrate_paths(models: Sequence[ReducedModel], sign: float, z_goal: float,
                    rtol: float = 1e-11, atol: float = 1e-14,
                    max_nfev: int = MAX_NFEV) -> list[LearningPath]:
    """The learning paths ``dC/ds = sign x y^T`` from ``C = 0`` until ``sign z >= z_goal``
    for every model, integrated as one ODE (padded, batched as :func:`integrate_many`).

    With ``ds = |z_hat - z| dtau`` the flow of *every* target of that sign follows this one
    path (``dC/dtau = (z_hat - z) x y^T``): the target only sets the speed along it and
    where it ends (``z = z_hat``), so ``tau(s) = int_0^s ds' / |z_hat - z(s')|``. Along the
    path ``dz/ds = sign |x|^2 |y|^2``: ``z`` is monotone, and there is no stiff tail.

    Examples
    --------
    >>> from linrnn_theory.theory.large_n import large_n_model
    >>> path, = integrate_paths([large_n_model(0.5, 6)], 1.0, 0.9)
    >>> bool(abs(path.model.readout(path.at(path.s_end)) - 0.9) < 1e-9)
    True
    """
    models = list(models)
    K = len(models)
    shapes, P, Q, A, r_w, r_m, s0, flat, symmetric = _stack(models)
    n = flat.size
    buf = np.zeros(K * P * Q)
    calls = [0]
    sign = float(np.sign(sign)) or 1.0

    def rhs(_s, state):
        calls[0] += 1
        if calls[0] > max_nfev:
            raise StepLimitError(f"the learning path (shape {shapes[-1][0]} x "
                                 f"{shapes[-1][1]}) needed more than {max_nfev} right-hand "
                                 "side evaluations")
        buf[flat] = state
        _, x, y = reduced_readouts(buf.reshape(K, P, Q), A, r_w, r_m, s0, symmetric)
        return (sign * x[:, :, None] * y[:, None, :]).reshape(-1)[flat]

    def reached(_s, state):
        buf[flat] = state
        z = reduced_readouts(buf.reshape(K, P, Q), A, r_w, r_m, s0, symmetric)[0]
        return float(np.min(sign * z)) - z_goal
    reached.terminal = True
    reached.direction = 1

    rate = min(float(np.dot(m.r_w, m.r_w) * np.dot(m.r_m, m.r_m)) for m in models)
    s_max = 1e3 * max(abs(z_goal), 1e-12) / max(rate, 1e-300)
    sol = solve_ivp(rhs, (0.0, s_max), np.zeros(n), method="DOP853", dense_output=True,
                    events=reached, rtol=rtol, atol=atol)
    if sol.status != 1 or not np.all(np.isfinite(sol.y)):
        raise RuntimeError(f"the learning path did not reach z = {z_goal}: {sol.message}")
    s_end = float(sol.t[-1])
    ode = sol.sol
    out = []
    start = 0
    for m, (p, q) in zip(models, shapes):
        def at(s: Any, start: int = start, p: int = p, q: int = q) -> np.ndarray:
            ss = np.clip(np.asarray(s, dtype=float), 0.0, s_end)
            y = ode(ss)[start:start + p * q]
            return np.moveaxis(y, 0, -1).reshape(ss.shape + (p, q))
        out.append(LearningPath(model=m, sign=sign, s_end=s_end, steps=np.asarray(ode.ts),
                                at=at))
        start += p * q
    return out
