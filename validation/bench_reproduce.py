#!/usr/bin/env python3
"""Time ``linrnn-theory reproduce`` against an older commit of this repository, in one run.

The old code is checked out into a temporary git worktree (``git worktree add --detach``,
removed at the end). Both sides run the same command line, ``python -m linrnn_theory
reproduce --<preset> FIGURES --fresh --jobs K --no-progress`` with an empty output
folder, in a subprocess that imports the side's code (``PYTHONPATH``), one after the
other. The wall time of each is recorded (minimum over ``--repeats``, alternating old and
new), and every array of the ``data/*.npz`` files that both sides write under one name
is compared: ``max |new - old| / max |old|`` for numbers (NaN where NaN), equality for
strings (after the renames since the old commit: :data:`RENAMED_KEYS`,
:data:`RENAMED_STATUS`).

Usage::

    python validation/bench_reproduce.py                        # fig3 fig4 --full (~15 min)
    python validation/bench_reproduce.py --preset quick --figures fig4

JSON written to ``--out`` (default ``validation/results/bench_reproduce.json``), schema
``linrnn-theory/bench-reproduce/1``::

    {"schema": str, "old_commit": str, "new_commit": str ("+dirty" if the tree differs),
     "settings": {command-line options}, "machine": {"cpu_count", "python", "platform"},
     "load_before": float, "load_after": float,
     "old_s": [float], "new_s": [float],           # wall seconds, one per repeat
     "ratio": float,                               # min old / min new
     "arrays": {"<file>:<key>": float | "equal" | "differ"},   # common keys
     "max_rel_diff": float,                        # over the numeric common arrays
     "strings_differ": [str],                      # common string arrays that differ
     "only_old": [str], "only_new": [str]}         # keys written by one side only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_theory import OLD_COMMIT, ROOT, _git  # noqa: E402 (the same old commit and git)

#: Names changed since the old commit (old -> new), applied to the old side's keys.
RENAMED_KEYS = {"mean_grad_norm": "mean_gradient_norm"}
#: Status words changed since the old commit (old -> new), applied to old string arrays.
RENAMED_STATUS = {"completed": "ok"}


def _run(root: Path, out: Path, args: argparse.Namespace) -> float:
    """Wall seconds of one ``reproduce`` run of the code under ``root`` into ``out``."""
    cmd = [sys.executable, "-m", "linrnn_theory", "reproduce", f"--{args.preset}",
           *args.figures, "--fresh", "--jobs", str(args.jobs), "--no-progress",
           "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(root))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=out.parent, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"reproduce under {root} failed:\n{proc.stderr[-3000:]}")
    return wall


def _renamed(key: str) -> str:
    for old, new in RENAMED_KEYS.items():
        key = key.replace(old, new)
    return key


def compare(old: Path, new: Path) -> dict:
    """Array-by-array comparison of the ``data/*.npz`` files of two output folders."""
    arrays: dict[str, object] = {}
    only_old, only_new, strings = [], [], []
    worst = 0.0
    for f in sorted((old / "data").glob("*.npz")):
        g = new / "data" / f.name
        a = np.load(f)
        b = np.load(g) if g.is_file() else {}
        keys_b = set(b.files) if g.is_file() else set()
        new_key = {k: _renamed(k) for k in a.files}
        only_old += [f"{f.name}:{k}" for k in a.files if new_key[k] not in keys_b]
        only_new += [f"{f.name}:{k}" for k in sorted(keys_b - set(new_key.values()))]
        for k in a.files:
            if new_key[k] not in keys_b:
                continue
            x, y = a[k], b[new_key[k]]
            if x.dtype.kind == "U":
                x = np.vectorize(lambda v: RENAMED_STATUS.get(v, v), otypes=[x.dtype])(x) \
                    if x.size else x
            name = f"{f.name}:{new_key[k]}"
            if x.dtype.kind in "fciub" and y.dtype.kind in "fciub" and x.shape == y.shape:
                x, y = x.astype(complex if x.dtype.kind == "c" else float), y.astype(
                    complex if y.dtype.kind == "c" else float)
                if not np.array_equal(np.isnan(x), np.isnan(y)):
                    arrays[name] = "differ"
                    worst = float("inf")
                    continue
                ok = np.isfinite(x)
                scale = float(np.max(np.abs(x[ok]))) if ok.any() else 0.0
                diff = float(np.max(np.abs(x[ok] - y[ok]))) if ok.any() else 0.0
                rel = diff / scale if scale > 0 else diff
                arrays[name] = rel
                worst = max(worst, rel)
            else:
                same = x.shape == y.shape and bool(np.all(x == y))
                arrays[name] = "equal" if same else "differ"
                if not same:
                    strings.append(name)
    return {"arrays": arrays, "max_rel_diff": worst, "strings_differ": strings,
            "only_old": only_old, "only_new": only_new}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Wall time of 'linrnn-theory reproduce' (fresh cache) against an old "
                    "commit checked out into a temporary git worktree, and the difference "
                    "of every array the two write; JSON out.")
    ap.add_argument("--old", default=OLD_COMMIT, help=f"old commit (default {OLD_COMMIT})")
    ap.add_argument("--preset", choices=("full", "quick", "tiny"), default="full")
    ap.add_argument("--figures", nargs="+", default=["fig3", "fig4"])
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="worker processes of each run (default: number of cores)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per side (default 1)")
    ap.add_argument("--keep", type=Path, default=None,
                    help="copy the new side's output folder (figures, data, report) here")
    ap.add_argument("--out", default=str(ROOT / "validation" / "results" /
                                         "bench_reproduce.json"), help="output JSON")
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.jobs < 1:
        print("error: --repeats and --jobs must be >= 1", file=sys.stderr)
        return 2
    new_commit = _git("rev-parse", "--short", "HEAD")
    if _git("status", "--porcelain", "--untracked-files=no"):
        new_commit += "+dirty"
    load_before = os.getloadavg()[0]
    old_s, new_s = [], []
    with tempfile.TemporaryDirectory(prefix="bench_reproduce_") as tmp:
        tmp = Path(tmp)
        wt = tmp / "old"
        _git("worktree", "add", "--detach", str(wt), args.old)
        try:
            for r in range(args.repeats):
                for side, root, times in (("old", wt, old_s), ("new", ROOT, new_s)):
                    out = tmp / f"{side}_{r}"
                    out.mkdir()
                    times.append(_run(root, out, args))
                    print(f"{side} run {r + 1}: {times[-1]:.1f} s", flush=True)
            diff = compare(tmp / "old_0", tmp / "new_0")
            if args.keep is not None:
                shutil.copytree(tmp / "new_0", args.keep, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("cache"))
        finally:
            _git("worktree", "remove", "--force", str(wt))
    result = {"schema": "linrnn-theory/bench-reproduce/1", "old_commit": args.old,
              "new_commit": new_commit, "settings": {k: str(v) if isinstance(v, Path) else v
                                                 for k, v in vars(args).items()},
              "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()},
              "load_before": load_before, "load_after": os.getloadavg()[0],
              "old_s": old_s, "new_s": new_s, "ratio": min(old_s) / min(new_s), **diff}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"reproduce --{args.preset} {' '.join(args.figures)}: old {min(old_s):.1f} s, "
          f"new {min(new_s):.1f} s, ratio {result['ratio']:.2f}; max rel diff of "
          f"{len(diff['arrays'])} common arrays {diff['max_rel_diff']:.2e}; string arrays "
          f"that differ: {diff['strings_differ'] or 'none'}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
