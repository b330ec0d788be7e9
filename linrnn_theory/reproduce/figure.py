"""The figure interface of ``reproduce``: one :class:`Figure` subclass per figure, found by
name in the registry :data:`FIGURES`.

Contract
--------
A figure turns a :class:`~.presets.Preset` into **tasks** (JSON-able parameter dicts, one
pure computation each), each task into a **result** (a flat dict of numpy arrays and
JSON-able scalars, cached by :mod:`linrnn_theory.sweep`), and the list of its results, in
the order of its tasks, into files and a report section:

* :meth:`Figure.tasks` ``(preset) -> list[dict]`` -- every dict made by :meth:`Figure.task`,
  so that it carries ``"figure"`` (the figure's name) and ``"kind"`` (one of
  :attr:`Figure.kinds`). The parameters are the whole input of the task: with a digest of
  the package source (:func:`code_scope`) they make its cache key.
* :meth:`Figure.run_task` ``(params) -> dict`` -- calls :meth:`Figure.simulate` for
  ``"sim"`` and :meth:`Figure.theory` for ``"theory"`` tasks. It must depend on ``params``
  only (tasks run in other processes, in any order).
* :meth:`Figure.collect` ``(results) -> dict`` -- the arrays of ``data/<name>.npz``.
* :meth:`Figure.figure` ``(results, outdir) -> list[Path]`` -- draws :meth:`Figure.plot`
  as ``<name>.png`` and ``.pdf``, writes ``data/<name>.npz`` and the CSV files of
  :meth:`Figure.tables`; returns the paths written.
* :meth:`Figure.report` ``(results) -> str`` -- the markdown section of ``report.md``,
  starting with a ``## `` heading.

Only :meth:`~Figure.tasks` and :meth:`~Figure.simulate` have no default. The defaults of
:meth:`~Figure.collect` and :meth:`~Figure.report` treat the results as a table with one
row per task: the scalars named in :attr:`Figure.columns` and the arrays named in
:attr:`Figure.run_arrays`. The default :meth:`~Figure.plot` draws nothing (the figure then
writes only its data and report section).

:func:`register_figure` adds a subclass (an instance of it) to :data:`FIGURES`;
:func:`linrnn_theory.reproduce.reproduce` runs the figures found there. The sweep calls
every task through :func:`run_task` (:data:`TASK_FUNCTION`), which finds the figure by the
task's ``"figure"``: a worker process knows the figures of the modules it has imported,
which are the built-in ones; a figure defined elsewhere runs its tasks in the calling
process (``jobs=1``).

Examples
--------
>>> sorted(FIGURES) == sorted(["fig3", "fig4", "diverge", "cosine", "nonlinear", "nscaling"])
True
>>> FIGURES["cosine"].kinds, FIGURES["fig4"].kinds
(('sim',), ('sim', 'theory'))
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from ..sweep import Task
from ..sweep.cache import code_version

__all__ = ["Figure", "FIGURES", "register_figure", "get_figure", "select_figures",
           "run_task", "sweep_task", "code_scope", "split_kinds", "axis", "TASK_FUNCTION",
           "PACKAGE_CODE"]

#: Every task's cache key includes a digest of all these package sources: a task may call
#: any module (diverge's simulations call the failure theory), so no hand-kept list of
#: dependencies can be trusted to be complete.
PACKAGE_CODE = ("**/*.py",)

#: The registered figures, name -> instance, in registration order (the order of the
#: manifest and of ``report.md``).
FIGURES: dict[str, "Figure"] = {}


class Figure(ABC):
    """One figure of ``reproduce``: its tasks, their computation, its files and report.

    Subclass it, set :attr:`name`, implement :meth:`tasks` and :meth:`simulate` (and
    :meth:`theory` if :attr:`kinds` has ``"theory"``), override what else differs, and
    register it with :func:`register_figure`. The contract is in the module docstring.

    Attributes
    ----------
    name : str
        Registry key, the ``"figure"`` of its tasks, the stem of its files and the marker
        of its report section.
    title : str
        Heading of the default report section.
    kinds : tuple of str
        Task kinds it runs: ``"sim"`` (:meth:`simulate`) and ``"theory"`` (:meth:`theory`).
    default : bool
        Part of ``reproduce`` when no figure is named (the tanh-RNN figures are not).
    columns : tuple of str
        Per-task scalars of the default :meth:`collect` and :meth:`report`.
    run_arrays : mapping of str to str
        Per-task arrays of the default :meth:`collect`: ``run{i}_<key>`` holds the
        result's entry ``run_arrays[key]`` of task ``i``.

    Examples
    --------
    >>> import tempfile
    >>> class Squares(Figure):
    ...     name, columns = "squares", ("x", "y")
    ...     def tasks(self, preset):
    ...         return [self.task("sim", x=float(x)) for x in (1, 2)]
    ...     def simulate(self, params):
    ...         return {**params, "y": params["x"] ** 2}
    >>> fig = Squares()
    >>> results = [fig.run_task(p) for p in fig.tasks(None)]
    >>> fig.collect(results)
    {'x': array([1., 2.]), 'y': array([1., 4.])}
    >>> [p.name for p in fig.figure(results, tempfile.mkdtemp())]
    ['squares.npz']
    >>> print(fig.report(results))
    ## squares
    <BLANKLINE>
    | x | y |
    |---|---|
    | 1 | 1 |
    | 2 | 4 |
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    kinds: ClassVar[tuple[str, ...]] = ("sim",)
    default: ClassVar[bool] = True
    columns: ClassVar[tuple[str, ...]] = ()
    run_arrays: ClassVar[Mapping[str, str]] = {}

    # -- tasks ---------------------------------------------------------------------------

    @abstractmethod
    def tasks(self, preset: Any) -> list[dict]:
        """Parameters of every task of this figure for ``preset`` (made by :meth:`task`)."""

    def task(self, kind: str, **params: Any) -> dict:
        """One task's parameters: ``{"figure": name, "kind": kind, **params}``.

        Examples
        --------
        >>> FIGURES["cosine"].task("sim", g=0.5)
        {'figure': 'cosine', 'kind': 'sim', 'g': 0.5}
        """
        return {"figure": self.name, "kind": kind, **params}

    def cell_tasks(self, section: Any, theory: Callable[[float, float], dict],
                   sim: Callable[[float, float], dict]) -> list[dict]:
        """Tasks over the (g, target) grid of a preset ``section`` (its ``g_values``,
        ``targets`` and ``seeds``): per cell one ``"theory"`` task with the parameters
        ``theory(g, target)``, then one ``"sim"`` per seed with ``sim(g, target)``.

        Examples
        --------
        >>> from types import SimpleNamespace
        >>> grid = SimpleNamespace(g_values=(0.0,), targets=(1.0, 2.0), seeds=(0,))
        >>> ts = FIGURES["fig3"].cell_tasks(grid, lambda g, z: {}, lambda g, z: {"lr": z})
        >>> [(t["kind"], t["target"], t.get("lr")) for t in ts]
        [('theory', 1.0, None), ('sim', 1.0, 1.0), ('theory', 2.0, None), ('sim', 2.0, 2.0)]
        """
        out = []
        for g in map(float, section.g_values):
            for z in map(float, section.targets):
                out.append(self.task("theory", g=g, target=z, **theory(g, z)))
                out += [self.task("sim", g=g, target=z, seed=int(s), **sim(g, z))
                        for s in section.seeds]
        return out

    def run_task(self, params: dict) -> dict:
        """Run one task of :meth:`tasks`: :meth:`simulate` or :meth:`theory` by its kind.

        Raises
        ------
        ValueError
            For a kind not in :attr:`kinds`.

        Examples
        --------
        >>> FIGURES["cosine"].run_task({"figure": "cosine", "kind": "theory"})
        Traceback (most recent call last):
        ...
        ValueError: kind must be 'sim', got 'theory'
        """
        kind = self.check_kind(params["kind"])
        return self.simulate(params) if kind == "sim" else self.theory(params)

    def check_kind(self, kind: str) -> str:
        """``kind`` if it is one of :attr:`kinds`.

        Raises
        ------
        ValueError
            Otherwise.

        Examples
        --------
        >>> FIGURES["fig4"].check_kind("theory")
        'theory'
        """
        if kind not in self.kinds:
            raise ValueError(f"kind must be {' or '.join(map(repr, self.kinds))}, "
                             f"got {kind!r}")
        return kind

    @abstractmethod
    def simulate(self, params: dict) -> dict:
        """Result of a ``"sim"`` task (pure: a function of ``params`` only)."""

    def batch_label(self, params: dict) -> str:
        """Tasks with one non-empty label are computed together by :meth:`run_batch`
        when they all need computing (default ``""``: one call per task).

        Examples
        --------
        >>> FIGURES["cosine"].batch_label({"figure": "cosine", "kind": "sim"})
        ''
        """
        return ""

    def run_batch(self, params: Sequence[dict]) -> list[dict]:
        """:meth:`run_task` of each task of one batch, in order; figures that label
        batches override it to share the work (each result must be the one
        :meth:`run_task` gives).

        Examples
        --------
        >>> from linrnn_theory.reproduce.presets import TINY
        >>> ts = FIGURES["cosine"].tasks(TINY)[:2]
        >>> [r["loss"].shape for r in FIGURES["cosine"].run_batch(ts)]
        [(11,), (11,)]
        """
        return [self.run_task(p) for p in params]

    def theory(self, params: dict) -> dict:
        """Result of a ``"theory"`` task; figures with ``"theory"`` in :attr:`kinds`
        implement it.

        Examples
        --------
        >>> FIGURES["cosine"].theory({"figure": "cosine", "kind": "theory"})
        Traceback (most recent call last):
        ...
        NotImplementedError: figure 'cosine' has no theory tasks
        """
        raise NotImplementedError(f"figure {self.name!r} has no theory tasks")

    # -- output --------------------------------------------------------------------------

    def collect(self, results: Sequence[dict]) -> dict[str, np.ndarray]:
        """The arrays of ``data/<name>.npz``; by default one entry per name in
        :attr:`columns` (its value in every result) and ``run{i}_<key>`` per entry of
        :attr:`run_arrays` and result ``i``.

        Examples
        --------
        >>> sorted(FIGURES["nscaling"].collect([])) == sorted(FIGURES["nscaling"].columns)
        True
        """
        data = {c: np.array([r[c] for r in results]) for c in self.columns}
        for i, r in enumerate(results):
            for key, entry in self.run_arrays.items():
                data[f"run{i}_{key}"] = np.asarray(r[entry])
        return data

    def tables(self, results: Sequence[dict], data: dict[str, np.ndarray]) -> dict[str, str]:
        """CSV files to write into ``data/``: file name -> text (default: none).

        Examples
        --------
        >>> FIGURES["cosine"].tables([], {})
        {}
        """
        return {}

    def plot(self, results: Sequence[dict], data: dict[str, np.ndarray]) -> Any:
        """The matplotlib figure (default ``None``: nothing to draw).

        Examples
        --------
        >>> FIGURES["nonlinear"].plot([], {}) is None
        True
        """
        return None

    def figure(self, results: Sequence[dict], outdir: str | os.PathLike) -> list[Path]:
        """Draw :meth:`plot` as ``<name>.png/.pdf``, write ``data/<name>.npz``
        (:meth:`collect`) and the :meth:`tables`; returns the paths, in that order.

        Examples
        --------
        >>> import tempfile
        >>> rs = [{"task": "romo", "g": 0.0, "N": 8, "seed": 0, "status": "ok"}]
        >>> class Runs(Figure):
        ...     name, columns = "runs", ("task", "N")
        ...     def tasks(self, preset): return []
        ...     def simulate(self, params): return params
        >>> [p.name for p in Runs().figure(rs, tempfile.mkdtemp())]
        ['runs.npz']
        """
        from .._io import atomic_write_npz, atomic_write_text
        from .plotting import save_figure
        outdir = Path(outdir)
        data = self.collect(results)
        drawn = self.plot(results, data)
        paths = [] if drawn is None else save_figure(drawn, outdir, self.name)
        paths.append(atomic_write_npz(outdir / "data" / f"{self.name}.npz", **data))
        for file, text in self.tables(results, data).items():
            paths.append(atomic_write_text(outdir / "data" / file, text))
        return paths

    def report(self, results: Sequence[dict]) -> str:
        """Markdown section of ``report.md``: by default the :attr:`title` (or name) and a
        table of the :attr:`columns` of every result.

        Examples
        --------
        >>> class Runs(Figure):
        ...     name, title, columns = "runs", "Runs", ("seed",)
        ...     def tasks(self, preset): return []
        ...     def simulate(self, params): return params
        >>> Runs().report([{"seed": 0}]).splitlines()[0]
        '## Runs'
        """
        from .report import fmt, md_table
        rows = [[fmt(r[c], "g") if isinstance(r[c], float) else r[c] for c in self.columns]
                for r in results]
        return f"## {self.title or self.name}\n\n" + md_table(self.columns, rows)


def split_kinds(results: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    """The ``"sim"`` and the ``"theory"`` results, each in the order given.

    Examples
    --------
    >>> split_kinds([{"kind": "theory", "g": 0}, {"kind": "sim", "g": 1}])
    ([{'kind': 'sim', 'g': 1}], [{'kind': 'theory', 'g': 0}])
    """
    return ([r for r in results if r["kind"] == "sim"],
            [r for r in results if r["kind"] == "theory"])


def axis(results: Sequence[dict], key: str) -> list:
    """The distinct values of ``key`` in ``results``, sorted: one axis of a data grid.

    Examples
    --------
    >>> axis([{"g": 0.5}, {"g": 0.0}, {"g": 0.5}], "g")
    [0.0, 0.5]
    """
    return sorted({r[key] for r in results})


def register_figure(cls: type[Figure]) -> type[Figure]:
    """Class decorator: add an instance of the :class:`Figure` subclass ``cls`` to
    :data:`FIGURES` under ``cls.name`` (replacing a figure of that name).

    Raises
    ------
    TypeError
        If ``cls`` is not a :class:`Figure` subclass.
    ValueError
        If ``cls.name`` is empty or ``"all"``, or ``cls.kinds`` is not a non-empty subset
        of ``("sim", "theory")``.

    Examples
    --------
    >>> @register_figure
    ... class Empty(Figure):
    ...     name, default = "empty", False
    ...     def tasks(self, preset): return []
    ...     def simulate(self, params): return {}
    >>> select_figures(["empty"]), "empty" in select_figures(None)
    (['empty'], False)
    >>> _ = FIGURES.pop("empty")                  # unregister again
    """
    if not (isinstance(cls, type) and issubclass(cls, Figure)):
        raise TypeError(f"register_figure needs a Figure subclass, got {cls!r}")
    if not cls.name or cls.name == "all":
        raise ValueError(f"{cls.__name__}.name must be a non-empty name other than 'all'")
    if not cls.kinds or not set(cls.kinds) <= {"sim", "theory"}:
        raise ValueError(f"{cls.__name__}.kinds must be among 'sim' and 'theory', "
                         f"got {cls.kinds!r}")
    FIGURES[cls.name] = cls()
    return cls


def get_figure(name: str) -> Figure:
    """The registered figure ``name``.

    Raises
    ------
    ValueError
        For a name that is not registered.

    Examples
    --------
    >>> get_figure("fig3").kinds
    ('sim', 'theory')
    >>> get_figure("fig9")
    Traceback (most recent call last):
    ...
    ValueError: figure must be one of fig3, fig4, diverge, cosine, nonlinear, nscaling, got 'fig9'
    """
    if name not in FIGURES:
        raise ValueError(f"figure must be one of {', '.join(FIGURES)}, got {name!r}")
    return FIGURES[name]


def select_figures(names: Sequence[str] | None) -> list[str]:
    """The figures to run for ``names``: the default figures for none, every figure for
    ``"all"``; duplicates dropped, in the order given.

    Raises
    ------
    ValueError
        For a name that is neither registered nor ``"all"``.

    Examples
    --------
    >>> select_figures(None)
    ['fig3', 'fig4', 'diverge', 'cosine']
    >>> select_figures(["cosine", "all"])[:3]
    ['cosine', 'fig3', 'fig4']
    """
    given = list(names) if names else [n for n, f in FIGURES.items() if f.default]
    out: list[str] = []
    for item in given:
        for name in (FIGURES if item == "all" else (item,)):
            if name not in FIGURES:
                raise ValueError(f"figure must be one of {', '.join(FIGURES)} or all, "
                                 f"got {name!r}")
            if name not in out:
                out.append(name)
    return out


def run_task(params: dict) -> dict:
    """The task function of every figure (:data:`TASK_FUNCTION`):
    ``get_figure(params["figure"]).run_task(params)``.

    Examples
    --------
    >>> from linrnn_theory.reproduce.presets import TINY
    >>> run_task(FIGURES["cosine"].tasks(TINY)[0])["loss"].shape
    (11,)
    """
    return get_figure(params["figure"]).run_task(params)


def run_batch(params: list[dict]) -> list[dict]:
    """The batch function of every figure (:data:`TASK_BATCH_FUNCTION`): the tasks of one
    batch label, all of one figure, through ``get_figure(figure).run_batch``.

    Examples
    --------
    >>> from linrnn_theory.reproduce.presets import TINY
    >>> len(run_batch(FIGURES["cosine"].tasks(TINY)[:2]))
    2
    """
    figures = {p["figure"] for p in params}
    if len(figures) != 1:
        raise ValueError(f"a batch holds the tasks of one figure, got {sorted(figures)}")
    return get_figure(figures.pop()).run_batch(params)


#: What the sweep calls for every task (``"module:function"``, part of the cache key).
TASK_FUNCTION = f"{__name__}:run_task"
#: What the sweep calls for a batch of tasks (:meth:`Figure.batch_label`; not in the key).
TASK_BATCH_FUNCTION = f"{__name__}:run_batch"


def code_scope(figure: str, kind: str) -> str:
    """Code version of the tasks of ``kind`` of ``figure``: the package version and a
    digest of every source file of the package (:data:`PACKAGE_CODE`).

    Any edit of the package's code, drawing code included, invalidates the cached tasks;
    a stale result is worse than a recomputed one.

    Raises
    ------
    ValueError
        For an unknown figure, or a kind the figure does not run.

    Examples
    --------
    >>> code_scope("fig3", "sim") == code_scope("diverge", "theory")
    True
    >>> code_scope("cosine", "theory")
    Traceback (most recent call last):
    ...
    ValueError: kind must be 'sim', got 'theory'
    """
    get_figure(figure).check_kind(kind)
    return code_version(PACKAGE_CODE)


def sweep_task(params: dict, version: str) -> Task:
    """The :class:`~linrnn_theory.sweep.Task` of one figure task under code ``version``
    (:func:`code_scope`).

    Examples
    --------
    >>> sweep_task({"figure": "cosine", "kind": "sim"}, "v").func == TASK_FUNCTION
    True
    """
    label = get_figure(params["figure"]).batch_label(params)
    return Task(TASK_FUNCTION, params, version, batch=label,
                batch_func=TASK_BATCH_FUNCTION if label else "")
