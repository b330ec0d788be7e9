"""``python -m linrnn_theory.cli``: the same as the ``linrnn-theory`` console script."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
