"""The size of the parameters and the normalised network, Eq. (7)-(11).

Notation (docs/decisions.md#notation): the model has n = M-1 linear layers
(Linear, Conv2d) with parameters alpha^1..alpha^n; for a layer with a bias,
alpha^l is W and b together.

    R(alpha)   = prod_l ||alpha^l||                         Eq. (9)
    c          = R^{-1/(M-1)}
    alpha_hat  = c * alpha      (every layer scaled by the same factor)
    X_hat      = X(alpha_hat)   (normalised logits; = X / R for bias-free ReLU /
                                 max-pool networks, Eq. (8))
    delta X    = X_{i(s)} - max_{i != i(s)} X_i                (confidence)
    delta X_hat = delta X(alpha_hat) (= delta X / R without biases)
    W_{eta,I}  = { s in I : delta X(alpha, s) > eta }            (well classified)
    acc        = #W_{0,T} / #T                                   Eq. (11)

X_hat is computed literally -- a forward pass with the parameters scaled in
place by c and then restored bit for bit from a copy (docs/decisions.md#D14) -- for
networks with biases; for bias-free ReLU / max-pool networks Eq. (8) makes it
X / R, one forward pass at alpha (``Normalization`` explains why this is exact).
``Normalization`` also carries the gradient back through alpha -> alpha_hat
(docs/decisions.md#D7).
"""

import math
from contextlib import contextmanager

import numpy as np

from .layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU

# Layers that are positively homogeneous of degree one in their input and, for
# Linear / Conv2d without bias, in their parameters: Eq. (8) holds for a network
# made of these only.
_HOMOGENEOUS = (Linear, Conv2d, ReLU, MaxPool2d, Flatten)


def _linear_layers(model):
    layers = model.linear_layers()
    if not layers:
        raise ValueError("the model has no linear layers (Linear / Conv2d): R(alpha) is undefined")
    return layers


def layer_norms(model):
    """||alpha^l||, the Euclidean norm of all parameters of each linear layer.

    model: a Sequential -> (M-1,) float64, in layer order. Sums of squares
    accumulate in float64 whatever the parameter dtype.
    """
    return np.sqrt(_layer_sq_norms(model))


def _layer_sq_norms(model):
    """||alpha^l||^2 of each linear layer (Python floats), in layer order."""
    return [sum(_sq_norm(p) for p in layer.params.values()) for layer in _linear_layers(model)]


def _product_of_roots(sq_norms):
    """prod_l sqrt(s_l) as a Python float: Eq. (9) from the squared layer norms.

    math.sqrt and np.sqrt are both the correctly rounded square root, and the
    product runs left to right as np.prod does, so this is np.prod(np.sqrt(s))
    bit for bit, without the array overhead (R is needed on every batch).
    """
    return math.prod(math.sqrt(s) for s in sq_norms)


def _sq_norm(p):
    p = p.astype(np.float64, copy=False)
    return float(np.vdot(p, p))


def _dot64(a, b):
    """<a, b> accumulated in float64, whatever the dtype of a and b."""
    return float(np.vdot(a.astype(np.float64, copy=False), b.astype(np.float64, copy=False)))


def scale_R(model):
    """R(alpha) = prod_{l=1}^{M-1} ||alpha^l||, Eq. (9). model -> float."""
    return _product_of_roots(_layer_sq_norms(model))


def normalization_factor(model):
    """c = R^{-1/(M-1)}, so that alpha_hat = c * alpha has R(alpha_hat) = 1. -> float."""
    R = scale_R(model)
    _check_R(R)
    return R ** (-1.0 / len(_linear_layers(model)))


def _check_R(R):
    if not (math.isfinite(R) and R > 0):
        raise ValueError(f"R(alpha) = {R}: a linear layer has zero (or non-finite) parameters, "
                         "so the normalised parameters alpha / R^(1/(M-1)) are undefined")


def normalized_params(model):
    """alpha_hat = alpha / R^{1/(M-1)}: a copy of every linear layer's params, scaled.

    model -> list (one per linear layer) of dicts name -> array (model's dtype).
    The model is not changed. R(alpha_hat) = 1.
    """
    c = normalization_factor(model)
    return [{name: p * c for name, p in layer.params.items()}
            for layer in _linear_layers(model)]


@contextmanager
def at_normalized_params(model):
    """Run a block with the model's parameters set to alpha_hat, then restore alpha.

    Yields (R, c). The parameters are scaled in place (layers may hold views of
    them) and restored from copies, so alpha is bit-identical afterwards even if
    the block raises.
    """
    c = normalization_factor(model)
    R = scale_R(model)
    saved = [(p, p.copy()) for layer in _linear_layers(model) for p in layer.params.values()]
    try:
        for p, _ in saved:
            p *= c
        yield R, c
    finally:
        for p, copy in saved:
            np.copyto(p, copy)


def normalized_logits(model, x):
    """X_hat = X(alpha_hat), the logits of the normalised network.

    model: Sequential; x: its input (N, ...) -> X_hat (N, K), model dtype.
    For bias-free ReLU / max-pool networks this is X / R (Eq. (8)), one forward
    pass at alpha; with biases it is the literal forward pass at alpha_hat
    (docs/decisions.md#D14). The model is unchanged.
    """
    return logits_at_normalized(model, x)[0]


def logits_at_normalized(model, x, mode="auto", R=None):
    """(X_hat, X, R): the normalised logits, the raw logits X(alpha) when they come
    for free, and R(alpha). For prediction; the model is unchanged.

    model: Sequential; x: its input (N, ...); mode as in ``Normalization``.
    "homogeneous" (default for bias-free ReLU / max-pool networks): one forward pass
    at alpha, X_hat = X / R (Eq. (8); exact up to rounding, see Normalization).
    "literal": X_hat by a forward pass at alpha_hat (``at_normalized_params``), X is None.
    R: scale_R(model) when the caller already has it (e.g. once for all the chunks of
    a data set, alpha unchanged since), else computed here; used on the homogeneous
    path only (the literal path computes R as it scales alpha: the same number).
    Returns X_hat (N, K), X (N, K) or None, R (float).
    """
    if Normalization(mode)._use_fast_path(model):
        R = scale_R(model) if R is None else R
        _check_R(R)
        X = model.forward(x)
        return X / R, X, R
    with at_normalized_params(model) as (R, _):
        return model.forward(x), None, R


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
    """(X_{i(s)}, max_{i != i(s)} X_i): the two terms of the confidence delta X, each
    (N,) in the dtype of X; X: logits (N, K), K >= 2; y: labels (N,)."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] < 2:
        raise ValueError(f"confidence needs logits of shape (N, K) with K >= 2, got {X.shape}")
    y = np.asarray(y)
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},), got {y.shape}")
    rows = np.arange(X.shape[0])
    others = X.T.copy()  # (K, N): the maximum over classes as in row_max
    others[y, rows] = -np.inf
    return X[rows, y], np.maximum.reduce(others, axis=0)


def row_max(a, keepdims=False):
    """The maximum along the last axis, the numbers of a.max(axis=-1, keepdims=keepdims).

    a: (N, K) -> (N,) (or (N, 1)); other shapes are reduced as a.max(axis=-1).
    For (N, K) it is taken over the rows of a's transpose, K vectorised np.maximum
    of length N, because NumPy reduces many short rows (K = 10) one by one, about
    twice as slowly. A maximum is exact, so the order of the comparisons cannot
    change it (NaN propagates either way); only a tie of +0 and -0 could come out
    with the other sign of zero, which no result here depends on.
    """
    if a.ndim != 2:
        return np.maximum.reduce(a, axis=-1, keepdims=keepdims)
    m = np.maximum.reduce(np.ascontiguousarray(a.T), axis=0)
    return m[:, None] if keepdims else m


def normalized_confidence(model, x, y):
    """delta X_hat = delta X(alpha_hat, s) (= delta X / R without biases). -> (N,)."""
    return confidence(normalized_logits(model, x), y)


def well_classified(delta, eta):
    """Membership of W_{eta,I}: delta X(alpha, s) > eta (strict, docs/decisions.md#D15).

    delta: confidences (N,); eta: a real number >= 0 -> bool (N,).
    Eq. (11): the accuracy is well_classified(delta, 0).mean().
    """
    return np.asarray(delta) > eta


def num_well_classified(delta, eta):
    """#W_{eta,I}, the number of objects with delta > eta. -> int."""
    return int(np.count_nonzero(well_classified(delta, eta)))


class Normalization:
    """Forward at alpha_hat and the chain rule back to alpha (docs/decisions.md#D7).

    A loss that depends on alpha through X_hat = X(alpha_hat) -- and possibly
    explicitly through R(alpha), as Eq. (17) with a live R -- uses

        X_hat = norm.forward(model, x)          # norm.R, norm.c hold R(alpha), c
        ...                                     # loss on X_hat
        norm.backward(dX_hat, dL_dR=0.0)        # fills model grads with dL/dalpha

    With c = R^{-1/n}, n = M-1, g^l = dL/dalpha_hat^l from ordinary backprop at
    alpha_hat and <g, alpha> = sum over all layers, the gradient of
    L(alpha_hat(alpha), R(alpha)) is

        dL/dalpha^l = c [ g^l - (1/n) <g, alpha> alpha^l / ||alpha^l||^2 ]
                      + dL_dR * R alpha^l / ||alpha^l||^2

    since dR/dalpha^l = R alpha^l / ||alpha^l||^2 and dc/dalpha^l = -(c/n) alpha^l / ||alpha^l||^2.
    For bias-free homogeneous networks and dL_dR = 0 the result is orthogonal to
    every alpha^l (scale invariance of L).

    Two paths compute this (``mode``):

    "literal": the parameters are scaled in place to alpha_hat for the forward
        and backward passes and restored bit for bit from a copy in between;
        the model holds alpha outside forward and backward. Works for any
        network; the default for networks with biases (docs/decisions.md#D14).
    "homogeneous": for bias-free ReLU / max-pool networks (``is_homogeneous``),
        the default there. Exact by Eq. (8): X is positively homogeneous of
        degree one in each alpha^l, so X(alpha_hat) = c^n X(alpha) = X / R (c^n = 1/R).
        Its Jacobian with respect to alpha^l is of degree one in each of the
        other n-1 layers, so g^l = c^{n-1} J_l(alpha)^T dX_hat, and backprop at
        alpha with upstream dX_hat / R = c^n dX_hat gives h^l = c g^l, the first
        term. Euler's identity for degree one in alpha^l gives
        <h^l, alpha^l> = (dX_hat / R) . X = dX_hat . X_hat for every l, so
        (1/n) <h, alpha> = c (1/n) <g, alpha> = dX_hat . X_hat. So forward is one
        pass at alpha (X_hat = X / R; the raw logits X come for free as ``self.X``),
        backward one pass at alpha, and no parameter is ever scaled or restored.
        (ReLU's derivative 0 at 0 and max-pool's first-maximum choice keep Euler's
        identity exact at kinks.) The two paths agree to rounding:
        tests/test_fast_paths.py.

    "auto" (default) picks "homogeneous" when the model is homogeneous, else "literal".

    verify (default True): backward first checks that alpha still equals the alpha of
    forward (a copy of alpha and a comparison per batch), and raises RuntimeError if
    not. A training loop that always calls backward right after forward switches it
    off (the losses' check_unchanged); the homogeneous path then keeps no copy at all
    and uses the parameter arrays themselves, which hold the same numbers.
    """

    MODES = ("auto", "literal", "homogeneous")

    def __init__(self, mode="auto", verify=True):
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        self.verify = bool(verify)
        self.R = None
        self.c = None
        self.X = None  # raw logits X(alpha) of the last forward ("homogeneous" path only)
        self._model = None
        self._entries = []  # (layer, name, layer index l-1, alpha^l: a copy, or the array)
        self._sq_norms = None
        self._fast = False
        self._f64 = {}  # (l-1, name) -> float64 work array for ||alpha^l||^2

    def _save(self, model, copy=True):
        """List alpha as entries; with copy=True alpha is copied into buffers kept from
        the previous batch (no per-step allocation): the copies detect a change of alpha
        before backward and give the literal path its bit-for-bit restore. With
        copy=False the entries hold the parameter arrays themselves."""
        layers = _linear_layers(model)
        old = ({(li, name): s for _, name, li, s in self._entries}
               if copy and model is self._model else {})
        self._entries = []
        for li, layer in enumerate(layers):
            for name, p in layer.params.items():
                if copy:
                    s = old.get((li, name))
                    # (s is p: the last batch kept the array itself, copy=False)
                    if s is None or s is p or s.shape != p.shape or s.dtype != p.dtype:
                        s = np.empty_like(p)
                    np.copyto(s, p)
                    p = s
                self._entries.append((layer, name, li, p))
        self._model, self._n = model, len(layers)

    def _sq_norm64(self, li, name, p):
        """_sq_norm(p), with p converted to float64 in a work array kept between batches
        rather than a fresh copy per batch: the same float64 values, the same number."""
        if p.dtype != np.float64:
            buf = self._f64.get((li, name))
            if buf is None or buf.shape != p.shape:
                buf = self._f64[(li, name)] = np.empty(p.shape, np.float64)
            np.copyto(buf, p)
            p = buf
        return _sq_norm(p)

    def _scale_in_place(self):
        for layer, name, _, _ in self._entries:
            layer.params[name] *= self.c

    def _restore(self):
        for layer, name, _, s in self._entries:
            np.copyto(layer.params[name], s)

    def _use_fast_path(self, model, homogeneous=None):
        if homogeneous is None:
            homogeneous = is_homogeneous(model)
        if self.mode == "auto":
            return homogeneous
        if self.mode == "homogeneous" and not homogeneous:
            raise ValueError("Normalization(mode='homogeneous') needs a bias-free network of "
                             "Linear, Conv2d, ReLU, MaxPool2d and Flatten layers (Eq. (8))")
        return self.mode == "homogeneous"

    def forward(self, model, x, homogeneous=None):
        """x -> X_hat = X(alpha_hat) (N, K). Sets self.R = R(alpha), self.c. alpha is unchanged.

        homogeneous: is_homogeneous(model) when the caller has just computed it, else None.
        """
        self._fast = self._use_fast_path(model, homogeneous)
        self._save(model, copy=self.verify or not self._fast)
        sq = [0.0] * self._n
        for _, name, li, s in self._entries:
            sq[li] += self._sq_norm64(li, name, s)  # as scale_R sums them: the same R
        self._sq_norms = sq
        self.R = _product_of_roots(sq)
        _check_R(self.R)
        self.c = self.R ** (-1.0 / self._n)
        if self._fast:
            self.X = model.forward(x)
            self._X_hat = self.X / self.R  # Eq. (8); R is a Python float: dtype kept
            return self._X_hat
        self.X = None
        self._scale_in_place()
        try:
            return model.forward(x)
        finally:
            self._restore()

    def backward(self, dX_hat, dL_dR=0.0):
        """dX_hat: dL/dX_hat (N, K), model dtype; dL_dR: explicit dL/dR (float).

        Fills every linear layer's .grads with dL/dalpha (formula in the class docstring).
        """
        if self._model is None:
            raise RuntimeError("Normalization.backward() called before forward()")
        for layer, name, _, s in self._entries if self.verify else ():
            if not np.array_equal(layer.params[name], s):
                raise RuntimeError("the model's parameters changed between the loss's forward "
                                   "and backward; call backward right after forward")
        c, n, R = self.c, self._n, self.R
        if self._fast:
            # h^l = c g^l by backprop at alpha; (1/n) <h, alpha> = dX_hat . X_hat (Euler)
            self._model.backward(dX_hat / R, input_grad=False)
            h_dot_alpha = n * _dot64(dX_hat, self._X_hat)
        else:
            self._scale_in_place()
            try:
                self._model.backward(dX_hat, input_grad=False)
            finally:
                self._restore()
            for layer, name, _, _ in self._entries:
                layer.grads[name] *= c  # h^l = c g^l
            # <h, alpha> over all layers, accumulated in float64
            h_dot_alpha = sum(_dot64(layer.grads[name], s) for layer, name, _, s in self._entries)
        for layer, name, li, alpha in self._entries:
            # the radial coefficient is a Python float, so the update keeps the model's dtype
            coef = float((h_dot_alpha / n - float(dL_dR) * R) / self._sq_norms[li])
            layer.grads[name] -= coef * alpha
