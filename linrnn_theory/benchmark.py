"""Benchmark of the fast simulators against plain dense baselines, measured in one run.

For each N the same network is trained by

* fixed-point mode: the fast engine (one LU of ``I - W0``, low-rank ``Delta W``) and a dense
  baseline that factorises ``I - W`` anew every epoch;
* finite-time (bptt) mode: the fast engine (eigenbasis of ``W0``, low-rank ``Delta W``,
  sketched gradient) and the dense Euler loop with back-propagation through time.

Reported per engine: set-up time, time per epoch (median over epochs, set-up excluded) and
amortised per-epoch time (set-up included); per mode: the speed-up ratios and the largest
relative difference of the two loss curves (over epochs whose loss exceeds ``1e-10 L0``,
below which relative differences are meaningless round-off). The dense baselines at large N
run fewer epochs (``dense_epochs``); their loss curves are compared on those epochs.
The fits of ``log(time per epoch)`` against ``log N`` give the growth exponents.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .network import init_network
from .task import FixedPointTask
from .simulation.engine import make_engine

__all__ = ["EngineTiming", "bench", "format_table"]


@dataclass
class EngineTiming:
    """Timing of one engine on one network."""

    mode: str
    engine: str
    N: int
    g: float
    epochs: int
    setup_s: float
    per_epoch_s: float
    amortised_s: float
    loss: list = field(default_factory=list, repr=False)


def _run(net, task, mode, engine, lr, epochs) -> EngineTiming:
    t0 = time.perf_counter()
    eng = make_engine(net, task, mode, engine)
    t_setup = time.perf_counter() - t0
    times, losses = [], []
    for _ in range(epochs):
        t = time.perf_counter()
        L, _ = eng.evaluate()
        eng.step(lr)
        times.append(time.perf_counter() - t)
        losses.append(L)
    per = float(np.median(times))
    return EngineTiming(mode=mode, engine=engine, N=net.N, g=float(net.g), epochs=epochs,
                        setup_s=t_setup, per_epoch_s=per,
                        amortised_s=(t_setup + float(np.sum(times))) / epochs, loss=losses)


def _rel_diff(a, b, L0) -> float:
    a, b = np.asarray(a), np.asarray(b)
    n = min(a.size, b.size)
    a, b = a[:n], b[:n]
    mask = np.abs(b) > 1e-10 * L0
    if not mask.any():
        return 0.0
    return float(np.max(np.abs(a[mask] - b[mask]) / np.abs(b[mask])))


def bench(Ns=(256, 1024, 2048), g: float = 0.6, target: float = 1.0, lr0: float = 0.009,
          epochs: int = 200, dense_epochs: dict | None = None, seed: int = 0,
          modes=("fixed_point", "bptt"), progress: bool = False) -> dict:
    """Run the benchmark; returns a JSON-serialisable dict (schema ``linrnn-theory/bench/1``).

    Parameters
    ----------
    Ns : sequence of int
        Network sizes.
    g, target, lr0 : float
        Network gain, target and paper learning-rate constant (``lr = lr0 (1 - g^2)^2``).
    epochs : int
        Epochs of the fast engines.
    dense_epochs : dict, optional
        Epochs of the dense baselines per N (default: ``epochs`` up to N = 1024, 20 above).
    seed : int
    modes : tuple of str
    progress : bool
        Print a line per measurement.

    Examples
    --------
    >>> out = bench(Ns=(32,), epochs=3, modes=("fixed_point",))
    >>> out["results"][0]["engine"], len(out["comparisons"])
    ('fast', 1)
    """
    from ._checks import check_positive
    lr0 = check_positive("lr0", lr0)
    dense_epochs = dense_epochs or {}
    task = FixedPointTask(target=target)
    lr = lr0 * (1 - g * g) ** 2
    rows: list[EngineTiming] = []
    comps = []
    for N in Ns:
        net = init_network(N=N, g=g, seed=seed)
        net.check_stable()
        for mode in modes:
            ne = dense_epochs.get(N, epochs if N <= 1024 else 20)
            fast = _run(net, task, mode, "fast", lr, epochs)
            dense = _run(net, task, mode, "dense", lr, min(ne, epochs))
            rows += [fast, dense]
            comps.append({
                "mode": mode, "N": N, "speedup_per_epoch": dense.per_epoch_s / fast.per_epoch_s,
                "speedup_amortised": dense.amortised_s / fast.amortised_s,
                "max_rel_loss_diff": _rel_diff(fast.loss, dense.loss, task.L0),
                "compared_epochs": min(fast.epochs, dense.epochs)})
            if progress:
                c = comps[-1]
                print(f"N={N:5d} {mode:11s} fast {1e3 * fast.per_epoch_s:8.2f} ms/epoch  "
                      f"dense {1e3 * dense.per_epoch_s:9.2f} ms/epoch  "
                      f"x{c['speedup_per_epoch']:.1f}  max rel diff {c['max_rel_loss_diff']:.1e}",
                      flush=True)
    exps = {}
    for mode in modes:
        for eng in ("fast", "dense"):
            pts = [(r.N, r.per_epoch_s) for r in rows if r.mode == mode and r.engine == eng]
            if len(pts) >= 2:
                x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
                exps[f"{mode}/{eng}"] = float(np.polyfit(x, y, 1)[0])
    return {
        "schema": "linrnn-theory/bench/1",
        "params": {"Ns": list(Ns), "g": g, "target": target, "lr0": lr0, "lr": lr,
                   "epochs": epochs, "seed": seed},
        "machine": {"python": platform.python_version(), "numpy": np.__version__,
                    "processor": platform.processor() or platform.machine()},
        "results": [{k: v for k, v in asdict(r).items() if k != "loss"} for r in rows],
        "comparisons": comps,
        "growth_exponents": exps,
    }


def format_table(out: dict) -> str:
    """Plain-text table of a :func:`bench` result."""
    lines = [f"{'mode':11s} {'N':>5s} {'fast ms/ep':>11s} {'dense ms/ep':>12s} {'ratio':>8s} "
             f"{'ratio(+setup)':>13s} {'max rel diff':>12s}"]
    res = {(r["mode"], r["N"], r["engine"]): r for r in out["results"]}
    for c in out["comparisons"]:
        f, d = res[(c["mode"], c["N"], "fast")], res[(c["mode"], c["N"], "dense")]
        lines.append(f"{c['mode']:11s} {c['N']:5d} {1e3 * f['per_epoch_s']:11.3f} "
                     f"{1e3 * d['per_epoch_s']:12.2f} {c['speedup_per_epoch']:8.1f} "
                     f"{c['speedup_amortised']:13.1f} {c['max_rel_loss_diff']:12.1e}")
    for k, v in out["growth_exponents"].items():
        lines.append(f"time per epoch ~ N^{v:.2f}  ({k})")
    return "\n".join(lines)
