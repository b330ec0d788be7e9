r"""Fast finite-time simulator: exact Euler dynamics and BPTT in the eigenbasis of ``W0``.

With the real block-diagonal eigendecomposition ``W0 = S D S^{-1}`` (computed once per
network; ``D`` has 1 x 1 blocks for real eigenvalues and 2 x 2 rotation-scaling blocks
``[[alpha, beta], [-beta, alpha]]`` for pairs ``alpha +- i beta``, so all arithmetic stays
real) the Euler propagator ``A = (1 - dt) I + dt W`` becomes ``Ad + dt Uh C Vc^T`` in
eigen-coordinates, with ``Ad = (1 - dt) I + dt D``, ``Delta W = U C V^T`` (orthonormal
``U``, ``V``), ``Uh = S^{-1} U`` and ``Vc = S^T V``. One time step costs O(N r) instead of
O(N^2)::

    forward   xh_{k+1} = Ad xh_k + dt Uh C (Vc^T xh_k) + dt u_k mh             (x = S xh)
    backward  lh_k     = Ad^T lh_{k+1} + dt Vc C^T (Uh^T lh_{k+1}) + wh eps_k   (lambda = S^{-T} lh)

and the gradient ``G = dt sum_k lambda_{k+1} x_k^T`` is needed only through

* its projection ``U^T G V = dt sum_k (Uh^T lh_{k+1}) (Vc^T xh_k)^T`` (exact), and
* a randomised sketch ``G Omega``, ``G^T Omega`` (``Omega``: N x s Gaussian probes) whose
  residual outside ``span(U)``/``span(V)`` reveals new directions (Halko, Martinsson & Tropp
  2011, adaptive range finder). Directions are added until a fresh sketch has no residual
  above ``rtol`` times the estimated ``|G|_F``; the part of ``G`` that is dropped is
  therefore below that tolerance (with high probability).

The dynamics are the same Euler scheme as :func:`.dense.bptt_loss_grad`; only round-off
differs (the eigenvector matrix of a random ``W0`` has condition number ~1e3 at N = 1024,
costing about three digits). Networks whose ``W0`` is (numerically) defective are refused
(:class:`~.engine.EngineRefused`); :func:`linrnn_theory.train` then takes the dense engine
and says so in the run's message, unless the fast engine was asked for by name.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from .._memo import array_cache
from ..network import Network
from ..task import FixedPointTask
from .basis import FactoredDelta, MappedBasis
from .engine import Engine, EngineRefused, register_engine

__all__ = ["BPTTEngine", "MAX_EIGVEC_COND"]

#: Refuse the eigenbasis (use the dense engine) above this condition number of S.
MAX_EIGVEC_COND = 1e5


def _real_eigenbasis(W0: np.ndarray, dt: float):
    """Real eigenbasis ``S`` with ``W0 S = S D`` and the Euler propagator in that basis.

    Returns ``S`` and vectors ``c, s, perm`` such that ``Ad x = c * x + s * x[perm]`` with
    ``Ad = (1 - dt) I + dt D`` (``perm`` swaps the two members of each complex pair).
    """
    d, V = np.linalg.eig(W0)
    N = W0.shape[0]
    S = np.empty((N, N))
    c = np.empty(N)
    s = np.zeros(N)
    perm = np.arange(N)
    i = 0
    while i < N:
        if abs(d[i].imag) == 0.0 or i == N - 1:
            S[:, i] = V[:, i].real
            c[i] = 1.0 - dt + dt * d[i].real
            i += 1
            continue
        # conjugate pair (numpy returns them adjacent): columns Re v, Im v
        alpha, beta = d[i].real, d[i].imag
        S[:, i], S[:, i + 1] = V[:, i].real, V[:, i].imag
        c[i] = c[i + 1] = 1.0 - dt + dt * alpha
        s[i], s[i + 1] = dt * beta, -dt * beta
        perm[i], perm[i + 1] = i + 1, i
        i += 2
    return S, c, s, perm


@array_cache(maxsize=3)
def _cached_eigenbasis(W0: np.ndarray, dt: float):
    """``_real_eigenbasis`` plus ``S^{-1}``, cached for the last few ``W0`` (a sweep trains
    the same network for several targets; the O(N^3) decomposition is then done once)."""
    S, c, s, perm = _real_eigenbasis(W0, dt)
    lu = sla.lu_factor(S)
    Sinv = sla.lu_solve(lu, np.eye(W0.shape[0]))
    cond = np.linalg.norm(S, 2) * np.linalg.norm(Sinv, 2)
    return S, Sinv, c, s, perm, float(cond)


@register_engine
class BPTTEngine(FactoredDelta, Engine):
    """Gradient descent on the finite-time loss with ``Delta W`` in factored form.

    Parameters
    ----------
    net : Network
    task : FixedPointTask
    mode : {"bptt"}
    rtol : float
        Relative tolerance on the part of the gradient left outside the bases (raised to
        the round-off floor ``10 cond(S)^2 eps`` of the sketch if that is larger).
    n_probes : int
        Columns of the random sketch.
    seed : int
        Seed of the sketch generator (results do not depend on it beyond round-off).

    Raises
    ------
    EngineRefused
        If the eigenvector matrix of ``W0`` is too ill-conditioned (a ``ValueError``).

    Examples
    --------
    >>> from linrnn_theory import init_network, FixedPointTask
    >>> from linrnn_theory.simulation.dense import DenseEngine
    >>> net, task = init_network(N=48, g=0.5, seed=0), FixedPointTask(target=1.0, t_max=20.0)
    >>> fast, dense = BPTTEngine(net, task), DenseEngine(net, task, "bptt")
    >>> for _ in range(3):
    ...     (Lf, _), (Ld, _) = fast.evaluate(), dense.evaluate()
    ...     fast.step(0.05); dense.step(0.05)
    >>> bool(abs(Lf - Ld) < 1e-12 * Ld)
    True
    """

    name = "fast"
    modes = ("bptt",)
    priority = 0
    mode = "bptt"

    @classmethod
    def supports(cls, task, mode: str) -> bool:
        """The finite-time :class:`~linrnn_theory.FixedPointTask`."""
        return mode == "bptt" and isinstance(task, FixedPointTask)

    def __init__(self, net: Network, task: FixedPointTask, mode: str = "bptt", *,
                 rtol: float = 1e-13, n_probes: int = 4, seed: int = 0x5EED):
        if not self.supports(task, mode):
            raise ValueError(f"BPTTEngine trains FixedPointTask in mode 'bptt', got "
                             f"{type(task).__name__} in mode {mode!r}")
        self.net = net
        self.task = task
        self.rtol = rtol
        N = net.N
        try:
            S, Sinv, c_diag, s_off, perm, cond = _cached_eigenbasis(net.W0, task.dt)
        except np.linalg.LinAlgError as exc:   # no usable eigendecomposition at all
            raise EngineRefused(f"W0 has no usable eigenbasis ({exc}); use "
                                "engine='dense'") from None
        if not np.isfinite(cond) or cond > MAX_EIGVEC_COND:
            raise EngineRefused(f"W0 is numerically defective (eigenvector condition "
                                f"{cond:.2e}); use engine='dense'")
        self.cond = float(cond)
        # states and adjoints pass through S and S^{-1}, so the sketch carries round-off of
        # ~cond(S)^2 eps |G| (measured: 1-1.5 cond^2 eps); directions below ten times that
        # floor are indistinguishable from arithmetic error and are not added
        self.tol = max(rtol, 10.0 * self.cond ** 2 * np.finfo(float).eps)
        self.S, self.Sinv = S, Sinv
        self.SinvT = np.ascontiguousarray(Sinv.T)
        self._c, self._s, self._perm = c_diag, s_off, perm
        self.mh = Sinv @ (task.input_amp * net.m)
        self.wh = S.T @ net.w
        self.u = task.inputs() / task.input_amp if task.input_amp != 0 else task.inputs()
        self.dec = task.decision_steps()
        # images: U -> (S^{-1} U for propagation, S^T U for the sketch residual),
        #         V -> (S^T V for propagation, S^{-1} V for the sketch residual)
        self.U = MappedBasis(N, lambda v: Sinv @ v, self.tol, apply2=lambda v: S.T @ v)
        self.V = MappedBasis(N, lambda v: S.T @ v, self.tol, apply2=lambda v: Sinv @ v)
        self._norm_S = float(np.linalg.norm(S, 2))
        self._norm_Sinv = float(np.linalg.norm(Sinv, 2))
        self.C = np.zeros((0, 0))
        self._rng = np.random.default_rng(seed)
        self.n_probes = int(n_probes)
        self._probes = self._new_probes()
        self._grad_proj = None
        self._gnorm = float("nan")
        self.n_sketch_rounds = 0

    # -- helpers -------------------------------------------------------------------
    def _new_probes(self, n: int | None = None):
        Om = self._rng.standard_normal((self.net.N, n or self.n_probes))
        return self.S.T @ Om, self.Sinv @ Om          # for x^T Omega and lambda^T Omega

    def _forward(self):
        T, dt = self.task.n_steps, self.task.dt
        X = np.zeros((T + 1, self.net.N))
        UC = dt * (self.U.image @ self.C) if self.C.size else None
        Vc = np.ascontiguousarray(self.V.image.T) if self.C.size else None
        x = np.zeros(self.net.N)
        c, sd, perm, mh, u = self._c, self._s, self._perm, dt * self.mh, self.u
        for k in range(T):
            nx = c * x + sd * x[perm]
            if UC is not None:
                nx += UC @ (Vc @ x)
            if u[k] != 0.0:
                nx += u[k] * mh
            x = nx
            X[k + 1] = x
        return X

    def _backward(self, eps):
        T, dt = self.task.n_steps, self.task.dt
        Lam = np.zeros((T + 1, self.net.N))
        VCt = dt * (self.V.image @ self.C.T) if self.C.size else None
        Uh = np.ascontiguousarray(self.U.image.T) if self.C.size else None
        lam = eps[T] * self.wh
        Lam[T] = lam
        c, sdt, perm, wh = self._c, -self._s, self._perm, self.wh
        for k in range(T - 1, 0, -1):
            nl = c * lam + sdt * lam[perm]
            if VCt is not None:
                nl += VCt @ (Uh @ lam)
            if eps[k] != 0.0:
                nl += eps[k] * wh
            lam = nl
            Lam[k] = lam
        return Lam

    # -- engine interface ------------------------------------------------------------
    def evaluate(self) -> tuple[float, float]:
        """Loss and readout (mean over the decision window) at the current weights."""
        task = self.task
        with np.errstate(over="ignore", invalid="ignore"):
            X = self._forward()
            z = X[self.dec] @ self.wh
            err = z - task.target
            loss = 0.5 * float(np.mean(err ** 2))
            if not np.isfinite(loss):
                self._grad_proj = None
                return loss, float(np.mean(z))
            eps = np.zeros(task.n_steps + 1)
            eps[self.dec] = err / task.n_decision
            Lam = self._backward(eps)
        P = self._extend_bases(X[:-1], Lam[1:])
        self._grad_proj = P
        self._gnorm = float(np.linalg.norm(P))
        return loss, float(np.mean(z))

    def _projected(self, X, Lam) -> np.ndarray:
        Th = Lam @ self.U.image          # (T, p): U^T lambda_{k+1}
        Sx = X @ self.V.image            # (T, q): V^T x_k
        return self.task.dt * (Th.T @ Sx)

    def _extend_bases(self, X, Lam) -> np.ndarray:
        """Add directions until the sketched gradient lies in span(U) (x) span(V); returns
        the projected gradient ``U^T G V`` on the final bases.

        The residual of the sketch is first formed in eigen-coordinates, where it costs
        O(N T s); only if the bound ``|S^{-T}| |residual|`` (resp. ``|S|``) exceeds the
        tolerance is it mapped back (O(N^2 s)) and orthogonalised into new directions.
        """
        dt = self.task.dt
        probes = self._probes
        for rnd in range(64):
            om_x, om_l = probes
            n_pr = om_x.shape[1]
            Yh = dt * (Lam.T @ (X @ om_x))          # S^T G Omega
            Zh = dt * (X.T @ (Lam @ om_l))          # S^{-1} G^T Omega
            P = self._projected(X, Lam)
            scale = float(np.linalg.norm(P))
            if self.U.n and self.V.n and scale > 0.0:
                Ry = Yh - self.U.image2 @ (self.U.image.T @ Yh)
                Rz = Zh - self.V.image2 @ (self.V.image.T @ Zh)
                by = self._norm_Sinv * np.linalg.norm(Ry, axis=0).max()
                bz = self._norm_S * np.linalg.norm(Rz, axis=0).max()
                if max(by, bz) <= self.tol * scale:
                    return P
            Y = self.SinvT @ Yh
            Z = self.S @ Zh
            scale = max(scale, np.linalg.norm(Y) / np.sqrt(n_pr), np.linalg.norm(Z) / np.sqrt(n_pr))
            if scale == 0.0:
                return P
            ru = self.U.add_columns(Y, scale)
            rv = self.V.add_columns(Z, scale)
            if ru == 0 and rv == 0:
                return P
            p, q = self.U.n, self.V.n
            C = np.zeros((p, q))
            C[: self.C.shape[0], : self.C.shape[1]] = self.C
            self.C = C
            self.n_sketch_rounds += 1
            # verify with a fresh sketch; widen it while many directions keep appearing
            busy = max(ru, rv) >= n_pr // 2
            probes = self._new_probes(min(4 * self.n_probes, 2 * n_pr) if busy else None)
        raise RuntimeError("gradient range not captured after 64 sketch rounds")

    def grad_norm(self) -> float:
        """Frobenius norm of the gradient (its projection on the converged bases)."""
        return self._gnorm

    def step(self, lr: float) -> None:
        """One gradient-descent step ``C <- C - lr U^T G V``."""
        self.C = self.C - lr * self._grad_proj
        self._grad_proj = None

    def unstable(self) -> bool:
        """Finite-time mode has no fixed point to lose; divergence shows in the loss."""
        return False
