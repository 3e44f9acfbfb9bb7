"""Run many (configuration, seed) tasks, in this process or in N worker processes.

Each task trains one run (training.train), writes its results file atomically and
removes its checkpoint. With jobs > 1 a ProcessPoolExecutor ('spawn' context)
runs tasks side by side, so N workers use N cores.

Every run trains with one BLAS thread, in a worker and in this process alike
(threadpoolctl): a multi-threaded matrix product sums in another order, so a
run's numbers would depend on where it ran. With one thread they depend only on
its configuration, and the result files of --jobs 1, --jobs N and a resumed sweep
are identical, array for array. (One thread is also the faster way to run
several runs on a busy machine.) Each run computes with the implementation its
configuration names (RunConfig.impl: training.train enters it), so the workers
need nothing more to run the same one.

Stopping is cooperative: the first Ctrl-C (SIGINT) or a SIGTERM sets a stop flag;
every running task saves a checkpoint at its next iteration and returns, pending
tasks are cancelled, and a rerun resumes them. A second Ctrl-C aborts at once
(checkpoints already on disk stay valid: every write is atomic). A worker whose
parent has died (kill -9) saves its checkpoint and exits.
"""

import concurrent.futures as cf
import contextlib
import dataclasses
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
import traceback

import numpy as np

from .. import datasets
from ..backend import get_num_threads, set_num_threads
from ..training import evaluate, loop, results
from .progress import progress_bar

BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
            "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def available_cores():
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


@contextlib.contextmanager
def run_threads(n):
    """A run's threads inside the block: minits splits a convolutional network's batch
    over n threads (minits.set_num_threads), and BLAS (and OpenMP) run on one thread, so
    the numbers never depend on n or on the machine's cores; then restore both.
    n=None leaves them as they are."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    before = get_num_threads()
    set_num_threads(int(n))
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        set_num_threads(before)


@dataclasses.dataclass
class Task:
    """One run: its configuration (with seed) and its two files."""

    config: object
    result_path: str
    checkpoint_path: str
    data_dir: str | None = None
    start: int = 0  # iterations already done (from a checkpoint)


@dataclasses.dataclass
class Outcome:
    """status: 'done' | 'interrupted' | 'failed'; message: the error or the alarm."""

    key: str
    seed: int
    status: str
    message: str = ""
    seconds: float = 0.0


# ----------------------------------------------------------------------------- data

_DATA = {}
_TEST_INPUTS = {}  # one entry: the converted test set of the last runs


def load_split(name, split, data_dir):
    """datasets.load, remembered per process (a worker loads each split once)."""
    key = (name, split, data_dir)
    if key not in _DATA:
        _DATA[key] = datasets.load(name, split=split, data_dir=data_dir)
    return _DATA[key]


def remember_split(name, split, data_dir, dataset):
    """Give this process's cache a data set already loaded (e.g. by the parent)."""
    _DATA[(name, split, data_dir)] = dataset
    _TEST_INPUTS.clear()  # they may have been converted from the data set replaced


def held_test_inputs(config, data_dir):
    """The test images of `config`'s data set as float inputs, evaluate.held_inputs
    (None when they exceed its memory budget), converted once per process for all its
    runs with the same dtype and standardisation: a run evaluates them eleven times or
    more, and converting 10,000 MNIST images into fresh memory costs ~40 ms a run.
    Read-only, so that no run can change what the next one sees."""
    key = (config.dataset, data_dir, config.dtype, config.standardize)
    if key not in _TEST_INPUTS:
        _TEST_INPUTS.clear()  # never more than one converted set in memory
        test_set = load_split(config.dataset, "test", data_dir)
        inputs = evaluate.held_inputs(test_set, np.dtype(config.dtype), config.standardize)
        if inputs is not None:
            inputs.flags.writeable = False
        _TEST_INPUTS[key] = inputs
    return _TEST_INPUTS[key]


# ----------------------------------------------------------------------------- one task

def run_task(task, stop=None, progress=None, log=None):
    """Train `task` to the end (or until `stop`), save its results, drop its checkpoint."""
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
                            log=log or (lambda m: print(m, file=sys.stderr, flush=True)))
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
                       seconds=time.perf_counter() - started)


# ----------------------------------------------------------------------------- workers

_WORKER = {}


class _WorkerStop:
    """The stop flag seen by a worker: the parent's event, or the parent gone."""

    def __init__(self, event, parent_pid):
        self.event, self.parent_pid = event, parent_pid

    def orphaned(self):
        return os.getppid() != self.parent_pid

    def is_set(self):
        return self.event.is_set() or self.orphaned()


def _worker_init(event, messages, parent_pid, threads):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    if threads is not None:  # held for the worker's life, as run_threads(threads) would
        from threadpoolctl import threadpool_limits

        _WORKER["limits"] = threadpool_limits(1)
        set_num_threads(threads)
    _WORKER.update(stop=_WorkerStop(event, parent_pid), messages=messages)


def _worker_run(task):
    stop, messages = _WORKER["stop"], _WORKER["messages"]
    pending = [0, time.monotonic()]

    def progress(k):
        pending[0] += k
        if time.monotonic() - pending[1] > 0.5:
            messages.put(("progress", pending[0]))
            pending[0], pending[1] = 0, time.monotonic()

    outcome = run_task(task, stop=stop, progress=progress,
                       log=lambda m: messages.put(("log", m)))
    if pending[0]:
        messages.put(("progress", pending[0]))
    if stop.orphaned():  # nobody will collect the result: leave now (checkpoint is saved)
        os._exit(0)
    return outcome


@contextlib.contextmanager
def _blas_thread_env(threads):
    """Spawned workers inherit os.environ: set their BLAS threads (one) before they import
    numpy (threadpoolctl then holds the limit in _worker_init)."""
    if threads is None:
        yield
        return
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


# ----------------------------------------------------------------------------- signals

class _StopRequest:
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
def _signals(handler):
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# ----------------------------------------------------------------------------- the sweep

EXECUTORS = ("local", "dask")
DASK_INSTALL = "pip install 'minits[dask]'"


def require_dask():
    """ImportError saying how to install Dask when `distributed` cannot be imported
    (the optional extra minits[dask]; nothing else in minits needs it)."""
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"--executor dask needs Dask's distributed scheduler, which is not "
                          f"installed ({exc}); install it with: {DASK_INSTALL}") from None


def run_tasks(tasks, jobs=1, show_progress=True, say=None, threads=1, executor="local",
              scheduler=None):
    """Run `tasks` (list of Task); returns (outcomes, stopped).

    jobs: worker processes (1: in this process). show_progress: a progress bar over
    all iterations left, with an estimated time. say: callable(str) for messages.
    threads: minits' threads per run (run_threads: the batch split; BLAS runs on one
        thread, so the numbers depend neither on jobs nor on threads); None leaves
        both as they are.
    executor: 'local' (this process or a pool) or 'dask' (dask_executor: the cluster
        at `scheduler`, an address, or a LocalCluster of `jobs` worker processes).
    stopped is True when a stop was requested (Ctrl-C, SIGTERM) before the end.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if executor == "dask":
        require_dask()
    say = say or (lambda m: print(m, file=sys.stderr, flush=True))
    total = sum(t.config.iterations for t in tasks)
    done_before = sum(t.start for t in tasks)
    bar = progress_bar(total=total, initial=done_before, enabled=show_progress)
    try:
        if executor == "dask":
            from .dask_executor import run_tasks_dask

            return run_tasks_dask(tasks, bar, jobs=jobs, scheduler=scheduler, threads=threads)
        if jobs == 1 or len(tasks) <= 1:
            with run_threads(threads):
                return _run_here(tasks, bar, say)
        return _run_pool(longest_first(tasks), min(jobs, len(tasks)), bar, say, threads)
    finally:
        bar.close()


def longest_first(tasks):
    """The tasks by iterations left, most first (stable: the order of the experiment
    among equals), so that the runs resumed from a checkpoint, the short ones, come
    last and the workers finish together."""
    return sorted(tasks, key=lambda t: t.start - t.config.iterations)


def _run_here(tasks, bar, say):
    stop = threading.Event()
    outcomes = []
    with _signals(_StopRequest(stop, bar.write)):
        for task in tasks:
            if stop.is_set():
                break
            outcome = run_task(task, stop=stop, progress=bar.update, log=bar.write)
            _report(outcome, bar)
            outcomes.append(outcome)
    return outcomes, stop.is_set()


def _run_pool(tasks, jobs, bar, say, threads):
    ctx = multiprocessing.get_context("spawn")
    event, messages = ctx.Event(), ctx.Queue()
    drain = threading.Thread(target=_drain, args=(messages, bar), daemon=True)
    drain.start()
    request = _StopRequest(event, bar.write)
    pool = None
    try:
        with _signals(request):
            with _blas_thread_env(threads):
                pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx,
                                              initializer=_worker_init,
                                              initargs=(event, messages, os.getpid(), threads))
                futures = {pool.submit(_worker_run, t): t for t in tasks}
            outcomes = _collect(futures, event, bar)
        pool.shutdown(wait=True)
    except KeyboardInterrupt:
        if pool is not None:
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        messages.put(None)
        drain.join(timeout=2)
    return outcomes, event.is_set()


def _collect(futures, event, bar):
    """The outcome of every future (future -> Task), reported as it comes; once a stop is
    requested (event), the tasks still queued are cancelled."""
    outcomes, pending, cancelled = [], set(futures), False
    while pending:
        finished, pending = cf.wait(pending, timeout=0.25, return_when=cf.FIRST_COMPLETED)
        for future in finished:
            if future.cancelled():
                continue
            try:
                outcome = future.result()
            except Exception as exc:  # a worker died (e.g. out of memory)
                t = futures[future]
                outcome = Outcome(t.config.key, t.config.seed, "failed",
                                  f"worker process failed: {exc!r}")
            _report(outcome, bar)
            outcomes.append(outcome)
        if event.is_set() and not cancelled:
            for future in pending:
                future.cancel()
            cancelled = True
    return outcomes


def _drain(messages, bar):
    while True:
        try:
            item = messages.get(timeout=0.5)
        except queue.Empty:
            continue
        except (EOFError, OSError):
            return
        if item is None:
            return
        kind, value = item
        if kind == "progress":
            bar.update(value)
        else:
            bar.write(value)


def _report(outcome, bar):
    if outcome.status == "failed":
        bar.write(f"FAILED: {outcome.key} seed {outcome.seed}: {outcome.message}")
