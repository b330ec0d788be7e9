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

__all__ = ["reduced_readout", "stability_sign"]


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
