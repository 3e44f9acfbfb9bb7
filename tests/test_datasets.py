"""Loaders on small files written here in each real format, and the bad-input catalogue.

Formats: IDX (gzipped and plain), CIFAR-10 / CIFAR-100 pickles (Python 2
style, as the original files, and Python 3 protocols 2, 4 and 5), tar.gz
archives. Nothing here touches the network: MINITS_OFFLINE is set for every
test, and downloads are exercised through file:// URLs.
"""

import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import struct
import sys
import tarfile

import numpy as np
import pytest

import minits as mt
from minits.datasets import (
    ChecksumError,
    DatasetFormatError,
    UnsafePickleError,
    catalog,
    cifar,
    idx,
    safe_pickle,
    sources,
)

# ----------------------------------------------------------------------------- writers


def idx_bytes(array, type_code=0x08, ndim=None):
    array = np.asarray(array, dtype=np.uint8)
    ndim = array.ndim if ndim is None else ndim
    header = bytes([0, 0, type_code, ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx_pair(folder, split, images, labels, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in zip(idx.FILES[split], (images, labels), strict=True):
        data = idx_bytes(array)
        if gz:
            (folder / name).write_bytes(gzip.compress(data))
        else:
            (folder / name[:-3]).write_bytes(data)


def write_mnist(folder, n_train=30, n_test=20, seed=0, gz=True):
    """A tiny MNIST in the canonical layout; returns {split: (images, labels)}."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        write_idx_pair(folder, split, images, labels, gz=gz)
        out[split] = images, labels
    return out


def py2_pickle(obj):
    """Bytes of ``obj`` pickled the way Python 2's cPickle wrote the CIFAR files:
    protocol 2, byte strings as BINSTRING, arrays via numpy.core.multiarray."""
    out = bytearray(b"\x80\x02")

    def dump(x):
        if isinstance(x, dict):
            out.extend(b"}(")
            for k, v in x.items():
                dump(k)
                dump(v)
            out.extend(b"u")
        elif isinstance(x, list):
            out.extend(b"](")
            for v in x:
                dump(v)
            out.extend(b"e")
        elif isinstance(x, tuple):
            out.extend(b"(")
            for v in x:
                dump(v)
            out.extend(b"t")
        elif isinstance(x, bytes):
            if len(x) < 256:
                out.extend(b"U" + bytes([len(x)]) + x)
            else:
                out.extend(b"T" + struct.pack("<I", len(x)) + x)
        elif isinstance(x, bool):
            out.extend(b"\x88" if x else b"\x89")
        elif isinstance(x, int):
            out.extend(b"J" + struct.pack("<i", x))
        elif x is None:
            out.extend(b"N")
        elif isinstance(x, np.ndarray):
            assert x.dtype == np.uint8
            out.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
                       b"K\x00\x85U\x01b\x87R")
            out.extend(b"(K\x01")
            dump(tuple(int(d) for d in x.shape))
            out.extend(b"cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R"
                       b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
            dump(False)
            dump(x.tobytes())
            out.extend(b"tb")
        else:
            raise TypeError(type(x))

    dump(obj)
    out.extend(b".")
    return bytes(out)


def write_pickle(path, obj, style=2):
    """style "py2": like the original files; an int: Python 3 pickle protocol."""
    data = py2_pickle(obj) if style == "py2" else pickle.dumps(obj, protocol=style)
    path.write_bytes(data)


CIFAR10_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer",
                 b"dog", b"frog", b"horse", b"ship", b"truck"]


def cifar_batch(n, seed, label_key=b"labels", num_classes=10):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in np.arange(n) % num_classes]
    return {b"batch_label": b"fixture", label_key: labels, b"data": data,
            b"filenames": [b"f%d.png" % i for i in range(n)]}


def write_cifar10(root, n=20, style="py2"):
    """cifar-10-batches-py/ with 5 train batches of n and a test batch of n."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for i, name in enumerate((*cifar.CIFAR10_FILES["train"], "test_batch")):
        batches[name] = cifar_batch(n, seed=i)
        write_pickle(folder / name, batches[name], style)
    write_pickle(folder / "batches.meta", {b"num_cases_per_batch": n, b"num_vis": 3072,
                                           b"label_names": CIFAR10_NAMES}, style)
    return folder, batches


FINE_TO_COARSE = np.random.default_rng(7).permutation(np.arange(100) % 20)


def write_cifar100(root, n_train=200, n_test=100, style=2):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, (split, n) in enumerate((("train", n_train), ("test", n_test))):
        d = cifar_batch(n, seed=10 + i, label_key=b"fine_labels", num_classes=100)
        d[b"coarse_labels"] = [int(FINE_TO_COARSE[f]) for f in d[b"fine_labels"]]
        write_pickle(folder / split, d, style)
        out[split] = d
    write_pickle(folder / "meta", {
        b"fine_label_names": [b"fine%d" % i for i in range(100)],
        b"coarse_label_names": [b"coarse%d" % i for i in range(20)],
    }, style)
    return folder, out


def make_tar_gz(path, folder, arcname):
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname=arcname)


def tar_with(path, members):
    """A tar.gz holding the given (TarInfo, bytes or None) members."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)


# ----------------------------------------------------------------------------- isolation


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No network, no real data, no user cache: every search root is under tmp_path."""
    monkeypatch.setenv("MINITS_OFFLINE", "1")
    monkeypatch.delenv("MINITS_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    fashion = dataclasses.replace(catalog.FASHION_MNIST,
                                  system_roots=(str(tmp_path / "usr-share-datasets"),))
    monkeypatch.setitem(catalog.SOURCES, "fashion-mnist", fashion)
    return tmp_path


def load(name, split="train", data_dir=None, **kw):
    return mt.datasets.load(name, split, data_dir, **kw)


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


# ----------------------------------------------------------------------------- search order


def test_search_order(isolated, monkeypatch):
    """data_dir, then $MINITS_DATA, then ./datasets, then the user cache."""
    places = {
        "data_dir": isolated / "explicit",
        "env": isolated / "env",
        "cwd": isolated / "cwd" / "datasets",
        "cache": isolated / "xdg" / "minits",
    }
    for i, root in enumerate(places.values()):
        write_mnist(root / "mnist", n_test=11 + i)
    monkeypatch.setenv("MINITS_DATA", str(places["env"]))
    assert len(load("mnist", "test", places["data_dir"])) == 11
    assert len(load("mnist", "test")) == 12
    monkeypatch.delenv("MINITS_DATA")
    assert len(load("mnist", "test")) == 13
    (places["cwd"] / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    ds = load("mnist", "test")
    assert len(ds) == 14 and ds.source == str(places["cache"] / "mnist")


def test_data_dir_may_be_the_folder_itself_and_torchvision_layout(tmp_path):
    write_mnist(tmp_path / "flat", n_test=5)
    assert len(load("mnist", "test", tmp_path / "flat")) == 5
    write_mnist(tmp_path / "tv" / "MNIST" / "raw", n_test=6, gz=False)
    assert len(load("mnist", "test", tmp_path / "tv")) == 6
    folder, _ = write_cifar10(tmp_path / "c", n=4)
    assert len(load("cifar10", "test", folder)) == 4


def test_not_found_names_files_and_folders(isolated):
    with pytest.raises(FileNotFoundError) as err:
        load("mnist", "train", isolated / "nowhere")
    message = str(err.value)
    for expected in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                     str(isolated / "nowhere" / "mnist"), str(isolated / "cwd" / "datasets"),
                     str(isolated / "xdg" / "minits" / "mnist"), "MINITS_OFFLINE"):
        assert expected in message
    with pytest.raises(FileNotFoundError, match="download=False") as err:
        load("cifar10", "test", download=False)
    assert "cifar-10-python.tar.gz" in str(err.value) and "batches.meta" in str(err.value)


def test_unknown_name_and_split():
    with pytest.raises(ValueError, match="unknown data set 'imagenet'"):
        load("imagenet")
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        load("mnist", "valid")


# ----------------------------------------------------------------------------- archives


def test_cifar_archive_is_extracted_beside_itself(tmp_path):
    folder, batches = write_cifar10(tmp_path / "src", n=6)
    data = tmp_path / "data"
    (data / "cifar10").mkdir(parents=True)
    make_tar_gz(data / "cifar10" / "cifar-10-python.tar.gz", folder, "cifar-10-batches-py")
    ds = load("cifar10", "test", data)
    assert ds.source == str(data / "cifar10" / "cifar-10-batches-py")
    np.testing.assert_array_equal(ds.labels, batches["test_batch"][b"labels"])
    assert sorted(p.name for p in (data / "cifar10").iterdir()) == [
        "cifar-10-batches-py", "cifar-10-python.tar.gz"]           # no temporary leftovers


def test_read_only_archive_folder_extracts_to_cache(isolated, monkeypatch):
    folder, _ = write_cifar10(isolated / "src", n=6)
    (isolated / "ro").mkdir()
    make_tar_gz(isolated / "ro" / "cifar-10-python.tar.gz", folder, "cifar-10-batches-py")
    monkeypatch.setattr(sources.os, "access", lambda path, mode: False)
    ds = load("cifar10", "test", isolated / "ro")
    assert ds.source == str(isolated / "xdg" / "minits" / "cifar-10-batches-py")


def test_tar_path_traversal_and_links_are_refused(tmp_path):
    def info(name, kind=tarfile.REGTYPE, link=""):
        ti = tarfile.TarInfo(name)
        ti.type, ti.linkname = kind, link
        return ti

    cases = {
        "dotdot": ([(info("cifar-10-batches-py/../../evil"), b"x")], "leaves the target"),
        "absolute": ([(info("/tmp/evil-minits-test"), b"x")], "leaves the target"),
        "symlink": ([(info("cifar-10-batches-py/link", tarfile.SYMTYPE, "/etc/passwd"), None)],
                    "no links"),
        "hardlink": ([(info("cifar-10-batches-py/h", tarfile.LNKTYPE, "/etc/passwd"), None)],
                     "no links"),
        "device": ([(info("cifar-10-batches-py/dev", tarfile.CHRTYPE), None)], "no links"),
    }
    for case, (members, words) in cases.items():
        archive = tmp_path / f"{case}.tar.gz"
        tar_with(archive, members)
        dest = tmp_path / f"out-{case}"
        with pytest.raises(DatasetFormatError, match=words) as err:
            sources.extract(archive, dest, "cifar-10-batches-py")
        assert str(archive) in str(err.value)
        assert list(dest.iterdir()) == []                       # nothing written, temp removed
    assert not (tmp_path / "evil").exists() and not os.path.exists("/tmp/evil-minits-test")


def test_damaged_or_wrong_archives(tmp_path):
    folder, _ = write_cifar10(tmp_path / "src", n=4)
    good = tmp_path / "good.tar.gz"
    make_tar_gz(good, folder, "cifar-10-batches-py")
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(good.read_bytes()[:5000])
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"\x1f\x8b" + b"garbage" * 100)
    wrong = tmp_path / "wrong.tar.gz"
    make_tar_gz(wrong, folder, "something-else")
    for archive, words in ((truncated, "damaged archive"), (garbage, "damaged archive"),
                           (wrong, "holds no folder cifar-10-batches-py/")):
        with pytest.raises(DatasetFormatError, match=words) as err:
            sources.extract(archive, tmp_path / "out", "cifar-10-batches-py")
        assert str(archive) in str(err.value)
    assert list((tmp_path / "out").iterdir()) == []


# ----------------------------------------------------------------------------- downloads


def _remote(path):
    md5, sha256 = sources.file_digests(path)
    return catalog.RemoteFile(path.name, path.stat().st_size, md5, sha256)


def test_download_verifies_then_renames(tmp_path):
    src = tmp_path / "mirror" / "blob.bin"
    src.parent.mkdir()
    src.write_bytes(os.urandom(3 * sources.CHUNK + 17))
    md5, sha256 = sources.file_digests(src)
    dest = tmp_path / "dl" / "blob.bin"
    sources.download(src.as_uri(), dest, md5=md5, sha256=sha256, size=src.stat().st_size,
                     progress=False)
    assert dest.read_bytes() == src.read_bytes()
    assert hashlib.md5(dest.read_bytes()).hexdigest() == md5
    assert [p.name for p in dest.parent.iterdir()] == ["blob.bin"]
    for kw, words in (({"md5": "0" * 32}, "md5 is"), ({"sha256": "0" * 64}, "sha256 is"),
                      ({"size": 5}, "size is")):
        bad = tmp_path / "dl2" / "blob.bin"
        with pytest.raises(ChecksumError, match=words):
            sources.download(src.as_uri(), bad, progress=False, **kw)
        assert list(bad.parent.iterdir()) == []                   # temp file removed
    with pytest.raises(OSError):
        sources.download((tmp_path / "absent").as_uri(), tmp_path / "dl3" / "x", progress=False)
    assert list((tmp_path / "dl3").iterdir()) == []


def test_download_progress_without_tqdm(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    src = tmp_path / "blob.bin"
    src.write_bytes(b"\0" * (2 * sources.CHUNK))
    sources.download(src.as_uri(), tmp_path / "out" / "blob.bin", progress=True)
    err = capsys.readouterr().err
    assert "blob.bin:  50%" in err and "blob.bin: 100%" in err


def test_mnist_download_through_load(isolated, monkeypatch):
    mirror = isolated / "mirror"
    written = write_mnist(mirror, n_train=12, n_test=7)
    remote = tuple(_remote(mirror / name) for name in (*idx.FILES["train"], *idx.FILES["test"]))
    bad_mirror = (isolated / "empty-mirror").as_uri() + "/"
    mnist = dataclasses.replace(catalog.MNIST, mirrors=(bad_mirror, mirror.as_uri() + "/"),
                                remote=remote)
    monkeypatch.setitem(catalog.SOURCES, "mnist", mnist)
    ds = load("mnist", "test", download=True, progress=False)  # first mirror fails, second works
    np.testing.assert_array_equal(ds.images[:, 0], written["test"][0])
    cache = isolated / "xdg" / "minits" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(idx.FILES["test"])
    monkeypatch.setenv("MINITS_OFFLINE", "0")
    assert len(load("mnist", "train", isolated / "mine", progress=False)) == 12
    assert (isolated / "mine" / "mnist" / "train-images-idx3-ubyte.gz").is_file()


def test_download_failure_is_one_clear_error(isolated, monkeypatch):
    mirror = isolated / "mirror"
    write_mnist(mirror)
    remote = tuple(dataclasses.replace(_remote(mirror / n), md5="0" * 32)
                   for n in (*idx.FILES["train"], *idx.FILES["test"]))
    mnist = dataclasses.replace(catalog.MNIST, mirrors=(mirror.as_uri() + "/",), remote=remote)
    monkeypatch.setitem(catalog.SOURCES, "mnist", mnist)
    with pytest.raises(FileNotFoundError) as err:
        load("mnist", "train", download=True, progress=False)
    message = str(err.value)
    assert "Download failed" in message and "md5 is" in message
    assert "train-images-idx3-ubyte.gz" in message
    assert not any((isolated / "xdg").rglob("*.gz"))                # nothing unverified kept


def test_cifar_download_extracts_and_removes_archive(isolated, monkeypatch):
    folder, batches = write_cifar10(isolated / "src", n=5)
    mirror = isolated / "mirror"
    mirror.mkdir()
    make_tar_gz(mirror / "cifar-10-python.tar.gz", folder, "cifar-10-batches-py")
    source = dataclasses.replace(catalog.CIFAR10, mirrors=(mirror.as_uri() + "/",),
                                 remote=(_remote(mirror / "cifar-10-python.tar.gz"),))
    monkeypatch.setitem(catalog.SOURCES, "cifar10", source)
    ds = load("cifar10", "train", download=True, progress=False)
    assert ds.images.shape == (25, 3, 32, 32)
    cache = isolated / "xdg" / "minits"
    assert sorted(p.name for p in cache.iterdir()) == ["cifar-10-batches-py"]


def test_offline_env_values(monkeypatch):
    for value, allowed in (("1", False), ("yes", False), ("0", True), ("", True)):
        monkeypatch.setenv("MINITS_OFFLINE", value)
        assert sources.downloads_allowed() is allowed
    monkeypatch.setenv("MINITS_OFFLINE", "1")
    assert sources.downloads_allowed(True) and not sources.downloads_allowed(False)


# ----------------------------------------------------------------------------- digits


def test_digits_from_sklearn():
    pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn")
    train, test = load("digits", "train"), load("digits", "test")
    assert train.images.shape == (1437, 1, 8, 8) and test.images.shape == (360, 1, 8, 8)
    assert train.max_value == 16 and train.images.max() == 16 and train.images.dtype == np.uint8
    assert np.all(train.class_counts() > 100) and np.all(test.class_counts() > 30)
    x, _ = next(mt.datasets.batches(test, 360, shuffle=False))
    assert x.max() == 1.0


def test_digits_without_sklearn_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install scikit-learn.*minits\[digits\]"):
        load("digits")
