r"""Failure of learning for large targets (docs/paper.md section 5).

Gradient *flow* in the fixed-point limit never pushes an eigenvalue of ``W`` to 1 before the
target is reached: as the outlier ``lambda -> 1`` the readout ``z = w^T (I - W)^{-1} m``
diverges, so ``z`` passes ``z_hat`` first. The final outlier ``lambda_inf(g, z_hat) < 1``
(returned as ``lambda_final``) only tends to 1 as ``z_hat -> infinity``.

Failures seen in simulations come from the finite learning rate. The loss
``L = (z_hat - z)^2 / 2`` has, at the gradient-flow solution, the Hessian
``grad z grad z^T`` whose only non-zero eigenvalue (the *sharpness*) is
``S = |a|^2 |b|^2`` (``a = (I - W)^{-T} w``, ``b = (I - W)^{-1} m``); ``S`` grows like
``(1 - lambda)^{-4}`` with the target. Gradient descent with step ``lr`` is linearly stable
there only if ``lr S < 2``. Beyond that two things can happen, and the same reduced model
that describes the flow (:mod:`.large_n`), iterated with the actual step
``C <- C + lr (z_hat - z) x y^T``, predicts which:

* the sharpness first exceeds ``2 / lr`` only close to the target: descent settles on
  another solution with ``lr S ~= 2`` (status "edge_of_stability": learning succeeds, ``Delta W``
  and the outlier differ from the flow's);
* it exceeds ``2 / lr`` during the fast phase: a step overshoots, the outlier crosses 1
  (``det(I - W)`` changes sign) and the finite-time dynamics explode ("diverges").

:func:`critical_target` returns the smallest target for which the reduced descent diverges,
``z_c(g; lr0)`` with the paper's ``lr = lr0 (1 - g^2)^2``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .._checks import check_finite_scalar, check_int, check_positive, check_range
from ..lowrank import reduced_readout, stability_sign
from .large_n import large_n_model
from .methods import check_tau, converged_model, solve
from ..trajectory import N_SINGULAR, LearningTrajectory, Result, Status
from .traces import beta_of

__all__ = ["sharpness", "reduced_descent", "predict_failure", "critical_target",
           "DescentTrajectory", "FailurePrediction"]


def _lr(g: float, lr0: float | None, lr: float | None) -> float:
    if (lr0 is None) == (lr is None):
        raise ValueError("give exactly one of lr0 (paper convention) and lr")
    if lr is not None:
        return check_positive("lr", lr)
    return check_positive("lr0", lr0) * (1 - g * g) ** 2


def _model(g: float, target: float, network=None):
    b = beta_of(g)
    grid = np.linspace(0.0, 3.0 / b ** 2, 31)
    if network is None:
        build = lambda d: large_n_model(g, d)  # noqa: E731
    else:
        from .instance import instance_model
        build = lambda d: instance_model(network, d)  # noqa: E731
    model, _, depth, _ = converged_model(build, target, grid, None, 1e-8, 1e-10)
    return model


def sharpness(g: float, target: float, tau=None) -> np.ndarray | float:
    """Sharpness ``S = |a|^2 |b|^2`` of the loss along the gradient flow (large N).

    Without ``tau`` returns its value at the end of learning (``tau -> infinity``,
    evaluated at ``beta^2 tau = 12``).

    Examples
    --------
    >>> s0 = sharpness(0.0, 1e-3)          # small target: S = beta^4 = 1 at g = 0
    >>> bool(abs(s0 - 1.0) < 1e-2)
    True
    """
    g = check_range("g", g, 0.0, 1.0, hi_open=True)
    target = check_finite_scalar("target", target)
    b = beta_of(g)
    t = np.array([0.0, 12.0 / b ** 2]) if tau is None else check_tau(tau)
    p = solve("ode", g, target, t, outlier=False)
    e = np.abs(target - p.readout)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (p.grad_norm / e) ** 2
    if tau is None:
        return float(s[-1])
    return s


@dataclass(kw_only=True, repr=False)
class DescentTrajectory(LearningTrajectory):
    """Gradient descent with a finite step on a reduced model (:func:`reduced_descent`).

    A predicted :class:`~linrnn_theory.trajectory.LearningTrajectory` at ``tau = lr *
    epoch`` (before each epoch's step), the twin of a fixed-point
    :class:`~linrnn_theory.TrainResult` with the same ``lr``.

    Attributes
    ----------
    lr_sharpness : (n,) ndarray
        ``lr S`` per epoch (``S = |dz/dW|^2``; descent is linearly stable at the flow's
        solution only where it is < 2).
    diverged_epoch : int or None
        Epoch at which the descent diverged.
    status : Status
        ``"ok"`` (loss below ``1e-3 L0`` at the end), ``"unconverged"`` (not yet) or
        ``"diverged"``.
    """

    schema: ClassVar[str] = "linrnn-theory/descent/1"
    array_fields: ClassVar[tuple[str, ...]] = LearningTrajectory.array_fields + (
        "lr_sharpness",)

    lr_sharpness: np.ndarray
    diverged_epoch: int | None = None


def reduced_descent(g: float, target: float, lr: float, epochs: int, model=None,
                    n_singular: int = N_SINGULAR) -> DescentTrajectory:
    """Gradient descent with step ``lr`` on the large-N reduced model (fixed point).

    Parameters
    ----------
    g, target : float
    lr : float
        Step size.
    epochs : int
        Number of steps.
    model : ReducedModel, optional
        The reduced model (default: the large-N model of ``g``, depth converged).
    n_singular : int
        Singular values of ``Delta W`` per epoch (0 skips them).

    Returns
    -------
    DescentTrajectory

    Examples
    --------
    >>> run = reduced_descent(0.5, 1.0, lr=0.05, epochs=200)
    >>> run.status, round(float(run.readout[-1]), 6), run.singular_values.shape
    ('ok', 1.0, (200, 2))
    """
    model = model or _model(g, target)
    n_singular = check_int("n_singular", n_singular, minimum=0)
    p, q = model.shape
    C = np.zeros((p, q))
    L0 = 0.5 * target ** 2
    loss, lrs, zs, gns, svs = [], [], [], [], []
    status, dep = Status.UNCONVERGED, None
    message = f"loss not below 1e-3 L0 after {epochs} steps"
    for ep in range(epochs):
        z, x, y = reduced_readout(C, model.A, model.r_w, model.r_m, model.s0)
        e = target - z
        L = 0.5 * e * e
        if not np.isfinite(L) or L > 1e6 * L0:
            status, dep = Status.DIVERGED, ep
            message = f"loss {L:.3g} exceeds 1e6 L0 at step {ep}"
            break
        gn = model.grad_norm(C, target)
        loss.append(L)
        zs.append(z)
        gns.append(gn)
        lrs.append(lr * (gn / abs(e)) ** 2 if e != 0 else np.nan)
        if n_singular:
            svs.append(_top_singular_values(C, n_singular))
        C = C + (lr * e) * np.outer(x, y)
        if stability_sign(C, model.A) <= 0:
            status, dep = Status.DIVERGED, ep + 1
            message = f"an eigenvalue of W crossed 1 at step {ep + 1} (fixed point lost)"
            break
    loss = np.array(loss)
    n = loss.size
    if status != Status.DIVERGED and n and loss[-1] < 1e-3 * L0:
        status, message = Status.OK, ""
    return DescentTrajectory(
        tau=lr * np.arange(n, dtype=float), readout=np.array(zs), loss=loss,
        singular_values=np.array(svs).reshape(n, n_singular), grad_norm=np.array(gns),
        lr_sharpness=np.array(lrs), diverged_epoch=dep, status=status, message=message,
        params={"g": g, "target": target, "lr": lr, "epochs": epochs, "shape": model.shape})


def _top_singular_values(C: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros(k)
    s = np.linalg.svd(C, compute_uv=False)[:k]
    out[: s.size] = s
    return out


@dataclass(kw_only=True, repr=False)
class FailurePrediction(Result):
    """Whether gradient descent with a given step learns a target (:func:`predict_failure`).

    Attributes
    ----------
    fails : bool
        The reduced descent diverges.
    status : Status
        Of the descent (:class:`DescentTrajectory`), or ``"edge_of_stability"`` when it
        learned although ``lr S > 2`` at the flow's solution.
    lambda_final : float
        Outlier eigenvalue at the end of the gradient *flow* (always < 1).
    sharpness_final : float
        ``S`` at the flow's solution.
    lr_sharpness_final : float
        ``lr S`` there (> 2: the flow's solution is linearly unstable for descent).
    diverged_epoch : int or None
    lr : float
        The step used.
    params : dict
    """

    schema: ClassVar[str] = "linrnn-theory/failure/1"
    summary_fields: ClassVar[tuple[str, ...]] = ("fails", "lr_sharpness_final")

    fails: bool
    status: Status
    lambda_final: float
    sharpness_final: float
    lr_sharpness_final: float
    lr: float
    diverged_epoch: int | None = None
    message: str = ""
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.status = Status(self.status)


def predict_failure(g: float, target: float, lr0: float | None = None, lr: float | None = None,
                    epochs: int = 2000, network=None) -> FailurePrediction:
    """Does gradient descent with the given step fail to learn ``target``?

    Parameters
    ----------
    g, target : float
    lr0, lr : float
        Exactly one: paper convention ``lr = lr0 (1 - g^2)^2``, or the raw step.
    epochs : int
        Length of the reduced descent.
    network : Network, optional
        Use the reduced model of this network (finite N) instead of the large-N limit.

    Returns
    -------
    FailurePrediction

    Examples
    --------
    >>> d = predict_failure(0.6, 1.0, lr0=0.009)
    >>> d
    FailurePrediction(status='ok', fails=False, lr_sharpness_final=0.1661)
    """
    g = check_range("g", g, 0.0, 1.0, hi_open=True)
    target = check_finite_scalar("target", target)
    epochs = check_int("epochs", epochs, minimum=1)
    step = _lr(g, lr0, lr)
    model = _model(g, target, network)
    b = beta_of(g)
    tt = np.array([0.0, 12.0 / b ** 2])
    p = solve("ode", g, target, tt) if network is None else \
        solve("instance", None, target, tt, network=network)
    S = float((p.grad_norm[-1] / abs(target - p.readout[-1])) ** 2) \
        if target != p.readout[-1] else float("inf")
    run = reduced_descent(g, target, step, epochs, model, n_singular=0)
    status, message = run.status, run.message
    if status == Status.OK and step * S > 2.0:
        status = Status.EDGE_OF_STABILITY     # learned, but not the flow's (unstable) solution
        message = f"lr S = {step * S:.3g} > 2 at the flow's solution: {status.advice}"
    return FailurePrediction(
        fails=status == Status.DIVERGED, status=status, message=message,
        lambda_final=float(p.outlier_eigenvalue[-1]), sharpness_final=S,
        lr_sharpness_final=step * S, diverged_epoch=run.diverged_epoch, lr=step,
        params={"g": g, "target": target, "epochs": epochs,
                "N": None if network is None else network.N})


def critical_target(g: float, lr0: float | None = None, lr: float | None = None,
                    epochs: int = 2000, lo: float = 0.25, hi: float = 16.0,
                    rtol: float = 0.02) -> float:
    """Smallest target ``z_c`` for which the reduced gradient descent diverges.

    Bisection on ``[lo, hi]`` (``inf`` if even ``hi`` is learned, ``lo`` if ``lo`` fails).
    Near the boundary the set of failing targets need not be an interval: descent that
    reaches the edge of stability (``lr S`` ~ 2) may or may not diverge depending on
    details of its path, so the bisection returns *one* crossing of the boundary (measured:
    at g = 0.6, lr0 = 0.002 the large-N descent diverges at ``target = 4`` while this returns
    4.54). Check individual targets with :func:`predict_failure`.

    Examples
    --------
    >>> zc = critical_target(0.8, lr0=0.002, epochs=600)
    >>> bool(3.0 < zc < 4.5)
    True
    """
    g = check_range("g", g, 0.0, 1.0, hi_open=True)
    step = _lr(g, lr0, lr)

    def fails(zh):
        run = reduced_descent(g, zh, step, epochs, _model(g, zh), n_singular=0)
        return run.status == Status.DIVERGED

    if not fails(hi):
        return float("inf")
    if fails(lo):
        return float(lo)
    while hi / lo > 1 + rtol:
        mid = np.sqrt(lo * hi)
        if fails(mid):
            hi = mid
        else:
            lo = mid
    return float(np.sqrt(lo * hi))
