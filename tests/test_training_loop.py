"""The training loop of one run (Sec. 3.2): records, checkpoints, exact resume, and the
format of the results and checkpoint files (older ones are refused).

Runs use a tiny synthetic data set and a small float64 mlp, so every test is fast
and every comparison can be exact (bit for bit).
"""

import os
import re
import tracemalloc

import numpy as np
import pytest
from helpers import bits, run_config, snapshot, tiny_dataset

from minits import atomic
from minits.scale import scale_R
from minits.training import checkpoint, epoch_order, results, steps_per_epoch, train
from minits.training.build import build_loss, build_model
from minits.training.history import FORMAT, History, evaluation_iterations

# ----------------------------------------------------------------------------- batch order

def test_epoch_order_is_a_permutation_fixed_by_seed_and_epoch():
    a = epoch_order(5, 2, 50)
    assert np.array_equal(np.sort(a), np.arange(50))
    assert np.array_equal(a, epoch_order(5, 2, 50))
    assert not np.array_equal(a, epoch_order(5, 3, 50))
    assert not np.array_equal(a, epoch_order(6, 2, 50))


def test_steps_per_epoch_drops_the_partial_batch_and_refuses_tiny_sets():
    assert steps_per_epoch(60000, 128) == 468
    assert steps_per_epoch(128, 128) == 1
    with pytest.raises(ValueError, match="batch_size 128 is larger"):
        steps_per_epoch(100, 128)


def test_evaluation_iterations_start_at_zero_and_end_at_the_last():
    assert evaluation_iterations(1000, 100).tolist() == list(range(0, 1001, 100))
    assert evaluation_iterations(25, 10).tolist() == [0, 10, 20, 25]


# ----------------------------------------------------------------------------- the records

def test_history_follows_the_protocol(data):
    train_set, test_set = data
    cfg = run_config()
    result = train(cfg, train_set, test_set)
    h = result.history
    R0 = scale_R(build_model(cfg, 3, (1, 4, 4)))
    # Sec. 3.2: R1 = R(alpha^0), R2 = 10 R1 at the first step; R_alpha is R(alpha) before
    # each step
    assert h["R1"][0] == pytest.approx(R0, rel=1e-12)
    assert h["R2"][0] == pytest.approx(10 * R0, rel=1e-12)
    assert h["R_alpha"][0] == pytest.approx(R0, rel=1e-12)
    assert np.all(np.isnan(h["Rs"])) and np.all(np.isnan(h["R"]))  # Eq. (17)'s: none here
    for name in ("batch_acc", "batch_loss", "R_alpha", "R1", "R2", "frac_second"):
        assert h[name].shape == (20,) and np.all(np.isfinite(h[name])), name
    assert np.all((h["batch_acc"] >= 0) & (h["batch_acc"] <= 1))
    # batch accuracies are multiples of 1/16 (batches of exactly batch_size objects)
    assert np.allclose(h["batch_acc"] * 16, np.round(h["batch_acc"] * 16))
    assert h["eval_iteration"].tolist() == [0, 6, 12, 18, 20]
    assert np.all(np.isfinite(h["test_acc"]))
    assert result.test["accuracy"] == h["test_acc"][-1]
    assert h.scale_alarm_iteration == -1 and result.scale_alarm == ""
    assert result.completed and result.iteration == 20


def test_training_learns_the_tiny_problem(data):
    train_set, test_set = data
    result = train(run_config(iterations=150, eval_every=50, variant="one-scale", eta=None),
                   train_set, test_set)
    assert result.history["test_acc"][0] < 0.7
    assert result.train["accuracy"] > 0.8


def test_one_scale_and_plain_ce_have_no_branch_fraction(data):
    for variant in ("one-scale", "plain-ce"):
        h = train(run_config(variant=variant, eta=None, iterations=4), *data).history
        assert np.all(np.isnan(h["frac_second"]))
    h = train(run_config(variant="plain-ce", eta=None, iterations=4), *data).history
    assert np.all(np.isnan(h["R1"])) and np.all(np.isfinite(h["R_alpha"]))
    h = train(run_config(variant="separation", iterations=4), *data).history
    assert h["Rs"][0] == 10.0 and np.all(np.isnan(h["R1"])) and np.all(np.isfinite(h["R"]))
    assert np.all(np.isfinite(h["frac_second"]))
    h = train(run_config(variant="two-scale", iterations=4), *data).history
    assert np.all(np.isnan(h["R"])) and np.all(np.isnan(h["Rs"]))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_parameters_keep_their_dtype(data, dtype):
    train_set, test_set = data
    cfg = run_config(dtype=dtype, iterations=3)
    result = train(cfg, train_set, test_set, checkpoint_path=None, max_iterations=None)
    assert result.test["p_max"].dtype == np.float32  # stored compactly
    model = build_model(cfg, 3, (1, 4, 4))
    assert all(p.dtype == np.dtype(dtype) for p in snapshot(model))


def test_huge_eta_is_the_traditional_loss_bit_for_bit(data):
    """Sec. 3.3: eta = 100 'had the exact same accuracy on each batch' as the traditional
    loss; with no object in the R2 case every number of the run agrees exactly."""
    a = train(run_config(variant="two-scale", eta=1e6), *data)
    b = train(run_config(variant="one-scale", eta=None), *data)
    for name in ("batch_acc", "batch_loss", "R_alpha", "R1", "test_acc"):
        assert np.array_equal(a.history[name], b.history[name]), name
    assert np.all(a.history["frac_second"] == 0)


def test_a_scale_going_negative_is_reported_loudly(data):
    """docs/decisions.md#D17: tiny initial scales and a big step push R1 below zero; the
    run says so once (no ScaleWarning at every step: pytest would turn it into an error)."""
    messages = []
    cfg = run_config(gain=0.5, lr=5.0, hidden=(16,))
    result = train(cfg, *data, log=messages.append)
    h = result.history
    bad = np.flatnonzero(~(h["R1"] > 0))
    assert bad.size, "the setting was meant to drive R1 below zero"
    assert h.scale_alarm_iteration == bad[0] - 1  # alarm after the step that made it <= 0
    assert len(messages) == 1 and "R1" in messages[0] and "<= 0" in messages[0]
    assert result.scale_alarm == messages[0]
    assert result.completed  # the run still ends, with its results flagged


def test_memory_follows_what_is_recorded_not_the_length_asked_for(tmp_path, data):
    """Issue 23, fault 14: a run asked for 10^7 iterations and stopped after 5 holds (and
    checkpoints) records of 5 iterations, not 10^7 per record (80 MB each before)."""
    train_set, test_set = data
    cfg = run_config(iterations=10**7, eval_every=10**5)
    path = tmp_path / "run.ckpt.npz"
    tracemalloc.start()
    try:
        result = train(cfg, train_set, test_set, checkpoint_path=path, max_iterations=5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not result.completed and result.iteration == 5
    assert peak < 8 << 20, f"{peak / 2**20:.0f} MiB"
    assert os.path.getsize(path) < 64 << 10
    history = checkpoint.load(path, cfg, build_model(cfg, 3, (1, 4, 4)),
                              build_loss(cfg, 1.0))[1]
    assert history.steps == 5 and not np.isnan(history["batch_acc"][:5]).any()


# ----------------------------------------------------------------------------- checkpoints

@pytest.mark.parametrize("variant,eta,stop_at,scale", [
    ("two-scale", 0.01, 3, None),          # mid-epoch (6 steps an epoch)
    ("two-scale", 0.01, 6, None),          # exactly at an epoch boundary (and an evaluation)
    ("separation", 0.01, 13, "fixed"),     # second epoch, Rs trainable, R = R(alpha^0) kept
    ("separation", 0.01, 13, "trained"),   # R trainable too
    ("separation", 0.01, 4, "live"),
    ("plain-ce", None, 1, None),
])
def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, data, variant, eta, stop_at,
                                                         scale, impl):
    train_set, test_set = data
    cfg = run_config(variant=variant, eta=eta, separation_scale=scale, impl=impl.name)
    whole = train(cfg, train_set, test_set)

    path = tmp_path / "run.ckpt.npz"
    first = train(cfg, train_set, test_set, checkpoint_path=path, max_iterations=stop_at)
    assert not first.completed and first.iteration == stop_at
    assert checkpoint.saved_iteration(path) == stop_at
    assert np.all(np.isnan(first.history["batch_acc"][stop_at:]))
    rest = train(cfg, train_set, test_set, checkpoint_path=path)
    assert rest.completed
    for name, value in whole.history.arrays.items():
        assert np.array_equal(value, rest.history[name], equal_nan=True), name
    for split in ("train", "test"):
        for name, value in getattr(whole, split).items():
            assert np.array_equal(value, getattr(rest, split)[name], equal_nan=True), name
    assert whole.final_scales == rest.final_scales


def test_a_checkpoint_restores_the_first_scale_of_eq17(tmp_path, data):
    """The fixed first scale R = R(alpha^0) of Eq. (17) is set at the first forward; a run
    resumed after some steps must get R(alpha^0) back from the checkpoint, not take
    R(alpha^t) of the restored parameters (docs/decisions.md#D11)."""
    cfg = run_config(variant="separation", separation_scale="fixed")
    path = tmp_path / "c.npz"
    first = train(cfg, *data, checkpoint_path=path, max_iterations=7)
    with np.load(path) as f:
        assert float(f["scale_R"]) == first.history["R"][0]
    rest = train(cfg, *data, checkpoint_path=path)
    assert np.all(rest.history["R"] == first.history["R"][0])
    assert rest.final_scales["R"] == first.history["R"][0]
    assert rest.final_scales["R_alpha"] != rest.final_scales["R"]  # R(alpha) moved on


def test_stop_flag_saves_a_checkpoint_and_returns(tmp_path, data):
    class StopAfter:
        def __init__(self, n):
            self.calls, self.n = 0, n

        def is_set(self):
            self.calls += 1
            return self.calls >= self.n

    path = tmp_path / "c.npz"
    result = train(run_config(), *data, checkpoint_path=path, stop=StopAfter(4))
    assert not result.completed and result.iteration == 4
    assert checkpoint.saved_iteration(path) == 4


def test_checkpoints_are_written_every_epoch(tmp_path, data, monkeypatch):
    saved = []
    real = checkpoint.save
    monkeypatch.setattr(checkpoint, "save",
                        lambda path, cfg, it, *a: (saved.append(it), real(path, cfg, it, *a)))
    train(run_config(iterations=20), *data, checkpoint_path=tmp_path / "c.npz", checkpoint_every=5)
    assert saved == [5, 6, 10, 12, 15, 18]  # every epoch (6 steps) and every 5 iterations


def test_a_checkpoint_of_another_configuration_is_refused(tmp_path, data):
    path = tmp_path / "c.npz"
    train(run_config(), *data, checkpoint_path=path, max_iterations=2)
    with pytest.raises(ValueError, match="another configuration"):
        train(run_config(eta=0.1), *data, checkpoint_path=path)


def test_checkpoint_round_trip_restores_parameters_and_scales(tmp_path):
    cfg = run_config()
    model = build_model(cfg, 3, (1, 4, 4))
    loss = build_loss(cfg, scale_R(model))
    loss.params["R1"], loss.params["R2"] = 1.2345678901234567, 9.87654321
    history = History(cfg.iterations, cfg.eval_every)
    history.record_step(0, batch_acc=0.5)
    checkpoint.save(tmp_path / "c.npz", cfg, 1, model, loss, history)
    other = build_model(cfg.replace(seed=4), 3, (1, 4, 4))
    other_loss = build_loss(cfg, 1.0)
    t, h = checkpoint.load(tmp_path / "c.npz", cfg.replace(), other, other_loss)
    assert t == 1 and h["batch_acc"][0] == 0.5
    for a, b in zip(snapshot(model), snapshot(other), strict=True):
        assert np.array_equal(a, b) and a.dtype == b.dtype
    assert other_loss.params == loss.params
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []


def rewrite(path, change):
    """Write the .npz at path again with its arrays changed by change(arrays) in place."""
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    atomic.savez(path, compress=True, **arrays)


OLDER = {"no format entry": lambda arrays: arrays.pop("format"),
         "format 1": lambda arrays: arrays.update(format=np.int64(1))}
"""How a file of an older layout differs: format 1 had no "format" entry in its results
files (its checkpoints had format 1)."""


@pytest.mark.parametrize("older", sorted(OLDER))
def test_files_of_an_older_format_are_refused_naming_the_file(tmp_path, data, older):
    """Results and checkpoint files carry format 2 (R_alpha, R, frac_second); a file of an
    older layout is refused with a ValueError naming it, by results.load and by a run
    resumed from it (no legacy reading)."""
    cfg = run_config(variant="separation", iterations=8)
    path = tmp_path / "results.npz"
    result = train(cfg, *data)
    results.save(path, result)
    with np.load(path) as f:
        assert int(f["format"]) == FORMAT == 2
    assert results.load(path).final_scales == result.final_scales
    rewrite(path, OLDER[older])
    message = re.escape(f"{path} was written by another version of minits (file format 1")
    with pytest.raises(ValueError, match=message):
        results.load(path)

    ckpt = tmp_path / "run.ckpt.npz"
    train(cfg, *data, checkpoint_path=ckpt, max_iterations=3)
    with np.load(ckpt) as f:
        assert int(f["format"]) == FORMAT
    rewrite(ckpt, OLDER[older])
    with pytest.raises(ValueError, match=re.escape(f"{ckpt} was written by another version")):
        train(cfg, *data, checkpoint_path=ckpt)
    assert checkpoint.saved_iteration(ckpt) == 3  # left as it was


def test_superclass_measures_need_coarse_labels(data):
    with pytest.raises(ValueError, match="coarse labels"):
        train(run_config(superclass=True), *data)


def test_superclass_measures_with_coarse_labels():
    train_set = tiny_dataset(64, "train", 1, K=4, coarse=True)
    test_set = tiny_dataset(32, "test", 2, K=4, coarse=True)
    result = train(run_config(superclass=True, iterations=8), train_set, test_set)
    for split in (result.train, result.test):
        assert split["superclass_accuracy"] >= split["accuracy"]  # a right class is a right
        assert split["superclass_close_enough"].shape == split["close_enough"].shape
        assert np.all(np.diff(split["superclass_close_enough"]) >= 0)


# ----------------------------------------------------------------------------- same numbers
# The loop's shortcuts (the test set converted once per run, R(alpha) once per
# evaluation) must not change a single number of a run.


def test_to_inputs_of_an_index_array_and_of_a_slice(data):
    from minits import datasets
    from minits.training import evaluate
    train_set, _ = data
    index = np.array([5, 1, 7, 7, 90])
    for dtype, standardize in ((np.float32, None), (np.float64, ((0.4,), (0.2,)))):
        stats = None if standardize is None else tuple(np.asarray(s) for s in standardize)
        expected = datasets.to_float(train_set.images[index], dtype, 255, stats)
        assert bits(evaluate.to_inputs(train_set, index, dtype, standardize)) == bits(expected)
        whole = evaluate.to_inputs(train_set, slice(None), dtype, standardize)
        assert bits(whole[index]) == bits(expected)


@pytest.mark.parametrize("variant, eta", [("two-scale", 0.01), ("plain-ce", None),
                                          ("separation", 0.1)])
def test_evaluation_on_converted_inputs_gives_the_same_measures(data, variant, eta):
    from minits.training import evaluate
    train_set, test_set = data
    cfg = run_config(variant=variant, eta=eta, dtype="float32")
    model = build_model(cfg, 3, (1, 4, 4))
    loss = build_loss(cfg, scale_R(model))
    inputs = evaluate.to_inputs(test_set, slice(None), np.float32, None)
    assert (evaluate.quick_measures(model, loss, test_set, np.float32, None, 7, inputs=inputs)
            == evaluate.quick_measures(model, loss, test_set, np.float32, None, 7))
    a = evaluate.full_measures(model, loss, test_set, np.float32, None, per_object=True, chunk=7,
                               inputs=inputs)
    b = evaluate.full_measures(model, loss, test_set, np.float32, None, per_object=True, chunk=7)
    assert a.keys() == b.keys() and all(bits(a[k]) == bits(b[k]) for k in a)


def test_compressed_archives_hold_the_same_arrays(tmp_path):
    arrays = {"a": np.arange(7.0), "b": np.float32([1.5, -2.0]), "c": np.int16([3, 4]),
              "s": np.str_('{"x": 1}'), "n": np.int64(5), "e": np.zeros(0, np.float32)}
    atomic.savez(tmp_path / "r.npz", compress=True, **arrays)
    atomic.savez(tmp_path / "c.npz", compress=False, **arrays)
    for name in ("r.npz", "c.npz"):
        with np.load(tmp_path / name) as f:
            assert sorted(f.files) == sorted(arrays)
            assert all(bits(f[k]) == bits(v) for k, v in arrays.items())


def test_test_inputs_given_by_the_caller_give_the_same_run(data):
    """train(test_inputs=...) (a sweep's worker converts the test set once) is the run
    that converts them itself; inputs of another shape or dtype are refused."""
    from minits.training import evaluate
    train_set, test_set = data
    cfg = run_config(dtype="float32")
    inputs = evaluate.to_inputs(test_set, slice(None), np.float32, None)
    inputs.flags.writeable = False  # as the worker holds them: no run may write into them
    given, plain = train(cfg, *data, test_inputs=inputs), train(cfg, *data)
    for name, value in plain.history.state().items():
        if name != "history_elapsed":
            assert bits(value) == bits(given.history.state()[name]), name
    assert all(bits(plain.test[k]) == bits(given.test[k]) for k in plain.test)
    for wrong in (inputs.astype(np.float64), inputs[:-1]):
        with pytest.raises(ValueError, match="test_inputs must be"):
            train(cfg, *data, test_inputs=wrong)


def test_a_test_set_over_the_memory_budget_is_converted_chunk_by_chunk(data, monkeypatch):
    """evaluate.held_inputs holds the converted test set only within its budget; above
    it every evaluation converts chunk by chunk, and the run is the same run."""
    from minits.training import evaluate
    train_set, test_set = data
    n_bytes = test_set.images.size * 4
    held = evaluate.held_inputs(test_set, np.float32, None, budget=n_bytes)
    expected = evaluate.to_inputs(test_set, slice(None), np.float32, None)
    assert bits(held) == bits(expected)
    assert evaluate.held_inputs(test_set, np.float32, None, budget=n_bytes - 1) is None
    assert evaluate.held_inputs(test_set, np.float64, None, budget=n_bytes) is None

    cfg = run_config(dtype="float32")
    reference = train(cfg, *data, eval_chunk=16)  # held: the chunks are views
    monkeypatch.setattr(evaluate, "HOLD_BYTES", 0)
    chunks = []
    to_inputs = evaluate.to_inputs
    monkeypatch.setattr(evaluate, "to_inputs", lambda ds, index, *a: chunks.append(
        (ds is test_set, index)) or to_inputs(ds, index, *a))
    chunked = train(cfg, *data, eval_chunk=16)
    # 4 evaluations (0, 6, 12, 18) and the final one, each in chunks of 16 of 40 images
    assert [i for is_test, i in chunks if is_test] == 5 * [slice(0, 16), slice(16, 32),
                                                           slice(32, 40)]
    for name, value in reference.history.state().items():
        if name != "history_elapsed":
            assert bits(value) == bits(chunked.history.state()[name]), name
    assert all(bits(reference.test[k]) == bits(chunked.test[k]) for k in reference.test)
