"""Temperature scaling (Guo et al. 2017, Sec. 4.2), the post-hoc baseline for calibration
that the two-scale loss is measured against (not in the paper).

One number T > 0 divides the test-time logits, p(T) = softmax(X / T), and is chosen to
minimise the cross-entropy, Eq. (5) with Eq. (4), on objects the network was not trained
on. T leaves argmax, hence the accuracy of Eq. (11), unchanged; it moves only the
confidence. The test-time logits are read back from the probabilities,
X = log p + a constant per row that softmax ignores, so every loss is served the same
way (for the traditional loss this is R1 X_hat, for the others the logits their
probabilities come from).

Held-out objects. Every training object is seen by SGD (MNIST's 1000 steps of 128 are
two epochs), so a temperature fitted on the training set would measure how sure the
network is of what it has learnt. Without changing what the runs train on, the held-out
objects are taken from the test set by two-fold cross-fitting (Ashukha et al. 2020,
"test-time cross-validation"): a fixed permutation splits the test set into halves A and
B; T_A is fitted on A and applied to B, T_B on B and applied to A. No object's
probabilities depend on its own label, and the tempered probabilities cover the whole
test set, so their ECE stands beside the other losses' ECE on the same objects.
"""

import numpy as np
from scipy import optimize

from .layers import logsumexp, softmax

LOG_T_BOUNDS = (np.log(0.01), np.log(100.0))
"""The search interval for log T: temperatures 0.01..100."""

SPLIT_SEED = 20170614  # the permutation of the test set: fixed, the same for every run


def logits_from_proba(proba):
    """Test-time logits recovered from probabilities: log p, with p = 0 (an underflow of
    the probabilities' dtype) read as its smallest normal number.

    Inputs: proba (n, K). Output: float64 (n, K), equal to the logits up to a constant
    per row (softmax(log p) = p).
    """
    tiny = np.finfo(proba.dtype).tiny if np.issubdtype(proba.dtype, np.floating) else 0.0
    return np.log(np.maximum(np.asarray(proba, dtype=np.float64), tiny))


def tempered(logits, T):
    """softmax(X / T) row by row, in float64.  Inputs: logits (n, K), T > 0.
    Output: float64 (n, K)."""
    return softmax(np.asarray(logits, dtype=np.float64) / T)


def nll(logits, y, T):
    """Mean cross-entropy of softmax(X / T), Eq. (5) with Eq. (4):
    mean_s [log sum_i exp(X_i / T) - X_{i(s)} / T], in float64.
    Inputs: logits (n, K); y: int (n,); T > 0. Output: float."""
    z = np.asarray(logits, dtype=np.float64) / T
    return float(np.mean(logsumexp(z) - z[np.arange(len(y)), y]))


def fit_temperature(logits, y):
    """The T in [0.01, 100] minimising nll(logits, y, T), by scipy.optimize.minimize_scalar
    (bounded Brent search on log T, to a relative tolerance of about 1e-5 in T).

    Inputs: logits (n, K) with n >= 1; y: int (n,). Output: T, a float.
    """
    y = np.asarray(y)
    if y.shape != (len(logits),) or len(y) == 0:
        raise ValueError(f"fit_temperature: y must have shape ({len(logits)},) and n >= 1, "
                         f"got {y.shape}")
    found = optimize.minimize_scalar(lambda log_t: nll(logits, y, np.exp(log_t)),
                                     bounds=LOG_T_BOUNDS, method="bounded",
                                     options={"xatol": 1e-5})
    return float(np.exp(found.x))


def cross_fitted(y, proba):
    """Temperature-scaled probabilities of every object, fitted on the other half
    (two-fold cross-fitting, see the module docstring).

    Inputs: y: int (n,) with n >= 2; proba: (n, K) test-time probabilities.
    Output: (proba_T float64 (n, K), (T_A, T_B)).
    """
    n = len(y)
    if n < 2:
        raise ValueError(f"cross_fitted needs at least 2 objects (two halves), got {n}")
    X = logits_from_proba(proba)
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    halves = (np.sort(order[: n // 2]), np.sort(order[n // 2:]))
    out = np.empty(X.shape, dtype=np.float64)
    temperatures = []
    for fit_on, apply_to in (halves, halves[::-1]):
        T = fit_temperature(X[fit_on], y[fit_on])
        out[apply_to] = tempered(X[apply_to], T)
        temperatures.append(T)
    return out, tuple(temperatures)
