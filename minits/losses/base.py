"""What every loss shares: input checks, the reduction, the
branch split of Eq. (13), diagnostics, and the Loss protocol.

A loss is a small object with its value and its gradient side by side
(Nielsen's network2 style):

    value = loss.forward(model, x, y)   # runs the model, returns the batch loss
    loss.backward()                     # fills every linear layer's .grads and loss.grads

``loss.params`` holds the loss's own scales (Python floats: R1, R2 or Rs) and
``loss.grads`` the gradients of the trainable ones after ``backward``. SGD
(minits/optim.py) updates both.

Per-object objectives -- the functions ``f(z, y) -> (values, dz)`` used on logits
z -- live beside their equation: cross_entropy (Eq. (4)), truncated (Eq. (12)),
mse_probabilities. Each returns per-object values (N,) and dvalues/dz (N, K),
the gradient of the *sum* of the values.

Logits that are not finite (a diverged network) are not an error here: they give a
NaN or inf loss, as in PyTorch, and the training loop stops such a run itself
(docs/decisions.md#D17).
"""

import math
from dataclasses import dataclass, field

import numpy as np

REDUCTIONS = ("mean", "none")


def check_logits_labels(z, y, what="logits"):
    """Validate z (N, K) float and y (N,) integer labels in [0, K); return y as intp."""
    if not isinstance(z, np.ndarray) or z.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (N, K), got "
                         f"{getattr(z, 'shape', type(z).__name__)}")
    if z.dtype not in (np.float32, np.float64):
        raise TypeError(f"{what} must be float32 or float64, not {z.dtype}")
    N, K = z.shape
    if N == 0:
        raise ValueError(f"{what} hold no objects (N = 0): a batch needs at least one")
    if K < 2:
        raise ValueError(f"{what} must have at least 2 classes (K >= 2), got K = {K}")
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != N:
        raise ValueError(f"y must be a 1-D array of {N} labels (one per row of {what}), "
                         f"got shape {y.shape}")
    if y.dtype.kind not in "iu":
        raise TypeError(f"y must hold integer class labels, not {y.dtype}")
    if y.min() < 0 or y.max() >= K:
        raise ValueError(f"y must hold labels in [0, {K}), got values in [{y.min()}, {y.max()}]")
    return y.astype(np.intp, copy=False)


def check_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def check_eta(eta, finite=True):
    """eta > 0 (Sec. 2.3 restricts to eta > 0) and finite, as the command line takes it:
    at eta = inf no object takes the second case, and that loss is OneScale, the one
    loss built with finite=False."""
    if isinstance(eta, bool) or not isinstance(eta, (int, float, np.integer, np.floating)):
        raise TypeError(f"eta must be a real number, not {type(eta).__name__}")
    if not eta > 0:  # also refuses NaN
        raise ValueError(f"eta must be > 0 (the paper restricts Eq. (13) to eta > 0), got {eta}")
    if finite and math.isinf(eta):
        raise ValueError("eta must be finite: at eta = inf no object takes the second case, "
                         "which is the one-scale loss (losses.OneScale)")
    return float(eta)


def check_scale(value, name):
    """A scale (R1, R2, Rs, ...) given by the user: None, or a positive finite number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating,
                                                          np.ndarray)):
        raise TypeError(f"{name} must be a positive number or None, not {type(value).__name__}")
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return value


def reduce(values, reduction):
    """Eq. (5) on a batch: the mean over objects, or the per-object values (N,)."""
    if reduction == "none":
        return values
    return float(np.mean(values, dtype=np.float64))


def second_branch(delta, eta):
    """Which objects take the second case of Eq. (13), (16), (17): delta >= eta.

    delta: (N,) confidences -> (N,) bool. The boundary delta = eta belongs to
    the second case, as Eq. (13) writes ">=" (docs/decisions.md#D15); the
    well-classified set W_{eta,I} of minits.scale uses ">" instead.
    """
    # BEGIN TASK eq13-split
    return delta >= eta
    # END TASK


@dataclass
class Diagnostics:
    """What a loss saw on its last batch (``loss.last``). Arrays have shape (N,).

    confidence: the confidence that split the batch into the two cases of the
        equation (delta X, delta X_hat or delta of R1 X_hat, per ``confidence=``);
        for single-case losses, delta X of the logits the loss used
    second: bool, True where the object took the second case of its equation
        (the R2 branch of Eq. (13)/(16), the Rs R branch of Eq. (17), the
        p_{i(s)} >= k branch of Eq. (12)); all False for Eq. (4)
    correct: bool, the test-time classifier's prediction is right, delta > 0 of
        the test-time logits (Eq. (11) on the batch)
    values: per-object losses
    R_alpha: R(alpha) of Eq. (9) when the batch was seen (None for losses on raw logits)
    scales: the loss's scales used, e.g. {"R1": ..., "R2": ...}
    """

    confidence: np.ndarray
    second: np.ndarray
    correct: np.ndarray
    values: np.ndarray
    R_alpha: float = None
    scales: dict = field(default_factory=dict)

    @property
    def accuracy(self):
        """Fraction of the batch classified correctly, Eq. (11)."""
        # count / size: the mean of the booleans, without np.mean's per-call overhead
        n = self.correct.size
        return np.count_nonzero(self.correct) / n if n else float("nan")

    @property
    def num_second(self):
        """How many objects took the second case (e.g. the R2 branch)."""
        return int(np.count_nonzero(self.second))


class Loss:
    """Base class: forward(model, x, y) -> value; backward(); predict_proba(model, x).

    Attributes:
        params: dict name -> float, the loss's own scales (empty for Eq. (4))
        grads:  dict name -> float, d(batch loss)/d(scale) of the *trainable*
                scales, filled by backward (empty when none is trainable)
        reduction: "mean" (Eq. (5) on the batch; required for backward) or "none"
        last: Diagnostics of the last forward, or None

    A subclass writes ``forward`` -- the paper's equations top to bottom -- and
    ``backward``, which follows the last forward: run nothing through the model in
    between, and leave its parameters as they are.
    """

    def __init__(self, reduction="mean"):
        self.reduction = check_reduction(reduction)
        self.params = {}
        self.grads = {}
        self.last = None
        self._model = None

    def forward(self, model, x, y):
        """model; x: its input (N, ...); y: labels (N,) -> the batch loss (float, Eq. (5)),
        or the per-object values (N,) with reduction="none"."""
        raise NotImplementedError

    def backward(self):
        """Fills every linear layer's .grads with d(batch mean)/dalpha and self.grads
        with the trainable scales' derivatives; follows the last forward."""
        raise NotImplementedError

    def predict_proba(self, model, x):
        raise NotImplementedError

    def predict_proba_and_logits(self, model, x):
        """(predict_proba(model, x), raw logits X(alpha)) (N, K) each; losses that
        get both from one forward pass override this."""
        return self.predict_proba(model, x), model.forward(x)

    def predictor(self, model, logits=False):
        """A function for evaluating a whole data set chunk by chunk with `model` as it
        is now: x (n, ...) -> predict_proba(model, x) (n, K), or with logits=True the
        pair predict_proba_and_logits(model, x). The model must not change while it is
        in use."""
        if logits:
            return lambda x: self.predict_proba_and_logits(model, x)
        return lambda x: self.predict_proba(model, x)

    def _check_backward(self):
        if self._model is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before forward()")
        if self.reduction != "mean":
            raise ValueError(f"{type(self).__name__}.backward() needs reduction='mean' (the "
                             f"gradient of the batch mean, Eq. (5)); this loss has reduction="
                             f"{self.reduction!r}")

    @property
    def scales_positive(self):
        """True when every scale in params is a finite number > 0 (docs/decisions.md#D17)."""
        return not self.nonpositive_scales()

    def nonpositive_scales(self):
        """Names of the scales that are <= 0 or not finite: training must report them."""
        return nonpositive(self.params)

    def __repr__(self):
        return f"{type(self).__name__}()"


def nonpositive(scales):
    """Names of the scales (name -> float or None) that are <= 0 or not finite; None
    (a scale set at the first forward, not yet known) is not one of them."""
    return [name for name, v in scales.items()
            if v is not None and not (math.isfinite(v) and v > 0)]


__all__ = ["Diagnostics", "Loss", "check_logits_labels", "nonpositive", "reduce",
           "second_branch"]
