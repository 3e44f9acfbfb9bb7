"""Run the (configuration, seed) tasks of a sweep on a Dask cluster (pip install 'minits[dask]').

    outcomes, stopped = run_tasks_dask(tasks, bar, jobs=4)                       # LocalCluster
    outcomes, stopped = run_tasks_dask(tasks, bar, scheduler="tcp://host:8786")  # a cluster

(bar: progress.progress_bar; executor.run_tasks(..., executor="dask") makes it.)

Each run is one task (Client.submit); a worker runs tasks.run_task, the function
the local pool runs, and writes the same atomic per-run files under --out, so the
folder must be one every worker sees (a shared file system). Resuming, the lock and
the summary are the local sweep's: only where a run trains changes. Every run
trains inside tasks.one_blas_thread() (one BLAS thread; `threads` of its own), so its
numbers are those of --executor local.

Faults: a worker that dies loses only the run it was training; the scheduler gives
that task to another worker (up to distributed.scheduler.allowed-failures times,
3 by default), which resumes it from its last checkpoint (saved every epoch).
A task that fails for good is reported as a failed run; the others finish.

Stopping: the first Ctrl-C (or SIGTERM) sets a cluster-wide stop flag (a
distributed.Event, polled by each run twice a second): running runs save a
checkpoint and return, runs not started return at once. A second Ctrl-C cancels
every future at once (the checkpoints already written stay valid).
"""

import asyncio
import contextlib
import dataclasses
import os
import shutil
import tempfile
import threading
import time

import dask
from dask.base import tokenize
from dask.utils import parse_timedelta
from distributed import Client, Event, LocalCluster, as_completed, get_worker
from distributed.comm import connect as comm_connect

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

STOP_POLL_SECONDS = 0.5  # a round trip of ~1 ms, twice a second
PROGRESS_SECONDS = 1.0  # a worker event (no round trip) once a second
# Dask starts its workers with MALLOC_TRIM_THRESHOLD_=65536, which makes glibc give
# memory back to the system after every large free: a run's arrays are then mapped
# and unmapped at each step (MNIST quick on 2 workers: 28 s instead of 19 s, the
# local pool's 18 s). None leaves glibc's own, adaptive, thresholds.
GLIBC_MALLOC = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
# A scheduler serves HTTP (health, metrics) even without its dashboard, on port 8787
# unless told otherwise: warnings when another program holds the port, and an open port
# nobody asked for. A free loopback port instead, and no dashboard.
NO_DASHBOARD = {"dashboard": False, "dashboard_address": "127.0.0.1:0"}


# ----------------------------------------------------------------------------- on a worker

class _ClusterStop:
    """The stop flag as a run sees it: the named distributed.Event, asked at most once every
    STOP_POLL_SECONDS (each question is a round trip to the scheduler)."""

    def __init__(self, name):
        self.name, self.event, self.asked, self.value = name, None, None, False

    def is_set(self):
        now = time.monotonic()
        if self.value or (self.asked is not None and now - self.asked < STOP_POLL_SECONDS):
            return self.value
        self.asked = now
        with contextlib.suppress(Exception):  # no scheduler to ask: keep training
            self.event = self.event or Event(self.name)
            self.value = self.event.is_set()
        return self.value


class _Progress:
    """A run's iterations as they are done, sent to the client as worker events on the
    sweep's topic (at most once every PROGRESS_SECONDS); `pending` is what is not sent yet."""

    def __init__(self, topic):
        self.topic, self.pending, self.sent = topic, 0, time.monotonic()

    def __call__(self, k):
        self.pending += k
        if time.monotonic() - self.sent > PROGRESS_SECONDS:
            self.sent = time.monotonic()
            with contextlib.suppress(Exception):  # the bar is no reason to stop a run
                get_worker().log_event(self.topic, self.pending)
                self.pending = 0


def run_on_worker(task, threads, name):
    """One run on a Dask worker: tasks.run_task inside tasks.one_blas_thread().

    task: tasks.Task. threads: the run's own threads. name: the sweep's
    distributed.Event (the stop flag) and the topic of its progress events.
    Returns (Outcome, [log lines of the run], iterations done and not yet reported):
    the lines go back with the result, for the client to print.
    """
    lines, progress = [], _Progress(name)
    with one_blas_thread():
        outcome = run_task(task, stop=_ClusterStop(name), progress=progress, log=lines.append,
                           threads=threads)
    return outcome, lines, progress.pending


# ----------------------------------------------------------------------------- the client

def task_key(task):
    """A key naming the run and its files: submitting the same run twice (a second client
    on the same folder) gives the scheduler one task, not two."""
    c = task.config
    return f"minits-{c.key}-seed{c.seed}-{tokenize(c, os.path.abspath(task.result_path))}"


def absolute(task):
    """`task` with absolute paths: a worker runs in its own working directory."""
    def full(path):
        return None if path is None else os.path.abspath(path)

    return dataclasses.replace(task, result_path=full(task.result_path),
                               checkpoint_path=full(task.checkpoint_path),
                               data_dir=full(task.data_dir))


def connect_timeout():
    """Seconds to connect to a scheduler and hear its handshake (Dask's
    distributed.comm.timeouts.connect, 30 s unless configured)."""
    return parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"),
                           default="seconds")


def check_scheduler(address, timeout):
    """Raise unless a Dask scheduler answers at `address` within `timeout` seconds.

    Client(address) waits for the handshake without a bound (a silent server, e.g. an
    HTTP server, hangs it forever) and reads whatever a server sends first as a frame
    length (a banner asks for exabytes: MemoryError). Here the connection, the
    handshake and one "identity" question run under one deadline, and the answer
    must come from a scheduler (not a worker or a nanny)."""
    async def ask():
        comm = await comm_connect(address, timeout=timeout)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    try:
        identity = asyncio.run(asyncio.wait_for(ask(), timeout))
    except asyncio.TimeoutError:
        raise TimeoutError(f"no Dask handshake within {timeout:g} s") from None
    except (MemoryError, ValueError, TypeError) as exc:  # bytes that are no Dask frame
        raise ValueError(f"the server there does not speak Dask's protocol "
                         f"({type(exc).__name__})") from None
    kind = identity.get("type") if isinstance(identity, dict) else None
    if kind != "Scheduler":
        raise ValueError(f"the server there is not a Dask scheduler (it says {kind!r})")


@contextlib.contextmanager
def connect(jobs, scheduler=None):
    """A Client of the cluster at `scheduler` (an address, e.g. tcp://host:8786), or of a
    new LocalCluster of `jobs` worker processes with one thread each (loopback only, no
    dashboard, its scratch files in a temporary folder removed at the end); its workers
    inherit BLAS variables set to one thread."""
    if scheduler is not None:
        timeout = connect_timeout()
        try:
            check_scheduler(scheduler, timeout)
            client = Client(scheduler, timeout=timeout)
        except Exception as exc:  # unreachable, not an address, not a Dask scheduler
            raise RuntimeError(f"cannot reach the Dask scheduler at {scheduler} "
                               f"({type(exc).__name__}: {exc})") from None
        with client:
            yield client
        return
    scratch = tempfile.mkdtemp(prefix="minits-dask-")
    try:
        with blas_thread_env(), dask.config.set({**GLIBC_MALLOC,
                                                 "temporary-directory": scratch}):
            cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                   host="127.0.0.1", dashboard_address=None,
                                   local_directory=scratch, scheduler_kwargs=NO_DASHBOARD)
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run_tasks_dask(tasks, bar, jobs=1, scheduler=None, threads=1):
    """Run `tasks` (list of tasks.Task) on a Dask cluster; returns (outcomes, stopped).

    bar: the sweep's progress bar (update, write): it counts the iterations the
    workers report (worker events, once a second) and prints the runs' log lines.
    jobs: worker processes of the LocalCluster started when `scheduler`
    is None. threads: each run's own threads (BLAS runs on one: the numbers of
    --executor local).
    stopped is True when a stop was requested (Ctrl-C, SIGTERM) before the end.
    """
    stop = threading.Event()
    with connect(jobs, scheduler) as client:
        name = f"minits-sweep-{tokenize(os.getpid(), time.time())}"
        stop_event = Event(name, client=client)
        client.subscribe_topic(name, lambda event: bar.update(event[1]))
        futures = {client.submit(run_on_worker, t, threads, name, key=task_key(t),
                                 pure=False): t
                   for t in map(absolute, longest_first(tasks))}
        try:
            with signals(StopRequest(stop, bar.write)):
                outcomes = _collect(futures, stop, stop_event, bar)
        except KeyboardInterrupt:
            client.cancel(list(futures), force=True)
            raise
        finally:
            with contextlib.suppress(Exception):
                client.unsubscribe_topic(name)
                stop_event.clear()
    return outcomes, stop.is_set()


def _collect(futures, stop, stop_event, bar):
    """The outcome of every future (future -> Task), reported as it comes
    (distributed.as_completed); a stop requested here is passed on to the cluster."""
    outcomes, passed_on = [], False
    finished = as_completed(futures)
    while not finished.is_empty():
        if stop.is_set() and not passed_on:
            stop_event.set()
            passed_on = True
        if not finished.has_ready():
            time.sleep(0.1)
            continue
        for future in finished.next_batch(block=False):
            outcome = _outcome(future, futures[future], bar)
            report(outcome, bar)
            outcomes.append(outcome)
            if outcome.fatal:  # a full disk: stop the others
                stop.set()
    return outcomes


def _outcome(future, task, bar):
    """The Outcome of a finished future, its log lines written and its last iterations
    counted; a task the cluster could not run (its workers died too often) is a failed
    run."""
    try:
        outcome, lines, iterations = future.result()
    except Exception as exc:
        return Outcome(task.config.key, task.config.seed, "failed",
                       f"the cluster could not run it: {type(exc).__name__}: {exc}")
    for line in lines:
        bar.write(line)
    if iterations:
        bar.update(iterations)
    return outcome
