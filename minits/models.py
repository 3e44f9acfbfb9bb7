"""The paper's two networks (Sec. 3.2-3.3), bias-free by default.

Eq. (1) has no bias, and the homogeneity X(c alpha) = c^{M-1} X(alpha) of Eq. (8),
on which the normalised logits rest, holds only without biases.
"""

import numpy as np

from .layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from .layers.base import as_rng
from .layers.im2col import conv_output_size


def mlp(sizes=(784, 128, 10), bias=False, seed=0, dtype=np.float32, gain=1.0):
    """Fully connected ReLU network: Flatten, then Linear-ReLU-...-Linear.

    sizes: [d_in, hidden..., K]; the paper's MNIST network (Sec. 3.3, "two fully
    connected layers") is [784, 128, 10] (its hidden width is not given; 128 is ours).
    Input: (N, d_in) or images (N, C, H, W) with C*H*W = d_in. Output: logits (N, K).
    Initial weights ~ N(0, (gain / sqrt(fan_in))^2) drawn from `seed` layer by layer.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"mlp sizes must be at least [d_in, K] of positive ints, got {sizes}")
    rng = as_rng(seed)
    layers = [Flatten()]
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i > 0:
            layers.append(ReLU())
        layers.append(Linear(d_in, d_out, bias=bias, dtype=dtype, rng=rng, gain=gain))
    return Sequential(layers)


def lenet5(num_classes=10, in_channels=3, bias=False, seed=0, dtype=np.float32, gain=1.0,
           input_size=32):
    """LeNet-5 as the paper uses it for CIFAR (Sec. 3.2-3.3):

        Conv2d(C, 6, 5) ReLU MaxPool2d(2)      (N, C, 32, 32) -> (N, 6, 14, 14)
        Conv2d(6, 16, 5) ReLU MaxPool2d(2)     -> (N, 16, 5, 5)
        Flatten Linear(400, 120) ReLU          -> (N, 120)
        Linear(120, K)                         -> logits (N, K)

    M - 1 = 4 linear layers. input_size=28 gives the MNIST variant (Linear(256, 120)).
    """
    rng = as_rng(seed)
    side = input_size
    for _ in range(2):
        side = conv_output_size(side, 5, 1) // 2
    if side < 1:
        raise ValueError(f"input_size {input_size} is too small for LeNet-5")
    kw = dict(bias=bias, dtype=dtype, rng=rng, gain=gain)
    return Sequential(
        Conv2d(in_channels, 6, 5, **kw), ReLU(), MaxPool2d(2),
        Conv2d(6, 16, 5, **kw), ReLU(), MaxPool2d(2),
        Flatten(),
        Linear(16 * side * side, 120, **kw), ReLU(),
        Linear(120, num_classes, **kw),
    )
