"""The public tests of the coursework tasks (docs/coursework.md), one pytest marker per
task, on small fixed shapes:

    python -m pytest -m conv-backward        # one task
    python -m pytest tests/test_tasks.py     # all of them

In the project they check the solutions; in a student copy (``minits assignment make``)
they check the student's code. Forward passes are compared with a naive loop written
here, backward passes with finite differences (minits.gradcheck). The grader runs more
tests than these: more shapes, both sides of every branch.
"""

import numpy as np
import pytest

import minits as mt
from minits.gradcheck import check_gradient, check_layer, check_loss
from minits.layers.activations import relu_backward, relu_forward
from minits.layers.conv import conv_backward, conv_forward
from minits.layers.im2col import col2im, im2col
from minits.layers.linear import linear_forward
from minits.layers.pool import maxpool_backward, maxpool_forward
from minits.losses import cross_entropy, dL_dR_eq15, dL_dR_general, second_branch
from minits.losses.separation import separation_value_and_grad
from minits.losses.two_scale import at_scales
from minits.scale import confidence_terms, layer_sq_norms, normalization_factor, scale_R


def task(name):
    """The pytest marker of a task: @task("im2col") lets `pytest -m im2col` select it."""
    return getattr(pytest.mark, name)


def rng():
    return np.random.default_rng(0)


def small_mlp(bias=False):
    return mt.models.mlp([6, 5, 4, 3], bias=bias, seed=1, dtype=np.float64)


@task("linear-forward")
def test_linear_forward_matches_a_loop():
    x, W, b = rng().standard_normal((2, 3)), rng().standard_normal((4, 3)), np.arange(4.0)
    out, _ = linear_forward(x, W, b)
    expected = np.array([[sum(x[n, d] * W[f, d] for d in range(3)) + b[f] for f in range(4)]
                         for n in range(2)])
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    np.testing.assert_allclose(linear_forward(x, W)[0], expected - b, rtol=1e-12)


@task("linear-backward")
@pytest.mark.parametrize("bias", [False, True])
def test_linear_backward_passes_the_gradient_check(bias):
    layer = mt.Linear(3, 4, bias=bias, dtype=np.float64, rng=rng())
    check_layer(layer, rng().standard_normal((2, 3)))


@task("relu-backward")
def test_relu_backward_passes_the_gradient_check_and_is_zero_at_the_kink():
    x = np.array([[-2.0, -0.5, 0.5, 2.0], [1.5, -1.0, 0.25, -0.25]])
    check_layer(mt.ReLU(), x)
    dout = np.ones((1, 3))
    _, cache = relu_forward(np.array([[-1.0, 0.0, 1.0]]))
    np.testing.assert_array_equal(relu_backward(dout, cache), [[0.0, 0.0, 1.0]])


@task("softmax-cross-entropy")
def test_cross_entropy_values_and_gradient():
    z, y = rng().standard_normal((3, 4)), np.array([0, 3, 1])
    values, dz = cross_entropy(z, y)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(values, -np.log(p[np.arange(3), y]), rtol=1e-12)
    check_gradient(lambda: float(np.sum(cross_entropy(z, y)[0])), z, dz, name="z")


@task("softmax-cross-entropy")
def test_cross_entropy_is_finite_at_huge_logits():
    values, dz = cross_entropy(np.array([[1000.0, 0.0], [0.0, 1000.0]]), np.array([0, 0]))
    np.testing.assert_allclose(values, [0.0, 1000.0])
    np.testing.assert_allclose(dz, [[0.0, 0.0], [-1.0, 1.0]])


@task("im2col")
def test_im2col_matches_a_loop():
    x_pad, k, s = rng().standard_normal((2, 1, 5, 6)), 3, 2
    cols = im2col(x_pad, k, s)
    Ho, Wo = 2, 2
    expected = np.array([[x_pad[c, n, s * y + i, s * xo + j]
                          for n in range(1) for y in range(Ho) for xo in range(Wo)]
                         for c in range(2) for i in range(k) for j in range(k)])
    np.testing.assert_array_equal(cols, expected)


@task("conv-backward")
@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1), (1, 2)])
def test_conv_backward_passes_the_gradient_check(stride, padding):
    layer = mt.Conv2d(2, 3, 3, stride=stride, padding=padding, bias=True, dtype=np.float64,
                      rng=rng())
    check_layer(layer, rng().standard_normal((2, 2, 5, 5)))


@task("conv-backward")
def test_col2im_is_the_adjoint_of_im2col():
    # <im2col(x), c> = <x, col2im(c)> for every x and c: overlapping windows (s < k) add
    x, c = rng().standard_normal((2, 1, 5, 5)), rng().standard_normal((2 * 9, 4))
    assert np.isclose(np.vdot(im2col(x, 3, 2), c), np.vdot(x, col2im(c, x.shape, 3, 2)))
    out, cache = conv_forward(x.transpose(1, 0, 2, 3), rng().standard_normal((1, 2, 3, 3)),
                              None, 2, 1)
    assert conv_backward(np.ones_like(out), cache)[0].shape == (1, 2, 5, 5)


@task("maxpool-forward")
def test_maxpool_forward_overlapping_windows_and_ties():
    x = np.array([[[[1.0, 2.0, 2.0, 0.0], [4.0, 4.0, 1.0, 3.0], [0.0, 1.0, 5.0, 5.0]]]])
    out, cache = maxpool_forward(x, 2, 1)  # 2x2 windows every pixel: they overlap
    np.testing.assert_array_equal(out, [[[[4.0, 4.0, 3.0], [4.0, 5.0, 5.0]]]])
    # offset i*k + j of each window's first maximum (row-major): ties go to the first
    np.testing.assert_array_equal(cache[0], [[[[2, 2, 3], [0, 3, 2]]]])


@task("maxpool-backward")
def test_maxpool_backward_passes_the_gradient_check_and_sends_ties_to_the_first():
    x = rng().permutation(2 * 5 * 5).reshape(1, 2, 5, 5) / 10.0  # distinct values
    check_layer(mt.MaxPool2d(3, stride=2), x)
    ties = np.ones((1, 1, 2, 2))
    out, cache = maxpool_forward(ties, 2, 2)
    np.testing.assert_array_equal(maxpool_backward(np.ones_like(out), cache),
                                  [[[[1.0, 0.0], [0.0, 0.0]]]])


@task("confidence")
def test_confidence_terms_true_logit_and_runner_up():
    X = np.array([[1.0, 3.0, 2.0], [5.0, 0.0, 4.0]])
    true, runner_up = confidence_terms(X, np.array([0, 0]))
    np.testing.assert_array_equal(true, [1.0, 5.0])
    np.testing.assert_array_equal(runner_up, [3.0, 4.0])


@task("scale-r")
def test_scale_R_is_the_product_of_the_layer_norms():
    model = small_mlp(bias=True)
    norms = [np.sqrt(sum(np.sum(p ** 2) for p in layer.params.values()))
             for layer in model.linear_layers()]
    np.testing.assert_allclose(layer_sq_norms(model), np.square(norms), rtol=1e-12)
    assert np.isclose(scale_R(model), np.prod(norms), rtol=1e-12)
    assert np.isclose(normalization_factor(model), np.prod(norms) ** (-1 / 3), rtol=1e-12)


@task("alpha-hat-backward")
@pytest.mark.parametrize("bias", [False, True])
def test_the_gradient_through_alpha_hat_passes_the_loss_check(bias):
    model = small_mlp(bias)
    x, y = rng().standard_normal((4, 6)), np.array([0, 1, 2, 1])
    check_loss(mt.losses.OneScale(R1=3.0, confidence="normalized", fixed=True), model, x, y)


@task("eq13-split")
def test_the_split_at_eta_and_the_scale_of_each_case():
    delta = np.array([0.5, 1.0, 1.5])
    np.testing.assert_array_equal(second_branch(delta, 1.0), [False, True, True])
    X_hat, second = np.eye(3), np.array([False, True, True])
    R_k, *_ = at_scales(cross_entropy, X_hat, np.arange(3), 2.0, 20.0, second)
    np.testing.assert_array_equal(R_k, [2.0, 20.0, 20.0])


@task("eq15")
def test_eq15_is_the_derivative_in_R():
    X_hat, y = rng().standard_normal((3, 4)), np.array([2, 0, 3])

    def total(R):
        return float(np.sum(cross_entropy(R[0] * X_hat, y)[0]))

    R = np.array([1.7])
    check_gradient(total, R, np.array([np.sum(dL_dR_eq15(X_hat, y, R[0]))]), name="R")
    np.testing.assert_allclose(dL_dR_general(X_hat, y, 1.7), dL_dR_eq15(X_hat, y, 1.7),
                               rtol=1e-12)


@task("eq17-gradients")
def test_eq17_gradients_in_Rs_and_R():
    X_hat, y = rng().standard_normal((4, 3)), np.array([0, 1, 2, 0])
    second = np.array([False, True, True, False])
    _, _, dRs, dR = separation_value_and_grad(X_hat, y, 2.0, 10.0, second)

    def total(R, Rs):
        return float(np.sum(separation_value_and_grad(X_hat, y, R, Rs, second)[0]))

    check_gradient(lambda v: total(2.0, v[0]), np.array([10.0]), np.array([dRs]), name="Rs")
    check_gradient(lambda v: total(v[0], 10.0), np.array([2.0]), np.array([dR]), name="R")


@task("eq14-sgd")
def test_sgd_moves_the_trainable_scales():
    model = small_mlp()
    loss = mt.losses.TwoScale(eta=0.1, R1=2.0, R2=20.0)
    loss.forward(model, rng().standard_normal((4, 6)), np.array([0, 1, 2, 1]))
    loss.backward()
    g = dict(loss.grads)
    mt.SGD(lr=0.5).step(model, loss)
    assert loss.params == {"R1": 2.0 - 0.5 * g["R1"], "R2": 20.0 - 0.5 * g["R2"]}
