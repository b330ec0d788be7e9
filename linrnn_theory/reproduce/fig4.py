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
instance_<Q>                     (G, Z, S) each network's own reduced ODE (instance model;
                                           NaN where the run did not start)
finite_n_<Q>, finite_n_<Q>_std   (G, Z)    finite-N theory at the simulated N: mean and sd
                                           over networks (NaN for the shuffled loss)
finite_n_status                  (G, Z)    "ok" or "finite_size" (outside its validity)
================================ ========= ==============================================

Three predictions stand beside each simulated point: the large-N reduced ODE (``ode``), the
finite-N theory at the simulated N (``finite_n``, the theory functions with ``N``) and each network's own reduced ODE (``instance``,
:func:`linrnn_theory.theory.all_observables` with ``network``), the exact gradient-flow
theory of that network.

``data/fig4.csv`` has the same numbers in long format (one row per run, per instance
prediction and per theory).
"""

from __future__ import annotations

import numpy as np

from ..theory.finite_n import SPREAD_OBSERVABLES
from .fig3 import linear_batch_label, train_run, train_runs
from .figure import Figure, axis, register_figure, split_kinds
from .plotting import g_color, new_figure, theory_band, theory_line
from .report import finite_size_caveats, fmt, md_table, mean_sd

__all__ = ["Fig4", "QUANTITIES"]

#: The quantities, each also the name of its function in :mod:`linrnn_theory.theory`.
QUANTITIES = ("learning_time", "dw_norm", "mean_gradient_norm", "shuffle_loss")
_LABELS = {"learning_time": "learning time", "dw_norm": r"$\|\Delta W\|_F$ at convergence",
           "mean_gradient_norm": "mean gradient norm",
           "shuffle_loss": r"shuffled-$W_0$ loss / $L_0$"}


#: The theory rows of ``fig4.csv``: source -> key pattern of ``data/fig4.npz``.
_THEORY_ROWS = {"ode": "ode_{}", "series": "series_{}", "finite_n": "finite_n_{}",
                "finite_n_std": "finite_n_{}_std"}

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
    out.update({f"instance_{q}": float("nan") for q in QUANTITIES})
    out["instance_message"] = "the run did not start" if parts is None else ""
    out["loss"] = res["loss"]
    if parts is not None:
        try:
            own = lt.theory.all_observables(target=params["target"], network=parts[0],
                                            rel_loss=params["conv_rel"])
            out.update({f"instance_{q}": v for q, v in own.items()})
        except (RuntimeError, ValueError) as exc:
            out["instance_message"] = f"{type(exc).__name__}: {exc}"
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


def _rel(sim, theory):
    """``(sim - theory) / theory`` (NaN where either is not finite); arrays broadcast."""
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (np.asarray(sim, dtype=float) - theory) / np.asarray(theory, dtype=float)
    return np.where(np.isfinite(out), out, np.nan)[()]


def _spread_table(d: dict[str, np.ndarray], q: str) -> str:
    """Markdown table: per g and target, the sample sd of the simulated quantity ``q``, the
    finite-N sd, their relative difference and the theory's status."""
    rows = []
    for i, g in enumerate(d["g"]):
        row = [fmt(g, "g")]
        for j, _ in enumerate(d["targets"]):
            v = d[f"sim_{q}"][i, j]
            v = v[np.isfinite(v)]
            sd = float(np.std(v, ddof=1)) if v.size >= 2 else float("nan")
            pred = d[f"finite_n_{q}_std"][i, j]
            row += [fmt(sd), fmt(pred), fmt(_rel(sd, pred), "+.0%"),
                    str(d["finite_n_status"][i, j]) or "n/a"]
        rows.append(row)
    header = ["g"]
    for z in d["targets"]:
        header += [f"z={z:g}: sd sim", "sd finite-N", "rel diff", "status"]
    return md_table(header, rows)


def _finite_n_entry(params: dict) -> dict:
    """The finite-N theory of a theory task at the simulated ``N``: mean and sd over
    networks (NaN for the shuffled loss, which it does not give) and the theory's
    verdict."""
    from linrnn_theory import theory
    from linrnn_theory.theory.finite_n import validity
    g, N, q = params["g"], params["N"], params["quantity"]
    out = {"finite_n": float("nan"), "finite_n_std": float("nan"), "finite_n_status": "",
           "finite_n_message": "the finite-N theory does not give the shuffled loss"}
    if q not in SPREAD_OBSERVABLES:
        return out
    try:
        mean, std = getattr(theory, q)(g, params["target"], rel_loss=params["rel_loss"], N=N,
                                       spread=True)
        v = validity(g, N)
        out.update(finite_n=float(mean), finite_n_std=float(std),
                   finite_n_status="ok" if v.ok else "finite_size", finite_n_message=v.message)
    except (RuntimeError, ValueError) as exc:
        out["finite_n_message"] = f"{type(exc).__name__}: {exc}"
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
                                         rel_loss=p.conv_rel, N=p.N))
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
        """The networks of one g train together (:func:`~.fig3.linear_batch_label`); the
        four theory tasks of one (g, target) run together, so that the finite-N expansion
        they share (:func:`linrnn_theory.theory.finite_n.observables_spread`, cached) is
        computed once."""
        if params["kind"] == "theory":
            from ..sweep.cache import canonical_json
            return canonical_json({k: v for k, v in params.items() if k != "quantity"})
        return linear_batch_label(params)

    def run_batch(self, params: list[dict]) -> list[dict]:
        """:meth:`simulate` of a batch of ``"sim"`` tasks, trained in one
        :func:`~.fig3.train_runs`; theory tasks one after the other in this process."""
        if params[0]["kind"] == "theory":
            return [self.theory(p) for p in params]
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
        out.update(_finite_n_entry(params))
        return out

    def collect(self, results: list[dict]) -> dict[str, np.ndarray]:
        """Arrays of ``data/fig4.npz`` (see the module docstring)."""
        sims, ths = split_kinds(results)
        gs, zs, seeds = axis(results, "g"), axis(results, "target"), axis(sims, "seed")
        G, Z, S = len(gs), len(zs), len(seeds)
        d = {"g": np.array(gs), "targets": np.array(zs), "seeds": np.array(seeds),
             "lr": np.full((G, Z), np.nan), "sim_status": np.full((G, Z, S), "", dtype="U16"),
             "sim_converged_epoch": np.full((G, Z, S), -1, dtype=int)}
        d["finite_n_status"] = np.full((G, Z), "", dtype="U16")
        for q in QUANTITIES:
            d[f"sim_{q}"] = np.full((G, Z, S), np.nan)
            d[f"instance_{q}"] = np.full((G, Z, S), np.nan)
            for m in ("ode", "series", "finite_n"):
                d[f"{m}_{q}"] = np.full((G, Z), np.nan)
            d[f"finite_n_{q}_std"] = np.full((G, Z), np.nan)
        for r in sims:
            i, j, k = gs.index(r["g"]), zs.index(r["target"]), seeds.index(r["seed"])
            d["lr"][i, j] = r["lr"]
            d["sim_status"][i, j, k] = r["status"]
            if r["converged_epoch"] is not None:
                d["sim_converged_epoch"][i, j, k] = r["converged_epoch"]
            for q in QUANTITIES:
                d[f"sim_{q}"][i, j, k] = r[q]
                d[f"instance_{q}"][i, j, k] = r[f"instance_{q}"]
        for r in ths:
            i, j, q = gs.index(r["g"]), zs.index(r["target"]), r["quantity"]
            for m in ("ode", "series", "finite_n"):
                d[f"{m}_{q}"][i, j] = r[m]
            d[f"finite_n_{q}_std"][i, j] = r["finite_n_std"]
            if r["finite_n_status"]:
                d["finite_n_status"][i, j] = r["finite_n_status"]
        return d

    def tables(self, results: list[dict], d: dict[str, np.ndarray]) -> dict[str, str]:
        """``fig4.csv``: the numbers of ``d`` in long format, one row per run, per instance
        prediction and per theory (``source`` = sim, instance, ode, series, finite_n,
        finite_n_std; ``status`` of finite_n rows: the theory's verdict)."""
        lines = ["source,g,target,seed,status," + ",".join(QUANTITIES)]
        for i, g in enumerate(d["g"]):
            for j, z in enumerate(d["targets"]):
                for k, s in enumerate(d["seeds"]):
                    vals = ",".join(repr(float(d[f"sim_{q}"][i, j, k])) for q in QUANTITIES)
                    lines.append(f"sim,{float(g)!r},{float(z)!r},{int(s)},"
                                 f"{d['sim_status'][i, j, k]},{vals}")
                    vals = ",".join(repr(float(d[f"instance_{q}"][i, j, k])) for q in QUANTITIES)
                    lines.append(f"instance,{float(g)!r},{float(z)!r},{int(s)},,{vals}")
                for m, key in _THEORY_ROWS.items():
                    vals = ",".join(repr(float(d[key.format(q)][i, j])) for q in QUANTITIES)
                    status = d["finite_n_status"][i, j] if m.startswith("finite_n") else ""
                    lines.append(f"{m},{float(g)!r},{float(z)!r},,{status},{vals}")
        return {"fig4.csv": "\n".join(lines) + "\n"}

    def plot(self, results: list[dict], d: dict[str, np.ndarray]):
        """One panel per quantity against g, divided by its g = 0 value."""
        import matplotlib.lines as mlines
        import matplotlib.patches as mpatches
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
                own = np.array([mean_sd(v)[0] for v in d[f"instance_{q}"][:, j]])
                a.plot(gs + off, own / own[0], "x", ms=6, mew=1.4, color=c)
                fin = d[f"finite_n_{q}"][:, j]
                if np.isfinite(fin).any():
                    theory_band(a, gs, fin / fin[0], d[f"finite_n_{q}_std"][:, j] / fin[0], c,
                                log=q != "dw_norm")
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
                    mlines.Line2D([], [], color="k", ls="--", label="theory: series order 3"),
                    mlines.Line2D([], [], color="k", marker="x", ls="none",
                                  label="theory: each network's own ODE (mean)"),
                    mpatches.Patch(facecolor="none", edgecolor="k", hatch="////",
                                   label="theory: finite-N mean $\\pm$ sd")]
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
            "Per target: simulation mean +- sd over converged runs (unnormalised; n = runs) and "
            "the relative errors of three predictions beside it: the large-N reduced ODE "
            "(sim - ODE)/ODE; the finite-N theory at this N (sim - finite-N mean)/finite-N "
            "mean (not for the shuffled loss); and each network's own reduced ODE (instance model), "
            "the mean over runs of (sim - own)/own, paired run by run. Then the series "
            "(sim - series)/series. The figure shows the same numbers divided by their g = 0 "
            "value.",
        ]
        summary = {}
        for q in QUANTITIES:
            rows = []
            errs: dict[str, list] = {"ODE": [], "finite-N": [], "own ODE": [], "series": []}
            for i, g in enumerate(d["g"]):
                row = [fmt(g, "g")]
                for j, _ in enumerate(d["targets"]):
                    sim = d[f"sim_{q}"][i, j]
                    m, s, n = mean_sd(sim)
                    e = {"ODE": _rel(m, d[f"ode_{q}"][i, j]),
                         "finite-N": _rel(m, d[f"finite_n_{q}"][i, j]),
                         "own ODE": mean_sd(_rel(sim, d[f"instance_{q}"][i, j]))[0],
                         "series": _rel(m, d[f"series_{q}"][i, j])}
                    for k, v in e.items():
                        errs[k].append(v)
                    row += [f"{fmt(m)} +- {fmt(s, '.2g')} (n={n})"] + [fmt(v, '+.1%')
                                                                       for v in e.values()]
                rows.append(row)
            summary[q] = {k: np.nanmax(np.abs(v)) if np.isfinite(v).any() else np.nan
                          for k, v in errs.items()}
            header = ["g"]
            for z in d["targets"]:
                header += [f"z={z:g}: sim", "err ODE", "err finite-N", "err own ODE",
                           "err series"]
            lines += ["", f"### {_TEXT[q]}", "", md_table(header, rows)]
        lines += ["", "### Spread over networks", "",
                  "Standard deviation over converged runs (sample sd) against the finite-N "
                  "prediction at this N, and the theory's verdict (finite_size: outside its "
                  "validity); with few seeds the sample sd itself is uncertain by about "
                  f"1/sqrt(2 (n - 1)) = {1 / np.sqrt(2 * max(len(d['seeds']) - 1, 1)):.0%}."]
        for q in SPREAD_OBSERVABLES:
            lines += ["", f"{_TEXT[q]}:", "", _spread_table(d, q)]
        lines += ["", "Largest |relative error| over the grid: " + "; ".join(
            f"{q}: " + ", ".join(f"{k} {fmt(v, '.1%')}" for k, v in e.items()
                                 if np.isfinite(v)) for q, e in summary.items())]
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
