"""The run folder of an experiment, and what is already done in it.

    OUT/
      config.json                       the experiment and every run's configuration
      runs/<key>/seed-<s>.npz           results of one (configuration, seed), when finished
      runs/<key>/seed-<s>.ckpt.npz      checkpoint of an unfinished run
      summary.txt, summary.csv          the table (written by experiments.summary)
      figures/*.png                     the figures (written by minits.plots)
      .lock                             the process id of the sweep running here

A results file exists only once its run has finished (atomic write), so a
rerun skips it; a checkpoint exists only for an unfinished run, so a rerun
resumes it. Nothing finished is lost or computed twice.
"""

import contextlib
import json
import os

from .. import atomic
from ..training import checkpoint, results

CONFIG = "config.json"


def result_path(out, config):
    """Results file of `config` (a RunConfig with its seed)."""
    return os.path.join(out, "runs", config.key, f"seed-{config.seed:03d}.npz")


def checkpoint_path(out, config):
    return os.path.join(out, "runs", config.key, f"seed-{config.seed:03d}.ckpt.npz")


def check_compatible(out, run_configs):
    """Refuse to mix experiments: every results or checkpoint file already in `out` for
    one of `run_configs` must have been produced by exactly that configuration.

    Raises ValueError naming the file and the differing fields.
    """
    for config in run_configs:
        for path in (result_path(out, config), checkpoint_path(out, config)):
            if not os.path.exists(path):
                continue
            try:
                saved = results.read_config(path)
            except Exception as exc:  # an unreadable file: say which one
                raise ValueError(f"{path} cannot be read ({exc}); remove it or use "
                                 "another --out") from exc
            if saved != config:
                a, b = saved.to_dict(), config.to_dict()
                diff = ", ".join(f"{k}: {a[k]!r} on disk vs {b[k]!r} now"
                                 for k in a if a[k] != b[k])
                raise ValueError(f"{out} already holds a different experiment ({path}: {diff});"
                                 " use another --out or remove that folder")


def status(out, config):
    """'done', 'partial' (with the saved iteration) or 'new' for one run."""
    if os.path.exists(result_path(out, config)):
        return "done", config.iterations
    ckpt = checkpoint_path(out, config)
    if os.path.exists(ckpt):
        return "partial", checkpoint.saved_iteration(ckpt)
    return "new", 0


def check_folder(out):
    """ValueError saying why `out` cannot be (or become) a run folder: it is a file, it lies
    under a file, or one of its names is longer than the file system allows. Checked
    before any work; nothing is created."""
    path = os.path.abspath(out)
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(f"{out} is a file, not a folder" if existing == path else
                         f"{out} lies under {existing}, which is a file, not a folder")
    try:
        longest = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows): the usual limit
        longest = 255
    for name in path[len(existing):].split(os.sep):
        if len(os.fsencode(name)) > longest:
            raise ValueError(f"{out} has a name of {len(os.fsencode(name))} bytes; the file "
                             f"system allows {longest}")


def _not_a_folder(path, what):
    """ValueError when a folder stands where the run folder's file `path` should be."""
    if os.path.isdir(path):
        raise ValueError(f"{path} is a folder, where minits keeps {what}: move it away")


def write_config(out, experiment, run_configs):
    """config.json: the experiment and each configuration (seeds listed separately)."""
    _not_a_folder(os.path.join(out, CONFIG), "the experiment's config.json")
    atomic.write_json(os.path.join(out, CONFIG), {
        "experiment": experiment.to_dict(),
        "configurations": [c.to_dict() for c in run_configs if c.seed == experiment.seeds[0]],
    })


def read_config(out):
    """The saved config.json of run folder `out`: {"experiment": ..., "configurations": [...]}.

    Raises FileNotFoundError when there is none, ValueError naming the file when it
    cannot be read.
    """
    path = os.path.join(out, CONFIG)
    _not_a_folder(path, "the experiment's config.json")
    with open(path, encoding="utf-8") as f:
        try:
            saved = json.load(f)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path} cannot be read ({exc}); it is not a minits "
                             "config.json") from exc
    if not (isinstance(saved, dict) and {"experiment", "configurations"} <= set(saved)):
        raise ValueError(f"{path} is not a minits config.json (no experiment and "
                         "configurations)")
    return saved


@contextlib.contextmanager
def lock(out):
    """Hold OUT/.lock while a sweep runs; refuse when a live process holds it.

    Two sweeps writing the same folder would compute runs twice. A lock left by a
    killed process (its pid no longer running) is taken over.
    """
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, ".lock")
    _not_a_folder(path, "the lock file of a running sweep")
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            pid = 0
        if pid and pid != os.getpid() and _alive(pid):
            raise RuntimeError(f"{out} is in use by another minits process (pid {pid}); "
                               f"wait for it or remove {path} if that process is gone")
    atomic.write_text(path, f"{os.getpid()}\n")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
