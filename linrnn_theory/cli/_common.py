"""Helpers shared by the sub-commands: argument types, output paths, provenance."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["finite_float", "check_out_path", "cli_record", "progress_default", "add_out"]


def finite_float(text: str) -> float:
    """``argparse`` type: a float (NaN and inf are accepted here and rejected by the
    library, whose message names the parameter).

    Examples
    --------
    >>> finite_float("0.5")
    0.5
    """
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None


def add_out(parser: argparse.ArgumentParser, what: str) -> None:
    """Add the ``--out FILE`` option."""
    parser.add_argument("--out", metavar="FILE", default=None,
                        help=f"write {what} to FILE (atomically, after the computation "
                             "succeeded); without it only a summary is printed")


def check_out_path(out: str | None, option: str = "--out") -> Path | None:
    """Validate an output path before any computation (so that a long run does not fail at
    the end): it must not be a directory, and its nearest existing parent must be a
    directory.

    Examples
    --------
    >>> import tempfile
    >>> check_out_path(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    linrnn_theory.cli.CLIError: --out must be a file path, got the directory ...
    """
    from . import CLIError

    if out is None:
        return None
    if not str(out).strip():
        raise CLIError(f"{option} must be a file path, got an empty string")
    path = Path(out)
    if path.is_dir():
        raise CLIError(f"{option} must be a file path, got the directory {str(path)!r}")
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise CLIError(f"{option}: {str(parent)!r} is not a directory")
    if not os.access(parent, os.W_OK):
        raise CLIError(f"{option}: directory {str(parent)!r} is not writable")
    _probe_writable(parent, path, option)
    return path


def _probe_writable(parent: Path, path: Path, option: str) -> None:
    """Create and remove a temporary file where the atomic writer will put its own, so that
    a destination such as ``/proc`` (writable by its mode, not in fact) fails before the
    work starts, with an error that names the user's path."""
    import tempfile

    from . import CLIError
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
    except OSError as exc:
        raise CLIError(f"{option}: cannot write {str(path)!r} "
                       f"({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(tmp)


def cli_record(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed arguments of a sub-command and the package version, JSON-ready
    (stored under ``"cli"`` in output files; non-finite floats become strings).

    Examples
    --------
    >>> rec = cli_record(argparse.Namespace(command="predict", g=0.5, _run=print))
    >>> rec["command"], rec["args"]
    ('predict', {'g': 0.5})
    """
    from .. import __version__

    args_d = {}
    for key, value in sorted(vars(args).items()):
        if key.startswith("_") or key == "command":
            continue
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        args_d[key] = value
    return {"command": args.command, "version": __version__, "args": args_d}


def progress_default(flag: bool | None) -> bool:
    """``--progress`` / ``--no-progress`` / automatic (shown when stderr is a terminal).

    Examples
    --------
    >>> progress_default(True), progress_default(False)
    (True, False)
    """
    if flag is not None:
        return bool(flag)
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
