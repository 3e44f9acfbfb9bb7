"""Experiments floor: the paper's figures as configurations (presets), sweeps over
seeds x variants x eta into resumable run folders, executors, and summaries.

Reading order: spec (Experiment) -> presets (the figures) -> sweep (run_experiment)
-> rundir (the folder layout) -> tasks (one run as a task, what executors share) ->
data (a process's data sets) -> executor (this process or worker processes) ->
dask_executor (a Dask cluster, optional) -> summary (the table).
"""

from .presets import FIGURES, PAPER_ETAS, PRESETS, figure
from .spec import DATASETS, Experiment
from .summary import Summary, summarize
from .sweep import plan, report, run_experiment

__all__ = ["DATASETS", "FIGURES", "PAPER_ETAS", "PRESETS", "Experiment", "Summary", "figure",
           "plan", "report", "run_experiment", "summarize"]
