"""Fast-only: the speed levers of the fast layers keep every result exact
(docs/performance.md): pooling before ReLU, reused work arrays, the two-stage
im2col, output blocking, the input gradient without col2im, Flatten's layout.

These tests are about levers the plain layers do not have, so they build the fast
objects of minits.fast directly (and take plain objects or fresh fast ones as their
reference). That fast equals plain, function by function, is tests/test_layers_impl.py.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minits as mt
from minits import fast
from minits.fast.blocking import (
    block_weights,
    choose_block,
    deinterleave,
    fold_weight_grad,
    interleave,
)
from minits.fast.im2col import fast_im2col
from minits.fast.schedule import pool_first_order
from minits.layers import activations, pool
from minits.layers.im2col import col2im


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
    """ReLU, MaxPool2d run as MaxPool2d, ReLU (pool_first_order). Inputs drawn from a
    few levels around 0 make exact ties, windows that are all <= 0, and zeros at the
    kink common: the cases where the two orders could disagree."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-levels, levels + 1, size=(N, 2, 6, 6)).astype(np.float64)
    make = lambda: fast.convert(mt.Sequential(  # noqa: E731
        mt.Conv2d(2, 3, 1, dtype=np.float64, rng=seed), mt.ReLU(), mt.MaxPool2d(2),
        mt.Flatten(), mt.Linear(27, 4, dtype=np.float64, rng=seed + 1)))
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


def test_schedule_leaves_other_orders_and_subclasses_alone(monkeypatch):
    class MyReLU(fast.FastReLU):
        pass

    assert pool_first_order([fast.FastMaxPool2d(2), fast.FastReLU()]) == [0, 1]
    assert pool_first_order([MyReLU(), fast.FastMaxPool2d(2)]) == [0, 1]
    assert fast.convert(mt.Sequential(mt.ReLU(), mt.MaxPool2d(2), mt.ReLU(),
                                      mt.MaxPool2d(2))).schedule() == [1, 0, 3, 2]
    # the plain Sequential runs the layers as listed: ReLU's function before pooling's
    calls = []

    def spy(name, function):
        def recorded(*args):
            calls.append(name)
            return function(*args)
        return recorded

    for module, name in ((activations, "relu_forward"), (pool, "maxpool_forward")):
        monkeypatch.setattr(module, name, spy(name, getattr(module, name)))
    mt.Sequential(mt.ReLU(), mt.MaxPool2d(2)).forward(np.ones((1, 1, 2, 2)))
    assert calls == ["relu_forward", "maxpool_forward"]


def test_conv_work_arrays_survive_two_forwards_and_a_new_batch_size():
    """The column matrix is reused between calls: backward must use the columns of
    the *last* forward, and a smaller last batch must get arrays of its own size."""
    rng = np.random.default_rng(0)
    layer = fast.FastConv2d(2, 3, 3, stride=2, padding=1, dtype=np.float64, rng=0)
    fresh = fast.FastConv2d(2, 3, 3, stride=2, padding=1, dtype=np.float64, rng=0)
    for N in (4, 4, 1, 3):
        x_other, x = rng.standard_normal((N, 2, 7, 5)), rng.standard_normal((N, 2, 7, 5))
        layer.forward(x_other)
        out = layer.forward(x)  # the last forward is the one backward must differentiate
        dout = rng.standard_normal(out.shape)
        dx = layer.backward(dout)
        fresh._work.clear()
        np.testing.assert_array_equal(out, fresh.forward(x))
        np.testing.assert_array_equal(dx, fresh.backward(dout))
        np.testing.assert_array_equal(layer.grads["W"], fresh.grads["W"])


def test_pool_work_arrays_survive_a_new_batch_size():
    """The fast layer's reused arrays, against a fresh fast layer and the plain layer."""
    rng = np.random.default_rng(1)
    layer = fast.FastMaxPool2d(3, stride=2)
    for N in (3, 1, 2):
        x = rng.standard_normal((N, 2, 7, 8))
        out = layer.forward(x)
        dout = rng.standard_normal(out.shape)
        dx = layer.backward(dout)
        for reference in (fast.FastMaxPool2d(3, stride=2), mt.MaxPool2d(3, stride=2)):
            np.testing.assert_array_equal(out, reference.forward(x))
            np.testing.assert_array_equal(dx, reference.backward(dout))


def test_layer_outputs_are_not_overwritten_by_the_next_call():
    """Work arrays never leave a layer: an output kept by the caller stays valid."""
    rng = np.random.default_rng(2)
    for layer in (fast.FastConv2d(2, 3, 3, dtype=np.float64, rng=0),
                  fast.FastConv2d(2, 3, 3, dtype=np.float64, rng=0, block=2),
                  fast.FastMaxPool2d(2)):
        x1, x2 = rng.standard_normal((2, 2, 6, 6)), rng.standard_normal((2, 2, 6, 6))
        out1 = layer.forward(x1)
        kept = out1.copy()
        layer.forward(x2)
        np.testing.assert_array_equal(out1, kept)


def test_im2col_refuses_an_out_array_it_cannot_write_through():
    x = np.zeros((2, 1, 4, 4))
    good = np.empty(2 * 9 * 4)
    assert np.shares_memory(fast_im2col(x, 3, 1, out=good), good)
    bad = np.empty((8, 9)).T  # (9, 8), Fortran-ordered: merging its axes needs a copy
    with pytest.raises(ValueError, match="cannot be viewed"):
        fast_im2col(x, 3, 1, out=bad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flatten_backward_keeps_the_input_layout_and_dout_dtype(dtype):
    xc = np.random.default_rng(3).standard_normal((3, 2, 4, 4)).astype(dtype)  # (C, N, H, W)
    x = xc.transpose(1, 0, 2, 3)  # a channel-first view, as FastConv2d hands out
    layer = fast.FastFlatten()
    out = layer.forward(x)
    dx = layer.backward(out)
    assert dx.dtype == dtype and dx.shape == x.shape
    assert dx.strides == x.strides  # channel-first again: the layers below expect it
    np.testing.assert_array_equal(dx, x)


def test_conv_and_pool_hand_out_channel_first_views():
    """The fast layers' outputs are transposed views of (C, N, H, W) arrays, and
    they read such views without a copy (lever 1 of docs/performance.md)."""
    x = np.random.default_rng(5).standard_normal((2, 3, 8, 8))
    conv_out = fast.FastConv2d(3, 4, 3, dtype=np.float64, rng=0).forward(x)
    pool_out = fast.FastMaxPool2d(2).forward(conv_out)
    for out in (conv_out, pool_out):
        assert out.transpose(1, 0, 2, 3).flags["C_CONTIGUOUS"]


def test_two_stage_im2col_matches_the_offset_loop_definition():
    """cols[c, i, j, n, y, x] = x[c, n, i + sh*y, j + sw*x], for square kernels and
    strides and for the rectangular windows and strides of output blocking."""
    rng = np.random.default_rng(4)
    for kernel, stride in ((1, 1), (2, 1), (3, 2), (2, 3), (5, 1),
                           ((2, 3), (1, 2)), ((5, 8), (1, 4)), ((3, 4), (2, 3))):
        (kh, kw), (sh, sw) = np.broadcast_to(kernel, 2), np.broadcast_to(stride, 2)
        x = rng.standard_normal((2, 3, 11, 13))
        cols = fast_im2col(x, kernel, stride)
        Ho, Wo = (11 - kh) // sh + 1, (13 - kw) // sw + 1
        expected = np.empty((2, kh, kw, 3, Ho, Wo))
        for i in range(kh):
            for j in range(kw):
                expected[:, i, j] = x[:, :, i:i + sh * Ho:sh, j:j + sw * Wo:sw]
        np.testing.assert_array_equal(cols, expected.reshape(cols.shape))


@given(F=st.integers(1, 3), C=st.integers(1, 3), k=st.integers(1, 4), s=st.integers(1, 3),
       block=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_blocking_functions_come_in_adjoint_pairs(F, C, k, s, block, seed):
    """<block_weights(W), V> = <W, fold_weight_grad(V)> and
    <interleave(A), B> = <A, deinterleave(B)>: what makes the blocked backward right."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((F, C, k, k))
    Wb = block_weights(W, block, s)
    assert Wb.shape == (F * block, C * k * (k + s * (block - 1)))
    V = rng.standard_normal(Wb.shape)
    folded = fold_weight_grad(V, block, s, out=np.empty_like(W))
    assert np.isclose(np.sum(Wb * V), np.sum(W * folded), rtol=1e-12)

    Wo = int(rng.integers(1, 9))
    A = rng.standard_normal((F, block, 2, 3, -(-Wo // block)))
    B = rng.standard_normal((F, 2, 3, Wo))
    out = interleave(A, np.empty((F, 2, 3, Wo)))
    back = deinterleave(B, np.full(A.shape, np.nan))  # every entry must be written
    assert np.isclose(np.sum(out * B), np.sum(A * back), rtol=1e-12)


def test_block_weights_place_each_filter_at_its_shift():
    W = np.arange(1.0, 5.0).reshape(1, 1, 2, 2)  # one 2x2 filter [[1, 2], [3, 4]]
    # b = 2, stride 1: windows 2x3; filter (f, p) sits at column offset p
    np.testing.assert_array_equal(block_weights(W, 2, 1), [[1, 2, 0, 3, 4, 0],
                                                          [0, 1, 2, 0, 3, 4]])


def test_choose_block_rule():
    assert choose_block(6, 5, 1, 28) == 4    # LeNet-5 conv1: 24 rows, 4 divides 28
    assert choose_block(6, 5, 1, 27) == 3    # 3 divides 27
    assert choose_block(6, 5, 1, 29) == 3    # no divisor in 3..5: a partial last block
    assert choose_block(16, 5, 1, 10) == 1   # conv2: 16 rows already
    assert choose_block(6, 2, 2, 28) == 1    # windows do not overlap: nothing to share
    assert choose_block(1, 3, 1, 5) == 5     # never more outputs per column than the width
    assert choose_block(2, 3, 1, 2) == 2


@given(C=st.integers(1, 3), F=st.integers(1, 3), N=st.integers(1, 3), k=st.integers(1, 4),
       s=st.integers(1, 3), p=st.integers(0, 2), extra_h=st.integers(0, 3),
       extra_w=st.integers(0, 3), seed=st.integers(0, 2**16))
def test_conv_input_gradient_equals_col2im_of_the_column_gradient(C, F, N, k, s, p, extra_h,
                                                                  extra_w, seed):
    """FastConv2d.input_grad (shifted copies of dout, one product, row adds) is
    col2im(W2.T @ dout2), the plain adjoint of im2col, for any stride."""
    rng = np.random.default_rng(seed)
    layer = fast.FastConv2d(C, F, k, stride=s, padding=p, dtype=np.float64, rng=seed)
    Hp, Wp = k + extra_h, k + extra_w + s  # padded sizes, with leftover rows/columns
    Ho, Wo = (Hp - k) // s + 1, (Wp - k) // s + 1
    dout = rng.standard_normal((N, F, Ho, Wo)).transpose(1, 0, 2, 3)  # channel-first view
    dx = layer.input_grad(dout, (Hp, Wp))
    dcols = layer.params["W"].reshape(F, -1).T @ dout.reshape(F, -1)
    np.testing.assert_allclose(dx, col2im(dcols, (C, N, Hp, Wp), k, s), rtol=1e-12, atol=1e-12)
