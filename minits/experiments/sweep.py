"""Run an Experiment into a run folder: every (configuration, seed) once, resumably.

    summary, stopped = run_experiment(experiment, out="runs/mnist-quick", jobs=2)

Finished runs are skipped, unfinished ones resume from their checkpoint, and the
summary (summary.txt, summary.csv) is rewritten from everything finished.
"""

import dataclasses
import sys

from .. import datasets
from . import executor, rundir, summary
from .executor import Task


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
    Raises ValueError (before any training) when super-class measures are asked
    of a data set without coarse labels.
    """
    train_set = executor.load_split(experiment.dataset, "train", data_dir)
    test_set = executor.load_split(experiment.dataset, "test", data_dir)
    if experiment.configs()[0].superclass and train_set.coarse_labels is None:
        raise ValueError(f"super-class measures need coarse labels; data set "
                         f"{experiment.dataset!r} has none")
    stats = None
    if experiment.standardize == "channel":
        mean, std = datasets.channel_stats(train_set)
        stats = ([float(m) for m in mean], [float(s) for s in std])
    return train_set, test_set, stats


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


def run_experiment(experiment, out, jobs=1, data_dir=None, show_progress=True, say=None):
    """Run what is left of `experiment` in folder `out`; write config.json and the summary.

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
                                                   show_progress=show_progress, say=say)
        groups, missing = summary.load_groups(out, the_plan.runs)
        table = summary.summarize(experiment, groups, missing)
        summary.write(out, table)
    return table, stopped, outcomes


def report(out):
    """Rebuild the Summary of the experiment in run folder `out` from its files."""
    from .spec import Experiment

    saved = rundir.read_config(out)
    e = saved["experiment"]
    experiment = Experiment(**{**e, "variants": tuple(tuple(v) for v in e["variants"]),
                               "seeds": tuple(e["seeds"])})
    configs = saved["configurations"]
    stats = configs[0]["standardize"] if configs else None
    runs = experiment.runs(stats)
    groups, missing = summary.load_groups(out, runs)
    return summary.summarize(experiment, groups, missing)
