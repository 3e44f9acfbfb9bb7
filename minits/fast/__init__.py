"""The fast implementation: the code training runs, beside the plain code it speeds up.

Every fast class is a subclass of a plain one (FastConv2d of minits.layers.Conv2d,
FastTwoScale of minits.losses.TwoScale, ...) that computes the same numbers (bit for
bit, or to rounding where its docstring says so). This package imports the plain
floors; none of them imports it. An object runs what its class says:

    import minits as mt
    from minits import fast

    model = fast.convert(mt.models.lenet5(), threads=2)  # shares the plain model's arrays
    loss = fast.convert(mt.losses.TwoScale(0.01))
    conv = fast.FastConv2d(3, 6, 5)                       # or built directly

Reading order: layer (FastLayer, work arrays) -> dense -> im2col, blocking, conv ->
pool -> schedule, split, sequential -> objectives -> normalization ->
losses -> convert. docs/performance.md measures what each lever is worth.
"""

from .conv import FastConv2d
from .convert import TWINS, convert
from .dense import FastFlatten, FastLinear, FastReLU
from .layer import FastLayer
from .losses import (
    FastCrossEntropy,
    FastOneScale,
    FastTruncated,
    FastTwoScale,
    FastTwoScaleSeparation,
    FastTwoScaleWrapper,
)
from .normalization import FastNormalization, logits_at_normalized
from .pool import FastMaxPool2d
from .sequential import FastSequential

__all__ = [
    "TWINS", "FastConv2d", "FastCrossEntropy", "FastFlatten", "FastLayer", "FastLinear",
    "FastMaxPool2d", "FastNormalization", "FastOneScale", "FastReLU", "FastSequential",
    "FastTruncated", "FastTwoScale", "FastTwoScaleSeparation", "FastTwoScaleWrapper",
    "convert", "logits_at_normalized",
]
