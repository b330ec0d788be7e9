r"""Scalar predictions along the learning trajectory (docs/paper.md section 4, Fig. 4).

All quantities refer to the fixed-point gradient flow at large N and are evaluated at the
*learning time* ``tau_c``: the first time the loss falls below ``rel_loss * L0``
(``L0 = z_hat^2 / 2``; the paper uses ``rel_loss = 0.05``).

Small-target limits (``z_hat -> 0``, the flow is linear: ``z = z_hat (1 - exp(-beta^2 tau))``,
``Delta W = (int e) R^T w (R m)^T``), with ``r = rel_loss`` and ``beta = 1/(1 - g^2)``:

* ``learning_time = ln(1/r) / (2 beta^2)``
* ``dw_norm = z_hat (1 - sqrt(r)) / beta``
* ``mean_gradient_norm = 2 z_hat beta (1 - sqrt(r)) / ln(1/r)``
* ``shuffle_loss = (1 - (1 - sqrt(r)) / beta^2)^2``  (relative to ``L0``; an independent
  ``W0'`` acts as ``W0' -> 0`` inside the resolvent, so only ``Delta W`` remains)

(:func:`small_target_limits`).

With ``method="ode"`` at large N the state at the learning time is that of the reduced
ODE (Taylor steps, :func:`.reduced.integrate_many`), except at ``g = 0``, where it comes
from the exact closed form (:func:`.exact_g0.at_loss`: a root of the readout in the angle
``theta`` and one quadrature; the reduced ODE gives the same values within ``1e-10``
relative, tested).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

from .._checks import check_finite_scalar, check_int, check_range
from ..lowrank import reduced_readout
from . import _series_coefficients as gen
from .large_n import large_n_model
from .exact_g0 import at_loss, closed_form
from .methods import _DEPTH_GROUPS, _group_models, check_tau, converged_models, solve
from .reduced import ReducedModel
from .series import MAX_ORDER
from .traces import beta_of

__all__ = ["learning_time", "dw_norm", "mean_gradient_norm", "shuffle_loss", "all_observables",
           "outlier_eigenvalue", "small_target_limits", "at_learning_time", "prefetch"]

_METHODS = ("series", "ode")


def _args(g, target, rel_loss, method, order):
    g = check_range("g", g, 0.0, 1.0, hi_open=True)
    target = check_finite_scalar("target", target)
    if target == 0:
        raise ValueError("target must be non-zero")
    rel_loss = check_range("rel_loss", rel_loss, 0.0, 1.0, lo_open=True, hi_open=True)
    if method not in _METHODS:
        raise ValueError(f"method must be 'series' or 'ode', got {method!r}")
    if method == "series" and not 3 <= int(order) <= MAX_ORDER:
        raise ValueError(f"order must lie in [3, {MAX_ORDER}], got {order}")
    return g, target, rel_loss


def small_target_limits(g: float, rel_loss: float = 0.05) -> dict:
    """Closed-form ``z_hat -> 0`` limits (per unit target where they scale with it).

    Returns
    -------
    dict with ``learning_time``, ``dw_norm_per_target``, ``mean_gradient_norm_per_target``,
    ``shuffle_loss``.

    Examples
    --------
    >>> d = small_target_limits(0.0)
    >>> round(float(d["learning_time"]), 6), round(float(d["shuffle_loss"]), 6)
    (1.497866, 0.05)
    """
    b = beta_of(g)
    r = rel_loss
    ln = np.log(1.0 / r)
    return {"learning_time": ln / (2 * b * b),
            "dw_norm_per_target": (1 - np.sqrt(r)) / b,
            "mean_gradient_norm_per_target": 2 * b * (1 - np.sqrt(r)) / ln,
            "shuffle_loss": (1 - (1 - np.sqrt(r)) / b ** 2) ** 2}


def _series_eval(coeffs, x, order):
    return sum(coeffs[k] * x ** k for k in range(order + 1))


def _series_time(g, target, rel_loss, order) -> float:
    b = beta_of(g)
    c = gen.readout_coefficients(target, b)
    goal = np.sqrt(2 * rel_loss * 0.5 * target ** 2)      # |z_hat - z| at the threshold

    def f(x):
        return abs(target - _series_eval(c, x, order)) - goal

    xs = np.linspace(0.0, 20.0, 4001)
    vals = np.array([f(x) for x in xs])
    idx = np.nonzero(vals <= 0)[0]
    if idx.size == 0:
        return float("nan")
    i = idx[0]
    xt = brentq(f, xs[i - 1], xs[i], xtol=1e-14) if i > 0 else 0.0
    return xt / b ** 2


@dataclass(frozen=True)
class _State:
    """The reduced-ODE state at the learning time (cached; ``C`` is read-only)."""

    tau: float
    C: np.ndarray
    grad_integral: float
    model: ReducedModel
    depth: int

    def as_dict(self) -> dict[str, Any]:
        """A new dict (a shallow copy of the model, so rebinding its fields is harmless)."""
        return {"tau": self.tau, "C": self.C, "grad_integral": self.grad_integral,
                "model": dataclasses.replace(self.model, info=dict(self.model.info)),
                "depth": self.depth}


#: Large-N states by ``(g, target, rel_loss, tol)``, least recently used dropped first.
_STATES: OrderedDict[tuple, _State] = OrderedDict()
_STATES_SIZE = 8192


def at_learning_time(g: float, target: float, rel_loss: float = 0.05, tol: float = 1e-9
                     ) -> dict[str, Any]:
    """Reduced-ODE state at the learning time (cached per arguments).

    Returns
    -------
    dict with ``tau`` (learning time), ``C`` (reduced ``Delta W``, read-only),
    ``grad_integral`` (``int_0^tau |dL/dW|``), ``model`` and ``depth``; a new dict on every
    call, so changing it does not change the cache.

    Examples
    --------
    >>> st = at_learning_time(0.5, 1.0)
    >>> st["C"].flags.writeable, st["tau"] == learning_time(0.5, 1.0)
    (False, True)
    """
    g, target, rel_loss = _args(g, target, rel_loss, "ode", 3)
    return _large_n_states(g, [target], rel_loss, float(tol))[0].as_dict()


def prefetch(g: Any, target: Any, rel_loss: float = 0.05, input_amp: float = 1.0,
             tol: float = 1e-9) -> None:
    """Compute (and cache) the large-N states at the learning time for every pair of
    ``broadcast(g, target)``, gain by gain (the reduced models of a gain are built once
    and serve all its targets; each target takes the route of a single call, so its
    values are those of the single call); the observables then read them from the cache.
    :func:`.grid.broadcast` and :func:`.grid.phase_map` call it.

    Examples
    --------
    >>> prefetch([0.3, 0.6], [[0.5], [1.0]])
    >>> bool(learning_time(0.3, 1.0) > learning_time(0.6, 1.0))
    True
    """
    c = check_finite_scalar("input_amp", input_amp)
    if c == 0:
        raise ValueError("input_amp must be non-zero")
    G, Z = np.broadcast_arrays(np.asarray(g, dtype=float), np.asarray(target, dtype=float))
    pairs: dict[float, list[float]] = {}
    for gv, zv in zip(G.ravel(), Z.ravel()):
        gg, t, r = _args(float(gv), float(zv) / c, rel_loss, "ode", 3)
        pairs.setdefault(gg, []).append(t)
    for gg, ts in pairs.items():
        _large_n_states(gg, ts, r, float(tol))


def _large_n_states(g: float, targets: Sequence[float], rel_loss: float, tol: float
                    ) -> list[_State]:
    """The cached states of ``(g, target)`` for each target; the missing ones in one run."""
    keys = [(g, float(t), rel_loss, tol) for t in targets]
    missing = sorted({k[1] for k in keys if k not in _STATES})
    if missing:
        build = lambda d: large_n_model(g, d)  # noqa: E731
        # each target by the route of a single call (the same floats as that call, and
        # faster than one run of all: the Taylor step of a stack is that of its slowest
        # flow); the reduced models of the gain are built once (:func:`.large_n_model`)
        for t in missing:
            _STATES[(g, t, rel_loss, tol)] = _g0_state(build, t, rel_loss) if g == 0.0 \
                else _flow_states(build, [t], rel_loss, tol, "taylor")[0]
        while len(_STATES) > _STATES_SIZE:
            _STATES.popitem(last=False)
    out = []
    for k in keys:
        _STATES.move_to_end(k)
        out.append(_STATES[k])
    return out


def _g0_state(build: Callable[[int], ReducedModel], target: float, rel_loss: float
              ) -> _State:
    """The state at the learning time at ``g = 0`` from the closed form
    (:func:`.exact_g0.at_loss`: a root and a quadrature instead of the flow; within
    ``1e-10`` relative of the reduced ODE, tested). The chains close at two vectors there
    (``v = (w, m)``, ``u = (m, w)``: ``A`` swaps them), so the depth search of the ODE
    route stops at the first depth that repeats the shape, and ``Delta W = alpha (w w^T +
    m m^T) + gamma w m^T + delta m w^T`` is ``C = [[gamma, alpha], [alpha, delta]]``."""
    models, closed = _group_models(build, _DEPTH_GROUPS[0], None)
    depth, model = models[-1]
    if not closed or model.shape != (2, 2):
        raise RuntimeError(f"the g = 0 chains did not close at two vectors "
                           f"(shape {model.shape})")
    th, tau, gi = at_loss(target, rel_loss)
    alpha, gamma, delta = (float(v) for v in closed_form(th)[:3])
    C = np.array([[gamma, alpha], [alpha, delta]])
    C.setflags(write=False)
    return _State(tau=tau, C=C, grad_integral=gi, model=model, depth=int(depth))


def clear_cache() -> None:
    """Forget the cached states (for benchmarks that time cold calls)."""
    _STATES.clear()


def _flow_states(build: Callable[[int], ReducedModel], targets: Sequence[float],
                 rel_loss: float, tol: float, integrator: str = "dop853") -> list[_State]:
    """Integrate ``build(depth)`` (auto-converged depth) to the loss threshold, for each
    target: the depth search of all targets runs as one ODE with the gradient-norm
    output, the threshold is the root of the loss on that dense output (the loss decreases
    along the flow, so the first grid cell below the threshold holds it), and the gradient
    norm is integrated by Gauss-Legendre quadrature on it. A target whose flow has not
    reached the threshold by the end of the grid is integrated further on its own.

    With ``integrator="taylor"`` (:func:`.reduced.integrate_many`) every flow is held
    from its learning time on (``hold = sqrt(rel_loss)``), located on its step polynomial
    during the run: the run ends there, and the depth search compares the flows up to
    it (all an observable at the learning time depends on)."""
    m4 = build(4)
    rate = float(m4.norm_data[0] * m4.norm_data[3])      # |R^T w|^2 |R m|^2 = beta^2 at large N
    guess = np.log(1.0 / rel_loss) / (2 * max(rate, 1e-300))
    grid = np.linspace(0.0, 2.0 * guess, 41)
    held = integrator == "taylor"
    found = converged_models(build, targets, grid, tol, 1e-11, dense=True,
                             integrator=integrator,
                             **({"hold": float(np.sqrt(rel_loss))} if held else {}))
    out = []
    for target, (model, traj, depth, _) in zip(targets, found):
        thr = rel_loss * 0.5 * target ** 2
        below = np.nonzero(0.5 * (target - traj.readout) ** 2 - thr <= 0)[0]
        if held and np.isfinite(traj.t_hold):
            t_c = traj.t_hold
            C = traj.dense(t_c)[0]
            steps = traj.dense.steps
            gi = _grad_integral(model, traj.dense, target,
                                np.append(steps[steps < t_c], t_c))
        elif not held and below.size and below[0] > 0:
            i = int(below[0])

            def f(t: float) -> float:
                return 0.5 * (target - model.readout(traj.dense(t)[0])) ** 2 - thr

            t_c = brentq(f, grid[i - 1], grid[i], xtol=4 * np.finfo(float).eps,
                         rtol=4 * np.finfo(float).eps) if f(grid[i]) < 0 else float(grid[i])
            C = traj.dense(t_c)[0]
            steps = traj.dense.steps
            gi = _grad_integral(model, traj.dense, target,
                                np.append(steps[steps < t_c], t_c))
        else:
            t_c, C, gi = _threshold_run(model, target, thr, guess)
        C = np.array(C, dtype=float)
        C.setflags(write=False)
        out.append(_State(tau=float(t_c), C=C, grad_integral=float(gi), model=model,
                          depth=int(depth)))
    return out


#: Gauss-Legendre nodes per integrator step of the gradient-norm integral (the steps
#: resolve the flow to the integrator's tolerance, and the integrand
#: ``|z_hat - z| |a| |b|`` is a smooth function of the state).
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(10)


def _grad_integral(model: ReducedModel, dense: Callable, target: float,
                   edges: np.ndarray) -> float:
    """``int |dL/dW| dtau`` over ``[edges[0], edges[-1]]`` by Gauss-Legendre quadrature on
    the dense output, interval by interval."""
    lo, hi = edges[:-1, None], edges[1:, None]
    t = (0.5 * (hi - lo) * (_GL_NODES + 1.0) + lo).ravel()
    w = (0.5 * (hi - lo) * _GL_WEIGHTS).ravel()
    return float(w @ model.grad_norms(dense(t)[0], target))


def _threshold_run(model: ReducedModel, target: float, thr: float, guess: float
                   ) -> tuple[float, np.ndarray, float]:
    """Integrate ``model`` alone until the loss falls below ``thr`` (up to ``50 guess``)."""
    p, q = model.shape
    n = p * q

    def rhs(_t, s):
        C = s[:n].reshape(p, q)
        z, x, y = reduced_readout(C, model.A, model.r_w, model.r_m, model.s0)
        return np.append(((target - z) * np.outer(x, y)).ravel(), model.grad_norm(C, target))

    def event(_t, s):
        z = model.readout(s[:n].reshape(p, q))
        return 0.5 * (target - z) ** 2 - thr
    event.terminal = True
    event.direction = -1
    sol = solve_ivp(rhs, (0.0, 50.0 * guess), np.zeros(n + 1), method="DOP853",
                    events=event, rtol=1e-11, atol=1e-14)
    if not sol.t_events[0].size:
        raise RuntimeError("the loss did not reach the threshold (learning did not converge)")
    s = sol.y_events[0][0]
    return float(sol.t_events[0][0]), s[:n].reshape(p, q), float(s[n])


def _network_state(network, target, rel_loss, method, input_amp, tol: float = 1e-9):
    """State at the learning time for the instance reduced model of ``network``."""
    from ..network import Network
    from .instance import instance_model

    if not isinstance(network, Network):
        raise TypeError(f"network must be a Network, got {type(network).__name__}")
    if method != "ode":
        raise ValueError(f"method must be 'ode' with network= (the series is large-N), "
                         f"got {method!r}")
    target = check_finite_scalar("target", target)
    if target == 0:
        raise ValueError("target must be non-zero")
    rel_loss = check_range("rel_loss", rel_loss, 0.0, 1.0, lo_open=True, hi_open=True)
    c = check_finite_scalar("input_amp", input_amp)
    if c == 0:
        raise ValueError("input_amp must be non-zero")
    network.check_stable()
    st = _flow_states(lambda d: instance_model(network, d, input_amp=c, outliers=False),
                      [target], rel_loss,
                      float(tol))[0].as_dict()
    st["target_unit"] = target
    return st


def _dispatch(g, target, rel_loss, method, order, network, input_amp):
    """``(kind, payload)``: the series inputs, or the ODE state at the learning time."""
    if network is not None:
        if g is not None:
            raise ValueError("g cannot be combined with network= (the network fixes W0)")
        return "ode", _network_state(network, target, rel_loss, method, input_amp)
    if g is None:
        raise ValueError("g is required unless network= is given")
    c = check_finite_scalar("input_amp", input_amp)
    if c == 0:
        raise ValueError("input_amp must be non-zero")
    g, t, rel_loss = _args(g, target / c, rel_loss, method, order)
    if method == "series":
        return "series", (g, t, rel_loss, c)
    st = _large_n_states(g, [t], rel_loss, 1e-9)[0].as_dict()
    # the flow with amplitude c is the unit flow with target z_hat / c at time c^2 tau
    st["tau"] = st["tau"] / c ** 2
    st["target_unit"] = t     # grad_integral and C are invariant under the rescaling
    return "ode", st


def _finite_n(name: str, g: Any, target: Any, rel_loss: float, method: str, network: Any,
              input_amp: float, N: int | None, spread: bool) -> float | tuple[float, float]:
    """The finite-N mean (and with ``spread`` the standard deviation) of an observable
    (:func:`.finite_n.observables_spread`), after the checks of its arguments."""
    from .finite_n import observables_spread
    if N is None:
        raise ValueError("spread=True needs the network size N")
    if network is not None or method != "ode" or np.ndim(g) or np.ndim(target):
        raise ValueError("N and spread take scalar g and target, method='ode' and no "
                         "network")
    N = check_int("N", N, minimum=2)
    c = check_finite_scalar("input_amp", input_amp)
    if c == 0:
        raise ValueError("input_amp must be non-zero")
    g, t, rel_loss = _args(g, float(target) / c, rel_loss, method, 3)
    mean, std = observables_spread(g, t * c, N, rel_loss, c)[name]
    return (mean, std) if spread else mean


def _array_call(fn: Callable[..., float], g: Any, target: Any, network: Any,
                **kwargs: Any) -> np.ndarray | None:
    """``grid.broadcast(fn, g, target, **kwargs)`` when ``g`` or ``target`` is an array
    (large N); ``None`` for scalars, which take the scalar path."""
    if network is not None or g is None or (np.ndim(g) == 0 and np.ndim(target) == 0):
        return None
    from .grid import broadcast
    return broadcast(fn, g, target, **kwargs)


def learning_time(g: Any = None, target: Any = 1.0, rel_loss: float = 0.05,
                  method: str = "ode", order: int = 3, *, network=None,
                  input_amp: float = 1.0, N: int | None = None, spread: bool = False
                  ) -> float | np.ndarray | tuple[float, float]:
    """Learning time ``tau_c`` (in ``tau = lr * epochs``) to reach ``loss < rel_loss * L0``.

    Parameters
    ----------
    g : float or array_like, optional
        Gain of the random ``W0`` (large N); must be omitted with ``network``.
    target : float or array_like
        Target ``z_hat`` (non-zero). Arrays of ``g`` and ``target`` broadcast together
        (:func:`.grid.broadcast`; the reduced models of one ``g`` serve all its targets).
    rel_loss : float
        Threshold relative to ``L0 = z_hat^2 / 2``, in ``(0, 1)``.
    method : {"ode", "series"}
        With ``method="series"`` the truncated readout series is solved for the threshold;
        NaN if the truncated series never reaches it. Only ``"ode"`` with ``network``.
        ``"ode"`` at ``g = 0`` (large N) takes the exact closed form of
        :mod:`.exact_g0`, equal to the reduced ODE within ``1e-10`` relative.
    order : int
        Series order.
    network : Network, optional
        Use the instance reduced model of this network (any N) instead of the large-N one.
    input_amp : float
        Input amplitude (non-zero).
    N : int, optional
        Network size: the mean over networks of this size (finite-N theory,
        :func:`.finite_n.observables_spread`; each network's learning time is its first
        loss below ``rel_loss z_hat^2 / 2``, the paper's convention) instead of the large-N
        value. Scalar ``g`` and ``target`` only.
    spread : bool
        With ``N``: return ``(mean, std)`` over networks of size ``N``.

    Returns
    -------
    float, or ndarray of the broadcast shape of ``g`` and ``target``; ``(mean, std)`` with
    ``spread=True``

    Examples
    --------
    >>> mean, std = learning_time(0.6, 1.0, N=1024, spread=True)
    >>> round(mean / learning_time(0.6, 1.0), 3), round(std / mean, 2)
    (1.003, 0.08)
    >>> round(learning_time(0.0, 1e-3), 4)          # small target: ln(20)/2 = 1.49787
    1.4979
    >>> learning_time([0.0, 0.6], [[0.5], [1.0]]).shape
    (2, 2)
    >>> bool(learning_time(0.6, 1.0) < learning_time(0.0, 1.0))
    True
    """
    if N is not None or spread:
        return _finite_n("learning_time", g, target, rel_loss, method, network, input_amp, N,
                         spread)
    arr = _array_call(learning_time, g, target, network, rel_loss=rel_loss, method=method,
                      order=order, input_amp=input_amp)
    if arr is not None:
        return arr
    kind, st = _dispatch(g, target, rel_loss, method, order, network, input_amp)
    if kind == "series":
        g, t, r, c = st
        return _series_time(g, t, r, int(order)) / c ** 2
    return _FROM_STATE["learning_time"](st)


def dw_norm(g: Any = None, target: Any = 1.0, rel_loss: float = 0.05,
            method: str = "ode", order: int = 3, *, network=None,
            input_amp: float = 1.0, N: int | None = None, spread: bool = False
            ) -> float | np.ndarray | tuple[float, float]:
    """Frobenius norm of ``Delta W`` at the learning time.

    The series uses ``sqrt(sigma_1^2 + sigma_2^2)`` (``sigma_3 = O(tau^5)``). Parameters as
    in :func:`learning_time` (with ``N``: at each network's own learning time).

    Returns
    -------
    float, or ndarray of the broadcast shape of ``g`` and ``target``; ``(mean, std)`` with
    ``spread=True``

    Examples
    --------
    >>> round(dw_norm(0.0, 0.01) / 0.01, 3)        # small target: (1 - sqrt(0.05))
    0.776
    >>> mean, std = dw_norm(0.6, 1.0, N=1024, spread=True)
    >>> round(mean / dw_norm(0.6, 1.0), 6), round(std / mean, 2)
    (1.0, 0.06)
    """
    if N is not None or spread:
        return _finite_n("dw_norm", g, target, rel_loss, method, network, input_amp, N,
                         spread)
    arr = _array_call(dw_norm, g, target, network, rel_loss=rel_loss, method=method,
                      order=order, input_amp=input_amp)
    if arr is not None:
        return arr
    kind, st = _dispatch(g, target, rel_loss, method, order, network, input_amp)
    if kind == "series":
        g, t, r, c = st
        tc = _series_time(g, t, r, int(order))
        if not np.isfinite(tc):
            return float("nan")
        b = beta_of(g)
        x = tc * b * b
        s1 = _series_eval(gen.sigma1_coefficients(abs(t), b), x, order)
        s2 = _series_eval(gen.sigma2_coefficients(abs(t), b), x, order)
        return float(np.hypot(s1, s2))
    return _FROM_STATE["dw_norm"](st)


def mean_gradient_norm(g: Any = None, target: Any = 1.0, rel_loss: float = 0.05,
                       method: str = "ode", order: int = 3, *, network=None,
                       input_amp: float = 1.0, N: int | None = None, spread: bool = False
                       ) -> float | np.ndarray | tuple[float, float]:
    """Average of ``|dL/dW|_F`` over learning time up to the learning time.

    Parameters as in :func:`learning_time` (with ``N``: up to each network's own learning
    time).

    Returns
    -------
    float, or ndarray of the broadcast shape of ``g`` and ``target``; ``(mean, std)`` with
    ``spread=True``

    Examples
    --------
    >>> round(mean_gradient_norm(0.0, 0.01) / 0.01, 3)   # small target: 2(1-sqrt r)/ln(1/r)
    0.518
    >>> mean, std = mean_gradient_norm(0.3, 1.0, N=256, spread=True)
    >>> round(mean / mean_gradient_norm(0.3, 1.0), 6), bool(std > 0)
    (1.0, True)
    """
    if N is not None or spread:
        return _finite_n("mean_gradient_norm", g, target, rel_loss, method, network,
                         input_amp, N, spread)
    arr = _array_call(mean_gradient_norm, g, target, network, rel_loss=rel_loss, method=method,
                      order=order, input_amp=input_amp)
    if arr is not None:
        return arr
    kind, st = _dispatch(g, target, rel_loss, method, order, network, input_amp)
    if kind == "series":
        g, t, r, c = st
        tc = _series_time(g, t, r, int(order))
        if not np.isfinite(tc):
            return float("nan")
        b = beta_of(g)
        cz = gen.readout_coefficients(t, b)
        cab = gen.ab_norm_sq_coefficients(abs(t), b)
        xs = np.linspace(0.0, tc * b * b, 2001)
        gn = np.abs(t - _series_eval(cz, xs, order)) * np.sqrt(
            np.maximum(_series_eval(cab, xs, order), 0.0))
        return float(c * c * np.trapezoid(gn, xs) / xs[-1])
    return _FROM_STATE["mean_gradient_norm"](st)


def shuffle_loss(g: Any = None, target: Any = 1.0, rel_loss: float = 0.05,
                 method: str = "ode", order: int = 3, *, network=None,
                 input_amp: float = 1.0, N: int | None = None, spread: bool = False
                 ) -> float | np.ndarray:
    """Loss, relative to ``L0``, after replacing ``W0`` by an independent draw of the same
    ``g`` while keeping ``Delta W`` (at the learning time).

    Parameters as in :func:`learning_time` (no ``N``: the finite-N theory does not give the
    shuffled loss); with ``network`` the independent draw acts as ``W0' -> 0`` inside the
    resolvent (large-N self-averaging).

    Returns
    -------
    float, or ndarray of the broadcast shape of ``g`` and ``target``

    Examples
    --------
    >>> round(shuffle_loss(0.0, 1.0), 6)             # g = 0: nothing to shuffle
    0.05
    >>> bool(shuffle_loss(0.6, 1.0) > shuffle_loss(0.3, 1.0))
    True
    """
    if N is not None or spread:
        raise ValueError("the finite-N theory does not give the shuffled loss (its "
                         "surrogate networks have no shuffled W0); use the large-N value "
                         "or network= for one network")
    arr = _array_call(shuffle_loss, g, target, network, rel_loss=rel_loss, method=method,
                      order=order, input_amp=input_amp)
    if arr is not None:
        return arr
    kind, st = _dispatch(g, target, rel_loss, method, order, network, input_amp)
    if kind == "series":
        g, t, r, c = st
        tc = _series_time(g, t, r, int(order))
        if not np.isfinite(tc):
            return float("nan")
        b = beta_of(g)
        zs = _series_eval(gen.shuffled_readout_coefficients(t, b), tc * b * b, order)
        return float((t - zs) ** 2 / t ** 2)
    return _FROM_STATE["shuffle_loss"](st)


def _shuffled_loss_of(st: dict) -> float:
    t = st["target_unit"]
    zs = st["model"].shuffled_readout(st["C"])
    return float((t - zs) ** 2 / t ** 2)


#: Each scalar observable from the reduced-ODE state at the learning time (:func:`_dispatch`).
_FROM_STATE: dict[str, Callable[[dict], float]] = {
    "learning_time": lambda st: float(st["tau"]),
    "dw_norm": lambda st: float(np.linalg.norm(st["C"])),
    "mean_gradient_norm": lambda st: float(st["grad_integral"] / st["tau"]),
    "shuffle_loss": _shuffled_loss_of,
}


def all_observables(g: float | None = None, target: float = 1.0, rel_loss: float = 0.05, *,
                    network=None, input_amp: float = 1.0) -> dict[str, float]:
    """:func:`learning_time`, :func:`dw_norm`, :func:`mean_gradient_norm` and
    :func:`shuffle_loss` by the reduced ODE, all from one integration (large N, or the
    instance model of ``network``); parameters as in :func:`learning_time`.

    Examples
    --------
    >>> import linrnn_theory as lt
    >>> net = lt.init_network(N=128, g=0.6, seed=0)
    >>> obs = all_observables(target=1.0, network=net)
    >>> sorted(obs) == sorted(["learning_time", "dw_norm", "mean_gradient_norm",
    ...                        "shuffle_loss"])
    True
    >>> obs["dw_norm"] == dw_norm(target=1.0, network=net)
    True
    """
    _, st = _dispatch(g, target, rel_loss, "ode", 3, network, input_amp)
    return {name: f(st) for name, f in _FROM_STATE.items()}


def outlier_eigenvalue(g: float, target: float, tau, method: str = "ode", order: int = 3
                       ) -> np.ndarray:
    """Outlier eigenvalue of ``W`` along ``tau`` (NaN while it is inside the bulk).

    Examples
    --------
    >>> lam = outlier_eigenvalue(0.5, 1.0, [0.0, 2.0])
    >>> bool(np.isnan(lam[0])) and bool(0.5 < lam[1] < 1.0)
    True
    """
    if method not in _METHODS:
        raise ValueError(f"method must be 'series' or 'ode', got {method!r}")
    g = check_range("g", g, 0.0, 1.0, hi_open=True)
    target = check_finite_scalar("target", target)
    return solve(method, g, target, check_tau(tau), order=order,
                 grad_norm=False).outlier_eigenvalue
