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
from typing import Callable

import numpy as np
from scipy.integrate import solve_ivp

from ..lowrank import reduced_readout
from ..trajectory import Status

__all__ = ["ReducedModel", "FlowSolution", "integrate", "StepLimitError", "MAX_NFEV"]

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
    """

    tau: np.ndarray
    C: np.ndarray
    readout: np.ndarray
    grad_int: np.ndarray
    status: Status
    message: str
    nfev: int


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
    """
    p, q = model.shape
    tau = np.asarray(tau, dtype=float)
    n = p * q

    calls = [0]

    def rhs(_t, s):
        calls[0] += 1
        if calls[0] > max_nfev:
            raise StepLimitError(f"the reduced ODE (shape {p} x {q}) needed more than "
                                 f"{max_nfev} right-hand side evaluations: the flow is too stiff "
                                 "to integrate (deep chains near g = 1)")
        C = s[:n].reshape(p, q)
        z, x, y = reduced_readout(C, model.A, model.r_w, model.r_m, model.s0)
        d = ((target - z) * np.outer(x, y)).ravel()
        if with_grad_integral:
            return np.append(d, model.grad_norm(C, target))
        return d

    s0 = np.zeros(n + (1 if with_grad_integral else 0))
    t_end = float(tau[-1]) if tau.size else 0.0
    scale = max(abs(target), 1e-300)

    # Once |z_hat - z| <= 10 rtol |z_hat| (the integrator's own resolution) learning is over
    # (dC/dtau = e x y^T), but e keeps decaying at the rate S = |a|^2 |b|^2, which makes
    # the tail stiff for an explicit integrator: stop there and hold the state (the
    # remaining change of C is below |e| |x| |y| / S).
    def done(_t, s):
        C = s[:n].reshape(p, q)
        return abs(target - model.readout(C)) - 10.0 * rtol * scale
    done.terminal = True
    done.direction = -1

    if t_end <= 0.0:
        Cs = np.zeros((tau.size, p, q))
        sol_y = np.zeros((s0.size, tau.size))
        status, msg, nfev = Status.OK, "no time to integrate", 0
    else:
        sol = solve_ivp(rhs, (0.0, t_end), s0, method="DOP853", dense_output=True,
                        events=done, rtol=rtol, atol=atol)
        if sol.status == -1 or not np.all(np.isfinite(sol.y)):
            raise RuntimeError(f"reduced ODE failed: {sol.message}")
        t_stop = float(sol.t[-1])
        inside = tau <= t_stop
        sol_y = np.empty((s0.size, tau.size))
        if inside.any():
            sol_y[:, inside] = sol.sol(tau[inside])
        if (~inside).any():
            hold = sol.y[:, -1].copy()   # gradient norm ~ |e| |a| |b| ~ 0 after the stop
            sol_y[:, ~inside] = hold[:, None]
        Cs = sol_y[:n].T.reshape(tau.size, p, q)
        status, nfev = Status.OK, int(sol.nfev)
        msg = sol.message if sol.status == 0 else f"converged at tau = {t_stop:.6g}; held after"
    z = np.array([model.readout(C) for C in Cs])
    gi = sol_y[n] if with_grad_integral else np.zeros(tau.size)
    return FlowSolution(tau=tau, C=Cs, readout=z, grad_int=gi, status=status, message=msg,
                      nfev=nfev)
