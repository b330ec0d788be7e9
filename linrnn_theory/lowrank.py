"""Small-matrix formulas for a low-rank change ``W = W0 + U C V^T`` (Woodbury identity).

With ``R = (I - W0)^{-1}`` and orthonormal bases ``U`` (N x p), ``V`` (N x q), all that the
fixed-point readout and its gradient need are the projected quantities

* ``A   = V^T R U``            (q x p)
* ``r_w = U^T R^T w``          (p,)
* ``r_m = V^T R m``            (q,)
* ``s0  = w^T R m``            (scalar).

Then (Woodbury / matrix-determinant lemma)::

    y = (I_q - A C)^{-1} r_m        = V^T b,   b = (I - W)^{-1} m   = R m + R U C y
    x = (I_p - A^T C^T)^{-1} r_w    = U^T a,   a = (I - W)^{-T} w   = R^T w + R^T V C^T x
    z = s0 + r_w^T C y              = w^T (I - W)^{-1} m
    det(I - W) = det(I - W0) det(I_q - A C)

and the gradient of ``z`` with respect to ``C`` is ``x y^T``. The fast fixed-point
simulator and the reduced-ODE theory both evaluate these formulas; the simulator also
forms the N-vectors ``a`` and ``b``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["reduced_readout", "reduced_readouts", "stability_sign"]


def reduced_readout(C: np.ndarray, A: np.ndarray, r_w: np.ndarray, r_m: np.ndarray,
                    s0: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Readout and projected gradient factors for ``W = W0 + U C V^T``.

    Parameters
    ----------
    C : (p, q) ndarray
    A : (q, p) ndarray
        ``V^T R U``.
    r_w : (p,) ndarray
        ``U^T R^T w``.
    r_m : (q,) ndarray
        ``V^T R m``.
    s0 : float
        ``w^T R m``.

    Returns
    -------
    z : float
        ``w^T (I - W)^{-1} m``.
    x : (p,) ndarray
        ``U^T (I - W)^{-T} w``.
    y : (q,) ndarray
        ``V^T (I - W)^{-1} m``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> N = 6; W0 = 0.1 * rng.standard_normal((N, N)); m, w = rng.standard_normal((2, N))
    >>> U, _ = np.linalg.qr(rng.standard_normal((N, 2))); V, _ = np.linalg.qr(rng.standard_normal((N, 2)))
    >>> C = 0.2 * rng.standard_normal((2, 2)); R = np.linalg.inv(np.eye(N) - W0)
    >>> z, x, y = reduced_readout(C, V.T @ R @ U, U.T @ R.T @ w, V.T @ R @ m, w @ R @ m)
    >>> exact = w @ np.linalg.solve(np.eye(N) - W0 - U @ C @ V.T, m)
    >>> bool(abs(z - exact) < 1e-12)
    True
    """
    p, q = C.shape
    if p == 0 or q == 0:
        return float(s0), np.array(r_w, dtype=float), np.array(r_m, dtype=float)
    y = np.linalg.solve(np.eye(q) - A @ C, r_m)
    x = np.linalg.solve(np.eye(p) - A.T @ C.T, r_w)
    z = float(s0 + r_w @ (C @ y))
    return z, x, y


def reduced_readouts(Cs: np.ndarray, A: np.ndarray, r_w: np.ndarray, r_m: np.ndarray,
                     s0: float | np.ndarray, symmetric: bool | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`reduced_readout` for a stack of coefficients (one batched solve).

    ``Cs`` has shape ``(..., p, q)``; ``A, r_w, r_m, s0`` are either one model's or stacks
    broadcasting with ``Cs``. ``x`` comes from the push-through identity
    ``(I - A^T C^T)^{-1} r_w = r_w + A^T (I - A C)^{-T} C^T r_w``, so both factors need
    the one matrix ``I - A C``. With ``symmetric`` (a symmetric ``A``, ``r_w = r_m`` and
    symmetric ``C``, as along every large-N flow; detected when ``None`` for one model)
    ``x = y`` and one solve suffices.

    Returns
    -------
    z : (...) ndarray
    x : (..., p) ndarray
    y : (..., q) ndarray

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> A, C = 0.3 * rng.standard_normal((2, 3, 3)); r_w, r_m = rng.standard_normal((2, 3))
    >>> z, x, y = reduced_readouts(np.stack([C, 2 * C]), A, r_w, r_m, 0.5)
    >>> z1, x1, y1 = reduced_readout(2 * C, A, r_w, r_m, 0.5)
    >>> bool(np.isclose(z[1], z1) and np.allclose(x[1], x1) and np.allclose(y[1], y1))
    True
    """
    Cs = np.asarray(Cs, dtype=float)
    p, q = Cs.shape[-2:]
    lead = Cs.shape[:-2]
    if symmetric is None:
        symmetric = (np.ndim(A) == 2 and np.ndim(r_w) == 1 and p == q
                     and np.array_equal(A, np.transpose(A)) and np.array_equal(r_w, r_m)
                     and np.array_equal(Cs, np.swapaxes(Cs, -1, -2)))
    r_w = np.broadcast_to(r_w, lead + (p,))
    r_m = np.broadcast_to(r_m, lead + (q,))
    if p == 0 or q == 0:
        return np.broadcast_to(np.asarray(s0, dtype=float), lead).copy(), r_w.copy(), r_m.copy()
    M = np.eye(q) - A @ Cs
    Ctr = np.einsum("...pq,...p->...q", Cs, r_w)
    if symmetric:
        y = np.linalg.solve(M, r_m[..., None])[..., 0]
        return s0 + np.einsum("...q,...q->...", Ctr, y), y, y
    sol = np.linalg.solve(np.stack([M, np.swapaxes(M, -1, -2)]),
                          np.stack([np.broadcast_to(r_m, Ctr.shape), Ctr])[..., None])[..., 0]
    y, u = sol[0], sol[1]
    x = r_w + np.einsum("...qp,...q->...p", np.broadcast_to(A, lead + A.shape[-2:]), u)
    z = s0 + np.einsum("...q,...q->...", Ctr, y)
    return z, x, y


def stability_sign(C: np.ndarray, A: np.ndarray) -> float:
    """Sign of ``det(I - W) / det(I - W0) = det(I_q - A C)``.

    A change of sign means that an odd number of real eigenvalues of ``W`` crossed 1.

    Examples
    --------
    >>> import numpy as np
    >>> stability_sign(np.array([[2.0]]), np.array([[1.0]]))
    -1.0
    """
    q = A.shape[0]
    if C.size == 0:
        return 1.0
    sign, _ = np.linalg.slogdet(np.eye(q) - A @ C)
    return float(sign)
