"""``reproduce``: tiny smoke run of every figure, output files, cosine-task gradient."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from linrnn_theory.reproduce import (FIGURES, Figure, code_scope, get_figure, register_figure,
                                     reproduce, select_figures)
from linrnn_theory.reproduce.figure import TASK_FUNCTION, sweep_task
from linrnn_theory.reproduce.presets import FULL, QUICK, TINY
from linrnn_theory.simulation.cosine import cosine_network, train_cosine
from linrnn_theory.simulation.dense import linear_bptt
from linrnn_theory.task import CosineTask


@pytest.fixture(scope="module")
def tiny_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("repro")
    manifest = reproduce(["all"], "tiny", out, jobs=2, progress=False, command="test")
    return out, manifest


def test_every_figure_writes_files(tiny_out):
    out, man = tiny_out
    expected = ["fig3", "fig4", "diverge", "cosine", "nonlinear_romo", "nonlinear_summary",
                "nscaling"]
    for stem in expected:
        for ext in ("png", "pdf"):
            p = out / f"{stem}.{ext}"
            assert p.is_file() and p.stat().st_size > 1000, p
    for name in FIGURES:
        p = out / "data" / f"{name}.npz"
        assert p.is_file() and p.stat().st_size > 0
    assert (out / "data" / "fig4.csv").read_text().startswith("source,g,target")
    # one name for one quantity: the fig4 outputs say mean_gradient_norm, as the theory does
    assert "mean_gradient_norm" in (out / "data" / "fig4.csv").read_text().splitlines()[0]
    with np.load(out / "data" / "fig4.npz") as d:
        assert {"sim_mean_gradient_norm", "ode_mean_gradient_norm",
                "series_mean_gradient_norm"} <= set(d.files)
        assert not any("grad_norm" in k for k in d.files)
    report = (out / "report.md").read_text()
    for head in ("## Fig. 3", "## Fig. 4", "## Failure of learning", "## Autonomous cosine",
                 "## Nonlinear", "## Scaling of Delta W with N"):
        assert head in report
    assert "nan" not in report.lower().replace("nonlinear", "")
    disk = json.loads((out / "manifest.json").read_text())
    assert disk["sweep"]["tasks"] == man["sweep"]["tasks"] > 0
    assert set(disk["figures"]) == set(FIGURES)
    assert {"numpy", "python", "linrnn-theory"} <= set(disk["versions"])
    for f in disk["files"]:
        data = (out / f["path"]).read_bytes()
        assert len(data) == f["bytes"] > 0
        assert hashlib.sha256(data).hexdigest() == f["sha256"]


def test_data_schema(tiny_out):
    out, _ = tiny_out
    p = TINY.fig3
    G, Z, S, E = len(p.g_values), len(p.targets), len(p.seeds), p.epochs
    with np.load(out / "data" / "fig3.npz") as d:
        assert d["sim_loss"].shape == (G, Z, S, E)
        assert d["ode_loss"].shape == (G, Z, E) and d["series_sv"].shape == (G, Z, E, 2)
        assert np.all(np.isfinite(d["sim_loss"]))
        np.testing.assert_allclose(d["tau_tilde"][1, 0], d["tau"][1, 0] / (1 - 0.36) ** 2)
    q = TINY.fig4
    with np.load(out / "data" / "fig4.npz") as d:
        assert d["sim_learning_time"].shape == (len(q.g_values), len(q.targets), len(q.seeds))
        assert d["ode_dw_norm"].shape == (len(q.g_values), len(q.targets))
        # three predictions beside each simulated point: large N, finite N, each network's own
        assert d["instance_dw_norm"].shape == d["sim_dw_norm"].shape
        assert np.all(np.isfinite(d["instance_learning_time"]))
        assert np.all(np.isfinite(d["finite_n_learning_time"]))
        assert np.all(d["finite_n_learning_time_std"] > 0)
        assert np.all(np.isfinite(d["finite_n_dw_norm"]))
        assert np.all(np.isnan(d["finite_n_shuffle_loss"]))
        # the instance theory of each network is its exact gradient flow: at this small
        # step it is closer to the simulated learning times than the large-N theory
        own = np.abs(d["sim_learning_time"] / d["instance_learning_time"] - 1)
        large = np.abs(d["sim_learning_time"] / d["ode_learning_time"][..., None] - 1)
        assert np.nanmean(own) < np.nanmean(large)
        # qualitative findings of the paper, even at N = 24: faster learning with g
        assert np.all(d["ode_learning_time"][1] < d["ode_learning_time"][0])
    with np.load(out / "data" / "cosine.npz") as d:
        steps = round(TINY.cosine.t_max / TINY.cosine.dt)
        assert d["z_final"].shape == (len(TINY.cosine.g_values), len(TINY.cosine.seeds), steps)


def test_second_run_reuses_everything(tiny_out, tmp_path):
    out, man = tiny_out
    again = reproduce(["cosine", "diverge"], "tiny", out, jobs=1, progress=False)
    assert again["sweep"]["computed"] == 0
    assert again["sweep"]["reused"] == man["figures"]["cosine"]["tasks"] + \
        man["figures"]["diverge"]["tasks"]


def test_figure_registry_interface():
    assert list(FIGURES) == ["fig3", "fig4", "diverge", "cosine", "nonlinear", "nscaling"]
    for name, fig in FIGURES.items():
        assert isinstance(fig, Figure) and fig.name == name and get_figure(name) is fig
        for attr in ("tasks", "run_task", "collect", "figure", "report"):
            assert callable(getattr(fig, attr)), (name, attr)
        ts = fig.tasks(TINY)
        assert ts and all(t["figure"] == name and t["kind"] in fig.kinds for t in ts)
        json.dumps(ts)                                    # parameters are JSON-able
    assert select_figures(None) == [n for n, f in FIGURES.items() if f.default]
    with pytest.raises(ValueError, match="figure must be one of"):
        get_figure("fig9")
    with pytest.raises(TypeError, match="Figure subclass"):
        register_figure(dict)

    class Fit(Figure):
        name, kinds = "fit", ("sim", "fit")

        def tasks(self, preset):
            return []

        def simulate(self, params):
            return {}
    with pytest.raises(ValueError, match="kinds must be among 'sim' and 'theory'"):
        register_figure(Fit)
    assert "fit" not in FIGURES
    with pytest.raises(ValueError, match="kind must be 'sim' or 'theory', got 'x'"):
        FIGURES["fig3"].run_task({"figure": "fig3", "kind": "x"})


def test_a_registered_figure_runs_through_reproduce(tmp_path):
    @register_figure
    class Halves(Figure):
        name, title, default, columns = "halves", "Halves", False, ("x", "half")

        def tasks(self, preset):
            return [self.task("sim", x=float(x)) for x in preset.fig3.seeds]

        def simulate(self, params):
            return {**params, "half": params["x"] / 2}
    try:
        man = reproduce(["halves"], "tiny", tmp_path, jobs=1, progress=False)
        assert list(man["figures"]) == ["halves"]
        assert man["figures"]["halves"]["files"] == ["data/halves.npz"]
        with np.load(tmp_path / "data" / "halves.npz") as d:
            assert d["half"].tolist() == [x / 2 for x in TINY.fig3.seeds]
        assert "## Halves" in (tmp_path / "report.md").read_text()
    finally:
        FIGURES.pop("halves")


def test_every_task_is_keyed_on_its_parameters_and_the_package_digest(tiny_out):
    """Cache file of each task = key of (TASK_FUNCTION, its parameters, the version of the
    whole package source); the manifest records that version per figure and kind."""
    from linrnn_theory.sweep.cache import code_version, task_key
    out, man = tiny_out
    assert code_scope("fig3", "sim") == code_version(("**/*.py",)) == \
        code_scope("nscaling", "sim")
    for name, fig in FIGURES.items():
        [version] = set(man["figures"][name]["code_versions"].values())
        for p in fig.tasks(TINY):
            key = task_key(TASK_FUNCTION, p, version)
            assert sweep_task(p, version).key == key
            assert (out / "cache" / f"{key}.npz").is_file(), (name, p)


def test_quick_preset_matches_brief():
    assert QUICK.fig3.g_values == (0.0, 0.6) and QUICK.fig3.targets == (0.5, 2.0)
    assert QUICK.fig4.targets == (0.5, 1.0, 2.0) and max(QUICK.fig4.g_values) == 0.9
    assert dict(QUICK.diverge.lr0) == {2.0: 0.002, 4.0: 0.001}
    assert dict(QUICK.cosine.lrs) == {0.0: 0.2, 0.4: 0.15, 0.8: 0.05}


# -- the cosine task --------------------------------------------------------------------

def _fd_gradient(W, args, h=1e-6):
    G = np.zeros_like(W)
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            Wp, Wm = W.copy(), W.copy()
            Wp[i, j] += h
            Wm[i, j] -= h
            G[i, j] = (linear_bptt(Wp, *args)[0] - linear_bptt(Wm, *args)[0]) / (2 * h)
    return G


@pytest.mark.parametrize("general", [False, True])
def test_cosine_gradient_matches_finite_differences(general):
    task = CosineTask(dt=0.1, t_max=3.0, period=1.0)
    N = 7
    W0, m = cosine_network(N, 0.8, seed=3)
    rng = np.random.default_rng(0)
    W = W0 + 0.2 * rng.standard_normal(W0.shape) / np.sqrt(N)
    if general:           # arbitrary input, target, non-negative mask, state, distinct m, w
        T = task.n_steps
        args = (rng.standard_normal(N), rng.standard_normal(N), rng.standard_normal(T),
                rng.standard_normal(T), rng.uniform(0, 1, T) * (rng.uniform(size=T) > 0.3),
                0.1, rng.standard_normal(N))
    else:                 # the paper's set-up: no input, x0 = m, w = m / N
        args = (m, m / N, task.inputs(), task.targets(), task.mask(), task.dt, m)
    L, G, z = linear_bptt(W, *args)
    G_fd = _fd_gradient(W, args)
    rel = np.max(np.abs(G - G_fd)) / np.max(np.abs(G))
    assert rel < 1e-6, rel


def test_cosine_task_definition():
    task = CosineTask()
    assert task.n_steps == 200 and task.mask().sum() == 100
    assert np.all(task.mask()[:100] == 1.0) and np.all(task.mask()[100:] == 0.0)
    assert np.all(task.inputs() == 0.0)
    assert task.targets()[0] == pytest.approx(1.0)          # cos(0), read after step 0
    assert task.times()[99] == pytest.approx(9.9)
    N = 16
    W0, m = cosine_network(N, 0.0, seed=1)
    assert np.linalg.norm(m) == pytest.approx(np.sqrt(N))
    L, G, z = linear_bptt(W0, m, m / N, task.inputs(), task.targets(), task.mask(), task.dt,
                          x0=m)
    assert z[0] == pytest.approx(0.9)                      # W0 = 0: (1 - dt) w^T m
    assert z[1] == pytest.approx(0.81)
    with pytest.raises(ValueError, match="t_max"):
        CosineTask(t_max=20.05)


def test_cosine_g0_symmetry_keeps_rank_one():
    """W0 = 0 and w parallel to x0 = m: every gradient is proportional to m m^T."""
    r = train_cosine(12, 0.0, 0, lr=0.2, epochs=20, task=CosineTask(dt=0.1, t_max=4.0,
                                                                     period=1.0))
    sv = r.sv_final
    assert sv[0] > 1e-3 and np.all(sv[1:] < 1e-12 * sv[0] + 1e-14)


def test_cosine_divergence_is_reported():
    r = train_cosine(10, 0.5, 0, lr=1e3, epochs=50, task=CosineTask(dt=0.1, t_max=4.0,
                                                                    period=1.0))
    assert r.status == "diverged" and "epoch" in r.message
    assert np.all(np.isfinite(r.loss)) and np.all(np.isfinite(r.z_final))


@pytest.mark.slow
def test_cosine_paper_finding_at_full_size():
    """N = 256, the paper's rates, 1000 epochs, float64 (about 50 s on one core): g = 0
    cannot learn (final loss > 90 % of initial); g = 0.4 and 0.8 fall below 1 % of it,
    through a Delta W with at most 3 singular values above 10 % of the largest.
    Measured: final/initial 0.976, 9.4e-4, 7.1e-3; counts 1, 2, 3."""
    ratio, count = {}, {}
    for g, lr in FULL.cosine.lrs:
        r = train_cosine(256, g, 0, lr, 1000)
        assert r.status == "ok"
        ratio[g] = r.loss[-1] / r.loss[0]
        sv = r.sv_final
        count[g] = int(np.sum(sv > 0.1 * sv[0]))
    assert ratio[0.0] > 0.9, ratio
    assert ratio[0.4] < 0.01 and ratio[0.8] < 0.01, ratio
    assert all(c <= 3 for c in count.values()), count


# -- command line -------------------------------------------------------------------------

@pytest.mark.parametrize("argv, msg", [
    (["reproduce", "fig9"], "figure must be one of"),
    (["reproduce", "--scheduler", "tcp://x:1"], "needs --backend dask"),
    (["reproduce", "--set", "fig4.nope=1"], "--set"),
    (["reproduce", "--set", "fig4"], "SECTION.FIELD=VALUE"),
    (["reproduce", "--jobs", "0"], "--jobs"),
])
def test_cli_errors_are_one_line(argv, msg, capsys, tmp_path):
    from linrnn_theory.cli import main
    code = main(argv + ["--out", str(tmp_path / "o"), "--tiny"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and msg in err


def test_cli_help(capsys):
    from linrnn_theory.cli import main
    assert main(["reproduce", "--help"]) == 0
    out = capsys.readouterr().out
    for opt in ("--quick", "--full", "--out", "--jobs", "--backend", "--scheduler", "--fresh"):
        assert opt in out


# -- validation before anything runs or is created -----------------------------------------

@pytest.mark.parametrize("setting, msg", [
    ("fig3.N=abc", "fig3.N must be an integer >= 1, got 'abc'"),
    ("fig3.N=0", "fig3.N must be an integer >= 1, got 0"),
    ("fig3.N=2.5", "fig3.N must be an integer"),
    ("fig4.g_values=[0,1.5]", "fig4.g_values must be a non-empty list of gains"),
    ("fig4.seeds=[]", "fig4.seeds must be a non-empty list"),
    ("fig3.mode=euler", "fig3.mode must be one of 'bptt', 'fixed_point'"),
    ("fig3.dt=0", "fig3.dt must be a finite number > 0"),
    ("fig3.dt=20", "fig3.dt must be smaller than fig3.t_max"),
    ("fig3.targets=[3]", "fig3.lr0 has no rate for target(s) 3"),
    ("fig4.conv_rel=1", "fig4.conv_rel must be a finite number > 0 and < 1"),
    ("diverge.critical_target=1", "diverge.critical_target must be true or false"),
    ("cosine.g_values=[0.5]", "cosine.lrs has no rate for gain(s) 0.5"),
    ("cosine.epochs=-3", "cosine.epochs must be an integer >= 1"),
    ("nonlinear.epochs={\"romo\":0}", "nonlinear.epochs must be an object"),
    ("nonlinear.batch=0", "nonlinear.batch must be an integer >= 1"),
    ("fig3.nope=1", "unknown field fig3.nope"),
])
def test_cli_set_is_validated_before_anything_is_created(setting, msg, capsys, tmp_path):
    from linrnn_theory.cli import main
    out = tmp_path / "o"
    code = main(["reproduce", "fig3", "--tiny", "--jobs", "1", "--no-progress",
                 "--out", str(out), "--set", setting])
    cap = capsys.readouterr()
    assert code == 2
    assert cap.err.count("\n") == 1 and cap.err.startswith("linrnn-theory reproduce: error:")
    assert msg in cap.err and "Traceback" not in cap.err
    assert not out.exists() and cap.out == ""


def test_every_preset_is_valid():
    from linrnn_theory.reproduce.presets import PRESETS, validate_preset
    from linrnn_theory.sweep.cache import canonical_json
    for preset in PRESETS.values():
        checked = validate_preset(preset)
        assert checked.as_dict() == preset.as_dict()
        for fig in FIGURES.values():             # same task parameters, same cache keys
            assert canonical_json(fig.tasks(checked)) == canonical_json(fig.tasks(preset))


def test_library_validates_preset_before_creating_out(tmp_path):
    from linrnn_theory.reproduce.presets import with_overrides
    bad = with_overrides(TINY, check=False, cosine={"N": 0})
    with pytest.raises(ValueError, match=r"cosine\.N must be an integer >= 1, got 0"):
        reproduce(["cosine"], bad, tmp_path / "o", jobs=1, progress=False)
    assert not (tmp_path / "o").exists()


def test_cli_dask_missing_fails_before_anything(monkeypatch, capsys, tmp_path):
    import sys
    from linrnn_theory.cli import main
    monkeypatch.setitem(sys.modules, "distributed", None)      # import fails
    out = tmp_path / "o"
    code = main(["reproduce", "cosine", "--tiny", "--backend", "dask", "--out", str(out)])
    cap = capsys.readouterr()
    assert code == 2
    assert cap.err.count("\n") == 1 and "'distributed'" in cap.err and "--backend" in cap.err
    assert not out.exists()


def test_cli_out_is_a_file(capsys, tmp_path):
    from linrnn_theory.cli import main
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["reproduce", "cosine", "--tiny", "--out", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out must be a folder" in err
    assert f.read_text() == "x"


# -- merging with what an earlier run left in --out ----------------------------------------

def _copy_out(tiny_out, tmp_path):
    import shutil
    src, _ = tiny_out
    dst = tmp_path / "D"
    shutil.copytree(src, dst)
    return dst


def test_rerun_of_one_figure_keeps_the_others(tiny_out, tmp_path):
    from linrnn_theory.reproduce.report import split_report
    d = _copy_out(tiny_out, tmp_path)
    (d / "fig4.png").unlink()                 # fig4 is no longer complete: dropped
    man = reproduce(["cosine"], "tiny", d, jobs=1, progress=False, command="second")
    assert set(man["figures"]) == {"fig3", "diverge", "cosine", "nonlinear", "nscaling"}
    assert man["figures"]["cosine"]["command"] == "second"
    assert man["figures"]["fig3"]["command"] == "test"
    paths = [f["path"] for f in man["files"]]
    assert len(paths) == len(set(paths))
    for p in ("fig3.png", "diverge.png", "cosine.png", "data/fig3.npz", "report.md"):
        assert p in paths
    assert not any(p.startswith("fig4") for p in paths)
    for f in man["files"]:
        assert hashlib.sha256((d / f["path"]).read_bytes()).hexdigest() == f["sha256"]
    assert json.loads((d / "manifest.json").read_text()) == json.loads(json.dumps(man))
    text = (d / "report.md").read_text()
    sections = split_report(text)
    assert list(sections) == ["fig3", "diverge", "cosine", "nonlinear", "nscaling"]
    assert list(man["figures"]) == ["fig3", "diverge", "cosine", "nonlinear", "nscaling"]
    assert sections["fig3"].startswith("## Fig. 3")
    assert text.count("## Fig. 3") == 1 and "kept from earlier runs" in text


def test_unreadable_old_manifest_is_replaced(tiny_out, tmp_path):
    d = _copy_out(tiny_out, tmp_path)
    (d / "manifest.json").write_text("{not json")
    man = reproduce(["cosine"], "tiny", d, jobs=1, progress=False)
    assert list(man["figures"]) == ["cosine"]


# -- recovered cache files ----------------------------------------------------------------

def test_recovered_cache_file_is_reported(tiny_out, tmp_path, capsys):
    from linrnn_theory.cli import main
    d = _copy_out(tiny_out, tmp_path)
    p0 = FIGURES["cosine"].tasks(TINY)[0]
    key = sweep_task(p0, code_scope("cosine", p0["kind"])).key
    f = d / "cache" / f"{key}.npz"
    f.write_bytes(f.read_bytes()[:100])                    # truncated
    assert main(["reproduce", "cosine", "--tiny", "--jobs", "1", "--no-progress",
                 "--out", str(d)]) == 0
    out = capsys.readouterr().out
    assert "1 unusable cache file(s)" in out and f"{key}.npz.corrupt" in out
    man = json.loads((d / "manifest.json").read_text())
    rec = man["sweep"]["recovered_cache_files"]
    assert [r["key"] for r in rec] == [key] and rec[0]["file"] == f"{key}.npz.corrupt"
    assert man["sweep"]["recovered"] == 1 and man["sweep"]["computed"] == 1
    assert f"`{key}.npz.corrupt`" in (d / "report.md").read_text()
    assert sorted(p.name for p in (d / "cache").glob("*.corrupt")) == [f"{key}.npz.corrupt"]
    # a clean rerun says nothing about it
    assert main(["reproduce", "cosine", "--tiny", "--jobs", "1", "--no-progress",
                 "--out", str(d)]) == 0
    assert "unusable" not in capsys.readouterr().out
    man = json.loads((d / "manifest.json").read_text())
    assert man["sweep"]["recovered_cache_files"] == []
    assert "recovered cache files" not in (d / "report.md").read_text()


def test_identical_runs_write_identical_figures(tiny_out, tmp_path):
    """No timestamp or software tag in the PDFs/PNGs: a second run from scratch into a new
    folder writes byte-identical figures, so the manifest's sha256 sums agree."""
    out, man = tiny_out
    again = reproduce(["all"], "tiny", tmp_path / "b", jobs=2, progress=False, command="test")
    figures = sorted(p.name for p in out.iterdir() if p.suffix in (".png", ".pdf"))
    assert len(figures) >= 12
    for name in figures:
        assert (tmp_path / "b" / name).read_bytes() == (out / name).read_bytes(), name
    sums = {f["path"]: f["sha256"] for f in man["files"] if f["path"].endswith((".png", ".pdf"))}
    sums_again = {f["path"]: f["sha256"] for f in again["files"]
                  if f["path"].endswith((".png", ".pdf"))}
    assert sums == sums_again and len(sums) == len(figures)


def test_every_csv_reads_back_with_csv_and_numpy(tiny_out):
    """Every CSV the figures write holds plain numbers under a header row."""
    import csv
    out, _ = tiny_out
    files = sorted((out / "data").glob("*.csv"))
    assert files, "no CSV written"
    for path in files:
        with path.open(newline="") as fh:
            rows = list(csv.reader(fh))
        header, body = rows[0], rows[1:]
        assert body and all(len(r) == len(header) for r in body), path
        numeric = [j for j in range(len(header))
                   if all(_is_float(r[j]) for r in body)]
        text = [j for j in range(len(header)) if j not in numeric]
        assert numeric, path
        for j in text:      # text columns are labels, never a repr of a number
            assert not any("float" in r[j] or "(" in r[j] for r in body), (path, header[j])
        arr = np.genfromtxt(path, delimiter=",", names=True, dtype=None, encoding="utf-8")
        assert arr.size == len(body)
        for j in numeric:
            col = np.asarray(arr[arr.dtype.names[j]], dtype=float)
            assert col.shape == (len(body),)
            ref = np.array([float(r[j]) for r in body])
            assert np.array_equal(np.isnan(col), np.isnan(ref))
            assert np.array_equal(col[~np.isnan(col)], ref[~np.isnan(ref)])


def _is_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True
