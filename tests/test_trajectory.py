"""Simulated and predicted trajectories are twins: the same fields, rows, statuses and
files (linrnn_theory.trajectory)."""

import json

import numpy as np
import pytest

import linrnn_theory as lt
from linrnn_theory import theory
from linrnn_theory.simulation.cosine import train_cosine
from linrnn_theory.theory import failure
from linrnn_theory.trajectory import LearningTrajectory, Result, Status, load


def _fixed_point_run(record_every):
    net = lt.init_network(N=128, g=0.5, seed=1)
    lr = 0.002
    run = lt.train(net, lt.FixedPointTask(target=1.0), lr=lr, epochs=400, mode="fixed_point",
                   record_every=record_every)
    return net, run


def test_simulated_minus_predicted_row_for_row_with_record_every():
    """With record_every > 1 the simulated singular values still have one row per tau, so
    subtracting the prediction on the run's own tau grid lines up; the instance theory
    (this network's gradient flow) matches descent with a small step to O(lr)."""
    net, run = _fixed_point_run(record_every=7)
    p = theory.predict(target=1.0, tau=run.tau, method="instance", network=net, outlier=False)
    assert isinstance(run, LearningTrajectory) and isinstance(p, LearningTrajectory)
    assert run.singular_values.shape == p.singular_values.shape == (400, lt.trajectory.N_SINGULAR)
    d_sv = run.singular_values - p.singular_values
    recorded = np.zeros(400, bool)
    recorded[run.record_epochs] = True
    assert np.isnan(d_sv[~recorded]).all()          # not recorded: NaN, never a wrong row
    assert np.isfinite(d_sv[recorded]).all()
    assert list(run.record_epochs) == list(range(0, 400, 7))
    s1 = p.singular_values[-1, 0]
    assert np.max(np.abs(d_sv[recorded, 0])) < 0.02 * s1
    assert np.max(np.abs(run.readout - p.readout)) < 0.01
    # the recorded rows are those of a run that records every epoch
    _, every = _fixed_point_run(record_every=1)
    np.testing.assert_array_equal(run.recorded_singular_values,
                                  every.singular_values[run.record_epochs])
    np.testing.assert_array_equal(run.loss, every.loss)


def test_must_fail_partner_rows_by_record_are_not_rows_by_tau():
    """The old layout (one row per recorded epoch) does not line up with the prediction:
    the subtraction it allowed compared different times."""
    net, run = _fixed_point_run(record_every=7)
    p = theory.predict(target=1.0, tau=run.tau, method="instance", network=net, outlier=False)
    rows = run.recorded_singular_values
    assert rows.shape != p.singular_values.shape
    misaligned = rows - p.singular_values[: len(rows)]
    assert np.max(np.abs(misaligned[:, 0])) > 0.1 * p.singular_values[-1, 0]


def test_one_status_vocabulary():
    net, run = _fixed_point_run(record_every=50)
    p = theory.predict(g=0.5, target=1.0, tau=run.tau, method="ode", outlier=False)
    s = theory.predict(g=0.5, target=1.0, tau=np.linspace(0, 40, 5), method="series")
    d = failure.predict_failure(0.8, 4.0, lr0=0.002, epochs=400)
    assert run.status is Status.OK and p.status is Status.OK
    assert s.status is Status.BEYOND_RADIUS and not s.status.valid
    assert d.status is Status.DIVERGED and "learning rate" in d.status.advice
    assert {m.value for m in Status} >= {"ok", "converged", "diverged", "unconverged"}
    with pytest.raises(ValueError):
        Status("completed")


@pytest.mark.parametrize("make", ["run", "prediction", "series", "descent", "failure",
                                  "cosine"])
def test_results_load_back_from_what_they_write(make, tmp_path):
    net = lt.init_network(N=16, g=0.4, seed=0)
    task = lt.FixedPointTask(target=1.0)
    obj = {
        "run": lambda: lt.train(net, task, lr=0.05, epochs=9, mode="fixed_point",
                                record_every=4, record_eigenvalues=True),
        "prediction": lambda: theory.predict(g=0.4, target=1.0, tau=[0.0, 0.5, 1.0]),
        "series": lambda: theory.predict(g=0.4, target=1.0, tau=[0.0, 9.0], method="series"),
        "descent": lambda: failure.reduced_descent(0.4, 1.0, lr=0.1, epochs=20),
        "failure": lambda: failure.predict_failure(0.4, 1.0, lr0=0.009, epochs=50),
        "cosine": lambda: train_cosine(8, 0.4, 0, lr=0.1, epochs=3,
                                       task=lt.CosineTask(dt=0.5, t_max=4.0, period=2.0,
                                                          n_periods_loss=1)),
    }[make]()
    path = obj.save(tmp_path / f"{make}.json")
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    back = load(path)
    assert type(back) is type(obj)
    for f in obj.__dataclass_fields__:
        a, b = getattr(obj, f), getattr(back, f)
        if isinstance(a, np.ndarray):
            assert b.shape == a.shape, f
            np.testing.assert_array_equal(b, a, err_msg=f)     # NaN == NaN here
        elif f == "params":                  # JSON has lists where Python had tuples
            assert b == json.loads(json.dumps(a)), f
        else:
            assert b == a, f
    assert json.loads(back.save(tmp_path / "again.json").read_text()) == json.loads(text)
    r = repr(obj)
    assert "array(" not in r and "\n" not in r and len(r) < 200, r


def test_loading_the_wrong_class_is_a_clear_error(tmp_path):
    p = theory.predict(g=0.4, target=1.0, tau=[0.0, 0.5])
    with pytest.raises(ValueError, match="is a Prediction, not a TrainResult"):
        lt.TrainResult.from_json(p.to_json())
    with pytest.raises(ValueError, match="unknown result schema"):
        Result.from_dict({"schema": "linrnn-theory/none/1"})
