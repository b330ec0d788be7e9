#!/usr/bin/env python3
"""Time the large-N theory against an older commit of this repository, in one run.

The old code is checked out into a temporary git worktree (``git worktree add --detach``,
removed at the end) and imported from there in a subprocess (``PYTHONPATH=<worktree>``);
the current working tree is timed the same way in a second subprocess, so both sides run
the same timing snippet under the same conditions. Every timed call is *cold*: the
caches of the reduced models and of the states at the learning time are emptied before
it (the old code caches them with ``functools.lru_cache``), so a ratio compares the full
cost of a first call. ``predict`` is also timed warm (the same call again, caches kept).

What is timed (``--g``, ``--target``: every pair):

* ``theory.predict(g, target, tau, method="ode")`` with ``--n-tau`` points
  ``tau = linspace(0, 3 / beta^2, n)`` (the learning range of the tests and figures:
  ``beta^2 tau`` up to 3), compared field by field;
* ``learning_time``, ``dw_norm``, ``mean_gradient_norm``, ``shuffle_loss``;
* a ``--map-size`` x ``--map-size`` learning-time map (``g`` in ``[0, 0.9]``, target in
  ``[0.25, 2.5]``) with the new array call, against ``--map-old-calls`` cold single calls
  of the old ``learning_time`` at points of the same map (spread over it), whose values
  are compared too; and against the loop of the new single calls over the whole map (the
  caches emptied once before the loop, as a user's loop would run; ``--map-rounds``
  rounds of the two alternately, minimum of each), whose values the array call must
  equal to ``1e-10`` relative.

Usage::

    python validation/bench_theory.py                      # the full benchmark (~5 min)
    python validation/bench_theory.py --repeats 1 --map-size 10 --map-old-calls 20

JSON written to ``--out`` (default ``validation/results/bench_theory.json``), schema
``linrnn-theory/bench-theory/1``::

    {
      "schema": str, "old_commit": str, "new_commit": str (HEAD, "+dirty" if the
      tree differs), "settings": {command-line options}, "machine": {"cpu_count",
      "python", "numpy", "scipy", "platform"}, "load_before": float, "load_after": float,
      "predict": [{"g", "target", "old_s", "new_s", "ratio", "old_warm_s", "new_warm_s",
                   "warm_ratio", "depth_old", "depth_new",
                   "max_rel_diff": {field: max |new - old| / max |old|}, for readout,
                   loss, singular_values, outlier_eigenvalue, grad_norm (NaN entries
                   must coincide: "nan_mismatch" counts those that do not)}],
      "observables": [{"name", "g", "target", "old_s", "new_s", "ratio", "old", "new",
                       "rel_diff"}],
      "map": {"shape": [n, n], "new_s": float, "old_calls": int, "old_calls_s": float,
              "old_mean_call_s": float, "old_200_calls_s": float (mean x 200),
              "ratio_vs_200_old_calls": float, "max_rel_diff": float (at the old points),
              "new_single_calls_s": float (the new single calls at the old points, each
              cold), "new_single_loop_s": float (new single calls at every point in one
              loop),
              "array_vs_single_loop": float (loop time / array time),
              "array_vs_single_max_rel_diff": float},
      "targets": {"predict_50x": bool, "observables_20x": bool,
                  "map_below_200_old_calls": bool, "map_array_not_slower_than_singles": bool,
                  "map_array_equals_singles_1e-10": bool, "values_1e-8": bool},
      "summary": {"predict_min_ratio", "observables_min_ratio", "max_rel_diff"}
    }

Times are minima over ``--repeats`` cold calls (the least disturbed by other processes on
a shared machine; the load average before and after is recorded); the observables over
``--obs-repeats`` (default 7), since a new call takes a few milliseconds, which one
preemption on a loaded machine can double (both sides are timed alike).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import scipy

ROOT = Path(__file__).resolve().parents[1]
OLD_COMMIT = "9437181"
OBSERVABLES = ("learning_time", "dw_norm", "mean_gradient_norm", "shuffle_loss")
FIELDS = ("readout", "loss", "singular_values", "outlier_eigenvalue", "grad_norm")

# The timing snippet, run by both sides (it only uses what both versions have).
WORKER = r'''
import json, pickle, sys, time
import numpy as np
import linrnn_theory
from linrnn_theory import theory
from linrnn_theory.theory import large_n as ln, observables as ob

job = json.load(open(sys.argv[1]))

def clear():
    if hasattr(ln, "clear_cache"):
        ln.clear_cache()
    else:
        ln.large_n_model.cache_clear()
    if hasattr(ob, "clear_cache"):
        ob.clear_cache()
    else:
        ob._at_learning_time.cache_clear()

def cold(call, repeats):
    best, value = float("inf"), None
    for _ in range(repeats):
        clear()
        t0 = time.perf_counter()
        value = call()
        best = min(best, time.perf_counter() - t0)
    return best, value

out = {"file": linrnn_theory.__file__}
kind, r = job["kind"], job["repeats"]
if kind == "predict":
    rows = []
    for g, z in job["points"]:
        b = 1.0 / (1.0 - g * g)
        tau = np.linspace(0.0, 3.0 / b ** 2, job["n_tau"])
        call = lambda: theory.predict(g=g, target=z, tau=tau, method="ode")
        t, p = cold(call, r)
        t0 = time.perf_counter()
        call()
        warm = time.perf_counter() - t0
        rows.append({"t": t, "warm": warm, "depth": p.params.get("depth"),
                     **{f: np.asarray(getattr(p, f)) for f in job["fields"]}})
    out["rows"] = rows
elif kind == "observables":
    rows = []
    for name in job["names"]:
        fn = getattr(theory, name)
        for g, z in job["points"]:
            t, v = cold(lambda: fn(g, z), r)
            rows.append({"name": name, "g": g, "target": z, "t": t, "value": float(v)})
    out["rows"] = rows
elif kind == "map_points":
    clear()
    vals, t0 = [], time.perf_counter()
    for g, z in job["points"]:
        clear()
        vals.append(float(theory.learning_time(g, z)))
    out["t"] = time.perf_counter() - t0
    out["values"] = vals
elif kind == "map_new":
    # the array call and the loop of single calls, alternately (minimum of each)
    gs, zs = np.array(job["g"]), np.array(job["z"])
    out["t"], out["t_loop"] = float("inf"), float("inf")
    for _ in range(job["rounds"]):
        clear()
        t0 = time.perf_counter()
        m = theory.learning_time(gs[:, None], zs[None, :])
        out["t"] = min(out["t"], time.perf_counter() - t0)
        clear()
        t0 = time.perf_counter()
        vals = [float(theory.learning_time(g, z)) for g in job["g"] for z in job["z"]]
        out["t_loop"] = min(out["t_loop"], time.perf_counter() - t0)
    out["values"], out["values_loop"] = np.asarray(m), vals
pickle.dump(out, open(sys.argv[2], "wb"))
'''


def machine() -> dict:
    """The machine a benchmark ran on: ``{"cpu_count", "python", "numpy", "scipy",
    "platform"}``."""
    return {"cpu_count": os.cpu_count(), "python": sys.version.split()[0],
            "numpy": np.__version__, "scipy": scipy.__version__,
            "platform": platform.platform()}


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()


def _run_side(root: Path, job: dict, tmp: Path, tag: str) -> dict:
    """Run the worker with ``root`` first on the path; check it imported from there."""
    import pickle
    jf, of, wf = tmp / f"{tag}_job.json", tmp / f"{tag}_out.pkl", tmp / "worker.py"
    wf.write_text(WORKER)
    jf.write_text(json.dumps(job))
    env = dict(os.environ, PYTHONPATH=str(root), OPENBLAS_NUM_THREADS="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(wf), str(jf), str(of)], cwd=tmp, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{tag} worker failed:\n{proc.stderr[-3000:]}")
    with open(of, "rb") as fh:
        res = pickle.load(fh)
    if not Path(res["file"]).resolve().is_relative_to(root.resolve()):
        raise RuntimeError(f"{tag} worker imported {res['file']}, not the code under {root}")
    return res


def _rel_diff(old: np.ndarray, new: np.ndarray) -> tuple[float, int]:
    """``max |new - old| / max |old|`` over the entries finite in both, and the number of
    entries that are NaN in exactly one of them."""
    old, new = np.asarray(old, dtype=float), np.asarray(new, dtype=float)
    if old.shape != new.shape:
        return float("inf"), -1
    mismatch = int(np.count_nonzero(np.isnan(old) != np.isnan(new)))
    ok = np.isfinite(old) & np.isfinite(new)
    if not ok.any():
        return 0.0, mismatch
    scale = max(float(np.max(np.abs(old[ok]))), 1e-300)
    return float(np.max(np.abs(new[ok] - old[ok])) / scale), mismatch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Cold-call timings of theory.predict(method='ode'), the observables "
                    "and a learning-time map, against an old commit checked out into a "
                    "temporary git worktree; ratios and value differences to JSON.")
    ap.add_argument("--old", default=OLD_COMMIT, help=f"old commit (default {OLD_COMMIT})")
    ap.add_argument("--g", type=float, nargs="+", default=[0.0, 0.6, 0.9])
    ap.add_argument("--target", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    ap.add_argument("--n-tau", type=int, default=200, help="tau points of predict")
    ap.add_argument("--repeats", type=int, default=3,
                    help="cold calls per timing; the minimum is kept (default 3)")
    ap.add_argument("--obs-repeats", type=int, default=7,
                    help="cold calls per observable timing (default 7)")
    ap.add_argument("--map-size", type=int, default=50, help="the map is n x n (default 50)")
    ap.add_argument("--map-rounds", type=int, default=2,
                    help="alternate rounds of the new array call and the loop of single "
                         "calls over the map (minimum of each; default 2)")
    ap.add_argument("--map-old-calls", type=int, default=200,
                    help="old single learning_time calls timed on map points (default 200)")
    ap.add_argument("--out", default=str(ROOT / "validation" / "results" /
                                         "bench_theory.json"), help="output JSON")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    for name in ("n_tau", "repeats", "obs_repeats", "map_size", "map_rounds", "map_old_calls"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if any(not 0 <= g < 1 for g in args.g) or any(z == 0 for z in args.target):
        ap.error("--g must lie in [0, 1) and --target be non-zero")

    from tqdm.auto import tqdm

    new_commit = _git("rev-parse", "--short", "HEAD")
    if _git("status", "--porcelain", "--untracked-files=no"):
        new_commit += "+dirty"
    old_commit = _git("rev-parse", "--short", args.old)
    points = [(g, z) for g in args.g for z in args.target]
    mg = np.linspace(0.0, 0.9, args.map_size)
    mz = np.linspace(0.25, 2.5, args.map_size)
    flat = np.linspace(0, args.map_size ** 2 - 1, min(args.map_old_calls,
                                                      args.map_size ** 2)).round().astype(int)
    map_points = [(float(mg[k // args.map_size]), float(mz[k % args.map_size])) for k in flat]
    load_before = os.getloadavg()[0]
    stages = [("predict", {"kind": "predict", "points": points, "n_tau": args.n_tau,
                           "fields": list(FIELDS), "repeats": args.repeats}),
              ("observables", {"kind": "observables", "points": points,
                               "names": list(OBSERVABLES), "repeats": args.obs_repeats}),
              ("map_points", {"kind": "map_points", "points": map_points, "repeats": 1}),
              ("map_new", {"kind": "map_new", "g": mg.tolist(), "z": mz.tolist(),
                           "rounds": args.map_rounds, "repeats": 1})]
    res: dict[str, dict] = {"old": {}, "new": {}}
    with tempfile.TemporaryDirectory(prefix="bench_theory_") as td:
        tmp = Path(td)
        wt = tmp / "old_tree"
        _git("worktree", "add", "--detach", str(wt), args.old)
        try:
            todo = [(side, name, job) for name, job in stages for side in ("old", "new")
                    if not (side == "old" and name == "map_new")]
            bar = tqdm(todo, desc="bench_theory", unit="stage", disable=args.no_progress)
            for side, name, job in bar:
                bar.set_postfix_str(f"{side} {name}")
                res[side][name] = _run_side(wt if side == "old" else ROOT, job, tmp,
                                            f"{side}_{name}")
        finally:
            _git("worktree", "remove", "--force", str(wt))
    load_after = os.getloadavg()[0]

    pred = []
    for (g, z), o, n in zip(points, res["old"]["predict"]["rows"],
                            res["new"]["predict"]["rows"]):
        diffs, nan_mismatch = {}, 0
        for f in FIELDS:
            d, mm = _rel_diff(o[f], n[f])
            diffs[f], nan_mismatch = d, nan_mismatch + mm
        pred.append({"g": g, "target": z, "old_s": o["t"], "new_s": n["t"],
                     "ratio": o["t"] / n["t"], "old_warm_s": o["warm"],
                     "new_warm_s": n["warm"], "warm_ratio": o["warm"] / n["warm"],
                     "depth_old": o["depth"], "depth_new": n["depth"],
                     "max_rel_diff": diffs, "nan_mismatch": nan_mismatch})
    obs = []
    for o, n in zip(res["old"]["observables"]["rows"], res["new"]["observables"]["rows"]):
        obs.append({"name": o["name"], "g": o["g"], "target": o["target"], "old_s": o["t"],
                    "new_s": n["t"], "ratio": o["t"] / n["t"], "old": o["value"],
                    "new": n["value"],
                    "rel_diff": abs(n["value"] - o["value"]) / max(abs(o["value"]), 1e-300)})
    mo, mn = res["old"]["map_points"], res["new"]["map_new"]
    grid_vals = np.asarray(mn["values"]).ravel()[flat]
    map_diff = float(np.max(np.abs(grid_vals - np.array(mo["values"])) /
                            np.maximum(np.abs(mo["values"]), 1e-300)))
    mean_call = mo["t"] / len(map_points)
    mp = {"shape": [args.map_size, args.map_size], "new_s": mn["t"],
          "old_calls": len(map_points), "old_calls_s": mo["t"], "old_mean_call_s": mean_call,
          "old_200_calls_s": 200 * mean_call, "ratio_vs_200_old_calls": 200 * mean_call / mn["t"],
          "max_rel_diff": map_diff, "new_single_calls_s": res["new"]["map_points"]["t"]}
    arr, one = np.asarray(mn["values"]).ravel(), np.asarray(mn["values_loop"])
    mp.update(new_single_loop_s=mn["t_loop"], array_vs_single_loop=mn["t_loop"] / mn["t"],
              array_vs_single_max_rel_diff=float(np.max(np.abs(arr - one) /
                                                        np.maximum(np.abs(one), 1e-300))))
    max_diff = max([max(r["max_rel_diff"].values()) for r in pred]
                   + [r["rel_diff"] for r in obs] + [map_diff])
    summary = {"predict_min_ratio": min(r["ratio"] for r in pred),
               "predict_min_warm_ratio": min(r["warm_ratio"] for r in pred),
               "observables_min_ratio": min(r["ratio"] for r in obs),
               "max_rel_diff": max_diff}
    targets = {"predict_50x": summary["predict_min_ratio"] >= 50,
               "observables_20x": summary["observables_min_ratio"] >= 20,
               "map_below_200_old_calls": mn["t"] < 200 * mean_call,
               "map_array_not_slower_than_singles": mn["t"] <= mn["t_loop"],
               "map_array_equals_singles_1e-10": mp["array_vs_single_max_rel_diff"] <= 1e-10,
               "values_1e-8": max_diff <= 1e-8 and all(r["nan_mismatch"] == 0 for r in pred)}
    out = {"schema": "linrnn-theory/bench-theory/1", "old_commit": old_commit,
           "new_commit": new_commit, "settings": vars(args),
           "machine": machine(),
           "load_before": load_before, "load_after": load_after, "predict": pred,
           "observables": obs, "map": mp, "targets": targets, "summary": summary}

    print(f"old {old_commit} vs new {new_commit}; cold calls, min of {args.repeats} "
          f"({args.obs_repeats} for the observables); "
          f"load average {load_before:.2f} -> {load_after:.2f}")
    print(f"{'predict':22s} {'old s':>8s} {'new s':>8s} {'ratio':>7s} {'warm':>7s} "
          f"{'max rel diff':>12s}")
    for r in pred:
        print(f"  g={r['g']:<4g} z={r['target']:<4g}        {r['old_s']:8.4f} "
              f"{r['new_s']:8.4f} {r['ratio']:6.1f}x {r['warm_ratio']:6.1f}x "
              f"{max(r['max_rel_diff'].values()):12.1e}")
    for name in OBSERVABLES:
        rows = [r for r in obs if r["name"] == name]
        print(f"{name:22s} ratios {min(r['ratio'] for r in rows):6.1f}x .. "
              f"{max(r['ratio'] for r in rows):6.1f}x, max rel diff "
              f"{max(r['rel_diff'] for r in rows):.1e}")
    print(f"map {args.map_size}x{args.map_size}: new {mn['t']:.2f} s; 200 old calls "
          f"{200 * mean_call:.2f} s (mean of {len(map_points)}: {mean_call:.4f} s); "
          f"ratio {mp['ratio_vs_200_old_calls']:.1f}; max rel diff {map_diff:.1e}")
    print(f"  array call {mn['t']:.2f} s vs loop of {arr.size} new single calls "
          f"{mn['t_loop']:.2f} s ({mp['array_vs_single_loop']:.2f}x); max rel diff "
          f"{mp['array_vs_single_max_rel_diff']:.1e}")
    print("targets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in targets.items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(out, fh, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
