"""Autonomous cosine (the paper's supplementary material): per g in {0, 0.4, 0.8} (learning
rates 0.2 / 0.15 / 0.05) the loss over epochs, the output against the target before and
after learning over the whole trial, the eigenvalues of W0 and W, and the singular values
of ``Delta W``.

The task (no input, ``x_0 = m`` with ``|m| = sqrt(N)``, readout ``w = m / N``, target
``cos(2 pi t / 5)``, loss on the first two periods, unscored run to ``t_max``) is
:class:`linrnn_theory.CosineTask`; the network and the training run are in
:mod:`linrnn_theory.simulation.cosine`. The figure is simulation only (the reduced model
of :mod:`linrnn_theory.theory.cosine_reduced` is validated in ``docs/results.md``).

Symmetry at g = 0: with ``W0 = 0`` and ``w`` parallel to ``x_0 = m`` every state, adjoint
and gradient lies in ``span{m}``, so ``Delta W`` stays ``c m m^T`` (rank one, a real
eigenvalue): the output is a decaying or growing exponential and cannot oscillate. Random
connectivity (g > 0) breaks the symmetry.

Data file ``data/cosine.npz`` (G g values, S seeds, E = epochs + 1, R records, T steps):
``g, seeds, lr (G,), loss (G, S, E)`` (NaN after a divergence), ``status (G, S)``,
``record_epochs (R,)``, ``singular_values (G, S, R, k)``, ``times, target, mask (T,)``,
``z_initial, z_final (G, S, T)`` (output before training and after the last epoch with
a finite loss), ``best_epoch (G, S)`` (the epoch of lowest loss), ``eig_initial,
eig_final (G, S, N)`` (complex) and ``sv_final (G, S, N)``.
"""

from __future__ import annotations

import numpy as np

from .figure import Figure, axis, register_figure
from .plotting import g_color, new_figure
from .report import fmt, md_table

__all__ = ["Cosine", "LEARNED_REL"]


def _rank(sv: np.ndarray, rel: float = 0.1) -> int:
    """Number of singular values above ``rel`` times the largest."""
    if sv.size == 0 or not np.isfinite(sv).all() or sv[0] <= 0:
        return 0
    return int(np.sum(sv > rel * sv[0]))


#: A run "learned" when its final loss is below this fraction of its initial loss.
LEARNED_REL = 0.01


@register_figure
class Cosine(Figure):
    """The autonomous cosine (see the module docstring); simulation only.

    Examples
    --------
    >>> Cosine.kinds, Cosine.default
    (('sim',), True)
    >>> from linrnn_theory.reproduce.presets import TINY
    >>> fig = Cosine()
    >>> ts = fig.tasks(TINY)
    >>> [t["lr"] for t in ts]
    [0.2, 0.05]
    >>> r = fig.run_task(ts[0])
    >>> r["status"], r["loss"].shape
    ('ok', (11,))
    """

    name = "cosine"

    def tasks(self, preset) -> list[dict]:
        """One ``"sim"`` task per (g, seed)."""
        p = preset.cosine
        return [self.task("sim", N=p.N, g=float(g), seed=int(s), lr=p.lr(g),
                          epochs=p.epochs, dt=p.dt, t_max=p.t_max, period=p.period,
                          amplitude=p.amplitude, n_periods_loss=p.n_periods_loss,
                          record_every=p.record_every)
                for g in p.g_values for s in p.seeds]

    def simulate(self, params: dict) -> dict:
        """Train one network on the cosine task."""
        from ..simulation.cosine import train_cosine
        from ..task import CosineTask
        task = CosineTask(dt=params["dt"], t_max=params["t_max"], period=params["period"],
                          amplitude=params["amplitude"],
                          n_periods_loss=params["n_periods_loss"])
        out = train_cosine(params["N"], params["g"], params["seed"], params["lr"],
                           params["epochs"], task, record_every=params["record_every"])
        record = {"N": params["N"], "g": float(params["g"]), "seed": params["seed"],
                  "lr": float(params["lr"]), "epochs": params["epochs"],
                  **{k: getattr(task, k) for k in ("dt", "t_max", "period", "amplitude",
                                                   "n_periods_loss")}}
        record.update({
            "figure": self.name, "kind": "sim", "L0": task.L0, "status": out.status.value,
            "message": out.message, "epochs_completed": out.epochs_completed, "loss": out.loss,
            "record_epochs": out.record_epochs, "singular_values": out.recorded_singular_values,
            **{k: getattr(out, k) for k in ("times", "target", "mask", "z_initial", "z_final",
                                            "best_epoch", "eig_initial", "eig_final",
                                            "sv_final")}})
        return record

    def collect(self, results: list[dict]) -> dict[str, np.ndarray]:
        """Arrays of ``data/cosine.npz`` (see the module docstring)."""
        gs, seeds = axis(results, "g"), axis(results, "seed")
        r0 = results[0]
        E = r0["epochs"] + 1
        R = max(len(r["record_epochs"]) for r in results)
        k = r0["singular_values"].shape[1]
        T = len(r0["times"])
        N = r0["N"]
        G, S = len(gs), len(seeds)
        d = {"g": np.array(gs), "seeds": np.array(seeds), "lr": np.zeros(G),
             "loss": np.full((G, S, E), np.nan), "status": np.full((G, S), "", dtype="U16"),
             "record_epochs": np.full(R, -1), "singular_values": np.full((G, S, R, k), np.nan),
             "times": r0["times"], "target": r0["target"], "mask": r0["mask"],
             "z_initial": np.full((G, S, T), np.nan), "z_final": np.full((G, S, T), np.nan),
             "best_epoch": np.zeros((G, S), int),
             "eig_initial": np.full((G, S, N), np.nan, complex),
             "eig_final": np.full((G, S, N), np.nan, complex),
             "sv_final": np.full((G, S, N), np.nan)}
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
            d["best_epoch"][i, j] = r["best_epoch"]
            d["eig_initial"][i, j] = r["eig_initial"]
            d["eig_final"][i, j] = r["eig_final"]
            d["sv_final"][i, j] = r["sv_final"]
        return d

    def plot(self, results: list[dict], d: dict[str, np.ndarray]):
        """One row per g (seed 0): loss / L0 over epochs; output before and after learning
        against the target over the whole trial (shaded: the loss window); eigenvalues of W0
        and W; singular values of ``Delta W`` (dashed: 10 % of the largest).
        """
        gs = list(d["g"])
        fig, ax = new_figure(len(gs), 4, (19, 3.6 * len(gs)))
        L0 = results[0]["L0"]
        m = d["mask"] > 0
        t = d["times"]
        for i, g in enumerate(gs):
            c = g_color(g, gs)
            a_l, a_z, a_e, a_s = ax[i]
            for j in range(len(d["seeds"])):
                loss = d["loss"][i, j]
                a_l.semilogy(np.arange(loss.size), loss / L0, color=c, lw=1.2,
                             alpha=1.0 if j == 0 else 0.4,
                             label=f"seed {d['seeds'][j]}" if j < 3 else None)
                if d["status"][i, j] == "diverged":
                    last = np.nonzero(np.isfinite(loss))[0]
                    if last.size:
                        a_l.plot(last[-1], loss[last[-1]] / L0, "x", color=c, ms=10, mew=2)
            a_l.set(xlabel="epoch", ylabel=r"loss / $L_0$",
                    title=f"g = {g:g}, lr = {d['lr'][i]:g}: loss")
            a_z.axvspan(t[m][0], t[m][-1], color="0.88", zorder=0, label="loss window")
            a_z.plot(t, d["target"], color="k", lw=1.0, ls="--", label="target")
            a_z.plot(t, d["z_initial"][i, 0], color="0.5", lw=1.2, label="before")
            a_z.plot(t, d["z_final"][i, 0], color=c, lw=1.4, label="after")
            zmax = 2.5 * max(1.0, float(np.max(np.abs(d["target"]))))
            a_z.set_ylim(-zmax, zmax)
            a_z.set(xlabel="time t", ylabel="output z", title="output (seed 0; clipped)")
            e0, e1 = d["eig_initial"][i, 0], d["eig_final"][i, 0]
            a_e.plot(e0.real, e0.imag, "o", color="0.6", ms=3, label=r"$W_0$")
            a_e.plot(e1.real, e1.imag, ".", color=c, ms=4, label="W (after)")
            a_e.axvline(1.0, color="k", lw=0.8, ls=":")
            a_e.set(xlabel=r"Re $\lambda$", ylabel=r"Im $\lambda$", title="eigenvalues (seed 0)")
            a_e.set_aspect("equal", adjustable="datalim")
            sv = d["sv_final"][i, 0]
            k = min(20, sv.size)
            a_s.plot(np.arange(1, k + 1), sv[:k], "o-", color=c, ms=4)
            if np.isfinite(sv[0]) and sv[0] > 0:
                a_s.axhline(0.1 * sv[0], color="k", lw=0.8, ls="--", label="10 % of largest")
            a_s.set(xlabel="index", ylabel=r"singular value of $\Delta W$",
                    title=rf"singular values of $\Delta W$ (rank {_rank(sv)})")
            for a in (a_l, a_z, a_e, a_s):
                a.grid(alpha=0.3)
                a.legend(fontsize=7)
        r0 = results[0]
        fig.suptitle(f"Autonomous cosine: linear RNN, N = {r0['N']}, dt = {r0['dt']:g}, t_max = "
                     f"{r0['t_max']:g}, period {r0['period']:g}, no input, x(0) = m, w = m/N, "
                     f"loss on the first {r0['n_periods_loss']:g} periods, {r0['epochs']} epochs",
                     fontsize=11)
        fig.tight_layout(rect=(0, 0, 1, 0.96))
        return fig

    def report(self, results: list[dict]) -> str:
        """Markdown section: loss at start/end, status, rank of ``Delta W``, learned or not."""
        r0 = results[0]
        rows = []
        for r in sorted(results, key=lambda r: (r["g"], r["seed"])):
            loss = r["loss"]
            sv = r["sv_final"]
            rel = loss[-1] / loss[0]
            learned = r["status"] == "ok" and rel < LEARNED_REL
            rows.append([fmt(r["g"], "g"), r["seed"], fmt(r["lr"], "g"), r["status"],
                         fmt(loss[0] / r["L0"]), fmt(loss[-1] / r["L0"]), fmt(rel, ".3g"),
                         " ".join(fmt(x, ".3g") for x in sv[:5]), _rank(sv),
                         "yes" if learned else "no"])
        lines = [
            "## Autonomous cosine",
            "",
            f"Parameters: linear RNN, N = {r0['N']}, dt = {r0['dt']:g}, t_max = {r0['t_max']:g}, "
            f"no input; x(0) = m with |m| = sqrt(N), readout w = m / N; target cos(2 pi t / "
            f"{r0['period']:g}) of amplitude {r0['amplitude']:g}; the loss counts the first "
            f"{r0['n_periods_loss']:g} periods, the network then runs on unscored to t_max; "
            f"{r0['epochs']} epochs of plain gradient descent on W; g and learning rates as in "
            f"the table. L0 = loss of a silent network = {r0['L0']:g}. Task definition: "
            "linrnn_theory/simulation/cosine.py.",
            "",
            md_table(["g", "seed", "lr", "status", "loss/L0 start", "loss/L0 end",
                      "final/initial loss", "top singular values of dW", "rank (>10 % of s1)",
                      f"learned (final < {LEARNED_REL:g} initial)"], rows),
            "",
            "Paper: at g = 0 gradient descent cannot learn the oscillation (W0 = 0 and w "
            "parallel to x(0) = m keep every gradient along m m^T: Delta W is rank one with a "
            "real eigenvalue); with g > 0 it learns it through a low-rank Delta W.",
        ]
        bad = [r for r in results if r["status"] != "ok"]
        if bad:
            lines += ["", f"{len(bad)} run(s) diverged: " + "; ".join(
                f"g={r['g']:g}, seed {r['seed']}: {r['message']}" for r in bad)]
        return "\n".join(lines)
