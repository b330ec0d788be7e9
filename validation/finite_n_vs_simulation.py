#!/usr/bin/env python3
r"""The finite-N theory against many simulated networks: spread and mean of learning.

For each size ``N``, gain ``g`` and target ``z_hat`` this trains ``--seeds`` networks
(``lt.init_network(N, g, seed)``, seeds ``0 .. seeds-1``) together by small-step
fixed-point gradient descent (``lr = h / beta^2``, ``h`` the step in rescaled time; a
network whose descent is not gradient flow at that step, seen by its step rate
:func:`linrnn_theory.step_rate` above :data:`MAX_STEP_RATE`, is trained again with a
step ``k = 2, 4, ...`` times smaller, see :func:`simulate`), and compares with
``theory.predict(method="finite_n", N=N)`` and
:func:`linrnn_theory.theory.finite_n.learning_time_spread`:

* **spread of the readout**: the predicted standard deviation of ``z(tau)`` against the
  measured one (over seeds) at every epoch where the measured value is resolved, i.e.
  larger than 3 times its own standard error and than ``FLOOR * |z_hat|`` (0.1 %: below
  that is the tail of convergence). The standard error is given twice: the Gaussian
  formula ``s / sqrt(2 (n - 1))``, and by bootstrap over the networks
  (:func:`bootstrap_std_error`; ``z_std.bootstrap``), which is the right one where the
  spread is skewed; there ``frac_within_20pct_or_2se`` also counts a prediction within 2
  bootstrap standard errors. Neither sees what a sample of ``n`` networks misses: late in
  learning the spread lives in the slowest networks, the tail of the law. So the
  measured spread is also placed in its predicted sampling law
  (:func:`~linrnn_theory.theory.finite_n.sample_readout_std`, ``SAMPLE_DRAWS`` samples of
  ``n`` networks drawn from the predicted law): the share of resolved epochs where it lies
  in the central 90 % of that law (``z_std.sample_law.frac_in_90pct_band``), and where
  the law's median is within 20 % of it (``frac_median_within_20pct``);
* **spread of the learning time**, predicted against measured standard deviation, and
  the means, in both conventions of :func:`~linrnn_theory.theory.finite_n.learning_time_spread`:
  the first ``tau`` with loss below 5 % of ``z_hat^2 / 2`` (the paper's, ``learning_time``)
  and below 5 % of the network's own initial loss (``learning_time_own``); log-linear
  interpolation between epochs;
* **bias of the mean**: at the epochs where the large-N readout (``method="ode"``) misses
  the seed mean by more than 3 standard errors (and by more than :data:`GAP_FLOOR`
  ``|z_hat|``, the accuracy of the finite-N readout), the largest gap of the large-N and
  of the finite-N mean;
* **slow networks**: the fraction of networks whose learning time (paper convention)
  exceeds ``SLOW_FACTOR`` times the large-N one, against
  :func:`~linrnn_theory.theory.finite_n.slow_fraction` (a run that never learned counts
  as slow);
* runs that diverge (near ``g = 1`` at large targets) are left out and counted;
* the validity verdict of the theory (:func:`linrnn_theory.theory.finite_n.validity`) and
  the cost of a finite-N prediction relative to the large-N one (same ``tau``).

Output (``--out``, JSON): ``{"settings": {...}, "points": [{"N", "g", "target", "seeds"
(runs compared), "excluded" (diverged), "lr", "epochs" (at ``lr``), "refined" ({"k": number
of networks trained with ``lr / k``}), "not_flow" (networks still above the step rate at
``lr / MAX_REFINE``), "verdict_ok", "verdict",
"rate_spread", "edge_ratio", "z_std": {"resolved", "max_rel_err", "frac_within_20pct",
"rel_err_median", "bootstrap": {"resolved", "frac_within_20pct",
"frac_within_20pct_or_2se"}, "sample_law": {"frac_in_90pct_band",
"frac_median_within_20pct"}}, "learning_time":
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
                                           sample_readout_std, slow_fraction, validity)
from linrnn_theory.theory.traces import beta_of

REL_LOSS = 0.05
#: A network is "slow" when its learning time exceeds this factor times the large-N one.
SLOW_FACTOR = 1.5
#: Spreads below this fraction of ``z_hat`` (the tail of convergence) are not compared.
FLOOR = 1e-3
#: Largest step rate (:func:`linrnn_theory.step_rate`) accepted as gradient flow: the
#: rate of approach is then right to about 5 %.
MAX_STEP_RATE = 0.1
#: Distances to the target below this fraction of ``z_hat`` are not looked at for it
#: (a tenth of :data:`FLOOR`).
RATE_FLOOR = 1e-4
#: Largest refinement of the step for a network above :data:`MAX_STEP_RATE`.
MAX_REFINE = 64
#: Samples drawn from the predicted law for the sampling band of the measured spread.
SAMPLE_DRAWS = 200
#: Gaps of the mean below this fraction of ``z_hat`` are not looked at: the finite-N
#: readout is interpolated from passage times to 4e-6 of ``z_hat`` (the accuracy stated in
#: :mod:`linrnn_theory.theory.finite_n`), so a smaller gap cannot be judged.
GAP_FLOOR = 1e-5


def simulate(N: int, g: float, target: float, seeds: int, h: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int, np.ndarray]:
    """Readouts ``(seeds, n_tau)`` and learning times of ``seeds`` networks, with ``tau``,
    ``lr``, the number of epochs (run to 3 large-N learning times) and each network's
    refinement factor.

    Every network is trained with ``lr = h / beta^2`` first. A network whose
    :func:`linrnn_theory.step_rate` exceeds :data:`MAX_STEP_RATE` (descent is not flow
    there, at large ``g`` and ``z_hat`` late in learning) is trained again with ``lr / k`` for
    ``k * epochs`` epochs, ``k`` a power of 2 large enough for the rate it showed (8 more
    where it crossed the target), up to :data:`MAX_REFINE`, and every ``k``-th epoch kept,
    so that all runs share the same ``tau``. Networks still above the rate at the largest
    ``k`` are kept, with their factor given as ``-k``; runs that diverge there are left
    out.
    """
    lr = h / beta_of(g) ** 2
    epochs = int(np.ceil(3.0 * theory.learning_time(g, target, REL_LOSS) / lr))
    task = lt.FixedPointTask(target=target)
    nets = [lt.init_network(N=N, g=g, seed=s) for s in range(seeds)]
    runs = lt.train(nets, task, lr=lr, epochs=epochs, mode="fixed_point", n_singular=1)
    refine = np.ones(seeds, dtype=int)
    while True:
        # a flow cannot lose its fixed point (the loss would pass through infinity): a run
        # that diverged is refined like one that crossed the target
        rates = np.array([lt.step_rate(r.readout, target, RATE_FLOOR) if r.status.valid
                          else np.inf for r in runs])
        redo = np.flatnonzero((rates > MAX_STEP_RATE) & (refine < MAX_REFINE))
        if redo.size == 0:
            break
        need = [8 if not np.isfinite(rates[i])
                else 2 ** int(np.ceil(np.log2(rates[i] / MAX_STEP_RATE))) for i in redo]
        new_k = np.minimum(refine[redo] * np.array(need), MAX_REFINE)
        for k in np.unique(new_k):
            group = redo[new_k == k]
            again = lt.train([nets[i] for i in group], task, lr=lr / k, epochs=int(k) * epochs,
                             mode="fixed_point", n_singular=1)
            for i, r in zip(group, again):
                runs[i], refine[i] = r, k
    refine = np.where(rates > MAX_STEP_RATE, -refine, refine)
    # a run that diverged (lost its fixed point) has no learning curve to compare: it is
    # left out, and counted (``excluded`` in the output)
    kept = [i for i, r in enumerate(runs) if r.status.valid]
    if len(kept) < 8:
        raise RuntimeError(f"N={N} g={g} target={target}: only {len(kept)} runs learned")
    Z = np.array([runs[i].readout[::abs(refine[i])] for i in kept])
    T = np.array([passage_times(runs[i].tau, runs[i].loss, np.array([REL_LOSS]))[0]
                  for i in kept])
    tau = lr * np.arange(Z.shape[1])
    return tau, Z, T, lr, epochs, refine[kept]


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
                    runs: Path | None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int, np.ndarray]:
    """:func:`simulate`, kept in ``runs/sim_N<N>_g<g>_t<target>_s<seeds>_h<h>_r<rate>.npz``
    (``rate`` = :data:`MAX_STEP_RATE`; keys ``tau``, ``readout`` ``(seeds, n_tau)``,
    ``learning_time``, ``lr``, ``epochs``, ``refine``) when ``runs`` is given, and read
    back from there on the next call."""
    path = None if runs is None else (
        runs / f"sim_N{N}_g{g}_t{target}_s{seeds}_h{h}_r{MAX_STEP_RATE}.npz")
    if path is not None and path.exists():
        with np.load(path) as d:
            return (d["tau"], d["readout"], d["learning_time"], float(d["lr"]),
                    int(d["epochs"]), d["refine"])
    tau, Z, T, lr, epochs, refine = simulate(N, g, target, seeds, h)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, tau=tau, readout=Z, learning_time=T, lr=lr, epochs=epochs,
                 refine=refine)
        tmp.replace(path)
    return tau, Z, T, lr, epochs, refine


def compare(N: int, g: float, target: float, seeds: int, h: float,
            runs: Path | None = None) -> dict:
    """One point of the table (see the module docstring)."""
    t0 = time.perf_counter()
    tau, Z, T, lr, epochs, refine = cached_simulate(N, g, target, seeds, h, runs)
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
    gaps = (gap_large > 3.0 * sem) & (gap_large > GAP_FLOOR * abs(target))
    # the sampling law of the measured spread: standard deviations of samples of n
    # networks drawn from the predicted law (late in learning the sample misses the
    # slowest networks and scatters far beyond the Gaussian standard error)
    band = sample_readout_std(g, target, tau, N, n, draws=SAMPLE_DRAWS,
                              quantiles=(0.05, 0.5, 0.95))
    in_band = (s[resolved] >= band[0][resolved]) & (s[resolved] <= band[2][resolved])
    rel_med = band[1][resolved] / s[resolved] - 1.0
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
        "refined": {str(k): int(np.sum(np.abs(refine) == k))
                    for k in np.unique(np.abs(refine)) if k > 1},
        "not_flow": int(np.sum(refine < 0)),
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
                      if rel_b.size else None},
                  "sample_law": {
                      "frac_in_90pct_band": float(np.mean(in_band)) if rel.size else None,
                      "frac_median_within_20pct": float(np.mean(np.abs(rel_med) <= 0.2))
                      if rel.size else None}},
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
                      f" refined {r['refined'] or 'none'}, {r['not_flow']} not flow;"
                      f" z-std: {zs['resolved']} resolved, max err "
                      f"{zs['max_rel_err'] if zs['max_rel_err'] is None else round(100 * zs['max_rel_err'])} %,"
                      f" {100 * (zs['frac_within_20pct'] or 0):.0f} % within 20 % (bootstrap: "
                      f"{zs['bootstrap']['resolved']} resolved, "
                      f"{100 * (zs['bootstrap']['frac_within_20pct'] or 0):.0f} %, or 2 se "
                      f"{100 * (zs['bootstrap']['frac_within_20pct_or_2se'] or 0):.0f} %; in "
                      f"the predicted 90 % sampling band "
                      f"{100 * (zs['sample_law']['frac_in_90pct_band'] or 0):.0f} %); T-std err "
                      f"{100 * lt_['std_rel_err']:+.0f} % (se {100 * lt_['measured_std_se'] / lt_['measured_std']:.0f} %),"
                      f" own-L0 convention {100 * own['std_rel_err']:+.0f} %;"
                      f" slow {100 * r['slow_fraction']['measured']:.0f} % (predicted "
                      f"{100 * r['slow_fraction']['predicted']:.0f} %);"
                      f" mean gap ratio {mg['ratio'] if mg['ratio'] is None else round(mg['ratio'], 2)};"
                      f" cost x{r['cost_ratio']:.1f}", flush=True)
    result = {"settings": {"h": args.h, "seeds": args.seeds, "rel_loss": REL_LOSS,
                           "max_step_rate": MAX_STEP_RATE, "rate_floor": RATE_FLOOR,
                           "max_refine": MAX_REFINE},
              "points": points}
    if args.out:
        print(f"wrote {atomic_write_json(args.out, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
