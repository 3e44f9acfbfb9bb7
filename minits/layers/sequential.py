"""A network as a list of layers, Eq. (1)-(2) composed M-1 times."""


class Sequential:
    """x -> layers[0] -> ... -> layers[-1] -> logits X = X^{M-1}(alpha, s).

    forward(x) runs the layers in order; backward(dX) runs them in reverse and
    leaves every layer's .grads filled. The softmax of Eq. (3) is not part of the
    model: the losses apply it (stably, fused with the logarithm).
    """

    def __init__(self, *layers):
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        self.layers = list(layers)

    def linear_layers(self):
        """The layers that carry parameters alpha^l (Linear, Conv2d), in order: l = 1..M-1."""
        return [layer for layer in self.layers if layer.params]

    @property
    def dtype(self):
        """The parameters' dtype (float32 or float64)."""
        return next(iter(self.linear_layers()[0].params.values())).dtype

    def forward(self, x):
        """x: the network's input, e.g. (N, C, H, W) -> logits (N, K)."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def __call__(self, x):
        return self.forward(x)

    def backward(self, dX):
        """dX: dL/dX, (N, K). Fills every layer's .grads; returns dL/dx, shaped like x."""
        d = dX
        for layer in reversed(self.layers):
            d = layer.backward(d)
        return d

    def parameters(self):
        """Yield (layer, name, param, grad) for every parameter array, layer by layer."""
        for layer in self.linear_layers():
            for name, p in layer.params.items():
                yield layer, name, p, layer.grads[name]

    def num_parameters(self):
        """The number of parameter entries, summed over every layer (an int)."""
        return int(sum(p.size for _, _, p, _ in self.parameters()))

    def __repr__(self):
        inner = "\n".join(f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"{type(self).__name__}(\n{inner}\n)"
