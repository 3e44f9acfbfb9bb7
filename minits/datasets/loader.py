"""load(name, split): one entry point for every data set."""

from . import cifar, idx, sources
from .catalog import SOURCES
from .digits import load_digits

NAMES = ("mnist", "fashion-mnist", "cifar10", "cifar100", "cifar100-coarse", "digits")
SPLITS = ("train", "test")
_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
            "cifar-10": "cifar10", "cifar-100": "cifar100", "cifar_100": "cifar100",
            "cifar_10": "cifar10", "cifar100_coarse": "cifar100-coarse"}


def load(name, split="train", data_dir=None, *, download=None, progress=True):
    """Load one split of a data set into memory, images as uint8.

    Inputs:
        name: "mnist", "fashion-mnist", "cifar10", "cifar100", "cifar100-coarse"
            (CIFAR-100 with the 20 super-classes as labels) or "digits"
            (scikit-learn's 8x8 digits, no files needed).
        split: "train" or "test".
        data_dir: folder searched first, and where downloads go; see
            minits.datasets.sources for the full search order.
        download: None = download when not found unless $MINITS_OFFLINE=1;
            False = never; True = even when MINITS_OFFLINE is set.
        progress: progress bar while downloading.
    Output: Dataset; images uint8 (n, C, H, W), labels int64 (n,).
        mnist, fashion-mnist: (60000 | 10000, 1, 28, 28), 10 classes.
        cifar10: (50000 | 10000, 3, 32, 32), 10 classes.
        cifar100: (50000 | 10000, 3, 32, 32), 100 classes, and coarse_labels,
            coarse_names, fine_to_coarse for the 20 super-classes.
        digits: (1437 | 360, 1, 8, 8), max_value 16.
    Raises ValueError for an unknown name or split; FileNotFoundError (naming
    the files expected and the folders searched) when the data is nowhere;
    DatasetFormatError / UnsafePickleError (both ValueErrors, naming the file)
    for a corrupt or unsafe file.
    """
    key = _ALIASES.get(str(name).lower(), str(name).lower())
    if key not in NAMES:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(NAMES)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    if key == "digits":
        return load_digits(split)
    if key == "cifar100-coarse":
        return load("cifar100", split, data_dir, download=download, progress=progress).as_coarse()
    source = SOURCES[key]
    folder = sources.locate(source, split, data_dir, download=download, progress=progress)
    if key == "cifar10":
        return cifar.load_cifar10(folder, split)
    if key == "cifar100":
        return cifar.load_cifar100(folder, split)
    images, labels = (sources.resolve(folder, f) for f in idx.FILES[split])
    class_names = idx.MNIST_CLASSES if key == "mnist" else idx.FASHION_CLASSES
    return idx.load_idx_pair(images, labels, key, split, class_names)
