"""Flatten: (N, C, H, W) -> (N, C*H*W), the bridge from convolutions to Linear."""

from .base import Layer


class Flatten(Layer):
    """x: (N, d1, d2, ...) -> out: (N, d1*d2*...), in PyTorch's (C, H, W) order.

    When x is a channel-first view (see Conv2d) the reshape copies it into
    sample-major order; that is the one layout change a convolutional network makes.
    Backward reshapes dout back to x's shape.
    """

    def __init__(self):
        super().__init__()
        self._shape = None

    def forward(self, x):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout, input_grad=True):
        return dout.reshape(self._shape) if input_grad else None
