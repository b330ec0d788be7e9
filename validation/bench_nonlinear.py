"""Time one training epoch of the tanh RNN on the three tasks (N = 256, batch 32).

One "epoch" is what the paper's code does per iteration: draw a batch of 32 trials,
forward pass, backpropagation through time, Adam update of W_in, W, W_out. It is
compared with the paper implementation measured on this 2-core machine (PyTorch,
float32, CPU): 115 / 38 / 23 ms per epoch for flip-flop / Mante / Romo (docs/paper.md section
6). The target is at most half of those.

``run_nonlinear`` additionally evaluates a fixed test batch (64 trials) after every
update; that cost is timed separately ("test eval") and the sum is printed too.

``--threads 2`` splits the batch of 32 trials into two halves simulated by two Python
threads (numpy releases the GIL in BLAS and ufunc loops); every BLAS call stays
single-threaded, because two-thread OpenBLAS on these small GEMMs becomes up to 100x
slower as soon as another process occupies a core.

The machine is shared: the 1-minute load average is printed before and after, and every
number is the median over ``--repeats`` epochs in the best of ``--rounds`` rounds (the
minimum over all epochs is printed as well). "cpu ms" is the process CPU time per epoch
(summed over threads); with one thread it equals the wall time when the process had a
core to itself.

Usage::

    python validation/bench_nonlinear.py                 # float64 and float32, 1 and 2 threads
    python validation/bench_nonlinear.py --dtype float64 --repeats 50 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from linrnn_theory.nonlinear import (Adam, BPTTWorkspace, init_params, limit_blas_threads,
                                     loss, loss_and_grad, make_task)
from linrnn_theory.nonlinear.tasks import TASK_NAMES

PAPER_MS = {"flipflop": 115.0, "mante": 38.0, "romo": 23.0}


def bench_task(task_name: str, dtype, N: int, batch: int, n_test: int, repeats: int,
               warmup: int, n_threads: int = 1, rounds: int = 3, seed: int = 0) -> dict:
    """Wall time (ms) of a training epoch and of a test-batch evaluation.

    ``rounds`` rounds of ``repeats`` timed calls each; the reported median is that of the
    round with the smallest median (the least disturbed by other processes, as
    ``timeit`` takes the best of several runs), the minimum is over all calls.
    """
    task = make_task(task_name)
    rng = np.random.default_rng(seed)
    params = init_params(N, task.n_in, task.n_out, g=1.5, seed=seed, dtype=dtype)
    opt = Adam(params.arrays(), lr=0.05 / N)
    ws = BPTTWorkspace.like(params, task.n_steps, batch, n_threads)
    ws_test = BPTTWorkspace.like(params, task.n_steps, n_test, n_threads)
    test = task.test_batch(batch=n_test)
    u_t, y_t, m_t = (np.asarray(a, dtype) for a in test[:3])

    def epoch() -> None:
        b = task.sample(batch, rng)
        _, grads = loss_and_grad(params, b.u, b.target, b.mask, workspace=ws)
        opt.step(params.arrays(), grads.arrays())

    def test_eval() -> None:
        loss(params, u_t, y_t, m_t, workspace=ws_test)

    out = {}
    for name, fn in (("epoch", epoch), ("test_eval", test_eval)):
        for _ in range(warmup):
            fn()
        medians, mins, cpus = [], [], []
        for _ in range(rounds):
            ts, cs = [], []
            for _ in range(repeats):
                c0, t0 = time.process_time(), time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
                cs.append(time.process_time() - c0)
            medians.append(1e3 * float(np.median(ts)))
            mins.append(1e3 * float(np.min(ts)))
            cpus.append(1e3 * float(np.median(cs)))
        best = int(np.argmin(medians))
        out[f"{name}_ms_median"] = medians[best]          # best round (least disturbed)
        out[f"{name}_ms_round_medians"] = medians
        out[f"{name}_ms_min"] = float(np.min(mins))
        out[f"{name}_cpu_ms_median"] = cpus[best]
    out["n_steps"] = task.n_steps
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Per-epoch training cost of the tanh RNN (N=256, batch 32) on the "
                    "flip-flop / Mante / Romo tasks, against the paper implementation's "
                    "115 / 38 / 23 ms (float32 PyTorch on this 2-core machine).")
    ap.add_argument("--dtype", nargs="+", default=["float64", "float32"],
                    choices=["float64", "float32"], help="precisions to time")
    ap.add_argument("--tasks", nargs="+", default=list(TASK_NAMES), choices=list(TASK_NAMES))
    ap.add_argument("--N", type=int, default=256, help="neurons (default 256)")
    ap.add_argument("--batch", type=int, default=32, help="trials per epoch (default 32)")
    ap.add_argument("--n-test", type=int, default=64, help="test-batch size (default 64)")
    ap.add_argument("--repeats", type=int, default=30, help="timed epochs (default 30)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed epochs first")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of --repeats epochs; the best round's median is reported")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="batch-parallel threads to time (default: 1 and 2); every BLAS "
                         "call itself is single-threaded")
    ap.add_argument("--json", default="bench_nonlinear.json", help="output JSON file")
    args = ap.parse_args(argv)
    for name in ("N", "batch", "n_test", "repeats", "rounds"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")

    load_before = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPU(s), {platform.processor() or platform.machine()}, "
          f"numpy {np.__version__}; 1-min load average before: {load_before:.2f}")
    print(f"N = {args.N}, batch = {args.batch}; epoch ms = median over {args.repeats} "
          f"epochs in the best of {args.rounds} rounds (min over all epochs); "
          f"target = half of the paper's ms/epoch\n")
    header = (f"{'task':9s} {'dtype':8s} {'thr':>3s} {'steps':>5s} {'epoch ms (min)':>16s} "
              f"{'cpu ms':>6s} "
              f"{'paper':>6s} {'target':>6s} {'speed-up':>8s} {'met':>4s} "
              f"{'test eval ms':>13s} {'epoch+test':>10s}")
    print(header)
    print("-" * len(header))
    rows = []
    with limit_blas_threads(1):
        for threads in args.threads:
            for dtype in args.dtype:
                for task in args.tasks:
                    r = bench_task(task, np.dtype(dtype), args.N, args.batch, args.n_test,
                                   args.repeats, args.warmup, n_threads=threads,
                                   rounds=args.rounds)
                    paper = PAPER_MS[task]
                    r.update(task=task, dtype=dtype, threads=threads, paper_ms=paper,
                             target_ms=paper / 2, speedup=paper / r["epoch_ms_median"],
                             target_met=r["epoch_ms_median"] <= paper / 2)
                    rows.append(r)
                    print(f"{task:9s} {dtype:8s} {threads:3d} {r['n_steps']:5d} "
                          f"{r['epoch_ms_median']:7.1f} ({r['epoch_ms_min']:5.1f}) "
                          f"{r['epoch_cpu_ms_median']:6.1f} "
                          f"{paper:6.0f} {paper / 2:6.1f} {r['speedup']:7.2f}x "
                          f"{'yes' if r['target_met'] else 'NO':>4s} "
                          f"{r['test_eval_ms_median']:13.1f} "
                          f"{r['epoch_ms_median'] + r['test_eval_ms_median']:10.1f}",
                          flush=True)
    load_after = os.getloadavg()[0]
    print(f"\n1-min load average after: {load_after:.2f} (other processes on this machine "
          f"slow the numbers down; rerun when it is idle)")
    missed = [r for r in rows if not r["target_met"]]
    if missed:
        print("target missed: " + ", ".join(
            f"{r['task']}/{r['dtype']}/{r['threads']}thr ({r['epoch_ms_median']:.1f} ms > "
            f"{r['target_ms']:.1f} ms)" for r in missed))
    else:
        print("target met for every task and dtype timed")
    out = {
        "settings": vars(args), "cpu_count": os.cpu_count(), "numpy": np.__version__,
        "python": sys.version.split()[0], "load_before": load_before,
        "load_after": load_after, "paper_ms": PAPER_MS, "results": rows,
    }
    with open(args.json, "w") as fh:
        json.dump(out, fh, indent=2)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
