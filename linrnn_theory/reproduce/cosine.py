"""Autonomous cosine (PAPER.md section 5): loss curves, singular values of ``Delta W`` and
the output trace, for g in {0, 0.4, 0.8} with learning rates 0.2 / 0.15 / 0.05.

The task (input pulse along ``m = w``, target ``cos(2 pi t / 5)``, loss on the last two
periods) and its exact dense BPTT are defined in :mod:`linrnn_theory.simulation.cosine`.
No theory exists for this task; the figure is simulation only.

Symmetry at g = 0: with ``m = w = e`` and ``W0 = 0`` every state, adjoint and gradient lies
in ``span{e}``, so ``Delta W`` stays ``c e e^T`` (rank one, real eigenvalue): a linear
network cannot oscillate that way, and gradient descent cannot learn the task. Random
connectivity (g > 0) breaks the symmetry.

Data file ``data/cosine.npz`` (G g values, S seeds, E = epochs + 1, R records, T steps):
``g, seeds, lr (G,), loss (G, S, E)`` (NaN after a divergence), ``status (G, S)``,
``record_epochs (R,)``, ``singular_values (G, S, R, k)``, ``times, target, mask (T,)``,
``z_initial, z_final, z_best (G, S, T)`` (output before training, after the last epoch with
a finite loss, and at ``best_epoch (G, S)``, the epoch of lowest loss).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import code_scope
from .plotting import g_color, new_figure, save_figure
from .report import fmt, md_table

__all__ = ["tasks", "run_task", "collect", "make_figure", "report", "code_version"]

NAME = "cosine"


def code_version(kind: str) -> str:
    """Code version of this figure's tasks (all ``"sim"``)."""
    return code_scope(NAME, kind)


def tasks(preset) -> list[dict]:
    """One ``"sim"`` task per (g, seed).

    Examples
    --------
    >>> from linrnn_theory.reproduce.presets import TINY
    >>> [t["lr"] for t in tasks(TINY)]
    [0.2, 0.05]
    """
    p = preset.cosine
    return [{"figure": NAME, "kind": "sim", "N": p.N, "g": float(g), "seed": int(s),
             "lr": p.lr(g), "epochs": p.epochs, "dt": p.dt, "t_max": p.t_max,
             "period": p.period, "amplitude": p.amplitude, "n_periods_loss": p.n_periods_loss,
             "pulse": p.pulse, "record_every": p.record_every}
            for g in p.g_values for s in p.seeds]


def run_task(params: dict) -> dict:
    """Train one network on the cosine task.

    Examples
    --------
    >>> from linrnn_theory.reproduce.presets import TINY
    >>> r = run_task(tasks(TINY)[0])
    >>> r["status"], r["loss"].shape
    ('completed', (11,))
    """
    from ..simulation.cosine import CosineTask, train_cosine
    if params["kind"] != "sim":
        raise ValueError(f"kind must be 'sim', got {params['kind']!r}")
    task = CosineTask(dt=params["dt"], t_max=params["t_max"], period=params["period"],
                      amplitude=params["amplitude"], n_periods_loss=params["n_periods_loss"],
                      pulse=params["pulse"])
    out = train_cosine(params["N"], params["g"], params["seed"], params["lr"],
                       params["epochs"], task, record_every=params["record_every"])
    return {**out, "figure": NAME, "kind": "sim"}


def collect(results: list[dict]) -> dict[str, np.ndarray]:
    """Arrays of ``data/cosine.npz`` (see the module docstring)."""
    gs = sorted({r["g"] for r in results})
    seeds = sorted({r["seed"] for r in results})
    r0 = results[0]
    E = r0["epochs"] + 1
    R = max(len(r["record_epochs"]) for r in results)
    k = r0["singular_values"].shape[1]
    T = len(r0["times"])
    G, S = len(gs), len(seeds)
    d = {"g": np.array(gs), "seeds": np.array(seeds), "lr": np.zeros(G),
         "loss": np.full((G, S, E), np.nan), "status": np.full((G, S), "", dtype="U16"),
         "record_epochs": np.full(R, -1), "singular_values": np.full((G, S, R, k), np.nan),
         "times": r0["times"], "target": r0["target"], "mask": r0["mask"],
         "z_initial": np.full((G, S, T), np.nan), "z_final": np.full((G, S, T), np.nan),
         "z_best": np.full((G, S, T), np.nan), "best_epoch": np.zeros((G, S), int)}
    for r in results:
        i, j = gs.index(r["g"]), seeds.index(r["seed"])
        d["lr"][i] = r["lr"]
        d["loss"][i, j, : len(r["loss"])] = r["loss"]
        d["status"][i, j] = r["status"]
        n = len(r["record_epochs"])
        d["singular_values"][i, j, :n] = r["singular_values"]
        if n == R:
            d["record_epochs"][:] = r["record_epochs"]
        d["z_initial"][i, j] = r["z_initial"]
        d["z_final"][i, j] = r["z_final"]
        d["z_best"][i, j] = r["z_best"]
        d["best_epoch"][i, j] = r["best_epoch"]
    return d


def make_figure(results: list[dict], outdir: str | os.PathLike) -> list[Path]:
    """Draw the cosine figure (PNG + PDF) and write ``data/cosine.npz``."""
    from .._io import atomic_write_npz
    d = collect(results)
    gs = list(d["g"])
    fig, ax = new_figure(1, 3, (17, 4.6))
    a_l, a_s, a_z = ax[0]
    L0 = results[0]["L0"]
    for i, g in enumerate(gs):
        c = g_color(g, gs)
        lab = f"g = {g:g}, lr = {d['lr'][i]:g}"
        for j in range(len(d["seeds"])):
            loss = d["loss"][i, j]
            a_l.semilogy(np.arange(loss.size), loss / L0, color=c, lw=1.2,
                         label=lab if j == 0 else None, alpha=0.9)
            if d["status"][i, j] == "diverged":
                last = np.nonzero(np.isfinite(loss))[0]
                if last.size:
                    a_l.plot(last[-1], loss[last[-1]] / L0, "x", color=c, ms=10, mew=2)
        rec = d["record_epochs"]
        ok = rec >= 0
        sv = d["singular_values"][i, 0][ok]            # first seed
        for q in range(min(5, sv.shape[1])):
            a_s.plot(rec[ok], sv[:, q], color=c, lw=1.3 if q < 2 else 0.8,
                     ls="-" if q < 2 else ":", label=lab if q == 0 else None)
        a_z.plot(d["times"], d["z_best"][i, 0], color=c, lw=1.4,
                 label=f"g = {g:g} (epoch {d['best_epoch'][i, 0]})")
    a_z.plot(d["times"], d["target"], color="k", lw=1.0, ls="--", label="target")
    m = d["mask"] > 0
    a_z.axvspan(d["times"][m][0], d["times"][m][-1], color="0.85", zorder=0,
                label="loss window")
    zmax = 2.5 * max(1.0, float(np.max(np.abs(d["target"]))))
    a_z.set_ylim(-zmax, zmax)
    top = np.nanmax(d["loss"]) / L0 if np.isfinite(d["loss"]).any() else 10.0
    a_l.set_ylim(top=min(max(2.0, 1.5 * top), 20.0))
    a_l.set(xlabel="epoch", ylabel=r"loss / $L_0$", title="loss (x: diverged; axis clipped at 20)")
    a_s.set(xlabel="epoch", ylabel=r"singular values of $\Delta W$",
            title=r"top 5 singular values of $\Delta W$ (seed 0; dotted: 3rd-5th)")
    a_z.set(xlabel="time t", ylabel="output z(t)",
            title="output at the epoch of lowest loss (seed 0; clipped)")
    for a in (a_l, a_s, a_z):
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    r0 = results[0]
    fig.suptitle(f"Autonomous cosine: linear RNN, N = {r0['N']}, dt = {r0['dt']:g}, t_max = "
                 f"{r0['t_max']:g}, period {r0['period']:g}, input pulse {r0['pulse']:g} "
                 f"along m = w, {r0['epochs']} epochs", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    outdir = Path(outdir)
    paths = save_figure(fig, outdir, NAME)
    paths.append(atomic_write_npz(outdir / "data" / f"{NAME}.npz", **d))
    return paths


def _rank(sv: np.ndarray, rel: float = 0.1) -> int:
    """Number of singular values above ``rel`` times the largest."""
    if sv.size == 0 or not np.isfinite(sv).all() or sv[0] <= 0:
        return 0
    return int(np.sum(sv > rel * sv[0]))


def report(results: list[dict]) -> str:
    """Markdown section: loss at start/end, best loss, status, rank of ``Delta W``."""
    r0 = results[0]
    rows = []
    for r in sorted(results, key=lambda r: (r["g"], r["seed"])):
        loss = r["loss"] / r["L0"]
        sv = r["singular_values"][-1]
        rows.append([fmt(r["g"], "g"), r["seed"], fmt(r["lr"], "g"), r["status"],
                     fmt(loss[0]), fmt(loss[-1]), fmt(np.min(loss)), int(np.argmin(loss)),
                     " ".join(fmt(x, ".3g") for x in sv[:5]), _rank(sv)])
    lines = [
        "## Autonomous cosine",
        "",
        f"Parameters: linear RNN, N = {r0['N']}, dt = {r0['dt']:g}, t_max = {r0['t_max']:g}, "
        f"period {r0['period']:g}, amplitude {r0['amplitude']:g}, loss on the last "
        f"{r0['n_periods_loss']:g} periods, m = w = a random unit vector, input pulse of "
        f"integral {r0['pulse']:g} at t = 0, {r0['epochs']} epochs of plain gradient descent "
        "on W; g and learning rates as in the table. L0 = loss of a silent network = "
        f"{r0['L0']:g}. Task definition: linrnn_theory/simulation/cosine.py.",
        "",
        md_table(["g", "seed", "lr", "status", "loss/L0 start", "loss/L0 end", "best loss/L0",
                  "best epoch", "top singular values of dW (end)", "rank (>10 % of s1)"],
                 rows),
        "",
        "At g = 0 the gradient never leaves span{m} (m = w): Delta W stays rank one and the "
        "loss cannot go below the best decaying exponential; g > 0 lets the network build "
        "an oscillating mode. Plain gradient descent at the paper's rates is not monotone "
        "on this task (loss spikes when a mode crosses the unit circle).",
    ]
    bad = [r for r in results if r["status"] != "completed"]
    if bad:
        lines += ["", f"{len(bad)} run(s) diverged: " + "; ".join(
            f"g={r['g']:g}, seed {r['seed']}: {r['message']}" for r in bad)]
    return "\n".join(lines)


#: Functions whose source enters the cache key of this figure's tasks (with the library).
TASK_CODE = (run_task,)
