"""Run time of ``reproduce nscaling --full``, estimated from measured costs on this machine.

The full preset (the paper's sizes: N = 64 ... 1024, three tasks, three gains, five seeds,
1000 / 2000 / 6000 epochs) is far too long to run here, so its time is estimated from
what each piece costs, measured in this run: for every (task, N), one run of
``linrnn_theory.reproduce.FIGURES["nscaling"].simulate`` with ``e1`` and one with ``e2`` epochs
(one record each, g = 0.9) give the cost per epoch (the difference) and the fixed cost of
a run (set-up, test batch, eigenvalues and the final analyses); the singular values
recorded along training are timed separately (one SVD of an N x N matrix). Estimated run
time = fixed + epochs x per-epoch + (records - 1) x SVD, summed over g and seeds, for one
worker process; divide by the number of workers for a parallel run.

Usage::

    python validation/nscaling_cost.py                # all N of the full preset
    python validation/nscaling_cost.py --N 64 128 --json cost.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _time_run(task: str, N: int, epochs: int, p) -> float:
    from linrnn_theory.reproduce import FIGURES
    params = {"task": task, "g": 0.9, "N": N, "seed": 0, "epochs": epochs, "batch": p.batch,
              "lr": p.lr_scale / N, "n_test": p.n_test, "test_every": p.test_every,
              "records": 1, "sv_threshold": p.sv_threshold}
    t0 = time.perf_counter()
    FIGURES["nscaling"].simulate(params)
    return time.perf_counter() - t0


def _time_svd(N: int, rng: np.random.Generator, repeats: int = 3) -> float:
    a = rng.standard_normal((N, N))
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.linalg.svd(a, compute_uv=False)
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    from linrnn_theory.nonlinear import limit_blas_threads
    from linrnn_theory.reproduce.presets import FULL

    p = FULL.nscaling
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--N", type=int, nargs="+", default=list(p.N_values),
                    help="network sizes to measure (default: those of the full preset)")
    ap.add_argument("--e1", type=int, default=4, help="epochs of the short probe run")
    ap.add_argument("--e2", type=int, default=12, help="epochs of the long probe run")
    ap.add_argument("--json", metavar="FILE", help="also write the table as JSON")
    args = ap.parse_args(argv)
    if min(args.N) < 2 or not 1 <= args.e1 < args.e2:
        ap.error("need N >= 2 and 1 <= e1 < e2")
    rng = np.random.default_rng(0)
    epochs = dict(p.epochs)
    runs_per_cell = len(p.g_values) * len(p.seeds)
    rows, total = [], 0.0
    with limit_blas_threads(1):
        for N in args.N:
            svd = _time_svd(N, rng)
            for task in p.tasks:
                t1 = _time_run(task, N, args.e1, p)
                t2 = _time_run(task, N, args.e2, p)
                per_epoch = (t2 - t1) / (args.e2 - args.e1)
                fixed = max(t1 - args.e1 * per_epoch, 0.0)
                run = fixed + epochs[task] * per_epoch + (p.records - 1) * svd
                total += runs_per_cell * run
                rows.append({"N": N, "task": task, "ms_per_epoch": 1e3 * per_epoch,
                             "fixed_s": fixed, "svd_s": svd, "run_s": run,
                             "runs": runs_per_cell})
                print(f"N = {N:5d}  {task:9s} {1e3 * per_epoch:9.1f} ms/epoch  fixed "
                      f"{fixed:6.2f} s  svd {svd:6.3f} s  -> {run / 60:7.1f} min per run, "
                      f"{runs_per_cell} runs", flush=True)
    print(f"estimated total, one worker: {total / 3600:.1f} h ({total / 86400:.2f} days); "
          f"two workers: {total / 7200:.1f} h")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"rows": rows, "total_s_one_worker": total}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
