"""Max pooling (Sec. 2.1: "taking the maximum of every 4 elements").

maxpool_forward / maxpool_backward below, and the MaxPool2d layer that runs them.
"""

import numpy as np

from .base import Layer, check_integer
from .im2col import conv_output_size


def maxpool_forward(x, kernel_size, stride):
    """The maximum of every k x k window, windows placed every s pixels (no padding).

        out[n, c, y, x] = max_{i, j < k} x[n, c, s*y + i, s*x + j]

    Inputs:
        x: (N, C, H, W); kernel_size k; stride s (s < k: windows overlap)
    Returns:
        out: (N, C, Ho, Wo), Ho = (H - k) // s + 1, Wo = (W - k) // s + 1
             (trailing rows/columns that no window covers are ignored, as in PyTorch)
        cache: (argmax, x.shape, k, s); argmax (N, C, Ho, Wo) holds the offset
             i*k + j of each window's first maximum in row-major order (np.argmax
             returns the first of equal values: that is the tie rule)
    """
    # BEGIN TASK maxpool-forward
    N, C, H, W = x.shape
    k, s = kernel_size, stride
    Ho, Wo = conv_output_size(H, k, s), conv_output_size(W, k, s)
    # windows[i*k + j, n, c, y, x] = x[n, c, s*y + i, s*x + j]: one strided slice per offset
    windows = np.empty((k * k, N, C, Ho, Wo), dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            windows[i * k + j] = x[:, :, i:i + s * Ho:s, j:j + s * Wo:s]
    argmax = np.argmax(windows, axis=0)
    out = np.max(windows, axis=0)
    return out, (argmax, x.shape, k, s)
    # END TASK


def maxpool_backward(dout, cache):
    """Each window's gradient goes to exactly one element, its (first) maximum:

        dx[n, c, s*y + i*, s*x + j*] += dout[n, c, y, x],   i*k + j* = argmax[n, c, y, x]

    Where windows overlap, an element collects the gradients of every window it wins.

    Inputs:
        dout: (N, C, Ho, Wo); cache: from maxpool_forward
    Returns:
        dx: (N, C, H, W), zero where no window has its maximum
    """
    # BEGIN TASK maxpool-backward
    argmax, x_shape, k, s = cache
    _, _, Ho, Wo = dout.shape
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for i in range(k):
        for j in range(k):
            won = argmax == i * k + j  # the windows whose maximum sits at offset (i, j)
            dx[:, :, i:i + s * Ho:s, j:j + s * Wo:s] += np.where(won, dout, 0)
    return dx
    # END TASK


class MaxPool2d(Layer):
    """Max-pooling layer: maxpool_forward / maxpool_backward, no parameters.

    Shapes:
        x:   (N, C, H, W)
        out: (N, C, Ho, Wo),  Ho = (H - k) // s + 1,  Wo = (W - k) // s + 1

    Windows may overlap (s < k). Gradient rule: a tie goes to the first maximum in
    row-major order within the window.
    """

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        stride = kernel_size if stride is None else stride
        self.kernel_size = check_integer("MaxPool2d kernel_size", kernel_size, 1)
        self.stride = check_integer("MaxPool2d stride", stride, 1)

    def output_shape(self, input_shape):
        """(N, C, H, W) -> (N, C, Ho, Wo); a ValueError when a window does not fit."""
        N, C, H, W = input_shape
        k, s = self.kernel_size, self.stride
        return (N, C, conv_output_size(H, k, s), conv_output_size(W, k, s))

    def forward(self, x):
        """x: (N, C, H, W) -> out: (N, C, Ho, Wo)."""
        self._check_input(x)
        out, self._cache = maxpool_forward(x, self.kernel_size, self.stride)
        return out

    def backward(self, dout):
        """dout: (N, C, Ho, Wo) -> dx: (N, C, H, W)."""
        return maxpool_backward(dout, self._cached())

    def _check_input(self, x):
        """x must be (N, C, H, W), with a window fitting."""
        if x.ndim != 4:
            raise ValueError(f"{self!r}: x must be (N, C, H, W), got shape {x.shape}")
        self.output_shape(x.shape)

    def __repr__(self):
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride})"
