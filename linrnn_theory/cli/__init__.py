"""The ``linrnn-theory`` command line.

Sub-commands (each in its own module ``linrnn_theory.cli.<name>`` exposing
``add_parser(subparsers)`` and ``run(args) -> int``):

========== =========================================================================
simulate   train one network by gradient descent and write the run as JSON
predict    evaluate the theory along the learning time (or its scalar observables)
map        phase diagram of the theory over (g, target), with the failure boundary
derive     run the symbolic derivations to a given order
bench      timing benchmarks (when installed)
reproduce  regenerate the paper's figures (when installed)
========== =========================================================================

Error contract: bad input gives exactly one line on stderr,
``linrnn-theory <cmd>: error: <message>``, exit status 2, no traceback, and no output file
(outputs are written atomically, after the computation succeeded). An operating-system
error (e.g. an unwritable output path) is reported the same way with exit status 1;
Ctrl-C exits with status 130 after one line.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from types import ModuleType
from typing import NoReturn, Sequence

__all__ = ["main", "COMMANDS", "PROG", "build_parser", "available_commands", "CLIError"]

PROG = "linrnn-theory"
#: Registry of sub-commands, in the order they appear in ``--help``.
COMMANDS = ("simulate", "predict", "map", "derive", "bench", "reproduce")

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPT = 0, 1, 2, 130


class CLIError(ValueError):
    """Bad command-line input detected by a sub-command (reported like a ``ValueError``)."""


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|infinity|nan)$",
                              re.IGNORECASE)


class _Parser(argparse.ArgumentParser):
    """``ArgumentParser`` whose errors are one line: ``<prog>: error: <message>``, exit 2.

    Values such as ``-1e-3`` or ``-inf`` are read as negative numbers (argparse alone takes
    them for options), so that ``--lr -1e-3`` reaches the library's range check.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _NEGATIVE_NUMBER

    def error(self, message: str) -> NoReturn:  # noqa: D401 - argparse API
        self.exit(EXIT_USAGE, f"{self.prog}: error: {_one_line(message)}\n")


def _load(name: str) -> ModuleType | None:
    """Import ``linrnn_theory.cli.<name>``; ``None`` if that exact module does not exist.

    Examples
    --------
    >>> _load("no_such_command") is None
    True
    >>> _load("simulate").__name__
    'linrnn_theory.cli.simulate'
    """
    full = f"{__name__}.{name}"
    try:
        return importlib.import_module(full)
    except ModuleNotFoundError as exc:
        if exc.name == full:
            return None
        raise


def available_commands() -> list[str]:
    """Names of the registered sub-commands (modules that exist), in registry order.

    Examples
    --------
    >>> available_commands()[:3]
    ['simulate', 'predict', 'map']
    """
    return [name for name in COMMANDS if _load(name) is not None]


def _version() -> str:
    from .. import __version__
    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available sub-command registered.

    Examples
    --------
    >>> p = build_parser()
    >>> p.parse_args(["derive", "--order", "3"]).command
    'derive'
    """
    parser = _Parser(
        prog=PROG,
        description="Learning theory of linear recurrent networks (Schuessler et al., "
                    "NeurIPS 2020): simulation, theory and derivations.",
        epilog=f"Run '{PROG} <command> --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True,
                                parser_class=_Parser)
    for name in COMMANDS:
        module = _load(name)
        if module is None:
            continue
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def _report(cmd: str | None, message: str) -> None:
    prefix = f"{PROG} {cmd}" if cmd else PROG
    sys.stderr.write(f"{prefix}: error: {_one_line(message)}\n")
    sys.stderr.flush()


def _os_message(exc: OSError) -> str:
    what = exc.strerror or str(exc)
    return f"{what}: {exc.filename}" if exc.filename else what


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 for bad input, 1 for an operating-system error, 130 on Ctrl-C.

    Examples
    --------
    >>> main(["--version"])  # doctest: +ELLIPSIS
    linrnn-theory ...
    0
    """
    cmd: str | None = None
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(None if argv is None else list(argv))
        except SystemExit as exc:  # --help, --version, or a one-line usage error
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
        cmd = args.command
        return int(args._run(args) or EXIT_OK)
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}{' ' + cmd if cmd else ''}: interrupted\n")
        return EXIT_INTERRUPT
    except ValueError as exc:  # library validation errors and CLIError
        _report(cmd, str(exc))
        return EXIT_USAGE
    except OSError as exc:
        _report(cmd, _os_message(exc))
        return EXIT_RUNTIME
