"""Measures of performance of Sec. 3.1 on a whole data set (the training set TR or
the test set T), from the test-time probabilities of the loss (Sec. 3.2: scale R1).

The correct class is used only after the probabilities are computed.
"""

import numpy as np

from .. import datasets, metrics, temperature

AT_GRID = np.round(np.linspace(0.0, 0.05, 11), 6)
"""Close-enough thresholds `at` (Fig. 2, 7: the paper looks at 0 < at < 0.05)."""

ETA_GRID = np.array([0.0, 0.001, 0.01, 0.1, 1.0, 10.0, 100.0])
"""Thresholds for #W_{eta,I} as a function of eta (Sec. 2.2); W_{0,I} / #I is Eq. (11)."""

MAX_TOP_K = 20


def top_k_values(num_classes):
    """k = 1..min(K, 20) for the top-k curves (Fig. 3)."""
    return np.arange(1, min(num_classes, MAX_TOP_K) + 1)


def to_inputs(dataset, index, dtype, standardize):
    """Images dataset.images[index] -> float inputs (B, C, H, W) of `dtype`.

    Pixels are divided by dataset.max_value (255, or 16 for digits) and, with
    standardize=(mean, std), standardised per channel.
    """
    stats = None
    if standardize is not None:
        stats = (np.asarray(standardize[0]), np.asarray(standardize[1]))
    if isinstance(index, np.ndarray) and index.dtype.kind in "iu":
        # the rows images[index] would copy, about a third faster for a batch
        images = np.take(dataset.images, index, axis=0)
    else:
        images = dataset.images[index]
    return datasets.to_float(images, dtype, dataset.max_value, stats)


HOLD_BYTES = 64 * 2**20
"""The most memory held_inputs spends on a data set converted to floats (64 MiB)."""


def held_inputs(dataset, dtype, standardize, budget=None):
    """The whole of `dataset` as float inputs, to_inputs(dataset, slice(None), ...), for
    a data set evaluated many times, when they take at most `budget` bytes; else None,
    and each evaluation converts chunk by chunk (the same numbers either way).

    MNIST's test set is 31 MB in float32 and a run evaluates it eleven times, a
    conversion each; CIFAR-10's would be 123 MB, for a few ms per evaluation of a
    run that takes hours. budget: bytes, default HOLD_BYTES.
    """
    budget = HOLD_BYTES if budget is None else budget
    n_bytes = dataset.images.size * np.dtype(dtype).itemsize
    return to_inputs(dataset, slice(None), dtype, standardize) if n_bytes <= budget else None


def predict(model, loss, dataset, dtype, standardize, chunk=500, logits=False, inputs=None):
    """Test-time probabilities of every object of `dataset`, chunk by chunk.

    inputs: to_inputs(dataset, slice(None), dtype, standardize), float (n, C, H, W), when
        the caller converts the set once for several evaluations (the chunks are then
        views of it, the same numbers); None converts chunk by chunk.
    Returns proba (n, K) of `dtype` and, with logits=True, also the raw logits
    X (n, K) (for the confidence dX of Sec. 2.2).
    """
    n = len(dataset.labels)
    proba = None
    raw = None
    # what depends only on alpha (R(alpha), the test-time scale) once, not per chunk
    predict_chunk = loss.predictor(model, logits=logits)
    for start in range(0, n, chunk):
        index = slice(start, min(n, start + chunk))
        x = to_inputs(dataset, index, dtype, standardize) if inputs is None else inputs[index]
        if logits:  # one forward pass gives both for most losses
            p, X = predict_chunk(x)
        else:
            p, X = predict_chunk(x), None
        if proba is None:
            proba = np.empty((n, p.shape[1]), dtype=p.dtype)
            raw = None if X is None else np.empty((n, X.shape[1]), dtype=X.dtype)
        proba[index] = p
        if X is not None:
            raw[index] = X
    return (proba, raw) if logits else proba


def quick_measures(model, loss, dataset, dtype, standardize, chunk=500, inputs=None):
    """The interval test evaluation on `dataset`: {"test_acc": accuracy Eq. (11),
    "test_loss": mean cross-entropy, "test_ece", "test_mce": calibration errors}, all
    NaN when the probabilities are not finite (a diverged run, docs/decisions.md#D17).
    inputs: as in predict."""
    proba = predict(model, loss, dataset, dtype, standardize, chunk, inputs=inputs)
    if not np.all(np.isfinite(proba)):
        return dict.fromkeys(("test_acc", "test_loss", "test_ece", "test_mce"), np.nan)
    calib = metrics.calibration(dataset.labels, proba)
    return {"test_acc": float(metrics.accuracy(dataset.labels, proba)),
            "test_loss": metrics.mean_nll(dataset.labels, proba),
            "test_ece": calib["ece"], "test_mce": calib["mce"]}


def temperature_measures(labels, proba):
    """The temperature baseline on a test set (minits.temperature.cross_fitted): {"temperature"
    (2,) = (T_A, T_B), "ece_temperature", "mce_temperature", "nll_temperature"}.
    labels: int (n,); proba: (n, K). A test set of one object has no two halves: NaN."""
    if len(labels) < 2:
        return {"temperature": np.full(2, np.nan), "ece_temperature": np.nan,
                "mce_temperature": np.nan, "nll_temperature": np.nan}
    tempered, temperatures = temperature.cross_fitted(labels, proba)
    calib = metrics.calibration(labels, tempered)
    return {"temperature": np.asarray(temperatures), "ece_temperature": calib["ece"],
            "mce_temperature": calib["mce"], "nll_temperature": metrics.mean_nll(labels, tempered)}


def full_measures(model, loss, dataset, dtype, standardize, superclass=False, per_object=False,
                  chunk=500, inputs=None):
    """Every measure of Sec. 3.1 on the whole of `dataset`.

    Returns a dict of scalars and arrays:
      accuracy (Eq. (11)), balanced_accuracy, nll, topk (k = top_k_values(K)),
      close_enough (at = AT_GRID), W_fraction (#W_{eta,I}/#I for eta = ETA_GRID, raw dX),
      ece, mce and reliability_* (the bins of the reliability diagram), see calibration;
      with superclass: superclass_accuracy (Eq. (20)), superclass_close_enough;
      with per_object: p_max, p_correct (n,), delta_p (Eq. (19), misclassified objects
      only), pred, label, confidence dX (n,): the arrays behind the histograms of Figs. 4-6,
      and the temperature baseline (temperature_measures: temperature, ece_temperature,
      mce_temperature, nll_temperature).
    A diverged run (non-finite outputs) gets NaN measures rather than an error.
    inputs: as in predict.
    """
    if superclass and getattr(dataset, "coarse_labels", None) is None:
        raise ValueError(f"data set {dataset.name!r} has no coarse labels: "
                         "super-class measures (Eq. (20)) need them")
    y = dataset.labels
    # parameters gone wild overflow to inf (checked just below) rather than warn
    with np.errstate(over="ignore", invalid="ignore"):
        proba, X = predict(model, loss, dataset, dtype, standardize, chunk, logits=True,
                           inputs=inputs)
    ks = top_k_values(proba.shape[1])
    out = {"topk_k": ks, "close_enough_at": AT_GRID, "W_eta": ETA_GRID}
    if not (np.all(np.isfinite(proba)) and np.all(np.isfinite(X))):
        return _diverged(out, len(y), ks, superclass, per_object)
    dX = np.asarray(metrics.confidence(X, y))
    out.update({
        "accuracy": float(metrics.accuracy(y, proba)),
        "balanced_accuracy": float(metrics.balanced_accuracy(y, proba)),
        "nll": metrics.mean_nll(y, proba),
        # one call for all k / all thresholds: the same counts, one pass of the checks
        "topk": np.asarray(metrics.top_k_accuracy(y, proba, ks), dtype=float),
        "close_enough": np.asarray(metrics.close_enough_accuracy(y, proba, AT_GRID),
                                   dtype=float),
        "W_fraction": metrics.well_classified_count(dX, ETA_GRID) / len(y),
        **metrics.calibration(y, proba),
    })
    if superclass:
        yc = dataset.coarse_labels
        f2c = np.asarray(dataset.fine_to_coarse)
        coarse = metrics.coarse_probabilities(proba, f2c, len(dataset.coarse_names))
        out["superclass_accuracy"] = float(metrics.superclass_accuracy(yc, proba, f2c))
        out["superclass_close_enough"] = np.asarray(
            metrics.close_enough_accuracy(yc, coarse, AT_GRID), dtype=float)
    if per_object:
        out.update(_per_object(y, proba, dX), **temperature_measures(y, proba))
    return out


def _per_object(y, proba, dX):
    """The per-object arrays behind the histograms of Figs. 4-6 (see full_measures)."""
    with np.errstate(over="ignore"):  # beyond float32's range (a run gone wild): +-inf
        confidence = dX.astype(np.float32)
    return {"p_max": proba.max(axis=1).astype(np.float32),
            "p_correct": proba[np.arange(len(y)), y].astype(np.float32),
            "delta_p": np.asarray(metrics.delta_p(y, proba)).astype(np.float32),
            "pred": proba.argmax(axis=1).astype(np.int16),
            "label": np.asarray(y).astype(np.int16), "confidence": confidence}


def diverged_measures(dataset, superclass=False, per_object=False):
    """The measures full_measures gives a run whose parameters are no longer finite, without
    running the model: NaN everywhere (docs/decisions.md#D17), the same keys and shapes."""
    ks = top_k_values(dataset.num_classes)
    out = {"topk_k": ks, "close_enough_at": AT_GRID, "W_eta": ETA_GRID}
    return _diverged(out, len(dataset.labels), ks, superclass, per_object)


def _diverged(out, n, ks, superclass, per_object):
    """The measures of a run whose outputs are not finite: NaN everywhere (same keys)."""
    nan = np.nan
    bins = metrics.CALIBRATION_BINS
    out.update(accuracy=nan, balanced_accuracy=nan, nll=nan, topk=np.full(len(ks), nan),
               close_enough=np.full(len(AT_GRID), nan), W_fraction=np.full(len(ETA_GRID), nan),
               ece=nan, mce=nan, reliability_confidence=np.full(bins, nan),
               reliability_accuracy=np.full(bins, nan),
               reliability_count=np.zeros(bins, np.int64))
    if superclass:
        out.update(superclass_accuracy=nan, superclass_close_enough=np.full(len(AT_GRID), nan))
    if per_object:
        out.update(p_max=np.full(n, nan, np.float32), p_correct=np.full(n, nan, np.float32),
                   delta_p=np.zeros(0, np.float32), pred=np.full(n, -1, np.int16),
                   label=np.full(n, -1, np.int16), confidence=np.full(n, nan, np.float32),
                   temperature=np.full(2, nan), ece_temperature=nan, mce_temperature=nan,
                   nll_temperature=nan)
    return out
