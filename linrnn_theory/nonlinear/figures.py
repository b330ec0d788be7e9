"""Figures and a markdown report for sweeps of :func:`~.experiment.run_nonlinear` results.

After docs/paper.md section 3 (Schuessler et al. 2020, Figs. 1-2): loss curves coloured by g,
singular values of ``Delta W`` (final and over training), loss with ``Delta W`` truncated to
rank R, variance explained, eigenvalues, shuffled-``W0`` loss and learning time vs g.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from .._savefig import save_figure
from .analysis import rank_to_recover

__all__ = ["make_figures", "report_section", "group_results"]

_TITLES = {"flipflop": "Flip-flop", "mante": "Context-dependent decision (Mante)",
           "romo": "Parametric working memory (Romo)"}


def _check_results(results) -> list[dict]:
    if isinstance(results, dict):
        results = [results]
    results = list(results)
    if not results:
        raise ValueError("results must contain at least one run_nonlinear result")
    for r in results:
        if not isinstance(r, dict) or "task" not in r or "test_loss" not in r:
            raise ValueError("results must be dicts returned by run_nonlinear")
    return results


def group_results(results: Sequence[dict]) -> dict[str, dict[float, list[dict]]]:
    """Nest results as ``{task: {g: [runs sorted by seed]}}`` (tasks and g in sorted order).

    Examples
    --------
    >>> group_results([{"task": "romo", "g": 0.9, "seed": 1, "test_loss": []},
    ...                {"task": "romo", "g": 0.0, "seed": 0, "test_loss": []}])["romo"].keys()
    dict_keys([0.0, 0.9])
    """
    results = _check_results(results)
    out: dict = defaultdict(lambda: defaultdict(list))
    for r in results:
        out[r["task"]][float(r["g"])].append(r)
    return {t: {g: sorted(out[t][g], key=lambda r: r["seed"]) for g in sorted(out[t])}
            for t in sorted(out)}


def _rank_needed(r: dict, tolerance: float = 0.1, of_decrease: bool = False) -> int | None:
    return rank_to_recover(r["truncation_loss"], r["trained_loss"], tolerance,
                           ranks=r["truncation_ranks"],
                           reference=r["initial_loss"] if of_decrease else None)


def _mean_std(values) -> tuple[float, float]:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std())


def _colors(gs):
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("viridis")
    gmax = max(max(gs), 1e-12)
    return {g: cmap(0.9 * g / gmax) for g in gs}


def _task_figure(task: str, by_g: dict[float, list[dict]], outdir: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    gs = list(by_g)
    col = _colors(gs)
    fig, axes = plt.subplots(2, 4, figsize=(19, 8.5))
    ax = axes.ravel()

    # (a) test loss curves
    for g in gs:
        for i, r in enumerate(by_g[g]):
            ax[0].semilogy(r["test_epochs"], r["test_loss"], color=col[g], lw=1,
                           alpha=0.8, label=f"g = {g:g}" if i == 0 else None)
        thr = by_g[g][0]["learning_threshold"]
    ax[0].axhline(thr, color="grey", ls=":", lw=1, label="learning threshold")
    ax[0].set(xlabel="epoch (parameter updates)", ylabel="test loss",
              title="(a) loss during training")
    ax[0].legend(fontsize=8)

    # (b) final singular values of Delta W
    for g in gs:
        sv = np.array([r["sv_delta"][-1] for r in by_g[g]])
        k = np.arange(1, sv.shape[1] + 1)
        ax[1].semilogy(k, sv.mean(0), "o-", ms=3, color=col[g], label=f"g = {g:g}")
    ax[1].set(xlabel="index k", ylabel=r"singular value $s_k$ of $\Delta W$",
              title=r"(b) spectrum of $\Delta W$ after training")
    ax[1].legend(fontsize=8)

    # (c) top singular values over training (first seed of each g)
    for g in gs:
        r = by_g[g][0]
        n = min(3, r["sv_delta"].shape[1])
        for j in range(n):
            ax[2].plot(r["record_epochs"], r["sv_delta"][:, j], color=col[g],
                       ls=["-", "--", ":"][j], lw=1.2,
                       label=f"g = {g:g}" if j == 0 else None)
    ax[2].set(xlabel="epoch", ylabel=r"$s_1$ (solid), $s_2$ (dashed), $s_3$ (dotted)",
              title=r"(c) top singular values of $\Delta W$ over training")
    ax[2].legend(fontsize=8)

    # (d) truncation loss / trained loss
    for g in gs:
        ratio = np.array([r["truncation_loss"] / r["trained_loss"] for r in by_g[g]])
        R = by_g[g][0]["truncation_ranks"]
        ax[3].semilogy(R, ratio.mean(0), "o-", ms=3, color=col[g], label=f"g = {g:g}")
    ax[3].axhline(1.1, color="grey", ls=":", lw=1, label="trained loss + 10 %")
    ax[3].set(xlabel=r"rank R of truncated $\Delta W$",
              ylabel="loss(rank R) / trained loss",
              title=r"(d) loss with $\Delta W$ cut to rank R")
    ax[3].legend(fontsize=8)

    # (e) variance explained
    for g in gs:
        var = np.array([r["variance_explained"] for r in by_g[g]])
        ax[4].plot(by_g[g][0]["truncation_ranks"], var.mean(0), "o-", ms=3, color=col[g],
                   label=f"g = {g:g}")
    ax[4].set(xlabel="rank R", ylabel=r"fraction of $\|\Delta W\|_F^2$",
              title="(e) variance explained by top R", ylim=(0, 1.02))
    ax[4].legend(fontsize=8)

    # (f) eigenvalues of W0 and W for the largest g, and of Delta W
    g_hi = gs[-1]
    r = by_g[g_hi][0]
    ax[5].plot(r["eig_W0"][:, 0], r["eig_W0"][:, 1], ".", ms=3, color="0.6",
               label=r"$W_0$")
    ax[5].plot(r["eig_W"][:, 0], r["eig_W"][:, 1], ".", ms=3, color=col[g_hi],
               label=r"$W$ (trained)")
    ax[5].plot(r["eig_dW"][:, 0], r["eig_dW"][:, 1], "x", ms=4, color="C3",
               label=r"$\Delta W$")
    ax[5].axvline(1.0, color="k", lw=0.5, ls=":")
    ax[5].set(xlabel="Re(eigenvalue)", ylabel="Im(eigenvalue)",
              title=f"(f) eigenvalues, g = {g_hi:g}, seed {r['seed']}")
    ax[5].set_aspect("equal", adjustable="datalim")
    ax[5].legend(fontsize=8)

    # (g) shuffle loss vs g
    garr = np.array(gs)
    for key, lab, c in (("shuffle_loss", r"shuffled $W_0$ + $\Delta W$", "C3"),
                        ("initial_loss", "initial", "0.5"),
                        ("trained_loss", "trained", "C0")):
        m, s = np.array([_mean_std([x[key] for x in by_g[g]]) for g in gs]).T
        ax[6].errorbar(garr, m, yerr=s, fmt="o-", ms=4, capsize=3, color=c, label=lab)
    ax[6].set_yscale("log")
    ax[6].set(xlabel="g (initial connectivity strength)", ylabel="test loss",
              title=r"(g) loss after shuffling $W_0$ (keeping $\Delta W$)")
    ax[6].legend(fontsize=8)

    # (h) learning time vs g
    m, s = np.array([_mean_std([x["learning_epoch"] for x in by_g[g]]) for g in gs]).T
    ok = np.isfinite(m)
    ax[7].errorbar(garr[ok], m[ok], yerr=s[ok], fmt="o-", ms=4, capsize=3, color="k")
    if (~ok).any():
        top = np.nanmax(m) if ok.any() else 1.0
        ax[7].plot(garr[~ok], np.full((~ok).sum(), top), "rx",
                   label="threshold not reached")
        ax[7].legend(fontsize=8)
    rel = by_g[gs[0]][0]["learning_threshold_rel"]
    ax[7].set(xlabel="g", ylabel="learning epoch",
              title=f"(h) epochs to test loss < {rel:g} x zero-output loss")

    first = by_g[gs[0]][0]
    fig.suptitle(f"{_TITLES.get(task, task)}: N = {first['N']}, batch {first['batch']}, "
                 f"lr = {first['lr']:.3g}, {first['epochs']} epochs, "
                 f"{len(by_g[gs[0]])} seed(s) per g", fontsize=13)
    fig.subplots_adjust(left=0.045, right=0.99, bottom=0.07, top=0.9, wspace=0.3, hspace=0.35)
    return save_figure(fig, outdir, f"nonlinear_{task}", dpi=110)


def _summary_figure(grouped: dict, outdir: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    for i, (task, by_g) in enumerate(grouped.items()):
        gs = np.array(list(by_g))
        c = f"C{i}"
        m, s = np.array([_mean_std([r["shuffle_loss"] / r["trained_loss"] for r in by_g[g]])
                         for g in by_g]).T
        ax[0].errorbar(gs, m, yerr=s, fmt="o-", capsize=3, color=c, label=task)
        m, s = np.array([_mean_std([r["learning_epoch"] for r in by_g[g]]) for g in by_g]).T
        ok = np.isfinite(m)
        ax[1].errorbar(gs[ok], m[ok], yerr=s[ok], fmt="o-", capsize=3, color=c, label=task)
        m, s = np.array([_mean_std([_rank_needed(r) for r in by_g[g]]) for g in by_g]).T
        ok = np.isfinite(m)
        ax[2].errorbar(gs[ok], m[ok], yerr=s[ok], fmt="o-", capsize=3, color=c,
                       label=f"{task}: within 10 % of trained loss")
        m, s = np.array([_mean_std([_rank_needed(r, of_decrease=True) for r in by_g[g]])
                         for g in by_g]).T
        ok = np.isfinite(m)
        ax[2].errorbar(gs[ok], m[ok], yerr=s[ok], fmt="s--", capsize=3, color=c, mfc="none",
                       label=f"{task}: 90 % of loss decrease")
    ax[0].set_yscale("log")
    ax[0].set(xlabel="g", ylabel="shuffled loss / trained loss",
              title=r"shuffling $W_0$ (keeping $\Delta W$)")
    ax[1].set(xlabel="g", ylabel="learning epoch", title="learning time")
    ax[2].set(xlabel="g", ylabel="rank R", title=r"rank of $\Delta W$ needed")
    for a in ax:
        a.legend(fontsize=8)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.13, top=0.91, wspace=0.28)
    return save_figure(fig, outdir, "nonlinear_summary", dpi=110)


def make_figures(results: Sequence[dict], outdir: str | os.PathLike) -> list[Path]:
    """Write one figure per task plus a summary across tasks (PNG and PDF each).

    Parameters
    ----------
    results : sequence of dict
        Outputs of :func:`~.experiment.run_nonlinear` (any mix of tasks, g and seeds).
    outdir : path
        Created if missing.

    Returns
    -------
    list of pathlib.Path
        ``nonlinear_<task>.png/.pdf`` per task and ``nonlinear_summary.png/.pdf``.

    Examples
    --------
    >>> import tempfile
    >>> from linrnn_theory.nonlinear import run_nonlinear
    >>> rs = [run_nonlinear("romo", g=g, seed=0, N=8, epochs=3, batch=4, n_test=4).as_record()
    ...       for g in (0.0, 1.0)]
    >>> # rendering takes ~2-3 s, so not run as a doctest (tests/test_nonlinear.py runs it)
    >>> [p.name for p in make_figures(rs, tempfile.mkdtemp())]  # doctest: +SKIP
    ['nonlinear_romo.png', 'nonlinear_romo.pdf', 'nonlinear_summary.png',
     'nonlinear_summary.pdf']
    """
    import matplotlib

    matplotlib.use("Agg")
    grouped = group_results(results)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for task, by_g in grouped.items():
        paths += _task_figure(task, by_g, outdir)
    paths += _summary_figure(grouped, outdir)
    return paths


def _fmt(x, spec: str = ".3g") -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "--"
    return format(x, spec)


def report_section(results: Sequence[dict], tolerance: float = 0.1) -> str:
    """Markdown summary per task: rank needed, shuffle loss and learning time vs g.

    For every task a table with one row per g (mean +- std over seeds): trained test
    loss, the smallest rank R of the truncated ``Delta W`` whose loss is within
    ``tolerance`` (10 %) of the trained loss and the smallest R that recovers
    ``1 - tolerance`` (90 %) of the loss decrease (one value per seed), the
    shuffled-``W0`` loss (absolute and relative to the trained loss), the learning epoch
    and time (``lr * epoch``), and a line with the parameters used.

    Examples
    --------
    >>> from linrnn_theory.nonlinear import run_nonlinear
    >>> r = run_nonlinear("romo", g=0.0, seed=0, N=8, epochs=3, batch=4, n_test=4)
    >>> print(report_section([r.as_record()]).splitlines()[0])
    ### Parametric working memory (Romo)
    """
    grouped = group_results(results)
    lines: list[str] = []
    for task, by_g in grouped.items():
        first = next(iter(by_g.values()))[0]
        lines.append(f"### {_TITLES.get(task, task)}")
        lines.append("")
        n_seeds = sorted({len(v) for v in by_g.values()})
        lines.append(
            f"Parameters: N = {first['N']}, epochs = {first['epochs']}, batch = "
            f"{first['batch']}, lr = {first['lr']:.4g}, dt = {first['dt']:g}, dtype = "
            f"{first['dtype']}, fixed test batch of {first['n_test']} trials (seed "
            f"{first['test_seed']}), {'/'.join(map(str, n_seeds))} seed(s) per g, "
            f"{first['n_shuffles']} shuffles per run; learning threshold = "
            f"{first['learning_threshold_rel']:g} x zero-output loss "
            f"({first['learning_threshold']:.3g}).")
        lines.append("")
        lines.append("| g | trained loss | initial loss | rank: within 10 % of trained | "
                     "rank: 90 % of decrease | shuffled loss | shuffled / trained | "
                     "learning epoch | learning time (lr x epoch) |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for g, runs in by_g.items():
            tl = _mean_std([r["trained_loss"] for r in runs])
            il = _mean_std([r["initial_loss"] for r in runs])
            ranks = [_rank_needed(r, tolerance) for r in runs]
            ranks90 = [_rank_needed(r, tolerance, of_decrease=True) for r in runs]
            sh = _mean_std([r["shuffle_loss"] for r in runs])
            ratio = _mean_std([r["shuffle_loss"] / r["trained_loss"] for r in runs])
            le = [r["learning_epoch"] for r in runs]
            lem = _mean_std(le)
            lt = _mean_std([r["learning_time"] for r in runs])
            not_reached = sum(x is None for x in le)
            rank_txt = "/".join("--" if x is None else str(x) for x in ranks)
            rank90_txt = "/".join("--" if x is None else str(x) for x in ranks90)
            le_txt = f"{_fmt(lem[0], '.0f')} +- {_fmt(lem[1], '.0f')}"
            if not_reached:
                le_txt += f" ({not_reached} run(s) never)"
            lines.append(
                f"| {g:g} | {_fmt(tl[0])} +- {_fmt(tl[1], '.2g')} | {_fmt(il[0])} | "
                f"{rank_txt} | {rank90_txt} | {_fmt(sh[0])} | {_fmt(ratio[0])} +- {_fmt(ratio[1], '.2g')} | "
                f"{le_txt} | {_fmt(lt[0])} |")
        diverged = [r for runs in by_g.values() for r in runs if r["status"] != "ok"]
        if diverged:
            lines.append("")
            lines.append(f"{len(diverged)} run(s) diverged: " + "; ".join(
                f"g = {r['g']:g}, seed {r['seed']}: {r['message']}" for r in diverged))
        lines.append("")
    return "\n".join(lines)
