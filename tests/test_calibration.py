"""Calibration measures (ECE, MCE, reliability, and metrics.calibration, which gives them
from one binning) against a plain loop over objects and bins that restates Guo et al.'s
definitions, and against torchmetrics' binning rule (torch.bucketize) where torch is
installed."""

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from minits import metrics


def loop_reliability(y, proba, n_bins):
    """Bin by bin, object by object: I_m = (m/M, (m+1)/M], c = 0 in the first bin."""
    members = [[] for _ in range(n_bins)]
    for s in range(len(y)):
        row = [float(v) for v in proba[s]]
        c = max(row)
        pred = row.index(c)  # the first maximum: argmax
        m = 0
        while m < n_bins - 1 and not c <= (m + 1) / n_bins:
            m += 1
        members[m].append((c, 1.0 if pred == y[s] else 0.0))
    return members


def loop_errors(y, proba, n_bins):
    """(ECE, l2, MCE) from loop_reliability, sums in Python floats."""
    n = len(y)
    l1 = l2 = top = 0.0
    for bin_ in loop_reliability(y, proba, n_bins):
        if not bin_:
            continue
        conf = sum(c for c, _ in bin_) / len(bin_)
        acc = sum(a for _, a in bin_) / len(bin_)
        gap = abs(acc - conf)
        l1 += len(bin_) / n * gap
        l2 += len(bin_) / n * gap * gap
        top = max(top, gap)
    return l1, math.sqrt(l2), top


@st.composite
def cases(draw):
    """(y, proba float64, n_bins): softmax of Gaussian logits of several spreads (peaked
    rows fill the upper bins, flat rows the lower ones, so some bins are empty)."""
    n = draw(st.integers(1, 60))
    k = draw(st.sampled_from([2, 3, 10, 100]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    logits = rng.normal(size=(n, k)) * draw(st.sampled_from([0.1, 1.0, 4.0, 20.0]))
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    n_bins = draw(st.sampled_from([1, 2, 5, 15, 40]))
    return rng.integers(0, k, size=n), proba, n_bins


@given(cases())
def test_errors_equal_a_plain_loop(case):
    y, proba, n_bins = case
    l1, l2, top = loop_errors(y, proba, n_bins)
    assert metrics.expected_calibration_error(y, proba, n_bins) == pytest.approx(l1, abs=1e-12)
    assert metrics.expected_calibration_error(y, proba, n_bins, "l2") == pytest.approx(
        l2, abs=1e-12)
    assert metrics.expected_calibration_error(y, proba, n_bins, "max") == pytest.approx(
        top, abs=1e-12)


@given(cases())
def test_reliability_equals_a_plain_loop(case):
    y, proba, n_bins = case
    bins = metrics.reliability(y, proba, n_bins)
    loop = loop_reliability(y, proba, n_bins)
    assert bins["count"].tolist() == [len(b) for b in loop]
    assert bins["count"].sum() == len(y)
    for m, members in enumerate(loop):
        if members:
            assert bins["confidence"][m] == pytest.approx(
                sum(c for c, _ in members) / len(members), abs=1e-12)
            assert bins["accuracy"][m] == pytest.approx(
                sum(a for _, a in members) / len(members), abs=1e-12)
        else:  # an empty bin has no mean
            assert math.isnan(bins["confidence"][m]) and math.isnan(bins["accuracy"][m])
    np.testing.assert_array_equal(bins["edges"], np.linspace(0, 1, n_bins + 1))


@given(cases())
def test_calibration_is_the_errors_and_the_bins_of_one_binning(case):
    """metrics.calibration: ECE ("l1" = sum_m n_m g_m / n, with the counts, not the
    weights n_m / n) and MCE of expected_calibration_error and the bins of reliability,
    bit for bit (the runs record it: training.evaluate)."""
    y, proba, n_bins = case
    calib = metrics.calibration(y, proba, n_bins)
    assert sorted(calib) == ["ece", "mce", "reliability_accuracy", "reliability_confidence",
                             "reliability_count"]
    bins = metrics.reliability(y, proba, n_bins)
    for name in ("confidence", "accuracy", "count"):
        np.testing.assert_array_equal(calib[f"reliability_{name}"], bins[name])
    assert calib["reliability_count"].dtype == np.int64
    full = bins["count"] > 0
    gap = np.abs(bins["accuracy"][full] - bins["confidence"][full])
    ece = metrics.expected_calibration_error(y, proba, n_bins)
    assert ece == float(np.sum(bins["count"][full] * gap) / len(y))
    assert calib["ece"] == ece and isinstance(calib["ece"], float)
    assert calib["mce"] == metrics.expected_calibration_error(y, proba, n_bins, "max")
    assert calib["ece"] == pytest.approx(loop_errors(y, proba, n_bins)[0], abs=1e-12)


def test_calibration_has_the_bins_of_the_runs_by_default():
    rng = np.random.default_rng(5)
    proba = rng.dirichlet(np.ones(4), size=30)
    y = rng.integers(0, 4, size=30)
    calib = metrics.calibration(y, proba)
    assert calib["reliability_count"].shape == (metrics.CALIBRATION_BINS,) == (15,)
    assert calib["ece"] == metrics.expected_calibration_error(y, proba)
    with pytest.raises(ValueError, match="n_bins"):
        metrics.calibration(y, proba, 0)
    with pytest.raises(ValueError, match="NaN"):
        metrics.calibration(y, np.full((30, 4), np.nan))


def torchmetrics_rule(y, proba, n_bins, norm):
    """torchmetrics' _binning_bucketize and _ce_compute restated with torch: bins
    [lo, hi) by bucketize(right=True) - 1, a confidence of exactly 1 in a bin of its own."""
    torch = pytest.importorskip("torch")
    p = torch.tensor(proba)
    conf, pred = p.max(dim=1)
    acc = (pred == torch.tensor(y)).to(p.dtype)
    edges = torch.linspace(0, 1, n_bins + 1, dtype=p.dtype)
    index = torch.bucketize(conf, edges, right=True) - 1
    count = torch.zeros(n_bins + 1, dtype=p.dtype).scatter_add_(0, index, torch.ones_like(conf))
    conf_bin = torch.nan_to_num(torch.zeros_like(count).scatter_add_(0, index, conf) / count)
    acc_bin = torch.nan_to_num(torch.zeros_like(count).scatter_add_(0, index, acc) / count)
    gap, weight = (acc_bin - conf_bin).abs(), count / count.sum()
    if norm == "l1":
        return float((gap * weight).sum())
    if norm == "l2":
        return float(((gap**2) * weight).sum().sqrt())
    return float(gap.max())


@given(cases(), st.sampled_from(metrics.CALIBRATION_NORMS))
def test_errors_equal_torchmetrics_off_the_edges(case, norm):
    y, proba, n_bins = case
    c = proba.max(axis=1)
    on_edge = np.isclose(c[:, None] * n_bins, np.arange(n_bins + 1), rtol=0, atol=1e-9)
    assume(not on_edge.any())  # the two rules differ only there: tested below
    ours = metrics.expected_calibration_error(y, proba, n_bins, norm)
    assert ours == pytest.approx(torchmetrics_rule(y, proba, n_bins, norm), abs=1e-12)


def test_a_confidence_on_an_edge_goes_to_the_lower_bin():
    # c = 0.5 with 2 bins: (0, 0.5] here (Guo et al.), [0.5, 1) in torchmetrics
    proba = np.array([[0.5, 0.5], [0.5, 0.5], [0.75, 0.25], [1.0, 0.0]])
    y = np.array([0, 1, 0, 1])
    bins = metrics.reliability(y, proba, 2)
    assert bins["count"].tolist() == [2, 2]
    np.testing.assert_allclose(bins["confidence"], [0.5, 0.875], rtol=0, atol=1e-15)
    np.testing.assert_allclose(bins["accuracy"], [0.5, 0.5], rtol=0, atol=1e-15)
    # ECE = 0.5 * 0 + 0.5 * 0.375; MCE = 0.375
    assert metrics.expected_calibration_error(y, proba, 2) == pytest.approx(0.1875, abs=1e-15)
    assert metrics.expected_calibration_error(y, proba, 2, "max") == pytest.approx(0.375,
                                                                                   abs=1e-15)


def test_one_bin_is_the_gap_between_mean_confidence_and_accuracy():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(200, 5)) * 3
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = rng.integers(0, 5, size=200)
    expected = abs(np.mean(proba.argmax(axis=1) == y) - proba.max(axis=1).mean())
    for norm in metrics.CALIBRATION_NORMS:  # one bin: all three norms are the one gap
        assert metrics.expected_calibration_error(y, proba, 1, norm) == pytest.approx(
            expected, abs=1e-12)


def test_perfect_and_worst_calibration():
    # always right with confidence 1: ECE 0; always wrong with confidence 1: ECE 1
    proba = np.eye(4)[[0, 1, 2, 3, 0]]
    assert metrics.expected_calibration_error(np.array([0, 1, 2, 3, 0]), proba) == 0.0
    assert metrics.expected_calibration_error(np.array([1, 2, 3, 0, 1]), proba) == 1.0


def test_float32_input_gives_the_float64_result_of_its_values():
    y, proba, n_bins = np.array([0, 1, 1]), np.array([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]]), 5
    p32 = proba.astype(np.float32)
    assert metrics.expected_calibration_error(y, p32, n_bins) == pytest.approx(
        loop_errors(y, p32.astype(np.float64), n_bins)[0], abs=1e-12)
    assert metrics.reliability(y, p32, n_bins)["confidence"].dtype == np.float64


@pytest.mark.parametrize("kwargs, error, words", [
    ({"n_bins": 0}, ValueError, "n_bins"),
    ({"n_bins": 2.5}, ValueError, "n_bins"),
    ({"n_bins": True}, ValueError, "n_bins"),
    ({"norm": "l3"}, ValueError, "norm"),
])
def test_bad_arguments_are_refused(kwargs, error, words):
    with pytest.raises(error, match=words):
        metrics.expected_calibration_error(np.array([0]), np.array([[0.6, 0.4]]), **kwargs)


@pytest.mark.parametrize("y, proba, error, words", [
    (np.array([0]), np.array([[1.2, -0.2]]), ValueError, "in \\[0, 1\\]"),
    (np.array([0]), np.array([[np.nan, 0.5]]), ValueError, "NaN"),
    (np.array([2]), np.array([[0.5, 0.5]]), ValueError, "labels"),
    (np.array([0.0]), np.array([[0.5, 0.5]]), TypeError, "integer"),
    (np.array([0, 1]), np.array([[0.5, 0.5]]), ValueError, "shape"),
    (np.zeros(0, int), np.zeros((0, 2)), ValueError, "empty"),
    (np.array([0]), np.array([0.5, 0.5]), ValueError, "shape"),
])
def test_bad_inputs_are_refused(y, proba, error, words):
    with pytest.raises(error, match=words):
        metrics.reliability(y, proba)
    with pytest.raises(error, match=words):
        metrics.expected_calibration_error(y, proba)
