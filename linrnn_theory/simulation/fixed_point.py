"""Fast fixed-point simulator: one LU of ``I - W0`` per network, ``Delta W`` kept low rank.

Per epoch the readout and the gradient need ``b = (I - W)^{-1} m`` and
``a = (I - W)^{-T} w``. With ``Delta W = U C V^T`` (orthonormal ``U``, ``V``) these follow
from the Woodbury identity (:mod:`linrnn_theory.lowrank`) at a cost of O(N (p + q)) plus
small dense algebra. A new linear solve (O(N^2)) is needed only when a gradient direction
leaves the current span by more than ``rtol`` (relative), which happens a few dozen times
per run; the cost per epoch is therefore O(N r) once the span has saturated, instead of the
O(N^3) of a dense LU per epoch.

Several networks of one ``N`` are stepped together (:meth:`FixedPointEngine.evaluate_batch`,
``step_batch``, ``unstable_batch``): their small matrices are stacked with zero padding
(identity blocks in ``I - A C``; sizes rounded up to whole blocks of 8, so that the padding
adds exact zeros) and solved in one batched call; a single network is the batch of one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg as sla

from .._memo import array_cache
from ..network import Network
from ..task import FixedPointTask
from .basis import FactoredDelta, MappedBasis, project_extend, round_up
from .engine import Engine, register_engine

__all__ = ["FixedPointEngine"]

@array_cache(maxsize=3)
def _cached_lu(W0: np.ndarray):
    """LU factors of ``I - W0`` for the last few ``W0`` (several targets, one network)."""
    return sla.lu_factor(np.eye(W0.shape[0]) - W0)


@register_engine
class FixedPointEngine(FactoredDelta, Engine):
    """Gradient descent on the fixed-point loss with ``Delta W`` in factored form.

    Parameters
    ----------
    net : Network
    task : FixedPointTask
    mode : {"fixed_point"}
    rtol : float
        Relative tolerance below which a gradient direction is taken to lie in the current
        span (default 1e-13).

    Examples
    --------
    >>> from linrnn_theory import init_network, FixedPointTask
    >>> eng = FixedPointEngine(init_network(N=64, g=0.5, seed=0), FixedPointTask(target=1.0))
    >>> loss, z = eng.evaluate(); eng.step(0.1); loss2, z2 = eng.evaluate()
    >>> bool(loss2 < loss)
    True
    """

    name = "fast"
    modes = ("fixed_point",)
    priority = 0
    mode = "fixed_point"

    @classmethod
    def supports(cls, task, mode: str) -> bool:
        """The fixed-point limit of :class:`~linrnn_theory.FixedPointTask`."""
        return mode == "fixed_point" and isinstance(task, FixedPointTask)

    def __init__(self, net: Network, task: FixedPointTask, mode: str = "fixed_point", *,
                 rtol: float = 1e-13):
        if not self.supports(task, mode):
            raise ValueError(f"FixedPointEngine trains FixedPointTask in mode 'fixed_point', "
                             f"got {type(task).__name__} in mode {mode!r}")
        net.check_stable()
        self.net = net
        self.task = task
        N = net.N
        self._lu = _cached_lu(net.W0)
        m_eff = task.input_amp * net.m
        self.Rm = sla.lu_solve(self._lu, m_eff)
        self.Rtw = sla.lu_solve(self._lu, net.w, trans=1)
        self.s0 = float(net.w @ self.Rm)
        self.U = MappedBasis(N, lambda v: sla.lu_solve(self._lu, v), rtol)
        self.V = MappedBasis(N, lambda v: sla.lu_solve(self._lu, v, trans=1), rtol)
        self.C = np.zeros((0, 0))
        self.A = np.zeros((0, 0))     # V^T R U
        self.r_w = np.zeros(0)        # U^T R^T w
        self.r_m = np.zeros(0)        # V^T R m
        self.n_solves = 2
        self._last = None

    def batch_key(self) -> int:
        """Engines of one ``N`` are stepped together."""
        return self.net.N

    # -- evaluation --------------------------------------------------------------
    @classmethod
    def evaluate_batch(cls, engines: Sequence["FixedPointEngine"]
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Loss and readout of several engines (one ``N``) from one batched solve.

        With ``M = I - A C`` (stacked, zero-padded): ``y = M^{-1} r_m``,
        ``x = M^{-T}``-type solve for ``r_w``, ``z = s0 + r_w^T C y`` (Woodbury,
        :mod:`linrnn_theory.lowrank`), then ``a``, ``b`` per engine. A singular ``M`` gives
        a non-finite readout for that engine only.
        """
        engines = list(engines)
        B = len(engines)
        stack = _BasisStack.of(engines)
        P = round_up(max(e.U.n for e in engines), 8)
        Q = round_up(max(e.V.n for e in engines), 8)
        C = np.zeros((B, P, Q))
        A = np.zeros((B, Q, P))
        rw = np.zeros((B, P))
        rm = np.zeros((B, Q))
        for i, e in enumerate(engines):
            p, q = e.U.n, e.V.n
            C[i, :p, :q] = e.C
            A[i, :q, :p] = e.A
            rw[i, :p] = e.r_w
            rm[i, :q] = e.r_m
        Ui, Vi = stack.U_image[:, :, :P], stack.V_image[:, :, :Q]
        s0, target = stack.s0, stack.target
        if P and Q:
            y = _solve(np.eye(Q) - A @ C, rm)
            x = _solve(np.eye(P) - np.swapaxes(A, 1, 2) @ np.swapaxes(C, 1, 2), rw)
            with np.errstate(over="ignore", invalid="ignore"):
                Cy = (C @ y[..., None])[..., 0]
                z = s0 + (rw[:, None, :] @ Cy[..., None])[:, 0, 0]
                a = stack.Rtw + (Vi @ (np.swapaxes(C, 1, 2) @ x[..., None]))[..., 0]
                b = stack.Rm + (Ui @ Cy[..., None])[..., 0]
        else:
            x, y, z = rw, rm, s0
            a, b = stack.Rtw.copy(), stack.Rm.copy()
        err = target - z
        with np.errstate(over="ignore", invalid="ignore"):
            gnorm = np.abs(err) * np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        ev = _Evaluation(err, x, y, a, b, gnorm)
        for i, e in enumerate(engines):
            e._last = (ev, i)
        with np.errstate(over="ignore"):
            return 0.5 * err * err, z

    def evaluate(self) -> tuple[float, float]:
        """Loss and readout at the current weights (prepares the gradient).

        Returns
        -------
        loss, readout : float
        """
        loss, z = self.evaluate_batch([self])
        return float(loss[0]), float(z[0])

    def grad_norm(self) -> float:
        """Frobenius norm of ``dL/dW = -e a b^T`` at the last evaluation."""
        ev, i = self._last
        return float(ev.gnorm[i])

    @classmethod
    def step_batch(cls, engines: Sequence["FixedPointEngine"],
                   lr: float | np.ndarray) -> None:
        """One gradient-descent step of each engine (uses its last evaluation; ``lr`` one
        rate for all or one per engine); the coordinates of ``a`` and ``b`` in the bases
        come from one batched Gram-Schmidt."""
        rates = np.broadcast_to(np.asarray(lr, dtype=float), (len(engines),))
        groups: dict[int, tuple[_Evaluation, list, list[int], list[float]]] = {}
        for e, rate in zip(engines, rates):  # engines evaluated together step together
            ev, i = e._last
            groups.setdefault(id(ev), (ev, [], [], []))
            groups[id(ev)][1].append(e)
            groups[id(ev)][2].append(i)
            groups[id(ev)][3].append(rate)
        for ev, members, rows, member_rates in groups.values():
            stack = _BasisStack.of(members)
            take = slice(None) if rows == list(range(ev.err.size)) else rows
            alpha, added_u = project_extend([e.U for e in members], ev.a[take], ev.x[take],
                                            stack.U_Q)
            beta, added_v = project_extend([e.V for e in members], ev.b[take], ev.y[take],
                                           stack.V_Q)
            update = (np.array(member_rates) * ev.err[take])[:, None, None] * alpha[:, :, None] * beta[:, None, :]
            for j, e in enumerate(members):
                if added_u[j] or added_v[j]:
                    e._grow(bool(added_u[j]), bool(added_v[j]))
                e.C = e.C + update[j, :e.U.n, :e.V.n]
                e._last = None

    def step(self, lr: float) -> None:
        """One gradient-descent step ``W <- W - lr dL/dW`` (uses the last evaluation)."""
        self.step_batch([self], lr)

    def _grow(self, added_u: bool, added_v: bool) -> None:
        """Extend ``A``, ``r_w``, ``r_m`` and ``C`` by the columns just added to the bases
        (``U`` first, then ``V``)."""
        if added_u:
            u_img = self.U.image[:, -1]
            q_old = self.V.n - int(added_v)
            self.A = np.hstack([self.A, (self.V.Q[:, :q_old].T @ u_img)[:, None]])
            self.r_w = np.append(self.r_w, u_img @ self.net.w)
            self.C = np.vstack([self.C, np.zeros((1, self.C.shape[1]))])
            self.n_solves += 1
        if added_v:
            v_new = self.V.Q[:, -1]
            self.A = np.vstack([self.A, (v_new @ self.U.image)[None, :]])
            self.r_m = np.append(self.r_m, v_new @ self.Rm)
            self.C = np.hstack([self.C, np.zeros((self.C.shape[0], 1))])
            self.n_solves += 1

    @classmethod
    def unstable_batch(cls, engines: Sequence["FixedPointEngine"]) -> np.ndarray:
        """Whether ``det(I - W)`` changed sign, for each engine (one batched ``slogdet`` of
        ``I - A C = det(I - W) / det(I - W0)``)."""
        engines = list(engines)
        B = len(engines)
        P = round_up(max(e.U.n for e in engines), 8)
        Q = round_up(max(e.V.n for e in engines), 8)
        if not (P and Q):
            return np.zeros(B, dtype=bool)
        C = np.zeros((B, P, Q))
        A = np.zeros((B, Q, P))
        for i, e in enumerate(engines):
            C[i, :e.U.n, :e.V.n] = e.C
            A[i, :e.V.n, :e.U.n] = e.A
        sign, _ = np.linalg.slogdet(np.eye(Q) - A @ C)
        return sign <= 0.0

    def unstable(self) -> bool:
        """True if ``det(I - W)`` changed sign, i.e. a real eigenvalue of W crossed 1."""
        return bool(self.unstable_batch([self])[0])


class _Evaluation:
    """What :meth:`FixedPointEngine.evaluate_batch` leaves for the step: the stacked,
    zero-padded ``e = z_hat - z``, ``x``, ``y``, ``a``, ``b`` and gradient norms."""

    def __init__(self, err: np.ndarray, x: np.ndarray, y: np.ndarray, a: np.ndarray,
                 b: np.ndarray, gnorm: np.ndarray):
        self.err, self.x, self.y, self.a, self.b, self.gnorm = err, x, y, a, b, gnorm


class _BasisStack:
    """The bases of a batch of engines stacked on a leading axis, zero-padded, kept from
    epoch to epoch (only columns added since the last call are copied)."""

    def __init__(self, engines: list["FixedPointEngine"]):
        self.members = engines
        self.n_u = [0] * len(engines)
        self.n_v = [0] * len(engines)
        N = engines[0].net.N
        self.U_Q = self.U_image = self.V_Q = self.V_image = np.zeros((len(engines), N, 0))
        self.Rtw = np.stack([e.Rtw for e in engines])
        self.Rm = np.stack([e.Rm for e in engines])
        self.s0 = np.array([e.s0 for e in engines])
        self.target = np.array([e.task.target for e in engines])

    @classmethod
    def of(cls, engines: list["FixedPointEngine"]) -> "_BasisStack":
        """The stack of exactly these engines (in this order), brought up to date."""
        stack = engines[0].__dict__.get("_stack")
        if stack is None or len(stack.members) != len(engines) or any(
                a is not b for a, b in zip(stack.members, engines)):
            stack = cls(engines)
            for e in engines:
                e._stack = stack
        stack._sync()
        return stack

    def _sync(self) -> None:
        need_u = round_up(max(e.U.n for e in self.members), 8)
        need_v = round_up(max(e.V.n for e in self.members), 8)
        if need_u > self.U_Q.shape[2]:
            self.U_Q, self.U_image = (self._grown(a, 2 * need_u) for a in (self.U_Q, self.U_image))
        if need_v > self.V_Q.shape[2]:
            self.V_Q, self.V_image = (self._grown(a, 2 * need_v) for a in (self.V_Q, self.V_image))
        for i, e in enumerate(self.members):
            if e.U.n > self.n_u[i]:
                self.U_Q[i, :, self.n_u[i]:e.U.n] = e.U.Q[:, self.n_u[i]:]
                self.U_image[i, :, self.n_u[i]:e.U.n] = e.U.image[:, self.n_u[i]:]
                self.n_u[i] = e.U.n
            if e.V.n > self.n_v[i]:
                self.V_Q[i, :, self.n_v[i]:e.V.n] = e.V.Q[:, self.n_v[i]:]
                self.V_image[i, :, self.n_v[i]:e.V.n] = e.V.image[:, self.n_v[i]:]
                self.n_v[i] = e.V.n

    @staticmethod
    def _grown(a: np.ndarray, cap: int) -> np.ndarray:
        out = np.zeros(a.shape[:2] + (cap,))
        out[:, :, :a.shape[2]] = a
        return out


def _solve(M: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Batched ``M^{-1} r``; a singular member gets NaN (the others are unaffected)."""
    try:
        return np.linalg.solve(M, r[..., None])[..., 0]
    except np.linalg.LinAlgError:
        out = np.full(r.shape, np.nan)
        for i in range(M.shape[0]):
            try:
                out[i] = np.linalg.solve(M[i], r[i])
            except np.linalg.LinAlgError:
                pass
        return out
