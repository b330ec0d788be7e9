"""``theory.predict``: one entry point for every theory method, one result type.

The methods themselves (series, ode, instance, exact_g0, and any a user registers) live in
:mod:`.methods`; this front end checks the arguments and dispatches by name.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_finite_scalar, check_int, check_type
from ..network import Network
from .methods import Request, check_tau, get_method, method_names
from .result import Prediction

__all__ = ["predict", "method_names"]


def predict(g: float | None = None, target: float = 1.0, tau=None, method: str = "ode", *,
            order: int = 3, depth: int | None = None, network: Network | None = None,
            N: int | None = None, n_singular: int = 2, outlier: bool | None = None, grad_norm: bool = True,
            input_amp: float = 1.0, tol: float = 1e-9, rtol: float = 1e-11,
            atol: float = 1e-14) -> Prediction:
    """Theory of the fixed-point gradient flow along the learning time ``tau``.

    Parameters
    ----------
    g : float, optional
        Strength of the random initial connectivity, ``0 <= g < 1`` (large-N methods);
        taken from ``network`` for ``method="instance"``.
    target : float
        Target ``z_hat``.
    tau : array_like
        Non-decreasing learning times ``>= 0`` (``lr * epoch``, as in :func:`linrnn_theory.train`).
    method : str
        A registered method (:func:`.methods.method_names`): ``"series"``, ``"ode"``,
        ``"instance"``, ``"exact_g0"``, or one added with
        :func:`.methods.register_method`.
    order : int
        Series order (``3 <= order <= MAX_ORDER``; the readout alone accepts ``>= 1``).
    depth : int, optional
        Chain depth of the reduced ODE; by default increased until converged to ``tol``.
    network : Network, optional
        Required for ``"instance"``; optional for ``"exact_g0"`` (then its random overlap
        ``w^T m`` is included exactly; ``W0`` must be zero).
    N : int, optional
        Network size: required for ``"finite_n"`` (means and standard deviations over
        networks of this size, :mod:`.finite_n`), refused by the other methods.
    n_singular : int
        Number of singular values of ``Delta W`` to return (series: at most 2).
    outlier : bool, optional
        Compute the outlier eigenvalue. Default: yes, except for ``"instance"`` with
        ``N * len(tau) > 20000`` (there every time point costs a dense eigendecomposition;
        pass ``True`` to force it).
    grad_norm : bool
        Compute the gradient norm (set False to save time).
    input_amp : float
        Input amplitude ``c`` (the flow with ``c`` equals the unit flow with target
        ``z_hat / c`` at time ``c^2 tau``, readout scaled by ``c``).
    tol : float
        Convergence tolerance of the automatic depth.
    rtol, atol : float
        Relative and absolute tolerances of the ODE integrator (``atol`` bounds the relative
        accuracy of tiny quantities such as ``sigma_2 = O(tau^3)`` at small ``tau``).

    Returns
    -------
    Prediction

    Raises
    ------
    TypeError
        If ``network`` is not a :class:`~linrnn_theory.Network`.
    ValueError
        For invalid arguments (the message names the argument and the allowed range),
        ``network`` given to a large-N method, ``g`` disagreeing with ``network.g`` for
        ``"instance"``, or ``n_singular > 2`` for the series.

    Examples
    --------
    >>> import numpy as np
    >>> from linrnn_theory import theory
    >>> taus = np.linspace(0, 0.5, 6)
    >>> s = theory.predict(g=0.6, target=1.0, tau=taus, method="series", order=3)
    >>> o = theory.predict(g=0.6, target=1.0, tau=taus, method="ode")
    >>> bool(np.max(np.abs(s.readout[:2] - o.readout[:2])) < 1e-2)
    True
    >>> o.singular_values.shape
    (6, 2)
    """
    m = get_method(method)
    target = check_finite_scalar("target", target)
    if tau is None:
        raise ValueError("tau must be given (an array of learning times)")
    tau = check_tau(tau)
    n_singular = check_int("n_singular", n_singular, minimum=1)
    c = check_finite_scalar("input_amp", input_amp)
    if c == 0:
        raise ValueError("input_amp must be non-zero")
    if network is not None:
        check_type("network", network, Network)
    if N is not None:
        N = check_int("N", N, minimum=2)
        if not m.takes_size:
            raise ValueError(f"N is not used by method={method!r}: the network size is an "
                             "argument of method='finite_n'")
    g_val = m.resolve_g(g, network)
    req = Request(g=g_val, target=target, tau=tau, c=c, order=order, depth=depth,
                  network=network, N=N, n_singular=n_singular, outlier=outlier,
                  grad_norm=grad_norm, tol=tol, rtol=rtol, atol=atol,
                  params={"g": g_val, "target": target, "input_amp": c, "method": method})
    return m.predict(req)
