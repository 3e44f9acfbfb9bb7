"""CIFAR-10 and CIFAR-100 in their "python version" layout.

Each file is a pickled dict with bytes keys. A batch holds ``b"data"``, uint8
(n, 3072): the red, green and blue 32x32 planes of each image in row-major
order, so a reshape to (n, 3, 32, 32) is exactly (N, C, H, W); and
``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` and ``b"coarse_labels"``
(CIFAR-100), lists of ints.

    cifar-10-batches-py/  data_batch_1 .. data_batch_5, test_batch, batches.meta
    cifar-100-python/     train, test, meta

Files are read with the restricted unpickler of :mod:`.safe_pickle`, and every
field is checked (type, dtype, shape, count, range) before it is used.
"""

from pathlib import Path

import numpy as np

from . import safe_pickle
from .base import Dataset
from .errors import DatasetFormatError

CIFAR10_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
CIFAR10_META = "batches.meta"
CIFAR100_FILES = {"train": ("train",), "test": ("test",)}
CIFAR100_META = "meta"

IMAGE_SHAPE = (3, 32, 32)


def load_cifar10(folder, split):
    """Read one split of cifar-10-batches-py/.

    Inputs: folder: the cifar-10-batches-py directory; split: "train" or "test".
    Output: Dataset, images uint8 (n, 3, 32, 32) (50000 train / 10000 test), 10 classes.
    """
    folder = Path(folder)
    meta = _read_dict(folder / CIFAR10_META)
    names = _names(meta, "label_names", folder / CIFAR10_META, expected=10)
    parts = [_read_batch(folder / f, {"labels": 10}) for f in CIFAR10_FILES[split]]
    images = np.concatenate([images for images, _ in parts])
    labels = np.concatenate([labels["labels"] for _, labels in parts])
    return Dataset(images=images, labels=labels, name="cifar10", split=split,
                   class_names=names, source=str(folder))


def load_cifar100(folder, split):
    """Read one split of cifar-100-python/, with fine and coarse labels.

    Inputs: folder: the cifar-100-python directory; split: "train" or "test".
    Output: Dataset with 100 fine classes as labels, plus coarse_labels (20
    super-classes), coarse_names, and fine_to_coarse (100,) read off the data.
    """
    folder = Path(folder)
    meta_path = folder / CIFAR100_META
    meta = _read_dict(meta_path)
    fine_names = _names(meta, "fine_label_names", meta_path, expected=100)
    coarse_names = _names(meta, "coarse_label_names", meta_path, expected=20)
    path = folder / CIFAR100_FILES[split][0]
    images, labels = _read_batch(path, {"fine_labels": 100, "coarse_labels": 20})
    fine_to_coarse = _fine_to_coarse(labels["fine_labels"], labels["coarse_labels"], path)
    return Dataset(images=images, labels=labels["fine_labels"], name="cifar100", split=split,
                   class_names=fine_names, coarse_labels=labels["coarse_labels"],
                   coarse_names=coarse_names, fine_to_coarse=fine_to_coarse, source=str(folder))


def _read_dict(path):
    obj = safe_pickle.load(path)
    if not isinstance(obj, dict):
        raise DatasetFormatError(path, f"expected a pickled dict, found {type(obj).__name__}")
    # Bytes keys (the original Python 2 files); accept str keys from re-pickled copies.
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _field(d, key, path):
    if key not in d:
        raise DatasetFormatError(path, f"missing key b{key!r} (has {sorted(map(str, d))})")
    return d[key]


def _read_batch(path, label_keys):
    """images uint8 (n, 3, 32, 32) and {key: int64 (n,)} from one batch file.

    label_keys: {key: number of classes} of the label lists the file must hold.
    """
    d = _read_dict(path)
    data = _field(d, "data", path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        raise DatasetFormatError(path, f"b'data' must be a uint8 array, found {_kind(data)}")
    if data.ndim != 2 or data.shape[1] != np.prod(IMAGE_SHAPE):
        raise DatasetFormatError(path, f"b'data' must have shape (n, 3072), found {data.shape}")
    n = len(data)
    labels = {}
    for key, num_classes in label_keys.items():
        values = _field(d, key, path)
        try:
            values = np.asarray(values)
        except (ValueError, TypeError):
            values = None
        if values is None or not np.issubdtype(values.dtype, np.integer) or values.ndim != 1:
            raise DatasetFormatError(path, f"b{key!r} must be a list of ints")
        if len(values) != n:
            raise DatasetFormatError(path, f"{len(values)} entries in b{key!r} for {n} images")
        if n and (values.min() < 0 or values.max() >= num_classes):
            raise DatasetFormatError(path, f"b{key!r} holds {values.min()}..{values.max()}, "
                                           f"outside 0..{num_classes - 1}")
        labels[key] = values.astype(np.int64)
    return data.reshape((n, *IMAGE_SHAPE)), labels


def _names(meta, key, path, expected):
    names = _field(meta, key, path)
    if not isinstance(names, list) or not all(isinstance(s, (bytes, str)) for s in names):
        raise DatasetFormatError(path, f"b{key!r} must be a list of strings")
    if len(names) != expected:
        raise DatasetFormatError(path, f"b{key!r} has {len(names)} names, expected {expected}")
    return tuple(s.decode("utf-8") if isinstance(s, bytes) else s for s in names)


def _fine_to_coarse(fine, coarse, path):
    """Super-class of each fine class, read off (fine, coarse) label pairs.

    Output: int64 (100,), -1 where a fine class does not occur.
    Raises DatasetFormatError when one fine class appears under two super-classes.
    """
    table = np.full(100, -1, dtype=np.int64)
    table[fine] = coarse
    clash = table[fine] != coarse
    if np.any(clash):
        f = int(fine[clash][0])
        seen = sorted(set(coarse[fine == f].tolist()))
        raise DatasetFormatError(path, f"fine class {f} appears under super-classes {seen}")
    return table


def _kind(x):
    return f"array of dtype {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__
