"""Fast im2col: the columns of a convolution copied in two stages, into a reused array.

The plain im2col (minits/layers/im2col.py) copies one strided slice per kernel
offset (i, j); each slice moves runs of only Wo elements, and NumPy pays per run.
fast_im2col computes the same columns, bit for bit (copies only), in two stages
so that most copying moves long contiguous runs, and it can write into a work
array the layer keeps (FastLayer.work). It also takes rectangular windows and
strides, which output blocking needs (minits/fast/blocking.py).

Everything here is channel-first: images are stored as (C, N, H, W), as in
FastConv2d (minits/fast/conv.py).
"""

import numpy as np

from ..layers.im2col import conv_output_size


def as_pair(value):
    """k or (kh, kw) -> (kh, kw); the same for strides."""
    return (value, value) if np.ndim(value) == 0 else tuple(value)


def pad_channel_first(x, padding, extra_right=0):
    """Zero padding of the two spatial axes.

    x: (C, N, H, W) -> (C, N, H + 2p, W + 2p + e): p zeros on every side, and e more
    columns on the right (a blocked convolution's last block may overhang, see
    conv.py). Returns x itself when there is nothing to pad.
    """
    if padding == 0 and extra_right == 0:
        return x
    C, N, H, W = x.shape
    p = padding
    out = np.zeros((C, N, H + 2 * p, W + 2 * p + extra_right), dtype=x.dtype)
    out[:, :, p:p + H, p:p + W] = x
    return out


def fast_im2col(x, kernel_size, stride, out=None):
    """Columns of a (padded) channel-first image batch; must equal the plain
    minits.layers.im2col.im2col bit for bit (both only copy).

    Inputs:
        x: (C, N, Hp, Wp), any strides, already padded
        kernel_size: k, or (kh, kw) for a rectangular window
        stride: s, or (sh, sw)
        out: optional array of C*kh*kw*N*Ho*Wo elements to write into (a work array
             reused across steps); it must reshape to (C, kh, kw, N, Ho, Wo) without a copy
    Returns:
        cols: (C*kh*kw, N*Ho*Wo) with row index (c, i, j) and column index (n, y, x),
        Ho = (Hp - kh) // sh + 1, Wo = (Wp - kw) // sw + 1, and
        cols[(c, i, j), (n, y, x)] = x[c, n, sh*y + i, sw*x + j].

    Two stages, so that most copying moves long contiguous runs: for each column
    offset j, first copy the Wo columns that offset sees, xj = x[..., j::sw] of shape
    (C, N, Hp, Wo) (runs of Wo elements); then each row offset i takes rows
    i::sh of xj, which for sh = 1 is one contiguous block of Ho*Wo elements per
    image. NumPy pays per run, so this is about twice as fast as copying
    x[..., i::sh, j::sw] (runs of Wo) kh*kw times.
    """
    C, N, Hp, Wp = x.shape
    (kh, kw), (sh, sw) = as_pair(kernel_size), as_pair(stride)
    Ho, Wo = conv_output_size(Hp, kh, sh), conv_output_size(Wp, kw, sw)
    shape = (C, kh, kw, N, Ho, Wo)
    if out is None:
        out = np.empty(shape, dtype=x.dtype)
    cols = out.reshape(shape)
    # reshape had to copy: writes would be lost (an empty array shares no memory at all)
    if out.size and not np.may_share_memory(cols, out):
        raise ValueError(f"im2col: out of shape {out.shape} and strides {out.strides} cannot "
                         f"be viewed as {shape}")
    xj = np.empty((C, N, Hp, Wo), dtype=x.dtype)
    for j in range(kw):
        np.copyto(xj, x[:, :, :, j:j + sw * Wo:sw])
        for i in range(kh):
            cols[:, i, j] = xj[:, :, i:i + sh * Ho:sh]
    return out.reshape(C * kh * kw, N * Ho * Wo)
