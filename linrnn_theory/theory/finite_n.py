r"""Finite-N theory: the mean and the spread of learning over networks of size ``N``.

The reduced gradient flow of a network (:mod:`.instance`) depends on the network only
through the Gram entries of its two Krylov chains (docs/theory.md, "Finite N"). With
``R = (I - W0)^{-1} = P S Q^T`` (singular value decomposition, ``t_j = s_j^2``) and the unit
directions ``w^ = w / |w|``, ``m^ = m / |m|``, every entry is one of

.. math:: Q^w_n = \sum_j \alpha_j^2 t_j^n, \qquad Q^m_n = \sum_j \gamma_j^2 t_j^n, \qquad
          X_n = \sum_j \alpha_j \gamma_j\, t_j^{n + 1/2},

with ``alpha = P^T w^`` and ``gamma = Q^T m^``: moments of the spectral measure of
``H = R R^T`` weighted by the squared components of the random directions. At large N the
measure is deterministic, with moments ``phi_n`` (:mod:`.traces`), and the weights are those
of two independent uniform unit vectors. Discretising the measure by Gauss quadrature with
``n`` nodes (:func:`quadrature`; exact for every moment of degree ``<= 2n - 1``) turns a
network into a *surrogate*: a bin of eigen-directions per node, carrying the bin weights
``A_i = sum alpha_j^2``, ``B_i = sum gamma_j^2`` and ``C_i = sum alpha_j gamma_j``
(:func:`surrogate_network`). At the mean (``A = B = p``, ``C = 0``) the surrogate's reduced
flow is the large-N flow; over networks the weights fluctuate with (derived in
:mod:`linrnn_theory.derivations.gram_covariance`)

.. math:: \mathrm{Cov}(A_i, A_k) = \frac{2}{N + 2}\,(p_i \delta_{ik} - p_i p_k), \qquad
          \mathrm{Var}(C_i) = \frac{p_i}{N},

``B`` like ``A``, and no correlation between ``A``, ``B`` and ``C``. The outputs
``F(tau)`` (readout, loss, singular values, gradient norm) of the surrogate's flow are then
expanded to second order along the principal directions ``d_k`` of these covariances
(:func:`fluctuation_modes`, central differences of step ``h_k`` in units of one standard
deviation):

.. math:: \mathrm{std}\,F = \Big(\sum_k D_k^2\Big)^{1/2}, \quad
          D_k = \frac{F(+h_k d_k) - F(-h_k d_k)}{2 h_k}; \qquad
          \mathrm{E}\,F = F(0) + \frac12 \sum_k \frac{F(+h_k d_k) + F(-h_k d_k) - 2 F(0)}{h_k^2},

the linear response (spread, order ``N^{-1/2}``) and the ``O(1/N)`` bias of the mean.

Limits. The random directions are the only source of spread: the fluctuations of the
spectrum of ``W0`` itself (its bulk edge, its largest real eigenvalues) are neglected. Both
corrections grow as ``g -> 1``; :func:`validity` measures them and the method's status says
when they are too large for the expansion (:attr:`~linrnn_theory.Status.FINITE_SIZE`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
import mpmath as mp
import numpy as np

from ..network import Network
from ..trajectory import Status
from .instance import instance_model
from .large_n import large_n_model
from .methods import (Request, TheoryMethod, _check_large_n, _reduced_prediction, _sv,
                      get_method, register_method)
from .reduced import integrate
from .result import Prediction
from .traces import moments

__all__ = ["Quadrature", "quadrature", "surrogate_network", "fluctuation_modes",
           "Validity", "validity", "VALIDITY_THRESHOLD", "FiniteNMethod"]

#: Largest predicted relative fluctuation (of the linearised learning rate, or of the bulk
#: edge against its gap to 1) for which the expansion is trusted: the neglected next
#: order changes the predicted spread by a relative amount of this size.
VALIDITY_THRESHOLD = 0.2

#: Step of the central differences, in standard deviations of a fluctuation mode.
STEP = 0.05


@dataclass(frozen=True)
class Quadrature:
    """Gauss quadrature of the large-N spectral measure of ``H = R R^T``.

    Attributes
    ----------
    g : float
        Gain of ``W0``.
    t : (n,) ndarray
        Nodes (eigenvalues of ``H``; read-only).
    p : (n,) ndarray
        Weights, summing to 1 (read-only).
    moment_error : float
        Largest relative error of the moments ``phi_0 .. phi_{2n-1}`` it reproduces.
    """

    g: float
    t: np.ndarray
    p: np.ndarray
    moment_error: float


@lru_cache(maxsize=64)
def quadrature(g: float, n: int) -> Quadrature:
    """The ``n``-node Gauss quadrature of the measure with moments ``phi_k`` (:mod:`.traces`).

    Golub-Welsch: the recurrence coefficients of the orthogonal polynomials come from the
    Cholesky factor of the Hankel matrix ``[phi_{i+j}]`` (in high precision: it is
    ill-conditioned), the nodes and weights from the eigen-decomposition of the Jacobi
    matrix. At ``g = 0`` the measure is the point mass at ``t = 1``.

    Parameters
    ----------
    g : float
        ``0 <= g < 1``.
    n : int
        Number of nodes, ``>= 1``.

    Returns
    -------
    Quadrature
        Read-only arrays; exact for the moments of degree ``<= 2n - 1``.

    Examples
    --------
    >>> q = quadrature(0.6, 4)
    >>> round(float(q.p.sum()), 12), round(float(q.p @ q.t), 12)     # phi_0 = 1, phi_1 = beta
    (1.0, 1.5625)
    >>> q.moment_error < 1e-30
    True
    """
    g, n = float(g), int(n)
    if not 0.0 <= g < 1.0:
        raise ValueError(f"g must lie in [0, 1), got {g}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if g == 0.0:
        t, p, err = np.ones(1), np.ones(1), 0.0
    else:
        with mp.workdps(30):
            phi, _ = moments(g, 2 * n)
            ratio = max(float(phi[k + 1] / phi[k]) for k in range(2 * n))
        dps = 40 + int(2 * n * max(1.0, np.log10(max(ratio, 10.0))))
        with mp.workdps(dps):
            phi, _ = moments(g, 2 * n)
            U = mp.cholesky(mp.matrix([[phi[i + j] for j in range(n + 1)]
                                       for i in range(n + 1)])).T
            J = mp.matrix(n, n)
            for k in range(n):
                J[k, k] = U[k, k + 1] / U[k, k] - (U[k - 1, k] / U[k - 1, k - 1] if k else 0)
                if k + 1 < n:
                    J[k, k + 1] = J[k + 1, k] = U[k + 1, k + 1] / U[k, k]
            E, V = mp.eigsy(J)
            w = [V[0, i] ** 2 for i in range(n)]
            err = max(abs(float(mp.fsum(w[i] * E[i] ** k for i in range(n)) / phi[k] - 1))
                      for k in range(2 * n))
            t = np.array([float(E[i]) for i in range(n)])
            p = np.array([float(x) for x in w])
    t.setflags(write=False)
    p.setflags(write=False)
    return Quadrature(g=g, t=t, p=p, moment_error=float(err))


def surrogate_network(quad: Quadrature, A: np.ndarray, B: np.ndarray,
                      C: np.ndarray) -> Network:
    """A ``2n``-neuron network whose Krylov-chain Gram entries are those of the bin weights.

    Node ``i`` of the quadrature becomes two neurons with ``R = (I - W0)^{-1} = s_i I_2``
    (``s_i = sqrt(t_i)``) and the 2-vectors ``w_i``, ``m_i`` with ``|w_i|^2 = A_i``,
    ``|m_i|^2 = B_i`` and ``w_i . m_i = C_i``. Its reduced flow (:mod:`.instance`) is the flow
    of a network of any size whose Gram entries take these values; only the chains are
    meaningful (not, e.g., its eigenvalues or ``w^T m``).

    Parameters
    ----------
    quad : Quadrature
        Nodes ``t``.
    A, B : (n,) ndarray
        Bin weights of ``w`` and ``m`` (positive).
    C : (n,) ndarray
        Bin overlaps (``C_i^2 <= A_i B_i``).

    Returns
    -------
    Network

    Examples
    --------
    >>> q = quadrature(0.5, 3)
    >>> net = surrogate_network(q, q.p, q.p, np.zeros(3))
    >>> net.N, round(float(net.w @ np.linalg.solve(np.eye(6) - net.W0, net.m)), 12)
    (6, 0.0)
    """
    A, B, C = (np.asarray(x, dtype=float) for x in (A, B, C))
    if np.any(A <= 0) or np.any(B <= 0) or np.any(C * C > A * B):
        raise ValueError("bin weights must satisfy A > 0, B > 0 and C^2 <= A B")
    d = np.repeat(np.sqrt(quad.t), 2)
    w = np.zeros(d.size)
    m = np.zeros(d.size)
    w[0::2] = np.sqrt(A)
    m[0::2] = C / np.sqrt(A)
    m[1::2] = np.sqrt(np.maximum(B - C * C / A, 0.0))
    return Network(W0=np.diag(1.0 - 1.0 / d), m=m, w=w, g=quad.g, seed=None)


def fluctuation_modes(quad: Quadrature, N: int) -> np.ndarray:
    """Principal directions of the fluctuations of the bin weights, one standard deviation
    each: an array ``(K, 3, n)`` of changes of ``(A, B, C)``.

    ``A`` and ``B`` share the eigenvectors of ``(2/(N+2)) (diag(p) - p p^T)`` (its null
    direction, the normalisation, carries nothing); ``C`` has one mode per node,
    ``sqrt(p_i / N)``.

    Parameters
    ----------
    quad : Quadrature
    N : int
        Network size, ``>= 2``.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> q = quadrature(0.5, 3)
    >>> d = fluctuation_modes(q, 100)
    >>> d.shape                                 # 2 + 2 normalised modes, 3 overlap modes
    (7, 3, 3)
    >>> S = sum(np.outer(x[0], x[0]) for x in d)  # the covariance of A, recovered
    >>> bool(np.allclose(S, 2 / 102 * (np.diag(q.p) - np.outer(q.p, q.p))))
    True
    """
    p = quad.p
    n = p.size
    lam, vec = np.linalg.eigh(2.0 / (N + 2.0) * (np.diag(p) - np.outer(p, p)))
    keep = lam > 1e-13 * max(float(lam.max()), 1e-300)
    modes = []
    for side in (0, 1):
        for k in np.flatnonzero(keep):
            d = np.zeros((3, n))
            d[side] = np.sqrt(lam[k]) * vec[:, k]
            modes.append(d)
    for i in range(n):
        d = np.zeros((3, n))
        d[2, i] = np.sqrt(p[i] / N)
        modes.append(d)
    return np.array(modes).reshape(len(modes), 3, n)


@dataclass(frozen=True)
class Validity:
    """Whether the expansion in ``1/N`` holds at ``(g, N)`` (:func:`validity`).

    Attributes
    ----------
    rate_spread : float
        Predicted relative standard deviation of the initial learning rate
        ``kappa = |R^T w|^2 |R m|^2`` over networks: ``2 sqrt((phi_2 - phi_1^2) /
        (N + 2)) / phi_1``.
    edge_ratio : float
        Fluctuation ``g / sqrt(N)`` of the bulk edge of ``W0`` against its distance ``1 - g``
        to the instability (the part of the spread this theory neglects).
    ok : bool
        Both below :data:`VALIDITY_THRESHOLD`.
    message : str
        Empty when ``ok``, else the reason in words.
    """

    rate_spread: float
    edge_ratio: float
    ok: bool
    message: str


def validity(g: float, N: int, threshold: float = VALIDITY_THRESHOLD) -> Validity:
    """The finite-N theory's own verdict on whether it holds at ``(g, N)``.

    Parameters
    ----------
    g : float
        ``0 <= g < 1``.
    N : int
        Network size.
    threshold : float
        Largest relative fluctuation accepted.

    Returns
    -------
    Validity

    Examples
    --------
    >>> validity(0.6, 1024).ok, validity(0.9, 256).ok
    (True, False)
    >>> round(validity(0.8, 1024).rate_spread, 3)
    0.162
    """
    with mp.workdps(30):
        phi, _ = moments(g, 2)
        rate = float(2 * mp.sqrt((phi[2] - phi[1] ** 2) / (N + 2)) / phi[1])
    edge = float(g / ((1.0 - g) * np.sqrt(N)))
    reasons = []
    if rate > threshold:
        reasons.append(f"the learning rate |R^T w|^2 |R m|^2 varies by {100 * rate:.0f} % "
                       f"between networks of size N = {N} at g = {g}")
    if edge > threshold:
        reasons.append(f"the edge of the spectrum of W0 fluctuates by {100 * edge:.0f} % "
                       "of its distance to 1, which this theory neglects (some networks "
                       "learn much more slowly than others)")
    message = ""
    if reasons:
        message = ("finite-size effects dominate: " + "; ".join(reasons)
                   + f" (above {100 * threshold:.0f} %); the expansion in 1/N does not hold: "
                   "use a larger N, or method='instance' for each network")
    return Validity(rate_spread=rate, edge_ratio=edge, ok=not reasons, message=message)


def _outputs(net: Network, req: Request, depth: int) -> np.ndarray:
    """``(n_tau, 3 + n_singular)``: readout, loss, gradient norm, singular values of the
    unit-amplitude flow of ``net`` at chain depth ``depth``."""
    model = instance_model(net, depth)
    sol = integrate(model, req.zt, req.tt, rtol=req.rtol, atol=req.atol)
    z = sol.readout
    gn = (np.array([model.grad_norm(C, req.zt) for C in sol.C]) if req.grad_norm
          else np.full(z.size, np.nan))
    sv = np.array([_sv(C, req.n_singular) for C in sol.C])
    return np.column_stack([z, 0.5 * (req.zt - z) ** 2, gn, sv])


def _steps(base: np.ndarray, modes: np.ndarray) -> np.ndarray:
    """Step ``h_k <= STEP`` of each mode that keeps ``A``, ``B`` and ``C^2 <= A B`` valid."""
    h = np.full(len(modes), STEP)
    for k, d in enumerate(modes):
        for side in (0, 1):
            big = np.abs(d[side]) > 0
            if big.any():
                h[k] = min(h[k], 0.25 * float(np.min(base[side][big] / np.abs(d[side][big]))))
        big = np.abs(d[2]) > 0
        if big.any():
            room = np.sqrt(base[0] * base[1])
            h[k] = min(h[k], 0.25 * float(np.min(room[big] / np.abs(d[2][big]))))
    return h


def expand(quad: Quadrature, N: int, fn, *, modes: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Second-order expansion of ``fn(network)`` over the fluctuations of the bin weights.

    Parameters
    ----------
    quad : Quadrature
    N : int
    fn : callable
        ``fn(surrogate_network) -> ndarray`` (any fixed shape).
    modes : ndarray, optional
        Fluctuation modes (default :func:`fluctuation_modes`).

    Returns
    -------
    value, mean, std : ndarray
        ``fn`` at the mean weights (the large-N value), the mean over networks to
        ``O(1/N)`` and the standard deviation to ``O(N^-1/2)``.

    Examples
    --------
    >>> q = quadrature(0.5, 3)
    >>> s0 = lambda net: np.array([net.w @ np.linalg.solve(np.eye(net.N) - net.W0, net.m)])
    >>> v, mean, std = expand(q, 400, s0)     # w^T R m: mean 0, variance phi_1 / N
    >>> round(float(std[0] ** 2 * 400), 9), round(float(abs(mean[0])), 9)
    (1.333333333, 0.0)
    """
    modes = fluctuation_modes(quad, N) if modes is None else modes
    base = np.array([quad.p, quad.p, np.zeros(quad.p.size)])
    f0 = np.asarray(fn(surrogate_network(quad, *base)), dtype=float)
    var = np.zeros_like(f0)
    bias = np.zeros_like(f0)
    for d, h in zip(modes, _steps(base, modes)):
        fp = np.asarray(fn(surrogate_network(quad, *(base + h * d))), dtype=float)
        fm = np.asarray(fn(surrogate_network(quad, *(base - h * d))), dtype=float)
        var += ((fp - fm) / (2.0 * h)) ** 2
        bias += 0.5 * (fp + fm - 2.0 * f0) / (h * h)
    return f0, f0 + bias, np.sqrt(var)


@register_method
class FiniteNMethod(TheoryMethod):
    """Mean and standard deviation over networks of size ``N`` (large-N flow expanded to
    second order in the fluctuations of the Krylov-chain Gram entries)."""

    name = "finite_n"
    takes_size = True

    def resolve_g(self, g: float | None, network: Network | None) -> float | None:
        return _check_large_n(self.name, g, network)

    def predict(self, req: Request) -> Prediction:
        N = req.N
        if N is None:
            raise ValueError("N is required for method='finite_n' (the network size)")
        large = _reduced_prediction(get_method("ode"), req,
                                    lambda d: large_n_model(req.g, d), req.depth)
        depth = int(large.params["depth"])
        quad = quadrature(req.g, depth + 2)
        _, mean, std = expand(quad, N, lambda net: _outputs(net, req, depth))
        c, k = req.c, req.n_singular
        check = validity(req.g, N)
        status, message = large.status, large.message
        if status is Status.OK and not check.ok:
            status, message = Status.FINITE_SIZE, check.message
        params = dict(large.params, N=int(N), method=self.name, n_nodes=int(quad.t.size),
                      rate_spread=check.rate_spread, edge_ratio=check.edge_ratio)
        return Prediction(
            tau=req.tau, tau_tilde=self.tau_tilde(req), readout=c * mean[:, 0],
            loss=c * c * mean[:, 1], grad_norm=c * c * mean[:, 2],
            singular_values=mean[:, 3:3 + k], outlier_eigenvalue=large.outlier_eigenvalue,
            readout_std=abs(c) * std[:, 0], loss_std=c * c * std[:, 1],
            singular_values_std=std[:, 3:3 + k], method=self.name, params=params,
            status=status, message=message)

