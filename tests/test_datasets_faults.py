"""Data faults a new user hit (issue 12): images of the wrong size, a folder where a
file should be, a --data-dir that points nowhere. Offline: downloads go through
file:// URLs only."""

import dataclasses

import numpy as np
import pytest
from datasets_files import write_cifar10, write_idx_pair, write_mnist

import minits as mt
from minits.datasets import DatasetFormatError, catalog, idx

pytestmark = pytest.mark.usefixtures("isolated")  # no network, no real data: conftest


# ----------------------------------------------------------------------------- image size

@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("shape", [(14, 56), (28, 27), (32, 32)])
def test_idx_images_of_another_size_are_refused(tmp_path, name, shape):
    """A header that says 14x56 (as many pixels as 28x28) must not load and train."""
    folder = tmp_path / "data" / name
    rng = np.random.default_rng(0)
    write_idx_pair(folder, "train", rng.integers(0, 256, size=(6, *shape), dtype=np.uint8),
                   np.arange(6, dtype=np.uint8))
    with pytest.raises(DatasetFormatError) as err:
        mt.datasets.load(name, "train", tmp_path / "data")
    message = str(err.value)
    assert err.value.path == str(folder / idx.FILES["train"][0])
    assert message.startswith(err.value.path)
    assert f"(6, {shape[0]}, {shape[1]})" in message and "expected shape (6, 28, 28)" in message


def test_idx_images_of_the_right_size_still_load(tmp_path):
    written = write_mnist(tmp_path / "data" / "mnist", n_train=5, n_test=3)
    ds = mt.datasets.load("mnist", "test", tmp_path / "data")
    assert ds.images.shape == (3, 1, 28, 28)
    np.testing.assert_array_equal(ds.images[:, 0], written["test"][0])
    # the reader itself takes any item shape unless asked for one
    path = tmp_path / "data" / "mnist" / idx.FILES["test"][0]
    assert idx.read_idx(path, 3).shape == (3, 28, 28)
    with pytest.raises(DatasetFormatError, match=r"expected shape \(3, 14, 56\)"):
        idx.read_idx(path, 3, item_shape=(14, 56))


# ----------------------------------------------------------------------------- folder for a file

@pytest.mark.parametrize("stored", ["train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"])
def test_a_folder_where_a_file_should_be_is_reported_as_such(tmp_path, stored):
    """e.g. a .gz 'unpacked' into a folder of the same name: not 'not found'."""
    folder = tmp_path / "data" / "mnist"
    write_mnist(folder)
    (folder / "train-images-idx3-ubyte.gz").unlink()
    (folder / stored).mkdir()
    (folder / stored / "train-images-idx3-ubyte").write_bytes(b"")
    with pytest.raises(DatasetFormatError) as err:
        mt.datasets.load("mnist", "train", tmp_path / "data")
    assert err.value.path == str(folder / stored)
    assert "is a folder" in str(err.value) and "not found" not in str(err.value)
    assert len(mt.datasets.load("mnist", "test", tmp_path / "data")) == 20  # test split intact


def test_a_folder_for_a_cifar_batch_is_reported_as_such(tmp_path):
    folder, _ = write_cifar10(tmp_path / "data", n=4)
    (folder / "data_batch_3").unlink()
    (folder / "data_batch_3").mkdir()
    with pytest.raises(DatasetFormatError, match="data_batch_3: is a folder"):
        mt.datasets.load("cifar10", "train", tmp_path / "data")


def test_a_data_dir_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a folder")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        mt.datasets.load("mnist", "train", path)


# ----------------------------------------------------------------------------- no empty folders

@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_a_failed_download_leaves_no_empty_folders_behind(isolated, monkeypatch, name):
    """--data-dir pointing nowhere, downloads allowed, every mirror failing: one clear
    FileNotFoundError, and neither the data dir nor anything below it is created."""
    source = dataclasses.replace(catalog.SOURCES[name],
                                 mirrors=((isolated / "no-mirror").as_uri() + "/",))
    monkeypatch.setitem(catalog.SOURCES, name, source)
    target = isolated / "nowhere" / "deeper" / "data"
    with pytest.raises(FileNotFoundError, match="Download failed"):
        mt.datasets.load(name, "train", target, download=True, progress=False)
    assert not (isolated / "nowhere").exists()
    with pytest.raises(FileNotFoundError):  # the user cache likewise
        mt.datasets.load(name, "train", download=True, progress=False)
    assert not (isolated / "xdg").exists()


def test_a_failed_download_keeps_folders_that_existed(isolated, monkeypatch):
    mnist = dataclasses.replace(catalog.MNIST, mirrors=((isolated / "none").as_uri() + "/",))
    monkeypatch.setitem(catalog.SOURCES, "mnist", mnist)
    (isolated / "mine" / "mnist").mkdir(parents=True)
    with pytest.raises(FileNotFoundError):
        mt.datasets.load("mnist", "train", isolated / "mine", download=True, progress=False)
    assert (isolated / "mine" / "mnist").is_dir()
