"""Fast against plain: the normalisation engines and the losses, float64.

minits.fast_normalization.FastNormalization (both of its paths) must compute what the
plain minits.normalization.Normalization computes, and every loss's fast forward and
backward what its plain ones compute. What is promised, per function:

- R(alpha): bit for bit (the same sums of squares, the same product).
- X_hat on the literal path (networks with biases), with the same layers: bit for bit;
  on the homogeneous path (X / R, Eq. (8)) and through the chain rule (a different
  order of the same operations): to ~1e-12 relative to the array's largest entry.
- A loss's value, per-object values, confidences and scale gradients: the same
  rounding; the split (second) and the correct flags: exactly, away from the threshold.
- With the same layers and the literal normalisation, a loss's value and diagnostics:
  bit for bit (the fast bookkeeping changes no number).

Each side runs under its own implementation (minits.using), layers included, except in
the "same layers" tests. The last section checks what the training loop uses to save
time (the predictor, check_unchanged off, the correct flags from the terms of delta X)
against the numbers it replaces, bit for bit.
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_losses_models import LOSSES as MODEL_LOSSES
from test_scale import bits, kink_distance, make_model

import minits as mt
from minits.fast_normalization import FastNormalization, logits_at_normalized
from minits.losses import (
    CrossEntropy,
    OneScale,
    Truncated,
    TwoScale,
    TwoScaleSeparation,
    TwoScaleWrapper,
)
from minits.normalization import Normalization
from minits.scale import at_normalized_params, confidence, normalized_logits

KINDS = st.sampled_from(["mlp", "lenet5"])
SEEDS = st.integers(0, 10_000)
RTOL = 1e-12


def assert_close(a, b, what):
    """|a - b| <= RTOL * max|b| elementwise (relative to the array's scale)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.max(np.abs(b)), 1e-300)
    err = np.max(np.abs(a - b)) / scale
    assert err <= RTOL, f"{what}: relative difference {err:.3g} > {RTOL}"


def grads(model):
    return [{k: g.copy() for k, g in layer.grads.items()} for layer in model.linear_layers()]


def assert_grads_close(ga, gb, what):
    for i, (a, b) in enumerate(zip(ga, gb, strict=True)):
        for name in b:
            assert_close(a[name], b[name], f"{what}: layer {i} {name}")


def run_engine(engine, impl, model, x, G, dL_dR):
    with mt.using(impl):
        X_hat = engine.forward(model, x)
        engine.backward(G.copy(), dL_dR=dL_dR)
    return X_hat.copy(), engine.R, grads(model)


@settings(max_examples=20)
@given(KINDS, SEEDS, st.booleans(), st.sampled_from([0.0, 0.7, -1.3]))
def test_fast_normalization_equals_the_plain_one(kind, seed, bias, dL_dR):
    """FastNormalization (homogeneous without biases, literal with) = Normalization."""
    model, x, _ = make_model(kind, seed, bias)
    assume(kink_distance(model, x) > 1e-8)  # the same ReLU / max-pool choices in both
    G = np.random.default_rng(seed).standard_normal(model.forward(x).shape)
    Xp, Rp, gp = run_engine(Normalization(), "plain", model, x, G, dL_dR)
    modes = ["literal"] if bias else ["literal", "homogeneous"]
    for mode in modes:
        Xf, Rf, gf = run_engine(FastNormalization(mode), "fast", model, x, G, dL_dR)
        assert Rf == Rp
        assert_close(Xf, Xp, f"X_hat, {mode}")
        assert_grads_close(gf, gp, f"{kind} dL/dalpha, {mode}")


@given(KINDS, SEEDS)
def test_literal_X_hat_is_bit_for_bit_with_the_same_layers(kind, seed):
    model, x, _ = make_model(kind, seed, bias=True)
    for impl in mt.backend.IMPLEMENTATIONS:
        with mt.using(impl):
            fast = FastNormalization("literal").forward(model, x)
            assert bits(fast) == bits(Normalization().forward(model, x))
            assert bits(logits_at_normalized(model, x, "literal")[0]) == bits(fast)


LOSSES = {
    "cross_entropy": lambda: CrossEntropy(),
    "truncated": lambda: Truncated(0.2),
    "two_scale": lambda: TwoScale(0.05, R1=3.0, R2=30.0),
    "two_scale_normalized": lambda: TwoScale(0.05, R1=3.0, R2=30.0, confidence="normalized"),
    "two_scale_scaled": lambda: TwoScale(0.05, R1=3.0, R2=30.0, confidence="scaled"),
    "fixed": lambda: TwoScale(0.05, R1=3.0, R2=30.0, fixed=True),
    "one_scale": lambda: OneScale(R1=3.0),
    "wrapper_mse": lambda: TwoScaleWrapper("mse", 0.05, R1=3.0),
    "separation_fixed": lambda: TwoScaleSeparation(0.05, Rs=10.0),
    "separation_trained": lambda: TwoScaleSeparation(0.05, Rs=10.0, scale="trained"),
    "separation_live": lambda: TwoScaleSeparation(0.05, Rs=10.0, scale="live"),
}


def run_loss(which, impl, model, x, y, mode=None):
    """Forward, backward and the test-time functions of a fresh loss under impl."""
    loss = LOSSES[which]()
    if mode is not None:
        loss._fast_norm = FastNormalization(mode)
    with mt.using(impl):
        value = loss.forward(model, x, y)
        if hasattr(loss, "eta"):  # away from the threshold, where rounding may pick either
            assume(np.min(np.abs(loss.last.confidence - loss.eta)) > 1e-9)
        loss.backward()
        return (value, loss.last, grads(model), dict(loss.grads), loss.predict_proba(model, x),
                loss.predict_proba_and_logits(model, x), loss.predictor(model, logits=True)(x))


@settings(max_examples=15)
@pytest.mark.parametrize("which", sorted(LOSSES))
@given(kind=KINDS, seed=SEEDS, bias=st.booleans(), literal=st.booleans())
def test_fast_losses_equal_the_plain_ones(which, kind, seed, bias, literal):
    """Value, per-object diagnostics, every gradient, the scales' gradients and the
    test-time probabilities; the fast side on either path of its normalisation."""
    model, x, y = make_model(kind, seed, bias)
    assume(kink_distance(model, x) > 1e-8)
    plain = run_loss(which, "plain", model, x, y)
    fast = run_loss(which, "fast", model, x, y, "literal" if literal or bias else None)
    assert_close(fast[0], plain[0], "loss value")
    np.testing.assert_array_equal(fast[1].second, plain[1].second)
    np.testing.assert_array_equal(fast[1].correct, plain[1].correct)
    assert_close(fast[1].values, plain[1].values, "per-object values")
    assert_close(fast[1].confidence, plain[1].confidence, "confidences")
    assert fast[1].R == plain[1].R and fast[1].scales == plain[1].scales
    assert_grads_close(fast[2], plain[2], f"{which} on {kind}")
    assert fast[3].keys() == plain[3].keys()
    for name in plain[3]:
        assert_close(fast[3][name], plain[3][name], f"d loss / d {name}")
    for i in (4, 5, 6):
        proba, ref = (fast[i], plain[i]) if i == 4 else (fast[i][0], plain[i][0])
        assert_close(proba, ref, "test-time probabilities")
    for i in (5, 6):
        assert bits(fast[i][1]) == bits(plain[i][1])  # raw logits, exactly
    np.testing.assert_array_equal(plain[5][1], model.forward(x))


@settings(max_examples=10)
@pytest.mark.parametrize("which", sorted(LOSSES))
@given(kind=KINDS, seed=SEEDS)
def test_fast_bookkeeping_changes_no_number(which, kind, seed):
    """With the same (fast) layers and the literal normalisation (biases), the fast
    forward gives the plain forward's value and diagnostics bit for bit."""
    model, x, y = make_model(kind, seed, bias=True)
    out = []
    with mt.using("fast"):
        for forward in ("_forward_plain", "_forward_fast"):
            loss = LOSSES[which]()
            value = getattr(loss, forward)(model, x, y)
            last = loss.last
            out.append((value, bits(last.confidence), bits(last.second), bits(last.correct),
                        bits(last.values), last.R, last.scales, bits(loss._dX)))
    assert out[0] == out[1]


@settings(max_examples=10)
@given(KINDS, SEEDS)
def test_fast_logits_at_normalized(kind, seed):
    model, x, _ = make_model(kind, seed)
    X_hat, X, R = logits_at_normalized(model, x)
    np.testing.assert_array_equal(X, model.forward(x))
    assert R == mt.scale_R(model)
    X_hat_l, X_l, R_l = logits_at_normalized(model, x, mode="literal")
    assert X_l is None and R_l == R
    with at_normalized_params(model):
        np.testing.assert_array_equal(X_hat_l, model.forward(x))
    assert_close(X_hat, normalized_logits(model, x), "X_hat")
    assert_close(X_hat, X_hat_l, "X_hat")


def test_the_homogeneous_path_keeps_float32():
    model, x, y = make_model("lenet5", 0, dtype=np.float32)
    loss = TwoScale(0.05, R1=3.0, R2=30.0)
    with mt.using("fast"):
        loss.forward(model, x, y)
        assert loss._norm.X is not None  # the homogeneous path ran
        assert loss.last.confidence.dtype == np.float32
        loss.backward()
        proba, X = loss.predict_proba_and_logits(model, x)
    assert all(g.dtype == np.float32 for layer in model.linear_layers()
               for g in layer.grads.values())
    assert proba.dtype == np.float32 and X.dtype == np.float32


def test_backward_follows_the_implementation_of_its_forward():
    """A loss run forward under one implementation and backward under the other uses the
    engine of its forward; a loss built under one runs under the other."""
    model, x, y = make_model("mlp", 1, bias=True)
    for first, second in (("plain", "fast"), ("fast", "plain")):
        with mt.using(first):
            loss = TwoScaleSeparation(0.05, scale="live")
        with mt.using(second):
            loss.forward(model, x, y)
        with mt.using(first):
            loss.backward()
        engine = FastNormalization if second == "fast" else Normalization
        assert type(loss._norm) is engine and loss._impl == second


# ----------------------------------------------------------------------------- same numbers
# What the training loop uses to save time (the predictor, check_unchanged off, the
# correct flags from the terms of delta X) must give the numbers it replaces bit for bit:
# results files are compared exactly.


@pytest.mark.parametrize("which", sorted(MODEL_LOSSES))
@pytest.mark.parametrize("bias", [False, True])
def test_predictor_gives_the_numbers_of_predict_proba(which, bias, impl):
    """Loss.predictor (R(alpha) once for all chunks) = predict_proba per chunk."""
    model, x, y = make_model("mlp", 10, bias=bias, dtype=np.float32)
    loss = MODEL_LOSSES[which]("raw")
    loss.forward(model, x, y)  # sets R1 / R0 where the loss takes them from alpha^0
    p, X = loss.predictor(model, logits=True)(x)
    p_ref, X_ref = loss.predict_proba_and_logits(model, x)
    assert bits(p) == bits(p_ref) and bits(X) == bits(X_ref)
    assert bits(loss.predictor(model)(x)) == bits(loss.predict_proba(model, x))


@pytest.mark.parametrize("which", sorted(MODEL_LOSSES))
@pytest.mark.parametrize("kind", ["mlp", "lenet5"])
def test_check_unchanged_off_gives_the_same_numbers(which, kind, impl):
    """check_unchanged=False (the training loop) skips the copy and the comparison of
    alpha: the value, the diagnostics and every gradient are unchanged."""
    out = []
    for check in (True, False):
        model, x, y = make_model(kind, 11, dtype=np.float32)
        loss = MODEL_LOSSES[which]("raw")
        loss.check_unchanged = check
        value = loss.forward(model, x, y)
        loss.backward()
        last = loss.last
        out.append((value, bits(last.confidence), bits(last.second), bits(last.correct),
                    bits(last.values), dict(loss.grads),
                    [bits(g) for layer in model.linear_layers() for g in layer.grads.values()]))
    assert out[0] == out[1]


def test_check_unchanged_refuses_a_change_of_alpha_between_forward_and_backward(impl):
    model, x, y = make_model("mlp", 12)
    loss = TwoScale(1.0)
    loss.forward(model, x, y)
    model.linear_layers()[0].params["W"][0, 0] += 1.0
    with pytest.raises(RuntimeError, match="changed between"):
        loss.backward()


# logits with ties, near-ties (a few ulps apart), infinities and NaN; test-time scales
# that make products round together (subnormal) or overflow, and non-positive ones
LOGITS = st.lists(st.sampled_from([0.0, 1.0, 1.0000001, 0.9999999, -1.0, 2.5, 2.5000002,
                                   3e38, -3e38, np.inf, -np.inf, np.nan, 1e-38, -1e-45]),
                  min_size=12, max_size=12)
SCALES = st.sampled_from([1e-46, 1e-40, 1e-30, 0.5, 1.0, 3.0, 1e30, 3e38, 3.5e38, 0.0, -1.0,
                          np.inf, np.nan])


@pytest.mark.parametrize("make", [lambda s: TwoScale(0.5, R1=s, R2=10.0),
                                  lambda s: OneScale(R1=s),
                                  lambda s: TwoScaleSeparation(0.5)])
@given(values=LOGITS, scale=SCALES, labels=st.lists(st.integers(0, 2), min_size=4, max_size=4))
def test_batch_correct_is_delta_gt_zero_of_the_test_time_logits(make, values, scale, labels):
    """The fast path's last.correct, computed from the terms of delta X
    (fast_normalized.correct), is confidence(scale X_hat) > 0 as the plain
    NormalizedLoss._record computes it, with the test-time scale of predict_proba
    (R1, or R for Eq. (17)). Crafted logits replace the forward pass, so this runs the
    homogeneous path of the fast implementation only."""
    import warnings
    model = mt.models.mlp([2, 3, 3], seed=1)
    X = np.array(values, dtype=np.float32).reshape(4, 3)
    model.forward = lambda x: X.copy()  # crafted logits on the homogeneous path
    loss = make(abs(scale) if scale > 0 and scale < np.inf else 1.0)
    loss.check_finite = False
    if isinstance(loss, TwoScale):  # any value, also <= 0 or not finite (docs/decisions.md#D17)
        loss.params["R1"] = float(scale)
    y = np.array(labels)
    with warnings.catch_warnings(), mt.using("fast"):
        warnings.simplefilter("ignore", RuntimeWarning)
        loss.forward(model, np.zeros((4, 2), np.float32), y)
        R = loss.last.R
        test_scale = loss._test_scale(model, R)
        expected = confidence(test_scale * (X / R), y) > 0
    np.testing.assert_array_equal(loss.last.correct, expected)
