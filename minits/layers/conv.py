"""2-D convolution, Eq. (1) with a Toeplitz-structured alpha (Sec. 2.1), via im2col.

conv_forward / conv_backward below, and the Conv2d layer that runs them.
"""

import numpy as np

from .base import Layer, check_dtype, check_input, check_integer, gaussian, store_grads
from .im2col import col2im, conv_output_size, im2col


def conv_forward(x, W, b, stride, padding):
    """Eq. (1) for a convolution (alpha Toeplitz-structured, Sec. 2.1): cross-correlation,
    as in PyTorch, computed as one product with im2col's columns.

        out[n, f, y, x] = sum_{c,i,j} W[f, c, i, j] * x_pad[n, c, s*y + i, s*x + j] (+ b[f])

    Inputs:
        x: (N, C, H, W); W: (F, C, k, k); b: (F,) or None
        stride s >= 1, padding p >= 0 (p zeros on every side of H and W)
    Returns:
        out: (N, F, Ho, Wo), Ho = (H + 2p - k) // s + 1, Wo = (W + 2p - k) // s + 1
        cache: (cols, W, x.shape, stride, padding), what conv_backward needs
    """
    N, C, H, Wd = x.shape
    F, _, k, _ = W.shape
    p = padding
    x_pad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    # channel-first, so that the columns run over (n, y, x) (see im2col)
    cols = im2col(x_pad.transpose(1, 0, 2, 3), k, stride)  # (C*k*k, N*Ho*Wo)
    Ho, Wo = conv_output_size(H, k, stride, p), conv_output_size(Wd, k, stride, p)
    out = (W.reshape(F, C * k * k) @ cols).reshape(F, N, Ho, Wo)
    if b is not None:
        out = out + b[:, None, None, None]
    return out.transpose(1, 0, 2, 3), (cols, W, x.shape, stride, padding)


def conv_backward(dout, cache):
    """Gradients of conv_forward, with dout2 = dout as (F, N*Ho*Wo) and W2 = W as (F, C*k*k):

        dW = dout2 cols^T,   db = sum over columns of dout2,   dx = col2im(W2^T dout2)

    (col2im is the adjoint of im2col; the padding border is cut off at the end).

    Inputs:
        dout: (N, F, Ho, Wo), dL/dout; cache: from conv_forward
    Returns:
        dx: (N, C, H, W), dW: (F, C, k, k), db: (F,)
    """
    # BEGIN TASK conv-backward
    cols, W, (N, C, H, Wd), stride, p = cache
    F, _, k, _ = W.shape
    dout2 = dout.transpose(1, 0, 2, 3).reshape(F, -1)  # (F, N*Ho*Wo)
    dW = (dout2 @ cols.T).reshape(W.shape)
    db = dout2.sum(axis=1)
    dcols = W.reshape(F, -1).T @ dout2  # (C*k*k, N*Ho*Wo)
    dx_pad = col2im(dcols, (C, N, H + 2 * p, Wd + 2 * p), k, stride)
    dx = dx_pad[:, :, p:p + H, p:p + Wd].transpose(1, 0, 2, 3)
    return dx, dW, db
    # END TASK


class Conv2d(Layer):
    """Convolution layer: conv_forward / conv_backward with parameters W (and b).

    Shapes (public, PyTorch's):
        x:   (N, C, H, W)
        W:   (F, C, k, k)
        b:   (F,)                       -- only with bias=True; Eq. (1) has none
        out: (N, F, Ho, Wo),  Ho = (H + 2p - k) // s + 1,  Wo = (W + 2p - k) // s + 1

    The output is handed out as a transposed view of a channel-first (F, N, Ho, Wo)
    array, the layout the product W2 @ cols comes out in; the next layer reads it
    either way.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=False,
                 dtype=np.float32, rng=None, gain=1.0):
        super().__init__()
        for name, value, low in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                                 ("kernel_size", kernel_size, 1), ("stride", stride, 1),
                                 ("padding", padding, 0)):
            check_integer(f"Conv2d {name}", value, low)
        dtype = check_dtype(dtype)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)
        k = self.kernel_size
        shape = (out_channels, in_channels, k, k)
        self.params["W"] = gaussian(shape, in_channels * k * k, gain, dtype, rng)
        if bias:
            self.params["b"] = np.zeros(out_channels, dtype=dtype)
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}

    def output_shape(self, input_shape):
        """(N, C, H, W) -> (N, F, Ho, Wo); a ValueError when the kernel does not fit."""
        N, _, H, W = input_shape
        k, s, p = self.kernel_size, self.stride, self.padding
        return (N, self.out_channels, conv_output_size(H, k, s, p), conv_output_size(W, k, s, p))

    def forward(self, x):
        """x: (N, C, H, W) -> out: (N, F, Ho, Wo)."""
        self._check_input(x)
        out, self._cache = conv_forward(x, self.params["W"], self.params.get("b"),
                                        self.stride, self.padding)
        return out

    def backward(self, dout):
        """dout: (N, F, Ho, Wo) -> dx: (N, C, H, W); fills grads["W"] (and "b")."""
        check_input(self, dout, 4, "dout")
        dx, dW, db = conv_backward(dout, self._cached())
        store_grads(self, dW, db)
        return dx

    def _check_input(self, x):
        """x must be (N, C, H, W) in the parameters' dtype, with the kernel fitting."""
        check_input(self, x, 4)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r}: x has {x.shape[1]} channels, expected {self.in_channels}")
        self.output_shape(x.shape)  # the kernel must fit the padded input

    def __repr__(self):
        return (f"{type(self).__name__}({self.in_channels}, {self.out_channels}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"bias={'b' in self.params})")
