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


def pad(x, padding):
    """Zero padding of the two spatial axes. x: (C, N, H, W) -> (C, N, H+2p, W+2p)."""
    if padding == 0:
        return x
    C, N, H, W = x.shape
    out = np.zeros((C, N, H + 2 * padding, W + 2 * padding), dtype=x.dtype)
    out[:, :, padding:padding + H, padding:padding + W] = x
    return out


def im2col(x, kernel_size, stride, out=None):
    """Columns of a (padded) channel-first image batch.

    Inputs:
        x: (C, N, Hp, Wp), any strides, already padded
        kernel_size k, stride s
        out: optional buffer of C*k*k*N*Ho*Wo elements to write into (reused across steps)
    Returns:
        cols: (C*k*k, N*Ho*Wo) with row index (c, i, j) and column index (n, y, x),
        Ho = (Hp - k) // s + 1, Wo = (Wp - k) // s + 1.
    """
    C, N, Hp, Wp = x.shape
    k, s = kernel_size, stride
    Ho, Wo = conv_output_size(Hp, k, s), conv_output_size(Wp, k, s)
    shape = (C, k, k, N, Ho, Wo)
    cols = np.empty(shape, dtype=x.dtype) if out is None else out.reshape(shape)
    for i in range(k):
        for j in range(k):
            cols[:, i, j] = x[:, :, i:i + s * Ho:s, j:j + s * Wo:s]
    return cols.reshape(C * k * k, N * Ho * Wo)


def col2im(cols, padded_shape, kernel_size, stride):
    """Adjoint of im2col: scatter-add columns back onto the padded image.

    Inputs:
        cols: (C*k*k, N*Ho*Wo)
        padded_shape: (C, N, Hp, Wp) of the image im2col read
    Returns:
        dx: (C, N, Hp, Wp), dx[c, n, i + s*y, j + s*x] += cols[(c, i, j), (n, y, x)]
    """
    C, N, Hp, Wp = padded_shape
    k, s = kernel_size, stride
    Ho, Wo = conv_output_size(Hp, k, s), conv_output_size(Wp, k, s)
    cols = cols.reshape(C, k, k, N, Ho, Wo)
    dx = np.zeros(padded_shape, dtype=cols.dtype)
    for i in range(k):
        for j in range(k):
            dx[:, :, i:i + s * Ho:s, j:j + s * Wo:s] += cols[:, i, j]
    return dx
