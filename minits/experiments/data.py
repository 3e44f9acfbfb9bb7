"""The data sets of a process's runs, loaded and converted once per process.

A sweep's worker process trains many runs on the same data set: it loads each split
once (load_split) and converts the test images to floats once for all its runs with
the same dtype and standardisation (held_test_inputs).
"""

import numpy as np

from .. import datasets
from ..training import evaluate

_DATA = {}
_TEST_INPUTS = {}  # one entry: the converted test set of the last runs


def load_split(name, split, data_dir):
    """datasets.load, remembered per process (a worker loads each split once)."""
    key = (name, split, data_dir)
    if key not in _DATA:
        _DATA[key] = datasets.load(name, split=split, data_dir=data_dir)
    return _DATA[key]


def remember_split(name, split, data_dir, dataset):
    """Give this process's cache a data set already loaded (e.g. by the parent)."""
    _DATA[(name, split, data_dir)] = dataset
    _TEST_INPUTS.clear()  # they may have been converted from the data set replaced


def held_test_inputs(config, data_dir):
    """The test images of `config`'s data set as float inputs, evaluate.held_inputs
    (None when they exceed its memory budget), converted once per process for all its
    runs with the same dtype and standardisation: a run evaluates them eleven times or
    more, and converting 10,000 MNIST images into fresh memory costs ~40 ms a run.
    Read-only, so that no run can change what the next one sees."""
    key = (config.dataset, data_dir, config.dtype, config.standardize)
    if key not in _TEST_INPUTS:
        _TEST_INPUTS.clear()  # never more than one converted set in memory
        test_set = load_split(config.dataset, "test", data_dir)
        inputs = evaluate.held_inputs(test_set, np.dtype(config.dtype), config.standardize)
        if inputs is not None:
            inputs.flags.writeable = False
        _TEST_INPUTS[key] = inputs
    return _TEST_INPUTS[key]
