"""Load CIFAR's pickle files without trusting them.

A pickle is a small program: ``pickle.load`` on a hostile file can run any
Python, e.g. ``os.system``. The CIFAR python files need very little of that
power: dicts, lists, bytes, ints and numpy arrays. The unpickler below
resolves only the handful of globals that rebuild a numpy array (or dtype,
or scalar) of plain numbers, plus ``_codecs.encode(str, "latin1")``, which is
how a Python 3 pickle of protocol <= 2 spells ``bytes``. Every other global
is refused *before* it is imported, with an :class:`UnsafePickleError`.

Python 2 pickles (the original CIFAR files) store byte strings as ``str``;
``encoding="bytes"`` keeps them as bytes, so dict keys are ``b"data"`` etc.
"""

import pickle

import numpy as np

from .errors import DatasetFormatError, UnsafePickleError

# The functions numpy itself uses to rebuild arrays. Asking an array how it
# pickles finds them without importing numpy.core (deprecated) or
# numpy._core (private), so this works on numpy 1.x and 2.x alike.
_RECONSTRUCT = np.ndarray(0).__reduce__()[0]
_SCALAR = np.int64(0).__reduce__()[0]
_FROMBUFFER = np.arange(1).__reduce_ex__(5)[0]


def _plain_dtype(dtype):
    """Refuse object dtypes: their elements would be arbitrary Python objects."""
    if dtype.hasobject:
        raise UnsafePickleError("<pickle>", f"refuses an array of dtype {dtype} (Python objects)")
    return dtype


def _dtype(*args):
    return _plain_dtype(np.dtype(*args))


class _NdarrayToken:
    """Stands for numpy.ndarray inside a pickle: good as _reconstruct's first
    argument, not callable, so the pickle cannot build arrays any other way."""


_NDARRAY = _NdarrayToken()


def _reconstruct(subtype, shape, typecode):
    if subtype is not _NDARRAY:
        raise UnsafePickleError("<pickle>", f"refuses array subclass {subtype!r}")
    return _RECONSTRUCT(np.ndarray, shape, typecode)


def _scalar(dtype, *args):
    return _SCALAR(_plain_dtype(np.dtype(dtype)), *args)


def _frombuffer(buf, dtype, shape, order):
    return _FROMBUFFER(buf, _plain_dtype(np.dtype(dtype)), shape, order)


def _latin1_encode(text, encoding="utf-8", errors="strict"):
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise UnsafePickleError("<pickle>", f"refuses _codecs.encode(..., {encoding!r})")
    return text.encode("latin1")


# (module, name) -> the callable the pickle gets instead of the real global.
ALLOWED_GLOBALS = {}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    ALLOWED_GLOBALS[_module, "_reconstruct"] = _reconstruct
    ALLOWED_GLOBALS[_module, "scalar"] = _scalar
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    ALLOWED_GLOBALS[_module, "_frombuffer"] = _frombuffer
ALLOWED_GLOBALS["numpy", "ndarray"] = _NDARRAY
ALLOWED_GLOBALS["numpy", "dtype"] = _dtype
ALLOWED_GLOBALS["_codecs", "encode"] = _latin1_encode


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[module, name]
        except KeyError:
            raise UnsafePickleError(
                "<pickle>",
                f"refuses to load the global {module}.{name}: a CIFAR file needs only "
                "numpy arrays, lists, dicts, bytes and ints",
            ) from None

    def persistent_load(self, pid):
        raise UnsafePickleError("<pickle>", "refuses a persistent id")


def load(path):
    """Unpickle one file with :class:`RestrictedUnpickler`.

    Inputs: path: str or Path.
    Output: the unpickled object (for CIFAR: a dict with bytes keys).
    Raises UnsafePickleError for a forbidden global, DatasetFormatError for a
    file that is not a complete pickle; both name the file.
    """
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f, encoding="bytes").load()
    except UnsafePickleError as err:
        raise UnsafePickleError(path, str(err).removeprefix("<pickle>: ")) from None
    except OSError:
        raise
    except Exception as err:  # any other failure inside load() means a malformed file
        raise DatasetFormatError(
            path, f"not a readable pickle ({type(err).__name__}: {err})"
        ) from err
