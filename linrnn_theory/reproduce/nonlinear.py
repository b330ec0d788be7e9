"""The nonlinear (tanh RNN) experiments through the same sweep and cache machinery.

One ``"sim"`` task per (task, g, seed) of the preset's
:class:`~linrnn_theory.nonlinear.experiment.SweepPreset`, computed by
:func:`~linrnn_theory.nonlinear.experiment.run_nonlinear`; figures and the report section
come from :mod:`linrnn_theory.nonlinear.figures` (``nonlinear_<task>.png/.pdf`` and
``nonlinear_summary.png/.pdf``).

Data file ``data/nonlinear.npz``: per run ``i`` (order of ``task, g, seed`` arrays) the
keys ``run{i}_test_loss``, ``run{i}_test_epochs``, ``run{i}_sv_delta``,
``run{i}_record_epochs``, ``run{i}_truncation_loss``, plus the per-run scalars
``trained_loss, initial_loss, shuffle_loss, learning_epoch`` (-1 if never), ``status``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


__all__ = ["tasks", "run_task", "make_figure", "report"]

NAME = "nonlinear"



def tasks(preset) -> list[dict]:
    """One task per run of ``preset.nonlinear`` (keyword arguments of ``run_nonlinear``).

    Examples
    --------
    >>> from linrnn_theory.reproduce.presets import TINY
    >>> [(t["task"], t["g"]) for t in tasks(TINY)]
    [('romo', 0.0), ('romo', 0.9)]
    """
    return [{"figure": NAME, "kind": "sim", **kw} for kw in preset.nonlinear.runs(
        tuple(preset.nonlinear.g_values))]


def run_task(params: dict) -> dict:
    """``run_nonlinear(**params)`` (without the bookkeeping keys)."""
    from ..nonlinear.experiment import run_nonlinear
    kw = {k: v for k, v in params.items() if k not in ("figure", "kind")}
    return {**run_nonlinear(**kw).as_record(), "figure": NAME, "kind": "sim"}


def make_figure(results: list[dict], outdir: str | os.PathLike) -> list[Path]:
    """Figures of :func:`linrnn_theory.nonlinear.make_figures` plus ``data/nonlinear.npz``."""
    from .._io import atomic_write_npz
    from ..nonlinear.figures import make_figures
    outdir = Path(outdir)
    paths = list(make_figures(results, outdir))
    d = {"task": np.array([r["task"] for r in results]),
         "g": np.array([r["g"] for r in results], dtype=float),
         "seed": np.array([r["seed"] for r in results]),
         "status": np.array([r["status"] for r in results]),
         "trained_loss": np.array([r["trained_loss"] for r in results], dtype=float),
         "initial_loss": np.array([r["initial_loss"] for r in results], dtype=float),
         "shuffle_loss": np.array([r["shuffle_loss"] for r in results], dtype=float),
         "learning_epoch": np.array([-1 if r["learning_epoch"] is None else r["learning_epoch"]
                                     for r in results])}
    for i, r in enumerate(results):
        for k in ("test_loss", "test_epochs", "sv_delta", "record_epochs", "truncation_loss"):
            d[f"run{i}_{k}"] = np.asarray(r[k])
    paths.append(atomic_write_npz(outdir / "data" / f"{NAME}.npz", **d))
    return paths


def report(results: list[dict]) -> str:
    """Markdown section from :func:`linrnn_theory.nonlinear.report_section`."""
    from ..nonlinear.figures import report_section
    return "## Nonlinear (tanh) RNNs\n\n" + report_section(results)
