"""Conv2d under both implementations: naive loops, finite differences, the im2col
definition, dtypes and errors. Fast-only levers (output blocking, work arrays):
here where they change what a FastConv2d accepts, and tests/test_layers_fastpath.py;
fast == plain: tests/test_layers_impl.py."""

import numpy as np
import pytest
import reference as ref
from helpers import Impl, conv_cases, make_conv
from hypothesis import given
from hypothesis import strategies as st

import minits as mt
from minits import fast
from minits.gradcheck import check_layer
from minits.layers.conv import conv_backward, conv_forward
from minits.layers.im2col import col2im, im2col


@given(case=conv_cases())
def test_conv_matches_naive_loops(impl, case):
    layer, x, rng = make_conv(case, impl)
    out = layer.forward(x)
    b = layer.params.get("b")
    expected = ref.conv_forward(x, layer.params["W"], b, case["stride"], case["padding"])
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)

    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    dx_ref, dW_ref, db_ref = ref.conv_backward(dout, x, layer.params["W"], case["stride"],
                                               case["padding"])
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], dW_ref, rtol=1e-12, atol=1e-12)
    if case["bias"]:
        np.testing.assert_allclose(layer.grads["b"], db_ref, rtol=1e-12, atol=1e-12)


@given(case=conv_cases(max_side=7))
def test_conv_backward_matches_finite_differences(impl, case):
    layer, x, _ = make_conv(case, impl)
    check_layer(layer, x, seed=case["seed"])  # element-wise, input and every parameter


@given(conv_cases(max_side=6))
def test_plain_conv_functions_match_naive_loops(case):
    """conv_forward / conv_backward called directly, CS231n style, without the layer."""
    layer, x, rng = make_conv(case, Impl("plain"))
    W, b, s, p = layer.params["W"], layer.params.get("b"), case["stride"], case["padding"]
    out, cache = conv_forward(x, W, b, s, p)
    np.testing.assert_allclose(out, ref.conv_forward(x, W, b, s, p), rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    dx, dW, db = conv_backward(dout, cache)
    for got, want in zip((dx, dW, db), ref.conv_backward(dout, x, W, s, p), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_conv_output_size_formula(impl):
    layer = impl(mt.Conv2d(2, 3, 3, stride=2, padding=1))
    out = layer.forward(np.zeros((5, 2, 7, 10), np.float32))
    assert out.shape == (5, 3, (7 + 2 - 3) // 2 + 1, (10 + 2 - 3) // 2 + 1) == (5, 3, 4, 5)


def test_im2col_worked_example():
    """The example of docs/layers.md: a 1-channel 3x3 image, 2x2 kernel, stride 1."""
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # (C, N, H, W)
    cols = im2col(x, 2, 1)
    # rows: kernel offsets (0,0) (0,1) (1,0) (1,1); columns: output positions y, x
    np.testing.assert_array_equal(cols, [[1, 2, 4, 5],
                                         [2, 3, 5, 6],
                                         [4, 5, 7, 8],
                                         [5, 6, 8, 9]])
    # col2im adds back: the centre pixel is seen by all four windows
    back = col2im(np.ones_like(cols), x.shape, 2, 1)
    np.testing.assert_array_equal(back[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


def test_im2col_is_the_offset_definition():
    """cols[(c, i, j), (n, y, x)] = x[c, n, s*y + i, s*x + j], checked entry by entry."""
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 8))  # (C, N, H, W)
    k, s = 3, 2
    cols = im2col(x, k, s).reshape(2, k, k, 3, 3, 3)
    for c, i, j, n, y, xx in np.ndindex(cols.shape):
        assert cols[c, i, j, n, y, xx] == x[c, n, s * y + i, s * xx + j]


@given(st.integers(1, 3), st.integers(1, 3), st.integers(3, 7), st.integers(1, 3),
       st.integers(1, 3))
def test_col2im_is_the_adjoint_of_im2col(C, N, side, k, s):
    """<im2col(x), c> == <x, col2im(c)> for all x, c: what makes conv backward right."""
    rng = np.random.default_rng(C * 100 + N * 10 + side)
    x = rng.standard_normal((C, N, side, side + 1))
    cols = im2col(x, k, s)
    c = rng.standard_normal(cols.shape)
    assert np.isclose(np.sum(cols * c), np.sum(x * col2im(c, x.shape, k, s)), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_preserves_dtype(impl, dtype):
    layer = impl(mt.Conv2d(3, 4, 3, padding=1, bias=True, dtype=dtype, rng=0))
    x = np.ones((2, 3, 6, 6), dtype)
    out = layer.forward(x)
    dx = layer.backward(np.ones(out.shape, dtype))
    assert out.dtype == dx.dtype == layer.grads["W"].dtype == layer.grads["b"].dtype == dtype


def test_conv_refuses_silent_upcast_and_bad_shapes(impl):
    layer = impl(mt.Conv2d(3, 4, 3))
    with pytest.raises(TypeError, match="float64.*float32"):
        layer.forward(np.ones((1, 3, 5, 5)))
    with pytest.raises(ValueError, match="channels"):
        layer.forward(np.ones((1, 2, 5, 5), np.float32))
    with pytest.raises(ValueError, match="does not fit"):
        layer.forward(np.ones((1, 3, 2, 2), np.float32))
    with pytest.raises(ValueError, match="dimensions"):
        layer.forward(np.ones((3, 5, 5), np.float32))
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.ones((1, 4, 3, 3), np.float32))
    cls = type(layer)  # the constructor's checks, in the class of this implementation
    with pytest.raises(ValueError, match="stride"):
        cls(3, 4, 3, stride=0)
    with pytest.raises(ValueError, match="padding"):
        cls(3, 4, 3, padding=-1)


def test_fast_conv_refuses_a_bad_block():
    """Output blocking is the fast layer's (the plain Conv2d has no such argument)."""
    for bad in (0, True, 1.5):  # True: a flag, not a width
        with pytest.raises(ValueError, match="block"):
            fast.FastConv2d(3, 4, 3, block=bad)
        with pytest.raises(ValueError, match="block"):
            fast.FastConv2d.from_plain(mt.Conv2d(3, 4, 3), block=bad)
    with pytest.raises(TypeError, match="block"):
        mt.Conv2d(3, 4, 3, block=2)


def test_conv_of_an_empty_batch(impl):
    """N = 0 (e.g. the last chunk of an empty split): empty output and input
    gradient, and a zero weight gradient (an empty sum); for the fast layer with
    its own choice of output blocking and with blocks of 1 and 3."""
    for block in (None, 1, 3):
        layer = impl(mt.Conv2d(3, 4, 3, padding=1), block=block)
        layer.grads["W"][...] = 1.0
        out = layer.forward(np.ones((0, 3, 7, 7), np.float32))
        assert out.shape == (0, 4, 7, 7)
        assert layer.backward(out).shape == (0, 3, 7, 7)
        assert not layer.grads["W"].any()


def test_conv_backward_overwrites_grads(impl):
    layer, x, rng = make_conv(dict(N=2, C=2, F=3, H=5, W=6, k=3, stride=1, padding=1,
                                   bias=True, seed=3), impl)
    dout = rng.standard_normal(layer.forward(x).shape)
    layer.backward(dout)
    first = {k: g.copy() for k, g in layer.grads.items()}
    layer.backward(dout)
    for k in first:
        np.testing.assert_array_equal(layer.grads[k], first[k])


@pytest.mark.parametrize("block", [1, 3])
def test_fast_conv_without_input_grad_still_fills_parameter_grads(block):
    """input_grad=False (the fast layer's; the plain one always returns dL/dx) skips
    only dL/dx: the same dW and db, bit for bit, unblocked and blocked."""
    case = dict(N=2, C=2, F=3, H=5, W=9, k=3, stride=2, padding=0, bias=True, seed=4,
                block=block)
    layer, x, rng = make_conv(case, Impl("fast"))
    assert type(layer) is fast.FastConv2d and layer.block == block
    dout = rng.standard_normal(layer.forward(x).shape)
    full = layer.backward(dout)
    grads = {k: g.copy() for k, g in layer.grads.items()}
    for g in layer.grads.values():
        g[...] = np.nan  # every gradient must be written again
    assert full is not None and layer.backward(dout, input_grad=False) is None
    for k, g in grads.items():
        np.testing.assert_array_equal(layer.grads[k], g)


def test_conv_initialisation_std():
    """W ~ N(0, (gain / sqrt(C k k))^2): the documented initial scale."""
    layer = mt.Conv2d(16, 64, 5, dtype=np.float64, rng=0, gain=2.0)
    assert abs(layer.params["W"].std() - 2.0 / np.sqrt(16 * 25)) < 0.01 * 2.0 / np.sqrt(16 * 25) * 5
    assert abs(layer.params["W"].mean()) < 0.01
