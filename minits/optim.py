"""Stochastic gradient descent, Eq. (6), (14), (16), (18).

One step on a batch B_n, after loss.forward and loss.backward:

    alpha^l <- alpha^l - tau * grad_{alpha^l} L_hat_n    every linear layer, in place  Eq. (6)
    R       <- R       - tau * dL_hat_n / dR             every trainable scale of the loss
                                                         (R1, R2: Eq. (14); Rs: Eq. (18))

Scales that are not trainable (fixed two-scale, Eq. (16)) are absent from
loss.grads and never move.

Nothing in Eq. (14) keeps a scale positive (docs/decisions.md#D17). After each step
``step`` returns the names of the loss's scales that are <= 0 or not finite
(an empty list when all is well) and keeps them in ``self.nonpositive_scales``;
training reports them loudly. The step itself is still taken, as the paper
would take it.
"""

import numpy as np


class SGD:
    """Plain SGD with learning rate tau (the paper uses 0.1 and batches of 128).

    SGD(lr=0.1).step(model, loss=None) -> list of non-positive scale names
    """

    def __init__(self, lr=0.1):
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.integer, np.floating)):
            raise TypeError(f"lr must be a number, not {type(lr).__name__}")
        if not (np.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {lr}")
        self.lr = float(lr)
        self.nonpositive_scales = []

    def step(self, model, loss=None):
        """Update alpha (in place, keeping the model's dtype) and the loss's trainable scales.

        model: a Sequential whose linear layers' .grads are filled (by loss.backward())
        loss: the loss whose backward filled them; its scales in loss.grads move
        Returns the names of the loss's scales that are now <= 0 or not finite.
        """
        lr = self.lr
        for layer in model.linear_layers():
            for name, p in layer.params.items():
                p -= lr * layer.grads[name]  # lr is a Python float: no upcast
        if loss is None:
            self.nonpositive_scales = []
            return []
        for name, g in loss.grads.items():
            loss.params[name] = float(loss.params[name] - lr * g)
        self.nonpositive_scales = loss.nonpositive_scales()
        return list(self.nonpositive_scales)

    def __repr__(self):
        return f"SGD(lr={self.lr})"
