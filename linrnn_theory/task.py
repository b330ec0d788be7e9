"""The simplified task of the paper's linear part: an input-driven fixed point.

Time grid (Euler scheme of docs/paper.md section 2, phi = identity)::

    x_0 = 0
    x_{k+1} = (1 - dt) x_k + dt (W x_k + m u_k),   k = 0 .. T-1,   T = round(t_max / dt)
    z_k     = w^T x_k,                              k = 1 .. T

The input is ``u_k = input_amp`` once ``k dt >= fixation`` and 0 before. The target
``z_hat`` is imposed on the last ``n_decision = round(decision / dt)`` outputs and the
loss is ``L = 1/2 * mean_{decision steps} (z_k - z_hat)^2``.

For ``t_max -> infinity`` the state reaches ``x* = input_amp (I - W)^{-1} m`` and the
loss becomes ``1/2 (z_hat - z*)^2`` with ``z* = w^T x*`` (fixed-point mode).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import check_finite_scalar, check_positive, check_range

__all__ = ["FixedPointTask"]

_STEP_TOL = 1e-9


def _steps(name: str, duration: float, dt: float) -> int:
    n = duration / dt
    k = int(round(n))
    if abs(n - k) > _STEP_TOL * max(1.0, abs(n)):
        raise ValueError(f"{name} must be a multiple of dt = {dt}, got {duration}")
    return k


@dataclass(frozen=True)
class FixedPointTask:
    """Input-driven fixed-point task (docs/paper.md section 4).

    Parameters
    ----------
    target : float
        Target output ``z_hat`` (any finite value; 0 is allowed but then L0 = 0).
    t_max : float
        Trial duration (default 101).
    dt : float
        Euler step, ``0 < dt < 2`` (default 0.5).
    fixation : float
        Duration without input at the start (default 1).
    decision : float
        Duration of the decision window at the end, where the loss is evaluated (default 1).
    input_amp : float
        Amplitude of the constant input after fixation (default 1).

    Raises
    ------
    ValueError
        For non-finite values, ``dt`` outside (0, 2), durations that are not multiples of
        ``dt``, or ``t_max`` too short for fixation plus decision.

    Examples
    --------
    >>> task = FixedPointTask(target=1.0)
    >>> task.n_steps, task.n_fixation, task.n_decision
    (202, 2, 2)
    >>> task.L0
    0.5
    """

    target: float
    t_max: float = 101.0
    dt: float = 0.5
    fixation: float = 1.0
    decision: float = 1.0
    input_amp: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", check_finite_scalar("target", self.target))
        dt = check_range("dt", self.dt, 0.0, 2.0, lo_open=True, hi_open=True)
        object.__setattr__(self, "dt", dt)
        t_max = check_positive("t_max", self.t_max)
        fixation = check_positive("fixation", self.fixation, strict=False)
        decision = check_positive("decision", self.decision)
        object.__setattr__(self, "t_max", t_max)
        object.__setattr__(self, "fixation", fixation)
        object.__setattr__(self, "decision", decision)
        object.__setattr__(self, "input_amp", check_finite_scalar("input_amp", self.input_amp))
        n_steps = _steps("t_max", t_max, dt)
        n_fix = _steps("fixation", fixation, dt)
        n_dec = _steps("decision", decision, dt)
        if n_dec < 1:
            raise ValueError(f"decision must cover at least one step of dt = {dt}")
        if n_fix + n_dec > n_steps - 1 or fixation + decision >= t_max:
            raise ValueError(
                f"t_max = {t_max} is too short for fixation ({fixation}) plus decision "
                f"({decision}): the input must be on before the decision window")

    # -- derived sizes -------------------------------------------------------------
    @property
    def n_steps(self) -> int:
        """Number of Euler steps ``T`` (outputs ``z_1 .. z_T``)."""
        return int(round(self.t_max / self.dt))

    @property
    def n_fixation(self) -> int:
        """Number of initial steps with zero input."""
        return int(round(self.fixation / self.dt))

    @property
    def n_decision(self) -> int:
        """Number of final outputs entering the loss."""
        return int(round(self.decision / self.dt))

    @property
    def L0(self) -> float:
        """Loss of a network with zero output, ``z_hat^2 / 2``."""
        return 0.5 * self.target ** 2

    def inputs(self) -> np.ndarray:
        """Input sequence ``u_0 .. u_{T-1}``.

        Examples
        --------
        >>> FixedPointTask(target=1.0, t_max=3.0, dt=0.5).inputs()
        array([0., 0., 1., 1., 1., 1.])
        """
        u = np.zeros(self.n_steps)
        u[self.n_fixation:] = self.input_amp
        return u

    def decision_steps(self) -> np.ndarray:
        """Indices ``k`` (1-based output index) of the outputs in the loss.

        Examples
        --------
        >>> FixedPointTask(target=1.0).decision_steps()
        array([201, 202])
        """
        T = self.n_steps
        return np.arange(T - self.n_decision + 1, T + 1)

    def with_target(self, target: float) -> "FixedPointTask":
        """Copy with another target.

        Examples
        --------
        >>> FixedPointTask(target=1.0).with_target(2.0).target
        2.0
        """
        return FixedPointTask(target=target, t_max=self.t_max, dt=self.dt,
                              fixation=self.fixation, decision=self.decision,
                              input_amp=self.input_amp)
