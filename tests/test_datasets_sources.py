"""Where data comes from: the search order, archives extracted safely, verified
downloads (through file:// URLs only: nothing here touches the network), and
scikit-learn's digits."""

import dataclasses
import hashlib
import os
import re
import sys
import tarfile

import numpy as np
import pytest
from datasets_files import (
    load,
    make_tar_gz,
    tar_with,
    write_cifar10,
    write_mnist,
)

import minits as mt
from minits.datasets import (
    ChecksumError,
    DatasetFormatError,
    catalog,
    idx,
    sources,
)

pytestmark = pytest.mark.usefixtures("isolated")  # no network, no real data: conftest


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


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero"])
def test_a_data_file_that_is_not_a_regular_file_is_named(isolated, kind):
    """Issue 23 (smaller): a FIFO, or a link to a device, where a data file should be is
    named as such (DatasetFormatError), not reported "not found"; nothing reads it."""
    folder = isolated / "data" / "mnist"
    write_mnist(folder, n_test=5)
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    with pytest.raises(DatasetFormatError) as err:
        load("mnist", "test", isolated / "data")
    assert str(path) in str(err.value) and "not a regular file" in str(err.value)


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


def test_the_archive_data_dir_names_wins_over_an_extracted_cache(isolated, monkeypatch):
    """Issue 23, fault 3: an extracted folder in the user cache (4 images a batch) never
    stands in for the archive --data-dir points at (6 a batch), and a folder extracted
    into the cache serves only the archive it was made from (its size and mtime): the
    archive replaced by another (8 a batch) at the same path is extracted again."""
    write_cifar10(isolated / "xdg" / "minits", n=4)            # e.g. an earlier download
    ro, real_access = isolated / "ro", os.access
    ro.mkdir()
    for n in (6, 8):
        folder, _ = write_cifar10(isolated / f"src{n}", n=n)
        make_tar_gz(ro / "cifar-10-python.tar.gz", folder, "cifar-10-batches-py")
        os.utime(ro / "cifar-10-python.tar.gz", ns=(n * 10**9, n * 10**9))
        monkeypatch.setattr(sources.os, "access", lambda path, mode: False)  # ro read-only
        ds = load("cifar10", "test", ro)
        assert len(ds) == n and ds.source == str(isolated / "xdg" / "minits"
                                                 / "cifar-10-batches-py")
        assert len(load("cifar10", "test", ro)) == n             # and again, from the cache
    monkeypatch.setattr(sources.os, "access", real_access)
    assert len(load("cifar10", "test")) == 8   # without --data-dir the cache serves as before


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


def test_download_writes_a_temporary_file_beside_the_destination(tmp_path, monkeypatch):
    """The bytes go to .<name>.<random>.tmp in the destination's folder (minits.atomic),
    renamed to the destination once verified; a download that stops half-way (here:
    Ctrl-C) removes it and leaves an existing destination as it was."""
    src = tmp_path / "blob.bin"
    src.write_bytes(os.urandom(3 * sources.CHUNK))
    dest = tmp_path / "dl" / "blob.bin"
    seen = []

    class Bar:  # the progress bar, told after every chunk: what the folder holds then
        def __init__(self, interrupt_after=None):
            self.chunks, self.interrupt_after = 0, interrupt_after

        def update(self, n):
            self.chunks += 1
            temps = [p for p in dest.parent.iterdir() if p.name != dest.name]
            seen.append((self.chunks, [p.name for p in temps]))
            if self.chunks == self.interrupt_after:
                raise KeyboardInterrupt

        def close(self):
            pass

    monkeypatch.setattr(sources, "_progress", lambda total, name, enabled: Bar())
    sources.download(src.as_uri(), dest, size=src.stat().st_size)
    assert dest.read_bytes() == src.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["blob.bin"]
    assert [chunk for chunk, _ in seen] == [1, 2, 3]
    names = {name for _, temps in seen for name in temps}
    assert len(names) == 1 and all(len(temps) == 1 for _, temps in seen)  # one, all along
    (name,) = names
    assert re.fullmatch(r"\.blob\.bin\.[A-Za-z0-9_]+\.tmp", name), name

    seen.clear()
    dest.write_bytes(b"the old file")
    monkeypatch.setattr(sources, "_progress", lambda total, name, enabled: Bar(2))
    with pytest.raises(KeyboardInterrupt):
        sources.download(src.as_uri(), dest)
    assert len(seen) == 2 and len(seen[-1][1]) == 1  # stopped with a temporary file...
    assert [p.name for p in dest.parent.iterdir()] == ["blob.bin"]  # ...removed
    assert dest.read_bytes() == b"the old file"


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
