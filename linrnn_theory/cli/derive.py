"""``linrnn-theory derive``: run the symbolic derivations
(``linrnn_theory.derivations.generate``).

Prints the series coefficients (coefficients of ``tau_tilde^k``, ``tau_tilde = beta^2 tau``)
of the readout, loss, singular values of ``Delta W``, outlier eigenvalue at ``g = 0``, gradient
norm and shuffled readout, as text, markdown or JSON; ``--write-module`` regenerates
``linrnn_theory/theory/_series_coefficients.py``, which ``theory.predict(method="series")``
evaluates -- in a source checkout only: an installed package is refused (exit 2), and
``--module-path PATH`` writes the module to ``PATH`` instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import check_out_path

__all__ = ["add_parser", "run", "MIN_ORDER", "MAX_ORDER", "check_order", "module_target"]

MIN_ORDER, MAX_ORDER = 3, 14

_EXAMPLES = """\
examples:
  linrnn-theory derive --order 3
  linrnn-theory derive --order 8 --format markdown --out docs/coefficients.md
  linrnn-theory derive --order 10 --write-module            # in a source checkout
  linrnn-theory derive --order 10 --module-path coeffs.py   # anywhere

The cost grows quickly with the order (seconds at 3, minutes beyond ~10).
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``derive`` sub-command."""
    p = subparsers.add_parser(
        "derive", help="symbolic series coefficients (sympy)",
        description="Derive the perturbative series of the learning dynamics in\n"
                    "tau_tilde = beta^2 tau (beta = 1/(1 - g^2)) to a given order.",
        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--order", type=int, required=True, metavar="K",
                   help=f"highest power of tau_tilde, {MIN_ORDER} <= K <= {MAX_ORDER}")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text",
                   help="output format (default text)")
    p.add_argument("--out", metavar="FILE", default=None,
                   help="write the rendering to FILE (atomically) instead of stdout")
    p.add_argument("--write-module", action="store_true",
                   help="regenerate linrnn_theory/theory/_series_coefficients.py (source "
                        "checkout only; an installed package is refused)")
    p.add_argument("--module-path", metavar="PATH", default=None,
                   help="write the generated module to PATH (atomically) instead of into "
                        "the package; implies --write-module")
    return p


def module_target(write_module: bool, module_path: str | None) -> Path | None:
    """Where ``derive`` writes the generated module (``None``: nowhere), checked before the
    derivation.

    Parameters
    ----------
    write_module : bool
        ``--write-module``: write into the package, which must be a source checkout.
    module_path : str, optional
        ``--module-path``: write to this file instead (implies ``write_module``).

    Returns
    -------
    pathlib.Path or None
        The destination.

    Raises
    ------
    linrnn_theory.cli.CLIError
        For an installed (not checked-out) or read-only package without ``--module-path``,
        or an unusable ``--module-path``.

    Examples
    --------
    >>> module_target(False, None) is None
    True
    """
    from linrnn_theory.derivations import generate

    from . import CLIError

    if module_path is not None:
        return check_out_path(module_path, "--module-path")
    if not write_module:
        return None
    package = generate.MODULE_PATH.parent.parent
    if generate.source_checkout(package) is None:
        raise CLIError(
            f"--write-module: {str(package)!r} is an installed package, not a writable "
            "source checkout (pyproject.toml and derivations/ beside linrnn_theory/); "
            "refusing to rewrite it; pass --module-path PATH to write the module elsewhere")
    return generate.MODULE_PATH


def check_order(order: int) -> int:
    """Validate the derivation order.

    Examples
    --------
    >>> check_order(3)
    3
    >>> check_order(15)
    Traceback (most recent call last):
    ...
    ValueError: order must lie in [3, 14], got 15
    """
    from .._checks import check_int

    order = check_int("order", order)
    if not MIN_ORDER <= order <= MAX_ORDER:
        raise ValueError(f"order must lie in [{MIN_ORDER}, {MAX_ORDER}], got {order}")
    return order


def run(args: argparse.Namespace) -> int:
    """Execute ``derive``; returns the exit status (0; errors raise ``ValueError``)."""
    from .._io import atomic_write_text

    order = check_order(args.order)
    out = check_out_path(args.out)
    target = module_target(args.write_module, args.module_path)
    from linrnn_theory.derivations.generate import main as generate

    # out=None: the rendering is written here, atomically
    text = generate(order, args.format, None, module_path=target)
    if out is not None:
        atomic_write_text(out, text if text.endswith("\n") else text + "\n")
        print(f"wrote {out}")
    else:
        print(text)
    if target is not None:
        print(f"wrote {target}")
    return 0
