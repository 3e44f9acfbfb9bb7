"""Faults a new user hit through the command line (issue 12): a corrupt results file
under `minits report`, runs that can never finish (no images, a batch larger than the
data set, divergence), a --data-dir that points nowhere. Each ends in one clear
message that says what to change, and none says "run the same command again" unless
the runs were merely interrupted."""

import dataclasses
import errno
import json
import os

import numpy as np
import pytest
from datasets_files import write_idx_pair
from helpers import needs_digits

from minits import cli
from minits.datasets import catalog
from minits.experiments import data as experiment_data

RUN_AGAIN = "run the same command again"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """tmp_path as the working folder of an offline command: no $MINITS_DATA, no downloads,
    a user cache of its own, an empty data cache (what conftest's `offline` does, without
    its need of scikit-learn: not every test here uses the digits)."""
    monkeypatch.delenv("MINITS_DATA", raising=False)
    monkeypatch.setenv("MINITS_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(experiment_data, "_DATA", {})
    monkeypatch.setattr(experiment_data, "_TEST_INPUTS", {})
    return tmp_path


def small_digits_sweep(out, *extra):
    return cli.main(["compare", "--dataset", "digits", "--etas", "0.1", "--variants",
                     "one-scale", "two-scale", "--seeds", "1", "--iterations", "20",
                     "--eval-every", "10", "--hidden", "8", "--jobs", "1", "--no-progress",
                     "--no-figures", "--out", str(out), *extra])


# ----------------------------------------------------------------------------- report

@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_report_of_a_corrupt_results_file_is_one_clear_line(workdir, capsys, damage):
    needs_digits()
    out = workdir / "sweep"
    assert small_digits_sweep(out) == 0
    path = out / "runs" / "two-scale_eta=0.1" / "seed-000.npz"
    data = path.read_bytes()
    path.write_bytes({"truncate": data[:len(data) // 2], "garbage": os.urandom(300),
                      "empty": b""}[damage])
    capsys.readouterr()
    assert cli.main(["report", str(out), "--no-figures"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minits: error: ")
    assert str(path) in lines[0] and "Traceback" not in captured.err
    assert RUN_AGAIN not in captured.err


def test_report_of_a_corrupt_config_json(workdir, capsys):
    needs_digits()
    out = workdir / "sweep"
    assert small_digits_sweep(out) == 0
    (out / "config.json").write_text('{"experiment": {"name": ')
    capsys.readouterr()
    assert cli.main(["report", str(out), "--no-figures"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out / "config.json") in err


def test_report_refuses_a_config_json_that_contradicts_the_results(workdir, capsys):
    """Issue 23, fault 4: an edited config.json (99 iterations at lr 0.5 for runs that
    trained 20 at lr 0.1) is refused, naming the file and the fields; summary.txt stays."""
    needs_digits()
    out = workdir / "sweep"
    assert small_digits_sweep(out) == 0
    summary_before = (out / "summary.txt").read_bytes()
    saved = json.loads((out / "config.json").read_text())
    saved["experiment"]["run"].update(iterations=99, lr=0.5)
    (out / "config.json").write_text(json.dumps(saved))
    capsys.readouterr()
    assert cli.main(["report", str(out), "--no-figures"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and str(out / "config.json") in lines[0]
    assert "iterations: 99" in lines[0] and "20 in" in lines[0] and "lr: 0.5" in lines[0]
    assert "99 iterations" not in captured.out
    assert (out / "summary.txt").read_bytes() == summary_before


@pytest.mark.parametrize("edit", ["unknown field", "missing field", "no list", "bad seeds"])
def test_report_names_config_json_whatever_is_wrong_in_it(workdir, capsys, edit):
    """Issue 23 (smaller): an unknown or missing field of a configuration, a list that is
    none, seeds that are not numbers: one line naming config.json, rc 2."""
    needs_digits()
    out = workdir / "sweep"
    assert small_digits_sweep(out) == 0
    saved = json.loads((out / "config.json").read_text())
    {"unknown field": lambda: saved["configurations"][0].update(colour=1),
     "missing field": lambda: saved["configurations"][0].pop("standardize"),
     "no list": lambda: saved.update(configurations=5),
     "bad seeds": lambda: saved["experiment"].update(seeds=["a"])}[edit]()
    (out / "config.json").write_text(json.dumps(saved))
    capsys.readouterr()
    assert cli.main(["report", str(out), "--no-figures"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out / "config.json") in err and "Traceback" not in err


# ----------------------------------------------------------------------------- never finishing

def test_a_data_set_without_images(workdir, capsys):
    """MNIST files whose header says 0 images: refused before any work, naming them."""
    folder = workdir / "data" / "mnist"
    for split in ("train", "test"):
        write_idx_pair(folder, split, np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8))
    code = cli.main(["train", "--dataset", "mnist", "--data-dir", str(workdir / "data"),
                     "--out", str(workdir / "out"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "holds no images" in err and str(folder) in err and RUN_AGAIN not in err
    assert not (workdir / "out").exists()


def test_a_batch_larger_than_the_data_set(workdir, capsys):
    needs_digits()
    code = cli.main(["train", "--dataset", "digits", "--batch-size", "2000", "--out",
                     str(workdir / "out"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--batch-size 2000 is larger than the training set of digits (1437 images)" in err
    assert "choose --batch-size 1437 or less" in err and RUN_AGAIN not in err
    assert not (workdir / "out").exists()


def test_a_model_that_cannot_take_the_images(workdir, capsys):
    """Issue 23, fault 12: LeNet-5 on the 8x8 digits is refused before any work (rc 2),
    naming the model, the data set and its image size; no run folder is made."""
    needs_digits()
    code = cli.main(["train", "--dataset", "digits", "--model", "lenet5", "--out",
                     str(workdir / "out"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("minits: error: ")
    assert "lenet5" in err and "digits" in err and "1x8x8" in err and "--model mlp" in err
    assert not (workdir / "out").exists()


def test_a_diverging_run_says_to_lower_the_learning_rate(workdir, capsys):
    """--lr 1e30 in this process (--jobs 1), figures drawn: no raw numpy RuntimeWarning
    (pytest turns them into errors), the table flags the run and says what to change."""
    needs_digits()
    out = workdir / "out"
    code = cli.main(["train", "--dataset", "digits", "--lr", "1e30", "--iterations", "30",
                     "--eval-every", "10", "--jobs", "1", "--out", str(out), "--no-progress"])
    assert code == 0
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "diverged" in captured.err and "lower the learning rate (--lr, now 1e+30)" in text
    assert "(!) two-scale η=0.01: diverged (inf or NaN) in 1 seed(s)" in captured.out
    assert RUN_AGAIN not in text
    assert (out / "runs" / "two-scale_eta=0.01" / "seed-000.npz").exists()
    assert (out / "figures" / "accuracy.png").stat().st_size > 1000
    assert cli.main(["report", str(out), "--no-figures"]) == 0  # the table again, no error
    assert "diverged (inf or NaN)" in capsys.readouterr().out


def test_interrupted_runs_keep_the_run_again_advice(workdir, capsys, monkeypatch):
    """The advice is for runs that stopped early and resume: a run folder with a run
    that has no results yet."""
    needs_digits()
    out = workdir / "sweep"
    assert small_digits_sweep(out) == 0
    os.unlink(out / "runs" / "two-scale_eta=0.1" / "seed-000.npz")
    capsys.readouterr()
    assert cli.main(["report", str(out), "--no-figures"]) == 0
    assert "1 run(s) not finished: run the same command again" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["compare", "report"])
def test_a_ctrl_c_while_the_figures_are_drawn_is_one_line(workdir, capsys, monkeypatch,
                                                          command):
    """Issue 23 (smaller): a Ctrl-C after the runs (a second one, once the sweep has
    stopped; or during `report`) ends the command with one line and status 130, not a
    KeyboardInterrupt traceback; the run folder keeps everything."""
    needs_digits()
    from minits import plots

    out = workdir / "sweep"
    if command == "report":
        assert small_digits_sweep(out) == 0

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(plots, "draw_all", interrupted)
    capsys.readouterr()
    argv = ["report", str(out)]
    if command == "compare":  # small_digits_sweep's, with the figures
        argv = ["compare", "--dataset", "digits", "--etas", "0.1", "--variants", "one-scale",
                "two-scale", "--seeds", "1", "--iterations", "20", "--eval-every", "10",
                "--hidden", "8", "--jobs", "1", "--no-progress", "--out", str(out)]
    try:
        code = cli.main(argv)
    except KeyboardInterrupt:
        pytest.fail("the KeyboardInterrupt escaped (a traceback on the terminal)")
    assert code == cli.EXIT_INTERRUPTED
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("aborted: ")
    assert len(list((out / "runs").glob("*/seed-000.npz"))) == 2


def test_a_failed_run_is_not_told_to_run_again(workdir, capsys, monkeypatch):
    """A run that ends in an error (here: a broken loss) has no results; the table says
    so, without the advice meant for interrupted runs."""
    needs_digits()
    from minits.training import loop

    def broken(*args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(loop, "build_loss", broken)
    assert small_digits_sweep(workdir / "sweep") == 1
    captured = capsys.readouterr()
    assert "2 run(s) ended in an error" in captured.out and RUN_AGAIN not in captured.out
    assert "FAILED: one-scale seed 0: RuntimeError: a bug" in captured.err


def test_a_data_dir_pointing_nowhere_leaves_no_folders(workdir, capsys, monkeypatch):
    """Downloads allowed, every mirror failing: a clear error, no empty folders."""
    monkeypatch.setenv("MINITS_OFFLINE", "0")
    mnist = dataclasses.replace(catalog.MNIST, mirrors=((workdir / "none").as_uri() + "/",))
    monkeypatch.setitem(catalog.SOURCES, "mnist", mnist)
    code = cli.main(["train", "--dataset", "mnist", "--data-dir", str(workdir / "nothing"),
                     "--out", str(workdir / "out"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "minits: error:" in err and "MNIST (train split) not found" in err
    assert not (workdir / "nothing").exists() and not (workdir / "out").exists()


# ----------------------------------------------------------------------------- writing

def _full_disk(monkeypatch, room=4096):
    """A disk with room for the small files (the lock, config.json) and none for more:
    fsync of a file larger than `room` bytes raises ENOSPC (as a full disk does at the
    latest when the data reaches it)."""
    real_fsync = os.fsync

    def fsync(fd):
        if os.fstat(fd).st_size > room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_a_full_disk_stops_the_sweep_at_the_first_failed_write(workdir, capsys, monkeypatch):
    """Issue 23, fault 7: the first run's first checkpoint fails; no other run trains, no
    figure is attempted, one line names the file and says what to do; nothing is left
    half-written."""
    needs_digits()
    from minits.experiments import tasks

    trained, real_train = [], tasks.loop.train

    def train(config, *args, **kwargs):
        trained.append(config)
        return real_train(config, *args, **kwargs)

    monkeypatch.setattr(tasks.loop, "train", train)
    _full_disk(monkeypatch)
    out = workdir / "sweep"
    code = cli.main(["compare", "--dataset", "digits", "--etas", "0.1", "--seeds", "2",
                     "--iterations", "40", "--eval-every", "20", "--jobs", "1", "--no-progress",
                     "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2 and len(trained) == 1 and "Traceback" not in captured.err
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("minits: error: ") and "No space left on device" in last
    assert str(out / "runs") in last and "finished runs are kept" in last
    assert RUN_AGAIN not in captured.err.replace(last, "")
    assert not (out / "figures").exists() and not (out / "summary.txt").exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def _read_only(monkeypatch, folder):
    """`folder` on a read-only file system: creating a file or a folder in it fails with
    EROFS (as root ignores permission bits, the mount is what makes it read-only)."""
    import tempfile

    folder = os.path.abspath(folder)
    real_mkstemp, real_mkdir = tempfile.mkstemp, os.mkdir

    def inside(path):
        return os.path.abspath(path).startswith(folder)

    def mkstemp(*args, dir=None, **kwargs):
        if inside(dir):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.path.join(dir, "x"))
        return real_mkstemp(*args, dir=dir, **kwargs)

    def mkdir(path, *args, **kwargs):
        if inside(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(os, "mkdir", mkdir)


def test_a_read_only_run_folder(workdir, capsys, monkeypatch):
    """Issue 23, fault 8: compare into a read-only folder is one line naming it (rc 2);
    report prints the table, then says it could not save it (rc 2), no traceback."""
    needs_digits()
    out = workdir / "sweep"
    assert small_digits_sweep(out) == 0
    table = (out / "summary.txt").read_text()
    capsys.readouterr()
    _read_only(monkeypatch, out)
    assert small_digits_sweep(out / "again") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("minits: error: ")
    assert str(out / "again") in err and "Read-only file system" in err
    for argv in (["report", str(out)], ["report", str(out), "--no-figures"]):
        assert cli.main(argv) == 2
        captured = capsys.readouterr()
        assert table.splitlines()[0] in captured.out and "Traceback" not in captured.err
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and "Read-only file system" in lines[0] and str(out) in lines[0]
        assert "could not save" in lines[0]
    assert (out / "summary.txt").read_text() == table


@pytest.mark.parametrize("case", ["a file", "under a file", "a long name", "empty"])
def test_an_out_that_cannot_be_a_folder(workdir, capsys, case):
    """Issue 23, fault 9 (and --out ''): refused before any work, one line naming --out,
    rc 2."""
    (workdir / "file").write_text("x")
    out = {"a file": workdir / "file", "under a file": workdir / "file" / "sub",
           "a long name": workdir / ("x" * 300) / "sub", "empty": ""}[case]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--dataset", "digits", "--iterations", "5", "--no-progress",
                  "--out", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith(
        "minits: error: --out ")
    assert (workdir / "file").read_text() == "x" and not (workdir / "runs").exists()


@pytest.mark.parametrize("case", ["a file", "a long name"])
def test_report_of_a_folder_that_cannot_be_one(workdir, capsys, case):
    """Issue 23 (fault 9, for report): a file or a name too long for the file system is
    'not a run folder', rc 2, no traceback."""
    (workdir / "file").write_text("x")
    folder = {"a file": workdir / "file", "a long name": workdir / ("x" * 300)}[case]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["report", str(folder)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{folder} is not a run folder" in err


@pytest.mark.parametrize("name", ["config.json", ".lock"])
def test_a_folder_where_a_run_folder_file_should_be(workdir, capsys, name):
    """Issue 23, fault 10: config.json or .lock a folder: report and compare say so in
    one line naming it (rc 2), no traceback, the folder left alone."""
    needs_digits()
    out = workdir / "sweep"
    assert small_digits_sweep(out) == 0
    (out / name).unlink(missing_ok=True)
    (out / name).mkdir()
    capsys.readouterr()
    commands = {"compare": lambda: small_digits_sweep(out),
                "report": lambda: cli.main(["report", str(out), "--no-figures"])}
    for command, run in commands.items():
        if name == ".lock" and command == "report":
            continue  # report takes no lock
        assert run() == 2, command
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.count("\n") == 1, (command, err)
        assert str(out / name) in err and "is a folder" in err, (command, err)
        assert (out / name).is_dir()
