"""Run a sweep's tasks: in this process, in N worker processes, or on a Dask cluster.

    outcomes, stopped = run_tasks(tasks, jobs=2)

Each task trains one run (tasks.run_task). With jobs > 1 a ProcessPoolExecutor
('spawn' context) runs tasks side by side, so N workers use N cores; with
executor="dask" the runs go to a Dask cluster (dask_executor.py). Every run trains
with one BLAS thread wherever it runs (tasks.py), so its numbers depend only on its
configuration, and each run computes with the implementation its configuration
names (RunConfig.impl: training.build), so the workers need nothing more to run the
same one.

Stopping is cooperative: the first Ctrl-C (SIGINT) or a SIGTERM sets a stop flag;
every running task saves a checkpoint at its next iteration and returns, pending
tasks are cancelled, and a rerun resumes them. A second Ctrl-C aborts at once
(checkpoints already on disk stay valid: every write is atomic). A worker whose
parent has died (kill -9) saves its checkpoint and exits. A worker that dies breaks
the pool: a new pool takes the runs left, and the run that was on the dead worker is
tried once more (RETRIES) before it fails alone.
"""

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from concurrent.futures.process import BrokenProcessPool

from .progress import progress_bar
from .tasks import (
    Outcome,
    StopRequest,
    blas_thread_env,
    longest_first,
    one_blas_thread,
    report,
    run_task,
    signals,
)

EXECUTORS = ("local", "dask")
DASK_INSTALL = "pip install 'minits[dask]'"


def available_cores():
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


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
    """Run `tasks` (list of tasks.Task); returns (outcomes, stopped).

    jobs: worker processes (1: in this process). show_progress: a progress bar over
    all iterations left, with an estimated time. say: callable(str) for messages.
    threads: each run's own threads (a convolutional network's batch in chunks); BLAS
        runs on one thread, so the numbers depend neither on jobs nor on threads.
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
            with one_blas_thread():
                return _run_here(tasks, bar, threads)
        return _run_pool(longest_first(tasks), min(jobs, len(tasks)), bar, threads)
    finally:
        bar.close()


def _run_here(tasks, bar, threads):
    stop = threading.Event()
    outcomes = []
    with signals(StopRequest(stop, bar.write)):
        for task in tasks:
            if stop.is_set():
                break
            outcome = run_task(task, stop=stop, progress=bar.update, log=bar.write,
                               threads=threads)
            report(outcome, bar)
            outcomes.append(outcome)
            if outcome.fatal:  # a full disk: the next run would fail alike
                break
    return outcomes, stop.is_set()


# ----------------------------------------------------------------------------- workers

_WORKER = {}
RETRIES = 1
"""How many more times a run is tried after the worker process it ran in died (kill -9,
the OOM killer): once; a run that kills its worker twice fails, the others go on."""


class _WorkerStop:
    """The stop flag seen by a worker: the parent's event, or the parent gone."""

    def __init__(self, event, parent_pid):
        self.event, self.parent_pid = event, parent_pid

    def orphaned(self):
        return os.getppid() != self.parent_pid

    def is_set(self):
        return self.event.is_set() or self.orphaned()


def _worker_init(event, messages, parent_pid, threads, started=None):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    from threadpoolctl import threadpool_limits

    # one BLAS thread for the worker's life, as one_blas_thread() holds it in this process
    _WORKER["limits"] = threadpool_limits(1)
    _WORKER.update(stop=_WorkerStop(event, parent_pid), messages=messages, threads=threads,
                   started=started)


def _worker_task(work, index, task):
    """Run `work(task)` in a worker, its pid written first to started[index] (shared
    memory, seen by the parent at once): if this process dies, the parent knows which run
    was on it."""
    _WORKER["started"][index] = os.getpid()
    return work(task)


def _worker_run(task):
    stop, messages = _WORKER["stop"], _WORKER["messages"]
    pending = [0, time.monotonic()]

    def progress(k):
        pending[0] += k
        if time.monotonic() - pending[1] > 0.5:
            messages.put(("progress", pending[0]))
            pending[0], pending[1] = 0, time.monotonic()

    outcome = run_task(task, stop=stop, progress=progress,
                       log=lambda m: messages.put(("log", m)), threads=_WORKER["threads"])
    if pending[0]:
        messages.put(("progress", pending[0]))
    if stop.orphaned():  # nobody will collect the result: leave now (checkpoint is saved)
        os._exit(0)
    return outcome


def _run_pool(tasks, jobs, bar, threads, work=_worker_run):
    """`tasks` on a pool of `jobs` worker processes; returns (outcomes, stopped).

    A worker that dies breaks a ProcessPoolExecutor for good (every run in it or queued
    on it gets BrokenProcessPool). Then a new pool takes the runs without an outcome
    (those that were training resume from their checkpoints), and the run that was on
    the dead worker counts one death: after RETRIES + 1 deaths it fails alone.
    work: what a worker runs for one task (tests replace it).
    """
    ctx = multiprocessing.get_context("spawn")
    event, messages = ctx.Event(), ctx.Queue()
    drain = threading.Thread(target=_drain, args=(messages, bar), daemon=True)
    drain.start()
    outcomes, deaths, todo = [], {}, list(tasks)
    try:
        with signals(StopRequest(event, bar.write)):
            while todo:
                finished, lost, killers = _pool_round(todo, jobs, bar, threads, work, ctx,
                                                      event, messages)
                outcomes += finished
                if not lost or event.is_set():  # stopping: lost runs resume next time
                    break
                todo = []
                for t in lost:
                    deaths[id(t)] = deaths.get(id(t), 0) + (id(t) in killers)
                    if deaths[id(t)] > RETRIES:
                        outcome = Outcome(t.config.key, t.config.seed, "failed",
                                          f"its worker process died twice ({killers[id(t)]})")
                        report(outcome, bar)
                        outcomes.append(outcome)
                    else:
                        todo.append(t)
                if todo:
                    bar.write(f"a worker process died ({', '.join(set(killers.values()))}); "
                              f"{len(todo)} run(s) go on in new worker processes")
    finally:
        messages.put(None)
        drain.join(timeout=2)
    return outcomes, event.is_set()


def _pool_round(tasks, jobs, bar, threads, work, ctx, event, messages):
    """One ProcessPoolExecutor over `tasks` until they end or a worker dies.

    Returns (outcomes, lost, killers): lost, the tasks without an outcome because the
    pool broke; killers, {id(task): how its worker died} for those whose worker died
    (the others were stopped by the broken pool)."""
    started = ctx.Array("q", len(tasks), lock=False)  # task index -> pid of its worker
    pool = None
    try:
        with blas_thread_env():
            pool = cf.ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=ctx,
                                          initializer=_worker_init,
                                          initargs=(event, messages, os.getpid(), threads,
                                                    started))
            futures = {pool.submit(_worker_task, work, i, t): t for i, t in enumerate(tasks)}
        workers = list(pool._processes.values())
        outcomes, lost = _collect(futures, event, bar)
        pool.shutdown(wait=True)
    except KeyboardInterrupt:
        if pool is not None:
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
        raise
    return outcomes, lost, _killers(tasks, lost, started, workers)


def _killers(tasks, lost, started, workers):
    """{id(task): how its worker died} for the lost tasks that were on a worker that died of
    something else than the broken pool's SIGTERM; when none is known, every lost task
    that had started, and when none had, every lost task (a worker that dies before any
    run, say in its start-up, must not make pool after pool for ever)."""
    for process in workers:
        process.join(timeout=5)
    dead = {p.pid: _death(p.exitcode) for p in workers
            if p.exitcode not in (None, 0, -signal.SIGTERM)}
    index = {id(t): i for i, t in enumerate(tasks)}
    on = {id(t): started[index[id(t)]] for t in lost}  # pid of the worker it was on, or 0
    why = ", ".join(sorted(set(dead.values()))) or "a worker process died"
    return ({t: dead[pid] for t, pid in on.items() if pid in dead}
            or {t: why for t, pid in on.items() if pid} or dict.fromkeys(on, why))


def _death(exitcode):
    if exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-exitcode).name}"
        return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


def _collect(futures, event, bar):
    """The outcome of every future (future -> Task), reported as it comes, and the tasks
    lost to a broken pool; once a stop is requested (event), the tasks still queued are
    cancelled."""
    outcomes, lost, pending, cancelled = [], [], set(futures), False
    while pending:
        finished, pending = cf.wait(pending, timeout=0.25, return_when=cf.FIRST_COMPLETED)
        for future in finished:
            if future.cancelled():
                continue
            try:
                outcome = future.result()
            except BrokenProcessPool:  # a worker died: the caller starts a new pool
                lost.append(futures[future])
                continue
            except Exception as exc:  # e.g. a task that cannot be sent to a worker
                t = futures[future]
                outcome = Outcome(t.config.key, t.config.seed, "failed",
                                  f"worker process failed: {exc!r}")
            report(outcome, bar)
            outcomes.append(outcome)
            if outcome.fatal:  # a full disk: stop the others (their checkpoints may fail)
                event.set()
        if event.is_set() and not cancelled:
            for future in pending:
                future.cancel()
            cancelled = True
    return outcomes, lost


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
