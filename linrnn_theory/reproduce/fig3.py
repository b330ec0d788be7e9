"""Fig. 3: loss and top singular values of ``Delta W`` over the rescaled learning time
``beta^2 tau`` (``beta = 1/(1 - g^2)``), simulation (mean +- sd over seeds) against the
third-order series and the reduced ODE of :func:`linrnn_theory.theory.predict`.

Tasks: one ``"sim"`` task per (g, target, seed) -- :func:`linrnn_theory.train` for the full
number of epochs -- and one ``"theory"`` task per (g, target) evaluated at the same learning
times ``tau = lr * epoch``.

Data file ``data/fig3.npz`` (G = len(g), Z = len(targets), S = len(seeds), E = epochs,
R = recorded epochs):

============================ ============ ==================================================
key                          shape        meaning
============================ ============ ==================================================
g, targets, seeds            (G,) (Z,) (S,) grid
lr                           (G, Z)       learning rate ``lr0 (1 - g^2)^2``
tau, tau_tilde               (G, Z, E)    learning time ``lr * epoch`` and ``beta^2 tau``
sim_loss, sim_readout        (G, Z, S, E) simulation (NaN after a run stopped)
sim_status                   (G, Z, S)    "ok" / "diverged" / "unstable_init"
record_epochs                (G, Z, R)    epochs of the singular values
sim_sv                       (G, Z, S, R, 4) top singular values of ``Delta W``
ode_loss, ode_readout        (G, Z, E)    reduced ODE (large N, fixed-point limit)
ode_sv                       (G, Z, E, 2) its top two singular values
series_loss, series_readout  (G, Z, E)    series to order 3 in ``beta^2 tau``
series_sv                    (G, Z, E, 2)
ode_status                   (G, Z)       "ok" or "unconverged" (see report)
finite_n_loss, _readout      (G, Z, E)    finite-N theory at the simulated N: mean over networks
finite_n_loss_std, ...       (G, Z, E)    its standard deviations (``finite_n_readout_std``)
finite_n_sv, finite_n_sv_std (G, Z, E, 2) mean and standard deviation of the top two
finite_n_status              (G, Z)       "ok" or "finite_size" (outside its validity)
============================ ============ ==================================================
"""

from __future__ import annotations

import numpy as np

from ..theory.series_radius import series_radius
from .figure import Figure, axis, register_figure, split_kinds
from .plotting import g_color, new_figure, sim_band, theory_band, theory_line
from .report import finite_size_caveats, fmt, md_table

__all__ = ["Fig3", "train_run", "train_runs", "N_SINGULAR"]

#: Top singular values of ``Delta W`` recorded per run.
N_SINGULAR = 4
#: Theory curves of ``data/fig3.npz`` with shape ``(G, Z, E)`` and ``(G, Z, E, 2)``.
_THEORY_CURVES = ("ode_loss", "ode_readout", "series_loss", "series_readout", "finite_n_loss",
                  "finite_n_loss_std", "finite_n_readout", "finite_n_readout_std")
_THEORY_SV = ("ode_sv", "series_sv", "finite_n_sv", "finite_n_sv_std")


def train_run(params: dict, *, stop_rel_loss: float | None = None) -> tuple[dict, object]:
    """Train one network of a ``"sim"`` task of Fig. 3 or Fig. 4; returns the result dict
    and ``(network, task, TrainResult)`` (``None`` when the run could not start).

    An initial ``W0`` without a fixed point (fixed-point mode, finite N) is reported as
    ``status = "unstable_init"`` instead of raising.

    Examples
    --------
    >>> p = {"N": 16, "g": 0.5, "seed": 0, "target": 1.0, "lr": 0.05, "epochs": 3,
    ...      "mode": "fixed_point", "t_max": 101.0, "dt": 0.5}
    >>> res, (net, task, run) = train_run(p)
    >>> res["status"], res["loss"].shape, run.W.shape
    ('ok', (3,), (16, 16))
    """
    return train_runs([params], stop_rel_loss=stop_rel_loss)[0]


def train_runs(params: list[dict], *, stop_rel_loss: float | None = None
               ) -> list[tuple[dict, object]]:
    """:func:`train_run` of several ``"sim"`` tasks that differ only in ``seed``,
    ``target`` and ``lr``, trained in one call of :func:`linrnn_theory.train` (each gets
    the run it gets alone).

    Examples
    --------
    >>> p = {"N": 16, "g": 0.5, "seed": 0, "target": 1.0, "lr": 0.05, "epochs": 3,
    ...      "mode": "fixed_point", "t_max": 101.0, "dt": 0.5}
    >>> (a, _), (b, _) = train_runs([p, {**p, "seed": 1, "target": 2.0, "lr": 0.02}])
    >>> bool(np.array_equal(a["loss"], train_run(p)[0]["loss"])), b["lr"]
    (True, 0.02)
    """
    import linrnn_theory as lt
    p0 = params[0]
    out: list = [None] * len(params)
    nets, tasks, rates, where = [], [], [], []
    made: dict[tuple, lt.Network] = {}          # one network per seed, for all its targets
    for i, p in enumerate(params):
        key = (p["N"], p["g"], p["seed"])
        if key not in made:
            made[key] = lt.init_network(N=p["N"], g=p["g"], seed=p["seed"])
        net = made[key]
        task = lt.FixedPointTask(target=p["target"], t_max=p["t_max"], dt=p["dt"])
        if p["mode"] == "fixed_point":
            try:
                net.check_stable()
            except ValueError as exc:
                out[i] = ({**p, "L0": task.L0, "status": "unstable_init",
                           "message": str(exc), "stop_epoch": 0, "converged_epoch": None,
                           "tau": np.zeros(0), "loss": np.zeros(0), "readout": np.zeros(0),
                           "grad_norm": np.zeros(0), "record_epochs": np.zeros(0, dtype=int),
                           "singular_values": np.zeros((0, N_SINGULAR))}, None)
                continue
        nets.append(net)
        tasks.append(task)
        rates.append(p["lr"])
        where.append(i)
    if nets:
        runs = lt.train(nets, tasks, lr=rates, epochs=p0["epochs"], mode=p0["mode"],
                        n_singular=N_SINGULAR, record_every=p0.get("record_every", 1),
                        stop_rel_loss=stop_rel_loss, conv_rel=p0.get("conv_rel", 0.05))
        for i, net, task, run in zip(where, nets, tasks, runs):
            out[i] = ({**params[i], "L0": task.L0, "status": run.status,
                       "message": run.message, "stop_epoch": run.stop_epoch,
                       "converged_epoch": run.converged_epoch, "tau": run.tau,
                       "loss": run.loss, "readout": run.readout, "grad_norm": run.grad_norm,
                       "record_epochs": run.record_epochs,
                       "singular_values": run.recorded_singular_values}, (net, task, run))
    return out


def linear_batch_label(params: dict) -> str:
    """Batch label of a ``"sim"`` task of Fig. 3 or Fig. 4: the tasks that differ only in
    ``seed``, ``target`` and ``lr`` train together (:func:`train_runs`); ``""`` for theory
    tasks.

    Examples
    --------
    >>> p = {"figure": "fig4", "kind": "sim", "N": 64, "g": 0.3, "seed": 1, "target": 2.0}
    >>> linear_batch_label(p) == linear_batch_label({**p, "seed": 2, "target": 0.5})
    True
    >>> linear_batch_label({**p, "g": 0.6}) == linear_batch_label(p)
    False
    """
    if params.get("kind") != "sim":
        return ""
    from ..sweep.cache import canonical_json
    return canonical_json({k: v for k, v in params.items()
                           if k not in ("seed", "target", "lr")})


def _pad(a: np.ndarray, n: int) -> np.ndarray:
    out = np.full((n,) + a.shape[1:], np.nan)
    out[: a.shape[0]] = a
    return out


@register_figure
class Fig3(Figure):
    """Fig. 3 (see the module docstring): simulation against the series and the ODE.

    Examples
    --------
    >>> from linrnn_theory.reproduce.presets import TINY
    >>> fig = Fig3()
    >>> ts = fig.tasks(TINY)
    >>> sorted({t["kind"] for t in ts}), len(ts)
    (['sim', 'theory'], 12)
    >>> r = fig.run_task(ts[1])
    >>> r["kind"], r["status"], r["loss"].shape
    ('sim', 'ok', (20,))
    """

    name = "fig3"
    kinds = ("sim", "theory")

    def tasks(self, preset) -> list[dict]:
        """One ``"theory"`` task per (g, target), one ``"sim"`` per (g, target, seed)."""
        p = preset.fig3
        return self.cell_tasks(
            p, lambda g, z: {"lr": p.lr(g, z), "epochs": p.epochs, "N": p.N},
            lambda g, z: {"N": p.N, "lr": p.lr(g, z), "epochs": p.epochs, "mode": p.mode,
                          "t_max": p.t_max, "dt": p.dt, "record_every": p.record_every})

    def simulate(self, params: dict) -> dict:
        """Train for the full number of epochs (:func:`train_run`)."""
        return train_run(params)[0]

    def batch_label(self, params: dict) -> str:
        """The networks of one g train together (:func:`linear_batch_label`)."""
        return linear_batch_label(params)

    def run_batch(self, params: list[dict]) -> list[dict]:
        """:meth:`simulate` of a batch of ``"sim"`` tasks in one :func:`train_runs`."""
        return [res for res, _ in train_runs(params)]

    def theory(self, params: dict) -> dict:
        """Reduced ODE and series (order 3) at the learning times ``lr * epoch``, and the
        finite-N theory (mean and standard deviation over networks of the simulated N)."""
        from linrnn_theory import theory
        tau = params["lr"] * np.arange(params["epochs"], dtype=float)
        g, z = params["g"], params["target"]
        ode = theory.predict(g=g, target=z, tau=tau, method="ode", outlier=False,
                             grad_norm=False, n_singular=2)
        ser = theory.predict(g=g, target=z, tau=tau, method="series", order=3,
                             outlier=False, grad_norm=False, n_singular=2)
        fin = theory.predict(g=g, target=z, tau=tau, method="finite_n", N=params["N"],
                             outlier=False, grad_norm=False, n_singular=2)
        return {**params, "tau": tau, "tau_tilde": ode.tau_tilde,
                "finite_n_loss": fin.loss, "finite_n_loss_std": fin.loss_std,
                "finite_n_readout": fin.readout, "finite_n_readout_std": fin.readout_std,
                "finite_n_sv": fin.singular_values, "finite_n_sv_std": fin.singular_values_std,
                "finite_n_status": fin.status, "finite_n_message": fin.message,
                "ode_readout": ode.readout, "ode_loss": ode.loss,
                "ode_sv": ode.singular_values, "ode_status": ode.status,
                "ode_message": ode.message, "ode_depth": ode.params.get("depth"),
                "series_readout": ser.readout, "series_loss": ser.loss,
                "series_sv": ser.singular_values}

    def collect(self, results: list[dict]) -> dict[str, np.ndarray]:
        """Stack the task results into the arrays of ``data/fig3.npz`` (see the module
        docstring)."""
        sims, ths = split_kinds(results)
        gs, zs, seeds = axis(ths, "g"), axis(ths, "target"), axis(sims, "seed")
        E = ths[0]["epochs"]
        R = max(len(r["record_epochs"]) for r in sims) if sims else 0
        G, Z, S = len(gs), len(zs), len(seeds)
        d = {"g": np.array(gs), "targets": np.array(zs), "seeds": np.array(seeds),
             "lr": np.zeros((G, Z)), "tau": np.zeros((G, Z, E)), "tau_tilde": np.zeros((G, Z, E)),
             "sim_loss": np.full((G, Z, S, E), np.nan), "sim_readout": np.full((G, Z, S, E), np.nan),
             "sim_status": np.full((G, Z, S), "", dtype="U16"),
             "record_epochs": np.full((G, Z, R), -1, dtype=int),
             "sim_sv": np.full((G, Z, S, R, N_SINGULAR), np.nan),
             "ode_status": np.full((G, Z), "", dtype="U16"),
             "finite_n_status": np.full((G, Z), "", dtype="U16")}
        for key in _THEORY_CURVES:
            d[key] = np.zeros((G, Z, E))
        for key in _THEORY_SV:
            d[key] = np.zeros((G, Z, E, 2))
        for r in ths:
            i, j = gs.index(r["g"]), zs.index(r["target"])
            d["lr"][i, j] = r["lr"]
            d["tau"][i, j] = r["tau"]
            d["tau_tilde"][i, j] = r["tau_tilde"]
            for key in _THEORY_CURVES + _THEORY_SV:
                d[key][i, j] = r[key]
            d["ode_status"][i, j] = r["ode_status"]
            d["finite_n_status"][i, j] = r["finite_n_status"]
        for r in sims:
            i, j, k = gs.index(r["g"]), zs.index(r["target"]), seeds.index(r["seed"])
            d["sim_loss"][i, j, k] = _pad(r["loss"], E)
            d["sim_readout"][i, j, k] = _pad(r["readout"], E)
            d["sim_status"][i, j, k] = r["status"]
            n = len(r["record_epochs"])
            if n:
                d["record_epochs"][i, j, :n] = r["record_epochs"]
                d["sim_sv"][i, j, k, :n] = r["singular_values"]
        return d

    def plot(self, results: list[dict], d: dict[str, np.ndarray]):
        """Loss and singular values against ``beta^2 tau``, one row per target."""
        import matplotlib.lines as mlines
        import matplotlib.patches as mpatches
        gs, zs = list(d["g"]), list(d["targets"])
        fig, ax = new_figure(len(zs), 2, (11.5, 4.0 * len(zs)))
        N = next(r["N"] for r in results if r["kind"] == "sim")
        n_seeds = len(d["seeds"])
        for j, z in enumerate(zs):
            a_loss, a_sv = ax[j, 0], ax[j, 1]
            sv_max = 0.0
            for i, g in enumerate(gs):
                c = g_color(g, gs)
                tt = d["tau_tilde"][i, j]
                L0 = 0.5 * z * z
                inside = tt < series_radius(g, z)    # the series is drawn only where it converges
                sim_band(a_loss, tt, d["sim_loss"][i, j] / L0, c, f"sim g = {g:g}", log=True)
                theory_line(a_loss, tt, d["ode_loss"][i, j] / L0, c, "ode")
                theory_line(a_loss, tt[inside], d["series_loss"][i, j][inside] / L0, c, "series")
                theory_band(a_loss, tt, d["finite_n_loss"][i, j] / L0,
                            d["finite_n_loss_std"][i, j] / L0, c, log=True)
                rec = d["record_epochs"][i, j]
                rec = rec[rec >= 0]
                tt_rec = tt[rec] if rec.size else rec.astype(float)
                for q, mk in ((0, "o"), (1, "s")):
                    lab = f"sim $s_{q + 1}$, g = {g:g}"
                    sim_band(a_sv, tt_rec, d["sim_sv"][i, j, :, : rec.size, q], c, lab,
                             marker=mk)
                    theory_line(a_sv, tt, d["ode_sv"][i, j, :, q], c, "ode")
                    theory_line(a_sv, tt[inside], d["series_sv"][i, j, :, q][inside], c, "series")
                    theory_band(a_sv, tt, d["finite_n_sv"][i, j, :, q],
                                d["finite_n_sv_std"][i, j, :, q], c)
                if rec.size:
                    sv_max = max(sv_max, float(np.nanmax(d["sim_sv"][i, j, :, : rec.size, 0])))
            a_loss.set_yscale("log")
            a_loss.set_ylim(1e-3, 2.0)
            a_loss.set(xlabel=r"rescaled learning time $\beta^2\tau$", ylabel=r"loss / $L_0$",
                       title=rf"loss, $\hat z$ = {z:g}")
            a_sv.set_ylim(-0.02 * sv_max, 1.25 * sv_max if sv_max > 0 else 1.0)
            a_sv.set(xlabel=r"rescaled learning time $\beta^2\tau$",
                     ylabel=r"singular values of $\Delta W$",
                     title=rf"top singular values $s_1$ (o), $s_2$ (s), $\hat z$ = {z:g}")
            h, _ = a_loss.get_legend_handles_labels()
            h += [mlines.Line2D([], [], color="k", ls="-", label="theory: reduced ODE"),
                  mlines.Line2D([], [], color="k", ls="--", label="theory: series, order 3"),
                  mpatches.Patch(facecolor="none", edgecolor="k", hatch="////",
                                 label=f"theory: mean $\\pm$ sd over networks of N = {N}")]
            a_loss.legend(handles=h, fontsize=8, loc="lower left")
            a_sv.legend(fontsize=7, loc="upper left", ncol=2)
            for a in (a_loss, a_sv):
                a.set_xlim(0, float(np.max(d["tau_tilde"][:, j])))
                a.grid(alpha=0.3)
        mode = next(r["mode"] for r in results if r["kind"] == "sim")
        fig.suptitle(f"Fig. 3: simulation (markers, band = mean $\\pm$ sd over {n_seeds} seeds; "
                     f"N = {N}, {mode})\nvs theory (solid: reduced ODE, dashed: series order 3, "
                     "drawn only inside its radius of convergence; hatched: finite-N mean "
                     "$\\pm$ sd)",
                     fontsize=11)
        fig.tight_layout(rect=(0, 0, 1, 0.94))
        return fig

    def errors(self, results: list[dict]) -> list[dict]:
        """Theory-vs-simulation errors per (g, target), on the mean over finished seeds:
        ``max |z_sim - z_theory| / z_hat`` (ODE: all epochs; series: ``beta^2 tau <= 0.5``
        and all epochs), ``max |s1_sim - s1_ode| / z_hat`` on the recorded epochs, and for
        the finite-N theory the same readout error of its mean and ``max |sd_sim - sd| /
        z_hat`` of the readout's standard deviation over seeds (with two or more seeds)."""
        d = self.collect(results)
        out = []
        for i, g in enumerate(d["g"]):
            for j, z in enumerate(d["targets"]):
                ok = np.isin(d["sim_status"][i, j], ("ok", "converged"))
                n_bad = int((~ok).sum())
                row = {"g": float(g), "target": float(z), "n_ok": int(ok.sum()), "n_bad": n_bad,
                       "ode_status": str(d["ode_status"][i, j]),
                       "finite_n_status": str(d["finite_n_status"][i, j])}
                if ok.any():
                    zs = np.nanmean(d["sim_readout"][i, j][ok], axis=0)
                    tt = d["tau_tilde"][i, j]
                    early = tt <= 0.5
                    row["readout_ode"] = float(np.nanmax(np.abs(zs - d["ode_readout"][i, j]))) / z
                    row["readout_series_early"] = float(
                        np.nanmax(np.abs(zs - d["series_readout"][i, j])[early])) / z
                    row["readout_series_all"] = float(
                        np.nanmax(np.abs(zs - d["series_readout"][i, j]))) / z
                    row["readout_finite_n"] = float(
                        np.nanmax(np.abs(zs - d["finite_n_readout"][i, j]))) / z
                    if ok.sum() >= 2:
                        sd = np.nanstd(d["sim_readout"][i, j][ok], axis=0, ddof=1)
                        row["readout_sd_finite_n"] = float(np.nanmax(np.abs(
                            sd - d["finite_n_readout_std"][i, j]))) / z
                    rec = d["record_epochs"][i, j]
                    rec = rec[rec >= 0]
                    s1 = np.nanmean(d["sim_sv"][i, j][ok][:, : rec.size, 0], axis=0)
                    row["s1_ode"] = float(np.nanmax(np.abs(s1 - d["ode_sv"][i, j, rec, 0]))) / z
                    row["final_loss_rel"] = float(np.nanmean(
                        [r[np.isfinite(r)][-1] for r in d["sim_loss"][i, j][ok]])) / (0.5 * z * z)
                out.append(row)
        return out

    def report(self, results: list[dict]) -> str:
        """Markdown section of Fig. 3 with the measured errors and parameters."""
        sims = [r for r in results if r["kind"] == "sim"]
        s0 = sims[0]
        rows = []
        for e in self.errors(results):
            rows.append([fmt(e["g"], "g"), fmt(e["target"], "g"), f"{e['n_ok']} ({e['n_bad']})",
                         fmt(e.get("readout_ode")), fmt(e.get("readout_series_early")),
                         fmt(e.get("readout_series_all")), fmt(e.get("s1_ode")),
                         fmt(e.get("final_loss_rel")), e["ode_status"],
                         fmt(e.get("readout_finite_n")), fmt(e.get("readout_sd_finite_n")),
                         e["finite_n_status"]])
        lrs = sorted({(r["g"], r["target"], r["lr"]) for r in sims})
        n = s0["N"]
        lines = [
            "## Fig. 3: loss and singular values over the rescaled time",
            "",
            f"Parameters: N = {n}, mode = {s0['mode']} (t_max = {s0['t_max']:g}, dt = "
            f"{s0['dt']:g}), {s0['epochs']} epochs, seeds {sorted({r['seed'] for r in sims})}, "
            "lr = lr0 (1 - g^2)^2: " + ", ".join(f"g={g:g}, z={z:g}: {lr:.4g}" for g, z, lr in lrs)
            + ". Theory: reduced ODE (large N, fixed-point limit) and series to order 3 in "
            "beta^2 tau.",
            "",
            "Errors of the seed-mean simulation against theory, divided by the target "
            f"(finite-size fluctuations are O(N^-1/2) = {n ** -0.5:.3f}):",
            "",
            md_table(["g", "target", "runs ok (failed)", "max abs(z - ODE)/z",
                      "max abs(z - series)/z, beta^2 tau <= 0.5", "max abs(z - series)/z, all",
                      "max abs(s1 - ODE)/z", "final loss/L0", "ODE status",
                      "max abs(z - finite-N mean)/z", "max abs(sd z - finite-N sd)/z",
                      "finite-N status"], rows),
            "",
            "The series is a Taylor expansion in beta^2 tau: it is accurate early and departs "
            "once beta^2 tau approaches 1 (its error over all epochs is large by construction).",
        ]
        for caveat in finite_size_caveats(s0["N"], [r["g"] for r in sims]):
            lines += ["", caveat]
        bad = [r for r in sims if r["status"] not in ("ok", "converged")]
        if bad:
            lines += ["", f"{len(bad)} run(s) excluded from the means: " + "; ".join(
                f"g={r['g']:g}, z={r['target']:g}, seed {r['seed']}: {r['status']} "
                f"({r['message']})" for r in bad)]
        return "\n".join(lines)
