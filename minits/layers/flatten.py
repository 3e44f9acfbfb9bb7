"""Flatten: (N, C, H, W) -> (N, C*H*W), the bridge from convolutions to Linear."""

import math

import numpy as np

from .base import Layer


class Flatten(Layer):
    """x: (N, d1, d2, ...) -> out: (N, d1*d2*...), in PyTorch's (C, H, W) order.

    When x is a channel-first view (see Conv2d) the reshape copies it into
    sample-major order; that is the one layout change a convolutional network makes.
    Backward reshapes dout back to x's shape and, when x was not C-contiguous,
    copies it into x's memory layout (np.empty_like keeps the layout), so the
    layers below get their gradient channel-first as well: ReLU and MaxPool2d
    then work on matching layouts (2x faster for the second pooling of LeNet-5).
    """

    def __init__(self):
        super().__init__()
        self._x = None

    def forward(self, x):
        self._x = x  # a reference, for its shape and memory layout
        # math.prod of a tuple, not np.prod (7 us of array conversion every batch);
        # the size is explicit, not -1, so that N = 0 works
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))

    def backward(self, dout, input_grad=True):
        if not input_grad:
            return None
        dx = dout.reshape(self._x.shape)
        if self._x.flags.c_contiguous:
            return dx
        out = np.empty_like(self._x, dtype=dout.dtype)  # the memory layout of x
        out[...] = dx
        return out
