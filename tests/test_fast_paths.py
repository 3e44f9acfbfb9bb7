"""The homogeneous fast path of the normalisation (X_hat = X / R, gradients at alpha)
against the literal path (parameters scaled in place to alpha_hat), float64.

Both compute the same function and the same chain rule (minits/scale.py,
Normalization); they differ only in rounding, so values, every parameter
gradient and the scales' gradients agree to ~1e-12 relative.
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_scale import kink_distance, make_model

import minits as mt
from minits.losses import OneScale, TwoScale, TwoScaleSeparation
from minits.scale import (
    Normalization,
    at_normalized_params,
    logits_at_normalized,
    normalized_logits,
)

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


@settings(max_examples=20, deadline=None)
@given(KINDS, SEEDS, st.sampled_from([0.0, 0.7, -1.3]))
def test_normalization_paths_agree(kind, seed, dL_dR):
    model, x, _ = make_model(kind, seed)
    assume(kink_distance(model, x) > 1e-8)  # the same ReLU / max-pool choices in both
    G = np.random.default_rng(seed).standard_normal(model.forward(x).shape)
    results = {}
    for mode in ("literal", "homogeneous"):
        norm = Normalization(mode)
        X_hat = norm.forward(model, x)
        norm.backward(G.copy(), dL_dR=dL_dR)
        results[mode] = (X_hat.copy(), norm.R, grads(model))
    (Xl, Rl, gl), (Xf, Rf, gf) = results["literal"], results["homogeneous"]
    assert Rf == Rl
    assert_close(Xf, Xl, "X_hat")
    assert_grads_close(gf, gl, f"{kind} dL/dalpha")


LOSSES = {
    "two_scale": lambda: TwoScale(0.05, R1=3.0, R2=30.0),
    "two_scale_normalized": lambda: TwoScale(0.05, R1=3.0, R2=30.0, confidence="normalized"),
    "fixed": lambda: TwoScale(0.05, R1=3.0, R2=30.0, fixed=True),
    "one_scale": lambda: OneScale(R1=3.0),
    "separation": lambda: TwoScaleSeparation(0.05, Rs=10.0),
    "separation_frozen": lambda: TwoScaleSeparation(0.05, Rs=10.0, R="frozen"),
}


@settings(max_examples=20, deadline=None)
@given(KINDS, SEEDS, st.sampled_from(sorted(LOSSES)))
def test_losses_agree_on_both_paths(kind, seed, which):
    """Value, per-object diagnostics, all gradients and the scales' gradients."""
    model, x, y = make_model(kind, seed)
    assume(kink_distance(model, x) > 1e-8)
    out = {}
    for mode in ("literal", "homogeneous"):
        loss = LOSSES[which]()
        loss._norm = Normalization(mode)
        value = loss.forward(model, x, y)
        # keep samples away from the eta threshold, where rounding may pick either case
        assume(np.min(np.abs(loss.last.confidence - loss.eta)) > 1e-9)
        loss.backward()
        out[mode] = (value, loss.last, grads(model), dict(loss.grads),
                     loss.predict_proba(model, x), loss.predict_proba_and_logits(model, x))
    lit, fast = out["literal"], out["homogeneous"]
    assert_close(fast[0], lit[0], "loss value")
    np.testing.assert_array_equal(fast[1].second, lit[1].second)
    np.testing.assert_array_equal(fast[1].correct, lit[1].correct)
    assert_close(fast[1].values, lit[1].values, "per-object values")
    assert fast[1].R == lit[1].R
    assert_grads_close(fast[2], lit[2], f"{which} on {kind}")
    assert fast[3].keys() == lit[3].keys()
    for name in lit[3]:
        assert_close(fast[3][name], lit[3][name], f"d loss / d {name}")
    assert_close(fast[4], lit[4], "predict_proba")
    assert_close(fast[5][0], lit[5][0], "predict_proba_and_logits: proba")
    np.testing.assert_array_equal(fast[5][1], model.forward(x))  # raw logits, exactly


@settings(max_examples=10, deadline=None)
@given(KINDS, SEEDS)
def test_logits_at_normalized(kind, seed):
    model, x, _ = make_model(kind, seed)
    X_hat, X, R = logits_at_normalized(model, x)
    np.testing.assert_array_equal(X, model.forward(x))
    assert R == mt.scale_R(model)
    np.testing.assert_array_equal(X_hat, normalized_logits(model, x))  # auto: the fast path
    X_hat_l, X_l, R_l = logits_at_normalized(model, x, mode="literal")
    assert X_l is None and R_l == R
    with at_normalized_params(model):
        np.testing.assert_array_equal(X_hat_l, model.forward(x))
    assert_close(X_hat, X_hat_l, "X_hat")


def test_auto_mode_is_literal_with_biases_and_homogeneous_without():
    for bias in (False, True):
        model, x, _ = make_model("mlp", 0, bias=bias)
        norm = Normalization()
        norm.forward(model, x)
        assert (norm.X is not None) == (not bias)
    with pytest.raises(ValueError, match="bias-free"):
        Normalization("homogeneous").forward(make_model("mlp", 0, bias=True)[0], x)
    with pytest.raises(ValueError, match="mode"):
        Normalization("fast")


def test_homogeneous_path_keeps_float32():
    model, x, y = make_model("lenet5", 0, dtype=np.float32)
    loss = TwoScale(0.05, R1=3.0, R2=30.0)
    loss.forward(model, x, y)
    assert loss._norm.X is not None  # the fast path ran
    assert loss.last.confidence.dtype == np.float32
    loss.backward()
    assert all(g.dtype == np.float32 for layer in model.linear_layers()
               for g in layer.grads.values())
    proba, X = loss.predict_proba_and_logits(model, x)
    assert proba.dtype == np.float32 and X.dtype == np.float32
