"""MaxPool2d under both implementations: naive loops, finite differences away from
ties, and the tie rule. Fast == plain: tests/test_layers_impl.py."""

import numpy as np
import pytest
import reference as ref
from hypothesis import given
from strategies import IMPLS, distinct_input, pool_cases

import minits as mt
from minits.gradcheck import check_layer
from minits.layers.pool import maxpool_backward, maxpool_forward


@pytest.mark.parametrize("impl_name", IMPLS)
@given(pool_cases())
def test_pool_matches_naive_loops(impl_name, case):
    x, rng = distinct_input(case)
    layer = mt.MaxPool2d(case["k"], case["s"])
    with mt.using(impl_name):
        out = layer.forward(x)
        np.testing.assert_array_equal(out, ref.maxpool_forward(x, case["k"], case["s"]))
        dout = rng.standard_normal(out.shape)
        np.testing.assert_allclose(layer.backward(dout),
                                   ref.maxpool_backward(dout, x, case["k"], case["s"]),
                                   atol=1e-15)


@pytest.mark.parametrize("impl_name", IMPLS)
@given(pool_cases())
def test_pool_backward_matches_finite_differences(impl_name, case):
    x, _ = distinct_input(case)
    with mt.using(impl_name):
        check_layer(mt.MaxPool2d(case["k"], case["s"]), x, seed=case["seed"])


@given(pool_cases())
def test_pool_with_ties_matches_naive_loops(case):
    """Inputs from three levels: ties in almost every window. The plain functions
    and the layer under both implementations send each window's gradient to its
    first maximum in row-major order, as the naive loops do."""
    rng = np.random.default_rng(case["seed"])
    x = rng.integers(-1, 2, size=(case["N"], case["C"], case["H"], case["W"])).astype(float)
    k, s = case["k"], case["s"]
    dout = rng.standard_normal(ref.maxpool_forward(x, k, s).shape)
    out, cache = maxpool_forward(x, k, s)
    np.testing.assert_array_equal(out, ref.maxpool_forward(x, k, s))
    expected = ref.maxpool_backward(dout, x, k, s)
    np.testing.assert_allclose(maxpool_backward(dout, cache), expected, atol=1e-15)
    for impl_name in IMPLS:
        layer = mt.MaxPool2d(k, s)
        with mt.using(impl_name):
            np.testing.assert_array_equal(layer.forward(x), out)
            np.testing.assert_allclose(layer.backward(dout), expected, atol=1e-15)


def test_pool_tie_goes_to_first_maximum_in_row_major_order(impl):
    x = np.array([[[[1.0, 3.0],
                    [3.0, 3.0]]]])
    layer = mt.MaxPool2d(2)
    assert layer.forward(x)[0, 0, 0, 0] == 3.0
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 1, 1)))[0, 0],
                                  [[0.0, 1.0], [0.0, 0.0]])


def test_pool_all_equal_window_sends_everything_to_the_top_left(impl):
    x = np.zeros((2, 3, 4, 4))
    dx = mt.MaxPool2d(2)
    dx.forward(x)
    grad = dx.backward(np.ones((2, 3, 2, 2)))
    assert grad.sum() == 2 * 3 * 4
    np.testing.assert_array_equal(grad[0, 0], [[1, 0, 1, 0], [0, 0, 0, 0],
                                               [1, 0, 1, 0], [0, 0, 0, 0]])


def test_overlapping_windows_accumulate_gradients(impl):
    """k=3, s=1 over a 4x4 input with one large value inside all four windows."""
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 2] = 10.0
    layer = mt.MaxPool2d(3, stride=1)
    out = layer.forward(x)
    assert out.shape == (1, 1, 2, 2) and np.all(out == 10.0)
    dout = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    dx = layer.backward(dout)
    assert dx[0, 0, 1, 2] == 10.0 and dx.sum() == 10.0


def test_pool_ignores_the_rows_no_window_covers(impl):
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    layer = mt.MaxPool2d(2)
    np.testing.assert_array_equal(layer.forward(x)[0, 0], [[6, 8], [16, 18]])
    dx = layer.backward(np.ones((1, 1, 2, 2)))
    assert dx[0, 0, 4].sum() == 0 and dx[0, 0, :, 4].sum() == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pool_preserves_dtype(impl, dtype):
    layer = mt.MaxPool2d(2)
    out = layer.forward(np.ones((1, 2, 4, 4), dtype))
    assert out.dtype == dtype and layer.backward(np.ones(out.shape, dtype)).dtype == dtype


def test_pool_of_an_empty_batch(impl):
    layer = mt.MaxPool2d(2)
    out = layer.forward(np.ones((0, 2, 4, 4)))
    assert out.shape == (0, 2, 2, 2) and layer.backward(out).shape == (0, 2, 4, 4)


def test_pool_without_input_grad_returns_none(impl):
    layer = mt.MaxPool2d(2)
    out = layer.forward(np.ones((1, 2, 4, 4)))
    assert layer.backward(np.ones_like(out), input_grad=False) is None


def test_pool_bad_arguments(impl):
    with pytest.raises(ValueError, match="kernel_size"):
        mt.MaxPool2d(0)
    with pytest.raises(ValueError, match="does not fit"):
        mt.MaxPool2d(3).forward(np.ones((1, 1, 2, 2)))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        mt.MaxPool2d(2).forward(np.ones((4, 4)))
    with pytest.raises(RuntimeError, match="before forward"):
        mt.MaxPool2d(2).backward(np.ones((1, 1, 1, 1)))
