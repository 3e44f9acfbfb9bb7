"""Linear, ReLU, Softmax, Flatten: finite differences, kinks, dtype, errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minits as mt
from minits.gradcheck import check_layer


@given(st.integers(1, 4), st.integers(1, 7), st.integers(1, 6), st.booleans(),
       st.integers(0, 2**16))
def test_linear_backward_matches_finite_differences(N, d_in, d_out, bias, seed):
    layer = mt.Linear(d_in, d_out, bias=bias, dtype=np.float64, rng=seed)
    rng = np.random.default_rng(seed)
    if bias:
        layer.params["b"][...] = rng.standard_normal(d_out)
    check_layer(layer, rng.standard_normal((N, d_in)), seed=seed)


def test_linear_is_x_times_W_transposed():
    layer = mt.Linear(3, 2, bias=True, dtype=np.float64)
    layer.params["W"][...] = [[1, 2, 3], [4, 5, 6]]
    layer.params["b"][...] = [10, 20]
    np.testing.assert_array_equal(layer.forward(np.array([[1.0, 0, -1]])), [[8, 18]])


@given(st.integers(1, 4), st.integers(1, 12), st.integers(0, 2**16))
def test_relu_backward_away_from_the_kink(N, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, d))
    x += np.sign(x) * 0.01  # |x| >= 0.01, far from 0 compared with eps = 1e-6
    check_layer(mt.ReLU(), x, seed=seed)


def test_relu_kink_derivative_is_zero():
    layer = mt.ReLU()
    layer.forward(np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(layer.backward(np.ones(3)), [0.0, 0.0, 1.0])


def test_relu_keeps_channel_first_layout():
    xc = np.random.default_rng(0).standard_normal((3, 2, 4, 4))  # (C, N, H, W) memory
    out = mt.ReLU().forward(xc.transpose(1, 0, 2, 3))
    assert out.shape == (2, 3, 4, 4) and out.transpose(1, 0, 2, 3).flags["C_CONTIGUOUS"]


@given(st.integers(1, 4), st.integers(2, 8), st.integers(0, 2**16))
def test_softmax_backward_matches_finite_differences(N, K, seed):
    x = np.random.default_rng(seed).standard_normal((N, K)) * 3
    check_layer(mt.Softmax(), x, seed=seed)


def test_softmax_is_stable_for_extreme_logits():
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        p = mt.Softmax().forward(x)
    np.testing.assert_allclose(p, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]])
    assert np.all(np.isfinite(p))


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4))
def test_flatten_round_trip(N, C, H, W):
    x = np.arange(N * C * H * W, dtype=np.float64).reshape(N, C, H, W)
    layer = mt.Flatten()
    out = layer.forward(x.transpose(1, 0, 2, 3).copy().transpose(1, 0, 2, 3))
    np.testing.assert_array_equal(out, x.reshape(N, -1))  # PyTorch's (C, H, W) order
    np.testing.assert_array_equal(layer.backward(out), x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", [lambda d: mt.Linear(4, 3, bias=True, dtype=d),
                                  lambda d: mt.ReLU(), lambda d: mt.Softmax(),
                                  lambda d: mt.Flatten()])
def test_dense_layers_preserve_dtype(make, dtype):
    layer = make(dtype)
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(dtype)
    out = layer.forward(x)
    dx = layer.backward(np.ones(out.shape, dtype))
    assert out.dtype == dx.dtype == dtype
    assert all(g.dtype == dtype for g in layer.grads.values())


def test_linear_errors_name_the_problem():
    layer = mt.Linear(4, 3)
    with pytest.raises(TypeError, match="float64"):
        layer.forward(np.ones((2, 4)))
    with pytest.raises(ValueError, match="features"):
        layer.forward(np.ones((2, 5), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        mt.Linear(4, 3, dtype=np.int32)
    with pytest.raises(ValueError, match="positive"):
        mt.Linear(0, 3)
    with pytest.raises(ValueError, match="gain"):
        mt.Linear(4, 3, gain=0)


def test_linear_backward_overwrites_grads():
    layer = mt.Linear(3, 2, bias=True, dtype=np.float64, rng=0)
    x = np.ones((4, 3))
    layer.forward(x)
    layer.backward(np.ones((4, 2)))
    layer.backward(np.ones((4, 2)))
    np.testing.assert_array_equal(layer.grads["W"], np.full((2, 3), 4.0))
    np.testing.assert_array_equal(layer.grads["b"], [4.0, 4.0])


def test_in_place_parameter_update_changes_the_layer():
    layer = mt.Linear(2, 1, dtype=np.float64)
    layer.params["W"] -= layer.params["W"]
    assert np.all(layer.forward(np.ones((1, 2))) == 0)


def test_seeded_layers_are_reproducible():
    a, b = mt.Linear(5, 4, rng=7), mt.Linear(5, 4, rng=7)
    np.testing.assert_array_equal(a.params["W"], b.params["W"])
