"""Fully connected layer, Eq. (1): Y^{l+1} = alpha^{l+1} X^l."""

import numpy as np

from .base import Layer, check_dtype, check_input, gaussian


class Linear(Layer):
    """y = x @ W.T (+ b).

    Shapes:
        x:   (N, in_features)
        W:   (out_features, in_features)   -- alpha^{l+1} of Eq. (1), PyTorch's layout
        b:   (out_features,)               -- only with bias=True; Eq. (1) has none
        out: (N, out_features)

    Backward, with dout = dL/dy of shape (N, out_features):
        dW = dout.T @ x,   db = sum_n dout,   dx = dout @ W
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
        self._x = None

    def forward(self, x):
        check_input(self, x, 2)
        if x.shape[1] != self.in_features:
            raise ValueError(f"{self!r}: x has {x.shape[1]} features, expected {self.in_features}")
        self._x = x
        out = x @ self.params["W"].T
        if "b" in self.params:
            out += self.params["b"]
        return out

    def backward(self, dout, input_grad=True):
        check_input(self, dout, 2, "dout")
        x = self._x
        np.matmul(dout.T, x, out=self.grads["W"])
        if "b" in self.params:
            np.sum(dout, axis=0, out=self.grads["b"])
        return dout @ self.params["W"] if input_grad else None

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features}, bias={'b' in self.params})"
