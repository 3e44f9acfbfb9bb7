"""Scale R, normalised parameters and logits, confidence and the well-classified set,
Eq. (7)-(11), and the chain rule through alpha -> alpha_hat (docs/decisions.md#D7)."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import minits as mt
from minits.gradcheck import check_gradient
from minits.scale import (
    Normalization,
    at_normalized_params,
    confidence,
    confidence_terms,
    is_homogeneous,
    layer_norms,
    logits_at_normalized,
    normalization_factor,
    normalized_confidence,
    normalized_logits,
    normalized_params,
    num_well_classified,
    row_max,
    scale_R,
    well_classified,
)


def make_model(kind, seed, bias=False, dtype=np.float64, K=4):
    """A small mlp or LeNet-5 (1 channel, 16x16 input) and a batch for it."""
    rng = np.random.default_rng(seed + 1000)
    if kind == "mlp":
        model = mt.models.mlp([6, 5, K], bias=bias, seed=seed, dtype=dtype)
        x = rng.standard_normal((4, 6)).astype(dtype)
    else:
        model = mt.models.lenet5(num_classes=K, in_channels=1, bias=bias, seed=seed,
                                 dtype=dtype, input_size=16)
        x = rng.standard_normal((2, 1, 16, 16)).astype(dtype)
    if bias:  # non-zero biases, so that X_hat != X / R
        for layer in model.linear_layers():
            layer.params["b"][:] = rng.standard_normal(layer.params["b"].shape)
    y = rng.integers(0, K, size=len(x))
    return model, x, y


def kink_distance(model, x):
    """How far the forward pass at alpha_hat is from a kink, relative to each layer's
    scale: the smallest |input| of a ReLU and the smallest gap between the two largest
    entries of a max-pool window, each divided by the layer input's largest |entry|.
    Finite differences are only meaningful well away from kinks."""
    gaps = [np.inf]
    with at_normalized_params(model):
        h = x
        for layer in model.layers:
            if isinstance(layer, mt.ReLU):
                gaps.append(np.min(np.abs(h)) / np.max(np.abs(h)))
            elif isinstance(layer, mt.MaxPool2d):
                k, s = layer.kernel_size, layer.stride
                assert k == s, "kink_distance handles non-overlapping windows only"
                N, C, H, W = h.shape
                Ho, Wo = H // k, W // k
                win = h[:, :, :Ho * k, :Wo * k].reshape(N, C, Ho, k, Wo, k)
                win = np.sort(win.transpose(0, 1, 2, 4, 3, 5).reshape(N, C, Ho, Wo, k * k))
                top, second = win[..., -1], win[..., -2]
                live = (top != 0) | (second != 0)  # windows of ReLU zeros only have no kink
                if live.any():
                    gaps.append(np.min((top - second)[live]) / np.max(np.abs(h)))
            h = layer.forward(h)
    return float(min(gaps))


def snapshot(model):
    return [p.copy() for layer in model.linear_layers() for p in layer.params.values()]


def assert_params_identical(model, saved):
    now = [p for layer in model.linear_layers() for p in layer.params.values()]
    for a, b in zip(now, saved, strict=True):
        np.testing.assert_array_equal(a, b)


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
def test_normalised_logits_are_X_over_R_without_biases(kind, seed):
    model, x, y = make_model(kind, seed)
    X = model.forward(x)
    R = scale_R(model)
    X_hat = normalized_logits(model, x)
    np.testing.assert_allclose(X_hat, X / R, rtol=1e-12, atol=1e-14 * np.abs(X / R).max())
    np.testing.assert_allclose(normalized_confidence(model, x, y), confidence(X, y) / R,
                               rtol=1e-10, atol=1e-13)


@given(KINDS, SEEDS)
def test_normalised_logits_with_biases_are_the_literal_forward_at_alpha_hat(kind, seed):
    model, x, _ = make_model(kind, seed, bias=True)
    n = len(model.linear_layers())
    c = scale_R(model) ** (-1.0 / n)
    twin, _, _ = make_model(kind, seed, bias=True)
    for layer, twin_layer in zip(model.linear_layers(), twin.linear_layers(), strict=True):
        for name, p in layer.params.items():
            twin_layer.params[name][...] = p * c
    np.testing.assert_array_equal(normalized_logits(model, x), twin.forward(x))
    # and the biases break Eq. (8): X_hat is no longer X / R
    assert not np.allclose(normalized_logits(model, x), model.forward(x) / scale_R(model))


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


@given(KINDS, SEEDS, st.booleans())
def test_alpha_is_restored_bit_for_bit(kind, seed, bias):
    model, x, _ = make_model(kind, seed, bias)
    saved = snapshot(model)
    normalized_logits(model, x)
    assert_params_identical(model, saved)
    norm = Normalization()
    X_hat = norm.forward(model, x)
    assert_params_identical(model, saved)
    norm.backward(np.ones_like(X_hat))
    assert_params_identical(model, saved)
    with pytest.raises(ValueError):  # a failing forward still restores alpha
        with at_normalized_params(model):
            model.forward(x[:, :-1] if kind == "mlp" else x[:, :, :-1, :-1])
    assert_params_identical(model, saved)


@st.composite
def chain_rule_cases(draw):
    kind = draw(KINDS)
    seed = draw(SEEDS)
    bias = draw(st.booleans())
    dL_dR = draw(st.sampled_from([0.0, 0.7, -1.3]))
    return kind, seed, bias, dL_dR


@given(chain_rule_cases())
def test_normalisation_backward_matches_finite_differences(case):
    """L(alpha) = sum(G * X(alpha_hat)) + k R(alpha): the chain rule of docs/decisions.md#D7."""
    kind, seed, bias, k = case
    model, x, _ = make_model(kind, seed, bias)
    assume(kink_distance(model, x) > 1e-5)
    G = np.random.default_rng(seed).standard_normal(model.forward(x).shape)

    def L():
        return float(np.sum(G * normalized_logits(model, x))) + k * scale_R(model)

    norm = Normalization()
    norm.forward(model, x)
    norm.backward(G.copy(), dL_dR=k)
    atol = 1e-9 * (1 + abs(L()))  # rounding in the differences grows with |L|
    for i, layer in enumerate(model.linear_layers()):
        for name, p in layer.params.items():
            check_gradient(L, p, layer.grads[name].copy(), name=f"{kind} layer {i} {name}",
                           max_elements=8, seed=seed + 1, rtol=1e-5, atol=atol)


@given(KINDS, SEEDS)
def test_scale_invariance_gradients_are_orthogonal_to_each_layer(kind, seed):
    """Without biases L(X_hat) does not change when alpha^l is scaled, so
    <dL/dalpha^l, alpha^l> = 0 for every layer l."""
    model, x, _ = make_model(kind, seed)
    norm = Normalization()
    X_hat = norm.forward(model, x)
    norm.backward(np.random.default_rng(seed).standard_normal(X_hat.shape))
    for layer in model.linear_layers():
        g, a = layer.grads["W"], layer.params["W"]
        assert abs(np.vdot(g, a)) <= 1e-12 * np.linalg.norm(g) * np.linalg.norm(a) + 1e-300


def test_normalisation_keeps_float32():
    model, x, _ = make_model("mlp", 0, dtype=np.float32)
    norm = Normalization()
    X_hat = norm.forward(model, x)
    assert X_hat.dtype == np.float32
    norm.backward(np.ones_like(X_hat))
    assert all(g.dtype == np.float32 for layer in model.linear_layers()
               for g in layer.grads.values())


def test_normalisation_refuses_zero_parameters_and_changed_parameters():
    model, x, _ = make_model("mlp", 0)
    norm = Normalization()
    norm.forward(model, x)
    model.linear_layers()[0].params["W"][0, 0] += 1.0
    with pytest.raises(RuntimeError, match="changed between"):
        norm.backward(np.ones((len(x), 4)))
    with pytest.raises(RuntimeError, match="before forward"):
        Normalization().backward(np.ones((len(x), 4)))
    model.linear_layers()[1].params["W"][:] = 0
    with pytest.raises(ValueError, match="zero"):
        norm.forward(model, x)
    with pytest.raises(ValueError, match="no linear layers"):
        scale_R(mt.Sequential(mt.ReLU()))


@given(st.integers(1, 6), st.integers(2, 5), SEEDS)
def test_confidence_matches_its_definition(n, K, seed):
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((n, K)), rng.integers(0, K, size=n)
    expected = [X[s, y[s]] - max(X[s, i] for i in range(K) if i != y[s]) for s in range(n)]
    delta = confidence(X, y)
    np.testing.assert_array_equal(delta, expected)
    np.testing.assert_array_equal(delta > 0, np.argmax(X, axis=1) == y)  # Eq. (7)
    # Eq. (11): accuracy = #W_{0,T} / #T
    assert num_well_classified(delta, 0) / n == np.mean(np.argmax(X, axis=1) == y)


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
    assert num_well_classified(delta, 0.1) == 2
    assert num_well_classified(delta, 0) == 3


def test_is_homogeneous():
    assert is_homogeneous(mt.models.mlp([4, 3, 2]))
    assert is_homogeneous(mt.models.lenet5(in_channels=1, input_size=16))
    assert not is_homogeneous(mt.models.mlp([4, 3, 2], bias=True))
    assert not is_homogeneous(mt.Sequential(mt.Linear(3, 2), mt.Softmax()))


@given(SEEDS, st.floats(0.1, 10))
def test_homogeneity_eq8(seed, c):
    """X(c alpha) = c^{M-1} X(alpha) for the bias-free networks (Eq. (8))."""
    model, x, _ = make_model("mlp", seed)
    assume(c != 1.0)
    X = model.forward(x)
    for layer in model.linear_layers():
        layer.params["W"] *= c
    np.testing.assert_allclose(model.forward(x), c ** 2 * X, rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- fast, same numbers
# The training loop's hot path computes these numbers in cheaper ways; each must give
# the numbers of the plain formula bit for bit (results files are compared exactly).


def bits(a):
    """dtype, shape and bytes of a: equal exactly when the arrays are equal bit for bit
    (also NaN payloads and the sign of zero). Shared by the "same numbers" tests."""
    a = np.asarray(a)
    return a.dtype, a.shape, a.tobytes()


@given(KINDS, SEEDS, st.booleans(), st.sampled_from([np.float32, np.float64]))
def test_scale_R_is_np_prod_of_the_layer_norms_bit_for_bit(kind, seed, bias, dtype):
    model, _, _ = make_model(kind, seed, bias, dtype=dtype)
    assert scale_R(model) == float(np.prod(layer_norms(model)))


@given(st.integers(1, 40), st.integers(1, 12), SEEDS, st.sampled_from([np.float32, np.float64]))
def test_row_max_is_max_over_the_last_axis(n, K, seed, dtype):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, K)).astype(dtype)
    a[rng.random((n, K)) < 0.1] = np.inf
    a[rng.random((n, K)) < 0.1] = -np.inf
    a[rng.random((n, K)) < 0.05] = np.nan  # NaN propagates, as in a.max
    a[rng.random((n, K)) < 0.2] = 0.5  # ties
    assert bits(row_max(a)) == bits(a.max(axis=-1))
    assert bits(row_max(a, keepdims=True)) == bits(a.max(axis=-1, keepdims=True))
    b = rng.standard_normal((2, n, K)).astype(dtype)  # other shapes: a.max(axis=-1)
    assert bits(row_max(b)) == bits(b.max(axis=-1))
    assert bits(row_max(b[0, 0])) == bits(b[0, 0].max(axis=-1))


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


@given(KINDS, SEEDS, st.sampled_from([np.float32, np.float64]), st.floats(-2, 2))
def test_normalisation_without_verify_gives_the_same_numbers(kind, seed, dtype, dL_dR):
    """verify=False keeps no copy of alpha on the homogeneous path (the loop's setting):
    R, X_hat and every gradient are those of verify=True, bit for bit."""
    model, x, _ = make_model(kind, seed, dtype=dtype)
    dX_hat = np.random.default_rng(seed).standard_normal(
        (len(x), model.forward(x).shape[1])).astype(dtype)
    out = []
    for verify in (True, False):
        norm = Normalization(verify=verify)
        X_hat = norm.forward(model, x)
        norm.backward(dX_hat, dL_dR=dL_dR)
        out.append((norm.R, bits(X_hat), [bits(layer.grads[name]) for layer, name, _, _
                                          in norm._entries]))
    assert out[0] == out[1]


def test_normalisation_without_verify_keeps_no_copy_on_the_homogeneous_path():
    model, x, _ = make_model("mlp", 0)
    norm = Normalization(verify=False)
    norm.forward(model, x)
    assert all(a is layer.params[name] for layer, name, _, a in norm._entries)
    model, x, _ = make_model("mlp", 0, bias=True)  # the literal path restores from copies
    norm.forward(model, x)
    assert not any(a is layer.params[name] for layer, name, _, a in norm._entries)


@given(KINDS, SEEDS, st.booleans())
def test_logits_at_normalized_with_R_given(kind, seed, bias):
    model, x, _ = make_model(kind, seed, bias)
    X_hat, X, R = logits_at_normalized(model, x)
    X_hat2, X2, R2 = logits_at_normalized(model, x, R=scale_R(model))
    assert R2 == R and bits(X_hat2) == bits(X_hat)
    assert (X is None and X2 is None) or bits(X2) == bits(X)
