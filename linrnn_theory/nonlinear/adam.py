"""Adam optimiser (Kingma & Ba, ICLR 2015, Algorithm 1), written for in-place numpy updates.

For every parameter array ``p`` with gradient ``g`` at step ``t = 1, 2, ...``::

    m <- beta1 m + (1 - beta1) g
    v <- beta2 v + (1 - beta2) g^2
    p <- p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

with the standard defaults ``beta1 = 0.9``, ``beta2 = 0.999``, ``eps = 1e-8`` (``eps`` is
added to the bias-corrected ``sqrt(v_hat)``, as in the paper and in PyTorch).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .._checks import check_positive, check_range

__all__ = ["adam_update", "Adam"]


def adam_update(param, grad, m, v, t: int, lr: float, beta1: float = 0.9, beta2: float = 0.999,
                eps: float = 1e-8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Adam step as a pure function (returns new arrays, inputs untouched).

    Parameters
    ----------
    param, grad, m, v : array_like
        Parameter, its gradient, first and second moment estimates (same shape).
    t : int
        Index of this step, starting at 1 (used for the bias correction).
    lr, beta1, beta2, eps : float
        Learning rate and Adam hyper-parameters.

    Returns
    -------
    param, m, v : ndarray
        Updated parameter and moments.

    Examples
    --------
    The first step moves every entry by ``lr`` against the sign of its gradient:

    >>> import numpy as np
    >>> p, m, v = adam_update(np.array([1.0, 1.0]), np.array([0.5, -2.0]), np.zeros(2),
    ...                       np.zeros(2), t=1, lr=0.1)
    >>> np.round(p, 6)
    array([0.9, 1.1])
    """
    if int(t) < 1:
        raise ValueError(f"t must be >= 1, got {t}")
    param, grad = np.asarray(param, dtype=float), np.asarray(grad, dtype=float)
    m = beta1 * np.asarray(m, dtype=float) + (1 - beta1) * grad
    v = beta2 * np.asarray(v, dtype=float) + (1 - beta2) * grad ** 2
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    return param - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


class Adam:
    """Adam with state held as arrays; :meth:`step` updates the parameters in place.

    Parameters
    ----------
    params : sequence of ndarray
        The arrays to optimise (only their shapes/dtypes are read here).
    lr : float
        Learning rate.
    beta1, beta2 : float
        Decay rates of the moment estimates, in ``[0, 1)``.
    eps : float
        Added to ``sqrt(v_hat)``.

    Attributes
    ----------
    m, v : list of ndarray
        First and second moment estimates, one per parameter.
    t : int
        Number of steps taken.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([3.0])
    >>> opt = Adam([x], lr=0.5)
    >>> for _ in range(200):
    ...     opt.step([x], [2 * x])          # minimise x^2
    >>> bool(abs(x[0]) < 0.1)
    True
    """

    def __init__(self, params: Sequence[np.ndarray], lr: float, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8) -> None:
        self.lr = check_positive("lr", lr)
        self.beta1 = check_range("beta1", beta1, 0.0, 1.0, hi_open=True)
        self.beta2 = check_range("beta2", beta2, 0.0, 1.0, hi_open=True)
        self.eps = check_positive("eps", eps, strict=False)
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self._buf = [np.empty_like(p) for p in params]
        self.t = 0

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> None:
        """Apply one update ``params <- params - lr * m_hat / (sqrt(v_hat) + eps)`` in place.

        Examples
        --------
        >>> import numpy as np
        >>> x = np.array([1.0, -1.0])
        >>> Adam([x], lr=0.1).step([x], [np.array([3.0, -0.2])])
        >>> np.round(x, 6)
        array([ 0.9, -0.9])
        """
        if len(params) != len(self.m) or len(grads) != len(self.m):
            raise ValueError(f"params and grads must hold {len(self.m)} arrays each")
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        bc1 = 1.0 - b1 ** self.t
        sqrt_bc2 = np.sqrt(1.0 - b2 ** self.t)
        step_size = self.lr / bc1
        for p, g, m, v, buf in zip(params, grads, self.m, self.v, self._buf):
            if p.shape != m.shape or g.shape != m.shape:
                raise ValueError(f"shape mismatch: param {p.shape}, grad {g.shape}, "
                                 f"state {m.shape}")
            m *= b1
            np.multiply(g, 1.0 - b1, out=buf)
            m += buf
            v *= b2
            np.multiply(g, g, out=buf)
            buf *= 1.0 - b2
            v += buf
            np.sqrt(v, out=buf)
            buf /= sqrt_bc2
            buf += self.eps
            np.divide(m, buf, out=buf)
            buf *= step_size
            p -= buf
