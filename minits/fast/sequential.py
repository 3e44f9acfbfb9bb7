"""FastSequential: pooling before ReLU, no input gradient for the first layer, and the
batch in chunks on threads.

Sequential (minits/layers/sequential.py) runs its layers in the order listed,
forward and then backward in reverse. FastSequential changes only the order, what
is skipped and how a batch is cut, never what a layer computes:

- ReLU, MaxPool2d pairs run pooling first, and backward(dX, input_grad=False) skips
  the input gradient of the first parametrised layer (minits/fast/schedule.py);
- a convolutional network's batch runs in chunks, on `threads` threads
  (minits/fast/split.py); the numbers do not depend on the number of threads.
"""

from ..layers import Sequential
from ..layers.base import check_integer
from . import split
from .schedule import layers_backward, pool_first_order


class FastSequential(Sequential):
    """Sequential, fast (module docstring). threads: how many threads one batch of a
    convolutional network may run on (default 1); every number is the same for every
    count of threads."""

    def __init__(self, *layers, threads=1):
        super().__init__(*layers)
        self.threads = check_integer("threads", threads, 1)
        self._order = None  # the schedule() of the last forward
        self._chunks = 1  # the chunks of the last forward (split.split_count)

    def schedule(self):
        """The order in which forward runs the layers (pool_first_order)."""
        return pool_first_order(self.layers)

    def forward(self, x):
        """x: the network's input, e.g. (N, C, H, W) -> logits (N, K)."""
        self._order = self.schedule()  # backward retraces exactly this order
        self._chunks = split.split_count(self.layers, len(x))
        if self._chunks > 1:
            return split.split_forward(self, self._order, x, self._chunks)
        for i in self._order:
            x = self.layers[i].forward(x)
        return x

    def backward(self, dX, input_grad=True):
        """dX: dL/dX, (N, K). Fills every layer's .grads; returns dL/dx, or None with
        input_grad=False (training never needs dL/dx of the data)."""
        if self._order is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before forward()")
        if self._chunks > 1:
            return split.split_backward(self, self._order, dX, self._chunks, input_grad)
        return layers_backward(self.layers, self._order, dX, input_grad)

    def __repr__(self):
        return super().__repr__()[:-1] + f"  threads={self.threads}\n)"
