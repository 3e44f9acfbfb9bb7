"""A network as a list of layers, Eq. (1)-(2) composed M-1 times."""

from .activations import ReLU
from .pool import MaxPool2d


class Sequential:
    """x -> layers[0] -> ... -> layers[-1] -> logits X = X^{M-1}(alpha, s).

    forward(x) runs the layers in order; backward(dX) runs them in reverse and
    leaves every layer's .grads filled. The softmax of Eq. (3) is not part of the
    model: the losses apply it (stably, fused with the logarithm).

    One liberty with the order: a ReLU directly followed by a MaxPool2d runs
    *after* the pooling. The two commute, max_w relu(x_w) = relu(max_w x_w),
    since relu is monotone, so the output is the same, and so is every gradient:
    a window whose maximum is positive sends dout to the same element either way,
    and one whose maximum is <= 0 sends nothing either way (the ReLU's derivative
    at 0 is 0). With 2 x 2 pooling the ReLU then sees a quarter of the data.
    """

    def __init__(self, *layers):
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        self.layers = list(layers)
        self._order = None  # the schedule() of the last forward

    def linear_layers(self):
        """The layers that carry parameters alpha^l (Linear, Conv2d), in order: l = 1..M-1."""
        return [layer for layer in self.layers if layer.params]

    @property
    def dtype(self):
        """The parameters' dtype (float32 or float64)."""
        return next(iter(self.linear_layers()[0].params.values())).dtype

    def schedule(self):
        """The order in which forward runs the layers (indices into self.layers):
        as listed, except that ReLU, MaxPool2d pairs run pooling first.

        Exact types only: a subclass may change what the layer computes.
        """
        order = list(range(len(self.layers)))
        for i in range(len(order) - 1):
            if (order[i] == i and type(self.layers[i]) is ReLU
                    and type(self.layers[i + 1]) is MaxPool2d):
                order[i], order[i + 1] = i + 1, i
        return order

    def forward(self, x):
        """x: the network's input, e.g. (N, C, H, W) -> logits (N, K)."""
        self._order = self.schedule()  # backward retraces exactly this order
        for i in self._order:
            x = self.layers[i].forward(x)
        return x

    __call__ = forward

    def backward(self, dX, input_grad=True):
        """dX: dL/dX, (N, K). Fills every layer's .grads; returns dL/dx (or None).

        With input_grad=False the pass stops at the first parametrised layer and
        skips its input gradient: training never needs dL/dx of the data.
        """
        order = self._order or self.schedule()
        first = next((i for i in order if self.layers[i].params), order[0])
        d = dX
        for i in reversed(order):
            if i == first and not input_grad:
                self.layers[i].backward(d, input_grad=False)
                return None
            d = self.layers[i].backward(d)
        return d

    def parameters(self):
        """Yield (layer, name, param, grad) for every parameter array, layer by layer."""
        for layer in self.linear_layers():
            for name, p in layer.params.items():
                yield layer, name, p, layer.grads[name]

    def num_parameters(self):
        return int(sum(p.size for _, _, p, _ in self.parameters()))

    def __repr__(self):
        inner = "\n".join(f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"


