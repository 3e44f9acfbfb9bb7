"""SGD, Eq. (6), (14), (16), (18): the parameter and scale updates, and the
paper's eta = 100 observation (Sec. 3.3) as an exact identity. The steps follow the
losses' gradients in both implementations (the ``impl`` fixture: plain model and loss,
or their fast twins)."""

import warnings

import numpy as np
import pytest
from helpers import make_model
from hypothesis import given
from hypothesis import strategies as st

import minits as mt
from minits.losses import CrossEntropy, OneScale, TwoScale, TwoScaleSeparation, TwoScaleWrapper

LOSSES = {
    "two_scale": lambda: TwoScale(0.5),
    "fixed": lambda: TwoScale(0.5, fixed=True),
    "one_scale": lambda: OneScale(),
    "separation": lambda: TwoScaleSeparation(0.5),
    "separation_trained": lambda: TwoScaleSeparation(0.5, scale="trained"),
    "separation_live": lambda: TwoScaleSeparation(0.5, scale="live"),
    "wrapper_mse": lambda: TwoScaleWrapper("mse", 0.5),
    "cross_entropy": lambda: CrossEntropy(),
}


@pytest.mark.parametrize("which", sorted(LOSSES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_step_is_eq14(which, dtype, impl):
    plain, x, y = make_model("mlp", 1, dtype=dtype)
    model, loss = impl(plain), impl(LOSSES[which]())
    loss.forward(model, x, y)
    loss.backward()
    lr = 0.1
    expected = [(layer.params[name], layer.params[name] - lr * layer.grads[name])
                for layer in model.linear_layers() for name in layer.params]
    expected_scales = {name: loss.params[name] - lr * g for name, g in loss.grads.items()}
    before = dict(loss.params)
    assert mt.SGD(lr).step(model, loss) == []
    for p, e in expected:
        np.testing.assert_array_equal(p, e)
        assert p.dtype == dtype
    for name, value in loss.params.items():
        assert value == expected_scales.get(name, before[name])
        assert isinstance(value, float)
    if which == "fixed":
        assert loss.grads == {} and loss.params == before


def test_fixed_scales_never_move_while_alpha_does(impl):
    """Eq. (16): only alpha is trained."""
    plain, x, y = make_model("mlp", 2)
    model, loss, sgd = impl(plain), impl(TwoScale(0.01, fixed=True)), mt.SGD(0.5)
    W0 = model.linear_layers()[0].params["W"].copy()
    loss.forward(model, x, y)
    scales = dict(loss.params)
    for _ in range(20):
        loss.forward(model, x, y)
        loss.backward()
        sgd.step(model, loss)
    assert loss.params == scales
    assert not np.array_equal(model.linear_layers()[0].params["W"], W0)


@given(st.integers(0, 10_000))
def test_R2_and_Rs_grow_when_an_object_is_well_classified(impl, seed):
    """Sec. 2.3: dL/dR2 < 0 and dL/dRs <= 0 on well-classified objects, so SGD increases them."""
    plain, x, y = make_model("mlp", seed)
    model = impl(plain)
    y = np.argmax(plain.forward(x), axis=1)  # every object correctly classified
    for loss, name in ((TwoScale(1e-3), "R2"), (TwoScaleSeparation(1e-3), "Rs")):
        loss = impl(loss)
        loss.forward(model, x, y)
        loss.backward()
        assert loss.last.num_second > 0
        before = loss.params[name]
        mt.SGD(0.1).step(model, loss)
        assert loss.params[name] > before


@pytest.mark.parametrize("which", sorted(LOSSES))
def test_a_small_step_decreases_the_batch_loss(which, impl):
    """The update goes downhill in (alpha, scales) together: sign check of Eq. (14), (18)."""
    plain, x, y = make_model("mlp", 3)
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((16, 6)), rng.integers(0, 4, size=16)
    model, loss = impl(plain), impl(LOSSES[which]())
    before = loss.forward(model, x, y)
    loss.backward()
    second = loss.last.second.copy()
    mt.SGD(1e-3).step(model, loss)
    after = loss.forward(model, x, y)
    np.testing.assert_array_equal(loss.last.second, second)  # same cases of Eq. (13)
    assert after < before


def _scale_about_to_cross_zero():
    """A TwoScale loss after forward and backward whose next step takes R1 = 0.001 to -0.099."""
    model, x, y = make_model("mlp", 4)
    loss = TwoScale(0.5, R1=1e-3)
    loss.forward(model, x, y)
    loss.backward()
    loss.grads["R1"] = 1.0
    return model, loss


def test_scales_that_reach_zero_are_reported():
    """docs/decisions.md#D17: a scale <= 0 is reported (a ScaleWarning naming it and its
    value; returned and recorded), not hidden, and the step is still taken."""
    model, loss = _scale_about_to_cross_zero()
    sgd = mt.SGD(0.1)
    W = model.linear_layers()[0].params["W"]
    expected_W = W - 0.1 * model.linear_layers()[0].grads["W"]
    with pytest.warns(mt.ScaleWarning, match=r"scale R1 = -0\.099 .* <= 0") as caught:
        assert sgd.step(model, loss) == ["R1"]
    assert caught[0].filename == __file__  # it points at the caller's sgd.step(...)
    assert issubclass(mt.ScaleWarning, RuntimeWarning)
    assert sgd.nonpositive_scales == ["R1"]
    assert loss.params["R1"] < 0 and not loss.scales_positive
    np.testing.assert_array_equal(W, expected_W)
    loss.params["R1"], loss.grads = 1.0, {"R1": 0.0, "R2": float("nan")}
    with pytest.warns(mt.ScaleWarning, match="R2 = nan"):
        assert sgd.step(model, loss) == ["R2"]
    assert sgd.step(model) == [] and sgd.nonpositive_scales == []


def test_raise_on_a_nonpositive_scale_changes_nothing():
    """SGD(on_nonpositive_scale="raise") raises ScaleWarning before the step: alpha and the
    scales stay as they were, so the state that led there can be inspected."""
    model, loss = _scale_about_to_cross_zero()
    sgd = mt.SGD(0.1, on_nonpositive_scale="raise")
    before = [p.copy() for layer in model.linear_layers() for p in layer.params.values()]
    scales = dict(loss.params)
    with pytest.raises(mt.ScaleWarning, match="R1 = -0.099"):
        sgd.step(model, loss)
    after = [p for layer in model.linear_layers() for p in layer.params.values()]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert loss.params == scales


def test_ignore_on_a_nonpositive_scale_is_silent():
    """"ignore" (what the training loop uses: it reports the run once itself)."""
    model, loss = _scale_about_to_cross_zero()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mt.SGD(0.1, on_nonpositive_scale="ignore").step(model, loss) == ["R1"]
    assert loss.params["R1"] < 0
    with pytest.raises(ValueError, match="on_nonpositive_scale must be one of"):
        mt.SGD(0.1, on_nonpositive_scale="loud")


@pytest.mark.parametrize("lr", [0, -0.1, float("inf"), float("nan")])
def test_sgd_refuses_bad_learning_rates(lr):
    with pytest.raises(ValueError, match="lr must be a positive"):
        mt.SGD(lr)
    with pytest.raises(TypeError, match="lr must be a number"):
        mt.SGD("0.1")


def train(loss, seed, steps, impl, batch=16):
    """SGD on a small learnable problem, the model and the loss in implementation impl;
    returns the model, per-batch accuracies and the number of objects that took the
    second case of Eq. (13) over the whole run."""
    rng = np.random.default_rng(seed)
    teacher = rng.standard_normal((10, 4))
    data = rng.standard_normal((256, 10))
    labels = np.argmax(data @ teacher, axis=1)
    model = impl(mt.models.mlp([10, 12, 4], seed=seed, dtype=np.float64))
    loss = impl(loss)
    sgd = mt.SGD(0.1)
    accuracies, second = [], 0
    order = np.random.default_rng(seed + 1)
    for _ in range(steps):
        idx = order.choice(len(data), size=batch, replace=False)
        loss.forward(model, data[idx], labels[idx])
        loss.backward()
        assert sgd.step(model, loss) == []
        accuracies.append(loss.last.accuracy)
        second += loss.last.num_second
    return model, accuracies, second


@pytest.mark.parametrize("seed", [0, 1])
def test_huge_eta_two_scale_is_the_one_scale_baseline_on_every_batch(seed, impl):
    """Sec. 3.3: with eta = 100 the two-scale network "had the exact same accuracy on each
    batch" as the traditional one. With eta huge no object ever takes the R2 case, and
    TwoScale runs the same float64 arithmetic as OneScale: identical runs."""
    two = TwoScale(1e12)
    model_two, acc_two, second = train(two, seed, 200, impl)
    one = OneScale()
    model_one, acc_one, _ = train(one, seed, 200, impl)
    assert second == 0
    assert acc_two == acc_one
    assert acc_two[-1] > acc_two[0]  # it did learn something
    for a, b in zip(model_two.linear_layers(), model_one.linear_layers(), strict=True):
        np.testing.assert_allclose(a.params["W"], b.params["W"], rtol=1e-12, atol=0)
    assert two.params["R1"] == pytest.approx(one.params["R1"], rel=1e-12)
    assert two.params["R2"] == 10 * mt.scale_R(mt.models.mlp([10, 12, 4], seed=seed,
                                                             dtype=np.float64))


def test_small_eta_differs_from_the_one_scale_baseline(impl):
    """The identity above is not vacuous: a small eta changes the run."""
    _, acc_two, second = train(TwoScale(0.01), 0, 50, impl)
    model_one, acc_one, _ = train(OneScale(), 0, 50, impl)
    assert second > 0
    model_two, _, _ = train(TwoScale(0.01), 0, 50, impl)
    assert not np.allclose(model_two.linear_layers()[0].params["W"],
                           model_one.linear_layers()[0].params["W"])
