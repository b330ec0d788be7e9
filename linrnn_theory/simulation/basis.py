"""A growing orthonormal basis together with its image under a fixed linear map.

Used by the fast simulators to keep ``Delta W = U C V^T`` in factored form: ``U`` is
extended only when a new gradient direction has a component outside ``span(U)`` above a
relative tolerance, and the image ``R U`` (one linear solve per new column) is cached.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["MappedBasis", "FactoredDelta"]


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
    >>> coeffs, added = B.project_extend(np.array([3.0, 4.0, 0.0]))
    >>> coeffs, added, B.n
    (array([5.]), True, 1)
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

    def project_extend(self, a: np.ndarray, known: np.ndarray | None = None
                       ) -> tuple[np.ndarray, bool]:
        """Coefficients of ``a`` in the basis, extending it if needed.

        Parameters
        ----------
        a : (N,) ndarray
        known : (n,) ndarray, optional
            ``Q^T a`` if already known (saves one product).

        Returns
        -------
        coeffs : (n_new,) ndarray
            Coefficients in the (possibly extended) basis.
        added : bool
            Whether a column was appended.
        """
        Q = self.Q
        c = Q.T @ a if known is None else np.array(known, dtype=float)
        r = a - Q @ c
        if self.n:
            c2 = Q.T @ r  # second Gram-Schmidt pass (CGS2)
            r -= Q @ c2
            c = c + c2
        rho = float(np.linalg.norm(r))
        scale = float(np.linalg.norm(a))
        if rho <= self.rtol * scale or rho == 0.0:
            return c, False
        self._store(r / rho)
        return np.append(c, rho), True

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
        out = np.zeros(k)
        if self.C.size:
            s = np.linalg.svd(self.C, compute_uv=False)[:k]
            out[: s.size] = s
        return out

    def delta(self) -> np.ndarray:
        """Dense ``Delta W = U C V^T``."""
        return self.U.Q @ self.C @ self.V.Q.T

    def weights(self) -> np.ndarray:
        """Dense ``W = W0 + Delta W``."""
        return self.net.W0 + self.delta()
