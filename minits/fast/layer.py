"""What the fast layers share: how a fast twin is made from a plain layer, and work arrays.

A fast layer is a subclass of its plain layer (FastConv2d of Conv2d, ...): the same
constructor, parameters, checks and public shapes, with forward and backward
replaced by faster code that computes the same numbers. Its backward takes one more
argument, ``input_grad``: False skips dL/dx (None is returned), which training never
needs for the network's first layer (minits/fast/sequential.py).
"""

import numpy as np


class FastLayer:
    """Mixin, first among the bases of a fast layer: FastConv2d(FastLayer, Conv2d)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._work = {}

    @classmethod
    def from_plain(cls, layer):
        """The fast twin of a plain layer, sharing its params and grads (the same dicts,
        so the same arrays): an SGD step on either is a step on both."""
        fast = cls.__new__(cls)
        fast.__dict__.update(layer.__dict__)
        fast._cache = None
        fast._work = {}
        return fast

    def work(self, name, shape, dtype):
        """A work array of the layer that is reused from call to call; contents undefined.

        Reusing a large temporary saves NumPy the allocation and the operating system
        the page faults of fresh memory on every step. Only for arrays that never leave
        the layer (never an output): the same memory is overwritten at the next call.
        A new array is made when the shape or dtype changes (the last, smaller batch).
        """
        a = self._work.get(name)
        if a is None or a.shape != tuple(shape) or a.dtype != dtype:
            a = self._work[name] = np.empty(shape, dtype)
        return a
