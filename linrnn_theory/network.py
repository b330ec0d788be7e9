"""Linear RNN weights: the initial connectivity W0, input vector m and output vector w.

Conventions follow Schuessler et al., NeurIPS 2020 (section 2 and 4 of the paper):
``W0 = g J`` with ``J_ij ~ N(0, 1/N)``, input direction ``m`` of norm ``sqrt(N)`` and
output direction ``w`` of norm ``1/sqrt(N)``, drawn independently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._checks import check_int, check_positive, check_square, check_vector

__all__ = ["Network", "init_network"]


@dataclass(frozen=True, eq=False)
class Network:
    """Initial weights of a linear RNN with one input and one output.

    Parameters
    ----------
    W0 : (N, N) array_like
        Initial recurrent connectivity. Copied, stored as read-only float64.
    m : (N,) array_like
        Input vector (``W_in``).
    w : (N,) array_like
        Output vector (``W_out``); the readout is ``z = w^T x``.
    g : float, optional
        Gain used to draw ``W0`` (metadata only; ``None`` for user weights).
    seed : int, optional
        Seed used to draw the weights (metadata only).

    Raises
    ------
    TypeError
        If ``W0``, ``m`` or ``w`` is complex.
    ValueError
        If ``N < 2``, shapes disagree, or any entry is NaN/inf.

    Examples
    --------
    >>> import numpy as np
    >>> net = Network(W0=np.zeros((3, 3)), m=[1.0, 0.0, 0.0], w=[0.0, 1.0, 0.0])
    >>> net.N
    3
    """

    W0: np.ndarray
    m: np.ndarray
    w: np.ndarray
    g: float | None = None
    seed: int | None = None
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("W0", "m", "w"):
            if np.iscomplexobj(np.asarray(getattr(self, name))):
                raise TypeError(f"{name} must be real; got a complex array (only real "
                                "weights are supported)")
        W0 = check_square("W0", self.W0)
        n = W0.shape[0]
        if n < 2:
            raise ValueError(f"W0 must be at least 2 x 2 (N >= 2), got N = {n}")
        m = check_vector("m", self.m, n)
        w = check_vector("w", self.w, n)
        for arr in (W0, m, w):
            arr.setflags(write=False)
        object.__setattr__(self, "W0", W0)
        object.__setattr__(self, "m", m)
        object.__setattr__(self, "w", w)
        if self.g is not None:
            object.__setattr__(self, "g", check_positive("g", self.g, strict=False))
        if self.seed is not None:
            object.__setattr__(self, "seed", check_int("seed", self.seed, minimum=0))

    @property
    def N(self) -> int:
        """Number of neurons."""
        return int(self.W0.shape[0])

    def eigvals_W0(self) -> np.ndarray:
        """Eigenvalues of ``W0`` (computed once, then cached).

        Examples
        --------
        >>> Network(W0=np.diag([0.1, 0.2]), m=[1, 0], w=[0, 1]).eigvals_W0().real
        array([0.1, 0.2])
        """
        if "eig" not in self._cache:
            self._cache["eig"] = np.linalg.eigvals(self.W0)
        return self._cache["eig"]

    def resolvent_lu(self) -> tuple[np.ndarray, np.ndarray]:
        """LU factors of ``I - W0`` (:func:`scipy.linalg.lu_factor`; computed once, then
        cached), with which ``R = (I - W0)^{-1}`` is applied.

        Examples
        --------
        >>> import scipy.linalg as sla
        >>> net = Network(W0=np.diag([0.5, 0.0]), m=[1, 0], w=[0, 1])
        >>> sla.lu_solve(net.resolvent_lu(), np.array([1.0, 1.0]))
        array([2., 1.])
        """
        if "lu" not in self._cache:
            import scipy.linalg as sla
            lu, piv = sla.lu_factor(np.eye(self.N) - self.W0)
            lu.setflags(write=False)
            self._cache["lu"] = (lu, piv)
        return self._cache["lu"]

    def max_real_eig(self) -> float:
        """Largest real part of the eigenvalues of ``W0`` (cached).

        Dense ``eigvals`` for N <= 2500 (measured faster than ARPACK there: random
        matrices have a crowded spectral edge); above, ARPACK's implicitly restarted
        Arnoldi for the rightmost eigenvalues, with a dense fallback if it fails.

        Examples
        --------
        >>> Network(W0=np.diag([0.1, 0.7]), m=[1, 0], w=[0, 1]).max_real_eig()
        0.7
        """
        if "max_re" not in self._cache:
            if self.N <= 2500 or "eig" in self._cache:
                val = float(np.max(self.eigvals_W0().real))
            else:
                from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, eigs
                try:
                    v0 = np.ones(self.N) / np.sqrt(self.N)
                    ev = eigs(self.W0, k=6, which="LR", return_eigenvectors=False,
                              v0=v0, tol=1e-10, maxiter=20 * self.N)
                    val = float(np.max(ev.real))
                except (ArpackNoConvergence, ArpackError):   # e.g. W0 = 0
                    val = float(np.max(self.eigvals_W0().real))
            self._cache["max_re"] = val
        return self._cache["max_re"]

    def numerical_abscissa(self) -> float:
        """Largest eigenvalue of the symmetric part ``(W0 + W0^T)/2`` (cached): an upper
        bound on the real parts of the eigenvalues of ``W0``. Lanczos (O(N^2) per step)
        above N = 600, which converges fast for this symmetric problem.

        Examples
        --------
        >>> Network(W0=np.array([[0.0, 1.0], [0.0, 0.0]]), m=[1, 0], w=[0, 1]).numerical_abscissa()
        0.5
        """
        if "abscissa" not in self._cache:
            H = 0.5 * (self.W0 + self.W0.T)
            if not np.any(H):                    # W0 = 0 (g = 0): Lanczos has no start
                val = 0.0
            elif self.N <= 600:
                val = float(np.linalg.eigvalsh(H)[-1])
            else:
                from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, eigsh
                v0 = np.ones(self.N) / np.sqrt(self.N)
                try:
                    val = float(eigsh(H, k=1, which="LA", return_eigenvectors=False,
                                      tol=1e-10, v0=v0)[0])
                except (ArpackNoConvergence, ArpackError):
                    val = float(np.linalg.eigvalsh(H)[-1])
            self._cache["abscissa"] = val
        return self._cache["abscissa"]

    def check_stable(self) -> None:
        """Raise ``ValueError`` unless every eigenvalue of ``W0`` has real part < 1.

        The fixed point ``x* = (I - W)^{-1} m`` is reached by the dynamics only in
        that case, so fixed-point mode requires it. A numerical abscissa below 1 certifies
        stability cheaply (the case for ``g`` up to about 0.7); otherwise the rightmost
        eigenvalue is computed (:meth:`max_real_eig`).

        Examples
        --------
        >>> Network(W0=np.diag([0.5, 1.5]), m=[1, 0], w=[0, 1]).check_stable()
        Traceback (most recent call last):
        ...
        ValueError: W0 is unstable: an eigenvalue has real part 1.5 >= 1, so the fixed point is not reached
        """
        if self.numerical_abscissa() < 1.0 - 1e-8:
            return
        re = self.max_real_eig()
        if re >= 1.0:
            raise ValueError(
                f"W0 is unstable: an eigenvalue has real part {re:.6g} >= 1, "
                "so the fixed point is not reached")

    def overlap(self) -> float:
        """Overlap ``w^T m`` (O(N^-1/2) for independent random vectors).

        Examples
        --------
        >>> Network(W0=np.zeros((2, 2)), m=[1, 1], w=[0.5, 0.5]).overlap()
        1.0
        """
        return float(self.w @ self.m)


def init_network(N: int, g: float, seed: int) -> Network:
    """Draw a network with the paper's conventions.

    ``J`` is drawn first, then ``m``, then ``w``, from one
    ``numpy.random.default_rng(seed)``: the same seed gives the same ``J`` for every
    ``g`` (common random numbers across a sweep in ``g``).

    Parameters
    ----------
    N : int
        Number of neurons, ``N >= 2``.
    g : float
        Strength of the random initial connectivity, ``g >= 0``.
    seed : int
        Seed of the generator, ``seed >= 0``.

    Returns
    -------
    Network

    Examples
    --------
    >>> net = init_network(N=64, g=0.6, seed=0)
    >>> round(float(np.linalg.norm(net.m) * np.linalg.norm(net.w)), 12)
    1.0
    """
    N = check_int("N", N, minimum=2)
    g = check_positive("g", g, strict=False)
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    J = rng.standard_normal((N, N)) / np.sqrt(N)
    m = rng.standard_normal(N)
    w = rng.standard_normal(N)
    m *= np.sqrt(N) / np.linalg.norm(m)
    w *= 1.0 / (np.sqrt(N) * np.linalg.norm(w))
    return Network(W0=g * J, m=m, w=w, g=float(g), seed=seed)

