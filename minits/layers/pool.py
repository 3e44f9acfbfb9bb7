"""Max pooling (Sec. 2.1: "taking the maximum of every 4 elements")."""

import numpy as np

from .base import Layer, scratch
from .im2col import conv_output_size


class MaxPool2d(Layer):
    """Maximum over k x k windows placed every s pixels (no padding).

    Shapes:
        x:   (N, C, H, W)
        out: (N, C, Ho, Wo),  Ho = (H - k) // s + 1,  Wo = (W - k) // s + 1
             (trailing rows/columns that no window covers are ignored, as in PyTorch)

    Windows may overlap (s < k). Like im2col, forward loops over the k*k window
    offsets (i, j), comparing one strided slice per offset with the running
    maximum; for the usual 2 x 2 pooling these are four strided maxima. It keeps
    the *offset* of each window's maximum (a small integer, one byte) rather than
    a mask of the input, and backward sends dout to that offset.

    Gradient rule: each window's gradient goes to exactly one element, its
    maximum; a tie goes to the first maximum in row-major order within the window
    (the comparison is strict, so a later equal value never wins). Where windows
    overlap, an input element collects the gradients of every window it wins.
    """

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        stride = kernel_size if stride is None else stride
        for name, value in (("kernel_size", kernel_size), ("stride", stride)):
            if int(value) != value or value < 1:
                raise ValueError(f"MaxPool2d {name} must be an integer >= 1, got {value!r}")
        self.kernel_size, self.stride = int(kernel_size), int(stride)
        self._argmax = None
        self._input_shape = None

    def output_shape(self, input_shape):
        N, C, H, W = input_shape
        k, s = self.kernel_size, self.stride
        return (N, C, conv_output_size(H, k, s), conv_output_size(W, k, s))

    def _windows(self, shape):
        """Yield (offset index, row slice, column slice) for every window offset (i, j)."""
        k, s = self.kernel_size, self.stride
        _, _, Ho, Wo = self.output_shape(shape)
        for i in range(k):
            for j in range(k):
                yield i * k + j, slice(i, i + s * Ho, s), slice(j, j + s * Wo, s)

    def forward(self, x):
        if x.ndim != 4:
            raise ValueError(f"{self!r}: x must be (N, C, H, W), got shape {x.shape}")
        self.output_shape(x.shape)  # checks that a window fits
        xc = x.transpose(1, 0, 2, 3)  # channel-first view (C, N, H, W), see Conv2d
        windows = [xc[:, :, rows, cols] for _, rows, cols in self._windows(x.shape)]
        out = windows[0].copy()  # running maximum, (C, N, Ho, Wo)
        kk = self.kernel_size ** 2
        argmax = np.zeros(out.shape, dtype=np.uint8 if kk <= 256 else np.int32)
        window = scratch(self, "window", out.shape, out.dtype)
        better = scratch(self, "better", out.shape, bool)
        code = scratch(self, "code", out.shape, argmax.dtype)
        for o, candidate in enumerate(windows[1:], start=1):
            # one strided copy, then every comparison runs on contiguous memory:
            # about twice as fast as comparing the strided slices themselves
            np.copyto(window, candidate)
            np.greater(window, out, out=better)  # strict: ties stay with the earlier offset
            # offsets only grow, so "o where better, else argmax" is max(argmax, o * better)
            np.multiply(better, argmax.dtype.type(o), out=code)
            np.maximum(argmax, code, out=argmax)
            np.maximum(out, window, out=out)
        self._argmax, self._input_shape = argmax, x.shape
        return out.transpose(1, 0, 2, 3)

    def backward(self, dout, input_grad=True):
        if not input_grad:
            return None
        N, C, H, W = self._input_shape
        k, s = self.kernel_size, self.stride
        dc = dout.transpose(1, 0, 2, 3)
        _, _, Ho, Wo = dout.shape
        tiled = s == k and H == k * Ho and W == k * Wo
        # when the windows tile x exactly, every element of dx is written below
        dx = (np.empty if tiled else np.zeros)((C, N, H, W), dtype=dout.dtype)
        won = scratch(self, "won", self._argmax.shape, bool)
        for o, rows, cols in self._windows(self._input_shape):
            np.equal(self._argmax, o, out=won)
            if s >= k:  # windows do not overlap: each element of dx gets one window's share
                np.multiply(dc, won, out=dx[:, :, rows, cols])
            else:  # overlapping windows: an element collects the shares of all windows it wins
                dx[:, :, rows, cols] += dc * won
        return dx.transpose(1, 0, 2, 3)

    def __repr__(self):
        return f"MaxPool2d(kernel_size={self.kernel_size}, stride={self.stride})"
