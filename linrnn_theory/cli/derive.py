"""``linrnn-theory derive``: run the symbolic derivations (``derivations.generate``).

Prints the series coefficients (coefficients of ``tau_tilde^k``, ``tau_tilde = beta^2 tau``)
of the readout, loss, singular values of ``Delta W``, outlier eigenvalue at ``g = 0``, gradient
norm and shuffled readout, as text, markdown or JSON; ``--write-module`` regenerates
``linrnn_theory/theory/_series_coefficients.py``, which ``theory.predict(method="series")``
evaluates.
"""

from __future__ import annotations

import argparse

from ._common import check_out_path

__all__ = ["add_parser", "run", "MIN_ORDER", "MAX_ORDER", "check_order"]

MIN_ORDER, MAX_ORDER = 3, 14

_EXAMPLES = """\
examples:
  linrnn-theory derive --order 3
  linrnn-theory derive --order 8 --format markdown --out docs/coefficients.md
  linrnn-theory derive --order 10 --write-module

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
                   help="regenerate linrnn_theory/theory/_series_coefficients.py")
    return p


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
    from derivations.generate import MODULE_PATH, main as generate

    # out=None: the rendering is written here, atomically (generate.main writes non-atomically)
    text = generate(order, args.format, None, args.write_module)
    if out is not None:
        atomic_write_text(out, text if text.endswith("\n") else text + "\n")
        print(f"wrote {out}")
    else:
        print(text)
    if args.write_module:
        print(f"wrote {MODULE_PATH}")
    return 0
