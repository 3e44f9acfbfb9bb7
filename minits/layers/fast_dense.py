"""Fast Linear, ReLU and Flatten: the small levers of the dense layers (docs/performance.md).

Each function names the plain one it must equal (minits/layers/linear.py,
activations.py, flatten.py) and how closely. The levers: no input gradient when
input_grad=False, gradients written straight into layer.grads, ReLU's backward
as a product with a one-byte mask, and Flatten handing its gradient back in its
input's memory layout.
"""

import math

import numpy as np


def fast_linear_forward(layer, x):
    """out, cache = linear_forward(x, W, b), fast; must equal
    minits.layers.linear.linear_forward bit for bit (the bias is added in place).

    Inputs:
        layer: a Linear; x: (N, in_features)
    Returns:
        out: (N, out_features); cache: x
    """
    out = x @ layer.params["W"].T
    if "b" in layer.params:
        out += layer.params["b"]
    return out, x


def fast_linear_backward(layer, dout, cache, input_grad=True):
    """linear_backward, fast: dW (and db) written into layer.grads, dx only when asked.

    Must equal minits.layers.linear.linear_backward bit for bit (the same products).

    Inputs:
        layer: the Linear; dout: (N, out_features); cache: x from fast_linear_forward
    Returns:
        dx: (N, in_features), or None when input_grad=False (the product is skipped)
    """
    x = cache
    np.matmul(dout.T, x, out=layer.grads["W"])
    if "b" in layer.params:
        np.sum(dout, axis=0, out=layer.grads["b"])
    return dout @ layer.params["W"] if input_grad else None


def fast_relu_forward(x):
    """out, cache = relu_forward(x), fast; must equal minits.layers.activations.relu_forward
    bit for bit. The cache is the mask x > 0 (one byte per element), not x.

    The output keeps the input's memory layout (NumPy's order="K"), so
    channel-first stays channel-first.
    """
    return np.maximum(x, 0), x > 0


def fast_relu_backward(dout, positive, input_grad=True):
    """dx = dout * [x > 0], fast; None when input_grad=False.

    Must equal minits.layers.activations.relu_backward for finite dout, up to the
    sign of zero (dout * False is -0.0 where dout < 0; a NaN in dout stays NaN
    where x <= 0). Multiplying by the boolean mask is about 5x faster than
    np.where(mask, dout, 0).
    """
    if not input_grad:
        return None
    return dout * positive


def fast_flatten_forward(x):
    """out, cache = flatten_forward(x), fast; must equal
    minits.layers.flatten.flatten_forward bit for bit. The cache is x itself (a
    reference), for its shape and memory layout.
    """
    # math.prod of a tuple, not np.prod (7 us of array conversion every batch);
    # the size is explicit, not -1, so that N = 0 works
    return x.reshape(x.shape[0], math.prod(x.shape[1:])), x


def fast_flatten_backward(dout, x, input_grad=True):
    """dx = dout reshaped to x's shape, in x's memory layout; None when input_grad=False.

    Must equal minits.layers.flatten.flatten_backward bit for bit (values; only the
    memory layout differs). When x was not C-contiguous (a channel-first view from
    the fast Conv2d / MaxPool2d), dout is copied into x's layout (np.empty_like keeps
    it), so the layers below get their gradient channel-first as well: ReLU and
    MaxPool2d then work on matching layouts (2x faster for LeNet-5's second pooling).
    """
    if not input_grad:
        return None
    dx = dout.reshape(x.shape)
    if x.flags.c_contiguous:
        return dx
    out = np.empty_like(x, dtype=dout.dtype)  # the memory layout of x
    out[...] = dx
    return out
