"""MaxPool2d under both implementations: naive loops, finite differences away from
ties, and the tie rule; the fast layer's input_grad=False. Fast == plain:
tests/test_layers_impl.py."""

import numpy as np
import pytest
import reference as ref
from helpers import distinct_input, pool_cases
from hypothesis import given

import minits as mt
from minits import fast
from minits.gradcheck import check_layer
from minits.layers.pool import maxpool_backward, maxpool_forward


@given(case=pool_cases())
def test_pool_matches_naive_loops(impl, case):
    x, rng = distinct_input(case)
    layer = impl(mt.MaxPool2d(case["k"], case["s"]))
    out = layer.forward(x)
    np.testing.assert_array_equal(out, ref.maxpool_forward(x, case["k"], case["s"]))
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(layer.backward(dout),
                               ref.maxpool_backward(dout, x, case["k"], case["s"]), atol=1e-15)


@given(case=pool_cases())
def test_pool_backward_matches_finite_differences(impl, case):
    x, _ = distinct_input(case)
    check_layer(impl(mt.MaxPool2d(case["k"], case["s"])), x, seed=case["seed"])


@given(case=pool_cases())
def test_pool_with_ties_matches_naive_loops(impl, case):
    """Inputs from three levels: ties in almost every window. The plain functions
    and the layer send each window's gradient to its first maximum in row-major
    order, as the naive loops do."""
    rng = np.random.default_rng(case["seed"])
    x = rng.integers(-1, 2, size=(case["N"], case["C"], case["H"], case["W"])).astype(float)
    k, s = case["k"], case["s"]
    dout = rng.standard_normal(ref.maxpool_forward(x, k, s).shape)
    out, cache = maxpool_forward(x, k, s)
    np.testing.assert_array_equal(out, ref.maxpool_forward(x, k, s))
    expected = ref.maxpool_backward(dout, x, k, s)
    np.testing.assert_allclose(maxpool_backward(dout, cache), expected, atol=1e-15)
    layer = impl(mt.MaxPool2d(k, s))
    np.testing.assert_array_equal(layer.forward(x), out)
    np.testing.assert_allclose(layer.backward(dout), expected, atol=1e-15)


def test_pool_tie_goes_to_first_maximum_in_row_major_order(impl):
    x = np.array([[[[1.0, 3.0],
                    [3.0, 3.0]]]])
    layer = impl(mt.MaxPool2d(2))
    assert layer.forward(x)[0, 0, 0, 0] == 3.0
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 1, 1)))[0, 0],
                                  [[0.0, 1.0], [0.0, 0.0]])


def test_pool_all_equal_window_sends_everything_to_the_top_left(impl):
    x = np.zeros((2, 3, 4, 4))
    layer = impl(mt.MaxPool2d(2))
    layer.forward(x)
    grad = layer.backward(np.ones((2, 3, 2, 2)))
    assert grad.sum() == 2 * 3 * 4
    np.testing.assert_array_equal(grad[0, 0], [[1, 0, 1, 0], [0, 0, 0, 0],
                                               [1, 0, 1, 0], [0, 0, 0, 0]])


def test_overlapping_windows_accumulate_gradients(impl):
    """k=3, s=1 over a 4x4 input with one large value inside all four windows."""
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 2] = 10.0
    layer = impl(mt.MaxPool2d(3, stride=1))
    out = layer.forward(x)
    assert out.shape == (1, 1, 2, 2) and np.all(out == 10.0)
    dout = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    dx = layer.backward(dout)
    assert dx[0, 0, 1, 2] == 10.0 and dx.sum() == 10.0


def test_pool_ignores_the_rows_no_window_covers(impl):
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    layer = impl(mt.MaxPool2d(2))
    np.testing.assert_array_equal(layer.forward(x)[0, 0], [[6, 8], [16, 18]])
    dx = layer.backward(np.ones((1, 1, 2, 2)))
    assert dx[0, 0, 4].sum() == 0 and dx[0, 0, :, 4].sum() == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pool_preserves_dtype(impl, dtype):
    layer = impl(mt.MaxPool2d(2))
    out = layer.forward(np.ones((1, 2, 4, 4), dtype))
    assert out.dtype == dtype and layer.backward(np.ones(out.shape, dtype)).dtype == dtype


def test_pool_of_an_empty_batch(impl):
    layer = impl(mt.MaxPool2d(2))
    out = layer.forward(np.ones((0, 2, 4, 4)))
    assert out.shape == (0, 2, 2, 2) and layer.backward(out).shape == (0, 2, 4, 4)


def test_fast_pool_without_input_grad_returns_none():
    """input_grad=False is the fast layer's (the plain one always returns dL/dx)."""
    layer = fast.convert(mt.MaxPool2d(2))
    assert type(layer) is fast.FastMaxPool2d
    out = layer.forward(np.random.default_rng(0).standard_normal((1, 2, 4, 4)))
    assert layer.backward(np.ones_like(out), input_grad=False) is None
    assert layer.backward(np.ones_like(out)).shape == (1, 2, 4, 4)  # the cache is kept


def test_pool_bad_arguments(impl):
    cls = type(impl(mt.MaxPool2d(2)))  # the class of this implementation
    with pytest.raises(ValueError, match="kernel_size"):
        cls(0)
    with pytest.raises(ValueError, match="stride"):
        cls(2, stride=0)
    with pytest.raises(ValueError, match="does not fit"):
        impl(mt.MaxPool2d(3)).forward(np.ones((1, 1, 2, 2)))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        impl(mt.MaxPool2d(2)).forward(np.ones((4, 4)))
    with pytest.raises(RuntimeError, match="before forward"):
        impl(mt.MaxPool2d(2)).backward(np.ones((1, 1, 1, 1)))
