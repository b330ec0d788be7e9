"""Assemble ``report.md`` and ``manifest.json``; small statistics helpers for the
per-figure report sections.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = ["mean_sd", "fmt", "md_table", "assemble_report", "split_report", "manifest",
           "file_entry", "split_status", "SCHEMA"]

#: Schema name of ``manifest.json``.
SCHEMA = "linrnn-theory/reproduce-manifest/1"

_MARK = "<!-- linrnn-theory figure: {} -->"


def mean_sd(values: Iterable[float]) -> tuple[float, float, int]:
    """Mean, standard deviation and count of the finite values (others are left out).

    Examples
    --------
    >>> mean_sd([1.0, 3.0, float("nan")])
    (2.0, 1.0, 2)
    """
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std()), int(v.size)


def fmt(x: Any, spec: str = ".3g") -> str:
    """Number formatted with ``spec``; ``--`` for None/NaN.

    Examples
    --------
    >>> fmt(0.012345), fmt(float("nan")), fmt(None)
    ('0.0123', '--', '--')
    """
    if x is None:
        return "--"
    try:
        xf = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not np.isfinite(xf):
        return "--"
    return format(xf, spec)


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table.

    Examples
    --------
    >>> print(md_table(["a", "b"], [[1, 2]]))
    | a | b |
    |---|---|
    | 1 | 2 |
    """
    lines = ["| " + " | ".join(map(str, header)) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def split_status(results: Sequence[dict], ok: Sequence[str] = ("ok", "converged")
                 ) -> tuple[list[dict], list[dict]]:
    """``(good, bad)``: results whose ``status`` is in ``ok``, and the others.

    Examples
    --------
    >>> good, bad = split_status([{"status": "ok"}, {"status": "diverged"}])
    >>> len(good), len(bad)
    (1, 1)
    """
    good = [r for r in results if r.get("status") in ok]
    bad = [r for r in results if r.get("status") not in ok]
    return good, bad


def finite_size_caveats(N: int, g_values: Iterable[float]) -> list[str]:
    """Sentences for the report where the large-N theory is outside its validity at this
    ``N`` (the finite-N theory's indicator, :func:`linrnn_theory.theory.finite_n.validity`).

    Examples
    --------
    >>> finite_size_caveats(256, [0.3, 0.6])
    []
    >>> print(finite_size_caveats(256, [0.6, 0.9])[0][:78])
    **Finite size.** At N = 256 the large-N theory is outside its validity for g =
    """
    from ..theory.finite_n import VALIDITY_THRESHOLD, validity

    flagged = [(g, validity(float(g), int(N))) for g in sorted(set(map(float, g_values)))
               if 0 <= g < 1]
    flagged = [(g, v) for g, v in flagged if not v.ok]
    if not flagged:
        return []
    detail = "; ".join(f"g = {g:g}: initial learning rate varies by {100 * v.rate_spread:.0f} %"
                       f" between networks, bulk-edge fluctuation {100 * v.edge_ratio:.0f} % "
                       "of its distance to 1" for g, v in flagged)
    return [f"**Finite size.** At N = {N} the large-N theory is outside its validity for "
            f"g = {', '.join(f'{g:g}' for g, _ in flagged)} ({detail}; above "
            f"{100 * VALIDITY_THRESHOLD:.0f} %). There the networks differ from each other by "
            "more than the expansion in 1/N covers, some learn much more slowly than the "
            "large-N flow, and the errors against it above measure that, not a defect of the "
            "flow: theory.predict(method='finite_n', N=N) gives the spread where it holds, "
            "method='instance' each network's own reduced ODE."]


def assemble_report(preset_name: str, sections: dict[str, str], header: dict[str, Any]) -> str:
    """``report.md``: a header (command, preset, timings) and one section per figure.

    Examples
    --------
    >>> print(assemble_report("quick", {"fig3": "text"}, {"command": "x"}).splitlines()[0])
    # linrnn-theory reproduce: report (preset quick)
    """
    lines = [f"# linrnn-theory reproduce: report (preset {preset_name})", ""]
    for k, v in header.items():
        lines.append(f"- **{k}**: {v}")
    lines.append("")
    for name, text in sections.items():
        lines.append(_MARK.format(name))
        lines.append(text.rstrip())
        lines.append("")
    return "\n".join(lines)


def split_report(text: str) -> dict[str, str]:
    """The per-figure sections of a ``report.md`` written by :func:`assemble_report`.

    Each section starts at a marker comment naming its figure; text before the first
    marker (the header) is not returned.

    Examples
    --------
    >>> split_report(assemble_report("tiny", {"fig3": "A", "cosine": "B"}, {}))
    {'fig3': 'A', 'cosine': 'B'}
    """
    head, _, _ = _MARK.partition("{}")
    out: dict[str, str] = {}
    name = None
    buf: list[str] = []
    for line in text.splitlines():
        if line.startswith(head) and line.endswith(" -->"):
            if name is not None:
                out[name] = "\n".join(buf).strip()
            name = line[len(head):-4].strip()
            buf = []
        elif name is not None:
            buf.append(line)
    if name is not None:
        out[name] = "\n".join(buf).strip()
    return out


def file_entry(path: str | os.PathLike, root: str | os.PathLike) -> dict[str, Any]:
    """``{"path", "bytes", "sha256"}`` of a file (path relative to ``root``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "a.txt").write_text("hi")
    2
    >>> file_entry(d / "a.txt", d)["bytes"]
    2
    """
    p = Path(path)
    data = p.read_bytes()
    return {"path": p.relative_to(root).as_posix() if p.is_relative_to(root) else str(p),
            "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _versions() -> dict[str, str]:
    import importlib.metadata as md
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("linrnn-theory", "numpy", "scipy", "matplotlib", "joblib", "dask",
                "distributed", "tqdm"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def manifest(*, command: str, preset: dict, figures: dict[str, Any], files: list[dict],
             timings: dict[str, float], sweep: dict[str, Any]) -> dict[str, Any]:
    """The ``manifest.json`` document (schema ``linrnn-theory/reproduce-manifest/1``).

    Examples
    --------
    >>> m = manifest(command="c", preset={}, figures={}, files=[], timings={}, sweep={})
    >>> m["schema"]
    'linrnn-theory/reproduce-manifest/1'
    """
    return {"schema": SCHEMA, "command": command,
            "versions": _versions(), "preset": preset, "figures": figures,
            "sweep": sweep, "timings_s": timings, "files": files}
