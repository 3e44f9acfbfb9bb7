"""im2col / col2im: a convolution as one matrix product (plain implementation).

A convolution's input values are rearranged into a matrix of columns, one
column per output position, so that the whole convolution becomes the product

    out (F, N*Ho*Wo) = W2 (F, C*k*k) @ cols (C*k*k, N*Ho*Wo)

(minits/layers/conv.py; docs/layers.md works a small example by hand).

Following Chainer's conv.py, im2col is one loop over the k*k kernel offsets
(i, j); each offset copies one strided slice of the input, the pixels that
offset sees for every output position at once:

    cols[c, i, j, n, y, x] = x_pad[c, n, i + s*y, j + s*x]

The images are channel-first, (C, N, H, W), so that the columns run over
(n, y, x) and the product comes out as (F, N, Ho, Wo). col2im is the adjoint:
it adds each offset's slice back where it came from; where windows overlap
(s < k) a pixel receives several contributions.

The fast convolution copies the same columns in two stages
(minits/fast/im2col.py).
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


def im2col(x_pad, kernel_size, stride):
    """The columns of a padded, channel-first image batch.

    Inputs:
        x_pad: (C, N, Hp, Wp), already padded
        kernel_size: k (square windows); stride: s
    Returns:
        cols: (C*k*k, N*Ho*Wo), Ho = (Hp - k) // s + 1, Wo = (Wp - k) // s + 1,
        row index (c, i, j), column index (n, y, x):
        cols[(c, i, j), (n, y, x)] = x_pad[c, n, s*y + i, s*x + j]
    """
    # BEGIN TASK im2col
    C, N, Hp, Wp = x_pad.shape
    k, s = kernel_size, stride
    Ho, Wo = conv_output_size(Hp, k, s), conv_output_size(Wp, k, s)
    cols = np.empty((C, k, k, N, Ho, Wo), dtype=x_pad.dtype)
    for i in range(k):
        for j in range(k):
            # offset (i, j) of every window at once: rows i, i+s, ..., columns j, j+s, ...
            cols[:, i, j] = x_pad[:, :, i:i + s * Ho:s, j:j + s * Wo:s]
    return cols.reshape(C * k * k, N * Ho * Wo)
    # END TASK


def col2im(cols, padded_shape, kernel_size, stride):
    """Adjoint of im2col: add every column entry back onto the pixel it was copied from.

    Inputs:
        cols: (C*k*k, N*Ho*Wo), e.g. dL/dcols
        padded_shape: (C, N, Hp, Wp) of the image im2col read
        kernel_size: k; stride: s
    Returns:
        dx: (C, N, Hp, Wp), dx[c, n, s*y + i, s*x + j] += cols[(c, i, j), (n, y, x)]
        summed over every (y, x, i, j) that lands on the pixel
    """
    # BEGIN TASK conv-backward
    C, N, Hp, Wp = padded_shape
    k, s = kernel_size, stride
    Ho, Wo = conv_output_size(Hp, k, s), conv_output_size(Wp, k, s)
    cols = cols.reshape(C, k, k, N, Ho, Wo)
    dx = np.zeros(padded_shape, dtype=cols.dtype)
    for i in range(k):
        for j in range(k):
            dx[:, :, i:i + s * Ho:s, j:j + s * Wo:s] += cols[:, i, j]
    return dx
    # END TASK
