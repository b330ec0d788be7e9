"""``linrnn-theory simulate``: train one network by gradient descent, write the run as JSON.

The output (schema ``linrnn-theory/run/1``, see ``docs/formats.md``) is
:meth:`linrnn_theory.TrainResult.to_dict` plus ``"cli"`` (the parsed arguments and the
package version) and ``"wall_time_s"``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from ._common import add_out, check_out_path, cli_record, finite_float, progress_default

__all__ = ["add_parser", "run", "learning_rate", "load_weights"]

_EXAMPLES = """\
examples:
  linrnn-theory simulate --N 512 --g 0.6 --target 1 --lr0 0.009 --out run.json
  linrnn-theory simulate --N 256 --g 0.8 --target 2 --lr0 0.002 --t-max 201 \\
      --mode bptt --eigenvalues --out fail.json
  linrnn-theory simulate --weights net.npz --target 1 --lr 0.01 --mode fixed-point

The learning rate is either --lr0 (paper convention: lr = lr0 (1 - g^2)^2) or --lr (raw).
"""


def _mode(text: str) -> str:
    return text.replace("-", "_")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``simulate`` sub-command."""
    p = subparsers.add_parser(
        "simulate", help="train one network and write the run as JSON",
        description="Train the recurrent weights W of a linear RNN on the input-driven\n"
                    "fixed-point task by plain gradient descent (Schuessler et al. 2020, "
                    "section 3).",
        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    net = p.add_argument_group("network")
    net.add_argument("--N", type=int, default=None, help="number of neurons (default 1024)")
    net.add_argument("--g", type=finite_float, default=None,
                     help="strength of the random initial connectivity W0 = g J (required "
                          "unless --weights)")
    net.add_argument("--seed", type=int, default=None,
                     help="seed of numpy.random.default_rng for J, m, w (default 0)")
    net.add_argument("--weights", metavar="NPZ", default=None,
                     help="use the arrays W0 (N x N), m (N,), w (N,) of this .npz file "
                          "instead of drawing a network")
    task = p.add_argument_group("task")
    task.add_argument("--target", type=finite_float, required=True, help="target output z_hat")
    task.add_argument("--t-max", type=finite_float, default=101.0,
                      help="trial duration (default 101)")
    task.add_argument("--dt", type=finite_float, default=0.5, help="Euler step, 0 < dt < 2 "
                      "(default 0.5)")
    task.add_argument("--fixation", type=finite_float, default=1.0,
                      help="initial period without input (default 1)")
    task.add_argument("--decision", type=finite_float, default=1.0,
                      help="final window where the loss is evaluated (default 1)")
    task.add_argument("--input-amp", type=finite_float, default=1.0,
                      help="amplitude of the input after fixation (default 1)")
    tr = p.add_argument_group("training")
    rate = tr.add_mutually_exclusive_group(required=True)
    rate.add_argument("--lr0", type=finite_float, default=None,
                      help="learning rate in the paper's convention, lr = lr0 (1 - g^2)^2")
    rate.add_argument("--lr", type=finite_float, default=None, help="raw learning rate")
    tr.add_argument("--epochs", type=int, default=200, help="gradient steps (default 200)")
    tr.add_argument("--mode", type=_mode, choices=("bptt", "fixed_point"), default="bptt",
                    metavar="{bptt,fixed-point}",
                    help="finite-time Euler dynamics + BPTT, or the t_max -> infinity "
                         "fixed-point limit (default bptt)")
    tr.add_argument("--engine", choices=("fast", "dense"), default=None,
                    help="fast low-rank simulator or dense reference (default: fast, or "
                         "dense where fast refuses the network, as the output's message "
                         "says)")
    tr.add_argument("--stop-rel-loss", type=finite_float, default=None, metavar="X",
                    help="stop at the first epoch with loss < X L0")
    tr.add_argument("--conv-rel", type=finite_float, default=0.05, metavar="X",
                    help="converged_epoch = first epoch with loss < X L0 (default 0.05)")
    rec = p.add_argument_group("recording and output")
    rec.add_argument("--record-every", type=int, default=1,
                     help="record singular values every this many epochs (default 1)")
    rec.add_argument("--n-singular", type=int, default=2,
                     help="number of singular values of Delta W to record (>= 1, default 2, "
                          "as predict)")
    rec.add_argument("--eigenvalues", action="store_true",
                     help="also record all eigenvalues of W (O(N^3) per record)")
    rec.add_argument("--include-weights", action="store_true",
                     help="also write the initial and final weights W0, W (N x N) to the "
                          "JSON file (nested lists; prefer --weights-out for large N)")
    rec.add_argument("--weights-out", metavar="NPZ", default=None,
                     help="write W0, W, m and w to this .npz archive (readable back by "
                          "--weights)")
    rec.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress bar on stderr (default: only when stderr is a terminal)")
    add_out(rec, "the run (JSON, schema linrnn-theory/run/1)")
    return p


def learning_rate(lr: float | None, lr0: float | None, g: float | None) -> float:
    """The raw learning rate from ``--lr`` or ``--lr0`` (``lr = lr0 (1 - g^2)^2``).

    Examples
    --------
    >>> round(learning_rate(None, 0.009, 0.6), 8)
    0.0036864
    >>> learning_rate(0.01, None, None)
    0.01
    """
    from .._checks import check_positive
    from . import CLIError

    if lr is not None:
        return check_positive("lr", lr)
    lr0 = check_positive("lr0", lr0)
    if g is None:
        raise CLIError("--lr0 needs --g (lr = lr0 (1 - g^2)^2); give --g or use --lr")
    g = check_positive("g", g, strict=False)
    out = lr0 * (1.0 - g * g) ** 2
    if out <= 0.0:
        raise CLIError(f"lr0 (1 - g^2)^2 is zero at g = {g}; use --lr")
    return out


def load_weights(path: str, g: float | None = None) -> Network:
    """Read ``W0``, ``m``, ``w`` from an ``.npz`` file into a :class:`linrnn_theory.Network`.

    Raises
    ------
    ValueError
        If the file cannot be read, lacks a key, or the arrays are invalid (wrong shape,
        NaN/inf: the message names the array).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "net.npz")
    >>> np.savez(f, W0=np.zeros((3, 3)), m=np.ones(3), w=np.ones(3) / 3)
    >>> load_weights(f).N
    3
    """
    import numpy as np

    from ..network import Network
    from . import CLIError

    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CLIError(f"--weights: no such file {path!r}") from None
    except (OSError, ValueError, EOFError) as exc:
        raise CLIError(f"--weights: cannot read {path!r} as .npz ({exc})") from None
    if not hasattr(data, "files"):
        raise CLIError(f"--weights: {path!r} is a single array, not an .npz archive")
    try:
        with data:
            arrays = {k: np.array(data[k]) for k in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise CLIError(f"--weights: cannot read {path!r} ({exc})") from None
    missing = [k for k in ("W0", "m", "w") if k not in arrays]
    if missing:
        raise CLIError(f"--weights: {path!r} lacks the array(s) {', '.join(missing)} "
                       "(need W0, m, w)")
    return Network(W0=arrays["W0"], m=arrays["m"], w=arrays["w"], g=g)


def _summary(res, wall: float, out, conv_rel: float) -> str:
    L0 = res.L0
    lines = [f"status          {res.status} ({res.message})"]
    if res.loss.size:
        rel = f" = {res.loss[-1] / L0:.3g} L0" if L0 > 0 else ""
        lines.append(f"final loss      {res.loss[-1]:.6g}{rel}  (epoch {res.loss.size - 1})")
    conv = "never" if res.converged_epoch is None else f"epoch {res.converged_epoch}"
    lines.append(f"converged       {conv} (loss < {conv_rel:g} L0)")
    if res.singular_values.size:
        sv = " ".join(f"{s:.4g}" for s in res.singular_values[-1])
        lines.append(f"singular values {sv}  (Delta W, epoch {int(res.record_epochs[-1])})")
    lines.append(f"wall time       {wall:.2f} s")
    if out is not None:
        lines.append(f"wrote           {out}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Execute ``simulate``; returns the exit status (0; errors raise ``ValueError``)."""
    from .. import FixedPointTask, init_network, train
    from .._io import atomic_write_json, atomic_write_npz
    from . import CLIError

    out = check_out_path(args.out)
    weights_out = check_out_path(args.weights_out, "--weights-out")
    if weights_out is not None and weights_out.suffix != ".npz":
        raise CLIError(f"--weights-out must end in .npz, got {str(weights_out)!r}")
    if args.weights is not None:
        if args.N is not None or args.seed is not None:
            raise CLIError("--N and --seed cannot be combined with --weights")
        net = load_weights(args.weights, g=args.g)
    else:
        if args.g is None:
            raise CLIError("--g is required (or give --weights)")
        net = init_network(N=1024 if args.N is None else args.N, g=args.g,
                           seed=0 if args.seed is None else args.seed)
    task = FixedPointTask(target=args.target, t_max=args.t_max, dt=args.dt,
                          fixation=args.fixation, decision=args.decision,
                          input_amp=args.input_amp)
    if args.input_amp == 0:
        raise CLIError("--input-amp must be non-zero (a zero input gives a zero gradient)")
    lr = learning_rate(args.lr, args.lr0, args.g)
    t0 = time.perf_counter()
    res = train(net, task, lr=lr, epochs=args.epochs, mode=args.mode, engine=args.engine,
                n_singular=args.n_singular, record_every=args.record_every,
                record_eigenvalues=args.eigenvalues, stop_rel_loss=args.stop_rel_loss,
                conv_rel=args.conv_rel, progress=progress_default(args.progress))
    wall = time.perf_counter() - t0
    if out is not None:
        doc: dict[str, Any] = res.to_dict(include_weights=args.include_weights)
        if args.include_weights:
            doc["W0"] = net.W0.tolist()
        doc["cli"] = cli_record(args)
        doc["wall_time_s"] = wall
        atomic_write_json(out, doc)
    if weights_out is not None:
        atomic_write_npz(weights_out, W0=net.W0, W=res.W, m=net.m, w=net.w)
    print(_summary(res, wall, out, args.conv_rel))
    if weights_out is not None:
        print(f"wrote           {weights_out}")
    return 0
