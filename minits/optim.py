"""Stochastic gradient descent, Eq. (6), (14), (16), (18).

One step on a batch B_n, after loss.forward and loss.backward:

    alpha^l <- alpha^l - tau * grad_{alpha^l} L_hat_n    every linear layer, in place  Eq. (6)
    R       <- R       - tau * dL_hat_n / dR             every trainable scale of the loss
                                                         (R1, R2: Eq. (14); Rs, R: Eq. (18))

Scales that are not trainable (fixed two-scale, Eq. (16)) are absent from
loss.grads and never move.

Nothing in Eq. (14) keeps a scale positive (docs/decisions.md#D17). A step that
would make a scale <= 0 (or not finite) emits a ScaleWarning naming the scale and
its value, and is then taken, as the paper would take it; with
``SGD(on_nonpositive_scale="raise")`` it raises instead, before anything changes;
with "ignore" it stays silent (the training loop reports such a run itself, once).
In every case ``step`` returns the names of the loss's scales that are <= 0 or not
finite after the step (an empty list when all is well) and keeps them in
``self.nonpositive_scales``.
"""

import warnings

import numpy as np

from .losses.base import nonpositive

ON_NONPOSITIVE_SCALE = ("warn", "raise", "ignore")


class ScaleWarning(RuntimeWarning):
    """A scale of the loss (R1, R2, Rs or R) is <= 0 or not finite after an SGD step:
    the logits R X_hat flip sign and the loss rewards wrong classes
    (docs/decisions.md#D17). With on_nonpositive_scale="raise" it is raised as an
    exception, as warnings.simplefilter("error", ScaleWarning) would."""


class SGD:
    """Plain SGD with learning rate tau (the paper uses 0.1 and batches of 128).

    SGD(lr=0.1, on_nonpositive_scale="warn").step(model, loss=None)
        -> list of non-positive scale names
    on_nonpositive_scale: what a step that leaves a scale <= 0 does: "warn" (a
        ScaleWarning, then the step), "raise" (ScaleWarning raised before the step,
        nothing changed) or "ignore" (the step, silently).
    """

    def __init__(self, lr=0.1, on_nonpositive_scale="warn"):
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.integer, np.floating)):
            raise TypeError(f"lr must be a number, not {type(lr).__name__}")
        if not (np.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {lr}")
        if on_nonpositive_scale not in ON_NONPOSITIVE_SCALE:
            raise ValueError(f"on_nonpositive_scale must be one of {ON_NONPOSITIVE_SCALE}, "
                             f"got {on_nonpositive_scale!r}")
        self.lr = float(lr)
        self.on_nonpositive_scale = on_nonpositive_scale
        self.nonpositive_scales = []

    def step(self, model, loss=None):
        """Update alpha (in place, keeping the model's dtype) and the loss's trainable scales.

        model: a Sequential whose linear layers' .grads are filled (by loss.backward())
        loss: the loss whose backward filled them; its scales in loss.grads move
        Returns the names of the loss's scales that are now <= 0 or not finite.
        """
        lr = self.lr
        # BEGIN TASK eq14-sgd
        scales = {} if loss is None else {name: float(loss.params[name] - lr * g)
                                          for name, g in loss.grads.items()}
        # END TASK
        bad = [] if loss is None else nonpositive({**loss.params, **scales})
        if bad and self.on_nonpositive_scale != "ignore":
            self._alarm(bad, {**loss.params, **scales})  # before anything changes
        for layer in model.linear_layers():
            for name, p in layer.params.items():
                p -= lr * layer.grads[name]  # lr is a Python float: no upcast
        if loss is not None:
            loss.params.update(scales)
        self.nonpositive_scales = bad
        return list(bad)

    def _alarm(self, names, values):
        what = ", ".join(f"{name} = {values[name]:.6g}" for name in names)
        message = (f"the loss's scale {what} after this SGD step (lr = {self.lr:g}) is <= 0 "
                   "or not finite: the logits flip sign and the loss rewards wrong classes "
                   "(docs/decisions.md#D17); lower the learning rate or start from larger "
                   "scales")
        if self.on_nonpositive_scale == "raise":
            raise ScaleWarning(message)
        warnings.warn(message, ScaleWarning, stacklevel=3)

    def __repr__(self):
        return f"SGD(lr={self.lr}, on_nonpositive_scale={self.on_nonpositive_scale!r})"
