#!/usr/bin/env python3
"""Time the finite-N theory against the large-N theory on the same learning times, in one run.

For every ``(g, target, N)`` (``--g``, ``--target``, ``--N``: every triple) the times
``tau = linspace(0, 3 T, n)`` (``--n-tau`` points, ``T = theory.learning_time(g, target)``,
the large-N learning time) are predicted by

* ``theory.predict(g, target, tau, method="ode")`` (the large-N flow), and
* ``theory.predict(g, target, tau, method="finite_n", N=N)`` (mean and standard deviation
  over networks of size ``N``),

alternately, in this process, with the same large-N code: ``ratio`` = finite-N time /
large-N time is the cost of the spread in units of one large-N prediction. Every call is
*cold*: the caches of the large-N builds (``large_n.clear_cache``), of the states at the
learning time (``observables.clear_cache``) and of the finite-N quadratures and spreads
(``finite_n.quadrature``, ``finite_n._spread``) are emptied before it.

With ``--old COMMIT`` the finite-N module of that commit (``git show
COMMIT:linrnn_theory/theory/finite_n.py``, imported beside the current one, with the
current large-N code) is timed the same way, interleaved, and its predictions are compared
with the current ones field by field.

Usage::

    python validation/bench_finite_n.py                        # the full grid (~2 min)
    python validation/bench_finite_n.py --g 0.6 --target 1 --N 1024 --repeats 1
    python validation/bench_finite_n.py --old 38f159d          # and the old one (~10 min)

JSON written to ``--out`` (default ``validation/results/bench_finite_n.json``), schema
``linrnn-theory/bench-finite-n/1``::

    {
      "schema": str, "commit": str (HEAD, "+dirty" if the tree differs), "old_commit":
      str or null, "settings": {command-line options}, "machine": {"cpu_count",
      "python", "numpy", "scipy", "platform"}, "load_before": float, "load_after": float,
      "points": [{"g", "target", "N", "depth", "status" (of the finite-N prediction),
                  "n_modes" (fluctuation modes evaluated), "truncation" (estimated share
                  of the variance left out), "large_s", "finite_s", "ratio"
                  (finite_s / large_s), and with --old: "old_finite_s", "old_ratio",
                  "speedup" (old_finite_s / finite_s), "max_rel_diff": {field:
                  max |new - old| / max |old|} for readout, loss, readout_std, loss_std,
                  singular_values, singular_values_std, grad_norm},
                  "old_half_step_rel_diff": {field: the same between the old module at
                  its step and at half of it (the old central differences' own error),
                  "half_step_rel_diff": {field: the same between the current module and
                  the old one at half its step}}],
      "targets": {"ratio_5x": bool (every point), and with --old "values_1e-3": bool
                  (max_rel_diff <= 1e-3), "values_within_old_step_error": bool (at every
                  point with status ok and every field, the change from the old values
                  is at most 1e-3 or at most twice the old module's own change under a
                  halved step)},
      "summary": {"max_ratio", "median_ratio", "min_ratio", and with --old
                  "old_max_ratio", "old_median_ratio", "max_rel_diff" (over the points
                  with status ok) and "max_rel_diff_flagged" (points whose status is not
                  ok: outside the expansion's validity)}
    }

Times are minima over ``--repeats`` cold calls (``--old-repeats`` for the old module; the
least disturbed by other processes on a shared machine; the load average before and
after is recorded).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from linrnn_theory import theory  # noqa: E402
from linrnn_theory._io import atomic_write_json  # noqa: E402
from linrnn_theory.theory import finite_n, large_n, observables  # noqa: E402
from linrnn_theory.theory.methods import register_method  # noqa: E402
from bench_theory import _git, machine  # noqa: E402 (the same git and machine record)

FIELDS = ("readout", "loss", "readout_std", "loss_std", "singular_values",
          "singular_values_std", "grad_norm")


def _load_old(commit: str, tmp: Path):
    """The finite-N module of ``commit``, imported as a sibling of the current one."""
    path = tmp / "finite_n_old.py"
    path.write_text(_git("show", f"{commit}:linrnn_theory/theory/finite_n.py"))
    name = "linrnn_theory.theory._finite_n_old"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    register_method(finite_n.FiniteNMethod)        # the import registered the old one
    return mod


def _clear(*mods) -> None:
    large_n.clear_cache()
    observables.clear_cache()
    for mod in mods:
        mod.quadrature.cache_clear()
        mod._spread.cache_clear()


def _cold(call, repeats: int, mods) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeats):
        _clear(*mods)
        t0 = time.perf_counter()
        value = call()
        best = min(best, time.perf_counter() - t0)
    return best, value


def _rel_diff(old: np.ndarray, new: np.ndarray) -> float:
    """``max |new - old| / max |old|`` over the entries finite in both."""
    old, new = np.asarray(old, dtype=float), np.asarray(new, dtype=float)
    ok = np.isfinite(old) & np.isfinite(new)
    if not ok.any():
        return 0.0
    return float(np.max(np.abs(new[ok] - old[ok])) / max(float(np.max(np.abs(old[ok]))),
                                                         1e-300))


def _point(g: float, target: float, N: int, args, old) -> dict:
    tau = np.linspace(0.0, 3.0 * theory.learning_time(g, target), args.n_tau)
    mods = [finite_n] + ([old] if old is not None else [])

    def finite(mod):
        register_method(mod.FiniteNMethod)
        try:
            return theory.predict(g=g, target=target, tau=tau, method="finite_n", N=N)
        finally:
            register_method(finite_n.FiniteNMethod)

    large_s = fin_s = old_s = float("inf")
    pred = ref = None
    for i in range(args.repeats):                   # interleaved: large, new, old
        t, _p = _cold(lambda: theory.predict(g=g, target=target, tau=tau, method="ode"),
                      1, mods)
        large_s = min(large_s, t)
        t, pred = _cold(lambda: finite(finite_n), 1, mods)
        fin_s = min(fin_s, t)
        if old is not None and i < args.old_repeats:
            t, ref = _cold(lambda: finite(old), 1, mods)
            old_s = min(old_s, t)
    row = {"g": g, "target": target, "N": N, "depth": pred.depth,
           "status": str(pred.status), "n_modes": pred.params["n_modes"],
           "truncation": pred.params["truncation"], "large_s": large_s,
           "finite_s": fin_s, "ratio": fin_s / large_s}
    if old is not None:
        step = old.STEP
        old.STEP = step / 2                        # the old central differences' own error
        try:
            half = finite(old)
        finally:
            old.STEP = step
        row.update(old_finite_s=old_s, old_ratio=old_s / large_s, speedup=old_s / fin_s,
                   max_rel_diff={f: _rel_diff(getattr(ref, f), getattr(pred, f))
                                 for f in FIELDS},
                   old_half_step_rel_diff={f: _rel_diff(getattr(ref, f), getattr(half, f))
                                           for f in FIELDS},
                   half_step_rel_diff={f: _rel_diff(getattr(half, f), getattr(pred, f))
                                       for f in FIELDS})
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Cold-call timings of theory.predict(method='finite_n') against "
                    "method='ode' on the same tau, in one process; ratios to JSON.")
    ap.add_argument("--g", type=float, nargs="+", default=[0.0, 0.3, 0.6, 0.8, 0.9])
    ap.add_argument("--target", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    ap.add_argument("--N", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--n-tau", type=int, default=200, help="tau points (default 200)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="cold calls per timing; the minimum is kept (default 3)")
    ap.add_argument("--old", default=None,
                    help="also time (and compare with) the finite-N module of this commit")
    ap.add_argument("--old-repeats", type=int, default=1,
                    help="cold calls of the old finite-N module per point (default 1)")
    ap.add_argument("--out", default=str(ROOT / "validation" / "results" /
                                         "bench_finite_n.json"), help="output JSON")
    args = ap.parse_args(argv)
    if args.n_tau < 2 or args.repeats < 1 or args.old_repeats < 1:
        ap.error("--n-tau must be >= 2, --repeats and --old-repeats >= 1")
    commit = _git("rev-parse", "--short", "HEAD")
    if _git("status", "--porcelain", "--untracked-files=no"):
        commit += "+dirty"
    old_commit = _git("rev-parse", "--short", args.old) if args.old else None
    load_before = os.getloadavg()[0]
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        old = _load_old(args.old, Path(tmp)) if args.old else None
        points = []
        for g in args.g:
            for target in args.target:
                for N in args.N:
                    row = _point(g, target, N, args, old)
                    points.append(row)
                    extra = (f" old x{row['old_ratio']:.1f} speedup {row['speedup']:.1f} "
                             f"max rel diff {max(row['max_rel_diff'].values()):.1e} (old at "
                             f"half step: {max(row['old_half_step_rel_diff'].values()):.1e})"
                             if old is not None else "")
                    print(f"g={g:<4g} z={target:<4g} N={N:<5d} large {row['large_s']:.3f}s "
                          f"finite {row['finite_s']:.3f}s ratio x{row['ratio']:.1f} "
                          f"modes {row['n_modes']} {row['status']}{extra}", flush=True)
    load_after = os.getloadavg()[0]
    ratios = np.array([r["ratio"] for r in points])
    summary = {"max_ratio": float(ratios.max()), "median_ratio": float(np.median(ratios)),
               "min_ratio": float(ratios.min())}
    targets = {"ratio_5x": bool(ratios.max() <= 5.0)}
    if old is not None:
        old_ratios = np.array([r["old_ratio"] for r in points])
        ok = [max(r["max_rel_diff"].values()) for r in points if r["status"] == "ok"]
        flagged = [max(r["max_rel_diff"].values()) for r in points if r["status"] != "ok"]
        summary.update(old_max_ratio=float(old_ratios.max()),
                       old_median_ratio=float(np.median(old_ratios)),
                       max_rel_diff=float(max(ok, default=0.0)),
                       max_rel_diff_flagged=float(max(flagged, default=0.0)))
        targets["values_1e-3"] = summary["max_rel_diff"] <= 1e-3
        targets["values_within_old_step_error"] = all(
            d <= max(1e-3, 2.0 * r["old_half_step_rel_diff"][f])
            for r in points if r["status"] == "ok" for f, d in r["max_rel_diff"].items())
    out = {"schema": "linrnn-theory/bench-finite-n/1", "commit": commit,
           "old_commit": old_commit, "settings": vars(args),
           "machine": machine(),
           "load_before": load_before, "load_after": load_after, "points": points,
           "targets": targets, "summary": summary}
    print(f"ratio finite-N / large-N: median x{summary['median_ratio']:.1f}, max "
          f"x{summary['max_ratio']:.1f}; load average {load_before:.2f} -> {load_after:.2f}")
    if args.out:
        atomic_write_json(args.out, out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
