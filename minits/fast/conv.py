"""FastConv2d: the speed levers of the convolution (docs/performance.md).

Computes what the plain minits/layers/conv.py computes (conv_forward,
conv_backward), with:
  - channel-first work: the product's (F, N, Ho, Wo) result is handed out as a
    transposed view, and a channel-first input (the previous layer's view) is
    transposed back for free;
  - the columns built by fast_im2col (two stages) into a work array the layer
    reuses (FastLayer.work), which doubles as backward's cache;
  - output blocking for thin layers (minits/fast/blocking.py);
  - the input gradient without col2im's (C*k*k, N*Ho*Wo) intermediate
    (input_grad below);
  - no input gradient at all with input_grad=False.
"""

import numpy as np

from ..layers import Conv2d
from ..layers.base import check_input, check_integer
from . import blocking
from .im2col import fast_im2col, pad_channel_first
from .layer import FastLayer


class FastConv2d(FastLayer, Conv2d):
    """Conv2d, fast. The constructor takes one more argument:

    block: how many horizontally neighbouring outputs one column of the im2col product
        serves (minits/fast/blocking.py); None chooses by the layer's shape. Every b
        computes the same convolution (to rounding).
    """

    def __init__(self, *args, block=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.block = None if block is None else check_integer("Conv2d block", block, 1)

    @classmethod
    def from_plain(cls, layer, block=None):
        fast = super().from_plain(layer)
        fast.block = None if block is None else check_integer("Conv2d block", block, 1)
        return fast

    def __repr__(self):
        block = "" if self.block is None else f", block={self.block}"
        return super().__repr__()[:-1] + block + ")"

    def forward(self, x):
        """out, cache = conv_forward(x, W, b, stride, padding), fast.

        Must equal minits.layers.conv.conv_forward: bit for bit when the block b is 1
        (the same columns and the same product), to rounding when b > 1 (the blocked
        product sums in another order).

        Inputs:
            x: (N, C, H, W), any strides
        Returns:
            out: (N, F, Ho, Wo), a view of a channel-first (F, N, Ho, Wo) array
        Caches (cols, b, x.shape); cols is a work array of the layer.
        """
        self._check_input(x)
        N, F, Ho, Wo = self.output_shape(x.shape)
        k, s, p, W = self.kernel_size, self.stride, self.padding, self.params["W"]
        b = min(self.block or blocking.choose_block(F, k, s, Wo), Wo)
        blocks, kw = blocking.num_blocks(Wo, b), blocking.blocked_width(k, s, b)
        # a last, partial block reads past the right edge: give it zeros to read
        extra = max(0, s * (b * blocks - 1) + k - (x.shape[3] + 2 * p))
        xc = pad_channel_first(x.transpose(1, 0, 2, 3), p, extra)  # channel-first (C, N, Hp, Wp)
        # the columns (12 MB for conv1 of LeNet-5) live in a work array that every
        # call reuses; backward needs them for dW
        cols = self.work("cols", (xc.shape[0] * k * kw, N * Ho * blocks), x.dtype)
        cols = fast_im2col(xc, (k, kw), (s, s * b), out=cols)
        if b == 1:
            out = (W.reshape(F, -1) @ cols).reshape(F, N, Ho, Wo)  # the one wide GEMM
        else:
            outb = self.work("outb", (F * b, cols.shape[1]), x.dtype)
            np.matmul(blocking.block_weights(W, b, s), cols, out=outb)
            out = np.empty((F, N, Ho, Wo), x.dtype)
            blocking.interleave(outb.reshape(F, b, N, Ho, blocks), out)
        if "b" in self.params:
            out += self.params["b"][:, None, None, None]
        self._cache = (cols, b, x.shape)
        return out.transpose(1, 0, 2, 3)

    def backward(self, dout, input_grad=True):
        """conv_backward, fast: fills grads and returns dx (None when not input_grad).

        Must equal minits.layers.conv.conv_backward: dW and db bit for bit when b = 1,
        to rounding when b > 1; dx to rounding (input_grad sums in another order).

        Inputs:
            dout: (N, F, Ho, Wo), any strides (free when channel-first)
        Returns:
            dx: (N, C, H, W), or None when input_grad=False (the costliest product, skipped)
        """
        check_input(self, dout, 4, "dout")
        cols, b, input_shape = self._cached()
        F, s = self.out_channels, self.stride
        dout_c = dout.transpose(1, 0, 2, 3)  # (F, N, Ho, Wo): free when dout is channel-first
        if b == 1:
            dout2 = dout_c.reshape(F, -1)
            np.matmul(dout2, cols.T, out=self.grads["W"].reshape(F, -1))
        else:
            N, Ho, Wo = dout_c.shape[1:]
            doutb = self.work("doutb", (F, b, N, Ho, blocking.num_blocks(Wo, b)), dout.dtype)
            dout2 = blocking.deinterleave(dout_c, doutb).reshape(F * b, -1)
            blocking.fold_weight_grad(dout2 @ cols.T, b, s, out=self.grads["W"])
        if "b" in self.params:
            np.sum(dout2.reshape(F, -1), axis=1, out=self.grads["b"])
        if not input_grad:
            return None
        p, (H, W) = self.padding, input_shape[2:]
        dxp = self.input_grad(dout_c, (H + 2 * p, W + 2 * p))
        return dxp[:, :, p:p + H, p:p + W].transpose(1, 0, 2, 3)

    def input_grad(self, dout, padded_size):
        """dL/dx_pad, the adjoint of the convolution: col2im(W2.T @ dout2) in one product.

        Must equal minits.layers.im2col.col2im(W2.T @ dout2, ...) to rounding (the same
        sum, grouped differently).

        Inputs:
            dout: (F, N, Ho, Wo), channel-first, any strides
            padded_size: (Hp, Wp) of the padded input the forward read
        Returns:
            dx: (C, N, Hp, Wp), dx[c, n, s*y + i, s*x + j] = sum W[f, c, i, j] dout[f, n, y, x]
                summed over f and over every (y, x, i, j) that lands on the pixel

        col2im would first form dcols = W2.T @ dout2, (C*k*k, N*Ho*Wo) (7.7 MB for
        LeNet-5's conv2, from a product with only F = 16 terms per entry) and then add
        its k*k slices back. Instead, like fast_im2col, the column offsets j are moved
        into the product and the row offsets i are added afterwards:

        1. E: dout laid out on rows of the input's width Wp, dout[..., x] at column
           s*x; every row ends in at least k - 1 zero columns, and k - 1 zeros
           precede the first row.
        2. D[(j, f)] = E shifted right by j columns. Row by row that is one flat
           copy per j: what a row pushes past its end lands on the zeros that end
           the row before it.
        3. G[(c, i), (n, y, w)] = sum over (j, f) of W[f, c, i, j] D[(j, f), (n, y, w)],
           one product (C*k, F*k) @ (F*k, N*Ho*Wp).
        4. dx[c, n, s*y + i, w] += G[(c, i), (n, y, w)], one add per row offset i.
        """
        F, N, Ho, Wo = dout.shape
        _, C, k, _ = self.params["W"].shape
        (Hp, Wp), s = padded_size, self.stride
        Q = N * Ho * Wp
        E = self.work("E", (F, k - 1 + Q), dout.dtype)
        E[...] = 0
        E[:, k - 1:].reshape(F, N, Ho, Wp)[..., 0:s * (Wo - 1) + 1:s] = dout
        D = self.work("D", (k, F, Q), dout.dtype)
        for j in range(k):
            D[j] = E[:, k - 1 - j:k - 1 - j + Q]
        Wt = self.params["W"].transpose(1, 2, 3, 0).reshape(C * k, k * F)  # (c, i) x (j, f)
        G = np.matmul(Wt, D.reshape(k * F, Q), out=self.work("G", (C * k, Q), dout.dtype))
        G = G.reshape(C, k, N, Ho, Wp)
        dx = np.zeros((C, N, Hp, Wp), dout.dtype)
        for i in range(k):
            dx[:, :, i:i + s * (Ho - 1) + 1:s] += G[:, i]
        return dx
