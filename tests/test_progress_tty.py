"""Progress bars are drawn by default only on a terminal: a command run in a log (stderr
not a TTY) writes nothing to stderr unless it fails, so the one-line-error contract holds.
The library's explicit ``progress=True`` still forces a bar (users asked for it)."""

from __future__ import annotations

import numpy as np

import linrnn_theory as lt
from linrnn_theory.cli import main


def test_bench_draws_no_progress_bar_in_a_log(capfd):
    assert main(["bench", "--N", "16", "--epochs", "2"]) == 0
    assert capfd.readouterr().err == ""


def test_simulate_draws_no_progress_bar_in_a_log(capfd):
    assert main(["simulate", "--N", "16", "--g", "0.3", "--target", "1", "--lr0", "0.05",
                 "--epochs", "3"]) == 0
    assert capfd.readouterr().err == ""


def test_explicit_progress_still_draws_a_bar(capfd):
    net = lt.init_network(N=16, g=0.3, seed=0)
    res = lt.train(net, lt.FixedPointTask(1.0), lr=0.05, epochs=20, mode="fixed_point",
                   progress=True)
    assert np.isfinite(res.loss[-1])
    assert "epoch" in capfd.readouterr().err
