"""Flatten: (N, C, H, W) -> (N, C*H*W), the bridge from convolutions to Linear.

Plain implementation: flatten_forward / flatten_backward below. The fast one,
which Flatten runs under minits.use("fast"), is in minits/layers/fast_dense.py.
"""

import math

from .base import Layer
from .fast_dense import fast_flatten_backward, fast_flatten_forward


def flatten_forward(x):
    """x: (N, d1, d2, ...) -> out: (N, d1*d2*...), in PyTorch's (C, H, W) order.

    Returns:
        out: (N, d1*d2*...); cache: x.shape
    """
    # the size is explicit, not -1, so that N = 0 works
    return x.reshape(x.shape[0], math.prod(x.shape[1:])), x.shape


def flatten_backward(dout, cache):
    """dout: (N, d1*d2*...) -> dx: (N, d1, d2, ...), dout reshaped back to x's shape."""
    x_shape = cache
    return dout.reshape(x_shape)


class Flatten(Layer):
    """Flatten layer: flatten_forward / flatten_backward, no parameters."""

    def __init__(self):
        super().__init__()
        self._cache = None

    def forward(self, x):
        """x: (N, d1, d2, ...) -> out: (N, d1*d2*...)."""
        if self._start_forward() == "fast":
            out, self._cache = fast_flatten_forward(x)
        else:
            out, self._cache = flatten_forward(x)
        return out

    def backward(self, dout, input_grad=True):
        """dout: (N, d1*d2*...) -> dx: (N, d1, d2, ...), or None when input_grad=False."""
        if self._forward_impl() == "fast":
            return fast_flatten_backward(dout, self._cache, input_grad)
        dx = flatten_backward(dout, self._cache)
        return dx if input_grad else None
