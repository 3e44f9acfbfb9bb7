"""The outcome of one run and its results file (one .npz per configuration and seed).

A results file is self-contained: the run's configuration (as JSON), its history
(curves over training), the final measures of Sec. 3.1 on the whole training and
test sets, the per-object test arrays behind the histograms of Figs. 4-6, and the
final scales. Written atomically, so a file that exists is complete.
"""

import dataclasses
import json

import numpy as np

from .. import atomic
from .config import RunConfig
from .history import FORMAT, History, check_format


@dataclasses.dataclass
class RunResult:
    """config: RunConfig; history: History; completed: False when stopped early;
    iteration: SGD steps done; train, test: measures dicts from
    evaluate.full_measures (None until completed); final_scales: {'R', 'R1', ...}."""

    config: RunConfig
    history: History
    completed: bool = True
    iteration: int = 0
    train: dict | None = None
    test: dict | None = None
    final_scales: dict = dataclasses.field(default_factory=dict)

    @property
    def scale_alarm(self):
        """The alarm message of this run (a scale <= 0 or a diverged run, docs/decisions.md#D17),
        or '' when all was well."""
        return self.history.scale_alarm_message


def save(path, result):
    """Write a completed RunResult to `path` (.npz) atomically."""
    if not result.completed:
        raise ValueError("only a completed run has results; save a checkpoint instead")
    arrays = {"format": np.int64(FORMAT),
              "config_json": np.str_(json.dumps(result.config.to_dict())),
              "iteration": np.int64(result.iteration)}
    arrays.update(result.history.state())
    for split in ("train", "test"):
        for name, value in getattr(result, split).items():
            arrays[f"{split}_{name}"] = np.asarray(value)
    for name, value in result.final_scales.items():
        arrays[f"final_{name}"] = np.float64(value)
    atomic.savez(path, compress=True, **arrays)


def load(path):
    """Read a results file back into a RunResult (arrays as ndarrays, scalars as floats)."""
    with np.load(path) as f:
        data = {k: f[k] for k in f.files}
    check_format(data, path)
    config = RunConfig.from_dict(json.loads(str(data["config_json"])))
    history = History.from_state(data, config.iterations, config.eval_every)
    split = {"train": {}, "test": {}}
    final = {}
    for key, value in data.items():
        if key == "format":
            continue
        head, _, name = key.partition("_")
        if head in split:
            split[head][name] = float(value) if value.ndim == 0 else value
        elif head == "final":
            final[name] = float(value)
    return RunResult(config, history, completed=True, iteration=int(data["iteration"]),
                     train=split["train"], test=split["test"], final_scales=final)


def read_config(path):
    """Only the RunConfig stored in a results or checkpoint file."""
    with np.load(path) as f:
        return RunConfig.from_dict(json.loads(str(f["config_json"])))
