"""Failure of learning for large targets (docs/paper.md section 5).

Finite-time task (BPTT, ``t_max = 201``, ``dt = 0.5``), ``N = 256``, ``g`` in {0.6, 0.8},
targets ``z_hat`` in {2, 4} with ``lr = lr0 (1 - g^2)^2``, ``lr0 = 0.002`` for ``z_hat = 2``
and ``0.001`` for ``z_hat = 4`` (the paper lists both rates; we pair the smaller rate with
the larger target, as in Figs. 3-4). Gradient descent can push a real eigenvalue of ``W``
across the stability line ``Re(lambda) = 1``: the finite-time readout then grows like
``exp((lambda - 1) t)`` and the loss jumps up or blows up.

Per run the figure shows the loss and the largest real part of the eigenvalues of ``W``
(recorded every ``eig_every`` epochs) and marks: the first recorded epoch with
``max Re(lambda) >= 1`` (vertical dotted line) and the epoch at which training stopped as
"diverged" (loss above 1e6 x L0 or non-finite; cross).

A learning **failure** is declared when the run diverged, or ended with a loss above
``conv_rel * L0`` (5 %), or lost convergence again (loss back above 5 % L0 after having
been below).

Theory overlay (:mod:`linrnn_theory.theory.failure`, one ``"theory"`` task per (g, target)):
``predict_failure(g, target, lr=lr, epochs=epochs)`` (large-N reduced gradient descent with
the actual step) and, where the preset asks for it (its bisection costs minutes),
``critical_target(g, lr=lr, epochs=epochs)``, shown in the panel titles and compared in
the report.

Data file ``data/diverge.npz`` (G g values, Z targets, S seeds, E epochs, R records):
``g, targets, seeds, lr (G, Z), tau (G, Z, E), loss (G, Z, S, E)`` (NaN after a stop),
``record_epochs (G, Z, R)`` (-1 padding), ``max_re_eig (G, Z, S, R)``,
``status (G, Z, S)``, ``stop_epoch``, ``cross_epoch`` (first recorded epoch with
``max Re >= 1``; -1 if none), ``failed (G, Z, S)`` (bool), ``theory_available`` (bool),
``theory_critical_target (G, Z)`` (for the learning rate of that cell) and
``theory_fails (G, Z)`` (NaN / -1 when unavailable).
"""

from __future__ import annotations

import numpy as np

from ..theory import failure
from .figure import Figure, axis, register_figure, split_kinds
from .plotting import g_color, new_figure
from .report import fmt, md_table

__all__ = ["Diverge"]


@register_figure
class Diverge(Figure):
    """Failure of learning for large targets (see the module docstring).

    Examples
    --------
    >>> fig = Diverge()
    >>> from linrnn_theory.reproduce.presets import TINY
    >>> sims = [t for t in fig.tasks(TINY) if t["kind"] == "sim"]
    >>> len(sims)
    2
    >>> r = fig.run_task(sims[0])
    >>> r["status"], r["max_re_eig"].shape
    ('ok', (2,))
    """

    name = "diverge"
    kinds = ("sim", "theory")

    def tasks(self, preset) -> list[dict]:
        """One ``"theory"`` task per (g, target), one ``"sim"`` per (g, target, seed)."""
        p = preset.diverge
        return self.cell_tasks(
            p, lambda g, z: {"lr": p.lr(g, z), "epochs": p.epochs,
                             "critical_target": bool(p.critical_target)},
            lambda g, z: {"N": p.N, "lr": p.lr(g, z), "epochs": p.epochs, "t_max": p.t_max,
                          "dt": p.dt, "eig_every": p.eig_every, "conv_rel": 0.05})

    def simulate(self, params: dict) -> dict:
        """Train with BPTT, recording the eigenvalues of W; the failure theory of this
        network's own reduced model."""
        import linrnn_theory as lt
        net = lt.init_network(N=params["N"], g=params["g"], seed=params["seed"])
        task = lt.FixedPointTask(target=params["target"], t_max=params["t_max"], dt=params["dt"])
        run = lt.train(net, task, lr=params["lr"], epochs=params["epochs"], mode="bptt",
                       record_every=params["eig_every"], record_eigenvalues=True,
                       conv_rel=params["conv_rel"])
        ev = run.eigenvalues
        max_re = ev.real.max(axis=1) if ev is not None and ev.size else np.zeros(0)
        lead = ev[np.arange(len(ev)), ev.real.argmax(axis=1)] if ev is not None and ev.size \
            else np.zeros(0, dtype=complex)
        cross = np.nonzero(max_re >= 1.0)[0]
        rel = run.loss / task.L0
        below = np.nonzero(rel < params["conv_rel"])[0]
        relapse = bool(below.size and np.any(rel[below[0]:] >= params["conv_rel"]))
        final_rel = float(rel[-1]) if rel.size else float("nan")
        failed = run.status == "diverged" or not final_rel < params["conv_rel"] or relapse
        # the same theory with this network's own reduced model (finite N)
        pred = failure.predict_failure(params["g"], params["target"], lr=params["lr"],
                                       epochs=params["epochs"], network=net)
        inst = {"instance_status": str(pred.status.value), "instance_fails": bool(pred.fails)}
        return {**params, **inst, "L0": task.L0, "status": run.status, "message": run.message,
                "stop_epoch": run.stop_epoch, "converged_epoch": run.converged_epoch,
                "tau": run.tau, "loss": run.loss, "record_epochs": run.record_epochs,
                "max_re_eig": max_re, "leading_eig": lead,
                "cross_epoch": int(run.record_epochs[cross[0]]) if cross.size else None,
                "final_loss_rel": final_rel, "relapse": relapse, "failed": bool(failed),
                "sv_final": run.recorded_singular_values[-1] if len(run.record_epochs) else np.zeros(0)}

    def theory(self, params: dict) -> dict:
        """The large-N failure theory for this cell's learning rate."""
        g, z, lr, ep = params["g"], params["target"], params["lr"], params["epochs"]
        # the bisection of critical_target costs minutes (many reduced descents at large
        # targets); presets enable it only for --full
        crit = float(failure.critical_target(g, lr=lr, epochs=ep)) if params["critical_target"] \
            else float("nan")
        pred = failure.predict_failure(g, z, lr=lr, epochs=ep)
        return {**params, "critical_target": crit, "fails": bool(pred.fails),
                "theory_status": pred.status.value, "lambda_final": pred.lambda_final,
                "lr_sharpness_final": pred.lr_sharpness_final}

    def collect(self, results: list[dict]) -> dict[str, np.ndarray]:
        """Arrays of ``data/diverge.npz`` (see the module docstring)."""
        sims, ths = split_kinds(results)
        gs, zs, seeds = axis(sims, "g"), axis(sims, "target"), axis(sims, "seed")
        E = sims[0]["epochs"]
        R = max(len(r["record_epochs"]) for r in sims)
        G, Z, S = len(gs), len(zs), len(seeds)
        d = {"g": np.array(gs), "targets": np.array(zs), "seeds": np.array(seeds),
             "lr": np.zeros((G, Z)), "tau": np.zeros((G, Z, E)),
             "loss": np.full((G, Z, S, E), np.nan), "record_epochs": np.full((G, Z, R), -1),
             "max_re_eig": np.full((G, Z, S, R), np.nan),
             "status": np.full((G, Z, S), "", dtype="U16"), "stop_epoch": np.zeros((G, Z, S), int),
             "cross_epoch": np.full((G, Z, S), -1), "failed": np.zeros((G, Z, S), bool),
             "theory_available": np.array(bool(ths)),
             "theory_critical_target": np.full((G, Z), np.nan),
             "theory_fails": np.full((G, Z), -1)}
        for r in sims:
            i, j, k = gs.index(r["g"]), zs.index(r["target"]), seeds.index(r["seed"])
            d["lr"][i, j] = r["lr"]
            d["tau"][i, j] = r["lr"] * np.arange(E)
            d["loss"][i, j, k, : len(r["loss"])] = r["loss"]
            n = len(r["record_epochs"])
            d["record_epochs"][i, j, :n] = r["record_epochs"]
            d["max_re_eig"][i, j, k, :n] = r["max_re_eig"]
            d["status"][i, j, k] = r["status"]
            d["stop_epoch"][i, j, k] = r["stop_epoch"]
            d["cross_epoch"][i, j, k] = -1 if r["cross_epoch"] is None else r["cross_epoch"]
            d["failed"][i, j, k] = r["failed"]
        for r in ths:
            i, j = gs.index(r["g"]), zs.index(r["target"])
            d["theory_critical_target"][i, j] = r["critical_target"]
            d["theory_fails"][i, j] = int(r["fails"])
        return d

    def plot(self, results: list[dict], d: dict[str, np.ndarray]):
        """Loss and the largest real part of the eigenvalues of W over epochs."""
        gs, zs = list(d["g"]), list(d["targets"])
        fig, ax = new_figure(2, len(zs), (6.2 * len(zs), 7.6))
        styles = ["-", "--", ":", "-."]
        for j, z in enumerate(zs):
            a_l, a_e = ax[0, j], ax[1, j]
            L0 = 0.5 * z * z
            for i, g in enumerate(gs):
                c = g_color(g, gs + [1.0])
                for k, s in enumerate(d["seeds"]):
                    lab = f"g = {g:g}" + (f", seed {s}" if len(d["seeds"]) > 1 else "")
                    ls = styles[k % len(styles)]
                    loss = d["loss"][i, j, k]
                    ep = np.arange(loss.size)
                    a_l.semilogy(ep, loss / L0, color=c, ls=ls, lw=1.3, label=lab)
                    rec = d["record_epochs"][i, j]
                    ok = rec >= 0
                    a_e.plot(rec[ok], d["max_re_eig"][i, j, k][ok], color=c, ls=ls, lw=1.3,
                             marker=".", ms=3, label=lab)
                    ce = d["cross_epoch"][i, j, k]
                    if ce >= 0:
                        for a in (a_l, a_e):
                            a.axvline(ce, color=c, ls=":", lw=1.0)
                    if d["status"][i, j, k] == "diverged":
                        se = d["stop_epoch"][i, j, k]
                        last = loss[np.isfinite(loss)]
                        a_l.plot([se - 1], [last[-1] / L0 if last.size else 1.0], "x", color=c,
                                 ms=10, mew=2)
            a_l.axhline(0.05, color="0.4", lw=0.8, ls="--")
            a_l.text(0.99, 0.05, "5 % of $L_0$", transform=a_l.get_yaxis_transform(),
                     ha="right", va="bottom", fontsize=8, color="0.3")
            a_e.axhline(1.0, color="k", lw=1.0)
            a_e.text(0.99, 1.0, r"stability line Re $\lambda$ = 1",
                     transform=a_e.get_yaxis_transform(), ha="right", va="bottom", fontsize=8)
            lr0 = d["lr"][0, j] / (1 - gs[0] ** 2) ** 2
            title = rf"$\hat z$ = {z:g}, lr0 = {lr0:g}"
            if bool(d["theory_available"]):
                pred = ", ".join(f"g={g:g}: {'fails' if d['theory_fails'][i, j] == 1 else 'learns'}"
                                 + (f" ($z_c$ = {d['theory_critical_target'][i, j]:.3g})"
                                    if np.isfinite(d["theory_critical_target"][i, j]) else "")
                                 for i, g in enumerate(gs))
                title += f"\ntheory: {pred}"
            a_l.set(xlabel="epoch", ylabel=r"loss / $L_0$", title=title)
            a_e.set(xlabel="epoch", ylabel=r"max Re $\lambda(W)$",
                    title=r"largest real part of the eigenvalues of $W$")
            for a in (a_l, a_e):
                a.grid(alpha=0.3)
                a.legend(fontsize=8, loc="best")
        N = next(r["N"] for r in results if r["kind"] == "sim")
        t_max = next(r["t_max"] for r in results if r["kind"] == "sim")
        note = "" if bool(d["theory_available"]) else " (no failure theory available: simulation only)"
        fig.suptitle(f"Failure of learning for large targets: N = {N}, finite time t_max = "
                     f"{t_max:g}; dotted: first crossing of Re $\\lambda$ = 1, x: diverged{note}",
                     fontsize=11)
        fig.tight_layout(rect=(0, 0, 1, 0.95))
        return fig

    def report(self, results: list[dict]) -> str:
        """Markdown section: per run the outcome, crossing epoch and (if available) theory."""
        d = self.collect(results)
        sims = sorted((r for r in results if r["kind"] == "sim"),
                      key=lambda r: (r["g"], r["target"], r["seed"]))
        s0 = sims[0]
        th = {(r["g"], r["target"]): r for r in results if r["kind"] == "theory"}
        rows = []
        agree = []
        agree_inst = []
        for r in sims:
            t = th.get((r["g"], r["target"]))
            pred = "--" if t is None else t["theory_status"]
            if t is not None:
                agree.append(bool(t["fails"]) == (r["status"] == "diverged"))
            ipred = r.get("instance_status") or "--"
            if r.get("instance_fails") is not None:
                agree_inst.append(bool(r["instance_fails"]) == (r["status"] == "diverged"))
            rows.append([fmt(r["g"], "g"), fmt(r["target"], "g"), r["seed"], fmt(r["lr"], ".4g"),
                         r["status"], "--" if r["converged_epoch"] is None else r["converged_epoch"],
                         "--" if r["cross_epoch"] is None else r["cross_epoch"],
                         fmt(float(np.nanmax(r["max_re_eig"])) if len(r["max_re_eig"]) else None,
                             ".4f"),
                         fmt(r["final_loss_rel"]), "yes" if r["relapse"] else "no",
                         "**FAILED**" if r["failed"] else "learned", pred, ipred])
        lines = [
            "## Failure of learning for large targets",
            "",
            f"Parameters: N = {s0['N']}, finite-time task (bptt), t_max = {s0['t_max']:g}, dt = "
            f"{s0['dt']:g}, {s0['epochs']} epochs, eigenvalues of W every {s0['eig_every']} "
            "epochs, lr = lr0 (1 - g^2)^2 with lr0 = 0.002 for target 2 and 0.001 for target 4 "
            "(our pairing of the paper's two rates).",
            "",
            "Failure = diverged, or final loss above 5 % L0, or convergence lost again "
            "(relapse). 'cross' = first recorded epoch with max Re(lambda) >= 1.",
            "",
            md_table(["g", "target", "seed", "lr", "status", "converged epoch", "cross epoch",
                      "max Re(lambda) seen", "final loss/L0", "relapse", "outcome",
                      "theory (large N)", "theory (this network)"], rows),
            "",
        ]
        if th:
            crit = "; ".join(f"g = {r['g']:g}, lr = {r['lr']:.4g}: z_c = {fmt(r['critical_target'], '.4g')}"
                             f" (target {r['target']:g}: {r['theory_status']}, lr*S at the flow's "
                             f"solution {fmt(r['lr_sharpness_final'])})"
                             for r in sorted(th.values(), key=lambda r: (r["g"], r["target"])))
            lines.append("Theory (linrnn_theory.theory.failure: reduced gradient descent with the "
                         "actual step in the fixed-point limit; statuses converged / "
                         "edge_of_stability (learns a different solution with lr*S ~ 2, the loss "
                         "may relapse) / diverged): " + crit + ". Divergence predicted vs "
                         f"simulated: large-N model {sum(agree)} of {len(agree)} runs agree"
                         + (f"; each network's own reduced model {sum(agree_inst)} of "
                            f"{len(agree_inst)}" if agree_inst else "") + ". (The 'outcome' "
                         "column also counts a relapse or a final loss above 5 % L0 as a "
                         "failure.)")
        else:
            lines.append("No failure theory was available (`linrnn_theory.theory.failure` not "
                         "importable): the figure shows simulation only.")
        return "\n".join(lines)
