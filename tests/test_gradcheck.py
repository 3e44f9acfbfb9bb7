"""minits.gradcheck itself: it must find broken gradients and say where, in the layers
of either implementation. With its default settings it catches a subtly wrong
backward in a user's subclass of every layer class and of Sequential, a plain
function of minits.layers replaced by a wrong one (the plain layers run exactly
those functions), and a wrong method of a fast twin (check_layer on a twin checks
the fast code)."""

import re

import numpy as np
import pytest
from helpers import away_from_zero, distinct_input, kink_margin

import minits as mt
from minits import fast
from minits.gradcheck import (
    GradientCheckError,
    check_gradient,
    check_layer,
    check_loss,
    directional_derivative,
    numerical_gradient,
)
from minits.layers import conv, pool
from minits.layers.base import store_grads
from minits.layers.conv import conv_backward
from minits.layers.flatten import flatten_backward
from minits.layers.linear import linear_backward
from minits.layers.pool import maxpool_backward


def test_numerical_gradient_of_a_known_function():
    x = np.array([[0.5, -1.0], [2.0, 3.0]])
    grad = numerical_gradient(lambda: np.sum(x ** 3), x)
    np.testing.assert_allclose(grad, 3 * x ** 2, rtol=1e-8)
    np.testing.assert_array_equal(x, [[0.5, -1.0], [2.0, 3.0]])  # restored exactly


def test_numerical_gradient_accepts_a_function_of_x():
    x = np.array([1.0, 2.0])
    np.testing.assert_allclose(mt.gradcheck.numerical_gradient(lambda z: np.sum(z * z), x),
                               [2.0, 4.0], rtol=1e-8)


def test_directional_derivative():
    x = np.array([1.0, 2.0, 3.0])
    v = np.array([1.0, 0.0, -1.0])
    assert np.isclose(directional_derivative(lambda: np.sum(x ** 2), x, v), 2 - 6)


def half_wrong(base):
    """A subclass of the Linear class `base` (plain or fast) whose backward is
    deliberately broken: dW is off by a factor on one entry."""

    class HalfWrongLinear(base):
        def backward(self, dout, *args, **kwargs):
            dx = super().backward(dout, *args, **kwargs)
            self.grads["W"][1, 2] *= 1.01
            return dx

    return HalfWrongLinear


def test_check_layer_finds_a_broken_parameter_gradient_and_names_it(impl):
    layer = half_wrong(type(impl(mt.Linear(1, 1))))(4, 3, dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((5, 4))
    with pytest.raises(GradientCheckError, match=r"W: FAILED; worst element \(1, 2\)"):
        check_layer(layer, x)


def test_check_layer_finds_a_broken_input_gradient(impl):
    class WrongReLU(type(impl(mt.ReLU()))):
        def backward(self, dout, *args, **kwargs):
            return super().backward(dout, *args, **kwargs) * 0.99

    x = np.random.default_rng(1).standard_normal((3, 4)) + 3.0
    with pytest.raises(GradientCheckError, match="x: FAILED"):
        check_layer(WrongReLU(), x)


def test_directional_only_check_also_catches_the_error(impl):
    layer = half_wrong(type(impl(mt.Linear(1, 1))))(4, 3, dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((5, 4))
    results = check_layer(layer, x, elementwise=False, raise_on_failure=False)
    assert [r.ok for r in results] == [True, False]
    assert "along a random direction" in results[1].report()


def test_passing_report_is_readable(impl):
    results = check_layer(impl(mt.Linear(3, 2, dtype=np.float64, rng=0)), np.ones((2, 3)))
    assert all(r.ok for r in results) and results[1].report().startswith("W: ok; worst element")


def test_float32_is_refused_with_a_reason(impl):
    with pytest.raises(TypeError, match="float64"):
        check_layer(impl(mt.Linear(3, 2)), np.ones((2, 3)))
    with pytest.raises(TypeError, match="float64"):
        check_gradient(lambda: 0.0, np.ones(2, np.float32), np.zeros(2))


def test_nan_gradient_is_reported():
    x = np.ones(3)
    with pytest.raises(GradientCheckError, match="NaN"):
        check_gradient(lambda: np.sum(x), x, np.array([1.0, np.nan, 1.0]))


def test_sampled_elementwise_check():
    x = np.random.default_rng(0).standard_normal(1000)
    result = check_gradient(lambda: np.sum(np.sin(x)), x, np.cos(x), max_elements=20)
    assert result.ok
    wrong = np.cos(x) + 1e-3
    with pytest.raises(GradientCheckError):
        check_gradient(lambda: np.sum(np.sin(x)), x, wrong, max_elements=20)


# --- subtly wrong backward passes, caught with the default settings -------------------------
#
# Each is what a user might write in a subclass of a plain layer, reusing the plain
# functions of minits.layers on the cache the plain forward stored.

def conv_backward_wrong_crop(dout, cache):
    """conv_backward, but the padding border is cut off one row and one column too far
    (p + 1 instead of p): dL/dx is shifted by one pixel; dW and db are right."""
    cols, W, (N, C, H, Wd), stride, p = cache
    dx_pad, dW, db = conv_backward(dout, (cols, W, (N, C, H + 2 * p, Wd + 2 * p), stride, 0))
    return dx_pad[:, :, p + 1:p + 1 + H, p + 1:p + 1 + Wd], dW, db


def maxpool_backward_transposed(dout, cache):
    """maxpool_backward, but each window's argmax offset i*k + j read as j*k + i: the
    gradient goes to the transposed position inside the window."""
    argmax, x_shape, k, s = cache
    i, j = np.divmod(argmax, k)
    return maxpool_backward(dout, (j * k + i, x_shape, k, s))


class WrongCropConv2d(mt.Conv2d):
    def backward(self, dout):
        dx, dW, db = conv_backward_wrong_crop(dout, self._cached())
        store_grads(self, dW, db)
        return dx


class TransposedArgmaxMaxPool2d(mt.MaxPool2d):
    def backward(self, dout):
        return maxpool_backward_transposed(dout, self._cached())


class DropLastSampleLinear(mt.Linear):
    """dW sums over the batch but the last sample (an off-by-one); dx and db are right."""

    def backward(self, dout):
        x, W = self._cached()
        dx, _, db = linear_backward(dout, (x, W))
        _, dW, _ = linear_backward(dout[:-1], (x[:-1], W))
        store_grads(self, dW, db)
        return dx


class OutputMaskReLU(mt.ReLU):
    """Masks with the output, max(x, 0) >= 0, instead of x > 0: the gradient passes
    at x <= 0 too."""

    def backward(self, dout):
        out = np.maximum(self._cached(), 0)
        return np.where(out >= 0, dout, 0.0)


class ReversedFlatten(mt.Flatten):
    """Unflattens in the reversed order of the axes, (W, H, C) instead of (C, H, W)."""

    def backward(self, dout):
        N, *rest = self._cached()
        return flatten_backward(dout, (N, *rest[::-1])).transpose(0, 3, 2, 1)


class DiagonalSoftmax(mt.Softmax):
    """p * dout: the Jacobian diag(p) - p p^T without the subtraction of p p^T."""

    def backward(self, dout):
        return self._cached() * dout


class LinearOnlySequential(mt.Sequential):
    """Backward through the layers with parameters only, as if ReLU were the identity."""

    def backward(self, dX):
        d = dX
        for layer in reversed(self.linear_layers()):
            d = layer.backward(d)
        return d


def mlp_layers():
    return mt.models.mlp([6, 5, 4, 3], dtype=np.float64, seed=3).layers


WRONG = {  # name -> (plain class, wrong subclass, constructor arguments, x, wrong gradients)
    "Conv2d_padding_1": (
        mt.Conv2d, WrongCropConv2d,
        dict(in_channels=2, out_channels=3, kernel_size=3, padding=1, bias=True,
             dtype=np.float64, rng=0),
        lambda rng: rng.standard_normal((2, 2, 5, 6)), {"x"}),
    "Conv2d_padding_2_stride_2": (
        mt.Conv2d, WrongCropConv2d,
        dict(in_channels=2, out_channels=2, kernel_size=3, stride=2, padding=2,
             dtype=np.float64, rng=1),
        lambda rng: rng.standard_normal((1, 2, 7, 4)), {"x"}),
    "MaxPool2d": (  # overlapping 3 x 3 windows on a non-square input
        mt.MaxPool2d, TransposedArgmaxMaxPool2d, dict(kernel_size=3, stride=2),
        lambda rng: distinct_input(dict(N=2, C=2, H=7, W=9, seed=2))[0], {"x"}),
    "Linear": (
        mt.Linear, DropLastSampleLinear,
        dict(in_features=4, out_features=3, bias=True, dtype=np.float64, rng=0),
        lambda rng: rng.standard_normal((5, 4)), {"W"}),
    "ReLU": (mt.ReLU, OutputMaskReLU, {},
             lambda rng: away_from_zero(rng.standard_normal((3, 7))), {"x"}),
    "Flatten": (mt.Flatten, ReversedFlatten, {},
                lambda rng: rng.standard_normal((2, 2, 3, 4)), {"x"}),
    "Softmax": (mt.Softmax, DiagonalSoftmax, {},
                lambda rng: rng.standard_normal((3, 5)), {"x"}),
    "Sequential": (  # the layers of an mlp: Flatten, Linear, ReLU, Linear, ReLU, Linear
        mt.Sequential, LinearOnlySequential, None,
        lambda rng: rng.standard_normal((4, 6)), {"x", "1.W", "3.W"}),
}


def make(cls, kwargs):
    return cls(*mlp_layers()) if kwargs is None else cls(**kwargs)


def failed_names(error):
    """The names of the gradients a GradientCheckError reports as FAILED."""
    return set(re.findall(r"^(\S+): FAILED", str(error), flags=re.MULTILINE))


@pytest.mark.parametrize("name", sorted(WRONG))
def test_check_layer_catches_a_subtly_wrong_backward_of_a_users_subclass(impl, name):
    """The plain layer (or its twin) passes on the same input; a user's subclass of it,
    which a twin would not replace (convert leaves subclasses alone), fails with the
    default settings, and exactly the wrong gradients are named."""
    plain_cls, wrong_cls, kwargs, draw, wrong = WRONG[name]
    x = draw(np.random.default_rng(len(name)))
    right = impl(make(plain_cls, kwargs))
    if isinstance(right, mt.Sequential):
        assert kink_margin(right, x) > 1e-3  # finite differences do not cross a kink
    check_layer(right, x)
    layer = make(wrong_cls, kwargs)
    assert impl(layer) is layer
    with pytest.raises(GradientCheckError) as error:
        check_layer(impl(layer), x)
    assert failed_names(error.value) == wrong


def conv_and_pool():
    """A plain Conv2d with padding and a plain MaxPool2d, and an input for each."""
    rng = np.random.default_rng(5)
    layer = mt.Conv2d(2, 3, 3, padding=1, bias=True, dtype=np.float64, rng=5)
    return [(layer, rng.standard_normal((2, 2, 5, 6))),
            (mt.MaxPool2d(3, 2), distinct_input(dict(N=2, C=2, H=7, W=9, seed=5))[0])]


def test_a_wrong_plain_function_is_caught_in_the_plain_layer(monkeypatch):
    """The plain layers run exactly minits.layers.conv.conv_backward and
    minits.layers.pool.maxpool_backward: replacing them with wrong versions makes a plain
    Conv2d and MaxPool2d fail the check, while their fast twins (their own code) pass."""
    layers = conv_and_pool()
    for layer, x in layers:
        check_layer(layer, x)
    monkeypatch.setattr(conv, "conv_backward", conv_backward_wrong_crop)
    monkeypatch.setattr(pool, "maxpool_backward", maxpool_backward_transposed)
    for layer, x in layers:
        assert type(layer) in (mt.Conv2d, mt.MaxPool2d)
        with pytest.raises(GradientCheckError) as error:
            check_layer(layer, x)
        assert failed_names(error.value) == {"x"}
        check_layer(fast.convert(layer), x)


def test_check_layer_on_a_fast_twin_checks_the_fast_code(monkeypatch):
    """A FastConv2d whose input_grad is wrong (one row offset too low, as an off-by-one
    in its row adds) fails the check, blocked or not, while the plain layer it shares
    its parameters with still passes."""
    (layer, x), _ = conv_and_pool()
    right = fast.FastConv2d.input_grad

    def input_grad_off_by_one(self, dout, padded_size):
        dx = right(self, dout, padded_size)
        return np.concatenate([dx[:, :, 1:], np.zeros_like(dx[:, :, :1])], axis=2)

    twins = [fast.convert(layer), fast.FastConv2d.from_plain(layer, block=2)]
    for twin in twins:
        check_layer(twin, x)
    monkeypatch.setattr(fast.FastConv2d, "input_grad", input_grad_off_by_one)
    for twin in twins:
        with pytest.raises(GradientCheckError) as error:
            check_layer(twin, x)
        assert failed_names(error.value) == {"x"}
    check_layer(layer, x)


# ----------------------------------------------------------------------------- check_loss

def _loss_case(bias=True):
    model = mt.models.mlp([5, 4, 3], bias=bias, seed=3, dtype=np.float64)
    x = np.random.default_rng(4).standard_normal((6, 5))
    return model, x, np.array([0, 1, 2, 0, 1, 2])


@pytest.mark.parametrize("make", [
    lambda: mt.losses.TwoScale(eta=1e6, R1=2.0, R2=20.0),
    lambda: mt.losses.OneScale(R1=3.0, confidence="normalized"),
    lambda: mt.losses.TwoScaleSeparation(eta=1e6, scale="trained", R0=2.0),
    lambda: mt.losses.TwoScaleSeparation(eta=1e6, scale="live"),
    lambda: mt.losses.CrossEntropy(),
], ids=["two-scale", "one-scale", "separation-trained", "separation-live", "cross-entropy"])
def test_check_loss_passes_every_loss_and_names_its_scales(make):
    model, x, y = _loss_case()
    loss = make()
    results = check_loss(loss, model, x, y)
    names = [r.name for r in results]
    assert names[:2] == ["1.W", "1.b"] and set(names[len(names) - len(loss.grads):]) == \
        set(loss.grads)
    assert all(r.ok for r in results)


class _ScaleGradDoubled(mt.losses.TwoScale):
    def backward(self):
        super().backward()
        self.grads["R2"] *= 2


class _ChainRuleDropped(mt.losses.OneScale):
    """A loss whose gradient misses the chain rule through alpha_hat (D7)."""

    def backward(self):
        self._check_backward()
        model = self._model
        with mt.scale.at_normalized_params(model) as (_, c):
            model.backward(self._dX_hat)
        for layer in model.linear_layers():
            for g in layer.grads.values():
                g *= c


def _classified(model, x):
    """Labels the model gets right, and their confidences, all > 0 (sorted)."""
    y = model.forward(x).argmax(axis=1)
    return y, np.sort(mt.scale.confidence(model.forward(x), y))


def test_check_loss_finds_a_wrong_scale_gradient_and_a_wrong_model_gradient():
    model, x, _ = _loss_case()
    y, delta = _classified(model, x)
    eta = float(delta[2] + delta[3]) / 2  # objects in both cases, none near eta
    with pytest.raises(GradientCheckError, match=r"R2: FAILED; worst element \(0,\)"):
        check_loss(_ScaleGradDoubled(eta=eta, R1=2.0, R2=20.0), model, x, y)
    with pytest.raises(GradientCheckError, match=r"1.W: FAILED"):
        check_loss(_ChainRuleDropped(R1=3.0, fixed=True), model, x, y)


def test_check_loss_refuses_a_point_at_the_threshold():
    model, x, _ = _loss_case(bias=False)
    y, delta = _classified(model, x)
    loss = mt.losses.TwoScale(eta=float(delta[2]), R1=2.0, R2=20.0)  # one object at eta
    with pytest.raises(ValueError, match="moved object .* to the other case"):
        check_loss(loss, model, x, y)
