"""A network as a list of layers, Eq. (1)-(2) composed M-1 times.

Plain implementation: forward runs the layers in the listed order, backward in
reverse. The fast one (pooling before ReLU, no input gradient for the first
layer) is minits/layers/fast_sequential.py; it runs a convolutional network's
batch in chunks, on minits.set_num_threads(n) threads (fast_split.py).
"""

from ..backend import current_impl
from .fast_sequential import fast_sequential_backward, pool_first_order
from .fast_split import split_backward, split_count, split_forward


class Sequential:
    """x -> layers[0] -> ... -> layers[-1] -> logits X = X^{M-1}(alpha, s).

    forward(x) runs the layers in order; backward(dX) runs them in reverse and
    leaves every layer's .grads filled. The softmax of Eq. (3) is not part of the
    model: the losses apply it (stably, fused with the logarithm).

    Under the fast implementation a ReLU directly followed by a MaxPool2d runs
    after the pooling (the same numbers, see minits/layers/fast_sequential.py);
    schedule() gives the order forward runs.
    """

    def __init__(self, *layers):
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        self.layers = list(layers)
        self._impl = None  # the implementation of the last forward
        self._order = None  # the schedule() of the last forward
        self._split = 1  # the chunks of the last forward (fast_split.split_count)

    def linear_layers(self):
        """The layers that carry parameters alpha^l (Linear, Conv2d), in order: l = 1..M-1."""
        return [layer for layer in self.layers if layer.params]

    @property
    def dtype(self):
        """The parameters' dtype (float32 or float64)."""
        return next(iter(self.linear_layers()[0].params.values())).dtype

    def schedule(self):
        """The order in which forward runs the layers under the current implementation
        (indices into self.layers): as listed under "plain"; under "fast" as listed
        except that ReLU, MaxPool2d pairs run pooling first (pool_first_order)."""
        if current_impl() == "fast":
            return pool_first_order(self.layers)
        return list(range(len(self.layers)))

    def forward(self, x):
        """x: the network's input, e.g. (N, C, H, W) -> logits (N, K)."""
        self._impl = current_impl()
        self._order = self.schedule()  # backward retraces exactly this order
        self._split = split_count(self.layers, len(x)) if self._impl == "fast" else 1
        if self._split > 1:
            return split_forward(self, self._order, x, self._split)
        for i in self._order:
            x = self.layers[i].forward(x)
        return x

    __call__ = forward

    def backward(self, dX, input_grad=True):
        """dX: dL/dX, (N, K). Fills every layer's .grads; returns dL/dx (or None).

        input_grad=False: return None (training never needs dL/dx of the data);
        the fast implementation then skips computing it.
        """
        if self._impl is None:
            raise RuntimeError("Sequential.backward() called before forward()")
        if self._split > 1:
            return split_backward(self, self._order, dX, self._split, input_grad)
        if self._impl == "fast":
            return fast_sequential_backward(self.layers, self._order, dX, input_grad)
        d = dX
        for i in reversed(self._order):
            d = self.layers[i].backward(d)
        return d if input_grad else None

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
        return f"Sequential(\n{inner}\n)"
