"""The minits command: argument checks before any work, the offline demo, reports,
Ctrl-C and resume through the real command, and the real-data MNIST check (Fig. 9)."""

import csv
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import needs_digits, shared_data_dir

from minits import cli, datasets
from minits.experiments import data as experiment_data
from minits.training import results, train
from minits.training.config import IMPL_ENV

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def minits_env(**extra):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", **extra}
    env.pop("MINITS_DATA", None)
    return env


# ----------------------------------------------------------------------------- bad arguments

@pytest.mark.parametrize("argv,message", [
    (["reproduce", "mnist9"], "invalid choice: 'mnist9'"),
    (["reproduce", "mnist", "--etas", "0"], "eta must be a finite number > 0"),
    (["reproduce", "mnist", "--etas", "0.1,-1"], "eta must be a finite number > 0"),
    (["reproduce", "mnist", "--etas", "abc"], "eta must be a number"),
    (["reproduce", "mnist", "--seeds", "0"], "must be >= 1"),
    (["reproduce", "mnist", "--jobs", "0"], "must be >= 1"),
    (["reproduce", "mnist", "--preset", "huge"], "invalid choice: 'huge'"),
    (["compare", "--dataset", "mnist", "--superclass"], "needs a data set with coarse labels"),
    (["train", "--dataset", "cifar10", "--superclass"], "needs a data set with coarse labels"),
    (["train", "--dataset", "mnist", "--variant", "one-scale", "--eta", "0.1"],
     "--eta does not apply"),
    (["train", "--dataset", "mnist", "--eta", "-3"], "must be a finite number > 0"),
    (["train", "--dataset", "imagenet"], "invalid choice: 'imagenet'"),
    (["demo", "--gain", "0"], "must be a finite number > 0"),
    (["demo", "--iterations", "-5"], "must be >= 1"),
    (["train", "--dataset", "digits", "--impl", "quick"], "invalid choice: 'quick'"),
    # the old alias of --threads is gone
    (["compare", "digits", "--blas-threads", "2"],
     "unrecognized arguments: --blas-threads 2"),
    (["train", "--dataset", "digits", "--separation-scale", "frozen"], "invalid choice"),
    (["train", "--dataset", "digits", "--separation-scale", "trained"],
     "--separation-scale applies to the separation loss (Eq. (17)) only"),
    (["reproduce", "mnist", "--separation-scale", "live"], "--separation-scale applies"),
])
def test_bad_arguments_stop_before_any_work(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--out", str(out)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_missing_data_is_a_clear_error_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MINITS_DATA", raising=False)
    monkeypatch.setenv("MINITS_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code = cli.main(["reproduce", "mnist", "--data-dir", str(tmp_path / "nothing"),
                     "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "minits: error:" in err and "mnist" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("given, expected", [([], "fixed"), (["--separation-scale", "trained"],
                                                             "trained")])
def test_separation_scale_reaches_the_runs_and_the_table(given, expected):
    """reproduce cifar10-separation: the first scale of Eq. (17) (default fixed) is in every
    separation run's configuration (config.json) and in the summary's header."""
    from minits.experiments import summary

    args = cli.build_parser().parse_args(["reproduce", "cifar10-separation", *given])
    exp, _ = cli.experiment_from_args(args)
    configs = exp.configs()
    assert {c.separation_scale for c in configs if c.variant == "separation"} == {expected}
    assert {c.separation_scale for c in configs if c.variant != "separation"} == {None}
    text = summary.format_table(summary.summarize(exp, {}, missing=len(exp.runs())))
    assert f"Eq. (17): first scale R {expected} (docs/decisions.md#D11)" in text
    args = cli.build_parser().parse_args(["train", "--dataset", "digits", "--variant",
                                          "separation", *given])
    assert cli.experiment_from_args(args)[0].configs()[0].separation_scale == expected


def test_impl_reaches_every_run():
    for impl in ("plain", "fast"):
        for argv in (["demo"], ["reproduce", "mnist"], ["compare", "--dataset", "mnist"],
                     ["train", "--dataset", "mnist"]):
            args = cli.build_parser().parse_args([*argv, "--impl", impl])
            exp, _ = cli.experiment_from_args(args)
            assert {c.impl for c in exp.runs()} == {impl}, argv


@pytest.mark.parametrize("command", ["compare", "train"])
def test_the_data_set_is_named_as_reproduce_names_its_figure(command, capsys):
    """Issue 23: one convention: `minits compare mnist`, `minits train mnist`, as
    `minits reproduce mnist`; the older --dataset still means the same."""
    def experiment(*argv):
        args = cli.parse(cli.build_parser(), [command, *argv])
        return cli.experiment_from_args(args)

    assert experiment("digits") == experiment("--dataset", "digits")
    assert experiment("digits", "--seeds", "2")[0].dataset == "digits"
    assert "DATASET" in cli.build_parser()._subparsers._group_actions[0].choices[
        command].format_usage()
    for argv, words in ((("digits", "--dataset", "mnist"), "got digits and mnist"),
                        ((), "name one data set")):
        with pytest.raises(ValueError, match=words):
            experiment(*argv)


def test_the_traditional_loss_has_one_name(capsys):
    """Issue 23: the command line names the losses as the tables do: `--variant
    traditional` (the older `one-scale` still understood), and a wrong name lists them."""
    def experiment(*argv):
        return cli.experiment_from_args(cli.parse(cli.build_parser(), list(argv)))[0]

    train = experiment("train", "digits", "--variant", "traditional")
    assert train.variants == (("one-scale", None),) and train.title == "traditional on digits"
    assert train == experiment("train", "digits", "--variant", "one-scale")
    compare = experiment("compare", "digits", "--variants", "traditional", "two-scale",
                         "--etas", "0.1")
    assert [v for v, _ in compare.variants] == ["one-scale", "two-scale"]
    assert experiment("compare", "digits").variants[0] == ("one-scale", None)
    for command in ("train", "compare"):
        usage = cli.build_parser()._subparsers._group_actions[0].choices[command].format_help()
        assert "traditional" in usage and "one-scale" not in usage, command
    with pytest.raises(SystemExit):
        experiment("train", "digits", "--variant", "tradition")
    assert "choose from traditional, two-scale" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--eta does not apply to --variant traditional"):
        experiment("train", "digits", "--variant", "traditional", "--eta", "0.1")


@pytest.mark.parametrize("argv, wrong, hint", [
    (["compare", "digits", "--job", "2"], "--job 2", "--jobs"),
    (["reproduce", "mnist", "--seed", "3"], "--seed 3", "--seeds"),
    (["train", "digits", "--varient", "fixed"], "--varient fixed", "--variant"),
    (["report", "runs/x", "--no-figure"], "--no-figure", "--no-figures"),
])
def test_an_unknown_option_is_refused_by_its_command_with_a_suggestion(tmp_path, capsys, argv,
                                                                         wrong, hint):
    """Issue 23: no prefix matching (--job is not --jobs), and an unknown option after a
    command gives that command's usage and the closest option it has."""
    out = [] if argv[0] == "report" else ["--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, *out])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: minits {argv[0]} ")
    assert f"unrecognized arguments: {wrong} (did you mean {hint}?)" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("env, given, expected", [
    (None, [], "fast"), ("plain", [], "plain"), ("fast", [], "fast"),
    ("plain", ["--impl", "fast"], "fast"), ("fast", ["--impl", "plain"], "plain"),
])
def test_impl_defaults_to_minits_impl_else_fast(monkeypatch, env, given, expected):
    """--impl wins; without it $MINITS_IMPL, read when the command runs; without that, fast."""
    if env is None:
        monkeypatch.delenv(IMPL_ENV, raising=False)
    else:
        monkeypatch.setenv(IMPL_ENV, env)
    for argv in (["demo"], ["reproduce", "mnist"], ["compare", "--dataset", "mnist"],
                 ["train", "--dataset", "mnist"]):
        args = cli.build_parser().parse_args([*argv, *given])
        exp, _ = cli.experiment_from_args(args)
        assert {c.impl for c in exp.runs()} == {expected}, argv


@pytest.mark.parametrize("argv", [["demo"], ["reproduce", "mnist"],
                                  ["compare", "--dataset", "digits"],
                                  ["train", "--dataset", "digits"]])
def test_a_bad_minits_impl_is_a_usage_error(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.setenv(IMPL_ENV, "garbage")
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == cli.EXIT_BAD_ARGS
    assert "$MINITS_IMPL must be one of ('plain', 'fast'), got 'garbage'" in \
        capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv", [["demo"], ["reproduce", "mnist"],
                                  ["compare", "--dataset", "digits"],
                                  ["train", "--dataset", "digits"]])
def test_an_impl_given_does_not_read_minits_impl(monkeypatch, argv):
    monkeypatch.setenv(IMPL_ENV, "garbage")
    args = cli.build_parser().parse_args([*argv, "--impl", "plain"])
    assert {c.impl for c in cli.experiment_from_args(args)[0].runs()} == {"plain"}


def test_a_bad_minits_impl_stops_the_command_with_a_usage_error(tmp_path):
    """`MINITS_IMPL=garbage minits compare ...`: exit 2, the usage and one line saying what
    is wrong, no traceback, nothing written."""
    out = tmp_path / "out"
    sub = subprocess.run([sys.executable, "-m", "minits", "compare", "--dataset", "digits",
                          "--out", str(out), "--no-progress"], capture_output=True, text=True,
                         env=minits_env(**{IMPL_ENV: "garbage"}), cwd=ROOT, timeout=60)
    assert sub.returncode == cli.EXIT_BAD_ARGS, sub.stderr
    assert sub.stderr.startswith("usage: ") and "Traceback" not in sub.stderr
    assert "minits: error: $MINITS_IMPL must be one of ('plain', 'fast'), got 'garbage'" \
        in sub.stderr.splitlines()
    assert sub.stdout == "" and not out.exists()


def test_a_sweep_too_large_to_plan_is_refused_at_once(tmp_path):
    """Issue 23, fault 5: `--seeds 100000000` is refused with the limit named, before the
    runs are made: exit 2 within a memory limit of 2 GiB (without the limit the plan of
    2e8 runs alone outgrows it)."""
    out = tmp_path / "out"
    limit = ("import resource, runpy, sys; "
             "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)); "
             "sys.argv = ['minits'] + sys.argv[1:]; "
             "runpy.run_module('minits', run_name='__main__')")
    sub = subprocess.run([sys.executable, "-c", limit, "compare", "--dataset", "digits",
                          "--variants", "one-scale", "two-scale", "--etas", "0.1",
                          "--seeds", "100000000", "--iterations", "1", "--out", str(out)],
                         capture_output=True, text=True, env=minits_env(), cwd=ROOT, timeout=300)
    assert sub.returncode == cli.EXIT_BAD_ARGS, sub.stderr[-2000:]
    assert "Traceback" not in sub.stderr and not out.exists()
    last = sub.stderr.splitlines()[-1]
    assert "100000000" in last and "at most" in last and "runs" in last


def test_help_lists_the_figures():
    text = cli.build_parser().format_help()
    assert "reproduce" in text and "demo" in text
    sub = subprocess.run([sys.executable, "-m", "minits", "reproduce", "--help"],
                         capture_output=True, text=True, env=minits_env(), cwd=ROOT, timeout=60)
    assert sub.returncode == 0
    for name in ("mnist", "cifar10", "cifar10-fixed", "cifar10-separation", "cifar100"):
        assert name in sub.stdout


# ----------------------------------------------------------------------------- demo, report

def test_demo_runs_offline_and_writes_table_and_figures(tmp_path, capsys, monkeypatch):
    needs_digits()
    monkeypatch.delenv("MINITS_DATA", raising=False)
    monkeypatch.setenv("MINITS_OFFLINE", "1")
    out = tmp_path / "demo"
    code = cli.main(["demo", "--out", str(out), "--seeds", "2", "--iterations", "40",
                     "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "traditional" in printed and "two-scale η=0.01" in printed
    rows = read_csv(out / "summary.csv")
    assert rows[0]["variant"] == "one-scale" and {r["variant"] for r in rows} >= {"two-scale"}
    assert all(r["seeds"] == "2" for r in rows)
    for r in rows:
        assert 0 <= float(r["train_acc_mean"]) <= 1 and float(r["test_acc_std"]) >= 0
    for name in ("accuracy", "close_enough", "topk", "histograms", "scales", "reliability"):
        png = out / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert (out / "summary.txt").read_text().splitlines()[0].startswith("Demo")
    assert not (out / ".lock").exists()

    # report: the same table again, from the files alone
    assert cli.main(["report", str(out), "--no-figures"]) == 0
    assert "two-scale η=0.01" in capsys.readouterr().out


def test_report_of_a_folder_that_is_not_a_run_folder(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["report", str(tmp_path)])
    assert "not a run folder" in capsys.readouterr().err


# ----------------------------------------------------------------------------- Ctrl-C

def _results(out):
    found = {}
    for root, _, names in os.walk(os.path.join(out, "runs")):
        for name in names:
            if name.endswith(".npz") and not name.endswith(".ckpt.npz"):
                found[os.path.relpath(os.path.join(root, name), out)] = os.path.join(root, name)
    return found


def test_ctrl_c_then_rerun_loses_nothing(tmp_path):
    """SIGINT to `minits ... --jobs 2` mid-sweep: the runs checkpoint and stop (exit 130);
    the same command again completes, and every number equals an uninterrupted run."""
    needs_digits()
    args = ["compare", "--dataset", "digits", "--etas", "0.01", "--variants", "one-scale",
            "two-scale", "--seeds", "2", "--iterations", "1000", "--eval-every", "500",
            "--hidden", "16", "--no-figures"]
    env = minits_env(MINITS_OFFLINE="1")
    cut = str(tmp_path / "cut")
    proc = subprocess.Popen([sys.executable, "-m", "minits", *args, "--jobs", "2", "--out", cut],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        ckpts = [n for _, _, names in os.walk(cut) for n in names if n.endswith(".ckpt.npz")]
        if ckpts:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Stopping" in stderr and "resume" in stderr
    interrupted = _results(cut)
    assert len(interrupted) < 4

    again = subprocess.run([sys.executable, "-m", "minits", *args, "--out", cut], env=env,
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert re.search(r"[1-9] to resume", again.stderr), again.stderr
    finished = _results(cut)
    assert len(finished) == 4
    for name, path in interrupted.items():  # finished before Ctrl-C: not computed again
        assert os.stat(finished[name]).st_mtime_ns == os.stat(path).st_mtime_ns

    # every number equals an uninterrupted run of the same configuration
    train_set, test_set = datasets.load("digits", "train"), datasets.load("digits", "test")
    for name, path in finished.items():
        resumed = results.load(path)
        whole = train(resumed.config, train_set, test_set)
        for key, value in whole.history.arrays.items():
            assert np.array_equal(value, resumed.history[key], equal_nan=True), (name, key)
        for key, value in whole.test.items():
            assert np.array_equal(value, resumed.test[key], equal_nan=True), (name, key)


# ----------------------------------------------------------------------------- real data

@pytest.mark.slow
def test_reproduce_mnist_quick_on_real_data(tmp_path, capsys):
    """The CI check of Fig. 9: a short MNIST sweep, 2 seeds, runs, writes its table and
    figures, and eta = 100 is the traditional loss on every batch (Sec. 3.3)."""
    data = shared_data_dir()
    if data is None:
        pytest.skip("MNIST not available: set MINITS_DATA to a folder holding mnist/ "
                    "(docs/data.md)")
    out = tmp_path / "mnist"
    code = cli.main(["reproduce", "mnist", "--preset", "quick", "--seeds", "2",
                     "--iterations", "200", "--eval-every", "50", "--etas", "0.01", "100",
                     "--jobs", "2", "--data-dir", data, "--out", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "η=100 identical to traditional on every batch and test evaluation: yes (2/2 seeds)" \
        in printed
    rows = {(r["variant"], r["eta"]): r for r in read_csv(out / "summary.csv")}
    assert set(rows) == {("one-scale", ""), ("plain-ce", ""), ("two-scale", "0.01"),
                         ("two-scale", "100")}
    assert rows[("two-scale", "100")]["identical_to_traditional"] == "2/2"
    assert float(rows[("two-scale", "100")]["delta_train_pp"]) == 0
    assert rows[("two-scale", "0.01")]["paper_delta_train_pp"] == "7.1"
    for r in rows.values():
        assert r["seeds"] == "2" and r["scale_alarms"] == "0"
        assert float(r["test_acc_mean"]) > 0.8  # 200 SGD steps learn MNIST well past chance
        for column in ("test_ece_mean", "test_ece_std", "test_mce_mean", "test_mce_std",
                       "test_ece_temperature_mean"):
            assert 0 <= float(r[column]) <= 1, column
    assert "calibration: traditional ECE" in printed
    for name in ("accuracy", "close_enough", "topk", "histograms", "final_vs_eta",
                 "reliability"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    base = results.load(out / "runs" / "one-scale" / "seed-001.npz")
    same = results.load(out / "runs" / "two-scale_eta=100" / "seed-001.npz")
    assert np.array_equal(base.history["batch_acc"], same.history["batch_acc"])
    assert np.array_equal(base.history["test_acc"], same.history["test_acc"])


def test_demo_without_scikit_learn_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(experiment_data, "_DATA", {})
    monkeypatch.setattr(experiment_data, "_TEST_INPUTS", {})
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import fails
    monkeypatch.setitem(sys.modules, "sklearn", None)
    code = cli.main(["demo", "--out", str(tmp_path / "demo")])
    assert code == 2
    assert "pip install minits[digits]" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()
