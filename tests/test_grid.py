"""Phase maps of the theory over (g, target): the grid equals the single calls."""

import json

import numpy as np
import pytest

from linrnn_theory import cli, theory
from linrnn_theory.theory.failure import predict_failure
from linrnn_theory.theory.grid import PhaseMap, broadcast, phase_map


def test_broadcast_is_the_single_calls_at_every_point():
    g = np.array([0.0, 0.5])
    z = np.array([[0.5], [2.0]])
    for fn in (theory.learning_time, theory.dw_norm, theory.shuffle_loss):
        grid = broadcast(fn, g, z, rel_loss=0.1)
        assert grid.shape == (2, 2)
        for i in range(2):
            for j in range(2):
                assert grid[i, j] == fn(g[j], z[i, 0], rel_loss=0.1)
    assert broadcast(theory.learning_time, 0.3, 1.0).shape == ()


def test_phase_map_holds_the_observables_and_the_failure_verdict(tmp_path):
    gs, zs = [0.3, 0.8], [1.0, 4.0]
    m = phase_map(gs, zs, quantities=["learning_time", "mean_gradient_norm"], lr0=0.002,
                  epochs=400)
    for i, g in enumerate(gs):
        for j, z in enumerate(zs):
            assert m.values["learning_time"][i, j] == theory.learning_time(g, z)
            assert m.values["mean_gradient_norm"][i, j] == theory.mean_gradient_norm(g, z)
            d = predict_failure(g, z, lr0=0.002, epochs=400)
            assert m.failure[i, j] == d.status.value
            assert m.lr_sharpness[i, j] == d.lr_sharpness_final
    assert m.failure[1, 1] == "diverged" and m.failure[0, 0] != "diverged"
    back = PhaseMap.load(m.save(tmp_path / "m.json"))
    np.testing.assert_array_equal(back.values["learning_time"], m.values["learning_time"])
    np.testing.assert_array_equal(back.failure, m.failure)
    rows = m.to_csv().strip().splitlines()
    assert rows[0] == "g,target,learning_time,mean_gradient_norm,failure,lr_sharpness"
    assert len(rows) == 1 + 4


def test_phase_map_rejects_bad_input():
    with pytest.raises(ValueError, match="g must lie in"):
        phase_map([0.5, 1.2], [1.0])
    with pytest.raises(ValueError, match="unknown quantities"):
        phase_map([0.5], [1.0], quantities=["speed"])
    with pytest.raises(ValueError, match="exactly one of lr0"):
        phase_map([0.5], [1.0], lr0=0.1, lr=0.1)


def test_cli_map_writes_figure_and_data(tmp_path, capsys):
    out = tmp_path / "phase"
    rc = cli.main(["map", "--g", "0.2", "0.6", "--n-g", "2", "--target", "0.5", "2",
                   "--n-target", "3", "--log-target", "--quantity", "learning_time",
                   "--no-progress", "--out", str(out)])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["map.csv", "map.json", "map.npz",
                                                     "map.png"]
    with np.load(out / "map.npz") as f:
        lt_map = f["learning_time"]
        np.testing.assert_allclose(f["target"], [0.5, 1.0, 2.0], rtol=1e-15)
    assert lt_map.shape == (2, 3)
    assert lt_map[1, 2] == theory.learning_time(0.6, 2.0)
    doc = json.loads((out / "map.json").read_text())
    assert doc["schema"] == "linrnn-theory/phase-map/1" and doc["cli"]["command"] == "map"
    assert "learning_time" in capsys.readouterr().out


def test_cli_map_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "phase"
    rc = cli.main(["map", "--g", "0.2", "1.5", "--n-g", "2", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "g must lie in" in err
    assert not out.exists()
