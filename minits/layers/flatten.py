"""Flatten: (N, C, H, W) -> (N, C*H*W), the bridge from convolutions to Linear.

flatten_forward / flatten_backward below, and the Flatten layer that runs them.
"""

import math

from .base import Layer


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

    def forward(self, x):
        """x: (N, d1, d2, ...) -> out: (N, d1*d2*...)."""
        out, self._cache = flatten_forward(x)
        return out

    def backward(self, dout):
        """dout: (N, d1*d2*...) -> dx: (N, d1, d2, ...)."""
        return flatten_backward(dout, self._cached())
