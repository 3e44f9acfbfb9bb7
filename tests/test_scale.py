"""Scale R, normalised parameters and logits, confidence and the well-classified set,
Eq. (7)-(11) (minits/scale.py), the layers of each implementation (the ``impl``
fixture) through them, and the cheaper ways minits.fast computes the same numbers
(bit for bit). The chain rule through alpha -> alpha_hat (docs/decisions.md#D7):
tests/test_normalization.py."""

import numpy as np
import pytest
from helpers import assert_params_identical, bits, make_model, snapshot
from hypothesis import assume, given
from hypothesis import strategies as st

import minits as mt
from minits.fast.normalization import product_of_roots
from minits.fast.objectives import row_max, row_sum, sum64
from minits.metrics import well_classified_count
from minits.scale import (
    at_normalized_params,
    confidence,
    confidence_terms,
    is_homogeneous,
    layer_norms,
    layer_sq_norms,
    normalization_factor,
    normalized_confidence,
    normalized_logits,
    normalized_params,
    scale_R,
    well_classified,
)

KINDS = st.sampled_from(["mlp", "lenet5"])
SEEDS = st.integers(0, 10_000)


@given(KINDS, SEEDS, st.booleans())
def test_scale_R_is_the_product_of_layer_norms(kind, seed, bias):
    model, _, _ = make_model(kind, seed, bias)
    norms = [np.sqrt(sum(float(np.sum(p.astype(np.float64) ** 2))
                         for p in layer.params.values()))
             for layer in model.linear_layers()]
    np.testing.assert_allclose(layer_norms(model), norms, rtol=1e-13)
    assert scale_R(model) == pytest.approx(np.prod(norms), rel=1e-13)
    assert isinstance(scale_R(model), float)
    assert mt.scale_R is scale_R


def test_scale_R_includes_the_bias():
    model = mt.Sequential(mt.Linear(2, 2, bias=True, dtype=np.float64))
    model.layers[0].params["W"][:] = [[3.0, 0.0], [0.0, 0.0]]
    model.layers[0].params["b"][:] = [4.0, 0.0]
    assert scale_R(model) == 5.0


@given(KINDS, SEEDS)
def test_normalised_logits_are_X_over_R_without_biases(impl, kind, seed):
    plain, x, y = make_model(kind, seed)
    model = impl(plain)
    X = model.forward(x)
    R = scale_R(model)
    X_hat = normalized_logits(model, x)
    delta_hat = normalized_confidence(model, x, y)
    np.testing.assert_allclose(X_hat, X / R, rtol=1e-12, atol=1e-14 * np.abs(X / R).max())
    np.testing.assert_allclose(delta_hat, confidence(X, y) / R, rtol=1e-10, atol=1e-13)


@given(KINDS, SEEDS)
def test_normalised_logits_with_biases_are_the_literal_forward_at_alpha_hat(impl, kind, seed):
    plain, x, _ = make_model(kind, seed, bias=True)
    n = len(plain.linear_layers())
    c = scale_R(plain) ** (-1.0 / n)
    twin, _, _ = make_model(kind, seed, bias=True)
    for layer, twin_layer in zip(plain.linear_layers(), twin.linear_layers(), strict=True):
        for name, p in layer.params.items():
            twin_layer.params[name][...] = p * c
    model, twin = impl(plain), impl(twin)
    X_hat = normalized_logits(model, x)
    np.testing.assert_array_equal(X_hat, twin.forward(x))
    # and the biases break Eq. (8): X_hat is no longer X / R
    assert not np.allclose(X_hat, model.forward(x) / scale_R(model))


@given(KINDS, SEEDS, st.booleans())
def test_at_normalized_params_yields_R_and_c_and_restores_alpha(kind, seed, bias):
    model, x, _ = make_model(kind, seed, bias)
    saved = snapshot(model)
    with at_normalized_params(model) as (R, c):
        scaled = snapshot(model)
    assert_params_identical(model, saved)
    assert R == scale_R(model) and c == normalization_factor(model)
    for a, b in zip(scaled, saved, strict=True):
        np.testing.assert_array_equal(a, b * c)
    with pytest.raises(ValueError):  # a failing block still restores alpha
        with at_normalized_params(model):
            model.forward(x[:, :-1] if kind == "mlp" else x[:, :, :-1, :-1])
    assert_params_identical(model, saved)


@given(KINDS, SEEDS, st.booleans())
def test_normalised_params_have_R_one_and_a_common_factor(kind, seed, bias):
    model, _, _ = make_model(kind, seed, bias)
    saved = snapshot(model)
    alpha_hat = normalized_params(model)
    c = normalization_factor(model)
    for layer, scaled in zip(model.linear_layers(), alpha_hat, strict=True):
        for name, p in layer.params.items():
            np.testing.assert_array_equal(scaled[name], p * c)
    assert np.prod([np.sqrt(sum(np.sum(a ** 2) for a in d.values())) for d in alpha_hat]) \
        == pytest.approx(1.0, rel=1e-12)
    assert_params_identical(model, saved)


@given(st.integers(1, 6), st.integers(2, 5), SEEDS)
def test_confidence_matches_its_definition(n, K, seed):
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((n, K)), rng.integers(0, K, size=n)
    expected = [X[s, y[s]] - max(X[s, i] for i in range(K) if i != y[s]) for s in range(n)]
    delta = confidence(X, y)
    np.testing.assert_array_equal(delta, expected)
    np.testing.assert_array_equal(delta > 0, np.argmax(X, axis=1) == y)  # Eq. (7)
    # Eq. (11): accuracy = #W_{0,T} / #T
    assert well_classified_count(delta, 0) / n == np.mean(np.argmax(X, axis=1) == y)


def test_confidence_keeps_dtype_and_checks_shapes():
    X = np.array([[1.0, 3.0, 2.0]], dtype=np.float32)
    assert confidence(X, np.array([1]))[0] == np.float32(1.0)
    assert confidence(X, np.array([1])).dtype == np.float32
    with pytest.raises(ValueError, match="K >= 2"):
        confidence(np.zeros((2, 1)), np.array([0, 0]))
    with pytest.raises(ValueError, match="y must have shape"):
        confidence(np.zeros((2, 3)), np.array([0]))


def test_well_classified_is_strict():
    delta = np.array([-1.0, 0.0, 0.1, 0.2, 5.0])
    np.testing.assert_array_equal(well_classified(delta, 0.1), [False, False, False, True, True])
    assert well_classified_count(delta, 0.1) == 2
    assert well_classified_count(delta, 0) == 3


def test_is_homogeneous():
    assert is_homogeneous(mt.models.mlp([4, 3, 2]))
    assert is_homogeneous(mt.models.lenet5(in_channels=1, input_size=16))
    assert not is_homogeneous(mt.models.mlp([4, 3, 2], bias=True))
    assert not is_homogeneous(mt.Sequential(mt.Linear(3, 2), mt.Softmax()))


@given(SEEDS, st.floats(0.1, 10))
def test_homogeneity_eq8(impl, seed, c):
    """X(c alpha) = c^{M-1} X(alpha) for the bias-free networks (Eq. (8))."""
    plain, x, _ = make_model("mlp", seed)
    assume(c != 1.0)
    model = impl(plain)
    X = model.forward(x)
    for layer in model.linear_layers():
        layer.params["W"] *= c
    np.testing.assert_allclose(model.forward(x), c ** 2 * X, rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- fast, same numbers
# The fast code computes these numbers in cheaper ways (the reductions of
# minits/fast/objectives.py, FastNormalization's product of the roots); each must give the
# numbers of the plain definition bit for bit (results files are compared exactly).


@given(KINDS, SEEDS, st.booleans(), st.sampled_from([np.float32, np.float64]))
def test_the_fast_R_is_scale_R_bit_for_bit(kind, seed, bias, dtype):
    """FastNormalization's R, math.prod of math.sqrt of the squared norms, is Eq. (9)'s
    np.prod(layer_norms) of scale_R."""
    model, _, _ = make_model(kind, seed, bias, dtype=dtype)
    assert product_of_roots(layer_sq_norms(model)) == scale_R(model)
    assert scale_R(model) == float(np.prod(layer_norms(model)))


@given(st.integers(1, 40), st.integers(1, 12), SEEDS, st.sampled_from([np.float32, np.float64]))
def test_row_max_is_max_over_the_last_axis(n, K, seed, dtype):
    """Of an (N, K) array, the only shape the fast objectives reduce."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, K)).astype(dtype)
    a[rng.random((n, K)) < 0.1] = np.inf
    a[rng.random((n, K)) < 0.1] = -np.inf
    a[rng.random((n, K)) < 0.05] = np.nan  # NaN propagates, as in a.max
    a[rng.random((n, K)) < 0.2] = 0.5  # ties
    assert bits(row_max(a)) == bits(a.max(axis=-1))
    assert bits(row_max(a, keepdims=True)) == bits(a.max(axis=-1, keepdims=True))


@given(st.integers(1, 40), st.integers(1, 12), SEEDS, st.sampled_from([np.float32, np.float64]))
def test_sums_are_np_sum(n, K, seed, dtype):
    a = (np.random.default_rng(seed).standard_normal((n, K)) * 1e3).astype(dtype)
    assert bits(row_sum(a)) == bits(np.sum(a, axis=-1))
    assert bits(row_sum(a, keepdims=True)) == bits(np.sum(a, axis=-1, keepdims=True))
    assert sum64(a) == float(np.sum(a, dtype=np.float64))
    assert sum64(a[0]) == float(np.sum(a[0], dtype=np.float64))


@given(st.integers(1, 30), st.integers(2, 12), SEEDS)
def test_confidence_terms_are_the_true_logit_and_the_runner_up(n, K, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, K)).astype(np.float32)
    X[rng.random((n, K)) < 0.2] = 1.0  # ties
    y = rng.integers(0, K, size=n)
    true, runner_up = confidence_terms(X, y)
    others = X.astype(np.float64).copy()
    others[np.arange(n), y] = -np.inf
    assert bits(true) == bits(X[np.arange(n), y])
    assert bits(runner_up) == bits(others.max(axis=1).astype(np.float32))
    assert bits(confidence(X, y)) == bits(true - runner_up)
