"""The two-scale loss, Eq. (13)-(16), and the one-scale "traditional" baseline.

Eq. (13), per object s, on the normalised logits X_hat = X(alpha_hat):

    L = -log( 1 / (1 + sum_{i != i(s)} exp(R_k (X_hat_i - X_hat_{i(s)}))) )
      = cross-entropy of softmax(R_k X_hat)                 (docs/decisions.md#D5)

with k = 1 if delta < eta and k = 2 if delta >= eta (which delta: normalized.py,
docs/decisions.md#D4). The scales R1, R2 are trained with alpha by Eq. (14); with
fixed=True they are constants, Eq. (16). OneScale is Eq. (13) with R2 replaced by R1
(the baseline of every figure).

dL/dR_k is computed by Eq. (15), as the paper writes it; it equals the
general formula sum_i p_i X_hat_i - X_hat_{i(s)} with p = softmax(R_k X_hat)
(docs/decisions.md#D6). R_k always names the scale of the case an object takes:
one number per object, R1 or R2.
"""

import math

import numpy as np

from ..layers import softmax
from ..scale import scale_R
from .base import check_logits_labels, check_scale, second_branch
from .cross_entropy import cross_entropy
from .normalized import NormalizedLoss


def dL_dR_eq15(X_hat, y, R_k):
    """Eq. (15): the derivative of Eq. (13)'s case with scale R_k with respect to R_k,
    per object.

        dL/dR_k = sum_{i != i(s)} d_i exp(R_k d_i) / (1 + sum_{i != i(s)} exp(R_k d_i)),
        d_i = X_hat_i - X_hat_{i(s)}

    Inputs:  X_hat (N, K); y (N,); R_k: a scale, or one scale per object (N,)
    Returns: (N,), dtype of X_hat.
    Numerator and denominator are both multiplied by exp(-m), m = max(0, max_i R_k d_i),
    so that every exponential has a non-positive argument (no overflow at |R d| ~ 1e4).
    """
    # BEGIN TASK eq15
    rows = np.arange(X_hat.shape[0])
    d = X_hat - X_hat[rows, y][:, None]
    R_k = np.asarray(R_k, dtype=X_hat.dtype)
    a = (R_k[:, None] if R_k.ndim == 1 else R_k) * d
    a[rows, y] = -np.inf  # the sums run over i != i(s); exp(-inf) = 0
    m = np.maximum(np.max(a, axis=1), 0)
    e = np.exp(a - m[:, None])
    return np.sum(d * e, axis=1) / (np.exp(-m) + np.sum(e, axis=1))
    # END TASK


def dL_dR_general(X_hat, y, R_k):
    """sum_i p_i X_hat_i - X_hat_{i(s)}, p = softmax(R_k X_hat) (docs/decisions.md#D6).

    The chain rule through z = R_k X_hat of the cross-entropy gradient p - e_{i(s)}.
    Inputs as dL_dR_eq15; returns (N,).
    """
    # BEGIN TASK eq15
    R_k = np.asarray(R_k, dtype=X_hat.dtype)
    p = softmax((R_k[:, None] if R_k.ndim == 1 else R_k) * X_hat)
    return np.sum(p * X_hat, axis=1) - X_hat[np.arange(X_hat.shape[0]), y]
    # END TASK


def at_scales(objective, X_hat, y, R1, R2, second):
    """A per-object objective f(z, y) -> (values, dz) at the logits z = R_k X_hat of
    Eq. (13), R_k = R1 in the first case and R2 in the second.

    Inputs:  X_hat (N, K); y (N,); R1, R2 floats; second (N,) bool (delta >= eta)
    Returns: R_k (N,), dtype of X_hat; values (N,); dz = d(sum values)/dz (N, K);
             dX_hat = d(sum values)/dX_hat = R_k dz (N, K)
    """
    # BEGIN TASK eq13-split
    R_k = np.where(second, R2, R1).astype(X_hat.dtype)
    # END TASK
    values, dz = objective(X_hat * R_k[:, None], y)
    return R_k, values, dz, dz * R_k[:, None]


def sum_per_case(s, second):
    """(sum of s over the first case, sum over the second case), in float64 -> two floats:
    the batch's d/dR1 and d/dR2 from the per-object d/dR_k."""
    return float(np.sum(s[~second], dtype=np.float64)), float(np.sum(s[second], dtype=np.float64))


def two_scale_value_and_grad(X_hat, y, R1, R2, second, fixed=False):
    """Eq. (13) on given normalised logits, per object, with its gradients.

    Inputs:
        X_hat: normalised logits (N, K); y: labels (N,)
        R1, R2: the two scales (floats)
        second: (N,) bool, True where the object takes the R2 case (delta >= eta)
        fixed: the scales are constants (Eq. (16)): no derivative in them
    Returns:
        values (N,); dX_hat = d(sum values)/dX_hat (N, K), dtype of X_hat;
        dR1, dR2 = d(sum values)/dR1, /dR2 by Eq. (15) (floats; None when fixed)
    """
    R_k, values, _, dX_hat = at_scales(cross_entropy, X_hat, y, R1, R2, second)
    if fixed:
        return values, dX_hat, None, None
    dR1, dR2 = sum_per_case(dL_dR_eq15(X_hat, y, R_k), second)
    return values, dX_hat, dR1, dR2


class TwoScale(NormalizedLoss):
    """The two-scale loss, Eq. (13), trained by Eq. (14); fixed=True gives Eq. (16).

    Args:
        eta: the threshold (> 0) on the confidence
        R1, R2: initial scales; None -> R1 = R(alpha^0) at the first forward and
            R2 = 10 R1 (Sec. 3.2, docs/decisions.md#D9)
        confidence: "raw" | "normalized" | "scaled" (normalized.py, docs/decisions.md#D4)
        fixed: R1, R2 constants, no gradient (Eq. (16), docs/decisions.md#D10)
        reduction: "mean" | "none"

    params {"R1", "R2"}: Python floats. grads after backward: {"R1", "R2"} the
    batch-mean derivatives, R2's by Eq. (15) and R1's by its analogue (empty
    when fixed). predict_proba uses scale R1 (Sec. 3.2, docs/decisions.md#D12).
    loss.last.second marks the objects of the R2 case.
    """

    def __init__(self, eta, R1=None, R2=None, confidence="raw", fixed=False, reduction="mean"):
        super().__init__(eta, confidence, reduction)
        self.params = {"R1": check_scale(R1, "R1"), "R2": check_scale(R2, "R2")}
        self.fixed = bool(fixed)

    def _init_scales(self, model):
        """R1 = R(alpha^0), R2 = 10 R1 for scales not given (Sec. 3.2, Sec. 3.4)."""
        if self.params["R1"] is None:
            self.params["R1"] = scale_R(model)
        if self.params["R2"] is None:
            self.params["R2"] = 10.0 * self.params["R1"]

    def _R1_R2(self):
        # float(): a scale stored as a NumPy scalar or 0-d array would upcast float32 logits
        return float(self.params["R1"]), float(self.params["R2"])

    def forward(self, model, x, y):
        """Eq. (13) on a batch, in the paper's order: the scales (Sec. 3.2), the logits X
        and X_hat, R (Eq. (8)-(9)), the confidence (Sec. 2.2), the split (Eq. (13)), the
        cross-entropy at R_k X_hat with its gradients (Eq. (13), (15)), the diagnostics.

        model; x: its input (N, ...); y: labels (N,) -> the batch mean (Eq. (5)), or the
        values (N,) with reduction="none". backward() then gives the gradients.
        """
        self._init_scales(model)  # R1 = R(alpha^0), R2 = 10 R1 (Sec. 3.2)
        R1, R2 = self._R1_R2()
        X, X_hat, _ = self._logits(model, x)  # Eq. (8)-(9)
        y = check_logits_labels(X_hat, y)
        delta = self._confidence(X, X_hat, y, R_test=R1)
        second = second_branch(delta, self.eta)  # Eq. (13): the R2 case where delta >= eta
        # the loss at R_k X_hat, its gradient, dL/dR_k by Eq. (15) (none for Eq. (16))
        values, dX_hat, dR1, dR2 = self._value_and_grad(X_hat, y, R1, R2, second)
        self._dR = (dR1, dR2)
        return self._record(model, X_hat, y, values, dX_hat, delta, second, R1,
                            dict(self.params))

    def _value_and_grad(self, X_hat, y, R1, R2, second):
        """Eq. (13) per object: values, dX_hat, dR1, dR2 (two_scale_value_and_grad)."""
        return two_scale_value_and_grad(X_hat, y, R1, R2, second, fixed=self.fixed)

    def backward(self):
        """dL/dalpha through alpha_hat (docs/decisions.md#D7) into the model's grads;
        the scales' batch-mean derivatives into self.grads (Eq. (14)), none when fixed."""
        self._check_backward()
        self._norm.backward(self._dX_hat)
        self.grads = {} if self.fixed else self._scale_grads(*self._dR, len(self._dX_hat))

    def _scale_grads(self, dR1, dR2, N):
        return {"R1": dR1 / N, "R2": dR2 / N}

    def R_test(self, model, R_alpha=None):
        """The scale of the test-time probabilities softmax(R1 X_hat) (Sec. 3.2)."""
        self._init_scales(model)
        return self._R1_R2()[0]

    def __repr__(self):
        return (f"{type(self).__name__}(eta={self.eta}, R1={self.params['R1']}, "
                f"R2={self.params['R2']}, confidence={self.confidence!r}, fixed={self.fixed})")


class OneScale(TwoScale):
    """The paper's "traditional" loss: Eq. (13) with R2 replaced by R1 (Sec. 3.2).

    Cross-entropy of softmax(R1 X_hat) with one trainable scale R1 (= R(alpha^0)
    when None). It is TwoScale with R2 := R1 and no object in the second case
    (eta = inf), so that TwoScale with a huge eta follows the same floating-point
    arithmetic step for step (Sec. 3.3: eta = 100 "identical on every batch").
    params {"R1"}; grads {"R1"}.
    """

    one_case = True  # eta = inf

    def __init__(self, R1=None, confidence="raw", fixed=False, reduction="mean"):
        # not TwoScale.__init__: this loss has one scale, not two
        NormalizedLoss.__init__(self, math.inf, confidence, reduction)
        self.params = {"R1": check_scale(R1, "R1")}
        self.fixed = bool(fixed)

    def _init_scales(self, model):
        """R1 = R(alpha^0) when not given (Sec. 3.2)."""
        if self.params["R1"] is None:
            self.params["R1"] = scale_R(model)

    def _R1_R2(self):
        R1 = float(self.params["R1"])
        return R1, R1  # R2 := R1

    def _scale_grads(self, dR1, dR2, N):
        return {"R1": (dR1 + dR2) / N}  # R2 is R1: both cases contribute

    def __repr__(self):
        return f"{type(self).__name__}(R1={self.params['R1']}, fixed={self.fixed})"
