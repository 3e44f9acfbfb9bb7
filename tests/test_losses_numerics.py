"""The functions on logits at the edges of floating point: extreme logits (finite
results, no overflow, division by zero or invalid operation), dtypes kept, and the fast
versions (minits/losses/fast_objectives.py) equal to the plain ones bit for bit."""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_losses_logits import FUNCTIONS, IMPLS, fast_two_scale, logits_labels
from test_scale import bits

from minits.losses import (
    cross_entropy,
    dL_dR_eq15,
    dL_dR_general,
    log_softmax,
    mse_probabilities,
    separation_value_and_grad,
    truncated,
    two_scale_value_and_grad,
)
from minits.losses.base import reduce
from minits.losses.fast_objectives import (
    fast_confidence,
    fast_cross_entropy,
    fast_dL_dR_eq15,
    fast_log_softmax,
    fast_reduce,
    fast_separation_value_and_grad,
)
from minits.scale import confidence

# ---------------------------------------------------------------- extreme logits

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("magnitude", [1e4, 3e4])
def test_extreme_logits_are_finite_and_silent(dtype, magnitude):
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
        outputs = [*truncated(z, y, 0.2), *mse_probabilities(z, y), dL_dR_general(z, y, 3.0),
                   confidence(z, y), fast_confidence(z, y)]
        for F in FUNCTIONS.values():
            outputs += [F["log_softmax"](z), *F["cross_entropy"](z, y),
                        F["dL_dR_eq15"](z, y, 3.0), *F["two_scale"](z, y, 1.0, 10.0, second),
                        *F["separation"](z, y, 2.0, 10.0, second)]
    for out in outputs:
        assert np.all(np.isfinite(out))
    for out in outputs:
        if isinstance(out, np.ndarray):
            assert out.dtype == dtype
    values, dz = cross_entropy(z, y)
    assert values[0] == 0.0  # p_{i(s)} = 1 to machine precision
    margin = float(np.max(z[1]) - z[1, y[1]])
    assert values[1] == pytest.approx(margin, rel=1e-6)  # -log p ~ the logit gap
    assert np.all(np.abs(np.sum(dz, axis=1)) < 1e-5)  # p sums to one


@pytest.mark.parametrize("impl_name", IMPLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logit_functions_keep_dtype(impl_name, dtype):
    F = FUNCTIONS[impl_name]
    rng = np.random.default_rng(1)
    z, y = rng.standard_normal((3, 4)).astype(dtype), np.array([0, 3, 1])
    second = np.array([True, False, False])
    for f in (F["cross_entropy"], mse_probabilities, lambda a, b: truncated(a, b, 0.3)):
        values, dz = f(z, y)
        assert values.dtype == dtype and dz.dtype == dtype
    assert F["log_softmax"](z).dtype == dtype
    values, dX_hat, dR1, dR2 = F["two_scale"](z, y, 1.5, 15.0, second)
    assert values.dtype == dtype and dX_hat.dtype == dtype
    assert isinstance(dR1, float) and isinstance(dR2, float)
    values, dX_hat, dRs, dR = F["separation"](z, y, 1.5, 10.0, second)
    assert values.dtype == dtype and dX_hat.dtype == dtype
    assert isinstance(dRs, float) and isinstance(dR, float)
    assert F["dL_dR_eq15"](z, y, 2.0).dtype == dtype


# ----------------------------------------------------------------------------- same numbers
# The fast functions (minits/losses/fast_objectives.py) skip NumPy's Python wrappers and
# reduce short rows faster; their numbers must be those of the plain functions, bit for
# bit (results are compared exactly).

WIDE = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32)


@given(logits_labels(max_n=40, max_k=12, elements=WIDE), st.sampled_from([np.float32, np.float64]),
       st.floats(0.01, 100), st.data())
def test_fast_functions_give_the_numbers_of_the_plain_ones(zy, dtype, R, data):
    z, y = zy
    z = z.astype(dtype)
    second = np.array(data.draw(st.lists(st.booleans(), min_size=len(y), max_size=len(y))))
    assert bits(fast_log_softmax(z)) == bits(log_softmax(z))
    assert bits(fast_log_softmax(z[0])) == bits(log_softmax(z[0]))  # other shapes too
    for a, b in zip(fast_cross_entropy(z, y), cross_entropy(z, y), strict=True):
        assert bits(a) == bits(b)
    scale = np.where(np.arange(len(y)) % 2 == 0, R, 10 * R).astype(dtype)
    assert bits(fast_dL_dR_eq15(z, y, scale)) == bits(dL_dR_eq15(z, y, scale))
    assert bits(fast_dL_dR_eq15(z, y, R)) == bits(dL_dR_eq15(z, y, R))
    for fast, plain in ((fast_two_scale(z, y, R, 10 * R, second),
                         two_scale_value_and_grad(z, y, R, 10 * R, second)),
                        (fast_separation_value_and_grad(z, y, R, 7.0, second),
                         separation_value_and_grad(z, y, R, 7.0, second))):
        assert [bits(v) for v in fast] == [bits(v) for v in plain]
    values = cross_entropy(z, y)[0]
    assert fast_reduce(values, "mean") == reduce(values, "mean")
    assert fast_reduce(values, "none") is values and reduce(values, "none") is values
