"""The truncated loss of ref. [15], Eq. (12).

    L_Trunc = -log(k)    if p_{i(s)} <  k
              L(alpha,s) if p_{i(s)} >= k      (the paper prints "dX >= k";
                                                docs/decisions.md#D2)

for 0 <= k <= 1; k = 0 gives back the cross-entropy (4). An object in the first
case contributes a constant: no gradient flows from it.
"""

import math

import numpy as np

from ..layers import log_softmax
from .cross_entropy import CrossEntropy


def check_k(k):
    if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)):
        raise TypeError(f"k must be a number in [0, 1], not {type(k).__name__}")
    if not 0 <= k <= 1:
        raise ValueError(f"k must be in [0, 1] (Eq. (12)), got {k}")
    return float(k)


def truncated(z, y, k):
    """Per-object Eq. (12) on logits z.

    Inputs:  z: logits (N, K); y: labels (N,); k: threshold in [0, 1]
    Returns: values (N,) and dz = d(sum values)/dz (N, K): p - e_{i(s)} where
             p_{i(s)} >= k, zero rows where the loss is the constant -log(k).
    """
    k = check_k(k)
    logp = log_softmax(z)
    rows = np.arange(z.shape[0])
    logp_true = logp[rows, y]
    cut = np.exp(logp_true) < k
    # -log(0) is never used: with k = 0 no object is cut
    values = np.where(cut, -math.log(k) if k > 0 else 0.0, -logp_true).astype(z.dtype, copy=False)
    dz = np.exp(logp)
    dz[rows, y] -= 1
    dz[cut] = 0
    return values, dz


class Truncated(CrossEntropy):
    """Eq. (12) on the raw logits, averaged over the batch.

    loss.last.second marks the objects with p_{i(s)} >= k (the cross-entropy case).
    """

    def __init__(self, k, reduction="mean"):
        super().__init__(reduction)
        self.k = check_k(k)

    def objective(self, z, y):
        """The per-object loss on the logits: Eq. (12). -> values (N,), dz (N, K)."""
        return truncated(z, y, self.k)

    def _second(self, X, y):
        return np.exp(log_softmax(X)[np.arange(len(y)), y]) >= self.k

    def __repr__(self):
        return f"Truncated(k={self.k})"
