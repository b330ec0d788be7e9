"""Reproduce the paper's results: tasks, figures, data and a report per figure.

Each figure is a :class:`~.figure.Figure` registered in :data:`FIGURES` (the interface and
its contract: :mod:`.figure`):

* ``fig3`` -- loss and singular values of ``Delta W`` over ``beta^2 tau``, with theory.
* ``fig4`` -- learning time, ``|Delta W|``, gradient norm, shuffled-W0 loss against g.
* ``diverge`` -- failure of learning for large targets.
* ``cosine`` -- the autonomous cosine task.
* ``nonlinear`` -- the tanh-RNN experiments (:mod:`linrnn_theory.nonlinear`).
* ``nscaling`` -- scaling of ``Delta W`` of the tanh-RNN tasks with N.

Parameters: :mod:`.presets`; command line: ``linrnn-theory reproduce`` (see
``docs/reproduce.md``); execution and caching: :mod:`linrnn_theory.sweep`, every task
keyed on its parameters and :func:`code_scope`.

Examples
--------
>>> from linrnn_theory.reproduce import FIGURES, select_figures
>>> select_figures(None)
['fig3', 'fig4', 'diverge', 'cosine']
>>> type(FIGURES["fig3"]).__module__
'linrnn_theory.reproduce.fig3'
"""

from __future__ import annotations

from .figure import (FIGURES, PACKAGE_CODE, Figure, code_scope, get_figure, register_figure,
                     select_figures, sweep_task)
from . import fig3, fig4, diverge, cosine, nonlinear, nscaling  # noqa: F401,E402 (register)

__all__ = ["reproduce", "previous_figures", "Figure", "FIGURES", "register_figure",
           "get_figure", "select_figures", "code_scope", "PACKAGE_CODE"]


def _cost(params: dict) -> float:
    """Rough relative cost of a task, to start long tasks first (better load balance)."""
    if params.get("kind") == "theory":
        # the reduced ODE is slowest for large targets and g; run these first
        return 1e12 * (1.0 + params.get("g", 0.0)) * (1.0 + params.get("target", 0.0))
    n = float(params.get("N", 64))
    epochs = float(params.get("epochs", 100))
    steps = params.get("t_max", 1.0) / params.get("dt", 1.0)
    if params.get("mode") == "fixed_point":
        steps = 1.0
    return n * n * epochs * steps


def previous_figures(out, exclude) -> tuple[dict, dict, list]:
    """What an earlier run left in ``out`` for figures other than ``exclude``.

    Reads ``out/manifest.json`` and ``out/report.md``. A figure is kept when its manifest
    entry is there and all its files still exist in ``out``; its file entries are
    re-hashed and its report section is taken unchanged from ``report.md``. An unreadable
    manifest (or another schema) keeps nothing.

    Parameters
    ----------
    out : path
        The output folder.
    exclude : iterable of str
        Figures being rerun (their old entries are replaced).

    Returns
    -------
    (dict, dict, list)
        ``figures`` entries of the manifest, report sections (figure -> markdown) and
        ``files`` entries of the kept figures.

    Examples
    --------
    >>> import tempfile
    >>> previous_figures(tempfile.mkdtemp(), ["fig3"])
    ({}, {}, [])
    """
    import json
    from pathlib import Path

    from .report import SCHEMA, file_entry, split_report

    out = Path(out)
    try:
        old = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, {}, []
    if not isinstance(old, dict) or old.get("schema") != SCHEMA \
            or not isinstance(old.get("figures"), dict):
        return {}, {}, []
    try:
        old_sections = split_report((out / "report.md").read_text(encoding="utf-8"))
    except OSError:
        old_sections = {}
    exclude = set(exclude)
    info: dict = {}
    sections: dict = {}
    files: list = []
    for name, entry in old["figures"].items():
        if name in exclude or name not in FIGURES or not isinstance(entry, dict):
            continue
        paths = [out / f for f in entry.get("files", [])]
        if not paths or not all(p.is_file() for p in paths):
            continue
        info[name] = entry
        if name in old_sections:
            sections[name] = old_sections[name]
        files += [file_entry(p, out) for p in paths]
    return info, sections, files


def reproduce(figures=None, preset="quick", outdir="reproduce_out", *, backend: str = "loky",
              jobs: int | None = None, scheduler: str | None = None, fresh: bool = False,
              progress: bool = True, command: str = "") -> dict:
    """Run the tasks of ``figures`` (cached), draw the figures, write data, report, manifest.

    Parameters
    ----------
    figures : sequence of str, optional
        Names from :data:`FIGURES` or ``"all"`` (default: the figures marked
        :attr:`~.figure.Figure.default`, the four linear ones).
    preset : str or Preset
        ``"quick"``, ``"full"``, ``"tiny"`` or a :class:`~.presets.Preset`.
    outdir : path
        Output folder: figures, ``data/``, ``report.md``, ``manifest.json``, ``cache/``.
    backend, jobs, scheduler, fresh, progress
        See :func:`linrnn_theory.sweep.run_tasks`.
    command : str
        Command line recorded in the manifest.

    Returns
    -------
    dict
        The manifest (also written to ``outdir/manifest.json``).

    Examples
    --------
    >>> import tempfile
    >>> m = reproduce(["cosine"], "tiny", tempfile.mkdtemp(), jobs=1, progress=False)
    >>> m["sweep"]["computed"], sorted(f["path"] for f in m["files"])[:2]
    (2, ['cosine.pdf', 'cosine.png'])
    """
    import time
    from pathlib import Path

    from .._io import atomic_write_json, atomic_write_text
    from ..sweep import Task, run_tasks
    from .presets import Preset, get_preset
    from .report import assemble_report, file_entry, manifest

    from ..sweep.backends import check_backend
    from .presets import validate_preset

    t_start = time.perf_counter()
    names = select_figures(figures)
    pre = validate_preset(preset if isinstance(preset, Preset) else get_preset(preset))
    check_backend(backend)
    if jobs is not None and int(jobs) < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if scheduler is not None and backend != "dask":
        raise ValueError("scheduler is only used with backend 'dask'")
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {str(out)!r} exists and is not a directory")
    tasks: list[Task] = []
    owner: list[str] = []
    versions: dict[str, dict[str, str]] = {}
    for name in names:
        versions[name] = {}
        for p in FIGURES[name].tasks(pre):
            kind = p["kind"]
            if kind not in versions[name]:
                versions[name][kind] = code_scope(name, kind)
            tasks.append(sweep_task(p, versions[name][kind]))
            owner.append(name)
    order = sorted(range(len(tasks)), key=lambda i: -_cost(tasks[i].params))
    out.mkdir(parents=True, exist_ok=True)
    outcome = run_tasks([tasks[i] for i in order], out / "cache", backend=backend, jobs=jobs,
                        scheduler=scheduler, fresh=fresh, progress=progress,
                        desc=f"reproduce {' '.join(names)} ({pre.name})")
    results = [None] * len(tasks)
    computed = [False] * len(tasks)
    seconds = [0.0] * len(tasks)
    cpu = [0.0] * len(tasks)
    for pos, i in enumerate(order):
        results[i] = outcome.results[pos]
        computed[i] = outcome.was_computed[pos]
        seconds[i] = outcome.seconds[pos]
        cpu[i] = outcome.cpu_seconds[pos]
    t_sweep = time.perf_counter()
    sections: dict[str, str] = {}
    fig_info: dict[str, dict] = {}
    files: list = []
    for name in names:
        fig = FIGURES[name]
        idx = [i for i, o in enumerate(owner) if o == name]
        res = [results[i] for i in idx]
        t0 = time.perf_counter()
        paths = fig.figure(res, out)
        sections[name] = fig.report(res)
        secs = [seconds[i] for i in idx]
        fig_info[name] = {
            "tasks": len(idx), "computed": sum(computed[i] for i in idx),
            "reused": sum(not computed[i] for i in idx),
            "task_wall_s": float(sum(s for s in secs if s == s)),
            "task_cpu_s": float(sum(cpu[i] for i in idx if cpu[i] == cpu[i])),
            "figure_and_report_s": time.perf_counter() - t0,
            "code_versions": versions[name],
            "files": [str(Path(p).relative_to(out)) for p in paths],
            "preset": pre.name, "command": command}
        files += [file_entry(p, out) for p in paths]
    kept_info, kept_sections, kept_files = previous_figures(out, exclude=names)
    fig_info = {n: ({**kept_info, **fig_info})[n] for n in FIGURES
                if n in kept_info or n in fig_info}          # in the order of FIGURES
    sections = {n: ({**kept_sections, **sections})[n] for n in FIGURES
                if n in kept_sections or n in sections}
    files = kept_files + files
    recovered = outcome.recovered
    total = time.perf_counter() - t_start
    header = {
        "command": f"`{command}`" if command else "(library call)",
        "preset": f"{pre.name}" + (f" -- {'; '.join(f'{k}: {v}' for k, v in pre.notes.items() if k in names or k in ('all', 'overrides'))}"
                                   if pre.notes else ""),
        "tasks": f"{outcome.summary()['tasks']} ({outcome.computed} computed, "
                 f"{outcome.reused} reused from the cache) on {outcome.executor}",
        "wall time": f"{total:.1f} s (sweep {t_sweep - t_start:.1f} s, figures and report "
                     f"{total - (t_sweep - t_start):.1f} s); CPU time of all tasks "
                     f"{sum(c for c in cpu if c == c):.1f} s",
    }
    if recovered:
        header["recovered cache files"] = (
            f"{len(recovered)} unusable cache file(s) were set aside as `cache/*.corrupt` "
            "and their tasks recomputed: " + ", ".join(
                f"`{r['file']}` ({r['reason']})" for r in recovered))
    if kept_info:
        header["kept from earlier runs"] = (
            ", ".join(kept_info) + " (not rerun; their sections below are unchanged, "
            "see `figures.<name>.command` in manifest.json)")
    report_path = atomic_write_text(out / "report.md", assemble_report(pre.name, sections,
                                                                        header))
    files.append(file_entry(report_path, out))
    doc = manifest(command=command, preset=pre.as_dict(), figures=fig_info, files=files,
                   timings={"total": total, "sweep": t_sweep - t_start,
                            "figures_and_report": total - (t_sweep - t_start)},
                   sweep={**outcome.summary(), "backend": backend, "jobs": jobs,
                          "scheduler": scheduler, "fresh": fresh,
                          "cache": str((out / "cache").resolve()),
                          "recovered_cache_files": recovered})
    atomic_write_json(out / "manifest.json", doc)
    return doc
