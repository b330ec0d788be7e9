"""A user's own network on the command line: ``simulate --weights-out`` writes it (with
``W0``), ``predict --weights`` gives its own theory, ``--input-amp`` reaches the theory."""

from __future__ import annotations

import json

import numpy as np
import pytest

import linrnn_theory as lt
from linrnn_theory import theory
from linrnn_theory.cli import main


@pytest.fixture()
def npz(tmp_path):
    path = tmp_path / "net.npz"
    assert main(["simulate", "--N", "48", "--g", "0.5", "--target", "1", "--lr0", "0.05",
                 "--epochs", "2", "--seed", "3", "--weights-out", str(path),
                 "--include-weights", "--out", str(tmp_path / "run.json")]) == 0
    return path


def test_simulate_writes_w0_and_w_in_npz_and_json(npz, tmp_path):
    net = lt.init_network(N=48, g=0.5, seed=3)
    z = np.load(npz)
    assert sorted(z.files) == ["W", "W0", "m", "w"]
    assert np.array_equal(z["W0"], net.W0) and np.array_equal(z["m"], net.m)
    assert not np.array_equal(z["W"], z["W0"])          # trained
    doc = json.loads((tmp_path / "run.json").read_text())
    assert np.array_equal(np.array(doc["W0"]), net.W0)
    assert np.allclose(np.array(doc["W"]), z["W"], rtol=0, atol=0)


def test_predict_weights_equals_the_library_instance_method(npz, tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["predict", "--weights", str(npz), "--target", "1", "--tau-max", "0.5",
                 "--n-tau", "5", "--input-amp", "1.5", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["method"] == "instance"
    net = lt.init_network(N=48, g=0.5, seed=3)
    ref = theory.predict(target=1.0, tau=np.linspace(0, 0.5, 5), method="instance",
                         network=net, input_amp=1.5)
    assert np.allclose(doc["readout"], ref.readout, rtol=1e-12, atol=1e-15)


def test_predict_quantity_with_weights_and_input_amp(npz, capsys):
    assert main(["predict", "--weights", str(npz), "--target", "1", "--quantity",
                 "learning_time", "--input-amp", "2"]) == 0
    printed = float(capsys.readouterr().out.split()[-1])
    net = lt.init_network(N=48, g=0.5, seed=3)
    ref = theory.learning_time(target=1.0, network=net, input_amp=2.0)
    assert printed == pytest.approx(ref, rel=1e-5)          # printed with 6 digits
    assert main(["predict", "--g", "0.5", "--target", "1", "--quantity", "learning_time",
                 "--input-amp", "2"]) == 0
    printed = float(capsys.readouterr().out.split()[-1])
    assert printed == pytest.approx(theory.learning_time(0.5, 1.0, input_amp=2.0), rel=1e-5)


@pytest.mark.parametrize("extra, msg", [
    (["--method", "series", "--tau-max", "1"], "--weights needs --method instance"),
    (["--g", "0.5", "--tau-max", "1"], "--g cannot be combined with --weights"),
    (["--tau-max", "1", "--tilde"], "--tilde needs the large-N g"),
])
def test_predict_weights_misuse_is_a_one_line_error(npz, extra, msg, capsys):
    assert main(["predict", "--weights", str(npz), "--target", "1"] + extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and msg in err[0]


def test_predict_instance_needs_weights(capsys):
    assert main(["predict", "--method", "instance", "--target", "1", "--tau-max", "1"]) == 2
    assert "--method instance needs --weights" in capsys.readouterr().err


def test_weights_out_must_be_npz(tmp_path, capsys):
    assert main(["simulate", "--N", "8", "--g", "0.3", "--target", "1", "--lr0", "0.05",
                 "--epochs", "1", "--weights-out", str(tmp_path / "w.json")]) == 2
    assert "must end in .npz" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
