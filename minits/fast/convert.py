"""convert: the fast twin of a plain minits object, sharing its parameters.

    model = minits.fast.convert(minits.models.lenet5())     # FastSequential of fast layers
    loss = minits.fast.convert(minits.losses.TwoScale(0.01))  # FastTwoScale

What an object runs is fixed by its class: a plain object runs the plain code,
its twin the fast code. The twin shares the plain object's parameter arrays (and a
loss's scales), so training the one trains the other.
"""

from ..layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from ..losses import (
    CrossEntropy,
    OneScale,
    Truncated,
    TwoScale,
    TwoScaleSeparation,
    TwoScaleWrapper,
)
from ..normalization import Normalization
from .conv import FastConv2d
from .dense import FastFlatten, FastLinear, FastReLU
from .losses import (
    FastCrossEntropy,
    FastOneScale,
    FastTruncated,
    FastTwoScale,
    FastTwoScaleSeparation,
    FastTwoScaleWrapper,
)
from .normalization import FastNormalization
from .pool import FastMaxPool2d
from .sequential import FastSequential

TWINS = {
    Linear: FastLinear, ReLU: FastReLU, Flatten: FastFlatten, Conv2d: FastConv2d,
    MaxPool2d: FastMaxPool2d, CrossEntropy: FastCrossEntropy, Truncated: FastTruncated,
    TwoScale: FastTwoScale, OneScale: FastOneScale, TwoScaleWrapper: FastTwoScaleWrapper,
    TwoScaleSeparation: FastTwoScaleSeparation, Normalization: FastNormalization,
}
"""Each plain class with a fast twin -> the twin."""


def convert(obj, threads=1):
    """The object that runs the fast code for `obj`, sharing its parameter arrays.

    - a Sequential (or a FastSequential): a FastSequential of its converted layers, on
      `threads` threads (minits/fast/split.py; the numbers are the same for every count);
    - an object of exactly one of the plain classes of TWINS: its fast twin;
    - anything else -- a fast object, a user's subclass (it runs its own code), a layer
      without a twin (Softmax) -- is returned as it is.
    """
    if type(obj) in (Sequential, FastSequential):
        return FastSequential([convert(layer) for layer in obj.layers], threads=threads)
    twin = TWINS.get(type(obj))
    return obj if twin is None else twin.from_plain(obj)
