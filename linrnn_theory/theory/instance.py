r"""The reduced model of one concrete network (any N, user weights).

Under the fixed-point gradient flow ``dW/dtau = e a b^T`` the change ``Delta W`` stays in
``span{u_k} (x) span{v_k}`` with ``u_1 = R^T w``, ``v_1 = R m``, ``u_{k+1} = R^T v_k``,
``v_{k+1} = R u_k`` and ``R = (I - W0)^{-1}`` (Woodbury identity: ``(I - W)^{-1}`` maps the
span of the chains into itself shifted by one). We build orthonormal bases of the first
``depth`` chain vectors on each side (one LU of ``I - W0``, cached on the network; two solves per vector,
Gram-Schmidt with reorthogonalisation and deflation) and project: the result is the
:class:`~.reduced.ReducedModel` of this network, exact up to the truncation depth.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from ..network import Network
from .reduced import ReducedModel

__all__ = ["instance_model"]

_DEFLATE = 1e-10


def _orth_add(Q: list[np.ndarray], v: np.ndarray) -> np.ndarray | None:
    """Gram-Schmidt (two passes) of ``v`` against ``Q``; None if ``v`` lies in the span."""
    nv = float(np.linalg.norm(v))
    if nv == 0.0:
        return None
    r = v.copy()
    for _ in range(2):
        for q in Q:
            r -= (q @ r) * q
    nr = float(np.linalg.norm(r))
    if nr <= _DEFLATE * nv:
        return None
    return r / nr


def instance_model(net: Network, depth: int, input_amp: float = 1.0, *,
                   outliers: bool = True) -> ReducedModel:
    """Reduced model of ``net`` with up to ``depth`` chain vectors per side.

    Parameters
    ----------
    net : Network
        ``W0`` must be stable (all eigenvalues with real part < 1).
    depth : int
        Maximal number of chain vectors per side (the chains stop earlier if they span an
        invariant subspace, e.g. ``{w, m}`` at ``g = 0``).
    input_amp : float
        Input amplitude (multiplies ``m``).
    outliers : bool
        Compute the spectral radius of ``W0`` (the bulk that outlier eigenvalues leave,
        :attr:`~.reduced.ReducedModel.bulk_radius`). ``False`` skips its O(N^3)
        eigendecomposition, for uses without eigenvalues (the scalar observables), and
        leaves ``bulk_radius`` NaN.

    Returns
    -------
    ReducedModel

    Examples
    --------
    >>> import linrnn_theory as lt
    >>> mdl = instance_model(lt.init_network(N=50, g=0.0, seed=0), depth=6)
    >>> mdl.shape                       # g = 0: the chains span {w, m} exactly
    (2, 2)
    """
    net.check_stable()
    N = net.N
    lu = net.resolvent_lu()
    R = lambda x: sla.lu_solve(lu, x)            # noqa: E731
    Rt = lambda x: sla.lu_solve(lu, x, trans=1)  # noqa: E731
    m = input_amp * net.m
    w = net.w
    Rm, Rtw = R(m), Rt(w)
    U: list[np.ndarray] = []
    V: list[np.ndarray] = []
    RU: list[np.ndarray] = []
    RtV: list[np.ndarray] = []
    pend_u, pend_v = [Rtw], [Rm]
    while (pend_u or pend_v) and (len(U) < depth or len(V) < depth):
        new_u, new_v = [], []
        for cand in pend_u:
            if len(U) >= depth:
                break
            q = _orth_add(U, cand)
            if q is not None:
                U.append(q)
                RU.append(R(q))
                new_v.append(RU[-1])          # v_{k+1} = R u_k
        for cand in pend_v:
            if len(V) >= depth:
                break
            q = _orth_add(V, cand)
            if q is not None:
                V.append(q)
                RtV.append(Rt(q))
                new_u.append(RtV[-1])         # u_{k+1} = R^T v_k
        pend_u, pend_v = new_u, new_v
    Um = np.array(U).T.reshape(N, len(U))
    Vm = np.array(V).T.reshape(N, len(V))
    RUm = np.array(RU).T.reshape(N, len(U))
    RtVm = np.array(RtV).T.reshape(N, len(V))
    A = Vm.T @ RUm
    norm_data = (float(Rtw @ Rtw), RtVm.T @ Rtw, RtVm.T @ RtVm,
                 float(Rm @ Rm), RUm.T @ Rm, RUm.T @ RUm)
    shuffle = (float(w @ m), Um.T @ w, Vm.T @ m, Vm.T @ Um)
    if not outliers:
        radius = float("nan")
    else:
        ev = net.eigvals_W0() if N <= 2000 else None
        radius = float(np.max(np.abs(ev))) if ev is not None else float(net.g or 0.0)
    return ReducedModel(
        A=A, r_w=Um.T @ Rtw, r_m=Vm.T @ Rm, s0=float(w @ Rm), norm_data=norm_data,
        shuffle_data=shuffle, outlier_matrix=None, bulk_radius=radius, depth=int(depth),
        source="instance", weights=lambda C: net.W0 + Um @ C @ Vm.T, info={"U": Um, "V": Vm},
    )
