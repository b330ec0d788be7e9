r"""Fast finite-time simulator: exact Euler dynamics and BPTT in the eigenbasis of ``W0``.

With the real block-diagonal eigendecomposition ``W0 = S D S^{-1}`` (computed once per
network; ``D`` has 1 x 1 blocks for real eigenvalues and 2 x 2 rotation-scaling blocks
``[[alpha, beta], [-beta, alpha]]`` for pairs ``alpha +- i beta``) the Euler propagator
``A = (1 - dt) I + dt W`` becomes ``Ad + dt Uh C Vc^T`` in eigen-coordinates, with
``Ad = (1 - dt) I + dt D``, ``Delta W = U C V^T`` (orthonormal ``U``, ``V``),
``Uh = S^{-1} U`` and ``Vc = S^T V``. One time step costs O(N r) instead of O(N^2)::

    forward   xh_{k+1} = Ad xh_k + dt Uh C (Vc^T xh_k) + dt u_k mh       (x = S xh)
    adjoint   mu_{n+1} = Ad^T mu_n + dt Vc C^T (Uh^T mu_n),  mu_0 = wh   (wh = S^T w)

The eigen-coordinates are stored as complex slots: a pair ``(xh_i, xh_{i+1})`` is the slot
``xh_i + 1j xh_{i+1}``, on which ``Ad`` acts as multiplication by ``c - 1j s`` (``Ad^T``:
by its conjugate), a real eigenvalue has a slot of its own (zero imaginary part), and slot 0
carries the input ``u_k`` (it multiplies the column ``dt mh`` of the update). The real view
of the slots is the coordinate vector (length ``D = 2 (1 + pairs + reals)``) on which every
matrix of the engine acts. The adjoint ``mu_n = (A^T)^n wh`` does not depend on the
readout, so the forward and adjoint recursions run in one loop, and the BPTT adjoint with
errors ``eps_d`` on the decision steps ``d`` is

    lambda_j = sum_{d >= j} eps_d mu_{d - j}.

Several networks (same ``N`` and time grid) are simulated in one loop
(:meth:`BPTTEngine.evaluate_batch`): their forward and adjoint recursions are stacked on a
leading axis (``2 B`` slices). The steps go in blocks of :data:`BLOCK`: the low-rank
coordinates ``h_k`` of a block (``[u_k, Vc^T xh_k]``, resp. ``[0, Uh^T mu_k]``) are read
from the block's first state with one batched matrix product, corrected for the feedback
inside the block through the kernels ``Gamma_n = Rt P^n L`` (``P``: the diagonal ``Ad``,
``L``/``Rt``: the read and write matrices; ``Gamma_n`` from the bases' Markov parameters
``[mh, Uh]^T P^n Vc``, recomputed only when a basis grows), and written back with a
second product; the states then follow by the diagonal recursion alone. Each matrix is
thus streamed once per block instead of once per step. A single network is the batch of
one.

The gradient ``G = dt sum_k lambda_{k+1} x_k^T`` is needed only through

* its projection ``U^T G V = dt sum_k (U^T lambda_{k+1}) (V^T x_k)^T`` (exact; the loop
  computes ``Vc^T xh_k`` and ``Uh^T mu_n`` anyway), and
* a randomised sketch ``G Omega``, ``G^T Omega`` (``Omega``: N x s Gaussian probes) whose
  residual outside ``span(U)``/``span(V)`` reveals new directions (Halko, Martinsson & Tropp
  2011, adaptive range finder). Directions are added until a fresh sketch has no residual
  above ``rtol`` times the estimated ``|G|_F``; the part of ``G`` that is dropped is
  therefore below that tolerance (with high probability).

The dynamics are the same Euler scheme as :func:`.dense.bptt_loss_grad`; only round-off
differs (the eigenvector matrix of a random ``W0`` has condition number ~1e3 at N = 1024,
costing about three digits). Networks whose ``W0`` is (numerically) defective are refused
(:class:`~.engine.EngineRefused`); :func:`linrnn_theory.train` then takes the dense engine
and says so in the run's message, unless the fast engine was asked for by name.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import scipy.linalg as sla

from .._memo import array_cache
from ..network import Network
from ..task import FixedPointTask
from .basis import FactoredDelta, MappedBasis, round_up
from .engine import Engine, EngineRefused, register_engine

__all__ = ["BPTTEngine", "MAX_EIGVEC_COND"]

#: Refuse the eigenbasis (use the dense engine) above this condition number of S.
MAX_EIGVEC_COND = 1e5


def _real_eigenbasis(W0: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]:
    """Real eigenbasis ``S`` (``W0 S = S D``) laid out as complex slots (module docstring).

    Returns ``S`` (N x D) and ``S^{-1}`` (D x N) on the real view of the slots (zero
    columns/rows where a slot has no coordinate: slot 0 and the imaginary part of a real
    eigenvalue's slot), the eigenvalue of each slot (``lam``; 0 in slot 0, the one with
    eigenvector ``Re v + 1j Im v`` for a pair) and the 2-norms of ``S`` and ``S^{-1}``.
    """
    ev, V = np.linalg.eig(W0)
    N = W0.shape[0]
    S = np.empty((N, N))
    pos = np.empty(N, dtype=int)        # column of S -> position in the real view
    lam = [0j]                          # slot 0: the input
    i = 0
    while i < N:
        j = len(lam)
        if abs(ev[i].imag) == 0.0 or i == N - 1:
            S[:, i] = V[:, i].real
            pos[i] = 2 * j
            lam.append(complex(ev[i].real))
            i += 1
            continue
        # conjugate pair (numpy returns them adjacent): columns Re v, Im v, one slot
        S[:, i], S[:, i + 1] = V[:, i].real, V[:, i].imag
        pos[i], pos[i + 1] = 2 * j, 2 * j + 1
        lam.append(complex(ev[i]))
        i += 2
    lu = sla.lu_factor(S)
    Sinv = sla.lu_solve(lu, np.eye(N))
    norms = _norms(S, Sinv)
    D = 2 * len(lam)
    S_view = np.zeros((N, D))
    S_view[:, pos] = S
    Sinv_view = np.zeros((D, N))
    Sinv_view[pos] = Sinv
    return S_view, Sinv_view, np.array(lam), norms


def _norms(S: np.ndarray, Sinv: np.ndarray) -> tuple[float, float]:
    """``|S|_2`` and ``|S^{-1}|_2`` from the singular values of ``S`` alone (``1 /
    sigma_min``; one SVD instead of two, equal to within ``cond(S) eps`` relative);
    infinite if ``S`` is singular or its computed inverse is not finite.

    >>> _norms(np.diag([2.0, 0.5]), np.diag([0.5, 2.0]))
    (2.0, 2.0)
    """
    s = np.linalg.svd(S, compute_uv=False)
    if s[-1] == 0.0 or not np.all(np.isfinite(Sinv)):
        return float(s[0]), float("inf")
    return float(s[0]), float(1.0 / s[-1])


@array_cache(maxsize=3)
def _cached_eigenbasis(W: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]:
    """``_real_eigenbasis`` cached for the last few ``W0`` (a sweep trains one network for
    several targets; the O(N^3) decomposition is then done once)."""
    return _real_eigenbasis(W)


def _eigenbasis(net: Network, dt: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]:
    """``S``, ``S^{-1}``, the forward multipliers ``d`` (``Ad`` in slot form, ``1 - dt + dt
    conj(lam)``; ``d[0] = 1`` keeps the input) and the norms of ``S`` and ``S^{-1}``.

    The decomposition depends on ``W0`` alone, never on how the network was made (its
    ``seed`` or ``g``): the same weights, loaded from a file or drawn again, train to the
    same numbers bit for bit.

    Examples
    --------
    >>> from linrnn_theory import init_network
    >>> S, Sinv, d, norms = _eigenbasis(init_network(N=16, g=0.5, seed=3), 0.5)
    >>> S.shape[0], d.dtype.kind, bool(d[0] == 1.0)
    (16, 'c', True)
    """
    S, Sinv, lam, norms = _cached_eigenbasis(net.W0)
    d = np.empty(lam.size, dtype=complex)
    d.real = 1.0 - dt + dt * lam.real
    d.imag = -dt * lam.imag
    d[0] = 1.0
    return S, Sinv, d, norms


#: Bytes of the stacked read and write matrices per loop (a larger batch is split; the
#: matrices are read once per block, so the limit only bounds the workspace).
BATCH_BYTES = 16 * 1024 * 1024


#: Time steps per block of :meth:`BPTTEngine._propagate` (measured on a shared 2-core
#: machine, N = 256 and 1024: 8 to 16 within noise of each other, 24 slower).
BLOCK = 12

_WORK = threading.local()


def _workspace(T: int, n: int, M: int, K: int) -> tuple[np.ndarray, ...]:
    """Arrays of :meth:`BPTTEngine._propagate` for ``n`` stacked recursions, reused from
    call to call in this thread (fresh pages of a new trajectory buffer cost about as much
    as a tenth of the loop); the matrices come zeroed, the trajectories are overwritten."""
    cache = _WORK.__dict__.setdefault("arrays", {})
    key = (T, n, M, K, BLOCK)
    if key not in cache:
        if len(cache) >= 4:
            cache.pop(next(iter(cache)))
        cache[key] = (np.zeros((n, 2 * M, K)), np.zeros((n, K, 2 * M)),
                      np.zeros((n, 1, M), dtype=complex),
                      np.zeros((T + 1, n, 1, M), dtype=complex), np.empty((n, T, K)),
                      np.zeros((n, (BLOCK - 1) * K, K)),
                      np.empty((n, BLOCK, M), dtype=complex))
    L, Rt, mult, slots, H, G, E = cache[key]
    for a in (L, Rt, mult, G):
        a.fill(0.0)
    return L, Rt, mult, slots, H, G, E


def _blocks(u: np.ndarray) -> list[tuple[int, int]]:
    """Blocks ``[s, t)`` of the time steps, at most :data:`BLOCK` long, each starting
    where the input changes (the input lives in slot 0 and is set at a block's start).

    >>> _blocks(np.array([0.0] * 3 + [1.0] * 20)) == [(0, 3), (3, 3 + BLOCK), (3 + BLOCK, 23)]
    True
    """
    starts = [0] + [k for k in range(1, u.size) if u[k] != u[k - 1]] + [u.size]
    out = []
    for a, b in zip(starts[:-1], starts[1:]):
        out.extend((s, min(s + BLOCK, b)) for s in range(a, b, BLOCK))
    return out


def _chunks(engines: list) -> list[list[int]]:
    """Indices of ``engines`` in groups of one padded rank (a member pays for the largest
    rank of its group) whose stacked matrices fit BATCH_BYTES."""
    out: list[list[int]] = []
    by_rank: dict[int, list[int]] = {}
    for i, e in enumerate(engines):
        by_rank.setdefault(round_up(1 + max(e.U.n, e.V.n), 8), []).append(i)
    for K, idx in sorted(by_rank.items()):
        size = BATCH_BYTES
        for i in idx:
            need = 4 * 8 * 2 * round_up(engines[i].d.size, 16) * K
            if size + need > BATCH_BYTES:
                out.append([])
                size = 0
            out[-1].append(i)
            size += need
    return out


def _lam_apply(Y: np.ndarray, dec: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """``out[i] = sum_d eps_d Y[d - 1 - i]`` (terms with ``d - 1 - i >= 0``).

    With ``Y[n] = Q^T mu_n`` this is ``Q^T lambda_{i+1}`` (the BPTT adjoint from the
    homogeneous one); with ``Y[i]`` rows paired with ``lambda_{i+1}`` it is the weight of
    ``mu_n`` in ``sum_i lambda_{i+1} Y[i]^T`` (the same shifts, read the other way).
    """
    out = np.zeros_like(Y)
    for dstep, e in zip(dec, eps):
        n = int(dstep) - 1
        out[: n + 1] += e * Y[n::-1]
    return out


@register_engine
class BPTTEngine(FactoredDelta, Engine):
    """Gradient descent on the finite-time loss with ``Delta W`` in factored form.

    Parameters
    ----------
    net : Network
    task : FixedPointTask
    mode : {"bptt"}
    rtol : float
        Relative tolerance on the part of the gradient left outside the bases (raised to
        the round-off floor ``10 cond(S)^2 eps`` of the sketch if that is larger).
    n_probes : int
        Columns of the random sketch.
    seed : int
        Seed of the sketch generator (results do not depend on it beyond round-off).

    Raises
    ------
    EngineRefused
        If the eigenvector matrix of ``W0`` is too ill-conditioned (a ``ValueError``).

    Examples
    --------
    >>> from linrnn_theory import init_network, FixedPointTask
    >>> from linrnn_theory.simulation.dense import DenseEngine
    >>> net, task = init_network(N=48, g=0.5, seed=0), FixedPointTask(target=1.0, t_max=20.0)
    >>> fast, dense = BPTTEngine(net, task), DenseEngine(net, task, "bptt")
    >>> for _ in range(3):
    ...     (Lf, _), (Ld, _) = fast.evaluate(), dense.evaluate()
    ...     fast.step(0.05); dense.step(0.05)
    >>> bool(abs(Lf - Ld) < 1e-12 * Ld)
    True

    Several networks in one loop (each gets what it would get alone):

    >>> other = BPTTEngine(init_network(N=48, g=0.3, seed=1), task.with_target(0.5))
    >>> loss, readout = BPTTEngine.evaluate_batch([BPTTEngine(net, task), other])
    >>> bool(abs(loss[0] - BPTTEngine(net, task).evaluate()[0]) < 1e-14), loss.shape
    (True, (2,))
    """

    name = "fast"
    modes = ("bptt",)
    priority = 0
    mode = "bptt"

    @classmethod
    def supports(cls, task, mode: str) -> bool:
        """The finite-time :class:`~linrnn_theory.FixedPointTask`."""
        return mode == "bptt" and isinstance(task, FixedPointTask)

    def __init__(self, net: Network, task: FixedPointTask, mode: str = "bptt", *,
                 rtol: float = 1e-13, n_probes: int = 4, seed: int = 0x5EED):
        if not self.supports(task, mode):
            raise ValueError(f"BPTTEngine trains FixedPointTask in mode 'bptt', got "
                             f"{type(task).__name__} in mode {mode!r}")
        self.net = net
        self.task = task
        self.rtol = rtol
        N = net.N
        try:
            S, Sinv, d, (norm_S, norm_Sinv) = _eigenbasis(net, task.dt)
        except np.linalg.LinAlgError as exc:   # no usable eigendecomposition at all
            raise EngineRefused(f"W0 has no usable eigenbasis ({exc}); use "
                                "engine='dense'") from None
        cond = norm_S * norm_Sinv
        if not np.isfinite(cond) or cond > MAX_EIGVEC_COND:
            raise EngineRefused(f"W0 is numerically defective (eigenvector condition "
                                f"{cond:.2e}); use engine='dense'")
        self.cond = float(cond)
        # states and adjoints pass through S and S^{-1}, so the sketch carries round-off of
        # ~cond(S)^2 eps |G| (measured: 1-1.5 cond^2 eps); directions below ten times that
        # floor are indistinguishable from arithmetic error and are not added
        self.tol = max(rtol, 10.0 * self.cond ** 2 * np.finfo(float).eps)
        self.S, self.Sinv = S, Sinv
        self._live = np.flatnonzero(np.any(S != 0.0, axis=0))   # coordinates S uses
        self.SinvT = np.ascontiguousarray(Sinv.T)
        self.d = d
        self.D = S.shape[1]
        self.mh = Sinv @ (task.input_amp * net.m)
        self.wh = S.T @ net.w
        self.u = task.inputs() / task.input_amp if task.input_amp != 0 else task.inputs()
        self.dec = task.decision_steps()
        # images: U -> (S^{-1} U for propagation, S^T U for the sketch residual),
        #         V -> (S^T V for propagation, S^{-1} V for the sketch residual)
        self.U = MappedBasis(N, lambda v: Sinv @ v, self.tol, apply2=lambda v: S.T @ v,
                             image_dim=self.D)
        self.V = MappedBasis(N, lambda v: S.T @ v, self.tol, apply2=lambda v: Sinv @ v,
                             image_dim=self.D)
        self._norm_S, self._norm_Sinv = norm_S, norm_Sinv
        self.C = np.zeros((0, 0))
        self._rng = np.random.default_rng(seed)
        self.n_probes = int(n_probes)
        self._probes = self._new_probes()
        self._grad_proj = None
        self._gnorm = float("nan")
        self.n_sketch_rounds = 0
        self._phi_key: tuple[int, int] | None = None    # bases of the cached Phi_n
        self._phi = np.zeros((BLOCK - 1, 1, 0))

    def _new_probes(self, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        Om = self._rng.standard_normal((self.net.N, n or self.n_probes))
        return self.S.T @ Om, self.Sinv @ Om          # for x^T Omega and lambda^T Omega

    def batch_key(self) -> tuple:
        """Engines with equal keys run in one loop: ``N`` and the time grid."""
        return (self.net.N, self.task.dt, self.task.n_steps, tuple(self.dec),
                self.u.tobytes())

    # -- the stacked recursions ---------------------------------------------------------
    @classmethod
    def _propagate(cls, engines: Sequence["BPTTEngine"]) -> tuple[np.ndarray, np.ndarray]:
        """Forward states and homogeneous adjoints of every engine, in one loop.

        Returns the real view ``R`` of the slots, ``R[k, b]`` (``b < B``: ``xh_k`` of engine
        ``b``; ``b >= B``: ``mu_k`` of engine ``b - B``), and the products ``H[b, k]`` of
        the state with the read columns (``[u_k, Vc^T xh_k]``, resp. ``[0, Uh^T mu_k]``).

        The time steps go in blocks of at most :data:`BLOCK` (:func:`_blocks`): the reads
        ``h_k = r_k L`` of a block come from its first state and the reads before them
        (``h_{s+i} = (P^i r_s) L + sum_{j < i} h_{s+j} Gamma_{i-1-j}``, ``Gamma_n = Rt P^n
        L`` from :meth:`_gammas`), two matrix products per block instead of two per step;
        the states then follow by the diagonal recursion ``r_{k+1} = P r_k + h_k Rt``.
        """
        B = len(engines)
        e0 = engines[0]
        T, dt = e0.task.n_steps, e0.task.dt
        # sizes rounded up (D to 32, K to 8): the BLAS kernels then meet the zero padding
        # of a smaller member only in whole blocks, which add exact zeros, and a member's
        # numbers do not depend on the batch it is in
        M = round_up(max(e.d.size for e in engines), 16)
        D = 2 * M
        K = round_up(1 + max(max(e.U.n, e.V.n) for e in engines), 8)
        L, Rt, mult, slots, H, G, E = _workspace(T, 2 * B, M, K)
        R = slots.view(float)
        R[0] = 0.0
        for b, e in enumerate(engines):
            p, q, De = e.U.n, e.V.n, e.D
            L[b, 0, 0] = 1.0
            Rt[b, 0, :De] = dt * e.mh
            L[b, :De, 1:1 + q] = e.V.image
            L[B + b, :De, 1:1 + p] = e.U.image
            if p and q:
                Rt[b, 1:1 + q, :De] = dt * (e.U.image @ e.C).T
                Rt[B + b, 1:1 + p, :De] = dt * (e.V.image @ e.C.T).T
            mult[b, 0, :e.d.size] = e.d
            mult[B + b, 0, :e.d.size] = e.d.conj()
            R[0, B + b, 0, :De] = e.wh
            e._gammas(G[b], G[B + b])
        # P^i, i < BLOCK, slot by slot (an elementwise product: the same in any batch)
        powers = np.cumprod(np.concatenate([np.ones_like(mult)[:, None],
                                            np.broadcast_to(mult[:, None],
                                                            (2 * B, BLOCK - 1, 1, M))],
                                           axis=1), axis=1)[:, :, 0]
        u = e0.u
        with np.errstate(over="ignore", invalid="ignore"):
            for s, t in _blocks(u[:T]):
                n = t - s
                R[s, :B, 0, 0] = u[s]
                Eb = E[:, :n]
                np.multiply(powers[:, :n], slots[s], out=Eb)
                Hb = H[:, s:t]
                np.matmul(Eb.view(float), L, out=Hb)
                for i in range(1, n):
                    Hb[:, i] += (Hb[:, :i].reshape(2 * B, 1, i * K)
                                 @ G[:, (BLOCK - 1 - i) * K:])[:, 0]
                F = (Hb @ Rt).view(complex)
                for i in range(n):
                    k = s + i
                    np.multiply(mult, slots[k], out=slots[k + 1])
                    slots[k + 1, :, 0] += F[:, i]
        return R, H

    def _gammas(self, fwd: np.ndarray, adj: np.ndarray) -> None:
        """Write ``Gamma_n = Rt P^n L`` (``n < BLOCK - 1``) of the forward and adjoint
        recursions into ``fwd`` and ``adj`` (``((BLOCK - 1) K, K)``, zeroed, ``n``
        descending).

        With ``Phi_n = [mh, Uh]^T P^n Vc`` (row vectors: ``P`` multiplies the slots of
        ``[mh, Uh]`` by ``d^n``; cached while the bases keep their size) the
        forward ``Gamma_n`` has ``dt Phi_n[0]`` in row 0 and ``dt C^T Phi_n[1:]`` below, the
        adjoint one ``dt C Phi_n[1:]^T`` (``P^T`` is the adjoint's ``P``); column 0 (the
        input slot) is zero, as ``Rt`` has nothing in slot 0.
        """
        p, q = self.U.n, self.V.n
        if not q:
            return
        phi = self._markov()
        K = fwd.shape[1]
        dt = self.task.dt
        f = fwd.reshape(BLOCK - 1, K, K)[::-1]
        a = adj.reshape(BLOCK - 1, K, K)[::-1]
        f[:, 0, 1:1 + q] = dt * phi[:, 0]
        if p:
            f[:, 1:1 + q, 1:1 + q] = dt * (self.C.T @ phi[:, 1:])
            a[:, 1:1 + p, 1:1 + p] = dt * (self.C @ np.swapaxes(phi[:, 1:], 1, 2))

    def _markov(self) -> np.ndarray:
        """``Phi_n = [mh, Uh]^T P^n Vc``, ``n < BLOCK - 1``, ``(BLOCK - 1, 1 + p, q)``
        (recomputed when a basis has grown)."""
        key = (self.U.n, self.V.n)
        if self._phi_key != key:
            left = np.ascontiguousarray(np.column_stack([self.mh, self.U.image]).T)
            right = np.ascontiguousarray(self.V.image.T)
            left, right = left.view(complex), right.view(complex)
            dpow = np.cumprod(np.concatenate([np.ones((1, self.d.size), dtype=complex),
                                              np.broadcast_to(self.d, (BLOCK - 2,
                                                                       self.d.size))]),
                              axis=0)
            prod = (left[None] * dpow[:, None]).reshape(-1, self.d.size) @ right.conj().T
            self._phi = prod.real.reshape(BLOCK - 1, 1 + self.U.n, self.V.n)
            self._phi_key = key
        return self._phi

    @classmethod
    def evaluate_batch(cls, engines: Sequence["BPTTEngine"]) -> tuple[np.ndarray, np.ndarray]:
        """Loss and readout of several engines (same :meth:`batch_key`), one loop for all.

        Each engine ends in the state its own :meth:`evaluate` would leave it in (the
        stacked products pad the smaller ranks with zeros).
        """
        engines = list(engines)
        if len({e.batch_key() for e in engines}) != 1:
            raise ValueError("BPTTEngine.evaluate_batch needs engines of one N and one time "
                             "grid")
        loss, readout = np.empty(len(engines)), np.empty(len(engines))
        for idx in _chunks(engines):
            chunk = [engines[i] for i in idx]
            R, H = cls._propagate(chunk)
            B = len(chunk)
            for b, (i, e) in enumerate(zip(idx, chunk)):
                De, q, p = e.D, e.V.n, e.U.n
                X, Mu = R[:, b, 0, :De], R[:, B + b, 0, :De]
                loss[i], readout[i] = e._finish(X, Mu, H[b, :, 1:1 + q],
                                                H[B + b, :, 1:1 + p])
        return loss, readout

    def _finish(self, X: np.ndarray, Mu: np.ndarray, Sx: np.ndarray, Mu_U: np.ndarray
                ) -> tuple[float, float]:
        """Loss and readout from this engine's trajectories; prepares the gradient."""
        task = self.task
        with np.errstate(over="ignore", invalid="ignore"):
            z = X[self.dec] @ self.wh
            err = z - task.target
            loss = 0.5 * float(np.mean(err ** 2))
            readout = float(np.mean(z))
        self._grad_proj = None
        if not np.isfinite(loss):
            return loss, readout
        T = task.n_steps
        eps = err / task.n_decision
        lam = _LamOp(X[:T], Mu[:T], self.dec, eps, task.dt)
        P = task.dt * (lam.apply(Mu_U[:T]).T @ Sx[:T]) if self.C.size else None
        P = self._extend_bases(lam, P)
        self._grad_proj = P
        self._gnorm = float(np.linalg.norm(P))
        return loss, readout

    def evaluate(self) -> tuple[float, float]:
        """Loss and readout (mean over the decision window) at the current weights."""
        loss, readout = self.evaluate_batch([self])
        return float(loss[0]), float(readout[0])

    def _extend_bases(self, lam: "_LamOp", P: np.ndarray | None) -> np.ndarray:
        """Add directions until the sketched gradient lies in span(U) (x) span(V); returns
        the projected gradient ``U^T G V`` on the final bases (``P``: on the current ones,
        if known).

        The residual of the sketch is first formed in eigen-coordinates, where it costs
        O(N T s); only if the bound ``|S^{-T}| |residual|`` (resp. ``|S|``; the residual
        restricted to the coordinates the maps use) exceeds the tolerance is it mapped
        back (O(N^2 s)) and orthogonalised into new directions.
        """
        probes = self._probes
        for rnd in range(64):
            om_x, om_l = probes
            n_pr = om_x.shape[1]
            Yh = lam.G_times(om_x)              # S^T G Omega
            Zh = lam.GT_times(om_l)             # S^{-1} G^T Omega
            if P is None:
                P = lam.project(self.U.image, self.V.image)
            scale = float(np.linalg.norm(P))
            if self.U.n and self.V.n and scale > 0.0:
                Ry = Yh - self.U.image2 @ (self.U.image.T @ Yh)
                Rz = Zh - self.V.image2 @ (self.V.image.T @ Zh)
                # coordinates that S and S^{-T} map to zero (slot 0, which carries the
                # input in X, and the imaginary parts of real eigenvalues) stay out
                by = self._norm_Sinv * np.linalg.norm(Ry[self._live], axis=0).max()
                bz = self._norm_S * np.linalg.norm(Rz[self._live], axis=0).max()
                if max(by, bz) <= self.tol * scale:
                    return P
            Y = self.SinvT @ Yh
            Z = self.S @ Zh
            scale = max(scale, np.linalg.norm(Y) / np.sqrt(n_pr), np.linalg.norm(Z) / np.sqrt(n_pr))
            if scale == 0.0:
                return P
            ru = self.U.add_columns(Y, scale)
            rv = self.V.add_columns(Z, scale)
            if ru == 0 and rv == 0:
                return P
            p, q = self.U.n, self.V.n
            C = np.zeros((p, q))
            C[: self.C.shape[0], : self.C.shape[1]] = self.C
            self.C = C
            P = None
            self.n_sketch_rounds += 1
            # verify with a fresh sketch; widen it while many directions keep appearing
            busy = max(ru, rv) >= n_pr // 2
            probes = self._new_probes(min(4 * self.n_probes, 2 * n_pr) if busy else None)
        raise RuntimeError("gradient range not captured after 64 sketch rounds")

    def grad_norm(self) -> float:
        """Frobenius norm of the gradient (its projection on the converged bases)."""
        return self._gnorm

    def step(self, lr: float) -> None:
        """One gradient-descent step ``C <- C - lr U^T G V``."""
        self.C = self.C - lr * self._grad_proj
        self._grad_proj = None

    def unstable(self) -> bool:
        """Finite-time mode has no fixed point to lose; divergence shows in the loss."""
        return False


class _LamOp:
    """The gradient ``G = dt sum_k lambda_{k+1} x_k^T`` of one engine, applied without
    forming ``lambda`` (from the homogeneous adjoints ``mu_n``, :func:`_lam_apply`).

    ``X`` and ``Mu`` are the first ``T`` rows (``x_0 .. x_{T-1}``, ``mu_0 .. mu_{T-1}``) in
    eigen-coordinates."""

    def __init__(self, X: np.ndarray, Mu: np.ndarray, dec: np.ndarray, eps: np.ndarray,
                 dt: float):
        self.X, self.Mu, self.dec, self.eps, self.dt = X, Mu, dec, eps, dt

    def lam_times(self, Q: np.ndarray) -> np.ndarray:
        """Rows ``lambda_{i+1}^T Q``, ``i = 0 .. T-1``."""
        return _lam_apply(self.Mu @ Q, self.dec, self.eps)

    def G_times(self, Om: np.ndarray) -> np.ndarray:
        """``dt sum_k lambda_{k+1} (x_k^T Om)`` (eigen-coordinates)."""
        return self.dt * (self.Mu.T @ _lam_apply(self.X @ Om, self.dec, self.eps))

    def GT_times(self, Om: np.ndarray) -> np.ndarray:
        """``dt sum_k x_k (lambda_{k+1}^T Om)`` (eigen-coordinates)."""
        return self.dt * (self.X.T @ self.lam_times(Om))

    def apply(self, Mu_Q: np.ndarray) -> np.ndarray:
        """:meth:`lam_times` from the products ``Mu @ Q`` computed elsewhere."""
        return _lam_apply(Mu_Q, self.dec, self.eps)

    def project(self, U_img: np.ndarray, V_img: np.ndarray) -> np.ndarray:
        """``U^T G V = dt sum_k (Uh^T lambda_{k+1}) (Vc^T x_k)^T``."""
        return self.dt * (self.lam_times(U_img).T @ (self.X @ V_img))
