"""Packaging of the derivations and where ``derive`` may write the generated module.

* the derivations are the subpackage ``linrnn_theory.derivations``; the repository's
  top-level ``derivations/`` is a link to it (no top-level ``derivations`` package is
  installed);
  the package list of ``pyproject.toml`` names every package folder; pytest collects the
  doctests of ``derivations/*.py`` once, under their installed names.
* ``derive --write-module`` rewrites ``linrnn_theory/theory/_series_coefficients.py`` only
  in a writable source checkout (:func:`linrnn_theory.derivations.generate.source_checkout`);
  for an installed package it exits with status 2 and one error line, writing nothing;
  ``--module-path PATH`` writes the module to ``PATH`` (atomically), importable from there.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from linrnn_theory import cli
from linrnn_theory.derivations import generate as gen

REPO = Path(__file__).resolve().parent.parent
THIRD_ORDER = "zhat*(8*beta*zhat**2 + 1)/6"


def _layout(root: Path, checkout: bool) -> Path:
    """A package folder ``root/linrnn_theory`` with its generated module (content
    ``ORIGINAL``); ``checkout`` adds ``pyproject.toml`` and ``derivations/generate.py``
    beside it. Returns the generated module's path."""
    module = root / "linrnn_theory" / "theory" / "_series_coefficients.py"
    module.parent.mkdir(parents=True)
    module.write_text("ORIGINAL\n")
    if checkout:
        (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
        (root / "derivations").mkdir()
        (root / "derivations" / "generate.py").write_text("")
    return module


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _one_error_line(rc: int, err: str, *needles: str) -> str:
    assert rc == 2
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("linrnn-theory derive: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, err)
    return lines[0]


@pytest.fixture(scope="module")
def derived3() -> dict:
    """The order-3 derivation (sympy, a few seconds), computed once."""
    return gen.derive_all(3)


@pytest.fixture
def cached_derivation(derived3, monkeypatch):
    """``derive_all`` answering from :func:`derived3` (order 3 only)."""
    calls: list[int] = []

    def derive_all(order: int) -> dict:
        calls.append(order)
        assert order == 3
        return derived3
    monkeypatch.setattr(gen, "derive_all", derive_all)
    return calls


@pytest.fixture
def no_derivation(monkeypatch):
    """``derive_all`` that fails the test: a refusal must come before the derivation."""
    def derive_all(order: int) -> dict:
        raise AssertionError("derive_all must not run when the write is refused")
    monkeypatch.setattr(gen, "derive_all", derive_all)


# ------------------------------------------------------------------ the decision itself

def test_source_checkout_accepts_only_a_checkout_layout(tmp_path):
    installed = _layout(tmp_path / "site-packages", checkout=False)
    assert gen.source_checkout(installed.parent.parent) is None
    checkout = _layout(tmp_path / "repo", checkout=True)
    assert gen.source_checkout(checkout.parent.parent) == (tmp_path / "repo").resolve()
    # half a checkout is not one: pyproject.toml without derivations/ ...
    half = _layout(tmp_path / "half", checkout=False)
    (tmp_path / "half" / "pyproject.toml").write_text("")
    assert gen.source_checkout(half.parent.parent) is None
    # ... nor derivations/ without pyproject.toml (another distribution's folder)
    other = _layout(tmp_path / "other", checkout=True)
    (tmp_path / "other" / "pyproject.toml").unlink()
    assert gen.source_checkout(other.parent.parent) is None


def test_source_checkout_rejects_a_read_only_package(tmp_path, monkeypatch):
    module = _layout(tmp_path / "repo", checkout=True)
    theory_dir = module.parent.resolve()
    real_access = os.access
    monkeypatch.setattr(gen.os, "access", lambda p, mode, *a, **k: (
        False if Path(p).resolve() == theory_dir and mode & os.W_OK
        else real_access(p, mode, *a, **k)))
    assert gen.source_checkout(module.parent.parent) is None


def test_this_repository_is_a_source_checkout():
    """The package the tests import is the repository's own (editable install)."""
    assert gen.MODULE_PATH == REPO / "linrnn_theory" / "theory" / "_series_coefficients.py"
    assert gen.source_checkout() == REPO


# ----------------------------------------------------------------------------- the CLI

def test_write_module_refused_for_an_installed_package(tmp_path, monkeypatch, capsys,
                                                       no_derivation):
    module = _layout(tmp_path / "site-packages", checkout=False)
    monkeypatch.setattr(gen, "MODULE_PATH", module)
    before = _snapshot(tmp_path)
    rc = cli.main(["derive", "--order", "3", "--write-module"])
    captured = capsys.readouterr()
    _one_error_line(rc, captured.err, "installed package", "--module-path",
                    str(module.parent.parent))
    assert captured.out == ""
    assert _snapshot(tmp_path) == before


def test_write_module_refused_with_out_writes_no_rendering(tmp_path, monkeypatch, capsys,
                                                           no_derivation):
    module = _layout(tmp_path / "site-packages", checkout=False)
    monkeypatch.setattr(gen, "MODULE_PATH", module)
    out = tmp_path / "coefficients.json"
    rc = cli.main(["derive", "--order", "3", "--format", "json", "--out", str(out),
                   "--write-module"])
    _one_error_line(rc, capsys.readouterr().err, "installed package")
    assert not out.exists()
    assert module.read_text() == "ORIGINAL\n"


def test_write_module_into_a_checkout(tmp_path, monkeypatch, capsys, cached_derivation):
    module = _layout(tmp_path / "repo", checkout=True)
    monkeypatch.setattr(gen, "MODULE_PATH", module)
    assert cli.main(["derive", "--order", "3", "--write-module"]) == 0
    assert f"wrote {module}" in capsys.readouterr().out
    assert cached_derivation == [3]
    assert "ORDER = 3" in module.read_text()
    # the atomic writer leaves no temporary file behind
    assert sorted(p.name for p in module.parent.iterdir()) == [module.name]


def test_module_path_writes_an_importable_module(tmp_path, monkeypatch, capsys,
                                                 cached_derivation):
    """Works for an installed package too: the package itself stays untouched."""
    installed = _layout(tmp_path / "site-packages", checkout=False)
    monkeypatch.setattr(gen, "MODULE_PATH", installed)
    target = tmp_path / "elsewhere" / "coeffs3.py"          # parent created on write
    assert cli.main(["derive", "--order", "3", "--module-path", str(target)]) == 0
    out = capsys.readouterr().out
    assert f"tau_tilde^3: {THIRD_ORDER}" in out and f"wrote {target}" in out
    assert installed.read_text() == "ORIGINAL\n"
    spec = importlib.util.spec_from_file_location("coeffs3", target)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.ORDER == 3
    zhat, beta = 0.7, 1.9
    assert mod.readout_coefficients(zhat, beta)[3] == pytest.approx(
        zhat * (8 * beta * zhat ** 2 + 1) / 6, rel=1e-14)
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]


def test_module_path_must_be_a_file(tmp_path, capsys, no_derivation):
    rc = cli.main(["derive", "--order", "3", "--module-path", str(tmp_path)])
    _one_error_line(rc, capsys.readouterr().err, "--module-path", "directory")
    assert list(tmp_path.iterdir()) == []


def test_library_main_refuses_an_installed_package(tmp_path, monkeypatch, no_derivation):
    module = _layout(tmp_path / "site-packages", checkout=False)
    monkeypatch.setattr(gen, "MODULE_PATH", module)
    with pytest.raises(ValueError, match="installed package"):
        gen.main(3, write_module=True)
    assert module.read_text() == "ORIGINAL\n"


# ------------------------------------------------------------------------- packaging

def test_derivations_live_in_the_package_and_the_top_level_folder_links_there():
    """``packages.find`` installs ``linrnn_theory*`` only, the derivations are a real
    subpackage folder, and the top-level ``derivations/`` is a link to it."""
    tomllib = pytest.importorskip("tomllib")
    conf = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert conf["packages"]["find"]["include"] == ["linrnn_theory*"]
    assert "package-dir" not in conf
    pkg = REPO / "linrnn_theory" / "derivations"
    assert pkg.is_dir() and not pkg.is_symlink() and (pkg / "__init__.py").is_file()
    top = REPO / "derivations"
    assert top.is_symlink() and top.resolve() == pkg.resolve()


def test_no_top_level_derivations_outside_the_repository(tmp_path):
    """Outside the repository (editable or plain install) ``linrnn_theory.derivations``
    imports from inside the installed ``linrnn_theory`` and there is no top-level
    ``derivations``."""
    code = ("import importlib.util, pathlib, linrnn_theory, linrnn_theory.derivations.generate "
            "as g; print(importlib.util.find_spec('derivations') is None, "
            "pathlib.Path(g.__file__).resolve().parent == "
            "pathlib.Path(linrnn_theory.__file__).resolve().parent / 'derivations')")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["True", "True"]


def test_doctests_of_derivations_collected_once_under_the_package_name():
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "--collect-only", "linrnn_theory/derivations"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    ids = [line for line in res.stdout.splitlines() if "::" in line]
    assert ids, res.stdout
    assert all("::linrnn_theory.derivations." in i for i in ids), ids
    assert len(ids) == len(set(ids))
    assert ("linrnn_theory/derivations/generate.py::linrnn_theory.derivations.generate."
            "derive_all") in ids


def _can_build_wheels_offline() -> bool:
    """Whether pip can build this project without build isolation (no download)."""
    return (importlib.util.find_spec("wheel") is not None
            or importlib.util.find_spec("setuptools.command.bdist_wheel") is not None)


def _install(src: Path, target: Path) -> None:
    """Install the project at ``src`` into ``target``, not editable and offline: ``pip
    install --target`` where a wheel can be built without downloads, otherwise setuptools'
    ``build_py`` from the same ``pyproject.toml`` (the files a pure-Python wheel holds)."""
    if _can_build_wheels_offline():
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps",
               "--no-build-isolation", "--no-compile", "--target", str(target), str(src)]
    else:
        cmd = [sys.executable, "-c", "import setuptools; setuptools.setup()", "-q",
               "build_py", "--build-lib", str(target)]
    res = subprocess.run(cmd, cwd=src, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


def test_non_editable_install(tmp_path):
    """A non-editable install holds only ``linrnn_theory`` (with ``derivations`` inside), no
    top-level ``derivations``; ``derive --write-module`` refuses there and writes nothing.
    Built from a copy of the sources, so the shared checkout gets no build folders."""
    src, target = tmp_path / "src", tmp_path / "site"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(REPO / "linrnn_theory", src / "linrnn_theory", ignore=ignore)
    (src / "derivations").symlink_to(Path("linrnn_theory") / "derivations")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    _install(src, target)
    assert sorted(p.name for p in target.iterdir() if p.is_dir()
                  and not p.name.endswith((".dist-info", ".egg-info"))) == ["linrnn_theory"]
    assert (target / "linrnn_theory" / "py.typed").is_file()
    assert (target / "linrnn_theory" / "derivations" / "generate.py").is_file()
    assert not (target / "derivations").exists()

    env = {**os.environ, "PYTHONPATH": str(target)}
    code = ("import importlib.util, linrnn_theory.derivations.generate as g; "
            "print(g.__file__); print(g.MODULE_PATH); print(g.source_checkout()); "
            "print(importlib.util.find_spec('derivations'))")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    file, module, checkout, top = res.stdout.split("\n")[:4]
    assert Path(file).resolve() == (target / "linrnn_theory" / "derivations"
                                    / "generate.py").resolve()
    module = Path(module)
    assert module.resolve() == (target / "linrnn_theory" / "theory"
                                / "_series_coefficients.py").resolve()
    assert checkout == "None" and top == "None"

    before = module.read_bytes()
    res = subprocess.run([sys.executable, "-m", "linrnn_theory.cli", "derive", "--order", "3",
                          "--write-module"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    _one_error_line(res.returncode, res.stderr, "installed package", "--module-path")
    assert res.stdout == ""
    assert module.read_bytes() == before
    assert sorted(p.name for p in module.parent.glob(".*")) == []
