"""MNIST and Fashion-MNIST: the IDX file format, usually gzipped.

An IDX file is a 4-byte magic number, one big-endian uint32 per dimension,
then the raw values in C order. The magic number is two zero bytes, a type
code (0x08 = unsigned byte, the only type these data sets use) and the
number of dimensions: 0x00000803 for images (n, 28, 28), 0x00000801 for
labels (n,).

The body is read straight into a preallocated uint8 array (no Python loop
over images, no intermediate copy); its length must equal what the header
promises, so a truncated or padded file is an error, never a short data set.
"""

import gzip
import zlib
from pathlib import Path

import numpy as np

from .base import Dataset
from .errors import DatasetFormatError

UNSIGNED_BYTE = 0x08
IMAGE_SHAPE = (28, 28)
"""Height and width of every MNIST and Fashion-MNIST image."""

MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path, ndim, item_shape=None):
    """Read one IDX file of unsigned bytes.

    Inputs: path: str or Path, gzipped when its name ends in ".gz";
            ndim: the number of dimensions the caller expects (3 images, 1 labels);
            item_shape: the shape of one item the caller expects, e.g. (28, 28) for
            MNIST images, or None to accept what the header says.
    Output: uint8 array of the shape stored in the header, (n, *item_shape).
    Raises DatasetFormatError naming the file for a bad gzip stream, a bad
    magic number, a wrong type code or dimension count, items of another shape
    than item_shape, or a body whose length differs from the header's promise.
    """
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            return _read_body(f, path, ndim, item_shape)
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DatasetFormatError(path, f"damaged gzip stream ({err})") from err


def _read_body(f, path, ndim, item_shape):
    magic = f.read(4)
    if len(magic) < 4 or magic[:2] != b"\0\0":
        raise DatasetFormatError(path, f"bad IDX magic number {magic.hex() or '(empty file)'}")
    if magic[2] != UNSIGNED_BYTE:
        raise DatasetFormatError(
            path, f"IDX type code 0x{magic[2]:02x}; only unsigned bytes (0x08) are supported")
    if magic[3] != ndim:
        raise DatasetFormatError(path, f"IDX file has {magic[3]} dimensions, expected {ndim}")
    header = f.read(4 * ndim)
    if len(header) < 4 * ndim:
        raise DatasetFormatError(path, "truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(header, dtype=">u4"))
    if item_shape is not None and shape[1:] != tuple(item_shape):
        expected = (shape[0], *item_shape)
        raise DatasetFormatError(path, f"the header promises an array of shape {shape}; "
                                       f"expected shape {expected}")
    size = int(np.prod(shape, dtype=object))
    try:
        values = np.empty(size, dtype=np.uint8)
    except (MemoryError, ValueError) as err:
        raise DatasetFormatError(path, f"IDX header promises an impossible shape {shape}") from err
    got = _read_into(f, values)
    if got < size:
        raise DatasetFormatError(
            path, f"truncated: header promises {size} values of shape {shape}, file holds {got}")
    if f.read(1):
        raise DatasetFormatError(path, f"trailing bytes after the {size} values of shape {shape}")
    return values.reshape(shape)


def _read_into(f, array):
    view = memoryview(array)
    got = 0
    while got < len(view):
        count = f.readinto(view[got:])
        if not count:
            break
        got += count
    return got


def load_idx_pair(images_path, labels_path, name, split, class_names,
                  image_shape=IMAGE_SHAPE):
    """Images and labels of one split into a Dataset.

    Inputs: paths of the images file (n, H, W) and the labels file (n,);
            image_shape: (H, W) every image must have (28 x 28 for MNIST and
            Fashion-MNIST), or None to take the header's.
    Output: Dataset with images uint8 (n, 1, H, W), labels int64 (n,).
    Raises DatasetFormatError when the images have another shape, the counts differ
    or a label is not a class.
    """
    images = read_idx(images_path, ndim=3, item_shape=image_shape)
    labels = read_idx(labels_path, ndim=1)
    if len(images) != len(labels):
        raise DatasetFormatError(
            labels_path, f"{len(labels)} labels for the {len(images)} images of {images_path}")
    if len(labels) and labels.max() >= len(class_names):
        raise DatasetFormatError(
            labels_path, f"label {labels.max()} is not one of the {len(class_names)} classes")
    return Dataset(
        images=images[:, None],
        labels=labels.astype(np.int64),
        name=name,
        split=split,
        class_names=class_names,
        source=str(Path(images_path).parent),
    )
