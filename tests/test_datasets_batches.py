"""Dataset record, per-batch float conversion, the batch iterator, channel statistics."""

import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minits.datasets import Dataset, batches, channel_stats, to_float


def make_ds(n=50, c=3, h=4, w=5, k=10, seed=0, max_value=255):
    rng = np.random.default_rng(seed)
    return Dataset(
        images=rng.integers(0, max_value + 1, size=(n, c, h, w), dtype=np.uint8),
        labels=rng.integers(0, k, size=n),
        name="toy", split="train", class_names=[str(i) for i in range(k)],
        max_value=max_value,
    )


# ----------------------------------------------------------------------------- Dataset


def test_dataset_record():
    ds = make_ds(n=7, k=4)
    assert len(ds) == 7 and ds.num_classes == 4 and ds.labels.dtype == np.int64
    assert ds.class_counts().sum() == 7 and ds.class_counts().shape == (4,)
    assert "toy" in repr(ds) and "(7, 3, 4, 5)" in repr(ds)
    sub = ds.subset([3, 1])
    np.testing.assert_array_equal(sub.images, ds.images[[3, 1]])
    np.testing.assert_array_equal(sub.labels, ds.labels[[3, 1]])
    assert len(ds.subset(slice(0, 5, 2))) == 3
    with pytest.raises(TypeError, match="boolean mask"):
        ds.subset(np.ones(7, bool))
    with pytest.raises(ValueError, match="no coarse"):
        ds.as_coarse()


def test_dataset_coarse_view():
    ds = make_ds(n=6, k=4)
    f2c = np.array([0, 0, 1, 1])
    fine = Dataset(ds.images, ds.labels, "c", "test", ["a", "b", "c", "d"],
                   coarse_labels=f2c[ds.labels], coarse_names=["x", "y"], fine_to_coarse=f2c)
    coarse = fine.as_coarse()
    assert coarse.num_classes == 2 and coarse.images is fine.images
    np.testing.assert_array_equal(coarse.labels, f2c[ds.labels])
    np.testing.assert_array_equal(fine.subset([5, 0]).coarse_labels, f2c[ds.labels[[5, 0]]])


@pytest.mark.parametrize("change, error, words", [
    (dict(images=np.zeros((2, 1, 2, 2), np.float32)), TypeError, "uint8"),
    (dict(images=np.zeros((2, 4), np.uint8)), ValueError, r"\(n, C, H, W\)"),
    (dict(labels=np.array([0, 1, 2])), ValueError, r"shape \(2,\)"),
    (dict(labels=np.array([0, 3])), ValueError, r"0\.\.2"),
    (dict(labels=np.array([0.0, 1.0])), TypeError, "integers"),
    (dict(max_value=0), ValueError, "max_value"),
])
def test_dataset_validation(change, error, words):
    kw = dict(images=np.zeros((2, 1, 2, 2), np.uint8), labels=np.array([0, 1]), name="t",
              split="train", class_names=["a", "b", "c"])
    kw.update(change)
    with pytest.raises(error, match=words):
        Dataset(**kw)


# ----------------------------------------------------------------------------- to_float


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_float_scale_and_dtype(dtype):
    ds = make_ds()
    x = to_float(ds.images, dtype, 255)
    assert x.dtype == dtype and x.shape == ds.images.shape
    np.testing.assert_array_equal(x, (ds.images / 255.0).astype(dtype))  # rounded once
    assert to_float(np.array([[[[0, 16]]]], np.uint8), dtype, 16).max() == 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_float_standardize(dtype):
    ds = make_ds()
    mean, std = np.array([0.2, 0.5, 0.7]), np.array([0.1, 0.3, 0.25])
    x = to_float(ds.images, dtype, 255, standardize=(mean, std))
    expected = (ds.images / 255.0 - mean[None, :, None, None]) / std[None, :, None, None]
    assert x.dtype == dtype
    np.testing.assert_allclose(x, expected, rtol=0, atol=30 * np.finfo(dtype).eps)


@pytest.mark.parametrize("args, error, words", [
    ((np.zeros((1, 1, 2, 2), np.float32),), TypeError, "integer"),
    ((np.zeros((1, 1, 2, 2), np.uint8), np.int32), TypeError, "floating"),
    ((np.zeros((1, 3, 2, 2), np.uint8), np.float32, 255, ([0.5], [0.2])), ValueError, r"\(3,\)"),
    ((np.zeros((1, 1, 2, 2), np.uint8), np.float32, 255, ([0.5], [0.0])), ValueError, "std > 0"),
    ((np.zeros((1, 1, 2, 2), np.uint8), np.float32, 255, 0.5), TypeError, "pair"),
    ((np.zeros((1, 4), np.uint8), np.float32, 255, ([0.5], [0.2])), ValueError, "B, C, H, W"),
])
def test_to_float_bad_input(args, error, words):
    with pytest.raises(error, match=words):
        to_float(*args)


# ----------------------------------------------------------------------------- batches


@given(n=st.integers(1, 40), batch_size=st.integers(1, 12), seed=st.integers(0, 2**32 - 1),
       drop_last=st.booleans())
def test_batches_cover_each_object_once(n, batch_size, seed, drop_last):
    ds = make_ds(n=n, c=1, h=2, w=2, k=5, seed=seed % 1000)
    seen_x, seen_y = [], []
    for x, y in batches(ds, batch_size, seed=seed, drop_last=drop_last):
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.shape == (len(y), 1, 2, 2) and 1 <= len(y) <= batch_size
        if drop_last:
            assert len(y) == batch_size
        seen_x.append(x)
        seen_y.append(y)
    count = n - n % batch_size if drop_last else n
    assert sum(len(y) for y in seen_y) == count
    if count == 0:
        return
    x, y = np.concatenate(seen_x), np.concatenate(seen_y)
    # Each batch element is some object: recover which, by its pixels and label.
    flat = (ds.images.reshape(n, -1) / 255.0).astype(np.float32)
    order = np.random.default_rng(seed).permutation(n)[:count]
    np.testing.assert_array_equal(x.reshape(count, -1), flat[order])
    np.testing.assert_array_equal(y, ds.labels[order])


def test_batches_seed_and_order():
    ds = make_ds(n=30)
    first = [y for _, y in batches(ds, 8, seed=3)]
    again = [y for _, y in batches(ds, 8, seed=3)]
    other = [y for _, y in batches(ds, 8, seed=4)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    plain = np.concatenate([y for _, y in batches(ds, 8, shuffle=False)])
    np.testing.assert_array_equal(plain, ds.labels)
    gen = np.random.default_rng(0)
    e1 = np.concatenate([y for _, y in batches(ds, 30, seed=gen)])
    e2 = np.concatenate([y for _, y in batches(ds, 30, seed=gen)])
    assert not np.array_equal(e1, e2)                  # one Generator: a new order per epoch


def test_batches_float64_and_standardized_epoch():
    ds = make_ds(n=64)
    mean, std = channel_stats(ds)
    x = np.concatenate([x for x, _ in batches(ds, 10, dtype=np.float64,
                                              standardize=(mean, std))])
    assert x.dtype == np.float64
    np.testing.assert_allclose(x.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(x.std(axis=(0, 2, 3)), 1.0, rtol=1e-12)


def test_batches_bad_arguments():
    ds = make_ds()
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        batches(ds, 0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        batches(ds, 2.5)
    with pytest.raises(TypeError, match="floating"):
        batches(ds, 4, dtype=np.uint8)          # raised at the call, not at the first batch


def test_batches_allocate_per_batch_only():
    """Memory per step is one batch, however large the data set (no per-step O(n))."""
    ds = make_ds(n=20000, c=1, h=8, w=8)
    it = batches(ds, 16, seed=0)                # the epoch's permutation is made here
    next(it)
    tracemalloc.start()
    try:
        for _ in range(200):
            next(it)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    batch_bytes = 16 * 64 * (1 + 4) + 16 * 8    # uint8 gather + float32 x + int64 y
    assert peak < 20 * batch_bytes               # n * 8 bytes (a permutation) would be 160 kB


# ----------------------------------------------------------------------------- channel_stats


@given(n=st.integers(1, 30), c=st.integers(1, 3), chunk=st.integers(1, 8),
       seed=st.integers(0, 10**6))
def test_channel_stats_match_float_reference(n, c, chunk, seed):
    ds = make_ds(n=n, c=c, h=3, w=2, seed=seed)
    mean, std = channel_stats(ds, chunk=chunk)
    x = ds.images / 255.0
    assert mean.dtype == np.float64 and mean.shape == (c,)
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(std, x.std(axis=(0, 2, 3)), rtol=1e-11, atol=1e-13)


def test_channel_stats_constant_channel_and_max_value():
    ds = make_ds(n=5, c=2, max_value=16)
    ds.images[:, 1] = 16
    mean, std = channel_stats(ds)
    assert mean[1] == 1.0 and std[1] == 0.0
