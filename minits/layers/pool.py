"""Max pooling (Sec. 2.1: "taking the maximum of every 4 elements")."""

import numpy as np

from .base import Layer
from .im2col import conv_output_size


class MaxPool2d(Layer):
    """Maximum over k x k windows placed every s pixels (no padding).

    Shapes:
        x:   (N, C, H, W)
        out: (N, C, Ho, Wo),  Ho = (H - k) // s + 1,  Wo = (W - k) // s + 1
             (trailing rows/columns that no window covers are ignored, as in PyTorch)

    Windows may overlap (s < k). Like im2col, forward loops over the k*k window
    offsets (i, j), comparing one strided slice per offset with the running
    maximum. It keeps the *offset* of each window's maximum (a small integer)
    rather than a mask of the input.

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
        N, C, Ho, Wo = self.output_shape(x.shape)
        xc = x.transpose(1, 0, 2, 3)  # channel-first view, see Conv2d
        offsets = self._windows(x.shape)
        _, rows, cols = next(offsets)
        out = xc[:, :, rows, cols].copy()
        kk = self.kernel_size ** 2
        argmax = np.zeros(out.shape, dtype=np.uint8 if kk <= 256 else np.int32)
        better = np.empty(out.shape, dtype=bool)
        for o, rows, cols in offsets:
            candidate = xc[:, :, rows, cols]
            np.greater(candidate, out, out=better)  # strict: ties stay with the earlier offset
            np.copyto(argmax, o, where=better)
            np.copyto(out, candidate, where=better)
        self._argmax, self._input_shape = argmax, x.shape
        return out.transpose(1, 0, 2, 3)

    def backward(self, dout, input_grad=True):
        if not input_grad:
            return None
        N, C, H, W = self._input_shape
        dc = dout.transpose(1, 0, 2, 3)
        dx = np.zeros((C, N, H, W), dtype=dout.dtype)
        won = np.empty(self._argmax.shape, dtype=bool)
        for o, rows, cols in self._windows(self._input_shape):
            np.equal(self._argmax, o, out=won)
            # += on a strided slice: windows of one offset never share an element,
            # so this accumulates correctly where windows of different offsets overlap
            dx[:, :, rows, cols] += np.where(won, dc, 0)
        return dx.transpose(1, 0, 2, 3)

    def __repr__(self):
        return f"MaxPool2d(kernel_size={self.kernel_size}, stride={self.stride})"
