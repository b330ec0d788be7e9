"""The result object of every theory method (twin of :class:`linrnn_theory.TrainResult`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..trajectory import LearningTrajectory

__all__ = ["Prediction"]


@dataclass(kw_only=True, repr=False)
class Prediction(LearningTrajectory):
    """Theory prediction along the learning trajectory: a predicted
    :class:`~linrnn_theory.trajectory.LearningTrajectory`.

    ``tau``, ``readout``, ``loss``, ``singular_values`` (one row per ``tau``) and
    ``grad_norm`` line up with those of :class:`linrnn_theory.TrainResult` on the same
    ``tau`` grid.

    Attributes
    ----------
    tau : (n,) ndarray
        Learning time (``lr * epoch`` in the simulator).
    tau_tilde : (n,) ndarray
        Rescaled time ``beta^2 tau`` (``beta = 1/(1 - g^2)``; ``tau`` for instances).
    readout, loss : (n,) ndarray
        Fixed-point readout ``z`` and loss ``(z_hat - z)^2 / 2``.
    singular_values : (n, k) ndarray
        Top singular values of ``Delta W`` (the series gives k <= 2).
    outlier_eigenvalue : (n,) ndarray
        Largest real eigenvalue of ``W`` outside the bulk of ``W0``; NaN where there is none
        (for ``g > 0`` the outlier leaves the bulk only after a finite learning time).
    grad_norm : (n,) ndarray
        Frobenius norm of ``dL/dW`` (NaN for the series).
    method : str
    params : dict
        ``g``, ``target``, ``order``/``depth``, ``N`` (instances), tolerances.
    status : Status
        ``"ok"``, or what limited the result (``"unconverged"``, ``"beyond_radius"``).
    message : str
        The reason, in words.
    readout_std, loss_std, singular_values_std : ndarray or None
        Standard deviations over networks of the given size, for methods that predict
        them (``None`` otherwise).

    Examples
    --------
    >>> from linrnn_theory import theory
    >>> theory.predict(g=0.5, target=1.0, tau=[0.0, 0.1], method="series")
    Prediction(status='ok', n=2, tau=[0, 0.1], loss=0.5 -> 0.342, method='series', g=0.5, target=1.0)
    """

    schema: ClassVar[str] = "linrnn-theory/prediction/2"
    array_fields: ClassVar[tuple[str, ...]] = LearningTrajectory.array_fields + (
        "tau_tilde", "outlier_eigenvalue", "readout_std", "loss_std", "singular_values_std")

    tau_tilde: np.ndarray
    outlier_eigenvalue: np.ndarray
    method: str
    readout_std: np.ndarray | None = None
    loss_std: np.ndarray | None = None
    singular_values_std: np.ndarray | None = None

    @property
    def depth(self) -> int | None:
        """Chain depth of the reduced model used (``None`` for methods without one)."""
        return self.params.get("depth")
