"""What each speed lever of minits is worth: one training step with the lever switched
off, one lever at a time, against the step with all of them.

Two tables: the network's levers on a LeNet-5 step (minits.fast's layers and
FastSequential, with an inline cross-entropy), and the loss's levers on an mlp step of
the two-scale loss (FastTwoScale, FastNormalization: training.train_step as training
runs it). Each variant patches minits for the duration of its own steps only (the patch
is undone after every step), and the variants' steps are interleaved, so they see the
same machine. The "switched off" code is the straightforward version each lever
replaced; it computes the same numbers (checked before timing).

    python benchmarks/bench_levers.py              # 40 steps per variant, 1 thread
    python benchmarks/bench_levers.py --repeats 100 --clock cpu

docs/performance.md explains every lever and quotes this script's output.
"""

import argparse
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import blas  # noqa: E402

blas.unset_coretype()  # before NumPy loads OpenBLAS
import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from bench_step import BATCH, batches, cross_entropy  # noqa: E402

import minits as mt  # noqa: E402
from minits import fast  # noqa: E402
from minits.fast import blocking, split  # noqa: E402
from minits.fast import conv as fast_conv  # noqa: E402
from minits.fast import losses as fast_losses  # noqa: E402
from minits.fast import normalization as fast_normalization  # noqa: E402
from minits.fast.im2col import as_pair  # noqa: E402
from minits.fast.pool import window_offsets  # noqa: E402
from minits.layers.im2col import col2im, conv_output_size  # noqa: E402
from minits.losses import TwoScale  # noqa: E402
from minits.training import train_step  # noqa: E402

# --- the straightforward versions the levers replaced ----------------------------------------
# Each replaces one method or function of minits.fast, with its signature.


def im2col_one_stage(x, kernel_size, stride, out=None):
    """kh*kw strided copies x[..., i::sh, j::sw], each in runs of Wo elements."""
    C, N, Hp, Wp = x.shape
    (kh, kw), (sh, sw) = as_pair(kernel_size), as_pair(stride)
    Ho, Wo = conv_output_size(Hp, kh, sh), conv_output_size(Wp, kw, sw)
    cols = (np.empty((C, kh, kw, N, Ho, Wo), x.dtype) if out is None
            else out.reshape(C, kh, kw, N, Ho, Wo))
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = x[:, :, i:i + sh * Ho:sh, j:j + sw * Wo:sw]
    return cols.reshape(C * kh * kw, N * Ho * Wo)


def no_blocking(out_channels, kernel_size, stride, out_width):
    """One output per column: the plain product W2 (F, C*k*k) @ cols."""
    return 1


def input_grad_col2im(layer, dout, padded_size):  # FastConv2d.input_grad
    """dx = col2im(W2.T @ dout2): the (C*k*k, N*Ho*Wo) product, then k*k slice adds."""
    F, N = dout.shape[:2]
    W2 = layer.params["W"].reshape(F, -1)
    dcols = W2.T @ dout.reshape(F, -1)
    return col2im(dcols, (layer.in_channels, N, *padded_size), layer.kernel_size, layer.stride)


def pool_forward_masked(layer, x):  # FastMaxPool2d.forward
    """Running maximum updated through boolean masks (np.copyto(..., where=))."""
    xc = x.transpose(1, 0, 2, 3)
    _, _, Ho, Wo = layer.output_shape(x.shape)
    offsets = window_offsets(layer.kernel_size, layer.stride, (Ho, Wo))
    _, rows, cols = next(offsets)
    out = xc[:, :, rows, cols].copy()
    argmax = np.zeros(out.shape, np.uint8)
    better = np.empty(out.shape, bool)
    for o, rows, cols in offsets:
        candidate = xc[:, :, rows, cols]
        np.greater(candidate, out, out=better)
        np.copyto(argmax, o, where=better)
        np.copyto(out, candidate, where=better)
    layer._cache = (argmax, x.shape)
    return out.transpose(1, 0, 2, 3)


def pool_backward_where(layer, dout, input_grad=True):  # FastMaxPool2d.backward
    argmax, (N, C, H, W) = layer._cached()
    dc = dout.transpose(1, 0, 2, 3)
    dx = np.zeros((C, N, H, W), dout.dtype)
    for o, rows, cols in window_offsets(layer.kernel_size, layer.stride, dout.shape[2:]):
        dx[:, :, rows, cols] += np.where(argmax == o, dc, 0)
    return dx.transpose(1, 0, 2, 3)


def relu_backward_where(layer, dout, input_grad=True):  # FastReLU.backward
    return np.where(layer._cached(), dout, 0)


def flatten_backward_sample_major(layer, dout, input_grad=True):  # FastFlatten.backward
    return dout.reshape(layer._cached().shape)


def fresh_array(layer, name, shape, dtype):  # FastLayer.work
    return np.empty(shape, dtype)


def in_list_order(self):
    return list(range(len(self.layers)))


def contiguous_nchw(method):
    """Wrap a layer method so that its result is copied to C-contiguous (N, C, H, W)."""
    def wrapped(self, *args, **kwargs):
        out = method(self, *args, **kwargs)
        return None if out is None else np.ascontiguousarray(out)
    return wrapped


# --- variants ---------------------------------------------------------------------------------

# name -> (list of (object, attribute, replacement), model dtype, input_grad of backward,
# implementation of the model)
VARIANTS = {
    "all levers": ([], np.float32, False, "fast"),
    "no batch split (one chunk)": ([(split, "MAX_SPLIT", 1)], np.float32, False, "fast"),
    "ReLU before pooling (list order)": ([(fast.FastSequential, "schedule", in_list_order)],
                                         np.float32, False, "fast"),
    "pooling with masked updates": ([(fast.FastMaxPool2d, "forward", pool_forward_masked),
                                     (fast.FastMaxPool2d, "backward", pool_backward_where)],
                                    np.float32, False, "fast"),
    "ReLU backward with np.where": ([(fast.FastReLU, "backward", relu_backward_where)],
                                    np.float32, False, "fast"),
    "one-stage im2col": ([(fast_conv, "fast_im2col", im2col_one_stage)], np.float32, False,
                         "fast"),
    "no output blocking (block 1)": ([(blocking, "choose_block", no_blocking)],
                                     np.float32, False, "fast"),
    "input gradient via col2im": ([(fast.FastConv2d, "input_grad", input_grad_col2im)],
                                  np.float32, False, "fast"),
    "fresh work arrays every step": ([(fast.FastLayer, "work", fresh_array)], np.float32,
                                     False, "fast"),
    "NCHW copies between layers": (
        [(cls, name, contiguous_nchw(getattr(cls, name)))
         for cls in (fast.FastConv2d, fast.FastMaxPool2d) for name in ("forward", "backward")],
        np.float32, False, "fast"),
    "Flatten backward sample-major": ([(fast.FastFlatten, "backward",
                                        flatten_backward_sample_major)], np.float32, False,
                                      "fast"),
    "input gradient of conv1 too": ([], np.float32, True, "fast"),
    # every lever off at once: the plain model of minits.models
    "plain implementation": ([], np.float32, True, "plain"),
    "float64 throughout": ([], np.float64, False, "fast"),
}


def not_homogeneous(model):
    return False


def backward_with_input_grad(model, dX):
    model.backward(dX)


# the loss side: name -> (list of (object, attribute, replacement), implementation)
LOSS_VARIANTS = {
    "all levers": ([], "fast"),
    "Eq. (13) per object, plain": ([(fast.FastTwoScale, "_value_and_grad",
                                     TwoScale._value_and_grad)], "fast"),
    "X_hat by a pass at alpha_hat (no Eq. (8))": (
        [(fast_losses, "is_homogeneous", not_homogeneous),
         (fast_normalization, "is_homogeneous", not_homogeneous)], "fast"),
    "input gradient of the first layer too": (
        [(fast_normalization, "backward_without_input_grad", backward_with_input_grad)],
        "fast"),
    "plain implementation": ([], "plain"),
}


def as_impl(obj, impl, threads=1):
    return fast.convert(obj, threads=threads) if impl == "fast" else obj


@contextlib.contextmanager
def patched(patches):
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    try:
        for obj, name, new in patches:
            setattr(obj, name, new)
        yield
    finally:
        for obj, name, old in saved:
            setattr(obj, name, old)


def backward(model, dX, input_grad):
    if isinstance(model, fast.FastSequential):
        return model.backward(dX, input_grad=input_grad)
    return model.backward(dX)


def step(model, x, y, input_grad):
    """forward, cross-entropy, backward, SGD; returns the logits (for the check)."""
    X = model.forward(x)
    _, dX = cross_entropy(X, y)
    backward(model, dX, input_grad)
    for layer in model.linear_layers():
        for name, p in layer.params.items():
            p -= 0.01 * layer.grads[name]
    return X


def check_same_numbers(data):
    """Every variant's first step gives the logits and gradients of 'all levers'."""
    x, y = data[0]
    results = {}
    for name, (patches, _, input_grad, impl) in VARIANTS.items():
        model = as_impl(mt.models.lenet5(seed=0, dtype=np.float64), impl)
        with patched(patches):
            X = model.forward(x.astype(np.float64))
            _, dX = cross_entropy(X, y)
            backward(model, dX, input_grad)
        results[name] = [X] + [layer.grads["W"].copy() for layer in model.linear_layers()]
    for name, arrays in results.items():
        for a, b in zip(arrays, results["all levers"], strict=True):
            if not np.allclose(a, b, rtol=1e-9, atol=1e-12):
                raise AssertionError(f"variant {name!r} computes different numbers")


def check_loss_levers(data):
    """Every loss variant's first step gives the loss value and gradients of 'all levers'."""
    x, y = data[0]
    results = {}
    for name, (patches, impl) in LOSS_VARIANTS.items():
        model = as_impl(mt.models.mlp([784, 128, 10], seed=0, dtype=np.float64), impl)
        loss = as_impl(TwoScale(0.01), impl)
        with patched(patches):
            value = loss.forward(model, x.astype(np.float64), y)
            loss.backward()
        results[name] = [np.array(value)] + [layer.grads["W"].copy()
                                             for layer in model.linear_layers()]
    for name, arrays in results.items():
        for a, b in zip(arrays, results["all levers"], strict=True):
            if not np.allclose(a, b, rtol=1e-9, atol=1e-12):
                raise AssertionError(f"loss variant {name!r} computes different numbers")


def time_variants(variants, run_step, repeats, clock):
    """Median ms of each variant's step, the variants' steps interleaved (order alternating)."""
    times = {name: [] for name in variants}
    names = list(variants)
    for r in range(3 + repeats):
        names.reverse()
        for name in names:
            with patched(variants[name][0]):
                t0 = clock()
                run_step(name, r)
                if r >= 3:
                    times[name].append(clock() - t0)
    return {name: np.median(t) * 1e3 for name, t in times.items()}


def print_table(title, medians):
    base = medians["all levers"]
    print(title)
    print(f"{'variant':<44}{'ms':>8}{'vs all levers':>16}")
    for name, med in medians.items():
        print(f"{name:<44}{med:>8.3f}{med - base:>+10.3f} ms {med / base - 1:>+6.1%}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args(argv)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    print(blas.describe())
    data = batches((3, 32, 32), 10)
    check_same_numbers(data)
    models = {name: as_impl(mt.models.lenet5(seed=0, dtype=dtype), impl, args.threads)
              for name, (_, dtype, _, impl) in VARIANTS.items()}

    def lenet_step(name, r):
        _, dtype, input_grad, _ = VARIANTS[name]
        x, y = data[r % len(data)]
        step(models[name], x.astype(dtype, copy=False), y, input_grad)

    mnist = batches((784,), 10, count=8)
    check_loss_levers(mnist)
    runs = {}
    for name, (_, impl) in LOSS_VARIANTS.items():
        runs[name] = (as_impl(mt.models.mlp([784, 128, 10], seed=0), impl),
                      as_impl(TwoScale(0.01), impl), mt.SGD(lr=0.01))

    def loss_step(name, r):
        x, y = mnist[r % len(mnist)]
        train_step(*runs[name], x, y)

    with threadpool_limits(limits=args.threads):
        lenet = time_variants(VARIANTS, lenet_step, args.repeats, clock)
        mlp = time_variants(LOSS_VARIANTS, loss_step, 10 * args.repeats, clock)
    print_table(f"the network's levers: lenet5 K=10, batch {BATCH}, {args.threads} thread(s), "
                f"{args.clock} clock, median of {args.repeats} steps", lenet)
    print()
    print_table(f"the loss's levers: mlp [784, 128, 10], two-scale eta = 0.01, batch {BATCH}, "
                f"{args.threads} thread(s), {args.clock} clock, median of {10 * args.repeats} "
                "steps", mlp)


if __name__ == "__main__":
    main()
