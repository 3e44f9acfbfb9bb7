"""Experiments: the paper's figures as presets, sweeps into resumable run folders,
the executors and what they share (tasks, a process's data sets), the summary table
(mean ± std over seeds, paired differences, the paper's numbers beside ours), and the
structure of minits.experiments (dask_executor needs no local executor; no module
reaches into another's private names)."""

import ast
import csv
import dataclasses
import io
import math
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import files, tiny_dataset, tiny_experiment

import minits.experiments
from minits.experiments import Experiment, figure, presets, rundir, summary
from minits.experiments import data as experiment_data
from minits.experiments.sweep import plan, run_experiment
from minits.experiments.tasks import Task, longest_first, run_task
from minits.training import RunConfig, checkpoint, evaluate, results

EXPERIMENTS = Path(minits.experiments.__file__).parent


# ----------------------------------------------------------------------------- presets

def test_every_figure_has_both_presets():
    for name in presets.FIGURES:
        for preset in presets.PRESETS:
            exp = figure(name, preset)
            assert exp.variants[0] == ("one-scale", None)  # the baseline comes first
            assert exp.run["eval_every"] <= exp.iterations
            assert len(exp.runs()) == len(exp.variants) * len(exp.seeds)


def test_paper_presets_follow_the_paper():
    mnist = figure("mnist", "paper")
    assert (mnist.iterations, mnist.run["eval_every"], len(mnist.seeds)) == (1000, 100, 30)
    assert mnist.run["model"] == "mlp" and mnist.run["hidden"] == (128,)
    assert [e for v, e in mnist.variants if v == "two-scale"] == [0.01, 0.1, 1.0, 10.0, 100.0]
    assert mnist.standardize == "none"
    c10 = figure("cifar10", "paper")
    assert c10.run["model"] == "lenet5" and len(c10.seeds) == 10 and c10.standardize == "channel"
    assert 19000 <= c10.iterations <= 19600 and c10.run["eval_every"] == 2000
    assert figure("cifar10-fixed", "paper").iterations == 4000
    assert {v for v, _ in figure("cifar10-fixed", "paper").variants} == {"one-scale", "fixed"}
    assert "separation" in {v for v, _ in figure("cifar10-separation", "paper").variants}
    c100 = figure("cifar100", "paper")
    assert c100.run["superclass"] and c100.dataset == "cifar100"
    assert c100.iterations == 128 * (50000 // 128)
    assert mnist.paper["two-scale_eta=0.01"]["train_delta"] == 7.1
    assert c100.paper["two-scale_eta=0.01"]["train_delta"] == 13.4


def test_preset_overrides():
    exp = figure("mnist", "quick", seeds=2, etas=[0.5], iterations=40, confidence="normalized",
                 gain=2.0)
    assert exp.seeds == (0, 1) and exp.iterations == 40 and exp.run["eval_every"] <= 40
    assert ("two-scale", 0.5) in exp.variants
    cfg = exp.configs()[0]
    assert cfg.confidence == "normalized" and cfg.gain == 2.0


@pytest.mark.parametrize("kwargs,message", [
    (dict(name="mnist9"), "unknown figure"),
    (dict(preset="long"), "unknown preset"),
    (dict(seeds=0), "seeds must be an integer >= 1"),
    (dict(etas=[0.0]), "eta must be a finite number > 0"),
    (dict(etas=[-1.0]), "eta must be a finite number > 0"),
    (dict(etas=[]), "at least one"),
    (dict(iterations=0), "iterations"),
])
def test_bad_figure_arguments_are_refused(kwargs, message):
    args = {"name": "mnist", "preset": "quick", **kwargs}
    with pytest.raises(ValueError, match=message):
        figure(args.pop("name"), args.pop("preset"), **args)


def test_experiment_validation():
    with pytest.raises(ValueError, match="seeds must be >= 1"):
        tiny_experiment(seeds=0)
    with pytest.raises(ValueError, match="eta must be"):
        tiny_experiment(variants=(("two-scale", -0.1),))
    with pytest.raises(ValueError, match="duplicate"):
        tiny_experiment(variants=(("one-scale", None), ("one-scale", None)))
    with pytest.raises(ValueError, match="coarse labels"):
        Experiment(name="x", title="x", dataset="mnist", variants=(("one-scale", None),),
                   seeds=(0,), run={"superclass": True})


def test_compare_and_demo_builders():
    exp = presets.compare("mnist", etas=(0.01, 1.0), variants=("two-scale", "one-scale",
                                                               "fixed"), seeds=2)
    assert exp.variants[0] == ("one-scale", None)
    assert set(exp.variants) == {("one-scale", None), ("two-scale", 0.01), ("two-scale", 1.0),
                                 ("fixed", 0.01), ("fixed", 1.0)}
    demo = presets.demo()
    assert demo.dataset == "digits" and demo.variants[0] == ("one-scale", None)
    assert any(v == "two-scale" for v, _ in demo.variants)


# ----------------------------------------------------------------------------- summary

def test_the_papers_notes_read_as_the_papers_words(tmp_path, tiny):
    """Issue 23: a row without a finished seed (after Ctrl-C, say) shows the paper's note
    as the paper's, quoted, not as a finding of our own."""
    exp = tiny_experiment(seeds=1)
    exp = Experiment(**{**exp.__dict__, "paper": {
        "two-scale_eta=1e+06": {"note": "identical to traditional on every batch"}}})
    table = summary.summarize(exp, {}, missing=3)
    row = next(line for line in summary.format_table(table).splitlines()
               if line.startswith("two-scale η=1e+06"))
    assert 'paper: "identical to traditional on every batch"' in row and " 0/1 " in row



def test_summary_statistics_deltas_and_identity(tmp_path, tiny):
    exp = tiny_experiment()
    table, stopped, outcomes = run_experiment(exp, str(tmp_path), show_progress=False)
    assert not stopped and [o.status for o in outcomes] == ["done"] * 6
    groups = table.groups
    base = {r.config.seed: r for r in groups["one-scale"]}
    for row in table.rows:
        runs = groups[row.key]
        acc = [r.test["accuracy"] for r in runs]
        assert row.seeds == 2
        assert row.stats["test_acc"][0] == pytest.approx(np.mean(acc))
        assert row.stats["test_acc"][1] == pytest.approx(np.std(acc, ddof=1))
        if row.variant != "one-scale":
            d = np.mean([r.train["accuracy"] - base[r.config.seed].train["accuracy"]
                         for r in runs])
            assert row.delta_train == pytest.approx(100 * d)
    huge = next(r for r in table.rows if r.eta == 1e6)
    assert huge.identical == (2, 2) and huge.delta_train == 0 and huge.delta_test == 0
    text = summary.format_table(table)
    assert "identical to traditional on every batch and test evaluation: yes (2/2 seeds)" in text
    assert '+7.1 / +6.7; paper: "a note"' in text
    assert "traditional" in text and "two-scale η=0.01" in text

    rows = list(csv.DictReader(io.StringIO((tmp_path / "summary.csv").read_text())))
    assert list(rows[0])[:7] == ["variant", "eta", "seeds", "train_acc_mean", "train_acc_std",
                                 "test_acc_mean", "test_acc_std"]
    assert [(r["variant"], r["eta"]) for r in rows] == [("one-scale", ""), ("two-scale", "1e+06"),
                                                       ("two-scale", "0.01")]
    for r, row in zip(rows, table.rows, strict=True):
        assert float(r["test_acc_mean"]) == pytest.approx(row.stats["test_acc"][0], rel=1e-5)
        assert int(r["seeds"]) == 2
    assert rows[2]["paper_delta_train_pp"] == "7.1" and rows[0]["delta_train_pp"] == ""
    assert rows[1]["identical_to_traditional"] == "2/2"
    assert (tmp_path / "summary.txt").read_text() == text


def test_mean_std_of_one_seed_has_no_std():
    assert summary.mean_std([0.5])[0] == 0.5 and math.isnan(summary.mean_std([0.5])[1])


# ----------------------------------------------------------------------------- sweeps

def test_rerun_skips_finished_runs(tmp_path, tiny):
    exp = tiny_experiment(seeds=1, variants=(("one-scale", None),))
    run_experiment(exp, str(tmp_path), show_progress=False)
    before = files(tmp_path)
    assert "runs/one-scale/seed-000.npz" in before and "config.json" in before
    the_plan = plan(exp, str(tmp_path))
    assert (the_plan.done, the_plan.partial, the_plan.new, the_plan.tasks) == (1, 0, 0, [])
    _, _, outcomes = run_experiment(exp, str(tmp_path), show_progress=False)
    assert outcomes == []
    after = files(tmp_path)
    assert after["runs/one-scale/seed-000.npz"] == before["runs/one-scale/seed-000.npz"]
    # more seeds later: only the new one is computed
    _, _, outcomes = run_experiment(tiny_experiment(seeds=2, variants=(("one-scale", None),)),
                                    str(tmp_path), show_progress=False)
    assert [(o.key, o.seed) for o in outcomes] == [("one-scale", 1)]


def test_interrupted_sweep_resumes_to_the_same_results(tmp_path, tiny):
    exp = tiny_experiment(seeds=2, variants=(("one-scale", None), ("two-scale", 0.01)))
    reference, _, _ = run_experiment(exp, str(tmp_path / "ref"), show_progress=False)

    out = str(tmp_path / "cut")
    tasks = plan(exp, out).tasks
    steps = []

    class Stop:  # Ctrl-C arriving after the 9th step
        def is_set(self):
            return len(steps) >= 9

    first = run_task(tasks[1], stop=Stop(), progress=steps.append)
    assert first.status == "interrupted"
    assert checkpoint.saved_iteration(tasks[1].checkpoint_path) == 9
    assert run_task(tasks[0]).status == "done"
    the_plan = plan(exp, out)
    assert (the_plan.done, the_plan.partial, the_plan.new) == (1, 1, 2)
    assert the_plan.tasks[0].start == 9
    resumed, stopped, outcomes = run_experiment(exp, out, show_progress=False)
    assert not stopped and len(outcomes) == 3
    assert not os.path.exists(tasks[1].checkpoint_path)
    for key, runs in reference.groups.items():
        for a, b in zip(runs, resumed.groups[key], strict=True):
            for name, value in a.history.arrays.items():
                assert np.array_equal(value, b.history[name], equal_nan=True), (key, name)
            assert a.test["accuracy"] == b.test["accuracy"]


def test_a_folder_holding_another_experiment_is_refused(tmp_path, tiny):
    run_experiment(tiny_experiment(seeds=1), str(tmp_path), show_progress=False)
    with pytest.raises(ValueError, match="iterations: 14 on disk vs 20 now"):
        run_experiment(tiny_experiment(seeds=1, iterations=20), str(tmp_path),
                       show_progress=False)


def test_results_files_round_trip(tmp_path, tiny):
    table, _, _ = run_experiment(tiny_experiment(seeds=1, variants=(("two-scale", 0.01),)),
                                 str(tmp_path), show_progress=False)
    path = tmp_path / "runs" / "two-scale_eta=0.01" / "seed-000.npz"
    loaded = results.load(path)
    original = table.groups["two-scale_eta=0.01"][0]
    assert loaded.config == original.config
    assert set(loaded.test) == set(original.test)
    assert loaded.test["p_max"].shape == (40,) and loaded.test["label"].shape == (40,)
    assert results.read_config(path).eta == 0.01


def test_lock_refuses_a_live_owner_and_takes_over_a_dead_one(tmp_path):
    (tmp_path / ".lock").write_text(f"{os.getppid()}\n")  # a live process that is not us
    with pytest.raises(RuntimeError, match="in use by another minits process"):
        with rundir.lock(str(tmp_path)):
            pass
    (tmp_path / ".lock").write_text("999999999\n")  # no such process
    with rundir.lock(str(tmp_path)):
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
    assert not (tmp_path / ".lock").exists()


@pytest.mark.usefixtures("offline")
def test_worker_processes_give_the_same_results(tmp_path):
    """--jobs 2: spawned workers, one BLAS thread each, same numbers as in-process."""
    exp = presets.compare("digits", etas=(0.01,), variants=("one-scale", "two-scale"), seeds=1,
                          iterations=30, eval_every=10, hidden=(16,))
    here, _, _ = run_experiment(exp, str(tmp_path / "one"), jobs=1, show_progress=False)
    pool, stopped, outcomes = run_experiment(exp, str(tmp_path / "two"), jobs=2,
                                             show_progress=False)
    assert not stopped and sorted(o.status for o in outcomes) == ["done", "done"]
    for key, runs in here.groups.items():
        assert np.array_equal(runs[0].history["batch_acc"], pool.groups[key][0].history[
            "batch_acc"])
        assert runs[0].test["accuracy"] == pool.groups[key][0].test["accuracy"]


def test_pool_gets_the_longest_runs_first():
    """Runs resumed from a checkpoint (fewer iterations left) go last, so the workers
    finish together; among equals the experiment's order is kept."""
    tasks = [Task(RunConfig(dataset="tiny", variant="one-scale", seed=s, iterations=100),
                  f"r{s}", f"c{s}", start=start)
             for s, start in enumerate([0, 60, 0, 10, 0])]
    order = [t.config.seed for t in longest_first(tasks)]
    assert order == [0, 2, 4, 3, 1]


def test_a_worker_converts_the_test_set_once_for_its_runs(tiny, monkeypatch):
    """data.held_test_inputs: one read-only conversion shared by the runs of a process
    with the same data set, dtype and standardisation; at most one set is held."""
    a = RunConfig(dataset="tiny", variant="one-scale", seed=0, iterations=5)
    first = experiment_data.held_test_inputs(a, None)
    other_run = dataclasses.replace(a, variant="plain-ce", seed=4)
    assert experiment_data.held_test_inputs(other_run, None) is first
    assert not first.flags.writeable
    test_set = experiment_data.load_split("tiny", "test", None)
    expected = evaluate.to_inputs(test_set, slice(None), np.dtype(a.dtype), None)
    assert first.dtype == expected.dtype and first.tobytes() == expected.tobytes()
    other = experiment_data.held_test_inputs(dataclasses.replace(a, dtype="float64"), None)
    assert other.dtype == np.float64
    assert list(experiment_data._TEST_INPUTS.values()) == [other]
    # converted again: same numbers
    assert experiment_data.held_test_inputs(a, None) is not first
    experiment_data.remember_split("tiny", "test", None, tiny_dataset(40, "test", 3))
    replaced = experiment_data.held_test_inputs(a, None)  # another test set: converted anew
    assert replaced.tobytes() == evaluate.to_inputs(
        experiment_data.load_split("tiny", "test", None), slice(None), np.float32,
        None).tobytes()
    assert replaced.tobytes() != first.tobytes()
    monkeypatch.setattr(evaluate, "HOLD_BYTES", 0)  # over budget: chunk by chunk
    assert experiment_data.held_test_inputs(dataclasses.replace(a, dtype="float64"),
                                            None) is None


def test_a_process_loads_each_split_once(tiny, monkeypatch):
    """data.load_split: datasets.load once per (name, split, data folder) in a process."""
    calls = []

    def load(name, split, data_dir):
        calls.append((name, split, data_dir))
        return tiny_dataset(8, split, 5)

    monkeypatch.setattr(experiment_data.datasets, "load", load)
    first = experiment_data.load_split("other", "train", "here")
    assert experiment_data.load_split("other", "train", "here") is first
    experiment_data.load_split("other", "train", "there")
    experiment_data.load_split("other", "test", "here")
    assert calls == [("other", "train", "here"), ("other", "train", "there"),
                     ("other", "test", "here")]
    # what remember_split gave the cache is never loaded
    assert experiment_data.load_split("tiny", "train", None).name == "tiny" and len(calls) == 3


# ----------------------------------------------------------------------------- structure

def _module_name(path):
    """minits.experiments.<name> of a file of the package."""
    return "minits.experiments." + path.stem if path.stem != "__init__" else \
        "minits.experiments"


def _resolve(module, node):
    """The absolute name an ImportFrom node of `module` imports from."""
    if node.level == 0:
        return node.module
    package = module if module == "minits.experiments" else module.rsplit(".", 1)[0]
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


def private_uses(source, module):
    """Where the code `source` of `module` uses a private name (a leading underscore, not a
    dunder) of another module of minits: `from .x import _y`, or `x._y` with x a module
    of minits (or a name) bound by an import. Returns [(line, what)]."""
    def private(name):
        return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))

    found, imported = [], {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != "minits":
                    continue
                if alias.asname:
                    imported[alias.asname] = alias.name
                else:  # `import minits.x.y` binds minits
                    imported["minits"] = "minits"
        elif isinstance(node, ast.ImportFrom):
            origin = _resolve(module, node)
            if origin.split(".")[0] != "minits":
                continue
            for alias in node.names:
                if private(alias.name):
                    found.append((node.lineno, f"from {origin} import {alias.name}"))
                imported[alias.asname or alias.name] = f"{origin}.{alias.name}"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and private(node.attr):
            owner = _dotted(node.value)
            if owner is not None and owner.split(".")[0] in imported:
                root, _, rest = owner.partition(".")
                found.append((node.lineno, ".".join(filter(None, (imported[root], rest,
                                                                  node.attr)))))
    return sorted(found)


def _dotted(node):
    """"a.b.c" of an expression a.b.c made of names only, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        owner = _dotted(node.value)
        return None if owner is None else f"{owner}.{node.attr}"
    return None


def test_the_private_name_check_finds_what_it_looks_for():
    """The check below can fail: it finds each way of reaching into another module, and
    leaves alone a module's own names, dunders and the standard library's."""
    source = ("import os\nimport minits.training.loop\nfrom . import executor\n"
              "from .data import _DATA, load_split\nfrom ..training import evaluate as ev\n"
              "_MINE = 1\n\n\ndef f():\n    os._exit(0)\n    executor._WORKER.clear()\n"
              "    load_split.__name__\n    minits.training.loop._stderr('x')\n"
              "    return ev._per_object, _MINE\n")
    assert private_uses(source, "minits.experiments.dask_executor") == [
        (4, "from minits.experiments.data import _DATA"),
        (11, "minits.experiments.executor._WORKER"),
        (13, "minits.training.loop._stderr"),
        (14, "minits.training.evaluate._per_object"),
    ]


def test_no_module_of_experiments_uses_a_private_name_of_another():
    paths = sorted(EXPERIMENTS.glob("*.py"))
    assert {"tasks.py", "data.py", "executor.py", "dask_executor.py"} <= {p.name for p in paths}
    found = {p.name: private_uses(p.read_text(encoding="utf-8"), _module_name(p))
             for p in paths}
    assert {name: uses for name, uses in found.items() if uses} == {}


def test_dask_executor_does_not_import_the_local_executor():
    """dask_executor runs tasks.run_task: it needs tasks, not executor (nor anything that
    imports executor), so that a Dask worker never loads the local pool."""
    grimp = pytest.importorskip("grimp", reason="the `dev` extra installs import-linter "
                                                "(grimp)")
    graph = grimp.build_graph("minits", cache_dir=None)
    dask = "minits.experiments.dask_executor"
    assert "minits.experiments.tasks" in graph.find_modules_directly_imported_by(dask)
    assert not graph.chain_exists(dask, "minits.experiments.executor")
    # the check can fail: the sweep reaches the executor (and executor the Dask one)
    assert graph.chain_exists("minits.experiments.sweep", "minits.experiments.executor")
    assert graph.chain_exists("minits.experiments.executor", dask)
