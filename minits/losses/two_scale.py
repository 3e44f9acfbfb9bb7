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
(docs/decisions.md#D6).
"""

import numpy as np

from ..scale import scale_R
from . import fast_normalized
from .base import check_logits_labels, check_scale, second_branch, softmax
from .cross_entropy import cross_entropy
from .fast_objectives import fast_cross_entropy, fast_dL_dR_eq15_terms
from .normalized import NormalizedLoss


def dL_dR_eq15(X_hat, y, R):
    """Eq. (15): the derivative of Eq. (13)'s case with scale R with respect to R, per object.

        dL/dR = sum_{i != i(s)} d_i exp(R d_i) / (1 + sum_{i != i(s)} exp(R d_i)),
        d_i = X_hat_i - X_hat_{i(s)}

    Inputs:  X_hat (N, K); y (N,); R: a scale, or one scale per object (N,)
    Returns: (N,), dtype of X_hat.
    Numerator and denominator are both multiplied by exp(-m), m = max(0, max_i R d_i),
    so that every exponential has a non-positive argument (no overflow at |R d| ~ 1e4).
    """
    rows = np.arange(X_hat.shape[0])
    d = X_hat - X_hat[rows, y][:, None]
    R = np.asarray(R, dtype=X_hat.dtype)
    a = (R[:, None] if R.ndim == 1 else R) * d
    a[rows, y] = -np.inf  # the sums run over i != i(s); exp(-inf) = 0
    m = np.maximum(np.max(a, axis=1), 0)
    e = np.exp(a - m[:, None])
    return np.sum(d * e, axis=1) / (np.exp(-m) + np.sum(e, axis=1))


def dL_dR_general(X_hat, y, R):
    """sum_i p_i X_hat_i - X_hat_{i(s)}, p = softmax(R X_hat) (docs/decisions.md#D6).

    The chain rule through z = R X_hat of the cross-entropy gradient p - e_{i(s)}.
    Inputs as dL_dR_eq15; returns (N,).
    """
    R = np.asarray(R, dtype=X_hat.dtype)
    p = softmax((R[:, None] if R.ndim == 1 else R) * X_hat)
    return np.sum(p * X_hat, axis=1) - X_hat[np.arange(X_hat.shape[0]), y]


def dL_dR_chain(X_hat, y, scale, dz):
    """dL/dR of any per-object objective at z = R X_hat: sum_i dz_i X_hat_i. -> (N,)."""
    return np.sum(dz * X_hat, axis=1)


def _dL_dR_eq15(X_hat, y, scale, dz):
    """Eq. (15) in the form two_scale_value_and_grad calls: -> (N,)."""
    return dL_dR_eq15(X_hat, y, scale)


def two_scale_value_and_grad(X_hat, y, R1, R2, second, objective=cross_entropy,
                             dL_dR=_dL_dR_eq15):
    """Eq. (13) on given normalised logits, per object, with its gradients.

    Inputs:
        X_hat: normalised logits (N, K); y: labels (N,)
        R1, R2: the two scales (floats)
        second: (N,) bool, True where the object takes the R2 case (delta >= eta)
        objective: per-object loss on logits f(z, y) -> (values (N,), dz (N, K));
            cross-entropy gives Eq. (13), others the generic two-scale form
        dL_dR: per-object dL/dR_k, f(X_hat, y, scale (N,), dz) -> (N,); default
            Eq. (15); None skips it (fixed scales, Eq. (16))
    Returns:
        values (N,); dX_hat = d(sum values)/dX_hat (N, K), dtype of X_hat;
        dR1, dR2 = d(sum values)/dR1, /dR2 (floats; None when dL_dR is None)
    """
    scale = np.where(second, R2, R1).astype(X_hat.dtype)  # R_k of each object
    values, dz = objective(X_hat * scale[:, None], y)  # L at z = R_k X_hat, dL/dz
    dX_hat = dz * scale[:, None]
    if dL_dR is None:
        return values, dX_hat, None, None
    s = dL_dR(X_hat, y, scale, dz)  # dL/dR_k of each object, Eq. (15)
    dR1 = float(np.sum(s[~second], dtype=np.float64))
    dR2 = float(np.sum(s[second], dtype=np.float64))
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

    objective = staticmethod(cross_entropy)
    _dL_dR = staticmethod(_dL_dR_eq15)
    _fast_objective = staticmethod(fast_cross_entropy)
    _fast_dL_dR = staticmethod(fast_dL_dR_eq15_terms)

    def __init__(self, eta, R1=None, R2=None, confidence="raw", fixed=False, reduction="mean"):
        super().__init__(eta, confidence, reduction)
        self.params = {"R1": check_scale(R1, "R1"), "R2": check_scale(R2, "R2")}
        self.fixed = bool(fixed)

    def _init_scales(self, model):
        """R1 = R(alpha^0), R2 = 10 R1 for scales not given (Sec. 3.2, Sec. 3.4)."""
        if self.params["R1"] is None:
            self.params["R1"] = scale_R(model)
        if "R2" in self.params and self.params["R2"] is None:
            self.params["R2"] = 10.0 * self.params["R1"]

    def _scales(self):
        # float(): a scale stored as a NumPy scalar or 0-d array would upcast float32 logits
        return float(self.params["R1"]), float(self.params["R2"])

    def _forward_plain(self, model, x, y):
        """Eq. (13) on a batch, in the paper's order: the scales (Sec. 3.2), X_hat and R
        (Eq. (8)-(9)), the confidence (Sec. 2.2), the split (Eq. (13)), the cross-entropy
        at R_k X_hat with its gradients (Eq. (13), (15)), the diagnostics.

        model; x: its input (N, ...); y: labels (N,) -> the batch mean (Eq. (5)), or the
        values (N,) with reduction="none". backward() then gives the gradients.
        """
        self._init_scales(model)  # R1 = R(alpha^0), R2 = 10 R1 (Sec. 3.2)
        R1, R2 = self._scales()
        X_hat, R = self._normalize(model, x)  # Eq. (8)-(9)
        y = check_logits_labels(X_hat, y, finite=self.check_finite)
        delta = self._confidence(model, x, y, X_hat, scaled=R1)
        second = second_branch(delta, self.eta)  # Eq. (13): the R2 case where delta >= eta
        # cross-entropy at R_k X_hat, its gradient, dL/dR_k by Eq. (15) (none for Eq. (16))
        values, dX_hat, dR1, dR2 = two_scale_value_and_grad(
            X_hat, y, R1, R2, second, self.objective, None if self.fixed else self._dL_dR)
        self._dR = (dR1, dR2)
        return self._record(model, X_hat, y, values, dX_hat, delta, second, R1,
                            dict(self.params))

    _forward_fast = fast_normalized.two_scale_forward

    def _backward_plain(self):
        """dL/dalpha through alpha_hat (docs/decisions.md#D7) into the model's grads;
        the scales' batch-mean derivatives into self.grads (Eq. (14)), none when fixed."""
        self._norm.backward(self._dX)
        self.grads = {} if self.fixed else self._scale_grads(*self._dR, len(self._dX))

    def _scale_grads(self, dR1, dR2, N):
        return {"R1": dR1 / N, "R2": dR2 / N}

    def _test_scale(self, model, R=None):
        """The scale of the test-time probabilities softmax(R1 X_hat) (Sec. 3.2)."""
        self._init_scales(model)
        return self._scales()[0]

    def __repr__(self):
        return (f"{type(self).__name__}(eta={self.eta}, R1={self.params['R1']}, "
                f"R2={self.params.get('R2')}, confidence={self.confidence!r}, "
                f"fixed={self.fixed})")


class OneScale(TwoScale):
    """The paper's "traditional" loss: Eq. (13) with R2 replaced by R1 (Sec. 3.2).

    Cross-entropy of softmax(R1 X_hat) with one trainable scale R1 (= R(alpha^0)
    when None). It runs the same code as TwoScale with eta = inf, so that
    TwoScale with a huge eta (no object in the R2 case) follows the same
    floating-point arithmetic step for step (Sec. 3.3: eta = 100 "identical on
    every batch"). params {"R1"}; grads {"R1"}.
    """

    def __init__(self, R1=None, confidence="raw", fixed=False, reduction="mean"):
        super().__init__(np.inf, R1=R1, confidence=confidence, fixed=fixed, reduction=reduction)
        del self.params["R2"]

    def _scales(self):
        return float(self.params["R1"]), float(self.params["R1"])

    def _scale_grads(self, dR1, dR2, N):
        return {"R1": (dR1 + dR2) / N}  # R2 is R1: both cases contribute

    def __repr__(self):
        return f"OneScale(R1={self.params['R1']}, fixed={self.fixed})"
