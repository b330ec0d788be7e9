"""A growing orthonormal basis together with its image under a fixed linear map.

Used by the fast simulators to keep ``Delta W = U C V^T`` in factored form: ``U`` is
extended only when a new gradient direction has a component outside ``span(U)`` above a
relative tolerance, and the image ``R U`` (one linear solve per new column) is cached.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["MappedBasis"]


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
                 capacity: int = 16):
        self.N = N
        self._apply = apply
        self.rtol = rtol
        self._Q = np.zeros((N, capacity))
        self._F = np.zeros((N, capacity))
        self.n = 0

    @property
    def Q(self) -> np.ndarray:
        """The orthonormal columns (a view)."""
        return self._Q[:, : self.n]

    @property
    def image(self) -> np.ndarray:
        """``F`` applied to each column (a view)."""
        return self._F[:, : self.n]

    def _grow(self) -> None:
        cap = 2 * self._Q.shape[1]
        for name in ("_Q", "_F"):
            old = getattr(self, name)
            new = np.zeros((self.N, cap))
            new[:, : self.n] = old[:, : self.n]
            setattr(self, name, new)

    def project_extend(self, a: np.ndarray, known: np.ndarray | None = None):
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
        if self.n == self._Q.shape[1]:
            self._grow()
        q = r / rho
        self._Q[:, self.n] = q
        self._F[:, self.n] = self._apply(q)
        self.n += 1
        return np.append(c, rho), True

    def rotate(self, P: np.ndarray) -> None:
        """Replace the columns by ``Q P`` (``P`` with orthonormal columns)."""
        k = P.shape[1]
        Q = self.Q @ P
        F = self.image @ P
        self._Q[:, :k] = Q
        self._F[:, :k] = F
        self._Q[:, k: self.n] = 0.0
        self._F[:, k: self.n] = 0.0
        self.n = k
