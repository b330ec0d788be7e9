"""Time the symbolic derivation to order 5 (``linrnn-theory derive --order 5``
prints/writes the coefficients in under a minute on this machine).

Two measurements:

* ``linrnn_theory.derivations.generate.derive_all(5)`` in this process (wall and CPU time;
  a fresh interpreter per repeat, since sympy caches results between calls);
* the command line ``linrnn-theory derive --order 5`` (or ``python -m linrnn_theory.cli``
  when the entry point is not on PATH) as a subprocess, wall time including start-up,
  output written to a temporary file.

The machine is shared: the 1-minute load average is printed, and each number is the
best of ``--repeats`` fresh runs (the least disturbed). The JSON lists all of them.

Usage::

    python validation/derive_timing.py                    # order 5, 3 repeats
    python validation/derive_timing.py --order 6 --repeats 1 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIMIT_S = 60.0

_CHILD = """
import json, time
t0, c0 = time.perf_counter(), time.process_time()
from linrnn_theory.derivations.generate import derive_all
d = derive_all({order})
print(json.dumps({{"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0,
                   "inner": d["seconds"], "readout3": str(d["readout"][3])}}))
"""


def time_library(order: int) -> dict:
    """``derive_all(order)`` in a fresh interpreter (imports included)."""
    out = subprocess.run([sys.executable, "-c", _CHILD.format(order=order)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cli_command(order: int, out_file: str) -> list[str] | None:
    exe = shutil.which("linrnn-theory")
    base = [exe] if exe else [sys.executable, "-m", "linrnn_theory.cli"]
    try:
        subprocess.run(base + ["derive", "--help"], capture_output=True, check=True,
                       timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError):
        return None
    return base + ["derive", "--order", str(order), "--out", out_file]


def time_cli(order: int) -> dict | None:
    """Wall time of the CLI writing the coefficients to a file; None if no CLI."""
    with tempfile.TemporaryDirectory() as tmp:
        out_file = str(Path(tmp) / "coefficients.txt")
        cmd = cli_command(order, out_file)
        if cmd is None:
            return None
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        text = Path(out_file).read_text() if Path(out_file).exists() else proc.stdout
    return {"wall": wall, "returncode": proc.returncode, "command": " ".join(cmd),
            "output_lines": len(text.splitlines()),
            "has_published_order3": "8*beta*zhat**2 + 1" in text}


def _walls(runs: list[dict]) -> str:
    return ", ".join("%.1f" % r["wall"] for r in runs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--order", type=int, default=5, help="derivation order (default 5)")
    ap.add_argument("--repeats", type=int, default=3, help="fresh runs each (default 3)")
    ap.add_argument("--json", default="results/derive_timing.json",
                    help="output JSON (default results/derive_timing.json)")
    args = ap.parse_args(argv)
    load0 = os.getloadavg()[0]
    lib, cli = [], []
    for i in range(args.repeats):
        print(f"repeat {i + 1}/{args.repeats}: derive_all({args.order}) ...", file=sys.stderr,
              flush=True)
        lib.append(time_library(args.order))
        print(f"repeat {i + 1}/{args.repeats}: CLI ...", file=sys.stderr, flush=True)
        c = time_cli(args.order)
        if c is not None:
            cli.append(c)
    load1 = os.getloadavg()[0]
    best_lib = min(r["wall"] for r in lib)
    print(f"load average (1 min): {load0:.2f} before, {load1:.2f} after; {os.cpu_count()} cores")
    print(f"derive_all({args.order}) in a fresh interpreter: best {best_lib:.1f} s wall, "
          f"{min(r['cpu'] for r in lib):.1f} s CPU "
          f"(all: {_walls(lib)} s)")
    ok = best_lib < LIMIT_S
    if cli:
        best_cli = min(r["wall"] for r in cli)
        good = all(r["returncode"] == 0 and r["has_published_order3"] for r in cli)
        print(f"CLI `{cli[0]['command']}`: best {best_cli:.1f} s wall "
              f"(all: {_walls(cli)} s), "
              f"{'output OK' if good else 'BAD OUTPUT'}")
        ok &= best_cli < LIMIT_S and good
    else:
        print("CLI: `linrnn-theory derive` not available; library timing only")
    print(f"{'PASS' if ok else 'FAIL'}: under {LIMIT_S:.0f} s")
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"order": args.order, "limit_s": LIMIT_S, "load_before": load0,
                                "load_after": load1, "cores": os.cpu_count(),
                                "library": lib, "cli": cli, "passed": bool(ok)}, indent=1))
    print(f"JSON written to {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
