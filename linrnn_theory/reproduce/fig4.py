"""Fig. 4: learning time, ``|Delta W|_F`` at convergence, mean gradient norm and
shuffled-W0 loss against g, each normalised by its value at g = 0; simulation (mean +- sd
over seeds) against :mod:`linrnn_theory.theory` (reduced ODE and series, order 3).

Definitions (simulation; the theory functions use the same ones in gradient-flow time):

* convergence epoch ``c`` = first epoch with loss < ``conv_rel * L0`` (paper: 5 %,
  ``TrainResult.converged_epoch``); training stops there;
* learning time = ``lr * c``;
* ``|Delta W|_F`` of the weights at epoch ``c``;
* mean gradient norm = mean of ``|dL/dW|_F`` over the updates ``0 .. c - 1``
  (the Riemann sum of ``int_0^tau_c |grad| dtau / tau_c``);
* shuffled loss = loss of ``P(W0) + Delta W`` (mean over ``n_shuffles`` random
  permutations ``P`` of the entries of ``W0``) divided by ``L0``.

Runs that never converge, diverge or start unstable are excluded from the means and
counted in the report.

Data file ``data/fig4.npz`` (G = len(g), Z = len(targets), S = len(seeds)); quantity names
``Q`` in (learning_time, dw_norm, mean_gradient_norm, shuffle_loss):

================================ ========= ==============================================
key                              shape     meaning
================================ ========= ==============================================
g, targets, seeds                grid
lr                               (G, Z)    learning rate
sim_<Q>                          (G, Z, S) per run (NaN: run excluded, see sim_status)
sim_status                       (G, Z, S) "converged" / "ok" (never converged) /
                                           "diverged" / "unstable_init"
sim_converged_epoch              (G, Z, S) -1 if never
ode_<Q>, series_<Q>              (G, Z)    theory (NaN: theory gave no value, see report)
================================ ========= ==============================================

``data/fig4.csv`` has the same numbers in long format (one row per run and per theory).
"""

from __future__ import annotations

import numpy as np

from .fig3 import linear_batch_label, train_run, train_runs
from .figure import Figure, axis, register_figure, split_kinds
from .plotting import g_color, new_figure, theory_line
from .report import finite_size_caveats, fmt, md_table, mean_sd

__all__ = ["Fig4", "QUANTITIES"]

#: The quantities, each also the name of its function in :mod:`linrnn_theory.theory`.
QUANTITIES = ("learning_time", "dw_norm", "mean_gradient_norm", "shuffle_loss")
_LABELS = {"learning_time": "learning time", "dw_norm": r"$\|\Delta W\|_F$ at convergence",
           "mean_gradient_norm": "mean gradient norm",
           "shuffle_loss": r"shuffled-$W_0$ loss / $L_0$"}


_TEXT = {"learning_time": "Learning time (lr x convergence epoch)",
         "dw_norm": "Frobenius norm of Delta W at convergence",
         "mean_gradient_norm": "Mean gradient norm up to convergence",
         "shuffle_loss": "Shuffled-W0 loss / L0 at convergence"}


def _normalised_sim(d: dict, q: str, j: int):
    """Per-g mean and sd of ``sim_q / mean(sim_q at g = 0)`` for target index ``j``."""
    vals = d[f"sim_{q}"][:, j, :]
    ref = np.nanmean(vals[0]) if np.isfinite(vals[0]).any() else np.nan
    m = np.array([mean_sd(v / ref)[0] for v in vals])
    s = np.array([mean_sd(v / ref)[1] for v in vals])
    return m, s


def _measure(params: dict, res: dict, parts) -> dict:
    """The result of a Fig. 4 ``"sim"`` task from its run (:func:`~.fig3.train_runs`): the
    four quantities at the convergence epoch (NaN for a run that did not converge)."""
    import linrnn_theory as lt
    out = {k: res[k] for k in ("status", "message", "stop_epoch", "converged_epoch", "L0")}
    out.update({k: params[k] for k in params})
    out.update({q: float("nan") for q in QUANTITIES})
    out["loss"] = res["loss"]
    if parts is None or res["converged_epoch"] is None or res["status"] == "diverged":
        return out
    net, task, run = parts
    c = int(res["converged_epoch"])
    out["learning_time"] = params["lr"] * c
    out["dw_norm"] = float(np.linalg.norm(run.W - net.W0))
    out["mean_gradient_norm"] = float(np.mean(run.grad_norm[:c])) if c > 0 \
        else float("nan")
    out["shuffle_loss"] = lt.shuffle_loss(run.W, net, task, seed=params["seed"],
                                          mode=params["mode"],
                                          n_shuffles=params["n_shuffles"])
    return out


@register_figure
class Fig4(Figure):
    """Fig. 4 (see the module docstring): scalar observables at convergence against g.

    Examples
    --------
    >>> from linrnn_theory.reproduce.presets import TINY
    >>> len(Fig4().tasks(TINY))            # 2 g x 2 targets x (2 seeds + 4 quantities)
    24
    >>> sim = [t for t in Fig4().tasks(TINY) if t["kind"] == "sim"][0]
    >>> r = Fig4().run_task(sim)
    >>> r["status"], r["learning_time"] > 0
    ('converged', True)
    """

    name = "fig4"
    kinds = ("sim", "theory")

    def tasks(self, preset) -> list[dict]:
        """One ``"theory"`` task per (g, target, quantity) (both methods), one ``"sim"``
        per (g, target, seed)."""
        p = preset.fig4
        out = []
        for g in p.g_values:
            for z in p.targets:
                for q in QUANTITIES:
                    out.append(self.task("theory", g=float(g), target=float(z), quantity=q,
                                         rel_loss=p.conv_rel))
        # simulations ordered network by network (targets innermost): consecutive tasks
        # share W0, so a worker reuses its cached decomposition of W0
        for g in p.g_values:
            for s in p.seeds:
                for z in p.targets:
                    out.append(self.task("sim", N=p.N, g=float(g), target=float(z),
                                         seed=int(s), lr=p.lr(g, z), epochs=p.epochs,
                                         mode=p.mode, t_max=p.t_max, dt=p.dt,
                                         record_every=p.epochs, conv_rel=p.conv_rel,
                                         n_shuffles=p.n_shuffles))
        return out

    def simulate(self, params: dict) -> dict:
        """Train until convergence (:func:`~.fig3.train_run`) and measure the quantities."""
        return _measure(params, *train_run(params, stop_rel_loss=params["conv_rel"]))

    def batch_label(self, params: dict) -> str:
        """The networks of one g train together (:func:`~.fig3.linear_batch_label`)."""
        return linear_batch_label(params)

    def run_batch(self, params: list[dict]) -> list[dict]:
        """:meth:`simulate` of a batch of ``"sim"`` tasks, trained in one
        :func:`~.fig3.train_runs`."""
        runs = train_runs(params, stop_rel_loss=params[0]["conv_rel"])
        return [_measure(p, res, parts) for p, (res, parts) in zip(params, runs)]

    def theory(self, params: dict) -> dict:
        """The quantity from :mod:`linrnn_theory.theory` (the function of its name), by
        the reduced ODE and the series of order 3."""
        from linrnn_theory import theory
        fn = getattr(theory, params["quantity"])
        out = dict(params)
        for method in ("ode", "series"):
            try:
                val = float(fn(params["g"], params["target"], rel_loss=params["rel_loss"],
                               method=method, order=3))
                msg = "" if np.isfinite(val) else \
                    "no value (series never reaches the threshold)"
            except (RuntimeError, ValueError) as exc:
                val, msg = float("nan"), f"{type(exc).__name__}: {exc}"
            out[method] = val
            out[f"{method}_message"] = msg
        return out

    def collect(self, results: list[dict]) -> dict[str, np.ndarray]:
        """Arrays of ``data/fig4.npz`` (see the module docstring)."""
        sims, ths = split_kinds(results)
        gs, zs, seeds = axis(results, "g"), axis(results, "target"), axis(sims, "seed")
        G, Z, S = len(gs), len(zs), len(seeds)
        d = {"g": np.array(gs), "targets": np.array(zs), "seeds": np.array(seeds),
             "lr": np.full((G, Z), np.nan), "sim_status": np.full((G, Z, S), "", dtype="U16"),
             "sim_converged_epoch": np.full((G, Z, S), -1, dtype=int)}
        for q in QUANTITIES:
            d[f"sim_{q}"] = np.full((G, Z, S), np.nan)
            d[f"ode_{q}"] = np.full((G, Z), np.nan)
            d[f"series_{q}"] = np.full((G, Z), np.nan)
        for r in sims:
            i, j, k = gs.index(r["g"]), zs.index(r["target"]), seeds.index(r["seed"])
            d["lr"][i, j] = r["lr"]
            d["sim_status"][i, j, k] = r["status"]
            if r["converged_epoch"] is not None:
                d["sim_converged_epoch"][i, j, k] = r["converged_epoch"]
            for q in QUANTITIES:
                d[f"sim_{q}"][i, j, k] = r[q]
        for r in ths:
            i, j = gs.index(r["g"]), zs.index(r["target"])
            for m in ("ode", "series"):
                d[f"{m}_{r['quantity']}"][i, j] = r[m]
        return d

    def tables(self, results: list[dict], d: dict[str, np.ndarray]) -> dict[str, str]:
        """``fig4.csv``: the numbers of ``d`` in long format, one row per run and per
        theory (``source`` = sim, ode, series)."""
        lines = ["source,g,target,seed,status," + ",".join(QUANTITIES)]
        for i, g in enumerate(d["g"]):
            for j, z in enumerate(d["targets"]):
                for k, s in enumerate(d["seeds"]):
                    vals = ",".join(repr(float(d[f"sim_{q}"][i, j, k])) for q in QUANTITIES)
                    lines.append(f"sim,{float(g)!r},{float(z)!r},{int(s)},"
                                 f"{d['sim_status'][i, j, k]},{vals}")
                for m in ("ode", "series"):
                    vals = ",".join(repr(float(d[f"{m}_{q}"][i, j])) for q in QUANTITIES)
                    lines.append(f"{m},{float(g)!r},{float(z)!r},,,{vals}")
        return {"fig4.csv": "\n".join(lines) + "\n"}

    def plot(self, results: list[dict], d: dict[str, np.ndarray]):
        """One panel per quantity against g, divided by its g = 0 value."""
        import matplotlib.lines as mlines
        gs, zs = d["g"], list(d["targets"])
        fig, ax = new_figure(1, 4, (17, 4.4))
        dense_g = gs
        for a, q in zip(ax[0], QUANTITIES):
            for j, z in enumerate(zs):
                c = g_color(z, zs)
                m, s = _normalised_sim(d, q, j)
                off = (j - (len(zs) - 1) / 2) * 0.006
                a.errorbar(gs + off, m, yerr=s, fmt="o", ms=5, mfc="white", mew=1.4, capsize=3,
                           color=c)
                for meth in ("ode", "series"):
                    th = d[f"{meth}_{q}"][:, j]
                    theory_line(a, dense_g, th / th[0], c, meth)
            if q != "dw_norm":
                from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
                a.set_yscale("log")
                a.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                a.yaxis.set_major_formatter(FormatStrFormatter("%g"))
                a.yaxis.set_minor_formatter(NullFormatter())
            a.set(xlabel="g", ylabel="relative to g = 0", title=_LABELS[q])
            a.grid(alpha=0.3)
        handles = [mlines.Line2D([], [], color=g_color(z, zs), marker="o", mfc="white", ls="-",
                                 label=rf"$\hat z$ = {z:g}") for z in zs]
        handles += [mlines.Line2D([], [], color="k", marker="o", mfc="white", ls="none",
                                  label="simulation (mean $\\pm$ sd)"),
                    mlines.Line2D([], [], color="k", ls="-", label="theory: reduced ODE"),
                    mlines.Line2D([], [], color="k", ls="--", label="theory: series order 3")]
        ax[0, 0].legend(handles=handles, fontsize=8, loc="lower left")
        sims = [r for r in results if r["kind"] == "sim"]
        s0 = sims[0]
        fig.suptitle(f"Fig. 4: scaling with g, normalised by g = 0 (N = {s0['N']}, "
                     f"{s0['mode']}, {len(d['seeds'])} seeds; convergence at loss < "
                     f"{s0['conv_rel']:g} L0)", fontsize=11)
        fig.tight_layout(rect=(0, 0, 1, 0.94))
        return fig

    def report(self, results: list[dict]) -> str:
        """Markdown section of Fig. 4: per quantity and g, simulation mean +- sd, theory and
        relative errors ``(sim - theory) / theory`` (unnormalised values)."""
        d = self.collect(results)
        sims = [r for r in results if r["kind"] == "sim"]
        s0 = sims[0]
        lines = [
            "## Fig. 4: learning time, |dW|, gradient norm and shuffled loss against g",
            "",
            f"Parameters: N = {s0['N']}, mode = {s0['mode']} (t_max = {s0['t_max']:g}, dt = "
            f"{s0['dt']:g}), at most {s0['epochs']} epochs, g = {', '.join(f'{g:g}' for g in d['g'])}, "
            f"targets {', '.join(f'{z:g}' for z in d['targets'])}, seeds "
            f"{list(map(int, d['seeds']))}, lr = lr0 (1 - g^2)^2, convergence at loss < "
            f"{s0['conv_rel']:g} L0, shuffled loss averaged over {s0['n_shuffles']} permutations.",
            "",
            "Per target: simulation mean +- sd over converged runs (unnormalised; n = runs), and "
            "the relative errors (sim - ODE)/ODE and (sim - series)/series. The figure shows "
            "the same numbers divided by their g = 0 value.",
        ]
        summary = {}
        for q in QUANTITIES:
            rows = []
            errs_ode, errs_ser = [], []
            for i, g in enumerate(d["g"]):
                row = [fmt(g, "g")]
                for j, _ in enumerate(d["targets"]):
                    m, s, n = mean_sd(d[f"sim_{q}"][i, j])
                    ode, ser = d[f"ode_{q}"][i, j], d[f"series_{q}"][i, j]
                    e1 = (m - ode) / ode if np.isfinite(m) and np.isfinite(ode) else np.nan
                    e2 = (m - ser) / ser if np.isfinite(m) and np.isfinite(ser) else np.nan
                    errs_ode.append(e1)
                    errs_ser.append(e2)
                    row += [f"{fmt(m)} +- {fmt(s, '.2g')} (n={n})", fmt(e1, '+.1%'),
                            fmt(e2, '+.1%')]
                rows.append(row)
            summary[q] = (np.nanmax(np.abs(errs_ode)) if np.isfinite(errs_ode).any() else np.nan,
                          np.nanmax(np.abs(errs_ser)) if np.isfinite(errs_ser).any() else np.nan)
            header = ["g"]
            for z in d["targets"]:
                header += [f"z={z:g}: sim", "err ODE", "err series"]
            lines += ["", f"### {_TEXT[q]}", "", md_table(header, rows)]
        lines += ["", "Largest |relative error| over the grid: " + "; ".join(
            f"{q}: ODE {fmt(a, '.1%')}, series {fmt(b, '.1%')}" for q, (a, b) in summary.items())]
        for caveat in finite_size_caveats(s0["N"], [r["g"] for r in sims]):
            lines += ["", caveat]
        excluded = [r for r in sims if r["status"] != "converged"]
        if excluded:
            lines += ["", f"{len(excluded)} of {len(sims)} run(s) excluded from the means "
                      "(not converged, diverged or unstable at start): " + "; ".join(
                          f"g={r['g']:g}, z={r['target']:g}, seed {r['seed']}: {r['status']}"
                          for r in excluded)]
        else:
            lines += ["", f"All {len(sims)} runs converged."]
        msgs = [r for r in results if r["kind"] == "theory" and (r.get("ode_message") or
                                                                    r.get("series_message"))]
        if msgs:
            lines += ["", "Theory without a value: " + "; ".join(
                f"g={r['g']:g}, z={r['target']:g}, {r['quantity']}: "
                f"{r.get('ode_message') or ''} {r.get('series_message') or ''}".strip()
                for r in msgs)]
        return "\n".join(lines)
