"""``linrnn-theory reproduce``: regenerate the paper's figures with theory overlaid.

Examples (shell)::

    linrnn-theory reproduce                      # fig3 fig4 diverge cosine, --quick
    linrnn-theory reproduce fig4 --full --jobs 8 --out results/
    linrnn-theory reproduce all --full --backend dask --scheduler tcp://10.0.0.5:8786
    linrnn-theory reproduce fig4 --full --set fig4.N=64 --set fig4.seeds=[0]

See ``docs/reproduce.md`` for presets, output schema and cache semantics.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from typing import Any

__all__ = ["add_parser", "run", "parse_overrides"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``reproduce`` sub-command; returns its parser.

    The figure names come from the registry :data:`linrnn_theory.reproduce.FIGURES`.

    Examples
    --------
    >>> import argparse
    >>> p = add_parser(argparse.ArgumentParser().add_subparsers())
    >>> p.parse_args(["fig3", "--tiny"]).figures
    ['fig3']
    """
    from ..reproduce import FIGURES, select_figures
    default = select_figures(None)
    named = [n for n in FIGURES if n not in default]
    p = subparsers.add_parser(
        "reproduce", help="regenerate the paper's figures, data and report",
        description="Run the simulations and theory behind the paper's figures (cached and "
                    "resumable), then write one PNG and PDF per figure, the data behind "
                    "every curve (data/*.npz), report.md and manifest.json into --out.",
        epilog="Rerunning with the same arguments reuses every finished task from "
               "OUT/cache; an interrupted run resumes where it stopped.")
    p.add_argument("figures", nargs="*", metavar="FIGURE",
                   help=f"figures to make: {', '.join(FIGURES)}, all (default: "
                        f"{' '.join(default)}; "
                        f"{' and '.join(repr(n) for n in named)} only when named or with "
                        "'all')")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="preset", action="store_const", const="quick",
                   help="small, fast parameters (default; the four linear figures take "
                        "43 s measured on an idle 2-core machine from an empty cache, longer under load)")
    g.add_argument("--full", dest="preset", action="store_const", const="full",
                   help="the paper's parameters (fig4 alone: ~5 min on 2 cores; "
                        "nonlinear: hours; nscaling: days)")
    g.add_argument("--tiny", dest="preset", action="store_const", const="tiny",
                   help="smoke-test sizes (seconds; the numbers mean nothing)")
    p.set_defaults(preset="quick")
    p.add_argument("--out", metavar="DIR", default="reproduce_out",
                   help="output folder (default: ./reproduce_out)")
    p.add_argument("--jobs", metavar="K", type=int, default=None,
                   help="parallel worker processes (default: number of cores)")
    p.add_argument("--backend", choices=("loky", "dask"), default="loky",
                   help="joblib loky processes (default) or Dask distributed")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="Dask scheduler address, e.g. tcp://host:8786 (with --backend dask; "
                        "without it a LocalCluster of --jobs workers is started)")
    p.add_argument("--fresh", action="store_true",
                   help="ignore cached results and recompute every task")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.FIELD=VALUE",
                   help="override one preset field (JSON value), e.g. fig4.N=64 or "
                        "fig4.g_values=[0,0.5]; repeatable")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _tupled(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_tupled(x) for x in v)
    return v


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["fig4.N=64", "fig4.seeds=[0,1]"]`` -> ``{"fig4": {"N": 64, "seeds": (0, 1)}}``.

    Examples
    --------
    >>> parse_overrides(["fig4.N=64", "fig4.seeds=[0,1]", "cosine.dt=0.05"])
    {'fig4': {'N': 64, 'seeds': (0, 1)}, 'cosine': {'dt': 0.05}}
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        name, sep, value = item.partition("=")
        section, dot, fld = name.partition(".")
        if not sep or not dot or not section or not fld:
            raise ValueError(f"--set must look like SECTION.FIELD=VALUE, got {item!r}")
        try:
            val = json.loads(value)
        except json.JSONDecodeError:
            val = value                       # bare strings, e.g. fig4.mode=bptt
        out.setdefault(section, {})[fld] = _tupled(val)
    return out


def run(args: argparse.Namespace) -> int:
    """Execute ``reproduce``; raises ``ValueError`` for bad input (one-line error)."""
    from ..reproduce import reproduce, select_figures
    from ..reproduce.presets import get_preset, with_overrides

    from ..sweep.backends import check_backend
    from . import CLIError

    # everything is checked here, before any task runs or any folder is created
    figures = select_figures(args.figures)
    if args.jobs is not None and args.jobs < 1:
        raise CLIError(f"--jobs must be >= 1, got {args.jobs}")
    if args.scheduler is not None and args.backend != "dask":
        raise CLIError("--scheduler needs --backend dask")
    try:
        check_backend(args.backend)
    except ValueError as exc:
        raise CLIError(f"--backend: {exc}") from None
    if not str(args.out).strip():
        raise CLIError("--out must be a folder path, got an empty string")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CLIError(f"--out must be a folder, got the file {args.out!r}")
    preset = get_preset(args.preset)
    if args.overrides:
        try:
            preset = with_overrides(preset, **parse_overrides(args.overrides))
        except (TypeError, ValueError) as exc:
            raise CLIError(f"--set: {exc}") from None
        from dataclasses import replace
        preset = replace(preset, notes={**preset.notes,
                                        "overrides": ", ".join(args.overrides)})
    command = "linrnn-theory reproduce " + " ".join(shlex.quote(a) for a in sys.argv[2:]) \
        if len(sys.argv) > 1 and sys.argv[1] == "reproduce" else \
        f"linrnn-theory reproduce {' '.join(figures)} --{preset.name}"
    doc = reproduce(figures, preset, args.out, backend=args.backend, jobs=args.jobs,
                    scheduler=args.scheduler, fresh=args.fresh,
                    progress=not args.no_progress, command=command)
    sw = doc["sweep"]
    written = 1 + sum(len(doc["figures"][n]["files"]) for n in figures)   # + report.md
    print(f"reproduce: {sw['tasks']} tasks ({sw['computed']} computed, {sw['reused']} "
          f"reused) in {doc['timings_s']['total']:.1f} s; wrote {written} files "
          f"to {args.out} (report.md, manifest.json)")
    recovered = sw.get("recovered_cache_files", [])
    if recovered:
        print(f"reproduce: {len(recovered)} unusable cache file(s) set aside as "
              f"{os.path.join(args.out, 'cache', '*.corrupt')} and recomputed: "
              + ", ".join(r["file"] for r in recovered))
    kept = [n for n in doc["figures"] if n not in figures]
    if kept:
        print(f"reproduce: kept {', '.join(kept)} from an earlier run in {args.out} "
              "(manifest and report merged)")
    return 0
