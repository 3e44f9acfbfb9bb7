"""Small files in each real data format, written by the tests themselves, and the
isolation every data-set test runs in (no network, no real data, no user cache).

Formats: IDX (gzipped and plain), CIFAR-10 / CIFAR-100 pickles (Python 2 style, as
the original files, and Python 3 protocols), tar.gz archives. Used by
test_datasets*.py and test_faults.py; `isolate` is the autouse fixture `isolated`
of the modules that use it.
"""

import dataclasses
import gzip
import io
import pickle
import struct
import tarfile

import numpy as np

import minits as mt
from minits.datasets import (
    catalog,
    cifar,
    idx,
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


def isolate(tmp_path, monkeypatch):
    """No network, no real data, no user cache: every search root is under tmp_path.
    conftest's fixture `isolated`, which every data-set test module uses; returns tmp_path."""
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
