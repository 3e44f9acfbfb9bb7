"""Fast against plain: the normalisation, the losses and their test-time functions, float64.

minits.fast.FastNormalization must compute what the plain minits.normalization.
Normalization computes, and every loss's fast twin (minits.fast.convert of each loss of
helpers.LOSSES) what the plain loss computes. What is promised, per function:

- R(alpha): bit for bit (the same sums of squares, the same product).
- On a network with biases FastNormalization runs the plain Normalization's code: with
  the same layers, X_hat and every gradient bit for bit, and so every loss's value,
  diagnostics and gradients.
- On a bias-free network it uses Eq. (8) (X_hat = X / R, one pass at alpha): X_hat and
  the gradients (a different order of the same operations) to ~1e-12 relative to the
  array's largest entry.
- A loss's value, per-object values, confidences and scale gradients: the same
  rounding; the split (second) and the correct flags: exactly, away from the threshold.

The fast side runs the fast layers too (minits.fast.convert of the model), except in the
"same layers" tests. The last section checks what the training loop uses to save time
(the predictor, the one pass of Eq. (8) for the raw logits) against the numbers it
replaces, and the correct flags of a batch against the definition, computed by hand.
"""

import math
import warnings

import numpy as np
import pytest
from helpers import LOSSES, MODES, bits, kink_distance, make_model, split_eta
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minits as mt
from minits import fast
from minits.fast import FastNormalization, logits_at_normalized
from minits.losses import OneScale, TwoScale, TwoScaleSeparation
from minits.normalization import Normalization
from minits.scale import at_normalized_params, normalized_logits, scale_R

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


def grad_bits(model):
    return [bits(g) for layer in model.linear_layers() for g in layer.grads.values()]


def assert_grads_close(ga, gb, what):
    for i, (a, b) in enumerate(zip(ga, gb, strict=True)):
        for name in b:
            assert_close(a[name], b[name], f"{what}: layer {i} {name}")


def run_engine(engine, model, x, G, dL_dR):
    X_hat = engine.forward(model, x)
    engine.backward(G.copy(), dL_dR=dL_dR)
    return X_hat.copy(), engine.R, grads(model)


# ----------------------------------------------------------------------------- normalisation


@settings(max_examples=20)
@given(KINDS, SEEDS, st.booleans(), st.sampled_from([0.0, 0.7, -1.3]))
def test_fast_normalization_equals_the_plain_one(kind, seed, bias, dL_dR):
    """FastNormalization on the fast layers = Normalization on the plain layers (Eq. (8)
    without biases, the plain code with them)."""
    model, x, _ = make_model(kind, seed, bias)
    assume(kink_distance(model, x) > 1e-8)  # the same ReLU / max-pool choices in both
    G = np.random.default_rng(seed).standard_normal(model.forward(x).shape)
    Xp, Rp, gp = run_engine(Normalization(), model, x, G, dL_dR)
    Xf, Rf, gf = run_engine(FastNormalization(), fast.convert(model), x, G, dL_dR)
    assert Rf == Rp
    assert_close(Xf, Xp, "X_hat")
    assert_grads_close(gf, gp, f"{kind} dL/dalpha")


@settings(max_examples=15)
@given(KINDS, SEEDS, st.sampled_from([0.0, 0.7, -1.3]))
def test_fast_normalization_runs_the_plain_code_with_biases(impl, kind, seed, dL_dR):
    """With biases Eq. (8) does not hold: FastNormalization is Normalization, bit for bit
    with the same layers (R, c, X_hat and every gradient)."""
    plain, x, _ = make_model(kind, seed, bias=True)
    model = impl(plain)
    G = np.random.default_rng(seed).standard_normal(plain.forward(x).shape)
    out = []
    for engine in (Normalization(), FastNormalization()):
        X_hat = engine.forward(model, x)
        engine.backward(G.copy(), dL_dR=dL_dR)
        out.append((engine.R, engine.c, bits(X_hat), grad_bits(model)))
    assert out[0] == out[1]
    assert out[0][2] == bits(normalized_logits(model, x))  # the literal X(alpha_hat)


@settings(max_examples=10)
@given(KINDS, SEEDS, st.booleans())
def test_fast_logits_at_normalized(kind, seed, bias):
    """(X_hat, X, R): without biases X_hat = X / R with the raw logits X of the same pass
    (to rounding of X(alpha_hat)); with biases the literal forward at alpha_hat, no X."""
    model, x, _ = make_model(kind, seed, bias)
    X_hat, X, R = logits_at_normalized(model, x)
    assert R == scale_R(model)
    with at_normalized_params(model):
        literal = model.forward(x)
    if bias:
        assert X is None
        assert bits(X_hat) == bits(literal)
    else:
        assert bits(X) == bits(model.forward(x))
        assert bits(X_hat) == bits(X / R)
        assert_close(X_hat, normalized_logits(model, x), "X_hat")


# ----------------------------------------------------------------------------- the losses


def run_loss(loss, model, x, y):
    """Forward, backward and the test-time functions of a loss."""
    value = loss.forward(model, x, y)
    last = loss.last
    loss.backward()
    return (value, last, grads(model), dict(loss.grads), loss.predict_proba(model, x),
            loss.predict_proba_and_logits(model, x), loss.predictor(model, logits=True)(x))


def plain_and_fast_loss(which, mode, model, x, y, draw):
    """The plain loss of helpers.LOSSES, its scales set by a first forward and its eta
    between two of the batch's confidences (away from them), and its fast twin."""
    plain = LOSSES[which](mode)
    plain.forward(model, x, y)
    if hasattr(plain, "eta") and not isinstance(plain, OneScale):
        delta = plain.last.confidence
        plain.eta = split_eta(delta, draw)
        assume(np.min(np.abs(delta - plain.eta)) > 1e-9 * (1 + np.max(np.abs(delta))))
    return plain, fast.convert(plain)


@settings(max_examples=15)
@pytest.mark.parametrize("which", sorted(LOSSES))
@given(kind=KINDS, seed=SEEDS, bias=st.booleans(), mode=st.sampled_from(MODES),
       data=st.data())
def test_fast_losses_equal_the_plain_ones(which, kind, seed, bias, mode, data):
    """Value, per-object diagnostics, every gradient, the scales' gradients and the
    test-time probabilities: the fast twin on the fast layers against the plain loss on
    the plain layers."""
    model, x, y = make_model(kind, seed, bias)
    assume(kink_distance(model, x) > 1e-8)
    plain_loss, fast_loss = plain_and_fast_loss(which, mode, model, x, y, data.draw)
    plain = run_loss(plain_loss, model, x, y)
    fast_ = run_loss(fast_loss, fast.convert(model), x, y)
    assert_close(fast_[0], plain[0], "loss value")
    np.testing.assert_array_equal(fast_[1].second, plain[1].second)
    np.testing.assert_array_equal(fast_[1].correct, plain[1].correct)
    assert_close(fast_[1].values, plain[1].values, "per-object values")
    assert_close(fast_[1].confidence, plain[1].confidence, "confidences")
    assert fast_[1].R_alpha == plain[1].R_alpha and fast_[1].scales == plain[1].scales
    assert_grads_close(fast_[2], plain[2], f"{which} on {kind}")
    assert fast_[3].keys() == plain[3].keys()
    for name in plain[3]:
        assert_close(fast_[3][name], plain[3][name], f"d loss / d {name}")
    for i in (4, 5, 6):
        proba, ref = (fast_[i], plain[i]) if i == 4 else (fast_[i][0], plain[i][0])
        assert_close(proba, ref, "test-time probabilities")
    for i in (5, 6):
        assert bits(fast_[i][1]) == bits(plain[i][1])  # raw logits, exactly (float64)
    np.testing.assert_array_equal(plain[5][1], model.forward(x))


@settings(max_examples=10)
@pytest.mark.parametrize("which", sorted(LOSSES))
@given(kind=KINDS, seed=SEEDS, mode=st.sampled_from(MODES), data=st.data())
def test_fast_losses_change_no_number_with_biases(impl, which, kind, seed, mode, data):
    """On a network with biases (the plain normalisation code) and the same layers, the
    fast twin gives the plain loss's value, diagnostics and every gradient bit for bit."""
    plain_model, x, y = make_model(kind, seed, bias=True)
    model = impl(plain_model)
    out = []
    for loss in plain_and_fast_loss(which, mode, model, x, y, data.draw):
        value = loss.forward(model, x, y)
        last = loss.last
        loss.backward()
        out.append((value, bits(last.confidence), bits(last.second), bits(last.correct),
                    bits(last.values), last.R_alpha, last.scales, dict(loss.grads),
                    grad_bits(model)))
    assert out[0] == out[1]


@pytest.mark.parametrize("which", sorted(LOSSES))
def test_fast_losses_share_params_with_their_plain_originals(which):
    """fast.convert(loss).params is loss.params: a scale set or an SGD step on either is
    one on both (training the fast twin trains the plain loss it came from)."""
    model, x, y = make_model("mlp", 14)
    plain = LOSSES[which]("raw")
    if hasattr(plain, "eta") and not isinstance(plain, OneScale):
        plain.eta = 1e-3  # objects in both cases: every scale has a gradient
    twin = fast.convert(plain)
    assert type(twin) is fast.TWINS[type(plain)] and isinstance(twin, type(plain))
    assert twin.params is plain.params and twin is not plain
    twin.forward(fast.convert(model), x, y)  # sets R1 / R where the loss takes R(alpha^0)
    assert all(v is not None for v in plain.params.values())
    twin.backward()
    assert all(g != 0 for g in twin.grads.values())
    before = dict(plain.params)
    mt.SGD(0.1).step(model, twin)
    expected = {name: v - 0.1 * twin.grads[name] if name in twin.grads else v
                for name, v in before.items()}
    assert plain.params == expected
    assert (plain.params != before) == bool(twin.grads)
    assert fast.convert(twin) is twin  # already fast: returned as it is


@pytest.mark.parametrize("which", sorted(LOSSES))
def test_plain_losses_never_run_fast_code(which, monkeypatch):
    """A plain loss on a plain model runs only plain code, whatever exists in minits.fast:
    with every fast entry point of the losses made to fail, forward, backward and the
    test-time functions still run; its fast twin, on the same plain model, then fails
    (the trap is set: FastNormalization's forward, or FastCrossEntropy's backward)."""
    def trap(*args, **kwargs):
        raise AssertionError("fast code ran")

    from minits.fast import losses as fast_losses
    for name in ("fast_two_scale_value_and_grad", "logits_at_normalized",
                 "backward_without_input_grad"):
        monkeypatch.setattr(fast_losses, name, trap)
    for method in ("forward", "backward"):
        monkeypatch.setattr(FastNormalization, method, trap)
        monkeypatch.setattr(fast.FastSequential, method, trap)
    model, x, y = make_model("mlp", 15)
    loss = LOSSES[which]("raw")
    loss.forward(model, x, y)
    loss.backward()
    loss.predict_proba(model, x)
    loss.predictor(model, logits=True)(x)
    twin = fast.convert(loss)
    with pytest.raises(AssertionError, match="fast code ran"):
        twin.forward(model, x, y)
        twin.backward()


def test_the_homogeneous_path_keeps_float32():
    model, x, y = make_model("lenet5", 0, dtype=np.float32)
    model = fast.convert(model)
    loss = fast.convert(TwoScale(0.05, R1=3.0, R2=30.0))
    loss.forward(model, x, y)
    assert loss._norm.X is not None  # the homogeneous path ran
    assert loss.last.confidence.dtype == np.float32
    loss.backward()
    proba, X = loss.predict_proba_and_logits(model, x)
    assert all(g.dtype == np.float32 for layer in model.linear_layers()
               for g in layer.grads.values())
    assert proba.dtype == np.float32 and X.dtype == np.float32


# ----------------------------------------------------------------------------- same numbers
# What the training loop uses to save time (the predictor: R(alpha) once for all chunks)
# must give the numbers it replaces bit for bit: results files are compared exactly.


@pytest.mark.parametrize("which", sorted(LOSSES))
@pytest.mark.parametrize("bias", [False, True])
def test_predictor_gives_the_numbers_of_predict_proba(which, bias, impl):
    """Loss.predictor (R(alpha) once for all chunks) = predict_proba per chunk."""
    plain, x, y = make_model("mlp", 10, bias=bias, dtype=np.float32)
    model = impl(plain)
    loss = impl(LOSSES[which]("raw"))
    loss.forward(model, x, y)  # sets R1 / R0 where the loss takes them from alpha^0
    p, X = loss.predictor(model, logits=True)(x)
    p_ref, X_ref = loss.predict_proba_and_logits(model, x)
    assert bits(p) == bits(p_ref) and bits(X) == bits(X_ref)
    assert bits(loss.predictor(model)(x)) == bits(loss.predict_proba(model, x))
    assert bits(X) == bits(model.forward(x))  # the raw logits X(alpha)


# ----------------------------------------------------------------------------- correct flags
# last.correct is Eq. (11) on the batch: the test-time classifier, argmax of R_test X_hat,
# is right -- X_hat_{i(s)} scaled beats every other scaled logit *strictly*. Crafted
# logits (through the losses' _logits hook, so that both implementations see the same
# X_hat) with ties, near-ties, infinities, NaN, and test-time scales that round products
# together (subnormal), overflow them, or are 0, negative, inf or NaN.

FLOAT64 = [0.0, 1.0, 1.0 + 2.0 ** -52, 1.0 - 2.0 ** -53, -1.0, 2.5, 1e308, -1e308, math.inf,
           -math.inf, math.nan, 1e-308, -5e-324]
SCALES64 = [5e-324, 1e-310, 1e-300, 0.5, 1.0, 3.0, 1e300, 1.7e308, 0.0, -1.0, math.inf, math.nan]
FLOAT32 = [0.0, 1.0, 1.0000001, 0.9999999, -1.0, 2.5, 2.5000002, 3e38, -3e38, math.inf,
           -math.inf, math.nan, 1e-38, -1e-45]
SCALES32 = [1e-46, 1e-40, 1e-30, 0.5, 1.0, 3.0, 1e30, 3e38, 3.5e38, 0.0, -1.0, math.inf,
            math.nan]


@st.composite
def crafted(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    values, scales = (FLOAT32, SCALES32) if dtype == np.float32 else (FLOAT64, SCALES64)
    X_hat = np.array(draw(st.lists(st.sampled_from(values), min_size=12, max_size=12)),
                     dtype=dtype).reshape(4, 3)
    y = np.array(draw(st.lists(st.integers(0, 2), min_size=4, max_size=4)))
    return X_hat, y, draw(st.sampled_from(scales))


def correct_by_hand(X_hat, y, R_test):
    """Object s is correct when R_test X_hat_{i(s)} > R_test X_hat_i for every i != i(s),
    each product rounded to the dtype of X_hat as the test-time logits are (the scale
    first converted to it: a Python float against a float32 array), NaN never greater."""
    dtype = X_hat.dtype.type
    flags = []
    with np.errstate(over="ignore"):  # a float32 overflow rounds to inf, as it should
        r = float(dtype(R_test))
        for s in range(len(y)):
            z = [float(dtype(r * float(v))) for v in X_hat[s]]  # exact product, then rounded
            flags.append(all(z[y[s]] > z[i] for i in range(len(z)) if i != y[s]))
    return np.array(flags)


def loss_with(which, scale):
    """A loss whose test-time scale R_test is `scale` (any value, also <= 0 or not finite:
    docs/decisions.md#D17), and the R(alpha) its _logits hook reports."""
    if which == "two_scale":
        loss = TwoScale(0.5, R1=1.0, R2=10.0)
        loss.params["R1"] = scale
    elif which == "one_scale":
        loss = OneScale(R1=1.0)
        loss.params["R1"] = scale
    elif which == "separation_fixed":
        loss = TwoScaleSeparation(0.5, R0=1.0)
        loss.params["R"] = scale
    else:  # the live R is R(alpha), here the crafted one
        loss = TwoScaleSeparation(0.5, scale="live")
    return loss


@pytest.mark.parametrize("which", ["two_scale", "one_scale", "separation_fixed",
                                   "separation_live"])
@pytest.mark.parametrize("confidence", ["raw", "scaled"])
@given(case=crafted())
def test_batch_correct_is_the_strict_comparison_of_the_test_time_logits(impl, which,
                                                                        confidence, case):
    X_hat, y, scale = case
    loss = impl(loss_with(which, scale))
    loss.confidence = confidence
    R_alpha = scale if which == "separation_live" else 2.0
    loss._logits = lambda model, x: (X_hat.copy(), X_hat.copy(), R_alpha)
    model = mt.models.mlp([2, 3, 3], seed=1)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # inf - inf, 0 * inf, ...
        loss.forward(model, np.zeros((4, 2)), y)  # no exception, whatever the logits
    R_test = loss.R_test(model, R_alpha)
    assert R_test == scale or (math.isnan(R_test) and math.isnan(scale))
    np.testing.assert_array_equal(loss.last.correct, correct_by_hand(X_hat, y, scale))
