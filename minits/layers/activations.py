"""The non-linearities: ReLU, Eq. (2), and softmax, Eq. (3)."""

import numpy as np

from .base import Layer


class ReLU(Layer):
    """lambda(y) = max(y, 0), applied element-wise, Eq. (2).

    Shapes: x, out, dout, dx all the same, any number of dimensions.
    Backward: dx = dout * [x > 0]. At the kink x = 0 the derivative is taken as 0
    (the subgradient PyTorch also uses). The output keeps the input's memory
    layout (NumPy's order="K"), so channel-first stays channel-first.

    In a network, Sequential runs a ReLU that is followed by a MaxPool2d *after*
    the pooling (the two commute, see Sequential), so here it sees a quarter of
    the data.
    """

    def __init__(self):
        super().__init__()
        self._positive = None

    def forward(self, x):
        self._positive = x > 0
        return np.maximum(x, 0)

    def backward(self, dout, input_grad=True):
        if not input_grad:
            return None
        # multiplying by the boolean mask gives the same numbers as
        # np.where(mask, dout, 0) for finite dout (up to the sign of zero) about 5x faster
        return dout * self._positive


def softmax(x, axis=-1):
    """p_i = exp(x_i) / sum_j exp(x_j), Eq. (3), computed stably.

    Subtracting the maximum first leaves p unchanged and keeps every exponent
    <= 0, so nothing overflows even for |x| ~ 1e4.
    """
    z = x - np.max(x, axis=axis, keepdims=True)
    np.exp(z, out=z)
    z /= np.sum(z, axis=axis, keepdims=True)
    return z


class Softmax(Layer):
    """Probabilities along the last axis, Eq. (3).

    Shapes: x (N, K) -> p (N, K) (any leading dimensions work).
    Backward: dx_i = p_i * (dout_i - sum_j dout_j p_j)  (the Jacobian diag(p) - p p^T).
    """

    def __init__(self):
        super().__init__()
        self._p = None

    def forward(self, x):
        self._p = softmax(x)
        return self._p

    def backward(self, dout, input_grad=True):
        if not input_grad:
            return None
        p = self._p
        return p * (dout - np.sum(dout * p, axis=-1, keepdims=True))
