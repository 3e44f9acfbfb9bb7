"""From a RunConfig to the objects of one run: the network and its loss.

Sec. 3.2: Gaussian alpha^0 from the seed; R1 = R(alpha^0), R2 = 10 R1 (Eq. (13));
R_s = 10 for Eq. (17). The scales are passed explicitly (not left to the loss's
first forward) where the loss takes them, and a run restored from a checkpoint
gets its saved scales back (checkpoint.load_loss_state).
"""

import numpy as np

from .. import losses, models


def build_model(config, num_classes, image_shape):
    """The network of `config` for images (C, H, W) and K = num_classes outputs."""
    dtype = np.dtype(config.dtype)
    C, H, W = image_shape
    if config.model == "mlp":
        sizes = [C * H * W, *config.hidden, num_classes]
        return models.mlp(sizes, bias=config.bias, seed=config.seed, dtype=dtype,
                          gain=config.gain)
    if H != W:
        raise ValueError(f"lenet5 needs square images, got {H}x{W}")
    return models.lenet5(num_classes=num_classes, in_channels=C, bias=config.bias,
                         seed=config.seed, dtype=dtype, gain=config.gain, input_size=H)


def build_loss(config, R0):
    """The loss object of `config.variant`; R0 = R(alpha^0), Eq. (9).

    plain-ce   Eq. (4) on the raw logits
    one-scale  the paper's "traditional" loss: Eq. (13) with R2 := R1, R1 trainable
    two-scale  Eq. (13), R1 and R2 trainable, Eq. (14)
    fixed      Eq. (13) with constant R1 = R0, R2 = 10 R0, Eq. (16)
    separation Eq. (17), R_s trainable, Eq. (18); the first scale R as
               config.separation_scale says (docs/decisions.md#D11)
    """
    R1, R2 = float(R0), float(config.R2_factor * R0)
    if config.variant == "plain-ce":
        loss = losses.CrossEntropy()
    elif config.variant == "one-scale":
        loss = losses.OneScale(R1=R1)
    elif config.variant == "two-scale":
        loss = losses.TwoScale(config.eta, R1=R1, R2=R2, confidence=config.confidence)
    elif config.variant == "fixed":
        loss = losses.TwoScale(config.eta, R1=R1, R2=R2, confidence=config.confidence,
                               fixed=True)
    elif config.variant == "separation":
        loss = losses.TwoScaleSeparation(config.eta, Rs=config.Rs0,
                                         scale=config.separation_scale,
                                         confidence=config.confidence)
    else:
        raise ValueError(f"unknown variant {config.variant!r}")
    # the loop stops a diverged run itself (docs/decisions.md#D17) and finishes it with NaN
    # measures, so a sweep goes on; outside the loop NaN logits are an error
    loss.check_finite = False
    # the loop calls backward right after forward: no copy of alpha to compare each step
    loss.check_unchanged = False
    return loss


SCALE_NAMES = {"R1": "R1", "R2": "R2", "Rs": "Rs", "R": "R_first"}
"""The loss's scale -> its name in the history and the results. The first scale R of
Eq. (17) is recorded as R_first, apart from R(alpha), which the history calls R."""


def loss_scales(scales):
    """Scales under their recorded names, as floats: {'R1': .., 'R2': ..} (Eq. (13)),
    {'Rs': .., 'R_first': ..} (Eq. (17)) or {} (Eq. (4)).

    scales: loss.params (the scales now) or loss.last.scales (those the last forward
    used); a scale not known yet (None, set at the first forward) is left out.
    """
    return {SCALE_NAMES.get(name, name): float(value) for name, value in scales.items()
            if value is not None}


def well_classified_fraction(loss):
    """Fraction of the last batch in the well-classified branch (dX >= eta) of
    Eq. (13)/(16)/(17), from the loss's diagnostics `loss.last.second`."""
    n = loss.last.second.size
    return np.count_nonzero(loss.last.second) / n if n else np.nan
