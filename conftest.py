"""Shared pytest configuration (tests and doctests): hypothesis profiles, one BLAS thread.

Profiles (select with the environment variable ``HYPOTHESIS_PROFILE``):

* ``default`` -- CI: ~25 examples per property, no deadline (the first call of a numerical
  routine pays for imports and BLAS warm-up), random seeds (``derandomize=False``: every
  run explores new examples; a failure prints the blob to reproduce it).
* ``thorough`` -- 300 examples per property, for a long local run:
  ``HYPOTHESIS_PROFILE=thorough pytest -m property``.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("default", deadline=None, max_examples=25, derandomize=False,
                          print_blob=True)
settings.register_profile("thorough", parent=settings.get_profile("default"),
                          max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


import pytest  # noqa: E402

from linrnn_theory._blas import limit_blas_threads  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _single_blas_thread():
    """All tests run with one OpenBLAS thread: the matrices here are small, and two BLAS
    threads on a shared 2-core machine are up to ~7x slower (measured), besides making
    timings unpredictable."""
    with limit_blas_threads(1):
        yield


# ------------------------------------------------------------- doctests of derivations/
# The repository folder derivations/ is the package linrnn_theory.derivations (pyproject:
# package-dir). Collected by path, pytest would import its files a second time as a
# top-level package ``derivations``; these hooks collect the folder as a plain directory and
# import each file under its installed name, so every doctest runs once, against the module
# that the library itself uses.

from pathlib import Path  # noqa: E402

from _pytest.doctest import DoctestModule  # noqa: E402

_DERIVATIONS_DIR = Path(__file__).resolve().parent / "derivations"
_DERIVATIONS_PACKAGE = "linrnn_theory.derivations"


def _derivations_module_name(path: Path) -> str | None:
    """The installed module name of a file of derivations/ (``None`` for other files)."""
    path = Path(path).resolve()
    if path.suffix != ".py" or path.parent != _DERIVATIONS_DIR:
        return None
    return (_DERIVATIONS_PACKAGE if path.stem == "__init__"
            else f"{_DERIVATIONS_PACKAGE}.{path.stem}")


class _DerivationsDoctestModule(DoctestModule):
    """Doctests of a file of derivations/, imported as ``linrnn_theory.derivations.*``."""

    def _getobj(self):
        import importlib

        name = _derivations_module_name(self.path)
        try:
            module = importlib.import_module(name)
        except Exception as exc:
            raise self.CollectError(f"cannot import {name}: {exc!r}") from exc
        if Path(module.__file__).resolve() != Path(self.path).resolve():
            raise self.CollectError(f"{name} is {module.__file__}, not {self.path}: "
                                    "reinstall with pip install -e .")
        return module


@pytest.hookimpl(tryfirst=True)
def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """derivations/ as a plain directory (a ``Package`` node would import ``__init__.py``
    as the top-level ``derivations``)."""
    if Path(path).resolve() == _DERIVATIONS_DIR:
        return pytest.Dir.from_parent(parent, path=Path(path))
    return None


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    """Replace the doctest collector of a derivations/ file by one that imports it as
    ``linrnn_theory.derivations.<name>``."""
    collected = yield
    if _derivations_module_name(file_path) is None:
        return collected
    return [_DerivationsDoctestModule.from_parent(parent, path=Path(file_path))
            if type(node) is DoctestModule else node for node in collected]
