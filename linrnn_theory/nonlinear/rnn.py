"""Discrete-time tanh RNN with a hand-written, exact backpropagation through time.

Model (docs/paper.md section 2, Schuessler et al., NeurIPS 2020, eq. 1 with phi = tanh)::

    x[0]   = 0
    x[t+1] = (1 - dt) x[t] + dt (W tanh(x[t]) + W_in u[t]),      t = 0 .. T-1
    z[t]   = W_out^T tanh(x[t+1])                                 t = 0 .. T-1

so the output ``z[t]`` is read from the state *after* the input ``u[t]`` has entered; a
trial of ``T`` input steps gives ``T`` outputs and uses every input. No bias, no noise.

Loss (``M = sum(mask)``; the mask holds non-negative weights, normally 0/1)::

    L = 1/(2 M) * sum_{t, b, o} mask[t, b, o] (z[t, b, o] - target[t, b, o])^2

i.e. one half of the mean squared error over the masked (time, trial, output) entries.

Arrays are laid out ``(time, batch, channel)``. Internally each time slice is a
``(batch, N)`` row block, so one Euler step is one ``(B, N + n_in) x (N + n_in, N)`` GEMM
(rates and inputs side by side, see :class:`BPTTWorkspace`), one backward step one
``(B, N + n_out) x (N + n_out, N)`` GEMM, and all three weight gradients come from a
single large GEMM over the ``(T + 1) B`` rows after the time loop. The batch can be split
over threads (``n_threads``).

Gradients (``a[t] = dL/dx[t]``, rows, ``G[t] = 1 - tanh(x[t])^2``, ``lam = 1 - dt``,
``E[t] = mask (z - target) / M``)::

    a[T+1] = 0
    a[t]   = lam a[t+1] + G[t] * (E[t-1] W_out^T + dt a[t+1] W),   t = T .. 1
    dL/dW     = dt sum_t a[t+1]^T tanh(x[t])
    dL/dW_in  = dt sum_t a[t+1]^T u[t]
    dL/dW_out = sum_t tanh(x[t+1])^T E[t]
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from .._blas import limit_blas_threads
from .._checks import check_int, check_range

__all__ = [
    "RNNParams", "init_params", "BPTTWorkspace", "simulate", "loss", "loss_and_grad",
    "limit_blas_threads",
]


@dataclass(frozen=True, eq=False)
class RNNParams:
    """Weights of a tanh RNN (the three trained matrices).

    Parameters
    ----------
    W_in : (N, n_in) ndarray
        Input weights; column ``k`` is the input vector of channel ``k``.
    W : (N, N) ndarray
        Recurrent weights.
    W_out : (N, n_out) ndarray
        Output weights; ``z = W_out^T tanh(x)``.

    Notes
    -----
    The dataclass is frozen but the arrays are not: the optimiser updates them in place.
    Use :meth:`copy` to snapshot.

    Examples
    --------
    >>> import numpy as np
    >>> p = RNNParams(np.ones((4, 1)), np.zeros((4, 4)), np.ones((4, 2)))
    >>> p.N, p.n_in, p.n_out
    (4, 1, 2)
    """

    W_in: np.ndarray
    W: np.ndarray
    W_out: np.ndarray

    def __post_init__(self) -> None:
        for name in ("W_in", "W", "W_out"):
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.ndim != 2:
                raise ValueError(f"{name} must be a 2-D numpy array")
        N = self.W.shape[0]
        if self.W.shape != (N, N):
            raise ValueError(f"W must be square, got shape {self.W.shape}")
        if self.W_in.shape[0] != N or self.W_out.shape[0] != N:
            raise ValueError(
                f"W_in and W_out must have N = {N} rows, got {self.W_in.shape} and "
                f"{self.W_out.shape}")
        if not (self.W_in.dtype == self.W.dtype == self.W_out.dtype):
            raise ValueError("W_in, W and W_out must share one dtype")
        if self.W.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.W.dtype}")

    @property
    def N(self) -> int:
        """Number of neurons."""
        return self.W.shape[0]

    @property
    def n_in(self) -> int:
        """Number of input channels."""
        return self.W_in.shape[1]

    @property
    def n_out(self) -> int:
        """Number of output channels."""
        return self.W_out.shape[1]

    @property
    def dtype(self) -> np.dtype:
        """Floating-point type of all three matrices."""
        return self.W.dtype

    def arrays(self) -> list[np.ndarray]:
        """The three matrices ``[W_in, W, W_out]`` (views, not copies).

        Examples
        --------
        >>> [a.shape for a in init_params(4, 1, 2, g=1.0, seed=0).arrays()]
        [(4, 1), (4, 4), (4, 2)]
        """
        return [self.W_in, self.W, self.W_out]

    def copy(self) -> "RNNParams":
        """Deep copy.

        Examples
        --------
        >>> p = init_params(4, 1, 1, g=1.0, seed=0)
        >>> q = p.copy(); q.W[:] = 0.0
        >>> bool(p.W.any())
        True
        """
        return RNNParams(self.W_in.copy(), self.W.copy(), self.W_out.copy())

    def replace_W(self, W: np.ndarray) -> "RNNParams":
        """Same input/output weights (shared, not copied) with another recurrent matrix.

        Examples
        --------
        >>> import numpy as np
        >>> p = init_params(4, 1, 1, g=1.0, seed=0)
        >>> q = p.replace_W(np.zeros((4, 4)))
        >>> q.W_in is p.W_in, bool(q.W.any())
        (True, False)
        """
        return RNNParams(self.W_in, np.asarray(W, dtype=self.dtype), self.W_out)

    def astype(self, dtype) -> "RNNParams":
        """Copy cast to ``dtype`` (float32 or float64).

        Examples
        --------
        >>> init_params(4, 1, 1, g=1.0, seed=0).astype("float32").dtype
        dtype('float32')
        """
        return RNNParams(self.W_in.astype(dtype), self.W.astype(dtype), self.W_out.astype(dtype))

    def all_finite(self) -> bool:
        """True when no entry is NaN or infinite.

        Examples
        --------
        >>> p = init_params(4, 1, 1, g=1.0, seed=0)
        >>> p.all_finite(), p.replace_W(p.W * float("nan")).all_finite()
        (True, False)
        """
        return all(bool(np.isfinite(a).all()) for a in self.arrays())


def init_params(N: int, n_in: int, n_out: int, g: float, seed: int | np.random.Generator,
                dtype=np.float64) -> RNNParams:
    """Random initial weights with the paper's scaling conventions.

    ``W0 = g J`` with ``J_ij ~ N(0, 1/N)``; the input columns are independent Gaussian
    directions scaled to norm ``sqrt(N)``, the output columns independent Gaussian
    directions scaled to norm ``1/sqrt(N)`` (docs/paper.md section 2). One
    :class:`numpy.random.Generator` draws, in this order, ``J``, the input directions and the
    output directions, so the same ``seed`` gives the same ``J`` (and the same in/out
    vectors) for every ``g``.

    Parameters
    ----------
    N, n_in, n_out : int
        Neurons, input channels, output channels.
    g : float
        Strength of the random initial connectivity (``>= 0``).
    seed : int or numpy.random.Generator
        Seed of the generator (or the generator itself).
    dtype : {numpy.float64, numpy.float32}
        Floating-point type of the returned weights (drawn in float64 then cast).

    Returns
    -------
    RNNParams

    Examples
    --------
    >>> import numpy as np
    >>> p = init_params(N=100, n_in=2, n_out=1, g=1.5, seed=0)
    >>> np.round(np.linalg.norm(p.W_in, axis=0) ** 2), round(float(np.linalg.norm(p.W_out)) ** 2, 6)
    (array([100., 100.]), 0.01)
    >>> q = init_params(N=100, n_in=2, n_out=1, g=0.5, seed=0)
    >>> np.allclose(p.W / 1.5, q.W / 0.5)
    True
    """
    N = check_int("N", N, minimum=2)
    n_in = check_int("n_in", n_in, minimum=1)
    n_out = check_int("n_out", n_out, minimum=1)
    g = check_range("g", g, 0.0, np.inf)
    dtype = _check_dtype(dtype)
    if isinstance(seed, np.random.Generator):
        rng = seed
    else:
        rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    J = rng.standard_normal((N, N)) / np.sqrt(N)
    W_in = rng.standard_normal((N, n_in))
    W_in *= np.sqrt(N) / np.linalg.norm(W_in, axis=0)
    W_out = rng.standard_normal((N, n_out))
    W_out *= (1.0 / np.sqrt(N)) / np.linalg.norm(W_out, axis=0)
    return RNNParams(W_in.astype(dtype), (g * J).astype(dtype), W_out.astype(dtype))


def _check_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be numpy.float32 or numpy.float64, got {dtype!r}")
    return dt


class BPTTWorkspace:
    """Preallocated buffers for one problem size ``(T, B, N, n_in, n_out)`` and dtype.

    Reusing a workspace across epochs avoids allocating ~3 arrays of ``(T+1) B N`` entries
    per gradient evaluation. With ``n_threads > 1`` the batch is split into that many
    chunks, each simulated (forward and backward) by its own Python thread with its own
    buffers; numpy releases the GIL inside BLAS and ufunc loops, so the chunks run in
    parallel on several cores. Trials are independent, so the result equals the
    single-threaded one up to floating-point summation order. A workspace must not be
    used by two calls at the same time.

    Layout (for speed): the rates are stored next to the inputs, ``RU[t] = [r[t] | u[t]]``
    (``B x (N + n_in)``), and the adjoints next to the output errors,
    ``AE[t] = [a[t] | E[t-2]]`` (``B x (N + n_out)``). One GEMM per step then gives the
    recurrent plus input drive (forward) or the back-propagated plus injected error
    (backward), and one large GEMM after the loop gives all three weight gradients.

    Parameters
    ----------
    T, B, N, n_in, n_out : int
        Time steps, trials per batch, neurons, input and output channels.
    dtype : {numpy.float64, numpy.float32}
    n_threads : int
        Batch-parallel threads (at most ``B``).

    Examples
    --------
    >>> ws = BPTTWorkspace(T=10, B=4, N=8, n_in=1, n_out=2)
    >>> ws.fits(10, 4, 8, 1, 2, np.float64)
    True
    """

    def __init__(self, T: int, B: int, N: int, n_in: int, n_out: int, dtype=np.float64,
                 n_threads: int = 1) -> None:
        self.T = check_int("T", T, minimum=1)
        self.B = check_int("B", B, minimum=1)
        self.N = check_int("N", N, minimum=1)
        self.n_in = check_int("n_in", n_in, minimum=1)
        self.n_out = check_int("n_out", n_out, minimum=1)
        self.dtype = _check_dtype(dtype)
        self.n_threads = min(check_int("n_threads", n_threads, minimum=1), self.B)
        if self.n_threads > 1:
            edges = np.linspace(0, self.B, self.n_threads + 1).round().astype(int)
            self.chunks = [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
            self.parts = [BPTTWorkspace(T, b - a, N, n_in, n_out, dtype)
                          for a, b in self.chunks]
            self._pool = ThreadPoolExecutor(max_workers=self.n_threads - 1,
                                            thread_name_prefix="bptt")
            return
        T, B = self.T, self.B
        self.X = np.zeros((T + 1, B, N), self.dtype)        # states; later G = 1 - r^2
        self.RU = np.zeros((T + 1, B, N + n_in), self.dtype)  # [r[t] | u[t]]
        self.AE = np.zeros((T + 2, B, N + n_out), self.dtype)  # [a[t] | E[t-2]]
        self.tmp = np.empty((B, N), self.dtype)
        self.R = self.RU[:, :, :N]                          # views
        self.A = self.AE[:, :, :N]
        # per-step views created once (indexing inside the time loop costs ~0.2 us each)
        self.Xs = list(self.X)
        self.RUs = list(self.RU)
        self.Rs = list(self.R)
        self.AEs = list(self.AE)
        self.As = list(self.A)

    @classmethod
    def like(cls, params: "RNNParams", T: int, B: int, n_threads: int = 1) -> "BPTTWorkspace":
        """Workspace for ``params`` (its N, n_in, n_out and dtype) and ``T x B`` trials.

        Examples
        --------
        >>> ws = BPTTWorkspace.like(init_params(8, 2, 1, g=1.0, seed=0), T=5, B=3)
        >>> ws.RU.shape, ws.AE.shape
        ((6, 3, 10), (7, 3, 9))
        """
        return cls(T, B, params.N, params.n_in, params.n_out, params.dtype, n_threads)

    def fits(self, T: int, B: int, N: int, n_in: int, n_out: int, dtype) -> bool:
        """True when the buffers match the problem size and dtype."""
        return ((T, B, N, n_in, n_out) == (self.T, self.B, self.N, self.n_in, self.n_out)
                and np.dtype(dtype) == self.dtype)

    def map_chunks(self, fn: Callable, *arrays: np.ndarray) -> list:
        """``[fn(ws_k, *(a[:, b0:b1] for a in arrays)) for each chunk k]``, in parallel.

        The calling thread works on the first chunk while the pool handles the others.

        Examples
        --------
        >>> ws = BPTTWorkspace(T=2, B=5, N=4, n_in=1, n_out=1, n_threads=2)
        >>> ws.map_chunks(lambda w, x: x.shape, np.zeros((2, 5, 1)))
        [(2, 2, 1), (2, 3, 1)]
        """
        def sub(k: int) -> list:
            a, b = self.chunks[k]
            return [np.ascontiguousarray(x[:, a:b]) for x in arrays]

        futures = [self._pool.submit(fn, self.parts[k], *sub(k))
                   for k in range(1, self.n_threads)]
        first = fn(self.parts[0], *sub(0))
        return [first] + [f.result() for f in futures]


def _prepare(params: RNNParams, u, dt: float, workspace: BPTTWorkspace | None,
             n_threads: int = 1):
    if not isinstance(params, RNNParams):
        raise ValueError("params must be an RNNParams instance")
    dt = check_range("dt", dt, 0.0, 1.0, lo_open=True)
    u = np.asarray(u)
    if u.ndim != 3 or u.shape[2] != params.n_in:
        raise ValueError(
            f"u must have shape (T, B, n_in={params.n_in}), got {u.shape}")
    T, B, _ = u.shape
    if T < 1 or B < 1:
        raise ValueError(f"u must have at least one time step and one trial, got {u.shape}")
    u = np.ascontiguousarray(u, dtype=params.dtype)
    if workspace is None or not workspace.fits(T, B, params.N, params.n_in, params.n_out,
                                               params.dtype):
        workspace = BPTTWorkspace.like(params, T, B, n_threads)
    return u, dt, workspace


def _forward(params: RNNParams, u: np.ndarray, dt: float, ws: BPTTWorkspace) -> None:
    """Fill ``ws.X[0..T]`` and ``ws.RU[0..T]`` (in place; single-chunk workspace)."""
    T = u.shape[0]
    N = params.N
    lam = 1.0 - dt
    X, Xs, RUs, Rs, tmp = ws.X, ws.Xs, ws.RUs, ws.Rs, ws.tmp
    X[0] = 0.0
    ws.RU[0, :, :N] = 0.0
    ws.RU[:T, :, N:] = u
    ws.RU[T, :, N:] = 0.0
    # [r | u] @ W_f = dt (W r + W_in u) in row layout
    W_f = np.empty((N + params.n_in, N), params.dtype)
    np.multiply(params.W.T, dt, out=W_f[:N])
    np.multiply(params.W_in.T, dt, out=W_f[N:])
    matmul, multiply, tanh = np.matmul, np.multiply, np.tanh
    for t in range(T):
        xn = Xs[t + 1]
        matmul(RUs[t], W_f, out=tmp)
        if lam != 0.0:
            multiply(Xs[t], lam, out=xn)
            xn += tmp
        else:
            xn[...] = tmp
        tanh(xn, out=Rs[t + 1])


def _check_targets(target, mask, T: int, B: int, n_out: int, dtype):
    target = np.asarray(target)
    mask = np.asarray(mask)
    shape = (T, B, n_out)
    if target.shape != shape:
        raise ValueError(f"target must have shape {shape}, got {target.shape}")
    if mask.shape != shape:
        raise ValueError(f"mask must have shape {shape}, got {mask.shape}")
    mask = np.ascontiguousarray(mask, dtype=dtype)
    if not np.all(mask >= 0):
        raise ValueError("mask must be non-negative")
    M = float(mask.sum(dtype=np.float64))
    if M <= 0:
        raise ValueError("mask must select at least one entry (sum(mask) > 0)")
    return np.ascontiguousarray(target, dtype=dtype), mask, M


class Rollout(NamedTuple):
    """States ``x`` (T+1, B, N), rates ``r = tanh(x)`` (T+1, B, N), outputs ``z`` (T, B, n_out).

    Examples
    --------
    >>> import numpy as np
    >>> simulate(init_params(4, 1, 1, g=1.0, seed=0), np.ones((3, 2, 1)))._fields
    ('x', 'r', 'z')
    """

    x: np.ndarray
    r: np.ndarray
    z: np.ndarray


def simulate(params: RNNParams, u, dt: float = 0.5) -> Rollout:
    """Run the network on a batch of input sequences.

    Parameters
    ----------
    params : RNNParams
    u : (T, B, n_in) array_like
        Inputs; ``u[t]`` drives the step ``x[t] -> x[t+1]``.
    dt : float
        Euler step in units of the neuronal time constant, ``0 < dt <= 1``.

    Returns
    -------
    Rollout
        ``x[0] = 0``; ``z[t] = W_out^T tanh(x[t+1])``.

    Examples
    --------
    >>> import numpy as np
    >>> p = init_params(N=16, n_in=1, n_out=1, g=0.0, seed=0)
    >>> traj = simulate(p, np.ones((5, 2, 1)), dt=0.5)
    >>> traj.x.shape, traj.z.shape
    ((6, 2, 16), (5, 2, 1))
    >>> np.allclose(traj.x[1], 0.5 * p.W_in[:, 0])   # x[1] = dt W_in u[0]
    True
    """
    u, dt, ws = _prepare(params, u, dt, None)
    with np.errstate(over="ignore", invalid="ignore"):
        _forward(params, u, dt, ws)
    T, B, _ = u.shape
    z = (ws.R[1:].reshape(T * B, params.N) @ params.W_out).reshape(T, B, params.n_out)
    return Rollout(ws.X.copy(), np.ascontiguousarray(ws.R), z)


def _loss_chunk(params: RNNParams, dt: float, M: float, ws: BPTTWorkspace, u: np.ndarray,
                target: np.ndarray, mask: np.ndarray) -> float:
    """``1/(2M) sum mask (z - target)^2`` over one chunk of trials."""
    T, B, _ = u.shape
    _forward(params, u, dt, ws)
    z = ws.R[1:].reshape(T * B, params.N) @ params.W_out
    err = z.reshape(T, B, params.n_out) - target
    return 0.5 * float(np.sum(mask * err * err, dtype=np.float64)) / M


def loss(params: RNNParams, u, target, mask, dt: float = 0.5, *,
         workspace: BPTTWorkspace | None = None, n_threads: int = 1) -> float:
    """Masked mean-squared-error loss ``L = 1/(2 sum(mask)) sum mask (z - target)^2``.

    Parameters
    ----------
    params : RNNParams
    u : (T, B, n_in) array_like
    target, mask : (T, B, n_out) array_like
        Target outputs and non-negative weights (0/1 selects the counted entries).
    dt : float
    workspace : BPTTWorkspace, optional
        Buffers to reuse (its ``n_threads`` then applies).
    n_threads : int
        Batch-parallel threads when no fitting workspace is given.

    Returns
    -------
    float
        ``inf`` if the output overflowed (weights of absurd size; the caller decides).

    Examples
    --------
    >>> import numpy as np
    >>> p = init_params(N=8, n_in=1, n_out=1, g=0.0, seed=0)
    >>> p.W_out[:] = 0.0                      # zero output: L = mean(target^2) / 2
    >>> loss(p, np.zeros((3, 2, 1)), np.ones((3, 2, 1)), np.ones((3, 2, 1)))
    0.5
    """
    u, dt, ws = _prepare(params, u, dt, workspace, n_threads)
    T, B, _ = u.shape
    target, mask, M = _check_targets(target, mask, T, B, params.n_out, params.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        if ws.n_threads == 1:
            L = _loss_chunk(params, dt, M, ws, u, target, mask)
        else:
            L = sum(ws.map_chunks(lambda w, *a: _loss_chunk(params, dt, M, w, *a),
                                  u, target, mask))
    return L if np.isfinite(L) else float("inf")


def _loss_grad_chunk(params: RNNParams, dt: float, M: float, ws: BPTTWorkspace,
                     u: np.ndarray, target: np.ndarray, mask: np.ndarray):
    """Loss part and gradients of one chunk of trials (normalised by the global M)."""
    T, B, n_in = u.shape
    N, n_out = params.N, params.n_out
    lam = 1.0 - dt
    TB = T * B
    X, Xs, AE, AEs, As, tmp = ws.X, ws.Xs, ws.AE, ws.AEs, ws.As, ws.tmp
    _forward(params, u, dt, ws)
    diff = (ws.R[1:].reshape(TB, N) @ params.W_out).reshape(T, B, n_out)
    diff -= target                       # z - target
    err = mask * diff
    L = 0.5 * float(np.sum(err * diff, dtype=np.float64)) / M
    err /= M                             # E = dL/dz = mask (z - target) / M
    # AE[t] = [a[t] | E[t-2]]; a[T+1] = 0 and E[-1] = 0
    AE[2:, :, N:] = err
    AE[:2, :, N:] = 0.0
    AE[T + 1, :, :N] = 0.0
    # G = 1 - r^2, stored in X (the states are not needed any more)
    np.multiply(ws.R, ws.R, out=X)
    np.subtract(1.0, X, out=X)
    # [a[t+1] | E[t-1]] @ W_b = dt a[t+1] W + E[t-1] W_out^T
    W_b = np.empty((N + n_out, N), params.dtype)
    np.multiply(params.W, dt, out=W_b[:N])
    W_b[N:] = params.W_out.T
    matmul, multiply = np.matmul, np.multiply
    for t in range(T, 0, -1):
        at = As[t]
        matmul(AEs[t + 1], W_b, out=tmp)
        tmp *= Xs[t]
        if lam != 0.0:
            multiply(As[t + 1], lam, out=at)
            at += tmp
        else:
            at[...] = tmp
    # one GEMM for all gradients: sum_t AE[t+1]^T RU[t] =
    #   [[ sum a[t+1]^T r[t],  sum a[t+1]^T u[t] ],
    #    [ sum E[t-1]^T r[t],  (unused)          ]]
    full = AE[1:].reshape((T + 1) * B, N + n_out).T @ ws.RU.reshape((T + 1) * B, N + n_in)
    full[:N] *= dt
    return L, full[:N, N:], full[:N, :N], full[N:, :N].T


def loss_and_grad(params: RNNParams, u, target, mask, dt: float = 0.5, *,
                  workspace: BPTTWorkspace | None = None,
                  n_threads: int = 1) -> tuple[float, RNNParams]:
    """Loss and its exact gradient with respect to ``W_in``, ``W`` and ``W_out`` (BPTT).

    The recursion is given in the module docstring; the gradient is exact for the
    discrete-time model (checked against central finite differences in the tests).

    Parameters
    ----------
    params : RNNParams
    u : (T, B, n_in) array_like
    target, mask : (T, B, n_out) array_like
    dt : float
    workspace : BPTTWorkspace, optional
        Buffers to reuse (allocated when missing or of the wrong size); its
        ``n_threads`` sets the batch-parallel threads.
    n_threads : int
        Batch-parallel threads when no fitting workspace is given.

    Returns
    -------
    loss : float
    grads : RNNParams
        Gradients in the layout and dtype of ``params`` (fresh arrays).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> p = init_params(N=8, n_in=1, n_out=1, g=1.0, seed=0)
    >>> u, y, m = rng.normal(size=(6, 2, 1)), rng.normal(size=(6, 2, 1)), np.ones((6, 2, 1))
    >>> L, gr = loss_and_grad(p, u, y, m)
    >>> h = 1e-6; E = np.zeros((8, 8)); E[2, 3] = h
    >>> fd = (loss(p.replace_W(p.W + E), u, y, m) - loss(p.replace_W(p.W - E), u, y, m)) / (2 * h)
    >>> bool(abs(fd - gr.W[2, 3]) < 1e-8)
    True
    """
    u, dt, ws = _prepare(params, u, dt, workspace, n_threads)
    T, B, _ = u.shape
    target, mask, M = _check_targets(target, mask, T, B, params.n_out, params.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        if ws.n_threads == 1:
            L, g_in, g_W, g_out = _loss_grad_chunk(params, dt, M, ws, u, target, mask)
        else:
            parts = ws.map_chunks(lambda w, *a: _loss_grad_chunk(params, dt, M, w, *a),
                                  u, target, mask)
            L, g_in, g_W, g_out = parts[0]
            for Lk, gi, gw, go in parts[1:]:
                L += Lk
                g_in += gi
                g_W += gw
                g_out += go
    return L, RNNParams(g_in, g_W, g_out)
