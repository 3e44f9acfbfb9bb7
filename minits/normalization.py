"""The normalised network X_hat = X(alpha_hat) and its gradient, plain (Eq. (8)-(9)).

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

This is the implementation to read; minits/fast_normalization.py computes the same
numbers up to rounding (bias-free networks by Eq. (8), without scaling anything).
"""

import numpy as np

from .scale import at_normalized_params, layer_sq_norms, linear_layers


def dot64(a, b):
    """<a, b>, accumulated in float64 whatever the dtype of a and b. -> Python float."""
    return float(np.vdot(a.astype(np.float64, copy=False), b.astype(np.float64, copy=False)))


def parameters(model):
    """[(layer, name, alpha^l[name])] of every linear layer, in order. The arrays are
    the model's own (changing one changes the model)."""
    return [(layer, name, p) for layer in linear_layers(model) for name, p in layer.params.items()]


class Normalization:
    """X_hat = X(alpha_hat) forward and dL/dalpha backward (docs/decisions.md#D7), plain.

    Attributes after forward: R = R(alpha) (Eq. (9)), c = R^{-1/n}, n the number of
    linear layers. backward must follow forward with alpha unchanged in between; it
    checks that and raises RuntimeError otherwise.
    """

    def __init__(self):
        self.R = self.c = None
        self._model = self._x = self._alpha = None

    def forward(self, model, x):
        """model: Sequential; x: its input (N, ...) -> X_hat = X(alpha_hat) (N, K), model
        dtype; Eq. (8)-(9). Sets self.R and self.c; alpha is bit-identical afterwards."""
        self._model, self._x = model, x
        self._alpha = [p.copy() for _, _, p in parameters(model)]  # for backward's check
        with at_normalized_params(model) as (R, c):
            X_hat = model.forward(x)
        self.R, self.c = R, c
        return X_hat

    def backward(self, dX_hat, dL_dR=0.0):
        """dX_hat: dL/dX_hat (N, K), model dtype; dL_dR: the loss's explicit dL/dR (float).

        Fills every linear layer's .grads (in place, model dtype) with
        dL/dalpha^l = c g^l + (dL_dR + <g, alpha> dc/dR) R alpha^l / ||alpha^l||^2.
        """
        self._check_unchanged()
        model, R, c = self._model, self.R, self.c
        self._backprop_at_alpha_hat(dX_hat)  # layer.grads = g^l
        dL_dc = sum(dot64(layer.grads[name], p) for layer, name, p in parameters(model))
        dc_dR = -c / (len(linear_layers(model)) * R)
        total_dL_dR = float(dL_dR) + dL_dc * dc_dR
        for layer, sq_norm in zip(linear_layers(model), layer_sq_norms(model), strict=True):
            dR_dalpha = R / sq_norm  # times alpha^l
            for name, p in layer.params.items():
                g = layer.grads[name]
                g[...] = c * g + (total_dL_dR * dR_dalpha) * p

    def _backprop_at_alpha_hat(self, dX_hat):
        """g^l = dL/dalpha_hat^l by ordinary backprop at alpha_hat, left in the layers'
        .grads. The pass at alpha_hat is run again first: backprop needs the layers'
        caches of that pass, and the loss may have run the model since (at alpha, for
        the raw confidence)."""
        with at_normalized_params(self._model):
            self._model.forward(self._x)
            self._model.backward(dX_hat, input_grad=False)

    def _check_unchanged(self):
        if self._model is None:
            raise RuntimeError("Normalization.backward() called before forward()")
        for (_, _, p), saved in zip(parameters(self._model), self._alpha, strict=True):
            if not np.array_equal(p, saved):
                raise RuntimeError("the model's parameters changed between the loss's forward "
                                   "and backward; call backward right after forward")
