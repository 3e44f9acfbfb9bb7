"""Layers with hand-derived backprop, Eq. (1)-(3). Reading order: base, linear,
im2col, conv, pool, activations, flatten, sequential."""

from .activations import ReLU, Softmax, softmax
from .base import Layer
from .conv import Conv2d
from .flatten import Flatten
from .linear import Linear
from .pool import MaxPool2d
from .sequential import Sequential

__all__ = ["Conv2d", "Flatten", "Layer", "Linear", "MaxPool2d", "ReLU", "Sequential", "Softmax",
           "softmax"]
