"""A growing orthonormal basis together with its image under a fixed linear map.

Used by the fast simulators to keep ``Delta W = U C V^T`` in factored form: ``U`` is
extended only when a new gradient direction has a component outside ``span(U)`` above a
relative tolerance, and the image ``R U`` (one linear solve per new column) is cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable

import numpy as np

__all__ = ["MappedBasis", "FactoredDelta", "project_extend", "round_up"]


class MappedBasis:
    """Orthonormal columns ``Q`` (N x n) and their images ``F(Q)`` under a linear map.

    Parameters
    ----------
    N : int
        Ambient dimension.
    apply : callable
        ``apply(v) -> F v`` for a vector ``v`` (e.g. an LU solve).
    rtol : float
        A residual ``r`` of a vector ``a`` is kept as a new column if ``|r| > rtol |a|``.
    capacity : int
        Initial number of columns allocated (doubled when full).
    image_dtype : dtype
        Type of the images.
    apply2 : callable, optional
        A second map whose images are cached too (:attr:`image2`).
    image_dim : int, optional
        Length of the images (default ``N``; a map may embed into a larger space).

    Examples
    --------
    >>> import numpy as np
    >>> B = MappedBasis(3, apply=lambda v: 2 * v)
    >>> B.add_columns(np.array([[3.0], [4.0], [0.0]]), scale=1.0), B.n
    (1, 1)
    >>> np.allclose(B.image[:, 0], 2 * B.Q[:, 0])
    True
    """

    def __init__(self, N: int, apply: Callable[[np.ndarray], np.ndarray], rtol: float = 1e-13,
                 capacity: int = 16, image_dtype=np.float64,
                 apply2: Callable[[np.ndarray], np.ndarray] | None = None,
                 image_dim: int | None = None):
        self.N = N
        self.image_dim = N if image_dim is None else int(image_dim)
        self._apply = apply
        self._apply2 = apply2
        self.rtol = rtol
        self._Q = np.zeros((N, capacity))
        self._F = np.zeros((self.image_dim, capacity), dtype=image_dtype)
        self._F2 = np.zeros((self.image_dim, capacity if apply2 else 0), dtype=image_dtype)
        self.n = 0

    @property
    def Q(self) -> np.ndarray:
        """The orthonormal columns (a view)."""
        return self._Q[:, : self.n]

    @property
    def image(self) -> np.ndarray:
        """``F`` applied to each column (a view)."""
        return self._F[:, : self.n]

    @property
    def image2(self) -> np.ndarray:
        """The second map (``apply2``) applied to each column (a view)."""
        return self._F2[:, : self.n]

    def _store(self, q: np.ndarray) -> None:
        if self.n == self._Q.shape[1]:
            self._grow()
        self._Q[:, self.n] = q
        self._F[:, self.n] = self._apply(q)
        if self._apply2 is not None:
            self._F2[:, self.n] = self._apply2(q)
        self.n += 1

    def _grow(self) -> None:
        cap = 2 * self._Q.shape[1]
        for name in ("_Q", "_F", "_F2"):
            old = getattr(self, name)
            if old.shape[1] == 0:
                continue
            new = np.zeros((old.shape[0], cap), dtype=old.dtype)
            new[:, : self.n] = old[:, : self.n]
            setattr(self, name, new)

    def add_columns(self, R: np.ndarray, scale: float) -> int:
        """Orthogonalise the columns of ``R`` against the basis and append those whose
        residual exceeds ``rtol * scale`` (rank-revealing, largest first). Returns the
        number of columns added."""
        added = 0
        R = np.array(R, dtype=float, copy=True)
        for _ in range(R.shape[1]):
            Q = self.Q
            if self.n:
                for _ in range(2):
                    R -= Q @ (Q.T @ R)
            norms = np.linalg.norm(R, axis=0)
            j = int(np.argmax(norms)) if norms.size else 0
            if not norms.size or norms[j] <= self.rtol * scale or norms[j] == 0.0:
                break
            self._store(R[:, j] / norms[j])
            added += 1
            R[:, j] = 0.0
        return added

    def rotate(self, P: np.ndarray) -> None:
        """Replace the columns by ``Q P`` (``P`` with orthonormal columns)."""
        k = P.shape[1]
        for name in ("_Q", "_F", "_F2"):
            arr = getattr(self, name)
            if arr.shape[1] == 0:
                continue
            arr[:, :k] = arr[:, : self.n] @ P
            arr[:, k: self.n] = 0.0
        self.n = k


def round_up(n: int, block: int) -> int:
    """Smallest multiple of ``block`` that is ``>= n``.

    Stacked arrays of several networks are zero-padded to such sizes: the BLAS kernels
    work in blocks, and a padding of whole blocks only adds exact zeros, so that a
    network's numbers do not depend on the batch it is in.

    >>> round_up(13, 8), round_up(16, 8), round_up(0, 8)
    (16, 16, 0)
    """
    return -(-int(n) // block) * block


def project_extend(bases: Sequence[MappedBasis], vectors: np.ndarray, known: np.ndarray,
                   stacked: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients of ``vectors[i]`` in ``bases[i]`` (one ``N``), extending each basis by
    the normalised residual if it exceeds ``rtol |a|`` (two Gram-Schmidt passes, CGS2,
    stacked over the bases).

    Parameters
    ----------
    bases : sequence of MappedBasis
    vectors : (n, N) ndarray
    known : (n, m) ndarray
        ``Q_i^T a_i`` (the first pass), already known to the caller, zero-padded
        (``m >= max n_i``).
    stacked : (n, N, cap) ndarray, optional
        The columns of the bases, zero-padded, if the caller keeps them stacked.

    Returns
    -------
    coeffs : (n, P + 1) ndarray
        Coefficients in the (possibly extended) bases, zero-padded: row ``i`` has
        ``bases[i].n`` entries (after the extension) and zeros after them.
    added : (n,) bool ndarray
        Whether a column was appended to each basis.

    Examples
    --------
    >>> import numpy as np
    >>> B = MappedBasis(3, apply=lambda v: 2 * v)
    >>> coeffs, added = project_extend([B], np.array([[3.0, 4.0, 0.0]]), np.zeros((1, 0)))
    >>> coeffs[0, :B.n], bool(added[0]), B.n
    (array([5.]), True, 1)
    >>> np.allclose(B.image[:, 0], 2 * B.Q[:, 0])
    True
    """
    n = len(bases)
    P = round_up(max(b.n for b in bases), 8)
    if stacked is None:
        stacked = np.zeros((n, bases[0].N, P))
        for i, b in enumerate(bases):
            stacked[i, :, :b.n] = b.Q
    Q = stacked[:, :, :P]
    c = np.zeros((n, P + 1))
    c[:, :min(P, known.shape[1])] = known[:, :P]
    a = np.asarray(vectors)
    r = a - (Q @ c[:, :P, None])[..., 0]
    c2 = (np.swapaxes(Q, 1, 2) @ r[..., None])[..., 0]
    r = r - (Q @ c2[..., None])[..., 0]
    c[:, :P] += c2
    rho = np.linalg.norm(r, axis=1)
    scale = np.linalg.norm(a, axis=1)
    added = (rho > np.array([b.rtol for b in bases]) * scale) & (rho != 0.0)
    for i in np.flatnonzero(added):
        b = bases[i]
        c[i, b.n] = rho[i]
        b._store(r[i] / rho[i])
    return c, added


class FactoredDelta:
    """Inspection of ``Delta W = U C V^T`` shared by the engines that keep it factored
    (attributes ``net``, ``U``, ``V``: :class:`MappedBasis`, ``C``: ``(p, q)`` array).

    The fast engines derive from it and from
    :class:`~linrnn_theory.simulation.engine.Engine`, whose ``singular_values`` and
    ``weights`` it implements."""

    @property
    def rank(self) -> tuple[int, int]:
        """Dimensions ``(p, q)`` of the left and right bases."""
        return self.U.n, self.V.n

    def singular_values(self, k: int) -> np.ndarray:
        """Top ``k`` singular values of ``Delta W`` (zero-padded)."""
        return self.singular_values_batch([self], k)[0]

    @classmethod
    def singular_values_batch(cls, engines: Sequence["FactoredDelta"], k: int) -> np.ndarray:
        """Top ``k`` singular values of each ``Delta W``, ``(len(engines), k)``: one
        batched SVD per padded shape of ``C`` (rounded up to blocks of 8; the padding adds
        zero singular values only, and each ``C`` is decomposed at the size it has alone)."""
        out = np.zeros((len(engines), k))
        shapes: dict[tuple[int, int], list[int]] = {}
        for i, e in enumerate(engines):
            if e.C.size:
                shapes.setdefault((round_up(e.C.shape[0], 8), round_up(e.C.shape[1], 8)),
                                  []).append(i)
        for (P, Q), idx in shapes.items():
            C = np.zeros((len(idx), P, Q))
            for j, i in enumerate(idx):
                C[j, :engines[i].C.shape[0], :engines[i].C.shape[1]] = engines[i].C
            s = np.linalg.svd(C, compute_uv=False)[:, :k]
            out[idx, : s.shape[1]] = s
        return out

    def delta(self) -> np.ndarray:
        """Dense ``Delta W = U C V^T``."""
        return self.U.Q @ self.C @ self.V.Q.T

    def weights(self) -> np.ndarray:
        """Dense ``W = W0 + Delta W``."""
        return self.net.W0 + self.delta()
