#!/usr/bin/env python3
"""Benchmark the fast simulators against dense baselines (same as ``linrnn-theory bench``).

Usage: ``python validation/bench.py --N 256 1024 2048 --g 0.3 0.6 0.9 --out bench.json``
(see ``--help``). Results are ratios measured in one run, never absolute timings alone.
"""

import sys

from linrnn_theory.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
