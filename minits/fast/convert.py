"""convert: the fast twin of a plain minits object, sharing its parameters.

    model = minits.fast.convert(minits.models.lenet5())     # FastSequential of fast layers
    loss = minits.fast.convert(minits.losses.TwoScale(0.01))  # FastTwoScale

What an object runs is fixed by its class: a plain object runs the plain code,
its twin the fast code. The twin shares the plain object's parameter arrays (and a
loss's scales), so training the one trains the other.
"""

from .. import layers, losses, normalization
from . import losses as fast_losses
from .conv import FastConv2d
from .dense import FastFlatten, FastLinear, FastReLU
from .normalization import FastNormalization
from .pool import FastMaxPool2d
from .sequential import FastSequential

TWINS = {
    layers.Linear: FastLinear, layers.ReLU: FastReLU, layers.Flatten: FastFlatten,
    layers.Conv2d: FastConv2d, layers.MaxPool2d: FastMaxPool2d,
    normalization.Normalization: FastNormalization,
    losses.CrossEntropy: fast_losses.FastCrossEntropy, losses.Truncated: fast_losses.FastTruncated,
    losses.TwoScale: fast_losses.FastTwoScale, losses.OneScale: fast_losses.FastOneScale,
    losses.TwoScaleWrapper: fast_losses.FastTwoScaleWrapper,
    losses.TwoScaleSeparation: fast_losses.FastTwoScaleSeparation,
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
    if type(obj) in (layers.Sequential, FastSequential):
        return FastSequential([convert(layer) for layer in obj.layers], threads=threads)
    twin = TWINS.get(type(obj))
    return obj if twin is None else twin.from_plain(obj)
