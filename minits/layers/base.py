"""What every layer shares: the Layer protocol, dtype checks and Gaussian initialisation.

A layer is two functions and two dicts (CS231n style):

    out = layer.forward(x)     # caches exactly what backward needs
    dx  = layer.backward(dout) # fills layer.grads, returns dL/dx

``layer.params`` and ``layer.grads`` map the same names ("W", and "b" when the
layer has a bias) to arrays of equal shape. ``backward`` *overwrites* ``grads``;
gradients never accumulate across calls, so there is no ``zero_grad``.

Each layer class runs the functions of its own module (``conv_forward`` /
``conv_backward`` in conv.py, ...), and nothing else: the code to read is the code
that runs, and that a gradient check checks.
"""

import numpy as np


class Layer:
    """Base class. Subclasses implement ``forward`` and ``backward``.

    Layers without parameters (ReLU, MaxPool2d, ...) keep empty dicts.
    """

    def __init__(self):
        self.params = {}
        self.grads = {}
        self._cache = None  # what the last forward kept for backward

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dout):
        """dout: dL/d(out), same shape as forward's output -> dL/dx, shaped like x."""
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def _cached(self):
        """What the last forward cached for backward; a RuntimeError before any forward."""
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward() called before forward()")
        return self._cache

    def __repr__(self):
        return f"{type(self).__name__}()"


def store_grads(layer, dW, db=None):
    """Overwrite layer.grads in place with dL/dW (and dL/db when the layer has a bias).

    In place, not rebinding: the arrays of ``grads`` stay the ones callers hold.
    """
    layer.grads["W"][...] = dW
    if "b" in layer.grads:
        layer.grads["b"][...] = db


def as_rng(rng):
    """None -> fresh entropy; int -> seeded Generator; Generator -> itself."""
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"rng must be None, an int seed or a numpy Generator, not {type(rng).__name__}")


def check_dtype(dtype):
    """Parameters are float32 (the default, for speed) or float64 (for gradient checks)."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, not {dtype}")
    return dtype


def gaussian(shape, fan_in, gain, dtype, rng):
    """Initial parameters alpha^0 ~ N(0, (gain / sqrt(fan_in))^2), i.i.d.

    The paper only says "Gaussian" (docs/decisions.md#D16). std = 1/sqrt(fan_in) keeps
    the pre-activations of every layer of order one at the start of training.
    """
    if not gain > 0:
        raise ValueError(f"gain must be positive, got {gain}")
    std = gain / np.sqrt(fan_in)
    return (as_rng(rng).standard_normal(shape) * std).astype(dtype)


def check_integer(name, value, low):
    """value, if it is an integer >= low (a bool is not); else a ValueError naming it."""
    if isinstance(value, bool) or int(value) != value or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_input(layer, x, expected_ndim, what="x"):
    """Refuse inputs that would silently change dtype or broadcast wrongly."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{layer!r}: {what} must be a numpy array, not {type(x).__name__}")
    if x.ndim != expected_ndim:
        raise ValueError(
            f"{layer!r}: {what} must have {expected_ndim} dimensions, got shape {x.shape}"
        )
    dtype = layer.params["W"].dtype
    if x.dtype != dtype:
        # float64 data into a float32 layer would upcast every product silently
        raise TypeError(
            f"{layer!r}: {what} has dtype {x.dtype} but the layer's parameters are {dtype}; "
            f"convert the input (x.astype(np.{dtype})) or build the layer with dtype=np.{x.dtype}"
        )
