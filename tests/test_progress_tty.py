"""Progress bars are drawn only on a terminal: in a log (stderr not a TTY) a run writes
nothing to stderr, so the one-line-error contract of the command line holds."""

from __future__ import annotations

import numpy as np

import linrnn_theory as lt
from linrnn_theory.nonlinear.experiment import SweepPreset, sweep


def test_train_progress_is_silent_when_stderr_is_not_a_tty(capfd):
    net = lt.init_network(N=16, g=0.3, seed=0)
    res = lt.train(net, lt.FixedPointTask(1.0), lr=0.05, epochs=20, mode="fixed_point",
                   progress=True)
    assert np.isfinite(res.loss[-1])
    assert capfd.readouterr().err == ""


def test_nonlinear_sweep_progress_is_silent_when_stderr_is_not_a_tty(capfd):
    tiny = SweepPreset("tiny", N=8, g_values={"romo": (0.0,)}, epochs={"romo": 2},
                       seeds=(0,), batch=4, extra={"n_test": 4})
    runs = sweep(tiny, "romo", progress=True)
    assert [r["status"] for r in runs] == ["completed"]
    assert capfd.readouterr().err == ""
