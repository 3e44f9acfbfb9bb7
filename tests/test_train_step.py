"""train_step (one SGD step, what README's "one training step, by hand" shows), the
implementation a run computes with (RunConfig.impl: the classes of the objects it
builds, and the numbers of the two implementations), the records of Eq. (17)'s first
scale, and runs that diverge (docs/decisions.md#D17)."""

import numpy as np
import pytest
from helpers import bits, run_config, snapshot, tiny_dataset

import minits as mt
from minits import fast
from minits.fast import split
from minits.losses import CrossEntropy, OneScale, TwoScale, TwoScaleSeparation
from minits.scale import scale_R
from minits.training import RunConfig, loop, train, train_step
from minits.training.build import build_loss, build_model
from minits.training.config import IMPL_ENV, IMPLEMENTATIONS, default_impl


def batch(seed, n=16, K=3):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 4, 4)), rng.integers(0, K, size=n)


@pytest.mark.parametrize("variant, eta", [("two-scale", 0.01), ("one-scale", None),
                                          ("plain-ce", None), ("separation", 0.1)])
def test_train_step_is_forward_backward_sgd(variant, eta, impl):
    """train_step(model, loss, sgd, x, y) is exactly the three lines by hand:
    value = loss.forward(model, x, y); loss.backward(); sgd.step(model, loss)."""
    cfg = run_config(variant=variant, eta=eta, impl=impl.name)
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
        runs.append((values, snapshot(model), dict(loss.params)))
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
    train(run_config(iterations=9), *data)
    assert calls == 9 * [(16, 1, 4, 4)]


# ----------------------------------------------------------------------------- the implementation

PLAIN_LOSS = {"two-scale": TwoScale, "one-scale": OneScale, "plain-ce": CrossEntropy,
              "fixed": TwoScale, "separation": TwoScaleSeparation}
"""A run's variant -> the plain class of its loss (training.build.build_loss)."""

ETA = {"two-scale": 0.01, "one-scale": None, "plain-ce": None, "fixed": 0.01, "separation": 0.1}


def expected_class(plain_class, impl_name):
    """The class an object of plain_class has in a run of implementation impl_name."""
    return plain_class if impl_name == "plain" else fast.TWINS[plain_class]


@pytest.mark.parametrize("variant", sorted(PLAIN_LOSS))
def test_a_run_computes_with_the_objects_of_its_implementation(data, monkeypatch, impl, variant):
    """RunConfig.impl decides what a run computes with: the plain objects of minits.models
    and minits.losses ("plain", exactly those classes: a plain object runs only the plain
    code) or their twins of minits.fast ("fast"), layer by layer and for the loss."""
    seen = []
    real = loop.train_step

    def spy(model, loss, *args):
        seen.append((type(model), [type(layer) for layer in model.layers], type(loss)))
        return real(model, loss, *args)

    monkeypatch.setattr(loop, "train_step", spy)
    train(run_config(variant=variant, eta=ETA[variant], iterations=2, impl=impl.name), *data)
    layers = [mt.Flatten, mt.Linear, mt.ReLU, mt.Linear]  # run_config's mlp, hidden (8,)
    expected = (mt.Sequential if impl.name == "plain" else fast.FastSequential,
                [expected_class(cls, impl.name) for cls in layers],
                expected_class(PLAIN_LOSS[variant], impl.name))
    assert seen == 2 * [expected]


def test_the_fast_objects_of_a_run_start_from_the_plain_ones():
    """build_model / build_loss of one configuration in the two implementations: the same
    initial parameters and scales, bit for bit."""
    cfg = run_config()
    plain_model, model = (build_model(cfg.replace(impl=name), 3, (1, 4, 4))
                          for name in IMPLEMENTATIONS)
    assert type(plain_model) is mt.Sequential and type(model) is fast.FastSequential
    assert all(bits(a) == bits(b)
               for a, b in zip(snapshot(plain_model), snapshot(model), strict=True))
    R0 = scale_R(plain_model)
    assert scale_R(model) == R0
    plain_loss, loss = (build_loss(cfg.replace(impl=name), R0) for name in IMPLEMENTATIONS)
    assert type(plain_loss) is TwoScale and type(loss) is fast.FastTwoScale
    assert loss.params == plain_loss.params == {"R1": R0, "R2": 10 * R0}
    assert (loss.eta, loss.fixed, loss.confidence) == (0.01, False, "raw")


def history_arrays(result):
    """{name: array} of a run's history, its elapsed time aside."""
    return {k: v for k, v in result.history.state().items() if k != "history_elapsed"}


@pytest.mark.parametrize("variant, scale", [("two-scale", None), ("one-scale", None),
                                            ("plain-ce", None), ("fixed", None),
                                            ("separation", "fixed"), ("separation", "trained"),
                                            ("separation", "live")])
def test_plain_and_fast_runs_agree_to_rounding(data, variant, scale):
    """The two implementations of one run agree to float rounding, not bit for bit
    (the fast code sums in another order and uses Eq. (8)): every record of the history,
    every final measure and scale, to a relative 1e-10 in float64 after 20 steps (they
    differ by about 1e-16)."""
    cfg = run_config(variant=variant, eta=ETA[variant], separation_scale=scale)
    plain, quick = (train(cfg.replace(impl=name), *data) for name in IMPLEMENTATIONS)
    assert (plain.config.impl, quick.config.impl) == IMPLEMENTATIONS
    a, b = history_arrays(plain), history_arrays(quick)
    assert sorted(a) == sorted(b)
    for name, value in a.items():
        if value.dtype.kind == "U":  # the alarm message: none in either run
            assert value == b[name] == "", name
        else:
            np.testing.assert_allclose(b[name], value, rtol=1e-10, atol=1e-12, err_msg=name)
    # the same objects classified alike at every step and evaluation
    for name in ("history_batch_acc", "history_test_acc"):
        assert bits(a[name]) == bits(b[name]), name
    for split_name in ("train", "test"):
        x, y = getattr(plain, split_name), getattr(quick, split_name)
        assert sorted(x) == sorted(y)
        for name, value in x.items():
            np.testing.assert_allclose(y[name], value, rtol=1e-10, atol=1e-12,
                                       err_msg=f"{split_name} {name}")
    assert sorted(plain.final_scales) == sorted(quick.final_scales)
    for name, value in plain.final_scales.items():
        assert quick.final_scales[name] == pytest.approx(value, rel=1e-10), name


def test_threads_go_to_the_fast_network_and_change_no_number(monkeypatch, impl):
    """train(threads=n) is the threads of the run's FastSequential (the plain network has
    none); a LeNet-5 batch of 64 runs in 2 chunks, and 1 or 2 threads give the same run,
    bit for bit."""
    train_set, test_set = tiny_dataset(96, "train", 1, side=16), tiny_dataset(40, "test", 2,
                                                                              side=16)
    cfg = run_config(model="lenet5", hidden=(), batch_size=64, iterations=3, eval_every=2,
                     impl=impl.name)
    seen = []
    real = loop.train_step

    def spy(model, *args):
        seen.append(getattr(model, "threads", None))
        return real(model, *args)

    monkeypatch.setattr(loop, "train_step", spy)
    runs = [train(cfg, train_set, test_set, threads=n) for n in (1, 2)]
    if impl.fast:
        assert seen == 3 * [1] + 3 * [2]
        model = build_model(cfg, 3, (1, 16, 16), threads=2)
        assert split.split_count(model.layers, 64) == 2  # the threads have chunks to share
    else:
        assert seen == 6 * [None]
    one, two = (history_arrays(r) for r in runs)
    assert all(bits(value) == bits(two[name]) for name, value in one.items())
    assert all(bits(value) == bits(runs[1].test[name]) for name, value in runs[0].test.items())
    assert np.all(np.isfinite(one["history_batch_loss"]))


def test_impl_defaults_to_the_environment_or_fast_and_is_checked(monkeypatch):
    """RunConfig.impl defaults to default_impl(): $MINITS_IMPL when set, else "fast"."""
    monkeypatch.delenv(IMPL_ENV, raising=False)
    assert default_impl() == "fast" and run_config().impl == "fast"
    for name in IMPLEMENTATIONS:
        monkeypatch.setenv(IMPL_ENV, name)
        assert default_impl() == name and run_config().impl == name
    monkeypatch.setenv(IMPL_ENV, "quick")
    with pytest.raises(ValueError, match=r"\$MINITS_IMPL must be one of"):
        run_config()
    assert run_config(impl="plain").impl == "plain"  # a named impl does not read it
    with pytest.raises(ValueError, match="impl must be one of"):
        run_config(impl="quick")


def test_configurations_with_a_missing_or_unknown_field_are_refused():
    """A configuration written by another version of minits (before impl and
    separation_scale existed, or with a field this one does not know) is refused: no
    legacy defaults. Every field written by to_dict reads back as the same configuration."""
    for cfg in (run_config(), run_config(variant="separation", separation_scale="live")):
        assert RunConfig.from_dict(cfg.to_dict()) == cfg
    old = run_config(variant="separation").to_dict()
    del old["impl"], old["separation_scale"]
    with pytest.raises(ValueError, match=r"missing fields \['impl', 'separation_scale'\]"):
        RunConfig.from_dict(old)
    new = {**run_config().to_dict(), "blas_threads": 2}
    with pytest.raises(ValueError, match=r"unknown fields \['blas_threads'\]"):
        RunConfig.from_dict(new)


def test_separation_scale_belongs_to_the_separation_variant_only():
    assert run_config(variant="separation").separation_scale == "fixed"
    assert run_config(variant="separation",
                      separation_scale="trained").separation_scale == "trained"
    # another variant: stored as None, so it never tells two identical runs apart
    assert run_config(separation_scale="trained") == run_config()
    assert run_config().separation_scale is None
    with pytest.raises(ValueError, match="separation_scale must be one of"):
        run_config(variant="separation", separation_scale="frozen")


# ----------------------------------------------------------------------------- Eq. (17) records

def test_the_first_scale_of_eq17_is_recorded_for_each_reading(data):
    """History R (the first scale of Eq. (17)): R(alpha^0) throughout (fixed), moved by
    SGD (trained), R(alpha) = the history's R_alpha (live); Rs trained in all three
    (docs/decisions.md#D11)."""
    h = {s: train(run_config(variant="separation", eta=0.1, separation_scale=s, iterations=12),
                  *data) for s in ("fixed", "trained", "live")}
    R0 = h["fixed"].history["R_alpha"][0]
    assert np.all(h["fixed"].history["R"] == R0)
    assert h["fixed"].final_scales["R"] == R0
    assert h["fixed"].final_scales["R_alpha"] != R0  # R(alpha) moved, the fixed R did not
    trained = h["trained"].history["R"]
    assert trained[0] == R0 and np.all(np.diff(trained) != 0)
    assert h["trained"].final_scales["R"] != trained[-1]  # after the last step
    assert np.array_equal(h["live"].history["R"], h["live"].history["R_alpha"])
    assert "R" not in h["live"].final_scales and "R_alpha" in h["live"].final_scales
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
    result = train(run_config(variant=variant, eta=eta, lr=1e30, iterations=20,
                              dtype="float32"),
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
    assert np.isnan(h["test_acc"][-1]) and np.isnan(result.final_scales["R_alpha"])
    assert result.test["p_max"].shape == (40,)


def test_a_run_that_stays_finite_is_not_stopped(data):
    """The divergence check acts only on inf or NaN: in float64 the same lr = 1e30 keeps
    every number finite (a scale <= 0 is flagged, D17), and the run trains to the end;
    its confidences beyond float32's range are stored as inf, without a warning."""
    messages = []
    result = train(run_config(lr=1e30, iterations=12), *data, log=messages.append)
    assert np.all(np.isfinite(result.history["batch_loss"]))
    assert np.isfinite(result.test["accuracy"])
    assert len(messages) == 1 and "R1 = " in messages[0] and "diverged" not in messages[0]
