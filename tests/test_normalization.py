"""The normalisation alpha -> alpha_hat and the chain rule back to alpha
(docs/decisions.md#D7), for both engines: the plain minits.normalization.Normalization
and the fast minits.fast_normalization.FastNormalization, each under its own
implementation of the layers (minits.using). Fast against plain: tests/test_fast_paths.py.
"""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from test_scale import assert_params_identical, bits, kink_distance, make_model, snapshot

import minits as mt
from minits.fast_normalization import FastNormalization, logits_at_normalized
from minits.gradcheck import check_gradient
from minits.normalization import Normalization
from minits.scale import at_normalized_params, normalized_logits, scale_R

IMPLS = mt.backend.IMPLEMENTATIONS
ENGINES = {"plain": Normalization, "fast": FastNormalization}
KINDS = st.sampled_from(["mlp", "lenet5"])
SEEDS = st.integers(0, 10_000)


def param_grads(model):
    return [layer.grads[name].copy() for layer in model.linear_layers() for name in layer.params]


@pytest.mark.parametrize("impl_name", IMPLS)
@given(KINDS, SEEDS, st.booleans())
def test_forward_is_X_at_alpha_hat_and_R(impl_name, kind, seed, bias):
    model, x, _ = make_model(kind, seed, bias)
    with mt.using(impl_name):
        norm = ENGINES[impl_name]()
        X_hat = norm.forward(model, x)
        assert norm.R == scale_R(model)
        assert norm.c == scale_R(model) ** (-1.0 / len(model.linear_layers()))
        expected = normalized_logits(model, x)
    if impl_name == "plain" or bias:  # the literal forward pass
        np.testing.assert_array_equal(X_hat, expected)
    else:  # X / R, Eq. (8)
        np.testing.assert_allclose(X_hat, expected, rtol=1e-12, atol=1e-13 * np.abs(X_hat).max())


@pytest.mark.parametrize("impl_name", IMPLS)
@given(KINDS, SEEDS, st.booleans())
def test_alpha_is_restored_bit_for_bit(impl_name, kind, seed, bias):
    model, x, _ = make_model(kind, seed, bias)
    saved = snapshot(model)
    with mt.using(impl_name):
        normalized_logits(model, x)
        assert_params_identical(model, saved)
        norm = ENGINES[impl_name]()
        X_hat = norm.forward(model, x)
        assert_params_identical(model, saved)
        norm.backward(np.ones_like(X_hat))
        assert_params_identical(model, saved)
        with pytest.raises(ValueError):  # a failing forward still restores alpha
            with at_normalized_params(model):
                model.forward(x[:, :-1] if kind == "mlp" else x[:, :, :-1, :-1])
    assert_params_identical(model, saved)


@pytest.mark.parametrize("impl_name", IMPLS)
@given(KINDS, SEEDS, st.booleans(), st.sampled_from([0.0, 0.7, -1.3]))
def test_backward_matches_finite_differences(impl_name, kind, seed, bias, k):
    """L(alpha) = sum(G * X(alpha_hat)) + k R(alpha): the chain rule of docs/decisions.md#D7,
    with the explicit dL/dR = k."""
    model, x, _ = make_model(kind, seed, bias)
    assume(kink_distance(model, x) > 1e-5)
    G = np.random.default_rng(seed).standard_normal(model.forward(x).shape)

    def L():
        return float(np.sum(G * normalized_logits(model, x))) + k * scale_R(model)

    with mt.using(impl_name):
        norm = ENGINES[impl_name]()
        norm.forward(model, x)
        norm.backward(G.copy(), dL_dR=k)
        atol = 1e-9 * (1 + abs(L()))  # rounding in the differences grows with |L|
        for i, layer in enumerate(model.linear_layers()):
            for name, p in layer.params.items():
                check_gradient(L, p, layer.grads[name].copy(), name=f"{kind} layer {i} {name}",
                               max_elements=8, seed=seed + 1, rtol=1e-5, atol=atol)


@pytest.mark.parametrize("impl_name", IMPLS)
@given(KINDS, SEEDS)
def test_scale_invariance_gradients_are_orthogonal_to_each_layer(impl_name, kind, seed):
    """Without biases L(X_hat) does not change when alpha^l is scaled, so
    <dL/dalpha^l, alpha^l> = 0 for every layer l."""
    model, x, _ = make_model(kind, seed)
    with mt.using(impl_name):
        norm = ENGINES[impl_name]()
        X_hat = norm.forward(model, x)
        norm.backward(np.random.default_rng(seed).standard_normal(X_hat.shape))
    for layer in model.linear_layers():
        g, a = layer.grads["W"], layer.params["W"]
        assert abs(np.vdot(g, a)) <= 1e-12 * np.linalg.norm(g) * np.linalg.norm(a) + 1e-300


@pytest.mark.parametrize("impl_name", IMPLS)
@given(KINDS, SEEDS)
def test_explicit_dL_dR_adds_R_alpha_over_norm_squared(impl_name, kind, seed):
    """dL/dalpha^l with dL_dR = k minus that with dL_dR = 0 is k R alpha^l / ||alpha^l||^2
    (dR/dalpha^l, Eq. (9)); in particular <., alpha^l> = k R for every layer."""
    model, x, _ = make_model(kind, seed, bias=True)
    G = np.random.default_rng(seed).standard_normal(model.forward(x).shape)
    grads = {}
    with mt.using(impl_name):
        for k in (0.0, 2.5):
            norm = ENGINES[impl_name]()
            norm.forward(model, x)
            norm.backward(G.copy(), dL_dR=k)
            grads[k] = param_grads(model)
    R = scale_R(model)
    i = 0
    for layer in model.linear_layers():
        sq = sum(float(np.vdot(p, p)) for p in layer.params.values())
        for p in layer.params.values():
            expected = 2.5 * R * p / sq
            np.testing.assert_allclose(grads[2.5][i] - grads[0.0][i], expected,
                                       rtol=1e-8, atol=1e-10 * np.abs(expected).max())
            i += 1


def test_keeps_float32(impl):
    model, x, _ = make_model("mlp", 0, dtype=np.float32)
    for bias_model in (model, make_model("mlp", 0, bias=True, dtype=np.float32)[0]):
        norm = ENGINES[impl]()
        X_hat = norm.forward(bias_model, x)
        assert X_hat.dtype == np.float32
        norm.backward(np.ones_like(X_hat), dL_dR=0.5)
        assert all(g.dtype == np.float32 for layer in bias_model.linear_layers()
                   for g in layer.grads.values())


def test_refuses_zero_parameters_and_changed_parameters(impl):
    model, x, _ = make_model("mlp", 0)
    norm = ENGINES[impl]()
    norm.forward(model, x)
    model.linear_layers()[0].params["W"][0, 0] += 1.0
    with pytest.raises(RuntimeError, match="changed between"):
        norm.backward(np.ones((len(x), 4)))
    with pytest.raises(RuntimeError, match="before forward"):
        ENGINES[impl]().backward(np.ones((len(x), 4)))
    model.linear_layers()[1].params["W"][:] = 0
    with pytest.raises(ValueError, match="zero"):
        norm.forward(model, x)
    with pytest.raises(ValueError, match="no linear layers"):
        scale_R(mt.Sequential(mt.ReLU()))


# ----------------------------------------------------------------------------- fast engine
# What only FastNormalization has: its two paths, verify on/off, logits_at_normalized.


@given(KINDS, SEEDS, st.sampled_from([np.float32, np.float64]), st.floats(-2, 2))
def test_fast_without_verify_gives_the_same_numbers(kind, seed, dtype, dL_dR):
    """verify=False keeps no copy of alpha on the homogeneous path (the loop's setting):
    R, X_hat and every gradient are those of verify=True, bit for bit."""
    model, x, _ = make_model(kind, seed, dtype=dtype)
    dX_hat = np.random.default_rng(seed).standard_normal(
        (len(x), model.forward(x).shape[1])).astype(dtype)
    out = []
    for verify in (True, False):
        norm = FastNormalization(verify=verify)
        X_hat = norm.forward(model, x)
        norm.backward(dX_hat, dL_dR=dL_dR)
        out.append((norm.R, bits(X_hat), [bits(g) for g in param_grads(model)]))
    assert out[0] == out[1]


def test_fast_without_verify_keeps_no_copy_on_the_homogeneous_path():
    model, x, _ = make_model("mlp", 0)
    norm = FastNormalization(verify=False)
    norm.forward(model, x)
    assert all(a is layer.params[name] for layer, name, _, a in norm._entries)
    model, x, _ = make_model("mlp", 0, bias=True)  # the literal path restores from copies
    norm.forward(model, x)
    assert not any(a is layer.params[name] for layer, name, _, a in norm._entries)


def test_fast_auto_mode_is_literal_with_biases_and_homogeneous_without():
    for bias in (False, True):
        model, x, _ = make_model("mlp", 0, bias=bias)
        norm = FastNormalization()
        norm.forward(model, x)
        assert (norm.X is not None) == (not bias)
    with pytest.raises(ValueError, match="bias-free"):
        FastNormalization("homogeneous").forward(make_model("mlp", 0, bias=True)[0], x)
    with pytest.raises(ValueError, match="mode"):
        FastNormalization("fast")


@given(KINDS, SEEDS, st.booleans())
def test_logits_at_normalized_with_R_given(kind, seed, bias):
    model, x, _ = make_model(kind, seed, bias)
    X_hat, X, R = logits_at_normalized(model, x)
    X_hat2, X2, R2 = logits_at_normalized(model, x, R=scale_R(model))
    assert R2 == R and bits(X_hat2) == bits(X_hat)
    assert (X is None and X2 is None) or bits(X2) == bits(X)
