"""Safe extraction of a data set's tar archive (CIFAR's .tar.gz).

Every member is checked before anything is written, and the extraction goes to
a temporary folder renamed into place at the end: a damaged or hostile archive
leaves nothing behind.
"""

import gzip
import lzma
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from .errors import DatasetFormatError


def extract(archive, dest, folder):
    """Extract the tar archive's ``folder/`` into ``dest/folder``, safely.

    Every member is checked before anything is written: only regular files and
    directories, with relative paths that stay inside the target (no "..",
    no absolute paths, no links, no devices); Python's "data" filter is used
    on top where available. Extraction goes to a temporary folder inside
    ``dest`` that is renamed into place at the end.

    Inputs: archive: path of a .tar/.tar.gz/.tar.xz; dest: folder; folder: name
    of the top folder the archive must hold (e.g. "cifar-10-batches-py").
    Output: Path dest/folder.
    Raises DatasetFormatError naming the archive for an unsafe member, a
    damaged archive, or one without ``folder/``.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest, prefix=".minits-extract-"))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = tar.getmembers()
                for member in members:
                    _check_member(member, archive)
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(tmp, members=members, filter="data")
                else:  # Python < 3.11.4: the checks above are the filter
                    tar.extractall(tmp, members=members)
        except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError,
                gzip.BadGzipFile) as err:
            raise DatasetFormatError(archive, f"damaged archive ({err})") from err
        if not (tmp / folder).is_dir():
            raise DatasetFormatError(archive, f"holds no folder {folder}/")
        final = dest / folder
        try:
            os.replace(tmp / folder, final)
        except OSError:
            if not final.is_dir():  # else another process has just put it there
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _check_member(member, archive):
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or member.name.startswith(("/", "\\")) \
            or ":" in (path.parts[0] if path.parts else ""):
        raise DatasetFormatError(archive, f"refuses member {member.name!r}: path leaves the "
                                          "target folder")
    if not (member.isfile() or member.isdir()):
        raise DatasetFormatError(archive, f"refuses member {member.name!r}: only regular files "
                                          "and folders are allowed (no links or devices)")
