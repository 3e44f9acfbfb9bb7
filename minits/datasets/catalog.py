"""What each downloadable data set consists of: files, folders, mirrors, checksums.

The checksums are the published ones: for MNIST the md5 sums the usual
mirrors list (and the sha256 of the same bytes, from
shared/data/README.md); for Fashion-MNIST the md5 sums of the
zalandoresearch/fashion-mnist repository; for CIFAR the md5 sums on
https://www.cs.toronto.edu/~kriz/cifar.html. They are checked on download.
"""

from dataclasses import dataclass

from . import cifar, idx


@dataclass(frozen=True)
class RemoteFile:
    """One file as its publisher distributes it: name, size in bytes, digests."""

    name: str
    size: int
    md5: str
    sha256: str | None = None


@dataclass(frozen=True)
class Source:
    """Where the files of one data set live and where they come from.

    name: the data set's name in load().   title: for messages.
    folders: paths below a search root that may hold the files, tried in order.
    files: split -> the file names one split needs (all in one folder).
    mirrors: base URLs (ending in "/"), tried in order.
    remote: the files to download: the data files themselves, or one archive.
    archive: name of the archive that holds the folder ``folders[0]`` (CIFAR), or None.
    system_roots: extra search roots after the user cache (e.g. Debian's).
    """

    name: str
    title: str
    folders: tuple
    files: dict
    mirrors: tuple
    remote: tuple
    archive: str | None = None
    system_roots: tuple = ()

    def remote_file(self, name):
        for item in self.remote:
            if item.name == name:
                return item
        raise KeyError(name)


MNIST = Source(
    name="mnist",
    title="MNIST",
    folders=("mnist", "MNIST/raw"),
    files=idx.FILES,
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    remote=(
        RemoteFile("train-images-idx3-ubyte.gz", 9912422, "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                   "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        RemoteFile("train-labels-idx1-ubyte.gz", 28881, "d53e105ee54ea40749a09fcbcd1e9432",
                   "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        RemoteFile("t10k-images-idx3-ubyte.gz", 1648877, "9fb629c4189551a2d022fa330f9573f3",
                   "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        RemoteFile("t10k-labels-idx1-ubyte.gz", 4542, "ec29112dd5afa0611ce80d1b7f02629c",
                   "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ),
)

FASHION_MNIST = Source(
    name="fashion-mnist",
    title="Fashion-MNIST",
    folders=("fashion-mnist", "FashionMNIST/raw"),
    files=idx.FILES,
    mirrors=(
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
    remote=(
        RemoteFile("train-images-idx3-ubyte.gz", 26421880, "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        RemoteFile("train-labels-idx1-ubyte.gz", 29515, "25c81989df183df01b3e8a0aad5dffbe"),
        RemoteFile("t10k-images-idx3-ubyte.gz", 4422102, "bef4ecab320f06d8554ea6380940ec79"),
        RemoteFile("t10k-labels-idx1-ubyte.gz", 5148, "bb300cfdad3c16e7a12a480ee83cd310"),
    ),
    # Debian's dataset-fashion-mnist package: /usr/share/datasets/fashion-mnist/*.gz
    system_roots=("/usr/share/datasets",),
)

CIFAR10 = Source(
    name="cifar10",
    title="CIFAR-10",
    folders=("cifar-10-batches-py", "cifar10/cifar-10-batches-py"),
    files={split: (*names, cifar.CIFAR10_META) for split, names in cifar.CIFAR10_FILES.items()},
    mirrors=("https://www.cs.toronto.edu/~kriz/",),
    remote=(RemoteFile("cifar-10-python.tar.gz", 170498071, "c58f30108f718f92721af3b95e74349a"),),
    archive="cifar-10-python.tar.gz",
)

CIFAR100 = Source(
    name="cifar100",
    title="CIFAR-100",
    folders=("cifar-100-python", "cifar100/cifar-100-python"),
    files={split: (*names, cifar.CIFAR100_META) for split, names in cifar.CIFAR100_FILES.items()},
    mirrors=("https://www.cs.toronto.edu/~kriz/",),
    remote=(RemoteFile("cifar-100-python.tar.gz", 169001437, "eb9058c3a382ffc7106e4002c42a8d85"),),
    archive="cifar-100-python.tar.gz",
)

SOURCES = {s.name: s for s in (MNIST, FASHION_MNIST, CIFAR10, CIFAR100)}
