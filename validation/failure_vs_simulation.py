#!/usr/bin/env python3
"""Failure of learning: the reduced-descent prediction against finite-time simulations.

docs/paper.md section 5: N = 256, t_max = 201, dt = 0.5, g in {0.6, 0.8}, large targets, lr0 in
{0.002, 0.001} (lr = lr0 (1 - g^2)^2). For each (g, target, lr0, seed) the finite-time
network is trained by plain gradient descent (fast bptt engine) and classified as
"diverged" (status) or not; the final ``lr |grad z|^2`` shows the edge of stability
(settling at 2). Predictions (``linrnn_theory.theory.failure.predict_failure``): the
large-N reduced model, and the reduced model of each network (``network=``). The table
counts agreements on divergence; ``critical_target(g, lr0)`` gives the large-N boundary.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from joblib import Parallel, delayed

import linrnn_theory as lt
from linrnn_theory._io import atomic_write_json
from linrnn_theory.theory import failure


def cases(g, target, lr0, seeds, N, epochs, t_max):
    """The rows of the networks ``seeds`` at one (g, target, lr0): all trained by one call
    of ``lt.train`` (``sim_seconds`` is that call's time divided by the number of seeds)."""
    nets = [lt.init_network(N=N, g=g, seed=seed) for seed in seeds]
    task = lt.FixedPointTask(target=target, t_max=t_max)
    lr = lr0 * (1 - g * g) ** 2
    t0 = time.perf_counter()
    runs = lt.train(nets, task, lr=lr, epochs=epochs, mode="bptt")
    sim_s = (time.perf_counter() - t0) / len(nets)
    big = failure.predict_failure(g, target, lr=lr, epochs=epochs)
    rows = []
    for seed, net, run in zip(seeds, nets, runs):
        sharp = float("nan")
        if run.status != "diverged":
            L, G = lt.gradient(run.W, net, task, "bptt")
            sharp = lr * float(np.linalg.norm(G)) ** 2 / (2 * L) if L > 0 else float("nan")
        inst = failure.predict_failure(g, target, lr=lr, epochs=epochs, network=net)
        rows.append({
            "g": g, "target": target, "lr0": lr0, "seed": seed, "N": N, "epochs": epochs,
            "sim_status": run.status, "sim_stop_epoch": run.stop_epoch,
            "sim_final_loss_rel": float(run.loss[-1] / task.L0) if run.loss.size else None,
            "sim_lr_sharpness_end": sharp, "sim_seconds": sim_s,
            "instance_status": inst.status.value,
            "instance_lr_sharpness": inst.lr_sharpness_final,
            "instance_diverged_epoch": inst.diverged_epoch,
            "large_n_status": big.status.value, "large_n_lr_sharpness": big.lr_sharpness_final,
            "lambda_final_flow": big.lambda_final})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--N", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=800)
    ap.add_argument("--t-max", type=float, default=201.0)
    ap.add_argument("--g", type=float, nargs="+", default=[0.6, 0.8])
    ap.add_argument("--targets", type=float, nargs="+", default=[2.0, 3.0, 4.0, 6.0])
    ap.add_argument("--lr0", type=float, nargs="+", default=[0.001, 0.002])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="validation_results/failure.json")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    res = Parallel(n_jobs=args.jobs, verbose=5)(
        delayed(cases)(g, z, l0, list(range(args.seeds)), args.N, args.epochs, args.t_max)
        for g in args.g for z in args.targets for l0 in args.lr0)
    rows = [r for rr in res for r in rr]
    crit = {f"g={g},lr0={l0}": failure.critical_target(g, lr0=l0, epochs=args.epochs)
            for g in args.g for l0 in args.lr0}
    div = [r["sim_status"] == "diverged" for r in rows]
    agree_inst = sum((r["instance_status"] == "diverged") == d for r, d in zip(rows, div))
    agree_big = sum((r["large_n_status"] == "diverged") == d for r, d in zip(rows, div))
    out = {"params": vars(args), "rows": rows, "critical_target_large_n": crit,
           "agree_instance": agree_inst, "agree_large_n": agree_big, "n": len(rows),
           "seconds": time.perf_counter() - t0}
    atomic_write_json(args.out, out)
    print(f"{'g':>4} {'z':>4} {'lr0':>6} {'seed':>4} {'sim':>9} {'lr*S end':>8} "
          f"{'instance':>18} {'large N':>18}")
    for r in rows:
        print(f"{r['g']:4.1f} {r['target']:4.1f} {r['lr0']:6.3f} {r['seed']:4d} "
              f"{r['sim_status']:>9} {r['sim_lr_sharpness_end']:8.3f} "
              f"{r['instance_status']:>18} {r['large_n_status']:>18}")
    print(f"divergence predicted correctly: instance {agree_inst}/{len(rows)}, "
          f"large N {agree_big}/{len(rows)}; critical targets (large N): {crit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
