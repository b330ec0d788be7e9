"""The ``linrnn-theory`` command line: sub-commands end to end, help, and the error contract
(bad input: one stderr line ``linrnn-theory <cmd>: error: ...``, exit 2, no traceback, no
output file). Most tests call :func:`linrnn_theory.cli.main` in-process (fast); one runs the
real program in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import linrnn_theory as lt
from linrnn_theory import cli, theory

RUN_KEYS = {"schema", "params", "status", "message", "stop_epoch", "converged_epoch", "tau",
            "loss", "readout", "grad_norm", "record_epochs", "singular_values", "cli",
            "wall_time_s", "eigenvalues"}
PRED_KEYS = {"schema", "method", "params", "status", "message", "tau", "tau_tilde",
             "readout", "loss", "singular_values", "outlier_eigenvalue", "grad_norm", "cli",
             "readout_std", "loss_std", "singular_values_std"}
THIRD_ORDER = "zhat*(8*beta*zhat**2 + 1)/6"   # docs/paper.md section 4, coefficient of tau~^3

SIM = ["simulate", "--N", "16", "--g", "0.5", "--target", "1", "--lr0", "0.009",
       "--epochs", "5"]


def _assert_one_line_error(rc: int, err: str, cmd: str | None, *needles: str) -> None:
    prefix = f"linrnn-theory {cmd}: error: " if cmd else "linrnn-theory: error: "
    assert rc == 2
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(prefix), err
    for needle in needles:
        assert needle in lines[0], (needle, err)


# ------------------------------------------------------------------ help and registry

def test_registry_order_and_help(capsys):
    names = cli.available_commands()
    assert names[:4] == ["simulate", "predict", "map", "derive"]
    assert names == [c for c in cli.COMMANDS if c in names]        # registry order
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: linrnn-theory")
    for name in names:
        assert name in out
        assert cli.main([name, "--help"]) == 0
        assert capsys.readouterr().out.startswith(f"usage: linrnn-theory {name}")


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"linrnn-theory {lt.__version__}"


def test_missing_command_module_is_skipped_but_other_import_errors_propagate(monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", cli.COMMANDS + ("no_such_command_xyz",))
    assert "no_such_command_xyz" not in cli.available_commands()
    real = cli.importlib.import_module

    def broken(name, *a, **kw):
        if name == "linrnn_theory.cli.predict":
            raise ModuleNotFoundError("No module named 'some_dependency'",
                                      name="some_dependency")
        return real(name, *a, **kw)
    monkeypatch.setattr(cli.importlib, "import_module", broken)
    with pytest.raises(ModuleNotFoundError, match="some_dependency"):
        cli.available_commands()


# ------------------------------------------------------------------------- simulate

def test_simulate_writes_the_run(tmp_path, capsys):
    out = tmp_path / "run.json"
    rc = cli.main(SIM + ["--mode", "fixed-point", "--eigenvalues", "--out", str(out)])
    assert rc == 0
    stdout = capsys.readouterr().out
    for word in ("status", "final loss", "converged", "singular values", "wall time"):
        assert word in stdout
    doc = json.loads(out.read_text())
    assert set(doc) == RUN_KEYS
    assert doc["schema"] == "linrnn-theory/run/2"
    assert doc["status"] == "ok" and doc["stop_epoch"] == 5
    assert len(doc["loss"]) == len(doc["tau"]) == len(doc["grad_norm"]) == 5
    assert np.shape(doc["singular_values"]) == (5, 2)
    assert np.shape(doc["eigenvalues"]["real"]) == np.shape(doc["eigenvalues"]["imag"]) == (5, 16)
    assert doc["params"]["lr"] == pytest.approx(0.009 * 0.75 ** 2, rel=1e-15)
    assert doc["params"]["mode"] == "fixed_point"
    assert doc["cli"]["command"] == "simulate" and doc["cli"]["args"]["lr0"] == 0.009
    # the file holds exactly what the library computes (JSON floats round-trip exactly)
    ref = lt.train(lt.init_network(N=16, g=0.5, seed=0), lt.FixedPointTask(target=1.0),
                   lr=0.009 * 0.75 ** 2, epochs=5, mode="fixed_point", record_eigenvalues=True)
    assert doc["loss"] == ref.loss.tolist()
    assert doc["singular_values"] == ref.singular_values.tolist()
    assert list(tmp_path.iterdir()) == [out]           # no temporary files left behind


def test_simulate_bptt_with_weights_file(tmp_path, capsys):
    net = lt.init_network(N=12, g=0.4, seed=3)
    np.savez(tmp_path / "net.npz", W0=net.W0, m=net.m, w=net.w)
    out = tmp_path / "run.json"
    rc = cli.main(["simulate", "--weights", str(tmp_path / "net.npz"), "--target", "1.5",
                   "--lr", "0.02", "--epochs", "4", "--t-max", "8", "--include-weights",
                   "--out", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert set(doc) == RUN_KEYS | {"W", "W0"}
    ref = lt.train(net, lt.FixedPointTask(target=1.5, t_max=8.0), lr=0.02, epochs=4)
    assert doc["loss"] == ref.loss.tolist()
    assert np.array_equal(np.array(doc["W"]), ref.W)
    assert doc["params"]["g"] is None and doc["params"]["task"]["t_max"] == 8.0


def test_simulate_progress_bar_only_when_asked(tmp_path, capsys):
    assert cli.main(SIM) == 0
    assert capsys.readouterr().err == ""        # stderr is not a terminal here
    assert cli.main(SIM + ["--progress"]) == 0
    assert "epoch" in capsys.readouterr().err


def _write_npz(path, **arrays):
    base = dict(W0=np.zeros((3, 3)), m=np.ones(3), w=np.ones(3) / 3)
    base.update(arrays)
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return str(path)


_NAN = float("nan")
_BASE = {"--N": "16", "--g": "0.5", "--target": "1", "--lr0": "0.009", "--epochs": "5",
         "--out": "run.json"}
# option overrides (None removes the option) -> words the error line must contain
BAD_SIMULATE = {
    "N<2": ({"--N": "1"}, ["N must be >= 2"]),
    "g<0": ({"--g": "-0.1"}, ["g must be >= 0"]),
    "g=nan": ({"--g": "nan"}, ["g must be a finite"]),
    "g=inf": ({"--g": "inf"}, ["g must be a finite"]),
    "target=nan": ({"--target": "nan"}, ["target must be a finite"]),
    "target=inf": ({"--target": "-inf"}, ["target must be a finite"]),
    "lr=nan": ({"--lr0": None, "--lr": "nan"}, ["lr must be a finite"]),
    "lr=inf": ({"--lr0": None, "--lr": "inf"}, ["lr must be a finite"]),
    "lr=0": ({"--lr0": None, "--lr": "0"}, ["lr must be > 0"]),
    "lr<0": ({"--lr0": None, "--lr": "-1e-3"}, ["lr must be > 0"]),
    "lr=-inf": ({"--lr0": None, "--lr": "-inf"}, ["lr must be a finite"]),
    "lr0=0": ({"--lr0": "0"}, ["lr0 must be > 0"]),
    "lr0=nan": ({"--lr0": "nan"}, ["lr0 must be a finite"]),
    "dt=0": ({"--dt": "0"}, ["dt must lie in"]),
    "dt<0": ({"--dt": "-0.5"}, ["dt must lie in"]),
    "dt=2": ({"--dt": "2"}, ["dt must lie in"]),
    "dt=nan": ({"--dt": "nan"}, ["dt must be a finite"]),
    "t_max short": ({"--t-max": "2"}, ["t_max", "too short"]),
    "epochs=0": ({"--epochs": "0"}, ["epochs must be >= 1"]),
    "unstable W0": ({"--g": "1.6", "--N": "64", "--mode": "fixed-point"},
                    ["W0 is unstable"]),
    "n_singular": ({"--n-singular": "0"}, ["n_singular must be >= 1"]),
    "bad mode": ({"--mode": "euler"}, ["--mode", "invalid choice"]),
    "bad int": ({"--N": "many"}, ["--N", "invalid int"]),
    "lr and lr0": ({"--lr": "0.1"}, ["not allowed with"]),
    "no lr": ({"--lr0": None}, ["--lr0", "--lr", "required"]),
    "no g": ({"--g": None}, ["--g is required"]),
    "out is a dir": ({"--out": "."}, ["--out", "directory"]),
}


@pytest.mark.parametrize("case", list(BAD_SIMULATE))
def test_simulate_bad_input_one_line_exit_2(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    overrides, needles = BAD_SIMULATE[case]
    opts = {**_BASE, **overrides}
    argv = ["simulate"] + [x for k, v in opts.items() if v is not None for x in (k, v)]
    rc = cli.main(argv)
    _assert_one_line_error(rc, capsys.readouterr().err, "simulate", *needles)
    assert list(tmp_path.iterdir()) == []              # nothing written, not even a temp


BAD_WEIGHTS = {
    "W0 not square": (dict(W0=np.zeros((3, 4))), ["W0 must be a square"]),
    "W0 1x1": (dict(W0=np.zeros((1, 1)), m=np.ones(1), w=np.ones(1)), ["W0", "N >= 2"]),
    "m wrong length": (dict(m=np.ones(4)), ["m must have length 3"]),
    "w wrong shape": (dict(w=np.ones((3, 1))), ["w must be a 1-D"]),
    "W0 nan": (dict(W0=np.diag([0.0, _NAN, 0.0])), ["W0 contains NaN"]),
    "w nan": (dict(w=np.array([_NAN, 0.0, 0.0])), ["w contains NaN"]),
    "W0 missing": (dict(W0=None), ["lacks", "W0"]),
    "unstable W0": (dict(W0=np.diag([0.5, 1.5, 0.0])), ["W0 is unstable"]),
}


@pytest.mark.parametrize("case", list(BAD_WEIGHTS))
def test_simulate_bad_weights_one_line_exit_2(case, tmp_path, capsys):
    arrays, needles = BAD_WEIGHTS[case]
    npz = _write_npz(tmp_path / "net.npz", **arrays)
    out = tmp_path / "run.json"
    rc = cli.main(["simulate", "--weights", npz, "--target", "1", "--lr", "0.01",
                   "--epochs", "2", "--mode", "fixed-point", "--out", str(out)])
    _assert_one_line_error(rc, capsys.readouterr().err, "simulate", *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.npz"]


def test_simulate_missing_weights_file(tmp_path, capsys):
    rc = cli.main(["simulate", "--weights", str(tmp_path / "nope.npz"), "--target", "1",
                   "--lr", "0.01"])
    _assert_one_line_error(rc, capsys.readouterr().err, "simulate", "--weights", "no such")


def test_usage_errors_are_one_line(capsys):
    for argv, cmd, needle in [([], None, "required"), (["bogus"], None, "invalid choice"),
                              (["simulate", "--g", "0.5"], "simulate", "required"),
                              (["predict", "--g", "x", "--target", "1"], "predict",
                               "invalid number")]:
        rc = cli.main(argv)
        _assert_one_line_error(rc, capsys.readouterr().err, cmd, needle)


def test_ctrl_c_exits_130_with_one_line(monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(lt, "train", interrupted)
    assert cli.main(SIM) == 130
    err = capsys.readouterr().err
    assert err == "linrnn-theory simulate: interrupted\n"


# -------------------------------------------------------------------------- predict

def test_predict_writes_prediction(tmp_path, capsys):
    out = tmp_path / "pred.json"
    rc = cli.main(["predict", "--g", "0.6", "--target", "1", "--method", "series",
                   "--order", "3", "--tau-max", "1", "--n-tau", "5", "--tilde",
                   "--out", str(out)])
    assert rc == 0
    assert "tau_tilde" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert set(doc) == PRED_KEYS
    assert doc["schema"] == "linrnn-theory/prediction/2" and doc["method"] == "series"
    # --tilde: the grid is uniform in tau_tilde = beta^2 tau
    np.testing.assert_allclose(doc["tau_tilde"], np.linspace(0, 1, 5), rtol=1e-14,
                               atol=1e-15)
    ref = theory.predict(g=0.6, target=1.0, tau=np.array(doc["tau"]), method="series")
    assert doc["readout"] == ref.readout.tolist()
    assert np.shape(doc["singular_values"]) == (5, 2)


def test_predict_ode_and_exact_g0(tmp_path, capsys):
    out = tmp_path / "ode.json"
    assert cli.main(["predict", "--g", "0.3", "--target", "1", "--tau-max", "0.5",
                     "--n-tau", "6", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["method"] == "ode" and doc["status"] == "ok" and len(doc["tau"]) == 6
    assert cli.main(["predict", "--target", "1", "--method", "exact_g0", "--tau-max", "2",
                     "--n-tau", "3", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["method"] == "exact_g0" and doc["params"]["g"] == 0.0


def test_predict_quantities(tmp_path, capsys):
    out = tmp_path / "obs.json"
    rc = cli.main(["predict", "--g", "0.6", "--target", "1", "--method", "series",
                   "--quantity", "learning_time", "--quantity", "shuffle_loss",
                   "--out", str(out)])
    assert rc == 0
    assert "learning_time" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["schema"] == "linrnn-theory/observables/1"
    assert doc["values"]["learning_time"] == theory.learning_time(0.6, 1.0, 0.05, "series")
    assert doc["values"]["shuffle_loss"] == theory.shuffle_loss(0.6, 1.0, 0.05, "series")


BAD_PREDICT = {
    "g>=1": (["--g", "1.2", "--tau-max", "1"], ["g must lie in"]),
    "g nan": (["--g", "nan", "--tau-max", "1"], ["g must be a finite"]),
    "no grid": (["--g", "0.5"], ["--tau-max"]),
    "no g": (["--tau-max", "1", "--tilde"], ["--g is required"]),
    "tau_max<=0": (["--g", "0.5", "--tau-max", "0"], ["tau_max must be > 0"]),
    "n_tau": (["--g", "0.5", "--tau-max", "1", "--n-tau", "1"], ["n_tau"]),
    "order": (["--g", "0.5", "--tau-max", "1", "--method", "series", "--order", "99"],
              ["order"]),
    "exact_g0 g>0": (["--g", "0.5", "--tau-max", "1", "--method", "exact_g0"], ["g must be 0"]),
    "quantity exact": (["--quantity", "dw_norm", "--method", "exact_g0"], ["--quantity"]),
    "rel_loss": (["--g", "0.5", "--quantity", "dw_norm", "--rel-loss", "2"], ["rel_loss"]),
}


@pytest.mark.parametrize("case", list(BAD_PREDICT))
def test_predict_bad_input_one_line_exit_2(case, tmp_path, capsys):
    extra, needles = BAD_PREDICT[case]
    out = tmp_path / "pred.json"
    rc = cli.main(["predict", "--target", "1", *extra, "--out", str(out)])
    _assert_one_line_error(rc, capsys.readouterr().err, "predict", *needles)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- derive

@pytest.fixture(scope="module")
def derived3():
    """The order-3 derivation, computed once (sympy, ~5 s) for the derive tests."""
    import linrnn_theory.derivations.generate as gen
    return gen.derive_all(3)


@pytest.fixture
def cached_derivation(derived3, monkeypatch):
    import linrnn_theory.derivations.generate as gen

    def derive_all(order):
        assert order == 3
        return derived3
    monkeypatch.setattr(gen, "derive_all", derive_all)
    return gen


def test_derive_prints_the_published_third_order_coefficient(tmp_path, monkeypatch, capsys,
                                                             cached_derivation):
    """``derive --order 3`` (text to stdout) with the generated module written to a
    temporary file (``--module-path``), so the package's own generated module is left
    alone."""
    module = tmp_path / "_series_coefficients.py"
    assert cli.main(["derive", "--order", "3", "--module-path", str(module)]) == 0
    out = capsys.readouterr().out
    assert f"tau_tilde^3: {THIRD_ORDER}" in out
    assert f"wrote {module}" in out
    ns: dict = {}
    exec(compile(module.read_text(), str(module), "exec"), ns)
    assert ns["ORDER"] == 3
    # the generated functions evaluate the published coefficient
    zhat, beta = 0.7, 1.9
    assert ns["readout_coefficients"](zhat, beta)[3] == pytest.approx(
        zhat * (8 * beta * zhat ** 2 + 1) / 6, rel=1e-14)


def test_derive_json_out(tmp_path, capsys, cached_derivation):
    out = tmp_path / "d.json"
    assert cli.main(["derive", "--order", "3", "--format", "json", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["readout"][3] == THIRD_ORDER
    assert list(tmp_path.iterdir()) == [out]


@pytest.mark.parametrize("order", ["2", "15", "-1"])
def test_derive_rejects_order(order, capsys):
    rc = cli.main(["derive", "--order", order])
    _assert_one_line_error(rc, capsys.readouterr().err, "derive", "order must lie in [3, 14]")


# ------------------------------------------------------------------- the real program

def test_installed_program_error_contract(tmp_path):
    """The program as a process (``python -m linrnn_theory.cli``, the same ``main`` as the
    ``linrnn-theory`` console script): real exit status and stderr, no traceback, no file;
    and a successful run."""
    out = tmp_path / "run.json"
    base = [sys.executable, "-m", "linrnn_theory.cli"]
    bad = subprocess.run(base + ["simulate", "--N", "1", "--g", "0.5", "--target", "1",
                                 "--lr0", "0.009", "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr == "linrnn-theory simulate: error: N must be >= 2, got 1\n"
    assert bad.stdout == "" and not out.exists()
    good = subprocess.run(base + ["simulate", "--N", "8", "--g", "0.5", "--target", "1",
                                  "--lr0", "0.009", "--epochs", "3", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert good.returncode == 0, good.stderr
    assert good.stderr == ""
    assert json.loads(out.read_text())["stop_epoch"] == 3


# ---------------------------------------------------------------------------- bench

def test_bench_writes_json_with_the_documented_schema(tmp_path, capsys):
    """Small sizes: the schema of docs/formats.md, both modes, loss curves of fast and
    dense engines equal to round-off, and the BLAS thread count recorded."""
    out = tmp_path / "bench.json"
    rc = cli.main(["bench", "--N", "24", "32", "--g", "0.5", "--epochs", "4", "--mode",
                   "both", "--blas-threads", "1", "--out", str(out)])
    assert rc == 0
    assert "1 BLAS thread" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["schema"] == "linrnn-theory/bench/1"
    assert doc["params"]["blas_threads"] == 1 and doc["params"]["Ns"] == [24, 32]
    assert {(r["mode"], r["N"], r["engine"]) for r in doc["results"]} == {
        (m, n, e) for m in ("fixed_point", "bptt") for n in (24, 32) for e in ("fast", "dense")}
    assert len(doc["comparisons"]) == 4
    for c in doc["comparisons"]:
        assert c["compared_epochs"] == 4 and c["max_rel_loss_diff"] < 1e-9
    assert set(doc["growth_exponents"]) == {"fixed_point/fast", "fixed_point/dense",
                                            "bptt/fast", "bptt/dense"}


@pytest.mark.parametrize("extra, needle", [(["--blas-threads", "0"], "blas-threads"),
                                           (["--epochs", "0"], "epochs"),
                                           (["--N", "1"], "N")])
def test_bench_bad_input_one_line_exit_2(extra, needle, tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = cli.main(["bench", "--N", "24", "--epochs", "2", *extra, "--out", str(out)])
    _assert_one_line_error(rc, capsys.readouterr().err, "bench", needle)
    assert list(tmp_path.iterdir()) == []
