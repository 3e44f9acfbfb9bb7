"""Fast versions of the per-object functions of the losses and of Eq. (4)'s forward.

Each function names the plain one it must equal and gives its numbers bit for bit
(tests/test_losses_logits.py and tests/test_losses_models.py compare them): the
savings are NumPy's Python wrappers (np.sum -> np.add.reduce), short rows reduced
along the long axis (minits.layers.reductions.row_max), and in-place arithmetic on
temporaries. A training step calls each of them once per batch; read the plain
functions first (base.py, cross_entropy.py, two_scale.py, separation.py).
"""

import numpy as np

from ..layers.reductions import mean64, row_max, row_sum, sum64
from .base import Diagnostics, check_logits_labels


def fast_log_softmax(z):
    """minits.losses.base.log_softmax, bit for bit. z: (N, K) -> (N, K), same dtype.

    The row maximum and the row sums along the long axis, the logarithm subtracted
    in place from the shifted logits.
    """
    shifted = z - row_max(z, keepdims=True)
    total = row_sum(np.exp(shifted), keepdims=True)
    shifted -= np.log(total, out=total)
    return shifted


def fast_cross_entropy(z, y):
    """minits.losses.cross_entropy.cross_entropy, bit for bit (Eq. (4)).

    z: logits (N, K); y: labels (N,) -> values (N,), dz = p - e_{i(s)} (N, K).
    """
    logp = fast_log_softmax(z)
    rows = np.arange(z.shape[0])
    values = -logp[rows, y]
    dz = np.exp(logp)
    dz[rows, y] -= 1
    return values, dz


def fast_dL_dR_eq15(X_hat, y, R):
    """minits.losses.two_scale.dL_dR_eq15, bit for bit (Eq. (15)).

    X_hat (N, K); y (N,); R: a scale or one per object (N,) -> (N,), dtype of X_hat.
    """
    rows = np.arange(X_hat.shape[0])
    d = X_hat - X_hat[rows, y][:, None]
    R = np.asarray(R, dtype=X_hat.dtype)
    a = (R[:, None] if R.ndim == 1 else R) * d
    a[rows, y] = -np.inf
    m = np.maximum(row_max(a), 0)
    e = np.exp(a - m[:, None])
    return row_sum(d * e) / (np.exp(-m) + row_sum(e))


def fast_dL_dR_eq15_terms(X_hat, y, scale, dz):
    """minits.losses.two_scale._dL_dR_eq15, bit for bit: Eq. (15) per object."""
    return fast_dL_dR_eq15(X_hat, y, scale)


def fast_two_scale_value_and_grad(X_hat, y, R1, R2, second, objective, dL_dR):
    """minits.losses.two_scale.two_scale_value_and_grad, bit for bit, given the fast
    version of its objective and dL_dR (the same functions where none is faster).

    X_hat (N, K); y (N,); R1, R2 floats; second (N,) bool -> values (N,),
    dX_hat (N, K), dR1, dR2 (floats, or None when dL_dR is None).
    """
    scale = np.where(second, R2, R1).astype(X_hat.dtype)
    z = X_hat * scale[:, None]
    values, dz = objective(z, y)
    dX_hat = dz * scale[:, None]
    if dL_dR is None:
        return values, dX_hat, None, None
    s = dL_dR(X_hat, y, scale, dz)
    return values, dX_hat, sum64(s[~second]), sum64(s[second])


def fast_separation_value_and_grad(X_hat, y, R, Rs, second):
    """minits.losses.separation.separation_value_and_grad, bit for bit (Eq. (17)).

    -> values (N,), dX_hat (N, K), dRs, dR (floats).
    """
    values, dX_hat, dR1, dR2 = fast_two_scale_value_and_grad(
        X_hat, y, R, Rs * R, second, fast_cross_entropy, fast_dL_dR_eq15_terms)
    return values, dX_hat, R * dR2, dR1 + Rs * dR2


def fast_confidence_terms(X, y):
    """minits.scale.confidence_terms, bit for bit: (X_{i(s)}, max_{i != i(s)} X_i).

    X: logits (N, K); y: labels (N,) -> two (N,) arrays, dtype of X. The maximum over
    classes is taken on the transpose, as row_max does (a maximum is exact).
    """
    rows = np.arange(X.shape[0])
    others = X.T.copy()  # (K, N)
    others[y, rows] = -np.inf
    return X[rows, y], np.maximum.reduce(others, axis=0)


def fast_confidence(X, y):
    """minits.scale.confidence, bit for bit: delta X (N,), dtype of X."""
    true, runner_up = fast_confidence_terms(X, y)
    return true - runner_up


def fast_reduce(values, reduction):
    """minits.losses.base.reduce, bit for bit: the float64 mean, or the values (N,)."""
    return values if reduction == "none" else mean64(values)


def cross_entropy_forward(loss, model, x, y):
    """CrossEntropy._forward_plain (Eq. (4); Eq. (12) for Truncated), bit for bit."""
    X = model.forward(x)
    y = check_logits_labels(X, y, finite=loss.check_finite)
    values, dX = loss._fast_objective(X, y)
    delta = fast_confidence(X, y)
    loss.last = Diagnostics(confidence=delta, second=loss._second(X, y), correct=delta > 0,
                            values=values)
    loss._model, loss._dX = model, dX / len(y)
    return fast_reduce(values, loss.reduction)
