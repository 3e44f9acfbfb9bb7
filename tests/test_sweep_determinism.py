"""The same seed gives the same numbers whatever --jobs is (issue 12): every run trains
with one BLAS thread, in this process (--jobs 1) as in a worker (--jobs 2), so the
result files of --jobs 1, --jobs 2 and a resumed sweep are identical, array for array
(timings aside). The implementation (--impl) is part of a run's configuration: a run
folder never mixes the two."""

import contextlib
import os

import numpy as np
import pytest
import threadpoolctl

import minits as mt
from minits import cli
from minits.experiments import executor, plan, presets
from minits.training import checkpoint

# hidden 256: matrix products large enough for a multi-threaded BLAS to split them
# (with the BLAS threads of this process, --jobs 1 gave other numbers than --jobs 2)
ARGS = ["compare", "--dataset", "digits", "--etas", "0.01", "--variants", "one-scale",
        "two-scale", "--seeds", "2", "--iterations", "40", "--eval-every", "20", "--hidden",
        "256", "--no-progress", "--no-figures"]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn")
    monkeypatch.delenv("MINITS_DATA", raising=False)
    monkeypatch.setenv("MINITS_OFFLINE", "1")
    monkeypatch.setattr(executor, "_DATA", {})
    monkeypatch.setattr(executor, "_TEST_INPUTS", {})


def result_arrays(out):
    """{relative path: {name: array}} of every results file, timings aside."""
    found = {}
    for root, _, names in os.walk(os.path.join(out, "runs")):
        for name in names:
            if name.endswith(".npz") and not name.endswith(".ckpt.npz"):
                path = os.path.join(root, name)
                with np.load(path) as f:
                    found[os.path.relpath(path, out)] = {k: f[k] for k in f.files
                                                         if k != "history_elapsed"}
    return found


def assert_same_results(a, b, runs=4):
    ra, rb = result_arrays(a), result_arrays(b)
    assert sorted(ra) == sorted(rb) and len(ra) == runs
    for path, arrays in ra.items():
        assert sorted(arrays) == sorted(rb[path]), path
        for name, value in arrays.items():
            other = rb[path][name]
            assert value.dtype == other.dtype and value.shape == other.shape, (path, name)
            assert value.tobytes() == other.tobytes(), (path, name)


def test_jobs_1_jobs_2_and_a_resumed_sweep_give_identical_result_files(tmp_path):
    one, two, resumed = (str(tmp_path / n) for n in ("one", "two", "resumed"))
    assert cli.main([*ARGS, "--jobs", "1", "--out", one]) == 0
    assert cli.main([*ARGS, "--jobs", "2", "--out", two]) == 0
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

    with executor.run_threads(1):
        assert executor.run_task(tasks[3], stop=Stop(), progress=steps.append).status == \
            "interrupted"
        assert executor.run_task(tasks[0]).status == "done"
    assert checkpoint.saved_iteration(tasks[3].checkpoint_path) == 13
    assert cli.main([*ARGS, "--jobs", "2", "--out", resumed]) == 0
    assert_same_results(one, resumed)


def test_worker_processes_run_the_implementation_of_the_sweep(tmp_path):
    """--impl plain --jobs 2: the spawned workers compute with the plain implementation
    (training.train enters RunConfig.impl): the numbers of --impl plain --jobs 1, which
    differ from the fast implementation's in the last bits."""
    args = [*ARGS, "--seeds", "1", "--iterations", "20", "--hidden", "64"]
    out = {name: str(tmp_path / name) for name in ("plain1", "plain2", "fast1")}
    assert cli.main([*args, "--impl", "plain", "--jobs", "1", "--out", out["plain1"]]) == 0
    assert cli.main([*args, "--impl", "plain", "--jobs", "2", "--out", out["plain2"]]) == 0
    assert cli.main([*args, "--impl", "fast", "--jobs", "1", "--out", out["fast1"]]) == 0
    assert_same_results(out["plain1"], out["plain2"], runs=2)
    with pytest.raises(AssertionError):
        assert_same_results(out["plain1"], out["fast1"], runs=2)


def test_a_folder_never_mixes_the_two_implementations(tmp_path, capsys):
    out = str(tmp_path / "out")
    args = [*ARGS, "--seeds", "1", "--iterations", "4", "--eval-every", "2", "--jobs", "1"]
    assert cli.main([*args, "--impl", "fast", "--out", out]) == 0
    assert cli.main([*args, "--impl", "plain", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "impl: 'fast' on disk vs 'plain' now" in err and "another --out" in err


def test_the_implementation_is_recorded_in_config_json_and_the_table(tmp_path, capsys):
    import json

    out = tmp_path / "out"
    args = [*ARGS, "--seeds", "1", "--iterations", "4", "--eval-every", "2", "--jobs", "1"]
    assert cli.main([*args, "--impl", "plain", "--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["experiment"]["run"]["impl"] == "plain"
    assert {c["impl"] for c in saved["configurations"]} == {"plain"}
    assert "plain implementation" in (out / "summary.txt").read_text()
    assert "plain implementation" in capsys.readouterr().out


def test_the_default_jobs_is_the_number_of_cores():
    args = cli.build_parser().parse_args(["demo"])
    assert args.jobs == executor.available_cores() >= 1
    assert args.blas_threads == 1


def test_threads_reach_the_runs(tmp_path, monkeypatch):
    """--threads N (alias --blas-threads): the runs of this process train inside
    run_threads(N): minits' own threads (the batch split) N, BLAS's one."""
    seen = []
    real = executor.run_threads

    @contextlib.contextmanager
    def spy(n):
        with real(n):
            blas = {d["num_threads"] for d in threadpoolctl.threadpool_info()
                    if d["user_api"] == "blas"}
            seen.append((n, mt.get_num_threads(), blas))
            yield

    monkeypatch.setattr(executor, "run_threads", spy)
    args = [*ARGS, "--seeds", "1", "--iterations", "4", "--eval-every", "2", "--jobs", "1"]
    assert cli.main([*args, "--out", str(tmp_path / "a")]) == 0
    assert cli.main([*args, "--blas-threads", "2", "--out", str(tmp_path / "b")]) == 0
    assert cli.main([*args, "--threads", "3", "--out", str(tmp_path / "c")]) == 0
    assert seen == [(1, 1, {1}), (2, 2, {1}), (3, 3, {1})]
    assert mt.get_num_threads() == 1


def test_a_pool_worker_holds_one_blas_thread_and_the_run_threads(monkeypatch):
    """What _worker_init sets up for a worker's whole life: BLAS at one thread, minits'
    threads at --threads (here in this process, then undone)."""
    import signal

    monkeypatch.setattr(signal, "signal", lambda *a: None)  # keep this process's Ctrl-C
    monkeypatch.setattr(executor, "_WORKER", {})
    executor._worker_init(None, None, os.getpid(), 2)
    try:
        blas = {d["num_threads"] for d in threadpoolctl.threadpool_info()
                if d["user_api"] == "blas"}
        assert blas == {1} and mt.get_num_threads() == 2
    finally:
        executor._WORKER["limits"].restore_original_limits()
        mt.set_num_threads(1)
