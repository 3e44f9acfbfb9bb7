"""The non-linearities: ReLU, Eq. (2), and softmax, Eq. (3).

Plain implementation: relu_forward / relu_backward and softmax_forward /
softmax_backward below. The fast ReLU, which ReLU runs under minits.use("fast"),
is in minits/layers/fast_dense.py; Softmax has one implementation for both.
"""

import numpy as np

from .base import Layer
from .fast_dense import fast_relu_backward, fast_relu_forward


def relu_forward(x):
    """lambda(y) = max(y, 0), element-wise, Eq. (2).

    Inputs:
        x: any shape
    Returns:
        out: shaped like x (and in x's memory layout); cache: x
    """
    return np.maximum(x, 0), x


def relu_backward(dout, cache):
    """dx = dout where x > 0, else 0: the derivative of Eq. (2), taken as 0 at the kink x = 0
    (the subgradient PyTorch also uses).

    Inputs:
        dout: shaped like x; cache: from relu_forward
    Returns:
        dx: shaped like x
    """
    x = cache
    return np.where(x > 0, dout, 0)


def softmax(x, axis=-1):
    """p_i = exp(x_i) / sum_j exp(x_j), Eq. (3), computed stably.

    Subtracting the maximum first leaves p unchanged and keeps every exponent
    <= 0, so nothing overflows even for |x| ~ 1e4.

    Inputs:
        x: any shape; axis: the axis of the K classes
    Returns:
        p: shaped like x, non-negative, summing to 1 along axis
    """
    z = x - np.max(x, axis=axis, keepdims=True)
    np.exp(z, out=z)
    z /= np.sum(z, axis=axis, keepdims=True)
    return z


def softmax_forward(x):
    """p = softmax(x) along the last axis, Eq. (3). x: (N, K) -> p: (N, K); cache: p."""
    p = softmax(x)
    return p, p


def softmax_backward(dout, cache):
    """dx_i = p_i * (dout_i - sum_j dout_j p_j): dout times the Jacobian diag(p) - p p^T
    of Eq. (3).

    Inputs:
        dout: (N, K); cache: p from softmax_forward
    Returns:
        dx: (N, K)
    """
    p = cache
    return p * (dout - np.sum(dout * p, axis=-1, keepdims=True))


class ReLU(Layer):
    """ReLU layer: relu_forward / relu_backward. x, out, dout, dx all the same shape.

    In a network, the fast Sequential runs a ReLU that is followed by a MaxPool2d
    *after* the pooling (the two commute, see minits/layers/fast_sequential.py),
    so there it sees a quarter of the data.
    """

    def __init__(self):
        super().__init__()
        self._cache = None

    def forward(self, x):
        """x: any shape -> out = max(x, 0), the same shape."""
        if self._start_forward() == "fast":
            out, self._cache = fast_relu_forward(x)
        else:
            out, self._cache = relu_forward(x)
        return out

    def backward(self, dout, input_grad=True):
        """dout -> dx = dout * [x > 0], or None when input_grad=False."""
        if self._forward_impl() == "fast":
            return fast_relu_backward(dout, self._cache, input_grad)
        dx = relu_backward(dout, self._cache)
        return dx if input_grad else None


class Softmax(Layer):
    """Probabilities along the last axis, Eq. (3): softmax_forward / softmax_backward.

    Shapes: x (N, K) -> p (N, K) (any leading dimensions work). One implementation
    serves both plain and fast: it has no speed lever. (The losses never call this
    layer: they fuse softmax with the logarithm of Eq. (4).)
    """

    def __init__(self):
        super().__init__()
        self._cache = None

    def forward(self, x):
        """x: (N, K) -> p: (N, K)."""
        self._start_forward()
        p, self._cache = softmax_forward(x)
        return p

    def backward(self, dout, input_grad=True):
        """dout: (N, K) -> dx: (N, K), or None when input_grad=False."""
        self._forward_impl()  # refuses a backward without a forward
        return softmax_backward(dout, self._cache) if input_grad else None
