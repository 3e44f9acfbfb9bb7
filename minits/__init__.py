"""minits: a deep-learning framework in NumPy, without autograd, written to be read
beside Berlyand, Creese & Jabin, "A novel multi-scale loss function for
classification problems in machine learning".

Reading order follows one training step: layers (Eq. (1)-(3)) -> models ->
scale R and normalised logits (Eq. (7)-(11)) -> losses (Eq. (4), (12)-(18))
-> SGD (Eq. (6), (14), (16), (18)) -> metrics (Sec. 3.1, Eq. (19)-(20)).
Training runs and the paper's experiments live in minits.training and
minits.experiments; the command line in minits.cli. Everything here is the plain
code, the code to read; minits.fast holds the fast twins that training runs
(``minits.fast.convert(model)``), and nothing outside it depends on it.
"""

from . import datasets, gradcheck, layers, losses, metrics, models
from .layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential, Softmax
from .optim import SGD, ScaleWarning
from .scale import scale_R

__version__ = "0.1.0"

_ON_ACCESS = ("training", "experiments")


def __getattr__(name):
    """`mt.training`, `mt.experiments`: imported at first use (PEP 562), so that
    `import minits` stays the plain code alone (training's set-up imports minits.fast)."""
    if name in _ON_ACCESS:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
