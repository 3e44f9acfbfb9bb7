"""2-D convolution, Eq. (1) with a Toeplitz-structured alpha (Sec. 2.1), via im2col."""

import numpy as np

from . import blocking
from .base import Layer, check_dtype, check_input, gaussian, scratch
from .im2col import conv_output_size, im2col, pad


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
        dW = dout2 @ cols.T,   db = dout2.sum(1),   dx = col2im(W2.T @ dout2),
    where dx is computed without the intermediate W2.T @ dout2 (see _input_grad).

    block: how many horizontally neighbouring outputs one column of cols serves
    (minits/layers/blocking.py); None chooses by the layer's shape: 1 (the plain
    product above) unless the layer has fewer than 16 filters and overlapping
    windows. With b > 1 the forward and dW use the blocked weights Wb (F*b, C*k*kw)
    and columns cols (C*k*kw, N*Ho*ceil(Wo/b)): out = interleave(Wb @ cols) and
    dW = fold_weight_grad(deinterleave(dout) @ cols.T). Any b computes the same
    convolution; results agree up to rounding, since the sums run in another order.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=False,
                 dtype=np.float32, rng=None, gain=1.0, block=None):
        super().__init__()
        for name, value, low in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                                 ("kernel_size", kernel_size, 1), ("stride", stride, 1),
                                 ("padding", padding, 0),
                                 ("block", 1 if block is None else block, 1)):
            if isinstance(value, bool) or int(value) != value or value < low:
                raise ValueError(f"Conv2d {name} must be an integer >= {low}, got {value!r}")
        dtype = check_dtype(dtype)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)
        self.block = None if block is None else int(block)
        k = self.kernel_size
        shape = (out_channels, in_channels, k, k)
        self.params["W"] = gaussian(shape, in_channels * k * k, gain, dtype, rng)
        if bias:
            self.params["b"] = np.zeros(out_channels, dtype=dtype)
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}
        self._cache = None

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
        k, s, p, W = self.kernel_size, self.stride, self.padding, self.params["W"]
        b = min(self.block or blocking.choose_block(F, k, s, Wo), Wo)
        blocks, kw = blocking.num_blocks(Wo, b), blocking.blocked_width(k, s, b)
        # a last, partial block reads past the right edge: give it zeros to read
        extra = max(0, s * (b * blocks - 1) + k - (x.shape[3] + 2 * p))
        xc = pad(x.transpose(1, 0, 2, 3), p, extra)  # channel-first (C, N, Hp, Wp)
        # the columns (12 MB for conv1 of LeNet-5) live in a work array that every
        # call reuses; backward needs them for dW
        cols = scratch(self, "cols", (xc.shape[0] * k * kw, N * Ho * blocks), x.dtype)
        cols = im2col(xc, (k, kw), (s, s * b), out=cols)
        self._cache = cols, b, x.shape
        if b == 1:
            out = (W.reshape(F, -1) @ cols).reshape(F, N, Ho, Wo)  # the one wide GEMM
        else:
            outb = scratch(self, "outb", (F * b, cols.shape[1]), x.dtype)
            np.matmul(blocking.block_weights(W, b, s), cols, out=outb)
            out = np.empty((F, N, Ho, Wo), x.dtype)
            blocking.interleave(outb.reshape(F, b, N, Ho, blocks), out)
        if "b" in self.params:
            out += self.params["b"][:, None, None, None]
        return out.transpose(1, 0, 2, 3)

    def backward(self, dout, input_grad=True):
        check_input(self, dout, 4, "dout")
        cols, b, input_shape = self._cache
        F, s = self.out_channels, self.stride
        dout_c = dout.transpose(1, 0, 2, 3)  # (F, N, Ho, Wo): free when dout is channel-first
        if b == 1:
            dout2 = dout_c.reshape(F, -1)
            np.matmul(dout2, cols.T, out=self.grads["W"].reshape(F, -1))
        else:
            N, Ho, Wo = dout_c.shape[1:]
            doutb = scratch(self, "doutb", (F, b, N, Ho, blocking.num_blocks(Wo, b)), dout.dtype)
            dout2 = blocking.deinterleave(dout_c, doutb).reshape(F * b, -1)
            blocking.fold_weight_grad(dout2 @ cols.T, b, s, out=self.grads["W"])
        if "b" in self.params:
            np.sum(dout2.reshape(F, -1), axis=1, out=self.grads["b"])
        if not input_grad:
            return None
        p, (H, W) = self.padding, input_shape[2:]
        dxp = self._input_grad(dout_c, (H + 2 * p, W + 2 * p))
        return dxp[:, :, p:p + H, p:p + W].transpose(1, 0, 2, 3)

    def _input_grad(self, dout, padded_size):
        """dL/dx_pad, the adjoint of the convolution: col2im(W2.T @ dout2) in one product.

        Inputs:
            dout: (F, N, Ho, Wo), channel-first, any strides
            padded_size: (Hp, Wp) of the padded input the forward read
        Returns:
            dx: (C, N, Hp, Wp), dx[c, n, s*y + i, s*x + j] = sum W[f, c, i, j] dout[f, n, y, x]
                summed over f and over every (y, x, i, j) that lands on the pixel

        col2im would first form dcols = W2.T @ dout2, (C*k*k, N*Ho*Wo) (7.7 MB for
        LeNet-5's conv2, from a product with only F = 16 terms per entry) and then add
        its k*k slices back. Instead, like im2col, the column offsets j are moved
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
        E = scratch(self, "E", (F, k - 1 + Q), dout.dtype)
        E[...] = 0
        E[:, k - 1:].reshape(F, N, Ho, Wp)[..., 0:s * (Wo - 1) + 1:s] = dout
        D = scratch(self, "D", (k, F, Q), dout.dtype)
        for j in range(k):
            D[j] = E[:, k - 1 - j:k - 1 - j + Q]
        Wt = self.params["W"].transpose(1, 2, 3, 0).reshape(C * k, k * F)  # (c, i) x (j, f)
        G = np.matmul(Wt, D.reshape(k * F, Q), out=scratch(self, "G", (C * k, Q), dout.dtype))
        G = G.reshape(C, k, N, Ho, Wp)
        dx = np.zeros((C, N, Hp, Wp), dout.dtype)
        for i in range(k):
            dx[:, :, i:i + s * (Ho - 1) + 1:s] += G[:, i]
        return dx

    def __repr__(self):
        block = "" if self.block is None else f", block={self.block}"
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={'b' in self.params}{block})")
