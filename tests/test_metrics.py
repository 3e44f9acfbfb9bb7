"""Measures of performance (Sec. 3.1), the cross-entropy of given probabilities
(metrics.mean_nll) and the super-class probabilities (metrics.coarse_probabilities)
against scikit-learn and against plain loops that restate each definition object by
object; #W_eta (metrics.well_classified_count) against the membership of W_eta
(scale.well_classified)."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import minits as mt
from minits import metrics, scale

# ----------------------------------------------------------------------------- strategies


@st.composite
def tie_free(draw, min_classes=3):
    """(y, proba) with distinct probabilities in every row (no ties: sklearn's rules apply)."""
    n = draw(st.integers(1, 40))
    k = draw(st.integers(min_classes, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    logits = rng.normal(size=(n, k)) * draw(st.sampled_from([0.1, 1.0, 5.0]))
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    for row in proba:
        assert len(np.unique(row)) == k
    return rng.integers(0, k, size=n), proba


@st.composite
def with_ties(draw, min_classes=1, grid=4):
    """(y, proba) with values on a coarse grid: many ties, exact comparisons."""
    n = draw(st.integers(1, 25))
    k = draw(st.integers(min_classes, 7))
    proba = draw(arrays(np.float64, (n, k), elements=st.integers(0, grid).map(lambda v: v / grid)))
    y = draw(arrays(np.int64, n, elements=st.integers(0, k - 1)))
    return y, proba


# ----------------------------------------------------------------------------- loops


def loop_correct(y, p):
    """Eq. (11): s is correct when its class beats every other class strictly."""
    return [all(p[s][y[s]] > p[s][i] for i in range(len(p[s])) if i != y[s])
            for s in range(len(y))]


def loop_top_k(y, p, k):
    hits = 0
    for s in range(len(y)):
        ahead = sum(1 for i in range(len(p[s])) if i != y[s] and p[s][i] >= p[s][y[s]])
        hits += ahead < k
    return hits / len(y)


def loop_close_enough(y, p, at):
    return sum(float(p[s][y[s]]) >= max(float(v) for v in p[s]) - at
               for s in range(len(y))) / len(y)


def loop_balanced(y, p):
    correct = loop_correct(y, p)
    rates = []
    for c in sorted(set(y.tolist())):
        members = [s for s in range(len(y)) if y[s] == c]
        rates.append(sum(correct[s] for s in members) / len(members))
    return sum(rates) / len(rates)


def loop_superclass(y_coarse, p, f2c):
    """Eq. (20): every class attaining max_i p_i is in the super-class of s."""
    hits = 0
    for s in range(len(y_coarse)):
        top = max(p[s])
        hits += all(f2c[i] == y_coarse[s] for i in range(len(p[s])) if p[s][i] == top)
    return hits / len(y_coarse)


def loop_confidence(x, y):
    return [x[s][y[s]] - max(x[s][i] for i in range(len(x[s])) if i != y[s])
            for s in range(len(y))]


def loop_delta_p(y, p):
    correct = loop_correct(y, p)
    return [p[s][y[s]] - max(p[s]) for s in range(len(y)) if not correct[s]]


def loop_mean_nll(y, p):
    """Eq. (5) with Eq. (4): the mean of -log p_{i(s)}, 0 read as float64's smallest normal."""
    tiny = float(np.finfo(np.float64).tiny)
    return sum(-math.log(max(float(p[s][y[s]]), tiny)) for s in range(len(y))) / len(y)


def loop_coarse(p, f2c, num_coarse):
    """Each super-class's probability: the sum of its fine classes' (-1: in none)."""
    return [[sum(p[s][i] for i in range(len(f2c)) if f2c[i] == c) for c in range(num_coarse)]
            for s in range(len(p))]


def loop_histogram(values, edges):
    counts = [0] * (len(edges) - 1)
    for v in values:
        for j in range(len(counts)):
            last = j == len(counts) - 1
            if edges[j] <= v < edges[j + 1] or (last and v == edges[-1]):
                counts[j] += 1
                break
    return counts


# ----------------------------------------------------------------------------- sklearn


sklearn_metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is the oracle")


@given(tie_free())
def test_accuracy_matches_sklearn(data):
    y, proba = data
    assert metrics.accuracy(y, proba) == pytest.approx(
        sklearn_metrics.accuracy_score(y, proba.argmax(axis=1)), abs=1e-15)


@given(tie_free(), st.integers(1, 14))
def test_top_k_matches_sklearn(data, k):
    y, proba = data
    K = proba.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # sklearn warns when k >= K
        expected = sklearn_metrics.top_k_accuracy_score(y, proba, k=k, labels=np.arange(K))
    assert metrics.top_k_accuracy(y, proba, k) == pytest.approx(expected, abs=1e-15)


@given(tie_free(min_classes=2))
def test_balanced_accuracy_matches_sklearn(data):
    y, proba = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # "y_pred contains classes not in y_true"
        expected = sklearn_metrics.balanced_accuracy_score(y, proba.argmax(axis=1))
    assert metrics.balanced_accuracy(y, proba) == pytest.approx(expected, abs=1e-12)


@given(tie_free(min_classes=2))
def test_mean_nll_matches_sklearn(data):
    y, proba = data
    K = proba.shape[1]
    assume(proba[np.arange(len(y)), y].min() > 1e-12)  # sklearn clips below its eps
    expected = sklearn_metrics.log_loss(y, proba, labels=np.arange(K))
    assert metrics.mean_nll(y, proba) == pytest.approx(expected, rel=1e-12, abs=1e-12)


# ----------------------------------------------------------------------------- loops


@given(with_ties())
def test_accuracy_and_balanced_match_loops(data):
    y, proba = data
    assert metrics.accuracy(y, proba) == pytest.approx(np.mean(loop_correct(y, proba)))
    assert metrics.balanced_accuracy(y, proba) == pytest.approx(loop_balanced(y, proba))


@given(with_ties(), st.lists(st.integers(1, 9), min_size=1, max_size=4))
def test_top_k_matches_loop(data, ks):
    y, proba = data
    got = metrics.top_k_accuracy(y, proba, ks)
    assert got.shape == (len(ks),) and got.dtype == np.float64
    for k, value in zip(ks, got, strict=True):
        assert value == pytest.approx(loop_top_k(y, proba, k))
        assert metrics.top_k_accuracy(y, proba, k) == value
    assert metrics.top_k_accuracy(y, proba, 1) == metrics.accuracy(y, proba)


@given(with_ties(), st.lists(st.floats(0, 1.5), min_size=1, max_size=5))
def test_close_enough_matches_loop(data, ats):
    y, proba = data
    got = metrics.close_enough_accuracy(y, proba, ats)
    assert got.shape == (len(ats),)
    for at, value in zip(ats, got, strict=True):
        assert value == pytest.approx(loop_close_enough(y, proba, at))
        assert metrics.close_enough_accuracy(y, proba, at) == value
    assert metrics.close_enough_accuracy(y, proba, 0.0) >= metrics.accuracy(y, proba)
    assert metrics.close_enough_accuracy(y, proba, 1.0) == 1.0


@given(with_ties(min_classes=2), st.integers(0, 2**32 - 1))
def test_superclass_matches_loop(data, seed):
    y, proba = data
    K = proba.shape[1]
    f2c = np.random.default_rng(seed).integers(0, max(1, K // 2), size=K)
    f2c[: f2c.max() + 1] = np.arange(f2c.max() + 1)     # every super-class has a fine class
    y_coarse = f2c[y]
    assert metrics.superclass_accuracy(y_coarse, proba, f2c) == pytest.approx(
        loop_superclass(y_coarse, proba, f2c))
    # -1 (unknown super-class) behaves like a super-class of its own that nobody has.
    unknown = f2c.copy()
    unknown[-1] = -1
    if np.isin(y_coarse, unknown).all():
        own = np.where(unknown == -1, f2c.max() + 1, unknown)
        assert metrics.superclass_accuracy(y_coarse, proba, unknown) == pytest.approx(
            loop_superclass(y_coarse, proba, own))
    # With one super-class per fine class it is plain accuracy.
    assert metrics.superclass_accuracy(y, proba, np.arange(K)) == metrics.accuracy(y, proba)


@given(with_ties(min_classes=2, grid=6), st.sampled_from([np.float32, np.float64]))
def test_confidence_matches_loop(data, dtype):
    y, x = data
    x = (x * 6 - 3).astype(dtype)                        # logits with ties, both signs
    dx = metrics.confidence(x, y)
    assert dx.dtype == dtype and dx.shape == y.shape
    np.testing.assert_array_equal(dx, np.array(loop_confidence(x, y), dtype=dtype))
    np.testing.assert_array_equal(dx > 0, loop_correct(y, x))   # dX > 0 <=> correct


@given(with_ties(), st.sampled_from([np.float32, np.float64]))
def test_delta_p_matches_loop(data, dtype):
    y, proba = data
    proba = proba.astype(dtype)
    dp = metrics.delta_p(y, proba)
    assert dp.dtype == dtype
    np.testing.assert_array_equal(dp, np.array(loop_delta_p(y, proba), dtype=dtype))
    assert np.all(dp <= 0)
    every = metrics.delta_p(y, proba, misclassified_only=False)
    assert every.shape == y.shape
    np.testing.assert_array_equal(every[~np.array(loop_correct(y, proba))], dp)


@given(with_ties(min_classes=2, grid=8),
       st.lists(st.floats(-2, 2, allow_nan=False), min_size=1, max_size=6))
def test_well_classified_count_matches_loop(data, etas):
    y, x = data
    x = x * 4 - 2
    dx = loop_confidence(x, y)
    got = metrics.well_classified_count(metrics.confidence(x, y), etas)
    assert got.dtype == np.int64 and got.shape == (len(etas),)
    for eta, value in zip(etas, got, strict=True):
        assert value == sum(1 for d in dx if d > eta)                 # strict, W_{eta,T}
        assert metrics.well_classified_count(x, eta, y=y) == value
    # Eq. (11): accuracy = #W_{0,T} / #T.
    assert metrics.well_classified_count(x, 0.0, y=y) / len(y) == metrics.accuracy(y, x)


@given(with_ties(min_classes=2), st.floats(-1, 1, allow_nan=False),
       st.lists(st.floats(-1.5, 1.5, allow_nan=False), min_size=1, max_size=4))
def test_well_classified_count_is_the_size_of_W_eta(data, eta, etas):
    """#W_eta = the number of members of W_eta (scale.well_classified), one threshold or
    an array of them (the counts in its shape)."""
    y, x = data
    delta = scale.confidence(x * 2 - 1, y)
    count = metrics.well_classified_count(delta, eta)
    assert isinstance(count, int)
    assert count == np.count_nonzero(scale.well_classified(delta, eta))
    grid = np.array(etas).reshape(-1, 1)
    counts = metrics.well_classified_count(delta, grid)
    assert counts.shape == grid.shape and counts.dtype == np.int64
    for e, c in zip(grid.ravel(), counts.ravel(), strict=True):
        assert c == np.count_nonzero(scale.well_classified(delta, e))


def test_well_classified_count_is_strict():
    """W_eta: delta > eta (docs/decisions.md#D15), an object at eta is not in it."""
    delta = np.array([-1.0, 0.0, 0.1, 0.2, 5.0])
    np.testing.assert_array_equal(scale.well_classified(delta, 0.1),
                                  [False, False, False, True, True])
    assert metrics.well_classified_count(delta, 0.1) == 2
    assert metrics.well_classified_count(delta, 0) == 3
    assert metrics.well_classified_count(delta, [0.0, 0.1, 5.0]).tolist() == [3, 2, 0]


@given(with_ties(), st.sampled_from([np.float32, np.float64]))
def test_mean_nll_matches_loop(data, dtype):
    y, proba = data
    proba = proba.astype(dtype)
    got = metrics.mean_nll(y, proba)
    assert isinstance(got, float)
    assert got == pytest.approx(loop_mean_nll(y, proba), rel=1e-12)
    # a probability of 0 (an underflow) costs -log of float64's smallest normal, not inf
    assert math.isfinite(got) and got >= 0


def test_mean_nll_of_an_underflow_is_finite():
    proba = np.array([[1.0, 0.0], [0.5, 0.5]])
    expected = (-math.log(np.finfo(np.float64).tiny) + math.log(2)) / 2
    assert metrics.mean_nll(np.array([1, 0]), proba) == pytest.approx(expected, rel=1e-15)
    assert metrics.mean_nll(np.array([0, 0]), proba) == pytest.approx(math.log(2) / 2)


@given(with_ties(min_classes=2), st.integers(0, 2**32 - 1),
       st.sampled_from([np.float32, np.float64]))
def test_coarse_probabilities_match_loop(data, seed, dtype):
    y, proba = data
    K = proba.shape[1]
    rng = np.random.default_rng(seed)
    num_coarse = int(rng.integers(1, K + 1))
    f2c = rng.integers(-1, num_coarse, size=K)  # -1: a fine class of no known super-class
    proba = proba.astype(dtype)
    coarse = metrics.coarse_probabilities(proba, f2c, num_coarse)
    assert coarse.dtype == dtype and coarse.shape == (len(y), num_coarse)
    # values on a grid of quarters: every sum is exact, in any order
    np.testing.assert_array_equal(coarse, np.array(loop_coarse(proba, f2c, num_coarse),
                                                   dtype=dtype).reshape(len(y), num_coarse))
    known = f2c >= 0
    np.testing.assert_array_equal(coarse.sum(axis=1), proba[:, known].sum(axis=1))


@given(with_ties(grid=10), st.integers(1, 12))
def test_histograms_match_loop(data, bins):
    y, proba = data
    hist = metrics.probability_histograms(y, proba, bins)
    assert set(hist) == {"max_p", "p_true", "delta_p"}
    values = {
        "max_p": [max(row) for row in proba],
        "p_true": [proba[s][y[s]] for s in range(len(y))],
        "delta_p": loop_delta_p(y, proba),
    }
    for name, (counts, edges) in hist.items():
        assert counts.dtype == np.int64 and counts.shape == (bins,) and edges.shape == (bins + 1,)
        assert counts.tolist() == loop_histogram(values[name], edges)
        assert counts.sum() == len(values[name])
    np.testing.assert_array_equal(hist["delta_p"][1], np.linspace(-1, 0, bins + 1))


# ----------------------------------------------------------------------------- cases


def test_ties_are_misses_and_uniform_network():
    """A network with equal outputs classifies nothing (np.argmax would say 1/K)."""
    proba = np.full((6, 3), 1 / 3)
    y = np.array([0, 0, 1, 2, 0, 1])
    assert metrics.accuracy(y, proba) == 0.0
    assert metrics.balanced_accuracy(y, proba) == 0.0
    assert metrics.top_k_accuracy(y, proba, [1, 2, 3]).tolist() == [0.0, 0.0, 1.0]
    assert metrics.close_enough_accuracy(y, proba, 0.0) == 1.0     # the paper's >=
    np.testing.assert_array_equal(metrics.delta_p(y, proba), np.zeros(6))
    np.testing.assert_array_equal(metrics.confidence(np.zeros((6, 3)), y), np.zeros(6))
    assert metrics.well_classified_count(np.zeros((6, 3)), 0.0, y=y) == 0


def test_worked_example_from_the_paper():
    """Sec. 3.1: correct class 2 with (0.9, 0.1, 0, ...) vs (0.51, 0.49, 0, ...)."""
    proba = np.array([[0.9, 0.1, 0.0, 0.0], [0.51, 0.49, 0.0, 0.0]])
    y = np.array([1, 1])
    assert metrics.accuracy(y, proba) == 0.0
    assert metrics.top_k_accuracy(y, proba, 2) == 1.0                # cannot tell them apart
    assert metrics.close_enough_accuracy(y, proba, 0.05) == 0.5          # can
    np.testing.assert_allclose(metrics.delta_p(y, proba), [-0.8, -0.02])
    np.testing.assert_allclose(metrics.confidence(np.log(proba + 1e-300), y)[1],
                               np.log(0.49 / 0.51))


def test_scalar_and_array_returns():
    y, proba = np.array([0, 1]), np.array([[0.7, 0.3], [0.4, 0.6]])
    assert isinstance(metrics.accuracy(y, proba), float)
    assert isinstance(metrics.top_k_accuracy(y, proba, 1), float)
    assert isinstance(metrics.close_enough_accuracy(y, proba, 0.1), float)
    assert metrics.close_enough_accuracy(y, proba, np.array([[0.0, 0.5]])).shape == (1, 2)
    assert isinstance(metrics.well_classified_count(np.array([0.5, -1.0]), 0.0), int)
    assert mt.metrics.accuracy is metrics.accuracy


@pytest.mark.parametrize("call, error, words", [
    (lambda: metrics.accuracy([0, 1], np.ones((3, 2))), ValueError, r"shape \(3,\)"),
    (lambda: metrics.accuracy([0, 2], np.ones((2, 2))), ValueError, r"outside 0\.\.1"),
    (lambda: metrics.accuracy([0, -1], np.ones((2, 2))), ValueError, r"outside 0\.\.1"),
    (lambda: metrics.accuracy([0.0, 1.0], np.ones((2, 2))), TypeError, "integer class labels"),
    (lambda: metrics.accuracy([0, 1], [[np.nan, 1], [0, 1]]), ValueError, r"inf \(rows \[0\]"),
    (lambda: metrics.accuracy([0, 1], [[np.inf, 1], [0, 1]]), ValueError, "NaN or inf"),
    (lambda: metrics.accuracy([0, 1], np.ones(2)), ValueError, r"shape \(n, K\)"),
    (lambda: metrics.accuracy([], np.ones((0, 2))), ValueError, "empty"),
    (lambda: metrics.accuracy([0], np.ones((1, 2), bool)), TypeError, "real-valued"),
    (lambda: metrics.top_k_accuracy([0], np.ones((1, 2)), 0), ValueError, "k must be"),
    (lambda: metrics.top_k_accuracy([0], np.ones((1, 2)), 1.5), ValueError, "k must be"),
    (lambda: metrics.close_enough_accuracy([0], np.ones((1, 2)), -0.1), ValueError, ">= 0"),
    (lambda: metrics.close_enough_accuracy([0], np.ones((1, 2)), np.nan), ValueError, "finite"),
    (lambda: metrics.confidence(np.ones((2, 1)), [0, 0]), ValueError, "K >= 2"),
    (lambda: metrics.confidence(np.ones((2, 3)), [0, 3]), ValueError, "outside"),
    (lambda: metrics.superclass_accuracy([0], np.ones((1, 3)), [0, 1]), ValueError, "3 classes"),
    (lambda: metrics.superclass_accuracy([0], np.ones((1, 2)), [0, -2]), ValueError, ">= 0"),
    (lambda: metrics.superclass_accuracy([0], np.ones((1, 2)), [-1, -1]), ValueError, "all -1"),
    (lambda: metrics.superclass_accuracy([1], np.ones((1, 2)), [0, 2]), ValueError, "no fine"),
    (lambda: metrics.superclass_accuracy([0], np.ones((1, 2)), [0.0, 1.0]), TypeError, "integer"),
    (lambda: metrics.well_classified_count(np.ones((2, 3)), 0.0), ValueError, "pass y"),
    (lambda: metrics.well_classified_count(np.ones(2), 0.0, y=[0, 1]), ValueError, "only used"),
    (lambda: metrics.well_classified_count([np.nan, 1.0], 0.0), ValueError, "NaN"),
    (lambda: metrics.well_classified_count([1.0], np.nan), ValueError, "NaN"),
    (lambda: metrics.probability_histograms([0], np.ones((1, 2)), 0), ValueError, "bins"),
])
def test_bad_input_is_named(call, error, words):
    with pytest.raises(error, match=words):
        call()


def test_histograms_keep_rounding_overshoot():
    proba = np.array([[1.0 + 1e-7, 0.0]], dtype=np.float32)
    hist = metrics.probability_histograms([0], proba, bins=4)
    assert hist["max_p"][0].tolist() == [0, 0, 0, 1]
