"""The 8x8 handwritten digits that scikit-learn ships inside its package.

1,797 images of 8x8 pixels with values 0..16 (the UCI "Optical Recognition
of Handwritten Digits" test set, each value a count of ink pixels in a 4x4
block). A real data set that needs no download: good for demos, notebooks and
quick tests. scikit-learn is an optional extra: ``pip install minits[digits]``.

Split: a fixed one, no shuffling: the first 1,437 images (80 %) are "train",
the last 360 "test".
"""

import numpy as np

from .base import Dataset

NUM_TRAIN = 1437
MAX_VALUE = 16


def load_digits(split):
    """Read the digits from scikit-learn.

    Input: split: "train" or "test".
    Output: Dataset, images uint8 (1437 or 360, 1, 8, 8) with max_value 16, 10 classes.
    Raises ImportError with the install command when scikit-learn is absent.
    """
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError as err:
        raise ImportError(
            "the 'digits' data set comes with scikit-learn, which is not installed: "
            "pip install scikit-learn   (or: pip install minits[digits])"
        ) from err
    bunch = sklearn_load_digits()
    pixels = np.asarray(bunch.images)
    if pixels.min() < 0 or pixels.max() > MAX_VALUE or np.any(pixels != np.round(pixels)):
        raise ValueError("scikit-learn's digits are not integers in 0..16 as expected")
    images = pixels.astype(np.uint8)[:, None]
    labels = np.asarray(bunch.target, dtype=np.int64)
    part = slice(0, NUM_TRAIN) if split == "train" else slice(NUM_TRAIN, None)
    return Dataset(
        images=np.ascontiguousarray(images[part]),
        labels=labels[part].copy(),
        name="digits",
        split=split,
        class_names=tuple(str(d) for d in range(10)),
        max_value=MAX_VALUE,
        source="sklearn.datasets.load_digits",
    )
