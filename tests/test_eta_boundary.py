"""The eta boundary inside the losses: an object with delta X = eta *exactly* takes the
second case of Eq. (13), (16) and (17) (they write ">=", docs/decisions.md#D15).

A one-layer bias-free network with small integers in W and x has integer raw logits,
computed exactly in float32 and float64, so its raw confidences are exact integers and
eta can equal one of them. The boundary object's value and gradients must then be those
of the second case -- the R2 (or Rs R) branch -- which the loss with a lower eta (the
object clearly in the second case) computes, and not those of a higher eta. Changing
">=" to ">" in the losses' split (minits.losses.base.second_branch) fails these tests.
Every test in both implementations (the ``impl`` fixture).

OneScale, the baseline, is Eq. (13) with R2 := R1: on the same net it must be TwoScale
with R2 = R1 and no object in the second case, bit for bit.
"""

import numpy as np
import pytest
from helpers import bits

import minits as mt
from minits.losses import OneScale, TwoScale, TwoScaleSeparation
from minits.losses.cross_entropy import cross_entropy
from minits.scale import normalized_logits, scale_R

W = [[2, 0], [0, 1], [1, 1]]  # 3 classes, 2 inputs
X_IN = [[1, 0], [3, 0], [0, 1], [1, 0]]  # raw logits [2,0,1] [6,0,3] [0,1,1] [2,0,1]
Y = [0, 0, 1, 2]  # raw confidences 1 (the boundary), 3, 0, -1
ETA = 1.0
BOUNDARY = 0

LOSSES = {
    "eq13": lambda eta: TwoScale(eta, R1=2.0, R2=20.0),
    "eq16": lambda eta: TwoScale(eta, R1=2.0, R2=20.0, fixed=True),
    "eq17_fixed": lambda eta: TwoScaleSeparation(eta, Rs=10.0, scale="fixed"),
    "eq17_trained": lambda eta: TwoScaleSeparation(eta, Rs=10.0, scale="trained"),
    "eq17_live": lambda eta: TwoScaleSeparation(eta, Rs=10.0, scale="live"),
}


def exact_net(dtype):
    model = mt.Sequential(mt.Linear(2, 3, dtype=dtype))
    model.layers[0].params["W"][...] = W
    return model, np.array(X_IN, dtype=dtype), np.array(Y)


def run(which, eta, dtype, impl):
    """(second, values, grads of W, the loss's grads, the loss) of one forward and
    backward on the exact net, both in implementation impl."""
    model, x, y = exact_net(dtype)
    model, loss = impl(model), impl(LOSSES[which](eta))
    loss.forward(model, x, y)
    loss.backward()
    return (loss.last.second.copy(), loss.last.values.copy(),
            model.layers[0].grads["W"].copy(), dict(loss.grads), loss)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("which", sorted(LOSSES))
def test_delta_equal_to_eta_takes_the_second_case(which, dtype, impl):
    model, x, y = exact_net(dtype)
    assert model.forward(x)[BOUNDARY, 0] - model.forward(x)[BOUNDARY, 2] == ETA  # exactly
    second, values, gW, grads, loss = run(which, ETA, dtype, impl)
    assert loss.last.confidence[BOUNDARY] == ETA
    np.testing.assert_array_equal(second, [True, True, False, False])
    below, above = run(which, ETA - 0.5, dtype, impl), run(which, ETA + 0.5, dtype, impl)
    np.testing.assert_array_equal(below[0], second)  # eta lower: the same split
    np.testing.assert_array_equal(above[0], [False, True, False, False])
    # the boundary object's value is the second case's, R2 (or Rs R) times X_hat ...
    assert values[BOUNDARY] == below[1][BOUNDARY]
    assert values[BOUNDARY] != above[1][BOUNDARY]
    scale = 20.0 if which in ("eq13", "eq16") else 10.0 * scale_R(model)  # R2, or Rs R
    X_hat = normalized_logits(model, x).astype(np.float64)
    expected = cross_entropy(scale * X_hat[BOUNDARY:BOUNDARY + 1], y[BOUNDARY:BOUNDARY + 1])[0]
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12)
    np.testing.assert_allclose(values[BOUNDARY], expected[0], **tol)
    # ... and so are the gradients: those of the loss with the lower eta, bit for bit
    np.testing.assert_array_equal(gW, below[2])
    assert not np.array_equal(gW, above[2])
    assert grads == below[3]
    if grads:  # the scales' derivatives too (none for Eq. (16))
        assert grads != above[3]


def one_step(loss, impl, dtype):
    """(values, grads of W, the loss's grads, second, R_test) of one forward and backward
    of `loss` on the exact net, in implementation impl."""
    model, x, y = exact_net(dtype)
    model, loss = impl(model), impl(loss)
    loss.forward(model, x, y)
    loss.backward()
    return (loss.last.values.copy(), model.layers[0].grads["W"].copy(), dict(loss.grads),
            loss.last.second.copy(), loss.R_test(model))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("confidence", ["raw", "normalized", "scaled"])
def test_one_scale_is_two_scale_with_R2_equal_to_R1_and_no_second_case(confidence, dtype,
                                                                        impl):
    """OneScale(R1) = TwoScale(eta, R1, R2 = R1) with eta above every confidence (raw
    confidences 3, 1, 0, -1; the normalised ones are smaller): the same values, gradients
    of alpha and dL/dR1 (OneScale's, the sum over both cases; TwoScale's dL/dR2 is 0),
    bit for bit. And it is not TwoScale with R2 != R1 and an eta that puts objects in the
    second case: there the two differ, on exactly those objects."""
    values, gW, grads, second, R_test = one_step(OneScale(R1=2.0, confidence=confidence),
                                                 impl, dtype)
    assert not second.any() and R_test == 2.0
    tied = one_step(TwoScale(10.0, R1=2.0, R2=2.0, confidence=confidence), impl, dtype)
    assert not tied[3].any()
    assert bits(values) == bits(tied[0]) and bits(gW) == bits(tied[1])
    assert tied[2] == {"R1": tied[2]["R1"], "R2": 0.0}
    assert grads == {"R1": tied[2]["R1"]}
    # the two-scale loss proper: the objects of confidence >= eta take R2 = 20
    eta = ETA if confidence == "raw" else 1e-3
    two = one_step(TwoScale(eta, R1=2.0, R2=20.0, confidence=confidence), impl, dtype)
    second = two[3]
    assert second.any() and not second.all() and two[4] == 2.0
    np.testing.assert_array_equal(values[~second], two[0][~second])
    assert np.all(values[second] != two[0][second])
    assert not np.array_equal(gW, two[1])
    assert grads["R1"] != two[2]["R1"] + two[2]["R2"]
