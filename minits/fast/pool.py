"""FastMaxPool2d: strided maxima with a one-byte offset code (docs/performance.md).

Computes what the plain minits/layers/pool.py computes (maxpool_forward,
maxpool_backward), without gathering the k*k window offsets into one array:
forward loops over the offsets (i, j), comparing one strided slice per offset
with the running maximum (for the usual 2 x 2 pooling, four strided maxima), and
keeps the *offset* of each window's maximum as one byte. It works channel-first,
(C, N, H, W), on the transposed view FastConv2d hands out, and keeps its
temporaries in work arrays of the layer (FastLayer.work).
"""

import numpy as np

from ..layers import MaxPool2d
from .layer import FastLayer


def window_offsets(kernel_size, stride, out_size):
    """Yield (offset index i*k + j, row slice, column slice) for every window offset (i, j).

    out_size: (Ho, Wo); the slices pick element (i, j) of every window of an (H, W) image.
    """
    k, s = kernel_size, stride
    Ho, Wo = out_size
    for i in range(k):
        for j in range(k):
            yield i * k + j, slice(i, i + s * Ho, s), slice(j, j + s * Wo, s)


class FastMaxPool2d(FastLayer, MaxPool2d):
    """MaxPool2d, fast."""

    def forward(self, x):
        """out, cache = maxpool_forward(x, k, s), fast.

        Must equal minits.layers.pool.maxpool_forward bit for bit (the offsets, and
        out, a copy of an input element; only where a window's maximum is a zero
        present as both +0 and -0 may its sign differ): the comparison is strict, so
        a later equal value never wins, as with np.argmax.

        Inputs:
            x: (N, C, H, W), any strides (channel-first views are free)
        Returns:
            out: (N, C, Ho, Wo), a view of a channel-first (C, N, Ho, Wo) array
        Caches (argmax, x.shape), argmax (C, N, Ho, Wo) of uint8 (int32 for k*k > 256).
        """
        self._check_input(x)
        xc = x.transpose(1, 0, 2, 3)  # channel-first view (C, N, H, W), see FastConv2d
        _, _, Ho, Wo = self.output_shape(x.shape)
        offsets = window_offsets(self.kernel_size, self.stride, (Ho, Wo))
        windows = [xc[:, :, rows, cols] for _, rows, cols in offsets]
        out = windows[0].copy()  # running maximum, (C, N, Ho, Wo)
        kk = self.kernel_size ** 2
        argmax = np.zeros(out.shape, dtype=np.uint8 if kk <= 256 else np.int32)
        window = self.work("window", out.shape, out.dtype)
        better = self.work("better", out.shape, bool)
        code = self.work("code", out.shape, argmax.dtype)
        for o, candidate in enumerate(windows[1:], start=1):
            # one strided copy, then every comparison runs on contiguous memory:
            # about twice as fast as comparing the strided slices themselves
            np.copyto(window, candidate)
            np.greater(window, out, out=better)  # strict: ties stay with the earlier offset
            # offsets only grow, so "o where better, else argmax" is max(argmax, o * better)
            np.multiply(better, argmax.dtype.type(o), out=code)
            np.maximum(argmax, code, out=argmax)
            np.maximum(out, window, out=out)
        self._cache = (argmax, x.shape)
        return out.transpose(1, 0, 2, 3)

    def backward(self, dout, input_grad=True):
        """dx = maxpool_backward(dout, cache), fast; None when input_grad=False.

        Must equal minits.layers.pool.maxpool_backward bit for bit for finite dout (the
        same additions in the same order), up to the sign of zeros.

        Inputs:
            dout: (N, C, Ho, Wo), any strides
        Returns:
            dx: (N, C, H, W), a view of a channel-first (C, N, H, W) array
        """
        argmax, (N, C, H, W) = self._cached()
        if not input_grad:
            return None
        k, s = self.kernel_size, self.stride
        dc = dout.transpose(1, 0, 2, 3)
        _, _, Ho, Wo = dout.shape
        tiled = s == k and H == k * Ho and W == k * Wo
        # when the windows tile x exactly, every element of dx is written below
        dx = (np.empty if tiled else np.zeros)((C, N, H, W), dtype=dout.dtype)
        won = self.work("won", argmax.shape, bool)
        for o, rows, cols in window_offsets(k, s, (Ho, Wo)):
            np.equal(argmax, o, out=won)
            if s >= k:  # windows do not overlap: each element of dx gets one window's share
                np.multiply(dc, won, out=dx[:, :, rows, cols])
            else:  # overlapping windows: an element collects the shares of all windows it wins
                dx[:, :, rows, cols] += dc * won
        return dx.transpose(1, 0, 2, 3)
