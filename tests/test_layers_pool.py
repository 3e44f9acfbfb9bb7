"""MaxPool2d: naive loops, finite differences away from ties, and the tie rule."""

import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st

import minits as mt
from minits.gradcheck import check_layer


@st.composite
def pool_cases(draw):
    """Overlapping (s < k), tiling (s = k) and gapped (s > k) windows, sides that
    the windows do not tile, batch 1-4, channels 1-3."""
    k = draw(st.integers(1, 4))
    s = draw(st.integers(1, 4))
    H = draw(st.integers(k, 9))
    W = draw(st.integers(k, 9))
    return dict(N=draw(st.integers(1, 4)), C=draw(st.integers(1, 3)), H=H, W=W, k=k, s=s,
                seed=draw(st.integers(0, 2**16)))


def distinct_input(case):
    """A shuffled grid of distinct values in [-1, 1), at least 2e-3 apart: no ties, and
    no near-ties that a finite-difference step (1e-6) could flip."""
    shape = (case["N"], case["C"], case["H"], case["W"])
    size = int(np.prod(shape))
    rng = np.random.default_rng(case["seed"])
    return rng.permutation(size).reshape(shape) * (2.0 / size) - 1.0, rng


@given(pool_cases())
def test_pool_matches_naive_loops(case):
    x, rng = distinct_input(case)
    layer = mt.MaxPool2d(case["k"], case["s"])
    out = layer.forward(x)
    np.testing.assert_array_equal(out, ref.maxpool_forward(x, case["k"], case["s"]))
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(layer.backward(dout),
                               ref.maxpool_backward(dout, x, case["k"], case["s"]), atol=1e-15)


@given(pool_cases())
def test_pool_backward_matches_finite_differences(case):
    x, _ = distinct_input(case)
    check_layer(mt.MaxPool2d(case["k"], case["s"]), x, seed=case["seed"])


def test_pool_tie_goes_to_first_maximum_in_row_major_order():
    x = np.array([[[[1.0, 3.0],
                    [3.0, 3.0]]]])
    layer = mt.MaxPool2d(2)
    assert layer.forward(x)[0, 0, 0, 0] == 3.0
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 1, 1)))[0, 0],
                                  [[0.0, 1.0], [0.0, 0.0]])


def test_pool_all_equal_window_sends_everything_to_the_top_left():
    x = np.zeros((2, 3, 4, 4))
    dx = mt.MaxPool2d(2)
    dx.forward(x)
    grad = dx.backward(np.ones((2, 3, 2, 2)))
    assert grad.sum() == 2 * 3 * 4
    np.testing.assert_array_equal(grad[0, 0], [[1, 0, 1, 0], [0, 0, 0, 0],
                                               [1, 0, 1, 0], [0, 0, 0, 0]])


def test_overlapping_windows_accumulate_gradients():
    """k=3, s=1 over a 4x4 input with one large value inside all four windows."""
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 2] = 10.0
    layer = mt.MaxPool2d(3, stride=1)
    out = layer.forward(x)
    assert out.shape == (1, 1, 2, 2) and np.all(out == 10.0)
    dout = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    dx = layer.backward(dout)
    assert dx[0, 0, 1, 2] == 10.0 and dx.sum() == 10.0


def test_pool_ignores_the_rows_no_window_covers():
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    layer = mt.MaxPool2d(2)
    np.testing.assert_array_equal(layer.forward(x)[0, 0], [[6, 8], [16, 18]])
    dx = layer.backward(np.ones((1, 1, 2, 2)))
    assert dx[0, 0, 4].sum() == 0 and dx[0, 0, :, 4].sum() == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pool_preserves_dtype(dtype):
    layer = mt.MaxPool2d(2)
    out = layer.forward(np.ones((1, 2, 4, 4), dtype))
    assert out.dtype == dtype and layer.backward(np.ones(out.shape, dtype)).dtype == dtype


def test_pool_bad_arguments():
    with pytest.raises(ValueError, match="kernel_size"):
        mt.MaxPool2d(0)
    with pytest.raises(ValueError, match="does not fit"):
        mt.MaxPool2d(3).forward(np.ones((1, 1, 2, 2)))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        mt.MaxPool2d(2).forward(np.ones((4, 4)))
