"""The configuration of one training run (Sec. 3.2 protocol) as a plain, frozen record.

Everything that changes the numbers a run produces is a field here, so that a
results file carries the exact recipe it came from, and a rerun can tell whether
the results already on disk belong to the same experiment.
"""

import dataclasses
import math
import os
from pathlib import Path

VARIANTS = ("plain-ce", "one-scale", "two-scale", "fixed", "separation")
"""plain-ce: Eq. (4) on raw logits; one-scale: the paper's "traditional" loss,
Eq. (13) with R2 := R1; two-scale: Eq. (13)-(14); fixed: Eq. (13) with (16);
separation: Eq. (17)-(18)."""

VARIANTS_WITH_ETA = ("two-scale", "fixed", "separation")
CONFIDENCES = ("raw", "normalized", "scaled")
SEPARATION_SCALES = ("fixed", "trained", "live")
"""The first scale R of Eq. (17) (docs/decisions.md#D11): fixed at R(alpha^0) (default),
trained by SGD from R(alpha^0), or live R(alpha)."""
MODELS = ("mlp", "lenet5")
DTYPES = ("float32", "float64")
IMPLEMENTATIONS = ("plain", "fast")
"""plain: the objects minits.models and minits.losses make, the code to read; fast: their
twins of minits.fast (minits.fast.convert), the code to train with."""
IMPL_ENV = "MINITS_IMPL"


def check_impl(name, what="impl"):
    """name, if it is "plain" or "fast" (and this copy of minits has the fast twins);
    else a ValueError naming the choices."""
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"{what} must be one of {IMPLEMENTATIONS}, got {name!r}")
    if name == "fast" and not has_fast():
        raise ValueError(f"{what} 'fast' needs minits.fast, which this copy of minits does "
                         "not have (a coursework copy runs your plain code): use 'plain'")
    return name


def has_fast():
    """Whether this copy of minits has its fast twins: a student copy
    (minits assignment make) has none. (Its own folder is asked, not the import system,
    which might find another installed copy's.)"""
    return (Path(__file__).resolve().parents[1] / "fast" / "__init__.py").is_file()


def default_impl():
    """The implementation of a run whose configuration names none: $MINITS_IMPL when it
    is set ("plain" | "fast"), else "fast" (or "plain" in a copy without minits.fast)."""
    value = os.environ.get(IMPL_ENV, "").strip()
    if value:
        return check_impl(value, f"${IMPL_ENV}")
    return "fast" if has_fast() else "plain"


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One run: data set, network, loss, and the SGD protocol of Sec. 3.2.

    dataset: "mnist" | "fashion-mnist" | "cifar10" | "cifar100" | "digits" | any name
        the data loader knows (tests pass their own data sets).
    model: "mlp" (sizes [C*H*W, *hidden, K]) or "lenet5".
    hidden: hidden widths of the mlp (ignored by lenet5).
    variant: one of VARIANTS; eta: the threshold of Eq. (13) for the variants that
        split (None for plain-ce and one-scale).
    confidence: which dX splits Eq. (13): "raw" (literal), "normalized", "scaled"
        (docs/decisions.md#D4).
    gain: initial weights ~ N(0, (gain / sqrt(fan_in))^2) (docs/decisions.md#D16).
    seed: initial parameters alpha^0 and the batch order both derive from it.
    lr, batch_size: tau = 0.1 and #B = 128 in the paper.
    iterations: SGD steps; eval_every: test-set evaluation interval (iterations).
    standardize: None (inputs in [0, 1]) or ((mean per channel), (std per channel))
        in [0, 1] units, applied after scaling.
    superclass: also compute the super-class measures (Eq. (20)); needs coarse labels.
    dtype: parameter and input dtype.
    R2_factor: R2 = R2_factor * R1 initially (10 in the paper); Rs0: R_s initially (10).
    separation_scale: the first scale R of Eq. (17), one of SEPARATION_SCALES
        (docs/decisions.md#D11); "fixed" when not given. Only the separation variant
        has one: for the others it is stored as None, so it never tells two identical
        runs apart.
    impl: "plain" | "fast", the implementation the run computes with (IMPLEMENTATIONS);
        default: default_impl() ($MINITS_IMPL, else "fast"). The two agree to float
        rounding, not bit for bit, so it is part of what the run is: a run folder never
        mixes them.
    """

    dataset: str
    variant: str
    eta: float | None = None
    model: str = "mlp"
    hidden: tuple = (128,)
    confidence: str = "raw"
    gain: float = 1.0
    seed: int = 0
    lr: float = 0.1
    batch_size: int = 128
    iterations: int = 1000
    eval_every: int = 100
    standardize: tuple | None = None
    superclass: bool = False
    dtype: str = "float32"
    bias: bool = False
    R2_factor: float = 10.0
    Rs0: float = 10.0
    separation_scale: str | None = None
    impl: str = dataclasses.field(default_factory=default_impl)

    def __post_init__(self):
        # Normalise container types so that configs read back from JSON compare equal.
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if self.standardize is not None:
            mean, std = self.standardize
            object.__setattr__(self, "standardize",
                               (tuple(float(m) for m in mean), tuple(float(s) for s in std)))
        if self.eta is not None:
            object.__setattr__(self, "eta", float(self.eta))
        if self.variant != "separation":
            object.__setattr__(self, "separation_scale", None)
        elif self.separation_scale is None:
            object.__setattr__(self, "separation_scale", "fixed")
        self.validate()

    def validate(self):
        """Raise ValueError naming the field when a value is out of range."""
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.variant in VARIANTS_WITH_ETA:
            if self.eta is None or not math.isfinite(self.eta) or self.eta <= 0:
                raise ValueError(f"eta must be a finite number > 0 for variant "
                                 f"{self.variant!r} (Eq. (13) needs eta > 0), got {self.eta}")
        elif self.eta is not None:
            raise ValueError(f"variant {self.variant!r} takes no eta, got eta={self.eta}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.model == "mlp" and any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden widths must be >= 1, got {self.hidden}")
        if self.confidence not in CONFIDENCES:
            raise ValueError(f"confidence must be one of {CONFIDENCES}, got {self.confidence!r}")
        if self.variant == "separation" and self.separation_scale not in SEPARATION_SCALES:
            raise ValueError(f"separation_scale must be one of {SEPARATION_SCALES}, "
                             f"got {self.separation_scale!r}")
        check_impl(self.impl)
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        for name in ("gain", "lr", "R2_factor", "Rs0"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value}")
        for name in ("batch_size", "iterations", "eval_every"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value}")
        if int(self.seed) != self.seed or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed}")

    @property
    def key(self):
        """Folder-friendly name of the configuration without the seed, e.g. 'two-scale_eta=0.01'."""
        return self.variant if self.eta is None else f"{self.variant}_eta={self.eta:g}"

    @property
    def label(self):
        """Legend text: 'traditional' for one-scale (the paper's word), else variant and eta."""
        name = {"one-scale": "traditional", "plain-ce": "plain CE"}.get(self.variant, self.variant)
        return name if self.eta is None else f"{name} η={self.eta:g}"

    def to_dict(self):
        """JSON-ready dict (tuples become lists)."""
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        if self.standardize is not None:
            d["standardize"] = [list(self.standardize[0]), list(self.standardize[1])]
        return d

    @classmethod
    def from_dict(cls, d):
        """Inverse of to_dict; unknown or missing keys are an error (a file from another
        version of minits)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown, missing = set(d) - names, names - set(d)
        if unknown or missing:
            raise ValueError(f"a RunConfig written by another version of minits: "
                             f"unknown fields {sorted(unknown)}, missing fields "
                             f"{sorted(missing)}")
        return cls(**d)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)
