"""Scaling of the learned connectivity with the network size (the paper's supplementary
material, ``docs/paper.md`` section 5): the three tanh-RNN tasks trained at several N and
g, with Adam at ``lr = lr_scale / N`` and all of ``W_in``, ``W`` and ``W_out`` trained.

One ``"sim"`` task per (task, g, N, seed), computed by
:func:`~linrnn_theory.nonlinear.experiment.run_nonlinear` (the same training as
``reproduce nonlinear``; only the analyses this figure does not use are switched off).
Per run the figure and the report use

* ``|Delta W|_F`` after training, and
* the number of singular values of ``Delta W`` above ``sv_threshold`` times the largest,

and, per (task, g), the least-squares slope of ``log |Delta W|_F`` against ``log N``
(:func:`loglog_slope`). The paper's finding is that neither grows with N: a slope near 0
and counts that stay put.

Data files
----------
``data/nscaling.csv``: one row per run, columns ``task, g, N, seed, status, epochs, lr,
delta_fro, sv_max, n_large_sv, sv_threshold, initial_loss, trained_loss, wall_time_s``.

``data/nscaling.npz``: the same columns as arrays (``status`` and ``task`` as strings),
plus per run ``i`` (row order of the CSV) ``run{i}_record_epochs``, ``run{i}_delta_fro``
(the norm along training) and ``run{i}_sv_final`` (all N singular values after training).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .figure import Figure, register_figure
from .plotting import g_color, new_figure
from .report import fmt, md_table, mean_sd

__all__ = ["NScaling", "loglog_slope", "count_large", "summarise", "read_csv",
           "CSV_COLUMNS"]

#: Columns of ``data/nscaling.csv`` (one row per run).
CSV_COLUMNS = ("task", "g", "N", "seed", "status", "epochs", "lr", "delta_fro", "sv_max",
               "n_large_sv", "sv_threshold", "initial_loss", "trained_loss", "wall_time_s")


def count_large(sv: Sequence[float], threshold: float) -> int:
    """Number of singular values above ``threshold`` times the largest.

    Parameters
    ----------
    sv : sequence of float
        Singular values (any order).
    threshold : float
        Relative threshold in (0, 1).

    Examples
    --------
    >>> count_large([3.0, 1.0, 0.2, 0.0], 0.1)
    2
    >>> count_large([0.0, 0.0], 0.1)
    0
    """
    s = np.asarray(sv, dtype=float)
    if s.size == 0 or not np.isfinite(s).all() or s.max() <= 0:
        return 0
    return int(np.count_nonzero(s > threshold * s.max()))


def loglog_slope(N: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of ``log y`` against ``log N`` (NaN with fewer than two finite,
    positive points).

    A quantity that does not change with N has slope 0; ``|Delta W|_F`` of a dense update
    of fixed entry size would have slope 1.

    Examples
    --------
    >>> round(loglog_slope([64, 128, 256], [1.0, 2.0, 4.0]), 12)
    1.0
    >>> loglog_slope([64], [1.0])
    nan
    """
    x = np.asarray(N, dtype=float)
    v = np.asarray(y, dtype=float)
    ok = np.isfinite(v) & (v > 0) & np.isfinite(x) & (x > 0)
    if np.unique(x[ok]).size < 2:
        return float("nan")
    return float(np.polyfit(np.log(x[ok]), np.log(v[ok]), 1)[0])


def _sorted(results: list[dict]) -> list[dict]:
    return sorted(results, key=lambda r: (r["task"], r["g"], r["N"], r["seed"]))


def _csv(results: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in results:
        w.writerow([repr(r[c]) if isinstance(r[c], float) else r[c] for c in CSV_COLUMNS])
    return buf.getvalue()


def read_csv(path: str | os.PathLike) -> list[dict]:
    """Rows of ``data/nscaling.csv`` with numbers parsed (``N``, ``seed``, ``epochs``,
    ``n_large_sv`` as int, the other numeric columns as float).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "n.csv"
    >>> row = dict(task="romo", g=0.0, N=8, seed=0, status="ok", epochs=3, lr=0.1,
    ...            delta_fro=0.5, sv_max=0.4, n_large_sv=2, sv_threshold=0.1,
    ...            initial_loss=1.0, trained_loss=0.5, wall_time_s=0.1)
    >>> _ = p.write_text(_csv([row]))
    >>> read_csv(p) == [row]
    True
    """
    ints = {"N", "seed", "epochs", "n_large_sv"}
    text = {"task", "status"}
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [{k: (v if k in text else int(v) if k in ints else float(v)) for k, v in r.items()}
            for r in rows]


def summarise(results: list[dict]) -> list[dict]:
    """Per (task, g): the N values, the mean over seeds of ``|Delta W|_F``, of the count of
    large singular values and of the trained / initial loss at each N, and the log-log
    slope of ``|Delta W|_F`` against N. Runs whose status is not ``"ok"`` are left
    out of the means (and counted in ``n_bad``).

    Examples
    --------
    >>> rs = [dict(task="romo", g=0.0, N=n, seed=0, status="ok", delta_fro=1.0,
    ...            n_large_sv=1, initial_loss=1.0, trained_loss=0.5) for n in (8, 16)]
    >>> s = summarise(rs)[0]
    >>> s["N"], s["slope"], s["n_large"]
    ([8, 16], 0.0, [1.0, 1.0])
    """
    out = []
    keys = sorted({(r["task"], r["g"]) for r in results})
    for task, g in keys:
        mine = [r for r in results if r["task"] == task and r["g"] == g]
        Ns = sorted({r["N"] for r in mine})
        good = {n: [r for r in mine if r["N"] == n and r["status"] == "ok"] for n in Ns}
        fro = [mean_sd(r["delta_fro"] for r in good[n])[0] for n in Ns]
        out.append({"task": task, "g": g, "N": Ns, "delta_fro": fro,
                    "n_large": [mean_sd(r["n_large_sv"] for r in good[n])[0] for n in Ns],
                    "loss_ratio": [mean_sd(r["trained_loss"] / r["initial_loss"]
                                           for r in good[n])[0] for n in Ns],
                    "slope": loglog_slope(Ns, fro),
                    "n_bad": sum(r["status"] != "ok" for r in mine)})
    return out


@register_figure
class NScaling(Figure):
    """Scaling of ``Delta W`` with N in the tanh-RNN tasks (run only when named).

    Examples
    --------
    >>> sorted(NScaling.run_arrays)
    ['delta_fro', 'record_epochs', 'sv_final']
    >>> from linrnn_theory.reproduce.presets import TINY
    >>> [(t["task"], t["N"], t["lr"]) for t in NScaling().tasks(TINY)][:2]
    [('romo', 8, 0.00625), ('romo', 16, 0.003125)]
    """

    name = "nscaling"
    default = False
    columns = CSV_COLUMNS
    run_arrays = {"record_epochs": "record_epochs", "delta_fro": "delta_fro_curve",
                  "sv_final": "sv_final"}

    def tasks(self, preset) -> list[dict]:
        """One ``"sim"`` task per (task, g, N, seed) of ``preset.nscaling``."""
        p = preset.nscaling
        epochs = dict(p.epochs)
        return [self.task("sim", task=task, g=float(g), N=int(N), seed=int(s),
                          epochs=int(epochs[task]), batch=p.batch, lr=p.lr_scale / N,
                          n_test=p.n_test, test_every=p.test_every, records=p.records,
                          sv_threshold=p.sv_threshold)
                for task in p.tasks for g in p.g_values for N in p.N_values for s in p.seeds]

    def simulate(self, params: dict) -> dict:
        """Train one network (:func:`~linrnn_theory.nonlinear.experiment.run_nonlinear`)
        and keep what this figure uses: ``|Delta W|_F`` along training, all singular values
        of ``Delta W`` after training, their count above ``sv_threshold`` times the
        largest, the initial and trained test losses, ``status``, ``message`` and the wall
        time."""
        from ..nonlinear.experiment import run_nonlinear
        N, epochs = params["N"], params["epochs"]
        r = run_nonlinear(params["task"], params["g"], params["seed"], N=N, epochs=epochs,
                          batch=params["batch"], lr=params["lr"], n_test=params["n_test"],
                          test_every=params["test_every"],
                          record_every=max(1, epochs // params["records"]), n_sv=N,
                          n_shuffles=1, max_rank=0).as_record()
        sv = np.asarray(r["sv_delta"][-1], dtype=float)
        return {**{k: params[k] for k in ("task", "g", "N", "seed", "epochs", "lr",
                                           "sv_threshold")},
                "figure": self.name, "kind": "sim", "status": r["status"],
                "message": r["message"],
                "record_epochs": np.asarray(r["record_epochs"]),
                "delta_fro_curve": np.asarray(r["delta_fro"], dtype=float),
                "delta_fro": float(r["delta_fro"][-1]), "sv_final": sv,
                "sv_max": float(sv.max()) if sv.size else float("nan"),
                "n_large_sv": count_large(sv, params["sv_threshold"]),
                "initial_loss": float(r["initial_loss"]),
                "trained_loss": float(r["trained_loss"]),
                "wall_time_s": float(r["wall_time_s"])}

    def figure(self, results: list[dict], outdir: str | os.PathLike) -> list[Path]:
        """``nscaling.png/.pdf``, ``data/nscaling.npz`` and ``data/nscaling.csv``, the runs
        sorted by (task, g, N, seed)."""
        return super().figure(_sorted(results), outdir)

    def tables(self, results: list[dict], data: dict[str, np.ndarray]) -> dict[str, str]:
        """``nscaling.csv``: one row per run (:data:`CSV_COLUMNS`)."""
        return {"nscaling.csv": _csv(results)}

    def plot(self, results: list[dict], data: dict[str, np.ndarray]):
        """Per task: ``|Delta W|_F``, the count of large singular values and the trained /
        initial loss against N, one line per g."""
        summary = summarise(results)
        task_names = sorted({s["task"] for s in summary})
        g_values = sorted({s["g"] for s in summary})
        thr = results[0]["sv_threshold"] if results else float("nan")
        fig, ax = new_figure(3, len(task_names), (3.6 * len(task_names), 8.4))
        for j, task in enumerate(task_names):
            for s in (s for s in summary if s["task"] == task):
                c = g_color(s["g"], g_values)
                lab = f"g = {s['g']:g} (slope {fmt(s['slope'], '.2f')})"
                ax[0, j].plot(s["N"], s["delta_fro"], "o-", color=c, label=lab)
                ax[1, j].plot(s["N"], s["n_large"], "o-", color=c, label=f"g = {s['g']:g}")
                ax[2, j].plot(s["N"], s["loss_ratio"], "o-", color=c, label=f"g = {s['g']:g}")
                for r in results:
                    if r["task"] == task and r["g"] == s["g"] and r["status"] == "ok":
                        ax[0, j].plot(r["N"], r["delta_fro"], ".", color=c, alpha=0.4)
                        ax[1, j].plot(r["N"], r["n_large_sv"], ".", color=c, alpha=0.4)
            ax[0, j].set_title(task)
            ax[0, j].set_ylabel(r"$\|\Delta W\|_F$")
            ax[1, j].set_ylabel(f"# singular values > {thr:g} max")
            ax[2, j].set_ylabel("trained / initial test loss")
            ax[2, j].set_yscale("log")
            for i in range(3):
                ax[i, j].set_xscale("log", base=2)
                ax[i, j].set_xlabel("N")
            ax[0, j].set_yscale("log")
            ax[0, j].legend(fontsize=7)
        fig.suptitle(r"Scaling of $\Delta W$ with N (Adam, lr = c/N, all weights trained)")
        fig.tight_layout()
        return fig

    def report(self, results: list[dict]) -> str:
        """Markdown section: per (task, g) the slope of ``log |Delta W|_F`` against ``log N``,
        and ``|Delta W|_F``, the count of large singular values and the trained / initial loss
        at each N (means over seeds)."""
        results = _sorted(results)
        summary = summarise(results)
        thr = results[0]["sv_threshold"] if results else float("nan")
        Ns = sorted({r["N"] for r in results})
        rows = []
        for s in summary:
            at = dict(zip(s["N"], zip(s["delta_fro"], s["n_large"], s["loss_ratio"])))
            rows.append([s["task"], f"{s['g']:g}", fmt(s["slope"], ".2f")]
                        + [" / ".join((fmt(at[n][0], ".2f"), fmt(at[n][1], ".3g"),
                                       fmt(at[n][2], ".2g"))) if n in at else "--" for n in Ns])
        text = ["## Scaling of Delta W with N\n",
                f"{len(results)} runs; Adam at lr = c / N, all of W_in, W, W_out trained. Cells: "
                f"|Delta W|_F / number of singular values of Delta W above {thr:g} of the "
                "largest / trained over initial test loss (means over seeds). Slope: least "
                "squares of log |Delta W|_F against log N (0: independent of N, 1: a dense "
                "update of fixed entry size).\n",
                md_table(["task", "g", "slope"] + [f"N = {n}" for n in Ns], rows)]
        slopes = [s["slope"] for s in summary if np.isfinite(s["slope"])]
        if slopes:
            text.append(f"\nSlopes range from {min(slopes):.2f} to {max(slopes):.2f}.")
        bad = [r for r in results if r["status"] != "ok"]
        if bad:
            text.append("\nNot ok (left out of the means): "
                        + "; ".join(f"{r['task']} g = {r['g']:g} N = {r['N']} "
                                    f"seed {r['seed']}: {r['message']}" for r in bad))
        return "\n".join(text) + "\n"
