"""Parameter sets of ``linrnn-theory reproduce``: QUICK (default), FULL (the paper) and TINY
(smoke tests only).

Every field is a plain number, string or tuple so that tasks built from a preset are
JSON-able (their parameters form the cache keys). ``docs/reproduce.md`` lists the values.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable

from ..nonlinear.experiment import FULL as NONLINEAR_FULL
from ..nonlinear.experiment import QUICK as NONLINEAR_QUICK
from ..nonlinear.experiment import SweepPreset
from ..nonlinear.tasks import TASK_NAMES

__all__ = ["LinearSweep", "DivergeParams", "CosineParams", "NScalingParams", "Preset", "QUICK", "FULL", "TINY",
           "PRESETS", "get_preset", "with_overrides", "validate_preset"]

#: lr0 per target of the paper's Figs. 3-4 (lr = lr0 (1 - g^2)^2).
PAPER_LR0 = ((0.5, 0.015), (1.0, 0.009), (2.0, 0.003))


@dataclass(frozen=True)
class LinearSweep:
    """Simulation + theory grid of the fixed-point task (Figs. 3 and 4).

    Parameters
    ----------
    N : int
        Network size.
    g_values, targets, seeds : tuple
        Grid (targets ``z_hat``).
    epochs : int
        Maximal number of gradient steps.
    lr0 : tuple of (target, lr0) pairs
        Learning rate ``lr = lr0 (1 - g^2)^2``.
    mode : {"bptt", "fixed_point"}
        Finite-time task with BPTT, or its ``t_max -> infinity`` limit.
    t_max, dt : float
        Trial length and Euler step of the finite-time task.
    record_every : int
        Singular values of ``Delta W`` recorded every this many epochs (Fig. 3).
    n_shuffles : int
        Independent shuffles of ``W0`` averaged for the shuffled loss (Fig. 4).
    conv_rel : float
        Convergence threshold relative to ``L0`` (paper: 0.05).
    """

    N: int
    g_values: tuple
    targets: tuple
    seeds: tuple
    epochs: int = 200
    lr0: tuple = PAPER_LR0
    mode: str = "bptt"
    t_max: float = 101.0
    dt: float = 0.5
    record_every: int = 1
    n_shuffles: int = 5
    conv_rel: float = 0.05

    def lr(self, g: float, target: float) -> float:
        """``lr0(target) * (1 - g^2)^2``.

        Examples
        --------
        >>> round(FULL.fig4.lr(0.6, 2.0), 8)
        0.0012288
        """
        table = dict(self.lr0)
        if target not in table:
            raise ValueError(f"no lr0 for target {target}; known: {sorted(table)}")
        return table[target] * (1.0 - g * g) ** 2


@dataclass(frozen=True)
class DivergeParams:
    """Failure of learning for large targets (docs/paper.md section 5), finite-time task.

    ``critical_target``: also evaluate ``theory.failure.critical_target`` (a bisection that
    costs minutes per cell; only in FULL).

    ``lr0`` pairs with the targets: 0.002 for ``z_hat = 2`` and 0.001 for ``z_hat = 4``
    (the larger target gets the smaller rate, as in Figs. 3-4).
    """

    N: int = 256
    g_values: tuple = (0.6, 0.8)
    targets: tuple = (2.0, 4.0)
    lr0: tuple = ((2.0, 0.002), (4.0, 0.001))
    seeds: tuple = (0,)
    epochs: int = 400
    t_max: float = 201.0
    dt: float = 0.5
    eig_every: int = 2
    critical_target: bool = False

    def lr(self, g: float, target: float) -> float:
        """``lr0(target) * (1 - g^2)^2``."""
        return dict(self.lr0)[target] * (1.0 - g * g) ** 2


@dataclass(frozen=True)
class CosineParams:
    """Autonomous cosine (the paper's supplementary material; task:
    :class:`linrnn_theory.CosineTask`): no input, ``x_0 = m`` with ``|m| = sqrt(N)``,
    readout ``w = m / N``, loss on the first ``n_periods_loss`` periods, the network runs
    on unscored to ``t_max``.
    """

    N: int = 256
    g_values: tuple = (0.0, 0.4, 0.8)
    lrs: tuple = ((0.0, 0.2), (0.4, 0.15), (0.8, 0.05))
    seeds: tuple = (0,)
    epochs: int = 1000
    dt: float = 0.1
    t_max: float = 20.0
    period: float = 5.0
    amplitude: float = 1.0
    n_periods_loss: float = 2.0
    record_every: int = 20

    def lr(self, g: float) -> float:
        """Learning rate of gain ``g``."""
        return dict(self.lrs)[g]


@dataclass(frozen=True)
class NScalingParams:
    """Scaling of ``Delta W`` with N (the paper's supplementary material): the tanh-RNN
    tasks of :mod:`linrnn_theory.nonlinear` at each of ``N_values`` and ``g_values``, Adam
    at ``lr = lr_scale / N``, all of ``W_in``, ``W`` and ``W_out`` trained.

    Parameters
    ----------
    N_values, g_values, tasks, seeds : tuple
    epochs : tuple of (task, epochs) pairs
    batch : int
        Trials per update.
    lr_scale : float
        ``lr = lr_scale / N`` (paper: 0.05).
    sv_threshold : float
        A singular value of ``Delta W`` is "large" above this fraction of the largest.
    n_test, test_every : int
        Test batch size and how often it is evaluated.
    records : int
        ``|Delta W|_F`` is recorded about ``records`` times along training.
    """

    N_values: tuple = (64, 128, 256, 512, 1024)
    g_values: tuple = (0.0, 0.9, 1.8)
    tasks: tuple = TASK_NAMES
    epochs: tuple = (("flipflop", 1000), ("mante", 2000), ("romo", 6000))
    seeds: tuple = (0, 1, 2, 3, 4)
    batch: int = 32
    lr_scale: float = 0.05
    sv_threshold: float = 0.1
    n_test: int = 64
    test_every: int = 50
    records: int = 10


@dataclass(frozen=True, eq=False)
class Preset:
    """All parameters of one ``reproduce`` run."""

    name: str
    fig3: LinearSweep
    fig4: LinearSweep
    diverge: DivergeParams
    cosine: CosineParams
    nonlinear: SweepPreset
    nscaling: NScalingParams = NScalingParams()
    notes: dict = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able description (for the manifest and the report).

        Examples
        --------
        >>> QUICK.as_dict()["fig4"]["mode"]
        'fixed_point'
        """
        nl = self.nonlinear
        return {"name": self.name, "fig3": asdict(self.fig3), "fig4": asdict(self.fig4),
                "diverge": asdict(self.diverge), "cosine": asdict(self.cosine),
                "nonlinear": {"name": nl.name, "N": nl.N, "g_values": dict(nl.g_values),
                              "epochs": dict(nl.epochs), "seeds": list(nl.seeds),
                              "batch": nl.batch, "lr": nl.lr, "extra": dict(nl.extra)},
                "nscaling": asdict(self.nscaling),
                "notes": dict(self.notes)}


_G_FULL = tuple(round(0.1 * k, 10) for k in range(10))

#: The paper's parameters (docs/paper.md sections 4-5).
FULL = Preset(
    name="full",
    fig3=LinearSweep(N=1024, g_values=(0.0, 0.6), targets=(0.5, 2.0), seeds=(0, 1, 2, 3, 4),
                     epochs=200, mode="bptt", record_every=2),
    fig4=LinearSweep(N=1024, g_values=_G_FULL, targets=(0.5, 1.0, 2.0),
                     seeds=(0, 1, 2, 3, 4), epochs=200, mode="bptt"),
    diverge=DivergeParams(N=256, seeds=(0, 1, 2), epochs=400, critical_target=True),
    cosine=CosineParams(N=256, seeds=(0, 1, 2)),
    nonlinear=NONLINEAR_FULL,
    nscaling=NScalingParams(),
    notes={"fig3": "N = 1024, finite-time task (bptt), 5 seeds; singular values every 2 "
                   "epochs", "fig4": "N = 1024, finite-time task (bptt), 5 seeds",
           "nonlinear": "N = 256, the paper's g grid and epochs, 5 seeds",
           "nscaling": "N = 64 ... 1024, g in {0, 0.9, 1.8}, 5 seeds, the paper's epochs "
                       "and lr = 0.05/N (several days on 2 cores; see docs/reproduce.md)"},
)

#: Small and fast: all four linear figures in under a minute on an idle 2-core machine
#: (measured in docs/results.md). Fig. 3 keeps the finite-time task (N = 256, 3 seeds);
#: Fig. 4 uses the fixed-point limit (fast engine) at N = 256 with 3 seeds and
#: g = 0, 0.3, 0.6, 0.9.
QUICK = Preset(
    name="quick",
    fig3=LinearSweep(N=256, g_values=(0.0, 0.6), targets=(0.5, 2.0), seeds=(0, 1, 2),
                     epochs=200, mode="bptt", record_every=2),
    fig4=LinearSweep(N=256, g_values=(0.0, 0.3, 0.6, 0.9), targets=(0.5, 1.0, 2.0),
                     seeds=(0, 1, 2), epochs=200, mode="fixed_point"),
    diverge=DivergeParams(N=128, seeds=(0,), epochs=400),
    cosine=CosineParams(N=128, seeds=(0,)),
    nonlinear=NONLINEAR_QUICK,
    nscaling=NScalingParams(N_values=(32, 64, 128), epochs=tuple((t, 300) for t in TASK_NAMES),
                            seeds=(0,), n_test=32),
    notes={"fig3": "N = 256 (paper 1024), 3 seeds (paper 5), finite-time task (bptt)",
           "fig4": "N = 256 (paper 1024), 3 seeds (paper 5), g in {0, 0.3, 0.6, 0.9} "
                   "(paper 0, 0.1, ..., 0.9), fixed-point limit instead of the finite-time "
                   "task",
           "diverge": "N = 128 (paper 256), 1 seed",
           "cosine": "N = 128 (paper 256), 1 seed",
           "nonlinear": "N = 64 (paper 256), g in {0, 0.9, 1.8}, 1 seed (paper 5), "
                        "500 / 600 / 800 epochs, lr = 0.035/N (paper 0.05/N)",
           "nscaling": "N in {32, 64, 128} (paper 64 ... 1024), 300 epochs (paper 1000 / "
                       "2000 / 6000), 1 seed (paper 5), lr = 0.05/N as in the paper"},
)

#: Smoke-test sizes (seconds); not a reproduction.
TINY = Preset(
    name="tiny",
    fig3=LinearSweep(N=24, g_values=(0.0, 0.6), targets=(0.5, 2.0), seeds=(0, 1),
                     epochs=20, t_max=11.0, mode="bptt", record_every=2),
    fig4=LinearSweep(N=24, g_values=(0.0, 0.6), targets=(0.5, 2.0), seeds=(0, 1),
                     epochs=200, mode="fixed_point", n_shuffles=2),
    diverge=DivergeParams(N=16, g_values=(0.6,), targets=(2.0, 4.0), epochs=10, t_max=21.0,
                          eig_every=5),
    cosine=CosineParams(N=12, g_values=(0.0, 0.8), lrs=((0.0, 0.2), (0.8, 0.05)),
                        epochs=10, t_max=4.0, period=1.0, dt=0.1, record_every=5),
    nonlinear=SweepPreset("tiny", N=8, g_values={"romo": (0.0, 0.9)}, epochs={"romo": 3},
                          seeds=(0,), batch=4, extra={"n_test": 4}),
    nscaling=NScalingParams(N_values=(8, 16), g_values=(0.0, 0.9), tasks=("romo",),
                            epochs=(("romo", 4),), seeds=(0,), batch=4, n_test=4,
                            test_every=2, records=2),
    notes={"all": "smoke-test sizes; the numbers mean nothing"},
)

PRESETS = {"quick": QUICK, "full": FULL, "tiny": TINY}


def get_preset(name: str) -> Preset:
    """Preset by name.

    Examples
    --------
    >>> get_preset("quick").fig4.N
    256
    """
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {name!r}")
    return PRESETS[name]


# -- validation ---------------------------------------------------------------------------

class _Bad(Exception):
    """A value does not match a field's specification (carries what was expected)."""


Check = Callable[[Any], Any]


def _int(lo: int) -> Check:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise _Bad(f"an integer >= {lo}")
        return int(v)
    return check


def _float(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False) -> Check:
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi:g}")
    what = "a finite number" + (" " + " and ".join(parts) if parts else "")

    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise _Bad(what)
        if lo is not None and (v <= lo if lo_open else v < lo):
            raise _Bad(what)
        if hi is not None and (v >= hi if hi_open else v > hi):
            raise _Bad(what)
        return float(v)
    return check


def _choice(*options: str) -> Check:
    def check(v: Any) -> str:
        if v not in options:
            raise _Bad("one of " + ", ".join(repr(o) for o in options))
        return v
    return check


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Bad("true or false")
    return v


def _list_of(item: Check, what: str) -> Check:
    def check(v: Any) -> tuple:
        if not isinstance(v, (list, tuple)) or not v:
            raise _Bad(f"a non-empty list of {what}")
        try:
            out = tuple(item(x) for x in v)
        except _Bad:
            raise _Bad(f"a non-empty list of {what}") from None
        if len(set(out)) != len(out):
            raise _Bad(f"a non-empty list of distinct {what}")
        return out
    return check


def _pairs(key: Check, val: Check, what: str) -> Check:
    def check(v: Any) -> tuple:
        bad = _Bad(f"a non-empty list of {what} pairs")
        if not isinstance(v, (list, tuple)) or not v:
            raise bad
        out = []
        for x in v:
            if not isinstance(x, (list, tuple)) or len(x) != 2:
                raise bad
            try:
                out.append((key(x[0]), val(x[1])))
            except _Bad:
                raise bad from None
        return tuple(out)
    return check


def _optional(item: Check, what: str) -> Check:
    def check(v: Any) -> Any:
        if v is None:
            return None
        try:
            return item(v)
        except _Bad:
            raise _Bad(f"null or {what}") from None
    return check


def _per_task(item: Check, what: str) -> Check:
    def check(v: Any) -> dict:
        bad = _Bad(f"an object {{task: {what}}} with tasks among {', '.join(TASK_NAMES)}")
        if not isinstance(v, dict) or not v or not set(v) <= set(TASK_NAMES):
            raise bad
        try:
            return {k: item(x) for k, x in v.items()}
        except _Bad:
            raise bad from None
    return check


def _mapping(v: Any) -> dict:
    if not isinstance(v, dict):
        raise _Bad("an object")
    return dict(v)


_N = _int(1)
_GAIN = _list_of(_float(0.0, 1.0, hi_open=True), "gains g with 0 <= g < 1")
_TARGETS = _list_of(_float(0.0, lo_open=True), "positive targets")
_SEEDS = _list_of(_int(0), "integer seeds >= 0")
_POS = _float(0.0, lo_open=True)
_LR0 = _pairs(_float(0.0, lo_open=True), _float(0.0, lo_open=True),
              "[target > 0, lr0 > 0]")

#: Field checks per section type: field name -> check (returns the normalised value or
#: raises :class:`_Bad` with what was expected).
_SPECS: dict[type, dict[str, Check]] = {
    LinearSweep: {"N": _N, "g_values": _GAIN, "targets": _TARGETS, "seeds": _SEEDS,
                  "epochs": _int(1), "lr0": _LR0, "mode": _choice("bptt", "fixed_point"),
                  "t_max": _POS, "dt": _POS, "record_every": _int(1),
                  "n_shuffles": _int(1), "conv_rel": _float(0.0, 1.0, lo_open=True,
                                                           hi_open=True)},
    DivergeParams: {"N": _N, "g_values": _GAIN, "targets": _TARGETS, "lr0": _LR0,
                    "seeds": _SEEDS, "epochs": _int(1), "t_max": _POS, "dt": _POS,
                    "eig_every": _int(1), "critical_target": _bool},
    CosineParams: {"N": _N, "g_values": _GAIN,
                   "lrs": _pairs(_float(0.0, 1.0, hi_open=True), _float(0.0, lo_open=True),
                                 "[g, lr > 0]"),
                   "seeds": _SEEDS, "epochs": _int(1), "dt": _POS, "t_max": _POS,
                   "period": _POS, "amplitude": _float(), "n_periods_loss": _POS, "record_every": _int(1)},
    SweepPreset: {"N": _N, "seeds": _SEEDS, "batch": _int(1),
                  "lr": _optional(_POS, "a finite number > 0"),
                  "g_values": _per_task(_list_of(_float(0.0), "gains g >= 0"),
                                        "list of gains g >= 0"),
                  "epochs": _per_task(_int(1), "integer >= 1"),
                  "extra": _mapping},
    NScalingParams: {"N_values": _list_of(_int(2), "integers N >= 2"),
                     "g_values": _list_of(_float(0.0), "gains g >= 0"),
                     "tasks": _list_of(_choice(*TASK_NAMES), f"task names ({', '.join(TASK_NAMES)})"),
                     "epochs": _pairs(_choice(*TASK_NAMES), _int(1), "[task, epochs >= 1]"),
                     "seeds": _SEEDS, "batch": _int(1), "lr_scale": _POS,
                     "sv_threshold": _float(0.0, 1.0, lo_open=True, hi_open=True),
                     "n_test": _int(1), "test_every": _int(1), "records": _int(1)},
}

_SECTIONS = ("fig3", "fig4", "diverge", "cosine", "nonlinear", "nscaling")


def _check_field(section: str, obj: Any, name: str, value: Any) -> Any:
    spec = _SPECS[type(obj)]
    if name not in spec:
        known = [f.name for f in fields(obj) if f.name in spec]
        raise ValueError(f"unknown field {section}.{name} (known: {', '.join(known)})")
    try:
        return spec[name](value)
    except _Bad as exc:
        raise ValueError(f"{section}.{name} must be {exc}, got {value!r}") from None


def _require_keys(section: str, field: str, what: str, known: Any, needed: Any,
                  needed_field: str) -> None:
    """Raise if some entry of ``needed`` has no key in the mapping ``known``."""
    missing = [k for k in needed if k not in known]
    if missing:
        names = ", ".join(f"{k:g}" if isinstance(k, float) else str(k) for k in missing)
        raise ValueError(f"{section}.{field} has no {what} {names} of {section}.{needed_field}")


def _check_section(section: str, obj: Any) -> Any:
    values = {name: _check_field(section, obj, name, getattr(obj, name))
              for name in _SPECS[type(obj)]}
    obj = replace(obj, **values)
    if hasattr(obj, "dt") and obj.dt >= obj.t_max:
        raise ValueError(f"{section}.dt must be smaller than {section}.t_max "
                         f"({obj.t_max:g}), got {obj.dt!r}")
    if isinstance(obj, (LinearSweep, DivergeParams)):
        _require_keys(section, "lr0", "rate for target(s)", dict(obj.lr0), obj.targets,
                      "targets")
    if isinstance(obj, CosineParams):
        _require_keys(section, "lrs", "rate for gain(s)", dict(obj.lrs), obj.g_values,
                      "g_values")
        if obj.n_periods_loss * obj.period >= obj.t_max:
            raise ValueError(f"{section}.n_periods_loss * {section}.period must be smaller "
                             f"than {section}.t_max ({obj.t_max:g}), got "
                             f"{obj.n_periods_loss * obj.period:g}")
    if isinstance(obj, NScalingParams):
        _require_keys(section, "epochs", "entry for task(s)", dict(obj.epochs), obj.tasks,
                      "tasks")
    if isinstance(obj, SweepPreset):
        _require_keys(section, "epochs", "entry for task(s)", obj.epochs, obj.g_values,
                      "g_values")
    return obj


def validate_preset(preset: Preset) -> Preset:
    """Check the type and range of every field of ``preset``.

    Parameters
    ----------
    preset : Preset

    Returns
    -------
    Preset
        A copy with normalised values (integers given for float fields become floats,
        lists become tuples).

    Raises
    ------
    ValueError
        One line naming the first bad field (``SECTION.FIELD``), what it must be and the
        value it has.

    Examples
    --------
    >>> validate_preset(TINY).fig3.N
    24
    >>> validate_preset(with_overrides(TINY, check=False, fig3={"N": 0}))
    Traceback (most recent call last):
    ...
    ValueError: fig3.N must be an integer >= 1, got 0
    """
    if not isinstance(preset, Preset):
        raise ValueError(f"preset must be a Preset, got {type(preset).__name__}")
    return replace(preset, **{s: _check_section(s, getattr(preset, s)) for s in _SECTIONS})


def with_overrides(preset: Preset, *, check: bool = True, **sections: dict) -> Preset:
    """Copy of ``preset`` with fields of its sections replaced, e.g.
    ``with_overrides(FULL, fig4={"N": 32})``.

    Parameters
    ----------
    preset : Preset
    check : bool
        Validate the result with :func:`validate_preset` (default).
    **sections : dict
        Section name -> ``{field: value}``.

    Raises
    ------
    ValueError
        For an unknown section or field, or (with ``check``) a bad value.

    Examples
    --------
    >>> with_overrides(FULL, fig4={"N": 32, "seeds": (0,)}).fig4.N
    32
    >>> with_overrides(FULL, fig3={"N": "abc"})
    Traceback (most recent call last):
    ...
    ValueError: fig3.N must be an integer >= 1, got 'abc'
    """
    new = {}
    for name, changes in sections.items():
        if name not in _SECTIONS:
            raise ValueError(f"unknown preset section {name!r} (known: {', '.join(_SECTIONS)})")
        obj = getattr(preset, name)
        for fld in changes:
            if fld not in _SPECS[type(obj)]:
                _check_field(name, obj, fld, None)          # raises "unknown field"
        new[name] = replace(obj, **changes)
    out = replace(preset, **new)
    return validate_preset(out) if check else out
