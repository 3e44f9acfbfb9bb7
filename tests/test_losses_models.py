"""The losses on real models: every gradient (model parameters through the
normalisation, R1, R2, Rs, R) against finite differences on small mlp and LeNet-5
networks in float64, and the properties Sec. 2 derives for them; every test under
both implementations (minits.backend). The readings of Eq. (17) and the eta
boundary: tests/test_separation.py, tests/test_eta_boundary.py."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from test_scale import kink_distance, make_model

import minits as mt
from minits.gradcheck import check_gradient
from minits.losses import (
    CrossEntropy,
    OneScale,
    Truncated,
    TwoScale,
    TwoScaleSeparation,
    TwoScaleWrapper,
    log_softmax,
)
from minits.scale import confidence, normalized_logits, scale_R

LOSSES = {
    "two_scale": lambda mode: TwoScale(1.0, confidence=mode),
    "two_scale_fixed": lambda mode: TwoScale(1.0, confidence=mode, fixed=True),
    "one_scale": lambda mode: OneScale(confidence=mode),
    "separation_fixed": lambda mode: TwoScaleSeparation(1.0, confidence=mode),
    "separation_trained": lambda mode: TwoScaleSeparation(1.0, scale="trained", confidence=mode),
    "separation_live": lambda mode: TwoScaleSeparation(1.0, scale="live", confidence=mode),
    "wrapper_ce": lambda mode: TwoScaleWrapper("cross_entropy", 1.0, confidence=mode),
    "wrapper_mse": lambda mode: TwoScaleWrapper("mse", 1.0, confidence=mode),
    "wrapper_truncated": lambda mode: TwoScaleWrapper("truncated", 1.0, confidence=mode, k=0.2),
    "cross_entropy": lambda mode: CrossEntropy(),
    "truncated": lambda mode: Truncated(0.2),
}
MODES = st.sampled_from(["raw", "normalized", "scaled"])
IMPLS = mt.backend.IMPLEMENTATIONS


def model_case(draw, K=3):
    kind = draw(st.sampled_from(["mlp", "lenet5"]))
    seed = draw(st.integers(0, 10_000))
    bias = draw(st.booleans()) if kind == "mlp" else False
    model, x, y = make_model(kind, seed, bias, K=K)
    if kind == "mlp":  # a larger batch, so that both cases of Eq. (13) occur
        rng = np.random.default_rng(seed)
        x, y = rng.standard_normal((8, 6)), rng.integers(0, K, size=8)
    return kind, seed, model, x, y


def split_eta(delta, draw):
    """A threshold between two of the batch's positive confidences (or above all)."""
    positive = np.sort(delta[delta > 0])
    if positive.size == 0:
        return 1.0
    j = draw(st.integers(0, positive.size))
    low = positive[j - 1] if j > 0 else 0.0
    high = positive[j] if j < positive.size else 2 * positive[-1]
    return float((low + high) / 2)


def away_from_threshold(delta, eta):
    return bool(np.all(np.abs(delta - eta) > 1e-4 * (1 + np.abs(delta))))


def fd_scale(loss, name, f, eps=1e-6):
    r = loss.params[name]
    loss.params[name] = r + eps
    f_plus = f()
    loss.params[name] = r - eps
    f_minus = f()
    loss.params[name] = r
    return (f_plus - f_minus) / (2 * eps)


def assert_loss_gradients(loss, model, x, y, seed, label):
    """Model grads and the loss's scale grads against central differences."""
    value = loss.forward(model, x, y)
    loss.backward()
    analytic = [(i, name, layer.params[name], layer.grads[name].copy())
                for i, layer in enumerate(model.linear_layers()) for name in layer.params]
    scale_grads = dict(loss.grads)

    def f():
        return loss.forward(model, x, y)

    # rounding in the differences: about 1e-16 * |logits| / eps, and the logits R X_hat
    # reach ~10 here; the gradients themselves are of order one
    atol = 1e-8 * (1 + abs(value))
    for i, name, p, g in analytic:
        # seed + 1: a direction drawn from the model's own seed would be parallel to
        # alpha^0 of the first layer, along which a scale-invariant loss has zero slope
        check_gradient(f, p, g, name=f"{label}: layer {i} {name}", max_elements=6,
                       seed=seed + 1, rtol=1e-5, atol=atol)
    for name, g in scale_grads.items():
        assert g == pytest.approx(fd_scale(loss, name, f), rel=1e-5, abs=atol), f"{label}: {name}"
    return value


@pytest.mark.parametrize("impl_name", IMPLS)
@pytest.mark.parametrize("which", sorted(LOSSES))
@given(data=st.data(), mode=MODES)
def test_every_gradient_matches_finite_differences(impl_name, which, data, mode):
    with mt.using(impl_name):
        kind, seed, model, x, y = model_case(data.draw)
        assume(kink_distance(model, x) > 1e-5)
        loss = LOSSES[which](mode)
        loss.forward(model, x, y)
        if hasattr(loss, "eta") and not isinstance(loss, OneScale):
            loss.eta = split_eta(loss.last.confidence, data.draw)
            assume(away_from_threshold(loss.last.confidence, loss.eta))
        if "truncated" in which:  # away from the kink p_{i(s)} = k of Eq. (12)
            loss.forward(model, x, y)
            z = (normalized_logits(model, x) * np.where(loss.last.second, 10.0, 1.0)[:, None]
                 * loss.params["R1"] if which == "wrapper_truncated" else model.forward(x))
            p_true = np.exp(log_softmax(z))[np.arange(len(y)), y]
            assume(np.all(np.abs(p_true - 0.2) > 1e-4))
        assert_loss_gradients(loss, model, x, y, seed, f"{which} {kind} {mode}")
        if which == "two_scale_fixed":
            assert loss.grads == {}


def literal_sign_applies(model, mode):
    """Sec. 2.3's sign argument needs delta >= eta > 0 to imply delta X_hat > 0: true for the
    normalised confidences, and for the raw one only without biases (delta X_hat = delta X / R).
    With biases and raw confidence a well-classified object may have delta X_hat < 0."""
    return mode != "raw" or all("b" not in layer.params for layer in model.linear_layers())


@pytest.mark.parametrize("impl_name", IMPLS)
@given(data=st.data(), mode=MODES)
def test_dL_dR2_negative_with_a_well_classified_object_zero_without(impl_name, data, mode):
    with mt.using(impl_name):
        kind, seed, model, x, y = model_case(data.draw)
        assume(literal_sign_applies(model, mode))
        loss = TwoScale(1.0, confidence=mode)
        loss.forward(model, x, y)
        delta = loss.last.confidence
        loss.eta = split_eta(delta, data.draw)
        loss.forward(model, x, y)
        loss.backward()
        if loss.last.second.any():
            X_hat = normalized_logits(model, x)
            assume(np.all(loss.params["R2"] * confidence(X_hat, y) < 500))  # no underflow to 0
            assert loss.grads["R2"] < 0
        else:
            assert loss.grads["R2"] == 0.0
        loss.eta = np.inf  # nobody well classified
        loss.forward(model, x, y)
        loss.backward()
        assert loss.grads["R2"] == 0.0


@pytest.mark.parametrize("impl_name", IMPLS)
@pytest.mark.parametrize("which", ["two_scale", "one_scale", "separation_fixed",
                                   "separation_trained", "wrapper_mse", "wrapper_truncated",
                                   "two_scale_fixed"])
@given(data=st.data(), mode=MODES)
def test_scale_invariance_without_biases(impl_name, which, data, mode):
    """Losses of X_hat alone: <dL/dalpha^l, alpha^l> = 0 for every layer (docs/decisions.md#D7)."""
    with mt.using(impl_name):
        kind, seed, model, x, y = model_case(data.draw)
        for layer in model.linear_layers():
            assume("b" not in layer.params)
        loss = LOSSES[which](mode)
        loss.forward(model, x, y)
        loss.backward()
        for layer in model.linear_layers():
            g, a = layer.grads["W"], layer.params["W"]
            assert abs(np.vdot(g, a)) <= 1e-11 * np.linalg.norm(g) * np.linalg.norm(a) + 1e-300


@pytest.mark.parametrize("impl_name", IMPLS)
@given(data=st.data(), mode=MODES)
def test_R2_equal_to_R1_gives_exactly_the_one_scale_loss(impl_name, data, mode):
    with mt.using(impl_name):
        kind, seed, model, x, y = model_case(data.draw)
        r = float(data.draw(st.floats(0.5, 20)))
        two, one = TwoScale(0.01, R1=r, R2=r, confidence=mode), OneScale(R1=r, confidence=mode)
        value = two.forward(model, x, y)
        two.backward()
        g_two = [layer.grads["W"].copy() for layer in model.linear_layers()]
        assert one.forward(model, x, y) == value
        one.backward()
        for g, layer in zip(g_two, model.linear_layers(), strict=True):
            np.testing.assert_array_equal(g, layer.grads["W"])
        # tied scales: the one-scale derivative is the sum of both cases' derivatives
        assert one.grads["R1"] == pytest.approx(two.grads["R1"] + two.grads["R2"], rel=1e-12,
                                                abs=1e-300)


@pytest.mark.parametrize("impl_name", IMPLS)
@given(data=st.data())
def test_raw_confidence_is_delta_X_of_the_raw_network(impl_name, data):
    """The raw confidence is delta X(alpha, s) of the raw network (the fast path takes X
    from its one pass at alpha, X = R X_hat by Eq. (8)); "normalized" and "scaled" are the
    confidences of X_hat and of R1 X_hat."""
    with mt.using(impl_name):
        kind, seed, model, x, y = model_case(data.draw)
        loss = TwoScale(1.0)
        loss.forward(model, x, y)
        delta_literal = confidence(model.forward(x), y)
        scale = np.abs(delta_literal).max()
        np.testing.assert_allclose(loss.last.confidence, delta_literal, rtol=1e-10,
                                   atol=1e-12 * scale)
        np.testing.assert_array_equal(loss.last.second, loss.last.confidence >= loss.eta)
        normalized = TwoScale(1.0, confidence="normalized")
        normalized.forward(model, x, y)
        delta_hat = confidence(normalized_logits(model, x), y)
        # (X_hat of the fast path is X / R, which differs from X(alpha_hat) by rounding)
        np.testing.assert_allclose(normalized.last.confidence, delta_hat, rtol=1e-10,
                                   atol=1e-12 * np.abs(delta_hat).max())
        scaled = TwoScale(1.0, R1=3.0, confidence="scaled")
        scaled.forward(model, x, y)
        np.testing.assert_allclose(scaled.last.confidence, 3.0 * delta_hat, rtol=1e-10,
                                   atol=3e-12 * np.abs(delta_hat).max())


def test_initial_scales(impl):
    model, x, y = make_model("mlp", 3)
    R0 = scale_R(model)
    loss = TwoScale(0.1)
    assert loss.params == {"R1": None, "R2": None}
    loss.forward(model, x, y)
    assert loss.params == {"R1": R0, "R2": 10 * R0}  # Sec. 3.2
    loss = TwoScale(0.1, R1=2.0)
    loss.forward(model, x, y)
    assert loss.params == {"R1": 2.0, "R2": 20.0}
    assert OneScale().predict_proba(model, x).shape == (len(x), 4)
    one = OneScale()
    one.forward(model, x, y)
    assert one.params == {"R1": R0}


def test_predict_proba_uses_R1_and_no_labels(impl):
    model, x, y = make_model("lenet5", 2, dtype=np.float32)
    loss = TwoScale(0.1, R1=2.0, R2=50.0)
    p = loss.predict_proba(model, x)
    expected = np.exp(2.0 * normalized_logits(model, x).astype(np.float64))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(p, expected, rtol=1e-5)
    assert p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)
    raw = CrossEntropy().predict_proba(model, x)
    np.testing.assert_allclose(raw, mt.layers.softmax(model.forward(x)))


@pytest.mark.parametrize("which", sorted(LOSSES))
def test_reduction_none_and_mean(which, impl):
    model, x, y = make_model("mlp", 4)
    per_object = LOSSES[which]("raw")
    per_object.reduction = "none"
    values = per_object.forward(model, x, y)
    assert values.shape == (len(x),) and values.dtype == np.float64
    np.testing.assert_array_equal(values, per_object.last.values)
    mean = LOSSES[which]("raw")
    assert mean.forward(model, x, y) == pytest.approx(float(np.mean(values)), rel=1e-14)
    with pytest.raises(ValueError, match="reduction='mean'"):
        per_object.backward()


@pytest.mark.parametrize("which", sorted(LOSSES))
def test_float32_model_keeps_float32(which, impl):
    model, x, y = make_model("mlp", 6, dtype=np.float32)
    loss = LOSSES[which]("raw")
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
    model, x, y = make_model("mlp", 8)
    loss = TwoScale(0.3)
    loss.forward(model, x, y)
    last = loss.last
    np.testing.assert_array_equal(last.second, last.confidence >= 0.3)
    assert last.num_second == int(np.sum(last.confidence >= 0.3))
    assert last.accuracy == np.mean(np.argmax(model.forward(x), axis=1) == y)
    assert last.R == scale_R(model)
    assert last.scales == loss.params


@pytest.mark.parametrize("magnitude", [1e3, 1e5])
def test_extreme_scales_are_finite_and_silent(magnitude, impl):
    import warnings
    model, x, y = make_model("mlp", 9, dtype=np.float32)
    losses = [TwoScale(0.01, R1=magnitude, R2=10 * magnitude), OneScale(R1=magnitude),
              TwoScaleSeparation(0.01, Rs=magnitude),
              TwoScaleWrapper("mse", 0.01, R1=magnitude)]
    for loss in losses:
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
    model, x, y = make_model("mlp", 0)
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
    with pytest.raises(ValueError, match="R must be one of"):
        TwoScaleSeparation(1.0, R="fixed")
    with pytest.raises(ValueError, match="objective must be one of"):
        TwoScaleWrapper("hinge", 1.0)
    with pytest.raises(ValueError, match="k is required"):
        TwoScaleWrapper("truncated", 1.0)
    with pytest.raises(ValueError, match="k must be in"):
        Truncated(2.0)
    with pytest.raises(RuntimeError, match="before forward"):
        TwoScale(1.0).backward()
    loss = TwoScale(1.0)
    with pytest.raises(ValueError, match=r"labels in \[0, 4\)"):
        loss.forward(model, x, np.array([0, 1, 2, 4]))
    with pytest.raises(ValueError, match="y must be a 1-D array of 4 labels"):
        loss.forward(model, x, y[:2])
    with pytest.raises(TypeError, match="integer class labels"):
        loss.forward(model, x, y.astype(float))


def test_scales_positive_flag():
    loss = TwoScale(1.0, R1=1.0, R2=10.0)
    assert loss.scales_positive and loss.nonpositive_scales() == []
    loss.params["R1"] = -0.5
    loss.params["R2"] = float("nan")
    assert not loss.scales_positive
    assert loss.nonpositive_scales() == ["R1", "R2"]


@pytest.mark.parametrize("wrap", [np.float64, lambda v: np.array(v)])
def test_scales_stored_as_numpy_values_do_not_upcast(wrap, impl):
    model, x, y = make_model("mlp", 7, dtype=np.float32)
    for loss in (TwoScale(0.3, R1=2.0), OneScale(R1=2.0), TwoScaleSeparation(0.3)):
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


@pytest.mark.parametrize("make", [lambda: mt.losses.CrossEntropy(), lambda: mt.losses.OneScale(),
                                  lambda: mt.losses.TwoScale(0.1),
                                  lambda: mt.losses.TwoScaleSeparation(0.1)])
def test_nan_input_is_refused_with_the_rows_named(make, impl):
    model = mt.models.mlp([4, 3, 2], dtype=np.float64, seed=0)
    x = np.ones((3, 4))
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf in rows \[1\]"):
        make().forward(model, x, np.array([0, 1, 0]))
    loss = make()
    loss.check_finite = False  # what a training loop that reports divergence itself asks
    with np.errstate(invalid="ignore"):
        assert np.isnan(loss.forward(model, x, np.array([0, 1, 0])))
