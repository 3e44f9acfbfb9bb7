"""Layers with hand-derived backprop, Eq. (1)-(3).

Every layer class runs one of two implementations (minits.backend): the plain
functions, to read, and the fast ones (fast_*.py), to train; they compute the
same numbers. Reading order of the plain ones: base, linear (linear_forward /
linear_backward), activations (relu_*, softmax_*), flatten, im2col (im2col /
col2im), conv (conv_forward / conv_backward), pool (maxpool_forward /
maxpool_backward), sequential. docs/layers.md follows the same path.
"""

from .activations import ReLU, Softmax, softmax
from .base import Layer
from .conv import Conv2d
from .flatten import Flatten
from .linear import Linear
from .pool import MaxPool2d
from .sequential import Sequential

__all__ = ["Conv2d", "Flatten", "Layer", "Linear", "MaxPool2d", "ReLU", "Sequential", "Softmax",
           "softmax"]
