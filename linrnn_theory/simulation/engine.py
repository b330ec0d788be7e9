"""The interface every simulator implements, and the registry :func:`linrnn_theory.train`
picks from.

An :class:`Engine` holds the weights of one network during gradient descent on one task.
Its contract, in the order :func:`~linrnn_theory.train` calls it each epoch:

1. :meth:`Engine.evaluate` returns ``(loss, readout)`` at the current weights and prepares
   the gradient (the values may be non-finite; the caller detects divergence);
2. :meth:`Engine.grad_norm` is ``|dL/dW|_F`` at that evaluation;
3. :meth:`Engine.singular_values` and :meth:`Engine.weights` inspect ``Delta W = W - W0``;
4. :meth:`Engine.step` applies ``W <- W - lr dL/dW``;
5. :meth:`Engine.unstable` (fixed-point mode) says whether the last step lost the fixed
   point.

:func:`~linrnn_theory.train` drives several networks at once through the class methods
:meth:`Engine.evaluate_batch`, :meth:`Engine.singular_values_batch`,
:meth:`Engine.step_batch` and :meth:`Engine.unstable_batch`
(engines of one class with equal :meth:`Engine.batch_key`). By default they call the
per-engine methods one engine after the other; the fast engines stack their networks and
implement the per-engine methods as a batch of one, so that each network gets the same
numbers alone or in a batch.

Engines register themselves with :func:`register_engine` under a name (``"fast"``,
``"dense"``, ...) for each mode they implement; one name may stand for different classes
in different modes (``"fast"`` is :class:`~.bptt.BPTTEngine` in bptt mode and
:class:`~.fixed_point.FixedPointEngine` in fixed-point mode). :func:`make_engine` takes the
name, or ``None`` for the registered engines that support the task and mode in order of
:attr:`Engine.priority` (fastest first). An
engine that cannot handle a particular network raises :class:`EngineRefused` from its
constructor; with ``engine=None`` the next candidate is tried and the refusal is reported
(:attr:`Engine.notes`), with an explicit name the error reaches the caller.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from typing import ClassVar

import numpy as np

from ..network import Network
from ..task import Task

__all__ = ["Engine", "EngineRefused", "register_engine", "make_engine", "engine_names",
           "MODES"]

#: Training modes: finite-time dynamics with BPTT, or the ``t_max -> infinity`` limit.
MODES = ("bptt", "fixed_point")

#: (name, mode) -> engine class, in registration order.
_REGISTRY: dict[tuple[str, str], type["Engine"]] = {}


class EngineRefused(ValueError):
    """An engine cannot simulate this particular network (e.g. a defective ``W0``)."""


class Engine(ABC):
    """Gradient descent on ``W`` for one network and one task (see the module docstring).

    Subclasses set the class attributes :attr:`name`, :attr:`modes` and
    :attr:`priority`, and may narrow :meth:`supports`. The constructor signature is
    ``(net, task, mode)``; a constructor that cannot handle the network raises
    :class:`EngineRefused`.

    Attributes
    ----------
    name : str
        Registry name.
    modes : tuple of str
        Modes the engine implements.
    priority : int
        Lower is preferred when :func:`make_engine` chooses (built in: fast 0, dense 100).
    net : Network
    task : Task
    mode : str
    notes : list of str
        Remarks on how the engine was chosen (filled in by :func:`make_engine`).

    Examples
    --------
    >>> from linrnn_theory import init_network, FixedPointTask
    >>> eng = make_engine(init_network(N=16, g=0.5, seed=0), FixedPointTask(1.0), "bptt",
    ...                   "dense")
    >>> isinstance(eng, Engine), eng.name, eng.mode
    (True, 'dense', 'bptt')
    """

    name: ClassVar[str] = ""
    modes: ClassVar[tuple[str, ...]] = ()
    priority: ClassVar[int] = 50
    net: Network
    task: Task
    mode: str

    @classmethod
    def supports(cls, task: Task, mode: str) -> bool:
        """Whether this engine can train ``task`` in ``mode`` (default: any task that has
        the mode, if the engine has it)."""
        return mode in cls.modes and mode in task.modes

    @abstractmethod
    def evaluate(self) -> tuple[float, float]:
        """Loss and readout at the current weights (prepares the gradient)."""

    @abstractmethod
    def grad_norm(self) -> float:
        """Frobenius norm of the gradient at the last evaluation."""

    @abstractmethod
    def step(self, lr: float) -> None:
        """One gradient-descent step with the gradient of the last evaluation."""

    @abstractmethod
    def singular_values(self, k: int) -> np.ndarray:
        """Top ``k`` singular values of ``Delta W`` (zero-padded to length ``k``)."""

    @abstractmethod
    def weights(self) -> np.ndarray:
        """Dense copy of the current ``W``."""

    def unstable(self) -> bool:
        """Fixed-point mode: True once an eigenvalue of ``W`` has crossed 1 (default:
        never; finite-time divergence shows in the loss)."""
        return False

    def batch_key(self) -> Hashable:
        """Engines of one class with equal keys may share :meth:`evaluate_batch` (default:
        any two)."""
        return None

    @classmethod
    def evaluate_batch(cls, engines: Sequence["Engine"]) -> tuple[np.ndarray, np.ndarray]:
        """Loss and readout of each engine (arrays; default: :meth:`evaluate` in turn)."""
        out = [e.evaluate() for e in engines]
        return (np.array([o[0] for o in out], dtype=float),
                np.array([o[1] for o in out], dtype=float))

    @classmethod
    def singular_values_batch(cls, engines: Sequence["Engine"], k: int) -> np.ndarray:
        """:meth:`singular_values` of each engine, ``(len(engines), k)`` (default: in
        turn)."""
        return np.array([e.singular_values(k) for e in engines], dtype=float).reshape(-1, k)

    @classmethod
    def step_batch(cls, engines: Sequence["Engine"], lr: float | np.ndarray) -> None:
        """:meth:`step` of each engine (default: in turn); ``lr`` one rate for all or one
        per engine."""
        for e, rate in zip(engines, np.broadcast_to(np.asarray(lr, dtype=float),
                                                    (len(engines),)).tolist()):
            e.step(rate)

    @classmethod
    def unstable_batch(cls, engines: Sequence["Engine"]) -> np.ndarray:
        """:meth:`unstable` of each engine, a boolean array (default: in turn)."""
        return np.array([e.unstable() for e in engines], dtype=bool)

    @property
    def notes(self) -> list[str]:
        """Remarks on how this engine was chosen (empty if it was the first choice)."""
        return self.__dict__.setdefault("_notes", [])


def register_engine(cls: type[Engine]) -> type[Engine]:
    """Class decorator: make ``cls`` available to :func:`make_engine` under ``cls.name``
    in each of ``cls.modes`` (a later registration of the same name and mode replaces the
    earlier one).

    Examples
    --------
    >>> from linrnn_theory.simulation.dense import DenseEngine
    >>> @register_engine
    ... class Reference(DenseEngine):
    ...     name = "reference"
    >>> "reference" in engine_names()
    True
    >>> for mode in Reference.modes:         # keep the doctest free of side effects
    ...     _ = _REGISTRY.pop(("reference", mode))
    """
    if not (isinstance(cls, type) and issubclass(cls, Engine)):
        raise TypeError(f"register_engine needs an Engine subclass, got {cls!r}")
    if not cls.name:
        raise ValueError(f"{cls.__name__}.name must be a non-empty string")
    bad = [m for m in cls.modes if m not in MODES]
    if not cls.modes or bad:
        raise ValueError(f"{cls.__name__}.modes must be a non-empty subset of {MODES}, "
                         f"got {cls.modes!r}")
    for mode in cls.modes:
        _REGISTRY[(cls.name, mode)] = cls
    return cls


def engine_names(task: Task | None = None, mode: str | None = None) -> list[str]:
    """Names of the registered engines, in order of preference; with ``task`` and ``mode``
    only those that support them.

    Examples
    --------
    >>> from linrnn_theory import FixedPointTask, CosineTask
    >>> engine_names(FixedPointTask(1.0), "bptt")
    ['fast', 'dense']
    >>> engine_names(CosineTask(), "bptt")
    ['dense']
    """
    _load_builtin()
    order = {key: i for i, key in enumerate(_REGISTRY)}
    keys = sorted(_REGISTRY, key=lambda k: (_REGISTRY[k].priority, order[k]))
    if task is not None and mode is not None:
        keys = [k for k in keys if k[1] == mode and _REGISTRY[k].supports(task, mode)]
    return list(dict.fromkeys(name for name, _ in keys))


def normalise_mode(mode: str) -> str:
    """``"fixed-point"`` -> ``"fixed_point"``; raise ``ValueError`` for unknown modes.

    Examples
    --------
    >>> normalise_mode("fixed-point")
    'fixed_point'
    """
    m = str(mode).replace("-", "_")
    if m not in MODES:
        raise ValueError(f"mode must be one of 'bptt', 'fixed_point', got {mode!r}")
    return m


def make_engine(net: Network, task: Task, mode: str = "bptt",
                engine: str | None = None) -> Engine:
    """Build the simulator that :func:`linrnn_theory.train` drives.

    Parameters
    ----------
    net : Network
    task : Task
    mode : {"bptt", "fixed_point"}
        Finite-time Euler dynamics with back-propagation through time, or the
        ``t_max -> infinity`` limit (only for tasks that have it).
    engine : str, optional
        A registered name (built in: ``"fast"``, the low-rank simulators of
        :mod:`linrnn_theory.simulation`, and ``"dense"``, the plain reference). ``None``
        takes the first registered engine that supports the task and mode and accepts the
        network; each refusal on the way is recorded in :attr:`Engine.notes`.

    Raises
    ------
    ValueError
        For an unknown mode or engine, a task without that mode, or an engine that
        refuses the network (:class:`EngineRefused`) when it was named explicitly.

    Examples
    --------
    >>> from linrnn_theory import init_network, FixedPointTask, CosineTask
    >>> net = init_network(N=8, g=0.2, seed=0)
    >>> make_engine(net, FixedPointTask(1.0), "fixed_point").name
    'fast'
    >>> make_engine(net, CosineTask()).name
    'dense'
    >>> make_engine(net, CosineTask(), "fixed_point")
    Traceback (most recent call last):
    ...
    ValueError: CosineTask has no mode 'fixed_point' (it has: bptt)
    """
    mode = normalise_mode(mode)
    if mode not in task.modes:
        raise ValueError(f"{type(task).__name__} has no mode {mode!r} (it has: "
                         f"{', '.join(task.modes)})")
    candidates = engine_names(task, mode)
    if engine is not None:
        if engine not in engine_names():
            raise ValueError(f"engine must be one of {', '.join(map(repr, engine_names()))} "
                             f"or None, got {engine!r}")
        if engine not in candidates:
            raise ValueError(f"engine {engine!r} cannot train {type(task).__name__} in mode "
                             f"{mode!r} (available: {', '.join(candidates)})")
        return _REGISTRY[(engine, mode)](net, task, mode)
    notes = []
    for name in candidates:
        try:
            eng = _REGISTRY[(name, mode)](net, task, mode)
        except EngineRefused as exc:
            notes.append(f"engine {name!r} refused the network: {exc}")
            continue
        eng.notes.extend(notes)
        return eng
    raise ValueError(f"no engine accepted this network for {type(task).__name__} in mode "
                     f"{mode!r}: " + "; ".join(notes))


def _load_builtin() -> None:
    """Import the built-in engines (they register themselves on import)."""
    from . import bptt, dense, fixed_point  # noqa: F401
