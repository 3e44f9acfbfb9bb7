"""The two-scale loss, Eq. (13)-(16), and the one-scale "traditional" baseline.

Eq. (13), per object s, on the normalised logits X_hat = X(alpha_hat):

    L = -log( 1 / (1 + sum_{i != i(s)} exp(R_k (X_hat_i - X_hat_{i(s)}))) )
      = cross-entropy of softmax(R_k X_hat)                 (docs/decisions.md#D5)

with k = 1 if delta < eta and k = 2 if delta >= eta. The scales R1, R2 are
trained with alpha by Eq. (14); with fixed=True they are constants, Eq. (16).
OneScale is Eq. (13) with R2 replaced by R1 (the baseline of every figure).

Which confidence delta splits the batch (docs/decisions.md#D4):
    "raw"        delta X(alpha, s) of the raw network, as Eq. (13) is written
                 (default). The loss depends on alpha only through alpha_hat, so
                 R(alpha) drifts and the effective threshold eta / R moves.
    "normalized" delta X_hat = delta X(alpha_hat, s)
    "scaled"     delta of the R1-scaled logits R1 X_hat (for Eq. (17): R X_hat)
For bias-free networks "raw" takes X from the one forward pass at alpha that also
gives X_hat = X / R (Eq. (8)); otherwise it runs a second forward pass at alpha.

dL/dR_k is computed by Eq. (15), as the paper writes it; it equals the
general formula sum_i p_i X_hat_i - X_hat_{i(s)} with p = softmax(R_k X_hat).
"""

import numpy as np

from ..scale import (
    Normalization,
    confidence,
    confidence_terms,
    is_homogeneous,
    logits_at_normalized,
    row_max,
    scale_R,
)
from .base import (
    Diagnostics,
    Loss,
    check_eta,
    check_logits_labels,
    check_scale,
    reduce,
    second_branch,
    softmax,
)
from .cross_entropy import cross_entropy

CONFIDENCE_MODES = ("raw", "normalized", "scaled")


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
    m = np.maximum(row_max(a), 0)
    e = np.exp(a - m[:, None])
    # np.add.reduce is what np.sum calls, without its wrapper (every batch)
    return np.add.reduce(d * e, axis=1) / (np.exp(-m) + np.add.reduce(e, axis=1))


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
    scale = np.where(second, R2, R1).astype(X_hat.dtype)
    z = X_hat * scale[:, None]
    values, dz = objective(z, y)
    dX_hat = dz * scale[:, None]
    if dL_dR is None:
        return values, dX_hat, None, None
    s = dL_dR(X_hat, y, scale, dz)
    dR1 = float(np.add.reduce(s[~second], dtype=np.float64))  # = np.sum(.., dtype=np.float64)
    dR2 = float(np.add.reduce(s[second], dtype=np.float64))
    return values, dX_hat, dR1, dR2


def check_confidence_mode(mode):
    if mode not in CONFIDENCE_MODES:
        raise ValueError(f"confidence must be one of {CONFIDENCE_MODES}, got {mode!r}")
    return mode


class NormalizedLoss(Loss):
    """Shared by Eq. (13)-(18): the forward at alpha_hat and the confidence split."""

    def __init__(self, eta, confidence="raw", reduction="mean"):
        super().__init__(reduction)
        self.eta = check_eta(eta)
        self.confidence = check_confidence_mode(confidence)
        self._norm = Normalization()
        self._terms = None  # (X_{i(s)}, max_{i != i(s)} X_i) of the batch, see _correct

    def _normalized_forward(self, model, x):
        """-> X_hat (N, K), R(alpha) and the raw logits X when they need their own pass."""
        self._norm.verify = self.check_unchanged
        homogeneous = is_homogeneous(model)
        X = None
        if self.confidence == "raw" and not homogeneous:
            X = model.forward(x)  # before X_hat, so the layers' caches belong to alpha_hat
        X_hat = self._norm.forward(model, x, homogeneous)
        if X is None:
            X = self._norm.X  # the raw logits of the homogeneous path (None when literal)
        return X_hat, self._norm.R, X

    def _split(self, X_hat, y, R, X, scaled):
        """The confidence of each object and the second-case mask (delta >= eta).

        scaled: the scale of the "scaled" mode (R1 for Eq. (13), R for Eq. (17)).
        """
        self._terms = None
        if self.confidence == "raw" and X is not None:
            true, runner_up = confidence_terms(X, y)
            delta = true - runner_up
            if X is self._norm.X:  # the homogeneous path: X_hat = X / R, entry by entry
                self._terms = (true, runner_up)
        elif self.confidence == "raw":
            delta = confidence(R * X_hat, y)  # X = R X_hat, Eq. (8)
        elif self.confidence == "normalized":
            delta = confidence(X_hat, y)
        else:
            delta = confidence(scaled * X_hat, y)
        return delta, second_branch(delta, self.eta)

    def predict_proba_and_logits(self, model, x):
        """(softmax(scale X_hat), raw logits X(alpha)) (N, K) each, with the test-time
        scale of predict_proba; one forward pass for homogeneous networks."""
        X_hat, X, R = logits_at_normalized(model, x, self._norm.mode)
        proba = softmax(self._test_scale(model, R) * X_hat)
        return proba, (model.forward(x) if X is None else X)

    def predict_proba(self, model, x):
        """Test-time probabilities softmax(scale X_hat) (N, K); no labels used."""
        X_hat, _, R = logits_at_normalized(model, x, self._norm.mode)
        return softmax(self._test_scale(model, R) * X_hat)

    def predictor(self, model, logits=False):
        """As Loss.predictor: R(alpha) and the test-time scale once for all chunks (the
        same numbers predict_proba computes for each chunk, as alpha does not change)."""
        R = scale_R(model)
        scale = self._test_scale(model, R)
        mode = self._norm.mode

        def predict(x):
            X_hat, X, _ = logits_at_normalized(model, x, mode, R=R)
            proba = softmax(scale * X_hat)
            if not logits:
                return proba
            return proba, (model.forward(x) if X is None else X)

        return predict

    def _correct(self, scale, y):
        """Eq. (11) on the batch: delta > 0 of the test-time logits scale * X_hat, (N,) bool.

        On the homogeneous path X_hat = X / R entry by entry, and for 0 < scale (both
        as floats of X's dtype) the rounded maps v -> v / R and v -> scale v never
        decrease, so the largest other entry of scale X_hat is scale (runner_up / R),
        from the terms of delta X that _split computed; and a difference of two
        floats is > 0 exactly when the first is larger (NaN: False either way). The
        same booleans, from (N,) instead of (N, K) arrays.
        """
        finfo = np.finfo(self._X_hat.dtype)
        R = self._norm.R
        if self._terms is not None and 0 < scale <= finfo.max and finfo.tiny <= R <= finfo.max:
            true, runner_up = self._terms
            return scale * (true / R) > scale * (runner_up / R)
        return confidence(scale * self._X_hat, y) > 0

    def _finish_forward(self, model, y, values, dX_hat, delta, second, test_scale, scales):
        N = len(y)
        self.last = Diagnostics(confidence=delta, second=second,
                                correct=self._correct(test_scale, y),
                                values=values, R=self._norm.R, scales=scales)
        self._model, self._dX = model, dX_hat / N
        return reduce(values, self.reduction)


class TwoScale(NormalizedLoss):
    """The two-scale loss, Eq. (13), trained by Eq. (14); fixed=True gives Eq. (16).

    Args:
        eta: the threshold (> 0) on the confidence
        R1, R2: initial scales; None -> R1 = R(alpha^0) at the first forward and
            R2 = 10 R1 (Sec. 3.2, docs/decisions.md#D9)
        confidence: "raw" | "normalized" | "scaled" (module docstring)
        fixed: R1, R2 constants, no gradient (Eq. (16), docs/decisions.md#D10)
        reduction: "mean" | "none"

    params {"R1", "R2"}: Python floats. grads after backward: {"R1", "R2"} the
    batch-mean derivatives, R2's by Eq. (15) and R1's by its analogue (empty
    when fixed). predict_proba uses scale R1 (Sec. 3.2, docs/decisions.md#D12).
    loss.last.second marks the objects of the R2 case.
    """

    objective = staticmethod(cross_entropy)
    _dL_dR = staticmethod(_dL_dR_eq15)

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

    def forward(self, model, x, y):
        """model, x (N, ...), y (N,) -> mean loss over the batch (float), or (N,)."""
        self._init_scales(model)
        X_hat, R, X = self._normalized_forward(model, x)
        y = check_logits_labels(X_hat, y, finite=self.check_finite)
        R1, R2 = self._scales()
        delta, second = self._split(X_hat, y, R, X, scaled=R1)
        values, dX_hat, dR1, dR2 = two_scale_value_and_grad(
            X_hat, y, R1, R2, second, self.objective, None if self.fixed else self._dL_dR)
        self._X_hat, self._dR = X_hat, (dR1, dR2)
        return self._finish_forward(model, y, values, dX_hat, delta, second, R1,
                                    dict(self.params))

    def backward(self):
        """Fills the model's grads with dL/dalpha (through alpha_hat) and self.grads."""
        self._check_backward()
        self._norm.backward(self._dX)
        self.grads = {} if self.fixed else self._scale_grads(*self._dR, len(self._dX))

    def _scale_grads(self, dR1, dR2, N):
        return {"R1": dR1 / N, "R2": dR2 / N}

    def _test_scale(self, model, R):
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
