"""Checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint holds the iteration count, the parameters alpha of every linear
layer, the loss's scales (R1, R2; R_s and R of Eq. (17)), and the history so far. Plain SGD has
no state of its own, and the batch order is a function of (seed, epoch) (see
`loop.epoch_order`), so nothing else is needed: a resumed run is bit-identical to
an uninterrupted one. Writes are atomic (temporary file + os.replace).
"""

import json

import numpy as np

from .. import atomic
from .config import RunConfig
from .history import FORMAT, History, check_format


def model_state(model):
    """Parameter arrays of `model`: 'alpha{l}_{name}' -> copy, l = 1..M-1 (Eq. (1))."""
    return {f"alpha{l}_{name}": p.copy()
            for l, layer in enumerate(model.linear_layers(), start=1)
            for name, p in layer.params.items()}


def load_model_state(model, state):
    """Copy saved parameters into `model` in place (shapes and dtypes must match)."""
    for l, layer in enumerate(model.linear_layers(), start=1):
        for name, p in layer.params.items():
            saved = np.asarray(state[f"alpha{l}_{name}"])
            if saved.shape != p.shape or saved.dtype != p.dtype:
                raise ValueError(f"checkpoint alpha{l}_{name} is {saved.dtype}{saved.shape}, "
                                 f"the model has {p.dtype}{p.shape}")
            p[...] = saved


def loss_state(loss):
    """The loss's scales: 'scale_{name}' -> float64 0-d array (exact for float32 and float64).

    A scale the loss sets only at its first forward (R1 = R(alpha^0) when not given, the
    first scale R of Eq. (17)) is saved once it is set.
    """
    return {f"scale_{name}": np.asarray(value, dtype=np.float64)
            for name, value in getattr(loss, "params", {}).items() if value is not None}


def load_loss_state(loss, state):
    """Put every saved scale back into loss.params as a Python float (Eq. (14) moves
    floats), also one the loss would otherwise set at its first forward."""
    for key in state:
        if key.startswith("scale_"):
            loss.params[key[len("scale_"):]] = float(state[key])


def save(path, config, iteration, model, loss, history):
    """Write the state after `iteration` SGD steps of run `config` to `path` atomically."""
    atomic.savez(path, compress=False,
                 format=np.int64(FORMAT),
                 config_json=np.str_(json.dumps(config.to_dict())),
                 iteration=np.int64(iteration),
                 **model_state(model), **loss_state(loss), **history.state(whole=False))


def saved_iteration(path):
    """Number of SGD steps stored in the checkpoint at `path` (reads only that entry)."""
    with np.load(path) as f:
        return int(f["iteration"])


def load(path, config, model, loss):
    """Restore model and loss from `path` in place; returns (iteration, history).

    Raises ValueError when the checkpoint belongs to a different configuration.
    """
    with np.load(path) as f:
        check_format(f, path)
        saved = RunConfig.from_dict(json.loads(str(f["config_json"])))
        if saved != config:
            raise ValueError(f"checkpoint {path} belongs to another configuration: {saved}")
        state = {k: f[k] for k in f.files}
    load_model_state(model, state)
    load_loss_state(loss, state)
    history = History.from_state(state, config.iterations, config.eval_every)
    return int(state["iteration"]), history
