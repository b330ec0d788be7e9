"""``theory.predict``: one entry point, four methods, one result type.

========== ==============================================================================
method     what it computes
========== ==============================================================================
series     perturbative series in ``tau_tilde = beta^2 tau`` to ``order`` (large N)
ode        large-N reduced ODE on Krylov chains of ``depth`` vectors (auto-converged)
instance   the same ODE with the Gram entries of a concrete ``network`` (any N)
exact_g0   closed form at ``g = 0`` (large N), or the exact 2 x 2 flow of a ``network``
========== ==============================================================================
"""

from __future__ import annotations

import numpy as np

from .._checks import check_finite_scalar, check_int, check_range, check_type
from ..network import Network
from .exact_g0 import g0_trajectory
from .large_n import LAMBDA_MAX, large_n_model
from .reduced import ReducedModel, StepLimitError, integrate
from .result import Prediction
from .series import (MAX_ORDER, delta_chain_series, outlier_series_g0, readout_series,
                     singular_value_series)
from .series_radius import series_radius
from .traces import beta_of

__all__ = ["predict", "METHODS", "converged_model"]

METHODS = ("series", "ode", "instance", "exact_g0")
_DEPTHS = (4, 6, 8, 12, 16, 24, 32)


def _check_tau(tau) -> np.ndarray:
    try:
        t = np.atleast_1d(np.asarray(tau, dtype=float))
    except (TypeError, ValueError):
        raise ValueError("tau must be an array of real numbers") from None
    if t.ndim != 1 or t.size == 0:
        raise ValueError("tau must be a non-empty 1-D array")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("tau must be finite and >= 0")
    if np.any(np.diff(t) < 0):
        raise ValueError("tau must be non-decreasing")
    return t


def _sv(C: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros(k)
    if C.size:
        s = np.linalg.svd(C, compute_uv=False)[:k]
        out[: s.size] = s
    return out


def _outliers_from_model(model: ReducedModel, Cs: np.ndarray) -> np.ndarray:
    out = np.full(len(Cs), np.nan)
    if model.outlier_matrix is not None:
        for i, C in enumerate(Cs):
            r = model.outliers(C, lam_max=LAMBDA_MAX)
            if r.size:
                out[i] = r[0]
        return out
    # instance: eigenvalues of the dense W = W0 + U C V^T
    for i, C in enumerate(Cs):
        ev = np.linalg.eigvals(model.weights(C))
        real = ev[np.abs(ev.imag) <= 1e-9 * max(1.0, np.abs(ev).max())].real
        real = real[real > model.bulk_radius]
        if real.size:
            out[i] = real.max()
    return out


def converged_model(build, target: float, tau: np.ndarray, depth: int | None, tol: float,
                    rtol: float, atol: float = 1e-14):
    """Integrate ``build(depth)`` at increasing depths until the readout and the top
    singular value change by less than ``tol`` (relative); returns ``(model, trajectory,
    depth, change)``. ``change`` is 0 when the chains closed (the subspace stopped growing,
    so the reduction is exact), and infinite when no depth could be integrated.

    A depth whose integration exceeds its step budget (:class:`.reduced.StepLimitError`,
    deep stiff chains near ``g = 1``) ends the search: the previous depth is returned with
    its last change, so the caller reports it as unconverged instead of hanging.
    """
    if depth is not None:
        model = build(depth)
        return model, integrate(model, target, tau, rtol=rtol, atol=atol), depth, float("nan")
    prev = None
    scale = max(abs(target), 1e-300)
    change = float("inf")
    best = None
    for d in _DEPTHS:
        model = build(d)
        try:
            traj = integrate(model, target, tau, rtol=rtol, atol=atol)
        except StepLimitError:
            if best is None:
                raise
            return (*best, change)
        s1 = np.array([_sv(C, 1)[0] for C in traj.C])
        if prev is not None:
            dz = np.max(np.abs(traj.readout - prev[0])) / scale
            ds = np.max(np.abs(s1 - prev[1])) / max(np.max(np.abs(s1)), 1e-300)
            change = max(dz, ds)
            if model.shape == prev[2]:
                return model, traj, d, 0.0
            if change < tol:
                return model, traj, d, change
        prev = (traj.readout, s1, model.shape)
        best = (model, traj, d)
    return model, traj, d, change


def predict(g: float | None = None, target: float = 1.0, tau=None, method: str = "ode", *,
            order: int = 3, depth: int | None = None, network: Network | None = None,
            n_singular: int = 2, outlier: bool | None = None, grad_norm: bool = True,
            input_amp: float = 1.0, tol: float = 1e-9, rtol: float = 1e-11,
            atol: float = 1e-14) -> Prediction:
    """Theory of the fixed-point gradient flow along the learning time ``tau``.

    Parameters
    ----------
    g : float, optional
        Strength of the random initial connectivity, ``0 <= g < 1`` (large-N methods);
        taken from ``network`` for ``method="instance"``.
    target : float
        Target ``z_hat``.
    tau : array_like
        Non-decreasing learning times ``>= 0`` (``lr * epoch``, as in :func:`linrnn_theory.train`).
    method : {"series", "ode", "instance", "exact_g0"}
    order : int
        Series order (``3 <= order <= MAX_ORDER``; the readout alone accepts ``>= 1``).
    depth : int, optional
        Chain depth of the reduced ODE; by default increased until converged to ``tol``.
    network : Network, optional
        Required for ``"instance"``; optional for ``"exact_g0"`` (then its random overlap
        ``w^T m`` is included exactly; ``W0`` must be zero).
    n_singular : int
        Number of singular values of ``Delta W`` to return (series: at most 2).
    outlier : bool, optional
        Compute the outlier eigenvalue. Default: yes, except for ``"instance"`` with
        ``N * len(tau) > 20000`` (there every time point costs a dense eigendecomposition;
        pass ``True`` to force it).
    grad_norm : bool
        Compute the gradient norm (set False to save time).
    input_amp : float
        Input amplitude ``c`` (the flow with ``c`` equals the unit flow with target
        ``z_hat / c`` at time ``c^2 tau``, readout scaled by ``c``).
    tol : float
        Convergence tolerance of the automatic depth.
    rtol, atol : float
        Relative and absolute tolerances of the ODE integrator (``atol`` bounds the relative
        accuracy of tiny quantities such as ``sigma_2 = O(tau^3)`` at small ``tau``).

    Returns
    -------
    Prediction

    Raises
    ------
    TypeError
        If ``network`` is not a :class:`~linrnn_theory.Network`.
    ValueError
        For invalid arguments (the message names the argument and the allowed range),
        ``network`` given to a large-N method, ``g`` disagreeing with ``network.g`` for
        ``"instance"``, or ``n_singular > 2`` for the series.

    Examples
    --------
    >>> import numpy as np
    >>> from linrnn_theory import theory
    >>> taus = np.linspace(0, 0.5, 6)
    >>> s = theory.predict(g=0.6, target=1.0, tau=taus, method="series", order=3)
    >>> o = theory.predict(g=0.6, target=1.0, tau=taus, method="ode")
    >>> bool(np.max(np.abs(s.readout[:2] - o.readout[:2])) < 1e-2)
    True
    >>> o.singular_values.shape
    (6, 2)
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    target = check_finite_scalar("target", target)
    if tau is None:
        raise ValueError("tau must be given (an array of learning times)")
    tau = _check_tau(tau)
    n_singular = check_int("n_singular", n_singular, minimum=1)
    c = check_finite_scalar("input_amp", input_amp)
    if c == 0:
        raise ValueError("input_amp must be non-zero")
    if network is not None:
        check_type("network", network, Network)
    if method == "instance":
        if network is None:
            raise ValueError("network is required for method='instance'")
        if g is not None and (network.g is None or
                              not np.isclose(float(g), network.g, rtol=1e-12, atol=0.0)):
            raise ValueError(f"g = {g} disagrees with network.g = {network.g}; with "
                             "method='instance' g is taken from the network: omit g")
        g_val = network.g
    elif method == "exact_g0":
        if g not in (None, 0, 0.0):
            raise ValueError(f"g must be 0 for method='exact_g0', got {g}")
        if network is not None and np.any(network.W0 != 0):
            raise ValueError("network.W0 must be zero for method='exact_g0'")
        g_val = 0.0
    else:
        if network is not None:
            raise ValueError(f"network is not used by method={method!r} (large N); omit it "
                             "or use method='instance'")
        if g is None:
            raise ValueError("g is required for the large-N methods")
        g_val = check_range("g", g, 0.0, 1.0, hi_open=True)
    zt, tt = target / c, tau * c * c          # unit-amplitude problem
    params = {"g": g_val, "target": target, "input_amp": c, "method": method}
    b = beta_of(g_val) if g_val is not None and g_val < 1 else float("nan")
    tau_tilde = tau * b * b if method != "instance" else tau.copy()
    status, message = "ok", ""

    if outlier is None:
        outlier = True if method != "instance" else None
    if method == "series":
        order = check_int("order", order, minimum=1)
        if order > MAX_ORDER:
            raise ValueError(f"order must lie in [1, {MAX_ORDER}], got {order}")
        params["order"] = order
        if n_singular > 2:
            raise ValueError(f"n_singular must be <= 2 for method='series' (the series gives "
                             f"sigma_1 and sigma_2), got {n_singular}")
        ttu = tt * b * b
        z = readout_series(g_val, zt, ttu, order)
        sv = np.full((tau.size, min(n_singular, 2)), np.nan)
        if order >= 3:
            sv = singular_value_series(g_val, zt, ttu, order)[:, :n_singular]
        else:
            message = "singular values need order >= 3"
        lam = np.full(tau.size, np.nan)
        if outlier:
            if g_val == 0.0:
                lam = outlier_series_g0(zt, tt, order)
            else:
                lam = _series_outlier(g_val, zt, tt, order)
        gn = np.full(tau.size, np.nan)
        radius = series_radius(g_val, zt)
        params["radius_tau_tilde"] = radius / (c * c)
        beyond = int(np.count_nonzero(ttu >= radius))
        if beyond:
            status = "beyond_radius"
            message = (f"the series in tau_tilde converges only for tau_tilde < R = "
                       f"{params['radius_tau_tilde']:.3g}; {beyond} of {tau.size} time points "
                       "lie beyond it, where no order is accurate: use method='ode'. "
                       + message).strip()
        return Prediction(tau=tau, tau_tilde=tau_tilde, readout=c * z,
                          loss=0.5 * (target - c * z) ** 2, singular_values=sv,
                          outlier_eigenvalue=lam, grad_norm=gn, method=method, params=params,
                          status=status, message=message)

    if method == "exact_g0" and network is None:
        z, sv2, lam, gn = g0_trajectory(zt, tt)
        sv = np.zeros((tau.size, n_singular))
        sv[:, : min(2, n_singular)] = sv2[:, :n_singular]
        return Prediction(tau=tau, tau_tilde=tau_tilde, readout=c * z,
                          loss=0.5 * (target - c * z) ** 2, singular_values=sv,
                          outlier_eigenvalue=lam if outlier else np.full(tau.size, np.nan),
                          grad_norm=c * c * gn if grad_norm else np.full(tau.size, np.nan),
                          method=method, params=params)

    if method in ("instance", "exact_g0"):
        from .instance import instance_model

        def build(d):
            return instance_model(network, d)
        params["N"] = network.N
        if method == "exact_g0":
            depth = 2
    else:
        def build(d):
            return large_n_model(g_val, d)
    if outlier is None:
        outlier = method != "instance" or network.N * tau.size <= 20000
        if not outlier:
            message = (f"outlier eigenvalue not computed (N * len(tau) = {network.N * tau.size}"
                       " > 20000 dense eigendecompositions); pass outlier=True to force it")
    try:
        model, traj, used, change = converged_model(build, zt, tt, depth, tol, rtol, atol)
    except StepLimitError as exc:
        raise StepLimitError(f"g = {g_val}: {exc}; use a smaller g, or a network with "
                             "method='instance'") from None
    params.update(depth=used, depth_change=change, shape=model.shape)
    if depth is None and not change < tol and method != "exact_g0":
        status = "unconverged"
        message = (f"depth {used}: last change {change:.2e} >= tol {tol:.1e}. " + message).strip()
    sv = np.array([_sv(C, n_singular) for C in traj.C])
    lam = _outliers_from_model(model, traj.C) if outlier else np.full(tau.size, np.nan)
    gn = np.array([model.grad_norm(C, zt) for C in traj.C]) if grad_norm \
        else np.full(tau.size, np.nan)
    return Prediction(tau=tau, tau_tilde=tau_tilde, readout=c * traj.readout,
                      loss=0.5 * (target - c * traj.readout) ** 2, singular_values=sv,
                      outlier_eigenvalue=lam, grad_norm=c * c * gn, method=method,
                      params=params, status=status, message=message)


def _series_outlier(g: float, target: float, tau: np.ndarray, order: int) -> np.ndarray:
    """Outlier of ``W`` for the Taylor polynomial of ``Delta W`` (large-N secular equation)."""
    Cs = delta_chain_series(g, target, order)
    model = large_n_model(g, order + 1)
    Tinv = model.info["T_inv"]
    out = np.full(tau.size, np.nan)
    for i, t in enumerate(tau):
        Ct = sum(Ck * t ** k for k, Ck in enumerate(Cs))
        r = model.outliers(Tinv @ Ct @ Tinv.T, lam_max=LAMBDA_MAX)
        if r.size:
            out[i] = r[0]
    return out
