"""Parameter sets of ``linrnn-theory reproduce``: QUICK (default), FULL (the paper) and TINY
(smoke tests only).

Every field is a plain number, string or tuple so that tasks built from a preset are
JSON-able (their parameters form the cache keys). ``docs/reproduce.md`` lists the values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..nonlinear.experiment import FULL as NONLINEAR_FULL
from ..nonlinear.experiment import QUICK as NONLINEAR_QUICK
from ..nonlinear.experiment import SweepPreset

__all__ = ["LinearSweep", "DivergeParams", "CosineParams", "Preset", "QUICK", "FULL", "TINY",
           "PRESETS", "get_preset"]

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
    """Failure of learning for large targets (PAPER.md section 5), finite-time task.

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
    """Autonomous cosine (the paper's supplementary material; task defined in
    :mod:`linrnn_theory.simulation.cosine`): no input, ``x_0 = m`` with ``|m| = sqrt(N)``,
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


@dataclass(frozen=True, eq=False)
class Preset:
    """All parameters of one ``reproduce`` run."""

    name: str
    fig3: LinearSweep
    fig4: LinearSweep
    diverge: DivergeParams
    cosine: CosineParams
    nonlinear: SweepPreset
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
                "notes": dict(self.notes)}


_G_FULL = tuple(round(0.1 * k, 10) for k in range(10))

#: The paper's parameters (PAPER.md sections 4-5).
FULL = Preset(
    name="full",
    fig3=LinearSweep(N=1024, g_values=(0.0, 0.6), targets=(0.5, 2.0), seeds=(0, 1, 2, 3, 4),
                     epochs=200, mode="bptt", record_every=2),
    fig4=LinearSweep(N=1024, g_values=_G_FULL, targets=(0.5, 1.0, 2.0),
                     seeds=(0, 1, 2, 3, 4), epochs=200, mode="bptt"),
    diverge=DivergeParams(N=256, seeds=(0, 1, 2), epochs=400, critical_target=True),
    cosine=CosineParams(N=256, seeds=(0, 1, 2)),
    nonlinear=NONLINEAR_FULL,
    notes={"fig3": "N = 1024, finite-time task (bptt), 5 seeds; singular values every 2 "
                   "epochs", "fig4": "N = 1024, finite-time task (bptt), 5 seeds",
           "nonlinear": "N = 256, the paper's g grid and epochs, 5 seeds"},
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
    notes={"fig3": "N = 256 (paper 1024), 3 seeds (paper 5), finite-time task (bptt)",
           "fig4": "N = 256 (paper 1024), 3 seeds (paper 5), g in {0, 0.3, 0.6, 0.9} "
                   "(paper 0, 0.1, ..., 0.9), fixed-point limit instead of the finite-time "
                   "task",
           "diverge": "N = 128 (paper 256), 1 seed",
           "cosine": "N = 128 (paper 256), 1 seed",
           "nonlinear": "N = 64 (paper 256), g in {0, 0.9, 1.8}, 1 seed (paper 5), "
                        "500 / 600 / 800 epochs, lr = 0.035/N (paper 0.05/N)"},
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


def with_overrides(preset: Preset, **sections: dict) -> Preset:
    """Copy of ``preset`` with fields of its sections replaced, e.g.
    ``with_overrides(FULL, fig4={"N": 32})``.

    Examples
    --------
    >>> with_overrides(FULL, fig4={"N": 32, "seeds": (0,)}).fig4.N
    32
    """
    new = {}
    for name, changes in sections.items():
        if not hasattr(preset, name) or name in ("name", "notes"):
            raise ValueError(f"unknown preset section {name!r}")
        new[name] = replace(getattr(preset, name), **changes)
    return replace(preset, **new)
