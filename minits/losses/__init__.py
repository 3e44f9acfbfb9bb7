"""The paper's losses, Sec. 2, each value beside its hand-derived gradient.

Reading order: base (reduction, branch split, the Loss protocol) -> cross_entropy
(Eq. (4), (10)) -> truncated (Eq. (12)) -> normalized (what the losses on X_hat
share: X_hat and R(alpha), the confidence split, diagnostics) -> two_scale
(Eq. (13)-(16), OneScale) -> separation (Eq. (17)-(18)) -> wrapper (any loss in
two-scale form). The fast twins, which training runs, are in minits.fast; nothing
here knows them.
"""

from .base import Diagnostics, Loss, second_branch
from .cross_entropy import CrossEntropy, cross_entropy
from .mse import mse_probabilities
from .normalized import CONFIDENCE_MODES, NormalizedLoss
from .separation import SCALE_MODES, TwoScaleSeparation, separation_value_and_grad
from .truncated import Truncated, truncated
from .two_scale import (
    OneScale,
    TwoScale,
    dL_dR_eq15,
    dL_dR_general,
    two_scale_value_and_grad,
)
from .wrapper import TwoScaleWrapper

__all__ = [
    "CONFIDENCE_MODES", "SCALE_MODES", "CrossEntropy", "Diagnostics", "Loss", "NormalizedLoss",
    "OneScale", "Truncated", "TwoScale", "TwoScaleSeparation", "TwoScaleWrapper",
    "cross_entropy", "dL_dR_eq15", "dL_dR_general", "mse_probabilities", "second_branch",
    "separation_value_and_grad", "truncated", "two_scale_value_and_grad",
]
