"""Theory of the learning dynamics (fixed-point gradient flow of the simplified task).

* :func:`predict` -- readout, loss, singular values of ``Delta W``, outlier eigenvalue and
  gradient norm along the learning time, by ``method="series" | "ode" | "instance" |
  "exact_g0" | "finite_n"`` (the last: means and standard deviations over
  networks of size ``N``).
* :func:`learning_time`, :func:`dw_norm`, :func:`mean_gradient_norm`,
  :func:`shuffle_loss`, :func:`outlier_eigenvalue` -- scalar predictions (Fig. 4).
* :func:`small_target_limits` -- their closed-form ``z_hat -> 0`` limits.

Modules: :mod:`.traces` (large-N trace rule), :mod:`.chain_series` (series recursion),
:mod:`.series` (generated coefficients), :mod:`.exact_g0`, :mod:`.reduced` (reduced ODE),
:mod:`.large_n`, :mod:`.instance`, :mod:`.methods` (the method interface and registry),
:mod:`.observables`, :mod:`.failure`.
"""

from . import failure, finite_n
from .observables import (all_observables, dw_norm, learning_time, mean_gradient_norm,
                          outlier_eigenvalue, shuffle_loss, small_target_limits)
from .methods import TheoryMethod, method_names, register_method
from .predict import predict
from .result import Prediction
from .series import MAX_ORDER

__all__ = ["failure", "predict", "Prediction", "TheoryMethod", "register_method", "method_names", "MAX_ORDER", "learning_time", "dw_norm",
           "mean_gradient_norm", "shuffle_loss", "all_observables", "outlier_eigenvalue",
           "small_target_limits"]
