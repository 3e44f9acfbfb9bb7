"""Output blocking: one column of the im2col product serves b neighbouring outputs.

Why. A convolution with few output channels F (LeNet-5's first layer: F = 6) is a
product W2 (F, C*k*k) @ cols (C*k*k, N*Ho*Wo) with very few rows. Its cost is not
the arithmetic but the traffic: im2col writes the columns (30 MB for that layer)
and the product streams them through the cache once for the forward and once for
dW. Yet neighbouring windows overlap: the windows of b horizontally adjacent
outputs together see only k + s*(b-1) input columns, not b*k.

How. A stride-s convolution with F filters of size k x k equals a convolution
with windows of size k x kw, strides (s, s*b) and F*b filters, where

    kw = k + s*(b - 1)

and filter (f, p) is filter f shifted right by s*p, zero elsewhere:

    Wb[(f, p), (c, i, s*p + j)] = W[f, c, i, j].

Its output (f, p) at block x2 is the original output f at x = b*x2 + p:

    out[f, n, y, b*x2 + p] = outb[(f, p), (n, y, x2)].

The columns matrix has C*k*kw rows and N*Ho*Wo/b columns: (k + s*(b-1)) / (b*k)
of the original size (0.4 for LeNet-5's conv1 with b = 4), and the product gets b
times the rows. The arithmetic grows by kw / k (zeros of Wb are multiplied too);
for thin layers that is the cheaper side of the trade (docs/performance.md).

Used by FastConv2d only (minits/fast/conv.py); the plain convolution
(minits/layers/conv.py) is the unblocked product, b = 1, which every b must equal
to rounding. Everything here is channel-first, like minits/fast/im2col.py. The functions
come in adjoint pairs: block_weights / fold_weight_grad and interleave /
deinterleave, and the backward of a blocked convolution uses the second of each pair.
"""

import numpy as np

# a product with fewer rows than this streams its columns for little arithmetic
# (OpenBLAS, conv1's columns: 4, 8 and 16 rows took 3.5, 4.8 and 5.8 ms, see
# docs/performance.md)
MIN_ROWS = 16


def choose_block(out_channels, kernel_size, stride, out_width):
    """The number b of neighbouring outputs per column that FastConv2d uses by default.

    b = 1 (one output per column) when the product already has MIN_ROWS rows, or
    when windows do not overlap (stride >= kernel_size: blocking saves nothing). Otherwise
    the smallest b with out_channels * b >= MIN_ROWS, moved up to a divisor of
    out_width when one is near (a last, partial block computes outputs that are
    thrown away).
    """
    if out_channels >= MIN_ROWS or stride >= kernel_size:
        return 1
    b = -(-MIN_ROWS // out_channels)
    for candidate in range(b, 2 * b):
        if out_width % candidate == 0:
            return candidate
    return min(b, out_width)


def num_blocks(out_width, block):
    """ceil(Wo / b): the blocks of b outputs per output row, the last one maybe partial."""
    return -(-out_width // block)


def blocked_width(kernel_size, stride, block):
    """kw = k + s*(b - 1): the width of the window that b neighbouring outputs see."""
    return kernel_size + stride * (block - 1)


def block_weights(W, block, stride):
    """The F*b shifted filters of a blocked convolution.

    Inputs:
        W: (F, C, k, k)
        block b, stride s
    Returns:
        Wb: (F*b, C*k*kw), kw = k + s*(b-1), rows (f, p), columns (c, i, j'):
        Wb[(f, p), (c, i, s*p + j)] = W[f, c, i, j] and 0 for the other j'.
    """
    F, C, k, _ = W.shape
    Wb = np.zeros((F, block, C, k, blocked_width(k, stride, block)), dtype=W.dtype)
    for p in range(block):
        Wb[:, p, :, :, stride * p:stride * p + k] = W
    return Wb.reshape(F * block, -1)


def fold_weight_grad(dWb, block, stride, out):
    """Adjoint of block_weights: each filter collects the gradient of its b copies.

    Inputs:
        dWb: (F*b, C*k*kw), the gradient with respect to block_weights' output
        out: (F, C, k, k), written in place
    Returns:
        out, with out[f, c, i, j] = sum_p dWb[(f, p), (c, i, s*p + j)]
    """
    F, C, k, _ = out.shape
    dWb = dWb.reshape(F, block, C, k, blocked_width(k, stride, block))
    np.copyto(out, dWb[:, 0, :, :, 0:k])
    for p in range(1, block):
        out += dWb[:, p, :, :, stride * p:stride * p + k]
    return out


def interleave(outb, out):
    """The outputs of a blocked product, back in order along the width.

    Inputs:
        outb: (F, b, N, Ho, Wb) with Wb = ceil(Wo / b)
        out:  (F, N, Ho, Wo), written in place
    Returns:
        out, out[f, n, y, b*x2 + p] = outb[f, p, n, y, x2]; a last, partial block's
        extra outputs (b*x2 + p >= Wo) are dropped.
    """
    block = outb.shape[1]
    for p in range(block):
        dst = out[..., p::block]
        np.copyto(dst, outb[:, p, ..., :dst.shape[-1]])
    return out


def deinterleave(dout, out):
    """Adjoint of interleave: split the width into its b residues.

    Inputs:
        dout: (F, N, Ho, Wo), any strides
        out:  (F, b, N, Ho, Wb), written in place
    Returns:
        out, out[f, p, n, y, x2] = dout[f, n, y, b*x2 + p], and 0 where b*x2 + p >= Wo
    """
    block = out.shape[1]
    for p in range(block):
        src = dout[..., p::block]
        out[:, p, ..., :src.shape[-1]] = src
        out[:, p, ..., src.shape[-1]:] = 0
    return out
