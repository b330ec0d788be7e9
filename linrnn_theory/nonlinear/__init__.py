"""Nonlinear (tanh) RNNs on the paper's three neuroscience tasks (docs/paper.md sections 2-3).

Training changes the connectivity by a low-rank ``Delta W = W - W0``; larger initial
random connectivity ``g`` speeds learning; ``Delta W`` is correlated with ``W0``.

Modules: :mod:`.rnn` (model, exact BPTT), :mod:`.adam`, :mod:`.tasks`, :mod:`.analysis`,
:mod:`.experiment` (one run, presets, :func:`run_preset`: the runs of a preset through
the cache of :mod:`linrnn_theory.sweep`), :mod:`.figures`.

Examples
--------
>>> from linrnn_theory.nonlinear import run_nonlinear
>>> r = run_nonlinear("mante", g=0.9, seed=0, N=16, epochs=5, batch=4, n_test=4)
>>> r.status, len(r.test_loss)
('ok', 6)
"""

from .adam import Adam, adam_update
from .analysis import (best_rank_approximation, eigenvalues, learning_epoch, rank_to_recover,
                       shuffle_entries, shuffle_losses, singular_values, truncation_losses,
                       variance_explained, zero_output_loss)
from .experiment import FULL, PAPER_EPOCHS, QUICK, SweepPreset, run_nonlinear, run_preset
from .figures import make_figures, report_section
from .rnn import (BPTTWorkspace, RNNParams, init_params, limit_blas_threads, loss,
                  loss_and_grad, simulate)
from .tasks import (TASK_NAMES, TEST_SEED, FlipFlopTask, ManteTask, RomoTask, TrialBatch,
                    make_task)

__all__ = [
    "RNNParams", "init_params", "BPTTWorkspace", "simulate", "loss", "loss_and_grad",
    "limit_blas_threads", "Adam", "adam_update", "TrialBatch", "FlipFlopTask", "ManteTask",
    "RomoTask", "make_task", "TASK_NAMES", "TEST_SEED", "singular_values",
    "best_rank_approximation", "truncation_losses", "variance_explained", "shuffle_entries",
    "shuffle_losses", "eigenvalues", "learning_epoch", "rank_to_recover", "zero_output_loss",
    "run_nonlinear", "SweepPreset", "QUICK", "FULL", "PAPER_EPOCHS", "run_preset",
    "make_figures", "report_section",
]
