"""The nonlinear (tanh RNN) experiments through the same sweep and cache machinery.

One ``"sim"`` task per (task, g, seed) of the preset's
:class:`~linrnn_theory.nonlinear.experiment.SweepPreset`, computed by
:func:`~linrnn_theory.nonlinear.experiment.run_nonlinear`; figures and the report section
come from :mod:`linrnn_theory.nonlinear.figures` (``nonlinear_<task>.png/.pdf`` and
``nonlinear_summary.png/.pdf``). :func:`linrnn_theory.nonlinear.run_preset` runs the same
tasks (same cache keys) without drawing.

Data file ``data/nonlinear.npz``: per run ``i`` (order of ``task, g, seed`` arrays) the
keys ``run{i}_test_loss``, ``run{i}_test_epochs``, ``run{i}_sv_delta``,
``run{i}_record_epochs``, ``run{i}_truncation_loss``, plus the per-run scalars
``trained_loss, initial_loss, shuffle_loss, learning_epoch`` (-1 if never), ``status``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .figure import Figure, register_figure

__all__ = ["Nonlinear"]


@register_figure
class Nonlinear(Figure):
    """The tanh-RNN runs of ``preset.nonlinear`` (run only when named).

    Examples
    --------
    >>> Nonlinear().plot([], {}) is None      # drawn by nonlinear.make_figures instead
    True
    >>> from linrnn_theory.reproduce.presets import TINY
    >>> [(t["task"], t["g"]) for t in Nonlinear().tasks(TINY)]
    [('romo', 0.0), ('romo', 0.9)]
    """

    name = "nonlinear"
    title = "Nonlinear (tanh) RNNs"
    default = False
    columns = ("task", "g", "seed", "status", "trained_loss", "initial_loss", "shuffle_loss",
               "learning_epoch")
    run_arrays = {k: k for k in ("test_loss", "test_epochs", "sv_delta", "record_epochs",
                                 "truncation_loss")}

    def tasks(self, preset) -> list[dict]:
        """One task per run of ``preset.nonlinear`` (keyword arguments of
        ``run_nonlinear``)."""
        return [self.task("sim", **kw) for kw in preset.nonlinear.runs()]

    def simulate(self, params: dict) -> dict:
        """``run_nonlinear(**params).as_record()`` (without the bookkeeping keys)."""
        from ..nonlinear.experiment import run_nonlinear
        kw = {k: v for k, v in params.items() if k not in ("figure", "kind")}
        return {**run_nonlinear(**kw).as_record(), "figure": self.name, "kind": "sim"}

    def collect(self, results: list[dict]) -> dict[str, np.ndarray]:
        """The per-run table (``learning_epoch`` -1 where never reached) and arrays."""
        data = super().collect([{**r, "learning_epoch": -1 if r["learning_epoch"] is None
                                 else r["learning_epoch"]} for r in results])
        data["g"] = data["g"].astype(float)
        return data

    def figure(self, results: list[dict], outdir: str | os.PathLike) -> list[Path]:
        """The figures of :func:`linrnn_theory.nonlinear.make_figures`, then
        ``data/nonlinear.npz``."""
        from ..nonlinear.figures import make_figures
        return list(make_figures(results, outdir)) + super().figure(results, outdir)

    def report(self, results: list[dict]) -> str:
        """Markdown section from :func:`linrnn_theory.nonlinear.report_section`."""
        from ..nonlinear.figures import report_section
        return f"## {self.title}\n\n" + report_section(results)
