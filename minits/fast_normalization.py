"""The fast normalisation engine: the numbers of minits/normalization.py
(``Normalization``) and of minits/scale.py (``normalized_logits``), computed with
Eq. (8) for bias-free networks and with work arrays kept between batches.

``FastNormalization`` must equal ``minits.normalization.Normalization`` up to
rounding (bit for bit on R; to ~1e-12 relative on X_hat and the gradients in
float64: tests/test_fast_paths.py), and ``logits_at_normalized`` must equal
``minits.scale.normalized_logits`` (plus the raw logits and R) to the same
rounding. This is the engine the training loop runs; read normalization.py first.
"""

import math

import numpy as np

from .normalization import dot64
from .scale import at_normalized_params, check_R, is_homogeneous, linear_layers, scale_R, sq_norm


def _product_of_roots(sq_norms):
    """prod_l sqrt(s_l) as a Python float: Eq. (9) from the squared layer norms.

    math.sqrt and np.sqrt are both the correctly rounded square root, and the
    product runs left to right as np.prod does, so this is minits.scale.scale_R's
    np.prod(np.sqrt(s)) bit for bit, without the array overhead (every batch).
    """
    return math.prod(math.sqrt(s) for s in sq_norms)


def logits_at_normalized(model, x, mode="auto", R=None):
    """(X_hat, X, R): the normalised logits, the raw logits X(alpha) when they come
    for free, and R(alpha). For prediction; the model is unchanged.

    Must equal (minits.scale.normalized_logits(model, x), -, minits.scale.scale_R(model)):
    R bit for bit, X_hat bit for bit on the literal path and to rounding on the
    homogeneous one (X / R).
    model: Sequential; x: its input (N, ...); mode as in ``FastNormalization``.
    "homogeneous" (default for bias-free ReLU / max-pool networks): one forward pass
    at alpha, X_hat = X / R (Eq. (8); exact up to rounding, see FastNormalization).
    "literal": X_hat by a forward pass at alpha_hat (``at_normalized_params``), X is None.
    R: scale_R(model) when the caller already has it (e.g. once for all the chunks of
    a data set, alpha unchanged since), else computed here; used on the homogeneous
    path only (the literal path computes R as it scales alpha: the same number).
    Returns X_hat (N, K), X (N, K) or None, R (float).
    """
    if FastNormalization(mode)._use_fast_path(model):
        R = scale_R(model) if R is None else R
        check_R(R)
        X = model.forward(x)
        return X / R, X, R
    with at_normalized_params(model) as (R, _):
        return model.forward(x), None, R


class FastNormalization:
    """Forward at alpha_hat and the chain rule back to alpha (docs/decisions.md#D7), fast.

    Must equal minits.normalization.Normalization (its forward and backward) up to
    rounding; R bit for bit.

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
        layers = linear_layers(model)
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
        """sq_norm(p), with p converted to float64 in a work array kept between batches
        rather than a fresh copy per batch: the same float64 values, the same number."""
        if p.dtype != np.float64:
            buf = self._f64.get((li, name))
            if buf is None or buf.shape != p.shape:
                buf = self._f64[(li, name)] = np.empty(p.shape, np.float64)
            np.copyto(buf, p)
            p = buf
        return sq_norm(p)

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
            raise ValueError("FastNormalization(mode='homogeneous') needs a bias-free network of "
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
        check_R(self.R)
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
            raise RuntimeError("FastNormalization.backward() called before forward()")
        for layer, name, _, s in self._entries if self.verify else ():
            if not np.array_equal(layer.params[name], s):
                raise RuntimeError("the model's parameters changed between the loss's forward "
                                   "and backward; call backward right after forward")
        c, n, R = self.c, self._n, self.R
        if self._fast:
            # h^l = c g^l by backprop at alpha; (1/n) <h, alpha> = dX_hat . X_hat (Euler)
            self._model.backward(dX_hat / R, input_grad=False)
            h_dot_alpha = n * dot64(dX_hat, self._X_hat)
        else:
            self._scale_in_place()
            try:
                self._model.backward(dX_hat, input_grad=False)
            finally:
                self._restore()
            for layer, name, _, _ in self._entries:
                layer.grads[name] *= c  # h^l = c g^l
            # <h, alpha> over all layers, accumulated in float64
            h_dot_alpha = sum(dot64(layer.grads[name], s) for layer, name, _, s in self._entries)
        for layer, name, li, alpha in self._entries:
            # the radial coefficient is a Python float, so the update keeps the model's dtype
            coef = float((h_dot_alpha / n - float(dL_dR) * R) / self._sq_norms[li])
            layer.grads[name] -= coef * alpha
