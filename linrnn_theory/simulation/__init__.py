"""Simulators of the linear RNN on the fixed-point task.

* :mod:`.dense` -- plain dense reference implementations (baselines).
* :mod:`.fixed_point` -- fast fixed-point gradient descent (one LU, low-rank ``Delta W``).
* :mod:`.bptt` -- fast finite-time Euler dynamics and BPTT.
* :mod:`.basis` -- growing orthonormal bases with cached images.
* :mod:`.cosine` -- the autonomous-cosine task (general time-varying target, dense BPTT).
"""
