#!/usr/bin/env python3
r"""The finite-N theory against the exact gradient flows of many sampled networks.

For each size ``N``, gain ``g`` and target ``z_hat`` this draws ``--seeds`` networks
(``lt.init_network(N, g, seed)``, seeds ``0 .. seeds-1``) and computes each one's own
reduced ODE (the instance model, :func:`linrnn_theory.theory.instance.instance_model`:
the exact fixed-point gradient flow of that network, to the depth convergence 1e-9):

* its learning time (first ``tau`` with loss below 5 % of ``z_hat^2 / 2``),
  ``|Delta W|_F`` and the mean gradient norm there
  (:func:`linrnn_theory.theory.all_observables` with ``network``);
* its readout ``z(tau)`` on a grid of ``--n-tau`` times up to three large-N learning times
  (:func:`linrnn_theory.theory.predict` with ``method="instance"``).

These are compared with the finite-N theory at the same ``N``
(:func:`linrnn_theory.theory.finite_n.observables_spread`; ``theory.predict(
method="finite_n", N=N)``): the standard deviation over the networks of each observable
(with the standard error ``s / sqrt(2 (n - 1))`` and a bootstrap one), the means, and the
standard deviation of ``z(tau)`` at every time where it is resolved (above 3 of its
standard errors and ``FLOOR * |z_hat|``). Unlike
``validation/finite_n_vs_simulation.py`` no gradient descent is run, which makes
``N = 4096`` affordable: the comparison is with the gradient flow, the limit of small
steps.

Output (``--out``, JSON): ``{"settings": {...}, "points": [{"N", "g", "target", "seeds" (networks
compared), "excluded" ([{"seed", "reason"}]: no learning time), "verdict_ok", "verdict", "observables": {name: {"measured_mean", "measured_std",
"measured_std_se", "bootstrap_se", "predicted_mean", "predicted_std", "std_rel_err"}},
"z_std": {"resolved", "frac_within_20pct", "max_rel_err", "rel_err_median"}, "seconds":
{"instances", "finite_n"}}, ...]}``; ``rel_err`` = predicted / measured - 1.

Run: ``python validation/finite_n_vs_instances.py --N 256 1024 --seeds 64`` and
``python validation/finite_n_vs_instances.py --N 4096 --seeds 32``.
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
from linrnn_theory.theory.finite_n import SPREAD_OBSERVABLES, observables_spread, validity

REL_LOSS = 0.05
#: Spreads of ``z`` below this fraction of ``z_hat`` (the tail of convergence) are not
#: compared.
FLOOR = 1e-3


def _bootstrap_se(x: np.ndarray, n_boot: int = 400, seed: int = 0) -> np.ndarray:
    """Standard error of the standard deviation over axis 0, by bootstrap over networks."""
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    return np.array([x[rng.integers(0, n, n)].std(axis=0, ddof=1)
                     for _ in range(n_boot)]).std(axis=0, ddof=1)


def _z_std_check(pred_std: np.ndarray, Zs: np.ndarray, target: float) -> dict:
    """The predicted standard deviation of ``z`` against that of the rows of ``Zs`` at every
    time where the measured one is resolved (above 3 of its standard errors and
    ``FLOOR * |target|``)."""
    n = Zs.shape[0]
    s_z = Zs.std(axis=0, ddof=1)
    resolved = (s_z > 3.0 * s_z / np.sqrt(2.0 * (n - 1))) & (s_z > FLOOR * abs(target))
    rel = pred_std[resolved] / s_z[resolved] - 1.0
    return {"resolved": int(resolved.sum()),
            "frac_within_20pct": float(np.mean(np.abs(rel) <= 0.2)) if rel.size else None,
            "max_rel_err": float(np.max(np.abs(rel))) if rel.size else None,
            "rel_err_median": float(np.median(rel)) if rel.size else None}


def _subsample_checks(pred_std: np.ndarray, Zs: np.ndarray, target: float,
                      size: int) -> dict:
    """:func:`_z_std_check` on each of the disjoint consecutive groups of ``size`` networks:
    how a measurement on ``size`` networks scatters around the one on all of them."""
    groups = [Zs[i:i + size] for i in range(0, Zs.shape[0] - size + 1, size)]
    checks = [_z_std_check(pred_std, G, target) for G in groups]
    fr = [c["frac_within_20pct"] for c in checks if c["frac_within_20pct"] is not None]
    return {"size": size, "count": len(groups), "checks": checks,
            "frac_within_20pct_min": min(fr) if fr else None,
            "frac_within_20pct_median": float(np.median(fr)) if fr else None,
            "frac_within_20pct_max": max(fr) if fr else None}


def compare(N: int, g: float, targets: list[float], seeds: int, n_tau: int,
            subsample: int | None = None, readout_only: bool = False) -> list[dict]:
    """The points of one ``(N, g)`` for every target (each network is drawn once).

    With ``subsample`` the readout spread is also checked on disjoint groups of that many
    networks (``z_std.subsamples``); with ``readout_only`` the scalar observables are not
    computed (``observables`` is empty)."""
    taus = {z: np.linspace(0.0, 3.0 * theory.learning_time(g, z, REL_LOSS), n_tau)
            for z in targets}
    obs = {z: [] for z in targets}
    Z = {z: [] for z in targets}
    excluded: dict[float, list] = {z: [] for z in targets}
    t0 = time.perf_counter()
    for s in range(seeds):
        net = lt.init_network(N=N, g=g, seed=s)
        for z in targets:
            # a network whose flow loses its fixed point (near g = 1, large targets) or is
            # unstable from the start has no learning time: left out and counted
            try:
                o = ({} if readout_only else
                     theory.all_observables(target=z, network=net, rel_loss=REL_LOSS))
                zs = theory.predict(network=net, target=z, tau=taus[z], method="instance",
                                    outlier=False, grad_norm=False).readout
            except (RuntimeError, ValueError) as exc:
                excluded[z].append({"seed": s, "reason": f"{type(exc).__name__}: {exc}"})
                continue
            obs[z].append([o[k] for k in SPREAD_OBSERVABLES] if o else [])
            Z[z].append(zs)
    t_inst = (time.perf_counter() - t0) / len(targets)
    check = validity(g, N)
    out = []
    for z in targets:
        t1 = time.perf_counter()
        pred = {} if readout_only else observables_spread(g, z, N, REL_LOSS)
        fin = theory.predict(g=g, target=z, tau=taus[z], method="finite_n", N=N,
                             outlier=False, grad_norm=False)
        t_fin = time.perf_counter() - t1
        X, Zs = np.array(obs[z]), np.array(Z[z])
        n = Zs.shape[0]
        entry = {}
        if not readout_only:
            sd, se_b = X.std(axis=0, ddof=1), _bootstrap_se(X)
        for j, k in enumerate(() if readout_only else SPREAD_OBSERVABLES):
            m, s = pred[k]
            entry[k] = {"measured_mean": float(X[:, j].mean()), "measured_std": float(sd[j]),
                        "measured_std_se": float(sd[j] / np.sqrt(2.0 * (n - 1))),
                        "bootstrap_se": float(se_b[j]), "predicted_mean": m,
                        "predicted_std": s, "std_rel_err": s / float(sd[j]) - 1.0}
        z_std = _z_std_check(fin.readout_std, Zs, z)
        if subsample:
            z_std["subsamples"] = _subsample_checks(fin.readout_std, Zs, z, subsample)
        out.append({"N": N, "g": g, "target": z, "seeds": n, "excluded": excluded[z],
                    "verdict_ok": check.ok,
                    "verdict": check.message or "ok", "observables": entry,
                    "z_std": z_std,
                    "seconds": {"instances": t_inst, "finite_n": t_fin}})
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``--help`` lists the options)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--N", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--g", type=float, nargs="+", default=[0.0, 0.3, 0.6, 0.8])
    ap.add_argument("--targets", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    ap.add_argument("--seeds", type=int, default=64)
    ap.add_argument("--n-tau", type=int, default=60, help="readout times (default 60)")
    ap.add_argument("--subsample", type=int, default=None,
                    help="also check the readout spread on disjoint groups of this many "
                         "networks (how a smaller sample scatters)")
    ap.add_argument("--readout-only", action="store_true",
                    help="only the readout spread (no learning time, |dW|, gradient norm)")
    ap.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    args = ap.parse_args(argv)
    if args.seeds < 8 or args.n_tau < 2:
        ap.error("--seeds must be >= 8 and --n-tau >= 2")
    if args.subsample is not None and not 8 <= args.subsample <= args.seeds:
        ap.error("--subsample must be between 8 and --seeds")
    points = []
    for N in args.N:
        for g in args.g:
            for r in compare(N, g, args.targets, args.seeds, args.n_tau, args.subsample,
                             args.readout_only):
                points.append(r)
                errs = ", ".join(f"{k} {100 * v['std_rel_err']:+.0f} % (se "
                                 f"{100 * v['measured_std_se'] / v['measured_std']:.0f} %)"
                                 for k, v in r["observables"].items())
                zs = r["z_std"]
                sub = zs.get("subsamples")
                sub_txt = "" if not sub else (
                    f"; groups of {sub['size']}: {100 * (sub['frac_within_20pct_min'] or 0):.0f}"
                    f"-{100 * (sub['frac_within_20pct_max'] or 0):.0f} % (median "
                    f"{100 * (sub['frac_within_20pct_median'] or 0):.0f} %)")
                print(f"N={N:5d} g={g:.2f} z^={r['target']:.1f} "
                      f"[{'ok' if r['verdict_ok'] else 'FLAGGED'}] sd errors: {errs or '-'}; "
                      f"z-std {zs['resolved']} resolved, "
                      f"{100 * (zs['frac_within_20pct'] or 0):.0f} % within 20 %{sub_txt}",
                      flush=True)
    result = {"settings": {"seeds": args.seeds, "rel_loss": REL_LOSS, "n_tau": args.n_tau,
                           "subsample": args.subsample, "readout_only": args.readout_only},
              "points": points}
    if args.out:
        print(f"wrote {atomic_write_json(args.out, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
