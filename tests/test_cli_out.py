"""``--out`` destinations are probed before any work starts, and errors name the user's
path (never the hidden temporary file of the atomic writer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from linrnn_theory.cli import main

UNWRITABLE = "/proc/o.json"     # mode says writable, but no regular file can be created


@pytest.mark.parametrize("argv", [
    ["simulate", "--N", "16", "--g", "0.3", "--target", "1", "--lr0", "0.05",
     "--epochs", "3"],
    ["derive", "--order", "3"],
    ["bench", "--N", "16", "--epochs", "2"],
    ["predict", "--g", "0.3", "--target", "1", "--tau-max", "0.1", "--n-tau", "3"],
])
def test_unwritable_out_fails_before_the_work_naming_the_path(argv, capsys, monkeypatch):
    if not Path("/proc").is_dir():
        pytest.skip("needs /proc")
    import linrnn_theory._io as io

    def never(*_a, **_k):
        raise AssertionError("the writer was reached: the check came too late")
    monkeypatch.setattr(io, "atomic_write_bytes", never)
    assert main(argv + ["--out", UNWRITABLE]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert UNWRITABLE in err[0] and ".tmp" not in err[0] and "Traceback" not in err[0]


def test_bench_out_prints_wrote(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["bench", "--N", "16", "--epochs", "2", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert json.loads(out.read_text())["schema"].startswith("linrnn-theory/bench")
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]
