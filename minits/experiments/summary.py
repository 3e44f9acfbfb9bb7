"""The table of an experiment: for each configuration, mean ± standard deviation over
seeds of the measures at the end of training, the paired difference to the
traditional loss, and the paper's reported number beside ours.

Accuracies are fractions in summary.csv and percentages in summary.txt;
differences (delta) are percentage points in both.
"""

import csv
import dataclasses
import io
import math
import os

import numpy as np

from .. import atomic
from ..training import results
from . import rundir

BASELINE = "one-scale"
IDENTICAL_VARIANTS = ("two-scale", "fixed")

CSV_COLUMNS = [
    "variant", "eta", "seeds", "train_acc_mean", "train_acc_std", "test_acc_mean",
    "test_acc_std", "test_ece_mean", "test_ece_std", "test_mce_mean", "test_mce_std",
    "test_ece_temperature_mean", "test_ece_temperature_std", "temperature_mean",
    "delta_train_pp", "delta_test_pp", "paper_delta_train_pp",
    "paper_delta_test_pp", "identical_to_traditional", "max_batch_diff_pp", "early_deficit_pp",
    "scale_alarms", "diverged", "train_batch_acc_mean",
    "train_batch_acc_std", "test_balanced_acc_mean", "test_nll_mean", "test_top5_mean",
    "test_top10_mean", "test_close_0.01_mean", "test_close_0.05_mean",
    "train_superclass_acc_mean", "test_superclass_acc_mean", "seconds_per_run", "key",
    "paper_note",
]


@dataclasses.dataclass
class Row:
    """One configuration of the table. stats: name -> (mean, std) over seeds (NaN std
    for one seed); delta_*: mean paired difference to the baseline in points;
    identical: (#seeds whose every batch and test accuracy equal the baseline's,
    #seeds compared) or None; max_batch_diff: max over iterations of |mean over seeds of
    the batch-accuracy difference to the baseline| (points; Sec. 3.3 "differed by less
    than .1% on average throughout training"); early_deficit: the largest lead of the
    baseline in that mean over the first 2% of iterations (Sec. 3.3: "in the first 20
    iterations ... up to 9.6% per batch")."""

    key: str
    variant: str
    eta: float | None
    label: str
    seeds: int
    stats: dict
    delta_train: float = math.nan
    delta_test: float = math.nan
    paper: dict = dataclasses.field(default_factory=dict)
    identical: tuple | None = None
    max_batch_diff: float = math.nan
    early_deficit: float = math.nan
    alarms: int = 0
    diverged: int = 0
    seconds: float = math.nan


@dataclasses.dataclass
class Summary:
    experiment: object
    rows: list
    groups: dict  # key -> list of RunResult (one per finished seed)
    missing: int  # runs without results
    failed: int = 0  # of those, runs that ended in an error in the sweep just run

    @property
    def baseline(self):
        return next((r for r in self.rows if r.variant == BASELINE), None)


def mean_std(values):
    """(mean, sample std with ddof=1) of a list; std is NaN for fewer than 2 values."""
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return math.nan, math.nan
    return float(a.mean()), (float(a.std(ddof=1)) if a.size > 1 else math.nan)


def end_batch_accuracy(history, fraction=0.1, most=100):
    """Mean batch accuracy over the last min(100, 10%) iterations: the paper's "accuracy on
    the training set" read off its per-batch curves (Sec. 3.2)."""
    acc = history["batch_acc"]
    n = max(1, min(most, int(len(acc) * fraction)))
    return float(np.mean(acc[-n:]))


def _identical(a, b):
    return (np.array_equal(a.history["batch_acc"], b.history["batch_acc"])
            and np.array_equal(a.history["test_acc"], b.history["test_acc"]))


def _measures(result):
    tr, te = result.train, result.test
    out = {"train_acc": tr["accuracy"], "test_acc": te["accuracy"],
           "train_batch_acc": end_batch_accuracy(result.history),
           "test_balanced_acc": te["balanced_accuracy"], "test_nll": te["nll"]}
    ks = np.asarray(te["topk_k"])
    for k in (5, 10):
        if k in ks and ks.max() > k:  # top-K of all K classes is trivially 1
            out[f"test_top{k}"] = float(np.asarray(te["topk"])[ks == k][0])
    at = np.asarray(te["close_enough_at"])
    for a in (0.01, 0.05):
        hit = np.isclose(at, a)
        if hit.any():
            out[f"test_close_{a:g}"] = float(np.asarray(te["close_enough"])[hit][0])
    # calibration, and the temperature baseline (T_A, T_B of the cross-fitting: their
    # geometric mean)
    for name, key in (("test_ece", "ece"), ("test_mce", "mce"),
                      ("test_ece_temperature", "ece_temperature")):
        out[name] = te[key]
    out["temperature"] = float(np.exp(np.mean(np.log(te["temperature"]))))
    if "superclass_accuracy" in tr:
        out["train_superclass_acc"] = tr["superclass_accuracy"]
        out["test_superclass_acc"] = te["superclass_accuracy"]
    return out


def load_groups(out, run_configs):
    """Finished results in `out` for `run_configs`: {key: [RunResult, ...]} in seed order,
    and the number of runs without results.

    Raises ValueError naming the file when a results file cannot be read (truncated,
    corrupt, or from an unknown version).
    """
    groups, missing = {}, 0
    for config in run_configs:
        path = rundir.result_path(out, config)
        groups.setdefault(config.key, [])
        if os.path.exists(path):
            groups[config.key].append(_load(path))
        else:
            missing += 1
    return groups, missing


def _load(path):
    try:
        return results.load(path)
    except Exception as exc:  # zipfile.BadZipFile, EOFError, KeyError, ValueError, OSError...
        raise ValueError(f"{path} cannot be read ({type(exc).__name__}: {exc}); remove it and "
                         "run the sweep's command again to compute that run anew") from exc


def summarize(experiment, groups, missing=0, failed=0):
    """Build the Summary of `experiment` from its finished runs `groups`; missing: runs
    without results, failed: how many of them ended in an error just now."""
    base = {r.config.seed: r for r in groups.get(BASELINE, [])}
    rows = []
    for config in experiment.configs():
        runs = groups.get(config.key, [])
        per_seed = [_measures(r) for r in runs]
        names = sorted({k for m in per_seed for k in m})
        stats = {k: mean_std([m[k] for m in per_seed if k in m]) for k in names}
        row = Row(key=config.key, variant=config.variant, eta=config.eta, label=config.label,
                  seeds=len(runs), stats=stats, paper=experiment.paper.get(config.key, {}),
                  alarms=sum(1 for r in runs if r.scale_alarm),
                  diverged=sum(1 for r in runs if math.isnan(r.test["accuracy"])),
                  seconds=(float(np.mean([r.history.elapsed for r in runs]))
                           if runs else math.nan))
        paired = [(r, base[r.config.seed]) for r in runs if r.config.seed in base]
        if paired and config.variant != BASELINE:
            row.delta_train = 100 * float(np.mean([a.train["accuracy"] - b.train["accuracy"]
                                                   for a, b in paired]))
            row.delta_test = 100 * float(np.mean([a.test["accuracy"] - b.test["accuracy"]
                                                  for a, b in paired]))
            if config.variant in IDENTICAL_VARIANTS:
                row.identical = (sum(_identical(a, b) for a, b in paired), len(paired))
            diff = 100 * np.mean([a.history["batch_acc"] - b.history["batch_acc"]
                                  for a, b in paired], axis=0)
            row.max_batch_diff = float(np.max(np.abs(diff)))
            row.early_deficit = float(max(0.0, -np.min(diff[:max(1, len(diff) // 50)])))
        rows.append(row)
    return Summary(experiment, rows, groups, missing, failed)


# ----------------------------------------------------------------------------- text

def _pct(ms, digits=2):
    mean, std = ms
    if math.isnan(mean):
        return "—"
    return f"{100 * mean:.{digits}f}" + ("" if math.isnan(std) else f" ± {100 * std:.{digits}f}")


def _signed(x, digits=2):
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.{digits}f}"


def _paper_text(paper):
    """The paper column: its Δ train / Δ test, and its note quoted as the paper's words
    (beside a row with no finished seed it must not read as our finding)."""
    parts = []
    if "train_delta" in paper:
        parts.append(f"{paper['train_delta']:+.1f} / {paper['test_delta']:+.1f}")
    if paper.get("note"):
        parts.append(f'paper: "{paper["note"]}"')
    return "; ".join(parts)


def format_table(summary):
    """The summary as aligned text (what `minits` prints and saves as summary.txt)."""
    e = summary.experiment
    c0 = e.configs()[0]
    net = (f"mlp {[*c0.hidden]} hidden" if c0.model == "mlp" else c0.model)
    lines = [f"{e.title}", f"data {e.dataset}, {net}, {c0.iterations} iterations, "
             f"batch {c0.batch_size}, lr {c0.lr:g}, gain {c0.gain:g}, confidence {c0.confidence}, "
             f"inputs {'standardised per channel' if e.standardize == 'channel' else 'in [0, 1]'}, "
             f"preset {e.preset}, {c0.impl} implementation",
             *_separation_line(e),
             "accuracy in % at the end of training on the whole training / test set, "
             "mean ± std over seeds;",
             "Δ = mean paired difference to traditional (same seed), points; max|Δ batch| = "
             "largest gap of the seed-averaged batch-accuracy curves;",
             "= trad.: seeds identical to traditional on every batch and test evaluation; "
             "paper: the paper's Δ train / Δ test;",
             "ECE, MCE: calibration errors of the test probabilities in points (15 bins, "
             "Guo et al. 2017); ECE·T: after a temperature fitted on the other half of the "
             "test set (minits.temperature)"]
    header = ["configuration", "seeds", "train acc", "test acc", "ECE", "MCE", "ECE·T",
              "Δ train", "Δ test", "max|Δ batch|", "= trad.", "paper"]
    table = [header]
    for r in summary.rows:
        ident = "" if not r.identical else f"{r.identical[0]}/{r.identical[1]}"
        seeds = str(r.seeds) + ("" if r.seeds == len(e.seeds) else f"/{len(e.seeds)}")
        label = r.label + (" (!)" if r.alarms else "")
        def ms(name, r=r):
            return _pct(r.stats.get(name, (math.nan,) * 2))

        table.append([label, seeds, ms("train_acc"), ms("test_acc"), ms("test_ece"),
                      ms("test_mce"), ms("test_ece_temperature"),
                      _signed(r.delta_train), _signed(r.delta_test),
                      "—" if math.isnan(r.max_batch_diff) else f"{r.max_batch_diff:.2f}", ident,
                      _paper_text(r.paper)])
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        cells = [row[0].ljust(widths[0])] + [row[i].rjust(widths[i])
                                             for i in range(1, len(widths))]
        lines.append("  ".join(cells + [row[-1]]).rstrip())
    extra = _extra_lines(summary)
    return "\n".join(lines + extra) + "\n"


def _separation_line(experiment):
    """The reading of Eq. (17)'s first scale, when the experiment has separation runs."""
    scales = {c.separation_scale for c in experiment.configs() if c.variant == "separation"}
    return [f"Eq. (17): first scale R {', '.join(sorted(scales))} "
            "(docs/decisions.md#D11)"] if scales else []


def best_row(rows):
    """The row of `rows` with the best mean test accuracy, leaving out the rows identical to
    traditional on every seed (eta = 100 is the traditional loss, Sec. 3.3) unless no other
    row is left; None when none has a finite accuracy."""
    rows = [r for r in rows if not math.isnan(r.stats.get("test_acc", (math.nan,))[0])]
    differ = [r for r in rows if not (r.identical and r.identical[0] == r.identical[1])]
    return max(differ or rows, key=lambda r: r.stats["test_acc"][0], default=None)


def best_two_scale(summary):
    """The "best eta" of the calibration line: best_row of the two-scale rows (Eq. (13))."""
    return best_row([r for r in summary.rows if r.variant == "two-scale"])


def _temperature_line(summary):
    """Does the two-scale loss do more for calibration than one temperature would?"""
    base, best = summary.baseline, best_two_scale(summary)
    if base is None or best is None or "test_ece_temperature" not in base.stats:
        return []
    return [f"calibration: {base.label} ECE {_pct(base.stats['test_ece'])}, with a "
            f"temperature {_pct(base.stats['test_ece_temperature'])} (T = "
            f"{base.stats['temperature'][0]:.3g}); {best.label} (best test acc) ECE "
            f"{_pct(best.stats['test_ece'])}, with a temperature "
            f"{_pct(best.stats['test_ece_temperature'])}; points"]


def _extra_lines(summary):
    lines = _temperature_line(summary)
    for r in summary.rows:
        if r.variant == "two-scale" and r.eta is not None and r.eta >= 100 and r.identical:
            k, n = r.identical
            verdict = "yes" if k == n and n > 0 else "no"
            lines.append(f"η={r.eta:g} identical to traditional on every batch and test "
                         f"evaluation: {verdict} ({k}/{n} seeds)")
    lr = summary.experiment.configs()[0].lr
    for r in summary.rows:
        if r.diverged:
            lines.append(f"(!) {r.label}: diverged (inf or NaN) in {r.diverged} seed(s), whose "
                         f"numbers are NaN: lower the learning rate (--lr, now {lr:g}) "
                         "(docs/decisions.md#D17)")
        if r.alarms > r.diverged:
            lines.append(f"(!) {r.label}: a scale went <= 0 in {r.alarms - r.diverged} "
                         "seed(s); see the run's history (docs/decisions.md#D17)")
    if summary.failed:
        lines.append(f"{summary.failed} run(s) ended in an error and have no results (the "
                     "messages printed while they ran say why)")
    unfinished = summary.missing - summary.failed
    if unfinished:
        lines.append(f"{unfinished} run(s) not finished: run the same command again to "
                     "complete them")
    return lines


# ----------------------------------------------------------------------------- csv

def csv_rows(summary):
    """One dict per configuration with the CSV_COLUMNS (empty string where not applicable)."""
    def num(x, scale=1.0):
        return "" if x is None or math.isnan(x) else f"{scale * x:.6g}"

    out = []
    for r in summary.rows:
        def get(name, i=0, s=r.stats):
            return num(s[name][i]) if name in s else ""

        out.append({
            "variant": r.variant, "eta": "" if r.eta is None else f"{r.eta:g}",
            "seeds": str(r.seeds),
            "train_acc_mean": get("train_acc"), "train_acc_std": get("train_acc", 1),
            "test_acc_mean": get("test_acc"), "test_acc_std": get("test_acc", 1),
            "test_ece_mean": get("test_ece"), "test_ece_std": get("test_ece", 1),
            "test_mce_mean": get("test_mce"), "test_mce_std": get("test_mce", 1),
            "test_ece_temperature_mean": get("test_ece_temperature"),
            "test_ece_temperature_std": get("test_ece_temperature", 1),
            "temperature_mean": get("temperature"),
            "delta_train_pp": num(r.delta_train), "delta_test_pp": num(r.delta_test),
            "paper_delta_train_pp": num(r.paper.get("train_delta")),
            "paper_delta_test_pp": num(r.paper.get("test_delta")),
            "identical_to_traditional": ("" if r.identical is None
                                         else f"{r.identical[0]}/{r.identical[1]}"),
            "max_batch_diff_pp": num(r.max_batch_diff), "early_deficit_pp": num(r.early_deficit),
            "scale_alarms": str(r.alarms), "diverged": str(r.diverged),
            "train_batch_acc_mean": get("train_batch_acc"),
            "train_batch_acc_std": get("train_batch_acc", 1),
            "test_balanced_acc_mean": get("test_balanced_acc"), "test_nll_mean": get("test_nll"),
            "test_top5_mean": get("test_top5"), "test_top10_mean": get("test_top10"),
            "test_close_0.01_mean": get("test_close_0.01"),
            "test_close_0.05_mean": get("test_close_0.05"),
            "train_superclass_acc_mean": get("train_superclass_acc"),
            "test_superclass_acc_mean": get("test_superclass_acc"),
            "seconds_per_run": num(r.seconds), "key": r.key, "paper_note": r.paper.get("note", ""),
        })
    return out


def format_csv(summary):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(summary))
    return buf.getvalue()


def write(out, summary):
    """Write summary.txt and summary.csv into the run folder `out` (atomically)."""
    atomic.write_text(os.path.join(out, "summary.txt"), format_table(summary))
    atomic.write_text(os.path.join(out, "summary.csv"), format_csv(summary))
