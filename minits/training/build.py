"""From a RunConfig to the objects of one run: the network and its loss.

Sec. 3.2: Gaussian alpha^0 from the seed; R1 = R(alpha^0), R2 = 10 R1 (Eq. (13));
R_s = 10 for Eq. (17). The scales are passed explicitly (not left to the loss's
first forward) where the loss takes them, and a run restored from a checkpoint
gets its saved scales back (checkpoint.load_loss_state).

This is where a run's implementation is chosen: config.impl "plain" keeps the objects
of minits.models and minits.losses, "fast" converts them to their twins of minits.fast.
"""

import numpy as np

from .. import losses, models


def as_impl(obj, impl, threads=1):
    """obj (a plain model or loss) as impl "plain" (itself) or "fast" (its twin of
    minits.fast, sharing its parameters). minits.fast is imported only here and only for
    a fast run: without it, plain runs still work."""
    if impl == "plain":
        return obj
    from .. import fast

    return fast.convert(obj, threads=threads)


def build_model(config, num_classes, image_shape, threads=1):
    """The network of `config` for images (C, H, W) and K = num_classes outputs; with
    config.impl "fast", its FastSequential on `threads` threads (the numbers do not
    depend on them)."""
    dtype = np.dtype(config.dtype)
    C, H, W = image_shape
    if config.model == "mlp":
        sizes = [C * H * W, *config.hidden, num_classes]
        model = models.mlp(sizes, bias=config.bias, seed=config.seed, dtype=dtype,
                           gain=config.gain)
    elif H != W:
        raise ValueError(f"lenet5 needs square images, got {H}x{W}")
    else:
        model = models.lenet5(num_classes=num_classes, in_channels=C, bias=config.bias,
                              seed=config.seed, dtype=dtype, gain=config.gain, input_size=H)
    return as_impl(model, config.impl, threads)


def build_loss(config, R0):
    """The loss object of `config.variant` (its fast twin with config.impl "fast");
    R0 = R(alpha^0), Eq. (9).

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
    return as_impl(loss, config.impl)


def loss_scales(scales):
    """The loss's scales as floats: {'R1': .., 'R2': ..} (Eq. (13)), {'Rs': .., 'R': ..}
    (Eq. (17)) or {} (Eq. (4)).

    scales: loss.params (the scales now) or loss.last.scales (those the last forward
    used); a scale not known yet (None, set at the first forward) is left out.
    """
    return {name: float(value) for name, value in scales.items() if value is not None}


def second_case_fraction(loss):
    """Fraction of the last batch in the second case (dX >= eta) of Eq. (13)/(16)/(17),
    from the loss's diagnostics `loss.last.second`."""
    n = loss.last.second.size
    return np.count_nonzero(loss.last.second) / n if n else np.nan
