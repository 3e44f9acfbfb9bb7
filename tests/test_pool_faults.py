"""A local pool whose worker process dies (issue 23, fault 6): the pool is replaced and
the sweep goes on. The run that was on the dead worker is tried once more (from its
checkpoint), runs never started are not touched, and a run that kills its worker twice
fails alone; the results are those of a sweep nobody disturbed, bit for bit."""

import glob
import multiprocessing
import os
import signal
import threading
import time

import pytest
from helpers import (
    SWEEP_ARGS,
    assert_same_results,
    disk_full_on_seed_0,
    kill_own_worker_on_seed_1,
)

from minits import cli
from minits.experiments import executor, presets, sweep
from minits.experiments.progress import progress_bar

pytestmark = pytest.mark.usefixtures("offline")

# 4 runs of ~2 s each: long enough for a worker to be killed mid-run
LONG = [*SWEEP_ARGS[:SWEEP_ARGS.index("--iterations")], "--iterations", "600",
        "--eval-every", "300", "--no-progress", "--no-figures"]


def _kill_a_worker_mid_run(out, killed, timeout=60.0):
    """Once a run has saved a checkpoint, SIGKILL one of this process's pool workers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if glob.glob(os.path.join(out, "runs", "**", "*.ckpt.npz"), recursive=True):
            workers = multiprocessing.active_children()
            if workers:
                os.kill(workers[0].pid, signal.SIGKILL)
                killed.append(workers[0].pid)
                return
        time.sleep(0.02)


def test_a_worker_killed_mid_run_is_replaced_and_nothing_is_lost(tmp_path, capsys):
    reference = str(tmp_path / "reference")
    assert cli.main([*LONG, "--jobs", "1", "--out", reference]) == 0
    out, killed = str(tmp_path / "killed"), []
    killer = threading.Thread(target=_kill_a_worker_mid_run, args=(out, killed))
    killer.start()
    try:
        code = cli.main([*LONG, "--jobs", "2", "--out", out])
    finally:
        killer.join()
    err = capsys.readouterr().err
    assert killed, "no worker was killed"
    assert code == 0 and "FAILED" not in err and "BrokenProcessPool" not in err, err
    assert_same_results(reference, out)
    assert not glob.glob(os.path.join(out, "runs", "**", "*.ckpt.npz"), recursive=True)


def test_a_run_that_kills_its_worker_twice_fails_alone(tmp_path):
    experiment = presets.compare("digits", etas=(0.1,), variants=("one-scale", "two-scale"),
                                 seeds=2, iterations=20, eval_every=10, hidden=(8,))
    out = str(tmp_path / "out")
    tasks = sweep.plan(experiment, out).tasks
    bar = progress_bar(total=80, enabled=False)
    outcomes, stopped = executor._run_pool(tasks, 2, bar, 1, work=kill_own_worker_on_seed_1)
    assert not stopped
    status = {(o.key, o.seed): (o.status, o.message) for o in outcomes}
    assert sorted(status) == sorted((t.config.key, t.config.seed) for t in tasks)
    for (key, seed), (state, message) in status.items():
        if seed == 1:
            assert state == "failed" and "its worker process died twice" in message, message
        else:
            assert state == "done", (key, message)


def test_a_full_disk_in_a_worker_stops_the_pool(tmp_path):
    """Issue 23, fault 7 with --jobs 2: the first run that cannot write stops the others
    (a checkpoint, then out), and queued runs do not start."""
    experiment = presets.compare("digits", etas=(0.1,), variants=("one-scale", "two-scale"),
                                 seeds=2, iterations=3000, eval_every=1000, hidden=(8,))
    tasks = sweep.plan(experiment, str(tmp_path / "out")).tasks
    bar = progress_bar(total=4 * 3000, enabled=False)
    outcomes, stopped = executor._run_pool(tasks, 2, bar, 1, work=disk_full_on_seed_0)
    assert stopped and any(o.fatal for o in outcomes)
    assert all(o.fatal for o in outcomes if o.seed == 0)
    assert not any(o.status == "done" for o in outcomes), [(o.key, o.status) for o in outcomes]
