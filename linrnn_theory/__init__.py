"""linrnn-theory: learning theory of linear recurrent networks, as code.

After Schuessler, Mastrogiuseppe, Dubreuil, Ostojic & Barak, "The interplay between
randomness and structure during learning in RNNs", NeurIPS 2020.

Quick tour
----------
>>> import linrnn_theory as lt
>>> net = lt.init_network(N=128, g=0.6, seed=0)
>>> task = lt.FixedPointTask(target=1.0)
>>> run = lt.train(net, task, lr=0.009 * (1 - 0.6 ** 2) ** 2, epochs=50, mode="fixed_point")
>>> run.status
'ok'
"""

from .analysis import delta_singular_values, shuffle_loss, step_rate, truncation_losses
from .gradient import gradient, loss
from .network import Network, init_network
from .task import CosineTask, FixedPointTask, Task
from .training import TrainResult, train
from .trajectory import LearningTrajectory, Status
from . import trajectory  # noqa: E402  (module: Result, load)
from . import theory  # noqa: E402  (subpackage)

__version__ = "0.1.0"

__all__ = [
    "Network", "init_network", "Task", "FixedPointTask", "CosineTask", "gradient", "loss", "train", "TrainResult",
    "LearningTrajectory", "Status", "trajectory",
    "shuffle_loss", "truncation_losses", "delta_singular_values", "step_rate", "__version__",
]
