"""What every layer shares: the Layer protocol, dtype checks and Gaussian initialisation.

A layer is two functions and two dicts (CS231n style):

    out = layer.forward(x)     # caches exactly what backward needs
    dx  = layer.backward(dout) # fills layer.grads, returns dL/dx

``layer.params`` and ``layer.grads`` map the same names ("W", and "b" when the
layer has a bias) to arrays of equal shape. ``backward`` *overwrites* ``grads``;
gradients never accumulate across calls, so there is no ``zero_grad``.

Each layer class runs one of two implementations (minits.backend): the *plain*
functions of its own module (``conv_forward`` / ``conv_backward`` in conv.py, ...),
the ones to read, or the *fast* ones of the ``fast_*.py`` modules, which compute
the same numbers. ``forward`` reads ``minits.backend.current_impl()`` and records
it; ``backward`` uses the recorded one, so one step never mixes the two.
"""

import numpy as np

from ..backend import current_impl


class Layer:
    """Base class. Subclasses implement ``forward`` and ``backward``.

    Layers without parameters (ReLU, MaxPool2d, ...) keep empty dicts.
    """

    def __init__(self):
        self.params = {}
        self.grads = {}
        self._scratch = {}  # work arrays reused across calls, see scratch()
        self._impl = None  # "plain" | "fast": the implementation of the last forward

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dout, input_grad=True):
        """dout: dL/d(out), same shape as forward's output.

        input_grad=False returns None instead of dL/dx: the first parametrised layer
        of a network never needs it. The fast implementation then skips computing it
        (for a convolution the costliest product); the plain one computes and drops it.
        """
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def _start_forward(self):
        """Record the implementation this forward runs ("plain" | "fast") and return it."""
        self._impl = current_impl()
        return self._impl

    def _forward_impl(self):
        """The implementation of the last forward, which backward must use."""
        if self._impl is None:
            raise RuntimeError(f"{self!r}: backward() called before forward()")
        return self._impl

    def __repr__(self):
        return f"{type(self).__name__}()"


def scratch(layer, name, shape, dtype):
    """A work array of the layer that is reused from call to call; contents undefined.
    Used by the fast implementation only (fast_conv.py, fast_pool.py).

    Reusing a large temporary saves NumPy the allocation and the operating system
    the page faults of fresh memory on every step. Only for arrays that never leave
    the layer (never an output): the same memory is overwritten at the next call.
    A new array is made when the shape or dtype changes (the last, smaller batch).
    """
    a = layer._scratch.get(name)
    if a is None or a.shape != tuple(shape) or a.dtype != dtype:
        a = layer._scratch[name] = np.empty(shape, dtype)
    return a


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
