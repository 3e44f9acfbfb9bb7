"""Sweeps on a Dask cluster (issue 15): --executor dask and --scheduler ADDRESS.

Every run is one task; a worker writes the same files as the local pool, so the
result files are those of --executor local, array for array (timings aside), with
a LocalCluster started by minits, with one a test started, after a worker was
killed mid-run, and through `dask scheduler` / `dask worker` processes. Loopback
only (127.0.0.1); every cluster is stopped in a finally (or a with block).
"""

import contextlib
import glob
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from helpers import SWEEP_ARGS, assert_same_results, blas_threads, result_arrays

from minits import cli
from minits.experiments import data as experiment_data
from minits.experiments import tasks as sweep_tasks

pytestmark = pytest.mark.usefixtures("offline")

# runs long enough (~2 s each on a worker) for a worker to be killed mid-run
LONG = [*SWEEP_ARGS[:SWEEP_ARGS.index("--iterations")], "--iterations", "600",
        "--eval-every", "300", "--no-progress", "--no-figures"]


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory):
    """The short and the long sweep with --executor local (--jobs 2), computed once."""
    pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn")
    base = tmp_path_factory.mktemp("local")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MINITS_DATA", raising=False)
        mp.setenv("MINITS_OFFLINE", "1")
        mp.setattr(experiment_data, "_DATA", {})
        mp.setattr(experiment_data, "_TEST_INPUTS", {})
        outs = {name: str(base / name) for name in ("short", "long")}
        assert cli.main([*SWEEP_ARGS, "--jobs", "2", "--out", outs["short"]]) == 0
        assert cli.main([*LONG, "--jobs", "2", "--out", outs["long"]]) == 0
    return outs


# ----------------------------------------------------------------------------- without dask

def test_executor_dask_without_dask_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if it were not installed
    out = str(tmp_path / "out")
    for option in (["--executor", "dask"], ["--scheduler", "tcp://127.0.0.1:1"]):
        assert cli.main([*SWEEP_ARGS, *option, "--out", out]) == cli.EXIT_BAD_ARGS
        err = capsys.readouterr().err
        assert "pip install 'minits[dask]'" in err and "Traceback" not in err
    assert not os.path.exists(out)  # refused before any work


def test_scheduler_with_executor_local_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([*SWEEP_ARGS, "--executor", "local", "--scheduler", "tcp://127.0.0.1:1",
                  "--out", str(tmp_path / "out")])
    assert exc.value.code == cli.EXIT_BAD_ARGS
    assert "--scheduler" in capsys.readouterr().err


# ----------------------------------------------------------------------------- with dask

def test_the_task_key_names_the_run_and_its_folder(tmp_path):
    pytest.importorskip("distributed")
    from minits.experiments import dask_executor, plan, presets

    exp = presets.compare("digits", etas=(0.01,), variants=("two-scale",), seeds=2)
    tasks = plan(exp, str(tmp_path / "a")).tasks
    again = plan(exp, str(tmp_path / "a")).tasks
    elsewhere = plan(exp, str(tmp_path / "b")).tasks
    keys = [dask_executor.task_key(t) for t in tasks]
    assert keys == [dask_executor.task_key(t) for t in again]  # resubmission: same task
    assert len(set(keys)) == len(tasks) == 2
    assert not set(keys) & {dask_executor.task_key(t) for t in elsewhere}


def test_a_worker_runs_a_task_on_one_blas_thread_with_the_runs_threads(monkeypatch):
    """run_on_worker: tasks.run_task inside tasks.one_blas_thread, the run's own threads
    passed on (--threads), its log lines returned with the outcome, and the iterations
    not yet reported as events returned with them; BLAS is as before afterwards."""
    pytest.importorskip("distributed")
    from minits.experiments import dask_executor, plan, presets

    blas = blas_threads

    calls = []

    def fake_run_task(task, stop, progress, log, threads):
        calls.append((task, threads, blas()))
        progress(5)
        log("a line")
        return sweep_tasks.Outcome(task.config.key, task.config.seed, "done")

    monkeypatch.setattr(dask_executor, "run_task", fake_run_task)
    task = plan(presets.compare("digits", etas=(), variants=("one-scale",), seeds=1),
                "unused-folder").tasks[0]
    before = blas()
    outcome, lines, pending = dask_executor.run_on_worker(task, 3, "minits-sweep-test")
    assert outcome.status == "done" and calls == [(task, 3, {1})]
    assert lines == ["a line"] and pending == 5
    assert blas() == before


def test_a_run_the_cluster_cannot_run_is_a_failed_run_with_its_error():
    pytest.importorskip("distributed")
    from minits.experiments import dask_executor, plan, presets

    class Lost:
        def result(self):
            raise RuntimeError("worker tcp://127.0.0.1:1 died 4 times")

    class Bar:
        written, done = [], 0

        def write(self, m):
            self.written.append(m)

        def update(self, k):
            self.done += k

    task = plan(presets.compare("digits", etas=(), variants=("one-scale",), seeds=1),
                "unused-folder").tasks[0]
    outcome = dask_executor._outcome(Lost(), task, Bar())
    assert outcome.status == "failed" and "died 4 times" in outcome.message
    assert (outcome.key, outcome.seed) == (task.config.key, 0)


def test_a_scheduler_nobody_runs_is_a_clear_error(tmp_path, capsys):
    dask = pytest.importorskip("dask")
    pytest.importorskip("distributed")
    address = f"tcp://127.0.0.1:{_free_port()}"
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        assert cli.main([*SWEEP_ARGS, "--scheduler", address,
                         "--out", str(tmp_path / "out")]) == cli.EXIT_BAD_ARGS
    err = capsys.readouterr().err
    assert f"cannot reach the Dask scheduler at {address}" in err and "Traceback" not in err


class _NotAScheduler:
    """A loopback server that is not a Dask scheduler: silent (an HTTP server waiting for
    a request) or talking first (a banner Dask would read as a frame length of exabytes)."""

    def __init__(self, talk):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        self.talk, self.conns = talk, []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.talk:
                conn.sendall(b"HTTP/1.0 200 OK\r\nServer: not-dask\r\n\r\n" * 4)

    def close(self):
        for conn in [*self.conns, self.sock]:
            conn.close()


@pytest.mark.parametrize("talk", [False, True], ids=["silent", "talking"])
def test_a_scheduler_address_that_is_not_dask_is_a_clear_error(tmp_path, capsys, talk):
    """Issue 23, faults 1-2: connecting and the handshake are bounded; rc 2, one line
    naming the address, no lock left behind (the sweep runs in a thread, so that a hang
    fails the test instead of stopping the suite)."""
    dask = pytest.importorskip("dask")
    pytest.importorskip("distributed")
    server, out, codes = _NotAScheduler(talk), tmp_path / "out", []
    try:
        with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
            sweep = threading.Thread(target=lambda: codes.append(cli.main(
                [*SWEEP_ARGS, "--scheduler", server.address, "--out", str(out)])), daemon=True)
            sweep.start()
            sweep.join(timeout=60)
    finally:
        server.close()
    assert not sweep.is_alive() and codes == [cli.EXIT_BAD_ARGS]
    err = capsys.readouterr().err.strip().splitlines()
    assert f"cannot reach the Dask scheduler at {server.address}" in err[-1]
    assert "Traceback" not in "\n".join(err) and not (out / ".lock").exists()


def test_a_local_cluster_gives_the_result_files_of_the_local_pool(tmp_path, local_runs):
    pytest.importorskip("distributed")
    out = str(tmp_path / "dask")
    assert cli.main([*SWEEP_ARGS, "--executor", "dask", "--jobs", "2", "--out", out]) == 0
    assert_same_results(local_runs["short"], out)
    # a rerun finds everything finished and submits nothing
    assert cli.main([*SWEEP_ARGS, "--executor", "dask", "--jobs", "2", "--out", out]) == 0
    assert_same_results(local_runs["short"], out)


class RecordingBar:
    def __init__(self):
        self.updates, self.lines = [], []

    def update(self, k=1):
        self.updates.append(k)

    def write(self, message):
        self.lines.append(message)


def test_a_local_cluster_leaves_no_files_and_opens_no_dashboard(tmp_path, monkeypatch,
                                                                 caplog, capsys):
    """Issue 23, fault 13: the LocalCluster's scratch files go to a temporary folder that
    is removed at the end (none in the working folder or the system's temporary folder),
    and its scheduler serves nothing on the dashboard's port 8787 (held here, so that a
    scheduler trying it would warn)."""
    pytest.importorskip("distributed")
    import tempfile

    tmp, cwd = tmp_path / "tmp", tmp_path / "cwd"
    tmp.mkdir()
    cwd.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.chdir(cwd)
    holder = socket.socket()
    with contextlib.suppress(OSError):  # taken already: a scheduler trying it warns alike
        holder.bind(("127.0.0.1", 8787))
        holder.listen()
    try:
        with caplog.at_level("WARNING"):
            assert cli.main([*SWEEP_ARGS, "--executor", "dask", "--jobs", "2",
                             "--out", "out"]) == 0
    finally:
        holder.close()
    assert sorted(os.listdir(cwd)) == ["out"] and os.listdir(tmp) == []
    assert not glob.glob(str(tmp_path / "**" / "dask-scratch-space"), recursive=True)
    assert "8787" not in caplog.text + capsys.readouterr().err


def test_the_bar_counts_every_iteration_as_the_workers_report_them(tmp_path):
    pytest.importorskip("distributed")
    from minits.experiments import dask_executor, plan, presets

    exp = presets.compare("digits", etas=(0.01,), variants=("two-scale",), seeds=2,
                          iterations=4000, eval_every=2000)  # ~3 s a run
    tasks = plan(exp, str(tmp_path / "out")).tasks
    bar = RecordingBar()
    outcomes, stopped = dask_executor.run_tasks_dask(tasks, bar, jobs=2)
    assert not stopped and [o.status for o in outcomes] == ["done", "done"]
    assert sum(bar.updates) == 2 * 4000
    assert len(bar.updates) > 2  # reported while the runs trained, not only at their end


def test_a_runs_log_lines_come_back_from_its_worker(tmp_path, capsys):
    pytest.importorskip("distributed")
    diverging = [*SWEEP_ARGS[:SWEEP_ARGS.index("--variants")], "--variants", "two-scale",
                 "--seeds", "1", "--lr", "1e30", "--no-progress", "--no-figures"]
    printed = {}
    for option in (["--executor", "local"], ["--executor", "dask", "--jobs", "2"]):
        cli.main([*diverging, *option, "--out", str(tmp_path / option[1])])
        printed[option[1]] = [line for line in capsys.readouterr().err.splitlines()
                              if line.startswith("WARNING")]
    assert any("diverged" in line for line in printed["local"])
    assert sorted(printed["dask"]) == sorted(printed["local"])


def _kill_a_busy_worker(client, out, killed, timeout=30.0):
    """Once a run has saved a checkpoint (it is mid-run), SIGKILL a worker training one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if glob.glob(os.path.join(out, "runs", "**", "*.ckpt.npz"), recursive=True):
            busy = [w for w, keys in client.processing().items() if keys]
            if busy:
                pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
        time.sleep(0.02)


def _sweep_killing_a_worker(client, address, out):
    killed = []
    killer = threading.Thread(target=_kill_a_busy_worker, args=(client, out, killed))
    killer.start()
    try:
        code = cli.main([*LONG, "--scheduler", address, "--out", out])
    finally:
        killer.join()
    return code, killed


def _assert_every_run_once(out, reference):
    assert_same_results(reference, out)  # 4 runs, each once, as if nothing happened
    assert not glob.glob(os.path.join(out, "runs", "**", "*.ckpt.npz"), recursive=True)


def test_a_worker_killed_mid_run_loses_nothing(tmp_path, local_runs):
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster

    out = str(tmp_path / "killed")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        code, killed = _sweep_killing_a_worker(client, cluster.scheduler_address, out)
    assert killed, "no worker was busy with a run to kill"
    assert code == 0
    _assert_every_run_once(out, local_runs["long"])


def test_ctrl_c_stops_the_runs_at_a_checkpoint_and_a_rerun_resumes_them(tmp_path, local_runs):
    pytest.importorskip("distributed")
    out = str(tmp_path / "stopped")
    args = [*LONG, "--executor", "dask", "--jobs", "2", "--out", out]
    interrupt = threading.Thread(target=_interrupt_mid_run, args=(out,))
    interrupt.start()
    try:
        assert cli.main(args) == cli.EXIT_INTERRUPTED
    finally:
        interrupt.join()
    # stopped before the end: runs that were training saved a checkpoint, the others
    # returned without starting
    assert len(result_arrays(out)) < 4
    assert cli.main(args) == 0
    _assert_every_run_once(out, local_runs["long"])


def _interrupt_mid_run(out, timeout=30.0):
    """Ctrl-C (SIGINT to this process) once a run has saved a checkpoint."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if glob.glob(os.path.join(out, "runs", "**", "*.ckpt.npz"), recursive=True):
            os.kill(os.getpid(), signal.SIGINT)
            return
        time.sleep(0.02)


def test_a_run_whose_worker_dies_too_often_fails_and_the_others_finish(tmp_path, local_runs,
                                                                      capsys):
    dask = pytest.importorskip("dask")
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster

    out = str(tmp_path / "lost")
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):  # no second try
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address=None) as cluster, \
                Client(cluster) as client:
            code, killed = _sweep_killing_a_worker(client, cluster.scheduler_address, out)
    assert killed and code == cli.EXIT_FAILED
    failed = [line for line in capsys.readouterr().err.splitlines() if "FAILED" in line]
    # the run it trained (and one queued on it, if any) failed, with the scheduler's error
    assert len(failed) in (1, 2) and all("KilledWorker" in line for line in failed)
    found, reference = result_arrays(out), result_arrays(local_runs["long"])
    assert len(found) == 4 - len(failed)  # the other runs finished, as the local pool's
    for path, arrays in found.items():
        assert all(value.tobytes() == reference[path][name].tobytes()
                   for name, value in arrays.items())


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(processes):
    for p in processes:
        p.terminate()
    for p in processes:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_dask_scheduler_and_dask_worker_processes(tmp_path, local_runs, monkeypatch):
    pytest.importorskip("distributed")
    from distributed import Client

    dask = os.path.join(os.path.dirname(sys.executable), "dask")
    if not os.path.exists(dask):
        pytest.skip("no dask command beside this Python")
    address = f"tcp://127.0.0.1:{_free_port()}"
    config = tmp_path / "dask-config"  # the worker setting docs/experiments.md advises
    config.mkdir()
    (config / "minits.yaml").write_text(
        "distributed:\n  nanny:\n    pre-spawn-environ:\n      MALLOC_TRIM_THRESHOLD_: null\n")
    env = {**os.environ, **{name: "1" for name in sweep_tasks.BLAS_ENV},
           "DASK_CONFIG": str(config)}
    (tmp_path / "workers").mkdir()  # the workers run elsewhere than this process
    quiet = dict(env=env, cwd=tmp_path / "workers", stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
    monkeypatch.chdir(tmp_path)
    processes = []
    try:
        processes.append(subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port",
                                           address.rsplit(":", 1)[1], "--no-dashboard"], **quiet))
        processes.append(subprocess.Popen([dask, "worker", address, "--nworkers", "2",
                                           "--nthreads", "1", "--host", "127.0.0.1",
                                           "--no-dashboard"], **quiet))
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=30)
            # a relative --out: the tasks name their files by absolute paths
            assert cli.main([*SWEEP_ARGS, "--scheduler", address, "--out", "short"]) == 0
            assert_same_results(local_runs["short"], str(tmp_path / "short"))
            code, killed = _sweep_killing_a_worker(client, address, str(tmp_path / "killed"))
    finally:
        _stop(processes)
    assert killed and code == 0
    _assert_every_run_once(str(tmp_path / "killed"), local_runs["long"])
