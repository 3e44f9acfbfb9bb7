"""FastNormalization: X_hat = X / R by Eq. (8) for bias-free networks, one forward pass.

The numbers of minits/normalization.py (``Normalization``) and of minits/scale.py
(``normalized_logits``), computed without scaling any parameter where Eq. (8)
holds (``is_homogeneous``: bias-free Linear, Conv2d, ReLU, MaxPool2d, Flatten).
R bit for bit; X_hat and the gradients to rounding (~1e-12 relative in float64).
Other networks run the plain code (super()). Read normalization.py first.

Why it is exact. X is positively homogeneous of degree one in each alpha^l, so
X(alpha_hat) = c^n X(alpha) = X / R (c^n = 1/R). Its Jacobian with respect to
alpha^l is of degree one in each of the other n-1 layers, so
g^l = c^{n-1} J_l(alpha)^T dX_hat, and backprop at alpha with upstream
dX_hat / R = c^n dX_hat gives h^l = c g^l, the first term of D7. Euler's identity for
degree one in alpha^l gives <h^l, alpha^l> = (dX_hat / R) . X = dX_hat . X_hat for
every l, so (1/n) <h, alpha> = c (1/n) <g, alpha> = dX_hat . X_hat. Forward is one
pass at alpha (X_hat = X / R; the raw logits X come for free as ``self.X``),
backward one pass at alpha, and no parameter is ever scaled or restored. (ReLU's
derivative 0 at 0 and max-pool's first-maximum choice keep Euler's identity exact
at kinks.) With c = R^{-1/n} the gradient of D7 reads

    dL/dalpha^l = h^l - [dX_hat . X_hat - dL_dR R] alpha^l / ||alpha^l||^2.
"""

import math

import numpy as np

from ..normalization import Normalization, dot64
from ..scale import (
    at_normalized_params,
    check_R,
    is_homogeneous,
    linear_layers,
    scale_R,
    sq_norm,
)
from .sequential import FastSequential


def product_of_roots(sq_norms):
    """prod_l sqrt(s_l) as a Python float: Eq. (9) from the squared layer norms.

    math.sqrt and np.sqrt are both the correctly rounded square root, and the
    product runs left to right as np.prod does, so this is minits.scale.scale_R's
    np.prod(np.sqrt(s)) bit for bit, without the array overhead (every batch).
    """
    return math.prod(math.sqrt(s) for s in sq_norms)


def backward_without_input_grad(model, dX):
    """model.backward(dX), skipping dL/dx of the data where the model can (FastSequential)."""
    if isinstance(model, FastSequential):
        model.backward(dX, input_grad=False)
    else:
        model.backward(dX)


def logits_at_normalized(model, x, R=None):
    """(X_hat, X, R): the normalised logits, the raw logits X(alpha) when they come for
    free (else None), and R(alpha). For prediction; the model is unchanged.

    Must equal (minits.scale.normalized_logits(model, x), -, minits.scale.scale_R(model)):
    R bit for bit, X_hat to rounding on the homogeneous path (X / R, Eq. (8)), bit for
    bit otherwise (a forward pass at alpha_hat).
    R: scale_R(model) when the caller already has it (e.g. once for all the chunks of
    a data set, alpha unchanged since); used on the homogeneous path only.
    """
    if is_homogeneous(model):
        R = check_R(scale_R(model) if R is None else R)
        X = model.forward(x)
        return X / R, X, R
    with at_normalized_params(model) as (R, _):
        return model.forward(x), None, R


class FastNormalization(Normalization):
    """Normalization, fast (module docstring): forward(model, x) -> X_hat, backward(dX_hat,
    dL_dR); after forward, self.X holds the raw logits X(alpha) on the homogeneous path
    (None otherwise)."""

    @classmethod
    def from_plain(cls, norm):
        """The fast twin of a Normalization: a new one (a normalisation holds no parameters,
        only what its last forward computed)."""
        return cls()

    def __init__(self):
        super().__init__()
        self.X = None
        self._homogeneous = False
        self._X_hat = None
        self._sq_norms = None
        self._f64 = {}  # (layer index, name) -> float64 work array for ||alpha^l||^2

    def forward(self, model, x, homogeneous=None):
        """x -> X_hat = X(alpha_hat) (N, K). Sets self.R = R(alpha), self.c, self.X.

        homogeneous: is_homogeneous(model) when the caller has just computed it, else None.
        """
        self._homogeneous = is_homogeneous(model) if homogeneous is None else homogeneous
        if not self._homogeneous:
            self.X = None
            return super().forward(model, x)
        layers = linear_layers(model)
        # as scale_R sums them, each parameter converted to float64 in a kept work array
        self._sq_norms = [sum(sq_norm(self._as64(li, name, p)) for name, p in layer.params.items())
                          for li, layer in enumerate(layers)]
        self.R = check_R(product_of_roots(self._sq_norms))
        self.c = self.R ** (-1.0 / len(layers))
        self._model = model
        self.X = model.forward(x)
        self._X_hat = self.X / self.R  # Eq. (8); R is a Python float: dtype kept
        return self._X_hat

    def backward(self, dX_hat, dL_dR=0.0):
        """dX_hat: dL/dX_hat (N, K), model dtype; dL_dR: explicit dL/dR (float).

        Fills every linear layer's .grads with dL/dalpha (module docstring)."""
        if not self._homogeneous:
            return super().backward(dX_hat, dL_dR)
        model, R = self._model, self.R
        layers = linear_layers(model)
        n = len(layers)
        # h^l = c g^l by backprop at alpha; (1/n) <h, alpha> = dX_hat . X_hat (Euler)
        backward_without_input_grad(model, dX_hat / R)
        h_dot_alpha = n * dot64(dX_hat, self._X_hat)
        for layer, sq in zip(layers, self._sq_norms, strict=True):
            # the radial coefficient is a Python float, so the update keeps the model's dtype
            coef = float((h_dot_alpha / n - float(dL_dR) * R) / sq)
            for name, alpha in layer.params.items():
                layer.grads[name] -= coef * alpha

    def _as64(self, li, name, p):
        """p as float64, in a work array kept between batches rather than a fresh copy:
        the same float64 values, so the same squared norm."""
        if p.dtype == np.float64:
            return p
        buf = self._f64.get((li, name))
        if buf is None or buf.shape != p.shape:
            buf = self._f64[(li, name)] = np.empty(p.shape, np.float64)
        np.copyto(buf, p)
        return buf
