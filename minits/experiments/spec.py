"""An experiment: one data set and network, several loss configurations, several seeds.

Expanding an Experiment gives the grid of runs (configuration x seed), each a
training.RunConfig. The paper's figures are Experiments built in presets.py.
"""

import dataclasses
import math

from ..training.config import CONFIDENCES, VARIANTS, VARIANTS_WITH_ETA, RunConfig

DATASETS = ("mnist", "fashion-mnist", "cifar10", "cifar100", "digits")
DATASETS_WITH_COARSE_LABELS = ("cifar100",)
STANDARDIZE = ("auto", "none", "channel")
MAX_RUNS = 10_000
"""The most runs (configurations x seeds) one experiment may hold: a sweep plans every run
up front, and the largest of the paper's figures (MNIST, Fig. 9) has 210."""


def default_model(dataset):
    """The paper's network for a data set: LeNet-5 for CIFAR, an mlp otherwise."""
    return "lenet5" if dataset.startswith("cifar") else "mlp"


def default_standardize(dataset):
    """'channel' (per-channel mean/std of the training set) for CIFAR; 'none' ([0, 1] pixels)
    for the grey-scale sets. The paper does not say; see docs/experiments.md."""
    return "channel" if dataset.startswith("cifar") else "none"


@dataclasses.dataclass(frozen=True)
class Experiment:
    """What `minits reproduce/compare/train/demo` runs.

    name: figure name or command ("mnist", "compare", ...); title: headline text.
    dataset: data set name; variants: ((variant, eta or None), ...), the first
        'one-scale' entry is the baseline of the comparison.
    seeds: the seeds of every configuration; preset: "paper" | "quick" | "custom".
    standardize: "none" | "channel" ("auto" is resolved by the constructor helpers).
    run: the remaining RunConfig fields shared by every run (model, iterations, ...).
    paper: {configuration key: {"train_delta": float, "test_delta": float, "note": str}},
        the paper's reported differences to the traditional loss (percentage points).
    """

    name: str
    title: str
    dataset: str
    variants: tuple
    seeds: tuple
    preset: str = "custom"
    standardize: str = "none"
    run: dict = dataclasses.field(default_factory=dict)
    paper: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "variants",
                           tuple((v, None if e is None else float(e)) for v, e in self.variants))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        self.validate()

    def validate(self):
        """Raise ValueError with a clear message before any work starts."""
        if not self.seeds:
            raise ValueError("seeds must be >= 1 (at least one seed)")
        if len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"seeds must be distinct integers >= 0, got {self.seeds}")
        if not self.variants:
            raise ValueError("an experiment needs at least one loss configuration")
        if len(self.variants) * len(self.seeds) > MAX_RUNS:
            raise ValueError(f"{len(self.variants)} configuration(s) x {len(self.seeds)} seeds "
                             f"is more than the {MAX_RUNS} runs an experiment may hold")
        for variant, eta in self.variants:
            if variant not in VARIANTS:
                raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")
            if variant in VARIANTS_WITH_ETA and (eta is None or not math.isfinite(eta)
                                                 or eta <= 0):
                raise ValueError(f"eta must be a finite number > 0 (Eq. (13)), got {eta} "
                                 f"for {variant}")
        keys = [c.key for c in self.configs()]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate configurations in {keys}")
        if self.standardize not in ("none", "channel"):
            raise ValueError(f"standardize must be 'none' or 'channel', got {self.standardize!r}")
        if self.run.get("superclass") and self.dataset not in DATASETS_WITH_COARSE_LABELS:
            raise ValueError(f"super-class measures need coarse labels; data set "
                             f"{self.dataset!r} has none (only {DATASETS_WITH_COARSE_LABELS})")
        if self.run.get("confidence", "raw") not in CONFIDENCES:
            raise ValueError(f"confidence must be one of {CONFIDENCES}")

    def configs(self, stats=None):
        """One RunConfig per loss configuration (seed 0): the rows of the summary.

        stats: (mean, std) per channel when standardize == 'channel' (from the
        training set); ignored otherwise.
        """
        standardize = stats if self.standardize == "channel" else None
        if self.standardize == "channel" and stats is None:
            standardize = ((0.0,), (1.0,))  # placeholder: only keys/validation need this
        return [RunConfig(dataset=self.dataset, variant=v, eta=e, standardize=standardize,
                          **self.run) for v, e in self.variants]

    def runs(self, stats=None):
        """Every (configuration, seed) as a RunConfig, configuration-major."""
        return [c.replace(seed=s) for c in self.configs(stats) for s in self.seeds]

    @property
    def iterations(self):
        return self.configs()[0].iterations

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["variants"] = [list(v) for v in self.variants]
        d["seeds"] = list(self.seeds)
        return d
