"""BLAS thread control (OpenBLAS via ctypes): small GEMMs run faster single-threaded on a
shared 2-core machine, and single-threaded BLAS makes results bit-identical across
parallel backends."""

from __future__ import annotations

import contextlib
import ctypes
from typing import Iterator

from ._checks import check_int

__all__ = ["limit_blas_threads", "openblas_handles"]


# --------------------------------------------------------------------------------------
# BLAS threading
# --------------------------------------------------------------------------------------

_OPENBLAS_SYMBOLS = (
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
    ("openblas_get_num_threads", "openblas_set_num_threads"),
)


def openblas_handles() -> list[tuple]:
    """(get, set) function pairs of every OpenBLAS library loaded in this process."""
    paths = set()
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:
                if "openblas" in line.lower() and ".so" in line:
                    paths.add(line.split()[-1])
    except OSError:
        return []
    out = []
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get_name, set_name in _OPENBLAS_SYMBOLS:
            if hasattr(lib, get_name) and hasattr(lib, set_name):
                getter, setter = getattr(lib, get_name), getattr(lib, set_name)
                getter.restype = ctypes.c_int
                out.append((getter, setter))
                break
    return out


@contextlib.contextmanager
def limit_blas_threads(n: int | None) -> Iterator[int | None]:
    """Temporarily set the number of OpenBLAS threads (``None``: leave unchanged).

    The per-step GEMMs of an RNN with N ~ 256 and batch 32 are small; with two OpenBLAS
    threads on a 2-core machine they become up to ~100x slower as soon as another process
    occupies a core (the BLAS threads spin-wait). Training therefore runs single-threaded
    by default. Only OpenBLAS (numpy/scipy wheels) is handled; with another BLAS this is a
    no-op. Yields the previous thread count (``None`` when unknown).

    Examples
    --------
    >>> with limit_blas_threads(1):
    ...     pass
    """
    if n is None:
        yield None
        return
    n = check_int("n", n, minimum=1)
    handles = openblas_handles()
    previous = [int(get()) for get, _ in handles]
    for _, set_ in handles:
        set_(ctypes.c_int(n))
    try:
        yield previous[0] if previous else None
    finally:
        for (_, set_), p in zip(handles, previous):
            set_(ctypes.c_int(p))


