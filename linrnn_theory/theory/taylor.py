r"""Taylor-series integration of the reduced gradient flow (:mod:`.reduced`).

The flow ``dC/dtau = (z_hat - z) x y^T`` with ``y = r_m + A C y``, ``x = r_w + A^T C^T x``
and ``z = s0 + r_w^T C y`` has a Taylor series in ``h = tau - tau_0`` whose coefficients
follow from those of lower order (automatic differentiation of the recursion):

.. math::

    (I - A C_0)\, y_k = \delta_{k0} r_m + A \sum_{j=1}^{k} C_j y_{k-j}, \qquad
    (I - A^T C_0^T)\, x_k = \delta_{k0} r_w + A^T \sum_{j=1}^{k} C_j^T x_{k-j},

    z_k = \delta_{k0} s_0 + r_w^T \sum_{j=0}^{k} C_j y_{k-j}, \qquad
    e_k = \delta_{k0} \hat z - z_k, \qquad
    (k+1)\, C_{k+1} = \sum_{b=0}^{k} u_b\, y_{k-b}^T,\quad u_b = \sum_{a=0}^{b} e_a x_{b-a}.

One step computes ``ORDER + 1`` coefficients (one inverse of ``I - A C_0`` per step, a
few small matrix products per order, all models of a stack at once) and advances by the
step ``h`` at which the last two coefficients fall below the local tolerance (the
estimate of Jorba and Zou): the series converges in a disk set by the singularities of
the flow, so high order buys long steps, and the ~1e3 right-hand side evaluations of an
explicit Runge-Kutta run become some twenty steps. The polynomials of the steps are the
dense output.

A symmetric ``A`` with ``r_w = r_m`` (every large-N model) keeps ``C`` symmetric and
``x = y``, which halves the work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ORDER", "TaylorDense", "taylor_flow"]

#: Order of the Taylor polynomial of one step.
ORDER = 30
_EPS4 = 4 * np.finfo(float).eps


@dataclass
class TaylorDense:
    """Piecewise-polynomial dense output of a Taylor run, on the real coordinates.

    Attributes
    ----------
    ts : (n_steps + 1,) ndarray
        Step boundaries (the first is 0).
    coef : (n_steps, ORDER + 1, n) ndarray
        Coefficients of each step in powers of ``(t - ts[i]) / scale[i]``.
    scale : (n_steps,) ndarray
        Time scale of each step's polynomial.

    Calling it with a float ``t`` returns the state ``(n,)``; with an array of shape
    ``(m,)``, the states ``(n, m)`` (as the dense output of :func:`scipy.integrate.solve_ivp`).
    Times outside ``[ts[0], ts[-1]]`` are evaluated on the nearest step's polynomial.

    Examples
    --------
    >>> d = TaylorDense(np.array([0.0, 1.0]), np.array([[[1.0], [2.0]]]), np.ones(1))
    >>> float(d(0.5)[0]), d(np.array([0.0, 1.0])).shape           # 1 + 2 t
    (2.0, (1, 2))
    """

    ts: np.ndarray
    coef: np.ndarray
    scale: np.ndarray

    def __call__(self, t) -> np.ndarray:
        tt = np.asarray(t, dtype=float)
        flat = tt.reshape(-1)
        idx = np.clip(np.searchsorted(self.ts, flat, side="right") - 1, 0,
                      self.coef.shape[0] - 1)
        out = np.empty((self.coef.shape[2], flat.size))
        powers = np.arange(self.coef.shape[1])
        for i in np.unique(idx):
            sel = idx == i
            u = (flat[sel] - self.ts[i]) / self.scale[i]
            out[:, sel] = self.coef[i].T @ (u[None, :] ** powers[:, None])
        return out[:, 0] if tt.ndim == 0 else out


def _coefficients(C0: np.ndarray, A: np.ndarray, r_w: np.ndarray, r_m: np.ndarray,
                  s0: np.ndarray, targets: np.ndarray, symmetric: bool, order: int,
                  scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Taylor coefficients of ``C`` and ``e = z_hat - z`` at ``C0`` for a stack of models,
    in the scaled time ``u = (tau - tau_0) / scale`` (coefficients of order 1 when
    ``scale`` is near the step: no overflow however fast the flow).

    Parameters
    ----------
    C0 : (K, P, Q) ndarray
    A : (K, Q, P) ndarray
    r_w : (K, P) ndarray
    r_m : (K, Q) ndarray
    s0, targets : (K,) ndarray
    symmetric : bool
        ``A`` symmetric, ``r_w = r_m`` and ``C0`` symmetric (then ``x = y``).
    order : int
    scale : float

    Returns
    -------
    Cc : (K, P, order + 1, Q) ndarray
        ``Cc[:, :, k, :]`` is the coefficient of ``u^k`` of ``C``.
    ec : (K, order + 1) ndarray
        Coefficients of ``e``.
    """
    K, P, Q = C0.shape
    n = order
    eye = np.eye(Q)
    Minv = np.linalg.inv(eye - A @ C0)                        # (K, Q, Q)
    By = Minv @ A                                             # (K, Q, P)
    # flat layouts: the sums over orders are slices, without reshapes in the loop
    Cf = np.zeros((K, P, (n + 1) * Q))                        # C_k in columns kQ:(k+1)Q
    Cf[:, :, :Q] = C0
    Yf = np.zeros((K, (n + 1) * Q, 1))                        # y_k in rows (n-k)Q:(n-k+1)Q
    Yf[:, n * Q:, :] = Minv @ r_m[:, :, None]
    Yv = Yf.reshape(K, n + 1, Q)
    if symmetric:
        CTf, Xf, Xv, Bx = Cf, Yf, Yv, None
    else:
        CTf = np.zeros((K, Q, (n + 1) * P))
        CTf[:, :, :P] = np.swapaxes(C0, 1, 2)
        Ninv = np.linalg.inv(np.eye(P) - np.swapaxes(A, 1, 2) @ np.swapaxes(C0, 1, 2))
        Bx = Ninv @ np.swapaxes(A, 1, 2)                      # (K, P, Q)
        Xf = np.zeros((K, (n + 1) * P, 1))
        Xf[:, n * P:, :] = Ninv @ r_w[:, :, None]
        Xv = Xf.reshape(K, n + 1, P)
    ec = np.zeros((K, n + 1))
    U = np.zeros((K, P, n + 1))                               # u_k = sum_a e_a x_{k-a}
    w0 = (np.swapaxes(C0, 1, 2) @ r_w[:, :, None])[:, :, 0]   # C0^T r_w
    ec[:, 0] = targets - s0 - (w0 * Yv[:, n, :]).sum(axis=1)
    # for k >= 1, with s_k = sum_{j=1}^k C_j y_{k-j}: y_k = By s_k and
    # e_k = -r_w^T (C0 y_k + s_k) = -(By^T w0 + r_w)^T s_k: one product gives both
    Bye = np.concatenate([By, -(np.swapaxes(By, 1, 2) @ w0[:, :, None]
                                + r_w[:, :, None]).transpose(0, 2, 1)], axis=1)
    for k in range(n + 1):
        if k:
            sy = Cf[:, :, Q:(k + 1) * Q] @ Yf[:, (n - k + 1) * Q:, :]          # (K, P, 1)
            ye = Bye @ sy
            Yf[:, (n - k) * Q:(n - k + 1) * Q, :] = ye[:, :Q]
            ec[:, k] = ye[:, Q, 0]
            if not symmetric:
                sx = CTf[:, :, P:(k + 1) * P] @ Xf[:, (n - k + 1) * P:, :]
                Xf[:, (n - k) * P:(n - k + 1) * P, :] = Bx @ sx
            if k == n:
                break
        # (k+1) C_{k+1} = sum_b u_b y_{k-b}^T
        U[:, :, k] = (ec[:, None, :k + 1] @ Xv[:, n - k:, :])[:, 0, :]
        Cn = (U[:, :, :k + 1] @ Yv[:, n - k:, :]) * (scale / (k + 1))
        Cf[:, :, (k + 1) * Q:(k + 2) * Q] = Cn
        if not symmetric:
            CTf[:, :, (k + 1) * P:(k + 2) * P] = np.swapaxes(Cn, 1, 2)
    Cc = Cf.reshape(K, P, n + 1, Q)
    return Cc, ec


def _threshold_roots(ec: np.ndarray, thr: np.ndarray, u: float, xtol: float) -> np.ndarray:
    """Where ``|e(x)| = thr`` in ``[0, u]`` for the polynomials ``e`` of the rows of ``ec``
    (``|e(0)| > thr >= |e(u)|``; ``e`` keeps its sign and ``|e|`` decreases): Newton steps
    kept inside the bracket (a bisection where one leaves it), until the Newton step is
    below ``xtol + 4 eps x``.

    Examples
    --------
    >>> x = _threshold_roots(np.array([[1.0, -1.0]]), np.array([0.25]), 1.0, 1e-16)
    >>> float(x[0])                                  # 1 - x = 0.25
    0.75
    """
    sgn = np.sign(ec[:, 0])
    c = ec * sgn[:, None]
    c[:, 0] -= thr                                     # f = |e| - thr, decreasing
    dc = c[:, 1:] * np.arange(1, c.shape[1])
    a, b = np.zeros(len(c)), np.full(len(c), float(u))
    fb = _horner(c, b)
    x = np.where(fb == 0.0, b, c[:, 0] / (c[:, 0] - fb) * b)   # the secant to start
    for _ in range(100):
        fx = _horner(c, x)
        a = np.where(fx > 0, x, a)
        b = np.where(fx < 0, x, b)
        step = fx / _horner(dc, x)
        done = (fx == 0.0) | (np.abs(step) <= xtol + _EPS4 * np.abs(x))
        nx = x - step
        nx = np.where((nx > a) & (nx < b) & np.isfinite(nx), nx, 0.5 * (a + b))
        x = np.where(done, x, nx)
        if done.all():
            break
    return x


def _horner(c: np.ndarray, h) -> np.ndarray:
    """``sum_k c[..., k] h^k`` along the last axis (``h`` broadcasting with ``c[..., 0]``;
    ``|h|`` of order one, the scaled step, so the powers are harmless)."""
    h = np.asarray(h, dtype=float)
    return (c * h[..., None] ** np.arange(c.shape[-1])).sum(axis=-1)


def taylor_flow(A: np.ndarray, r_w: np.ndarray, r_m: np.ndarray, s0: np.ndarray,
                targets: np.ndarray, flat: np.ndarray, symmetric: bool, t_end: float,
                thr: np.ndarray, rtol: float, atol: float, max_nfev: int,
                order: int = ORDER) -> tuple[TaylorDense, np.ndarray, float, int]:
    """Integrate the flows of a padded stack of models from ``C = 0`` by Taylor steps.

    Each model is integrated until ``|z_hat - z| <= thr`` (its convergence time, located
    to four ulps on its step polynomial; ``|z_hat - z|`` decreases along the flow) and the
    run stops once every model has converged, or at ``t_end``. The step is the largest at
    which the last two coefficients of every model still learning are below
    ``1e-2 (atol + rtol max|C|)``, ``max|C|`` the larger at both ends of the step (a
    local error ~100 times below that of DOP853 at the same tolerances: ~1e-13 relative
    over a whole flow at ``rtol = 1e-11``).

    Parameters
    ----------
    A, r_w, r_m, s0 : ndarray
        The stack of :func:`.reduced._stack` (shapes ``(K, Q, P)``, ``(K, P)``, ``(K, Q)``,
        ``(K,)``).
    targets, thr : (K,) ndarray
        Targets and convergence thresholds.
    flat : ndarray
        Positions of the real coordinates in the padded ``(K, P, Q)`` stack.
    symmetric : bool
        Every model symmetric (``x = y``).
    t_end : float
        End of the integration (``> 0``).
    rtol, atol : float
        Tolerances (see above).
    max_nfev : int
        Budget of Taylor coefficients (each costs about one right-hand side evaluation).
    order : int
        Order of the step polynomials.

    Returns
    -------
    dense : TaylorDense
        The real coordinates along the run (each model valid up to its convergence time).
    t_done : (K,) ndarray
        Convergence times (``inf`` where not converged by ``t_end``).
    t_stop : float
        Where the run stopped.
    nfev : int
        Taylor coefficients computed, ``(order + 1)`` per step and model stack.

    Raises
    ------
    StepLimitError
        If the run needs more than ``max_nfev`` coefficients.

    Examples
    --------
    >>> from linrnn_theory.theory.large_n import large_n_model
    >>> from linrnn_theory.theory.reduced import _stack
    >>> shapes, P, Q, A, r_w, r_m, s0, flat, sym = _stack([large_n_model(0.5, 6)])
    >>> dense, t_done, t_stop, nfev = taylor_flow(A, r_w, r_m, s0, np.array([1.0]), flat,
    ...                                           sym, 10.0, np.array([1e-10]), 1e-11,
    ...                                           1e-14, 20000)
    >>> C = dense(t_stop).reshape(P, Q)
    >>> bool(abs(1.0 - large_n_model(0.5, 6).readout(C)) <= 1.0001e-10), bool(t_stop < 10)
    (True, True)
    """
    from .reduced import StepLimitError

    K = targets.size
    P, Q = r_w.shape[1], r_m.shape[1]
    C0 = np.zeros((K, P, Q))
    t = 0.0
    t_done = np.full(K, np.inf)
    active = np.ones(K, dtype=bool)
    ts, coefs, scales = [0.0], [], []
    nfev = 0
    # time scale of the first step: the initial rate |r_w|^2 |r_m|^2 (1 + |z_hat|)
    rate = np.sum(r_w * r_w, axis=1) * np.sum(r_m * r_m, axis=1) * (1.0 + np.abs(targets))
    scale = 1.0 / max(float(np.max(rate)), 1e-300)
    # coefficients beyond float range (a step far beyond the radius) and zero norms of
    # held models are checked or harmless: no warnings from them
    powers = np.arange(order + 1)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        while t < t_end and active.any():
            nfev += order + 1
            if nfev > max_nfev:
                raise StepLimitError(f"the reduced ODE (shape {P} x {Q}) needed more than "
                                     f"{max_nfev} right-hand side evaluations: the flow is too "
                                     "stiff to integrate (deep chains near g = 1)")
            Cc, ec = _coefficients(C0, A, r_w, r_m, s0, targets, symmetric, order, scale)
            nrm = np.abs(Cc).max(axis=(1, 3))                      # (K, order + 1)
            if not (np.all(np.isfinite(nrm)) and np.all(np.isfinite(ec))):
                scale *= 1e-3                                      # far beyond the radius
                continue
            if symmetric:                   # exactly symmetric, as C is (round-off apart)
                Cc = 0.5 * (Cc + Cc.transpose(0, 3, 2, 1))
            Cc[~active, :, 1:, :] = 0.0                            # converged: held
            ec[~active, 1:] = 0.0
            nrm[~active, 1:] = 0.0
            # tolerance relative to the larger of |C| at both ends of the step (as DOP853's
            # error scale), the end bounded by sum_k |C_k| u^k: a few fixed-point passes
            size = nrm[:, 0]
            for _ in range(3):
                tol = 1e-2 * (atol + rtol * size)
                u_k = np.minimum((tol / nrm[:, order - 1]) ** (1.0 / (order - 1)),
                                 (tol / nrm[:, order]) ** (1.0 / order))
                size = np.maximum(nrm[:, 0], (nrm * np.minimum(u_k, 1e3)[:, None]
                                              ** powers).sum(axis=1))
            u = float(min(np.min(u_k[active]), (t_end - t) / scale))
            # convergence inside the step: |e| decreases, so one sign change of |e| - thr
            e_end = _horner(ec, u)
            cross = active & (np.abs(e_end) - thr <= 0)
            if cross.any():
                rows = np.nonzero(cross)[0]
                x = _threshold_roots(ec[rows], thr[rows], u, _EPS4 * (t + scale * u) / scale)
                t_done[rows] = t + scale * x
                active[rows] = False
            coefs.append(np.moveaxis(Cc, 2, 0).reshape(order + 1, -1)[:, flat])
            scales.append(scale)
            C0 = np.einsum("kpjq,j->kpq", Cc, u ** powers)
            t = t + scale * u
            ts.append(t)
            scale = scale * u               # the next step is about as long as this one
    t_stop = float(np.max(t_done)) if not active.any() else t
    dense = TaylorDense(np.array(ts), np.array(coefs), np.array(scales))
    return dense, t_done, t_stop, nfev
