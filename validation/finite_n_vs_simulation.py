#!/usr/bin/env python3
r"""The finite-N theory against many simulated networks: spread and mean of learning.

For each size ``N``, gain ``g`` and target ``z_hat`` this trains ``--seeds`` networks
(``lt.init_network(N, g, seed)``, seeds ``0 .. seeds-1``) together by small-step
fixed-point gradient descent (``lr = h / beta^2``, ``h`` the step in rescaled time), and
compares with ``theory.predict(method="finite_n", N=N)`` and
:func:`linrnn_theory.theory.finite_n.learning_time_spread`:

* **spread of the readout**: the predicted standard deviation of ``z(tau)`` against the
  measured one (over seeds) at every epoch where the measured value is resolved, i.e.
  larger than 3 times its own standard error and than ``FLOOR * |z_hat|`` (0.1 %: below
  that is the tail of convergence). The standard error is given twice: the Gaussian
  formula ``s / sqrt(2 (n - 1))``, and by bootstrap over the networks
  (:func:`bootstrap_std_error`; ``z_std.bootstrap``), which is the right one where the
  spread is skewed; there ``frac_within_20pct_or_2se`` also counts a prediction within 2
  bootstrap standard errors;
* **spread of the learning time**, predicted against measured standard deviation, and
  the means, in both conventions of :func:`~linrnn_theory.theory.finite_n.learning_time_spread`:
  the first ``tau`` with loss below 5 % of ``z_hat^2 / 2`` (the paper's, ``learning_time``)
  and below 5 % of the network's own initial loss (``learning_time_own``); log-linear
  interpolation between epochs;
* **bias of the mean**: at the epochs where the large-N readout (``method="ode"``) misses
  the seed mean by more than 3 standard errors, the largest gap of the large-N and of the
  finite-N mean;
* **slow networks**: the fraction of networks whose learning time (paper convention)
  exceeds ``SLOW_FACTOR`` times the large-N one, against
  :func:`~linrnn_theory.theory.finite_n.slow_fraction` (a run that never learned counts
  as slow);
* runs that diverge (near ``g = 1`` at large targets) are left out and counted;
* the validity verdict of the theory (:func:`linrnn_theory.theory.finite_n.validity`) and
  the cost of a finite-N prediction relative to the large-N one (same ``tau``).

Output (``--out``, JSON): ``{"settings": {...}, "points": [{"N", "g", "target", "seeds"
(runs compared), "excluded" (diverged), "lr", "epochs", "verdict_ok", "verdict",
"rate_spread", "edge_ratio", "z_std": {"resolved", "max_rel_err", "frac_within_20pct", "rel_err_median", "bootstrap":
{"resolved", "frac_within_20pct", "frac_within_20pct_or_2se"}}, "learning_time":
{"measured_mean", "measured_std", "measured_std_se", "predicted_mean", "predicted_std",
"std_rel_err", "large_n"}, "learning_time_own": {the same}, "slow_fraction": {"factor", "measured",
"predicted"}, "mean_gap": {"resolved", "large_n_max", "finite_n_max",
"ratio"}, "cost_ratio", "seconds"}, ...]}``; ``rel_err`` = predicted / measured - 1.

Run: ``python validation/finite_n_vs_simulation.py --N 256 1024 --g 0 0.3 0.6 0.8
--targets 0.5 1 2 --seeds 64 --out validation/results/finite_n.json``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import linrnn_theory as lt
from linrnn_theory._io import atomic_write_json
from linrnn_theory import theory
from linrnn_theory.theory.finite_n import (learning_time_spread, passage_times,
                                           slow_fraction, validity)
from linrnn_theory.theory.traces import beta_of

REL_LOSS = 0.05
#: A network is "slow" when its learning time exceeds this factor times the large-N one.
SLOW_FACTOR = 1.5
#: Spreads below this fraction of ``z_hat`` (the tail of convergence) are not compared.
FLOOR = 1e-3


def simulate(N: int, g: float, target: float, seeds: int, h: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int]:
    """Readouts ``(seeds, n_tau)`` and learning times of ``seeds`` networks, with ``tau``,
    ``lr`` and the number of epochs (run to 3 large-N learning times)."""
    lr = h / beta_of(g) ** 2
    epochs = int(np.ceil(3.0 * theory.learning_time(g, target, REL_LOSS) / lr))
    nets = [lt.init_network(N=N, g=g, seed=s) for s in range(seeds)]
    runs = lt.train(nets, lt.FixedPointTask(target=target), lr=lr, epochs=epochs,
                    mode="fixed_point", n_singular=1)
    # a run that diverged (lost its fixed point) has no learning curve to compare: it is
    # left out, and counted (``excluded`` in the output)
    runs = [r for r in runs if r.status.valid]
    if len(runs) < 8:
        raise RuntimeError(f"N={N} g={g} target={target}: only {len(runs)} runs learned")
    Z = np.array([r.readout for r in runs])
    T = np.array([passage_times(r.tau, r.loss, np.array([REL_LOSS]))[0] for r in runs])
    return runs[0].tau, Z, T, lr, epochs


def bootstrap_std_error(Z: np.ndarray, n_boot: int = 400, seed: int = 0) -> np.ndarray:
    """Standard error of the standard deviation over seeds (axis 0) at every time, by
    bootstrap over the networks (``n_boot`` resamples, ``numpy.random.default_rng(seed)``):
    unlike ``s / sqrt(2 (n - 1))`` it holds for skewed spreads, such as the last stage of
    convergence where a few slow networks carry the whole spread."""
    rng = np.random.default_rng(seed)
    n = Z.shape[0]
    boots = np.array([Z[rng.integers(0, n, n)].std(axis=0, ddof=1) for _ in range(n_boot)])
    return boots.std(axis=0, ddof=1)


def cached_simulate(N: int, g: float, target: float, seeds: int, h: float,
                    runs: Path | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int]:
    """:func:`simulate`, kept in ``runs/sim_N<N>_g<g>_t<target>_s<seeds>_h<h>.npz``
    (keys ``tau``, ``readout`` ``(seeds, n_tau)``, ``learning_time``, ``lr``, ``epochs``)
    when ``runs`` is given, and read back from there on the next call."""
    path = None if runs is None else runs / f"sim_N{N}_g{g}_t{target}_s{seeds}_h{h}.npz"
    if path is not None and path.exists():
        with np.load(path) as d:
            return (d["tau"], d["readout"], d["learning_time"], float(d["lr"]),
                    int(d["epochs"]))
    tau, Z, T, lr, epochs = simulate(N, g, target, seeds, h)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, tau=tau, readout=Z, learning_time=T, lr=lr, epochs=epochs)
        tmp.replace(path)
    return tau, Z, T, lr, epochs


def compare(N: int, g: float, target: float, seeds: int, h: float,
            runs: Path | None = None) -> dict:
    """One point of the table (see the module docstring)."""
    t0 = time.perf_counter()
    tau, Z, T, lr, epochs = cached_simulate(N, g, target, seeds, h, runs)
    n = Z.shape[0]
    t1 = time.perf_counter()
    pred = theory.predict(g=g, target=target, tau=tau, method="finite_n", N=N,
                          outlier=False)
    t2 = time.perf_counter()
    large = theory.predict(g=g, target=target, tau=tau, method="ode", outlier=False)
    t3 = time.perf_counter()
    s = Z.std(axis=0, ddof=1)
    se_boot = bootstrap_std_error(Z)
    floor = s > FLOOR * abs(target)
    resolved = (s > 3.0 * s / np.sqrt(2.0 * (n - 1))) & floor
    rel = pred.readout_std[resolved] / s[resolved] - 1.0
    resolved_b = (s > 3.0 * se_boot) & floor
    rel_b = pred.readout_std[resolved_b] / s[resolved_b] - 1.0
    within_b = np.abs(pred.readout_std[resolved_b] - s[resolved_b]) <= np.maximum(
        0.2 * s[resolved_b], 2.0 * se_boot[resolved_b])
    sem = s / np.sqrt(n)
    gap_large = np.abs(large.readout - Z.mean(axis=0))
    gap_fin = np.abs(pred.readout - Z.mean(axis=0))
    gaps = gap_large > 3.0 * sem
    check = validity(g, N)
    loss = 0.5 * (target - Z) ** 2
    T_paper = np.array([passage_times(tau, L, np.array([REL_LOSS * 0.5 * target ** 2 / L[0]]))[0]
                        for L in loss])
    t_large = theory.learning_time(g, target, REL_LOSS)
    slow = {"factor": SLOW_FACTOR,
            "measured": float(np.mean(~(T_paper <= SLOW_FACTOR * t_large))),
            "predicted": slow_fraction(g, target, N, SLOW_FACTOR, REL_LOSS)}
    learning = {name: _learning_time_entry(times, *learning_time_spread(
                    g, target, N, REL_LOSS, own_initial_loss=own), g, target)
                for name, times, own in (("learning_time", T_paper, False),
                                         ("learning_time_own", T, True))}
    return {
        "N": N, "g": g, "target": target, "seeds": n, "excluded": seeds - n, "lr": lr,
        "epochs": epochs,
        "verdict_ok": check.ok, "verdict": check.message or "ok",
        "rate_spread": check.rate_spread, "edge_ratio": check.edge_ratio,
        "status": str(pred.status),
        "z_std": {"resolved": int(resolved.sum()),
                  "max_rel_err": float(np.max(np.abs(rel))) if rel.size else None,
                  "rel_err_median": float(np.median(rel)) if rel.size else None,
                  "frac_within_20pct": float(np.mean(np.abs(rel) <= 0.2)) if rel.size
                  else None,
                  "bootstrap": {
                      "resolved": int(resolved_b.sum()),
                      "frac_within_20pct": float(np.mean(np.abs(rel_b) <= 0.2))
                      if rel_b.size else None,
                      "frac_within_20pct_or_2se": float(np.mean(within_b))
                      if rel_b.size else None}},
        **learning,
        "slow_fraction": slow,
        "mean_gap": {"resolved": int(gaps.sum()),
                     "large_n_max": float(gap_large[gaps].max()) if gaps.any() else None,
                     "finite_n_max": float(gap_fin[gaps].max()) if gaps.any() else None,
                     "ratio": float(gap_fin[gaps].max() / gap_large[gaps].max())
                     if gaps.any() else None},
        "cost_ratio": (t2 - t1) / max(t3 - t2, 1e-9),
        "seconds": {"simulation": t1 - t0, "finite_n": t2 - t1, "large_n": t3 - t2},
    }


def _learning_time_entry(T: np.ndarray, t_mean: float, t_std: float, g: float,
                         target: float) -> dict:
    """Measured against predicted learning-time statistics of one convention."""
    finite = np.isfinite(T)
    Tm, Ts = float(np.mean(T[finite])), float(np.std(T[finite], ddof=1))
    return {"measured_mean": Tm, "measured_std": Ts,
            "measured_std_se": Ts / np.sqrt(2.0 * (finite.sum() - 1)),
            "not_learned": int((~finite).sum()), "predicted_mean": t_mean,
            "predicted_std": t_std, "std_rel_err": t_std / Ts - 1.0,
            "large_n": theory.learning_time(g, target, REL_LOSS)}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``--help`` lists the options)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--N", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--g", type=float, nargs="+", default=[0.0, 0.3, 0.6, 0.8])
    ap.add_argument("--targets", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    ap.add_argument("--seeds", type=int, default=64)
    ap.add_argument("--h", type=float, default=0.002,
                    help="step in rescaled time: lr = h / beta^2 (default 0.002)")
    ap.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    ap.add_argument("--runs", type=Path, default=None,
                    help="folder keeping the simulated readouts (NPZ), reused on a rerun")
    args = ap.parse_args(argv)
    if args.seeds < 8:
        ap.error("--seeds must be >= 8")
    points = []
    for N in args.N:
        for g in args.g:
            for target in args.targets:
                r = compare(N, g, target, args.seeds, args.h, args.runs)
                points.append(r)
                zs, lt_, mg = r["z_std"], r["learning_time"], r["mean_gap"]
                own = r["learning_time_own"]
                print(f"N={N:5d} g={g:.2f} z^={target:.1f} [{'ok' if r['verdict_ok'] else 'FLAGGED'}]"
                      f" z-std: {zs['resolved']} resolved, max err "
                      f"{zs['max_rel_err'] if zs['max_rel_err'] is None else round(100 * zs['max_rel_err'])} %,"
                      f" {100 * (zs['frac_within_20pct'] or 0):.0f} % within 20 % (bootstrap: "
                      f"{zs['bootstrap']['resolved']} resolved, "
                      f"{100 * (zs['bootstrap']['frac_within_20pct'] or 0):.0f} %, or 2 se "
                      f"{100 * (zs['bootstrap']['frac_within_20pct_or_2se'] or 0):.0f} %); T-std err "
                      f"{100 * lt_['std_rel_err']:+.0f} % (se {100 * lt_['measured_std_se'] / lt_['measured_std']:.0f} %),"
                      f" own-L0 convention {100 * own['std_rel_err']:+.0f} %;"
                      f" slow {100 * r['slow_fraction']['measured']:.0f} % (predicted "
                      f"{100 * r['slow_fraction']['predicted']:.0f} %);"
                      f" mean gap ratio {mg['ratio'] if mg['ratio'] is None else round(mg['ratio'], 2)};"
                      f" cost x{r['cost_ratio']:.1f}", flush=True)
    result = {"settings": {"h": args.h, "seeds": args.seeds, "rel_loss": REL_LOSS},
              "points": points}
    if args.out:
        print(f"wrote {atomic_write_json(args.out, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
