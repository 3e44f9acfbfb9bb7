"""Cross-entropy, Eq. (4), on the raw logits: the paper's second baseline."""

import numpy as np

from ..layers import log_softmax, softmax
from ..scale import confidence
from .base import Diagnostics, Loss, check_logits_labels, reduce


def cross_entropy(z, y):
    """Per-object cross-entropy L = -log p_{i(s)}, p = softmax(z), Eq. (4) with (3).

    Written as in Eq. (10) it is log(1 + sum_{i != i(s)} exp(z_i - z_{i(s)})); both are
    the same stable log-sum-exp.
    Inputs:  z: logits (N, K); y: labels (N,)
    Returns: values (N,) and dz = d(sum values)/dz = p - e_{i(s)} (N, K), dtype of z.
    """
    # BEGIN TASK softmax-cross-entropy
    logp = log_softmax(z)
    rows = np.arange(z.shape[0])
    values = -logp[rows, y]
    dz = np.exp(logp)  # logp <= 0: no overflow
    dz[rows, y] -= 1
    return values, dz
    # END TASK


class CrossEntropy(Loss):
    """Eq. (4) on the raw logits X(alpha, s), averaged over the batch (Eq. (5)).

    forward(model, x, y) -> float (or (N,) with reduction="none")
    backward(): model grads; no scales (params and grads stay empty).
    predict_proba(model, x) = softmax(X) (docs/decisions.md#D12).
    """

    def objective(self, z, y):
        """The per-object loss on the logits: Eq. (4). -> values (N,), dz (N, K)."""
        return cross_entropy(z, y)

    def _second(self, X, y):
        """Which objects took the second case of the equation: Eq. (4) has one case."""
        return np.zeros(len(y), dtype=bool)

    def forward(self, model, x, y):
        """Eq. (4) per object on the raw logits X = X(alpha, s) (N, K), Eq. (5) on the batch.

        model; x (N, ...); y (N,) -> the batch mean (float), or the values (N,).
        """
        X = model.forward(x)
        y = check_logits_labels(X, y)
        values, dX = self.objective(X, y)
        delta = confidence(X, y)
        self.last = Diagnostics(confidence=delta, second=self._second(X, y), correct=delta > 0,
                                values=values)
        self._model, self._dX = model, dX / len(y)  # the gradient of the mean, Eq. (5)
        return reduce(values, self.reduction)

    def backward(self):
        """Backprop of d(batch mean)/dX through the network at alpha: every layer's grads."""
        self._check_backward()
        self._model.backward(self._dX)

    def predict_proba(self, model, x):
        """Test-time probabilities softmax(X(alpha, s)) (N, K); never uses labels."""
        return softmax(model.forward(x))

    def predict_proba_and_logits(self, model, x):
        """(softmax(X), X): one forward pass gives both."""
        X = model.forward(x)
        return softmax(X), X
