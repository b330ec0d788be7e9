"""Argument validation shared by every public entry point.

Every check raises :class:`ValueError` whose message starts with the name of the
offending parameter, so that the command line can print it as a one-line error.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "check_finite_scalar",
    "check_positive",
    "check_int",
    "check_range",
    "check_vector",
    "check_square",
    "check_type",
]


def check_finite_scalar(name: str, value: Any) -> float:
    """Return ``value`` as a float, or raise if it is not a finite real number.

    Examples
    --------
    >>> check_finite_scalar("g", 0.5)
    0.5
    """
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(out):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return out


def check_positive(name: str, value: Any, *, strict: bool = True) -> float:
    """Finite scalar that is > 0 (``strict``) or >= 0.

    Examples
    --------
    >>> check_positive("lr", 0.01)
    0.01
    """
    out = check_finite_scalar(name, value)
    if strict and out <= 0:
        raise ValueError(f"{name} must be > 0, got {out!r}")
    if not strict and out < 0:
        raise ValueError(f"{name} must be >= 0, got {out!r}")
    return out


def check_range(name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False,
                hi_open: bool = False) -> float:
    """Finite scalar inside the interval [lo, hi] (ends optionally open).

    Examples
    --------
    >>> check_range("dt", 0.5, 0.0, 2.0, lo_open=True, hi_open=True)
    0.5
    """
    out = check_finite_scalar(name, value)
    bad_lo = out <= lo if lo_open else out < lo
    bad_hi = out >= hi if hi_open else out > hi
    if bad_lo or bad_hi:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        raise ValueError(f"{name} must lie in {left}{lo}, {hi}{right}, got {out!r}")
    return out


def check_int(name: str, value: Any, minimum: int | None = None) -> int:
    """Integer (Python or numpy) with an optional lower bound.

    Examples
    --------
    >>> check_int("epochs", 3, minimum=1)
    3
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be an integer, got {value!r}")
    out = int(value)
    if minimum is not None and out < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {out}")
    return out


def check_vector(name: str, value: Any, n: int | None = None) -> np.ndarray:
    """1-D finite float64 array, optionally of length ``n`` (returns a copy).

    Examples
    --------
    >>> check_vector("m", [1.0, 2.0], n=2)
    array([1., 2.])
    """
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of real numbers") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must have length {n}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite entries")
    return arr


def check_square(name: str, value: Any, n: int | None = None) -> np.ndarray:
    """Square finite float64 matrix, optionally n x n (returns a copy).

    Examples
    --------
    >>> check_square("W0", [[0.0, 1.0], [0.0, 0.0]]).shape
    (2, 2)
    """
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a matrix of real numbers") from None
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must be {n} x {n}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite entries")
    return arr


def check_type(name: str, value: Any, cls: type) -> Any:
    """Return ``value`` unchanged, or raise :class:`TypeError` naming the argument.

    Examples
    --------
    >>> check_type("x", 1.0, float)
    1.0
    """
    if not isinstance(value, cls):
        raise TypeError(f"{name} must be a {cls.__name__}, got {type(value).__name__}")
    return value
