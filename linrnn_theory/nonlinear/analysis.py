"""Analyses of the connectivity change ``Delta W = W - W0`` of trained tanh RNNs.

Pure functions after docs/paper.md section 3 (Schuessler et al. 2020, Figs. 1-2): singular
values of ``Delta W``, loss with ``Delta W`` cut to its best rank ``R``, variance of
``Delta W`` explained by its top ``R`` singular values, loss with ``W0``'s entries shuffled
(``Delta W`` kept), eigenvalues, and the learning time.

"Loss" here is always :func:`linrnn_theory.nonlinear.rnn.loss` on a given (normally the
fixed test) :class:`~linrnn_theory.nonlinear.tasks.TrialBatch`, with the trained ``W_in``
and ``W_out``; only the recurrent matrix is modified.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from .._checks import check_int, check_positive
from .rnn import BPTTWorkspace, RNNParams, loss

__all__ = [
    "singular_values", "best_rank_approximation", "truncation_losses", "variance_explained",
    "shuffle_entries", "shuffle_losses", "eigenvalues", "learning_epoch", "rank_to_recover",
    "zero_output_loss", "DEFAULT_RANKS",
]

#: Ranks of the truncation analysis, R = 0 ... 25 (docs/paper.md section 3).
DEFAULT_RANKS = tuple(range(26))


def _square(name: str, M) -> np.ndarray:
    M = np.asarray(M)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {M.shape}")
    if not np.all(np.isfinite(M)):
        raise ValueError(f"{name} contains NaN or infinite entries")
    return M


def _ranks(ranks: Iterable[int], N: int) -> np.ndarray:
    out = np.array([check_int("ranks", r, minimum=0) for r in ranks], dtype=int)
    if out.size == 0:
        raise ValueError("ranks must not be empty")
    if out.max() > N:
        raise ValueError(f"ranks must be <= N = {N}, got {out.max()}")
    return out


def singular_values(delta_W, k: int | None = None) -> np.ndarray:
    """Singular values of ``delta_W`` in decreasing order (the top ``k`` if given).

    Examples
    --------
    >>> import numpy as np
    >>> singular_values(np.diag([3.0, -1.0, 2.0]), k=2)
    array([3., 2.])
    """
    M = _square("delta_W", delta_W)
    s = np.linalg.svd(M.astype(np.float64, copy=False), compute_uv=False)
    if k is None:
        return s
    k = check_int("k", k, minimum=0)
    return s[:k]


def best_rank_approximation(delta_W, rank: int) -> np.ndarray:
    """Best rank-``rank`` approximation in Frobenius (and spectral) norm (Eckart-Young).

    Examples
    --------
    >>> import numpy as np
    >>> best_rank_approximation(np.diag([3.0, 1.0]), 1)
    array([[3., 0.],
           [0., 0.]])
    """
    M = _square("delta_W", delta_W)
    rank = _ranks([rank], M.shape[0])[0]
    U, s, Vt = np.linalg.svd(M.astype(np.float64, copy=False))
    return ((U[:, :rank] * s[:rank]) @ Vt[:rank]).astype(M.dtype, copy=False)


def _batch(batch) -> tuple:
    try:
        u, target, mask = batch[0], batch[1], batch[2]
    except (TypeError, IndexError):
        raise ValueError("batch must be a TrialBatch or a (u, target, mask) tuple") from None
    return u, target, mask


def truncation_losses(params: RNNParams, W0, batch, dt: float = 0.5,
                      ranks: Iterable[int] = DEFAULT_RANKS) -> np.ndarray:
    """Loss with ``W = W0 + (best rank-R approximation of W - W0)``, for each ``R``.

    ``R = 0`` is the initial connectivity with the trained ``W_in, W_out``; ``R = N`` gives
    the trained network back.

    Parameters
    ----------
    params : RNNParams
        Trained weights.
    W0 : (N, N) array_like
        Initial recurrent weights.
    batch : TrialBatch or (u, target, mask)
        Trials on which the loss is evaluated.
    dt : float
    ranks : iterable of int
        Ranks ``0 <= R <= N`` (default 0 ... 25, clipped by the caller to N if needed).

    Returns
    -------
    (len(ranks),) ndarray of float

    Examples
    --------
    >>> import numpy as np
    >>> from linrnn_theory.nonlinear import init_params, ManteTask, loss
    >>> p0 = init_params(N=16, n_in=4, n_out=1, g=1.0, seed=0)
    >>> p = p0.replace_W(p0.W + 0.1 * np.outer(np.ones(16), np.arange(16)) / 16)
    >>> b = ManteTask().test_batch(batch=4)
    >>> L = truncation_losses(p, p0.W, b, ranks=[0, 1, 16])
    >>> bool(np.isclose(L[1], L[2])), bool(np.isclose(L[0], loss(p0, *b[:3])))
    (True, True)
    """
    u, target, mask = _batch(batch)
    W0 = _square("W0", W0)
    dW = (params.W - W0).astype(np.float64)
    ranks = _ranks(ranks, params.N)
    U, s, Vt = np.linalg.svd(dW)
    ws = BPTTWorkspace.like(params, np.shape(u)[0], np.shape(u)[1])
    out = np.empty(len(ranks))
    for i, R in enumerate(ranks):
        W = W0.astype(np.float64) + (U[:, :R] * s[:R]) @ Vt[:R]
        out[i] = loss(params.replace_W(W), u, target, mask, dt, workspace=ws)
    return out


def variance_explained(delta_W, ranks: Iterable[int] = DEFAULT_RANKS) -> np.ndarray:
    """Fraction of ``||delta_W||_F^2`` carried by the top ``R`` singular values.

    ``sum_{k <= R} s_k^2 / sum_k s_k^2``: 0 at ``R = 0``, non-decreasing, 1 at full rank
    (and 1 for every ``R`` when ``delta_W = 0``, where nothing is left to explain).

    Examples
    --------
    >>> import numpy as np
    >>> variance_explained(np.diag([2.0, 1.0, 1.0]), ranks=[0, 1, 2, 3])
    array([0.        , 0.66666667, 0.83333333, 1.        ])
    """
    M = _square("delta_W", delta_W)
    ranks = _ranks(ranks, M.shape[0])
    s2 = singular_values(M) ** 2
    total = s2.sum()
    if total == 0:
        return np.where(ranks >= 0, 1.0, 0.0)
    cum = np.concatenate([[0.0], np.cumsum(s2)]) / total
    return np.minimum(cum[ranks], 1.0)


def shuffle_entries(W0, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random permutation of the N^2 entries of ``W0`` (same shape).

    Examples
    --------
    >>> import numpy as np
    >>> S = shuffle_entries(np.arange(4.0).reshape(2, 2), np.random.default_rng(0))
    >>> sorted(S.ravel().tolist())
    [0.0, 1.0, 2.0, 3.0]
    """
    W0 = _square("W0", W0)
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator")
    return rng.permutation(W0.ravel()).reshape(W0.shape)


def shuffle_losses(params: RNNParams, W0, batch, dt: float = 0.5, n_shuffles: int = 5,
                   seed: int = 0) -> np.ndarray:
    """Loss of ``shuffle(W0) + Delta W`` for ``n_shuffles`` independent permutations.

    ``Delta W = params.W - W0`` is kept; only ``W0`` is scrambled (docs/paper.md section 3, claim
    3). For ``W0 = 0`` (g = 0) the shuffle changes nothing. A shuffled network whose
    activity overflows has loss ``inf``.

    Parameters
    ----------
    params : RNNParams
        Trained weights.
    W0 : (N, N) array_like
    batch : TrialBatch or (u, target, mask)
    dt : float
    n_shuffles : int
    seed : int
        Seed of the permutation generator.

    Returns
    -------
    (n_shuffles,) ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from linrnn_theory.nonlinear import init_params, RomoTask, loss
    >>> p = init_params(N=16, n_in=1, n_out=2, g=0.0, seed=0)
    >>> b = RomoTask().test_batch(batch=4)
    >>> bool(np.allclose(shuffle_losses(p, p.W, b, n_shuffles=2), loss(p, *b[:3])))
    True
    """
    u, target, mask = _batch(batch)
    W0 = _square("W0", W0)
    n_shuffles = check_int("n_shuffles", n_shuffles, minimum=1)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    dW = params.W - W0
    ws = BPTTWorkspace.like(params, np.shape(u)[0], np.shape(u)[1])
    out = np.empty(n_shuffles)
    for i in range(n_shuffles):
        Ws = shuffle_entries(W0, rng) + dW
        L = loss(params.replace_W(Ws), u, target, mask, dt, workspace=ws)
        out[i] = L if np.isfinite(L) else np.inf
    return out


def eigenvalues(M) -> np.ndarray:
    """Eigenvalues of a square matrix, sorted by decreasing real part (complex array).

    Examples
    --------
    >>> import numpy as np
    >>> eigenvalues(np.array([[0.0, 1.0], [-1.0, 0.0]]))
    array([0.+1.j, 0.-1.j])
    """
    M = _square("M", M)
    ev = np.linalg.eigvals(M.astype(np.float64, copy=False)).astype(complex)
    order = np.lexsort((-ev.imag, -ev.real))
    return ev[order]


def learning_epoch(test_loss, threshold: float) -> int | None:
    """First epoch at which the test loss is below ``threshold`` (``None`` if never).

    ``test_loss[k]`` is the loss after ``k`` parameter updates (``test_loss[0]``: initial).
    The learning time in gradient-flow units is ``lr * epoch`` (docs/paper.md section 2).

    Examples
    --------
    >>> learning_epoch([1.0, 0.5, 0.2, 0.05, 0.01], threshold=0.1)
    3
    >>> learning_epoch([1.0, 0.5], threshold=0.1) is None
    True
    """
    x = np.asarray(test_loss, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"test_loss must be 1-D, got shape {x.shape}")
    threshold = check_positive("threshold", threshold)
    hit = np.flatnonzero(x < threshold)
    return int(hit[0]) if hit.size else None


def rank_to_recover(trunc_losses, trained_loss: float, tolerance: float = 0.1,
                    ranks: Sequence[int] | None = None,
                    reference: float | None = None) -> int | None:
    """Smallest rank ``R`` whose truncated loss is close enough to the trained loss.

    Without ``reference``: the first ``R`` with ``trunc_losses[R] <= (1 + tolerance) *
    trained_loss`` (within 10 % of the trained loss for ``tolerance = 0.1``). With a
    ``reference`` loss (e.g. the initial loss): the first ``R`` with ``trunc_losses[R] <=
    trained_loss + tolerance * (reference - trained_loss)``, i.e. recovering a fraction
    ``1 - tolerance`` of the loss decrease. ``None`` if no listed rank gets there.

    Parameters
    ----------
    trunc_losses : sequence of float
        Output of :func:`truncation_losses`.
    trained_loss : float
    tolerance : float
    ranks : sequence of int, optional
        Ranks matching ``trunc_losses`` (default ``0, 1, 2, ...``).
    reference : float, optional

    Examples
    --------
    >>> rank_to_recover([1.0, 0.3, 0.105, 0.1], trained_loss=0.1)
    2
    >>> rank_to_recover([1.0, 0.3, 0.105, 0.1], trained_loss=0.1, reference=1.0)
    2
    >>> rank_to_recover([1.0, 0.15, 0.105, 0.1], trained_loss=0.1, reference=1.0)
    1
    """
    L = np.asarray(trunc_losses, dtype=float)
    ranks = np.arange(L.size) if ranks is None else np.asarray(ranks)
    if ranks.shape != L.shape:
        raise ValueError("ranks and trunc_losses must have the same length")
    trained_loss = check_positive("trained_loss", trained_loss, strict=False)
    tolerance = check_positive("tolerance", tolerance, strict=False)
    if reference is None:
        limit = (1.0 + tolerance) * trained_loss
    else:
        reference = check_positive("reference", reference, strict=False)
        limit = trained_loss + tolerance * max(reference - trained_loss, 0.0)
    hit = np.flatnonzero(L <= limit)
    return int(ranks[hit[0]]) if hit.size else None


def zero_output_loss(batch) -> float:
    """Loss of a network whose output is always 0: ``sum(mask target^2) / (2 sum(mask))``.

    Used as the scale of the learning threshold (it is also, up to O(1/N), the initial loss).

    Examples
    --------
    >>> import numpy as np
    >>> zero_output_loss((None, np.full((2, 1, 1), 0.5), np.ones((2, 1, 1))))
    0.125
    """
    _, target, mask = _batch(batch)
    target, mask = np.asarray(target, float), np.asarray(mask, float)
    M = mask.sum()
    if M <= 0:
        raise ValueError("mask must select at least one entry")
    return 0.5 * float((mask * target ** 2).sum()) / float(M)
