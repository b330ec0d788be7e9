"""``linrnn-theory predict``: the theory along the learning time, or its scalar observables.

Trajectory mode writes :meth:`linrnn_theory.theory.Prediction.to_dict` (schema
``linrnn-theory/prediction/2``) plus ``"cli"``; ``--quantity`` mode writes the scalar
observables at the learning time (schema ``linrnn-theory/observables/1``). Both are
described in ``docs/formats.md``.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from ._common import add_out, check_out_path, cli_record, finite_float

__all__ = ["add_parser", "run", "tau_grid", "QUANTITIES"]

QUANTITIES = ("learning_time", "dw_norm", "mean_gradient_norm", "shuffle_loss")

_EXAMPLES = """\
examples:
  linrnn-theory predict --g 0.6 --target 1 --method ode --tau-max 0.5 --out pred.json
  linrnn-theory predict --g 0.6 --target 1 --method series --order 5 --tau-max 0.3 --tilde
  linrnn-theory predict --target 1 --method exact_g0 --tau-max 3
  linrnn-theory predict --g 0.6 --target 1 --method finite_n --N 256 --tau-max 0.5
  linrnn-theory predict --g 0.6 --target 1 --quantity learning_time --quantity shuffle_loss
  linrnn-theory predict --weights net.npz --target 1 --tau-max 0.5
  linrnn-theory predict --weights net.npz --target 1 --quantity learning_time --input-amp 2
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``predict`` sub-command."""
    p = subparsers.add_parser(
        "predict", help="theory of the learning dynamics (large N)",
        description="Evaluate the theory of the fixed-point gradient flow: readout, loss,\n"
                    "singular values of Delta W, outlier eigenvalue and gradient norm along\n"
                    "the learning time tau = lr * epoch, or (--quantity) scalar observables\n"
                    "at the learning time.",
        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--g", type=finite_float, default=None,
                   help="strength of the random initial connectivity, 0 <= g < 1 "
                        "(not needed for exact_g0)")
    p.add_argument("--target", type=finite_float, required=True, help="target output z_hat")
    p.add_argument("--method", choices=("ode", "series", "exact_g0", "instance", "finite_n"),
                   default=None,
                   help="large-N reduced ODE, perturbative series, the closed form at g = 0, "
                        "the reduced ODE of the network given by --weights, or finite_n "
                        "(mean and standard deviation over networks of size --N; default: "
                        "instance with --weights, else ode)")
    p.add_argument("--N", type=int, default=None,
                   help="network size for --method finite_n")
    p.add_argument("--weights", metavar="NPZ", default=None,
                   help="a network (.npz with W0, m, w, as written by simulate "
                        "--weights-out): predict for it, not for the large-N average")
    p.add_argument("--input-amp", type=finite_float, default=1.0, metavar="C",
                   help="input amplitude c (default 1)")
    p.add_argument("--order", type=int, default=3,
                   help="order of the series in tau_tilde (default 3)")
    p.add_argument("--depth", type=int, default=None, metavar="K",
                   help="chain depth of the reduced ODE (default: increased until converged)")
    grid = p.add_argument_group("time grid (trajectory mode)")
    grid.add_argument("--tau-max", type=finite_float, default=None, metavar="T",
                      help="end of the grid (required unless --quantity)")
    grid.add_argument("--n-tau", type=int, default=101, help="grid points (default 101)")
    grid.add_argument("--tilde", action="store_true",
                      help="the grid is in tau_tilde = beta^2 tau (beta = 1/(1 - g^2)) "
                           "instead of tau")
    grid.add_argument("--n-singular", type=int, default=2,
                      help="singular values of Delta W to report (default 2)")
    obs = p.add_argument_group("scalar observables (--quantity mode)")
    obs.add_argument("--quantity", action="append", choices=QUANTITIES, default=None,
                     help="observable at the learning time; repeat for several "
                          "(method ode or series)")
    obs.add_argument("--rel-loss", type=finite_float, default=0.05,
                     help="learning time = first time with loss < rel_loss L0 (default 0.05)")
    add_out(p, "the prediction (JSON)")
    return p


def tau_grid(tau_max: float, n_tau: int, g: float, tilde: bool) -> np.ndarray:
    """The grid of learning times: ``linspace(0, tau_max, n_tau)``, in ``tau`` or in
    ``tau_tilde = beta^2 tau`` (then divided by ``beta^2``).

    Examples
    --------
    >>> tau_grid(1.0, 3, 0.0, False)
    array([0. , 0.5, 1. ])
    >>> tau_grid(1.0, 2, 0.6, True)   # beta^2 = 1 / 0.64^2
    array([0.    , 0.4096])
    """
    import numpy as np

    from .._checks import check_int, check_positive, check_range

    tau_max = check_positive("tau_max", tau_max)
    n_tau = check_int("n_tau", n_tau, minimum=2)
    grid = np.linspace(0.0, tau_max, n_tau)
    if tilde:
        g = check_range("g", g, 0.0, 1.0, hi_open=True)
        grid = grid * (1.0 - g * g) ** 2
    return grid


def _fmt(x: float) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.6g}"


def _table(pred, rows: int = 11) -> str:
    import numpy as np

    n = pred.tau.size
    idx = np.unique(np.linspace(0, n - 1, min(rows, n)).round().astype(int))
    L0 = 0.5 * float(pred.params["target"]) ** 2
    spread = pred.readout_std is not None
    head = ["tau", "tau_tilde", "readout"] + (["readout_std"] if spread else []) + \
        ["loss/L0"] + [f"sigma{k + 1}" for k in range(pred.singular_values.shape[1])] + \
        ["outlier"]
    lines = ["  ".join(f"{h:>11}" for h in head)]
    for i in idx:
        vals = [pred.tau[i], pred.tau_tilde[i], pred.readout[i],
                *([pred.readout_std[i]] if spread else []),
                pred.loss[i] / L0 if L0 > 0 else float("nan"),
                *pred.singular_values[i], pred.outlier_eigenvalue[i]]
        lines.append("  ".join(f"{_fmt(float(v)):>11}" for v in vals))
    return "\n".join(lines)


def _observables(args: argparse.Namespace, net) -> dict[str, Any]:
    from .. import theory
    from . import CLIError

    if args.method in ("exact_g0", "series" if net is not None else "exact_g0"):
        raise CLIError(f"--quantity needs --method ode{'' if net is not None else ' or series'}"
                       f"{' with --weights' if net is not None else ''}, got {args.method}")
    g, method = (None, "ode") if net is not None else (args.g, args.method)
    if net is None and g is None:
        raise CLIError("--g is required")
    if args.tau_max is not None:
        raise CLIError("--tau-max cannot be combined with --quantity")
    names = list(dict.fromkeys(args.quantity))
    values = {q: float(getattr(theory, q)(g, args.target, args.rel_loss, method, args.order,
                                          network=net, input_amp=args.input_amp))
              for q in names}
    params: dict[str, Any] = {"g": None if g is None else float(g),
                              "target": float(args.target), "rel_loss": float(args.rel_loss),
                              "method": args.method, "input_amp": float(args.input_amp)}
    if net is not None:
        params["weights"] = str(args.weights)
    if args.method == "series":
        params["order"] = int(args.order)
    return {"schema": "linrnn-theory/observables/1", "method": args.method,
            "params": params, "values": values}


def run(args: argparse.Namespace) -> int:
    """Execute ``predict``; returns the exit status (0; errors raise ``ValueError``)."""
    from .. import theory
    from .._io import atomic_write_json
    from . import CLIError

    out = check_out_path(args.out)
    net = None
    if args.weights is not None:
        from .simulate import load_weights
        if args.g is not None:
            raise CLIError("--g cannot be combined with --weights (the network fixes W0)")
        net = load_weights(args.weights)
    if args.method is None:
        args.method = "instance" if net is not None else "ode"
    if args.method == "instance" and net is None:
        raise CLIError("--method instance needs --weights")
    if args.quantity:
        if args.method == "instance":
            args.method = "ode"
        doc = _observables(args, net)
        for q, v in doc["values"].items():
            print(f"{q:<20} {_fmt(v)}")
    else:
        if args.tau_max is None:
            raise CLIError("--tau-max is required (or give --quantity)")
        g = args.g
        if net is not None and args.method not in ("instance", "exact_g0"):
            raise CLIError(f"--weights needs --method instance (or exact_g0 for W0 = 0), "
                           f"got {args.method}")
        if g is None:
            if net is None and args.method != "exact_g0":
                raise CLIError(f"--g is required for method {args.method}")
            g = 0.0
        if net is not None and args.tilde:
            raise CLIError("--tilde needs the large-N g; with --weights give the grid in tau")
        tau = tau_grid(args.tau_max, args.n_tau, g, args.tilde)
        pred = theory.predict(g=args.g, target=args.target, tau=tau, method=args.method,
                              order=args.order, depth=args.depth, network=net,
                              n_singular=args.n_singular, input_amp=args.input_amp,
                              N=args.N)
        doc = pred.to_dict()
        print(f"method {pred.method}, status {pred.status}"
              f"{': ' + pred.message if pred.message else ''}")
        print(_table(pred))
    if out is not None:
        doc["cli"] = cli_record(args)
        atomic_write_json(out, doc)
        print(f"wrote {out}")
    return 0
