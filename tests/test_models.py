"""The paper's networks under both implementations: shapes, homogeneity Eq. (8), and
full backward vs finite differences; the fast twin's backward without dL/dx."""

import numpy as np
import pytest
from helpers import kink_margin, scaled_examples
from hypothesis import assume, given
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

import minits as mt
from minits import fast
from minits.gradcheck import check_layer


def test_mlp_shapes_and_parameters(impl):
    model = impl(mt.models.mlp([784, 128, 10]))
    X = model.forward(np.zeros((5, 1, 28, 28), np.float32))
    assert X.shape == (5, 10) and X.dtype == np.float32
    assert [layer.params["W"].shape for layer in model.linear_layers()] == [(128, 784), (10, 128)]
    assert model.num_parameters() == 784 * 128 + 128 * 10


def test_lenet5_shapes_and_parameters(impl):
    model = impl(mt.models.lenet5(num_classes=100))
    X = model.forward(np.zeros((3, 3, 32, 32), np.float32))
    assert X.shape == (3, 100)
    shapes = [layer.params["W"].shape for layer in model.linear_layers()]
    assert shapes == [(6, 3, 5, 5), (16, 6, 5, 5), (120, 400), (100, 120)]
    # "a network with over 50,000 parameters" (Sec. 3.2)
    assert impl(mt.models.lenet5()).num_parameters() == 450 + 2400 + 48000 + 1200 > 50_000
    assert impl(mt.models.lenet5(in_channels=1, input_size=28)).forward(
        np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)


def test_models_are_bias_free_by_default_and_support_bias():
    assert all(set(layer.params) == {"W"} for layer in mt.models.lenet5().linear_layers())
    assert all(set(layer.params) == {"W", "b"}
               for layer in mt.models.mlp([4, 3, 2], bias=True).linear_layers())


def test_seed_fixes_the_initial_parameters():
    a, b, c = mt.models.lenet5(seed=1), mt.models.lenet5(seed=1), mt.models.lenet5(seed=2)
    for la, lb, lc in zip(a.linear_layers(), b.linear_layers(), c.linear_layers(), strict=True):
        np.testing.assert_array_equal(la.params["W"], lb.params["W"])
        assert not np.array_equal(la.params["W"], lc.params["W"])


def scaled(model, c):
    for layer in model.linear_layers():
        for p in layer.params.values():
            p *= c
    return model


MAKE = {  # name -> (seed -> plain model, input shape, M - 1)
    "mlp": (lambda s: mt.models.mlp([12, 7, 5, 4], seed=s, dtype=np.float64), (6, 12), 3),
    "lenet5": (lambda s: mt.models.lenet5(seed=s, dtype=np.float64), (4, 3, 32, 32), 4),
}


@pytest.mark.parametrize("name", sorted(MAKE))
@scaled_examples(0.5)
@given(c=st.floats(0.05, 20.0), seed=st.integers(0, 1000))
def test_homogeneity_eq8_and_argmax_invariance(impl, name, c, seed):
    """X(c alpha) = c^{M-1} X(alpha) for c > 0 (bias-free ReLU/max-pool nets), Eq. (8)."""
    make, shape, M1 = MAKE[name]
    x = np.random.default_rng(seed).standard_normal(shape)
    X = impl(make(seed)).forward(x)
    Xc = impl(scaled(make(seed), c)).forward(x)
    np.testing.assert_allclose(Xc, c ** M1 * X, rtol=1e-10, atol=1e-12 * c ** M1)
    np.testing.assert_array_equal(np.argmax(Xc, axis=1), np.argmax(X, axis=1))


def test_homogeneity_fails_with_biases(impl):
    """The counter-example that makes minits bias-free by default (docs/decisions.md#D14)."""
    model = impl(mt.models.mlp([5, 4, 3], bias=True, dtype=np.float64, seed=0))
    for layer in model.linear_layers():
        layer.params["b"][...] = 0.5
    x = np.random.default_rng(0).standard_normal((3, 5))
    X = model.forward(x).copy()
    assert not np.allclose(scaled(model, 2.0).forward(x), 4.0 * X)


@given(seed=st.integers(0, 10_000), N=st.integers(1, 3), bias=st.booleans())
def test_mlp_backward_matches_finite_differences(impl, seed, N, bias):
    model = mt.models.mlp([7, 6, 5, 3], bias=bias, seed=seed, dtype=np.float64)
    rng = np.random.default_rng(seed)
    for layer in model.linear_layers():
        if bias:
            layer.params["b"][...] = rng.standard_normal(layer.params["b"].shape)
    x = rng.standard_normal((N, 7))
    assume(kink_margin(model, x) > 1e-4)
    check_layer(impl(model), x, seed=seed)


@scaled_examples(0.5)
@given(seed=st.integers(0, 10_000), bias=st.booleans())
def test_lenet5_backward_matches_finite_differences(impl, seed, bias):
    """All four layers of LeNet-5, on 1 image; element-wise on a random sample of
    60 entries per array (the full Jacobian is 52,000 columns) plus a random direction.
    eps = 1e-7 keeps the perturbation far below the kink margin asked for. Half the
    profile's examples per implementation: each costs ~600 forward passes, on one BLAS
    thread (a one-image batch: on two cores, a threaded BLAS made the fast twin's small
    blocked products about 2.5x slower; the numbers checked do not depend on it)."""
    model = mt.models.lenet5(num_classes=10, bias=bias, seed=seed, dtype=np.float64)
    rng = np.random.default_rng(seed)
    for layer in model.linear_layers():
        if bias:
            layer.params["b"][...] = 0.1 * rng.standard_normal(layer.params["b"].shape)
    x = rng.standard_normal((1, 3, 32, 32))
    assume(kink_margin(model, x) > 1e-5)
    with threadpool_limits(limits=1, user_api="blas"):
        check_layer(impl(model), x, seed=seed, eps=1e-7, max_elements=60)


@given(seed=st.integers(0, 10_000))
def test_fast_input_grad_false_gives_the_same_parameter_gradients(seed):
    """FastSequential.backward(dX, input_grad=False) (the plain Sequential always returns
    dL/dx) writes every parameter gradient again, bit for bit those of the full backward,
    and those equal the plain model's to rounding."""
    plain = mt.models.lenet5(seed=seed, dtype=np.float64)
    model = fast.convert(plain)
    x = np.random.default_rng(seed).standard_normal((2, 3, 32, 32))
    dX = np.random.default_rng(seed + 1).standard_normal((2, 10))
    plain.forward(x)
    assert plain.backward(dX).shape == x.shape
    reference = [layer.grads["W"].copy() for layer in plain.linear_layers()]
    model.forward(x)
    assert model.backward(dX).shape == x.shape
    full = [layer.grads["W"].copy() for layer in model.linear_layers()]
    for layer in model.linear_layers():
        layer.grads["W"][...] = np.nan  # every gradient must be written again
    model.forward(x)
    assert model.backward(dX, input_grad=False) is None
    for layer, g, r in zip(model.linear_layers(), full, reference, strict=True):
        np.testing.assert_array_equal(layer.grads["W"], g)
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-12 * np.max(np.abs(r)))


def test_backward_before_forward_is_refused(impl):
    with pytest.raises(RuntimeError, match="before forward"):
        impl(mt.models.mlp([4, 3, 2])).backward(np.ones((1, 2), np.float32))


def test_float64_end_to_end_and_float32_default(impl):
    for dtype in (np.float32, np.float64):
        model = impl(mt.models.lenet5(dtype=dtype))
        X = model.forward(np.ones((2, 3, 32, 32), dtype))
        dx = model.backward(np.ones_like(X))
        assert X.dtype == dx.dtype == model.dtype == dtype
        assert all(layer.grads["W"].dtype == dtype for layer in model.linear_layers())
    assert mt.models.lenet5().dtype == np.float32


def test_sequential_errors_and_repr(impl):
    with pytest.raises(ValueError, match="at least one layer"):
        type(impl(mt.models.mlp([4, 2])))()
    with pytest.raises(ValueError, match="mlp sizes"):
        mt.models.mlp([5])
    assert "Conv2d(3, 6, kernel_size=5" in repr(impl(mt.models.lenet5()))
