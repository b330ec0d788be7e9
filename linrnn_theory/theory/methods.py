"""Theory methods: one interface, a registry, and the four built-in methods.

A :class:`TheoryMethod` turns a :class:`Request` (the validated arguments of
:func:`linrnn_theory.theory.predict`) into a :class:`~.result.Prediction`. Methods register
with :func:`register_method` under their :attr:`~TheoryMethod.name`;
:func:`~linrnn_theory.theory.predict` looks them up by that name, so a user's method is
called exactly like a built-in one (docs/architecture.md has an example).

========== ==============================================================================
method     what it computes
========== ==============================================================================
series     perturbative series in ``tau_tilde = beta^2 tau`` to ``order`` (large N)
ode        large-N reduced ODE on Krylov chains of ``depth`` vectors (auto-converged)
instance   the same ODE with the Gram entries of a concrete ``network`` (any N)
exact_g0   closed form at ``g = 0`` (large N), or the exact 2 x 2 flow of a ``network``
========== ==============================================================================

:func:`solve` runs a method on given arguments without the front end's checks; the
building blocks (:mod:`.observables`, :mod:`.failure`) use it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .._checks import check_int, check_range
from ..network import Network
from ..trajectory import Status
from .exact_g0 import g0_trajectory
from .large_n import LAMBDA_MAX, large_n_model
from .reduced import ReducedModel, StepLimitError, equal_runs, integrate, integrate_many
from .result import Prediction
from .series import (MAX_ORDER, delta_chain_series, outlier_series_g0, readout_series,
                     singular_value_series)
from .series_radius import series_radius
from .traces import beta_of

__all__ = ["TheoryMethod", "Request", "register_method", "method_names", "get_method",
           "solve", "converged_model", "check_tau"]

_DEPTHS = (4, 6, 8, 12, 16, 24, 32)
#: The automatic depth search integrates each group of ``_DEPTHS`` as one ODE
#: (:func:`.reduced.integrate_many`): the shallow depths cost little next to the deepest.
_DEPTH_GROUPS = ((4, 6, 8, 12), (16,), (24,), (32,))
_REGISTRY: dict[str, type["TheoryMethod"]] = {}


def check_tau(tau) -> np.ndarray:
    """``tau`` as a non-empty, finite, non-negative, non-decreasing float array (else
    ``ValueError``).

    Examples
    --------
    >>> check_tau([0, 1])
    array([0., 1.])
    """
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


@dataclass
class Request:
    """Validated arguments of one prediction (see :func:`linrnn_theory.theory.predict`).

    ``zt = target / input_amp`` and ``tt = tau * input_amp**2`` are the unit-amplitude
    problem every method solves; ``c`` is ``input_amp``.
    """

    g: float | None
    target: float
    tau: np.ndarray
    c: float = 1.0
    order: int = 3
    depth: int | None = None
    network: Network | None = None
    N: int | None = None
    n_singular: int = 2
    outlier: bool | None = None
    grad_norm: bool = True
    tol: float = 1e-9
    rtol: float = 1e-11
    atol: float = 1e-14
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def zt(self) -> float:
        return self.target / self.c

    @property
    def tt(self) -> np.ndarray:
        return self.tau * self.c * self.c

    @property
    def beta(self) -> float:
        g = self.g
        return beta_of(g) if g is not None and g < 1 else float("nan")


class TheoryMethod(ABC):
    """A way to predict the fixed-point gradient flow.

    Subclasses set :attr:`name`, implement :meth:`resolve_g` (which ``g`` the method uses,
    and the checks of ``g`` and ``network`` that belong to it) and :meth:`predict`.

    Examples
    --------
    >>> sorted(method_names())
    ['exact_g0', 'finite_n', 'instance', 'ode', 'series']
    >>> get_method("ode").large_n
    True
    """

    name: ClassVar[str] = ""
    #: Whether the method describes the large-N limit (``tau_tilde = beta^2 tau``).
    large_n: ClassVar[bool] = True
    #: Whether the method takes the network size ``N`` (``predict(..., N=N)``).
    takes_size: ClassVar[bool] = False

    @abstractmethod
    def resolve_g(self, g: float | None, network: Network | None) -> float | None:
        """The gain the method uses; raise ``ValueError`` for arguments it cannot take."""

    @abstractmethod
    def predict(self, req: Request) -> Prediction:
        """The prediction for a validated request (``req.g`` already resolved)."""

    def tau_tilde(self, req: Request) -> np.ndarray:
        """``beta^2 tau`` for large-N methods, ``tau`` for instances."""
        return req.tau * req.beta * req.beta if self.large_n else req.tau.copy()


def register_method(cls: type[TheoryMethod]) -> type[TheoryMethod]:
    """Class decorator: make ``cls`` available as ``predict(..., method=cls.name)``.

    Examples
    --------
    >>> import numpy as np
    >>> from linrnn_theory import theory
    >>> @register_method
    ... class Silent(TheoryMethod):
    ...     name = "silent"                      # a network that never learns
    ...     def resolve_g(self, g: float | None, network: Network | None) -> float | None:
    ...         return g
    ...     def predict(self, req):
    ...         n = req.tau.size
    ...         return Prediction(tau=req.tau, tau_tilde=self.tau_tilde(req),
    ...                           readout=np.zeros(n), loss=np.full(n, 0.5 * req.target ** 2),
    ...                           singular_values=np.zeros((n, req.n_singular)),
    ...                           outlier_eigenvalue=np.full(n, np.nan),
    ...                           grad_norm=np.full(n, np.nan), method=self.name,
    ...                           params=req.params)
    >>> theory.predict(g=0.5, target=2.0, tau=[0.0, 1.0], method="silent").loss
    array([2., 2.])
    >>> _ = _REGISTRY.pop("silent")              # keep the doctest free of side effects
    """
    if not (isinstance(cls, type) and issubclass(cls, TheoryMethod)):
        raise TypeError(f"register_method needs a TheoryMethod subclass, got {cls!r}")
    if not cls.name:
        raise ValueError(f"{cls.__name__}.name must be a non-empty string")
    _REGISTRY[cls.name] = cls
    return cls


def method_names() -> tuple[str, ...]:
    """Names of the registered methods, in registration order.

    Examples
    --------
    >>> method_names()[:2]
    ('series', 'ode')
    """
    return tuple(_REGISTRY)


def get_method(name: str) -> TheoryMethod:
    """An instance of the method registered as ``name``.

    Raises
    ------
    ValueError
        For an unknown name.
    """
    if name not in _REGISTRY:
        raise ValueError(f"method must be one of {', '.join(_REGISTRY)}; got {name!r}")
    return _REGISTRY[name]()


def solve(method: str, g: float | None, target: float, tau: np.ndarray,
          **options: Any) -> Prediction:
    """Run ``method`` on already valid arguments (no argument checks beyond the method's
    own): the path :mod:`.observables` and :mod:`.failure` take.

    Examples
    --------
    >>> import numpy as np
    >>> p = solve("ode", 0.5, 1.0, np.array([0.0, 0.5]), outlier=False)
    >>> p.method, p.status, p.readout.shape
    ('ode', 'ok', (2,))
    """
    m = get_method(method)
    req = Request(g=None, target=target, tau=tau, **options)
    req.g = m.resolve_g(g, req.network)
    req.params = {"g": req.g, "target": target, "input_amp": req.c, "method": method}
    return m.predict(req)


def _sv(C: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros(k)
    if C.size:
        s = np.linalg.svd(C, compute_uv=False)[:k]
        out[: s.size] = s
    return out


def _svs(Cs: np.ndarray, k: int) -> np.ndarray:
    """:func:`_sv` for a stack ``(n, p, q)``: ``(n, k)``, zero-padded. A symmetric stack
    (every large-N flow) takes ``|eigvalsh|``, about twice as fast as the SVD.

    Examples
    --------
    >>> C = np.array([[[1.0, 2.0], [2.0, -3.0]]])
    >>> bool(np.allclose(_svs(C, 2), np.linalg.svd(C[0], compute_uv=False)))
    True
    """
    out = np.zeros((len(Cs), k))
    first, run = equal_runs(Cs)
    if first.size < len(Cs):                       # a held flow repeats its last C
        return _svs(Cs[first], k)[run]
    if Cs.size:
        if Cs.shape[1] == Cs.shape[2] and np.array_equal(Cs, np.swapaxes(Cs, 1, 2)):
            s = -np.sort(-np.abs(np.linalg.eigvalsh(Cs)), axis=1)[:, :k]
        else:
            s = np.linalg.svd(Cs, compute_uv=False)[:, :k]
        out[:, : s.shape[1]] = s
    return out


def _outliers_from_model(model: ReducedModel, Cs: np.ndarray) -> np.ndarray:
    if model.outlier_matrix is not None:
        return model.largest_outliers(Cs, lam_max=LAMBDA_MAX)
    out = np.full(len(Cs), np.nan)
    # instance: eigenvalues of the dense W = W0 + U C V^T
    for i, C in enumerate(Cs):
        ev = np.linalg.eigvals(model.weights(C))
        real = ev[np.abs(ev.imag) <= 1e-9 * max(1.0, np.abs(ev).max())].real
        real = real[real > model.bulk_radius]
        if real.size:
            out[i] = real.max()
    return out


def _integrate_group(build, group: tuple[int, ...], prev_shape, target: float,
                     tau: np.ndarray, rtol: float, atol: float, options: dict
                     ) -> tuple[list, StepLimitError | None]:
    """``[(depth, model, trajectory), ...]`` for the depths of ``group``, integrated as one
    ODE; and the :class:`.reduced.StepLimitError` of a depth that exceeded its step budget
    (the list then stops before that depth), else ``None``.

    The group is cut after the first model whose shape equals the one before (the chains
    closed: the model is the previous one, and so is its trajectory). If the joint run
    exceeds the budget, the depths are integrated one by one as far as they go.
    """
    models, closed = _group_models(build, group, prev_shape)
    distinct = [m for _, m in (models[:-1] if closed else models)]
    try:
        trajs = integrate_many(distinct, target, tau, rtol=rtol, atol=atol, **options)
    except StepLimitError as exc:
        if len(distinct) == 1:
            return [], exc
        trajs = []
        for m in distinct:
            try:
                trajs.extend(integrate_many([m], target, tau, rtol=rtol, atol=atol,
                                            **options))
            except StepLimitError as exc_one:
                return [(d, m, t) for (d, m), t in zip(models, trajs)], exc_one
    return _group_entries(models, closed, trajs), None


def _group_models(build, group: tuple[int, ...], prev_shape) -> tuple[list, bool]:
    """The models of ``group`` up to the first that repeats the shape before it (closed)."""
    models, shape = [], prev_shape
    for d in group:
        m = build(d)
        models.append((d, m))
        if m.shape == shape:
            break
        shape = m.shape
    closed = len(models) > 1 and models[-1][1].shape == models[-2][1].shape
    return models, closed


def _group_entries(models: list, closed: bool, trajs: list) -> list:
    out = [(d, m, t) for (d, m), t in zip(models, trajs)]
    if closed and trajs:                           # the same model: the same trajectory
        out.append((*models[-1], trajs[-1]))
    return out


class _Search:
    """The depth search of one target (the rule of :func:`converged_model`)."""

    def __init__(self, target: float, tol: float) -> None:
        self.scale = max(abs(target), 1e-300)
        self.tol = tol
        self.prev = None
        self.best = None
        self.change = float("inf")
        self.last = None
        self.result = None

    def feed(self, entries: list, over_budget: StepLimitError | None) -> None:
        for d, model, traj in entries:
            self.last = (model, traj, d)
            s1 = _svs(traj.C, 1)[:, 0]
            if self.prev is not None:
                dz = np.max(np.abs(traj.readout - self.prev[0])) / self.scale
                ds = np.max(np.abs(s1 - self.prev[1])) / max(np.max(np.abs(s1)), 1e-300)
                self.change = max(dz, ds)
                if model.shape == self.prev[2]:
                    self.result = (model, traj, d, 0.0)
                    return
                if self.change < self.tol:
                    self.result = (model, traj, d, self.change)
                    return
            self.prev = (traj.readout, s1, model.shape)
            self.best = (model, traj, d)
        if over_budget is not None:
            if self.best is None:
                raise over_budget
            self.result = (*self.best, self.change)

    def final(self) -> tuple:
        return self.result if self.result is not None else (*self.last, self.change)


def converged_models(build, targets, tau: np.ndarray, tol: float, rtol: float,
                     atol: float = 1e-14, **options: Any) -> list[tuple]:
    """:func:`converged_model` (automatic depth) for several targets of one ``build``: the
    depths of a group and all the targets still searching are integrated as one ODE
    (:func:`.reduced.integrate_many`); if that run exceeds its step budget, each target
    is searched on its own. ``options`` go to the integrator (``with_grad_integral``,
    ``dense``, ``max_nfev``). Returns one ``(model, trajectory, depth, change)`` per
    target.
    """
    targets = [float(t) for t in targets]
    searches = [_Search(t, tol) for t in targets]
    prev_shape = None
    for group in _DEPTH_GROUPS:
        todo = [i for i, s in enumerate(searches) if s.result is None]
        if not todo:
            break
        models, closed = _group_models(build, group, prev_shape)
        distinct = [m for _, m in (models[:-1] if closed else models)]
        try:
            trajs = integrate_many(distinct * len(todo),
                                   np.repeat([targets[i] for i in todo], len(distinct)),
                                   tau, rtol=rtol, atol=atol, **options)
            per = {i: (_group_entries(models, closed, trajs[j * len(distinct):
                                                             (j + 1) * len(distinct)]), None)
                   for j, i in enumerate(todo)}
        except StepLimitError as exc:
            if len(todo) == 1 and len(distinct) == 1:
                per = {todo[0]: ([], exc)}
            else:
                per = {i: _integrate_group(build, group, prev_shape, targets[i], tau, rtol,
                                           atol, options) for i in todo}
        for i in todo:
            searches[i].feed(*per[i])
        prev_shape = models[-1][1].shape
    return [s.final() for s in searches]


def converged_model(build, target: float, tau: np.ndarray, depth: int | None, tol: float,
                    rtol: float, atol: float = 1e-14, **options: Any
                    ) -> tuple[ReducedModel, Any, int, float]:
    """Integrate ``build(depth)`` at increasing depths until the readout and the top
    singular value change by less than ``tol`` (relative); returns ``(model, trajectory,
    depth, change)``. ``change`` is 0 when the chains closed (the subspace stopped growing,
    so the reduction is exact), and infinite when no depth could be integrated.

    The depths 4, 6, 8, 12 are integrated together as one ODE (:data:`_DEPTH_GROUPS`),
    deeper ones one at a time; the first depth whose change from the one before is below
    ``tol`` is returned, as if each had been integrated on its own. ``options`` go to the
    integrator (:func:`.reduced.integrate_many`).

    A depth whose integration exceeds its step budget (:class:`.reduced.StepLimitError`,
    deep stiff chains near ``g = 1``) ends the search: the previous depth is returned with
    its last change, so the caller reports it as unconverged instead of hanging.
    """
    if depth is not None:
        model = build(depth)
        traj = integrate_many([model], target, tau, rtol=rtol, atol=atol, **options)[0]
        return model, traj, depth, float("nan")
    return converged_models(build, [target], tau, tol, rtol, atol, **options)[0]


def _reduced_prediction(method: TheoryMethod, req: Request, build, depth: int | None
                        ) -> Prediction:
    """Integrate the reduced ODE built by ``build(depth)`` (automatic depth if ``None``)."""
    params, tau = req.params, req.tau
    outlier, message, status = req.outlier, "", Status.OK
    if outlier is None:
        outlier = method.large_n or req.network.N * tau.size <= 20000
        if not outlier:
            message = (f"outlier eigenvalue not computed (N * len(tau) = "
                       f"{req.network.N * tau.size} > 20000 dense eigendecompositions); "
                       "pass outlier=True to force it")
    # large N (no network): Taylor steps (:mod:`.taylor`), far fewer than DOP853's
    integrator = "taylor" if req.network is None else "dop853"
    try:
        model, traj, used, change = converged_model(build, req.zt, req.tt, depth, req.tol,
                                                    req.rtol, req.atol,
                                                    integrator=integrator)
    except StepLimitError as exc:
        raise StepLimitError(f"g = {req.g}: {exc}; use a smaller g, or a network with "
                             "method='instance'") from None
    params.update(depth=used, depth_change=change, shape=model.shape)
    if depth is None and not change < req.tol:
        status = Status.UNCONVERGED
        message = (f"depth {used}: last change {change:.2e} >= tol {req.tol:.1e}. "
                   + message).strip()
    n = tau.size
    sv = _svs(traj.C, req.n_singular)
    lam = _outliers_from_model(model, traj.C) if outlier else np.full(n, np.nan)
    gn = model.grad_norms(traj.C, req.zt) if req.grad_norm else np.full(n, np.nan)
    c = req.c
    return Prediction(tau=tau, tau_tilde=method.tau_tilde(req), readout=c * traj.readout,
                      loss=0.5 * (req.target - c * traj.readout) ** 2, singular_values=sv,
                      outlier_eigenvalue=lam, grad_norm=c * c * gn, method=method.name,
                      params=params, status=status, message=message)


def _check_large_n(name: str, g: float | None, network: Network | None) -> float:
    if network is not None:
        raise ValueError(f"network is not used by method={name!r} (large N); omit it "
                         "or use method='instance'")
    if g is None:
        raise ValueError("g is required for the large-N methods")
    return check_range("g", g, 0.0, 1.0, hi_open=True)


@register_method
class SeriesMethod(TheoryMethod):
    """Perturbative series in ``tau_tilde`` (large N), flagged beyond its radius."""

    name = "series"

    def resolve_g(self, g: float | None, network: Network | None) -> float | None:
        return _check_large_n(self.name, g, network)

    def predict(self, req: Request) -> Prediction:
        g_val, tau, n_singular, params = req.g, req.tau, req.n_singular, req.params
        c, zt, tt = req.c, req.zt, req.tt
        b = req.beta
        status, message = Status.OK, ""
        order = check_int("order", req.order, minimum=1)
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
        if req.outlier is None or req.outlier:
            if g_val == 0.0:
                lam = outlier_series_g0(zt, tt, order)
            else:
                lam = _series_outlier(g_val, zt, tt, order)
        gn = np.full(tau.size, np.nan)
        radius = series_radius(g_val, zt)
        params["radius_tau_tilde"] = radius / (c * c)
        beyond = int(np.count_nonzero(ttu >= radius))
        if beyond:
            status = Status.BEYOND_RADIUS
            message = (f"the series in tau_tilde converges only for tau_tilde < R = "
                       f"{params['radius_tau_tilde']:.3g}; {beyond} of {tau.size} time points "
                       "lie beyond it, where no order is accurate: use method='ode'. "
                       + message).strip()
        return Prediction(tau=tau, tau_tilde=self.tau_tilde(req), readout=c * z,
                          loss=0.5 * (req.target - c * z) ** 2, singular_values=sv,
                          outlier_eigenvalue=lam, grad_norm=gn, method=self.name,
                          params=params, status=status, message=message)


@register_method
class ODEMethod(TheoryMethod):
    """Large-N reduced ODE, depth increased until converged to ``tol``."""

    name = "ode"

    def resolve_g(self, g: float | None, network: Network | None) -> float | None:
        return _check_large_n(self.name, g, network)

    def predict(self, req: Request) -> Prediction:
        return _reduced_prediction(self, req, lambda d: large_n_model(req.g, d), req.depth)


@register_method
class InstanceMethod(TheoryMethod):
    """The reduced ODE with the Gram entries of one concrete network (any N)."""

    name = "instance"
    large_n = False

    def resolve_g(self, g: float | None, network: Network | None) -> float | None:
        if network is None:
            raise ValueError("network is required for method='instance'")
        if g is not None and (network.g is None or
                              not np.isclose(float(g), network.g, rtol=1e-12, atol=0.0)):
            raise ValueError(f"g = {g} disagrees with network.g = {network.g}; with "
                             "method='instance' g is taken from the network: omit g")
        return network.g

    def predict(self, req: Request) -> Prediction:
        from .instance import instance_model
        req.params["N"] = req.network.N
        return _reduced_prediction(self, req, lambda d: instance_model(req.network, d),
                                   req.depth)


@register_method
class ExactG0Method(TheoryMethod):
    """Closed form at ``g = 0`` (large N), or the exact 2 x 2 flow of a network with
    ``W0 = 0`` (its overlap ``w^T m`` included)."""

    name = "exact_g0"

    def resolve_g(self, g: float | None, network: Network | None) -> float | None:
        if g not in (None, 0, 0.0):
            raise ValueError(f"g must be 0 for method='exact_g0', got {g}")
        if network is not None and np.any(network.W0 != 0):
            raise ValueError("network.W0 must be zero for method='exact_g0'")
        return 0.0

    def predict(self, req: Request) -> Prediction:
        tau, n_singular, c = req.tau, req.n_singular, req.c
        if req.network is not None:
            from .instance import instance_model
            req.params["N"] = req.network.N
            outlier = True if req.outlier is None else req.outlier
            sub = Request(**{**req.__dict__, "outlier": outlier})
            return _reduced_prediction(self, sub, lambda d: instance_model(req.network, d),
                                       2)
        z, sv2, lam, gn = g0_trajectory(req.zt, req.tt)
        sv = np.zeros((tau.size, n_singular))
        sv[:, : min(2, n_singular)] = sv2[:, :n_singular]
        outlier = req.outlier is None or req.outlier
        return Prediction(tau=tau, tau_tilde=self.tau_tilde(req), readout=c * z,
                          loss=0.5 * (req.target - c * z) ** 2, singular_values=sv,
                          outlier_eigenvalue=lam if outlier else np.full(tau.size, np.nan),
                          grad_norm=c * c * gn if req.grad_norm else np.full(tau.size, np.nan),
                          method=self.name, params=req.params)


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
