"""The normalised network X_hat = X(alpha_hat) and its gradient (Eq. (8)-(9), D7).

A loss that depends on alpha through X_hat -- and possibly also directly through
R(alpha), as Eq. (17) with a live R -- uses

    norm = Normalization()
    X_hat = norm.forward(model, x)      # norm.R = R(alpha), norm.c = R^{-1/n}
    ...                                 # the loss on X_hat
    norm.backward(dX_hat, dL_dR)        # every linear layer's .grads = dL/dalpha

The forward pass runs at alpha_hat = c alpha literally: the parameters are scaled
in place and restored bit for bit (``minits.scale.at_normalized_params``). The
backward pass is the chain rule of docs/decisions.md#D7, through R. With
n = M-1 linear layers and g^l = dL/dalpha_hat^l from ordinary backprop at alpha_hat:

    alpha_hat^l = c alpha^l,  c = R^{-1/n}   =>  dL/dc = <g, alpha> = sum_l <g^l, alpha^l>
    dc/dR = -c / (n R)                            dR/dalpha^l = R alpha^l / ||alpha^l||^2
    dL/dalpha^l = c g^l + (dL/dR) dR/dalpha^l,    dL/dR = dL_dR + dL/dc dc/dR

where dL_dR is the loss's own explicit derivative in R (0 when the loss sees R only
through X_hat). For a bias-free network and dL_dR = 0 each dL/dalpha^l is orthogonal
to alpha^l: the loss does not change when one layer is rescaled.
"""

import numpy as np

from .scale import at_normalized_params, layer_sq_norms, linear_layers


def dot64(a, b):
    """<a, b>, accumulated in float64 whatever the dtype of a and b. -> Python float."""
    return float(np.vdot(a.astype(np.float64, copy=False), b.astype(np.float64, copy=False)))


class Normalization:
    """X_hat = X(alpha_hat) forward and dL/dalpha backward (docs/decisions.md#D7).

    Attributes after forward: R = R(alpha) (Eq. (9)), c = R^{-1/n}, n the number of
    linear layers. backward backpropagates through the layers' caches of forward's
    pass at alpha_hat: between the two, run nothing else through the model and leave
    alpha as it is (an SGD step comes after backward).
    """

    def __init__(self):
        self.R = self.c = None
        self._model = None

    def forward(self, model, x):
        """model: Sequential; x: its input (N, ...) -> X_hat = X(alpha_hat) (N, K), model
        dtype; Eq. (8)-(9). Sets self.R and self.c; alpha is bit-identical afterwards."""
        self._model = model
        with at_normalized_params(model) as (R, c):
            X_hat = model.forward(x)
        self.R, self.c = R, c
        return X_hat

    def backward(self, dX_hat, dL_dR=0.0):
        """dX_hat: dL/dX_hat (N, K), model dtype; dL_dR: the loss's explicit dL/dR (float).

        Fills every linear layer's .grads (in place, model dtype) with
        dL/dalpha^l = c g^l + (dL_dR + <g, alpha> dc/dR) R alpha^l / ||alpha^l||^2.
        """
        if self._model is None:
            raise RuntimeError("Normalization.backward() called before forward()")
        model, R, c = self._model, self.R, self.c
        with at_normalized_params(model):  # backprop at alpha_hat: g^l into the layers' grads
            model.backward(dX_hat)
        # BEGIN TASK alpha-hat-backward
        layers = linear_layers(model)
        dL_dc = sum(dot64(layer.grads[name], p) for layer in layers
                    for name, p in layer.params.items())  # <g, alpha>
        dc_dR = -c / (len(layers) * R)
        total_dL_dR = float(dL_dR) + dL_dc * dc_dR
        for layer, sq_norm in zip(layers, layer_sq_norms(model), strict=True):
            dR_dalpha = R / sq_norm  # times alpha^l
            for name, p in layer.params.items():
                g = layer.grads[name]
                g[...] = c * g + (total_dL_dR * dR_dalpha) * p
        # END TASK
