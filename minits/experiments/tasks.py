"""One run of a sweep as a task, and what every executor shares around it.

A task (Task) is one (configuration, seed) with its two files; run_task trains it
(training.train), writes its results file atomically and removes its checkpoint.
The executors -- this process or a pool of worker processes (executor.py), a Dask
cluster (dask_executor.py) -- run tasks with run_task inside one_blas_thread, stop
them with the same StopRequest on the first Ctrl-C or SIGTERM, and report each
Outcome alike.

Every run trains with one BLAS thread, in a worker and in this process alike
(threadpoolctl): a multi-threaded matrix product sums in another order, so a run's
numbers would depend on where it ran. With one thread they depend only on its
configuration, and the result files of --jobs 1, --jobs N, --threads N and a
resumed sweep are identical, array for array. (One thread is also the faster way
to run several runs on a busy machine.) A run's own threads (--threads: a
convolutional network's batch in chunks, minits.fast.split) never change its numbers.
"""

import contextlib
import dataclasses
import errno
import os
import signal
import sys
import threading
import time
import traceback

from ..training import loop, results
from .data import held_test_inputs, load_split

BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
            "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclasses.dataclass
class Task:
    """One run: its configuration (with seed) and its two files."""

    config: object
    result_path: str
    checkpoint_path: str
    data_dir: str | None = None
    start: int = 0  # iterations already done (from a checkpoint)


WRITE_FAULTS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
"""Errors of a write that every other run would meet too (a full disk, a quota, a
read-only file system): the first one stops the sweep instead of training the others."""


@dataclasses.dataclass
class Outcome:
    """status: 'done' | 'interrupted' | 'failed'; message: the error or the alarm;
    fatal: the failure was a write error of WRITE_FAULTS, which stops the sweep."""

    key: str
    seed: int
    status: str
    message: str = ""
    seconds: float = 0.0
    fatal: bool = False


def write_fault(exc):
    """True for an OSError that no further run could escape (WRITE_FAULTS)."""
    return isinstance(exc, OSError) and exc.errno in WRITE_FAULTS


def run_task(task, stop=None, progress=None, log=None, threads=1):
    """Train `task` to the end (or until `stop`), save its results, drop its checkpoint.

    threads: the run's own threads (training.train: its batch in chunks on that many
    threads; the numbers do not depend on them)."""
    started = time.perf_counter()
    config = task.config
    if stop is not None and stop.is_set():  # queued before the stop: do not even start
        return Outcome(config.key, config.seed, "interrupted")
    try:
        train_set = load_split(config.dataset, "train", task.data_dir)
        test_set = load_split(config.dataset, "test", task.data_dir)
        result = loop.train(config, train_set, test_set, checkpoint_path=task.checkpoint_path,
                            stop=stop, progress=progress,
                            test_inputs=held_test_inputs(config, task.data_dir),
                            log=log or (lambda m: print(m, file=sys.stderr, flush=True)),
                            threads=threads)
        if not result.completed:
            return Outcome(config.key, config.seed, "interrupted",
                           seconds=time.perf_counter() - started)
        results.save(task.result_path, result)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(task.checkpoint_path)
        return Outcome(config.key, config.seed, "done", result.scale_alarm,
                       seconds=time.perf_counter() - started)
    except Exception as exc:  # one broken run must not take the sweep down
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return Outcome(config.key, config.seed, "failed", detail,
                       seconds=time.perf_counter() - started, fatal=write_fault(exc))


@contextlib.contextmanager
def one_blas_thread():
    """BLAS (and OpenMP) on one thread inside the block, then as before: a run's numbers
    then never depend on the machine's cores."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@contextlib.contextmanager
def blas_thread_env():
    """Spawned worker processes inherit os.environ: set their BLAS threads (one) before
    they import numpy (threadpoolctl then holds the limit in the worker)."""
    saved = {name: os.environ.get(name) for name in BLAS_ENV}
    os.environ.update({name: "1" for name in BLAS_ENV})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class StopRequest:
    """First SIGINT/SIGTERM: ask runs to stop and checkpoint. Second SIGINT: abort."""

    def __init__(self, event, say):
        self.event, self.say, self.count = event, say, 0

    def __call__(self, signum, frame):
        self.count += 1
        if self.count == 1:
            self.event.set()
            self.say("\nStopping: runs save a checkpoint and stop; run the same command again "
                     "to resume. (Ctrl-C again to abort at once.)")
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt


@contextlib.contextmanager
def signals(handler):
    """Route SIGINT and SIGTERM to handler inside the block (main thread only), then back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def longest_first(tasks):
    """The tasks by iterations left, most first (stable: the order of the experiment
    among equals), so that the runs resumed from a checkpoint, the short ones, come
    last and the workers finish together."""
    return sorted(tasks, key=lambda t: t.start - t.config.iterations)


def report(outcome, bar):
    """Say a failed run on the progress bar (finished and interrupted ones are counted)."""
    if outcome.status == "failed":
        bar.write(f"FAILED: {outcome.key} seed {outcome.seed}: {outcome.message}")
