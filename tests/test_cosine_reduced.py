"""Reduced model of the autonomous cosine against full gradient descent on the same network."""

import numpy as np
import pytest

from linrnn_theory.simulation.cosine import cosine_network
from linrnn_theory.task import CosineTask
from linrnn_theory.theory.cosine_reduced import (projection_residual, rank_one_loss_bound,
                                                 train_full, train_reduced, word_basis)

N, EPOCHS = 64, 40


@pytest.mark.parametrize("mode", ["galerkin", "restricted"])
def test_g0_depth1_exact(mode):
    W0, m = cosine_network(N, 0.0, seed=1)
    full = train_full(W0, m, lr=0.2, epochs=EPOCHS)
    red = train_reduced(W0, m, depth=1, lr=0.2, epochs=EPOCHS, mode=mode)
    assert red.dim == 1 and red.leak == 0.0
    np.testing.assert_allclose(red.loss, full.loss, rtol=1e-12, atol=0)
    assert np.linalg.norm(red.dW - full.dW) <= 1e-12 * np.linalg.norm(full.dW)
    assert np.sum(full.singular_values[-1] > 1e-10 * full.singular_values[-1][0]) == 1


def test_g0_loss_above_rank_one_bound():
    task = CosineTask()
    _, bound = rank_one_loss_bound(task)
    W0, m = cosine_network(N, 0.0, seed=2)
    full = train_full(W0, m, lr=0.2, epochs=EPOCHS)
    assert np.all(full.loss / task.L0 >= bound * (1 - 1e-12))


@pytest.mark.parametrize("mode", ["galerkin", "restricted"])
def test_full_depth_is_exact_and_error_decreases(mode):
    W0, m = cosine_network(N, 0.4, seed=0)
    full = train_full(W0, m, lr=0.15, epochs=EPOCHS)
    errs = []
    for d in (1, 3, 6):
        red = train_reduced(W0, m, depth=d, lr=0.15, epochs=EPOCHS, mode=mode)
        errs.append(np.linalg.norm(red.dW - full.dW) / np.linalg.norm(full.dW))
    assert red.dim == N
    assert errs[-1] < 1e-12
    assert errs[0] > errs[1] > errs[2]
    np.testing.assert_allclose(red.loss, full.loss, rtol=1e-12, atol=0)


def test_restricted_error_is_projection_residual():
    W0, m = cosine_network(N, 0.4, seed=0)
    full = train_full(W0, m, lr=0.15, epochs=EPOCHS)
    red = train_reduced(W0, m, depth=3, lr=0.15, epochs=EPOCHS, mode="restricted")
    err = np.linalg.norm(red.dW - full.dW) / np.linalg.norm(full.dW)
    res = projection_residual(full.dW, word_basis(W0, m, 3)[0])
    assert res <= err * (1 + 1e-9)
    assert err < 1.5 * res


def test_word_basis_orthonormal():
    W0, m = cosine_network(40, 0.8, seed=3)
    Q, lengths = word_basis(W0, m, 4)
    np.testing.assert_allclose(Q.T @ Q, np.eye(Q.shape[1]), atol=1e-12)
    assert lengths[0] == 0 and np.all(np.diff(lengths) >= 0)


def test_bad_mode():
    W0, m = cosine_network(8, 0.4, seed=0)
    with pytest.raises(ValueError):
        train_reduced(W0, m, 1, 0.1, 2, mode="nope")
