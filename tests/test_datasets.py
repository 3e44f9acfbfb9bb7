"""Loaders on small files written here in each real format, and the bad-input catalogue:
IDX (gzipped and plain), CIFAR-10 / CIFAR-100 pickles (Python 2 style, as the
original files, and Python 3 protocols 2, 4 and 5), unsafe pickles. Nothing here
touches the network (datasets_files.isolate)."""

import gzip
import os
import pickle
import struct

import numpy as np
import pytest
from datasets_files import (
    CIFAR10_NAMES,
    FINE_TO_COARSE,
    cifar_batch,
    idx_bytes,
    load,
    py2_pickle,
    write_cifar10,
    write_cifar100,
    write_idx_pair,
    write_mnist,
    write_pickle,
)

from minits.datasets import (
    DatasetFormatError,
    UnsafePickleError,
    cifar,
    idx,
    safe_pickle,
)

pytestmark = pytest.mark.usefixtures("isolated")  # no network, no real data: conftest


# ----------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_fixture_loads_exactly(tmp_path, gz):
    written = write_mnist(tmp_path / "data" / "mnist", gz=gz)
    for split in ("train", "test"):
        ds = load("mnist", split, tmp_path / "data")
        images, labels = written[split]
        assert ds.images.dtype == np.uint8 and ds.images.shape == (len(images), 1, 28, 28)
        assert ds.labels.dtype == np.int64
        np.testing.assert_array_equal(ds.images[:, 0], images)
        np.testing.assert_array_equal(ds.labels, labels)
        assert (ds.name, ds.split, ds.num_classes, ds.max_value) == ("mnist", split, 10, 255)
        assert ds.coarse_labels is None and ds.fine_to_coarse is None
        assert len(ds) == len(labels)


def test_fashion_mnist_names_and_debian_root(isolated):
    write_mnist(isolated / "usr-share-datasets" / "fashion-mnist")
    ds = load("fashion-mnist", "test")
    assert ds.name == "fashion-mnist" and ds.class_names[0] == "T-shirt/top"
    assert ds.source == str(isolated / "usr-share-datasets" / "fashion-mnist")
    assert load("Fashion_MNIST", "test").name == "fashion-mnist"   # alias


def test_idx_reader_shapes(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(idx_bytes(np.arange(24).reshape(2, 3, 4)))
    np.testing.assert_array_equal(idx.read_idx(path, 3), np.arange(24).reshape(2, 3, 4))


IDX_IMAGES = np.zeros((4, 28, 28), dtype=np.uint8)
IDX_GOOD = idx_bytes(IDX_IMAGES)


@pytest.mark.parametrize("raw, words", [
    (b"", "magic"),
    (b"\x01\x02\x08\x03" + IDX_GOOD[4:], "magic"),
    (b"\x00\x00\x0d\x03" + IDX_GOOD[4:], "type code 0x0d"),
    (idx_bytes(IDX_IMAGES[:, :, 0]), "2 dimensions, expected 3"),
    (IDX_GOOD[:10], "truncated IDX header"),
    (IDX_GOOD[:-5], "truncated"),
    (IDX_GOOD + b"\x00", "trailing bytes"),
    (b"\x00\x00\x08\x03" + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1), "impossible"),
])
def test_idx_bad_contents(tmp_path, raw, words):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(DatasetFormatError, match=words) as err:
        idx.read_idx(path, 3)
    assert str(path) in str(err.value)


def test_idx_bad_gzip(tmp_path):
    good = gzip.compress(IDX_GOOD)
    crc = bytearray(good)
    crc[-6] ^= 0xFF                                  # damage the CRC32 in the trailer
    for raw in (b"this is not gzip data at all", good[: len(good) // 2], bytes(crc)):
        path = tmp_path / "t10k-images-idx3-ubyte.gz"
        path.write_bytes(raw)
        with pytest.raises(DatasetFormatError, match="gzip") as err:
            idx.read_idx(path, 3)
        assert str(path) in str(err.value)


def test_idx_label_count_and_range(tmp_path):
    folder = tmp_path / "mnist"
    write_idx_pair(folder, "train", IDX_IMAGES, np.zeros(3, np.uint8))
    with pytest.raises(DatasetFormatError, match="3 labels for the 4 images"):
        load("mnist", "train", tmp_path)
    write_idx_pair(folder, "train", IDX_IMAGES, np.array([0, 1, 10, 2], np.uint8))
    with pytest.raises(DatasetFormatError, match="label 10 is not one of the 10 classes") as err:
        load("mnist", "train", tmp_path)
    assert "train-labels-idx1-ubyte.gz" in str(err.value)


# ----------------------------------------------------------------------------- CIFAR


@pytest.mark.parametrize("style", ["py2", 2, 4, 5])
def test_cifar10_fixture_loads_exactly(tmp_path, style):
    _, batches = write_cifar10(tmp_path, n=20, style=style)
    train = load("cifar10", "train", tmp_path)
    test = load("cifar10", "test", tmp_path)
    assert train.images.shape == (100, 3, 32, 32) and test.images.shape == (20, 3, 32, 32)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    expected = np.concatenate([batches[f][b"data"] for f in cifar.CIFAR10_FILES["train"]])
    # (n, 3072) rows are R, G, B planes of 32x32: a reshape gives (n, C, H, W).
    np.testing.assert_array_equal(train.images[:, 1, 2, 3], expected[:, 1024 + 2 * 32 + 3])
    np.testing.assert_array_equal(train.images.reshape(100, -1), expected)
    np.testing.assert_array_equal(test.labels, batches["test_batch"][b"labels"])
    assert train.class_names[9] == "truck" and train.num_classes == 10


def test_py2_pickle_writer_matches_numpy(tmp_path):
    """The fixture writer really produces what numpy's own unpickling reads."""
    d = cifar_batch(3, seed=1)
    plain = pickle.loads(py2_pickle(d), encoding="bytes")
    np.testing.assert_array_equal(plain[b"data"], d[b"data"])
    assert plain[b"labels"] == d[b"labels"]


@pytest.mark.parametrize("style", ["py2", 2, 5])
def test_cifar100_fine_coarse_and_map(tmp_path, style):
    _, written = write_cifar100(tmp_path / "cifar100", style=style)   # nested layout
    ds = load("cifar100", "train", tmp_path)
    assert ds.images.shape == (200, 3, 32, 32) and ds.num_classes == 100
    np.testing.assert_array_equal(ds.labels, written["train"][b"fine_labels"])
    np.testing.assert_array_equal(ds.coarse_labels, written["train"][b"coarse_labels"])
    np.testing.assert_array_equal(ds.fine_to_coarse, FINE_TO_COARSE)
    assert len(ds.coarse_names) == 20 and ds.coarse_names[3] == "coarse3"
    np.testing.assert_array_equal(ds.fine_to_coarse[ds.labels], ds.coarse_labels)
    coarse = load("cifar100-coarse", "test", tmp_path)
    assert coarse.num_classes == 20 and coarse.name == "cifar100-coarse"
    np.testing.assert_array_equal(coarse.labels, written["test"][b"coarse_labels"])


def test_cifar100_missing_fine_class_maps_to_minus_one(tmp_path):
    write_cifar100(tmp_path, n_train=200, n_test=50)            # test has fine classes 0..49
    ds = load("cifar100", "test", tmp_path)
    assert np.all(ds.fine_to_coarse[50:] == -1)
    np.testing.assert_array_equal(ds.fine_to_coarse[:50], FINE_TO_COARSE[:50])


def _bad_batch(change):
    d = cifar_batch(10, seed=0)
    change(d)
    return d


@pytest.mark.parametrize("obj, words", [
    ([1, 2, 3], "expected a pickled dict, found list"),
    (_bad_batch(lambda d: d.pop(b"data")), "missing key b'data'"),
    (_bad_batch(lambda d: d.update({b"data": d[b"data"].astype(np.float32)})), "uint8"),
    (_bad_batch(lambda d: d.update({b"data": d[b"data"][:, :3000]})), r"\(n, 3072\)"),
    (_bad_batch(lambda d: d.update({b"data": b"raw bytes"})), "uint8 array, found bytes"),
    (_bad_batch(lambda d: d[b"labels"].pop()), "9 entries in b'labels' for 10 images"),
    (_bad_batch(lambda d: d[b"labels"].__setitem__(0, 10)), r"outside 0\.\.9"),
    (_bad_batch(lambda d: d[b"labels"].__setitem__(0, -1)), r"outside 0\.\.9"),
    (_bad_batch(lambda d: d.update({b"labels": [b"cat"] * 10})), "list of ints"),
])
def test_cifar_bad_batches(tmp_path, obj, words):
    folder, _ = write_cifar10(tmp_path, n=10)
    write_pickle(folder / "test_batch", obj, style=2)
    with pytest.raises(DatasetFormatError, match=words) as err:
        load("cifar10", "test", tmp_path)
    assert str(folder / "test_batch") in str(err.value)


def test_cifar_bad_meta_and_files(tmp_path):
    folder, _ = write_cifar10(tmp_path, n=10)
    write_pickle(folder / "batches.meta", {b"label_names": CIFAR10_NAMES[:9]})
    with pytest.raises(DatasetFormatError, match="9 names, expected 10"):
        load("cifar10", "test", tmp_path)
    write_pickle(folder / "batches.meta", {b"label_names": CIFAR10_NAMES})
    good = (folder / "test_batch").read_bytes()
    for raw, words in ((b"certainly not a pickle", "not a readable pickle"),
                       (good[: len(good) // 2], "not a readable pickle"),
                       (b"", "not a readable pickle")):
        (folder / "test_batch").write_bytes(raw)
        with pytest.raises(DatasetFormatError, match=words) as err:
            load("cifar10", "test", tmp_path)
        assert str(folder / "test_batch") in str(err.value)


def test_cifar100_fine_class_under_two_superclasses(tmp_path):
    folder, written = write_cifar100(tmp_path, n_train=200, n_test=200)
    d = written["test"]                                  # fine class 0: objects 0 and 100
    d[b"coarse_labels"][0] = (d[b"coarse_labels"][0] + 1) % 20
    write_pickle(folder / "test", d)
    with pytest.raises(DatasetFormatError, match="fine class 0 appears under super-classes"):
        load("cifar100", "test", tmp_path)


# ----------------------------------------------------------------------------- unsafe pickles


class CallsSystem:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_pickle_calling_os_system_is_refused(tmp_path):
    canary = tmp_path / "pwned"
    folder, _ = write_cifar10(tmp_path, n=10)
    command = f"touch {canary}"
    hostile = {
        "GLOBAL (protocol 0)": f"cos\nsystem\n(S'{command}'\ntR.".encode(),
        "STACK_GLOBAL (protocol 4)": pickle.dumps({b"data": CallsSystem(command)}, protocol=4),
        "protocol 2": pickle.dumps(CallsSystem(command), protocol=2),
    }
    for how, raw in hostile.items():
        (folder / "test_batch").write_bytes(raw)
        with pytest.raises(UnsafePickleError, match=r"refuses to load the global (os|posix)\.system"
                           ) as err:
            load("cifar10", "test", tmp_path)
        assert str(folder / "test_batch") in str(err.value), how
        assert isinstance(err.value, ValueError) and isinstance(err.value, pickle.UnpicklingError)
        assert not canary.exists(), how


@pytest.mark.parametrize("raw, words", [
    (b"cbuiltins\neval\n(S'1+1'\ntR.", "builtins.eval"),
    (b"c__builtin__\neval\n(S'1+1'\ntR.", "__builtin__.eval"),
    (b"csubprocess\ncheck_output\n(S'ls'\ntR.", "subprocess.check_output"),
    (b"cnumpy\nload\n(S'x.npy'\ntR.", "numpy.load"),
    (b"cbuiltins\ngetattr\n.", "builtins.getattr"),
    (b"c_codecs\nencode\n(X\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13tR.", "rot13"),
    (pickle.dumps(np.array([None, 1], dtype=object), protocol=2), "dtype object"),
    (pickle.dumps(np.array([None, 1], dtype=object), protocol=5), "dtype object"),
    (pickle.dumps(np.zeros(3, dtype=[("a", "O"), ("b", "i4")]), protocol=2), "Python objects"),
    (pickle.dumps(np.ma.masked_array([1, 2]), protocol=2), "numpy.ma.core"),
    (b"\x80\x02cnumpy\nndarray\n(K\x03tR.", "not a readable pickle"),       # not callable
    (b"P1\n.", "persistent id"),
])
def test_restricted_unpickler_refuses(tmp_path, raw, words):
    path = tmp_path / "hostile"
    path.write_bytes(raw)
    with pytest.raises(DatasetFormatError, match=words) as err:
        safe_pickle.load(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_restricted_unpickler_reads_plain_data(tmp_path, protocol):
    obj = {b"data": np.arange(12, dtype=np.uint8).reshape(3, 4), b"labels": [1, 2, 3],
           "f": np.arange(3, dtype=np.float64), b"n": np.int64(7), b"s": b"x" * 300}
    path = tmp_path / "ok"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    got = safe_pickle.load(path)
    np.testing.assert_array_equal(got[b"data"], obj[b"data"])
    np.testing.assert_array_equal(got["f"], obj["f"])
    assert got[b"labels"] == [1, 2, 3] and got[b"n"] == 7 and got[b"s"] == b"x" * 300
