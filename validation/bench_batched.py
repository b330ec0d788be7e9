#!/usr/bin/env python3
"""Benchmark: many networks trained by one call of ``lt.train`` against a loop of calls.

For each mode, ``n_nets`` networks (``N`` neurons, gain ``g``, seeds ``seed, seed+1, ...``)
are trained for ``epochs`` epochs on the fixed-point task (the fast engines) twice in the
same run: one ``lt.train(net, ...)`` per network (the loop) and one
``lt.train(nets, ...)`` (batched). The two are timed alternately, ``rounds`` times each,
with the engines' caches of eigenbases and LU factors emptied before every timing (the
set-up is part of both), and every BLAS call single-threaded (``--blas-threads``). Each
timing records the wall time and the CPU time of this process; ``ratio`` is that of the
fastest batched call to the fastest loop in CPU time (on a shared machine the wall time
also counts the other processes' turns; ``ratio_wall`` is the same from wall times, and
the 1-minute load average is recorded before and after). The runs of the two are compared
array by array (``max_rel_diff``, 0 when bit-identical).

Targets: batched bptt costs at most 1/3 of the loop per network, batched fixed point 1/2.

Usage::

    python validation/bench_batched.py                  # N = 256, 16 networks, 200 epochs
    python validation/bench_batched.py --N 128 --nets 8 --epochs 50 --modes bptt

Output (``--out``, default ``validation/results/bench_batched.json``), schema
``linrnn-theory/bench-batched/1``::

    {"schema": "linrnn-theory/bench-batched/1",
     "params": {"N", "n_nets", "epochs", "g", "target", "lr0", "lr", "seed", "rounds",
                "blas_threads"},
     "machine": {"python", "numpy", "processor", "cpus", "load_before", "load_after"},
     "results": [{"mode", "N", "n_nets", "epochs",
                  "loop_s": [...], "batched_s": [...],      # wall seconds, one per round
                  "loop_cpu_s": [...], "batched_cpu_s": [...],   # CPU seconds
                  "loop_per_net_s", "batched_per_net_s",    # fastest CPU round / n_nets
                  "ratio",                                  # batched / loop (CPU)
                  "ratio_wall",                             # batched / loop (wall)
                  "target_ratio", "meets_target",           # ratio <= target_ratio
                  "max_rel_diff"}]}                         # batched vs loop runs

:func:`measure` returns one entry of ``results``; another benchmark can import and call it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import linrnn_theory as lt
from linrnn_theory._blas import limit_blas_threads
from linrnn_theory.simulation import bptt, fixed_point

SCHEMA = "linrnn-theory/bench-batched/1"
TARGETS = {"bptt": 1 / 3, "fixed_point": 1 / 2}
FIELDS = ("loss", "readout", "grad_norm", "singular_values", "W")
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_batched.json"


def _clear_caches() -> None:
    bptt._cached_eigenbasis.cache_clear()
    fixed_point._cached_lu.cache_clear()


def _max_rel_diff(loop: list, batched: list) -> float:
    worst = 0.0
    for a, b in zip(loop, batched):
        if a.status != b.status or a.stop_epoch != b.stop_epoch:
            return float("inf")
        for f in FIELDS:
            x, y = getattr(a, f), getattr(b, f)
            scale = np.nanmax(np.abs(x)) if x.size else 0.0
            d = np.nanmax(np.abs(x - y)) if x.size else 0.0
            if d > 0:
                worst = max(worst, float(d / scale) if scale > 0 else float("inf"))
    return worst


def measure(N: int = 256, n_nets: int = 16, epochs: int = 200, mode: str = "bptt", *,
            g: float = 0.6, target: float = 1.0, lr0: float = 0.009, seed: int = 0,
            rounds: int = 3, blas_threads: int | None = 1) -> dict:
    """Time ``n_nets`` networks trained one by one and in one call, in this process.

    Parameters
    ----------
    N, n_nets, epochs : int
        Network size, number of networks, epochs.
    mode : {"bptt", "fixed_point"}
    g, target, lr0 : float
        Gain, target, paper learning-rate constant (``lr = lr0 (1 - g^2)^2``).
    seed : int
        Seed of the first network (the others: ``seed + 1, ...``).
    rounds : int
        Timings of each kind (alternating); the fastest counts.
    blas_threads : int or None
        OpenBLAS threads during the timings (``None``: leave as is).

    Returns
    -------
    dict
        One entry of the JSON ``results`` (module docstring).

    Examples
    --------
    >>> out = measure(N=16, n_nets=2, epochs=3, mode="fixed_point", rounds=1)
    >>> out["mode"], out["max_rel_diff"], sorted(out)[:3]
    ('fixed_point', 0.0, ['N', 'batched_cpu_s', 'batched_per_net_s'])
    """
    lr = lr0 * (1 - g * g) ** 2
    task = lt.FixedPointTask(target=target)
    nets = [lt.init_network(N=N, g=g, seed=seed + i) for i in range(n_nets)]
    wall: dict[str, list[float]] = {"loop": [], "batched": []}
    cpu: dict[str, list[float]] = {"loop": [], "batched": []}

    def timed(kind, fn):
        _clear_caches()
        c, t = time.process_time(), time.perf_counter()
        out = fn()
        wall[kind].append(time.perf_counter() - t)
        cpu[kind].append(time.process_time() - c)
        return out

    with limit_blas_threads(blas_threads):
        for _ in range(rounds):
            loop = timed("loop", lambda: [lt.train(net, task, lr, epochs, mode, engine="fast")
                                          for net in nets])
            batched = timed("batched", lambda: lt.train(nets, task, lr, epochs, mode,
                                                        engine="fast"))
    ratio = min(cpu["batched"]) / min(cpu["loop"])
    return {"mode": mode, "N": N, "n_nets": n_nets, "epochs": epochs,
            "loop_s": wall["loop"], "batched_s": wall["batched"],
            "loop_cpu_s": cpu["loop"], "batched_cpu_s": cpu["batched"],
            "loop_per_net_s": min(cpu["loop"]) / n_nets,
            "batched_per_net_s": min(cpu["batched"]) / n_nets,
            "ratio": ratio, "ratio_wall": min(wall["batched"]) / min(wall["loop"]),
            "target_ratio": TARGETS[mode], "meets_target": ratio <= TARGETS[mode],
            "max_rel_diff": _max_rel_diff(loop, batched)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--N", type=int, default=256, help="network size (default 256)")
    ap.add_argument("--nets", type=int, default=16, help="number of networks (default 16)")
    ap.add_argument("--epochs", type=int, default=200, help="epochs (default 200)")
    ap.add_argument("--modes", nargs="+", default=["bptt", "fixed_point"],
                    choices=["bptt", "fixed_point"], help="modes (default both)")
    ap.add_argument("--g", type=float, default=0.6, help="gain (default 0.6)")
    ap.add_argument("--target", type=float, default=1.0, help="target (default 1)")
    ap.add_argument("--lr0", type=float, default=0.009,
                    help="learning-rate constant, lr = lr0 (1 - g^2)^2 (default 0.009)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the first network")
    ap.add_argument("--rounds", type=int, default=3, help="timings of each kind (default 3)")
    ap.add_argument("--blas-threads", type=int, default=1,
                    help="OpenBLAS threads during the timings (default 1)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help=f"JSON output (default {DEFAULT_OUT})")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()[0]
    results = []
    for mode in args.modes:
        r = measure(args.N, args.nets, args.epochs, mode, g=args.g, target=args.target,
                    lr0=args.lr0, seed=args.seed, rounds=args.rounds,
                    blas_threads=args.blas_threads)
        results.append(r)
        print(f"{mode:11s} N={args.N} x{args.nets}: loop {1e3 * r['loop_per_net_s']:8.1f} ms/net"
              f"  batched {1e3 * r['batched_per_net_s']:8.1f} ms/net (CPU)  ratio {r['ratio']:.3f}"
              f" (wall {r['ratio_wall']:.3f})"
              f" (target {r['target_ratio']:.3f}: {'met' if r['meets_target'] else 'MISSED'})"
              f"  max rel diff {r['max_rel_diff']:.1e}", flush=True)
    out = {"schema": SCHEMA,
           "params": {"N": args.N, "n_nets": args.nets, "epochs": args.epochs, "g": args.g,
                      "target": args.target, "lr0": args.lr0,
                      "lr": args.lr0 * (1 - args.g ** 2) ** 2, "seed": args.seed,
                      "rounds": args.rounds, "blas_threads": args.blas_threads},
           "machine": {"python": platform.python_version(), "numpy": np.__version__,
                       "processor": platform.processor() or platform.machine(),
                       "cpus": os.cpu_count(), "load_before": load_before,
                       "load_after": os.getloadavg()[0]},
           "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
