"""Figures mirroring the paper's (Figs. 1-11), drawn from an experiment's Summary.

Matplotlib with the non-interactive Agg backend; imported only by the command
line (minits.cli), never by the numerical floors. Every figure: mean over seeds,
a band of ± one standard deviation, train left and test right.
"""

import os

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from . import atomic  # noqa: E402
from .experiments.summary import best_row  # noqa: E402


def _style(summary):
    """key -> (label, color, linestyle); traditional black, plain CE grey, etas by colour."""
    etas = sorted({r.eta for r in summary.rows if r.eta is not None})
    cmap = matplotlib.colormaps["viridis"]
    dashes = {"two-scale": "-", "fixed": "--", "separation": "-."}
    out = {}
    for r in summary.rows:
        if r.variant == "one-scale":
            out[r.key] = (r.label, "black", "-")
        elif r.variant == "plain-ce":
            out[r.key] = (r.label, "0.55", ":")
        else:
            c = cmap(0.85 * etas.index(r.eta) / max(1, len(etas) - 1))
            out[r.key] = (r.label, c, dashes[r.variant])
    return out


def _band(ax, x, ys, label, color, ls, baseline=False, window=None):
    """Mean over seeds with a +-1 std band; the traditional baseline drawn on top, dashed,
    so that a curve identical to it (eta = 100) stays visible underneath.
    window: (x_min, x_max) to draw only that part (the zoomed panels)."""
    x = np.asarray(x, dtype=float)
    ys = np.asarray(ys, dtype=float)
    if window is not None:
        keep = (x >= window[0]) & (x <= window[1])
        x, ys = x[keep], ys[:, keep]
    mean = ys.mean(axis=0)
    z = 5 if baseline else 2
    ax.plot(x, mean, color=color, ls=(0, (4, 3)) if baseline else ls, lw=2.0 if baseline else 1.4,
            label=f"{label} ({len(ys)})", zorder=z)
    if len(ys) > 1:
        std = ys.std(axis=0, ddof=1)
        ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.12, lw=0, zorder=z - 1)


def smooth(values, window):
    """Moving average over `window` iterations (the per-batch accuracy is noisy)."""
    if window <= 1:
        return np.asarray(values, dtype=float)
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def _save(fig, path, title, bottom=0.0):
    """Give the figure its title, lay it out (leaving `bottom`, a fraction of the height,
    to a legend below the panels) and save it atomically as PNG."""
    fig.suptitle(title)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    with atomic.atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return path


def _groups(summary):
    style = _style(summary)
    return [(r.key, style[r.key], summary.groups.get(r.key, [])) for r in summary.rows
            if summary.groups.get(r.key)]


def accuracy_curves(summary, path):
    """Figs. 1, 8, 9, 10, 11: accuracy over training, train (per batch, smoothed) left,
    test (every eval_every iterations) right; below, the second half zoomed in (as the
    bottom panel of Fig. 8)."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.6))
    for key, (label, color, ls), runs in _groups(summary):
        T = runs[0].config.iterations
        train = [100 * smooth(r.history["batch_acc"], max(1, T // 50)) for r in runs]
        test = [100 * r.history["test_acc"] for r in runs]
        x_train, x_test = np.arange(1, T + 1), runs[0].history["eval_iteration"]
        base = key == "one-scale"
        for row, window in ((0, None), (1, (T / 2, T))):
            _band(axes[row, 0], x_train, train, label, color, ls, base, window)
            _band(axes[row, 1], x_test, test, label, color, ls, base, window)
    titles = ("training set (batch accuracy, moving average)", "test set")
    for col in range(2):
        axes[0, col].set_title(titles[col])
        axes[1, col].set_title(titles[col] + ", second half")
        for row in range(2):
            axes[row, col].set_xlabel("iteration")
            axes[row, col].set_ylabel("accuracy (%)")
            axes[row, col].grid(alpha=0.3)
    axes[0, 1].legend(fontsize=8, loc="lower right", title="loss (seeds)", title_fontsize=8)
    return _save(fig, path, summary.experiment.title)


def _legend_below(fig, ax, title="loss (seeds)"):
    """The legend of `ax` under the panels, where it hides no line; returns the fraction
    of the figure's height it takes (for _save)."""
    handles, labels = ax.get_legend_handles_labels()
    columns = min(4, max(1, len(labels)))
    rows = -(-len(labels) // columns)
    fig.legend(handles, labels, loc="lower center", ncol=columns, fontsize=8, title=title,
               title_fontsize=8, frameon=False)
    return (0.4 + 0.2 * rows) / fig.get_figheight()


def _final_curves(summary, path, x_key, y_key, xlabel, ylabel, title, percent_x=False):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    for key, (label, color, ls), runs in _groups(summary):
        for ax, split in zip(axes, ("train", "test"), strict=True):
            x = np.asarray(getattr(runs[0], split)[x_key], dtype=float)
            _band(ax, x, [100 * np.asarray(getattr(r, split)[y_key]) for r in runs],
                  label, color, ls, baseline=key == "one-scale")
    for ax, split in zip(axes, ("training set", "test set"), strict=True):
        ax.set_title(split)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    return _save(fig, path, title, bottom=_legend_below(fig, axes[1]))


def close_enough(summary, path, superclass=False):
    """Figs. 2 and 7: close-enough accuracy acc_at against at, at the end of training."""
    key = "superclass_close_enough" if superclass else "close_enough"
    what = "super-classes" if superclass else "classes"
    return _final_curves(summary, path, "close_enough_at", key,
                         "at: how far p_i(s) may fall short of the largest probability",
                         "objects with p_i(s) ≥ max_i p_i − at (%)",
                         f"Close-enough accuracy acc_at ({what}), end of training")


def top_k(summary, path):
    """Fig. 3: top-k accuracy against k, at the end of training."""
    return _final_curves(summary, path, "topk_k", "topk",
                         "k: the correct class among the k most probable",
                         "top-k accuracy (%)",
                         "Top-k performance, end of training")


def histograms(summary, path):
    """Figs. 4-6 on the test set, pooled over seeds: max_i p_i, p_{i(s)}, and
    dp = p_{i(s)} - max_i p_i of the misclassified objects (Eq. (19)); the two-scale
    loss with the smallest eta (left; in an experiment without it, the variant with the
    smallest eta) against the traditional loss (right). Drawn for every data set."""
    pair = _histogram_pair(summary)
    if pair is None:
        return None
    fig, axes = plt.subplots(3, 2, figsize=(10, 9), sharey="row")
    rows = [("max probability max_i p_i (Fig. 4)", lambda t: t["p_max"], (0, 1),
             "largest probability of the object"),
            ("probability of the correct class p_i(s) (Fig. 5)", lambda t: t["p_correct"],
             (0, 1), "probability of the correct class"),
            ("δp = p_i(s) - max p_i, misclassified objects (Fig. 6)",
             lambda t: t["delta_p"], (-1, 0), "δp: how far the correct class falls short")]
    for col, (row_obj, runs) in enumerate(pair):
        for row, (title, get, rng, xlabel) in enumerate(rows):
            ax = axes[row, col]
            ax.set_xlabel(xlabel, fontsize=9)
            values = np.concatenate([get(r.test) for r in runs])
            ax.hist(values, bins=40, range=rng, color="tab:blue" if col == 0 else "0.35")
            ax.set_title(f"{row_obj.label}: {title}", fontsize=9)
            ax.set_ylabel("objects")
    return _save(fig, path, f"{summary.experiment.title}: test set, pooled over seeds")


def _contenders(summary):
    """The finished rows the traditional loss is set against in the histograms and the
    reliability diagram: the two-scale loss (Eq. (13)) or, in an experiment without it
    (Fig. 10, a compare of other variants), the other losses with an eta."""
    rows = [r for r in summary.rows if r.eta is not None and summary.groups.get(r.key)]
    return [r for r in rows if r.variant == "two-scale"] or rows


def _histogram_pair(summary):
    twos = _contenders(summary)
    base = [r for r in summary.rows if r.variant == "one-scale" and summary.groups.get(r.key)]
    if not twos or not base:
        return None
    best = min(twos, key=lambda r: r.eta)
    return [(best, summary.groups[best.key]), (base[0], summary.groups[base[0].key])]


def _best_pair(summary):
    """(traditional row, the contender with the best mean test accuracy that is not the
    traditional loss itself: experiments.summary.best_row), or None."""
    base, best = summary.baseline, best_row(_contenders(summary))
    if base is None or not summary.groups.get(base.key) or best is None:
        return None
    return base, best


def pooled_reliability(runs):
    """The reliability bins of several seeds taken together (each bin's accuracy and
    confidence weighted by its object count in each seed): (edges, confidence, accuracy,
    count)."""
    count = np.sum([r.test["reliability_count"] for r in runs], axis=0)
    sums = {name: np.sum([np.nan_to_num(r.test[f"reliability_{name}"])
                          * r.test["reliability_count"] for r in runs], axis=0)
            for name in ("confidence", "accuracy")}
    with np.errstate(invalid="ignore"):  # an empty bin: NaN
        conf, acc = sums["confidence"] / count, sums["accuracy"] / count
    return np.linspace(0.0, 1.0, len(count) + 1), conf, acc, count


RELIABILITY_STYLE = {
    "accuracy": dict(facecolor="tab:blue", edgecolor="black",
                     label="accuracy of the bin: the top of the blue bar"),
    "under": dict(facecolor="none", edgecolor="orange", hatch="\\\\",
                  label="gap, accuracy above the mean confidence (underconfident): hatched "
                        "on the bar"),
    "over": dict(facecolor=(1.0, 0.8, 0.8), edgecolor="tab:red", hatch="//",
                 label="gap, mean confidence above accuracy (overconfident): hatched above "
                       "the bar"),
}


def reliability(summary, path):
    """Reliability diagrams (Guo et al. 2017) on the test set: the traditional loss and the
    two-scale loss at its best eta (best mean test accuracy; not an eta whose every seed is
    the traditional loss, as eta = 100 is), one panel each, the bins of the seeds' objects
    together, as Guo et al. draw them. Each bin: a blue bar up to its accuracy, a black
    mark across at its mean confidence, and the gap between the two hatched: orange on the
    top of the bar where the accuracy is the higher (underconfident), red above the bar
    where the confidence is (overconfident); the diagonal: perfect calibration.
    Title: test ECE, mean ± std over seeds (metrics.expected_calibration_error)."""
    pair = _best_pair(summary)
    if pair is None:
        return None
    bins = [pooled_reliability(summary.groups[r.key]) for r in pair]
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.6), sharey=True)
    for ax, row, (edges, conf, acc, count) in zip(axes, pair, bins, strict=True):
        _reliability_bins(ax, edges, conf, acc, count)
        ece_mean, ece_std = row.stats.get("test_ece", (np.nan, np.nan))
        spread = "" if np.isnan(ece_std) else f" ± {100 * ece_std:.2f}"
        ax.set_title(f"{row.label}: ECE {100 * ece_mean:.2f}{spread} % ({row.seeds} seeds)",
                     fontsize=10)
        ax.set_xlabel("confidence max_i p_i (15 bins)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy, and mean confidence, of the bin")
    handles = [Patch(**RELIABILITY_STYLE["accuracy"]),
               Patch(**{**RELIABILITY_STYLE["under"], "facecolor": "tab:blue"}),  # as on a bar
               Patch(**RELIABILITY_STYLE["over"])]
    handles += [Line2D([], [], color="black", lw=2.5, label="mean confidence of the bin"),
                Line2D([], [], ls="--", color="0.3", label="perfect calibration")]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
    return _save(fig, path, f"{summary.experiment.title}: reliability on the test set",
                 bottom=0.75 / fig.get_figheight())


def _reliability_bins(ax, edges, conf, acc, count):
    """One reliability panel: the bins with objects (count > 0), as reliability says."""
    full = count > 0
    left, width, conf, acc = edges[:-1][full], np.diff(edges)[full], conf[full], acc[full]
    ax.bar(left, acc, width=width, align="edge", lw=0.6, **RELIABILITY_STYLE["accuracy"])
    under = acc > conf  # the gap on the bar (hatch only: the blue shows through) or above it
    for part, low, high in (("under", conf, acc), ("over", acc, conf)):
        pick = under if part == "under" else ~under
        ax.bar(left[pick], (high - low)[pick], bottom=low[pick], width=width[pick],
               align="edge", lw=0.6, **RELIABILITY_STYLE[part])
    ax.hlines(conf, left, left + width, color="black", lw=2.5, zorder=4)
    ax.plot([0, 1], [0, 1], ls="--", color="0.3", zorder=3)


def final_vs_eta(summary, path):
    """Fig. 10 style: accuracy at the end of training against eta, one line per loss
    family, the traditional loss as a horizontal band."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    families = {}
    for r in summary.rows:
        if r.seeds:
            families.setdefault(r.variant, []).append(r)
    style = _style(summary)
    for ax, name in zip(axes, ("train_acc", "test_acc"), strict=True):
        for variant, rows in families.items():
            if variant in ("one-scale", "plain-ce"):
                r = rows[0]
                mean, std = r.stats[name]
                color = style[r.key][1]
                ax.axhline(100 * mean, color=color, ls=style[r.key][2], label=r.label)
                if std == std:
                    ax.axhspan(100 * (mean - std), 100 * (mean + std), color=color, alpha=0.1)
                continue
            rows = sorted(rows, key=lambda r: r.eta)
            x = [r.eta for r in rows]
            m = np.array([r.stats[name][0] for r in rows]) * 100
            s = np.nan_to_num(np.array([r.stats[name][1] for r in rows]) * 100)
            ax.errorbar(x, m, yerr=s, marker="o", capsize=3, label=variant,
                        ls={"two-scale": "-", "fixed": "--", "separation": "-."}[variant])
        ax.set_xscale("log")
        ax.set_xlabel("η, the threshold of Eq. (13) (log scale)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(("training set" if name == "train_acc" else "test set")
                     + ", end of training")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    return _save(fig, path, summary.experiment.title)


SCALES = {"R1": ("-", "R1 of Eq. (13)"), "R2": (":", "R2 of Eq. (13)"),
          "Rs": ("-.", "R_s of Eq. (17)"), "R": ("--", "R of Eq. (17)")}
MARKERS = "osD^vP*X"


def scales(summary, path):
    """R(alpha) (left) and the loss's scales (right: R1, R2 of Eq. (13), R_s and R of
    Eq. (17), those the runs have) over training, mean over seeds. Colour: the loss;
    line style: the scale; a marker of its own per loss, placed apart from the others',
    so that lines on top of one another (R2 = 10 R1 for every eta at first) stay
    distinguishable."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.2))
    drawn, groups = [], _groups(summary)
    for i, (_, (label, color, ls), runs) in enumerate(groups):
        T = runs[0].config.iterations
        x = np.arange(1, T + 1)
        every = max(1, T // 6)  # six markers a line, each loss's a fraction of `every` on
        marks = dict(marker=MARKERS[i % len(MARKERS)], markersize=5,
                     markevery=(int(every * (i + 0.5) / len(groups)), every))
        axes[0].plot(x, _seed_mean(np.array([r.history["R_alpha"] for r in runs])),
                     color=color, ls=ls, label=label, **marks)
        for name, (style, words) in SCALES.items():
            ys = np.array([r.history[name] for r in runs])
            if np.all(np.isnan(ys)):
                continue
            drawn.append(name)
            axes[1].plot(x, _seed_mean(ys), color=color, ls=style, label=f"{label}: {words}",
                         **marks)
    axes[0].set_title("size of the parameters R(α) = Π_l ||α^l||, Eq. (9)", fontsize=10)
    axes[0].set_ylabel("R(α)")
    axes[1].set_title(_scales_title(drawn), fontsize=10)
    axes[1].set_ylabel("scale (multiplies the normalised logits X̂)")
    for ax in axes:
        _plain_y(ax)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, title="loss", title_fontsize=7)
    if drawn:
        axes[1].legend(fontsize=7, title="loss: scale", title_fontsize=7)
    return _save(fig, path, summary.experiment.title)


def _scales_title(drawn):
    """Names only the scales drawn: 'the loss's scales: R1, R2 of Eq. (13)'."""
    parts = []
    for names, eq in ((("R1", "R2"), "Eq. (13)"), (("Rs", "R"), "Eq. (17)")):
        found = [n.replace("Rs", "R_s") for n in names if n in drawn]
        if found:
            parts.append(f"{', '.join(found)} of {eq}")
    return "the loss's scales: " + "; ".join(parts) if parts else "no run has a scale"


def _plain_y(ax):
    """Ticks as plain numbers (18.7, 200; not 1.87×10^1): a log axis where the lines span
    a factor of 10 or more, else a linear one (inside one decade a log axis has no tick
    to label)."""
    low, high = ax.dataLim.y0, ax.dataLim.y1
    if np.isfinite([low, high]).all() and low > 0 and high / low >= 10:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.4g}"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(_minor_tick))
    else:
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter(useOffset=False))


def _minor_tick(value, _):
    """Minor ticks of a log axis labelled at 2 and 5 times a power of ten only."""
    leading = value / 10 ** np.floor(np.log10(value))
    return f"{value:.4g}" if np.isclose(leading, (2, 5)).any() else ""


def _seed_mean(ys):
    """Mean over seeds (axis 0) of the values that are not NaN (a diverged run stops
    recording); NaN where no seed has a value."""
    count = np.count_nonzero(~np.isnan(ys), axis=0)
    total = np.nansum(ys, axis=0)
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)


def draw_all(summary, folder):
    """Every figure that the experiment's results support, as PNGs in `folder`.

    Returns the list of written paths.
    """
    if not any(summary.groups.values()):
        return []
    paths = [accuracy_curves(summary, os.path.join(folder, "accuracy.png")),
             close_enough(summary, os.path.join(folder, "close_enough.png")),
             top_k(summary, os.path.join(folder, "topk.png")),
             scales(summary, os.path.join(folder, "scales.png"))]
    if len({r.eta for r in summary.rows if r.eta is not None and r.seeds}) > 1:
        paths.append(final_vs_eta(summary, os.path.join(folder, "final_vs_eta.png")))
    first = next(runs for runs in summary.groups.values() if runs)
    if "superclass_close_enough" in first[0].train:
        paths.append(close_enough(summary, os.path.join(folder, "superclass_close_enough.png"),
                                  superclass=True))
    paths.append(histograms(summary, os.path.join(folder, "histograms.png")))
    paths.append(reliability(summary, os.path.join(folder, "reliability.png")))
    return [p for p in paths if p]
