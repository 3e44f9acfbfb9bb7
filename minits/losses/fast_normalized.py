"""The fast bookkeeping of the losses on normalised logits, Eq. (13)-(18).

Each function names the plain method of NormalizedLoss / TwoScale /
TwoScaleSeparation it must equal. What is saved, batch after batch:

- the normalisation runs on minits.fast_normalization.FastNormalization: for a
  bias-free network one forward pass at alpha gives X_hat = X / R (Eq. (8)) *and*
  the raw logits X of the raw confidence, where the plain loss runs two passes;
  its copy of alpha is skipped when the loss's check_unchanged is off;
- the two terms of delta X (split) give the batch's correct flags without a second
  (N, K) confidence (correct);
- the per-object functions are those of fast_objectives.py.

Numbers: with the same layers, bit for bit those of the plain path on the literal
normalisation (networks with biases), and to rounding on the homogeneous one
(X / R instead of X(alpha_hat)): tests/test_fast_paths.py.
"""

import numpy as np

from ..fast_normalization import logits_at_normalized
from ..layers import softmax
from ..scale import is_homogeneous, scale_R
from .base import Diagnostics, check_logits_labels, second_branch
from .fast_objectives import (
    fast_confidence,
    fast_confidence_terms,
    fast_reduce,
    fast_separation_value_and_grad,
    fast_two_scale_value_and_grad,
)


def normalized_forward(loss, model, x):
    """NormalizedLoss._normalize, plus the raw logits: -> X_hat (N, K), R (float), and
    X (N, K) when the raw confidence needs them (else whatever came for free, or None)."""
    norm = loss._norm = loss._fast_norm
    norm.verify = loss.check_unchanged
    homogeneous = is_homogeneous(model)
    X = None
    if loss.confidence == "raw" and not homogeneous:
        X = model.forward(x)  # before X_hat, so the layers' caches belong to alpha_hat
    X_hat = norm.forward(model, x, homogeneous)
    if X is None:
        X = norm.X  # the raw logits of the homogeneous path (None when literal)
    return X_hat, norm.R, X


def split(loss, X_hat, y, R, X, scaled):
    """NormalizedLoss._confidence and second_branch: -> delta (N,), second (N,) bool.

    On the homogeneous path the raw confidence comes from the raw logits of the one
    forward pass, and its two terms are kept for ``correct``.
    """
    loss._terms = None
    if loss.confidence == "raw" and X is not None:
        true, runner_up = fast_confidence_terms(X, y)
        delta = true - runner_up
        if X is loss._norm.X:  # the homogeneous path: X_hat = X / R, entry by entry
            loss._terms = (true, runner_up)
    elif loss.confidence == "raw":
        delta = fast_confidence(R * X_hat, y)  # X = R X_hat, Eq. (8)
    elif loss.confidence == "normalized":
        delta = fast_confidence(X_hat, y)
    else:
        delta = fast_confidence(scaled * X_hat, y)
    return delta, second_branch(delta, loss.eta)


def correct(loss, X_hat, scale, y):
    """confidence(scale * X_hat, y) > 0 of NormalizedLoss._record, the same booleans (N,).

    On the homogeneous path X_hat = X / R entry by entry, and for 0 < scale (both
    as floats of X's dtype) the rounded maps v -> v / R and v -> scale v never
    decrease, so the largest other entry of scale X_hat is scale (runner_up / R),
    from the terms of delta X that split computed; and a difference of two
    floats is > 0 exactly when the first is larger (NaN: False either way). The
    same booleans, from (N,) instead of (N, K) arrays.
    """
    finfo = np.finfo(X_hat.dtype)
    R = loss._norm.R
    if loss._terms is not None and 0 < scale <= finfo.max and finfo.tiny <= R <= finfo.max:
        true, runner_up = loss._terms
        return scale * (true / R) > scale * (runner_up / R)
    return fast_confidence(scale * X_hat, y) > 0


def record(loss, model, X_hat, y, values, dX_hat, delta, second, test_scale, scales):
    """NormalizedLoss._record, the same numbers: last, what backward needs, the value."""
    loss.last = Diagnostics(confidence=delta, second=second,
                            correct=correct(loss, X_hat, test_scale, y),
                            values=values, R=loss._norm.R, scales=scales)
    loss._model, loss._dX = model, dX_hat / len(y)
    return fast_reduce(values, loss.reduction)


def two_scale_forward(loss, model, x, y):
    """TwoScale._forward_plain (also OneScale, TwoScaleWrapper), Eq. (13)."""
    loss._init_scales(model)
    X_hat, R, X = normalized_forward(loss, model, x)
    y = check_logits_labels(X_hat, y, finite=loss.check_finite)
    R1, R2 = loss._scales()
    delta, second = split(loss, X_hat, y, R, X, scaled=R1)
    values, dX_hat, dR1, dR2 = fast_two_scale_value_and_grad(
        X_hat, y, R1, R2, second, loss._fast_objective,
        None if loss.fixed else loss._fast_dL_dR)
    loss._dR = (dR1, dR2)
    return record(loss, model, X_hat, y, values, dX_hat, delta, second, R1, dict(loss.params))


def separation_forward(loss, model, x, y):
    """TwoScaleSeparation._forward_plain, Eq. (17)."""
    loss._init_scales(model)
    X_hat, R_alpha, X = normalized_forward(loss, model, x)
    y = check_logits_labels(X_hat, y, finite=loss.check_finite)
    R, Rs = loss._R(R_alpha), float(loss.params["Rs"])
    delta, second = split(loss, X_hat, y, R_alpha, X, scaled=R)
    values, dX_hat, dRs, dR = fast_separation_value_and_grad(X_hat, y, R, Rs, second)
    loss._dRs, loss._dR = dRs, dR
    return record(loss, model, X_hat, y, values, dX_hat, delta, second, R, {"R": R, "Rs": Rs})


def predict_proba(loss, model, x):
    """NormalizedLoss.predict_proba: softmax(scale X_hat) (N, K), X_hat from
    logits_at_normalized (X / R for bias-free networks)."""
    X_hat, _, R = logits_at_normalized(model, x, loss._fast_norm.mode)
    return softmax(loss._test_scale(model, R) * X_hat)


def predict_proba_and_logits(loss, model, x):
    """NormalizedLoss.predict_proba_and_logits: one forward pass for bias-free networks."""
    X_hat, X, R = logits_at_normalized(model, x, loss._fast_norm.mode)
    proba = softmax(loss._test_scale(model, R) * X_hat)
    return proba, (model.forward(x) if X is None else X)


def predictor(loss, model, logits=False):
    """NormalizedLoss.predictor: R(alpha) and the test-time scale once for all chunks
    (the numbers predict_proba computes per chunk, as alpha does not change)."""
    R = scale_R(model)
    scale = loss._test_scale(model, R)
    mode = loss._fast_norm.mode

    def predict(x):
        X_hat, X, _ = logits_at_normalized(model, x, mode, R=R)
        proba = softmax(scale * X_hat)
        if not logits:
            return proba
        return proba, (model.forward(x) if X is None else X)

    return predict
