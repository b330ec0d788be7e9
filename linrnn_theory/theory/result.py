"""The result object of every theory method (twin of :class:`linrnn_theory.TrainResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Prediction"]


@dataclass
class Prediction:
    """Theory prediction along the learning trajectory.

    Field names match :class:`linrnn_theory.TrainResult` (``tau``, ``loss``, ``readout``,
    ``singular_values``, ``grad_norm``) so that theory and simulation can be compared
    directly.

    Attributes
    ----------
    tau : (n,) ndarray
        Learning time (``lr * epoch`` in the simulator).
    tau_tilde : (n,) ndarray
        Rescaled time ``beta^2 tau`` (``beta = 1/(1 - g^2)``; ``tau`` for instances).
    readout, loss : (n,) ndarray
        Fixed-point readout ``z`` and loss ``(z_hat - z)^2 / 2``.
    singular_values : (n, k) ndarray
        Top singular values of ``Delta W`` (the series gives k = 2).
    outlier_eigenvalue : (n,) ndarray
        Largest real eigenvalue of ``W`` outside the bulk of ``W0``; NaN where there is none
        (for ``g > 0`` the outlier leaves the bulk only after a finite learning time).
    grad_norm : (n,) ndarray
        Frobenius norm of ``dL/dW`` (NaN for the series).
    method : str
    params : dict
        ``g``, ``target``, ``order``/``depth``, ``N`` (instances), tolerances.
    status, message : str
        ``"ok"`` or a description of what limited the result.
    """

    tau: np.ndarray
    tau_tilde: np.ndarray
    readout: np.ndarray
    loss: np.ndarray
    singular_values: np.ndarray
    outlier_eigenvalue: np.ndarray
    grad_norm: np.ndarray
    method: str
    params: dict = field(default_factory=dict)
    status: str = "ok"
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dictionary (schema ``linrnn-theory/prediction/1``).

        Examples
        --------
        >>> from linrnn_theory import theory
        >>> p = theory.predict(g=0.5, target=1.0, tau=[0.0, 0.1], method="series")
        >>> p.to_dict()["method"]
        'series'
        """
        def arr(a):
            return [None if not np.isfinite(v) else float(v) for v in np.ravel(a)] \
                if np.ndim(a) == 1 else [arr(r) for r in a]
        return {"schema": "linrnn-theory/prediction/1", "method": self.method,
                "params": self.params, "status": self.status, "message": self.message,
                "tau": arr(self.tau), "tau_tilde": arr(self.tau_tilde),
                "readout": arr(self.readout), "loss": arr(self.loss),
                "singular_values": arr(self.singular_values),
                "outlier_eigenvalue": arr(self.outlier_eigenvalue),
                "grad_norm": arr(self.grad_norm)}
