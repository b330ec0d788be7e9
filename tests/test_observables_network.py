"""Scalar observables of a given network (``network=``) and the input amplitude."""

import numpy as np
import pytest

import linrnn_theory as lt
from linrnn_theory import theory
from linrnn_theory.theory import observables as ob


@pytest.fixture(scope="module")
def net():
    return lt.init_network(N=64, g=0.5, seed=1)


def test_network_observables_match_instance_prediction(net):
    tc = ob.learning_time(target=1.0, network=net)
    pred = theory.predict(method="instance", network=net, target=1.0, tau=[0.0, tc],
                          n_singular=64, outlier=False)
    # the learning time is where the instance prediction's loss crosses 0.05 L0
    assert pred.loss[-1] / 0.5 == pytest.approx(0.05, rel=1e-8)
    dw = float(np.sqrt(np.sum(pred.singular_values[-1] ** 2)))
    assert ob.dw_norm(target=1.0, network=net) == pytest.approx(dw, rel=1e-8)


def test_input_amp_is_the_rescaled_unit_flow():
    # flow with amplitude c = unit flow with target z_hat / c at time c^2 tau
    assert ob.learning_time(0.5, 1.0, input_amp=2.0) == pytest.approx(
        ob.learning_time(0.5, 0.5) / 4.0, rel=1e-12)
    assert ob.dw_norm(0.5, 1.0, input_amp=2.0) == pytest.approx(ob.dw_norm(0.5, 0.5),
                                                                 rel=1e-12)


def test_network_argument_errors(net):
    with pytest.raises(ValueError, match="g cannot be combined"):
        ob.learning_time(0.5, 1.0, network=net)
    with pytest.raises(ValueError, match="method must be 'ode'"):
        ob.dw_norm(target=1.0, network=net, method="series")
    with pytest.raises(TypeError, match="network must be a Network"):
        ob.shuffle_loss(target=1.0, network=np.eye(3))
    with pytest.raises(ValueError, match="g is required"):
        ob.learning_time(target=1.0)
