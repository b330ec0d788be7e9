"""Fast fixed-point simulator: one LU of ``I - W0`` per network, ``Delta W`` kept low rank.

Per epoch the readout and the gradient need ``b = (I - W)^{-1} m`` and
``a = (I - W)^{-T} w``. With ``Delta W = U C V^T`` (orthonormal ``U``, ``V``) these follow
from the Woodbury identity (:mod:`linrnn_theory.lowrank`) at a cost of O(N (p + q)) plus
small dense algebra. A new linear solve (O(N^2)) is needed only when a gradient direction
leaves the current span by more than ``rtol`` (relative), which happens a few dozen times
per run; the cost per epoch is therefore O(N r) once the span has saturated, instead of the
O(N^3) of a dense LU per epoch.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from .._memo import array_cache
from ..lowrank import reduced_readout, stability_sign
from ..network import Network
from ..task import FixedPointTask
from .basis import FactoredDelta, MappedBasis
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

    # -- evaluation --------------------------------------------------------------
    def evaluate(self) -> tuple[float, float]:
        """Loss and readout at the current weights (prepares the gradient).

        Returns
        -------
        loss, readout : float
        """
        z, x, y = reduced_readout(self.C, self.A, self.r_w, self.r_m, self.s0)
        e = self.task.target - z
        a = self.Rtw + self.V.image @ (self.C.T @ x)
        b = self.Rm + self.U.image @ (self.C @ y)
        self._last = (e, x, y, a, b)
        return 0.5 * e * e, z

    def grad_norm(self) -> float:
        """Frobenius norm of ``dL/dW = -e a b^T`` at the last evaluation."""
        e, _, _, a, b = self._last
        return abs(e) * float(np.linalg.norm(a) * np.linalg.norm(b))

    def step(self, lr: float) -> None:
        """One gradient-descent step ``W <- W - lr dL/dW`` (uses the last evaluation)."""
        e, x, y, a, b = self._last
        alpha, added_u = self.U.project_extend(a, known=x)
        if added_u:
            u_img = self.U.image[:, -1]
            self.A = np.hstack([self.A, (self.V.Q.T @ u_img)[:, None]])
            self.r_w = np.append(self.r_w, u_img @ self.net.w)
            self.C = np.vstack([self.C, np.zeros((1, self.C.shape[1]))])
            self.n_solves += 1
        beta, added_v = self.V.project_extend(b, known=y)
        if added_v:
            v_new = self.V.Q[:, -1]
            self.A = np.vstack([self.A, (v_new @ self.U.image)[None, :]])
            self.r_m = np.append(self.r_m, v_new @ self.Rm)
            self.C = np.hstack([self.C, np.zeros((self.C.shape[0], 1))])
            self.n_solves += 1
        self.C = self.C + (lr * e) * np.outer(alpha, beta)
        self._last = None

    def unstable(self) -> bool:
        """True if ``det(I - W)`` changed sign, i.e. a real eigenvalue of W crossed 1."""
        return stability_sign(self.C, self.A) <= 0.0
