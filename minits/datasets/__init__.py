"""Data sets: MNIST, Fashion-MNIST, CIFAR-10, CIFAR-100 and scikit-learn's digits.

    ds = load("cifar10", "train")               # Dataset: uint8 images, int64 labels
    mean, std = channel_stats(ds)                # of the training set, in [0, 1] units
    for x, y in batches(ds, 128, seed=epoch, standardize=(mean, std)):
        ...                                      # x float32 (B, 3, 32, 32), y int64 (B,)

Modules, one concept each:
    base         Dataset, to_float, batches, channel_stats (uint8 in memory, floats per batch)
    idx          the IDX format of MNIST / Fashion-MNIST
    cifar        the CIFAR python-pickle layout
    safe_pickle  the restricted unpickler CIFAR files are read with
    digits       scikit-learn's 8x8 digits (optional extra)
    catalog      files, folders, mirrors and checksums of each data set
    sources      search order, verified downloads
    archive      safe extraction of a tar archive (CIFAR)
    loader       load(name, split)
    errors       DatasetFormatError, UnsafePickleError, ChecksumError
Only numpy and the standard library are needed (tqdm for a nicer progress bar,
scikit-learn for "digits", both optional).
"""

from .base import Dataset, batches, channel_stats, to_float
from .errors import ChecksumError, DatasetFormatError, UnsafePickleError
from .loader import NAMES, load

__all__ = [
    "NAMES",
    "ChecksumError",
    "Dataset",
    "DatasetFormatError",
    "UnsafePickleError",
    "batches",
    "channel_stats",
    "load",
    "to_float",
]
