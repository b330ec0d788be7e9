#!/usr/bin/env python3
"""Theory II against simulation: the reduced ODE and the observables against full simulation.

Parts (select with ``--part``; each writes ``<out>/<part>.json`` and prints a table):

``instance``
    Instance reduced ODE vs an independent full N x N gradient-flow integration of the same
    network (scipy DOP853 on vec(Delta W), dense LU per right-hand side): N = 256,
    g in {0.3, 0.6, 0.9}, z_hat in {0.5, 1, 2}; readout and top-2 singular values over the
    whole trajectory to convergence; depth K used and wall-time ratio.
``large_n``
    Large-N reduced ODE (and the order-3 series) vs small-step fixed-point gradient descent
    of many networks (N = 1024, 2048, 4096; >= 8 seeds): times at which z reaches 50 % and
    90 % of z_hat (median over seeds, linear interpolation between epochs) and the largest
    gap between the seed-mean readout and the theory, for g in {0, 0.3, 0.6, 0.8} x
    z_hat in {0.5, 1, 2}. Two references: the reduced ODE (gradient *flow*) and the same
    large-N reduced model stepped by gradient descent with the simulation's own step
    ("gd": removes the O(h) difference between descent and flow, so what remains is finite
    N). Each gap comes with its sampling error: the largest ``|seed mean - theory| / sem``
    over learning time (``sem`` = standard error of the seed mean at that time). The
    readouts of every network are kept in ``<out>/large_n_runs.npz`` (keys
    ``z_N<N>_g<g>_t<target>``, shape ``(seeds, epochs)``; ``tau`` per ``g``:
    ``tau_g<g>``); ``--reuse`` recomputes the table from that file without simulating.
``observables``
    learning_time, dw_norm, mean_gradient_norm and shuffle_loss (ode and series) vs the
    seed average at N = 2048 for g in {0, 0.3, 0.6}, z_hat in {0.5, 1}.

Small steps: the simulation uses ``lr = h / beta^2`` (``h`` = step in rescaled time,
default 0.002), so gradient descent follows the flow to O(h).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

import linrnn_theory as lt
from linrnn_theory import theory
from linrnn_theory.simulation.dense import gradient_flow
from linrnn_theory._io import atomic_write_json
from linrnn_theory.theory.traces import beta_of


# ----------------------------------------------------------------------------- instance
def full_flow(net, target, taus, rtol=1e-11):
    """Independent reference: the N x N gradient flow integrated directly
    (:func:`linrnn_theory.simulation.dense.gradient_flow`)."""
    N = net.N
    eye = np.eye(N)
    dWs, nfev = gradient_flow(net, target, taus, rtol=rtol, atol=1e-14)
    z, sv = [], []
    for dW in dWs:
        z.append(net.w @ np.linalg.solve(eye - net.W0 - dW, net.m))
        sv.append(np.linalg.svd(dW, compute_uv=False)[:2])
    return np.array(z), np.array(sv), nfev


def instance_case(g, zh, N=256, seed=0):
    net = lt.init_network(N=N, g=g, seed=seed)
    b = beta_of(g)
    # learning time scale from the large-N theory; integrate to loss <= 1e-12 L0
    t_end = 1.0
    while True:
        p = theory.predict(target=zh, tau=np.linspace(0, t_end, 41), method="instance",
                           network=net, outlier=False, grad_norm=False)
        if p.loss[-1] <= 1e-12 * 0.5 * zh * zh:
            break
        t_end *= 2.0
    taus = np.linspace(0.0, t_end, 61)
    t0 = time.perf_counter()
    p = theory.predict(target=zh, tau=taus, method="instance", network=net, outlier=False,
                       grad_norm=False)
    t_inst = time.perf_counter() - t0
    t0 = time.perf_counter()
    z, sv, nfev = full_flow(net, zh, taus)
    t_full = time.perf_counter() - t0
    rel_z = float(np.max(np.abs(p.readout - z)) / abs(zh))
    rel_s1 = float(np.max(np.abs(p.singular_values[:, 0] - sv[:, 0])) / np.max(sv[:, 0]))
    rel_s2 = float(np.max(np.abs(p.singular_values[:, 1] - sv[:, 1])) / np.max(sv[:, 1]))
    return {"g": g, "target": zh, "N": N, "depth": p.params["depth"], "shape": p.params["shape"],
            "tau_end": t_end, "tau_tilde_end": t_end * b * b, "rel_err_readout": rel_z,
            "rel_err_sigma1": rel_s1, "rel_err_sigma2": rel_s2, "time_instance_s": t_inst,
            "time_full_s": t_full, "full_nfev": nfev, "speedup": t_full / t_inst}


# ------------------------------------------------------------------------- simulations
def crossing_time(tau, z, level):
    idx = np.nonzero(z >= level)[0]
    if idx.size == 0:
        return float("nan")
    i = idx[0]
    if i == 0:
        return float(tau[0])
    return float(tau[i - 1] + (level - z[i - 1]) * (tau[i] - tau[i - 1]) / (z[i] - z[i - 1]))


def simulate_networks(N, g, seeds, targets, h, tau_tilde_max, observables=False):
    """Small-step fixed-point gradient descent of the networks ``seeds``, each for several
    targets: every (seed, target) pair trained by one call of ``lt.train``.

    A run that stops early (divergence; with ``observables``, the first epoch below 5 % of
    ``L0``, where ``Delta W`` and the shuffled loss are measured) has NaN readouts after it.
    """
    nets = [lt.init_network(N=N, g=g, seed=seed) for seed in seeds]
    b = beta_of(g)
    lr = h / b ** 2
    epochs = int(np.ceil(tau_tilde_max / h)) + 1
    pairs = [(net, lt.FixedPointTask(target=zh)) for net in nets for zh in targets]
    runs = lt.train([p[0] for p in pairs], [p[1] for p in pairs], lr=lr, epochs=epochs,
                    mode="fixed_point", n_singular=1, record_every=epochs,
                    stop_rel_loss=0.05 if observables else None)
    out = []
    for (net, task), run in zip(pairs, runs):
        z = np.full(epochs, np.nan)
        z[:run.stop_epoch] = run.readout
        rec = {"N": N, "g": g, "seed": net.seed, "target": task.target, "lr": lr,
               "readout": z.tolist()}
        if observables:
            conv = run.stop_epoch - 1 if run.status == "converged" else None
            rec.update(conv_epoch=conv, learning_time=None if conv is None else conv * lr,
                       dw_norm=float("nan") if conv is None else
                       float(np.linalg.norm(run.W - net.W0)),
                       shuffle_loss=float("nan") if conv is None else
                       lt.shuffle_loss(run.W, net, task, seed=net.seed, mode="fixed_point",
                                       n_shuffles=2),
                       mean_gradient_norm=None if conv is None else
                       float(np.mean(run.grad_norm[:conv + 1])))
        out.append(rec)
    return out


def seed_chunks(seeds, batch):
    """``range(seeds)`` in consecutive lists of at most ``batch``."""
    return [list(range(s, min(seeds, s + batch))) for s in range(0, seeds, batch)]


def run_key(N, g, zh):
    return f"z_N{N}_g{g:g}_t{zh:g}"


def descent_theory(g, zh, taus, depth):
    """Readout of the large-N reduced model stepped by gradient descent on the grid
    ``taus`` (constant step): the same discretisation as the simulation."""
    from linrnn_theory.theory.failure import reduced_descent
    from linrnn_theory.theory.large_n import large_n_model
    run = reduced_descent(g, zh, float(taus[1] - taus[0]), taus.size,
                          model=large_n_model(g, depth), n_singular=0)
    if run.status == "diverged":
        raise RuntimeError(f"reduced descent diverged at g = {g}, target = {zh}")
    return run.readout


def large_n_part(args):
    gs = args.gs
    targets = args.targets
    store = Path(args.out) / "large_n_runs.npz"
    if args.reuse:
        with np.load(store) as f:
            data = {k: f[k] for k in f.files}
    else:
        jobs = [(N, g, c) for N in args.Ns for g in gs
                for c in seed_chunks(args.seeds, args.batch)]
        res = Parallel(n_jobs=args.jobs, verbose=5)(
            delayed(simulate_networks)(N, g, c, targets, args.h, args.tau_tilde_max)
            for N, g, c in jobs)
        runs = [r for rr in res for r in rr]
        data = {}
        for N in args.Ns:
            for g in gs:
                for zh in targets:
                    data[run_key(N, g, zh)] = np.array(
                        [r["readout"] for r in sorted(runs, key=lambda r: r["seed"])
                         if r["N"] == N and r["g"] == g and r["target"] == zh])
        Path(args.out).mkdir(parents=True, exist_ok=True)
        tmp = store.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **data)
        tmp.replace(store)
    rows = []
    for g in gs:
        b = beta_of(g)
        for zh in targets:
            tt = np.arange(int(np.ceil(args.tau_tilde_max / args.h)) + 1) * args.h
            taus = tt / b ** 2
            p_ode = theory.predict(g=g, target=zh, tau=taus, method="ode", outlier=False,
                                   grad_norm=False)
            p_ser = theory.predict(g=g, target=zh, tau=taus, method="series", order=3,
                                   outlier=False)
            z_gd = descent_theory(g, zh, taus, p_ode.params["depth"])
            th = {m: (crossing_time(taus, z, .5 * zh), crossing_time(taus, z, .9 * zh))
                  for m, z in (("ode", p_ode.readout), ("series3", p_ser.readout),
                               ("gd", z_gd))}
            for N in args.Ns:
                zs = data[run_key(N, g, zh)]
                t50 = np.array([crossing_time(taus, z, .5 * zh) for z in zs])
                t90 = np.array([crossing_time(taus, z, .9 * zh) for z in zs])
                mean = zs.mean(axis=0)
                sem = zs.std(axis=0, ddof=1) / np.sqrt(len(zs))
                live = sem > 1e-12 * abs(zh)
                conv = np.nonzero(0.5 * (zh - p_ode.readout) ** 2 < 0.05 * 0.5 * zh * zh)[0]
                upto = conv[0] + 1 if conv.size else taus.size
                row = {"g": g, "target": zh, "N": N, "seeds": len(zs),
                       "t50_median": float(np.median(t50)), "t90_median": float(np.median(t90)),
                       "t50_spread": float(np.std(t50) / np.median(t50)),
                       "t50_ode": th["ode"][0], "t90_ode": th["ode"][1],
                       "t50_series3": th["series3"][0], "t90_series3": th["series3"][1],
                       "t50_gd": th["gd"][0], "t90_gd": th["gd"][1],
                       "gap_ode": float(np.max(np.abs(mean - p_ode.readout)) / abs(zh)),
                       "gap_gd": float(np.max(np.abs(mean - z_gd)) / abs(zh)),
                       "gap_gd_rms": float(np.sqrt(np.mean((mean - z_gd) ** 2)) / abs(zh)),
                       "gap_gd_zmax": float(np.max(np.abs(mean - z_gd)[live] / sem[live])),
                       "sem_max": float(np.max(sem) / abs(zh)),
                       "gap_series3_to_conv": float(np.max(np.abs(mean[:upto] - p_ser.readout[:upto])) / abs(zh))}
                for m in ("ode", "series3", "gd"):
                    row[f"err_t50_{m}"] = row[f"t50_{m}"] / row["t50_median"] - 1
                    row[f"err_t90_{m}"] = row[f"t90_{m}"] / row["t90_median"] - 1
                rows.append(row)
    return {"params": vars(args), "rows": rows}


def observables_part(args):
    gs = [0.0, 0.3, 0.6]
    targets = [0.5, 1.0]
    N = args.obs_N
    res = Parallel(n_jobs=args.jobs, verbose=5)(
        delayed(simulate_networks)(N, g, c, targets, args.h, 3.0, observables=True)
        for g in gs for c in seed_chunks(args.seeds, args.batch))
    runs = [r for rr in res for r in rr]
    rows = []
    for g in gs:
        for zh in targets:
            rs = [r for r in runs if r["g"] == g and r["target"] == zh]
            row = {"g": g, "target": zh, "N": N, "seeds": len(rs)}
            for q, fn in (("learning_time", theory.learning_time), ("dw_norm", theory.dw_norm),
                          ("mean_gradient_norm", theory.mean_gradient_norm),
                          ("shuffle_loss", theory.shuffle_loss)):
                sim = np.array([r[q] for r in rs if r[q] is not None], dtype=float)
                row[f"{q}_sim"] = float(np.mean(sim))
                row[f"{q}_sim_sem"] = float(np.std(sim) / np.sqrt(sim.size))
                for m in ("ode", "series"):
                    v = fn(g, zh, method=m)
                    row[f"{q}_{m}"] = v
                    row[f"{q}_{m}_relerr"] = v / row[f"{q}_sim"] - 1
            rows.append(row)
    return {"params": vars(args), "rows": rows}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["instance", "large_n", "observables", "all"],
                    default="all")
    ap.add_argument("--out", default="validation_results", help="output folder")
    ap.add_argument("--Ns", type=int, nargs="+", default=[1024, 2048, 4096])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--h", type=float, default=0.002, help="step in rescaled time beta^2 lr")
    ap.add_argument("--tau-tilde-max", type=float, default=2.5)
    ap.add_argument("--obs-N", type=int, default=2048)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4,
                    help="seeds trained together (x targets) per call of lt.train (default 4)")
    ap.add_argument("--gs", type=float, nargs="+", default=[0.0, 0.3, 0.6, 0.8],
                    help="large_n: gains (default 0 0.3 0.6 0.8)")
    ap.add_argument("--targets", type=float, nargs="+", default=[0.5, 1.0, 2.0],
                    help="large_n: targets (default 0.5 1 2)")
    ap.add_argument("--reuse", action="store_true",
                    help="large_n: recompute the table from <out>/large_n_runs.npz")
    args = ap.parse_args(argv)
    out = Path(args.out)
    parts = ["instance", "large_n", "observables"] if args.part == "all" else [args.part]
    for part in parts:
        t0 = time.perf_counter()
        if part == "instance":
            rows = Parallel(n_jobs=args.jobs, verbose=5)(
                delayed(instance_case)(g, zh) for g in (0.3, 0.6, 0.9) for zh in (0.5, 1.0, 2.0))
            res = {"rows": rows}
        elif part == "large_n":
            res = large_n_part(args)
        else:
            res = observables_part(args)
        res["seconds"] = time.perf_counter() - t0
        atomic_write_json(out / f"{part}.json", res)
        print(f"== {part} ({res['seconds']:.0f} s)")
        for r in res["rows"]:
            print(json.dumps({k: (float(f"{v:.4g}") if isinstance(v, float) else v)
                              for k, v in r.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
