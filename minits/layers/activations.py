"""The non-linearities: ReLU, Eq. (2), and softmax, Eq. (3), with its logarithm.

relu_forward / relu_backward and softmax_forward / softmax_backward below, and the
ReLU and Softmax layers that run them. softmax, log_softmax and logsumexp are those
of all minits: the losses, the measures and the temperature baseline use them.
"""

import numpy as np

from .base import Layer


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
    # BEGIN TASK relu-backward
    x = cache
    return np.where(x > 0, dout, 0)
    # END TASK


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


def log_sum_exp_parts(z, axis=-1):
    """The stable log-sum-exp in its three parts: m = max_j z_j, z - m, and
    log sum_j exp(z_j - m), so that log sum_j exp(z_j) = m + log sum_j exp(z_j - m).

    Subtracting the maximum first makes every exponent <= 0: no overflow at |z| ~ 1e4,
    and the sum is >= 1 so its logarithm is finite. (Tiny terms may underflow to 0
    inside the sum, which is the correctly rounded result.) The one log-sum-exp of
    minits: log_softmax and logsumexp below are made of it.

    Inputs:
        z: any shape; axis: the axis of the K classes
    Returns:
        m, z - m, log sum: m and log sum keep the axis with length 1
    """
    m = np.max(z, axis=axis, keepdims=True)
    shifted = z - m
    return m, shifted, np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def log_softmax(z, axis=-1):
    """log p_i = z_i - log sum_j exp(z_j), the logarithm of Eq. (3), computed stably.

    Inputs:
        z: any shape; axis: the axis of the K classes
    Returns:
        log p: shaped like z, same dtype, <= 0
    """
    _, shifted, log_sum = log_sum_exp_parts(z, axis)
    return shifted - log_sum


def logsumexp(z, axis=-1):
    """log sum_j exp(z_j) along axis, computed stably. z: (..., K) -> (...)."""
    m, _, log_sum = log_sum_exp_parts(z, axis)
    return np.squeeze(m + log_sum, axis=axis)


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
    """ReLU layer: relu_forward / relu_backward. x, out, dout, dx all the same shape."""

    def forward(self, x):
        """x: any shape -> out = max(x, 0), the same shape."""
        out, self._cache = relu_forward(x)
        return out

    def backward(self, dout):
        """dout -> dx = dout where x > 0, else 0."""
        return relu_backward(dout, self._cached())


class Softmax(Layer):
    """Probabilities along the last axis, Eq. (3): softmax_forward / softmax_backward.

    Shapes: x (N, K) -> p (N, K) (any leading dimensions work). (The losses never call
    this layer: they fuse softmax with the logarithm of Eq. (4), log_softmax.)
    """

    def forward(self, x):
        """x: (N, K) -> p: (N, K)."""
        p, self._cache = softmax_forward(x)
        return p

    def backward(self, dout):
        """dout: (N, K) -> dx: (N, K)."""
        return softmax_backward(dout, self._cached())
