"""One result type for simulated and predicted learning, and one status vocabulary.

:class:`LearningTrajectory` holds what both simulation and theory produce along the
learning time: ``tau``, ``readout``, ``loss``, ``singular_values`` (one row per ``tau``)
and ``grad_norm``, with a :class:`Status`, a ``message`` and the ``params`` of the run.
:class:`linrnn_theory.TrainResult` (simulated: adds ``W`` and ``eigenvalues``) and
:class:`linrnn_theory.theory.Prediction` (predicted: adds ``tau_tilde``, the outlier
eigenvalue and the method) derive from it, so that on the same ``tau`` grid::

    run.readout - prediction.readout
    run.singular_values - prediction.singular_values

line up row for row (rows of ``run.singular_values`` at epochs that were not recorded are
NaN).

Every result in the package that is more than one number (these two, the failure
prediction, the cosine and nonlinear runs) derives from :class:`Result`: it writes itself
as JSON (:meth:`Result.to_dict`, :meth:`Result.save`; NaN and infinities as ``null``,
complex arrays as ``{"real": ..., "imag": ...}``), reads itself back
(:meth:`Result.from_dict`, :meth:`Result.load`, which find the class from the ``schema``
field) and has a one-line repr that shows no arrays.
"""

from __future__ import annotations

import dataclasses
import json
import os
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

__all__ = ["Status", "Result", "LearningTrajectory", "load", "result_class", "N_SINGULAR"]

T = TypeVar("T", bound="Result")

#: Default number of singular values of ``Delta W`` that simulation and theory report
#: (the large-N theory's ``Delta W`` is dominated by two, docs/theory.md).
N_SINGULAR = 2


class Status(str, Enum):
    """Outcome of a simulation or a prediction.

    The members compare equal to their values (``Status.OK == "ok"``), which is what the
    JSON files hold. :attr:`advice` says what the status means and what to do.

    Examples
    --------
    >>> Status.OK == "ok", Status("diverged") is Status.DIVERGED
    (True, True)
    >>> Status.BEYOND_RADIUS.valid
    False
    """

    #: The result holds over its whole range as requested.
    OK = "ok"
    #: A simulation stopped early because the loss fell below the requested level.
    CONVERGED = "converged"
    #: The loss grew without bound, or the fixed point was lost.
    DIVERGED = "diverged"
    #: An iterative theory (depth control, descent) did not reach its tolerance.
    UNCONVERGED = "unconverged"
    #: A series was evaluated beyond its radius of convergence.
    BEYOND_RADIUS = "beyond_radius"
    #: Descent learned, but not the gradient flow's solution (``lr S`` near 2).
    EDGE_OF_STABILITY = "edge_of_stability"
    #: The initial network has no stable fixed point; nothing was trained.
    UNSTABLE_INIT = "unstable_init"
    #: A theory was used at a size ``N`` where finite-size effects it neglects dominate.
    FINITE_SIZE = "finite_size"

    def __repr__(self) -> str:
        return repr(self.value)

    __str__ = str.__str__

    @property
    def valid(self) -> bool:
        """Whether the arrays of a result with this status can be used as they are."""
        return self in (Status.OK, Status.CONVERGED)

    @property
    def advice(self) -> str:
        """What the status means and what to do about it."""
        return _ADVICE[self]


_ADVICE = {
    Status.OK: "the result holds over its whole range",
    Status.CONVERGED: "the run stopped early: the loss fell below the requested level",
    Status.DIVERGED: "the loss diverged or the fixed point was lost: use a smaller learning "
                     "rate or target",
    Status.UNCONVERGED: "the theory did not reach its tolerance: raise the depth or the "
                        "number of epochs, or use a network-specific method",
    Status.BEYOND_RADIUS: "a series was used beyond its radius of convergence: use "
                          "method='ode'",
    Status.EDGE_OF_STABILITY: "descent learned a different solution than the gradient flow "
                              "(lr S ~ 2): the flow theory does not describe it",
    Status.UNSTABLE_INIT: "the initial network has an eigenvalue with Re >= 1: draw another "
                          "W0 or use a smaller g",
    Status.FINITE_SIZE: "finite-size effects the theory neglects dominate at this N and g: "
                        "use a larger N, or method='instance' for each network",
}

_REGISTRY: dict[str, type["Result"]] = {}


def result_class(schema: str) -> type["Result"]:
    """The :class:`Result` subclass that writes ``schema``.

    Examples
    --------
    >>> import linrnn_theory as lt
    >>> result_class("linrnn-theory/run/2") is lt.TrainResult
    True
    """
    try:
        return _REGISTRY[schema]
    except KeyError:
        raise ValueError(f"unknown result schema {schema!r}; known: "
                         f"{', '.join(sorted(_REGISTRY))}") from None


def _encode(v: Any) -> Any:
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, np.ndarray):
        if np.iscomplexobj(v):
            return {"real": _encode(v.real), "imag": _encode(v.imag)}
        if v.dtype.kind == "f":
            return np.where(np.isfinite(v), v, None).tolist() if v.size else v.tolist()
        return v.tolist()
    if isinstance(v, (float, np.floating)):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, (np.integer, np.bool_)):
        return v.item()
    if isinstance(v, dict):
        return {str(k): _encode(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_encode(x) for x in v]
    return v


def _decode_array(v: Any, dtype: Any) -> np.ndarray | None:
    if v is None:
        return None
    if isinstance(v, dict) and set(v) == {"real", "imag"}:
        return _decode_array(v["real"], float) + 1j * _decode_array(v["imag"], float)
    return np.array(_none_to_nan(v), dtype=dtype)


def _none_to_nan(v: Any) -> Any:
    if v is None:
        return np.nan
    if isinstance(v, list):
        return [_none_to_nan(x) for x in v]
    return v


@dataclasses.dataclass(kw_only=True, repr=False)
class Result:
    """Base of every structured result: JSON round trip and a short repr.

    Subclasses set :attr:`schema` (``"linrnn-theory/<kind>/<version>"``) and list in
    :attr:`array_fields` the fields that hold arrays (read back as float arrays; complex
    arrays are written as real and imaginary parts). Fields named in :attr:`int_fields`
    are read back as integer arrays.
    """

    schema: ClassVar[str] = ""
    array_fields: ClassVar[tuple[str, ...]] = ()
    int_fields: ClassVar[tuple[str, ...]] = ()
    #: Fields shown by the repr besides the status.
    summary_fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("schema"):
            _REGISTRY[cls.schema] = cls

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary: ``schema`` plus every field (NaN and inf as ``None``)."""
        out: dict[str, Any] = {"schema": self.schema}
        for f in dataclasses.fields(self):
            out[f.name] = _encode(getattr(self, f.name))
        return out

    def as_record(self) -> dict[str, Any]:
        """The fields as a plain dictionary (arrays as they are, statuses as strings), the
        form in which sweeps cache results."""
        return {f.name: (v.value if isinstance(v, Enum) else v)
                for f in dataclasses.fields(self) for v in [getattr(self, f.name)]}

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    @classmethod
    def from_dict(cls: type[T], d: dict[str, Any]) -> T:
        """Rebuild a result from :meth:`to_dict` (the ``schema`` picks the subclass)."""
        schema = d.get("schema")
        target = result_class(schema) if schema else cls
        if not issubclass(target, cls):
            raise ValueError(f"schema {schema!r} is a {target.__name__}, not a {cls.__name__}")
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(target):
            if f.name not in d:
                continue
            v = d[f.name]
            if f.name in target.int_fields:
                v = None if v is None else np.array(v, dtype=int)
            elif f.name in target.array_fields:
                v = _decode_array(v, float)
            elif f.name == "status":
                v = Status(v)
            kwargs[f.name] = v
        return target(**kwargs)

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        """Rebuild a result from :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def save(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_json` to ``path`` atomically; returns the path."""
        from ._io import atomic_write_text
        return atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls: type[T], path: str | os.PathLike) -> T:
        """Read a file written by :meth:`save`."""
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def __repr__(self) -> str:
        parts = []
        if hasattr(self, "status"):
            parts.append(f"status={getattr(self, 'status')!r}")
        for name in self.summary_fields:
            v = getattr(self, name)
            parts.append(f"{name}={v:.4g}" if isinstance(v, float) else f"{name}={v!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


@dataclasses.dataclass(kw_only=True, repr=False)
class LearningTrajectory(Result):
    """Readout, loss, singular values of ``Delta W`` and gradient norm along ``tau``.

    Attributes
    ----------
    tau : (n,) ndarray
        Learning time (``lr * epoch`` in the simulator).
    readout, loss, grad_norm : (n,) ndarray
        At each ``tau`` (NaN where a method does not give the quantity).
    singular_values : (n, k) ndarray
        Top ``k`` singular values of ``Delta W`` at each ``tau`` (NaN rows where they were
        not recorded).
    status : Status
    message : str
        What limited the result, in words (empty when there is nothing to say).
    params : dict
        Parameters of the run or prediction (``g``, ``target``, ...).

    Examples
    --------
    >>> import numpy as np
    >>> t = LearningTrajectory(tau=np.zeros(3), readout=np.zeros(3), loss=np.full(3, 0.5),
    ...                        singular_values=np.zeros((3, 2)), grad_norm=np.ones(3))
    >>> t
    LearningTrajectory(status='ok', n=3, tau=[0, 0], loss=0.5 -> 0.5)
    """

    array_fields: ClassVar[tuple[str, ...]] = ("tau", "readout", "loss", "singular_values",
                                               "grad_norm")

    tau: np.ndarray
    readout: np.ndarray
    loss: np.ndarray
    singular_values: np.ndarray
    grad_norm: np.ndarray
    status: Status = Status.OK
    message: str = ""
    params: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.status = Status(self.status)

    def __repr__(self) -> str:
        n = len(self.tau)
        span = f"[{self.tau[0]:.4g}, {self.tau[-1]:.4g}]" if n else "[]"
        loss = f", loss={self.loss[0]:.4g} -> {self.loss[-1]:.4g}" if n else ""
        extra = "".join(f", {k}={self.params[k]!r}" for k in ("method", "N", "g", "target")
                        if k in self.params and self.params[k] is not None)
        return f"{type(self).__name__}(status={self.status!r}, n={n}, tau={span}{loss}{extra})"


def load(path: str | os.PathLike) -> Result:
    """Read any result written by :meth:`Result.save` (the class comes from its schema).

    Examples
    --------
    >>> import tempfile, pathlib, linrnn_theory as lt
    >>> p = lt.theory.predict(g=0.5, target=1.0, tau=[0.0, 0.1], method="series")
    >>> f = p.save(pathlib.Path(tempfile.mkdtemp()) / "p.json")
    >>> q = load(f)
    >>> type(q).__name__, bool((q.readout == p.readout).all())
    ('Prediction', True)
    """
    return Result.load(path)
