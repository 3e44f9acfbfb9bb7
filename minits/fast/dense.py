"""Fast Linear, ReLU and Flatten: the small levers of the dense layers (docs/performance.md).

Each class names the plain functions it must equal (minits/layers/linear.py,
activations.py, flatten.py) and how closely. The levers: no input gradient when
input_grad=False, gradients written straight into layer.grads, ReLU's backward
as a product with a one-byte mask, and Flatten handing its gradient back in its
input's memory layout.
"""

import math

import numpy as np

from ..layers import Flatten, Linear, ReLU
from ..layers.base import check_input
from .layer import FastLayer


class FastLinear(FastLayer, Linear):
    """Linear, fast: forward equals linear_forward and backward linear_backward, bit for bit
    (the same products; the bias added in place, the gradients written into grads)."""

    def forward(self, x):
        """x: (N, in_features) -> out: (N, out_features). Caches x."""
        self._check_input(x)
        out = x @ self.params["W"].T
        if "b" in self.params:
            out += self.params["b"]
        self._cache = x
        return out

    def backward(self, dout, input_grad=True):
        """dout: (N, out_features) -> dx: (N, in_features), or None when input_grad=False
        (the product is skipped); dW (and db) written into grads."""
        check_input(self, dout, 2, "dout")
        x = self._cached()
        np.matmul(dout.T, x, out=self.grads["W"])
        if "b" in self.params:
            np.sum(dout, axis=0, out=self.grads["b"])
        return dout @ self.params["W"] if input_grad else None


class FastReLU(FastLayer, ReLU):
    """ReLU, fast: the cache is the mask x > 0 (one byte per element), not x.

    forward equals relu_forward bit for bit and keeps the input's memory layout
    (NumPy's order="K"), so channel-first stays channel-first. backward equals
    relu_backward for finite dout up to the sign of zero (dout * False is -0.0 where
    dout < 0; a NaN in dout stays NaN where x <= 0): multiplying by the boolean mask is
    about 5x faster than np.where(mask, dout, 0).
    """

    def forward(self, x):
        """x: any shape -> max(x, 0), the same shape and layout."""
        self._cache = x > 0
        return np.maximum(x, 0)

    def backward(self, dout, input_grad=True):
        """dout -> dout * [x > 0], or None when input_grad=False."""
        positive = self._cached()
        return dout * positive if input_grad else None


class FastFlatten(FastLayer, Flatten):
    """Flatten, fast: the values of flatten_forward / flatten_backward bit for bit; the
    gradient comes back in the input's memory layout.

    When x was not C-contiguous (a channel-first view from FastConv2d / FastMaxPool2d),
    dout is copied into x's layout (np.empty_like keeps it), so the layers below get
    their gradient channel-first as well: ReLU and MaxPool2d then work on matching
    layouts (2x faster for LeNet-5's second pooling).
    """

    def forward(self, x):
        """x: (N, d1, d2, ...) -> (N, d1*d2*...). Caches x itself (a reference)."""
        # math.prod of a tuple, not np.prod (7 us of array conversion every batch);
        # the size is explicit, not -1, so that N = 0 works
        self._cache = x
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))

    def backward(self, dout, input_grad=True):
        """dout: (N, d1*d2*...) -> dx: (N, d1, d2, ...) in x's layout, or None."""
        x = self._cached()
        if not input_grad:
            return None
        dx = dout.reshape(x.shape)
        if x.flags.c_contiguous:
            return dx
        out = np.empty_like(x, dtype=dout.dtype)  # the memory layout of x
        out[...] = dx
        return out
