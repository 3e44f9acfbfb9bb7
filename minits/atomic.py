"""Atomic writes: a reader (or a rerun after Ctrl-C / kill) sees either the old
file or the complete new one, never a half-written file.

Every writer of minits (downloads, checkpoints, results, summaries, figures) goes
through `atomic_write`: write to a temporary file in the same
folder, flush and fsync it, then `os.replace` it over the target (an atomic
rename on POSIX and Windows when both paths are on one file system).
"""

import contextlib
import io
import json
import os
import tempfile
import zipfile

import numpy as np


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Context manager yielding a file object; on a clean exit the file lands at `path`.

    path: target file; its folder is created when missing.
    mode: "wb" (bytes) or "w" (text, UTF-8).
    On an exception the temporary file is removed and `path` is left untouched.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                                   suffix=".tmp")
    except OSError as exc:  # a read-only or full file system: name the file meant
        exc.filename, exc.filename2 = path, None
        raise
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = path  # "No space left on device" says where
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path, text):
    """Write the string `text` to `path` atomically."""
    with atomic_write(path, "w") as f:
        f.write(text)


def write_json(path, obj):
    """Write `obj` (JSON-serialisable) to `path` atomically, indented, keys in order."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def savez(path, compress=True, **arrays):
    """np.savez(_compressed) to `path` atomically. arrays: name -> array-like.

    The archive is built in memory first, so the temporary file is written in one
    go (np.savez on a path would also append ".npz" to names without it).
    compress: deflate every array as np.savez_compressed does, at zlib level 1
    instead of its default 6 (about the same size for these float arrays, written
    in half the time); np.load reads both alike.
    """
    buf = io.BytesIO()
    if compress:
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for name, value in arrays.items():
                with zf.open(name + ".npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)
    else:
        np.savez(buf, **arrays)
    with atomic_write(path, "wb") as f:
        f.write(buf.getbuffer())
