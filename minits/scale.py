"""The size of the parameters and the normalised network, Eq. (7)-(11).

Notation (docs/decisions.md#notation): the model has n = M-1 linear layers
(Linear, Conv2d) with parameters alpha^1..alpha^n; for a layer with a bias,
alpha^l is W and b together.

    R(alpha)    = prod_l ||alpha^l||                          Eq. (9)
    c           = R^{-1/(M-1)}
    alpha_hat   = c * alpha      (every layer scaled by the same factor)
    X_hat       = X(alpha_hat)   (normalised logits; = X / R for bias-free ReLU /
                                  max-pool networks, Eq. (8))
    delta X     = X_{i(s)} - max_{i != i(s)} X_i                (confidence, Eq. (7))
    delta X_hat = delta X(alpha_hat) (= delta X / R without biases)
    W_{eta,I}   = { s in I : delta X(alpha, s) > eta }            (well classified)
    acc         = #W_{0,T} / #T                                   Eq. (11)

These are the definitions, each computed the literal way: X_hat is a forward pass
with the parameters scaled in place by c and then restored bit for bit
(docs/decisions.md#D14). The gradient through alpha -> alpha_hat
(docs/decisions.md#D7) is in minits/normalization.py.
"""

from contextlib import contextmanager

import numpy as np

from .layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU

# Layers that are positively homogeneous of degree one in their input and, for
# Linear / Conv2d without bias, in their parameters: Eq. (8) holds for a network
# made of these only.
_HOMOGENEOUS = (Linear, Conv2d, ReLU, MaxPool2d, Flatten)


def linear_layers(model):
    """The layers that carry alpha^1..alpha^n (Linear, Conv2d), in order; refuses none."""
    layers = model.linear_layers()
    if not layers:
        raise ValueError("the model has no linear layers (Linear / Conv2d): R(alpha) is undefined")
    return layers


def sq_norm(p):
    """||p||^2 = <p, p>, accumulated in float64 whatever p's dtype. p: any shape -> float."""
    p = p.astype(np.float64, copy=False)
    return float(np.vdot(p, p))


def layer_sq_norms(model):
    """||alpha^l||^2 of each linear layer, all its parameters (W and b) together.

    model: a Sequential -> list of n Python floats, in layer order.
    """
    # BEGIN TASK scale-r
    return [sum(sq_norm(p) for p in layer.params.values()) for layer in linear_layers(model)]
    # END TASK


def layer_norms(model):
    """||alpha^l||, the Euclidean norm of all parameters of each linear layer.

    model: a Sequential -> (n,) float64, in layer order.
    """
    return np.sqrt(layer_sq_norms(model))


def scale_R(model):
    """R(alpha) = prod_{l=1}^{M-1} ||alpha^l||, Eq. (9). model -> Python float."""
    # BEGIN TASK scale-r
    return float(np.prod(layer_norms(model)))
    # END TASK


def check_R(R):
    """R, if it is finite and > 0; else a ValueError (alpha_hat would be undefined)."""
    if not (np.isfinite(R) and R > 0):
        raise ValueError(f"R(alpha) = {R}: a linear layer has zero (or non-finite) parameters, "
                         "so the normalised parameters alpha / R^(1/(M-1)) are undefined")
    return R


def normalization_factor(model, R=None):
    """c = R^{-1/(M-1)}, so that alpha_hat = c * alpha has R(alpha_hat) = 1.

    model: a Sequential; R: R(alpha) when the caller has it (else computed) -> float.
    """
    R = check_R(scale_R(model) if R is None else R)
    # BEGIN TASK scale-r
    return R ** (-1.0 / len(linear_layers(model)))
    # END TASK


def normalized_params(model):
    """alpha_hat = alpha / R^{1/(M-1)}: a copy of every linear layer's params, scaled.

    model -> list (one per linear layer) of dicts name -> array (model's dtype).
    The model is not changed. R(alpha_hat) = 1.
    """
    c = normalization_factor(model)
    return [{name: p * c for name, p in layer.params.items()} for layer in linear_layers(model)]


@contextmanager
def at_normalized_params(model):
    """Run a block with the model's parameters set to alpha_hat, then restore alpha.

    Yields (R, c): R(alpha) and c = R^{-1/(M-1)}. The parameters are scaled in place
    (layers may hold views of them) and restored from copies, so alpha is bit-identical
    afterwards, even if the block raises.
    """
    R = check_R(scale_R(model))
    c = normalization_factor(model, R)
    saved = [(p, p.copy()) for layer in linear_layers(model) for p in layer.params.values()]
    try:
        for p, _ in saved:
            p *= c
        yield R, c
    finally:
        for p, copy in saved:
            np.copyto(p, copy)


def normalized_logits(model, x):
    """X_hat = X(alpha_hat), the logits of the normalised network (Sec. 2.2).

    model: Sequential; x: its input (N, ...) -> X_hat (N, K), model dtype. A forward
    pass at alpha_hat (docs/decisions.md#D14); the model is unchanged afterwards.
    For bias-free ReLU / max-pool networks this is X / R up to rounding, Eq. (8).
    """
    with at_normalized_params(model):
        return model.forward(x)


def is_homogeneous(model):
    """True when Eq. (8) holds: only Linear, Conv2d (both without bias), ReLU,
    MaxPool2d and Flatten layers. Then X(alpha) = R X_hat exactly (up to rounding)."""
    return (all(isinstance(layer, _HOMOGENEOUS) for layer in model.layers)
            and all("b" not in layer.params for layer in model.linear_layers()))


def confidence(X, y):
    """Classification confidence delta X = X_{i(s)} - max_{i != i(s)} X_i (Sec. 2.2).

    (The paper's text writes X_{i(s)+1} inside the max; docs/decisions.md#D1.)
    X: logits (N, K), K >= 2; y: labels (N,) -> (N,), dtype of X.
    delta > 0 exactly when s is correctly classified, Eq. (7).
    """
    true, runner_up = confidence_terms(X, y)
    return true - runner_up


def confidence_terms(X, y):
    """(X_{i(s)}, max_{i != i(s)} X_i): the two terms of the confidence delta X.

    X: logits (N, K), K >= 2; y: labels (N,) -> two (N,) arrays in the dtype of X.
    """
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] < 2:
        raise ValueError(f"confidence needs logits of shape (N, K) with K >= 2, got {X.shape}")
    y = np.asarray(y)
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},), got {y.shape}")
    # BEGIN TASK confidence
    rows = np.arange(X.shape[0])
    others = X.copy()
    others[rows, y] = -np.inf  # the max runs over i != i(s)
    return X[rows, y], others.max(axis=1)
    # END TASK


def normalized_confidence(model, x, y):
    """delta X_hat = delta X(alpha_hat, s) (= delta X / R without biases). -> (N,)."""
    return confidence(normalized_logits(model, x), y)


def well_classified(delta, eta):
    """Membership of W_{eta,I}: delta X(alpha, s) > eta (strict, docs/decisions.md#D15).

    delta: confidences (N,); eta: a real number >= 0 (or an array that broadcasts
    against delta) -> bool (N,). Eq. (11): the accuracy is well_classified(delta, 0).mean();
    #W_{eta,I} is minits.metrics.well_classified_count.
    """
    return np.asarray(delta) > eta
