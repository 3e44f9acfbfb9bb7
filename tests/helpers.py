"""Helpers shared by the test modules: the two implementations, Hypothesis strategies,
small models and data sets, and the table of the losses. Test modules import from
here (and from reference.py, torch_reference.py, datasets_files.py), never from one
another; fixtures live in conftest.py.
"""

import os

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minits as mt
from minits import fast
from minits.datasets import Dataset
from minits.experiments import Experiment
from minits.fast.objectives import (
    fast_cross_entropy,
    fast_dL_dR_eq15,
    fast_two_scale_value_and_grad,
)
from minits.gradcheck import GradientCheckError, check_loss
from minits.losses import (
    CrossEntropy,
    OneScale,
    Truncated,
    TwoScale,
    TwoScaleSeparation,
    TwoScaleWrapper,
    cross_entropy,
    dL_dR_eq15,
    separation_value_and_grad,
    two_scale_value_and_grad,
)
from minits.scale import at_normalized_params
from minits.training import RunConfig

# ----------------------------------------------------------------------------- implementations

IMPLS = ("plain", "fast")


class Impl:
    """One implementation for a test body: impl(obj) is obj in it.

    Impl("plain")(obj) is obj itself, the code to read; Impl("fast")(obj) is its twin of
    minits.fast (minits.fast.convert), which shares obj's parameter arrays. threads:
    a FastSequential's threads; block: a FastConv2d's output blocking (None: its
    choice). Both are ignored for the plain code, which has neither.
    """

    def __init__(self, name):
        assert name in IMPLS
        self.name = name

    def __call__(self, obj, threads=1, block=None):
        if self.name == "plain":
            return obj
        if block is not None and type(obj) is mt.Conv2d:
            return fast.FastConv2d.from_plain(obj, block=block)
        return fast.convert(obj, threads=threads)

    @property
    def fast(self):
        return self.name == "fast"

    def __repr__(self):
        return self.name


def bits(a):
    """dtype, shape and bytes of a: equal exactly when the arrays are equal bit for bit
    (also NaN payloads and the sign of zero). Shared by the "same numbers" tests."""
    a = np.asarray(a)
    return a.dtype, a.shape, a.tobytes()


# ----------------------------------------------------------------------------- strategies

seeds = st.integers(0, 2**16)


def scaled_examples(fraction):
    """Settings with a fraction of the active profile's examples (at least 5), for
    properties whose every example costs hundreds of forward passes."""
    return settings(max_examples=max(5, int(settings.default.max_examples * fraction)))


@st.composite
def conv_cases(draw, max_side=8):
    """Shapes: batch 1-4, channels 1-3, odd and non-square sides, kernel 1-5,
    stride 1-3 (often != kernel), padding 0-2 (kernel must fit the padded input),
    output blocking (fast code) chosen by the layer (None) or forced to 1-4 (often
    not a divisor of the output width: a last, partial block)."""
    k = draw(st.integers(1, 5))
    padding = draw(st.integers(0, 2))
    stride = draw(st.integers(1, 3))
    low = max(1, k - 2 * padding)
    H = draw(st.integers(low, max(low, max_side)))
    W = draw(st.integers(low, max(low, max_side)))
    return dict(N=draw(st.integers(1, 4)), C=draw(st.integers(1, 3)), F=draw(st.integers(1, 3)),
                H=H, W=W, k=k, stride=stride, padding=padding, bias=draw(st.booleans()),
                block=draw(st.sampled_from([None, 1, 2, 3, 4])), seed=draw(seeds))


def make_conv(case, impl, dtype=np.float64):
    """A Conv2d for a conv_cases() draw in implementation impl (random bias when it has
    one), an input and an rng."""
    layer = mt.Conv2d(case["C"], case["F"], case["k"], stride=case["stride"],
                      padding=case["padding"], bias=case["bias"], dtype=dtype, rng=case["seed"])
    rng = np.random.default_rng(case["seed"] + 1)
    if case["bias"]:
        layer.params["b"][...] = rng.standard_normal(case["F"])
    x = rng.standard_normal((case["N"], case["C"], case["H"], case["W"])).astype(dtype)
    return impl(layer, block=case.get("block")), x, rng


@st.composite
def pool_cases(draw):
    """Overlapping (s < k), tiling (s = k) and gapped (s > k) windows, sides that
    the windows do not tile, batch 1-4, channels 1-3."""
    k = draw(st.integers(1, 4))
    s = draw(st.integers(1, 4))
    H = draw(st.integers(k, 9))
    W = draw(st.integers(k, 9))
    return dict(N=draw(st.integers(1, 4)), C=draw(st.integers(1, 3)), H=H, W=W, k=k, s=s,
                seed=draw(seeds))


def distinct_input(case):
    """For a pool_cases() draw: a shuffled grid of distinct values in [-1, 1), at least
    2e-3 apart: no ties, and no near-ties that a finite-difference step (1e-6) could
    flip. Returns (x, rng)."""
    shape = (case["N"], case["C"], case["H"], case["W"])
    size = int(np.prod(shape))
    rng = np.random.default_rng(case["seed"])
    return rng.permutation(size).reshape(shape) * (2.0 / size) - 1.0, rng


def away_from_zero(x, margin=0.01):
    """x with every entry moved at least margin away from 0 (ReLU's kink), sign kept."""
    return x + np.where(x >= 0, margin, -margin)


def kink_margin(model, x):
    """Smallest distance of any ReLU input from 0 and of any max-pool window's top
    two values from a tie, along one forward pass. A finite-difference check is only
    meaningful when this is large compared with the perturbation. Windows whose
    values are all exactly 0 (ReLU outputs of negative inputs) are exact ties that
    no small perturbation breaks, so they do not count."""
    margin = np.inf
    for layer in model.layers:
        if isinstance(layer, mt.ReLU):
            margin = min(margin, np.abs(x).min())
        if isinstance(layer, mt.MaxPool2d):
            k, s = layer.kernel_size, layer.stride
            _, _, Ho, Wo = layer.output_shape(x.shape)
            windows = np.stack([x[:, :, i:i + s * Ho:s, j:j + s * Wo:s]
                                for i in range(k) for j in range(k)])
            second, first = np.sort(windows, axis=0)[-2:]
            gaps = (first - second)[first != 0]
            margin = min(margin, gaps.min(initial=np.inf))
        x = layer.forward(x)
    return margin


# ----------------------------------------------------------------------------- models

def make_model(kind, seed, bias=False, dtype=np.float64, K=4):
    """A small plain mlp or LeNet-5 (1 channel, 16x16 input) and a batch for it."""
    rng = np.random.default_rng(seed + 1000)
    if kind == "mlp":
        model = mt.models.mlp([6, 5, K], bias=bias, seed=seed, dtype=dtype)
        x = rng.standard_normal((4, 6)).astype(dtype)
    else:
        model = mt.models.lenet5(num_classes=K, in_channels=1, bias=bias, seed=seed,
                                 dtype=dtype, input_size=16)
        x = rng.standard_normal((2, 1, 16, 16)).astype(dtype)
    if bias:  # non-zero biases, so that X_hat != X / R
        for layer in model.linear_layers():
            layer.params["b"][:] = rng.standard_normal(layer.params["b"].shape)
    y = rng.integers(0, K, size=len(x))
    return model, x, y


def kink_distance(model, x):
    """How far the forward pass at alpha_hat is from a kink, relative to each layer's
    scale: the smallest |input| of a ReLU and the smallest gap between the two largest
    entries of a max-pool window, each divided by the layer input's largest |entry|.
    Finite differences are only meaningful well away from kinks."""
    gaps = [np.inf]
    with at_normalized_params(model):
        h = x
        for layer in model.layers:
            if isinstance(layer, mt.ReLU):
                gaps.append(np.min(np.abs(h)) / np.max(np.abs(h)))
            elif isinstance(layer, mt.MaxPool2d):
                k, s = layer.kernel_size, layer.stride
                assert k == s, "kink_distance handles non-overlapping windows only"
                N, C, H, W = h.shape
                Ho, Wo = H // k, W // k
                win = h[:, :, :Ho * k, :Wo * k].reshape(N, C, Ho, k, Wo, k)
                win = np.sort(win.transpose(0, 1, 2, 4, 3, 5).reshape(N, C, Ho, Wo, k * k))
                top, second = win[..., -1], win[..., -2]
                live = (top != 0) | (second != 0)  # windows of ReLU zeros only have no kink
                if live.any():
                    gaps.append(np.min((top - second)[live]) / np.max(np.abs(h)))
            h = layer.forward(h)
    return float(min(gaps))


def snapshot(model):
    """Copies of every parameter array of the model, layer by layer."""
    return [p.copy() for layer in model.linear_layers() for p in layer.params.values()]


def assert_params_identical(model, saved):
    now = [p for layer in model.linear_layers() for p in layer.params.values()]
    for a, b in zip(now, saved, strict=True):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- losses

LOSSES = {
    "two_scale": lambda mode: TwoScale(1.0, confidence=mode),
    "two_scale_fixed": lambda mode: TwoScale(1.0, confidence=mode, fixed=True),
    "one_scale": lambda mode: OneScale(confidence=mode),
    "separation_fixed": lambda mode: TwoScaleSeparation(1.0, confidence=mode),
    "separation_trained": lambda mode: TwoScaleSeparation(1.0, scale="trained", confidence=mode),
    "separation_live": lambda mode: TwoScaleSeparation(1.0, scale="live", confidence=mode),
    "wrapper_ce": lambda mode: TwoScaleWrapper("cross_entropy", 1.0, confidence=mode),
    "wrapper_mse": lambda mode: TwoScaleWrapper("mse", 1.0, confidence=mode),
    "wrapper_truncated": lambda mode: TwoScaleWrapper("truncated", 1.0, confidence=mode, k=0.2),
    "cross_entropy": lambda mode: CrossEntropy(),
    "truncated": lambda mode: Truncated(0.2),
}
"""The table of the losses: name -> (confidence mode -> a plain loss with eta = 1)."""

MODES = ("raw", "normalized", "scaled")

FLOAT = st.floats(-3, 3, allow_nan=False, allow_infinity=False)


@st.composite
def logits_labels(draw, max_n=5, max_k=5, elements=FLOAT):
    """Logits z (n, k) float64 and labels y (n,), n in 1..max_n, k in 2..max_k."""
    n = draw(st.integers(1, max_n))
    k = draw(st.integers(2, max_k))
    z = draw(hnp.arrays(np.float64, (n, k), elements=elements))
    y = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)), dtype=np.int64)
    return z, y


def _fast_separation(X_hat, y, R, Rs, second):
    """Eq. (17) per object as FastTwoScaleSeparation computes it."""
    values, dX_hat, dR1, dR2 = fast_two_scale_value_and_grad(X_hat, y, R, Rs * R, second)
    return values, dX_hat, R * dR2, dR1 + Rs * dR2


FUNCTIONS = {
    "plain": dict(cross_entropy=cross_entropy, dL_dR_eq15=dL_dR_eq15,
                  two_scale=two_scale_value_and_grad, separation=separation_value_and_grad),
    "fast": dict(cross_entropy=fast_cross_entropy, dL_dR_eq15=fast_dL_dR_eq15,
                 two_scale=fast_two_scale_value_and_grad, separation=_fast_separation),
}
"""Implementation -> the functions on logits of that implementation (the fast ones are
the internals of minits.fast.objectives; dL_dR_eq15's fast version takes one R_k per
object)."""


def model_case(draw, K=3):
    """Draw a small model and batch: (kind, seed, model, x, y); plain, float64."""
    kind = draw(st.sampled_from(["mlp", "lenet5"]))
    seed = draw(st.integers(0, 10_000))
    bias = draw(st.booleans()) if kind == "mlp" else False
    model, x, y = make_model(kind, seed, bias, K=K)
    if kind == "mlp":  # a larger batch, so that both cases of Eq. (13) occur
        rng = np.random.default_rng(seed)
        x, y = rng.standard_normal((8, 6)), rng.integers(0, K, size=8)
    return kind, seed, model, x, y


def split_eta(delta, draw):
    """A threshold between two of the batch's positive confidences (or above all)."""
    positive = np.sort(delta[delta > 0])
    if positive.size == 0:
        return 1.0
    j = draw(st.integers(0, positive.size))
    low = positive[j - 1] if j > 0 else 0.0
    high = positive[j] if j < positive.size else 2 * positive[-1]
    return float((low + high) / 2)


def away_from_threshold(delta, eta):
    """No confidence within a relative 1e-4 of eta (a finite difference cannot flip a case)."""
    return bool(np.all(np.abs(delta - eta) > 1e-4 * (1 + np.abs(delta))))


def assert_loss_gradients(loss, model, x, y, seed, label):
    """Model grads and the loss's scale grads against central differences (check_loss)."""
    value = loss.forward(model, x, y)
    # rounding in the differences: about 1e-16 * |logits| / eps, and the logits R X_hat
    # reach ~10 here; the gradients themselves are of order one. seed + 1: a direction
    # drawn from the model's own seed would be parallel to alpha^0 of the first layer,
    # along which a scale-invariant loss has zero slope
    try:
        check_loss(loss, model, x, y, max_elements=6, seed=seed + 1, rtol=1e-5,
                   atol=1e-8 * (1 + abs(value)))
    except GradientCheckError as error:
        raise AssertionError(f"{label}: {error}") from None
    return value


def literal_sign_applies(model, mode):
    """Sec. 2.3's sign argument needs delta >= eta > 0 to imply delta X_hat > 0: true for the
    normalised confidences, and for the raw one only without biases (delta X_hat = delta X / R).
    With biases and raw confidence a well-classified object may have delta X_hat < 0."""
    return mode != "raw" or all("b" not in layer.params for layer in model.linear_layers())


# ----------------------------------------------------------------------------- runs and sweeps

def tiny_dataset(n, split, seed, K=3, coarse=False, side=4, name="tiny"):
    """(n, 1, side, side) uint8 images whose class is the argmax of a fixed projection:
    learnable. side=16 is LeNet-5's smallest input."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 1, side, side), dtype=np.uint8)
    W = np.random.default_rng(99).normal(size=(side * side, K))
    labels = np.argmax(images.reshape(n, -1) / 255.0 @ W, axis=1)  # bias-free separable
    extra = {}
    if coarse:  # K = 4 fine classes in 2 super-classes
        f2c = np.array([0, 0, 1, 1])
        extra = dict(coarse_labels=f2c[labels], coarse_names=("a", "b"), fine_to_coarse=f2c)
    return Dataset(images=images, labels=labels, name=name, split=split,
                   class_names=tuple(str(k) for k in range(K)), **extra)


def run_config(**changes):
    """A RunConfig of a short run on the tiny data sets (two-scale, eta = 0.01, float64)."""
    base = dict(dataset="tiny", variant="two-scale", eta=0.01, hidden=(8,), batch_size=16,
                iterations=20, eval_every=6, dtype="float64", seed=3)
    return RunConfig(**{**base, **changes})


def tiny_experiment(seeds=2, iterations=14, variants=(("one-scale", None), ("two-scale", 1e6),
                                                       ("two-scale", 0.01))):
    """An Experiment on the tiny data set (the `tiny` fixture makes it findable)."""
    return Experiment(name="tiny", title="tiny test", dataset="tiny", variants=variants,
                      seeds=tuple(range(seeds)),
                      run={"hidden": (8,), "batch_size": 16, "iterations": iterations,
                           "eval_every": 5, "dtype": "float64"},
                      paper={"two-scale_eta=0.01": {"train_delta": 7.1, "test_delta": 6.7,
                                                    "note": "a note"}})


def files(out):
    """{relative path: modification time} of every file under out."""
    found = {}
    for root, _, names in os.walk(out):
        for name in names:
            path = os.path.join(root, name)
            found[os.path.relpath(path, out)] = os.stat(path).st_mtime_ns
    return found


# hidden 256: matrix products large enough for a multi-threaded BLAS to split them
# (with the BLAS threads of this process, --jobs 1 gave other numbers than --jobs 2)
SWEEP_ARGS = ["compare", "--dataset", "digits", "--etas", "0.01", "--variants", "one-scale",
              "two-scale", "--seeds", "2", "--iterations", "40", "--eval-every", "20",
              "--hidden", "256", "--no-progress", "--no-figures"]
"""A small sweep of the command line on the digits (the `offline` fixture)."""


def result_arrays(out):
    """{relative path: {name: array}} of every results file, timings aside."""
    found = {}
    for root, _, names in os.walk(os.path.join(out, "runs")):
        for name in names:
            if name.endswith(".npz") and not name.endswith(".ckpt.npz"):
                path = os.path.join(root, name)
                with np.load(path) as f:
                    found[os.path.relpath(path, out)] = {k: f[k] for k in f.files
                                                         if k != "history_elapsed"}
    return found


def assert_same_results(a, b, runs=4):
    """The results files of run folders a and b are the same, array for array, bit for bit."""
    ra, rb = result_arrays(a), result_arrays(b)
    assert sorted(ra) == sorted(rb) and len(ra) == runs
    for path, arrays in ra.items():
        assert sorted(arrays) == sorted(rb[path]), path
        for name, value in arrays.items():
            other = rb[path][name]
            assert value.dtype == other.dtype and value.shape == other.shape, (path, name)
            assert value.tobytes() == other.tobytes(), (path, name)


def blas_threads():
    """The thread counts of the BLAS libraries loaded in this process (threadpoolctl)."""
    import threadpoolctl

    return {d["num_threads"] for d in threadpoolctl.threadpool_info() if d["user_api"] == "blas"}


def needs_digits():
    """Skip the calling test where scikit-learn (its digits data set) is not installed."""
    pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn")


def docs_module(name):
    """docs/<name>.py as a module (docs/ is not a package): the walkthrough's generator,
    the reading-path tracer."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "docs" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shared_data_dir():
    """$MINITS_DATA when set and present, else None (real-data tests skip)."""
    path = os.environ.get("MINITS_DATA")
    return path if path and os.path.isdir(path) else None


def kill_own_worker_on_seed_1(task):
    """A pool worker's work (executor._run_pool(work=...)): the run of seed 1 kills the
    process it runs in (as the kernel's OOM killer would), every other run trains."""
    import signal

    from minits.experiments import executor

    if task.config.seed == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return executor._worker_run(task)


def disk_full_on_seed_0(task):
    """A pool worker's work (executor._run_pool(work=...)): the runs of seed 0 fail as a
    full disk makes them fail (tasks.run_task's Outcome), the others train."""
    from minits.experiments import executor
    from minits.experiments.tasks import Outcome

    if task.config.seed == 0:
        return Outcome(task.config.key, 0, "failed", "OSError: [Errno 28] No space left on "
                       f"device: '{task.checkpoint_path}'", fatal=True)
    return executor._worker_run(task)
