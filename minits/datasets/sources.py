"""Where data comes from: the search order, downloads, and safe extraction.

Search order for the files of one split, root by root (the first root that holds
them all, or their archive, wins):

1. ``data_dir`` (the argument of load), and data_dir itself;
2. ``$MINITS_DATA``;
3. ``./datasets`` (relative to the working directory);
4. the user cache, ``$XDG_CACHE_HOME/minits`` or ``~/.cache/minits``;
5. system folders (Debian: ``/usr/share/datasets`` for fashion-mnist).

Below each root the files sit in the data set's folder (``mnist/``,
``fashion-mnist/``, ``cifar-10-batches-py/`` or ``cifar10/cifar-10-batches-py/``, ...).
Failing that, a CIFAR archive (``cifar-10-python.tar.gz``) in that root is
extracted beside itself (or into the user cache when that folder is read-only),
before any later root is searched: what data_dir names is what is loaded. A folder
minits extracted records its archive (path, size, mtime: ``.minits-archive.json``)
and serves only as long as that archive, where it still exists, is unchanged.
Nothing in any root: the files are the files are downloaded from the mirrors, unless
``download=False`` or ``MINITS_OFFLINE=1``: into data_dir when given, else the
user cache. A download goes to a temporary file in the target folder, is
checked against its published size and checksums, and only then renamed into
place: an interrupted or corrupted download never leaves a file that looks
complete, and a failed download leaves no folder it created behind. Nothing
found and nothing downloaded: one FileNotFoundError that names the files
expected and every folder searched; a folder standing where one of the files
should be is reported as such (DatasetFormatError naming it).
"""

import hashlib
import http.client
import json
import os
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path

from .. import atomic
from .archive import extract
from .errors import ChecksumError, DatasetFormatError

USER_AGENT = "minits (https://pypi.org/project/minits)"
CHUNK = 1 << 20


# ----------------------------------------------------------------------------- search


def user_cache_dir():
    """The user cache folder: $XDG_CACHE_HOME/minits, or ~/.cache/minits."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "minits"


def search_roots(source, data_dir=None):
    """The roots searched for ``source``, in order (see the module docstring)."""
    roots = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    if os.environ.get("MINITS_DATA"):
        roots.append(Path(os.environ["MINITS_DATA"]).expanduser())
    roots += [Path.cwd() / "datasets", user_cache_dir()]
    roots += [Path(p) for p in source.system_roots]
    return _unique(roots)


def candidate_folders(source, data_dir=None):
    """Every folder that may hold the files, in search order."""
    folders = []
    for root in search_roots(source, data_dir):
        folders += [root / f for f in source.folders]
        if data_dir is not None and root == Path(data_dir).expanduser():
            folders.append(root)  # data_dir may be the data set's own folder
    return _unique(folders)


def resolve(folder, name):
    """Path of file ``name`` in ``folder``; an IDX ``x.gz`` may also be stored unzipped as ``x``.

    Output: Path, or None when neither exists.
    """
    folder = Path(folder)
    for candidate in (name, name[:-3] if name.endswith(".gz") else None):
        if candidate and (folder / candidate).is_file():
            return folder / candidate
    return None


def find_folder(source, split, data_dir=None):
    """The first candidate folder that holds every file of ``split``, or None."""
    for root in search_roots(source, data_dir):
        folder = _complete_folder(source, split, root, data_dir)
        if folder is not None:
            return folder
    return None


def _root_folders(source, root, data_dir):
    """The candidate folders below one search root (candidate_folders, root by root)."""
    folders = [root / f for f in source.folders]
    if data_dir is not None and root == Path(data_dir).expanduser():
        folders.append(root)  # data_dir may be the data set's own folder
    return folders


def _complete_folder(source, split, root, data_dir):
    """The first folder below `root` that holds every file of ``split`` and is not a stale
    extraction (see archive_stamp), or None."""
    for folder in _root_folders(source, root, data_dir):
        if all(resolve(folder, name) for name in source.files[split]) \
                and not _stale(folder):
            return folder
    return None


# ----------------------------------------------------------------------------- extractions

STAMP = ".minits-archive.json"
"""In a folder minits extracted from an archive: the archive's path, size and mtime."""


def archive_stamp(archive):
    """What identifies an archive file: its absolute path, size and mtime (ns)."""
    info = Path(archive).stat()
    return {"archive": str(Path(archive).resolve()), "size": info.st_size,
            "mtime_ns": info.st_mtime_ns}


def _stale(folder):
    """True when `folder` was extracted from an archive that is still there but has changed
    since (another size or mtime): its files are not that archive's any more."""
    try:
        with open(Path(folder) / STAMP, encoding="utf-8") as f:
            stamp = json.load(f)
        return archive_stamp(stamp["archive"]) != stamp
    except (OSError, ValueError, KeyError, TypeError):  # no stamp, or its archive is gone
        return False


def _extracted(source, split, archive):
    """The folder holding ``archive``'s files: beside it (or in the user cache when its
    folder is read-only), extracted now unless a folder made from this very archive (its
    stamp: path, size, mtime) is already there. A folder from another archive, or a copy
    put there by other means, is replaced: a cache serves only the archive it was made from.
    """
    name = Path(source.folders[0]).name
    dest = _writable_or_cache(archive.parent)
    final, stamp = dest / name, archive_stamp(archive)
    if _read_stamp(final) == stamp and all(resolve(final, f) for f in source.files[split]):
        return final
    if final.is_dir() and (final.parent != archive.parent or _read_stamp(final) is not None):
        # a cache of another archive, or our extraction of this path's former archive
        old = Path(tempfile.mkdtemp(dir=dest, prefix=".minits-old-"))
        os.replace(final, old / name)
        shutil.rmtree(old, ignore_errors=True)
    folder = extract(archive, dest, name)
    atomic.write_json(folder / STAMP, stamp)
    return _checked(source, split, folder)


def _read_stamp(folder):
    try:
        with open(Path(folder) / STAMP, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def locate(source, split, data_dir=None, download=None, progress=True):
    """Find (or extract, or download) the folder holding the files of one split.

    Inputs:
        source: a catalog.Source.   split: "train" or "test".
        data_dir: searched first; also where downloads go (default: user cache).
        download: None = allowed unless $MINITS_OFFLINE is set; True/False force it.
        progress: show a progress bar while downloading.
    Output: Path of the folder.
    Raises FileNotFoundError naming the files and folders when all of that fails,
    DatasetFormatError naming a folder that stands where a file should be, and
    ValueError when data_dir is a file.
    """
    if data_dir is not None and Path(data_dir).expanduser().exists() \
            and not Path(data_dir).expanduser().is_dir():
        raise ValueError(f"data_dir {data_dir} is a file, not a folder: point it at the folder "
                         "that holds the data sets")
    for root in search_roots(source, data_dir):  # root by root: its files, then its archive
        folder = _complete_folder(source, split, root, data_dir)
        if folder is not None:
            return folder
        for archive in _root_archives(source, root):
            if archive.is_file():
                return _extracted(source, split, archive)
    for misplaced in folders_for_files(source, split, data_dir):
        what = "a folder" if misplaced.is_dir() else "not a regular file (a FIFO, a device)"
        raise DatasetFormatError(misplaced, f"is {what}, where {source.title} needs the file "
                                            f"{misplaced.name}; put the file itself there "
                                            "(docs/data.md)")
    failures = []
    if downloads_allowed(download):
        target = Path(data_dir).expanduser() if data_dir is not None else user_cache_dir()
        made = _missing_folders(target / source.folders[0])
        try:
            return _checked(source, split, fetch(source, split, target, progress))
        except BaseException as err:
            _remove_empty(made)  # a failed download leaves no empty folders behind
            if not isinstance(err, _DownloadFailed):
                raise
            failures = err.failures
    raise FileNotFoundError(_not_found_message(source, split, data_dir, download, failures))


def folders_for_files(source, split, data_dir=None):
    """Folders, FIFOs, devices (or links to them) standing where a file of ``split``
    should be (x.gz or x), in search order: anything there that is not a regular file."""
    found = []
    for folder in candidate_folders(source, data_dir):
        for name in source.files[split]:
            names = (name, name[:-3]) if name.endswith(".gz") else (name,)
            if resolve(folder, name) is None:
                found += [folder / n for n in names if (folder / n).exists()]
    return found


def _missing_folders(path):
    """`path` and those of its parents that do not exist yet, deepest first."""
    missing = []
    path = Path(path)
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _remove_empty(folders):
    """Remove the folders (deepest first) as long as they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (or already gone): leave it and its parents
            if folder.exists():
                return


def downloads_allowed(download=None):
    """download=None: yes unless $MINITS_OFFLINE is set to something other than 0/false/no."""
    if download is not None:
        return bool(download)
    flag = os.environ.get("MINITS_OFFLINE", "").strip().lower()
    return flag in ("", "0", "false", "no")


def _checked(source, split, folder):
    missing = [name for name in source.files[split] if not resolve(folder, name)]
    if missing:
        raise FileNotFoundError(f"{folder}: lacks {', '.join(missing)} after extraction or "
                                f"download; remove the folder and try again")
    return folder


def _archive_candidates(source, data_dir):
    places = []
    for root in search_roots(source, data_dir):
        places += _root_archives(source, root)
    return _unique(places)


def _root_archives(source, root):
    """Where the archive of ``source`` may sit below one search root."""
    if not source.archive:
        return []
    return _unique([(root / folder).parent / source.archive for folder in source.folders])


def _writable_or_cache(folder):
    return folder if os.access(folder, os.W_OK) else user_cache_dir()


def _unique(paths):
    seen, out = set(), []
    for p in paths:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def _not_found_message(source, split, data_dir, download, failures):
    lines = [f"{source.title} ({split} split) not found.",
             f"Expected files: {', '.join(source.files[split])}"
             + (" (or the same without .gz)" if source.files[split][0].endswith(".gz") else ""),
             "in one of these folders (searched in this order):"]
    lines += [f"  {folder}" for folder in candidate_folders(source, data_dir)]
    if source.archive:
        lines.append(f"or the archive {source.archive} in one of:")
        lines += [f"  {p.parent}" for p in _archive_candidates(source, data_dir)]
    if failures:
        lines.append("Download failed:")
        lines += [f"  {f}" for f in failures]
    elif not downloads_allowed(download):
        why = "download=False" if download is not None else "MINITS_OFFLINE is set"
        lines.append(f"Downloading is off ({why}).")
    lines.append("Place the files by hand as datasets/README.md (in the minits repository) "
                 "describes, or point MINITS_DATA (or data_dir=) at the folder that holds them.")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- download


class _DownloadFailed(Exception):
    def __init__(self, failures):
        super().__init__("; ".join(failures))
        self.failures = failures


def fetch(source, split, target, progress=True):
    """Download what ``split`` needs into ``target`` (trying each mirror in turn).

    IDX data sets: the split's files into target/<folders[0]>/.
    CIFAR: the archive into target/, extracted there, then the archive removed.
    Output: Path of the folder with the files.
    """
    target = Path(target)
    if source.archive:
        archive = _fetch_one(source, source.remote_file(source.archive), target, progress)
        folder = extract(archive, target, Path(source.folders[0]).name)
        archive.unlink()
        return folder
    folder = target / source.folders[0]
    for name in source.files[split]:
        if not resolve(folder, name):
            _fetch_one(source, source.remote_file(name), folder, progress)
    return folder


def _fetch_one(source, remote, folder, progress):
    failures = []
    for mirror in source.mirrors:
        url = mirror + remote.name
        try:
            return download(url, Path(folder) / remote.name, md5=remote.md5,
                            sha256=remote.sha256, size=remote.size, progress=progress)
        except (OSError, ValueError, http.client.HTTPException) as err:
            # URLError, HTTPError, timeouts, dropped connections, ChecksumError
            failures.append(f"{url}: {err}")
    raise _DownloadFailed(failures)


def download(url, dest, md5=None, sha256=None, size=None, progress=True, timeout=60.0):
    """Download ``url`` to ``dest``, verified, atomically.

    The bytes go to a temporary file beside ``dest`` (minits.atomic); size, md5 and
    sha256 (those given) are checked; only then is the file renamed to ``dest``. On any
    failure the temporary file is removed and ``dest`` is left as it was.

    Inputs: url (http(s):// or file://), dest: path; expected digests as hex
    strings; size in bytes; progress: bar on stderr (tqdm if installed).
    Output: Path dest. Raises ChecksumError, or urllib's errors (OSError).
    """
    dest = Path(dest)
    md5_hash, sha256_hash = _hashers()
    with atomic.atomic_write(dest, "wb") as out, _urlopen(url, timeout) as response:
        total = response.headers.get("Content-Length")
        bar = _progress(int(total) if total else size, dest.name, progress)
        written = 0
        try:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                md5_hash.update(chunk)
                sha256_hash.update(chunk)
                written += len(chunk)
                bar.update(len(chunk))
        finally:
            bar.close()
        _compare(url, "size", size, written)
        _compare(url, "md5", md5, md5_hash.hexdigest())
        _compare(url, "sha256", sha256, sha256_hash.hexdigest())
    return dest


def file_digests(path):
    """(md5, sha256) hex digests of a file, read in 1 MiB chunks."""
    md5_hash, sha256_hash = _hashers()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            md5_hash.update(chunk)
            sha256_hash.update(chunk)
    return md5_hash.hexdigest(), sha256_hash.hexdigest()


def verify(path, md5=None, sha256=None):
    """Raise ChecksumError unless the file has the given digests (those not None)."""
    got_md5, got_sha256 = file_digests(path)
    _compare(path, "md5", md5, got_md5)
    _compare(path, "sha256", sha256, got_sha256)


def _hashers():
    return hashlib.md5(usedforsecurity=False), hashlib.sha256()


def _compare(where, what, expected, got):
    if expected is not None and str(expected).lower() != str(got).lower():
        raise ChecksumError(where, f"{what} is {got}, expected {expected}")


def _urlopen(url, timeout):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    return urllib.request.urlopen(request, timeout=timeout)


def _progress(total, name, enabled):
    if not enabled:
        return _NoProgress()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _PlainProgress(total, name)
    return tqdm(total=total, desc=name, unit="B", unit_scale=True, unit_divisor=1024,
                file=sys.stderr)


class _NoProgress:
    def update(self, n):
        pass

    def close(self):
        pass


class _PlainProgress:
    """Fallback without tqdm: one line on stderr per tenth of the file."""

    def __init__(self, total, name):
        self.total, self.name, self.done, self.shown = total, name, 0, -1

    def update(self, n):
        self.done += n
        step = 10 * self.done // self.total if self.total else self.done // (10 * CHUNK)
        if step > self.shown:
            self.shown = step
            pct = f"{100 * self.done // self.total:3d}% " if self.total else ""
            print(f"  {self.name}: {pct}{self.done / 1e6:.1f} MB", file=sys.stderr, flush=True)

    def close(self):
        pass
