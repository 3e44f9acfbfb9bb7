"""Measures of performance of Section 3.1, for a whole set of objects at once.

Every function takes integer labels ``y`` (n,) = i(s) and either probabilities
``proba`` (n, K) or logits (n, K), in scikit-learn's argument order (truth
first). All are vectorised: no Python loop over objects.

Ties. The paper's accuracy, Eq. (11), is #W_{0,T} / #T with W_{0,T} = {s :
dX(s) > 0}: an object counts as correctly classified only when the correct
class beats every other class *strictly*. A tie for the largest probability
is therefore a miss here, where ``np.argmax`` would hand it to the lowest
class index. This matters in one common case: a network whose outputs are all
equal (e.g. zero parameters) scores 0, not the fraction of objects in class 0.
The same strict rule runs through top-k, balanced and super-class accuracy;
close-enough accuracy keeps the paper's ``>=`` (ties count). With continuous
outputs ties have probability zero and all rules agree with scikit-learn's.

Calibration (Guo et al. 2017, not in the paper): the expected and maximal calibration
errors and the reliability diagram, on the top-label confidence max_i p_i, measure how
far the probabilities that Figs. 4-6 show are from the frequencies of being right.

Inputs are checked: shapes, integer labels in 0..K-1, finite values; bad
input raises ValueError / TypeError naming the argument.
"""

import numpy as np

from .scale import confidence as _confidence
from .scale import well_classified

HISTOGRAM_BINS = 20


# ----------------------------------------------------------------------------- accuracies


def accuracy(y, proba):
    """Overall accuracy, Eq. (11): acc = #W_{0,T} / #T.

    An object is correct when p_{i(s)} > max_{i != i(s)} p_i (strict: a tie is a miss).
    Inputs: y: int (n,); proba: (n, K) probabilities (or logits: same ranking).
    Output: float in [0, 1].
    """
    y, proba = _check(y, proba)
    return float(np.mean(_correct(y, proba)))


def top_k_accuracy(y, proba, k):
    """Top-k accuracy: #{s : p_{i(s)} is one of the k largest probabilities} / #T.

    Tie rule: s counts when fewer than k *other* classes have p_i >= p_{i(s)},
    i.e. classes tied with the correct one are ranked ahead of it. So k=1 is
    exactly :func:`accuracy`, and k >= K gives 1.
    Inputs: y: int (n,); proba: (n, K); k: int >= 1, or a sequence of them.
    Output: float, or float64 array shaped like k.
    """
    y, proba = _check(y, proba)
    ks = np.asarray(k)
    if not np.issubdtype(ks.dtype, np.integer) or np.any(ks < 1):
        raise ValueError(f"k must be an integer >= 1 (or an array of them), got {k!r}")
    K = proba.shape[1]
    rank = _rank(y, proba)                          # (n,) in 0..K-1
    hits = np.cumsum(np.bincount(rank, minlength=K))  # hits[r] = #{s : rank(s) <= r}
    result = hits[np.minimum(ks, K) - 1] / len(y)
    return float(result) if ks.ndim == 0 else result


def close_enough_accuracy(y, proba, at):
    """Close-enough accuracy: acc_at = #{s : p_{i(s)} >= max_i p_i - at} / #T.

    Counts the objects within probability ``at`` of being classified correctly
    (Sec. 3.1). Note the paper's ``>=``: ties count, so acc_0 >= accuracy.
    Evaluated literally, in float64, for every threshold at once (memory n x #at).
    Inputs: y: int (n,); proba: (n, K); at: float >= 0, or an array of thresholds.
    Output: float, or float64 array shaped like at.
    """
    y, proba = _check(y, proba)
    ats = np.asarray(at, dtype=np.float64)
    if not np.all(np.isfinite(ats)) or np.any(ats < 0):
        raise ValueError(f"at must be finite and >= 0, got {at!r}")
    p_true = _take(proba, y).astype(np.float64)
    p_max = proba.max(axis=1).astype(np.float64)
    close = p_true[:, None] >= p_max[:, None] - ats.reshape(1, -1)
    result = close.mean(axis=0).reshape(ats.shape)
    return float(result) if ats.ndim == 0 else result


def balanced_accuracy(y, proba):
    """Average per-class accuracy: mean over the classes c present in y of
    #{s in class c correctly classified} / #{s in class c}.

    Same strict correctness rule as :func:`accuracy`; classes absent from y
    are left out of the mean (as in sklearn.metrics.balanced_accuracy_score).
    Inputs: y: int (n,); proba: (n, K).   Output: float in [0, 1].
    """
    y, proba = _check(y, proba)
    K = proba.shape[1]
    total = np.bincount(y, minlength=K)
    hits = np.bincount(y, weights=_correct(y, proba), minlength=K)
    present = total > 0
    return float(np.mean(hits[present] / total[present]))


def superclass_accuracy(y_coarse, proba, fine_to_coarse):
    """Super-class accuracy, Eq. (20): #{s : the index of max_i p_i belongs to
    the super-class of i(s)} / #T.

    Strict, like accuracy: s counts when the largest probability among the
    fine classes of its super-class beats the largest among all other classes.
    Inputs:
        y_coarse: int (n,), the super-class of each object (CIFAR-100 coarse label).
        proba: (n, K) probabilities over the K fine classes.
        fine_to_coarse: int (K,), the super-class of each fine class; -1 marks a
            fine class of unknown super-class (as Dataset.fine_to_coarse does for a
            class absent from the files): it is never "the same super-class".
    Output: float in [0, 1].
    """
    fine_to_coarse = np.asarray(fine_to_coarse)
    if not np.issubdtype(fine_to_coarse.dtype, np.integer) or fine_to_coarse.ndim != 1:
        raise TypeError("fine_to_coarse must be a 1-d array of integer super-class indices")
    if np.any(fine_to_coarse < -1) or np.all(fine_to_coarse == -1):
        raise ValueError("fine_to_coarse must hold super-class indices >= 0 (or -1 for "
                         f"unknown), not all -1; got {fine_to_coarse.tolist()}")
    proba = _check_scores(proba, "proba")
    if fine_to_coarse.shape[0] != proba.shape[1]:
        raise ValueError(f"fine_to_coarse has {fine_to_coarse.shape[0]} entries for the "
                         f"{proba.shape[1]} classes of proba")
    y_coarse = _check_labels(y_coarse, len(proba), int(fine_to_coarse.max()) + 1, "y_coarse")
    missing = np.setdiff1d(np.unique(y_coarse), fine_to_coarse)
    if missing.size:
        raise ValueError(f"y_coarse holds super-classes {missing.tolist()} that no fine class "
                         "maps to in fine_to_coarse")
    inside = fine_to_coarse[None, :] == y_coarse[:, None]          # (n, K)
    best_in = np.where(inside, proba, -np.inf).max(axis=1)
    best_out = np.where(inside, -np.inf, proba).max(axis=1)
    return float(np.mean(best_in > best_out))


# ----------------------------------------------------------------------------- confidences


def confidence(logits, y):
    """Classification confidence per object (Sec. 2.2, docs/decisions.md#D1):

        dX(s) = X_{i(s)} - max_{i != i(s)} X_i.

    dX > 0 exactly when s is correctly classified; dX > eta defines W_{eta,T}.
    Pass normalised logits X_hat for the normalised confidence dX_hat.
    Inputs: logits: (n, K) with K >= 2; y: int (n,).
    Output: (n,) in the dtype of logits.
    """
    y, logits = _check(y, logits, name="logits")
    return _confidence(logits, y)  # one implementation, on the model floor (minits.scale)


def delta_p(y, proba, misclassified_only=True):
    """Probability confidence, Eq. (19): dp(s) = p_{i(s)} - max_i p_i  (<= 0).

    Fig. 6 shows it for misclassified objects, those not correct in the sense
    of :func:`accuracy` (a tie for the maximum is misclassified, with dp = 0).
    Inputs: y: int (n,); proba: (n, K);
        misclassified_only: True -> only the misclassified objects, in order;
        False -> all n objects (0 for correctly classified ones).
    Output: (m,) or (n,), in the dtype of proba.
    """
    y, proba = _check(y, proba)
    dp = _take(proba, y) - proba.max(axis=1)
    return dp[~_correct(y, proba)] if misclassified_only else dp


def well_classified_count(confidence_or_logits, etas, y=None):
    """#W_{eta,T} = #{s : dX(s) > eta} (strict), as a function of eta (Sec. 2.2).

    #W_{0,T} / #T is the accuracy, Eq. (11).
    Inputs:
        confidence_or_logits: dX (n,) from :func:`confidence`, or logits (n, K)
            together with y.
        etas: float, or an array of thresholds.
        y: int (n,), only with logits.
    Output: int, or int64 array shaped like etas.
    """
    values = np.asarray(confidence_or_logits)
    if values.ndim == 2:
        if y is None:
            raise ValueError("well_classified_count: pass y with logits of shape (n, K)")
        values = confidence(values, y)
    elif values.ndim != 1:
        raise ValueError(f"well_classified_count: expected dX (n,) or logits (n, K), "
                         f"got shape {values.shape}")
    elif y is not None:
        raise ValueError("well_classified_count: y is only used with logits (n, K)")
    values = _check_finite(values, "confidence_or_logits").astype(np.float64)
    thresholds = np.asarray(etas, dtype=np.float64)
    if np.any(np.isnan(thresholds)):
        raise ValueError(f"etas must not be NaN, got {etas!r}")
    # members of W_eta for every threshold at once: (n, #etas), counted per threshold
    member = well_classified(values[:, None], thresholds.reshape(1, -1))
    counts = np.count_nonzero(member, axis=0).reshape(thresholds.shape)
    return int(counts) if thresholds.ndim == 0 else counts.astype(np.int64)


# ----------------------------------------------------------------------------- histograms


def probability_histograms(y, proba, bins=HISTOGRAM_BINS):
    """Histogram data of Figs. 4-6.

    Fixed bin edges, so counts from several seeds (or runs) can simply be added:
        "max_p":   max_i p_i of every object, Fig. 4, edges linspace(0, 1, bins + 1);
        "p_true":  p_{i(s)} of every object, Fig. 5, same edges;
        "delta_p": dp of the misclassified objects, Eq. (19), Fig. 6,
                   edges linspace(-1, 0, bins + 1).
    Bins are half-open [a, b) except the last, [a, b] (np.histogram's rule);
    values are clipped into the range first, so a probability of 1 + 1e-7
    from rounding is counted, not dropped.
    Inputs: y: int (n,); proba: (n, K); bins: int >= 1.
    Output: dict name -> (counts int64 (bins,), edges float64 (bins + 1,)).
    """
    y, proba = _check(y, proba)
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}")
    unit = np.linspace(0.0, 1.0, bins + 1)
    negative = np.linspace(-1.0, 0.0, bins + 1)
    values = {
        "max_p": (proba.max(axis=1), unit),
        "p_true": (_take(proba, y), unit),
        "delta_p": (delta_p(y, proba), negative),
    }
    out = {}
    for name, (v, edges) in values.items():
        v = np.clip(v.astype(np.float64), edges[0], edges[-1])
        counts, _ = np.histogram(v, bins=edges)
        out[name] = (counts.astype(np.int64), edges)
    return out


# ----------------------------------------------------------------------------- calibration

CALIBRATION_BINS = 15
CALIBRATION_NORMS = ("l1", "l2", "max")


def reliability(y, proba, n_bins=CALIBRATION_BINS):
    """Reliability diagram data (Guo et al. 2017, Sec. 2): top-label confidence
    c(s) = max_i p_i against the accuracy of the prediction argmax_i p_i, per bin.

    Equal-width bins I_m = (edges[m], edges[m+1]], edges = linspace(0, 1, n_bins + 1),
    Guo et al.'s (lo, hi]; c = 0 (never a maximum of K >= 1 probabilities unless all
    are 0) goes to the first bin. torchmetrics bins [lo, hi) with c = 1 in a bin of its
    own; the two agree unless a confidence lies exactly on an edge (or is 1, as float32
    confidences of well-classified objects often are: here they count in the last bin).
    The prediction is argmax (the lowest index on a tie), the field's convention, not
    the strict rule of Eq. (11): the two differ only on exact ties.
    Inputs: y: int (n,); proba: (n, K) probabilities in [0, 1]; n_bins: int >= 1.
    Output: dict of float64 arrays: "edges" (n_bins + 1,), "count" (n_bins,) (int64),
        "confidence" and "accuracy" (n_bins,): the mean c and the fraction of correct
        predictions of the objects in each bin (NaN for an empty bin).
    """
    y, proba = _check(y, proba)
    n_bins = _check_bins(n_bins)
    if np.any(proba < 0) or np.any(proba > 1):
        raise ValueError("proba must hold probabilities in [0, 1]; got values in "
                         f"[{proba.min()}, {proba.max()}]")
    c = proba.max(axis=1).astype(np.float64)
    correct = (np.argmax(proba, axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # side="left": edges[m] < c <= edges[m + 1] puts c in bin m, the (lo, hi] rule
    bin_of = np.clip(np.searchsorted(edges, c, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(bin_of, minlength=n_bins)
    with np.errstate(invalid="ignore"):  # an empty bin: 0 / 0 -> NaN
        confidence = np.bincount(bin_of, weights=c, minlength=n_bins) / count
        accuracy = np.bincount(bin_of, weights=correct, minlength=n_bins) / count
    return {"edges": edges, "count": count.astype(np.int64), "confidence": confidence,
            "accuracy": accuracy}


def expected_calibration_error(y, proba, n_bins=CALIBRATION_BINS, norm="l1"):
    """Calibration error over the bins of :func:`reliability` (Guo et al. 2017, Sec. 2;
    torchmetrics' CalibrationError(task="multiclass", norm=...)), with gaps
    g_m = |acc(I_m) - conf(I_m)| and counts n_m over the non-empty bins:

        "l1"  ECE = sum_m n_m g_m / n
        "l2"  sqrt(sum_m (n_m / n) g_m^2)
        "max" MCE = max_m g_m.

    Inputs: y: int (n,); proba: (n, K) probabilities; n_bins: int >= 1;
        norm: "l1" | "l2" | "max".
    Output: float in [0, 1].
    """
    if norm not in CALIBRATION_NORMS:
        raise ValueError(f"norm must be one of {', '.join(CALIBRATION_NORMS)}; got {norm!r}")
    return _calibration_error(reliability(y, proba, n_bins), norm)


def calibration(y, proba, n_bins=CALIBRATION_BINS):
    """The calibration of the probabilities from one binning (:func:`reliability`):
    {"ece": the "l1" error, "mce": the "max" error (expected_calibration_error),
    "reliability_confidence", "reliability_accuracy": float64 (n_bins,),
    "reliability_count": int64 (n_bins,)}.
    Inputs: y: int (n,); proba: (n, K) probabilities; n_bins: int >= 1.
    """
    bins = reliability(y, proba, n_bins)
    return {"ece": _calibration_error(bins, "l1"), "mce": _calibration_error(bins, "max"),
            "reliability_confidence": bins["confidence"],
            "reliability_accuracy": bins["accuracy"], "reliability_count": bins["count"]}


def _calibration_error(bins, norm):
    """The calibration error `norm` of reliability's bins (expected_calibration_error)."""
    full = bins["count"] > 0
    gap = np.abs(bins["accuracy"][full] - bins["confidence"][full])
    count = bins["count"][full]
    if norm == "l1":
        return float(np.sum(count * gap) / count.sum())
    if norm == "l2":
        return float(np.sqrt(np.sum(count / count.sum() * gap**2)))
    return float(np.max(gap))


# ----------------------------------------------------------------------------- losses of p


def mean_nll(y, proba):
    """Cross-entropy of given probabilities, Eq. (5) with Eq. (4): the mean of
    -log p_{i(s)}, a probability of 0 (an underflow) read as float64's smallest normal.
    Inputs: y: int (n,); proba: (n, K). Output: float."""
    p_correct = proba[np.arange(len(y)), y].astype(np.float64)
    return float(np.mean(-np.log(np.maximum(p_correct, np.finfo(np.float64).tiny))))


def coarse_probabilities(proba, fine_to_coarse, num_coarse):
    """Probability of each super-class: the sum of its fine classes' probabilities.

    proba: (n, K); fine_to_coarse: (K,) ints (-1: a fine class of unknown super-class)
    -> (n, num_coarse). Used for the close-enough performance on super-classes (Fig. 7).
    """
    fine_to_coarse = np.asarray(fine_to_coarse)
    member = np.zeros((len(fine_to_coarse), num_coarse), dtype=proba.dtype)
    known = np.flatnonzero(fine_to_coarse >= 0)  # -1: a fine class absent from the files
    member[known, fine_to_coarse[known]] = 1
    return proba @ member


# ----------------------------------------------------------------------------- helpers


def _check_bins(n_bins):
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be an integer >= 1, got {n_bins!r}")
    return int(n_bins)


def _correct(y, proba):
    """bool (n,): p_{i(s)} > max_{i != i(s)} p_i, i.e. no other class is as likely."""
    return _rank(y, proba) == 0


def _rank(y, proba):
    """int (n,): number of classes i != i(s) with p_i >= p_{i(s)}."""
    # counted over the rows of proba's transpose, K vectorised comparisons of length n,
    # rather than over n rows of K (NumPy is slow on many short rows): the same integers
    return np.count_nonzero(np.ascontiguousarray(proba.T) >= _take(proba, y), axis=0) - 1


def _take(a, y):
    return np.take_along_axis(a, y[:, None], axis=1)[:, 0]


def _check(y, scores, name="proba"):
    scores = _check_scores(scores, name)
    return _check_labels(y, scores.shape[0], scores.shape[1], "y"), scores


def _check_scores(scores, name):
    scores = np.asarray(scores)
    if scores.dtype == bool or not (np.issubdtype(scores.dtype, np.floating)
                                    or np.issubdtype(scores.dtype, np.integer)):
        raise TypeError(f"{name} must be a real-valued array, got dtype {scores.dtype}")
    if scores.ndim != 2:
        raise ValueError(f"{name} must have shape (n, K), got {scores.shape}")
    if scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {scores.shape}): a measure of n = 0 "
                         "objects is undefined")
    return _check_finite(scores, name)


def _check_finite(values, name):
    if np.issubdtype(values.dtype, np.floating) and not np.all(np.isfinite(values)):
        rows = np.flatnonzero(~np.isfinite(values).reshape(len(values), -1).all(axis=1))
        raise ValueError(f"{name} holds NaN or inf (rows {rows[:10].tolist()}"
                         f"{' ...' if len(rows) > 10 else ''})")
    return values


def _check_labels(y, n, num_classes, name):
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer) or y.dtype == bool:
        raise TypeError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the scores, got {y.shape}")
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"{name} holds labels {y.min()}..{y.max()}, outside "
                         f"0..{num_classes - 1}")
    return y.astype(np.intp, copy=False)
