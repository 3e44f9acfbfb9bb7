"""The paper's experiments (Sec. 3.2-3.5) as Experiments, in two sizes.

preset "paper": the paper's lengths and seed counts (docs/decisions.md#experiments);
preset "quick": the same comparison, a few minutes on a laptop CPU.
All runs: plain SGD, batch 128, tau = 0.1, Gaussian alpha^0, R1 = R(alpha^0),
R2 = 10 R1 (Sec. 3.2).
"""

from .spec import MAX_RUNS, Experiment, default_standardize

PAPER_ETAS = (0.01, 0.1, 1.0, 10.0, 100.0)
PRESETS = ("paper", "quick")
EPOCH_CIFAR = 50000 // 128  # 390 full batches per epoch

# The paper's reported differences to the traditional loss, in percentage points
# of accuracy at the end of training (train: batch accuracy, test: test set).
PAPER_NUMBERS = {
    "mnist": {
        "two-scale_eta=0.01": {"train_delta": 7.1, "test_delta": 6.7,
                               "note": "two-scale worse in the first ~20 it. (up to 9.6%)"},
        "two-scale_eta=10": {"note": "within 0.1% of traditional throughout"},
        "two-scale_eta=100": {"note": "identical to traditional on every batch"},
    },
    "cifar10": {
        "two-scale_eta=0.01": {"train_delta": 12.0, "test_delta": 1.5},
        "two-scale_eta=10": {"note": "nearly indistinguishable from traditional"},
    },
    "cifar10-fixed": {
        "fixed_eta=0.01": {"note": "below traditional"},
        "fixed_eta=0.1": {"note": "below traditional; the worst eta"},
        "fixed_eta=1": {"note": "below traditional"},
        "fixed_eta=10": {"note": "below traditional"},
        "fixed_eta=100": {"note": "coincides with traditional (eta > 10)"},
    },
    "cifar10-separation": {
        "separation_eta=0.01": {"note": "above traditional; ~1% train / 0.5% test below "
                                        "two-scale (Eq. (13))"},
        "two-scale_eta=0.01": {"train_delta": 12.0, "test_delta": 1.5, "note": "Fig. 8"},
    },
    "cifar100": {
        "two-scale_eta=0.01": {"train_delta": 13.4, "test_delta": 0.1,
                               "note": "top-10 test +1.5; close-enough better for at >= 0.01"},
    },
}

# name -> (title, dataset, extra run fields, variants builder, {preset: (iterations,
#          eval_every, seeds)}). Iterations of CIFAR follow #TR / #B = 390 steps an epoch.
_FIGURES = {
    "mnist": ("Fig. 9: MNIST, two fully connected layers", "mnist",
              {"model": "mlp", "hidden": (128,)},
              lambda etas: [("one-scale", None), ("plain-ce", None)]
              + [("two-scale", e) for e in etas],
              {"paper": (1000, 100, 30), "quick": (1000, 100, 3)}),
    "cifar10": ("Fig. 8: CIFAR-10, LeNet-5", "cifar10", {"model": "lenet5"},
                lambda etas: [("one-scale", None), ("plain-ce", None)]
                + [("two-scale", e) for e in etas],
                {"paper": (50 * EPOCH_CIFAR, 2000, 10), "quick": (600, 150, 2)}),
    "cifar10-fixed": ("Fig. 10: CIFAR-10, fixed two-scale (Eq. (16))", "cifar10",
                      {"model": "lenet5"},
                      lambda etas: [("one-scale", None)] + [("fixed", e) for e in etas],
                      {"paper": (4000, 500, 10), "quick": (600, 150, 2)}),
    "cifar10-separation": ("Fig. 11: CIFAR-10, two-scale separation (Eq. (17))", "cifar10",
                           {"model": "lenet5"},
                           lambda etas: [("one-scale", None), ("two-scale", min(etas))]
                           + [("separation", e) for e in etas],
                           {"paper": (50 * EPOCH_CIFAR, 2000, 10), "quick": (600, 150, 2)}),
    "cifar100": ("Figs. 1-7: CIFAR-100 (fine and super-classes), LeNet-5", "cifar100",
                 {"model": "lenet5", "superclass": True},
                 lambda etas: [("one-scale", None)] + [("two-scale", e) for e in etas],
                 {"paper": (128 * EPOCH_CIFAR, 2000, 10), "quick": (600, 150, 2)}),
}

FIGURES = tuple(_FIGURES)
QUICK_ETAS = {"mnist": PAPER_ETAS, "cifar10": (0.01, 1.0, 100.0),
              "cifar10-fixed": (0.01, 0.1, 100.0), "cifar10-separation": (0.01, 1.0),
              "cifar100": (0.01, 1.0)}


def figure(name, preset="quick", *, seeds=None, etas=None, iterations=None, eval_every=None,
           **run):
    """The Experiment reproducing figure `name` ("mnist", "cifar10", "cifar10-fixed",
    "cifar10-separation", "cifar100") at `preset` ("paper" or "quick").

    seeds: how many seeds (0..seeds-1) instead of the preset's; etas: the eta values
    instead of the preset's; iterations, eval_every: override the run length;
    run: further RunConfig fields (confidence, gain, lr, batch_size, dtype, ...).
    """
    if name not in _FIGURES:
        raise ValueError(f"unknown figure {name!r}; choose from {', '.join(FIGURES)}")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    title, dataset, fields, variants, sizes = _FIGURES[name]
    n_it, n_eval, n_seeds = sizes[preset]
    if etas is None:
        etas = PAPER_ETAS if preset == "paper" else QUICK_ETAS[name]
    if seeds is not None:
        n_seeds = _check_count(seeds, "seeds")
    if iterations is not None:
        n_it = _check_count(iterations, "iterations")
        n_eval = min(n_eval, n_it)
    if eval_every is not None:
        n_eval = _check_count(eval_every, "eval_every")
    _check_etas(etas)
    standardize = run.pop("standardize", None) or default_standardize(dataset)
    if standardize == "auto":
        standardize = default_standardize(dataset)
    grid = variants(tuple(etas))
    check_size(len(grid), n_seeds)
    return Experiment(name=name, title=title, dataset=dataset, variants=grid,
                      seeds=tuple(range(n_seeds)), preset=preset, standardize=standardize,
                      run={**fields, "iterations": n_it, "eval_every": n_eval, **run},
                      paper=PAPER_NUMBERS.get(name, {}))


def check_size(configurations, seeds):
    """ValueError before anything is made when configurations x seeds exceeds MAX_RUNS: a
    sweep plans every run up front (a configuration and a status each), so its size must
    stay far below what memory holds."""
    if configurations * seeds > MAX_RUNS:
        raise ValueError(f"{configurations} configuration(s) x {seeds} seeds = "
                         f"{configurations * seeds} runs; a sweep holds at most {MAX_RUNS} "
                         f"runs: ask for fewer --seeds (or split the sweep over several --out)")


def _check_count(value, name):
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value}")
    return int(value)


def _check_etas(etas):
    if len(etas) == 0:
        raise ValueError("etas must list at least one value")
    for e in etas:
        if not (e > 0 and e < float("inf")):
            raise ValueError(f"eta must be a finite number > 0 (Eq. (13)), got {e}")


def compare(dataset, *, etas=PAPER_ETAS, variants=("one-scale", "two-scale", "plain-ce"),
            seeds=3, iterations=1000, eval_every=100, standardize="auto", model=None,
            name="compare", title=None, **run):
    """Traditional vs two-scale variants vs plain cross-entropy on one data set.

    variants: any of VARIANTS; those with an eta (two-scale, fixed, separation) are
    run for every eta in `etas`. run: further RunConfig fields (hidden, gain, ...).
    """
    from .spec import default_model

    seeds = _check_count(seeds, "seeds")
    iterations = _check_count(iterations, "iterations")
    eval_every = min(_check_count(eval_every, "eval_every"), iterations)
    grid = []
    for v in variants:
        if v in ("two-scale", "fixed", "separation"):
            _check_etas(etas)
            grid += [(v, e) for e in etas]
        else:
            grid.append((v, None))
    if "one-scale" in variants:  # the baseline first
        grid.sort(key=lambda ve: ve[0] != "one-scale")
    if standardize in (None, "auto"):
        standardize = default_standardize(dataset)
    check_size(len(grid), seeds)
    return Experiment(name=name, title=title or f"Comparison on {dataset}", dataset=dataset,
                      variants=grid, seeds=tuple(range(seeds)), preset="custom",
                      standardize=standardize,
                      run={"model": model or default_model(dataset), "iterations": iterations,
                           "eval_every": eval_every, **run})


DEMO = {"dataset": "digits", "hidden": (32,), "etas": (0.01, 0.1), "seeds": 4,
        "iterations": 400, "eval_every": 25}


def demo(seeds=None, iterations=None, **run):
    """The offline demonstration: traditional vs two-scale on scikit-learn's bundled
    8x8 digits, an mlp [64, 32, 10], a few seeds, well under a minute on 2 cores.
    run: further RunConfig fields of every run (impl, lr, ...)."""
    return compare(DEMO["dataset"], etas=DEMO["etas"], variants=("one-scale", "two-scale"),
                   seeds=seeds or DEMO["seeds"], iterations=iterations or DEMO["iterations"],
                   eval_every=DEMO["eval_every"], hidden=DEMO["hidden"], name="demo",
                   title="Demo: traditional vs two-scale loss on the 8x8 digits (offline)",
                   **run)
