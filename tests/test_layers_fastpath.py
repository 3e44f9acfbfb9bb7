"""The speed levers of minits/layers keep every result exact (docs/performance.md):
pooling before ReLU, reused work arrays, the two-stage im2col, Flatten's layout."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minits as mt
from minits.layers.im2col import im2col


def list_order(model, x, dX):
    """Forward and backward in the order the layers are listed (no reordering)."""
    for layer in model.layers:
        x = layer.forward(x)
    d = dX
    for layer in reversed(model.layers):
        d = layer.backward(d)
    return x, d


@given(seed=st.integers(0, 2**16), levels=st.integers(2, 5), N=st.integers(1, 3))
def test_pooling_before_relu_gives_the_same_output_and_gradients(seed, levels, N):
    """ReLU, MaxPool2d run as MaxPool2d, ReLU (Sequential.schedule). Inputs drawn from a
    few levels around 0 make exact ties, windows that are all <= 0, and zeros at the
    kink common: the cases where the two orders could disagree."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-levels, levels + 1, size=(N, 2, 6, 6)).astype(np.float64)
    make = lambda: mt.Sequential(  # noqa: E731
        mt.Conv2d(2, 3, 1, dtype=np.float64, rng=seed), mt.ReLU(), mt.MaxPool2d(2),
        mt.Flatten(), mt.Linear(27, 4, dtype=np.float64, rng=seed + 1))
    model, reference = make(), make()
    assert model.schedule() == [0, 2, 1, 3, 4]
    # integer weights keep every product exact, so ties survive the convolution
    for m in (model, reference):
        m.layers[0].params["W"][...] = np.round(m.layers[0].params["W"] * 2)
    dX = rng.standard_normal((N, 4))
    out = model.forward(x)
    dx = model.backward(dX)
    out_ref, dx_ref = list_order(reference, x, dX)
    np.testing.assert_array_equal(out, out_ref)
    np.testing.assert_array_equal(dx, dx_ref)
    for a, b in zip(model.linear_layers(), reference.linear_layers(), strict=True):
        np.testing.assert_array_equal(a.grads["W"], b.grads["W"])


def test_schedule_leaves_other_orders_and_subclasses_alone():
    class MyReLU(mt.ReLU):
        pass

    assert mt.Sequential(mt.MaxPool2d(2), mt.ReLU()).schedule() == [0, 1]
    assert mt.Sequential(MyReLU(), mt.MaxPool2d(2)).schedule() == [0, 1]
    assert mt.Sequential(mt.ReLU(), mt.MaxPool2d(2), mt.ReLU(), mt.MaxPool2d(2)).schedule() \
        == [1, 0, 3, 2]


def test_conv_work_arrays_survive_two_forwards_and_a_new_batch_size():
    """The column matrix is reused between calls: backward must use the columns of
    the *last* forward, and a smaller last batch must get arrays of its own size."""
    rng = np.random.default_rng(0)
    layer = mt.Conv2d(2, 3, 3, stride=2, padding=1, dtype=np.float64, rng=0)
    fresh = mt.Conv2d(2, 3, 3, stride=2, padding=1, dtype=np.float64, rng=0)
    for N in (4, 4, 1, 3):
        x_other, x = rng.standard_normal((N, 2, 7, 5)), rng.standard_normal((N, 2, 7, 5))
        layer.forward(x_other)
        out = layer.forward(x)  # the last forward is the one backward must differentiate
        dout = rng.standard_normal(out.shape)
        dx = layer.backward(dout)
        fresh._scratch.clear()
        np.testing.assert_array_equal(out, fresh.forward(x))
        np.testing.assert_array_equal(dx, fresh.backward(dout))
        np.testing.assert_array_equal(layer.grads["W"], fresh.grads["W"])


def test_pool_work_arrays_survive_a_new_batch_size():
    rng = np.random.default_rng(1)
    layer = mt.MaxPool2d(3, stride=2)
    for N in (3, 1, 2):
        x = rng.standard_normal((N, 2, 7, 8))
        out = layer.forward(x)
        dout = rng.standard_normal(out.shape)
        fresh = mt.MaxPool2d(3, stride=2)
        np.testing.assert_array_equal(out, fresh.forward(x))
        np.testing.assert_array_equal(layer.backward(dout), fresh.backward(dout))


def test_layer_outputs_are_not_overwritten_by_the_next_call():
    """Work arrays never leave a layer: an output kept by the caller stays valid."""
    rng = np.random.default_rng(2)
    for layer in (mt.Conv2d(2, 3, 3, dtype=np.float64, rng=0), mt.MaxPool2d(2)):
        x1, x2 = rng.standard_normal((2, 2, 6, 6)), rng.standard_normal((2, 2, 6, 6))
        out1 = layer.forward(x1)
        kept = out1.copy()
        layer.forward(x2)
        np.testing.assert_array_equal(out1, kept)


def test_im2col_refuses_an_out_array_it_cannot_write_through():
    x = np.zeros((2, 1, 4, 4))
    good = np.empty(2 * 9 * 4)
    assert np.shares_memory(im2col(x, 3, 1, out=good), good)
    bad = np.empty((8, 9)).T  # (9, 8), Fortran-ordered: merging its axes needs a copy
    with pytest.raises(ValueError, match="cannot be viewed"):
        im2col(x, 3, 1, out=bad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flatten_backward_keeps_the_input_layout_and_dout_dtype(dtype):
    xc = np.random.default_rng(3).standard_normal((3, 2, 4, 4)).astype(dtype)  # (C, N, H, W)
    x = xc.transpose(1, 0, 2, 3)  # a channel-first view, as Conv2d hands out
    layer = mt.Flatten()
    out = layer.forward(x)
    dx = layer.backward(out)
    assert dx.dtype == dtype and dx.shape == x.shape
    assert dx.strides == x.strides  # channel-first again: the layers below expect it
    np.testing.assert_array_equal(dx, x)


def test_two_stage_im2col_matches_the_offset_loop_definition():
    """cols[c, i, j, n, y, x] = x[c, n, i + s*y, j + s*x], for several strides."""
    rng = np.random.default_rng(4)
    for k, s in ((1, 1), (2, 1), (3, 2), (2, 3), (5, 1)):
        x = rng.standard_normal((2, 3, 9, 8))
        cols = im2col(x, k, s)
        Ho, Wo = (9 - k) // s + 1, (8 - k) // s + 1
        expected = np.empty((2, k, k, 3, Ho, Wo))
        for i in range(k):
            for j in range(k):
                expected[:, i, j] = x[:, :, i:i + s * Ho:s, j:j + s * Wo:s]
        np.testing.assert_array_equal(cols, expected.reshape(cols.shape))
