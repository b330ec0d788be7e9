"""``reproduce nscaling``: tasks from the preset, the per-run numbers against the stored
singular values, the data files read back, the slope and the preset checks."""

from __future__ import annotations

import numpy as np
import pytest

from linrnn_theory.reproduce import FIGURES, reproduce
from linrnn_theory.reproduce.nscaling import (CSV_COLUMNS, count_large, loglog_slope,
                                              read_csv, summarise)
from linrnn_theory.reproduce.presets import FULL, QUICK, TINY, with_overrides

tasks = FIGURES["nscaling"].tasks


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("nscaling")
    manifest = reproduce(["nscaling"], "tiny", out, jobs=1, progress=False)
    return out, manifest


def test_full_preset_is_the_papers():
    p = FULL.nscaling
    assert p.N_values == (64, 128, 256, 512, 1024) and p.g_values == (0.0, 0.9, 1.8)
    assert dict(p.epochs) == {"flipflop": 1000, "mante": 2000, "romo": 6000}
    assert p.lr_scale == 0.05 and p.batch == 32 and len(p.seeds) == 5
    ts = tasks(FULL)
    assert len(ts) == 3 * 3 * 5 * 5
    for t in ts:
        assert t["lr"] == pytest.approx(0.05 / t["N"])
    assert len(tasks(QUICK)) == 3 * 3 * len(QUICK.nscaling.N_values)


def test_per_run_numbers_follow_from_the_singular_values(tiny_run):
    out, _ = tiny_run
    rows = read_csv(out / "data" / "nscaling.csv")
    assert len(rows) == len(tasks(TINY)) and list(rows[0]) == list(CSV_COLUMNS)
    with np.load(out / "data" / "nscaling.npz") as d:
        for i, row in enumerate(rows):
            sv = d[f"run{i}_sv_final"]
            assert sv.shape == (row["N"],)                 # all singular values are kept
            # |Delta W|_F from training equals the norm of the stored spectrum
            assert row["delta_fro"] == pytest.approx(np.sqrt(np.sum(sv ** 2)), rel=1e-10)
            assert row["sv_max"] == pytest.approx(sv.max(), rel=1e-12)
            assert row["n_large_sv"] == count_large(sv, row["sv_threshold"])
            assert d[f"run{i}_delta_fro"][-1] == pytest.approx(row["delta_fro"], rel=1e-12)
            assert row["lr"] == pytest.approx(TINY.nscaling.lr_scale / row["N"])
            for c in ("delta_fro", "g", "N", "status"):
                assert d[c][i] == row[c]


def test_report_and_manifest(tiny_run):
    out, man = tiny_run
    text = (out / "report.md").read_text()
    assert "## Scaling of Delta W with N" in text and "| romo | 0.9 |" in text
    assert list(man["preset"]["nscaling"]["N_values"]) == [8, 16]
    for stem in ("nscaling.png", "nscaling.pdf", "data/nscaling.csv", "data/nscaling.npz"):
        assert (out / stem).stat().st_size > 0


def test_slope_recovers_a_power_law_and_flags_too_few_points():
    N = [64, 128, 256, 512]
    for a in (0.0, 0.5, 1.0):
        assert loglog_slope(N, [3.0 * n ** a for n in N]) == pytest.approx(a, abs=1e-12)
    assert np.isnan(loglog_slope([64, 64], [1.0, 2.0]))
    assert np.isnan(loglog_slope(N, [np.nan] * 4))
    # a growing norm is not reported as flat
    assert loglog_slope(N, [float(n) for n in N]) > 0.9


def test_count_large_is_relative_to_the_largest():
    sv = np.array([10.0, 2.0, 0.5])
    assert count_large(sv, 0.1) == 2 and count_large(sv * 1e-6, 0.1) == 2
    assert count_large(sv, 0.01) == 3


def test_summary_leaves_out_runs_that_did_not_complete():
    base = dict(task="romo", g=0.0, seed=0, n_large_sv=1, initial_loss=1.0,
                trained_loss=0.5)
    rs = [dict(base, N=8, status="ok", delta_fro=1.0),
          dict(base, N=16, status="ok", delta_fro=2.0),
          dict(base, N=16, seed=1, status="diverged", delta_fro=1e9)]
    s = summarise(rs)[0]
    assert s["delta_fro"] == [1.0, 2.0] and s["n_bad"] == 1
    assert s["slope"] == pytest.approx(1.0)


@pytest.mark.parametrize("changes, message", [
    ({"N_values": (1,)}, "nscaling.N_values must be a non-empty list of integers N >= 2"),
    ({"tasks": ("cosine",)}, "nscaling.tasks must be a non-empty list of task names"),
    ({"epochs": (("romo", 5),), "tasks": ("mante",)},
     "nscaling.epochs has no entry for task(s) mante"),
    ({"sv_threshold": 1.5}, "nscaling.sv_threshold must be"),
    ({"lr_scale": 0}, "nscaling.lr_scale must be"),
])
def test_bad_preset_fields_are_named(changes, message):
    with pytest.raises(ValueError) as exc:
        with_overrides(TINY, nscaling=changes)
    assert str(exc.value).startswith(message)
