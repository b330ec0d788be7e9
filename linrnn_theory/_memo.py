"""One small cache for functions of arrays: keyed by a digest of the array bytes.

``functools.lru_cache`` cannot hash arrays, and hands out the cached object itself, which a
caller could modify. :func:`array_cache` keys on a BLAKE2 digest of every array argument
(with its shape and dtype) and the other arguments, keeps the ``maxsize`` most recently
used results, and returns them with every array read-only.
"""

from __future__ import annotations

import functools
import hashlib
from collections import OrderedDict
from typing import Any, Callable, TypeVar

import numpy as np

__all__ = ["array_cache", "freeze"]

F = TypeVar("F", bound=Callable[..., Any])


def _key_part(a: Any) -> Any:
    if isinstance(a, np.ndarray):
        a = np.ascontiguousarray(a)
        digest = hashlib.blake2b(a.tobytes(), digest_size=16).hexdigest()
        return ("array", a.shape, a.dtype.str, digest)
    return a


def freeze(value: Any) -> Any:
    """Make every array in ``value`` (an array, or tuples/lists of them) read-only.

    Examples
    --------
    >>> x = freeze((np.zeros(2), 1.0))[0]
    >>> x.flags.writeable
    False
    """
    if isinstance(value, np.ndarray):
        value.setflags(write=False)
    elif isinstance(value, (tuple, list)):
        for v in value:
            freeze(v)
    return value


def array_cache(maxsize: int) -> Callable[[F], F]:
    """Least-recently-used cache for a function whose arguments may be arrays.

    The cached results are frozen (:func:`freeze`): a caller that needs to modify one must
    copy it. ``wrapper.cache_clear()`` empties the cache, ``wrapper.cache_len()`` gives its
    size.

    Examples
    --------
    >>> calls = []
    >>> @array_cache(maxsize=2)
    ... def double(a, k=2):
    ...     calls.append(1)
    ...     return k * a
    >>> x = np.arange(3.0)
    >>> double(x) is double(x.copy()), len(calls)
    (True, 1)
    >>> double(x).flags.writeable
    False
    """
    def decorate(fn: F) -> F:
        store: OrderedDict[tuple, Any] = OrderedDict()

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = tuple(_key_part(a) for a in args) + tuple(
                (k, _key_part(v)) for k, v in sorted(kwargs.items()))
            hit = store.get(key)
            if hit is not None:
                store.move_to_end(key)
                return hit
            value = freeze(fn(*args, **kwargs))
            store[key] = value
            while len(store) > maxsize:
                store.popitem(last=False)
            return value

        wrapper.cache_clear = store.clear          # type: ignore[attr-defined]
        wrapper.cache_len = store.__len__          # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]
    return decorate
