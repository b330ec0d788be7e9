"""Plain gradient descent on the recurrent weights, with divergence detection.

:func:`train` returns a :class:`TrainResult` whose field names (``tau``, ``loss``,
``readout``, ``singular_values`` ...) match those of :class:`linrnn_theory.theory.Prediction`,
so simulation and theory can be put side by side without glue code.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ._checks import check_int, check_positive
from ._checks import check_type as _check_type
from .network import Network
from .simulation.engine import MODES, make_engine, normalise_mode
from .task import Task
from .trajectory import N_SINGULAR, LearningTrajectory, Status

__all__ = ["TrainResult", "train", "MODES"]


@dataclass(kw_only=True, repr=False)
class TrainResult(LearningTrajectory):
    """Outcome of :func:`train`: a simulated :class:`~linrnn_theory.trajectory.LearningTrajectory`.

    Attributes
    ----------
    tau : (n,) ndarray
        Learning time ``lr * epoch`` of each evaluated epoch.
    loss, readout, grad_norm : (n,) ndarray
        Loss, readout and Frobenius norm of ``dL/dW`` *before* that epoch's update. The
        readout is the mean of ``z`` over the decision window (bptt) or the fixed-point
        readout.
    singular_values : (n, k) ndarray
        Top ``k`` singular values of ``Delta W = W - W0`` before each epoch's update; one
        row per ``tau``, as in :class:`~linrnn_theory.theory.Prediction`. Rows of epochs
        that were not recorded (``record_every > 1``) are NaN.
    record_epochs : (r,) ndarray of int
        Epochs at which ``singular_values`` (and ``eigenvalues``) were recorded.
    eigenvalues : (r, N) complex ndarray or None
        Eigenvalues of ``W`` at the recorded epochs, if requested.
    W : (N, N) ndarray or None
        Weights after the last update that was applied (``None`` when read back from a
        file written without them).
    status : Status
        ``"ok"`` (ran every epoch), ``"converged"`` (stopped at ``stop_rel_loss``) or
        ``"diverged"``.
    stop_epoch : int
        Number of epochs evaluated (for "diverged": the epoch at which divergence was
        detected).
    message : str
        Human-readable reason for the status.
    converged_epoch : int or None
        First epoch with ``loss < conv_rel * L0`` (``None`` if never).
    params : dict
        Parameters of the run (N, g, seed, lr, epochs, mode, engine, L0, task; ``target``
        for the fixed-point task; ``engine_notes`` if the first-choice engine refused
        the network).
    """

    schema: ClassVar[str] = "linrnn-theory/run/2"
    array_fields: ClassVar[tuple[str, ...]] = LearningTrajectory.array_fields + (
        "W", "eigenvalues")
    int_fields: ClassVar[tuple[str, ...]] = ("record_epochs",)

    record_epochs: np.ndarray
    stop_epoch: int
    converged_epoch: int | None = None
    W: np.ndarray | None = None
    eigenvalues: np.ndarray | None = None

    @property
    def L0(self) -> float:
        """Loss of a silent network (``z_hat^2 / 2`` for the fixed-point task)."""
        return float(self.params["L0"])

    @property
    def recorded_singular_values(self) -> np.ndarray:
        """The rows of ``singular_values`` that were recorded, ``(len(record_epochs), k)``."""
        return self.singular_values[self.record_epochs]

    def to_dict(self, include_weights: bool = False) -> dict[str, Any]:
        """JSON-serialisable dictionary (schema in ``docs/formats.md``); NaN is ``null``.

        Examples
        --------
        >>> from linrnn_theory import init_network, FixedPointTask, train, TrainResult
        >>> run = train(init_network(N=8, g=0.3, seed=0), FixedPointTask(1.0), lr=0.1,
        ...             epochs=3, mode="fixed_point", record_every=2)
        >>> d = run.to_dict()
        >>> d["schema"], d["status"], "W" in d
        ('linrnn-theory/run/2', 'ok', False)
        >>> back = TrainResult.from_dict(d)
        >>> bool(np.array_equal(back.singular_values, run.singular_values, equal_nan=True))
        True
        """
        d = super().to_dict()
        if not include_weights:
            d.pop("W")
        return d

    def to_json(self, include_weights: bool = False) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(include_weights), indent=1, allow_nan=False)

    def save(self, path, include_weights: bool = True):
        """Write :meth:`to_json` (with the weights by default) to ``path`` atomically."""
        from ._io import atomic_write_text
        return atomic_write_text(path, self.to_json(include_weights))


def train(net: Network, task: Task, lr: float, epochs: int, mode: str = "bptt", *,
          engine: str | None = None, n_singular: int = N_SINGULAR, record_every: int = 1,
          record_eigenvalues: bool = False, stop_rel_loss: float | None = None,
          conv_rel: float = 0.05, stability_check: str = "det", diverge_factor: float = 1e6,
          progress: bool = False) -> TrainResult:
    """Train ``W`` by plain gradient descent on a task.

    Parameters
    ----------
    net : Network
    task : Task
        :class:`~linrnn_theory.FixedPointTask` (the paper's linear task),
        :class:`~linrnn_theory.CosineTask` (the autonomous cosine; bptt mode only), or any
        :class:`~linrnn_theory.task.Task`.
    lr : float
        Learning rate (> 0). The learning time after ``e`` epochs is ``tau = lr * e``.
    epochs : int
        Number of gradient steps (>= 1).
    mode : {"bptt", "fixed_point"}
        Finite-time task (exact Euler dynamics and BPTT) or its ``t_max -> infinity`` limit.
    engine : str, optional
        A registered engine (:func:`linrnn_theory.simulation.engine.make_engine`):
        ``"fast"`` (low rank; the fixed-point task only) or ``"dense"`` (reference, every
        task). Default: the fastest that accepts the network; if one refuses it (a
        numerically defective ``W0``), the run's ``message`` and ``params["engine_notes"]``
        say so.
    n_singular : int
        Number of singular values of ``Delta W`` to record (>= 1; the default is the
        theory's, :data:`linrnn_theory.trajectory.N_SINGULAR`).
    record_every : int
        Record singular values every this many epochs (epoch 0 is always recorded).
    record_eigenvalues : bool
        Also record all eigenvalues of ``W`` (O(N^3) each time).
    stop_rel_loss : float, optional
        Stop with status "converged" at the first epoch with ``loss < stop_rel_loss * L0``.
    conv_rel : float
        Threshold (relative to ``L0``) that defines ``converged_epoch`` (paper: 0.05).
    stability_check : {"det", "eig"}
        Fixed-point mode only. ``"det"`` detects a real eigenvalue of ``W`` crossing 1
        through the sign of ``det(I - W)`` (cheap, exact for real eigenvalues, which is how
        instability appears in this task); ``"eig"`` checks all eigenvalues every epoch.
    diverge_factor : float
        Bptt: the run is "diverged" if the loss exceeds this factor times
        ``max(L0, initial loss)`` or is not finite.
    progress : bool
        Show a progress bar.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        For invalid arguments, or an unstable ``W0`` in fixed-point mode.

    Examples
    --------
    >>> import linrnn_theory as lt
    >>> net = lt.init_network(N=64, g=0.6, seed=0)
    >>> run = lt.train(net, lt.FixedPointTask(target=1.0), lr=0.009 * (1 - 0.36) ** 2,
    ...                epochs=20, mode="fixed_point")
    >>> run.status, run.loss.shape, run.singular_values.shape
    ('ok', (20,), (20, 2))
    >>> bool(run.loss[-1] < run.loss[0])
    True

    The autonomous cosine (the paper's set-up: ``x_0 = m``, ``w = m / N``, no input):

    >>> import numpy as np
    >>> W0 = 0.4 * np.random.default_rng(0).standard_normal((32, 32)) / np.sqrt(32)
    >>> m = np.sqrt(32) * np.eye(32)[0]
    >>> run = lt.train(lt.Network(W0=W0, m=m, w=m / 32), lt.CosineTask(), lr=0.15, epochs=5)
    >>> run.params["engine"], run.loss.shape, bool(run.loss[-1] < run.loss[0])
    ('dense', (5,), True)
    """
    _check_type("net", net, Network)
    _check_type("task", task, Task)
    task.check_trainable()
    lr = check_positive("lr", lr)
    epochs = check_int("epochs", epochs, minimum=1)
    n_singular = check_int("n_singular", n_singular, minimum=1)
    record_every = check_int("record_every", record_every, minimum=1)
    mode = normalise_mode(mode)
    if stability_check not in ("det", "eig"):
        raise ValueError(f"stability_check must be 'det' or 'eig', got {stability_check!r}")
    if stop_rel_loss is not None:
        stop_rel_loss = check_positive("stop_rel_loss", stop_rel_loss)
    conv_rel = check_positive("conv_rel", conv_rel)
    diverge_factor = check_positive("diverge_factor", diverge_factor)
    eng = make_engine(net, task, mode, engine)

    loss = np.empty(epochs)
    readout = np.empty(epochs)
    gnorm = np.empty(epochs)
    rec_epochs: list[int] = []
    sv = np.full((epochs, n_singular), np.nan)
    rec_eig: list[np.ndarray] = []
    status, message, stop = Status.OK, f"ran all {epochs} epochs", epochs
    notes = list(eng.notes)
    loss_cap = None

    iterator = range(epochs)
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(iterator, desc=f"train {mode} N={net.N}", unit="epoch", leave=False)
    L0 = task.L0

    for ep in iterator:
        L, z = eng.evaluate()
        if loss_cap is None:
            loss_cap = diverge_factor * max(L0, L, 1e-300)
        if not (math.isfinite(L) and math.isfinite(z)) or L > loss_cap:
            status, stop = Status.DIVERGED, ep
            message = (f"loss became {'non-finite' if not math.isfinite(L) else f'{L:.3g}'} at "
                       f"epoch {ep} (limit {loss_cap:.3g})")
            break
        loss[ep], readout[ep], gnorm[ep] = L, z, eng.grad_norm()
        if ep % record_every == 0:
            rec_epochs.append(ep)
            sv[ep] = eng.singular_values(n_singular)
            if record_eigenvalues:
                rec_eig.append(np.linalg.eigvals(eng.weights()))
        if stop_rel_loss is not None and L < stop_rel_loss * L0:
            status, stop = Status.CONVERGED, ep + 1
            message = f"loss {L:.3g} < {stop_rel_loss} L0 at epoch {ep}"
            break
        eng.step(lr)
        if mode == "fixed_point":
            bad = eng.unstable()
            if not bad and stability_check == "eig":
                bad = bool(np.max(np.linalg.eigvals(eng.weights()).real) >= 1.0)
            if bad:
                status, stop = Status.DIVERGED, ep + 1
                message = (f"an eigenvalue of W reached Re(lambda) >= 1 after the update of "
                           f"epoch {ep} (fixed point lost)")
                break

    n = stop
    conv = np.nonzero(loss[:n] < conv_rel * L0)[0]
    params = {"N": net.N, "g": net.g, "seed": net.seed}
    if hasattr(task, "target"):
        params["target"] = task.target
    params.update({"lr": lr, "epochs": epochs, "mode": mode, "engine": eng.name, "L0": L0,
                   "task": task.describe()})
    if notes:
        params["engine_notes"] = notes
        message += " (" + "; ".join(notes) + ")"
    return TrainResult(
        tau=lr * np.arange(n, dtype=float), loss=loss[:n].copy(), readout=readout[:n].copy(),
        grad_norm=gnorm[:n].copy(), record_epochs=np.array(rec_epochs, dtype=int),
        singular_values=sv[:n].copy(),
        W=eng.weights(), status=status, stop_epoch=int(stop), message=message,
        converged_epoch=int(conv[0]) if conv.size else None, params=params,
        eigenvalues=np.array(rec_eig) if record_eigenvalues else None,
    )
