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

from .cross_entropy import cross_entropy
from .fast_objectives import fast_cross_entropy
from .mse import mse_probabilities
from .truncated import check_k, truncated
from .two_scale import TwoScale, dL_dR_chain

OBJECTIVES = {"cross_entropy": cross_entropy, "mse": mse_probabilities, "truncated": truncated}


class TwoScaleWrapper(TwoScale):
    """TwoScale with another per-object objective on the logits R_k X_hat.

    Args:
        objective: "cross_entropy" | "mse" | "truncated" | a function f(z, y) -> (values, dz)
        k: the threshold of "truncated" (required for it, refused otherwise)
        eta, R1, R2, confidence, fixed, reduction: as TwoScale
    params, grads, predict_proba (scale R1) and last: as TwoScale.
    """

    _dL_dR = staticmethod(dL_dR_chain)
    _fast_dL_dR = staticmethod(dL_dR_chain)

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
        self._fast_objective = fast_cross_entropy if objective is cross_entropy else objective

    def __repr__(self):
        return (f"TwoScaleWrapper({self.objective_name!r}, eta={self.eta}, "
                f"R1={self.params['R1']}, R2={self.params['R2']}, fixed={self.fixed})")
