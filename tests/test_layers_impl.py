"""The fast layers equal the plain ones, function by function, and the switch
between them (minits.backend) is read at forward and kept by backward.

What "equal" means, per function (the fast functions' docstrings promise the same):
    Linear                      bit for bit
    ReLU                        forward bit for bit; backward equal values (a zero may
                                carry dout's sign)
    Flatten                     bit for bit (values; the fast gradient keeps x's layout)
    im2col (square windows)     bit for bit
    Conv2d, block b = 1         forward, dW, db bit for bit; dx to rounding
    Conv2d, block b > 1         to rounding
    MaxPool2d                   bit for bit (values), ties included
    Sequential                  mlp: bit for bit; lenet5: to rounding (its convolutions)
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import IMPLS, conv_cases, make_conv, pool_cases, seeds

import minits as mt
from minits.layers.fast_blocking import choose_block
from minits.layers.fast_im2col import fast_im2col
from minits.layers.im2col import im2col

DTYPES = st.sampled_from([np.float32, np.float64])


def run(layer, x, dout, impl_name, input_grad=True):
    """Forward and backward under one implementation: (out, dx, {name: grad})."""
    with mt.using(impl_name):
        out = layer.forward(x)
        dx = layer.backward(dout, input_grad=input_grad)
    return out.copy(), dx, {k: g.copy() for k, g in layer.grads.items()}


def assert_close_to_rounding(a, b, dtype):
    """|a - b| <= a few units of rounding of dtype, relative to the array's largest entry."""
    tol = 1e-12 if dtype == np.float64 else 1e-5
    scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-30)
    np.testing.assert_allclose(a, b, rtol=0, atol=tol * scale)


@given(st.integers(1, 5), st.integers(1, 7), st.integers(1, 6), st.booleans(), DTYPES, seeds)
def test_linear_fast_equals_plain_bit_for_bit(N, d_in, d_out, bias, dtype, seed):
    layer = mt.Linear(d_in, d_out, bias=bias, dtype=dtype, rng=seed)
    rng = np.random.default_rng(seed)
    if bias:
        layer.params["b"][...] = rng.standard_normal(d_out)
    x = rng.standard_normal((N, d_in)).astype(dtype)
    dout = rng.standard_normal((N, d_out)).astype(dtype)
    (o1, dx1, g1), (o2, dx2, g2) = (run(layer, x, dout, i) for i in IMPLS)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(dx1, dx2)
    for name in g1:
        np.testing.assert_array_equal(g1[name], g2[name])


@given(st.integers(1, 4), st.integers(1, 9), DTYPES, seeds)
def test_relu_fast_equals_plain(N, d, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, size=(N, d)).astype(dtype)  # zeros at the kink are common
    dout = rng.standard_normal((N, d)).astype(dtype)
    (o1, dx1, _), (o2, dx2, _) = (run(mt.ReLU(), x, dout, i) for i in IMPLS)
    assert o1.tobytes() == o2.tobytes()
    np.testing.assert_array_equal(dx1, dx2)  # == treats -0.0 and 0.0 as equal


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), seeds)
def test_flatten_fast_equals_plain(N, C, H, W, seed):
    x = np.random.default_rng(seed).standard_normal((C, N, H, W)).transpose(1, 0, 2, 3)
    dout = np.random.default_rng(seed + 1).standard_normal((N, C * H * W))
    (o1, dx1, _), (o2, dx2, _) = (run(mt.Flatten(), x, dout, i) for i in IMPLS)
    assert o1.tobytes() == o2.tobytes()
    np.testing.assert_array_equal(dx1, dx2)


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9),
       st.integers(1, 4), st.integers(1, 3))
def test_fast_im2col_equals_plain_bit_for_bit(C, N, H, W, k, s):
    x = np.random.default_rng(H * 10 + W).standard_normal((C, N, H + k - 1, W + k - 1))
    assert fast_im2col(x, k, s).tobytes() == im2col(x, k, s).tobytes()


@given(conv_cases(), DTYPES)
def test_conv_fast_equals_plain(case, dtype):
    """Block 1: forward, dW and db bit for bit, dx to rounding; block > 1: to rounding."""
    layer, x, rng = make_conv(case, dtype)
    dout = rng.standard_normal(layer.output_shape(x.shape)).astype(dtype)
    (o1, dx1, g1), (o2, dx2, g2) = (run(layer, x, dout, i) for i in IMPLS)
    assert_close_to_rounding(dx2, dx1, dtype)
    _, F, _, Wo = layer.output_shape(x.shape)
    block = case["block"] or choose_block(F, case["k"], case["stride"], Wo)
    bits = min(block, Wo) == 1  # the block the fast forward uses
    for fast, plain in ((o2, o1), *((g2[n], g1[n]) for n in g1)):
        if bits:
            np.testing.assert_array_equal(fast, plain)
        else:
            assert_close_to_rounding(fast, plain, dtype)


@given(pool_cases(), st.booleans(), DTYPES)
def test_pool_fast_equals_plain_bit_for_bit(case, ties, dtype):
    rng = np.random.default_rng(case["seed"])
    shape = (case["N"], case["C"], case["H"], case["W"])
    x = (rng.integers(-1, 2, size=shape) if ties else rng.standard_normal(shape)).astype(dtype)
    layer = mt.MaxPool2d(case["k"], case["s"])
    dout = rng.standard_normal(layer.output_shape(shape)).astype(dtype)
    (o1, dx1, _), (o2, dx2, _) = (run(layer, x, dout, i) for i in IMPLS)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(dx1, dx2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("input_grad", [True, False])
def test_sequential_fast_equals_plain(dtype, input_grad):
    rng = np.random.default_rng(0)
    for name, model, x in (
            ("mlp", mt.models.mlp([12, 7, 5, 4], bias=True, dtype=dtype, seed=1), (3, 12)),
            ("lenet5", mt.models.lenet5(dtype=dtype, seed=1), (2, 3, 32, 32))):
        x = rng.standard_normal(x).astype(dtype)
        dX = rng.standard_normal((len(x), 4 if name == "mlp" else 10)).astype(dtype)
        results = {}
        for impl_name in IMPLS:
            with mt.using(impl_name):
                X = model.forward(x)
                dx = model.backward(dX, input_grad=input_grad)
            assert (dx is None) == (not input_grad)
            results[impl_name] = [X, dx] + [g.copy() for *_, g in model.parameters()]
        for plain, fast in zip(results["plain"], results["fast"], strict=True):
            if plain is None:
                continue
            if name == "mlp":
                np.testing.assert_array_equal(fast, plain)
            else:
                assert_close_to_rounding(fast, plain, dtype)


def lenet_step(model, x, dX):
    """(logits, dx, weight gradients) of one forward and backward."""
    X = model.forward(x)
    dx = model.backward(dX)
    return [X.copy(), dx] + [g.copy() for *_, g in model.parameters()]


@pytest.mark.parametrize("built, ran", [("plain", "fast"), ("fast", "plain")])
def test_a_model_built_under_one_implementation_runs_under_the_other(built, ran):
    """The implementation is read when the model runs, not when it is built."""
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32))
    dX = np.random.default_rng(2).standard_normal((2, 10))
    with mt.using(built):
        model = mt.models.lenet5(dtype=np.float64, seed=3)
    with mt.using(ran):
        got = lenet_step(model, x, dX)
        expected = lenet_step(mt.models.lenet5(dtype=np.float64, seed=3), x, dX)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    uses_work_arrays = any(layer._scratch for layer in model.layers)
    assert uses_work_arrays == (ran == "fast")  # only the fast layers keep work arrays


@pytest.mark.parametrize("forward_impl, backward_impl", [("plain", "fast"), ("fast", "plain")])
def test_backward_uses_the_implementation_of_its_forward(forward_impl, backward_impl):
    """Switching between forward and backward changes nothing: the whole step runs
    under the forward's implementation, bit for bit (conv1 is blocked in the fast
    one, so the two implementations' gradients differ in rounding)."""
    x = np.random.default_rng(4).standard_normal((2, 3, 32, 32))
    dX = np.random.default_rng(5).standard_normal((2, 10))
    with mt.using(forward_impl):
        expected = lenet_step(mt.models.lenet5(dtype=np.float64, seed=6), x, dX)
    model = mt.models.lenet5(dtype=np.float64, seed=6)
    with mt.using(forward_impl):
        X = model.forward(x)
    with mt.using(backward_impl):
        dx = model.backward(dX)
    got = [X, dx] + [g.copy() for *_, g in model.parameters()]
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    conv1 = model.layers[0]
    with mt.using(forward_impl):
        conv1.forward(x)
    mt.use(backward_impl)  # the process-wide switch, not only a with-block
    assert conv1.backward(np.ones(conv1.output_shape(x.shape))).shape == x.shape


def test_the_two_implementations_really_differ_in_rounding():
    """The test above can tell the implementations apart: conv1's blocked product
    (fast) and its plain product give different weight gradients in the last bits."""
    x = np.random.default_rng(4).standard_normal((2, 3, 32, 32))
    dX = np.random.default_rng(5).standard_normal((2, 10))
    grads = {}
    for impl_name in IMPLS:
        with mt.using(impl_name):
            grads[impl_name] = lenet_step(mt.models.lenet5(dtype=np.float64, seed=6), x, dX)[2]
    assert not np.array_equal(grads["plain"], grads["fast"])
    assert_close_to_rounding(grads["fast"], grads["plain"], np.float64)
