"""Task definitions: what a linear RNN is trained to do.

Every task derives from :class:`Task`. It fixes the Euler time grid, the input sequence,
the initial state, the targets and the weights (mask) with which each output enters the
loss; the dense BPTT (:func:`linrnn_theory.simulation.dense.linear_bptt`) and
:func:`linrnn_theory.train` need nothing else.

* :class:`FixedPointTask`: the simplified task of the paper's linear part (an
  input-driven fixed point, below).
* :class:`CosineTask`: the autonomous cosine of the paper's supplementary material.

The fixed-point task
--------------------

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

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from ._checks import check_finite_scalar, check_positive, check_range

__all__ = ["Task", "FixedPointTask", "CosineTask"]

_STEP_TOL = 1e-9


def _steps(name: str, duration: float, dt: float) -> int:
    n = duration / dt
    k = int(round(n))
    if abs(n - k) > _STEP_TOL * max(1.0, abs(n)):
        raise ValueError(f"{name} must be a multiple of dt = {dt}, got {duration}")
    return k


class Task(ABC):
    """Interface of a training task for a linear RNN with input ``m`` and readout ``w``.

    The network runs the Euler scheme ``x_{i+1} = (1 - dt) x_i + dt (W x_i + m u_i)`` from
    ``x_0 = initial_state(m)`` for ``i = 0 .. T-1`` and emits ``y_i = w^T x_{i+1}``. The
    loss is ``1/2 sum_i mask_i (y_i - targets_i)^2 / sum_i mask_i``.

    Subclasses are frozen dataclasses that define ``dt``, :attr:`n_steps`, :meth:`inputs`,
    :meth:`targets` and :meth:`mask`; the rest has defaults.

    Attributes
    ----------
    modes : tuple of str
        The training modes the task has (``"bptt"``: finite time; ``"fixed_point"``: the
        ``t_max -> infinity`` limit, only for tasks with a constant input).

    Examples
    --------
    >>> task = CosineTask(dt=0.5, t_max=2.0, period=1.0, n_periods_loss=1)
    >>> isinstance(task, Task), task.modes, task.inputs().shape
    (True, ('bptt',), (4,))
    """

    modes: ClassVar[tuple[str, ...]] = ("bptt",)
    dt: float

    @property
    @abstractmethod
    def n_steps(self) -> int:
        """Number of Euler steps ``T``."""

    @abstractmethod
    def inputs(self) -> np.ndarray:
        """Inputs ``u_0 .. u_{T-1}``, shape ``(T,)``."""

    @abstractmethod
    def targets(self) -> np.ndarray:
        """Targets of the outputs ``y_0 .. y_{T-1}``, shape ``(T,)``."""

    @abstractmethod
    def mask(self) -> np.ndarray:
        """Non-negative weight of each output in the loss, shape ``(T,)``, not all zero."""

    def initial_state(self, m: np.ndarray) -> np.ndarray | None:
        """Initial state ``x_0`` for input vector ``m`` (``None``: zero)."""
        return None

    def readout(self, y: np.ndarray) -> float:
        """One number that summarises the output trace ``y`` (mask-weighted mean)."""
        mk = self.mask()
        return float(np.sum(mk * y) / np.sum(mk))

    @property
    def L0(self) -> float:
        """Loss of a silent network, ``1/2 sum mask targets^2 / sum mask``."""
        mk = self.mask()
        return 0.5 * float(np.sum(mk * self.targets() ** 2) / np.sum(mk))

    def check_trainable(self) -> None:
        """Raise ``ValueError`` if gradient descent on this task cannot learn anything."""

    def describe(self) -> dict[str, Any]:
        """The task's parameters as a JSON-able dict, with its class name under ``"kind"``.

        Examples
        --------
        >>> FixedPointTask(target=2.0).describe()["kind"]
        'FixedPointTask'
        """
        return {"kind": type(self).__name__, **asdict(self)}


@dataclass(frozen=True)
class FixedPointTask(Task):
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

    modes: ClassVar[tuple[str, ...]] = ("bptt", "fixed_point")

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

    def targets(self) -> np.ndarray:
        """Targets of ``y_0 .. y_{T-1}``: ``z_hat`` everywhere (only the mask differs).

        Examples
        --------
        >>> FixedPointTask(target=2.0, t_max=3.0, dt=0.5).targets()
        array([2., 2., 2., 2., 2., 2.])
        """
        return np.full(self.n_steps, float(self.target))

    def mask(self) -> np.ndarray:
        """1 on the outputs of the decision window, 0 elsewhere.

        ``y_i = w^T x_{i+1}`` is the output ``z_{i+1}`` of the module docstring, so the
        mask is 1 at ``i = k - 1`` for every ``k`` in :meth:`decision_steps`.

        Examples
        --------
        >>> FixedPointTask(target=1.0, t_max=3.0, dt=0.5).mask()
        array([0., 0., 0., 0., 1., 1.])
        """
        mk = np.zeros(self.n_steps)
        mk[self.decision_steps() - 1] = 1.0
        return mk

    def check_trainable(self) -> None:
        """A zero input gives a zero gradient: refuse to train on it.

        Examples
        --------
        >>> FixedPointTask(target=1.0, input_amp=0.0).check_trainable()
        Traceback (most recent call last):
        ...
        ValueError: input_amp must be non-zero for training (a zero input gives a zero gradient, so nothing is learned)
        """
        if self.input_amp == 0:
            raise ValueError("input_amp must be non-zero for training (a zero input gives a "
                             "zero gradient, so nothing is learned)")

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


@dataclass(frozen=True)
class CosineTask(Task):
    r"""The autonomous cosine task of the paper's supplementary material (docs/paper.md,
    section 5).

    No input at any time; the network starts at ``x_0 = m`` (with ``|m| = sqrt(N)`` and
    ``w = m / N`` in the paper) and its output ``y_i = w^T x_{i+1}`` is compared with
    ``amplitude * cos(2 pi i dt / period)``, ``i = 0 .. T-1`` (the time convention of the
    paper's code). The loss counts the **first** ``n_periods_loss`` periods (default
    ``i = 0 .. 99``); the network then runs on, unscored, to ``t_max``. A silent network
    has ``L0 = amplitude^2 / 4``.

    Parameters
    ----------
    dt : float
        Euler step, ``0 < dt < 2`` (paper: 0.1).
    t_max : float
        Trial duration (paper: 20, 200 steps).
    period : float
        Period of the target cosine (paper: 5).
    amplitude : float
        Amplitude of the target (paper: 1).
    n_periods_loss : float
        The loss counts the first ``n_periods_loss`` periods (paper: 2).

    Examples
    --------
    >>> task = CosineTask()
    >>> task.n_steps, int(task.mask().sum()), round(task.L0, 12)
    (200, 100, 0.25)
    """

    modes: ClassVar[tuple[str, ...]] = ("bptt",)

    dt: float = 0.1
    t_max: float = 20.0
    period: float = 5.0
    amplitude: float = 1.0
    n_periods_loss: float = 2.0

    def __post_init__(self) -> None:
        dt = check_range("dt", self.dt, 0.0, 2.0, lo_open=True, hi_open=True)
        t_max = check_positive("t_max", self.t_max)
        period = check_positive("period", self.period)
        check_finite_scalar("amplitude", self.amplitude)
        npl = check_positive("n_periods_loss", self.n_periods_loss)
        n = t_max / dt
        if abs(n - round(n)) > 1e-9 * max(1.0, n) or round(n) < 2:
            raise ValueError(f"t_max must be a multiple of dt = {dt} (>= 2 steps), got {t_max}")
        if npl * period > t_max:
            raise ValueError(f"n_periods_loss * period = {npl * period} exceeds t_max = {t_max}")

    @property
    def n_steps(self) -> int:
        """Number of Euler steps ``T`` (outputs ``z_0 .. z_{T-1}``)."""
        return int(round(self.t_max / self.dt))

    def times(self) -> np.ndarray:
        """Target times ``i dt`` of the outputs ``z_0 .. z_{T-1}``.

        Examples
        --------
        >>> CosineTask(dt=0.5, t_max=2.0, period=1.0).times()
        array([0. , 0.5, 1. , 1.5])
        """
        return self.dt * np.arange(self.n_steps)

    def inputs(self) -> np.ndarray:
        """Inputs ``u_0 .. u_{T-1}``: zero (the task has no input).

        Examples
        --------
        >>> CosineTask(dt=0.5, t_max=2.0, period=1.0).inputs()
        array([0., 0., 0., 0.])
        """
        return np.zeros(self.n_steps)

    def targets(self) -> np.ndarray:
        """Targets ``amplitude cos(2 pi i dt / period)`` for ``i = 0 .. T-1``."""
        return self.amplitude * np.cos(2.0 * np.pi * self.times() / self.period)

    def mask(self) -> np.ndarray:
        """1.0 on the first ``n_periods_loss`` periods (``i dt < n period``), else 0.

        Examples
        --------
        >>> CosineTask(dt=0.5, t_max=4.0, period=1.0).mask()
        array([1., 1., 1., 1., 0., 0., 0., 0.])
        """
        end = self.n_periods_loss * self.period
        return (self.times() < end - 1e-9 * self.dt).astype(float)

    def initial_state(self, m: np.ndarray) -> np.ndarray:
        """``x_0 = m``: the network starts in its input direction.

        Examples
        --------
        >>> CosineTask().initial_state(np.ones(3))
        array([1., 1., 1.])
        """
        return np.asarray(m, dtype=float)

    def readout(self, y: np.ndarray) -> float:
        """Overlap of the output with the target on the loss window,
        ``sum mask y zhat / sum mask zhat^2`` (1 for a perfect fit, 0 for a silent network).

        Examples
        --------
        >>> task = CosineTask()
        >>> task.readout(task.targets()), task.readout(np.zeros(task.n_steps))
        (1.0, 0.0)
        """
        mk, zh = self.mask(), self.targets()
        return float(np.sum(mk * y * zh) / np.sum(mk * zh * zh))
