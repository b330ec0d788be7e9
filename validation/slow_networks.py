r"""Which property of ``W0`` decides whether a network near ``g = 1`` learns slowly?

At ``g = 0.9`` and ``N = 256`` some networks learn the fixed-point task about three times
more slowly than the large-N gradient flow predicts, others at its speed. This script
trains many networks by small-step fixed-point gradient descent, measures each one's
learning time (first ``tau`` with loss below 5 % of ``L0``, linearly interpolated in
``log L``) and records candidate properties of ``W0``:

* ``abscissa``: the largest real part of an eigenvalue of ``W0`` (how close the bulk edge
  comes to the stability line ``Re lambda = 1``);
* ``smin``: the smallest singular value of ``I - W0``;
* ``z0``: the initial readout ``w^T (I - W0)^{-1} m`` (a fluctuation of order ``N^{-1/2}``
  in the large-N theory, amplified by ``beta`` near ``g = 1``);
* ``gu`` and ``gv``: ``|(I - W0)^{-T} w|^2`` and ``|(I - W0)^{-1} m|^2`` relative to their
  large-N value ``beta / N`` and ``beta N``.

It prints and writes (``--out``) the Spearman rank correlation of the learning time with
each candidate, and every network's numbers.

Run: ``python validation/slow_networks.py --N 256 1024 --seeds 64 --out validation/results/slow_networks.json``
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from scipy.stats import spearmanr

import linrnn_theory as lt
from linrnn_theory.theory.traces import beta_of


def learning_time(tau: np.ndarray, loss: np.ndarray, L0: float, rel: float = 0.05) -> float:
    """First ``tau`` with ``loss < rel * L0``, interpolated linearly in ``log(loss)``.

    Returns ``nan`` if the loss never gets there.

    Examples
    --------
    >>> round(learning_time(np.array([0.0, 1.0, 2.0]), np.array([1.0, 0.1, 0.01]), 1.0, 0.05), 6)
    1.30103
    """
    below = np.flatnonzero(loss < rel * L0)
    if below.size == 0:
        return float("nan")
    k = int(below[0])
    if k == 0:
        return float(tau[0])
    a, b = np.log(loss[k - 1]), np.log(loss[k])
    frac = (a - np.log(rel * L0)) / (a - b)
    return float(tau[k - 1] + frac * (tau[k] - tau[k - 1]))


def network_properties(net: lt.Network, g: float) -> dict[str, float]:
    """Candidate properties of ``W0`` (see the module docstring)."""
    N = net.N
    A = np.eye(N) - net.W0
    beta = beta_of(g)
    Rm = np.linalg.solve(A, net.m)
    RTw = np.linalg.solve(A.T, net.w)
    return {
        "abscissa": float(np.max(np.linalg.eigvals(net.W0).real)),
        "smin": float(np.linalg.svd(A, compute_uv=False)[-1]),
        "z0": float(net.w @ Rm),
        "gu": float(RTw @ RTw) / (beta / N),
        "gv": float(Rm @ Rm) / (beta * N),
    }


def measure(N: int, g: float, target: float, seeds: int, lr0: float, epochs: int,
            batch: int = 16) -> list[dict]:
    """Train ``seeds`` networks (``batch`` of them per call of ``lt.train``) and return
    their learning times and properties."""
    lr = lr0 * (1 - g * g) ** 2
    rows = []
    for start in range(0, seeds, batch):
        nets = [lt.init_network(N=N, g=g, seed=s) for s in range(start, min(seeds, start + batch))]
        runs = lt.train(nets, lt.FixedPointTask(target=target), lr=lr, epochs=epochs,
                        mode="fixed_point", n_singular=4)
        for net, run in zip(nets, runs):
            row = {"seed": net.seed, "status": run.status,
                   "t_learn": learning_time(run.tau, run.loss, run.L0)}
            row.update(network_properties(net, g))
            rows.append(row)
    return rows


def correlations(rows: list[dict]) -> dict[str, float]:
    """Spearman correlation of the learning time with each candidate property."""
    t = np.array([r["t_learn"] for r in rows])
    ok = np.isfinite(t)
    out = {}
    for key in ("abscissa", "smin", "z0", "gu", "gv"):
        x = np.array([r[key] for r in rows])
        out[key] = float(spearmanr(t[ok], x[ok]).statistic)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``--help`` lists the options)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--N", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--g", type=float, default=0.9)
    ap.add_argument("--target", type=float, default=1.0)
    ap.add_argument("--seeds", type=int, default=64)
    ap.add_argument("--lr0", type=float, default=0.009 / 4,
                    help="lr = lr0 (1 - g^2)^2; default a quarter of the paper's rate")
    ap.add_argument("--epochs", type=int, default=1600)
    ap.add_argument("--batch", type=int, default=16,
                    help="networks trained together per call of lt.train (default 16)")
    ap.add_argument("--out", default=None, help="JSON file for the results")
    args = ap.parse_args(argv)
    result = {"g": args.g, "target": args.target, "lr0": args.lr0, "epochs": args.epochs,
              "by_N": {}}
    for N in args.N:
        t0 = time.perf_counter()
        rows = measure(N, args.g, args.target, args.seeds, args.lr0, args.epochs, args.batch)
        corr = correlations(rows)
        t = np.array([r["t_learn"] for r in rows])
        result["by_N"][str(N)] = {"rows": rows, "spearman": corr,
                                  "t_learn_median": float(np.nanmedian(t)),
                                  "t_learn_q90": float(np.nanquantile(t, 0.9)),
                                  "not_learned": int(np.sum(~np.isfinite(t))),
                                  "seconds": time.perf_counter() - t0}
        print(f"N = {N}: median t_learn {np.nanmedian(t):.4f}, 90% quantile "
              f"{np.nanquantile(t, 0.9):.4f}; Spearman with t_learn: "
              + ", ".join(f"{k} {v:+.2f}" for k, v in corr.items()))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
