"""``linrnn-theory bench``: fast simulators against dense baselines (see
:mod:`linrnn_theory.benchmark`)."""

from __future__ import annotations

import argparse

from ._common import add_out, check_out_path, progress_default

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``bench`` sub-command."""
    p = subparsers.add_parser(
        "bench", help="time the fast simulators against dense baselines",
        description="Train the same networks with the fast engines and with plain dense "
                    "baselines (dense LU per epoch; dense Euler loop with BPTT), measured in "
                    "the same run; print a table of times per epoch, ratios and the largest "
                    "relative difference of the loss curves, and optionally write JSON.")
    p.add_argument("--N", type=int, nargs="+", default=[256, 1024, 2048], metavar="N",
                   help="network sizes (default: 256 1024 2048)")
    p.add_argument("--g", type=float, nargs="+", default=[0.6], help="gains (default: 0.6)")
    p.add_argument("--target", type=float, default=1.0, help="target z_hat (default 1)")
    p.add_argument("--lr0", type=float, default=0.009,
                   help="paper learning-rate constant, lr = lr0 (1 - g^2)^2 (default 0.009)")
    p.add_argument("--epochs", type=int, default=200, help="epochs of the fast engines")
    p.add_argument("--dense-epochs-large", type=int, default=20,
                   help="epochs of the dense baselines for N > 1024 (default 20)")
    p.add_argument("--mode", choices=["fixed-point", "bptt", "both"], default="both")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--blas-threads", type=int, default=1,
                   help="BLAS threads for both the fast engines and the baselines (default 1: "
                        "a per-core comparison; on a 2-core machine the dense bptt baseline "
                        "gains 1.4-1.8x from a second thread, the fast engines nothing)")
    add_out(p, "the benchmark as JSON (schema linrnn-theory/bench/1)")
    return p


def run(args) -> int:
    """Run the benchmark."""
    from .._blas import limit_blas_threads
    from .._checks import check_int
    from .._io import atomic_write_json
    from ..benchmark import bench, format_table

    out = check_out_path(args.out)
    for n in args.N:
        check_int("N", n, minimum=2)
    check_int("epochs", args.epochs, minimum=1)
    from .._checks import check_positive
    check_positive("lr0", args.lr0)
    threads = check_int("blas-threads", args.blas_threads, minimum=1)
    modes = {"fixed-point": ("fixed_point",), "bptt": ("bptt",),
             "both": ("fixed_point", "bptt")}[args.mode]
    runs = []
    with limit_blas_threads(threads):
        for g in args.g:
            res = bench(Ns=tuple(args.N), g=g, target=args.target, lr0=args.lr0,
                        epochs=args.epochs,
                        dense_epochs={n: args.dense_epochs_large for n in args.N if n > 1024},
                        seed=args.seed, modes=modes, progress=progress_default(None))
            res["params"]["blas_threads"] = threads
            print(f"\ng = {g}  ({threads} BLAS thread{'s' if threads > 1 else ''})")
            print(format_table(res))
            runs.append(res)
    if out is not None:
        atomic_write_json(out, runs[0] if len(runs) == 1 else
                          {"schema": "linrnn-theory/bench-set/1", "runs": runs})
        print(f"wrote {out}")
    return 0
