"""Run an Experiment into a run folder: every (configuration, seed) once, resumably.

    summary, stopped = run_experiment(experiment, out="runs/mnist-quick", jobs=2)

Finished runs are skipped, unfinished ones resume from their checkpoint, and the
summary (summary.txt, summary.csv) is rewritten from everything finished.
"""

import dataclasses
import os
import sys

from .. import datasets
from ..training import build, results
from . import executor, rundir, summary
from .data import load_split
from .tasks import Task


class WriteError(RuntimeError):
    """A run could not write its files for a reason every run shares (a full disk, a
    read-only file system: tasks.WRITE_FAULTS); the sweep stopped there."""


@dataclasses.dataclass
class Plan:
    """What a sweep will do: all runs, and how many are done / to resume / new."""

    runs: list
    tasks: list
    done: int
    partial: int
    new: int

    def describe(self):
        return (f"{len(self.runs)} runs: {self.done} finished, {self.partial} to resume, "
                f"{self.new} new")


def load_data(experiment, data_dir=None):
    """The training and test sets of `experiment`, checked for what the runs need.

    Returns (train_set, test_set, stats) where stats is the per-channel (mean, std)
    of the training set when the experiment standardises its inputs, else None.
    Raises ValueError (before any training) when no run could ever finish on this
    data: an empty split, a batch larger than the training set, super-class
    measures asked of a data set without coarse labels.
    """
    train_set = load_split(experiment.dataset, "train", data_dir)
    test_set = load_split(experiment.dataset, "test", data_dir)
    check_data(experiment, train_set, test_set)
    stats = None
    if experiment.standardize == "channel":
        mean, std = datasets.channel_stats(train_set)
        stats = ([float(m) for m in mean], [float(s) for s in std])
    return train_set, test_set, stats


def check_data(experiment, train_set, test_set):
    """ValueError saying what is wrong and what to change when the runs of `experiment`
    cannot train on these splits (checked before any work, not by every run)."""
    config = experiment.configs()[0]
    for split in (train_set, test_set):
        if len(split.labels) == 0:
            where = f" (read from {split.source})" if split.source else ""
            raise ValueError(f"the {split.split} split of {experiment.dataset} holds no "
                             f"images{where}: replace its files (docs/data.md)")
    n = len(train_set.labels)
    if config.batch_size > n:
        raise ValueError(f"--batch-size {config.batch_size} is larger than the training set "
                         f"of {experiment.dataset} ({n} images): every step needs a full "
                         f"batch; choose --batch-size {n} or less")
    shape = train_set.images.shape[1:]
    try:  # the network of the runs, built once here: it must take these images
        build.build_model(config, train_set.num_classes, shape)
    except ValueError as exc:
        raise ValueError(f"--model {config.model} cannot take the images of "
                         f"{experiment.dataset} ({'x'.join(map(str, shape))}): {exc}; "
                         f"choose another network (--model mlp)") from None
    if config.superclass and train_set.coarse_labels is None:
        raise ValueError(f"super-class measures need coarse labels; data set "
                         f"{experiment.dataset!r} has none")


def plan(experiment, out, stats=None, data_dir=None):
    """Every run of `experiment` and the tasks still to do in `out` (no training)."""
    runs = experiment.runs(stats)
    rundir.check_compatible(out, runs)
    tasks, done, partial = [], 0, 0
    for config in runs:
        state, iteration = rundir.status(out, config)
        if state == "done":
            done += 1
            continue
        partial += state == "partial"
        tasks.append(Task(config, rundir.result_path(out, config),
                          rundir.checkpoint_path(out, config), data_dir, iteration))
    return Plan(runs, tasks, done, partial, len(tasks) - partial)


def run_experiment(experiment, out, jobs=1, data_dir=None, show_progress=True, say=None,
                   threads=1, executor_name="local", scheduler=None):
    """Run what is left of `experiment` in folder `out`; write config.json and the summary.

    jobs: runs side by side in worker processes (1: in this process); threads: each
    run's own threads (executor.run_tasks; the numbers depend on neither).
    executor_name: 'local' or 'dask' (on the cluster at `scheduler`, an address, or a
    LocalCluster of `jobs` workers: dask_executor); `out` must be seen by every worker.
    Returns (Summary, stopped, outcomes): stopped is True when interrupted (Ctrl-C,
    SIGTERM); outcomes lists each task run now (status 'done' | 'interrupted' | 'failed').
    """
    say = say or (lambda m: print(m, file=sys.stderr, flush=True))
    train_set, test_set, stats = load_data(experiment, data_dir)
    with rundir.lock(out):
        the_plan = plan(experiment, out, stats, data_dir)
        rundir.write_config(out, experiment, the_plan.runs)
        say(f"{experiment.title}: {the_plan.describe()}; results in {out}")
        outcomes, stopped = [], False
        if the_plan.tasks:
            outcomes, stopped = executor.run_tasks(the_plan.tasks, jobs=jobs,
                                                   show_progress=show_progress, say=say,
                                                   threads=threads, executor=executor_name,
                                                   scheduler=scheduler)
        for outcome in outcomes:
            if outcome.fatal:
                raise WriteError(f"{outcome.message}: the sweep stopped at this first failed "
                                 f"write (finished runs are kept; make room and run the same "
                                 f"command again)")
        groups, missing = summary.load_groups(out, the_plan.runs)
        failed = sum(o.status == "failed" for o in outcomes)
        table = summary.summarize(experiment, groups, missing, failed=failed)
        summary.write(out, table)
    return table, stopped, outcomes


def report(out):
    """Rebuild the Summary of the experiment in run folder `out` from its files."""
    from ..training import RunConfig
    from .spec import Experiment

    saved = rundir.read_config(out)
    try:  # every field checked here, so that an edited file is named with what is wrong
        e = saved["experiment"]
        configs = [RunConfig.from_dict(c) for c in saved["configurations"]]
        experiment = Experiment(**{**e, "variants": tuple(tuple(v) for v in e["variants"]),
                                   "seeds": tuple(e["seeds"])})
        stats = configs[0].standardize if configs else None
        runs = experiment.runs(stats)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ValueError(f"{os.path.join(out, rundir.CONFIG)} does not describe an "
                         f"experiment minits knows ({type(exc).__name__}: {exc})") from exc
    groups, missing = summary.load_groups(out, runs)
    check_results_match(out, runs)
    return summary.summarize(experiment, groups, missing)


def check_results_match(out, runs):
    """ValueError naming config.json, a results file and the differing fields when a
    finished run's own configuration (saved in its results file) is not the one
    config.json describes: the table and summary.txt must never show settings the runs
    did not use. (Call after summary.load_groups, which names unreadable files.)"""
    for config in runs:
        path = rundir.result_path(out, config)
        if not os.path.exists(path):
            continue
        saved = results.read_config(path)
        if saved != config:
            a, b = config.to_dict(), saved.to_dict()
            diff = ", ".join(f"{k}: {a[k]!r} in {rundir.CONFIG} vs {b[k]!r} in the results"
                             for k in a if a[k] != b[k])
            raise ValueError(f"{os.path.join(out, rundir.CONFIG)} does not describe the "
                             f"runs it holds ({path}: {diff}); restore it or run the sweep "
                             f"again in another --out")
