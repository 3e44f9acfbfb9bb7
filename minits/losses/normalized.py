"""What the losses on normalised logits share, Eq. (13)-(18).

Each of them (TwoScale, OneScale, TwoScaleWrapper, TwoScaleSeparation) runs, per batch:

    X, X_hat, R(alpha) = raw and normalised logits    Eq. (8)-(9)   _logits
    delta  = the confidence that splits                Sec. 2.2      _confidence
    second = delta >= eta                              Eq. (13)      second_branch
    ... its own per-object loss on R_k X_hat and the derivatives ...
    loss.last = Diagnostics(...)                                     _record

Which confidence delta splits the batch (docs/decisions.md#D4):
    "raw"        delta X(alpha, s) of the raw network, as Eq. (13) is written
                 (default): a forward pass at alpha. The loss depends on alpha only
                 through alpha_hat, so R(alpha) drifts and the effective threshold
                 eta / R moves.
    "normalized" delta X_hat = delta X(alpha_hat, s)
    "scaled"     delta of the scaled logits R_test X_hat (R1 X_hat for Eq. (13),
                 R X_hat for Eq. (17))

Test-time probabilities are softmax(R_test X_hat) with the loss's test-time scale
R_test (R1 for Eq. (13), R for Eq. (17): docs/decisions.md#D12).
"""

from ..layers import softmax
from ..normalization import Normalization
from ..scale import confidence, normalized_logits
from .base import Diagnostics, Loss, check_eta, reduce

CONFIDENCE_MODES = ("raw", "normalized", "scaled")


def check_confidence_mode(mode):
    if mode not in CONFIDENCE_MODES:
        raise ValueError(f"confidence must be one of {CONFIDENCE_MODES}, got {mode!r}")
    return mode


class NormalizedLoss(Loss):
    """Shared by Eq. (13)-(18): X_hat and R(alpha), the confidence split, the diagnostics
    and the test-time probabilities. A subclass gives R_test(model), the scale of its
    test-time probabilities."""

    # eta = inf (no object in the second case) only for the loss that has one case
    one_case = False

    def __init__(self, eta, confidence="raw", reduction="mean"):
        super().__init__(reduction)
        self.eta = check_eta(eta, finite=not self.one_case)
        self.confidence = check_confidence_mode(confidence)
        self._norm = Normalization()  # X_hat forward; backward goes through it (D7)

    def _logits(self, model, x):
        """The raw logits X = X(alpha) when the raw confidence needs them (else None), then
        X_hat = X(alpha_hat) and R(alpha), Eq. (8)-(9). -> X, X_hat (N, K), R_alpha (float).

        The raw pass runs first, so that the layers keep the caches of the pass at
        alpha_hat, through which backward goes (docs/decisions.md#D7).
        """
        X = model.forward(x) if self.confidence == "raw" else None
        X_hat = self._norm.forward(model, x)
        return X, X_hat, self._norm.R

    def _confidence(self, X, X_hat, y, R_test):
        """The confidence that splits the batch (module docstring, docs/decisions.md#D4).

        X, X_hat (N, K); y (N,); R_test: the scale of "scaled" -> delta (N,).
        """
        if self.confidence == "raw":
            return confidence(X, y)  # delta X(alpha, s)
        if self.confidence == "normalized":
            return confidence(X_hat, y)
        return confidence(R_test * X_hat, y)

    def _record(self, model, X_hat, y, values, dX_hat, delta, second, R_test, scales):
        """Keep the batch's diagnostics (self.last) and what backward needs.

        X_hat, dX_hat = d(sum values)/dX_hat: (N, K); y, values, delta, second: (N,);
        R_test: the scale of predict_proba; scales: dict for last.scales.
        Returns the reduced value (Eq. (5)). The batch is classified correctly where
        delta > 0 of the test-time logits R_test X_hat (Eq. (11)).
        """
        correct = confidence(R_test * X_hat, y) > 0  # Eq. (11) at the test-time logits
        self.last = Diagnostics(confidence=delta, second=second, correct=correct,
                                values=values, R_alpha=self._norm.R, scales=scales)
        self._model, self._dX_hat = model, dX_hat / len(y)  # the gradient of the mean, Eq. (5)
        return reduce(values, self.reduction)

    def predict_proba(self, model, x):
        """Test-time probabilities softmax(R_test X_hat) (N, K); no labels used."""
        return softmax(self.R_test(model) * normalized_logits(model, x))

    def R_test(self, model, R_alpha=None):
        """The scale of the test-time probabilities (docs/decisions.md#D12); R_alpha:
        R(alpha) of the model when the caller has it."""
        raise NotImplementedError
