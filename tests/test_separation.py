"""Eq. (17)-(18), the separation loss, in each reading of its first scale R
(docs/decisions.md#D11): "fixed" R = R(alpha^0) (default), "trained" R a scale of its
own, "live" R = R(alpha). Every test in both implementations (the ``impl`` fixture)."""


import numpy as np
import pytest
import reference as ref
from helpers import (
    MODES,
    assert_loss_gradients,
    away_from_threshold,
    kink_distance,
    literal_sign_applies,
    make_model,
    model_case,
    split_eta,
)
from hypothesis import assume, given
from hypothesis import strategies as st

import minits as mt
from minits.losses import CrossEntropy, OneScale, TwoScaleSeparation
from minits.scale import confidence, normalized_logits, scale_R

SCALES = ("fixed", "trained", "live")


@pytest.mark.parametrize("scale", SCALES)
@given(data=st.data(), mode=st.sampled_from(MODES), Rs=st.floats(0.5, 20))
def test_value_and_every_gradient_of_each_reading(impl, scale, data, mode, Rs):
    """The value is Eq. (17) with that reading's R; dL/dalpha, dL/dRs and (trained)
    dL/dR match central differences; grads hold Rs, and R when trained."""
    kind, seed, plain, x, y = model_case(data.draw)
    assume(kink_distance(plain, x) > 1e-5)
    # a trained R away from R(alpha^0), so that the readings differ
    R0 = scale_R(plain) * data.draw(st.floats(0.5, 2)) if scale == "trained" else None
    model = impl(plain)
    loss = impl(TwoScaleSeparation(1.0, Rs=Rs, scale=scale, confidence=mode, R0=R0))
    loss.forward(model, x, y)
    loss.eta = split_eta(loss.last.confidence, data.draw)
    assume(away_from_threshold(loss.last.confidence, loss.eta))
    value = assert_loss_gradients(loss, model, x, y, seed, f"separation {scale} {kind}")
    assert loss.forward(model, x, y) == value  # (the differences left alpha as it was)
    R = scale_R(plain) if scale == "live" else loss.params["R"]
    expected = ref.eq17(normalized_logits(plain, x), y, R, Rs, loss.last.second)
    assert value == pytest.approx(float(np.mean(expected)), rel=1e-10)
    assert set(loss.grads) == ({"R", "Rs"} if scale == "trained" else {"Rs"})
    assert set(loss.params) == ({"Rs"} if scale == "live" else {"R", "Rs"})
    assert loss.last.scales == {"R": R, "Rs": Rs}


@given(data=st.data(), mode=st.sampled_from(MODES))
def test_fixed_with_Rs_one_is_the_frozen_one_scale_loss(impl, data, mode):
    """Rs = 1 makes both cases CE(R X_hat) with R = R(alpha^0): OneScale(fixed=True),
    value and every gradient of alpha bit for bit."""
    kind, seed, plain, x, y = model_case(data.draw)
    model = impl(plain)
    sep = impl(TwoScaleSeparation(0.5, Rs=1.0, confidence=mode))
    one = impl(OneScale(fixed=True))
    value = sep.forward(model, x, y)
    sep.backward()
    g_sep = [layer.grads[name].copy() for layer in model.linear_layers()
             for name in layer.params]
    assert one.forward(model, x, y) == value
    one.backward()
    assert one.params["R1"] == sep.params["R"] == scale_R(model)
    g_one = [layer.grads[name] for layer in model.linear_layers() for name in layer.params]
    for a, b in zip(g_sep, g_one, strict=True):
        np.testing.assert_array_equal(a, b)
    assert one.grads == {} and set(sep.grads) == {"Rs"}


@given(data=st.data())
def test_live_with_Rs_one_is_cross_entropy_on_raw_logits(impl, data):
    """R X_hat = X without biases: Eq. (17) with Rs = 1 and a live R is Eq. (4)."""
    kind, seed, plain, x, y = model_case(data.draw)
    for layer in plain.linear_layers():
        assume("b" not in layer.params)
    model = impl(plain)
    sep = impl(TwoScaleSeparation(0.01, Rs=1.0, scale="live"))
    ce = impl(CrossEntropy())
    value = sep.forward(model, x, y)
    sep.backward()  # backward must follow its own forward: the layers cache activations
    g_sep = [layer.grads["W"].copy() for layer in model.linear_layers()]
    assert value == pytest.approx(ce.forward(model, x, y), rel=1e-12)
    ce.backward()
    for g, layer in zip(g_sep, model.linear_layers(), strict=True):
        np.testing.assert_allclose(g, layer.grads["W"], rtol=1e-9,
                                   atol=1e-12 * np.abs(layer.grads["W"]).max())
    np.testing.assert_allclose(sep.predict_proba(model, x), ce.predict_proba(model, x),
                               rtol=1e-10, atol=1e-15)


@given(data=st.data(), scale=st.sampled_from(SCALES), mode=st.sampled_from(MODES))
def test_dL_dRs_is_non_positive_so_Rs_grows(impl, data, scale, mode):
    """docs/decisions.md#D3: Sec. 2.3 says "non-negative"; the mathematics gives <= 0,
    < 0 exactly when an object takes the second case, and SGD makes Rs grow."""
    kind, seed, plain, x, y = model_case(data.draw)
    assume(literal_sign_applies(plain, mode))
    model = impl(plain)
    loss = impl(TwoScaleSeparation(1.0, scale=scale, confidence=mode))
    loss.forward(model, x, y)
    loss.eta = split_eta(loss.last.confidence, data.draw)
    loss.forward(model, x, y)
    loss.backward()
    assert loss.grads["Rs"] <= 0
    assert (loss.grads["Rs"] < 0) == bool(loss.last.second.any())
    before = loss.params["Rs"]
    mt.SGD(0.1).step(model, loss)
    assert loss.params["Rs"] >= before  # (> unless the step is below Rs's last bit)


def test_the_readings_differ_only_where_they_should(impl):
    """At alpha^0 the three readings share R = R(alpha): the same value and dL/dRs. The
    alpha-gradients of fixed and trained agree (R does not depend on alpha); live adds
    dL/dR R alpha^l / ||alpha^l||^2, and trained reports that dL/dR in grads["R"]."""
    plain, x, y = make_model("mlp", 5)
    model = impl(plain)
    out = {}
    for scale in SCALES:
        loss = impl(TwoScaleSeparation(0.5, scale=scale))
        value = loss.forward(model, x, y)
        loss.backward()
        out[scale] = (value, dict(loss.grads), [layer.grads["W"].copy()
                                                for layer in model.linear_layers()])
    assert out["fixed"][0] == out["trained"][0] == out["live"][0]
    assert out["fixed"][1]["Rs"] == out["trained"][1]["Rs"] == out["live"][1]["Rs"]
    for a, b in zip(out["fixed"][2], out["trained"][2], strict=True):
        np.testing.assert_array_equal(a, b)
    dL_dR, R = out["trained"][1]["R"], scale_R(model)
    for layer, g_fixed, g_live in zip(model.linear_layers(), out["fixed"][2], out["live"][2],
                                      strict=True):
        W = layer.params["W"]
        np.testing.assert_allclose(g_live - g_fixed, dL_dR * R * W / np.vdot(W, W),
                                   rtol=1e-9, atol=1e-12 * np.abs(g_live).max())


def test_sgd_moves_R_only_when_trained_and_test_time_uses_that_R(impl):
    """After steps of Eq. (18), predict_proba is softmax(R X_hat) with the loss's R:
    R(alpha^0) (fixed), the trained R, R(alpha) now (live)."""
    model0, x, y = make_model("mlp", 6)
    R0 = scale_R(model0)
    for scale in SCALES:
        model = impl(make_model("mlp", 6)[0])
        loss, sgd = impl(TwoScaleSeparation(0.1, scale=scale)), mt.SGD(0.5)
        for _ in range(3):
            loss.forward(model, x, y)
            loss.backward()
            sgd.step(model, loss)
        R = {"fixed": R0, "trained": loss.params.get("R"), "live": scale_R(model)}[scale]
        if scale == "fixed":
            assert loss.params["R"] == R0
        if scale == "trained":
            assert loss.params["R"] != R0
        assert scale_R(model) != R0
        expected = mt.layers.softmax(R * normalized_logits(model, x))
        np.testing.assert_allclose(loss.predict_proba(model, x), expected, rtol=1e-10)
        loss.forward(model, x, y)
        assert loss.last.scales == {"R": R, "Rs": loss.params["Rs"]}
        correct = confidence(R * normalized_logits(model, x), y) > 0
        np.testing.assert_array_equal(loss.last.correct, correct)


def test_defaults_and_bad_arguments(impl):
    plain, x, y = make_model("mlp", 3)
    model = impl(plain)
    assert TwoScaleSeparation(0.1).scale == "fixed"  # docs/decisions.md#D11
    assert TwoScaleSeparation(0.1, 10.0, "trained").scale == "trained"
    for kwargs, message in ((dict(scale="frozen"), "scale must be one of"),
                            (dict(scale="live", R0=2.0), "R0"),
                            (dict(R0=-1.0), "R0 must be a positive"),
                            (dict(Rs=0.0), "Rs must be a positive")):
        with pytest.raises(ValueError, match=message):
            TwoScaleSeparation(0.1, **kwargs)
    loss = impl(TwoScaleSeparation(0.1, scale="trained", R0=2.5))
    assert loss.params == {"R": 2.5, "Rs": 10.0}
    loss.forward(model, x, y)
    assert loss.params == {"R": 2.5, "Rs": 10.0} and loss.last.scales == {"R": 2.5, "Rs": 10.0}
    fixed = impl(TwoScaleSeparation(0.1))
    assert fixed.params == {"R": None, "Rs": 10.0}  # R(alpha^0) at the first forward
    fixed.forward(model, x, y)
    assert fixed.params == {"R": scale_R(plain), "Rs": 10.0}
    assert impl(TwoScaleSeparation(0.1, scale="live")).params == {"Rs": 10.0}
