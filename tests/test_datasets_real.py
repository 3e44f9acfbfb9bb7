"""The real data sets, when present: checksums, shapes and per-class counts.

MNIST is looked for in $MINITS_DATA/mnist;
Fashion-MNIST in $MINITS_DATA/fashion-mnist or Debian's /usr/share/datasets;
CIFAR-10 wherever the default search finds cifar-10-batches-py/ (for example
one placed in $MINITS_DATA as datasets/README.md describes). Each
test skips, with the reason, when its files are absent. Nothing is downloaded.
"""

import os
from pathlib import Path

import numpy as np
import pytest

import minits as mt
from minits.datasets import catalog, sources

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _folder(source, *candidates):
    for folder in candidates:
        if folder is not None and all(
                (folder / name).is_file() for split in ("train", "test")
                for name in source.files[split]):
            return folder
    return None


def _env_data():
    path = os.environ.get("MINITS_DATA")
    return Path(path) if path and os.path.isdir(path) else None


def _check_digests(source, folder, recompressed_ok=False):
    for remote in source.remote:
        path = folder / remote.name
        if recompressed_ok and path.stat().st_size != remote.size:
            continue  # Debian re-gzips Fashion-MNIST (other header bytes, same content)
        assert path.stat().st_size == remote.size, path
        md5, sha256 = sources.file_digests(path)
        assert md5 == remote.md5, path
        if remote.sha256:
            assert sha256 == remote.sha256, path


def test_real_mnist():
    data = _env_data()
    folder = _folder(catalog.MNIST, data / "mnist" if data else None)
    if folder is None:
        pytest.skip("real MNIST absent: set MINITS_DATA to a folder holding mnist/*.gz")
    _check_digests(catalog.MNIST, folder)
    for split, n, counts in (("train", 60000, MNIST_TRAIN_COUNTS),
                             ("test", 10000, MNIST_TEST_COUNTS)):
        ds = mt.datasets.load("mnist", split, data_dir=data, download=False)
        assert ds.images.shape == (n, 1, 28, 28) and ds.images.dtype == np.uint8
        assert ds.labels.shape == (n,) and ds.labels.dtype == np.int64
        assert ds.class_counts().tolist() == counts
        assert ds.images.min() == 0 and ds.images.max() == 255
        assert Path(ds.source) == folder


def test_real_fashion_mnist():
    data = _env_data()
    folder = _folder(catalog.FASHION_MNIST, data / "fashion-mnist" if data else None,
                     Path("/usr/share/datasets/fashion-mnist"))
    if folder is None:
        pytest.skip("Fashion-MNIST absent (apt-get install dataset-fashion-mnist)")
    _check_digests(catalog.FASHION_MNIST, folder, recompressed_ok=True)
    for split, n in (("train", 60000), ("test", 10000)):
        ds = mt.datasets.load("fashion-mnist", split, data_dir=folder, download=False)
        assert ds.images.shape == (n, 1, 28, 28)
        assert ds.class_counts().tolist() == [n // 10] * 10


def test_real_cifar10():
    folder = sources.find_folder(catalog.CIFAR10, "train")
    if folder is None:
        pytest.skip("no cifar-10-batches-py/ in $MINITS_DATA, ./datasets or the user cache "
                    "(place it as datasets/README.md describes)")
    for split, n in (("train", 50000), ("test", 10000)):
        ds = mt.datasets.load("cifar10", split, data_dir=folder, download=False)
        assert ds.images.shape == (n, 3, 32, 32) and ds.images.dtype == np.uint8
        assert ds.class_counts().tolist() == [n // 10] * 10
        assert ds.class_names == ("airplane", "automobile", "bird", "cat", "deer",
                                  "dog", "frog", "horse", "ship", "truck")
    mean, std = mt.datasets.channel_stats(ds)
    assert np.all((0.3 < mean) & (mean < 0.6)) and np.all((0.15 < std) & (std < 0.35))
