"""The in-memory data set and the per-batch conversion to floats.

Images stay uint8 in memory: CIFAR-10's 60,000 images are 184 MB as uint8
and would be 737 MB as float32 (1.5 GB as float64). Conversion to the model's
dtype happens one batch at a time, in :func:`to_float`, so the float memory
a training step needs is one batch, whatever the size of the data set.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(eq=False)
class Dataset:
    """One split of a labelled image data set.

    Attributes
    ----------
    images: uint8 (n, C, H, W), pixel values 0..max_value.
    labels: int64 (n,), class indices i(s) in 0..num_classes-1.
    name: str, e.g. "mnist".   split: str, "train" or "test".
    class_names: tuple of num_classes str.
    max_value: int, the value of a white pixel (255; 16 for "digits").
    coarse_labels: int64 (n,) or None. CIFAR-100 only: the super-class of each object.
    coarse_names: tuple of str or None. CIFAR-100 only: the 20 super-class names.
    fine_to_coarse: int64 (num_classes,) or None. CIFAR-100 only: super-class of each
        fine class; -1 for a fine class that does not occur in the file.
    source: str or None, where the data was read from.
    """

    images: np.ndarray
    labels: np.ndarray
    name: str
    split: str
    class_names: tuple
    max_value: int = 255
    coarse_labels: np.ndarray | None = None
    coarse_names: tuple | None = None
    fine_to_coarse: np.ndarray | None = None
    source: str | None = None

    def __post_init__(self):
        self.class_names = tuple(self.class_names)
        if not isinstance(self.images, np.ndarray) or self.images.dtype != np.uint8:
            raise TypeError(f"Dataset images must be a uint8 ndarray, got {_describe(self.images)}")
        if self.images.ndim != 4:
            raise ValueError(
                f"Dataset images must have shape (n, C, H, W), got {self.images.shape}")
        self.labels = _int_labels(self.labels, "labels", len(self.images), self.num_classes)
        if not 0 < int(self.max_value) <= 255:
            raise ValueError(f"Dataset max_value must be in 1..255, got {self.max_value}")
        if self.coarse_labels is not None:
            self.coarse_names = tuple(self.coarse_names)
            self.coarse_labels = _int_labels(
                self.coarse_labels, "coarse_labels", len(self.images), len(self.coarse_names)
            )
            self.fine_to_coarse = np.asarray(self.fine_to_coarse, dtype=np.int64)
            if self.fine_to_coarse.shape != (self.num_classes,):
                raise ValueError(
                    f"Dataset fine_to_coarse must have shape ({self.num_classes},), "
                    f"got {self.fine_to_coarse.shape}"
                )

    @property
    def num_classes(self):
        """K, the number of classes (length of ``class_names``)."""
        return len(self.class_names)

    def __len__(self):
        return len(self.labels)

    def __repr__(self):
        coarse = f", {len(self.coarse_names)} super-classes" if self.coarse_names else ""
        return (
            f"Dataset({self.name!r}, split={self.split!r}, images {self.images.shape} uint8, "
            f"{self.num_classes} classes{coarse})"
        )

    def class_counts(self):
        """Objects per class. Output: int64 (num_classes,)."""
        return np.bincount(self.labels, minlength=self.num_classes)

    def subset(self, indices):
        """The objects at ``indices`` (int array or slice), as a new Dataset (copies)."""
        if isinstance(indices, slice):
            indices = np.arange(len(self))[indices]
        indices = np.asarray(indices)
        if indices.dtype == bool:
            raise TypeError("Dataset.subset takes integer indices or a slice, not a boolean mask")
        return Dataset(
            images=self.images[indices],
            labels=self.labels[indices],
            name=self.name,
            split=self.split,
            class_names=self.class_names,
            max_value=self.max_value,
            coarse_labels=None if self.coarse_labels is None else self.coarse_labels[indices],
            coarse_names=self.coarse_names,
            fine_to_coarse=self.fine_to_coarse,
            source=self.source,
        )

    def as_coarse(self):
        """CIFAR-100 with the 20 super-classes as its labels (shares the image array)."""
        if self.coarse_labels is None:
            raise ValueError(f"data set {self.name!r} has no coarse (super-class) labels")
        return Dataset(
            images=self.images,
            labels=self.coarse_labels,
            name=f"{self.name}-coarse",
            split=self.split,
            class_names=self.coarse_names,
            max_value=self.max_value,
            source=self.source,
        )


def to_float(images, dtype=np.float32, max_value=255, standardize=None):
    """Pixels to floats in [0, 1], optionally standardised per channel.

    x = images / max_value                          (standardize=None)
    x = (images / max_value - mean_c) / std_c       (standardize=(mean, std))

    computed as one division (correctly rounded), or one multiply and one
    in-place subtract, so the only allocation is the output.

    Inputs:
        images: integer array (B, C, H, W) (uint8 in practice).
        dtype: floating dtype of the result (the model's dtype).
        max_value: the value that maps to 1.0 (255, or 16 for "digits").
        standardize: None, or (mean (C,), std (C,)) in [0, 1] units, as
            returned by :func:`channel_stats` of the *training* set.
    Output: x: dtype (B, C, H, W).
    """
    images = np.asarray(images)
    if not np.issubdtype(images.dtype, np.integer):
        raise TypeError(f"to_float: images must be an integer (uint8) array, got {images.dtype}")
    if standardize is not None and images.ndim != 4:
        raise ValueError(f"to_float: standardize needs images (B, C, H, W), got {images.shape}")
    scale, shift = _affine(max_value, standardize, images.shape[1] if images.ndim > 1 else 0, dtype)
    return _apply(images, scale, shift, np.dtype(dtype))


def batches(ds, batch_size=128, seed=0, shuffle=True, dtype=np.float32,
            standardize=None, drop_last=False):
    """One epoch of mini-batches, floats made per batch.

    Inputs:
        ds: Dataset with n objects.
        batch_size: B, objects per batch (the last batch may be smaller).
        seed: int, np.random.Generator or None; the shuffle of this epoch.
            The same int gives the same order: pass seed + epoch (or one
            Generator for the whole run) to get a new order each epoch.
        shuffle: False keeps the stored order.
        dtype: floating dtype of x.
        standardize: None or (mean (C,), std (C,)) in [0, 1] units, see to_float.
        drop_last: drop a last batch smaller than batch_size.
    Yields: (x: dtype (B, C, H, W), y: int64 (B,)).

    Per step it allocates one batch (the uint8 gather and its float copy);
    the only allocation proportional to n is the permutation, once per epoch.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batches: batch_size must be an int, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batches: batch_size must be >= 1, got {batch_size}")
    scale, shift = _affine(ds.max_value, standardize, ds.images.shape[1], dtype)
    dtype = np.dtype(dtype)
    n = len(ds)
    order = np.random.default_rng(seed).permutation(n) if shuffle else None
    stop = n - n % batch_size if drop_last else n

    def generate():
        for start in range(0, stop, batch_size):
            if order is None:
                images = ds.images[start:start + batch_size]
                labels = ds.labels[start:start + batch_size].copy()
            else:
                index = order[start:start + batch_size]
                images = ds.images[index]
                labels = ds.labels[index]
            yield _apply(images, scale, shift, dtype), labels

    return generate()


def channel_stats(ds, chunk=4096):
    """Per-channel mean and standard deviation of the pixels, in [0, 1] units.

    mean_c = sum_{s,h,w} x_{s,c,h,w} / N,   std_c = sqrt(sum (x - mean_c)^2 / N),
    N = n*H*W, x = images / max_value. Sums are exact integer arithmetic over
    chunks of ``chunk`` images, so no float copy of the data set is made.

    Inputs: ds: Dataset (or anything with .images uint8 (n, C, H, W) and .max_value).
    Outputs: mean: float64 (C,), std: float64 (C,).
    """
    images = ds.images
    n, c = images.shape[:2]
    if n == 0:
        raise ValueError("channel_stats: the data set is empty")
    s1 = np.zeros(c, dtype=np.int64)
    s2 = np.zeros(c, dtype=np.int64)
    for start in range(0, n, chunk):
        part = images[start:start + chunk]
        s1 += part.sum(axis=(0, 2, 3), dtype=np.int64)
        s2 += np.square(part, dtype=np.uint32).sum(axis=(0, 2, 3), dtype=np.int64)
    count = n * images.shape[2] * images.shape[3]
    # Python ints: N*S2 - S1^2 is exact, no cancellation in the variance.
    var = [(count * int(b) - int(a) ** 2) / count**2 for a, b in zip(s1, s2, strict=True)]
    mean = s1 / (count * ds.max_value)
    std = np.sqrt(np.array(var)) / ds.max_value
    return mean, std


def _affine(max_value, standardize, channels, dtype):
    """(max_value, None) for x = images / max_value, or (scale, shift) with
    x = images * scale - shift; in `dtype`."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"dtype must be a floating type, got {dtype}")
    if not max_value > 0:
        raise ValueError(f"max_value must be positive, got {max_value}")
    if standardize is None:
        return dtype.type(max_value), None
    try:
        mean, std = standardize
    except (TypeError, ValueError):
        raise TypeError("standardize must be None or a pair (mean, std)") from None
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    if mean.shape != (channels,) or std.shape != (channels,):
        raise ValueError(
            f"standardize: mean and std must have shape ({channels},) (one per channel), "
            f"got {mean.shape} and {std.shape}"
        )
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
        raise ValueError(f"standardize: need finite mean and std > 0, got {mean}, {std}")
    # (v / max - m) / s = v * (1 / (max s)) - m / s, folded in float64, rounded once.
    scale = (1.0 / (max_value * std)).astype(dtype).reshape(1, channels, 1, 1)
    shift = (mean / std).astype(dtype).reshape(1, channels, 1, 1)
    return scale, shift


def _apply(images, scale, shift, dtype):
    if shift is None:
        return np.divide(images, scale, dtype=dtype)
    x = np.multiply(images, scale, dtype=dtype)
    x -= shift
    return x


def _int_labels(labels, what, n, num_classes):
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"Dataset {what} must be integers, got {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"Dataset {what} must have shape ({n},) to match the images, "
                         f"got {labels.shape}")
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"Dataset {what} must lie in 0..{num_classes - 1}, "
                         f"got {labels.min()}..{labels.max()}")
    return labels.astype(np.int64, copy=False)


def _describe(x):
    return f"{type(x).__name__} of dtype {x.dtype}" if hasattr(x, "dtype") else type(x).__name__
