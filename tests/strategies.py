"""Hypothesis strategies and drawn inputs shared by the layer and model tests.

IMPLS lists the two implementations (minits.backend); a Hypothesis test runs
under both with

    @pytest.mark.parametrize("impl_name", IMPLS)
    @given(...)
    def test_...(impl_name, ...):
        with mt.using(impl_name):
            ...

(tests without @given take the ``impl`` fixture of conftest.py instead).
"""

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st

import minits as mt

IMPLS = mt.backend.IMPLEMENTATIONS

seeds = st.integers(0, 2**16)


def scaled_examples(fraction):
    """Settings with a fraction of the active profile's examples (at least 5), for
    properties whose every example costs hundreds of forward passes."""
    return settings(max_examples=max(5, int(settings.default.max_examples * fraction)))


@st.composite
def conv_cases(draw, max_side=8):
    """Shapes: batch 1-4, channels 1-3, odd and non-square sides, kernel 1-5,
    stride 1-3 (often != kernel), padding 0-2 (kernel must fit the padded input),
    output blocking (fast path) chosen by the layer (None) or forced to 1-4 (often
    not a divisor of the output width: a last, partial block)."""
    k = draw(st.integers(1, 5))
    padding = draw(st.integers(0, 2))
    stride = draw(st.integers(1, 3))
    low = max(1, k - 2 * padding)
    H = draw(st.integers(low, max(low, max_side)))
    W = draw(st.integers(low, max(low, max_side)))
    return dict(N=draw(st.integers(1, 4)), C=draw(st.integers(1, 3)), F=draw(st.integers(1, 3)),
                H=H, W=W, k=k, stride=stride, padding=padding, bias=draw(st.booleans()),
                block=draw(st.sampled_from([None, 1, 2, 3, 4])), seed=draw(seeds))


def make_conv(case, dtype=np.float64):
    """A Conv2d for a conv_cases() draw (random bias when it has one), an input and an rng."""
    layer = mt.Conv2d(case["C"], case["F"], case["k"], stride=case["stride"],
                      padding=case["padding"], bias=case["bias"], dtype=dtype, rng=case["seed"],
                      block=case.get("block"))
    rng = np.random.default_rng(case["seed"] + 1)
    if case["bias"]:
        layer.params["b"][...] = rng.standard_normal(case["F"])
    x = rng.standard_normal((case["N"], case["C"], case["H"], case["W"])).astype(dtype)
    return layer, x, rng


@st.composite
def pool_cases(draw):
    """Overlapping (s < k), tiling (s = k) and gapped (s > k) windows, sides that
    the windows do not tile, batch 1-4, channels 1-3."""
    k = draw(st.integers(1, 4))
    s = draw(st.integers(1, 4))
    H = draw(st.integers(k, 9))
    W = draw(st.integers(k, 9))
    return dict(N=draw(st.integers(1, 4)), C=draw(st.integers(1, 3)), H=H, W=W, k=k, s=s,
                seed=draw(seeds))


def distinct_input(case):
    """For a pool_cases() draw: a shuffled grid of distinct values in [-1, 1), at least
    2e-3 apart: no ties, and no near-ties that a finite-difference step (1e-6) could
    flip. Returns (x, rng)."""
    shape = (case["N"], case["C"], case["H"], case["W"])
    size = int(np.prod(shape))
    rng = np.random.default_rng(case["seed"])
    return rng.permutation(size).reshape(shape) * (2.0 / size) - 1.0, rng


def away_from_zero(x, margin=0.01):
    """x with every entry moved at least margin away from 0 (ReLU's kink), sign kept."""
    return x + np.where(x >= 0, margin, -margin)


def kink_margin(model, x):
    """Smallest distance of any ReLU input from 0 and of any max-pool window's top
    two values from a tie, along one forward pass. A finite-difference check is only
    meaningful when this is large compared with the perturbation. Windows whose
    values are all exactly 0 (ReLU outputs of negative inputs) are exact ties that
    no small perturbation breaks, so they do not count."""
    margin = np.inf
    for layer in model.layers:
        if isinstance(layer, mt.ReLU):
            margin = min(margin, np.abs(x).min())
        if isinstance(layer, mt.MaxPool2d):
            k, s = layer.kernel_size, layer.stride
            _, _, Ho, Wo = layer.output_shape(x.shape)
            windows = np.stack([x[:, :, i:i + s * Ho:s, j:j + s * Wo:s]
                                for i in range(k) for j in range(k)])
            second, first = np.sort(windows, axis=0)[-2:]
            gaps = (first - second)[first != 0]
            margin = min(margin, gaps.min(initial=np.inf))
        x = layer.forward(x)
    return margin
