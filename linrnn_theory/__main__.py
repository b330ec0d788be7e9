"""``python -m linrnn_theory``: the same as the ``linrnn-theory`` console script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
