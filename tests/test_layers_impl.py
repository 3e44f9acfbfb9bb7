"""The fast layers equal the plain ones, function by function, and an object's class
decides which code runs: a plain object runs the plain functions whatever else
exists; its fast twin (minits.fast.convert) runs the fast code on the same
parameter arrays; convert leaves a user's subclass and Softmax alone.

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

import copy
from collections import Counter

import numpy as np
import pytest
from helpers import Impl, conv_cases, make_conv, pool_cases, seeds
from hypothesis import example, given
from hypothesis import strategies as st

import minits as mt
from minits import fast
from minits.fast.blocking import choose_block
from minits.fast.im2col import fast_im2col
from minits.layers import activations, conv, flatten, linear, pool
from minits.layers.im2col import im2col
from minits.training import train_step

DTYPES = st.sampled_from([np.float32, np.float64])

PLAIN_FUNCTIONS = {  # module -> the plain functions its layer class runs
    conv: ("conv_forward", "conv_backward"),
    pool: ("maxpool_forward", "maxpool_backward"),
    activations: ("relu_forward", "relu_backward"),
    flatten: ("flatten_forward", "flatten_backward"),
    linear: ("linear_forward", "linear_backward"),
}

FAST_CLASSES = (fast.FastConv2d, fast.FastMaxPool2d, fast.FastReLU, fast.FastFlatten,
                fast.FastLinear)


def run(layer, x, dout, **kw):
    """Forward and backward of one layer (or model): (out, dx, {name: grad}) as copies
    (a twin writes into the grads arrays of its plain object)."""
    out = layer.forward(x).copy()
    dx = layer.backward(dout, **kw)
    return out, None if dx is None else dx.copy(), {k: g.copy() for k, g in layer.grads.items()}


def plain_and_fast(layer, x, dout, **kw):
    """run() of the plain layer, then of its fast twin."""
    return run(layer, x, dout), run(fast.convert(layer), x, dout, **kw)


def assert_close_to_rounding(a, b, dtype, magnitude=None):
    """|a - b| <= a few units of rounding of dtype, relative to the array's largest entry,
    or entry by entry to `magnitude`, the sum of the absolute values of the terms each
    entry adds up (a sum that cancels keeps the rounding of its largest terms)."""
    tol = 1e-12 if dtype == np.float64 else 1e-5
    if magnitude is None:
        scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-30)
        np.testing.assert_allclose(a, b, rtol=0, atol=tol * scale)
    else:
        error, allowed = np.abs(np.subtract(a, b, dtype=np.float64)), tol * magnitude + 1e-30
        assert np.all(error <= allowed), f"off by {np.max(error / allowed):.3g} x the tolerance"


def magnitudes(layer, x, dout):
    """run() of a copy of the plain layer on |W|, |b|, |x| and |dout|: entry by entry, the
    sum of the absolute values of the terms each result of run(layer, x, dout) adds up."""
    absolute = copy.deepcopy(layer)
    for p in absolute.params.values():
        np.abs(p, out=p)
    return run(absolute, np.abs(x), np.abs(dout))


@given(st.integers(1, 5), st.integers(1, 7), st.integers(1, 6), st.booleans(), DTYPES, seeds)
def test_linear_fast_equals_plain_bit_for_bit(N, d_in, d_out, bias, dtype, seed):
    layer = mt.Linear(d_in, d_out, bias=bias, dtype=dtype, rng=seed)
    rng = np.random.default_rng(seed)
    if bias:
        layer.params["b"][...] = rng.standard_normal(d_out)
    x = rng.standard_normal((N, d_in)).astype(dtype)
    dout = rng.standard_normal((N, d_out)).astype(dtype)
    (o1, dx1, g1), (o2, dx2, g2) = plain_and_fast(layer, x, dout)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(dx1, dx2)
    for name in g1:
        np.testing.assert_array_equal(g1[name], g2[name])


@given(st.integers(1, 4), st.integers(1, 9), DTYPES, seeds)
def test_relu_fast_equals_plain(N, d, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, size=(N, d)).astype(dtype)  # zeros at the kink are common
    dout = rng.standard_normal((N, d)).astype(dtype)
    (o1, dx1, _), (o2, dx2, _) = plain_and_fast(mt.ReLU(), x, dout)
    assert o1.tobytes() == o2.tobytes()
    np.testing.assert_array_equal(dx1, dx2)  # == treats -0.0 and 0.0 as equal


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), seeds)
def test_flatten_fast_equals_plain(N, C, H, W, seed):
    x = np.random.default_rng(seed).standard_normal((C, N, H, W)).transpose(1, 0, 2, 3)
    dout = np.random.default_rng(seed + 1).standard_normal((N, C * H * W))
    (o1, dx1, _), (o2, dx2, _) = plain_and_fast(mt.Flatten(), x, dout)
    assert o1.tobytes() == o2.tobytes()
    np.testing.assert_array_equal(dx1, dx2)


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9),
       st.integers(1, 4), st.integers(1, 3))
def test_fast_im2col_equals_plain_bit_for_bit(C, N, H, W, k, s):
    x = np.random.default_rng(H * 10 + W).standard_normal((C, N, H + k - 1, W + k - 1))
    assert fast_im2col(x, k, s).tobytes() == im2col(x, k, s).tobytes()


@given(conv_cases(), DTYPES)
@example(dict(N=2, C=1, F=1, H=1, W=7, k=1, stride=1, padding=0, bias=False, block=2,
              seed=559), np.float32)  # dW = 0.0178 from terms of order 1: cancellation
def test_conv_fast_equals_plain(case, dtype):
    """Block 1: forward, dW and db bit for bit, dx to rounding; block > 1: to rounding
    (of the terms each entry sums)."""
    layer, x, rng = make_conv(case, Impl("plain"), dtype)
    twin = Impl("fast")(layer, block=case["block"])
    dout = rng.standard_normal(layer.output_shape(x.shape)).astype(dtype)
    (o1, dx1, g1), (o2, dx2, g2) = run(layer, x, dout), run(twin, x, dout)
    mo, mdx, mg = magnitudes(layer, x, dout)
    assert_close_to_rounding(dx2, dx1, dtype, mdx)
    _, F, _, Wo = layer.output_shape(x.shape)
    block = twin.block or choose_block(F, case["k"], case["stride"], Wo)
    bits = min(block, Wo) == 1  # the block the fast forward uses
    for got, plain, magnitude in ((o2, o1, mo), *((g2[n], g1[n], mg[n]) for n in g1)):
        if bits:
            np.testing.assert_array_equal(got, plain)
        else:
            assert_close_to_rounding(got, plain, dtype, magnitude)


@given(pool_cases(), st.booleans(), DTYPES)
def test_pool_fast_equals_plain_bit_for_bit(case, ties, dtype):
    rng = np.random.default_rng(case["seed"])
    shape = (case["N"], case["C"], case["H"], case["W"])
    x = (rng.integers(-1, 2, size=shape) if ties else rng.standard_normal(shape)).astype(dtype)
    layer = mt.MaxPool2d(case["k"], case["s"])
    dout = rng.standard_normal(layer.output_shape(shape)).astype(dtype)
    (o1, dx1, _), (o2, dx2, _) = plain_and_fast(layer, x, dout)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(dx1, dx2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("input_grad", [True, False])
def test_sequential_fast_equals_plain(dtype, input_grad):
    """The plain Sequential against its FastSequential twin (whose backward may skip
    dL/dx of the data: then every parameter gradient is still the same)."""
    rng = np.random.default_rng(0)
    for name, model, x in (
            ("mlp", mt.models.mlp([12, 7, 5, 4], bias=True, dtype=dtype, seed=1), (3, 12)),
            ("lenet5", mt.models.lenet5(dtype=dtype, seed=1), (2, 3, 32, 32))):
        x = rng.standard_normal(x).astype(dtype)
        dX = rng.standard_normal((len(x), 4 if name == "mlp" else 10)).astype(dtype)
        results = {}
        for impl_name, obj, kw in (("plain", model, {}),
                                   ("fast", fast.convert(model), {"input_grad": input_grad})):
            X = obj.forward(x).copy()
            dx = obj.backward(dX, **kw)
            assert (dx is None) == (impl_name == "fast" and not input_grad)
            results[impl_name] = [X, dx] + [g.copy() for *_, g in obj.parameters()]
        for plain, got in zip(results["plain"], results["fast"], strict=True):
            if got is None:
                continue
            if name == "mlp":
                np.testing.assert_array_equal(got, plain)
            else:
                assert_close_to_rounding(got, plain, dtype)


# --- an object's class decides what runs ---------------------------------------------------

def lenet_step(model, x, dX):
    """(logits, dx, weight gradients) of one forward and backward, as copies."""
    X = model.forward(x).copy()
    dx = np.array(model.backward(dX))
    return [X, dx] + [g.copy() for *_, g in model.parameters()]


def lenet_batch(seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((2, 3, 32, 32)), rng.standard_normal((2, 10))


def test_a_plain_object_runs_the_plain_code_whatever_else_exists(monkeypatch):
    """A plain LeNet-5 whose fast twin exists and has run calls exactly the plain
    functions of its layers' modules (each as often as it has such layers), never a fast
    class's method, and gives the numbers of a plain model that never had a twin."""
    x, dX = lenet_batch(1)
    model = mt.models.lenet5(dtype=np.float64, seed=3)
    lenet_step(fast.convert(model), x, dX)
    expected = lenet_step(mt.models.lenet5(dtype=np.float64, seed=3), x, dX)

    calls = Counter()

    def spy(name, function):
        def counted(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return counted

    def refuse(*args, **kwargs):
        raise AssertionError("a plain object ran fast code")

    for module, names in PLAIN_FUNCTIONS.items():
        for name in names:
            monkeypatch.setattr(module, name, spy(name, getattr(module, name)))
    for cls in (*FAST_CLASSES, fast.FastSequential):
        for method in ("forward", "backward"):
            monkeypatch.setattr(cls, method, refuse)
    got = lenet_step(model, x, dX)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    per_direction = dict(conv=2, maxpool=2, relu=3, flatten=1, linear=2)
    assert calls == {f"{name}_{way}": n for name, n in per_direction.items()
                     for way in ("forward", "backward")}


def test_a_twin_runs_the_fast_code(monkeypatch):
    """fast.convert gives a FastSequential of the fast layer classes, which keep work
    arrays and never call the plain functions: with those made to fail, the twin still
    gives the plain model's numbers (to rounding: its convolutions are blocked)."""
    x, dX = lenet_batch(2)
    model = mt.models.lenet5(dtype=np.float64, seed=4)
    expected = lenet_step(model, x, dX)
    twin = fast.convert(model)
    assert type(twin) is fast.FastSequential
    assert [type(layer) for layer in twin.layers] == [fast.TWINS[type(layer)]
                                                      for layer in model.layers]

    def refuse(*args, **kwargs):
        raise AssertionError("the fast twin ran a plain function")

    for module, names in PLAIN_FUNCTIONS.items():
        for name in names:
            monkeypatch.setattr(module, name, refuse)
    got = lenet_step(twin, x, dX)
    for a, b in zip(got, expected, strict=True):
        assert_close_to_rounding(a, b, np.float64)
    assert all(layer._work for layer in twin.layers
               if isinstance(layer, (fast.FastConv2d, fast.FastMaxPool2d)))
    assert not any(hasattr(layer, "_work") for layer in model.layers)


def test_a_twin_shares_the_parameter_arrays_with_its_plain_object():
    """The same params and grads dicts, so the same arrays: an in-place update of either
    is seen by the other (doubling W of conv1 doubles the logits exactly: the network is
    positively homogeneous in each layer's weights)."""
    x, _ = lenet_batch(3)
    model = mt.models.lenet5(dtype=np.float64, seed=5)
    twin = fast.convert(model)
    for plain, other in zip(model.layers, twin.layers, strict=True):
        assert other.params is plain.params and other.grads is plain.grads
    X_plain, X_fast = model.forward(x).copy(), twin.forward(x).copy()
    model.layers[0].params["W"] *= 2.0
    np.testing.assert_array_equal(twin.forward(x), 2 * X_fast)
    twin.layers[0].params["W"] *= 0.5
    np.testing.assert_array_equal(model.forward(x), X_plain)


def test_sgd_on_the_twin_trains_the_plain_model():
    """Three SGD steps of a two-scale loss on the fast twins move the plain model's
    parameters and the plain loss's scales (the same arrays, the same dict) as three
    plain steps move those of a copy (to rounding)."""
    rng = np.random.default_rng(6)
    batches = [(rng.standard_normal((8, 1, 16, 16)), rng.integers(0, 4, 8)) for _ in range(3)]

    def make():
        return (mt.models.lenet5(4, in_channels=1, input_size=16, dtype=np.float64, seed=6),
                mt.losses.TwoScale(0.1))

    model, loss = make()
    twin, twin_loss = fast.convert(model), fast.convert(loss)
    assert twin_loss.params is loss.params
    reference, reference_loss = make()
    sgd = mt.SGD(lr=0.1)
    for x, y in batches:
        train_step(twin, twin_loss, sgd, x, y)
        train_step(reference, reference_loss, sgd, x, y)
    initial = make()[0]
    for (_, _, p, _), (_, _, q, _), (_, _, p0, _) in zip(
            model.parameters(), reference.parameters(), initial.parameters(), strict=True):
        assert not np.array_equal(p, p0)  # the plain model moved
        np.testing.assert_allclose(p, q, rtol=1e-10, atol=1e-12)
    assert loss.params.keys() == reference_loss.params.keys() == {"R1", "R2"}
    for name, value in loss.params.items():
        assert value == pytest.approx(reference_loss.params[name], rel=1e-10)


def test_convert_leaves_a_users_subclass_and_softmax_unchanged():
    """A subclass runs its own code (a fast twin would drop it), Softmax has no twin, and
    a fast object is fast already: convert returns each as it is, also inside a model."""

    class MyConv2d(mt.Conv2d):
        pass

    class MyReLU(mt.ReLU):
        pass

    class MySequential(mt.Sequential):
        pass

    class MyCrossEntropy(mt.losses.CrossEntropy):
        pass

    for obj in (MyConv2d(1, 2, 3), MyReLU(), mt.Softmax(), MySequential(mt.ReLU()),
                MyCrossEntropy(), fast.FastLinear(2, 3), fast.FastConv2d(1, 2, 3, block=2)):
        assert fast.convert(obj) is obj
        assert Impl("fast")(obj) is obj
    model = mt.Sequential(MyConv2d(1, 2, 3), mt.ReLU(), mt.Flatten(), mt.Softmax())
    twin = fast.convert(model)
    assert twin.layers[0] is model.layers[0] and twin.layers[3] is model.layers[3]
    assert [type(layer) for layer in twin.layers[1:3]] == [fast.FastReLU, fast.FastFlatten]


def test_convert_of_a_fast_sequential_gives_the_requested_threads():
    model = fast.convert(mt.models.lenet5())
    assert model.threads == 1
    again = fast.convert(model, threads=3)
    assert type(again) is fast.FastSequential and again.threads == 3 and model.threads == 1
    assert all(a is b for a, b in zip(again.layers, model.layers, strict=True))
    assert Impl("fast")(mt.models.lenet5(), threads=2).threads == 2


def test_a_twin_and_its_plain_object_keep_their_own_caches():
    """Forward of the plain model, forward of its twin on another batch, then the two
    backward passes: each backward differentiates its own forward (only the grads arrays
    are shared: each backward overwrites them)."""
    (x1, dX1), (x2, dX2) = lenet_batch(7), lenet_batch(8)
    make = lambda: mt.models.lenet5(dtype=np.float64, seed=9)  # noqa: E731
    expected_plain = lenet_step(make(), x1, dX1)
    expected_fast = lenet_step(fast.convert(make()), x2, dX2)
    model = make()
    twin = fast.convert(model)
    X1 = model.forward(x1).copy()
    X2 = twin.forward(x2).copy()
    got_plain = [X1, np.array(model.backward(dX1))] + [g.copy() for *_, g in model.parameters()]
    got_fast = [X2, np.array(twin.backward(dX2))] + [g.copy() for *_, g in twin.parameters()]
    for got, expected in ((got_plain, expected_plain), (got_fast, expected_fast)):
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a, b)
