r"""The theory over parameter grids: phase diagrams in ``(g, z_hat)``.

:func:`broadcast` evaluates a scalar observable of :mod:`.observables` over arrays of
``g`` and ``target`` (broadcast together, numpy rules). :func:`phase_map` collects the
observables at the learning time -- learning time, ``|Delta W|_F``, mean gradient norm,
shuffle loss -- and, for a given step ``lr = lr0 (1 - g^2)^2``, the failure verdict of
:func:`.failure.predict_failure` on a ``(g, z_hat)`` grid, as a :class:`PhaseMap` that
writes itself as JSON, NPZ and CSV and draws itself (``linrnn-theory map``).

The points are visited ``g`` by ``g``: for the observables (large N, ``method="ode"``)
all targets of one gain are first computed together (:func:`.observables.prefetch`: one
build of the reduced models of the gain, then each target by the Taylor run of a single
call, so a map holds the floats of the single calls), and the per-point calls read them
from the cache.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Sequence

import numpy as np

from ..trajectory import Result
from . import observables

__all__ = ["broadcast", "phase_map", "PhaseMap", "QUANTITIES"]

#: Observables a map can hold, by name (functions of ``(g, target, rel_loss)``).
QUANTITIES: dict[str, Callable[..., float]] = {
    "learning_time": observables.learning_time,
    "dw_norm": observables.dw_norm,
    "mean_gradient_norm": observables.mean_gradient_norm,
    "shuffle_loss": observables.shuffle_loss,
}


def broadcast(fn: Callable[..., float], g: Any, target: Any, **kwargs: Any) -> np.ndarray:
    """``fn(g, target, **kwargs)`` at every point of ``broadcast(g, target)``.

    Parameters
    ----------
    fn : callable
        A scalar observable, e.g. :func:`linrnn_theory.theory.learning_time`.
    g, target : float or array_like
        Broadcast together (numpy rules).
    **kwargs
        Passed to ``fn`` (``rel_loss``, ``method``, ...).

    Returns
    -------
    ndarray of the broadcast shape (0-d for two scalars).

    Notes
    -----
    For the observables of :data:`QUANTITIES` with the large-N ODE (no ``network``,
    ``method="ode"``) the states at the learning time are computed first, gain by gain
    (:func:`.observables.prefetch`); the values equal those of the single calls.

    Examples
    --------
    >>> from linrnn_theory import theory
    >>> t = broadcast(theory.learning_time, [0.0, 0.6], [[0.5], [1.0], [2.0]])
    >>> t.shape, bool(t[1, 0] == theory.learning_time(0.0, 1.0))
    ((3, 2), True)
    """
    G, Z = np.broadcast_arrays(np.asarray(g, dtype=float), np.asarray(target, dtype=float))
    if fn in QUANTITIES.values() and kwargs.get("method", "ode") == "ode" \
            and kwargs.get("network") is None and G.size:
        observables.prefetch(G, Z, rel_loss=kwargs.get("rel_loss", 0.05),
                             input_amp=kwargs.get("input_amp", 1.0))
    out = np.empty(G.shape)
    # g outermost: one reduced model per gain, reused across targets
    order = np.lexsort((Z.ravel(), G.ravel()))
    flat = out.reshape(-1)
    for i in order:
        flat[i] = fn(float(G.flat[i]), float(Z.flat[i]), **kwargs)
    return out


@dataclass(kw_only=True, repr=False)
class PhaseMap(Result):
    """Observables of the large-N theory on a ``(g, z_hat)`` grid (:func:`phase_map`).

    Attributes
    ----------
    g : (G,) ndarray
    target : (Z,) ndarray
    values : dict
        Quantity name -> ``(G, Z)`` array (NaN where undefined).
    failure : (G, Z) ndarray of str or None
        The failure status per point (``"ok"``, ``"edge_of_stability"``,
        ``"diverged"``, ``"unconverged"``) for the step in ``params``; ``None`` without a
        step.
    lr_sharpness : (G, Z) ndarray or None
        ``lr S`` at the flow's solution (> 2: the flow's solution is unstable for descent).
    params : dict
        ``rel_loss``, ``lr0`` / ``lr``, ``epochs``.
    """

    schema: ClassVar[str] = "linrnn-theory/phase-map/1"
    array_fields: ClassVar[tuple[str, ...]] = ("g", "target", "lr_sharpness")
    summary_fields: ClassVar[tuple[str, ...]] = ("shape",)

    g: np.ndarray
    target: np.ndarray
    values: dict
    failure: np.ndarray | None = None
    lr_sharpness: np.ndarray | None = None
    params: dict

    def __post_init__(self) -> None:
        self.values = {k: np.asarray(v, dtype=float) for k, v in self.values.items()}
        if self.failure is not None:
            self.failure = np.asarray(self.failure, dtype="U24")

    @property
    def shape(self) -> tuple[int, int]:
        """``(len(g), len(target))``."""
        return self.g.size, self.target.size

    def to_npz(self, path: str | os.PathLike) -> Path:
        """Write the arrays (``g``, ``target``, one per quantity, ``failure``,
        ``lr_sharpness``) to ``path`` atomically."""
        from .._io import atomic_write_npz
        arrays = {"g": self.g, "target": self.target, **self.values}
        if self.failure is not None:
            arrays.update(failure=self.failure, lr_sharpness=self.lr_sharpness)
        return atomic_write_npz(path, **arrays)

    def to_csv(self) -> str:
        """Long format: ``g,target,<quantities>[,failure,lr_sharpness]``, one row a point."""
        names = list(self.values)
        head = ["g", "target", *names] + (["failure", "lr_sharpness"]
                                          if self.failure is not None else [])
        lines = [",".join(head)]
        for i, g in enumerate(self.g):
            for j, z in enumerate(self.target):
                row = [repr(float(g)), repr(float(z))]
                row += [repr(float(self.values[k][i, j])) for k in names]
                if self.failure is not None:
                    row += [str(self.failure[i, j]), repr(float(self.lr_sharpness[i, j]))]
                lines.append(",".join(row))
        return "\n".join(lines) + "\n"

    def figure(self, quantity: str | None = None):
        """A matplotlib figure of one quantity over ``(g, z_hat)`` (log colour scale for
        the learning time), with the failure boundary drawn where a step was given."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import LogNorm
        quantity = quantity or next(iter(self.values))
        V = self.values[quantity]
        fig, ax = plt.subplots(figsize=(5.2, 4.0), constrained_layout=True)
        positive = np.isfinite(V) & (V > 0)
        norm = LogNorm() if quantity == "learning_time" and positive.all() else None
        mesh = ax.pcolormesh(self.target, self.g, V, shading="nearest", norm=norm)
        fig.colorbar(mesh, ax=ax, label=quantity.replace("_", " "))
        if self.failure is not None:
            fails = (self.failure == "diverged").astype(float)
            if 0 < fails.sum() < fails.size and min(self.shape) > 1:
                ax.contour(self.target, self.g, fails, levels=[0.5], colors="w",
                           linewidths=1.5)
            ax.set_title(f"{quantity}; white: descent diverges (lr = "
                         f"{self._lr_label()})", fontsize=9)
        ax.set_xlabel("target z_hat")
        ax.set_ylabel("g")
        if np.all(self.target > 0) and self.target.size > 2 and \
                self.target[-1] / self.target[0] > 10:
            ax.set_xscale("log")
        return fig

    def _lr_label(self) -> str:
        p = self.params
        return f"{p['lr0']:g} (1 - g^2)^2" if p.get("lr0") is not None else f"{p['lr']:g}"


def phase_map(g: Sequence[float], target: Sequence[float], *,
              quantities: Iterable[str] = ("learning_time",), rel_loss: float = 0.05,
              lr0: float | None = None, lr: float | None = None, epochs: int = 2000,
              progress: bool = False) -> PhaseMap:
    """Large-N observables, and optionally the failure verdict, on a ``(g, z_hat)`` grid.

    Parameters
    ----------
    g, target : sequence of float
        Grid axes (``0 <= g < 1``; non-zero targets).
    quantities : iterable of str
        Any of :data:`QUANTITIES`.
    rel_loss : float
        Learning time = first time with ``loss < rel_loss * L0``.
    lr0, lr : float, optional
        A gradient-descent step (paper convention ``lr = lr0 (1 - g^2)^2``, or raw): adds
        the failure verdict of :func:`.failure.predict_failure` at each point.
    epochs : int
        Length of the reduced descent behind the failure verdict.
    progress : bool
        Show a progress bar over the points.

    Returns
    -------
    PhaseMap

    Examples
    --------
    >>> m = phase_map([0.0, 0.6], [0.5, 1.0, 2.0], quantities=["learning_time", "dw_norm"])
    >>> m.shape, m.values["learning_time"].shape
    ((2, 3), (2, 3))
    >>> f = phase_map([0.8], [1.0, 4.0], lr0=0.002, epochs=400)
    >>> f.failure.tolist()
    [['ok', 'diverged']]
    """
    from .._checks import check_int, check_range
    from .failure import predict_failure
    gs = np.array([check_range("g", x, 0.0, 1.0, hi_open=True) for x in np.ravel(g)])
    zs = np.array([float(x) for x in np.ravel(target)])
    if gs.size == 0 or zs.size == 0:
        raise ValueError("g and target must each hold at least one value")
    names = list(quantities)
    unknown = [q for q in names if q not in QUANTITIES]
    if unknown:
        raise ValueError(f"unknown quantities {unknown}; choose from {sorted(QUANTITIES)}")
    with_failure = lr0 is not None or lr is not None
    epochs = check_int("epochs", epochs, minimum=1)
    values = {q: np.full((gs.size, zs.size), np.nan) for q in names}
    fail = np.full((gs.size, zs.size), "", dtype="U24") if with_failure else None
    sharp = np.full((gs.size, zs.size), np.nan) if with_failure else None
    points = [(i, j) for i in range(gs.size) for j in range(zs.size)]
    if progress:
        from tqdm.auto import tqdm
        points = tqdm(points, desc="phase map", unit="point", leave=False)
    for i, j in points:
        if j == 0 and names:            # the states of every target of this gain
            observables.prefetch(gs[i], zs, rel_loss)
        for q in names:
            values[q][i, j] = QUANTITIES[q](gs[i], zs[j], rel_loss)
        if with_failure:
            d = predict_failure(gs[i], zs[j], lr0=lr0, lr=lr, epochs=epochs)
            fail[i, j] = d.status.value
            sharp[i, j] = d.lr_sharpness_final
    params = {"rel_loss": rel_loss, "lr0": lr0, "lr": lr,
              "epochs": epochs if with_failure else None}
    return PhaseMap(g=gs, target=zs, values=values, failure=fail, lr_sharpness=sharp,
                    params=params)
