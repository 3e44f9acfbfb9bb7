"""The two-scale loss with trainable scale separation, Eq. (17)-(18).

    L = -log( 1 / (1 + sum_{i != i(s)} exp(R    (X_hat_i - X_hat_{i(s)}))) )  if delta <  eta
        -log( 1 / (1 + sum_{i != i(s)} exp(Rs R (X_hat_i - X_hat_{i(s)}))) )  if delta >= eta

i.e. Eq. (13) with R1 = R and R2 = Rs R. Rs is trained with alpha by Eq. (18).
Sec. 2.3 calls R fixed while Sec. 3.5 lets it evolve (docs/decisions.md#D11):
    R="live"   (default) R = R(alpha), differentiated as a function of alpha: for
               a bias-free network R X_hat = X, so the first case is the plain
               cross-entropy on the raw logits and the second is cross-entropy on Rs X
    R="frozen" R = R(alpha^0), a constant, on the normalised logits
Sec. 2.3 says dL/dRs is "non-negative"; it is non-positive (docs/decisions.md#D3):
on each object of the second case it is R times Eq. (15) at scale Rs R, which is
< 0 when X_hat_{i(s)} is the largest normalised logit, so Rs grows.
"""

from ..scale import scale_R
from .base import check_logits_labels, check_scale
from .two_scale import NormalizedLoss, two_scale_value_and_grad

R_MODES = ("live", "frozen")


def separation_value_and_grad(X_hat, y, R, Rs, second):
    """Eq. (17) on given normalised logits, per object, with its gradients.

    Inputs:  X_hat (N, K); y (N,); R, Rs: floats; second: (N,) bool (delta >= eta)
    Returns: values (N,); dX_hat (N, K); dRs and dR = d(sum values)/dRs, /dR (floats).
    By the chain rule through R1 = R, R2 = Rs R of Eq. (13):
        dRs = R dL/dR2,   dR = dL/dR1 + Rs dL/dR2   (dL/dR_k by Eq. (15)).
    """
    values, dX_hat, dR1, dR2 = two_scale_value_and_grad(X_hat, y, R, Rs * R, second)
    return values, dX_hat, R * dR2, dR1 + Rs * dR2


class TwoScaleSeparation(NormalizedLoss):
    """Eq. (17), trained by Eq. (18).

    Args:
        eta: threshold (> 0); Rs: initial separation (10.0, docs/decisions.md#D9)
        R: "live" (R(alpha), default) or "frozen" (R(alpha^0), set at the first forward)
        confidence: "raw" | "normalized" | "scaled" (delta of R X_hat); see two_scale.py
        reduction: "mean" | "none"
    params {"Rs"}; grads {"Rs"} after backward. predict_proba: softmax(R X_hat).
    loss.last.second marks the objects of the Rs R case.
    """

    def __init__(self, eta, Rs=10.0, R="live", confidence="raw", reduction="mean"):
        super().__init__(eta, confidence, reduction)
        if R not in R_MODES:
            raise ValueError(f"R must be one of {R_MODES}, got {R!r}")
        self.R_mode = R
        self.R0 = None
        self.params = {"Rs": check_scale(Rs, "Rs")}

    def _R(self, R_alpha):
        return R_alpha if self.R_mode == "live" else self.R0

    def forward(self, model, x, y):
        """model, x (N, ...), y (N,) -> mean loss over the batch (float), or (N,)."""
        if self.R0 is None:
            self.R0 = scale_R(model)
        X_hat, R_alpha, X = self._normalized_forward(model, x)
        y = check_logits_labels(X_hat, y, finite=self.check_finite)
        R, Rs = self._R(R_alpha), float(self.params["Rs"])
        delta, second = self._split(X_hat, y, R_alpha, X, scaled=R)
        values, dX_hat, dRs, dR = separation_value_and_grad(X_hat, y, R, Rs, second)
        self._X_hat, self._dRs, self._dR = X_hat, dRs, dR
        return self._finish_forward(model, y, values, dX_hat, delta, second, R,
                                    {"R": R, "Rs": Rs})

    def backward(self):
        """Fills the model's grads with dL/dalpha (through alpha_hat and R(alpha)) and grads."""
        self._check_backward()
        N = len(self._dX)
        # a live R(alpha) depends on alpha: its derivative joins the chain rule
        self._norm.backward(self._dX, dL_dR=self._dR / N if self.R_mode == "live" else 0.0)
        self.grads = {"Rs": self._dRs / N}

    def _test_scale(self, model, R_alpha):
        """Test-time probabilities are softmax(R X_hat) (docs/decisions.md#D12)."""
        if self.R0 is None:
            self.R0 = scale_R(model)
        return self._R(R_alpha)

    def __repr__(self):
        return (f"TwoScaleSeparation(eta={self.eta}, Rs={self.params['Rs']}, R={self.R_mode!r}, "
                f"confidence={self.confidence!r})")
