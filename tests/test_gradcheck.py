"""minits.gradcheck itself: it must find broken gradients and say where, under either
implementation of the layers it checks."""

import numpy as np
import pytest

import minits as mt
from minits.gradcheck import (
    GradientCheckError,
    check_gradient,
    check_layer,
    directional_derivative,
    numerical_gradient,
)


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


class HalfWrongLinear(mt.Linear):
    """A deliberately broken backward: dW is off by a factor on one entry."""

    def backward(self, dout, input_grad=True):
        dx = super().backward(dout, input_grad)
        self.grads["W"][1, 2] *= 1.01
        return dx


def test_check_layer_finds_a_broken_parameter_gradient_and_names_it(impl):
    layer = HalfWrongLinear(4, 3, dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((5, 4))
    with pytest.raises(GradientCheckError, match=r"W: FAILED; worst element \(1, 2\)"):
        check_layer(layer, x)


def test_check_layer_finds_a_broken_input_gradient(impl):
    class WrongReLU(mt.ReLU):
        def backward(self, dout, input_grad=True):
            return super().backward(dout) * 0.99

    x = np.random.default_rng(1).standard_normal((3, 4)) + 3.0
    with pytest.raises(GradientCheckError, match="x: FAILED"):
        check_layer(WrongReLU(), x)


def test_directional_only_check_also_catches_the_error(impl):
    layer = HalfWrongLinear(4, 3, dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((5, 4))
    results = check_layer(layer, x, elementwise=False, raise_on_failure=False)
    assert [r.ok for r in results] == [True, False]
    assert "along a random direction" in results[1].report()


def test_passing_report_is_readable(impl):
    results = check_layer(mt.Linear(3, 2, dtype=np.float64, rng=0), np.ones((2, 3)))
    assert all(r.ok for r in results) and results[1].report().startswith("W: ok; worst element")


def test_float32_is_refused_with_a_reason():
    with pytest.raises(TypeError, match="float64"):
        check_layer(mt.Linear(3, 2), np.ones((2, 3)))
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
