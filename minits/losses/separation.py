"""The two-scale loss with trainable scale separation, Eq. (17)-(18).

    L = -log( 1 / (1 + sum_{i != i(s)} exp(R    (X_hat_i - X_hat_{i(s)}))) )  if delta <  eta
        -log( 1 / (1 + sum_{i != i(s)} exp(Rs R (X_hat_i - X_hat_{i(s)}))) )  if delta >= eta

i.e. Eq. (13) with R1 = R and R2 = Rs R: branch 1 is the cross-entropy of R X_hat,
branch 2 that of Rs R X_hat. Rs is trained with alpha by Eq. (18), from Rs = 10.
Sec. 2.3 and the conclusion call R "fixed", Sec. 3.5 says it "evolves via gradient
descent as normal" (docs/decisions.md#D11); ``scale=`` chooses the reading:

    "fixed"   (default) R = R(alpha^0), taken at the first forward like R1 of
              Eq. (13), then a constant
    "trained" R a trainable scale from R(alpha^0), like R1 of Eq. (14): in
              loss.params["R"] and, after backward, loss.grads["R"]
    "live"    R = R(alpha) of the current parameters, differentiated through alpha
              (docs/decisions.md#D7): for a bias-free network R X_hat = X, so
              branch 1 is the plain cross-entropy on the raw logits (Eq. (4))

Test-time probabilities are softmax(R X_hat) with that R (docs/decisions.md#D12).
Sec. 2.3 says dL/dRs is "non-negative"; it is non-positive (docs/decisions.md#D3):
on each object of the second case it is R times Eq. (15) at scale Rs R, which is
< 0 when X_hat_{i(s)} is the largest normalised logit, so Rs grows.
"""

from ..scale import scale_R
from .base import check_logits_labels, check_scale, second_branch
from .normalized import NormalizedLoss
from .two_scale import two_scale_value_and_grad

SCALE_MODES = ("fixed", "trained", "live")


def separation_value_and_grad(X_hat, y, R, Rs, second):
    """Eq. (17) on given normalised logits, per object, with its gradients.

    Inputs:  X_hat (N, K); y (N,); R, Rs: floats; second: (N,) bool (delta >= eta)
    Returns: values (N,); dX_hat (N, K); dRs and dR = d(sum values)/dRs, /dR (floats).
    By the chain rule through R1 = R, R2 = Rs R of Eq. (13):
        dRs = R dL/dR2,   dR = dL/dR1 + Rs dL/dR2   (dL/dR_k by Eq. (15)).
    """
    # BEGIN TASK eq17-gradients
    values, dX_hat, dR1, dR2 = two_scale_value_and_grad(X_hat, y, R, Rs * R, second)
    return values, dX_hat, R * dR2, dR1 + Rs * dR2
    # END TASK


def check_scale_mode(scale):
    """The reading of R (docs/decisions.md#D11): "fixed", "trained" or "live". -> str."""
    if scale not in SCALE_MODES:
        raise ValueError(f"scale must be one of {SCALE_MODES}, got {scale!r}")
    return scale


class TwoScaleSeparation(NormalizedLoss):
    """Eq. (17), trained by Eq. (18).

    Args:
        eta: threshold (> 0); Rs: initial separation (10.0, docs/decisions.md#D9)
        scale: "fixed" (default) | "trained" | "live", the reading of R (module docstring)
        confidence: "raw" | "normalized" | "scaled" (delta of R X_hat); normalized.py
        reduction: "mean" | "none"
        R0: the value R starts from ("fixed", "trained"); None -> R(alpha^0) at the
            first forward. Not with "live".
    params: {"R", "Rs"} ("fixed", "trained") or {"Rs"} ("live"), Python floats.
    grads after backward: {"Rs"}, plus {"R"} for "trained" (a fixed R shows in params,
    so that a checkpoint keeps it, but never in grads). predict_proba: softmax(R X_hat).
    loss.last.second marks the objects of the Rs R case; loss.last.scales = {"R", "Rs"}.
    """

    def __init__(self, eta, Rs=10.0, scale="fixed", confidence="raw", reduction="mean", *,
                 R0=None):
        super().__init__(eta, confidence, reduction)
        self.scale = check_scale_mode(scale)
        if self.scale == "live" and R0 is not None:
            raise ValueError("R0 is the starting value of a fixed or trained R; with "
                             "scale='live' R is R(alpha)")
        self.params = {"Rs": check_scale(Rs, "Rs")}
        if self.scale != "live":
            self.params = {"R": check_scale(R0, "R0"), **self.params}

    def _init_scales(self, model):
        """R = R(alpha^0) at the first forward, for "fixed" and "trained" (Sec. 3.2)."""
        if self.scale != "live" and self.params["R"] is None:
            self.params["R"] = scale_R(model)

    def _R(self, R_alpha):
        """R of Eq. (17): R(alpha) when live, else the scale in params. -> float."""
        return R_alpha if self.scale == "live" else float(self.params["R"])

    def forward(self, model, x, y):
        """Eq. (17) on a batch, in the paper's order: R of the reading
        (docs/decisions.md#D11), X_hat and R(alpha) (Eq. (8)-(9)), the confidence, the
        split, the cross-entropy at R X_hat or Rs R X_hat with its gradients (Eq. (17),
        (15)), the diagnostics.

        model; x: its input (N, ...); y: labels (N,) -> the batch mean (Eq. (5)), or the
        values (N,) with reduction="none". backward() then gives the gradients.
        """
        self._init_scales(model)  # R = R(alpha^0) unless live (docs/decisions.md#D11)
        X, X_hat, R_alpha = self._logits(model, x)  # Eq. (8)-(9)
        R, Rs = self._R(R_alpha), float(self.params["Rs"])
        y = check_logits_labels(X_hat, y)
        delta = self._confidence(X, X_hat, y, R_test=R)
        second = second_branch(delta, self.eta)  # Eq. (17): the Rs R case where delta >= eta
        # Eq. (13) with R1 = R, R2 = Rs R; dRs, dR by the chain rule and Eq. (15)
        values, dX_hat, dRs, dR = self._value_and_grad(X_hat, y, R, Rs, second)
        self._dRs, self._dR = dRs, dR
        return self._record(model, X_hat, y, values, dX_hat, delta, second, R,
                            {"R": R, "Rs": Rs})

    def _value_and_grad(self, X_hat, y, R, Rs, second):
        """Eq. (17) per object: values, dX_hat, dRs, dR (separation_value_and_grad)."""
        return separation_value_and_grad(X_hat, y, R, Rs, second)

    def backward(self):
        """dL/dalpha into the model's grads (docs/decisions.md#D7) -- with the explicit
        dL/dR when R = R(alpha) is live -- and Eq. (18)'s dL/dRs (and dL/dR) into grads."""
        self._check_backward()
        N = len(self._dX_hat)
        live = self.scale == "live"
        self._norm.backward(self._dX_hat, dL_dR=self._dR / N if live else 0.0)
        self.grads = {"Rs": self._dRs / N}
        if self.scale == "trained":
            self.grads["R"] = self._dR / N

    def R_test(self, model, R_alpha=None):
        """R of the test-time probabilities softmax(R X_hat) (docs/decisions.md#D12);
        R_alpha: R(alpha) when the caller has it."""
        if self.scale == "live":
            return scale_R(model) if R_alpha is None else R_alpha
        self._init_scales(model)
        return float(self.params["R"])

    def __repr__(self):
        return (f"{type(self).__name__}(eta={self.eta}, Rs={self.params['Rs']}, "
                f"scale={self.scale!r}, confidence={self.confidence!r})")
