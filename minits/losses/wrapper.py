"""The generic two-scale form of any per-object loss (end of Sec. 2.3).

    L_2((alpha, R1, R2), s) = L((alpha_hat, R1), s)  if delta X(alpha, s) <  eta
                              L((alpha_hat, R2), s)  if delta X(alpha, s) >= eta

where L((alpha_hat, R), s) is the per-object loss evaluated on the logits
R X_hat (docs/decisions.md#D13). With the cross-entropy this is Eq. (13) itself.
Provided objectives: "cross_entropy" (Eq. (4)), "mse" (mean squared error on
the probabilities), "truncated" (Eq. (12), with k), or any function
f(z, y) -> (values (N,), dz (N, K)) with dz the gradient of sum(values).
The scales' gradients come from the chain rule: dL/dR_k = sum_i dz_i X_hat_i.
"""

from functools import partial

import numpy as np

from .cross_entropy import cross_entropy
from .mse import mse_probabilities
from .truncated import check_k, truncated
from .two_scale import TwoScale, at_scales, sum_per_case

OBJECTIVES = {"cross_entropy": cross_entropy, "mse": mse_probabilities, "truncated": truncated}


def dL_dR_chain(X_hat, dz):
    """dL/dR_k of any per-object objective at z = R_k X_hat: sum_i dz_i X_hat_i.

    X_hat, dz = dL/dz: (N, K) -> (N,)."""
    return np.sum(dz * X_hat, axis=1)


def wrapped_value_and_grad(objective, X_hat, y, R1, R2, second, fixed=False):
    """The two-scale form of `objective` on given normalised logits, per object.

    Inputs as two_scale_value_and_grad, with objective f(z, y) -> (values, dz).
    Returns values (N,), dX_hat (N, K), dR1, dR2 (floats by the chain rule; None when fixed).
    """
    _, values, dz, dX_hat = at_scales(objective, X_hat, y, R1, R2, second)
    if fixed:
        return values, dX_hat, None, None
    dR1, dR2 = sum_per_case(dL_dR_chain(X_hat, dz), second)
    return values, dX_hat, dR1, dR2


class TwoScaleWrapper(TwoScale):
    """TwoScale with another per-object objective on the logits R_k X_hat.

    Args:
        objective: "cross_entropy" | "mse" | "truncated" | a function f(z, y) -> (values, dz)
        k: the threshold of "truncated" (required for it, refused otherwise)
        eta, R1, R2, confidence, fixed, reduction: as TwoScale
    params, grads, predict_proba (scale R1) and last: as TwoScale.
    """

    def __init__(self, objective, eta, R1=None, R2=None, confidence="raw", fixed=False,
                 reduction="mean", k=None):
        super().__init__(eta, R1=R1, R2=R2, confidence=confidence, fixed=fixed,
                         reduction=reduction)
        if isinstance(objective, str):
            if objective not in OBJECTIVES:
                raise ValueError(f"objective must be one of {sorted(OBJECTIVES)} or a function "
                                 f"f(z, y) -> (values, dz), got {objective!r}")
            if (objective == "truncated") != (k is not None):
                raise ValueError("k is required with objective='truncated' and only with it")
            self.objective_name = objective
            fn = OBJECTIVES[objective]
            objective = partial(fn, k=check_k(k)) if objective == "truncated" else fn
        elif callable(objective):
            if k is not None:
                raise ValueError("k is only used with objective='truncated'")
            self.objective_name = getattr(objective, "__name__", repr(objective))
        else:
            raise TypeError("objective must be a name or a function, not "
                            f"{type(objective).__name__}")
        self.objective = objective

    def _value_and_grad(self, X_hat, y, R1, R2, second):
        """The objective at R_k X_hat per object: values, dX_hat, dR1, dR2 (chain rule)."""
        return wrapped_value_and_grad(self.objective, X_hat, y, R1, R2, second,
                                      fixed=self.fixed)

    def __repr__(self):
        return (f"{type(self).__name__}({self.objective_name!r}, eta={self.eta}, "
                f"R1={self.params['R1']}, R2={self.params['R2']}, fixed={self.fixed})")
