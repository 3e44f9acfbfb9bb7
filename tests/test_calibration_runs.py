"""Calibration in the runs: the temperature baseline (minits.temperature), the ECE / MCE
of every evaluation and of the final measures (metrics.calibration), the summary's
columns, and results files written before calibration was measured (refused)."""

import csv
import io
import math
import re

import numpy as np
import pytest
from helpers import run_config, tiny_experiment
from hypothesis import given
from hypothesis import strategies as st

from minits import atomic, metrics, temperature
from minits.experiments import summary
from minits.experiments.sweep import run_experiment
from minits.scale import scale_R
from minits.training import evaluate, results, train
from minits.training.build import build_loss, build_model


def softmax_rows(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@st.composite
def logits_and_labels(draw):
    n = draw(st.integers(2, 50))
    k = draw(st.sampled_from([2, 3, 10]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = rng.normal(size=(n, k)) * draw(st.sampled_from([0.3, 2.0, 8.0]))
    return X, rng.integers(0, k, size=n)


# ----------------------------------------------------------------------------- temperature

@given(logits_and_labels())
def test_nll_is_the_cross_entropy_of_the_tempered_probabilities(case):
    X, y = case
    for T in (0.3, 1.0, 4.0):
        p = temperature.tempered(X, T)
        expected = np.mean([-math.log(p[s, y[s]]) for s in range(len(y))])
        assert temperature.nll(X, y, T) == pytest.approx(expected, rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(p, softmax_rows(X / T), rtol=1e-12, atol=1e-15)


@given(logits_and_labels())
def test_the_fitted_temperature_zeroes_the_derivative_of_the_nll(case):
    X, y = case
    T = temperature.fit_temperature(X, y)
    # d/d(1/T) of the mean NLL = mean_s (sum_i p_i X_i - X_{i(s)}): zero at an inner minimum
    p = temperature.tempered(X, T)
    slope = np.mean((p * X).sum(axis=1) - X[np.arange(len(y)), y])
    lo, hi = np.exp(temperature.LOG_T_BOUNDS)
    if lo * 1.01 < T < hi / 1.01:
        assert abs(slope) <= 1e-3 * (1 + np.abs(X).max())
    else:  # on a bound, the NLL decreases towards it
        assert (slope > 0) == (T > 1)
    for other in (T * 0.99, T * 1.01):
        if lo <= other <= hi:
            assert temperature.nll(X, y, T) <= temperature.nll(X, y, other) + 1e-12


def test_the_fitted_temperature_recovers_the_one_labels_were_drawn_with():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20000, 5)) * 3
    p = softmax_rows(X / 2.5)
    y = (p.cumsum(axis=1) < rng.random((20000, 1))).sum(axis=1)
    assert temperature.fit_temperature(X, y) == pytest.approx(2.5, rel=0.05)


def test_logits_from_probabilities_give_the_probabilities_back():
    X = np.random.default_rng(1).normal(size=(30, 4)) * 5
    p = softmax_rows(X)
    np.testing.assert_allclose(temperature.tempered(temperature.logits_from_proba(p), 1.0), p,
                               rtol=1e-12, atol=1e-300)
    zero = np.array([[1.0, 0.0]], dtype=np.float32)  # an underflow: the dtype's smallest
    assert temperature.logits_from_proba(zero)[0, 1] == pytest.approx(
        math.log(np.finfo(np.float32).tiny))


def test_cross_fitting_never_uses_an_objects_own_label():
    rng = np.random.default_rng(2)
    p = softmax_rows(rng.normal(size=(41, 3)) * 4)
    y = rng.integers(0, 3, size=41)
    base, (T_a, T_b) = temperature.cross_fitted(y, p)
    assert T_a > 0 and T_b > 0
    np.testing.assert_array_equal(base.argmax(axis=1), p.argmax(axis=1))  # T keeps argmax
    for s in (0, 17, 40):
        moved = y.copy()
        moved[s] = (y[s] + 1) % 3
        again, _ = temperature.cross_fitted(moved, p)
        np.testing.assert_array_equal(again[s], base[s])
    with pytest.raises(ValueError, match="at least 2"):
        temperature.cross_fitted(y[:1], p[:1])


# ----------------------------------------------------------------------------- runs

def test_calibration_of_an_evaluation_is_the_metrics(data, impl):
    train_set, test_set = data
    cfg = run_config(impl=impl.name)
    model = build_model(cfg, 3, (1, 4, 4))
    loss = build_loss(cfg, scale_R(model))
    proba = evaluate.predict(model, loss, test_set, np.float64, None)
    y = test_set.labels
    quick = evaluate.quick_measures(model, loss, test_set, np.float64, None)
    assert quick["test_ece"] == pytest.approx(metrics.expected_calibration_error(y, proba),
                                              abs=1e-15)
    assert quick["test_mce"] == pytest.approx(
        metrics.expected_calibration_error(y, proba, norm="max"), abs=1e-15)
    assert quick["test_loss"] == metrics.mean_nll(y, proba)
    full = evaluate.full_measures(model, loss, test_set, np.float64, None)
    calib = metrics.calibration(y, proba)
    assert set(calib) <= set(full)
    assert full["ece"] == calib["ece"] == quick["test_ece"]
    assert full["mce"] == calib["mce"] == quick["test_mce"]
    for name in ("reliability_confidence", "reliability_accuracy", "reliability_count"):
        np.testing.assert_array_equal(full[name], calib[name])


def test_every_evaluation_and_the_end_record_ece_and_mce(data):
    train_set, test_set = data
    result = train(run_config(), train_set, test_set)
    h, te = result.history, result.test
    for name in ("test_ece", "test_mce"):
        assert h[name].shape == h["eval_iteration"].shape and np.all(np.isfinite(h[name]))
        assert np.all((h[name] >= 0) & (h[name] <= 1))
    assert h["test_ece"][-1] == te["ece"] and h["test_mce"][-1] == te["mce"]
    assert np.all(h["test_ece"] <= h["test_mce"] + 1e-15)
    assert te["reliability_count"].sum() == len(test_set.labels)
    # the reliability bins come from the per-object arrays the histograms use
    correct = te["pred"] == te["label"]
    assert np.sum(te["reliability_count"] * np.nan_to_num(te["reliability_accuracy"])) == (
        pytest.approx(correct.sum()))
    assert te["temperature"].shape == (2,) and np.isfinite(te["ece_temperature"])


def test_summary_columns_and_the_temperature_line(tmp_path, tiny):
    table, _, _ = run_experiment(tiny_experiment(), str(tmp_path), show_progress=False)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "summary.csv").read_text())))
    for r, row in zip(rows, table.rows, strict=True):
        ece = [run.test["ece"] for run in table.groups[row.key]]
        assert float(r["test_ece_mean"]) == pytest.approx(np.mean(ece), rel=1e-5)
        assert float(r["test_ece_std"]) == pytest.approx(np.std(ece, ddof=1), rel=1e-5, abs=1e-9)
        mce = [run.test["mce"] for run in table.groups[row.key]]
        assert float(r["test_mce_mean"]) == pytest.approx(np.mean(mce), rel=1e-5)
        assert r["test_ece_temperature_mean"] != "" and float(r["temperature_mean"]) > 0
    text = summary.format_table(table)
    assert "ECE·T" in text and "calibration: traditional ECE" in text
    # the best eta leaves out eta = 1e6, the traditional loss on every seed
    best = summary.best_two_scale(table)
    assert best.eta == 0.01 and f"{best.label} (best test acc)" in text
    huge = next(r for r in table.rows if r.eta == 1e6)
    assert huge.identical == (2, 2) and summary.best_row([huge]) is huge
    assert summary.best_row([huge, best]) is best


def test_results_written_before_calibration_are_refused(tmp_path, tiny):
    """A results file of a run before calibration was measured (no ece, mce, reliability
    or temperature entries, and no "format": format 1) is refused, naming the file, by
    results.load and by a sweep that finds it in its folder."""
    exp = tiny_experiment(seeds=1, variants=(("one-scale", None),))
    run_experiment(exp, str(tmp_path), show_progress=False)
    path = tmp_path / "runs" / "one-scale" / "seed-000.npz"
    current = results.load(path)
    with np.load(path) as f:
        old = {k: f[k] for k in f.files if k != "format" and not any(
            w in k for w in ("ece", "mce", "reliability", "temperature"))}
    atomic.savez(str(path), compress=True, **old)
    with pytest.raises(ValueError, match=re.escape(f"{path} was written by another version")):
        results.load(path)
    with pytest.raises(ValueError, match=re.escape(f"{path} cannot be read")):
        run_experiment(exp, str(tmp_path), show_progress=False)
    assert current.test["ece"] >= 0  # what the file held before it was made old


# ----------------------------------------------------------------------------- figures

def test_reliability_figure_pools_the_seeds(tmp_path, tiny):
    from minits import plots

    table, _, _ = run_experiment(tiny_experiment(), str(tmp_path), show_progress=False)
    runs = table.groups["one-scale"]
    edges, conf, acc, count = plots.pooled_reliability(runs)
    assert count.sum() == sum(len(r.test["label"]) for r in runs)
    # pooled over seeds = the reliability of all the seeds' objects together
    correct = np.concatenate([r.test["pred"] == r.test["label"] for r in runs])
    assert np.nansum(acc * count) == pytest.approx(correct.sum())
    path = plots.reliability(table, str(tmp_path / "reliability.png"))
    assert (tmp_path / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path


def test_histograms_are_drawn_without_a_two_scale_run(tmp_path, tiny):
    from minits import plots

    exp = tiny_experiment(seeds=1, variants=(("one-scale", None), ("fixed", 0.01)))
    table, _, _ = run_experiment(exp, str(tmp_path), show_progress=False)
    written = plots.draw_all(table, str(tmp_path / "figures"))
    names = {p.rsplit("/", 1)[-1] for p in written}
    assert {"histograms.png", "reliability.png"} <= names


def test_a_test_set_of_one_object_has_no_temperature():
    out = evaluate.temperature_measures(np.array([1]), np.array([[0.3, 0.7]]))
    assert np.all(np.isnan(out["temperature"])) and math.isnan(out["ece_temperature"])
    two = evaluate.temperature_measures(np.array([1, 0]), np.array([[0.3, 0.7], [0.6, 0.4]]))
    assert np.all(np.isfinite(two["temperature"])) and np.isfinite(two["ece_temperature"])
