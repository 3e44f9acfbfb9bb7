"""What each speed lever of minits is worth: one lenet5 training step with the
lever switched off, one lever at a time, against the step with all of them.

Each variant patches minits for the duration of its own steps only (the patch is
undone after every step), and the variants' steps are interleaved, so they see
the same machine. The "switched off" code is the straightforward version each
lever replaced; it computes the same numbers (checked before timing).

    python benchmarks/bench_levers.py              # 40 steps per variant, 1 thread
    python benchmarks/bench_levers.py --repeats 100 --clock cpu

docs/performance.md explains every lever and quotes this script's output.
"""

import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
import minits as mt  # noqa: E402
from minits.layers import (  # noqa: E402
    activations,
    fast_blocking,
    fast_conv,
    fast_pool,
    fast_split,
    flatten,
    pool,
)
from minits.layers.fast_im2col import as_pair  # noqa: E402
from minits.layers.fast_pool import window_offsets  # noqa: E402
from minits.layers.im2col import col2im, conv_output_size  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_step import BATCH, batches, cross_entropy  # noqa: E402

# --- the straightforward versions the levers replaced ----------------------------------------
# Each replaces one function of the fast implementation (minits/layers/fast_*.py), with
# its signature; the layer classes hold the fast functions under their own names
# (minits.layers.pool.fast_maxpool_forward, ...), so that is where they are patched.


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


def input_grad_col2im(layer, dout, padded_size):
    """dx = col2im(W2.T @ dout2): the (C*k*k, N*Ho*Wo) product, then k*k slice adds."""
    F, N = dout.shape[:2]
    W2 = layer.params["W"].reshape(F, -1)
    dcols = W2.T @ dout.reshape(F, -1)
    return col2im(dcols, (layer.in_channels, N, *padded_size), layer.kernel_size, layer.stride)


def pool_forward_masked(layer, x):
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
    return out.transpose(1, 0, 2, 3), (argmax, x.shape)


def pool_backward_where(layer, dout, cache, input_grad=True):
    argmax, (N, C, H, W) = cache
    dc = dout.transpose(1, 0, 2, 3)
    dx = np.zeros((C, N, H, W), dout.dtype)
    for o, rows, cols in window_offsets(layer.kernel_size, layer.stride, dout.shape[2:]):
        dx[:, :, rows, cols] += np.where(argmax == o, dc, 0)
    return dx.transpose(1, 0, 2, 3)


def relu_backward_where(dout, positive, input_grad=True):
    return np.where(positive, dout, 0)


def flatten_backward_sample_major(dout, x, input_grad=True):
    return dout.reshape(x.shape)


def fresh_array(layer, name, shape, dtype):
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

# name -> (list of (object, attribute, replacement), model dtype, input_grad of backward)
VARIANTS = {
    "all levers": ([], np.float32, False),
    "no batch split (one chunk)": ([(fast_split, "MAX_SPLIT", 1)], np.float32, False),
    "ReLU before pooling (list order)": ([(mt.Sequential, "schedule", in_list_order)],
                                         np.float32, False),
    "pooling with masked updates": ([(pool, "fast_maxpool_forward", pool_forward_masked),
                                     (pool, "fast_maxpool_backward", pool_backward_where)],
                                    np.float32, False),
    "ReLU backward with np.where": ([(activations, "fast_relu_backward", relu_backward_where)],
                                    np.float32, False),
    "one-stage im2col": ([(fast_conv, "fast_im2col", im2col_one_stage)], np.float32, False),
    "no output blocking (block 1)": ([(fast_blocking, "choose_block", no_blocking)],
                                     np.float32, False),
    "input gradient via col2im": ([(fast_conv, "fast_input_grad", input_grad_col2im)],
                                  np.float32, False),
    "fresh work arrays every step": ([(fast_conv, "scratch", fresh_array),
                                      (fast_pool, "scratch", fresh_array)], np.float32, False),
    "NCHW copies between layers": (
        [(cls, name, contiguous_nchw(getattr(cls, name)))
         for cls in (mt.Conv2d, mt.MaxPool2d) for name in ("forward", "backward")],
        np.float32, False),
    "Flatten backward sample-major": ([(flatten, "fast_flatten_backward",
                                        flatten_backward_sample_major)], np.float32, False),
    "input gradient of conv1 too": ([], np.float32, True),
    # every lever off at once: the plain implementation, minits.using("plain")
    "plain implementation": ([(mt.backend, "_current", "plain")], np.float32, False),
    "float64 throughout": ([], np.float64, False),
}


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


def step(model, x, y, input_grad):
    """forward, cross-entropy, backward, SGD; returns the logits (for the check)."""
    X = model.forward(x)
    _, dX = cross_entropy(X, y)
    model.backward(dX, input_grad=input_grad)
    for layer in model.linear_layers():
        for name, p in layer.params.items():
            p -= 0.01 * layer.grads[name]
    return X


def check_same_numbers(data):
    """Every variant's first step gives the logits and gradients of 'all levers'."""
    x, y = data[0]
    results = {}
    for name, (patches, _, input_grad) in VARIANTS.items():
        model = mt.models.lenet5(seed=0, dtype=np.float64)
        with patched(patches):
            X = model.forward(x.astype(np.float64))
            _, dX = cross_entropy(X, y)
            model.backward(dX, input_grad=input_grad)
        results[name] = [X] + [layer.grads["W"].copy() for layer in model.linear_layers()]
    for name, arrays in results.items():
        for a, b in zip(arrays, results["all levers"], strict=True):
            if not np.allclose(a, b, rtol=1e-9, atol=1e-12):
                raise AssertionError(f"variant {name!r} computes different numbers")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args(argv)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    data = batches((3, 32, 32), 10)
    check_same_numbers(data)
    models = {name: mt.models.lenet5(seed=0, dtype=dtype)
              for name, (_, dtype, _) in VARIANTS.items()}
    times = {name: [] for name in VARIANTS}
    names = list(VARIANTS)
    mt.set_num_threads(args.threads)  # the batch split's threads (BLAS's are set below)
    with threadpool_limits(limits=args.threads):
        for r in range(3 + args.repeats):
            names.reverse()
            x, y = data[r % len(data)]
            for name in names:
                patches, dtype, input_grad = VARIANTS[name]
                xd = x.astype(dtype, copy=False)
                with patched(patches):
                    t0 = clock()
                    step(models[name], xd, y, input_grad)
                    if r >= 3:
                        times[name].append(clock() - t0)
    base = np.median(times["all levers"]) * 1e3
    print(f"lenet5 K=10, batch {BATCH}, {args.threads} thread(s), {args.clock} clock: "
          f"median of {args.repeats} steps")
    print(f"{'variant':<36}{'ms':>8}{'vs all levers':>16}")
    for name in VARIANTS:
        med = np.median(times[name]) * 1e3
        print(f"{name:<36}{med:>8.2f}{med - base:>+10.2f} ms {med / base - 1:>+6.0%}")


if __name__ == "__main__":
    main()
