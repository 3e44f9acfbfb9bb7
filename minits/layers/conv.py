"""2-D convolution, Eq. (1) with a Toeplitz-structured alpha (Sec. 2.1), via im2col."""

import numpy as np

from .base import Layer, check_dtype, check_input, gaussian, scratch
from .im2col import col2im, conv_output_size, im2col, pad


class Conv2d(Layer):
    """Convolution (cross-correlation, as in PyTorch) with stride and zero padding.

    Shapes (public, PyTorch's):
        x:   (N, C, H, W)
        W:   (F, C, k, k)
        b:   (F,)                       -- only with bias=True
        out: (N, F, Ho, Wo),  Ho = (H + 2p - k) // s + 1,  Wo = (W + 2p - k) // s + 1

        out[n, f, y, x] = sum_{c,i,j} W[f, c, i, j] * x_pad[n, c, s*y + i, s*x + j] (+ b[f])

    Internally the layer works channel-first (C, N, H, W): the output is the
    product W2 (F, C*k*k) @ cols (C*k*k, N*Ho*Wo), reshaped to (F, N, Ho, Wo), and
    handed out as the transposed *view* (N, F, Ho, Wo). The next Conv2d or
    MaxPool2d transposes it back for free, so a network never copies between
    layouts (see minits/layers/im2col.py).

    Backward, with dout2 = dL/dout as (F, N*Ho*Wo):
        dW = dout2 @ cols.T,   db = dout2.sum(1),   dx = col2im(W2.T @ dout2)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=False,
                 dtype=np.float32, rng=None, gain=1.0):
        super().__init__()
        for name, value, low in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                                 ("kernel_size", kernel_size, 1), ("stride", stride, 1),
                                 ("padding", padding, 0)):
            if int(value) != value or value < low:
                raise ValueError(f"Conv2d {name} must be an integer >= {low}, got {value!r}")
        dtype = check_dtype(dtype)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)
        k = self.kernel_size
        shape = (out_channels, in_channels, k, k)
        self.params["W"] = gaussian(shape, in_channels * k * k, gain, dtype, rng)
        if bias:
            self.params["b"] = np.zeros(out_channels, dtype=dtype)
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}
        self._cols = None
        self._padded_shape = None

    def output_shape(self, input_shape):
        """(N, C, H, W) -> (N, F, Ho, Wo)."""
        N, _, H, W = input_shape
        k, s, p = self.kernel_size, self.stride, self.padding
        return (N, self.out_channels, conv_output_size(H, k, s, p), conv_output_size(W, k, s, p))

    def forward(self, x):
        check_input(self, x, 4)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r}: x has {x.shape[1]} channels, expected {self.in_channels}")
        N, F, Ho, Wo = self.output_shape(x.shape)
        xc = pad(x.transpose(1, 0, 2, 3), self.padding)  # channel-first view (C, N, H, W)
        self._padded_shape = xc.shape
        # the columns (30 MB for conv1 of LeNet-5) live in a work array that every
        # call reuses; backward needs them for dW
        cols = scratch(self, "cols", (xc.shape[0] * self.kernel_size ** 2, N * Ho * Wo), x.dtype)
        self._cols = im2col(xc, self.kernel_size, self.stride, out=cols)
        out = self.params["W"].reshape(F, -1) @ cols  # (F, N*Ho*Wo), the one wide GEMM
        if "b" in self.params:
            out += self.params["b"][:, None]
        return out.reshape(F, N, Ho, Wo).transpose(1, 0, 2, 3)

    def backward(self, dout, input_grad=True):
        check_input(self, dout, 4, "dout")
        F = self.out_channels
        dout2 = dout.transpose(1, 0, 2, 3).reshape(F, -1)  # free when dout is channel-first
        W2 = self.params["W"].reshape(F, -1)
        np.matmul(dout2, self._cols.T, out=self.grads["W"].reshape(F, -1))
        if "b" in self.params:
            np.sum(dout2, axis=1, out=self.grads["b"])
        if not input_grad:
            return None
        dcols = np.matmul(W2.T, dout2, out=scratch(self, "dcols", self._cols.shape, dout.dtype))
        dxp = col2im(dcols, self._padded_shape, self.kernel_size, self.stride)
        p = self.padding
        H, W = self._padded_shape[2] - 2 * p, self._padded_shape[3] - 2 * p
        return dxp[:, :, p:p + H, p:p + W].transpose(1, 0, 2, 3)

    def __repr__(self):
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={'b' in self.params})")
