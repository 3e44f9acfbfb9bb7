"""The losses' mathematics on given logits, without a model: Eq. (4), (10), (12),
(13), (15), (17), the generic objectives and their gradients against finite
differences.

Naive references here are written straight from the paper with Python loops. The
functions that have a fast twin (minits/fast/objectives.py) are tested in both
implementations (the ``impl`` fixture, helpers.FUNCTIONS); extreme logits, dtypes and
fast == plain bit for bit: tests/test_losses_numerics.py.
"""

import math

import numpy as np
import pytest
import reference as ref
from helpers import FUNCTIONS, logits_labels
from hypothesis import assume, given
from hypothesis import strategies as st

import minits as mt
from minits.gradcheck import numerical_gradient
from minits.layers import log_softmax
from minits.losses import (
    cross_entropy,
    dL_dR_eq15,
    dL_dR_general,
    mse_probabilities,
    second_branch,
    truncated,
)
from minits.losses.wrapper import OBJECTIVES, wrapped_value_and_grad
from minits.scale import confidence


def per_object(R, y):
    """R as one scale per object, (N,): what the fast dL_dR_eq15 takes (the plain one
    takes either)."""
    return np.full(len(y), R, dtype=np.float64)


def fd_sum(f, z, eps=1e-6):
    """Central differences of sum(f(z)[0]) with respect to z."""
    return numerical_gradient(lambda: float(np.sum(f(z)[0])), z, eps)


def fd_scalar(f, r, eps=1e-6):
    return (f(r + eps) - f(r - eps)) / (2 * eps)


# ---------------------------------------------------------------- log-softmax, Eq. (3)-(4)

@given(logits_labels())
def test_log_softmax_matches_definition(case):
    """minits.layers.log_softmax (one implementation: the fast code has no twin of it)."""
    z, _ = case
    naive = np.log(np.exp(z) / np.sum(np.exp(z), axis=1, keepdims=True))
    np.testing.assert_allclose(log_softmax(z), naive, rtol=1e-12, atol=1e-12)


@given(logits_labels())
def test_cross_entropy_is_eq4_and_eq10(impl, case):
    F = FUNCTIONS[impl.name]
    z, y = case
    values, _ = F["cross_entropy"](z, y)
    p = np.exp(z) / np.sum(np.exp(z), axis=1, keepdims=True)
    np.testing.assert_allclose(values, -np.log(p[np.arange(len(y)), y]), rtol=1e-12, atol=1e-13)
    eq10 = [ref.eq13(z[n], y[n], 1.0) for n in range(len(y))]  # Eq. (10) with R X_hat = z
    np.testing.assert_allclose(values, eq10, rtol=1e-12, atol=1e-13)


@given(logits_labels())
def test_cross_entropy_gradient_matches_finite_differences(impl, case):
    F = FUNCTIONS[impl.name]
    z, y = case
    _, dz = F["cross_entropy"](z, y)
    np.testing.assert_allclose(dz, fd_sum(lambda t: F["cross_entropy"](t, y), z), rtol=1e-6,
                               atol=1e-7)


# ---------------------------------------------------------------- truncated, Eq. (12)

@given(logits_labels(), st.floats(0.01, 0.99))
def test_truncated_values_and_gradient(case, k):
    z, y = case
    rows = np.arange(len(y))
    p_true = np.exp(log_softmax(z))[rows, y]
    assume(np.all(np.abs(p_true - k) > 1e-4))  # away from the kink p_{i(s)} = k
    values, dz = truncated(z, y, k)
    ce, _ = cross_entropy(z, y)
    np.testing.assert_allclose(values, np.where(p_true < k, -np.log(k), ce), rtol=1e-12)
    np.testing.assert_allclose(dz, fd_sum(lambda t: truncated(t, y, k), z), rtol=1e-6, atol=1e-7)
    assert np.all(dz[p_true < k] == 0)


@given(logits_labels())
def test_truncated_with_k_zero_is_cross_entropy(case):
    z, y = case
    for a, b in zip(truncated(z, y, 0.0), cross_entropy(z, y), strict=True):
        np.testing.assert_array_equal(a, b)


def test_truncated_boundary_goes_to_the_cross_entropy_case():
    # K = 2 with equal logits: p_{i(s)} = 0.5 exactly; Eq. (12)'s second case is p >= k
    z, y = np.zeros((1, 2)), np.array([0])
    values, dz = truncated(z, y, 0.5)
    assert values[0] == pytest.approx(math.log(2))
    np.testing.assert_allclose(dz, [[-0.5, 0.5]])
    values, dz = truncated(z, y, 0.5 + 1e-12)
    assert values[0] == pytest.approx(-math.log(0.5 + 1e-12)) and not dz.any()


@pytest.mark.parametrize("k", [-0.1, 1.5, float("nan")])
def test_truncated_refuses_bad_k(k):
    with pytest.raises(ValueError, match="k must be in"):
        truncated(np.zeros((1, 2)), np.array([0]), k)


# ---------------------------------------------------------------- MSE on probabilities

@given(logits_labels())
def test_mse_probabilities_values_and_gradient(case):
    z, y = case
    values, dz = mse_probabilities(z, y)
    p = np.exp(z) / np.sum(np.exp(z), axis=1, keepdims=True)
    onehot = np.eye(z.shape[1])[y]
    np.testing.assert_allclose(values, np.mean((p - onehot) ** 2, axis=1), rtol=1e-12,
                               atol=1e-15)
    np.testing.assert_allclose(dz, fd_sum(lambda t: mse_probabilities(t, y), z), rtol=1e-6,
                               atol=1e-9)


def test_mse_probabilities_matches_torch():
    torch = pytest.importorskip("torch", reason="optional comparison with PyTorch")
    rng = np.random.default_rng(3)
    z, y = rng.standard_normal((4, 5)), np.array([0, 4, 2, 2])
    zt = torch.tensor(z, requires_grad=True)
    onehot = torch.nn.functional.one_hot(torch.tensor(y), 5).double()
    loss = torch.nn.MSELoss()(torch.softmax(zt, dim=1), onehot)
    loss.backward()
    values, dz = mse_probabilities(z, y)
    assert np.mean(values) == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(dz / len(y), zt.grad.numpy(), rtol=1e-10, atol=1e-15)


# ---------------------------------------------------------------- Eq. (15)

@given(logits_labels(), st.floats(0.1, 20))
def test_eq15_equals_paper_formula_general_formula_and_finite_differences(impl, case, R):
    F = FUNCTIONS[impl.name]
    X_hat, y = case
    eq15 = F["dL_dR_eq15"](X_hat, y, per_object(R, y))
    naive = [ref.eq15(X_hat[n], y[n], R) for n in range(len(y))]
    np.testing.assert_allclose(eq15, naive, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(eq15, dL_dR_general(X_hat, y, R), rtol=1e-10, atol=1e-12)
    fd = [fd_scalar(lambda r, n=n: ref.eq13(X_hat[n], y[n], r), R) for n in range(len(y))]
    np.testing.assert_allclose(eq15, fd, rtol=1e-5, atol=1e-7)


@given(logits_labels(), st.floats(0.1, 20))
def test_eq15_is_negative_for_correctly_classified_objects(impl, case, R):
    F = FUNCTIONS[impl.name]
    X_hat, y = case
    delta = confidence(X_hat, y)
    assume(np.any(delta > 0))
    assume(np.all(R * delta[delta > 0] < 500))  # exp(-R delta) must not underflow to 0
    assume(np.all(delta[delta > 0] > 1e-12))  # nor the product delta * exp(...) (subnormals)
    assert np.all(F["dL_dR_eq15"](X_hat, y, per_object(R, y))[delta > 0] < 0)


def test_eq15_accepts_one_scale_per_object(impl):
    F = FUNCTIONS[impl.name]
    rng = np.random.default_rng(0)
    X_hat, y = rng.standard_normal((4, 3)), np.array([0, 1, 2, 0])
    R = np.array([1.0, 2.0, 3.0, 4.0])
    expected = [dL_dR_eq15(X_hat[n:n + 1], y[n:n + 1], R[n])[0] for n in range(4)]
    np.testing.assert_allclose(F["dL_dR_eq15"](X_hat, y, R), expected, rtol=1e-14)
    naive = [ref.eq15(X_hat[n], y[n], R[n]) for n in range(4)]
    np.testing.assert_allclose(F["dL_dR_eq15"](X_hat, y, R), naive, rtol=1e-12)


# ---------------------------------------------------------------- Eq. (13) on logits

@st.composite
def two_scale_cases(draw):
    X_hat, y = draw(logits_labels(max_n=6))
    R1 = draw(st.floats(0.2, 5))
    R2 = draw(st.floats(0.2, 50))
    second = np.array(draw(st.lists(st.booleans(), min_size=len(y), max_size=len(y))))
    return X_hat, y, R1, R2, second


@given(two_scale_cases())
def test_two_scale_values_are_eq13(impl, case):
    F = FUNCTIONS[impl.name]
    X_hat, y, R1, R2, second = case
    values, *_ = F["two_scale"](X_hat, y, R1, R2, second)
    naive = [ref.eq13(X_hat[n], y[n], R2 if second[n] else R1) for n in range(len(y))]
    np.testing.assert_allclose(values, naive, rtol=1e-12, atol=1e-13)


@given(two_scale_cases())
def test_two_scale_gradients_match_finite_differences(impl, case):
    F = FUNCTIONS[impl.name]
    X_hat, y, R1, R2, second = case
    _, dX_hat, dR1, dR2 = F["two_scale"](X_hat, y, R1, R2, second)

    def total(r1=R1, r2=R2):
        return float(np.sum(F["two_scale"](X_hat, y, r1, r2, second)[0]))

    fd = numerical_gradient(lambda: total(), X_hat)
    np.testing.assert_allclose(dX_hat, fd, rtol=1e-6, atol=1e-7)
    assert dR1 == pytest.approx(fd_scalar(lambda r: total(r1=r), R1), rel=1e-5, abs=1e-7)
    assert dR2 == pytest.approx(fd_scalar(lambda r: total(r2=r), R2), rel=1e-5, abs=1e-7)


@given(two_scale_cases())
def test_dL_dR2_is_negative_with_a_well_classified_object_and_zero_without(impl, case):
    F = FUNCTIONS[impl.name]
    X_hat, y, R1, R2, _ = case
    delta = confidence(X_hat, y)
    eta = 0.5
    second = second_branch(delta, eta)  # delta >= eta > 0: correctly classified
    assume(np.all(R2 * delta[second] < 500))  # no underflow of exp(-R2 delta)
    _, _, _, dR2 = F["two_scale"](X_hat, y, R1, R2, second)
    if second.any():
        assert dR2 < 0
    else:
        assert dR2 == 0.0


@given(two_scale_cases())
def test_R2_equal_to_R1_is_exactly_the_one_scale_loss(impl, case):
    """With R2 = R1 the split no longer matters: whatever `second` says, Eq. (13) is the
    one-scale loss, the cross-entropy of R1 X_hat (computed here directly, with the plain
    minits.losses.cross_entropy), bit for bit, and d/dR1 + d/dR2 is Eq. (15) at R1
    summed over every object (the paper's formula term by term)."""
    F = FUNCTIONS[impl.name]
    X_hat, y, R1, _, second = case
    values, dX_hat, dR1, dR2 = F["two_scale"](X_hat, y, R1, R1, second)
    ce, dz = cross_entropy(R1 * X_hat, y)
    assert values.tobytes() == ce.tobytes()
    assert dX_hat.tobytes() == (dz * R1).tobytes()
    naive = [ref.eq13(X_hat[n], y[n], R1) for n in range(len(y))]
    np.testing.assert_allclose(values, naive, rtol=1e-12, atol=1e-13)
    eq15 = sum(ref.eq15(X_hat[n], y[n], R1) for n in range(len(y)))
    assert dR1 + dR2 == pytest.approx(eq15, rel=1e-10, abs=1e-12)
    assert dR1 == pytest.approx(sum(ref.eq15(X_hat[n], y[n], R1)
                                    for n in range(len(y)) if not second[n]),
                                rel=1e-10, abs=1e-12)


def test_second_branch_boundary_and_well_classified_boundary():
    delta = np.array([0.5, 0.5 - 1e-12, 0.5 + 1e-12])
    np.testing.assert_array_equal(second_branch(delta, 0.5), [True, False, True])  # Eq. (13): >=
    np.testing.assert_array_equal(mt.scale.well_classified(delta, 0.5), [False, False, True])


# ---------------------------------------------------------------- generic objectives

@pytest.mark.parametrize("objective", ["mse", "truncated"])
@given(case=two_scale_cases())
def test_generic_two_scale_gradients_match_finite_differences(objective, case):
    """wrapped_value_and_grad (TwoScaleWrapper's; the fast twin runs it too)."""
    X_hat, y, R1, R2, second = case
    k = 0.3
    f = OBJECTIVES[objective]
    if objective == "truncated":
        p_true = [np.exp(log_softmax((R2 if s else R1) * X_hat[n:n + 1]))[0, y[n]]
                  for n, s in enumerate(second)]
        assume(np.all(np.abs(np.array(p_true) - k) > 1e-4))

        def f(z, t, _f=f):
            return _f(z, t, k)

    _, dX_hat, dR1, dR2 = wrapped_value_and_grad(f, X_hat, y, R1, R2, second)

    def total(r1=R1, r2=R2):
        return float(np.sum(wrapped_value_and_grad(f, X_hat, y, r1, r2, second, fixed=True)[0]))

    np.testing.assert_allclose(dX_hat, numerical_gradient(lambda: total(), X_hat), rtol=1e-6,
                               atol=1e-7)
    assert dR1 == pytest.approx(fd_scalar(lambda r: total(r1=r), R1), rel=1e-5, abs=1e-7)
    assert dR2 == pytest.approx(fd_scalar(lambda r: total(r2=r), R2), rel=1e-5, abs=1e-7)


# ---------------------------------------------------------------- Eq. (17) on logits

@given(two_scale_cases(), st.floats(0.5, 20))
def test_separation_values_and_gradients(impl, case, Rs):
    F = FUNCTIONS[impl.name]
    X_hat, y, R, _, second = case
    values, dX_hat, dRs, dR = F["separation"](X_hat, y, R, Rs, second)
    naive = [ref.eq13(X_hat[n], y[n], Rs * R if second[n] else R) for n in range(len(y))]
    np.testing.assert_allclose(values, naive, rtol=1e-12, atol=1e-13)

    def total(r=R, rs=Rs):
        return float(np.sum(F["separation"](X_hat, y, r, rs, second)[0]))

    np.testing.assert_allclose(dX_hat, numerical_gradient(lambda: total(), X_hat), rtol=1e-6,
                               atol=1e-7)
    assert dRs == pytest.approx(fd_scalar(lambda s: total(rs=s), Rs), rel=1e-5, abs=1e-7)
    assert dR == pytest.approx(fd_scalar(lambda r: total(r=r), R), rel=1e-5, abs=1e-7)


@given(two_scale_cases(), st.floats(0.5, 20))
def test_dL_dRs_is_non_positive(impl, case, Rs):
    F = FUNCTIONS[impl.name]
    # docs/decisions.md#D3: the paper says "non-negative"; the mathematics says <= 0
    X_hat, y, R, _, _ = case
    second = second_branch(confidence(X_hat, y), 0.1)
    _, _, dRs, _ = F["separation"](X_hat, y, R, Rs, second)
    assert dRs <= 0
    if not second.any():
        assert dRs == 0.0
