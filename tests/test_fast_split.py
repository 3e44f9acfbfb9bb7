"""The batch split of FastSequential (minits/fast/split.py): which networks are split,
the same numbers as the unsplit plain network (to rounding), the same bits on every
number of threads, gradients against finite differences, and the state the replicas
share with their layers. Every test builds the fast twin (fast.convert(model,
threads=n)) of a plain model, which is its unsplit reference."""

import numpy as np
import pytest
import threadpoolctl
from helpers import kink_margin, scaled_examples
from hypothesis import assume, given
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

import minits as mt
from minits import fast
from minits.fast import split
from minits.fast.split import MIN_CHUNK, chunk_bounds, split_count
from minits.gradcheck import check_layer
from minits.training import train_step


def small_convnet(seed, C=2, F=3, k=3, stride=1, padding=0, pool=(2, 2), bias=False,
                  dtype=np.float64, side=(7, 9)):
    """Conv2d, ReLU, MaxPool2d(pool), Flatten, Linear(-> 4): a plain network whose
    fast twin is split."""
    H, W = side
    conv = mt.Conv2d(C, F, k, stride=stride, padding=padding, bias=bias, dtype=dtype, rng=seed)
    pooling = mt.MaxPool2d(*pool)
    shape = pooling.output_shape(conv.output_shape((1, C, H, W)))
    model = mt.Sequential(conv, mt.ReLU(), pooling, mt.Flatten(),
                          mt.Linear(int(np.prod(shape[1:])), 4, bias=bias, dtype=dtype,
                                    rng=seed + 1))
    rng = np.random.default_rng(seed + 2)
    for layer in model.linear_layers():
        if bias:
            layer.params["b"][...] = 0.1 * rng.standard_normal(layer.params["b"].shape)
    return model


def grads(model):
    return [g.copy() for _, _, _, g in model.parameters()]


def step(model, x, dX, **kw):
    """forward, backward with dL/dX = dX; returns (logits, dx, parameter gradients), copies
    (a twin writes into its plain model's grads arrays)."""
    X = model.forward(x).copy()
    dx = model.backward(dX, **kw)
    return X, (None if dx is None else np.array(dx)), grads(model)


# --- which networks are split ----------------------------------------------------------------

def test_split_count_rule():
    plain = mt.models.lenet5()
    lenet = fast.convert(plain)
    assert split_count(lenet.layers, 128) == 4
    assert split_count(lenet.layers, 2 * MIN_CHUNK) == 2
    assert split_count(lenet.layers, 2 * MIN_CHUNK - 1) == 1
    assert split_count(lenet.layers, 10_000) == split.MAX_SPLIT
    # the plain layers are never split
    assert split_count(plain.layers, 128) == 1
    # dense networks are one GEMM per layer: never split
    assert split_count(fast.convert(mt.models.mlp([784, 128, 10])).layers, 128) == 1

    class MyReLU(fast.FastReLU):
        pass

    # a layer subclass may keep state a replica would share: never split
    assert split_count([fast.FastConv2d(1, 2, 3), MyReLU()], 128) == 1


def test_chunk_bounds_cover_the_batch_in_order():
    assert chunk_bounds(130, 4) == [(0, 33), (33, 66), (66, 98), (98, 130)]
    assert chunk_bounds(64, 2) == [(0, 32), (32, 64)]


def test_only_the_fast_sequential_splits(monkeypatch):
    """The plain model never reaches split_forward; its twin cuts the batch in four."""
    chunks = []

    def spy(model, order, x, n, _right=split.split_forward):
        chunks.append(n)
        return _right(model, order, x, n)

    monkeypatch.setattr(split, "split_forward", spy)
    model = mt.models.lenet5()
    x = np.zeros((128, 3, 32, 32), np.float32)
    model.forward(x)
    assert chunks == []
    twin = fast.convert(model, threads=2)
    twin.forward(x)
    assert chunks == [4] and twin._chunks == 4


def test_threads_are_validated():
    model = mt.models.lenet5()
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="threads"):
            fast.FastSequential(*fast.convert(model).layers, threads=bad)
        with pytest.raises(ValueError, match="threads"):
            fast.convert(model, threads=bad)
    assert fast.FastSequential(fast.FastReLU(), threads=3).threads == 3
    assert fast.convert(model, threads=3).threads == 3


# --- the same numbers ------------------------------------------------------------------------

@pytest.mark.parametrize("N", [64, 97, 130])
@pytest.mark.parametrize("input_grad", [True, False])
def test_split_equals_the_plain_network_to_rounding(N, input_grad):
    """Logits and dx per sample, and the gradients summed over the chunks, against the
    unsplit plain network in float64 (only the order of the chunk sums differs)."""
    model = small_convnet(seed=N, padding=1, bias=True)
    twin = fast.convert(model)
    rng = np.random.default_rng(N)
    x = rng.standard_normal((N, 2, 7, 9))
    dX = rng.standard_normal((N, 4))
    X0, dx0, g0 = step(model, x, dX)
    X1, dx1, g1 = step(twin, x, dX, input_grad=input_grad)
    assert twin._chunks == split_count(twin.layers, N) > 1
    np.testing.assert_allclose(X1, X0, rtol=1e-13, atol=1e-13)
    for a, b in zip(g1, g0, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    if input_grad:
        assert dx1.shape == x.shape
        np.testing.assert_allclose(dx1, dx0, rtol=1e-12, atol=1e-13)
    else:
        assert dx1 is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_number_of_threads_gives_the_same_bits(dtype):
    """Also against BLAS's own thread count: each chunk calls BLAS on one thread."""
    model = mt.models.lenet5(num_classes=10, dtype=dtype, seed=3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 3, 32, 32)).astype(dtype)
    dX = rng.standard_normal((128, 10)).astype(dtype)
    results = []
    for threads, blas in ((1, 1), (1, 2), (2, 2), (3, 1), (4, 2)):
        twin = fast.convert(model, threads=threads)
        with threadpool_limits(limits=blas, user_api="blas"):
            results.append(step(twin, x, dX))
        assert twin._chunks == 4
    for X, dx, g in results[1:]:
        np.testing.assert_array_equal(X, results[0][0])
        np.testing.assert_array_equal(dx, results[0][1])
        for a, b in zip(g, results[0][2], strict=True):
            np.testing.assert_array_equal(a, b)
    assert results[0][0].dtype == dtype and results[0][1].dtype == dtype


def test_a_training_run_is_the_same_on_one_and_two_threads():
    """Ten SGD steps of a two-scale loss: identical parameters and scales."""
    finals = []
    for threads in (1, 2):
        model = fast.convert(small_convnet(seed=5, dtype=np.float32), threads=threads)
        loss = fast.convert(mt.losses.TwoScale(eta=0.1))
        sgd = mt.SGD(lr=0.05)
        rng = np.random.default_rng(1)
        for _ in range(10):
            x = rng.standard_normal((96, 2, 7, 9)).astype(np.float32)
            y = rng.integers(0, 4, 96)
            train_step(model, loss, sgd, x, y)
        assert model._chunks == 3
        finals.append([p.copy() for _, _, p, _ in model.parameters()]
                      + [np.asarray(v) for v in loss.params.values()])
    for a, b in zip(*finals, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("threads", [1, 2])
@scaled_examples(0.3)
@given(seed=st.integers(0, 10_000), N=st.integers(2 * MIN_CHUNK, 3 * MIN_CHUNK + 5),
       k=st.integers(1, 3), stride=st.integers(1, 2), padding=st.integers(0, 1),
       pool=st.sampled_from([(2, 2), (3, 2), (2, 1)]), bias=st.booleans())
def test_split_backward_matches_finite_differences(threads, seed, N, k, stride, padding, pool,
                                                   bias):
    """The split network's gradients (parameters and input) against central differences
    in float64: element-wise on 40 random entries per array and along a random
    direction; overlapping pool windows and stride != kernel included."""
    model = small_convnet(seed, k=k, stride=stride, padding=padding, pool=pool, bias=bias)
    x = np.random.default_rng(seed).standard_normal((N, 2, 7, 9))
    assume(kink_margin(model, x) > 1e-5)
    twin = fast.convert(model, threads=threads)
    twin.forward(x)
    assert twin._chunks > 1
    check_layer(twin, x, seed=seed, eps=1e-7, max_elements=40)


# --- what replicas share with their layers ---------------------------------------------------

def test_replicas_see_in_place_updates_and_rebound_parameters():
    model = small_convnet(seed=1)
    twin = fast.convert(model)
    x = np.random.default_rng(1).standard_normal((64, 2, 7, 9))
    X_before = twin.forward(x).copy()
    assert twin._chunks > 1
    conv = twin.layers[0]
    conv.params["W"] *= 2.0  # in place, as SGD does
    X_inplace = twin.forward(x).copy()
    conv.params["W"] = conv.params["W"] / 2.0  # rebound to a new array
    X_rebound = twin.forward(x).copy()
    X_plain = model.forward(x)  # the plain model shares the params dict: it sees both
    np.testing.assert_array_equal(X_inplace, 2 * X_before)
    np.testing.assert_allclose(X_rebound, X_plain, rtol=1e-12, atol=1e-13)
    assert not np.allclose(X_inplace, X_plain)


def test_a_replaced_layer_gets_new_replicas():
    model = small_convnet(seed=4)
    twin = fast.convert(model)
    x = np.random.default_rng(4).standard_normal((64, 2, 7, 9))
    twin.forward(x)
    last = mt.Linear(model.layers[-1].in_features, 6, dtype=np.float64, rng=0)
    twin.layers[-1] = fast.convert(last)
    X = twin.forward(x)
    assert twin._chunks > 1 and X.shape == (64, 6)
    reference = mt.Sequential(*model.layers[:-1], last)
    np.testing.assert_allclose(X, reference.forward(x), rtol=1e-12, atol=1e-13)


def test_a_new_batch_size_and_dtype_of_gradients_are_handled():
    model = small_convnet(seed=2)
    twin = fast.convert(model)
    rng = np.random.default_rng(2)
    for N in (128, 70, 128, 31):
        x = rng.standard_normal((N, 2, 7, 9))
        dX = rng.standard_normal((N, 4))
        X1, dx1, g1 = step(twin, x, dX)
        assert twin._chunks == split_count(twin.layers, N)
        X0, dx0, g0 = step(model, x, dX)
        np.testing.assert_allclose(X1, X0, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(dx1, dx0, rtol=1e-12, atol=1e-13)
        for a, b in zip(g1, g0, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_errstate_of_the_caller_holds_in_the_threads():
    """The training loop catches overflow with np.errstate(call=...): it must see the
    floating-point errors of a chunk that runs on another thread."""
    model = fast.convert(small_convnet(seed=3, dtype=np.float32), threads=2)
    model.layers[0].params["W"][...] = 1e30
    x = np.full((128, 2, 7, 9), 1e10, np.float32)
    seen = []
    with np.errstate(over="call", invalid="call", call=lambda kind, flag: seen.append(kind)):
        model.forward(x)
    assert model._chunks == 4
    assert "overflow" in seen
    with np.errstate(over="raise"), pytest.raises(FloatingPointError):
        model.forward(x)


def test_blas_is_held_at_one_thread_only_inside_the_parallel_part():
    """On one thread too: a multi-threaded BLAS may round differently."""
    seen = []

    def task(i):
        info = threadpoolctl.threadpool_info()
        seen.append({d["num_threads"] for d in info if d["user_api"] == "blas"})
        return i

    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        for threads in (1, 2):
            assert split.run_parallel(task, [(0,), (1,)], threads) == [0, 1]
        after = {d["num_threads"] for d in threadpoolctl.threadpool_info()
                 if d["user_api"] == "blas"}
    assert len(seen) == 4 and all(s == {1} for s in seen)
    assert after == {2}
