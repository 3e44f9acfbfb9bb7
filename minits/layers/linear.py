"""Fully connected layer, Eq. (1): Y^{l+1} = alpha^{l+1} X^l.

linear_forward / linear_backward below, and the Linear layer that runs them.
"""

import numpy as np

from .base import Layer, check_dtype, check_input, gaussian, store_grads


def linear_forward(x, W, b=None):
    """out = x W^T (+ b): Eq. (1), Y_i = sum_j alpha_ij X_j, for every sample.

    Inputs:
        x: (N, D); W: (F, D), alpha^{l+1} in PyTorch's layout; b: (F,) or None
    Returns:
        out: (N, F); cache: (x, W)
    """
    # BEGIN TASK linear-forward
    out = x @ W.T
    if b is not None:
        out = out + b
    return out, (x, W)
    # END TASK


def linear_backward(dout, cache):
    """Since out[n, f] = sum_d x[n, d] W[f, d] (+ b[f]):

        dW = dout^T x,   db = sum_n dout[n],   dx = dout W

    Inputs:
        dout: (N, F), dL/dout; cache: from linear_forward
    Returns:
        dx: (N, D), dW: (F, D), db: (F,)
    """
    # BEGIN TASK linear-backward
    x, W = cache
    dW = dout.T @ x
    db = dout.sum(axis=0)
    dx = dout @ W
    return dx, dW, db
    # END TASK


class Linear(Layer):
    """Linear layer: linear_forward / linear_backward with parameters W (and b).

    Shapes:
        x:   (N, in_features)
        W:   (out_features, in_features)   -- alpha^{l+1} of Eq. (1), PyTorch's layout
        b:   (out_features,)               -- only with bias=True; Eq. (1) has none
        out: (N, out_features)
    """

    def __init__(self, in_features, out_features, bias=False, dtype=np.float32, rng=None,
                 gain=1.0):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"Linear sizes must be positive, got ({in_features}, {out_features})")
        dtype = check_dtype(dtype)
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.params["W"] = gaussian((out_features, in_features), in_features, gain, dtype, rng)
        if bias:
            self.params["b"] = np.zeros(out_features, dtype=dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def forward(self, x):
        """x: (N, in_features) -> out: (N, out_features)."""
        self._check_input(x)
        out, self._cache = linear_forward(x, self.params["W"], self.params.get("b"))
        return out

    def backward(self, dout):
        """dout: (N, out_features) -> dx: (N, in_features); fills grads["W"] (and "b")."""
        check_input(self, dout, 2, "dout")
        dx, dW, db = linear_backward(dout, self._cached())
        store_grads(self, dW, db)
        return dx

    def _check_input(self, x):
        """x must be (N, in_features) in the parameters' dtype."""
        check_input(self, x, 2)
        if x.shape[1] != self.in_features:
            raise ValueError(f"{self!r}: x has {x.shape[1]} features, expected {self.in_features}")

    def __repr__(self):
        return (f"{type(self).__name__}({self.in_features}, {self.out_features}, "
                f"bias={'b' in self.params})")
