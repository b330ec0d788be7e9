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

Cost. The modes are taken in a basis where their contributions fall off geometrically
(orthonormal polynomials of the quadrature measure) and truncated where
:func:`truncation_estimate` allows (:data:`TRUNCATION_TOL`); ``B`` responds as ``A``.
``predict`` obtains the responses ``D_k`` from the variational equations of the mean
surrogate's reduced flow (one Taylor integration of the flow and its tangents,
:func:`_tangent_expansion`, :func:`_tangent_flow`) instead of central differences of
whole flows, which :func:`expand` and :func:`observables_spread` still use.

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
from scipy.interpolate import CubicSpline
from scipy.linalg import eigh_tridiagonal
from scipy.special import expit

from ..network import Network
from ..trajectory import Status
from .instance import instance_model
from .large_n import large_n_model
from .._checks import check_finite_scalar, check_int
from .methods import (Request, TheoryMethod, _check_large_n, _reduced_prediction,
                      check_tau, get_method, register_method, solve)
from .reduced import MAX_NFEV, integrate_many
from .result import Prediction
from .taylor import taylor_flow
from .traces import moments

__all__ = ["Quadrature", "quadrature", "surrogate_network", "fluctuation_modes",
           "Validity", "validity", "VALIDITY_THRESHOLD", "passage_times", "expand",
           "observables_spread", "SPREAD_OBSERVABLES", "slow_fraction",
           "learning_time_spread", "FiniteNMethod", "PassageLaw", "sample_readout_std"]

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

    Golub-Welsch: the recurrence coefficients of the orthonormal polynomials ``pi_k`` come
    from the Cholesky factor of the Hankel matrix ``[phi_{i+j}]`` (in high precision: it is
    ill-conditioned); the nodes are the eigenvalues of the Jacobi matrix, found in float64
    (a symmetric tridiagonal eigenproblem is well conditioned) and refined by Newton steps
    on ``pi_n`` in extended precision (``numpy.longdouble``, all nodes at once; the
    recurrence is well conditioned), and the weights are the Christoffel numbers
    ``1 / sum_k pi_k(t_i)^2``. At ``g = 0`` the measure is the point mass at ``t = 1``.

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
    >>> q.moment_error < 1e-14                 # the rounding of the nodes to float64
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
            a = [U[k, k + 1] / U[k, k] - (U[k - 1, k] / U[k - 1, k - 1] if k else 0)
                 for k in range(n)]
            b = [U[k + 1, k + 1] / U[k, k] for k in range(n - 1)]
        guess = eigh_tridiagonal(np.array([float(x) for x in a]),
                                 np.array([float(x) for x in b]), eigvals_only=True)
        ext = np.longdouble
        a = np.array([ext(mp.nstr(x, 25)) for x in a])
        b = np.array([ext(mp.nstr(x, 25)) for x in b])
        E = guess.astype(ext)
        for _ in range(12):
            _, f, df = _orthonormal_values(a, b, E)
            step = f / df
            E = E - step
            if np.all(np.abs(step) <= np.abs(E) * (64 * np.finfo(ext).eps)):
                break
        t = E.astype(float)
        p = (1 / _orthonormal_values(a, b, E)[0]).astype(float)
        with mp.workdps(30):
            err = max(abs(float(mp.fsum(mp.mpf(p[i]) * mp.mpf(t[i]) ** k for i in range(n))
                                / phi[k] - 1)) for k in range(2 * n))
    t.setflags(write=False)
    p.setflags(write=False)
    return Quadrature(g=g, t=t, p=p, moment_error=float(err))



def _orthonormal_values(a: np.ndarray, b: np.ndarray, x: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``sum_k pi_k(x)^2`` over ``k < n``, ``pi_n(x)`` and ``pi_n'(x)`` at the points ``x`` of
    the orthonormal polynomials with recurrence coefficients ``a`` (diagonal, ``n``) and
    ``b`` (off-diagonal, ``n - 1``) of the Jacobi matrix; ``pi_n`` up to a positive
    factor. In the precision of the arrays.

    Examples
    --------
    >>> a, b = np.zeros(2), np.ones(1)          # pi_0 = 1, pi_1 = x, pi_2 ~ x^2 - 1
    >>> [v.tolist() for v in _orthonormal_values(a, b, np.array([1.0, 2.0]))]
    [[2.0, 5.0], [0.0, 3.0], [2.0, 4.0]]
    """
    n = len(a)
    prev, cur = np.zeros_like(x), np.ones_like(x)
    dprev, dcur, squares = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    for k in range(n):
        squares = squares + cur * cur
        scale = b[k] if k + 1 < n else 1
        back = b[k - 1] if k else 0
        nxt = ((x - a[k]) * cur - back * prev) / scale
        dnxt = (cur + (x - a[k]) * dcur - back * dprev) / scale
        prev, cur, dprev, dcur = cur, nxt, dcur, dnxt
    return squares, cur, dcur


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


def _orthonormal_basis(t: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``Q[j, i] = sqrt(w_i) q_j(t_i)``: the orthonormal polynomials ``q_0, q_1, ..`` of
    the discrete measure ``sum_i w_i delta(t - t_i)`` (``sum w = 1``) at its nodes, as the
    rows of an orthogonal matrix (Lanczos on ``diag(t)`` from ``sqrt(w)``, with full
    reorthogonalisation; the Stieltjes procedure, stable in float64)."""
    n = t.size
    Q = np.zeros((n, n))
    Q[0] = np.sqrt(w)
    for j in range(1, n):
        v = t * Q[j - 1]
        for _ in range(2):
            v -= Q[:j].T @ (Q[:j] @ v)
        Q[j] = v / np.linalg.norm(v)
    return Q


def _mode_groups(quad: Quadrature, N: int) -> tuple[np.ndarray, np.ndarray]:
    """The fluctuation modes of ``A`` and of ``C``, each ``(k, 3, n)``, in increasing
    polynomial degree (:func:`fluctuation_modes`)."""
    t, p = quad.t, quad.p
    n = p.size
    QA = _orthonormal_basis(t, p)[1:]
    wc = p * t
    QC = _orthonormal_basis(t, wc / wc.sum())
    dA = np.zeros((n - 1, 3, n))
    dA[:, 0] = np.sqrt(2.0 / (N + 2.0)) * np.sqrt(p) * QA
    dC = np.zeros((n, 3, n))
    dC[:, 2] = np.sqrt(p / N) * QC
    return dA, dC


def fluctuation_modes(quad: Quadrature, N: int) -> np.ndarray:
    """Independent directions of the fluctuations of the bin weights, one standard
    deviation each: an array ``(K, 3, n)`` of changes of ``(A, B, C)``, ``K = 3n - 2``.

    Any orthonormal basis of the whitened fluctuations gives the same first-order spread;
    this one orders each group by how fast its contribution falls off. A flow depends on
    ``A`` through the moments ``sum_i A_i t_i^k``, so its response to a change ``dA`` is
    ``sum_i dA_i f(t_i)`` with ``f`` a polynomial, and its variance is
    ``2/(N+2)`` times the variance of ``f(t)`` under the quadrature measure ``p``: expanded
    in the orthonormal polynomials ``q_j`` of ``p``, the modes
    ``dA_i = sqrt(2/(N+2)) p_i q_j(t_i)`` (``j = 1 .. n-1``; ``j = 0``, the normalisation,
    carries nothing) contribute the squares of the expansion coefficients of ``f``, which
    decay geometrically for the smooth ``f`` of a flow. ``B`` likewise. The overlaps enter
    through ``sum_i C_i t_i^{k + 1/2}``, a polynomial times ``sqrt(t)``: their modes are
    ``dC_i = sqrt(p_i / N) sqrt(p_i t_i / c) q'_j(t_i)`` with the orthonormal polynomials
    ``q'_j`` of the measure ``p_i t_i / c`` (``c = sum p t``; ``j = 0 .. n-1``).

    Parameters
    ----------
    quad : Quadrature
    N : int
        Network size, ``>= 2``.

    Returns
    -------
    ndarray
        The ``A`` modes, the ``B`` modes (the same changes), then the ``C`` modes.

    Examples
    --------
    >>> q = quadrature(0.5, 3)
    >>> d = fluctuation_modes(q, 100)
    >>> d.shape                                 # 2 + 2 normalised modes, 3 overlap modes
    (7, 3, 3)
    >>> S = sum(np.outer(x[0], x[0]) for x in d)  # the covariance of A, recovered
    >>> bool(np.allclose(S, 2 / 102 * (np.diag(q.p) - np.outer(q.p, q.p))))
    True
    >>> S = sum(np.outer(x[2], x[2]) for x in d)  # and that of C
    >>> bool(np.allclose(S, np.diag(q.p) / 100))
    True
    """
    dA, dC = _mode_groups(quad, N)
    return np.concatenate([dA, dA[:, [1, 0, 2]], dC])


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
    size_spread : float
        ``sqrt(2 / N)``, the relative fluctuation of a quadratic form in a random direction:
        the expansion parameter itself.
    ok : bool
        All three below :data:`VALIDITY_THRESHOLD`.
    message : str
        Empty when ``ok``, else the reason in words.
    """

    rate_spread: float
    edge_ratio: float
    size_spread: float
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
    >>> validity(0.6, 1024).ok, validity(0.9, 256).ok, validity(0.0, 16).ok
    (True, False, False)
    >>> round(validity(0.8, 1024).rate_spread, 3)
    0.162
    """
    with mp.workdps(30):
        phi, _ = moments(g, 2)
        rate = float(2 * mp.sqrt((phi[2] - phi[1] ** 2) / (N + 2)) / phi[1])
    edge = float(g / ((1.0 - g) * np.sqrt(N)))
    size = float(np.sqrt(2.0 / N))
    reasons = []
    if size > threshold:
        reasons.append(f"N = {N} is too small for an expansion in 1/N (a quadratic form in "
                       f"a random direction fluctuates by {100 * size:.0f} %)")
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
    return Validity(rate_spread=rate, edge_ratio=edge, size_spread=size, ok=not reasons,
                    message=message)


#: Loss level (fraction of each network's initial loss) whose crossing time aligns the
#: learning curves of different networks before they are expanded.
ALIGN_LEVEL = 0.25

#: Gauss-Hermite nodes of the average over the learning speed.
_HERMITE = np.polynomial.hermite_e.hermegauss(32)


#: Stride of the times at which :func:`_outputs` evaluates the surrogate flows of an
#: expansion (the others are interpolated, :func:`_spline_outputs`).
OUTPUT_STRIDE = 4

#: Largest estimated interpolation error of those outputs: relative to each output's range
#: along the flow, or of the logarithm for the loss and the gradient norm.
SPLINE_TOL = 1e-7


def _outputs(nets: list[Network], req: Request, depth: int, u: np.ndarray, *,
             full: bool = True, stride: int = 1) -> np.ndarray:
    """``(len(nets), len(u), 3 + n_singular)``: readout, loss, gradient norm and singular
    values of the unit-amplitude flows of ``nets`` at chain depth ``depth`` (integrated
    as one ODE), at the learning times ``u``; no singular values unless ``full``.

    With ``stride > 1`` the gradient norms and the singular values are computed at every
    ``stride``-th time (and the last) and interpolated onto the others by cubic splines
    (the gradient norm, which falls exponentially, through its logarithm). The error of
    that spline is estimated from the one through every second of those times
    (:func:`_spline_misses`); wherever the estimate exceeds :data:`SPLINE_TOL` they are
    computed at every time, so the interpolation only bridges where the curves are
    smooth. The readout and the loss are computed at every time."""
    models = [instance_model(net, depth, outliers=False) for net in nets]
    sols = integrate_many(models, req.zt, u, rtol=req.rtol, atol=req.atol)
    out = np.full((len(nets), u.size, 3 + req.n_singular), np.nan)
    for i, sol in enumerate(sols):
        out[i, :, 0] = sol.readout
        out[i, :, 1] = 0.5 * (req.zt - sol.readout) ** 2
    at = np.unique(np.r_[np.arange(0, u.size, max(int(stride), 1)), u.size - 1])
    out[:, at, 2:] = _flow_values(models, req, [s.C[at] for s in sols], full)
    if at.size == u.size:
        return out
    pos = bool(np.all(out[:, at, 2] > 0))
    bad = _spline_misses(u[at], out[:, at], pos)
    if bad.any():
        extra = np.setdiff1d(np.concatenate([np.arange(at[j], at[j + 1])
                                             for j in np.flatnonzero(bad)]), at)
        out[:, extra, 2:] = _flow_values(models, req, [s.C[extra] for s in sols], full)
        at = np.union1d(at, extra)
    rest = np.setdiff1d(np.arange(u.size), at)
    out[:, rest, 2:] = _spline_outputs(u[at], out[:, at, 2:], u[rest], log_first=pos)
    return out


def _flow_values(models: list, req: Request, Cs: list[np.ndarray], full: bool) -> np.ndarray:
    """Gradient norm and singular values ``(len(models), n, 1 + n_singular)`` at the
    coordinates ``Cs[i]`` ``(n, p, q)`` of each model (no singular values unless
    ``full``: NaN)."""
    out = np.full((len(models), len(Cs[0]), 1 + req.n_singular), np.nan)
    for i, (model, C) in enumerate(zip(models, Cs)):
        out[i, :, 0] = model.grad_norms(C, req.zt)
        if full:
            out[i, :, 1:] = 0.0
            if C.size:
                sv = np.linalg.svd(C, compute_uv=False)[:, :req.n_singular]
                out[i, :, 1:1 + sv.shape[1]] = sv
    return out


def _to_splined(y: np.ndarray, log_first: bool) -> np.ndarray:
    """``y`` ``(n_net, n, n_col)`` with its first column replaced by its logarithm if
    ``log_first`` (and positive)."""
    y = y.copy()
    if log_first:
        y[:, :, 0] = np.log(np.maximum(y[:, :, 0], 1e-300))
    return y


def _spline_outputs(v: np.ndarray, y: np.ndarray, u: np.ndarray, *,
                    log_first: bool) -> np.ndarray:
    """Columns ``y`` ``(n_net, len(v), n_col)`` at the times ``v``, interpolated onto
    ``u`` by cubic splines (the first column through its logarithm if ``log_first``)."""
    if not y.size or not u.size:
        return np.zeros((y.shape[0], u.size, y.shape[2]))
    res = CubicSpline(v, np.nan_to_num(_to_splined(y, log_first), nan=0.0), axis=1)(u)
    if log_first:
        res[:, :, 0] = np.exp(res[:, :, 0])
    res[:, :, np.all(np.isnan(y), axis=(0, 1))] = np.nan
    return res


def _spline_misses(v: np.ndarray, out: np.ndarray, log_first: bool) -> np.ndarray:
    """For each interval of ``v``, whether the estimated error of the spline of the
    gradient norm and the singular values (columns ``2:`` of ``out``, ``(n_net, len(v),
    n_out)``) through ``v`` exceeds :data:`SPLINE_TOL` next to it: the spline through
    ``v[::2]`` is compared with the values at ``v[1::2]``, and its miss, divided by
    ``2^4`` (the error of a cubic spline scales as the fourth power of the spacing), is
    the estimate, relative to each curve's range (the logarithm of the gradient norm if
    ``log_first``: an absolute error). The gradient norm is not checked where the loss
    (column 1) is below ``1e-13`` of its initial value, under every level of the passage
    times (where each flow stops and is held it has a kink). Non-finite estimates count
    as misses."""
    y = _to_splined(out[:, :, 2:], log_first)
    y = y[:, :, ~np.all(np.isnan(y), axis=(0, 1))]
    scale = np.ptp(y, axis=1, keepdims=True)
    if log_first:
        scale[:, :, 0] = 1.0
    miss = np.abs(CubicSpline(v[::2], y[:, ::2], axis=1)(v[1::2]) - y[:, 1::2]) / 16.0
    miss[:, :, 0] = np.where(out[:, 1::2, 1] < 1e-13 * out[:, :1, 1], 0.0, miss[:, :, 0])
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(scale > 0, miss / scale, 0.0)
    odd = np.any(~(rel <= SPLINE_TOL), axis=(0, 2))           # at v[1::2]
    bad = np.zeros(v.size - 1, dtype=bool)
    j = 2 * np.flatnonzero(odd) + 1                             # index in v
    bad[j - 1] = True
    bad[np.minimum(j, v.size - 2)] = True
    return bad


def _mean_weights(quad: Quadrature) -> np.ndarray:
    """``(A, B, C) = (p, p, 0)``: the bin weights of the large-N flow."""
    return np.array([quad.p, quad.p, np.zeros(quad.p.size)])


def _pair_networks(quad: Quadrature, modes: np.ndarray) -> tuple[list[Network], np.ndarray]:
    """The surrogate networks of central differences: for each mode ``k`` the mean weights
    moved by ``+h_k`` and by ``-h_k`` along it (in this order); and the steps ``h``."""
    base = _mean_weights(quad)
    steps = _steps(base, modes)
    nets = []
    for d, h in zip(modes, steps):
        nets += [surrogate_network(quad, *(base + h * d)),
                 surrogate_network(quad, *(base - h * d))]
    return nets, steps


#: Largest estimated share of the variance (of any output at any time) that the
#: fluctuation modes left out of an expansion may carry (:func:`truncation_estimate`).
TRUNCATION_TOL = 1e-6

#: Modes of each group of :func:`fluctuation_modes` evaluated first, and added each time
#: the truncation estimate is above :data:`TRUNCATION_TOL`.
FIRST_MODES = 6
MORE_MODES = 3

#: Relative floor of a variance along a curve when shares are measured: below
#: ``1e-6`` of the largest variance of that output (a spread below ``1e-3`` of its
#: largest), the share of a mode is measured against the floor.
_SHARE_FLOOR = 1e-6


def truncation_estimate(shares: np.ndarray, size: int) -> float:
    """Estimated share of the variance carried by the modes of a group after the
    ``len(shares)`` evaluated ones.

    ``shares[j]`` is the largest share of the variance (over all outputs and times) of
    the ``j``-th mode of the group, in the order of :func:`fluctuation_modes`, whose
    contributions fall off geometrically. With ``r`` the larger of the last two ratios
    ``shares[j] / shares[j - 1]``, the tail is bounded by the geometric series
    ``shares[-1] r / (1 - r)``; ``inf`` if fewer than three modes were evaluated or if
    they do not decrease (``r >= 1``), ``0`` if all ``size`` modes were.

    Examples
    --------
    >>> round(truncation_estimate(np.array([0.9, 1e-2, 1e-4, 1e-6]), 10), 12)   # r = 1e-2
    1.0101e-08
    >>> truncation_estimate(np.array([0.5, 0.3, 0.4]), 10), truncation_estimate(np.ones(3), 3)
    (inf, 0.0)
    """
    shares = np.asarray(shares, dtype=float)
    if shares.size >= size:
        return 0.0
    if shares.size < 3:
        return float("inf")
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.nan_to_num(shares[-2:] / shares[-3:-1], nan=0.0)
    r = float(np.max(r))
    if r >= 1.0:
        return float("inf")
    return float(shares[-1] * r / (1.0 - r))


def _shares(resp: dict[str, np.ndarray]) -> np.ndarray:
    """Largest share of the variance of each mode over all the responses (arrays with
    the modes on the first axis; non-finite entries ignored). A response with a curve
    axis (``ndim >= 3``: ``(K, time, output)``) is measured against the floor
    :data:`_SHARE_FLOOR` times its largest variance along the curve."""
    best = None
    for r in resp.values():
        r2 = np.where(np.isfinite(r), r * r, 0.0)
        var = r2.sum(axis=0)
        if r2.ndim >= 3:
            var = np.maximum(var, _SHARE_FLOOR * var.max(axis=0, keepdims=True))
        share = np.divide(r2, var, out=np.zeros_like(r2), where=var > 0)
        share = share.reshape(len(r2), -1).max(axis=1, initial=0.0)
        best = share if best is None else np.maximum(best, share)
    return best


@dataclass(frozen=True)
class _Expansion:
    """Result of :func:`_expand_modes`: the data of the mean network, the responses
    ``name -> (K, ...)`` to each evaluated mode (one standard deviation, weighted by the
    square root of the number of modes it stands for), and per group of modes the number
    evaluated, the number there are and the estimated share left out."""

    base: object
    resp: dict
    modes: tuple
    sizes: tuple
    tail: tuple


def _expand_modes(quad: Quadrature, N: int, evaluate, respond, *,
                  modes: np.ndarray | None = None, tol: float = TRUNCATION_TOL) -> _Expansion:
    """First-order responses to the fluctuation modes, with as few modes as the
    truncation estimate allows.

    ``evaluate(networks) -> list`` computes the data of surrogate networks (the mean
    network first); ``respond(base, plus, minus, h) -> dict`` the central-difference
    responses ``name -> (k, ...)`` of ``k`` modes from the data at ``+h`` and ``-h``.
    By default the modes of :func:`fluctuation_modes` are taken group by group in their
    order, :data:`FIRST_MODES` of each, and :data:`MORE_MODES` more of a group while its
    :func:`truncation_estimate` exceeds ``tol``. ``B`` is not evaluated: swapping ``w`` and
    ``m`` (``A`` and ``B``) transposes ``Delta W`` of a surrogate network and leaves its
    readout, loss, gradient norm and singular values as they are, so every ``B`` mode
    responds as the same ``A`` mode, which counts twice. With explicit ``modes`` all are
    evaluated, each once.
    """
    if modes is None:
        dA, dC = _mode_groups(quad, N)
        groups, weight = [dA, dC], [2.0, 1.0]
        counts = [min(FIRST_MODES, len(d)) for d in groups]
    else:
        groups, weight = [np.asarray(modes, dtype=float)], [1.0]
        counts = [len(groups[0])]
    done = [0] * len(groups)
    parts: list[list[dict]] = [[] for _ in groups]
    base = None
    while True:
        nets, spans = [], []
        for g, d in enumerate(groups):
            new, h = _pair_networks(quad, d[done[g]:counts[g]])
            spans.append((len(nets), len(new) // 2, h))
            nets += new
        data = evaluate(nets if base is not None
                        else [surrogate_network(quad, *_mean_weights(quad))] + nets)
        if base is None:
            base, data = data[0], data[1:]
        for g, (start, k, h) in enumerate(spans):
            if k:
                r = respond(base, data[start:start + 2 * k:2], data[start + 1:start + 2 * k:2],
                            h)
                parts[g].append({key: np.sqrt(weight[g]) * v for key, v in r.items()})
            done[g] = counts[g]
        resp = {key: np.concatenate([p[key] for ps in parts for p in ps])
                for key in (parts[0] or parts[-1])[0]} if any(parts) else {}
        shares = _shares(resp) if resp else np.zeros(0)
        tails, start, grow = [], 0, False
        for g, d in enumerate(groups):
            tails.append(truncation_estimate(shares[start:start + done[g]], len(d)))
            start += done[g]
            if tails[-1] > tol and done[g] < len(d):
                counts[g] = min(len(d), done[g] + MORE_MODES)
                grow = True
        if not grow:
            return _Expansion(base=base, resp=resp, modes=tuple(done),
                              sizes=tuple(len(d) for d in groups), tail=tuple(tails))


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


def _interp(x: np.ndarray, u: np.ndarray, F: np.ndarray) -> np.ndarray:
    """Columns of ``F`` (on the grid ``u``) at ``x``, held constant beyond the grid."""
    return np.stack([np.interp(x, u, F[:, j]) for j in range(F.shape[1])], axis=-1)


#: Loss levels (fractions of the initial loss) of the passage-time representation, evenly
#: spaced in ``logit(rho)``: ``log T`` is close to linear in it both where learning starts
#: (``T ~ (1 - rho)``) and where it ends (``T ~ -log rho``). The interpolation error is
#: O(spacing^2): 4e-6 of ``z_hat`` in the readout at this spacing (0.02), measured against
#: a grid four times finer.
_PASSAGE_LOGIT = np.linspace(np.log(1e9), np.log(1e-12), 2400)
_PASSAGE_LEVELS = expit(_PASSAGE_LOGIT)


def passage_times(u: np.ndarray, loss: np.ndarray, levels: np.ndarray,
                  rate: np.ndarray | None = None) -> np.ndarray:
    """First times at which a decreasing ``loss`` falls to ``levels * loss[0]``.

    ``log loss`` is interpolated on the grid ``u``: cubic Hermite if ``rate`` (``-dL/dtau``
    at the grid points; for a gradient flow the squared gradient norm) is given, linear
    otherwise. ``inf`` where the loss does not reach the level on the grid.

    Examples
    --------
    >>> u = np.linspace(0.0, 4.0, 41)
    >>> L = np.exp(-2 * u - u ** 2)
    >>> exact = -1 + np.sqrt(1 + np.log(2.0))             # L = L0 / 2
    >>> t = passage_times(u, L, np.array([0.5, 1e-30]), rate=(2 + 2 * u) * L)
    >>> bool(abs(t[0] - exact) < 1e-6), bool(np.isinf(t[1]))
    (True, True)
    """
    ell = np.log(np.maximum(loss / loss[0], 1e-300))
    drop = np.flatnonzero(np.diff(ell) >= 0)
    last = int(drop[0]) if drop.size else ell.size - 1
    ell, v = ell[: last + 1], u[: last + 1]
    lv = np.log(levels)
    out = np.full(lv.size, np.inf)
    reach = lv >= ell[-1]
    if not reach.any() or ell.size < 2:
        return out
    x = -lv[reach]
    i = np.clip(np.searchsorted(-ell, x) - 1, 0, ell.size - 2)
    h = v[i + 1] - v[i]
    t = (x + ell[i]) / (ell[i] - ell[i + 1])                 # linear guess in the cell
    if rate is not None:
        d = -np.asarray(rate, dtype=float)[: last + 1] / np.maximum(loss[: last + 1],
                                                                   1e-300)
        y0, y1, m0, m1 = ell[i], ell[i + 1], d[i] * h, d[i + 1] * h
        for _ in range(8):                                    # Newton on the cubic
            t2, t3 = t * t, t * t * t
            f = ((2 * t3 - 3 * t2 + 1) * y0 + (t3 - 2 * t2 + t) * m0
                 + (-2 * t3 + 3 * t2) * y1 + (t3 - t2) * m1) + x
            df = ((6 * t2 - 6 * t) * y0 + (3 * t2 - 4 * t + 1) * m0
                  + (-6 * t2 + 6 * t) * y1 + (3 * t2 - 2 * t) * m1)
            t = np.clip(t - f / np.where(df != 0, df, -1e-300), 0.0, 1.0)
    out[reach] = v[i] + t * h
    return out


@dataclass(frozen=True)
class PassageLaw:
    """Law over networks of size ``N`` of the learning curves, in passage times.

    A flow's loss decreases monotonically, so ``z(tau) = z_hat - (z_hat - z_0) r^{1/2}``
    with ``r = L(tau)/L_0``, and ``r(tau) <= rho`` exactly when the passage time
    ``T(rho) <= tau``. For every level ``rho`` (``logit``: ``logit rho``, decreasing),
    ``y = log T(rho)`` and ``z_0`` are expanded to first order in the fluctuation modes,
    so ``(z_0, y)`` is Gaussian: ``z_0 = z0_mean + z0_std xi`` and
    ``y = log_time + slope z0_std xi + cond_std zeta``, with ``xi`` and ``zeta``
    independent standard normals, one ``zeta`` for all levels (which leaves every level's
    law as it is). Each pair ``(xi, zeta)`` is one learning curve (:meth:`curve`).
    Times are those of the unit-amplitude flow.
    """

    logit: np.ndarray
    log_time: np.ndarray
    slope: np.ndarray
    cond_std: np.ndarray
    z0_mean: float
    z0_std: float
    target: float

    def curve(self, xi: float, zeta: float, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Readout and loss at ``tau`` of the network ``(xi, zeta)``."""
        z, L = self.curves(np.array([xi], dtype=float), np.array([zeta], dtype=float), tau)
        return z[0], L[0]

    def curves(self, xi: np.ndarray, zeta: np.ndarray,
               tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Readouts and losses ``(len(xi), len(tau))`` of the networks ``(xi_i, zeta_i)``."""
        xi, zeta = np.asarray(xi, dtype=float), np.asarray(zeta, dtype=float)
        tau = np.asarray(tau, dtype=float)
        e0 = (self.target - (self.z0_mean + self.z0_std * xi))[:, None]
        # one curve per row (contiguous for the interpolation)
        curve = (self.log_time[None, :] + xi[:, None] * (self.slope * self.z0_std)[None, :]
                 + zeta[:, None] * self.cond_std[None, :])
        if not np.all(curve[:, 1:] >= curve[:, :-1]):    # passage times never decrease
            curve = np.maximum.accumulate(curve, axis=1)
        r = expit(_interp_rows(np.log(np.maximum(tau, 1e-300)), curve, self.logit))
        r[:, tau <= 0] = 1.0
        return self.target - e0 * np.sqrt(r), 0.5 * e0 * e0 * r


def _interp_rows(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """``np.interp(x, xp[i], fp)`` for every row ``i`` of ``xp`` (each non-decreasing), as
    one call: each row, shifted to start at 0, is moved past the previous one, so the rows
    joined are one non-decreasing sequence (rounding: a few ulps of the joined range)."""
    lo, hi = xp[:, :1], xp[:, -1:]
    width = float(np.max(hi - lo)) + 1.0
    off = width * np.arange(len(xp))[:, None]
    q = np.clip(x[None, :], lo, hi) - lo + off
    return np.interp(q.ravel(), (xp - lo + off).ravel(),
                     np.tile(fp, len(xp))).reshape(len(xp), x.size)


def _passage_law(logit: np.ndarray, log_time: np.ndarray, a: np.ndarray, dz: np.ndarray,
                 z0: float, target: float) -> PassageLaw:
    """:class:`PassageLaw` from the log passage times ``log_time`` of the mean flow at the
    levels ``logit`` and their responses ``a`` ``(K, n_lev)`` and those ``dz`` ``(K,)`` of
    the initial readout ``z0`` to the fluctuation modes."""
    sz = float(np.sqrt(dz @ dz))
    cov = dz @ a
    var_y = np.sum(a * a, axis=0)
    slope = cov / (sz * sz) if sz > 0 else np.zeros_like(cov)
    csd = np.sqrt(np.maximum(var_y - cov * slope, 0.0))
    return PassageLaw(logit=logit, log_time=log_time, slope=slope, cond_std=csd,
                      z0_mean=float(z0), z0_std=sz, target=float(target))


def _passage_stats(law: PassageLaw, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the readout and the loss under ``law``: a
    two-dimensional Gauss-Hermite quadrature over the curves ``(xi, zeta)``. Returns
    ``(mean, std)``, each ``(len(tau), 2)``: readout, loss.
    """
    zeta, w = _HERMITE
    w = w / w.sum()
    moments = np.zeros((4, tau.size))
    for zi, wi in zip(zeta, w):
        z, L = law.curves(np.full(zeta.size, zi), zeta, tau)
        moments += wi * np.array([w @ z, w @ (z * z), w @ L, w @ (L * L)])
    mean = np.column_stack([moments[0], moments[2]])
    var = np.column_stack([moments[1] - moments[0] ** 2, moments[3] - moments[2] ** 2])
    return mean, np.sqrt(np.maximum(var, 0.0))


def expand(quad: Quadrature, N: int, flows, u: np.ndarray, tau: np.ndarray, *,
           target: float | None = None, levels: tuple[float, ...] = (),
           modes: np.ndarray | None = None) -> dict:
    """Mean and standard deviation over networks of size ``N`` of learning curves.

    ``flows(networks, u)`` returns the curves of (surrogate) networks on the grid ``u``,
    shape ``(len(networks), len(u), n_out)``: the readout in column 0, the loss in
    column 1 and the gradient norm (whose square is ``-dL/dtau``) in column 2. Each network
    learns at its own speed: its curves are first aligned on the time ``T`` at which its
    loss falls to :data:`ALIGN_LEVEL` of its initial value, then expanded to second order in the
    fluctuation modes ``xi_k`` (one standard deviation each, central differences):
    ``log T = log T_0 + sum a_k xi_k + ...`` and ``F(tau) = G(tau T_0 / T; xi)`` with
    ``G(v; xi) = G_0(v) + sum R_k(v) xi_k + ...``. The average over the speed
    ``s = log(T / T_0)``, Gaussian of standard deviation ``|a|``, is taken by Gauss-Hermite
    quadrature; the shape fluctuations orthogonal to ``a`` add their variance.

    Parameters
    ----------
    quad : Quadrature
    N : int
    flows : callable
        ``flows(networks, u) -> (len(networks), len(u), n_out)`` ndarray. With the default
        modes it must be symmetric under swapping ``w`` and ``m`` (as the learning curves
        of a network are): the ``B`` modes are not evaluated (:func:`_expand_modes`).
    u : (n_u,) ndarray
        Fine increasing grid from 0, long enough for the slowest networks to converge.
    tau : (n,) ndarray
        Times of the result.
    target : float, optional
        ``z_hat``: if given, columns 0 and 1 are the readout and the loss of a gradient
        flow, and their moments come from the passage times of the loss levels
        (:class:`PassageLaw`), which follow each network to convergence.
    levels : tuple of float
        Loss levels (fractions of the initial loss) whose crossing times are also
        expanded: ``log T_level`` to first order, Gaussian.
    modes : ndarray, optional
        Fluctuation modes, all evaluated. Default: those of :func:`fluctuation_modes`,
        truncated where :func:`truncation_estimate` is below :data:`TRUNCATION_TOL`.

    Returns
    -------
    dict
        ``"value"`` (the curves at the mean weights, the large-N flow), ``"mean"``,
        ``"std"`` (each ``(n, n_out)``), ``"log_time_std"`` (``|a|``), ``"align_time"``
        (``T_0``), ``"crossings"``: for each of ``levels``, the crossing time at the
        mean weights and the standard deviation of its logarithm, and ``"law"``: the
        :class:`PassageLaw` of the curves (``None`` without ``target``), ``"modes"``: per
        group of modes (``A`` and ``B``, ``C``; one group for explicit ``modes``) the
        number evaluated, the number there are and the estimated share of the variance
        left out.

    Examples
    --------
    >>> q = quadrature(0.5, 3)
    >>> def s0(nets, u):     # w^T R m at every time: mean 0, variance phi_1 / N
    ...     z = [n.w @ np.linalg.solve(np.eye(n.N) - n.W0, n.m) for n in nets]
    ...     return np.array([np.column_stack([np.full(u.size, x), np.exp(-u), np.exp(-u / 2)])
    ...                      for x in z])
    >>> r = expand(q, 400, s0, np.linspace(0, 5, 501), np.array([0.0, 1.0]))
    >>> round(float(r["std"][0, 0] ** 2 * 400), 9), round(float(abs(r["mean"][0, 0])), 9)
    (1.333333333, 0.0)
    """
    marks = np.array([ALIGN_LEVEL, *levels])

    def evaluate(nets):
        F = np.asarray(flows(nets, u), dtype=float)
        out = []
        for f in F:
            law = None
            if target is not None:
                law = passage_times(u, f[:, 1], _PASSAGE_LEVELS,
                                    rate=f[:, 2] ** 2 if np.all(np.isfinite(f[:, 2])) else None)
            out.append((f, passage_times(u, f[:, 1], marks, rate=f[:, 2] ** 2), law))
        return out

    def respond(base, plus, minus, h):
        T0 = base[1][0]
        resp = {"curve": [], "marks": [], "law": [], "dz": []}
        with np.errstate(invalid="ignore", divide="ignore"):
            for (Fp, Tp, Lp), (Fm, Tm, Lm), hk in zip(plus, minus, h):
                if np.isfinite(T0):
                    Gp, Gm = _interp(u * Tp[0] / T0, u, Fp), _interp(u * Tm[0] / T0, u, Fm)
                else:
                    Gp, Gm = Fp, Fm
                resp["curve"].append((Gp - Gm) / (2.0 * hk))
                resp["marks"].append((np.log(Tp) - np.log(Tm)) / (2.0 * hk))
                resp["dz"].append((Fp[0, 0] - Fm[0, 0]) / (2.0 * hk))
                if target is not None:
                    ok = np.isfinite(Lp) & (Lp > 0) & np.isfinite(Lm) & (Lm > 0)
                    resp["law"].append(np.where(ok, (np.log(Lp) - np.log(Lm)) / (2.0 * hk),
                                                np.nan))
        return {key: np.array(v) for key, v in resp.items() if v}

    ex = _expand_modes(quad, N, evaluate, respond, modes=modes)
    return _statistics(ex, u, tau, target, levels)


def _statistics(ex: _Expansion, u: np.ndarray, tau: np.ndarray, target: float | None,
                levels: tuple[float, ...]) -> dict:
    """:func:`expand`'s result from the responses ``ex`` (base data ``(F0, times of
    ALIGN_LEVEL and levels, passage times of _PASSAGE_LEVELS)``; responses ``"curve"``
    (aligned curves), ``"marks"`` (log times of the marks), ``"law"`` (log passage
    times) and ``"dz"`` (initial readout))."""
    F0, times0, law0 = ex.base
    R, slopes = ex.resp["curve"], ex.resp["marks"]
    T0 = times0[0]
    a = slopes[:, 0] if np.isfinite(T0) else np.zeros(len(slopes))
    sigma = float(np.sqrt(a @ a))
    if sigma > 0.0:
        Ra = np.tensordot(a / sigma, R, axes=1)
        perp = np.maximum(np.sum(R * R, axis=0) - Ra * Ra, 0.0)
    else:
        Ra, perp = np.zeros_like(F0), np.sum(R * R, axis=0)
    zeta, w = _HERMITE
    w = w / w.sum()
    mean = np.zeros((tau.size, F0.shape[1]))
    second = np.zeros_like(mean)
    spread = np.zeros_like(mean)
    m = F0.shape[1]
    G = np.concatenate([F0, Ra, perp], axis=1)              # interpolated together
    for zj, wj in zip(zeta, w):
        Gj = _interp(tau * np.exp(-sigma * zj), u, G)
        Fj = Gj[:, :m] + zj * Gj[:, m:2 * m]
        mean += wj * Fj
        second += wj * Fj * Fj
        spread += wj * Gj[:, 2 * m:]
    std = np.sqrt(np.maximum(second - mean * mean, 0.0) + spread)
    law = None
    if target is not None:
        a_law = ex.resp["law"]
        ok = np.isfinite(law0) & (law0 > 0) & np.all(np.isfinite(a_law), axis=0)
        law = _passage_law(_PASSAGE_LOGIT[ok], np.log(law0[ok]), a_law[:, ok],
                           ex.resp["dz"], F0[0, 0], target)
        mean[:, :2], std[:, :2] = _passage_stats(law, tau)
    return {"value": _interp(tau, u, F0), "mean": mean, "std": std, "law": law,
            "log_time_std": sigma, "align_time": T0,
            "modes": tuple(zip(ex.modes, ex.sizes, ex.tail)),
            "crossings": {lev: (float(times0[j + 1]),
                                float(np.sqrt(slopes[:, j + 1] @ slopes[:, j + 1])))
                          for j, lev in enumerate(levels)}}


#: The parameters of a reduced model that the linear response differentiates.
_PARAMS = ("A", "r_w", "r_m", "s0", "aw", "c_a", "G_a", "bm", "c_b", "G_b")


def _params(model) -> dict[str, np.ndarray]:
    """The :data:`_PARAMS` of a :class:`~.reduced.ReducedModel` as float arrays."""
    aw, c_a, G_a, bm, c_b, G_b = model.norm_data
    vals = (model.A, model.r_w, model.r_m, model.s0, aw, c_a, G_a, bm, c_b, G_b)
    return {k: np.asarray(v, dtype=float) for k, v in zip(_PARAMS, vals)}


def _param_tangents(quad: Quadrature, depth: int, modes: np.ndarray
                    ) -> tuple[dict, dict] | None:
    """The parameters of the mean surrogate's reduced model and their derivatives along
    each mode ``(K, ...)`` (central differences of the surrogates' models at
    ``+-h_k``); ``None`` if a perturbed model does not have the mean model's shape."""
    base = _params(instance_model(surrogate_network(quad, *_mean_weights(quad)), depth,
                                  outliers=False))
    nets, steps = _pair_networks(quad, modes)
    ps = [_params(instance_model(net, depth, outliers=False)) for net in nets]
    if any(p[k].shape != base[k].shape for p in ps for k in _PARAMS):
        return None
    d = {k: np.array([(ps[2 * i][k] - ps[2 * i + 1][k]) / (2.0 * h)
                      for i, h in enumerate(steps)]).reshape((len(steps),) + base[k].shape)
         for k in _PARAMS}
    return base, d


def _linearised(C: np.ndarray, dC: np.ndarray, th: dict, dth: dict, zt: float) -> dict:
    """The reduced flow's ``y = (I - A C)^{-1} r_m``, ``x = (I - A^T C^T)^{-1} r_w``,
    ``z = s0 + r_w^T C y`` and ``e = z_hat - z`` at the coordinates ``C`` ``(n, p, q)``,
    and their derivatives along the tangents ``dC`` ``(K, n, p, q)`` with the parameter
    derivatives ``dth`` (one inverse of ``M = I - A C`` per point serves the flow and all
    tangents: ``d y = M^{-1} (d r_m + (dA C + A dC) y)``, and
    ``x = r_w + A^T M^{-T} C^T r_w``)."""
    A, r_w, r_m = th["A"], th["r_w"], th["r_m"]
    dA, dr_w, dr_m = dth["A"], dth["r_w"], dth["r_m"]
    Mi = np.linalg.inv(np.eye(C.shape[2]) - A @ C)               # (n, q, q)
    Mit = np.swapaxes(Mi, 1, 2)
    Ct = np.swapaxes(C, 1, 2)
    Ctr = Ct @ r_w                                               # (n, q)
    y = Mi @ r_m                                                 # (n, q)
    w = (Mit @ Ctr[..., None])[..., 0]                           # (n, q)
    x = r_w + w @ A                                              # A^T w: (n, p)
    z = th["s0"] + np.sum(Ctr * y, axis=-1)
    P = dA[:, None] @ C[None] + A @ dC                           # (K, n, q, q)
    dy = (Mi @ (dr_m[:, None, :, None] + P @ y[..., None]))[..., 0]          # (K, n, q)
    dCtr = np.swapaxes(dC, -1, -2) @ r_w + (Ct @ dr_w[:, None, :, None])[..., 0]
    dw = (Mit @ (dCtr[..., None] + np.swapaxes(P, -1, -2) @ w[..., None]))[..., 0]
    dx = dr_w[:, None, :] + w @ dA + dw @ A                      # (K, n, p)
    dz = dth["s0"][:, None] + np.sum(dCtr * y, axis=-1) + np.sum(Ctr * dy, axis=-1)
    return {"x": x, "y": y, "z": z, "e": zt - z, "dx": dx, "dy": dy, "dz": dz}


#: Step of the central differences of the tangent flows (:func:`_tangent_flow`), in
#: standard deviations of a mode: their O(step^2) error and their rounding (the flows'
#: ~1e-14 over the step) are both ~1e-10 of the responses where the expansion holds. A
#: smaller step adds rounding noise to the shares of the last modes, and the truncation
#: estimate then asks for more of them (1e-5: 15 and 18 modes instead of 12 at g = 0.3,
#: N = 1024). Where the flows are strongly nonlinear in the weights (abrupt learning at
#: g = 0.9, N = 256, outside the validity) this step sees their curvature: the
#: predictions differ from a DOP853 run of the variational equations by 0.7 % (z_hat = 1;
#: 8e-5 at a step of 1e-5) and 12 % (z_hat = 2; 2 % at 1e-5).
TANGENT_STEP = 1e-4


def _tangent_flow(th: dict, dth: dict, zt: float, u: np.ndarray, rtol: float,
                  atol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The reduced flow ``C`` ``(n, p, q)`` of the model ``th`` and its tangents
    ``dC`` ``(K, n, p, q)`` along the parameter derivatives ``dth`` (the solutions
    of the variational equations ``d(dC)/dtau = de x y^T + e dx y^T + e x dy^T`` from
    ``dC = 0``) at the ``n`` distinct times of the grid ``u`` once held, and the index
    ``(len(u),)`` of each time of ``u`` among them.

    The models ``th +- eps dth_k`` (``eps =`` :data:`TANGENT_STEP`) are integrated with
    ``th`` as one stack by Taylor steps (:func:`.taylor.taylor_flow`), so all share one
    step sequence and the differences of their step polynomials,
    ``dC_k = (C(th + eps dth_k) - C(th - eps dth_k)) / (2 eps)``, are the polynomials
    of the tangents (their truncation errors, smooth in the parameters, cancel with
    them). As :func:`~.reduced.integrate_many`, the mean flow is held once
    ``|z_hat - z| <= 10 rtol |z_hat|``, and the tangents with it (the perturbed models
    run to half that threshold, past the mean flow's hold): the times of ``u`` past the
    hold are one time.

    Examples
    --------
    >>> th = {"A": np.zeros((1, 1)), "r_w": np.ones(1), "r_m": np.ones(1),
    ...       "s0": np.zeros(())}     # r_m = s: dC/dtau = (1 - s C) s, C = (1 - e^{-s^2 tau}) / s
    >>> dth = {"A": np.zeros((1, 1, 1)), "r_w": np.zeros((1, 1)), "r_m": np.ones((1, 1)),
    ...        "s0": np.zeros(1)}
    >>> C, dC, index = _tangent_flow(th, dth, 1.0, np.array([0.0, 0.5]), 1e-11, 1e-14)
    >>> exact = 2.0 * np.exp(-0.5) - 1.0                    # dC/ds at s = 1, tau = 0.5
    >>> bool(abs(C[1, 0, 0] - (1 - np.exp(-0.5))) < 1e-12)
    True
    >>> bool(abs(dC[0, 1, 0, 0] - exact) < 1e-9)
    True
    """
    q, p = th["A"].shape
    K = len(dth["s0"])
    if u[-1] <= 0.0:
        return np.zeros((1, p, q)), np.zeros((K, 1, p, q)), np.zeros(u.size, dtype=int)
    # the stack: th, then th + eps dth_k and th - eps dth_k for each k
    shift = TANGENT_STEP * np.concatenate([[0.0], np.tile([1.0, -1.0], K)])
    which = np.concatenate([[0], np.repeat(np.arange(K), 2)])

    def stack(name):
        x, dx = np.asarray(th[name], dtype=float), np.asarray(dth[name], dtype=float)
        return x[None] + shift.reshape((-1,) + (1,) * x.ndim) * dx[which]

    thr = np.full(shift.size, 10.0 * rtol * max(abs(zt), 1e-300))
    thr[1:] *= 0.5
    dense, t_done, _, _ = taylor_flow(stack("A"), stack("r_w"), stack("r_m"), stack("s0"),
                                      np.full(shift.size, float(zt)),
                                      np.arange(shift.size * p * q), False, float(u[-1]),
                                      thr, rtol, atol, MAX_NFEV)
    # the step polynomials of C and of the tangents: (steps, K + 1, order + 1, p q)
    co = dense.coef.reshape(dense.coef.shape[:2] + (shift.size, p * q))
    co = np.ascontiguousarray(np.concatenate(
        [co[:, :, :1], (co[:, :, 1::2] - co[:, :, 2::2]) / (2.0 * TANGENT_STEP)],
        axis=2).transpose(0, 2, 1, 3))
    # held with the mean flow: the times past its hold are one time
    t = np.unique(np.minimum(u, min(float(t_done[0]), float(u[-1]))))
    step = np.clip(np.searchsorted(dense.ts, t, side="right") - 1, 0, len(co) - 1)
    out = np.empty((K + 1, t.size, p * q))
    powers = np.arange(co.shape[2])
    for i in np.unique(step):
        at = np.flatnonzero(step == i)
        x = (t[at] - dense.ts[i]) / dense.scale[i]
        # one small product per model (a single large one is slower where BLAS threads
        # compete for the cores)
        out[:, at[0]:at[-1] + 1] = (x[:, None] ** powers) @ co[i]
    out = out.reshape(K + 1, t.size, p, q)
    return out[0], out[1:], np.minimum(np.arange(u.size), t.size - 1)


def _quad_form_tangent(v: np.ndarray, dv: np.ndarray, G: np.ndarray, dG: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``v^T G v`` ``(n,)`` and its derivatives ``(K, n)``."""
    Gs = G + G.T
    return (np.sum((v @ G) * v, axis=-1),
            np.sum((dv @ Gs) * v, axis=-1) + np.sum((v @ dG) * v, axis=-1))


def _tangent_outputs(C: np.ndarray, dC: np.ndarray, th: dict, dth: dict, zt: float,
                     n_singular: int) -> tuple[np.ndarray, np.ndarray]:
    """Readout, loss, gradient norm and singular values ``F`` ``(n, 3 + n_singular)``
    at the coordinates ``C`` and their derivatives ``dF`` ``(K, n, 3 + n_singular)``
    along the tangents ``dC`` (the gradient norm as
    :meth:`~.reduced.ReducedModel.grad_norms`; ``d s_i = u_i^T dC v_i`` for the singular
    values)."""
    lin = _linearised(C, dC, th, dth, zt)
    e, x, y, dz = lin["e"], lin["x"], lin["y"], lin["dz"]
    Ct = np.swapaxes(C, 1, 2)
    s_, t_ = (Ct @ x[..., None])[..., 0], (C @ y[..., None])[..., 0]
    ds = (np.swapaxes(dC, -1, -2) @ x[..., None])[..., 0] + (Ct @ lin["dx"][..., None])[..., 0]
    dt = (dC @ y[..., None])[..., 0] + (C @ lin["dy"][..., None])[..., 0]
    qa, dqa = _quad_form_tangent(s_, ds, th["G_a"], dth["G_a"])
    qb, dqb = _quad_form_tangent(t_, dt, th["G_b"], dth["G_b"])
    a2 = th["aw"] + 2.0 * (s_ @ th["c_a"]) + qa
    b2 = th["bm"] + 2.0 * (t_ @ th["c_b"]) + qb
    da2 = dth["aw"][:, None] + 2.0 * (ds @ th["c_a"] + dth["c_a"] @ s_.T) + dqa
    db2 = dth["bm"][:, None] + 2.0 * (dt @ th["c_b"] + dth["c_b"] @ t_.T) + dqb
    ab = np.sqrt(np.maximum(a2 * b2, 0.0))
    K, n = dz.shape
    F = np.zeros((n, 3 + n_singular))
    dF = np.zeros((K, n, 3 + n_singular))
    F[:, 0], F[:, 1], F[:, 2] = zt - e, 0.5 * e * e, np.abs(e) * ab
    dF[:, :, 0], dF[:, :, 1] = dz, -e * dz
    with np.errstate(invalid="ignore", divide="ignore"):
        half = np.where(ab > 0, np.abs(e) / (2.0 * ab), 0.0)
    dF[:, :, 2] = -np.sign(e) * dz * ab + half * (da2 * b2 + a2 * db2)
    if C.size and n_singular:
        U, S, Vh = np.linalg.svd(C)
        k = min(n_singular, S.shape[1])
        F[:, 3:3 + k] = S[:, :k]
        dF[:, :, 3:3 + k] = np.sum(U[:, :, :k] * (dC @ np.swapaxes(Vh[:, :k, :], 1, 2)),
                                   axis=-2)
    return F, dF


def _hermite(u: np.ndarray, f: np.ndarray, df: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Cubic Hermite interpolation of the rows of ``f`` (``(K, len(u))``, derivatives
    ``df``) at ``t`` (inside ``[u[0], u[-1]]``)."""
    i = np.clip(np.searchsorted(u, t) - 1, 0, u.size - 2)
    h = u[i + 1] - u[i]
    s = (t - u[i]) / h
    s2, s3 = s * s, s * s * s
    return ((2 * s3 - 3 * s2 + 1) * f[:, i] + (s3 - 2 * s2 + s) * h * df[:, i]
            + (-2 * s3 + 3 * s2) * f[:, i + 1] + (s3 - s2) * h * df[:, i + 1])


def _log_time_responses(u: np.ndarray, F: np.ndarray, dF: np.ndarray, T: np.ndarray,
                        levels: np.ndarray) -> np.ndarray:
    """Derivatives ``(K, len(levels))`` of ``log T`` of the passage times ``T`` of the
    loss (column 1 of ``F``) through ``levels`` times its initial value. With
    ``l = dL / L`` (the derivative of ``log L``) and the decay rate ``kappa =
    |grad|^2 / L`` of ``log L``, ``L(T) = rho L(0)`` gives
    ``dT = (l(T) - l(0)) / kappa(T)``; ``l(T)`` by cubic Hermite interpolation in time
    (``dl/dtau = -2 |grad| d|grad| / L + l kappa``), in the logarithm of the loss as the
    passage times themselves (:func:`passage_times`), ``kappa(T)`` likewise. NaN where
    ``T`` is not finite."""
    out = np.full((dF.shape[0], T.size), np.nan)
    ok = np.isfinite(T) & (T > 0)
    if not ok.any():
        return out
    t = T[ok]
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = F[:, 2] ** 2 / F[:, 1]
        ell = dF[:, :, 1] / F[:, 1]
        dell = -2.0 * F[:, 2] * dF[:, :, 2] / F[:, 1] + ell * kappa
    k_t = _hermite(u, kappa[None], np.gradient(kappa, u)[None], t)[0]
    out[:, ok] = (_hermite(u, ell, dell, t) - ell[:, :1]) / (k_t * t)
    return out


def _tangent_expansion(quad: Quadrature, N: int, req: Request, depth: int, u: np.ndarray,
                       levels: tuple[float, ...] = (), tol: float = TRUNCATION_TOL
                       ) -> _Expansion | None:
    """The responses of :func:`expand` for the surrogate flows of ``req`` (target,
    tolerances, singular values), by the variational equations of the mean surrogate's
    reduced flow instead of central differences of whole flows: one integration of the
    flow and its tangents along the leading fluctuation modes (:func:`_mode_groups`,
    ``B`` mirrored from ``A``, truncated as :func:`_expand_modes`; the derivatives of
    the reduced model's parameters along each mode by central differences of the
    surrogates' models, which cost no integration). ``None`` if a perturbed model has
    another shape than the mean one."""
    groups = _mode_groups(quad, N)
    weight = np.array([2.0, 1.0])
    counts = [min(FIRST_MODES, len(d)) for d in groups]
    marks = np.array([ALIGN_LEVEL, *levels])
    while True:
        modes = np.concatenate([d[:k] for d, k in zip(groups, counts)])
        tangents = _param_tangents(quad, depth, modes)
        if tangents is None:
            return None
        th, dth = tangents
        C, dC, index = _tangent_flow(th, dth, req.zt, u, req.rtol, req.atol)
        F, dF = _tangent_outputs(C, dC, th, dth, req.zt, req.n_singular)
        F, dF = F[index], dF[:, index]
        dF *= np.sqrt(np.repeat(weight, counts))[:, None, None]
        rate = F[:, 2] ** 2
        times0 = passage_times(u, F[:, 1], marks, rate=rate)
        law0 = passage_times(u, F[:, 1], _PASSAGE_LEVELS, rate=rate)
        slopes = _log_time_responses(u, F, dF, times0, marks)
        R = dF.copy()
        if np.isfinite(times0[0]):
            R += np.gradient(F, u, axis=0)[None] * u[None, :, None] * slopes[:, :1, None]
        resp = {"curve": R, "marks": slopes,
                "law": _log_time_responses(u, F, dF, law0, _PASSAGE_LEVELS),
                "dz": dF[:, 0, 0]}
        shares = _shares(resp)
        tails = [truncation_estimate(shares[:counts[0]], len(groups[0])),
                 truncation_estimate(shares[counts[0]:], len(groups[1]))]
        grow = [t > tol and k < len(d) for t, k, d in zip(tails, counts, groups)]
        if not any(grow):
            return _Expansion(base=(F, times0, law0), resp=resp, modes=tuple(counts),
                              sizes=tuple(len(d) for d in groups), tail=tuple(tails))
        counts = [min(len(d), k + MORE_MODES) if gr else k
                  for d, k, gr in zip(groups, counts, grow)]


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
        large, quad, check, r = _expansion(req)
        mean, std = r["mean"], r["std"]
        c, k = req.c, req.n_singular
        status, message = large.status, large.message
        if status is Status.OK and not check.ok:
            status, message = Status.FINITE_SIZE, check.message
        params = dict(large.params, N=int(N), method=self.name, n_nodes=int(quad.t.size),
                      rate_spread=check.rate_spread, edge_ratio=check.edge_ratio,
                      size_spread=check.size_spread,
                      log_time_std=r["log_time_std"],
                      n_modes=int(sum(k for k, _, _ in r["modes"])),
                      truncation=float(max(t for _, _, t in r["modes"])))
        return Prediction(
            tau=req.tau, tau_tilde=self.tau_tilde(req), readout=c * mean[:, 0],
            loss=c * c * mean[:, 1], grad_norm=c * c * mean[:, 2],
            singular_values=mean[:, 3:3 + k], outlier_eigenvalue=large.outlier_eigenvalue,
            readout_std=abs(c) * std[:, 0], loss_std=c * c * std[:, 1],
            singular_values_std=std[:, 3:3 + k], method=self.name, params=params,
            status=status, message=message)



def _expansion(req: Request) -> tuple[Prediction, Quadrature, Validity, dict]:
    """The large-N prediction of ``req``, the quadrature and the validity of its
    expansion, and :func:`expand`'s result for the unit-amplitude flow (its responses
    from the variational equations, :func:`_tangent_expansion`)."""
    large = _reduced_prediction(get_method("ode"), req,
                                lambda d: large_n_model(req.g, d), req.depth)
    depth = int(large.params["depth"])
    quad = quadrature(req.g, depth + 2)
    check = validity(req.g, req.N)
    u = _grid(check.rate_spread, float(req.tt[-1]))
    ex = _tangent_expansion(quad, req.N, req, depth, u)
    if ex is not None:
        r = _statistics(ex, u, req.tt, req.zt, ())
    else:                     # a perturbed chain deflates: central differences of flows
        r = expand(quad, req.N, lambda nets, grid: _outputs(nets, req, depth, grid,
                                                           stride=OUTPUT_STRIDE),
                   u, req.tt, target=req.zt)
    return large, quad, check, r


def sample_readout_std(g: float, target: float, tau, N: int, networks: int, *,
                       draws: int = 400, quantiles=(0.1, 0.5, 0.9), seed: int = 0,
                       input_amp: float = 1.0) -> np.ndarray:
    """Quantiles of the readout's standard deviation *measured on a sample* of
    ``networks`` networks of size ``N``, at every ``tau``, under the finite-N law.

    ``predict(method="finite_n").readout_std`` is the standard deviation over all
    networks. A sample of a few dozen sees little of the tails of the law, and late in
    learning, when only the slowest networks are still away from the target, the spread
    lives in those tails: there the sample standard deviation is typically below the
    population one, and it scatters far more than the Gaussian ``s / sqrt(2 (n - 1))``
    says (its values at different times, from the same networks, move together). This
    draws ``draws`` samples of ``networks`` learning curves from the
    :class:`PassageLaw` of the expansion (``numpy.random.default_rng(seed)``) and returns
    the quantiles of their standard deviations (``ddof=1``).

    Parameters
    ----------
    g : float
        ``0 <= g < 1``.
    target : float
        ``z_hat``.
    tau : array_like
        Non-decreasing learning times ``>= 0``.
    N : int
        Network size (``>= 2``).
    networks : int
        Networks in a sample (``>= 2``).
    draws : int
        Number of samples (``>= 2``).
    quantiles : sequence of float
        Quantiles in ``[0, 1]``.
    seed : int
        Seed of the generator.
    input_amp : float
        Input amplitude (non-zero).

    Returns
    -------
    (len(quantiles), len(tau)) ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from linrnn_theory import theory
    >>> tau = np.linspace(0.0, 0.3, 31)
    >>> lo, med, hi = sample_readout_std(0.8, 0.5, tau, 1024, 64, draws=100)
    >>> pop = theory.predict(g=0.8, target=0.5, tau=tau, method="finite_n", N=1024).readout_std
    >>> bool(np.all(lo <= med) and np.all(med <= hi))
    True
    >>> bool(med[-1] < pop[-1])   # late in learning: a sample misses the slowest networks
    True
    """
    g = _check_large_n("finite_n", g, None)
    target = check_finite_scalar("target", target)
    tau = check_tau(tau)
    N = check_int("N", N, minimum=2)
    networks = check_int("networks", networks, minimum=2)
    draws = check_int("draws", draws, minimum=2)
    c = check_finite_scalar("input_amp", input_amp)
    if c == 0:
        raise ValueError("input_amp must be non-zero")
    q = np.atleast_1d(np.asarray(quantiles, dtype=float))
    if q.ndim != 1 or q.size == 0 or not np.all((q >= 0) & (q <= 1)):
        raise ValueError(f"quantiles must be numbers in [0, 1], got {quantiles!r}")
    req = Request(g=g, target=target, tau=tau, c=c, N=N, n_singular=1, outlier=False)
    law = _expansion(req)[3]["law"]
    rng = np.random.default_rng(seed)
    xi, zeta = rng.standard_normal((2, draws, networks))
    sd = np.empty((draws, tau.size))
    for d in range(draws):
        z = law.curves(xi[d], zeta[d], req.tt)[0]
        sd[d] = abs(c) * z.std(axis=0, ddof=1)
    return np.quantile(sd, q, axis=0)


def _grid(rate_spread: float, t_end: float) -> np.ndarray:
    """Fine grid from 0 past ``t_end`` far enough for the fastest networks (``e^{8 rho}``)."""
    reach = max(float(t_end), 1e-12) * float(np.exp(8.0 * max(rate_spread, 0.05)))
    return np.linspace(0.0, reach, 1201)


def learning_time_spread(g: float, target: float, N: int, rel_loss: float = 0.05,
                         input_amp: float = 1.0, *, own_initial_loss: bool = False
                         ) -> tuple[float, float]:
    """Mean and standard deviation over networks of size ``N`` of the learning time: the
    first ``tau`` at which a network's loss falls below ``rel_loss z_hat^2 / 2`` (the
    paper's convention, as ``TrainResult.converged_epoch``), or below ``rel_loss`` times
    its own initial loss with ``own_initial_loss``. Log-normal: see
    :func:`observables_spread`.

    Parameters
    ----------
    g : float
        ``0 <= g < 1``.
    target : float
        ``z_hat``.
    N : int
        Network size.
    rel_loss : float
        Loss level, a fraction of ``z_hat^2 / 2`` (or of the initial loss).
    input_amp : float
        Input amplitude.
    own_initial_loss : bool
        Measure each network's level against its own initial loss.

    Returns
    -------
    (float, float)

    Examples
    --------
    >>> mean, std = learning_time_spread(0.6, 1.0, 1024)
    >>> round(mean, 3), round(std / mean, 2)
    (0.244, 0.08)
    """
    return observables_spread(g, target, N, rel_loss, input_amp,
                              own_initial_loss=own_initial_loss)["learning_time"]


def slow_fraction(g: float, target: float, N: int, factor: float = 1.5,
                  rel_loss: float = 0.05, input_amp: float = 1.0) -> float:
    """Predicted fraction of networks of size ``N`` whose learning time exceeds ``factor``
    times the large-N one, from the log-normal law of :func:`learning_time_spread`.

    Where :func:`validity` flags ``(g, N)`` the slow networks come from the spectrum of
    ``W0`` itself, which the expansion does not contain: the prediction is then a lower
    bound at best (``validation/finite_n_vs_simulation.py`` measures both).

    Examples
    --------
    >>> f = [slow_fraction(0.8, 1.0, N) for N in (1024, 4096)]
    >>> bool(f[0] > f[1] > 0)
    True
    """
    from scipy.stats import norm

    from .observables import learning_time

    if not factor > 0:
        raise ValueError(f"factor must be > 0, got {factor}")
    mean, std = learning_time_spread(g, target, N, rel_loss, input_amp)
    s2 = float(np.log1p((std / mean) ** 2))
    median = mean / np.sqrt(1.0 + (std / mean) ** 2)
    t_large = learning_time(g, target, rel_loss, input_amp=input_amp)
    if s2 == 0.0:
        return float(factor * t_large < median)
    return float(norm.sf(np.log(factor * t_large / median) / np.sqrt(s2)))


def _log_normal(median: float, s: float) -> tuple[float, float]:
    """Mean and standard deviation of ``median * exp(s Z)``, ``Z`` standard normal."""
    mean = median * np.exp(0.5 * s * s)
    return float(mean), float(mean * np.sqrt(np.expm1(s * s)))


#: The observables of :func:`observables_spread`, in its column order (not the shuffled
#: loss: a surrogate network has no shuffled ``W0`` of its own).
SPREAD_OBSERVABLES = ("learning_time", "dw_norm", "mean_gradient_norm")


def observables_spread(g: float, target: float, N: int, rel_loss: float = 0.05,
                       input_amp: float = 1.0, *, own_initial_loss: bool = False
                       ) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation over networks of size ``N`` of the learning time,
    ``|Delta W|_F`` and the mean gradient norm (:mod:`.observables`), each at the
    network's own learning time.

    Every surrogate network of the first-order expansion (:func:`fluctuation_modes`) is
    integrated to its own learning time ``T`` (all as one ODE, dense output): the first
    ``tau`` with loss below ``rel_loss * z_hat^2 / 2``, the paper's convention and that of
    ``TrainResult.converged_epoch`` (``own_initial_loss``: ``rel_loss`` times the
    network's own initial loss instead). There it gives ``log T``,
    ``|Delta W|_F = |C|_F`` and ``int_0^T |dL/dW| dtau / T``. Each is expanded to first
    order in the modes (central differences): Gaussian of standard deviation
    ``sqrt(sum_k (dQ/dxi_k)^2)``, centred on the large-N value; the learning time is
    log-normal (its logarithm Gaussian, mean ``T_0 e^{s^2/2}``, standard deviation
    ``T_0 e^{s^2/2} (e^{s^2} - 1)^{1/2}``). The O(1/N) shift of the means is not computed.
    Results are cached per arguments.

    The two conventions differ at O(N^-1/2): the initial readout ``w^T R m`` of a network
    moves its initial loss, and with ``own_initial_loss`` the level moves with it (at
    ``g = 0``, ``z_hat = 1`` the two effects then cancel to first order).

    Returns
    -------
    dict
        ``name -> (mean, std)`` for each of :data:`SPREAD_OBSERVABLES`.

    Examples
    --------
    >>> out = observables_spread(0.6, 1.0, 1024)
    >>> from linrnn_theory import theory
    >>> round(out["dw_norm"][0] / theory.dw_norm(0.6, 1.0), 6), out["dw_norm"][1] > 0
    (1.0, True)
    """
    return dict(zip(SPREAD_OBSERVABLES, _spread(float(g), float(target), int(N),
                                                float(rel_loss), float(input_amp),
                                                bool(own_initial_loss))))


@lru_cache(maxsize=256)
def _spread(g: float, target: float, N: int, rel_loss: float, input_amp: float,
            own_initial_loss: bool) -> tuple[tuple[float, float], ...]:
    """:func:`observables_spread` as a tuple of ``(mean, std)`` pairs (cached)."""
    from .observables import learning_time

    c = float(input_amp)
    zt = target / c
    t_large = learning_time(g, zt, rel_loss)
    probe = np.linspace(0.0, 3.0 * t_large, 9)
    depth = int(solve("ode", g, zt, probe, outlier=False, grad_norm=False).params["depth"])
    quad = quadrature(g, depth + 2)
    u = _grid(validity(g, N).rate_spread, 3.0 * t_large)

    def evaluate(nets):
        models = [instance_model(net, depth, outliers=False) for net in nets]
        sols = integrate_many(models, zt, u, with_grad_integral=True, dense=True)
        vals = np.full((len(nets), len(SPREAD_OBSERVABLES)), np.nan)
        for i, (model, sol) in enumerate(zip(models, sols)):
            loss = 0.5 * (zt - sol.readout) ** 2
            ref = loss[0] if own_initial_loss else 0.5 * zt * zt
            T = passage_times(u, loss, np.array([rel_loss * ref / loss[0]]),
                              rate=model.grad_norms(sol.C, zt) ** 2)[0]
            if not np.isfinite(T):
                raise RuntimeError(f"a network of the expansion did not learn to {rel_loss} "
                                   f"of its loss within {u[-1]:.3g} (g = {g}, N = {N})")
            C, gi = sol.dense(T)
            vals[i] = [np.log(T), np.linalg.norm(C), gi / T]
        return list(vals)

    def respond(base, plus, minus, h):
        return {"values": (np.array(plus) - np.array(minus)) / (2.0 * h[:, None])}

    ex = _expand_modes(quad, N, evaluate, respond)
    vals0, slopes = ex.base, ex.resp["values"]
    sd = np.sqrt(np.sum(slopes * slopes, axis=0))
    lt_mean, lt_std = _log_normal(float(np.exp(vals0[0])), float(sd[0]))
    # the flow with amplitude c is the unit flow with target z_hat / c at time c^2 tau
    return ((lt_mean / (c * c), lt_std / (c * c)), (float(vals0[1]), float(sd[1])),
            (float(vals0[2]) * c * c, float(sd[2]) * c * c))
