"""The losses on real models: every gradient (model parameters through the
normalisation, R1, R2, Rs, R) against finite differences on small mlp and LeNet-5
networks in float64, and the properties Sec. 2 derives for them; every test in both
implementations (the ``impl`` fixture: the plain loss and model, or their fast twins).
The readings of Eq. (17) and the eta boundary: tests/test_separation.py,
tests/test_eta_boundary.py."""

import math

import numpy as np
import pytest
from helpers import (
    LOSSES,
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
from minits.layers import log_softmax
from minits.losses import (
    CrossEntropy,
    OneScale,
    Truncated,
    TwoScale,
    TwoScaleSeparation,
    TwoScaleWrapper,
    cross_entropy,
    dL_dR_eq15,
)
from minits.normalization import Normalization
from minits.scale import confidence, normalized_logits, scale_R


@pytest.mark.parametrize("which", sorted(LOSSES))
@given(data=st.data(), mode=st.sampled_from(MODES))
def test_every_gradient_matches_finite_differences(impl, which, data, mode):
    kind, seed, plain, x, y = model_case(data.draw)
    assume(kink_distance(plain, x) > 1e-5)
    model, loss = impl(plain), impl(LOSSES[which](mode))
    loss.forward(model, x, y)
    if hasattr(loss, "eta") and not isinstance(loss, OneScale):
        loss.eta = split_eta(loss.last.confidence, data.draw)
        assume(away_from_threshold(loss.last.confidence, loss.eta))
    if "truncated" in which:  # away from the kink p_{i(s)} = k of Eq. (12)
        loss.forward(model, x, y)
        z = (normalized_logits(plain, x) * np.where(loss.last.second, 10.0, 1.0)[:, None]
             * loss.params["R1"] if which == "wrapper_truncated" else plain.forward(x))
        p_true = np.exp(log_softmax(z))[np.arange(len(y)), y]
        assume(np.all(np.abs(p_true - 0.2) > 1e-4))
    assert_loss_gradients(loss, model, x, y, seed, f"{which} {kind} {mode}")
    if which == "two_scale_fixed":
        assert loss.grads == {}


@given(data=st.data(), mode=st.sampled_from(MODES))
def test_dL_dR2_negative_with_a_well_classified_object_zero_without(impl, data, mode):
    kind, seed, plain, x, y = model_case(data.draw)
    assume(literal_sign_applies(plain, mode))
    model, loss = impl(plain), impl(TwoScale(1.0, confidence=mode))
    loss.forward(model, x, y)
    delta = loss.last.confidence
    loss.eta = split_eta(delta, data.draw)
    loss.forward(model, x, y)
    loss.backward()
    if loss.last.second.any():
        X_hat = normalized_logits(plain, x)
        assume(np.all(loss.params["R2"] * confidence(X_hat, y) < 500))  # no underflow to 0
        assert loss.grads["R2"] < 0
    else:
        assert loss.grads["R2"] == 0.0
    loss.eta = np.inf  # nobody well classified
    loss.forward(model, x, y)
    loss.backward()
    assert loss.grads["R2"] == 0.0


@pytest.mark.parametrize("which", ["two_scale", "one_scale", "separation_fixed",
                                   "separation_trained", "wrapper_mse", "wrapper_truncated",
                                   "two_scale_fixed"])
@given(data=st.data(), mode=st.sampled_from(MODES))
def test_scale_invariance_without_biases(impl, which, data, mode):
    """Losses of X_hat alone: <dL/dalpha^l, alpha^l> = 0 for every layer (docs/decisions.md#D7)."""
    kind, seed, plain, x, y = model_case(data.draw)
    for layer in plain.linear_layers():
        assume("b" not in layer.params)
    model, loss = impl(plain), impl(LOSSES[which](mode))
    loss.forward(model, x, y)
    loss.backward()
    for layer in model.linear_layers():
        g, a = layer.grads["W"], layer.params["W"]
        assert abs(np.vdot(g, a)) <= 1e-11 * np.linalg.norm(g) * np.linalg.norm(a) + 1e-300


@given(data=st.data(), mode=st.sampled_from(MODES))
def test_R2_equal_to_R1_gives_exactly_the_one_scale_loss(impl, data, mode):
    """TwoScale with R2 = R1 and OneScale: the same value and gradients bit for bit, and
    both are the cross-entropy of R1 X_hat (computed here with the plain
    minits.losses.cross_entropy on X_hat = X(alpha_hat) of the plain model), with
    dL/dalpha its chain rule through the plain Normalization and dL/dR1 (OneScale) =
    dL/dR1 + dL/dR2 (TwoScale) the batch mean of Eq. (15) over every object."""
    kind, seed, plain, x, y = model_case(data.draw)
    r = float(data.draw(st.floats(0.5, 20)))
    model = impl(plain)
    two = impl(TwoScale(0.01, R1=r, R2=r, confidence=mode))
    one = impl(OneScale(R1=r, confidence=mode))
    value = two.forward(model, x, y)
    two.backward()
    g_two = [layer.grads["W"].copy() for layer in model.linear_layers()]
    assert one.forward(model, x, y) == value
    np.testing.assert_array_equal(one.last.values, two.last.values)
    one.backward()
    for g, layer in zip(g_two, model.linear_layers(), strict=True):
        np.testing.assert_array_equal(g, layer.grads["W"])
    g_one = [layer.grads["W"].copy() for layer in model.linear_layers()]
    # the expected side, independently: CE(R1 X_hat), Eq. (15), the chain rule of D7
    X_hat = normalized_logits(plain, x)
    values, dz = cross_entropy(r * X_hat, y)
    assert value == pytest.approx(float(np.mean(values)), rel=1e-10)
    np.testing.assert_allclose(one.last.values, values, rtol=1e-10, atol=1e-12)
    dR = float(np.mean(dL_dR_eq15(X_hat, y, r)))
    assert one.grads["R1"] == pytest.approx(dR, rel=1e-9, abs=1e-12)
    assert two.grads["R1"] + two.grads["R2"] == pytest.approx(dR, rel=1e-9, abs=1e-12)
    norm = Normalization()
    norm.forward(plain, x)
    norm.backward(r * dz / len(y))
    for g, layer in zip(g_one, plain.linear_layers(), strict=True):
        np.testing.assert_allclose(g, layer.grads["W"], rtol=1e-9,
                                   atol=1e-12 * np.abs(layer.grads["W"]).max())


@given(data=st.data())
def test_raw_confidence_is_delta_X_of_the_raw_network(impl, data):
    """The raw confidence is delta X(alpha, s) of the raw network (the fast code takes X
    from its one pass at alpha, X = R X_hat by Eq. (8)); "normalized" and "scaled" are the
    confidences of X_hat and of R1 X_hat."""
    kind, seed, plain, x, y = model_case(data.draw)
    model = impl(plain)
    loss = impl(TwoScale(1.0))
    loss.forward(model, x, y)
    delta_literal = confidence(plain.forward(x), y)
    scale = np.abs(delta_literal).max()
    np.testing.assert_allclose(loss.last.confidence, delta_literal, rtol=1e-10,
                               atol=1e-12 * scale)
    np.testing.assert_array_equal(loss.last.second, loss.last.confidence >= loss.eta)
    normalized = impl(TwoScale(1.0, confidence="normalized"))
    normalized.forward(model, x, y)
    delta_hat = confidence(normalized_logits(plain, x), y)
    # (X_hat of the fast code is X / R, which differs from X(alpha_hat) by rounding)
    np.testing.assert_allclose(normalized.last.confidence, delta_hat, rtol=1e-10,
                               atol=1e-12 * np.abs(delta_hat).max())
    scaled = impl(TwoScale(1.0, R1=3.0, confidence="scaled"))
    scaled.forward(model, x, y)
    np.testing.assert_allclose(scaled.last.confidence, 3.0 * delta_hat, rtol=1e-10,
                               atol=3e-12 * np.abs(delta_hat).max())


def test_initial_scales(impl):
    plain, x, y = make_model("mlp", 3)
    model = impl(plain)
    R0 = scale_R(plain)
    loss = impl(TwoScale(0.1))
    assert loss.params == {"R1": None, "R2": None}
    loss.forward(model, x, y)
    assert loss.params == {"R1": R0, "R2": 10 * R0}  # Sec. 3.2
    loss = impl(TwoScale(0.1, R1=2.0))
    loss.forward(model, x, y)
    assert loss.params == {"R1": 2.0, "R2": 20.0}
    assert impl(OneScale()).predict_proba(model, x).shape == (len(x), 4)
    one = impl(OneScale())
    assert one.params == {"R1": None}
    one.forward(model, x, y)
    assert one.params == {"R1": R0}


def test_predict_proba_uses_R1_and_no_labels(impl):
    plain, x, y = make_model("lenet5", 2, dtype=np.float32)
    model = impl(plain)
    loss = impl(TwoScale(0.1, R1=2.0, R2=50.0))
    p = loss.predict_proba(model, x)
    expected = np.exp(2.0 * normalized_logits(plain, x).astype(np.float64))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(p, expected, rtol=1e-5)
    assert p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)
    raw = impl(CrossEntropy()).predict_proba(model, x)
    np.testing.assert_allclose(raw, mt.layers.softmax(plain.forward(x)), rtol=1e-6)


def test_R_test_is_the_scale_of_the_test_time_probabilities(impl):
    """R_test(model, R_alpha): R1 for Eq. (13) (R(alpha^0) when not given), R for
    Eq. (17) -- R(alpha^0) (fixed), the trained R, R(alpha) now (live; R_alpha when the
    caller has it) -- and predict_proba is softmax(R_test X_hat)."""
    plain, x, y = make_model("mlp", 13)
    model = impl(plain)
    R0 = scale_R(plain)
    cases = [(TwoScale(0.1, R1=2.0), 2.0), (TwoScale(0.1), R0), (OneScale(R1=3.0), 3.0),
             (TwoScaleWrapper("mse", 0.1, R1=4.0), 4.0),
             (TwoScaleSeparation(0.1), R0), (TwoScaleSeparation(0.1, R0=5.0), 5.0),
             (TwoScaleSeparation(0.1, scale="trained", R0=6.0), 6.0),
             (TwoScaleSeparation(0.1, scale="live"), R0)]
    for plain_loss, expected in cases:
        loss = impl(plain_loss)
        assert loss.R_test(model) == expected, loss
        assert isinstance(loss.R_test(model), float)
        np.testing.assert_allclose(loss.predict_proba(model, x),
                                   mt.layers.softmax(expected * normalized_logits(plain, x)),
                                   rtol=1e-12, atol=1e-15)
    live = impl(TwoScaleSeparation(0.1, scale="live"))
    assert live.R_test(model, R_alpha=7.0) == 7.0  # the caller's R(alpha)
    fixed = impl(TwoScale(0.1, R1=2.0))
    assert fixed.R_test(model, R_alpha=7.0) == 2.0  # not R(alpha): the loss's R1
    for layer in model.linear_layers():  # alpha moves: only the live R follows it
        layer.params["W"] *= 2.0
    assert live.R_test(model) == scale_R(plain) != R0
    assert impl(cases[1][0]).R_test(model) == R0  # R1 was set at the first call


@pytest.mark.parametrize("which", sorted(LOSSES))
def test_reduction_none_and_mean(which, impl):
    plain, x, y = make_model("mlp", 4)
    model = impl(plain)
    per_object = impl(LOSSES[which]("raw"))
    per_object.reduction = "none"
    values = per_object.forward(model, x, y)
    assert values.shape == (len(x),) and values.dtype == np.float64
    np.testing.assert_array_equal(values, per_object.last.values)
    mean = impl(LOSSES[which]("raw"))
    assert mean.forward(model, x, y) == pytest.approx(float(np.mean(values)), rel=1e-14)
    with pytest.raises(ValueError, match="reduction='mean'"):
        per_object.backward()


@pytest.mark.parametrize("which", sorted(LOSSES))
def test_float32_model_keeps_float32(which, impl):
    plain, x, y = make_model("mlp", 6, dtype=np.float32)
    model = impl(plain)
    loss = impl(LOSSES[which]("raw"))
    value = loss.forward(model, x, y)
    assert isinstance(value, float)
    loss.backward()
    for layer in model.linear_layers():
        for name, p in layer.params.items():
            assert p.dtype == np.float32 and layer.grads[name].dtype == np.float32
    assert all(isinstance(g, float) for g in loss.grads.values())
    assert loss.last.values.dtype == np.float32
    assert loss.last.confidence.dtype == np.float32


def test_diagnostics(impl):
    plain, x, y = make_model("mlp", 8)
    model = impl(plain)
    loss = impl(TwoScale(0.3))
    loss.forward(model, x, y)
    last = loss.last
    np.testing.assert_array_equal(last.second, last.confidence >= 0.3)
    assert last.num_second == int(np.sum(last.confidence >= 0.3))
    assert last.accuracy == np.mean(np.argmax(plain.forward(x), axis=1) == y)
    assert last.R_alpha == scale_R(plain)
    assert last.scales == loss.params


@pytest.mark.parametrize("magnitude", [1e3, 1e5])
def test_extreme_scales_are_finite_and_silent(magnitude, impl):
    import warnings
    plain, x, y = make_model("mlp", 9, dtype=np.float32)
    model = impl(plain)
    losses = [TwoScale(0.01, R1=magnitude, R2=10 * magnitude), OneScale(R1=magnitude),
              TwoScaleSeparation(0.01, Rs=magnitude),
              TwoScaleWrapper("mse", 0.01, R1=magnitude)]
    for loss in map(impl, losses):
        with warnings.catch_warnings(), np.errstate(over="raise", divide="raise",
                                                    invalid="raise"):
            warnings.simplefilter("error")
            value = loss.forward(model, x, y)
            loss.backward()
            p = loss.predict_proba(model, x)
        assert np.isfinite(value) and np.all(np.isfinite(p))
        assert all(np.isfinite(g) for g in loss.grads.values())
        assert all(np.all(np.isfinite(layer.grads["W"])) for layer in model.linear_layers())


def test_bad_inputs_are_refused_with_clear_messages(impl):
    plain, x, y = make_model("mlp", 0)
    model = impl(plain)
    with pytest.raises(ValueError, match="eta must be > 0"):
        TwoScale(0.0)
    with pytest.raises(ValueError, match="eta must be > 0"):
        TwoScale(float("nan"))
    with pytest.raises(TypeError, match="eta"):
        TwoScale("1")
    with pytest.raises(ValueError, match="confidence must be one of"):
        TwoScale(1.0, confidence="softmax")
    with pytest.raises(ValueError, match="reduction must be one of"):
        CrossEntropy(reduction="sum")
    with pytest.raises(ValueError, match="R1 must be a positive"):
        TwoScale(1.0, R1=-1.0)
    with pytest.raises(ValueError, match="Rs must be a positive"):
        TwoScaleSeparation(1.0, Rs=0.0)
    with pytest.raises(ValueError, match="scale must be one of"):
        TwoScaleSeparation(1.0, scale="frozen")
    with pytest.raises(ValueError, match="objective must be one of"):
        TwoScaleWrapper("hinge", 1.0)
    with pytest.raises(ValueError, match="k is required"):
        TwoScaleWrapper("truncated", 1.0)
    with pytest.raises(ValueError, match="k must be in"):
        Truncated(2.0)
    with pytest.raises(RuntimeError, match="before forward"):
        impl(TwoScale(1.0)).backward()
    with pytest.raises(RuntimeError, match="before forward"):
        impl(CrossEntropy()).backward()
    loss = impl(TwoScale(1.0))
    with pytest.raises(ValueError, match=r"labels in \[0, 4\)"):
        loss.forward(model, x, np.array([0, 1, 2, 4]))
    with pytest.raises(ValueError, match="y must be a 1-D array of 4 labels"):
        loss.forward(model, x, y[:2])
    with pytest.raises(TypeError, match="integer class labels"):
        loss.forward(model, x, y.astype(float))


def test_scales_positive_flag(impl):
    loss = impl(TwoScale(1.0, R1=1.0, R2=10.0))
    assert loss.scales_positive and loss.nonpositive_scales() == []
    loss.params["R1"] = -0.5
    loss.params["R2"] = float("nan")
    assert not loss.scales_positive
    assert loss.nonpositive_scales() == ["R1", "R2"]


@pytest.mark.parametrize("wrap", [np.float64, lambda v: np.array(v)])
def test_scales_stored_as_numpy_values_do_not_upcast(wrap, impl):
    plain, x, y = make_model("mlp", 7, dtype=np.float32)
    model = impl(plain)
    for loss in map(impl, (TwoScale(0.3, R1=2.0), OneScale(R1=2.0), TwoScaleSeparation(0.3))):
        loss.forward(model, x, y)
        loss.params = {name: wrap(v) for name, v in loss.params.items()}
        loss.forward(model, x, y)
        loss.backward()
        assert loss.last.values.dtype == np.float32
        assert loss.predict_proba(model, x).dtype == np.float32
        assert all(layer.grads["W"].dtype == np.float32 for layer in model.linear_layers())


def test_empty_batch_is_refused():
    from minits.losses.base import check_logits_labels
    with pytest.raises(ValueError, match="N = 0"):
        check_logits_labels(np.zeros((0, 3)), np.zeros(0, dtype=np.int64))


@pytest.mark.parametrize("which", sorted(LOSSES))
def test_nan_input_gives_a_nan_loss_without_an_exception(which, impl):
    """Non-finite logits are not refused (docs/decisions.md#D17): a NaN in the input makes
    that object's logits, loss value and the batch loss NaN, silently (no exception, no
    RuntimeWarning, which the test settings turn into errors); the other objects keep
    their finite values. The training loop detects the divergence itself."""
    plain = mt.models.mlp([4, 3, 2], dtype=np.float64, seed=0)
    model = impl(plain)
    x = np.ones((3, 4))
    x[1, 2] = np.nan
    y = np.array([0, 1, 0])
    loss = impl(LOSSES[which]("raw"))
    assert np.isnan(loss.forward(model, x, y))
    values = loss.last.values
    assert np.isnan(values[1]) and np.all(np.isfinite(values[[0, 2]]))
    assert not loss.last.correct[1]
    loss.backward()  # the NaN goes on into the gradients, without an exception either


@pytest.mark.parametrize("make", [
    lambda eta: mt.losses.TwoScale(eta),
    lambda eta: mt.losses.TwoScale(eta, fixed=True),
    lambda eta: mt.losses.TwoScaleSeparation(eta),
    lambda eta: mt.losses.TwoScaleWrapper("cross_entropy", eta),
], ids=["two_scale", "fixed", "separation", "wrapper"])
def test_an_infinite_eta_is_refused_as_the_command_line_refuses_it(make):
    """At eta = inf no object takes the second case: that loss is OneScale (issue 23)."""
    with pytest.raises(ValueError, match=r"eta must be finite: .* \(losses.OneScale\)"):
        make(math.inf)
    assert make(1e6).eta == 1e6
    assert mt.losses.OneScale().eta == math.inf
