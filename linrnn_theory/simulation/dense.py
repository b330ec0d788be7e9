"""Plain dense reference implementations (the baselines the fast paths are checked against).

* :func:`linear_bptt`: the Euler scheme of :mod:`linrnn_theory.task` run forward with
  dense matrix-vector products, and back-propagation through time for ``dL/dW``, for any
  input sequence, initial state, targets and mask; :func:`bptt_loss_grad` applies it to a
  :class:`~linrnn_theory.task.Task`.
* :func:`fixed_point_loss_grad`: ``z = w^T (I - W)^{-1} m`` with a dense LU solve and the
  closed-form gradient ``dL/dW = -(z_hat - z) a b^T``, ``a = (I - W)^{-T} w``,
  ``b = (I - W)^{-1} m``.
* :func:`gradient_flow`: the fixed-point gradient flow ``dW/dtau = (z_hat - z) a b^T``
  integrated for all ``N^2`` entries of ``Delta W`` (scipy DOP853): the reference the
  reduced ODEs and closed forms of :mod:`linrnn_theory.theory` are checked against.

Both cost O(N^2 T) or O(N^3) per call and do nothing clever on purpose.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from ..network import Network
from ..task import FixedPointTask, Task
from .engine import Engine, register_engine

__all__ = ["euler_states", "linear_bptt", "bptt_loss", "bptt_loss_grad", "fixed_point_loss_grad",
           "fixed_point_readout", "gradient_flow"]


def euler_states(W: np.ndarray, net: Network, task: Task) -> np.ndarray:
    """States ``x_0 .. x_T`` of the Euler scheme, shape ``(T + 1, N)``.

    Examples
    --------
    >>> from linrnn_theory import init_network, FixedPointTask
    >>> net = init_network(N=8, g=0.0, seed=0)
    >>> task = FixedPointTask(target=1.0, t_max=4.0)
    >>> euler_states(net.W0, net, task).shape
    (9, 8)
    """
    return _states(W, net.m, task.inputs(), task.dt, task.initial_state(net.m))


def _states(W, m, u, dt, x0):
    T, N = u.shape[0], W.shape[0]
    A = (1.0 - dt) * np.eye(N) + dt * W
    X = np.zeros((T + 1, N))
    if x0 is not None:
        X[0] = x0
    for k in range(T):
        X[k + 1] = A @ X[k] + (dt * u[k]) * m
    return X


def bptt_loss(W: np.ndarray, net: Network, task: Task) -> float:
    """Finite-time loss only (forward pass; no gradient).

    Examples
    --------
    >>> from linrnn_theory import init_network, FixedPointTask
    >>> net = init_network(N=8, g=0.3, seed=1)
    >>> task = FixedPointTask(target=1.0)
    >>> bptt_loss(net.W0, net, task) == bptt_loss_grad(net.W0, net, task)[0]
    True
    """
    with np.errstate(over="ignore", invalid="ignore"):
        y = euler_states(W, net, task)[1:] @ net.w
        mk = task.mask()
        return 0.5 * float(np.sum(mk * (y - task.targets()) ** 2)) / float(np.sum(mk))


def bptt_loss_grad(W: np.ndarray, net: Network, task: Task) -> tuple[float, np.ndarray, float]:
    """Loss, exact gradient ``dL/dW`` and readout of a task at finite time (dense BPTT).

    :func:`linear_bptt` with the task's inputs, targets, mask and initial state.

    Returns
    -------
    loss : float
    grad : (N, N) ndarray
    readout : float
        ``task.readout`` of the output trace (for :class:`~linrnn_theory.FixedPointTask`:
        the mean of ``z_k`` over the decision window).

    Examples
    --------
    >>> from linrnn_theory import init_network, FixedPointTask
    >>> net = init_network(N=8, g=0.3, seed=1)
    >>> loss, grad, z = bptt_loss_grad(net.W0, net, FixedPointTask(target=1.0))
    >>> grad.shape
    (8, 8)
    """
    loss, grad, y = linear_bptt(W, net.m, net.w, task.inputs(), task.targets(), task.mask(),
                                task.dt, x0=task.initial_state(net.m))
    return loss, grad, task.readout(y)


def linear_bptt(W: np.ndarray, m: np.ndarray, w: np.ndarray, u: np.ndarray,
                target: np.ndarray, mask: np.ndarray, dt: float,
                x0: np.ndarray | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """Loss, exact gradient ``dL/dW`` and output trace of a linear RNN (dense BPTT).

    Parameters
    ----------
    W : (N, N) ndarray
    m, w : (N,) ndarray
        Input and output vectors.
    u : (T,) ndarray
        Inputs ``u_0 .. u_{T-1}``.
    target, mask : (T,) ndarray
        Targets and non-negative weights of the outputs ``z_0 .. z_{T-1}``
        (``sum(mask) > 0``).
    dt : float
    x0 : (N,) ndarray, optional
        Initial state (default zero). The cosine task uses ``x0 = m`` and ``u = 0``.

    Returns
    -------
    loss : float
        ``1/2 sum_k mask_k (z_k - zhat_k)^2 / sum_k mask_k`` (inf or NaN, without a
        warning, if the dynamics overflow).
    grad : (N, N) ndarray
    z : (T,) ndarray
        Outputs ``z_k = w^T x_{k+1}``, ``k = 0 .. T-1`` (the state after each step).

    Examples
    --------
    >>> from linrnn_theory import CosineTask
    >>> from linrnn_theory.simulation.cosine import cosine_network
    >>> task = CosineTask(dt=0.5, t_max=4.0, period=2.0)
    >>> W0, m = cosine_network(8, 0.0, seed=0)
    >>> L, G, z = linear_bptt(W0, m, m / 8, task.inputs(), task.targets(), task.mask(),
    ...                       task.dt, x0=m)
    >>> z.shape, G.shape, round(float(z[0]), 12)         # W0 = 0: z_0 = (1 - dt) w^T m
    ((8,), (8, 8), 0.5)
    """
    T = u.shape[0]
    N = W.shape[0]
    # an unstable W overflows to inf/NaN; callers detect that from the returned loss
    with np.errstate(over="ignore", invalid="ignore"):
        X = _states(W, m, u, dt, x0)
        A = (1.0 - dt) * np.eye(N) + dt * W
        z = X[1:] @ w
        err = z - target
        M = float(np.sum(mask))
        loss = 0.5 * float(np.sum(mask * err * err)) / M
        eps = mask * err / M                      # eps[k - 1] belongs to z_k
        lam = np.zeros((T + 1, N))
        lam[T] = eps[T - 1] * w
        At = A.T
        for k in range(T - 1, 0, -1):
            lam[k] = At @ lam[k + 1] + eps[k - 1] * w
        grad = dt * (lam[1:].T @ X[:-1])
    return loss, grad, z


def fixed_point_readout(W: np.ndarray, net: Network, task: FixedPointTask) -> float:
    """Readout at the fixed point, ``input_amp * w^T (I - W)^{-1} m`` (dense LU).

    Examples
    --------
    >>> import numpy as np
    >>> from linrnn_theory import Network, FixedPointTask
    >>> net = Network(W0=np.zeros((2, 2)), m=[1.0, 0.0], w=[1.0, 0.0])
    >>> fixed_point_readout(np.diag([0.5, 0.0]), net, FixedPointTask(target=1.0))
    2.0
    """
    b = sla.solve(np.eye(net.N) - W, net.m)
    return float(task.input_amp * (net.w @ b))


def fixed_point_loss_grad(W: np.ndarray, net: Network, task: FixedPointTask
                          ) -> tuple[float, np.ndarray, float]:
    """Loss, exact gradient and readout in the fixed-point limit (dense LU per call).

    ``L = 1/2 (z_hat - z)^2`` with ``z = c w^T (I - W)^{-1} m`` (``c = input_amp``) and
    ``dL/dW = -(z_hat - z) c a b^T``, ``a = (I - W)^{-T} w``, ``b = (I - W)^{-1} m``.

    Examples
    --------
    >>> from linrnn_theory import init_network, FixedPointTask
    >>> net = init_network(N=8, g=0.3, seed=1)
    >>> loss, grad, z = fixed_point_loss_grad(net.W0, net, FixedPointTask(target=1.0))
    >>> bool(abs(loss - 0.5 * (1 - z) ** 2) < 1e-15)
    True
    """
    lu = sla.lu_factor(np.eye(net.N) - W)
    b = sla.lu_solve(lu, net.m)
    a = sla.lu_solve(lu, net.w, trans=1)
    c = task.input_amp
    z = c * float(net.w @ b)
    e = task.target - z
    return 0.5 * e * e, -(e * c) * np.outer(a, b), z


def gradient_flow(net: Network, target: float, tau, rtol: float = 1e-11,
                  atol: float = 1e-16) -> tuple[np.ndarray, int]:
    """Fixed-point gradient flow of the full ``N x N`` weight change.

    Integrates ``dDelta W/dtau = (z_hat - z) a b^T`` (``a = (I - W)^{-T} w``,
    ``b = (I - W)^{-1} m``, ``W = W0 + Delta W``, ``Delta W(0) = 0``) with scipy's DOP853,
    one dense LU of ``I - W`` per right-hand side: O(N^3) per evaluation and nothing
    clever, so that it can serve as the reference for the reduced ODEs.

    Parameters
    ----------
    net : Network
    target : float
        ``z_hat``.
    tau : array_like
        Increasing learning times, starting at or after 0, where ``Delta W`` is returned.
    rtol, atol : float
        Tolerances of the integrator (``atol`` far below the O(1/N) entries of ``Delta W``).

    Returns
    -------
    (dW, nfev) : ``Delta W`` at each ``tau``, shape ``(len(tau), N, N)``, and the number of
    right-hand-side evaluations.

    Raises
    ------
    RuntimeError
        If the integrator fails (e.g. ``I - W`` becomes singular).

    Examples
    --------
    >>> from linrnn_theory import init_network
    >>> net = init_network(N=6, g=0.0, seed=0)
    >>> dW, nfev = gradient_flow(net, 1.0, [0.0, 0.5])
    >>> dW.shape, bool(np.all(dW[0] == 0)), int(np.linalg.matrix_rank(dW[1]))
    ((2, 6, 6), True, 2)
    """
    from scipy.integrate import solve_ivp

    tau = np.asarray(tau, dtype=float)
    n = net.N
    eye = np.eye(n)
    W0, m, w = net.W0, net.m, net.w

    def rhs(_t, s):
        lu = sla.lu_factor(eye - W0 - s.reshape(n, n), check_finite=False)
        b = sla.lu_solve(lu, m)
        a = sla.lu_solve(lu, w, trans=1)
        return ((target - w @ b) * np.outer(a, b)).ravel()

    sol = solve_ivp(rhs, (0.0, float(tau[-1])), np.zeros(n * n), method="DOP853",
                    t_eval=tau, rtol=rtol, atol=atol)
    if sol.status != 0:
        raise RuntimeError(f"gradient flow integration failed: {sol.message}")
    return sol.y.T.reshape(tau.size, n, n), int(sol.nfev)


@register_engine
class DenseEngine(Engine):
    """Gradient descent with dense weights: the baseline for tests and benchmarks, and the
    engine for every task that has no fast one (registered as ``"dense"``).

    Parameters
    ----------
    net : Network
    task : Task
        Any task in bptt mode; a :class:`~linrnn_theory.FixedPointTask` also in fixed-point
        mode.
    mode : {"bptt", "fixed_point"}

    Examples
    --------
    >>> from linrnn_theory import init_network, FixedPointTask
    >>> eng = DenseEngine(init_network(N=16, g=0.5, seed=0), FixedPointTask(target=1.0), "bptt")
    >>> loss, z = eng.evaluate(); eng.step(0.05)
    >>> eng.singular_values(2).shape
    (2,)
    """

    name = "dense"
    modes = ("bptt", "fixed_point")
    priority = 100

    @classmethod
    def supports(cls, task: Task, mode: str) -> bool:
        """Any task in bptt mode; the fixed-point limit only for the fixed-point task."""
        return mode in task.modes and (mode == "bptt" or isinstance(task, FixedPointTask))

    def __init__(self, net: Network, task: Task, mode: str = "bptt"):
        if not self.supports(task, mode):
            raise ValueError(f"the dense engine cannot train {type(task).__name__} in mode "
                             f"{mode!r}")
        if mode == "fixed_point":
            net.check_stable()
        self.mode = mode
        self.net = net
        self.task = task
        self.W = np.array(net.W0, dtype=np.float64)
        self._fn = bptt_loss_grad if mode == "bptt" else fixed_point_loss_grad
        self._grad = None

    def evaluate(self) -> tuple[float, float]:
        """Loss and readout at the current weights (prepares the gradient)."""
        loss, self._grad, z = self._fn(self.W, self.net, self.task)
        return float(loss), float(z)

    def grad_norm(self) -> float:
        """Frobenius norm of the gradient at the last evaluation."""
        with np.errstate(over="ignore", invalid="ignore"):
            return float(np.linalg.norm(self._grad))

    def step(self, lr: float) -> None:
        """One gradient-descent step."""
        self.W -= lr * self._grad
        self._grad = None

    def singular_values(self, k: int) -> np.ndarray:
        """Top ``k`` singular values of ``Delta W`` (full SVD, O(N^3))."""
        s = np.linalg.svd(self.W - self.net.W0, compute_uv=False)
        out = np.zeros(k)
        out[: min(k, s.size)] = s[:k]
        return out

    def weights(self) -> np.ndarray:
        """Dense ``W``."""
        return self.W.copy()

    def unstable(self) -> bool:
        """Fixed-point mode: True if ``det(I - W)`` has changed sign relative to ``I - W0``."""
        if self.mode != "fixed_point":
            return False
        s, _ = np.linalg.slogdet(np.eye(self.net.N) - self.W)
        s0, _ = np.linalg.slogdet(np.eye(self.net.N) - self.net.W0)
        return bool(s * s0 <= 0)
