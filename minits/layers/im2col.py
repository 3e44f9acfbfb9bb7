"""im2col / col2im: a convolution as one matrix product.

Everything here is *channel-first*: images are stored as (C, N, H, W). Then the
columns matrix is (C*k*k, N*Ho*Wo) and a convolution is the single wide product

    out (F, N*Ho*Wo) = W (F, C*k*k) @ cols (C*k*k, N*Ho*Wo),

whose result is already channel-first for the next layer: no transposes between
layers (docs/layers.md works a small example by hand).

Following Chainer's conv.py, im2col is a loop over the k*k kernel offsets
(i, j); each offset copies one strided slice of the input, the pixels that
offset sees for every output position at once:

    cols[c, i, j, n, y, x] = x_pad[c, n, i + s*y, j + s*x]

col2im is the adjoint: it adds each offset's slice back where it came from.
Where windows overlap (stride < k) a pixel receives several contributions.
Both run in two stages (columns first, then rows) so that NumPy copies long
contiguous runs; see im2col.
"""

import numpy as np


def conv_output_size(size, kernel_size, stride, padding=0):
    """Ho = floor((H + 2p - k) / s) + 1, the number of window positions along one axis."""
    span = size + 2 * padding - kernel_size
    if span < 0:
        raise ValueError(
            f"kernel {kernel_size} does not fit an input of size {size} with padding {padding}"
        )
    return span // stride + 1


def pad(x, padding, extra_right=0):
    """Zero padding of the two spatial axes.

    x: (C, N, H, W) -> (C, N, H + 2p, W + 2p + e): p zeros on every side, and e more
    columns on the right (a blocked convolution's last block may overhang, see conv.py).
    """
    if padding == 0 and extra_right == 0:
        return x
    C, N, H, W = x.shape
    p = padding
    out = np.zeros((C, N, H + 2 * p, W + 2 * p + extra_right), dtype=x.dtype)
    out[:, :, p:p + H, p:p + W] = x
    return out


def as_pair(value):
    """k or (kh, kw) -> (kh, kw); the same for strides."""
    return (value, value) if np.ndim(value) == 0 else tuple(value)


def im2col(x, kernel_size, stride, out=None):
    """Columns of a (padded) channel-first image batch.

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


def col2im(cols, padded_shape, kernel_size, stride):
    """Adjoint of im2col: scatter-add columns back onto the padded image.

    Inputs:
        cols: (C*kh*kw, N*Ho*Wo)
        padded_shape: (C, N, Hp, Wp) of the image im2col read
        kernel_size: k or (kh, kw); stride: s or (sh, sw)
    Returns:
        dx: (C, N, Hp, Wp), dx[c, n, sh*y + i, sw*x + j] += cols[(c, i, j), (n, y, x)]

    The two stages of im2col in reverse: for each column offset j, the kh row
    offsets add their blocks into dxj (C, N, Hp, Wo) (contiguous blocks for
    sh = 1), then dxj is added onto the columns j::sw of dx.
    """
    C, N, Hp, Wp = padded_shape
    (kh, kw), (sh, sw) = as_pair(kernel_size), as_pair(stride)
    Ho, Wo = conv_output_size(Hp, kh, sh), conv_output_size(Wp, kw, sw)
    cols = cols.reshape(C, kh, kw, N, Ho, Wo)
    dx = np.zeros(padded_shape, dtype=cols.dtype)
    dxj = np.empty((C, N, Hp, Wo), dtype=cols.dtype)
    for j in range(kw):
        dxj[...] = 0
        for i in range(kh):
            dxj[:, :, i:i + sh * Ho:sh] += cols[:, i, j]
        dx[:, :, :, j:j + sw * Wo:sw] += dxj
    return dx
