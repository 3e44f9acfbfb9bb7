"""The same seed gives the same numbers whatever --jobs and --threads are (issue 12):
every run trains with one BLAS thread, in this process (--jobs 1) as in a worker
(--jobs 2), and its own threads (--threads: a convolutional network's batch in chunks)
never change its numbers, so the result files of --jobs 1, --jobs 2, --threads 2 and a
resumed sweep are identical, array for array (timings aside). --threads reaches each
run as the threads of its FastSequential, while BLAS stays at one thread. The
implementation (--impl) is part of a run's configuration: a run folder never mixes the
two."""

import json
import os
import queue
import threading

import pytest
from helpers import SWEEP_ARGS, assert_same_results, blas_threads, result_arrays, tiny_dataset

from minits import cli
from minits.experiments import Experiment, executor, plan, presets, run_experiment
from minits.experiments import data as experiment_data
from minits.experiments.tasks import Outcome, Task, one_blas_thread, run_task
from minits.fast import split
from minits.training import RunConfig, build, checkpoint, loop

pytestmark = pytest.mark.usefixtures("offline")

SHORT = [*SWEEP_ARGS, "--seeds", "1", "--iterations", "4", "--eval-every", "2", "--jobs", "1"]
"""One seed of each variant, four steps, in this process."""


def test_jobs_1_jobs_2_and_a_resumed_sweep_give_identical_result_files(tmp_path):
    one, two, resumed = (str(tmp_path / n) for n in ("one", "two", "resumed"))
    assert cli.main([*SWEEP_ARGS, "--jobs", "1", "--out", one]) == 0
    assert cli.main([*SWEEP_ARGS, "--jobs", "2", "--out", two]) == 0
    assert_same_results(one, two)

    # resumed: one run stopped after 13 steps (a checkpoint), one finished, two not
    # started; the rest with --jobs 2
    exp = presets.compare("digits", etas=(0.01,), variants=("one-scale", "two-scale"), seeds=2,
                          iterations=40, eval_every=20, hidden=(256,))
    tasks = plan(exp, resumed).tasks
    steps = []

    class Stop:
        def is_set(self):
            return len(steps) >= 13

    with one_blas_thread():
        assert run_task(tasks[3], stop=Stop(), progress=steps.append).status == "interrupted"
        assert run_task(tasks[0]).status == "done"
    assert checkpoint.saved_iteration(tasks[3].checkpoint_path) == 13
    assert cli.main([*SWEEP_ARGS, "--jobs", "2", "--out", resumed]) == 0
    assert_same_results(one, resumed)


def test_threads_give_identical_result_files(tmp_path, monkeypatch):
    """A LeNet-5 sweep whose batches the fast network splits in two chunks: on one
    thread and on two (the chunks side by side), the same result files, bit for bit."""
    monkeypatch.setattr(experiment_data, "_DATA", {})
    for split_name, n, seed in (("train", 160, 1), ("test", 40, 2)):
        experiment_data.remember_split("tiny16", split_name, None,
                                       tiny_dataset(n, split_name, seed, side=16, name="tiny16"))
    exp = Experiment(name="tiny16", title="threads", dataset="tiny16",
                     variants=(("one-scale", None), ("two-scale", 0.01)), seeds=(0,),
                     run={"model": "lenet5", "batch_size": 64, "iterations": 6,
                          "eval_every": 3, "dtype": "float64", "impl": "fast"})
    config = exp.configs()[0]
    model = build.build_model(config, 3, (1, 16, 16), threads=2)
    assert split.split_count(model.layers, config.batch_size) == 2  # the batch is split
    outs = [str(tmp_path / f"threads{n}") for n in (1, 2)]
    for n, out in zip((1, 2), outs, strict=True):
        _, stopped, outcomes = run_experiment(exp, out, show_progress=False, threads=n)
        assert not stopped and [o.status for o in outcomes] == ["done", "done"]
    assert_same_results(*outs, runs=2)


def test_worker_processes_run_the_implementation_of_the_sweep(tmp_path):
    """--impl plain --jobs 2: the spawned workers compute with the plain implementation
    (training.train builds what RunConfig.impl names): the numbers of --impl plain
    --jobs 1, which differ from the fast implementation's in the last bits."""
    args = [*SWEEP_ARGS, "--seeds", "1", "--iterations", "20", "--hidden", "64"]
    out = {name: str(tmp_path / name) for name in ("plain1", "plain2", "fast1")}
    assert cli.main([*args, "--impl", "plain", "--jobs", "1", "--out", out["plain1"]]) == 0
    assert cli.main([*args, "--impl", "plain", "--jobs", "2", "--out", out["plain2"]]) == 0
    assert cli.main([*args, "--impl", "fast", "--jobs", "1", "--out", out["fast1"]]) == 0
    assert_same_results(out["plain1"], out["plain2"], runs=2)
    with pytest.raises(AssertionError):
        assert_same_results(out["plain1"], out["fast1"], runs=2)


def test_a_folder_never_mixes_the_two_implementations(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert cli.main([*SHORT, "--impl", "fast", "--out", out]) == 0
    assert cli.main([*SHORT, "--impl", "plain", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "impl: 'fast' on disk vs 'plain' now" in err and "another --out" in err


def test_the_implementation_is_recorded_in_config_json_and_the_table(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main([*SHORT, "--impl", "plain", "--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["experiment"]["run"]["impl"] == "plain"
    assert {c["impl"] for c in saved["configurations"]} == {"plain"}
    assert "plain implementation" in (out / "summary.txt").read_text()
    assert "plain implementation" in capsys.readouterr().out
    found = result_arrays(str(out))
    assert len(found) == 2
    for arrays in found.values():
        assert json.loads(str(arrays["config_json"]))["impl"] == "plain"


def test_the_default_jobs_is_the_number_of_cores():
    args = cli.build_parser().parse_args(["demo"])
    assert args.jobs == executor.available_cores() >= 1
    assert args.threads == 1 and not hasattr(args, "blas_threads")


def test_threads_reach_the_runs(tmp_path, monkeypatch):
    """--threads N: each run of this process builds its network with N threads (the
    FastSequential of --impl fast; the plain network has none), while BLAS is held at one
    thread; afterwards BLAS is as it was."""
    seen = []
    real = loop.build_model

    def spy(config, num_classes, image_shape, threads=1):
        model = real(config, num_classes, image_shape, threads)
        seen.append((config.impl, threads, type(model).__name__,
                     getattr(model, "threads", None), blas_threads()))
        return model

    monkeypatch.setattr(loop, "build_model", spy)
    before = blas_threads()
    assert cli.main([*SHORT, "--variants", "two-scale", "--impl", "fast",
                     "--out", str(tmp_path / "a")]) == 0
    assert cli.main([*SHORT, "--variants", "two-scale", "--impl", "fast", "--threads", "3",
                     "--out", str(tmp_path / "b")]) == 0
    assert cli.main([*SHORT, "--variants", "two-scale", "--impl", "plain", "--threads", "2",
                     "--out", str(tmp_path / "c")]) == 0
    assert seen == [("fast", 1, "FastSequential", 1, {1}), ("fast", 3, "FastSequential", 3, {1}),
                    ("plain", 2, "Sequential", None, {1})]
    assert blas_threads() == before


def test_a_pool_worker_holds_one_blas_thread_and_gives_its_runs_the_threads(monkeypatch):
    """What _worker_init sets up for a worker's whole life: BLAS at one thread, whatever
    --threads is, and --threads kept for the runs: _worker_run gives every run it (here
    in this process, then undone), and sends the run's log lines and progress to the
    parent's queue."""
    import signal

    monkeypatch.setattr(signal, "signal", lambda *a: None)  # keep this process's Ctrl-C
    monkeypatch.setattr(executor, "_WORKER", {})
    calls = []

    def fake_run_task(task, stop, progress, log, threads):
        calls.append((task, stop.is_set(), threads, blas_threads()))
        progress(3)
        log("a line")
        return Outcome(task.config.key, task.config.seed, "done")

    monkeypatch.setattr(executor, "run_task", fake_run_task)
    messages = queue.Queue()
    executor._worker_init(threading.Event(), messages, os.getppid(), 2)
    try:
        assert blas_threads() == {1} and executor._WORKER["threads"] == 2
        task = Task(RunConfig(dataset="digits", variant="one-scale", iterations=5), "r", "c")
        outcome = executor._worker_run(task)
    finally:
        executor._WORKER["limits"].restore_original_limits()
    assert outcome.status == "done" and calls == [(task, False, 2, {1})]
    assert [messages.get_nowait() for _ in range(2)] == [("log", "a line"), ("progress", 3)]
