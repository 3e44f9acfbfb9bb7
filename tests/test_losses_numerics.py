"""The functions on logits at the edges of floating point: extreme logits (finite
results, no overflow, division by zero or invalid operation), dtypes kept, and the fast
twins (minits/fast/objectives.py, FastTwoScaleSeparation's Eq. (17)) equal to the plain
functions bit for bit."""

import warnings

import numpy as np
import pytest
from helpers import FUNCTIONS, bits, logits_labels
from hypothesis import given
from hypothesis import strategies as st

import minits as mt
from minits import fast
from minits.layers import log_softmax
from minits.losses import (
    CrossEntropy,
    Truncated,
    cross_entropy,
    dL_dR_eq15,
    dL_dR_general,
    mse_probabilities,
    separation_value_and_grad,
    truncated,
    two_scale_value_and_grad,
)
from minits.scale import confidence

R_K = 3.0  # the scale of dL_dR_eq15 below (the fast twin takes one per object, in z's dtype)

# ---------------------------------------------------------------- extreme logits

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("magnitude", [1e4, 3e4])
def test_extreme_logits_are_finite_and_silent(impl, dtype, magnitude):
    F = FUNCTIONS[impl.name]
    rng = np.random.default_rng(7)
    z = (rng.standard_normal((6, 4)) * magnitude).astype(dtype)
    z[0] = [magnitude, -magnitude, 0, 0]  # correct class far ahead
    y = np.array([0, 1, 2, 3, 0, 1])
    y[1] = int(np.argmin(z[1]))  # correct class far behind
    second = np.array([True, False, True, False, True, False])
    # Underflow of exp to 0 is the correctly rounded probability and numpy ignores it by
    # default; overflow, division by zero and invalid operations (NaN) must not happen.
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        outputs = [*truncated(z, y, 0.2), *mse_probabilities(z, y), dL_dR_general(z, y, R_K),
                   confidence(z, y), log_softmax(z)]
        outputs += [*F["cross_entropy"](z, y), F["dL_dR_eq15"](z, y, np.full(6, R_K, dtype)),
                    *F["two_scale"](z, y, 1.0, 10.0, second),
                    *F["separation"](z, y, 2.0, 10.0, second)]
    for out in outputs:
        assert np.all(np.isfinite(out))
    for out in outputs:
        if isinstance(out, np.ndarray):
            assert out.dtype == dtype
    values, dz = F["cross_entropy"](z, y)
    assert values[0] == 0.0  # p_{i(s)} = 1 to machine precision
    margin = float(np.max(z[1]) - z[1, y[1]])
    assert values[1] == pytest.approx(margin, rel=1e-6)  # -log p ~ the logit gap
    assert np.all(np.abs(np.sum(dz, axis=1)) < 1e-5)  # p sums to one


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logit_functions_keep_dtype(impl, dtype):
    F = FUNCTIONS[impl.name]
    rng = np.random.default_rng(1)
    z, y = rng.standard_normal((3, 4)).astype(dtype), np.array([0, 3, 1])
    second = np.array([True, False, False])
    for f in (F["cross_entropy"], mse_probabilities, lambda a, b: truncated(a, b, 0.3)):
        values, dz = f(z, y)
        assert values.dtype == dtype and dz.dtype == dtype
    assert log_softmax(z).dtype == dtype
    values, dX_hat, dR1, dR2 = F["two_scale"](z, y, 1.5, 15.0, second)
    assert values.dtype == dtype and dX_hat.dtype == dtype
    assert isinstance(dR1, float) and isinstance(dR2, float)
    values, dX_hat, dRs, dR = F["separation"](z, y, 1.5, 10.0, second)
    assert values.dtype == dtype and dX_hat.dtype == dtype
    assert isinstance(dRs, float) and isinstance(dR, float)
    assert F["dL_dR_eq15"](z, y, np.full(3, 2.0, dtype=dtype)).dtype == dtype


# ----------------------------------------------------------------------------- same numbers
# The fast functions (minits/fast/objectives.py) skip NumPy's Python wrappers and reduce
# short rows faster; their numbers must be those of the plain functions, bit for bit
# (results are compared exactly).

WIDE = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32)


@given(logits_labels(max_n=40, max_k=12, elements=WIDE), st.sampled_from([np.float32, np.float64]),
       st.floats(0.01, 100), st.data())
def test_fast_functions_give_the_numbers_of_the_plain_ones(zy, dtype, R, data):
    z, y = zy
    z = z.astype(dtype)
    second = np.array(data.draw(st.lists(st.booleans(), min_size=len(y), max_size=len(y))))
    F = FUNCTIONS["fast"]
    for a, b in zip(F["cross_entropy"](z, y), cross_entropy(z, y), strict=True):
        assert bits(a) == bits(b)
    scale = np.where(np.arange(len(y)) % 2 == 0, R, 10 * R).astype(dtype)
    assert bits(F["dL_dR_eq15"](z, y, scale)) == bits(dL_dR_eq15(z, y, scale))
    same = np.full(len(y), R, dtype=dtype)
    assert bits(F["dL_dR_eq15"](z, y, same)) == bits(dL_dR_eq15(z, y, R))
    # the losses' own per-object steps: FastTwoScale's and FastTwoScaleSeparation's
    two, sep = fast.FastTwoScale(1.0), fast.FastTwoScaleSeparation(1.0)
    for fixed in (False, True):
        expected = two_scale_value_and_grad(z, y, R, 10 * R, second, fixed=fixed)
        two.fixed = fixed
        for got in (F["two_scale"](z, y, R, 10 * R, second, fixed=fixed),
                    two._value_and_grad(z, y, R, 10 * R, second)):
            assert [bits(v) for v in got] == [bits(v) for v in expected]
    expected = separation_value_and_grad(z, y, R, 7.0, second)
    for got in (F["separation"](z, y, R, 7.0, second), sep._value_and_grad(z, y, R, 7.0, second)):
        assert [bits(v) for v in got] == [bits(v) for v in expected]


# logits with ties, near-ties (a few ulps apart), infinities and NaN
EDGE = st.sampled_from([0.0, -0.0, 1.0, 1.0000001, 0.9999999, -1.0, 2.5, 2.5000002, 3e38, -3e38,
                        np.inf, -np.inf, np.nan, 1e-38, -1e-45])


@given(st.integers(1, 6), st.integers(2, 5), st.data(), st.sampled_from([np.float32, np.float64]))
def test_fast_cross_entropy_forward_gives_the_numbers_of_the_plain_one(n, k, data, dtype):
    """FastCrossEntropy.forward's confidence (fast_confidence) and batch mean (mean64) are
    minits.scale.confidence and minits.losses.base.reduce bit for bit, ties, infinities and
    NaN included; the whole forward on a model gives the plain loss's numbers."""
    from minits.fast.objectives import fast_confidence, mean64
    from minits.losses.base import reduce

    X = np.array(data.draw(st.lists(EDGE, min_size=n * k, max_size=n * k)), dtype).reshape(n, k)
    y = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    with np.errstate(over="ignore", invalid="ignore"):  # 3e38 + 3e38, inf - inf: alike
        assert bits(fast_confidence(X, y)) == bits(confidence(X, y))
    values = np.abs(X[:, 0])
    with np.errstate(over="ignore", invalid="ignore"):
        assert bits(mean64(values)) == bits(reduce(values, "mean"))


@pytest.mark.parametrize("make", [lambda: CrossEntropy(), lambda: Truncated(0.2)])
def test_fast_cross_entropy_forward_on_a_model_is_the_plain_one(make):
    model = mt.models.mlp([6, 5, 4], seed=3, dtype=np.float64)
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((16, 6)), rng.integers(0, 4, 16)
    plain, twin = make(), fast.convert(make())
    assert bits(plain.forward(model, x, y)) == bits(twin.forward(fast.convert(model), x, y))
    for name in ("confidence", "second", "correct", "values"):
        assert bits(getattr(plain.last, name)) == bits(getattr(twin.last, name)), name
