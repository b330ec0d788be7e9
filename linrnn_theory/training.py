"""Plain gradient descent on the recurrent weights, with divergence detection.

:func:`train` returns a :class:`TrainResult` whose field names (``tau``, ``loss``,
``readout``, ``singular_values`` ...) match those of :class:`linrnn_theory.theory.Prediction`,
so simulation and theory can be put side by side without glue code. Given a sequence of
networks it trains them together (one loop over epochs, the engines' batched kernels) and
returns one result per network, each the one that network gets alone.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any, ClassVar, overload

import numpy as np

from ._checks import check_int, check_positive
from ._checks import check_type as _check_type
from .network import Network
from .simulation.engine import MODES, Engine, make_engine, normalise_mode
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


@overload
def train(net: Network, task: Task | Sequence[Task], lr: float, epochs: int,
          mode: str = ..., **kwargs: Any) -> TrainResult: ...


@overload
def train(net: Sequence[Network], task: Task | Sequence[Task], lr: float | Sequence[float],
          epochs: int, mode: str = ..., **kwargs: Any) -> list[TrainResult]: ...


def train(net: Network | Sequence[Network], task: Task | Sequence[Task],
          lr: float | Sequence[float], epochs: int, mode: str = "bptt", *, engine: str | None = None,
          n_singular: int = N_SINGULAR, record_every: int = 1,
          record_eigenvalues: bool = False, stop_rel_loss: float | None = None,
          conv_rel: float = 0.05, stability_check: str = "det", diverge_factor: float = 1e6,
          progress: bool = False) -> TrainResult | list[TrainResult]:
    """Train ``W`` by plain gradient descent on a task; one network or several at once.

    Parameters
    ----------
    net : Network or sequence of Network
        One network, or several of the same ``N``: they are trained together (stacked
        on a leading axis by the fast engines, one after the other by the dense one) and
        each gets the result it would get alone.
    task : Task or sequence of Task
        :class:`~linrnn_theory.FixedPointTask` (the paper's linear task),
        :class:`~linrnn_theory.CosineTask` (the autonomous cosine; bptt mode only), or any
        :class:`~linrnn_theory.task.Task`. With several networks: one task for all, or one
        per network, all of one kind and time grid (``target`` and ``input_amp`` may
        differ).
    lr : float or sequence of float
        Learning rate (> 0). The learning time after ``e`` epochs is ``tau = lr * e``.
        With several networks: one rate for all, or one per network.
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
    TrainResult, or list of TrainResult
        A list (one result per network, in order) when ``net`` is a sequence. A network
        that diverges or converges stops there; the others go on.

    Raises
    ------
    ValueError
        For invalid arguments, networks of different ``N``, tasks of different kinds or
        time grids, or an unstable ``W0`` in fixed-point mode.

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

    Several networks in one call, each as if trained alone:

    >>> nets = [lt.init_network(N=64, g=0.6, seed=s) for s in range(3)]
    >>> runs = lt.train(nets, lt.FixedPointTask(target=1.0), lr=0.009 * (1 - 0.36) ** 2,
    ...                 epochs=20, mode="fixed_point")
    >>> len(runs), bool(np.array_equal(runs[0].loss, run.loss))
    (3, True)

    One learning rate per network (here the paper's ``lr0 (1 - g^2)^2`` of each target):

    >>> tasks = [lt.FixedPointTask(target=z) for z in (0.5, 2.0)]
    >>> runs = lt.train(nets[:2], tasks, lr=[0.01 * 0.64 ** 2, 0.003 * 0.64 ** 2], epochs=20,
    ...                 mode="fixed_point")
    >>> [r.params["lr"] for r in runs] == [0.01 * 0.64 ** 2, 0.003 * 0.64 ** 2]
    True

    The autonomous cosine (the paper's set-up: ``x_0 = m``, ``w = m / N``, no input):

    >>> import numpy as np
    >>> W0 = 0.4 * np.random.default_rng(0).standard_normal((32, 32)) / np.sqrt(32)
    >>> m = np.sqrt(32) * np.eye(32)[0]
    >>> run = lt.train(lt.Network(W0=W0, m=m, w=m / 32), lt.CosineTask(), lr=0.15, epochs=5)
    >>> run.params["engine"], run.loss.shape, bool(run.loss[-1] < run.loss[0])
    ('dense', (5,), True)
    """
    one = isinstance(net, Network)
    nets = _networks(net)
    tasks = _tasks(task, len(nets))
    lrs = _rates(lr, len(nets))
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
    engines = []
    for i, (n, t) in enumerate(zip(nets, tasks)):
        try:
            engines.append(make_engine(n, t, mode, engine))
        except ValueError as exc:
            if one:
                raise
            raise type(exc)(f"network {i}: {exc}") from None

    B = len(engines)
    loss = np.empty((B, epochs))
    readout = np.empty((B, epochs))
    gnorm = np.empty((B, epochs))
    sv = np.full((B, epochs, n_singular), np.nan)
    rec_epochs: list[list[int]] = [[] for _ in range(B)]
    rec_eig: list[list[np.ndarray]] = [[] for _ in range(B)]
    status = [Status.OK] * B
    message = [f"ran all {epochs} epochs"] * B
    stop = [epochs] * B
    loss_cap = [math.nan] * B
    L0 = [t.L0 for t in tasks]

    iterator = range(epochs)
    if progress:
        from tqdm.auto import tqdm
        desc = f"train {mode} N={nets[0].N}" + (f" x{B}" if B > 1 else "")
        iterator = tqdm(iterator, desc=desc, unit="epoch", leave=False)

    active = list(range(B))
    for ep in iterator:
        if not active:
            break
        Ls, zs = _evaluate(engines, active)
        going = []
        for L, z, b in zip(Ls.tolist(), zs.tolist(), active):
            if ep == 0:
                loss_cap[b] = diverge_factor * max(L0[b], L, 1e-300)
            if not (math.isfinite(L) and math.isfinite(z)) or L > loss_cap[b]:
                status[b], stop[b] = Status.DIVERGED, ep
                message[b] = (f"loss became {'non-finite' if not math.isfinite(L) else f'{L:.3g}'}"
                              f" at epoch {ep} (limit {loss_cap[b]:.3g})")
                continue
            loss[b, ep], readout[b, ep], gnorm[b, ep] = L, z, engines[b].grad_norm()
            going.append(b)
        if ep % record_every == 0 and going:
            for cls, members in _groups(engines, going):
                sv[members, ep] = cls.singular_values_batch([engines[b] for b in members],
                                                            n_singular)
            for b in going:
                rec_epochs[b].append(ep)
                if record_eigenvalues:
                    rec_eig[b].append(np.linalg.eigvals(engines[b].weights()))
        if stop_rel_loss is not None:
            for b in going:
                if loss[b, ep] < stop_rel_loss * L0[b]:
                    status[b], stop[b] = Status.CONVERGED, ep + 1
                    message[b] = f"loss {loss[b, ep]:.3g} < {stop_rel_loss} L0 at epoch {ep}"
            going = [b for b in going if status[b] == Status.OK]
        for cls, members in _groups(engines, going):
            cls.step_batch([engines[b] for b in members], lrs[members])
        if mode == "fixed_point" and going:
            bad = _unstable(engines, going)
            for b, lost in zip(going, bad.tolist()):
                if not lost and stability_check == "eig":
                    lost = bool(np.max(np.linalg.eigvals(engines[b].weights()).real) >= 1.0)
                if lost:
                    status[b], stop[b] = Status.DIVERGED, ep + 1
                    message[b] = (f"an eigenvalue of W reached Re(lambda) >= 1 after the "
                                  f"update of epoch {ep} (fixed point lost)")
            going = [b for b, lost in zip(going, bad.tolist()) if status[b] == Status.OK]
        active = going

    results = [_result(engines[b], tasks[b], float(lrs[b]), epochs, mode, conv_rel, loss[b], readout[b],
                       gnorm[b], sv[b], rec_epochs[b],
                       rec_eig[b] if record_eigenvalues else None, status[b], message[b],
                       stop[b]) for b in range(B)]
    return results[0] if one else results


def _networks(net: Network | Sequence[Network]) -> list[Network]:
    """The networks of a call of :func:`train` (one, or a non-empty sequence of one N)."""
    if isinstance(net, Network):
        return [net]
    if isinstance(net, (str, bytes)) or not isinstance(net, Sequence):
        _check_type("net", net, Network)
    nets = list(net)
    if not nets:
        raise ValueError("net: need at least one network")
    for i, n in enumerate(nets):
        _check_type(f"net[{i}]", n, Network)
    sizes = sorted({n.N for n in nets})
    if len(sizes) > 1:
        raise ValueError(f"networks of different N cannot be trained in one batch (N = "
                         f"{', '.join(map(str, sizes))}); call train once per N")
    return nets


def _rates(lr: float | Sequence[float], n: int) -> np.ndarray:
    """One learning rate per network: ``lr`` for all, or a sequence of ``n`` rates."""
    if np.ndim(lr) == 0:
        return np.full(n, check_positive("lr", lr))
    if isinstance(lr, (str, bytes)) or not isinstance(lr, (Sequence, np.ndarray)):
        raise TypeError(f"lr must be a number or a sequence of numbers, got "
                        f"{type(lr).__name__}")
    rates = list(lr)
    if len(rates) != n:
        raise ValueError(f"lr: got {len(rates)} learning rates for {n} networks")
    return np.array([check_positive(f"lr[{i}]", v) for i, v in enumerate(rates)], dtype=float)


def _tasks(task: Task | Sequence[Task], n: int) -> list[Task]:
    """One task per network: the same for all, or a sequence of one kind and time grid."""
    if isinstance(task, Task):
        tasks = [task] * n
    else:
        if isinstance(task, (str, bytes)) or not isinstance(task, Sequence):
            _check_type("task", task, Task)
        tasks = list(task)
        if len(tasks) != n:
            raise ValueError(f"task: got {len(tasks)} tasks for {n} networks")
        for i, t in enumerate(tasks):
            _check_type(f"task[{i}]", t, Task)
        shapes = [{k: v for k, v in t.describe().items() if k not in ("target", "input_amp")}
                  for t in tasks]
        for i, sh in enumerate(shapes[1:], 1):
            if sh != shapes[0]:
                raise ValueError(f"task[{i}] differs from task[0] in more than target and "
                                 f"input_amp ({sh} vs {shapes[0]}); networks trained in one "
                                 "batch need one kind of task on one time grid")
    for t in tasks:
        t.check_trainable()
    return tasks


def _groups(engines: list[Engine], members: list[int]) -> list[tuple[type, list[int]]]:
    """Indices of ``members`` grouped by engine class and batch key, in order."""
    out: dict[tuple, list[int]] = {}
    for b in members:
        out.setdefault((type(engines[b]), engines[b].batch_key()), []).append(b)
    return [(key[0], idx) for key, idx in out.items()]


def _evaluate(engines: list[Engine], members: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Loss and readout of ``members`` (in that order), one batched call per group."""
    L = np.empty(len(members))
    z = np.empty(len(members))
    where = {b: i for i, b in enumerate(members)}
    for cls, idx in _groups(engines, members):
        Lg, zg = cls.evaluate_batch([engines[b] for b in idx])
        pos = [where[b] for b in idx]
        L[pos], z[pos] = Lg, zg
    return L, z


def _unstable(engines: list[Engine], members: list[int]) -> np.ndarray:
    """:meth:`Engine.unstable` of ``members`` (in that order), batched per group."""
    out = np.zeros(len(members), dtype=bool)
    where = {b: i for i, b in enumerate(members)}
    for cls, idx in _groups(engines, members):
        out[[where[b] for b in idx]] = cls.unstable_batch([engines[b] for b in idx])
    return out


def _result(eng: Engine, task: Task, lr: float, epochs: int, mode: str, conv_rel: float,
            loss: np.ndarray, readout: np.ndarray, gnorm: np.ndarray, sv: np.ndarray,
            rec_epochs: list[int], rec_eig: list[np.ndarray] | None, status: Status,
            message: str, stop: int) -> TrainResult:
    """The :class:`TrainResult` of one network."""
    n = stop
    net = eng.net
    L0 = task.L0
    conv = np.nonzero(loss[:n] < conv_rel * L0)[0]
    params: dict[str, Any] = {"N": net.N, "g": net.g, "seed": net.seed}
    if hasattr(task, "target"):
        params["target"] = task.target
    params.update({"lr": lr, "epochs": epochs, "mode": mode, "engine": eng.name, "L0": L0,
                   "task": task.describe()})
    notes = list(eng.notes)
    if notes:
        params["engine_notes"] = notes
        message += " (" + "; ".join(notes) + ")"
    return TrainResult(
        tau=lr * np.arange(n, dtype=float), loss=loss[:n].copy(), readout=readout[:n].copy(),
        grad_norm=gnorm[:n].copy(), record_epochs=np.array(rec_epochs, dtype=int),
        singular_values=sv[:n].copy(),
        W=eng.weights(), status=status, stop_epoch=int(stop), message=message,
        converged_epoch=int(conv[0]) if conv.size else None, params=params,
        eigenvalues=np.array(rec_eig) if rec_eig is not None else None,
    )
