"""Write a matplotlib figure as PNG and PDF, atomically and byte-reproducibly.

The PDF's ``CreationDate``/``ModDate`` and the PNG's ``Software`` tag are left out, so that
identical runs write identical files (and the manifest's sha256 sums stay the same).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

__all__ = ["save_figure"]


def save_figure(fig, outdir: str | os.PathLike, stem: str, dpi: int = 150) -> list[Path]:
    """Save ``fig`` as ``<outdir>/<stem>.png`` and ``.pdf`` (atomically) and close it.

    Examples
    --------
    >>> import tempfile
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots(figsize=(2, 2))
    >>> [p.suffix for p in save_figure(fig, tempfile.mkdtemp(), "x")]
    ['.png', '.pdf']
    """
    import matplotlib.pyplot as plt

    from ._io import atomic_write_bytes
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        buf = io.BytesIO()
        meta = ({"CreationDate": None, "ModDate": None} if ext == "pdf" else
                {"Software": None})
        fig.savefig(buf, format=ext, dpi=dpi, metadata=meta)
        paths.append(atomic_write_bytes(outdir / f"{stem}.{ext}", buf.getvalue()))
    plt.close(fig)
    return paths
