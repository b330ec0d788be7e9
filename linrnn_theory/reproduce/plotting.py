"""Shared drawing conventions of the reproduced figures.

* simulation: markers (mean over seeds) with a shaded band (mean +- sd);
* theory: lines (reduced ODE solid, series dashed);
* one colour per g (``g_color``); every figure saved as PNG (150 dpi) and PDF.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .._savefig import save_figure

__all__ = ["new_figure", "save_figure", "g_color", "sim_band", "theory_line",
           "THEORY_STYLES"]

#: Line styles of the theory methods.
THEORY_STYLES = {"ode": dict(ls="-", lw=1.8), "series": dict(ls="--", lw=1.4),
                 "failure": dict(ls=":", lw=1.6)}


def new_figure(nrows: int, ncols: int, size: tuple[float, float]) -> tuple[Any, Any]:
    """A matplotlib figure (Agg backend) with an array of axes.

    Examples
    --------
    >>> fig, ax = new_figure(1, 2, (6, 3)); ax.shape
    (1, 2)
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(nrows, ncols, figsize=size, squeeze=False)
    return fig, ax


def g_color(g: float, g_values: Sequence[float]) -> tuple[float, float, float, float]:
    """Colour of ``g`` on a viridis-like scale over ``g_values`` (dark = small g).

    Examples
    --------
    >>> len(g_color(0.5, [0.0, 0.5, 0.9]))
    4
    """
    import matplotlib
    cmap = matplotlib.colormaps["plasma"]
    gs = sorted(set(float(x) for x in g_values))
    if len(gs) == 1:
        return cmap(0.1)
    return cmap(0.85 * gs.index(float(g)) / (len(gs) - 1))


def sim_band(ax, x: np.ndarray, runs: np.ndarray, color, label: str | None = None,
             n_markers: int = 14, marker: str = "o", log: bool = False) -> None:
    """Mean over runs (markers, thin line) and mean +- sd (band) of ``runs`` (runs x len(x)).

    NaN entries (runs that stopped early) are left out of the statistics at that x.
    With ``log`` the band is the geometric mean times/divided by the geometric sd.
    """
    runs = np.atleast_2d(np.asarray(runs, dtype=float))
    ok = np.isfinite(runs)
    n = ok.sum(0)
    have = n > 0
    if not have.any():
        return
    if log:
        lr = np.where(ok & (runs > 0), np.log(np.where(runs > 0, runs, 1.0)), np.nan)
        m = np.full(x.shape, np.nan)
        s = np.zeros(x.shape)
        m[have] = np.nanmean(lr[:, have], axis=0)
        s[have] = np.nanstd(lr[:, have], axis=0)
        mean, lo, hi = np.exp(m), np.exp(m - s), np.exp(m + s)
    else:
        mean = np.full(x.shape, np.nan)
        sd = np.zeros(x.shape)
        mean[have] = np.nanmean(runs[:, have], axis=0)
        sd[have] = np.nanstd(runs[:, have], axis=0)
        lo, hi = mean - sd, mean + sd
    ax.fill_between(x, lo, hi, color=color, alpha=0.22, lw=0)
    ax.plot(x, mean, color=color, lw=0.7, alpha=0.8)
    step = max(1, len(x) // n_markers)
    ax.plot(x[::step], mean[::step], marker, color=color, ms=4.5, ls="none", mfc="white",
            mew=1.3, label=label)


def theory_band(ax, x: np.ndarray, mean: np.ndarray, std: np.ndarray, color,
                log: bool = False) -> None:
    """A predicted mean +- standard deviation over networks (finite-N theory), drawn as a
    hatched band without fill; with ``log`` its lower edge is kept above ``mean / 10``.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots()
    >>> theory_band(ax, np.arange(3.0), np.ones(3), 0.1 * np.ones(3), "C0")
    >>> len(ax.collections)
    1
    >>> plt.close(fig)
    """
    lo = mean - std
    if log:
        lo = np.maximum(lo, mean / 10)
    ax.fill_between(x, lo, mean + std, facecolor="none", edgecolor=color, hatch="////",
                    linewidth=0.0, alpha=0.6)


def theory_line(ax, x: np.ndarray, y: np.ndarray, color, method: str,
                label: str | None = None) -> None:
    """A theory curve in the style of ``method`` ("ode", "series", "failure")."""
    ax.plot(x, y, color=color, label=label, **THEORY_STYLES[method])
