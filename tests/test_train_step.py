"""train_step (one SGD step, what README's "one training step, by hand" shows), the
implementation a run computes with, the records of Eq. (17)'s first scale, and runs
that diverge (docs/decisions.md#D17)."""

import numpy as np
import pytest
from test_scale import bits
from test_training_loop import config, params, tiny_dataset

import minits as mt
from minits import backend
from minits.scale import scale_R
from minits.training import RunConfig, loop, train, train_step
from minits.training.build import build_loss, build_model


@pytest.fixture(scope="module")
def data():
    return tiny_dataset(96, "train", 1), tiny_dataset(40, "test", 2)


def batch(seed, n=16, K=3):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 4, 4)), rng.integers(0, K, size=n)


@pytest.mark.parametrize("variant, eta", [("two-scale", 0.01), ("one-scale", None),
                                          ("plain-ce", None), ("separation", 0.1)])
def test_train_step_is_forward_backward_sgd(variant, eta):
    """train_step(model, loss, sgd, x, y) is exactly the three lines by hand:
    value = loss.forward(model, x, y); loss.backward(); sgd.step(model, loss)."""
    cfg = config(variant=variant, eta=eta)
    x, y = batch(0)
    runs = []
    for by_hand in (True, False):
        model = build_model(cfg, 3, (1, 4, 4))
        loss = build_loss(cfg, scale_R(model))
        sgd = mt.SGD(0.1)
        values = []
        for _ in range(3):
            if by_hand:
                value = loss.forward(model, x, y)
                loss.backward()
                sgd.step(model, loss)
                values.append(float(value))
            else:
                values.append(train_step(model, loss, sgd, x, y))
        runs.append((values, params(model), dict(loss.params)))
    (v1, p1, s1), (v2, p2, s2) = runs
    assert v1 == v2 and all(isinstance(v, float) for v in v2)
    assert all(bits(a) == bits(b) for a, b in zip(p1, p2, strict=True))
    assert s1 == s2
    assert v2[2] < v2[0]  # the same batch three times: the loss goes down


def test_the_loop_trains_with_train_step(data, monkeypatch):
    """One run calls train_step once per iteration: the loop is orchestration only."""
    calls = []
    real = loop.train_step
    monkeypatch.setattr(loop, "train_step", lambda *a: calls.append(a[3].shape) or real(*a))
    train(config(iterations=9), *data)
    assert calls == 9 * [(16, 1, 4, 4)]


# ----------------------------------------------------------------------------- the implementation

def test_a_run_computes_with_the_implementation_of_its_configuration(data, monkeypatch):
    """RunConfig.impl decides, not what is current outside train; afterwards the outside
    setting is back."""
    seen = []
    real = loop.train_step
    monkeypatch.setattr(loop, "train_step",
                        lambda *a: seen.append(backend.current_impl()) or real(*a))
    with mt.using("fast"):
        train(config(iterations=3, impl="plain"), *data)
        assert mt.current_impl() == "fast"
    with mt.using("plain"):
        train(config(iterations=3, impl="fast"), *data)
        assert mt.current_impl() == "plain"
    assert seen == ["plain"] * 3 + ["fast"] * 3


def test_impl_defaults_to_the_current_one_and_is_checked():
    with mt.using("plain"):
        assert config().impl == "plain"
    with mt.using("fast"):
        assert config().impl == "fast"
    with pytest.raises(ValueError, match="impl must be one of"):
        config(impl="quick")


def test_configurations_of_older_files_read_as_what_those_runs_did():
    """A results file written before impl and separation_scale existed: the fast
    implementation, and the live first scale for Eq. (17) (the only ones then)."""
    old = config(variant="separation").to_dict()
    del old["impl"], old["separation_scale"]
    with mt.using("plain"):
        read = RunConfig.from_dict(old)
    assert (read.impl, read.separation_scale) == ("fast", "live")
    assert RunConfig.from_dict(config().to_dict()) == config()


def test_separation_scale_belongs_to_the_separation_variant_only():
    assert config(variant="separation").separation_scale == "fixed"
    assert config(variant="separation", separation_scale="trained").separation_scale == "trained"
    # another variant: stored as None, so it never tells two identical runs apart
    assert config(separation_scale="trained") == config()
    assert config().separation_scale is None
    with pytest.raises(ValueError, match="separation_scale must be one of"):
        config(variant="separation", separation_scale="frozen")


# ----------------------------------------------------------------------------- Eq. (17) records

def test_the_first_scale_of_eq17_is_recorded_for_each_reading(data):
    """History R_first: R(alpha^0) throughout (fixed), moved by SGD (trained), R(alpha)
    (live); Rs trained in all three (docs/decisions.md#D11)."""
    h = {s: train(config(variant="separation", eta=0.1, separation_scale=s, iterations=12),
                  *data) for s in ("fixed", "trained", "live")}
    R0 = h["fixed"].history["R"][0]
    assert np.all(h["fixed"].history["R_first"] == R0)
    assert h["fixed"].final_scales["R_first"] == R0
    trained = h["trained"].history["R_first"]
    assert trained[0] == R0 and np.all(np.diff(trained) != 0)
    assert h["trained"].final_scales["R_first"] != trained[-1]  # after the last step
    assert np.array_equal(h["live"].history["R_first"], h["live"].history["R"])
    assert "R_first" not in h["live"].final_scales
    for result in h.values():
        assert np.all(np.isnan(result.history["R1"]))
        assert not np.all(result.history["Rs"] == result.history["Rs"][0])


# ----------------------------------------------------------------------------- divergence

@pytest.mark.parametrize("variant, eta", [("two-scale", 0.01), ("plain-ce", None),
                                          ("separation", 0.01)])
def test_a_diverging_run_stops_with_nan_results_and_says_what_to_change(data, variant, eta):
    """lr = 1e30 in float32: the first step throws alpha to ~1e30, the next forward
    overflows. The run stops there, says so once (lower the learning rate), ends
    completed with NaN measures, and no raw numpy RuntimeWarning escapes (pytest turns
    them into errors)."""
    messages, steps = [], []
    result = train(config(variant=variant, eta=eta, lr=1e30, iterations=20, dtype="float32"),
                   *data, log=messages.append, progress=steps.append)
    assert sum(steps) == 20  # a sweep's progress bar counts the steps skipped as done
    assert result.completed and result.iteration == 20
    diverged = [m for m in messages if "diverged" in m]
    assert len(diverged) == 1, messages
    assert "lower the learning rate (--lr, now 1e+30)" in diverged[0]
    h = result.history
    recorded = np.flatnonzero(~np.isnan(h["batch_acc"]))  # the steps taken: 0..last
    assert recorded.tolist() == list(range(len(recorded))) and len(recorded) < 5
    assert h.scale_alarm_iteration >= 0  # the run's history is flagged
    assert np.isnan(result.test["accuracy"]) and np.isnan(result.train["accuracy"])
    assert np.isnan(h["test_acc"][-1]) and np.isnan(result.final_scales["R"])
    assert result.test["p_max"].shape == (40,)


def test_a_run_that_stays_finite_is_not_stopped(data):
    """The divergence check acts only on inf or NaN: in float64 the same lr = 1e30 keeps
    every number finite (a scale <= 0 is flagged, D17), and the run trains to the end;
    its confidences beyond float32's range are stored as inf, without a warning."""
    messages = []
    result = train(config(lr=1e30, iterations=12), *data, log=messages.append)
    assert np.all(np.isfinite(result.history["batch_loss"]))
    assert np.isfinite(result.test["accuracy"])
    assert len(messages) == 1 and "R1 = " in messages[0] and "diverged" not in messages[0]
