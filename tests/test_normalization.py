"""The normalisation alpha -> alpha_hat and the chain rule back to alpha
(docs/decisions.md#D7), in both implementations (the ``impl`` fixture): the plain
minits.normalization.Normalization on the plain layers, and minits.fast's
FastNormalization on the fast layers. The contract between forward and backward (the
layers' caches). Fast against plain: tests/test_fast_paths.py.
"""

import numpy as np
import pytest
from helpers import assert_params_identical, bits, kink_distance, make_model, snapshot
from hypothesis import assume, given
from hypothesis import strategies as st

import minits as mt
from minits import fast
from minits.fast import FastNormalization, logits_at_normalized
from minits.gradcheck import check_gradient
from minits.normalization import Normalization
from minits.scale import at_normalized_params, normalized_logits, scale_R

KINDS = st.sampled_from(["mlp", "lenet5"])
SEEDS = st.integers(0, 10_000)


def engine(impl):
    """The normalisation of implementation impl (impl() leaves a Normalization as it is:
    it has no entry in minits.fast.TWINS, a loss makes its own)."""
    return FastNormalization() if impl.fast else Normalization()


def param_grads(model):
    return [layer.grads[name].copy() for layer in model.linear_layers() for name in layer.params]


@given(KINDS, SEEDS, st.booleans())
def test_forward_is_X_at_alpha_hat_and_R(impl, kind, seed, bias):
    plain, x, _ = make_model(kind, seed, bias)
    model = impl(plain)
    norm = engine(impl)
    X_hat = norm.forward(model, x)
    assert norm.R == scale_R(model)
    assert norm.c == scale_R(model) ** (-1.0 / len(model.linear_layers()))
    expected = normalized_logits(model, x)  # the same layers
    if not impl.fast or bias:  # the literal forward pass
        np.testing.assert_array_equal(X_hat, expected)
    else:  # X / R, Eq. (8)
        np.testing.assert_allclose(X_hat, expected, rtol=1e-12, atol=1e-13 * np.abs(X_hat).max())


@given(KINDS, SEEDS, st.booleans())
def test_alpha_is_restored_bit_for_bit(impl, kind, seed, bias):
    plain, x, _ = make_model(kind, seed, bias)
    model = impl(plain)
    saved = snapshot(model)
    normalized_logits(model, x)
    assert_params_identical(model, saved)
    norm = engine(impl)
    X_hat = norm.forward(model, x)
    assert_params_identical(model, saved)
    norm.backward(np.ones_like(X_hat))
    assert_params_identical(model, saved)
    with pytest.raises(ValueError):  # a failing forward still restores alpha
        with at_normalized_params(model):
            model.forward(x[:, :-1] if kind == "mlp" else x[:, :, :-1, :-1])
    assert_params_identical(model, saved)


@given(KINDS, SEEDS, st.booleans(), st.sampled_from([0.0, 0.7, -1.3]))
def test_backward_matches_finite_differences(impl, kind, seed, bias, k):
    """L(alpha) = sum(G * X(alpha_hat)) + k R(alpha): the chain rule of docs/decisions.md#D7,
    with the explicit dL/dR = k. L is computed the literal way on the plain layers (they
    share alpha with the model under test)."""
    plain, x, _ = make_model(kind, seed, bias)
    assume(kink_distance(plain, x) > 1e-5)
    G = np.random.default_rng(seed).standard_normal(plain.forward(x).shape)

    def L():
        return float(np.sum(G * normalized_logits(plain, x))) + k * scale_R(plain)

    model = impl(plain)
    norm = engine(impl)
    norm.forward(model, x)
    norm.backward(G.copy(), dL_dR=k)
    atol = 1e-9 * (1 + abs(L()))  # rounding in the differences grows with |L|
    for i, layer in enumerate(model.linear_layers()):
        for name, p in layer.params.items():
            check_gradient(L, p, layer.grads[name].copy(), name=f"{kind} layer {i} {name}",
                           max_elements=8, seed=seed + 1, rtol=1e-5, atol=atol)


@given(KINDS, SEEDS)
def test_scale_invariance_gradients_are_orthogonal_to_each_layer(impl, kind, seed):
    """Without biases L(X_hat) does not change when alpha^l is scaled, so
    <dL/dalpha^l, alpha^l> = 0 for every layer l."""
    plain, x, _ = make_model(kind, seed)
    model = impl(plain)
    norm = engine(impl)
    X_hat = norm.forward(model, x)
    norm.backward(np.random.default_rng(seed).standard_normal(X_hat.shape))
    for layer in model.linear_layers():
        g, a = layer.grads["W"], layer.params["W"]
        assert abs(np.vdot(g, a)) <= 1e-12 * np.linalg.norm(g) * np.linalg.norm(a) + 1e-300


@given(KINDS, SEEDS, st.booleans())
def test_explicit_dL_dR_adds_R_alpha_over_norm_squared(impl, kind, seed, bias):
    """dL/dalpha^l with dL_dR = k minus that with dL_dR = 0 is k R alpha^l / ||alpha^l||^2
    (dR/dalpha^l, Eq. (9)); in particular <., alpha^l> = k R for every layer."""
    plain, x, _ = make_model(kind, seed, bias=bias)
    model = impl(plain)
    G = np.random.default_rng(seed).standard_normal(plain.forward(x).shape)
    grads = {}
    for k in (0.0, 2.5):
        norm = engine(impl)
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
        bias_model = impl(bias_model)
        norm = engine(impl)
        X_hat = norm.forward(bias_model, x)
        assert X_hat.dtype == np.float32
        norm.backward(np.ones_like(X_hat), dL_dR=0.5)
        assert all(g.dtype == np.float32 for layer in bias_model.linear_layers()
                   for g in layer.grads.values())


def test_refuses_zero_parameters_and_backward_before_forward(impl):
    plain, x, _ = make_model("mlp", 0)
    model = impl(plain)
    with pytest.raises(RuntimeError, match="before forward"):
        engine(impl).backward(np.ones((len(x), 4)))
    norm = engine(impl)
    model.linear_layers()[1].params["W"][:] = 0
    with pytest.raises(ValueError, match="zero"):
        norm.forward(model, x)
    with pytest.raises(ValueError, match="no linear layers"):
        scale_R(mt.Sequential(mt.ReLU()))


# ----------------------------------------------------------------------------- the contract
# backward does not run the forward pass again: it backpropagates the caches that the
# layers kept from forward's pass (at alpha_hat for the plain code, at alpha for Eq. (8)).
# Nothing may run through the model between the two, which is what the losses do (the
# raw pass of the raw confidence runs *before* X_hat) -- and what these tests pin.


@pytest.mark.parametrize("kind", ["mlp", "lenet5"])
@pytest.mark.parametrize("bias", [False, True])
def test_backward_uses_the_caches_of_its_forward(impl, kind, bias):
    """Another batch through the model between forward and backward changes the
    gradients (they are those of the other batch's caches); forward again restores them
    bit for bit. Neither changes alpha, R or c: only the layers' caches."""
    plain, x, _ = make_model(kind, 21, bias)
    model = impl(plain)
    other = np.random.default_rng(22).standard_normal(x.shape)
    G = np.random.default_rng(23).standard_normal(plain.forward(x).shape)

    def grads_after(between):
        norm = engine(impl)
        norm.forward(model, x)
        between()
        norm.backward(G.copy())
        return [bits(g) for g in param_grads(model)]

    reference = grads_after(lambda: None)
    assert grads_after(lambda: model.forward(other)) != reference
    norm = engine(impl)
    norm.forward(model, x)
    model.forward(other)
    norm.forward(model, x)  # the caches of x again
    norm.backward(G.copy())
    assert [bits(g) for g in param_grads(model)] == reference


@pytest.mark.parametrize("kind", ["mlp", "lenet5"])
@pytest.mark.parametrize("bias", [False, True])
def test_the_plain_code_needs_its_pass_at_alpha_hat(impl, kind, bias):
    """The plain Normalization (and FastNormalization on a network with biases, which runs
    it) backpropagates the caches of forward's pass at alpha_hat: the same batch run
    through the model at alpha in between -- what a loss's raw confidence would do if it
    ran after X_hat -- changes the gradients. The Eq. (8) path of FastNormalization
    (bias-free networks) has cached that very pass at alpha, so there it changes nothing."""
    plain, x, _ = make_model(kind, 24, bias)
    model = impl(plain)
    G = np.random.default_rng(25).standard_normal(plain.forward(x).shape)
    out = []
    for at_alpha in (False, True):
        norm = engine(impl)
        norm.forward(model, x)
        if at_alpha:
            model.forward(x)
        norm.backward(G.copy())
        out.append([bits(g) for g in param_grads(model)])
    plain_code = not impl.fast or bias
    assert (out[0] != out[1]) == plain_code


# ----------------------------------------------------------------------------- fast engine
# What only FastNormalization has: its two paths and logits_at_normalized.


@pytest.mark.parametrize("kind", ["mlp", "lenet5"])
def test_fast_uses_eq8_without_biases_and_the_plain_code_with_them(kind):
    """Without biases one pass at alpha (X_hat = X / R, the raw logits in .X); with biases
    the plain Normalization's code (no .X), so X_hat is the literal forward at alpha_hat."""
    for bias in (False, True):
        plain, x, _ = make_model(kind, 0, bias=bias)
        model = fast.convert(plain)
        norm = FastNormalization()
        X_hat = norm.forward(model, x)
        if bias:
            assert norm.X is None
            assert bits(X_hat) == bits(normalized_logits(model, x))
        else:
            assert bits(norm.X) == bits(model.forward(x))
            assert bits(X_hat) == bits(norm.X / scale_R(model))


@given(KINDS, SEEDS, st.booleans())
def test_logits_at_normalized_with_R_given(kind, seed, bias):
    model, x, _ = make_model(kind, seed, bias)
    X_hat, X, R = logits_at_normalized(model, x)
    X_hat2, X2, R2 = logits_at_normalized(model, x, R=scale_R(model))
    assert R2 == R and bits(X_hat2) == bits(X_hat)
    assert (X is None and X2 is None) or bits(X2) == bits(X)
