"""On-disk cache of task results: keys, code version, atomic store and safe load.

A task is a pure function call ``func(params)`` (``func`` a ``"module:function"`` name,
``params`` a JSON-able dict). Its cache key is the SHA-256 of the canonical JSON of
``(func, params, code_version)``; the result (a flat dict of numpy arrays and JSON-able
scalars) is stored as ``<cache_dir>/<key>.npz``:

* every numpy array is an entry of the NPZ (allowed dtypes: bool, int, float, complex,
  fixed-width str);
* everything else (Python/numpy scalars, strings, ``None``, lists) goes into one JSON
  string, the entry ``__meta__``;
* ``__key__`` repeats the key, ``__format__`` the format version.

Files are written with :func:`linrnn_theory._io.atomic_write_npz` (temporary file + fsync +
``os.replace``), so a reader sees either nothing or a complete file. :func:`load_result`
treats a file that cannot be read, lacks an entry or carries another key as missing
(returns ``None``): a corrupt cache file is recomputed, never used.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from .._io import atomic_write_npz

__all__ = ["FORMAT", "canonical_json", "task_key", "code_version", "source_hash",
           "encode_result", "decode_result", "normalise_result", "store_result",
           "load_result", "cache_path", "clean_temporary"]

#: Version of the cache file layout (part of every key).
FORMAT = "linrnn-theory/cache/1"

_PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        if not math.isfinite(f):
            raise ValueError(f"task parameters must be finite numbers, got {f!r}")
        return f
    if obj is None or isinstance(obj, str):
        return obj
    raise ValueError(f"task parameters must be JSON-able (numbers, strings, lists, dicts); "
                     f"got {type(obj).__name__}")


def canonical_json(obj: Any) -> str:
    """Canonical JSON text: sorted keys, no spaces, floats by ``repr`` (exact round trip).

    Tuples become lists and numpy scalars Python numbers, so ``(1, 2)`` and
    ``[np.int64(1), 2]`` give the same text.

    Examples
    --------
    >>> canonical_json({"b": (1, 2.5), "a": np.float64(0.1)})
    '{"a":0.1,"b":[1,2.5]}'
    """
    return json.dumps(_jsonable(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def task_key(func: str, params: Mapping[str, Any], version: str) -> str:
    """Cache key (32 hex digits) of ``func(params)`` under code version ``version``.

    Examples
    --------
    >>> k = task_key("m:f", {"g": 0.5, "seed": 1}, "v1")
    >>> k == task_key("m:f", {"seed": 1, "g": 0.5}, "v1"), len(k)
    (True, 32)
    >>> k == task_key("m:f", {"g": 0.5, "seed": 2}, "v1"), k == task_key("m:f", {"g": 0.5, "seed": 1}, "v2")
    (False, False)
    """
    text = canonical_json({"format": FORMAT, "func": func, "params": params,
                           "version": version})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def source_hash(patterns: Iterable[str], exclude: Iterable[str] = (),
                root: str | os.PathLike | None = None) -> str:
    """SHA-256 (16 hex digits) of the files matching glob ``patterns`` under ``root``.

    ``root`` defaults to the ``linrnn_theory`` package folder. Paths (relative, with ``/``)
    and contents enter the hash in sorted order; a pattern matching nothing is an error
    (a typo must not silently drop a dependency).

    Examples
    --------
    >>> len(source_hash(["_checks.py"]))
    16
    """
    root = _PACKAGE_ROOT if root is None else Path(root)
    excluded = set()
    for pat in exclude:
        excluded.update(p.resolve() for p in root.glob(pat))
    files = set()
    for pat in patterns:
        found = [p for p in root.glob(pat) if p.is_file()]
        if not found:
            raise ValueError(f"source pattern {pat!r} matches no file under {root}")
        files.update(p.resolve() for p in found)
    h = hashlib.sha256()
    for p in sorted(files - excluded):
        h.update(p.relative_to(root.resolve()).as_posix().encode())
        h.update(b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


def code_version(patterns: Iterable[str], exclude: Iterable[str] = ()) -> str:
    """``"<package __version__>+<source_hash(patterns)>"``: the code part of cache keys.

    Examples
    --------
    >>> code_version(["_checks.py"]).startswith("0.")
    True
    """
    from .. import __version__
    return f"{__version__}+{source_hash(patterns, exclude)}"


# -- result encoding --------------------------------------------------------------------

_ARRAY_KINDS = "biufcU"


def encode_result(result: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Split a result dict into NPZ arrays and a JSON-able dict of the other values.

    Raises
    ------
    ValueError
        For keys starting with ``"__"``, object arrays, or values that are neither arrays
        nor JSON-able.

    Examples
    --------
    >>> arrays, meta = encode_result({"loss": np.arange(3.0), "status": "ok", "n": np.int64(2)})
    >>> sorted(arrays), sorted(meta.items())
    (['loss'], [('n', 2), ('status', 'ok')])
    """
    if not isinstance(result, Mapping):
        raise ValueError(f"a task must return a dict, got {type(result).__name__}")
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}
    for k, v in result.items():
        if not isinstance(k, str) or k.startswith("__"):
            raise ValueError(f"result keys must be strings not starting with '__', got {k!r}")
        if isinstance(v, np.ndarray):
            if v.dtype.kind not in _ARRAY_KINDS:
                raise ValueError(f"result {k!r}: arrays of dtype {v.dtype} cannot be cached")
            arrays[k] = v
        else:
            meta[k] = _meta_value(k, v)
    return arrays, meta


def _meta_value(k: str, v: Any) -> Any:
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer, int)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return float(v)
    if isinstance(v, (np.complexfloating, complex)):
        return {"__complex__": [float(np.real(v)), float(np.imag(v))]}
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, (list, tuple)):
        return [_meta_value(k, x) for x in v]
    if isinstance(v, Mapping):
        return {str(a): _meta_value(k, b) for a, b in v.items()}
    raise ValueError(f"result {k!r}: values of type {type(v).__name__} cannot be cached")


def _meta_decode(v: Any) -> Any:
    if isinstance(v, dict):
        if set(v) == {"__complex__"}:
            re, im = v["__complex__"]
            return complex(re, im)
        return {a: _meta_decode(b) for a, b in v.items()}
    if isinstance(v, list):
        return [_meta_decode(x) for x in v]
    return v


def decode_result(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> dict:
    """Inverse of :func:`encode_result` (keys in sorted order).

    Examples
    --------
    >>> decode_result(*encode_result({"x": np.ones(2), "s": "ok"}))
    {'s': 'ok', 'x': array([1., 1.])}
    """
    out = {k: np.asarray(v) for k, v in arrays.items()}
    out.update({k: _meta_decode(v) for k, v in meta.items()})
    return {k: out[k] for k in sorted(out)}


def normalise_result(result: Mapping[str, Any]) -> dict:
    """The result exactly as it will read back from the cache (numpy scalars become Python
    numbers, keys sorted, NaN/inf kept), so fresh and cached results are indistinguishable.

    Examples
    --------
    >>> normalise_result({"b": np.float64(1.5), "a": np.arange(2)})
    {'a': array([0, 1]), 'b': 1.5}
    """
    arrays, meta = encode_result(result)
    meta = json.loads(json.dumps(meta, allow_nan=True))
    return decode_result({k: np.array(v) for k, v in arrays.items()}, meta)


# -- files ------------------------------------------------------------------------------

def cache_path(cache_dir: str | os.PathLike, key: str) -> Path:
    """``<cache_dir>/<key>.npz``.

    Examples
    --------
    >>> cache_path("/tmp/c", "ab12").name
    'ab12.npz'
    """
    return Path(cache_dir) / f"{key}.npz"


def store_result(cache_dir: str | os.PathLike, key: str, result: Mapping[str, Any]) -> Path:
    """Write ``result`` atomically to ``<cache_dir>/<key>.npz``; returns the path.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> p = store_result(d, "k1", {"x": np.arange(3), "status": "ok"})
    >>> load_result(d, "k1")
    {'status': 'ok', 'x': array([0, 1, 2])}
    """
    arrays, meta = encode_result(result)
    payload = {k: v for k, v in arrays.items()}
    payload["__meta__"] = np.array(json.dumps(meta, allow_nan=True))
    payload["__key__"] = np.array(key)
    payload["__format__"] = np.array(FORMAT)
    return atomic_write_npz(cache_path(cache_dir, key), **payload)


def load_result(cache_dir: str | os.PathLike, key: str, *,
                on_corrupt: Callable[[Path, str], None] | None = None) -> dict | None:
    """The cached result of ``key``, or ``None`` if there is none or the file is unusable.

    An unusable file (truncated, not a zip, missing entries, another key or format) is
    renamed to ``<key>.npz.corrupt`` so that it is recomputed and can be inspected; an
    older ``.corrupt`` file of the same key is replaced, so at most the latest one is kept.

    Parameters
    ----------
    cache_dir : path
    key : str
    on_corrupt : callable, optional
        ``on_corrupt(corrupt_path, reason)``, called when an unusable file was set aside.

    Examples
    --------
    >>> import tempfile
    >>> load_result(tempfile.mkdtemp(), "missing") is None
    True
    """
    path = cache_path(cache_dir, key)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            names = set(f.files)
            if not {"__meta__", "__key__", "__format__"} <= names:
                raise ValueError("missing entries")
            if str(f["__key__"]) != key or str(f["__format__"]) != FORMAT:
                raise ValueError("key or format mismatch")
            meta = json.loads(str(f["__meta__"]))
            arrays = {k: f[k] for k in names if not k.startswith("__")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile,
            json.JSONDecodeError) as exc:
        target = path.with_name(path.name + ".corrupt")
        try:
            os.replace(path, target)
        except OSError:
            target = path
        if on_corrupt is not None:
            on_corrupt(target, f"{type(exc).__name__}: {exc}".splitlines()[0])
        return None
    return decode_result(arrays, meta)


def clean_temporary(cache_dir: str | os.PathLike) -> int:
    """Remove leftover temporary files of interrupted atomic writes; returns how many.

    Only call this while no other process writes into ``cache_dir`` (the runner holds a
    lock on the folder).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); (d / ".k.npz.x1.tmp").write_bytes(b"partial")
    7
    >>> clean_temporary(d), list(d.iterdir())
    (1, [])
    """
    n = 0
    d = Path(cache_dir)
    if not d.is_dir():
        return 0
    for p in d.glob(".*.tmp"):
        try:
            p.unlink()
            n += 1
        except FileNotFoundError:
            pass
    return n
