"""What the losses on normalised logits share, Eq. (13)-(18).

Each of them (TwoScale, OneScale, TwoScaleWrapper, TwoScaleSeparation) runs, per batch:

    X_hat, R = X(alpha_hat), R(alpha)          Eq. (8)-(9)   _normalize
    delta    = the confidence that splits       Sec. 2.2      _confidence
    second   = delta >= eta                     Eq. (13)      second_branch
    ... its own per-object loss on R_k X_hat and the derivatives ...
    loss.last = Diagnostics(...)                               _record

Which confidence delta splits the batch (docs/decisions.md#D4):
    "raw"        delta X(alpha, s) of the raw network, as Eq. (13) is written
                 (default): a forward pass at alpha. The loss depends on alpha only
                 through alpha_hat, so R(alpha) drifts and the effective threshold
                 eta / R moves.
    "normalized" delta X_hat = delta X(alpha_hat, s)
    "scaled"     delta of the scaled logits R1 X_hat (R X_hat for Eq. (17))

Test-time probabilities are softmax(scale X_hat) with the loss's test-time scale
(R1 for Eq. (13), R for Eq. (17): docs/decisions.md#D12). The fast versions of
these steps are in fast_normalized.py.
"""

from ..backend import is_fast
from ..fast_normalization import FastNormalization
from ..normalization import Normalization
from ..scale import confidence, normalized_logits
from . import fast_normalized
from .base import Diagnostics, Loss, check_eta, reduce, softmax

CONFIDENCE_MODES = ("raw", "normalized", "scaled")


def check_confidence_mode(mode):
    if mode not in CONFIDENCE_MODES:
        raise ValueError(f"confidence must be one of {CONFIDENCE_MODES}, got {mode!r}")
    return mode


class NormalizedLoss(Loss):
    """Shared by Eq. (13)-(18): X_hat and R, the confidence split, the diagnostics and
    the test-time probabilities. A subclass gives _test_scale(model, R=None)."""

    def __init__(self, eta, confidence="raw", reduction="mean"):
        super().__init__(reduction)
        self.eta = check_eta(eta)
        self.confidence = check_confidence_mode(confidence)
        self._norm = None  # the normalisation of the last forward; backward goes through it
        self._fast_norm = FastNormalization()  # the fast one, kept with its work arrays
        self._terms = None  # fast path: the terms of delta X (fast_normalized.split)

    def _normalize(self, model, x):
        """X_hat = X(alpha_hat) (N, K) and R = R(alpha) (float), Eq. (8)-(9); the chain
        rule back to alpha is self._norm.backward (docs/decisions.md#D7)."""
        self._norm = Normalization()
        X_hat = self._norm.forward(model, x)
        return X_hat, self._norm.R

    def _confidence(self, model, x, y, X_hat, scaled):
        """The confidence that splits the batch (module docstring, docs/decisions.md#D4).

        x (N, ...); y (N,); X_hat (N, K); scaled: the scale of "scaled" (R1, or R for
        Eq. (17)) -> delta (N,), dtype of X_hat.
        """
        if self.confidence == "raw":
            return confidence(model.forward(x), y)  # delta X(alpha, s)
        if self.confidence == "normalized":
            return confidence(X_hat, y)
        return confidence(scaled * X_hat, y)

    def _record(self, model, X_hat, y, values, dX_hat, delta, second, test_scale, scales):
        """Keep the batch's diagnostics (self.last) and what backward needs.

        X_hat, dX_hat = d(sum values)/dX_hat: (N, K); y, values, delta, second: (N,);
        test_scale: the scale of predict_proba; scales: dict for last.scales.
        Returns the reduced value (Eq. (5)). The batch is classified correctly where
        delta > 0 of the test-time logits test_scale X_hat (Eq. (11)).
        """
        correct = confidence(test_scale * X_hat, y) > 0
        self.last = Diagnostics(confidence=delta, second=second, correct=correct,
                                values=values, R=self._norm.R, scales=scales)
        self._model, self._dX = model, dX_hat / len(y)  # the gradient of the mean, Eq. (5)
        return reduce(values, self.reduction)

    def predict_proba(self, model, x):
        """Test-time probabilities softmax(scale X_hat) (N, K); no labels used."""
        if is_fast():
            return fast_normalized.predict_proba(self, model, x)
        return softmax(self._test_scale(model) * normalized_logits(model, x))

    def predict_proba_and_logits(self, model, x):
        """(predict_proba(model, x), raw logits X(alpha)) (N, K) each."""
        if is_fast():
            return fast_normalized.predict_proba_and_logits(self, model, x)
        return super().predict_proba_and_logits(model, x)

    def predictor(self, model, logits=False):
        """As Loss.predictor; the fast one takes R(alpha) and the test-time scale once."""
        if is_fast():
            return fast_normalized.predictor(self, model, logits)
        return super().predictor(model, logits)
