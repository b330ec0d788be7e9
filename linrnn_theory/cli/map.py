"""``linrnn-theory map``: a phase diagram of the large-N theory over ``(g, z_hat)``.

Writes, into the folder given by ``--out``: ``map.png`` (one panel per quantity, the
failure boundary drawn in white when a step is given), ``map.npz`` (arrays ``g``,
``target``, one ``(G, Z)`` array per quantity, ``failure`` and ``lr_sharpness`` with a
step), ``map.csv`` (long format, one row per point) and ``map.json``
(:class:`linrnn_theory.theory.grid.PhaseMap`, schema ``linrnn-theory/phase-map/1``, plus
``cli``). Every file is written atomically after the computation succeeded.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ._common import cli_record, finite_float, progress_default

__all__ = ["add_parser", "run", "axis"]

_EXAMPLES = """\
examples:
  linrnn-theory map --g 0 0.9 --n-g 10 --target 0.5 4 --n-target 10 --out phase/
  linrnn-theory map --g 0.3 0.9 --n-g 7 --target 1 6 --n-target 11 --lr0 0.002 \\
      --quantity learning_time --quantity dw_norm --out failure/
"""


def axis(lo: float, hi: float, n: int, log: bool) -> np.ndarray:
    """``n`` points from ``lo`` to ``hi``, evenly spaced (or geometrically with ``log``).

    Examples
    --------
    >>> axis(1.0, 4.0, 3, log=True).tolist()
    [1.0, 2.0, 4.0]
    """
    from .. import _checks
    n = _checks.check_int("n", n, minimum=1)
    if log:
        if lo <= 0 or hi <= 0:
            raise ValueError("a log-spaced axis needs positive ends")
        return np.geomspace(lo, hi, n)
    return np.linspace(lo, hi, n)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``map`` sub-command."""
    from ..theory.grid import QUANTITIES
    p = subparsers.add_parser(
        "map", help="phase diagram of the theory over (g, target)",
        description="Evaluate the large-N theory on a grid of g and target z_hat: learning\n"
                    "time, |Delta W|, mean gradient norm, shuffle loss and, with a step\n"
                    "(--lr0 or --lr), whether gradient descent fails. Draws a figure and\n"
                    "writes the numbers (NPZ, CSV, JSON).",
        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--g", type=finite_float, nargs=2, metavar=("LO", "HI"), default=(0.0, 0.9),
                   help="range of g, 0 <= g < 1 (default 0 0.9)")
    p.add_argument("--n-g", type=int, default=10, help="points along g (default 10)")
    p.add_argument("--target", type=finite_float, nargs=2, metavar=("LO", "HI"),
                   default=(0.5, 4.0), help="range of the target (default 0.5 4)")
    p.add_argument("--n-target", type=int, default=10, help="points along the target "
                                                            "(default 10)")
    p.add_argument("--log-target", action="store_true", help="geometric spacing of targets")
    p.add_argument("--quantity", action="append", choices=sorted(QUANTITIES), default=None,
                   help="observable to map; repeat for several (default learning_time)")
    p.add_argument("--rel-loss", type=finite_float, default=0.05,
                   help="learning time = first time with loss < rel_loss L0 (default 0.05)")
    step = p.add_mutually_exclusive_group()
    step.add_argument("--lr0", type=finite_float, default=None,
                      help="step lr = lr0 (1 - g^2)^2: also map whether descent fails")
    step.add_argument("--lr", type=finite_float, default=None, help="raw step, as --lr0")
    p.add_argument("--epochs", type=int, default=2000,
                   help="length of the reduced descent behind the failure verdict")
    p.add_argument("--out", metavar="DIR", required=True,
                   help="folder for map.png, map.npz, map.csv, map.json")
    prog = p.add_mutually_exclusive_group()
    prog.add_argument("--progress", dest="progress", action="store_true", default=None,
                      help="progress bar (default: when stderr is a terminal)")
    prog.add_argument("--no-progress", dest="progress", action="store_false")
    return p


def _check_out_dir(out: str) -> Path:
    from . import CLIError
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise CLIError(f"--out must be a folder, got the file {out!r}")
    parent = path if path.exists() else path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    import os
    if not os.access(parent, os.W_OK):
        raise CLIError(f"--out: {str(parent)!r} is not writable")
    return path


def run(args: argparse.Namespace) -> int:
    """Compute the map, print a summary, write the files."""
    from .._io import atomic_write_bytes, atomic_write_text
    from ..theory.grid import phase_map
    out = _check_out_dir(args.out)
    gs = axis(*args.g, args.n_g, log=False)
    zs = axis(*args.target, args.n_target, log=args.log_target)
    quantities = args.quantity or ["learning_time"]
    m = phase_map(gs, zs, quantities=quantities, rel_loss=args.rel_loss, lr0=args.lr0,
                  lr=args.lr, epochs=args.epochs, progress=progress_default(args.progress))
    import io

    import matplotlib.pyplot as plt
    figs = []
    for q in quantities:
        fig = m.figure(q)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=120)
        plt.close(fig)
        figs.append((q, buf.getvalue()))
    out.mkdir(parents=True, exist_ok=True)
    m.to_npz(out / "map.npz")
    atomic_write_text(out / "map.csv", m.to_csv())
    doc = {**m.to_dict(), "cli": cli_record(args)}
    atomic_write_text(out / "map.json", json.dumps(doc, indent=1, allow_nan=False))
    for k, (q, png) in enumerate(figs):
        atomic_write_bytes(out / ("map.png" if k == 0 else f"map_{q}.png"), png)
    for q in quantities:
        v = m.values[q]
        print(f"{q}: min {np.nanmin(v):.4g}, max {np.nanmax(v):.4g} over "
              f"{m.shape[0]} x {m.shape[1]} points")
    if m.failure is not None:
        n_fail = int(np.sum(m.failure == "diverged"))
        print(f"descent diverges at {n_fail} of {m.failure.size} points")
    print(f"wrote {out}/map.png, map.npz, map.csv, map.json")
    return 0
