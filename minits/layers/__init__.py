"""Layers with hand-derived backprop, Eq. (1)-(3).

Each layer class runs the plain functions of its module, written to be read beside
the paper. Reading order: base, linear (linear_forward / linear_backward),
activations (relu_*, softmax, log_softmax, logsumexp), flatten, im2col (im2col / col2im),
conv (conv_forward / conv_backward), pool (maxpool_forward / maxpool_backward),
sequential. docs/layers.md follows the same path. The fast twins, which training
runs, are in minits.fast; nothing here knows them.
"""

from .activations import ReLU, Softmax, log_softmax, logsumexp, softmax
from .base import Layer
from .conv import Conv2d
from .flatten import Flatten
from .linear import Linear
from .pool import MaxPool2d
from .sequential import Sequential

__all__ = ["Conv2d", "Flatten", "Layer", "Linear", "MaxPool2d", "ReLU", "Sequential", "Softmax",
           "log_softmax", "logsumexp", "softmax"]
