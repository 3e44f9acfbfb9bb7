"""Linear, ReLU, Softmax, Flatten under both implementations: finite differences,
kinks, dtype, errors; the fast layers' input_grad=False. Fast == plain:
tests/test_layers_impl.py."""

import numpy as np
import pytest
import reference as ref
from helpers import away_from_zero, seeds
from hypothesis import given
from hypothesis import strategies as st

import minits as mt
from minits import fast
from minits.gradcheck import check_layer
from minits.layers.activations import relu_backward, relu_forward
from minits.layers.linear import linear_backward, linear_forward


@given(st.integers(1, 4), st.integers(1, 7), st.integers(1, 6), st.booleans(), seeds)
def test_linear_backward_matches_finite_differences(impl, N, d_in, d_out, bias, seed):
    layer = mt.Linear(d_in, d_out, bias=bias, dtype=np.float64, rng=seed)
    rng = np.random.default_rng(seed)
    if bias:
        layer.params["b"][...] = rng.standard_normal(d_out)
    check_layer(impl(layer), rng.standard_normal((N, d_in)), seed=seed)


@given(st.integers(1, 4), st.integers(1, 7), st.integers(1, 6), st.booleans(), seeds)
def test_linear_matches_naive_loops(impl, N, d_in, d_out, bias, seed):
    layer = impl(mt.Linear(d_in, d_out, bias=bias, dtype=np.float64, rng=seed))
    rng = np.random.default_rng(seed)
    if bias:
        layer.params["b"][...] = rng.standard_normal(d_out)
    x, dout = rng.standard_normal((N, d_in)), rng.standard_normal((N, d_out))
    out = layer.forward(x)
    dx = layer.backward(dout)
    W, b = layer.params["W"], layer.params.get("b")
    np.testing.assert_allclose(out, ref.linear_forward(x, W, b), rtol=1e-12, atol=1e-12)
    dx_ref, dW_ref, db_ref = ref.linear_backward(dout, x, W)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], dW_ref, rtol=1e-12, atol=1e-12)
    if bias:
        np.testing.assert_allclose(layer.grads["b"], db_ref, rtol=1e-12, atol=1e-12)


def test_linear_is_x_times_W_transposed(impl):
    layer = impl(mt.Linear(3, 2, bias=True, dtype=np.float64))
    layer.params["W"][...] = [[1, 2, 3], [4, 5, 6]]
    layer.params["b"][...] = [10, 20]
    np.testing.assert_array_equal(layer.forward(np.array([[1.0, 0, -1]])), [[8, 18]])


def test_plain_linear_functions_by_hand():
    """linear_forward / linear_backward called directly, on numbers small enough to check by
    hand: out = x W^T + b, dW = dout^T x, db = sum_n dout, dx = dout W."""
    x = np.array([[1.0, 2.0], [3.0, -1.0]])
    W = np.array([[1.0, 0.0], [2.0, 1.0], [0.0, -1.0]])
    out, cache = linear_forward(x, W, np.array([0.5, 0.0, 1.0]))
    np.testing.assert_array_equal(out, [[1.5, 4.0, -1.0], [3.5, 5.0, 2.0]])
    dout = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]])
    dx, dW, db = linear_backward(dout, cache)
    np.testing.assert_array_equal(dW, [[1, 2], [3, -1], [-1, 5]])
    np.testing.assert_array_equal(db, [1, 1, 1])
    np.testing.assert_array_equal(dx, [[1, -2], [2, 2]])


@given(st.integers(1, 4), st.integers(1, 12), seeds)
def test_relu_backward_away_from_the_kink(impl, N, d, seed):
    x = away_from_zero(np.random.default_rng(seed).standard_normal((N, d)))
    check_layer(impl(mt.ReLU()), x, seed=seed)  # |x| >= 0.01, far from 0 compared with eps


def test_relu_kink_derivative_is_zero(impl):
    layer = impl(mt.ReLU())
    layer.forward(np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(layer.backward(np.ones(3)), [0.0, 0.0, 1.0])
    _, cache = relu_forward(np.array([-0.0, 0.0]))
    np.testing.assert_array_equal(relu_backward(np.ones(2), cache), [0.0, 0.0])


def test_relu_keeps_channel_first_layout(impl):
    xc = np.random.default_rng(0).standard_normal((3, 2, 4, 4))  # (C, N, H, W) memory
    out = impl(mt.ReLU()).forward(xc.transpose(1, 0, 2, 3))
    assert out.shape == (2, 3, 4, 4) and out.transpose(1, 0, 2, 3).flags["C_CONTIGUOUS"]


@given(st.integers(1, 4), st.integers(2, 8), seeds)
def test_softmax_backward_matches_finite_differences(impl, N, K, seed):
    x = np.random.default_rng(seed).standard_normal((N, K)) * 3
    check_layer(impl(mt.Softmax()), x, seed=seed)


def test_softmax_is_stable_for_extreme_logits(impl):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        p = impl(mt.Softmax()).forward(x)
    np.testing.assert_allclose(p, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]])
    assert np.all(np.isfinite(p))


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4))
def test_flatten_round_trip(impl, N, C, H, W):
    x = np.arange(N * C * H * W, dtype=np.float64).reshape(N, C, H, W)
    layer = impl(mt.Flatten())
    out = layer.forward(x.transpose(1, 0, 2, 3).copy().transpose(1, 0, 2, 3))
    np.testing.assert_array_equal(out, x.reshape(N, -1))  # PyTorch's (C, H, W) order
    np.testing.assert_array_equal(layer.backward(out), x)


def test_flatten_of_an_empty_batch(impl):
    layer = impl(mt.Flatten())
    out = layer.forward(np.ones((0, 2, 3, 3)))
    assert out.shape == (0, 18) and layer.backward(out).shape == (0, 2, 3, 3)


DENSE = {  # name -> dtype -> a plain layer of 4 inputs
    "Linear": lambda d: mt.Linear(4, 3, bias=True, dtype=d),
    "ReLU": lambda d: mt.ReLU(),
    "Softmax": lambda d: mt.Softmax(),
    "Flatten": lambda d: mt.Flatten(),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(DENSE))
def test_dense_layers_preserve_dtype(impl, name, dtype):
    layer = impl(DENSE[name](dtype))
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(dtype)
    out = layer.forward(x)
    dx = layer.backward(np.ones(out.shape, dtype))
    assert out.dtype == dx.dtype == dtype
    assert all(g.dtype == dtype for g in layer.grads.values())


@pytest.mark.parametrize("name", sorted(DENSE))
def test_dense_layers_refuse_backward_before_forward(impl, name):
    with pytest.raises(RuntimeError, match="before forward"):
        impl(DENSE[name](np.float64)).backward(np.ones((2, 3)))


@pytest.mark.parametrize("name", ["Linear", "ReLU", "Flatten"])  # Softmax has no fast twin
def test_fast_dense_layers_without_input_grad_return_none(name):
    """input_grad=False (the fast layers'; plain layers always return dL/dx): None, and
    the parameter gradients of the full backward, bit for bit."""
    layer = fast.convert(DENSE[name](np.float64))
    assert type(layer) is fast.TWINS[type(DENSE[name](np.float64))]
    rng = np.random.default_rng(0)
    out = layer.forward(rng.standard_normal((2, 4)))
    dout = rng.standard_normal(out.shape)
    assert layer.backward(dout) is not None
    grads = {k: g.copy() for k, g in layer.grads.items()}
    for g in layer.grads.values():
        g[...] = np.nan
    assert layer.backward(dout, input_grad=False) is None
    for k, g in grads.items():
        np.testing.assert_array_equal(layer.grads[k], g)


def test_linear_errors_name_the_problem(impl):
    layer = impl(mt.Linear(4, 3))
    with pytest.raises(TypeError, match="float64"):
        layer.forward(np.ones((2, 4)))
    with pytest.raises(ValueError, match="features"):
        layer.forward(np.ones((2, 5), np.float32))
    cls = type(layer)  # the constructor's checks, in the class of this implementation
    with pytest.raises(TypeError, match="dtype"):
        cls(4, 3, dtype=np.int32)
    with pytest.raises(ValueError, match="positive"):
        cls(0, 3)
    with pytest.raises(ValueError, match="gain"):
        cls(4, 3, gain=0)


def test_linear_backward_overwrites_grads(impl):
    layer = impl(mt.Linear(3, 2, bias=True, dtype=np.float64, rng=0))
    x = np.ones((4, 3))
    layer.forward(x)
    layer.backward(np.ones((4, 2)))
    layer.backward(np.ones((4, 2)))
    np.testing.assert_array_equal(layer.grads["W"], np.full((2, 3), 4.0))
    np.testing.assert_array_equal(layer.grads["b"], [4.0, 4.0])


def test_in_place_parameter_update_changes_the_layer(impl):
    layer = impl(mt.Linear(2, 1, dtype=np.float64))
    layer.params["W"] -= layer.params["W"]
    assert np.all(layer.forward(np.ones((1, 2))) == 0)


def test_seeded_layers_are_reproducible():
    a, b = mt.Linear(5, 4, rng=7), mt.Linear(5, 4, rng=7)
    np.testing.assert_array_equal(a.params["W"], b.params["W"])
