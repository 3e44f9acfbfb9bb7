"""The fast twins of the losses: FastTwoScale of TwoScale, and so on.

Each is a subclass of its plain loss with the same constructor, parameters and
numbers (bit for bit with the same layers, except where FastNormalization uses
Eq. (8): to rounding). What a fast loss saves, batch after batch:

- the normalisation runs on FastNormalization: for a bias-free network one forward
  pass at alpha gives X_hat = X / R (Eq. (8)) *and* the raw logits X of the raw
  confidence, where the plain loss runs two passes;
- backward skips dL/dx of the data (FastSequential);
- Eq. (13) per object is minits/fast/objectives.py's fast_two_scale_value_and_grad, and
  Eq. (4)'s forward uses its fast_cross_entropy, fast_confidence and mean64;
- test-time probabilities by Eq. (8), R(alpha) once per data set (predictor).
"""

from ..layers import softmax
from ..losses import (
    CrossEntropy,
    OneScale,
    Truncated,
    TwoScale,
    TwoScaleSeparation,
    TwoScaleWrapper,
)
from ..losses.base import Diagnostics, check_logits_labels
from ..scale import is_homogeneous, scale_R
from .normalization import FastNormalization, backward_without_input_grad, logits_at_normalized
from .objectives import (
    fast_confidence,
    fast_cross_entropy,
    fast_two_scale_value_and_grad,
    mean64,
)


class FastLoss:
    """Mixin, first among the bases of a fast loss: how one is made from a plain loss."""

    @classmethod
    def from_plain(cls, loss):
        """The fast twin of a plain loss, sharing its params (the same dict: an SGD step on
        either is a step on both) and its settings."""
        fast = cls.__new__(cls)
        fast.__dict__.update(loss.__dict__)
        fast.last, fast._model = None, None
        fast._fast_init()
        return fast

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._fast_init()

    def _fast_init(self):
        pass


class FastCrossEntropy(FastLoss, CrossEntropy):
    """CrossEntropy (Eq. (4)), fast: the same numbers, bit for bit; backward skips dL/dx
    of the data."""

    def forward(self, model, x, y):
        """CrossEntropy.forward with the fast per-object functions, the same numbers."""
        X = model.forward(x)
        y = check_logits_labels(X, y)
        values, dX = self._objective_fast(X, y)
        delta = fast_confidence(X, y)
        self.last = Diagnostics(confidence=delta, second=self._second(X, y), correct=delta > 0,
                                values=values)
        self._model, self._dX = model, dX / len(y)
        return values if self.reduction == "none" else mean64(values)

    def _objective_fast(self, z, y):
        return fast_cross_entropy(z, y)

    def backward(self):
        """CrossEntropy.backward without dL/dx of the data."""
        self._check_backward()
        backward_without_input_grad(self._model, self._dX)


class FastTruncated(FastCrossEntropy, Truncated):
    """Truncated (Eq. (12)), fast: the forward and backward of FastCrossEntropy with
    Eq. (12) itself as the objective (it has no faster version)."""

    def _objective_fast(self, z, y):
        return self.objective(z, y)


class FastNormalizedLoss(FastLoss):
    """Mixin for the losses on X_hat: FastTwoScale(FastNormalizedLoss, TwoScale), ..."""

    def _fast_init(self):
        self._norm = FastNormalization()

    def _logits(self, model, x):
        """NormalizedLoss._logits: X, X_hat, R(alpha); for a bias-free network one pass."""
        homogeneous = is_homogeneous(model)
        X = None
        if self.confidence == "raw" and not homogeneous:
            X = model.forward(x)  # before X_hat, so the layers' caches belong to alpha_hat
        X_hat = self._norm.forward(model, x, homogeneous)
        if X is None:
            X = self._norm.X  # the raw logits of the homogeneous path (None when literal)
        return X, X_hat, self._norm.R

    def predict_proba(self, model, x):
        """NormalizedLoss.predict_proba: softmax(R_test X_hat) (N, K), X_hat from
        logits_at_normalized (X / R for bias-free networks)."""
        X_hat, _, R = logits_at_normalized(model, x)
        return softmax(self.R_test(model, R) * X_hat)

    def predict_proba_and_logits(self, model, x):
        """(predict_proba(model, x), raw logits X(alpha)): one forward pass for bias-free
        networks."""
        X_hat, X, R = logits_at_normalized(model, x)
        proba = softmax(self.R_test(model, R) * X_hat)
        return proba, (model.forward(x) if X is None else X)

    def predictor(self, model, logits=False):
        """Loss.predictor: R(alpha) and the test-time scale once for all chunks (the
        numbers predict_proba computes per chunk, as alpha does not change)."""
        R = scale_R(model)
        R_test = self.R_test(model, R)

        def predict(x):
            X_hat, X, _ = logits_at_normalized(model, x, R=R)
            proba = softmax(R_test * X_hat)
            if not logits:
                return proba
            return proba, (model.forward(x) if X is None else X)

        return predict


class FastTwoScale(FastNormalizedLoss, TwoScale):
    """TwoScale (Eq. (13)-(16)), fast."""

    def _value_and_grad(self, X_hat, y, R1, R2, second):
        return fast_two_scale_value_and_grad(X_hat, y, R1, R2, second, fixed=self.fixed)


class FastOneScale(FastNormalizedLoss, OneScale):
    """OneScale (the traditional loss), fast."""

    def _value_and_grad(self, X_hat, y, R1, R2, second):
        return fast_two_scale_value_and_grad(X_hat, y, R1, R2, second, fixed=self.fixed)


class FastTwoScaleWrapper(FastNormalizedLoss, TwoScaleWrapper):
    """TwoScaleWrapper, fast: the normalisation's levers; its objective as given."""


class FastTwoScaleSeparation(FastNormalizedLoss, TwoScaleSeparation):
    """TwoScaleSeparation (Eq. (17)-(18)), fast."""

    def _value_and_grad(self, X_hat, y, R, Rs, second):
        values, dX_hat, dR1, dR2 = fast_two_scale_value_and_grad(X_hat, y, R, Rs * R, second)
        return values, dX_hat, R * dR2, dR1 + Rs * dR2
