"""Time one training step of minits beside the same step in PyTorch (CPU).

A step is forward, softmax cross-entropy, backward and an SGD update on one
batch of 128 float32 images, for the paper's networks: mlp [784, 128, 10] on
(1, 28, 28) inputs and lenet5 with K = 10 and K = 100 on (3, 32, 32) inputs,
all bias-free. Both frameworks run in the same process, in alternating blocks
of steps (time_row says why blocks), with the same number of BLAS / intra-op
threads, so the ratio minits / torch is robust to a machine that is busy with
other work (absolute milliseconds are not). minits runs twice: its fast implementation
(minits.fast.convert(model): what training uses) and its plain one (the model of
minits.models as it is: the code to read), each in its own model; the plain ratio is
reported, not targeted.

    python benchmarks/bench_step.py                  # 1 and 2 threads, 60 steps each
    python benchmarks/bench_step.py --quick          # a few steps, to check it runs
    python benchmarks/bench_step.py --threads 1 --repeats 200
    taskset -c 0 python benchmarks/bench_step.py --threads 1   # quietest 1-thread figures
    python benchmarks/bench_step.py --threads 1 --clock cpu    # CPU time: a busy machine
    python benchmarks/bench_step.py --profile        # per-layer times of one lenet5 step

Columns: milliseconds per step, the median over blocks with the interquartile
range over blocks (IQR) in brackets, and the ratio of the medians to torch's
(below 1: minits is faster), for the fast implementation and then the plain one.
"products" is the floor of the fast step: its matrix products alone, the same
shapes on random operands, chunk by chunk as the batch split runs them
(product_step), timed in the same blocks; no change to the copies around the
products can bring minits below it.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import blas  # noqa: E402

blas.unset_coretype()  # before NumPy loads OpenBLAS
import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
import minits as mt  # noqa: E402
from minits import fast  # noqa: E402
from minits.fast import blocking, split  # noqa: E402
from minits.fast.normalization import backward_without_input_grad  # noqa: E402

BATCH = 128
LR = 0.01
WARMUP = 10
BLOCK = 10  # steps per timed block (time_row)
LEAD_IN = 2  # untimed steps before each block (time_row)
CLOCK = time.perf_counter  # --clock cpu: time.process_time

# name -> (minits builder, input shape per sample, number of classes)
MODELS = {
    "mlp": (lambda: mt.models.mlp([784, 128, 10]), (1, 28, 28), 10),
    "lenet5 K=10": (lambda: mt.models.lenet5(num_classes=10), (3, 32, 32), 10),
    "lenet5 K=100": (lambda: mt.models.lenet5(num_classes=100), (3, 32, 32), 100),
}


# --- the minits step -----------------------------------------------------------------------------

def cross_entropy(X, y):
    """Mean softmax cross-entropy, Eq. (4), and its gradient.

    X: logits (N, K); y: labels (N,) -> (loss, dX (N, K)), dX = (softmax(X) - onehot(y)) / N.
    The log-softmax subtracts each row's maximum first, so exp never overflows.
    """
    n = len(y)
    z = X - X.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss = -logp[np.arange(n), y].mean()
    dX = np.exp(logp)
    dX[np.arange(n), y] -= 1
    dX /= n
    return loss, dX


def minits_step(model, x, y):
    """forward, loss, backward (no gradient for the data where the model can skip it: the
    fast one), SGD: alpha -= lr * grad, in place."""
    X = model.forward(x)
    loss, dX = cross_entropy(X, y)
    backward_without_input_grad(model, dX)
    for layer in model.linear_layers():
        for name, p in layer.params.items():
            p -= LR * layer.grads[name]
    return loss


# --- the PyTorch step ----------------------------------------------------------------------------

def torch_model(name, num_classes):
    import torch.nn as nn

    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 128, bias=False), nn.ReLU(),
                             nn.Linear(128, 10, bias=False))
    return nn.Sequential(
        nn.Conv2d(3, 6, 5, bias=False), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, bias=False), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120, bias=False), nn.ReLU(),
        nn.Linear(120, num_classes, bias=False),
    )


def make_torch_step(name, num_classes):
    import torch
    import torch.nn.functional as F

    net = torch_model(name, num_classes)
    opt = torch.optim.SGD(net.parameters(), lr=LR)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


# --- timing --------------------------------------------------------------------------------------

def batches(shape, num_classes, count=4, seed=0):
    """A few fixed random batches (x float32 (128, *shape), y int64 (128,)), cycled through."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((BATCH, *shape), dtype=np.float32),
             rng.integers(0, num_classes, BATCH)) for _ in range(count)]


def summary(times):
    """Median and interquartile range of a list of seconds, in milliseconds."""
    q1, med, q3 = np.percentile(np.array(times) * 1e3, [25, 50, 75])
    return med, q3 - q1


def time_row(name, threads, repeats, torch, block=BLOCK):
    """Median step times of minits (fast, plain) and torch for one model, in blocks.

    Each framework runs `block` steps back to back with its thread pool warm, timed as
    one block; the frameworks' blocks alternate (and which one goes first alternates),
    so a busy machine slows all of them alike. Steps are not interleaved one by one:
    with more than one thread, OpenBLAS's pool and PyTorch's OpenMP pool (which spins
    after each parallel region) would then fight over the same cores on every switch,
    and PyTorch's 2-thread step measured slower than its 1-thread one. Each block starts
    with LEAD_IN untimed steps: a pool the previous block used keeps spinning for a while
    after its last call (OpenBLAS's worker threads for about 2**28 cycles, PyTorch's
    OpenMP threads too) and would slow the first steps of whoever comes next. Returns, per
    framework, the median over blocks of the time per step, and the interquartile
    range over blocks (ms).
    """
    build, shape, k = MODELS[name]
    data = batches(shape, k)
    model = fast.convert(build(), threads=threads)  # the fast twin, on `threads` threads
    plain_model = build()
    floor, _ = product_step(model, (BATCH, *shape))
    steps = {"minits": lambda i: minits_step(model, *data[i % len(data)]),
             "plain": lambda i: minits_step(plain_model, *data[i % len(data)]),
             "products": lambda i: floor()}
    if torch is not None:
        torch.set_num_threads(threads)
        tstep = make_torch_step(name.split()[0], k)
        tdata = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in data]
        steps["torch"] = lambda i: tstep(*tdata[i % len(tdata)])
    for step in steps.values():  # warm-up: caches, allocator, thread pools
        for i in range(WARMUP):
            step(i)
    blocks = max(1, -(-repeats // block))
    times = {key: [] for key in steps}
    order = list(steps)
    for b in range(blocks):
        order.reverse()  # alternate who goes first, so nobody always runs on a warm cache
        for key in order:
            for i in range(LEAD_IN):  # the previous framework's pool winds down meanwhile
                steps[key](i)
            t0 = CLOCK()
            for i in range(b * block, (b + 1) * block):
                steps[key](i)
            times[key].append((CLOCK() - t0) / block)
    return {key: summary(t) for key, t in times.items()}


def run_table(thread_counts, repeats):
    torch = import_torch()
    if torch is None:
        print("torch is not importable: printing minits times only")
    block = min(BLOCK, repeats)
    blocks = -(-repeats // block)
    print(blas.describe())
    print(f"one training step, batch {BATCH}, float32, bias-free; {blocks} blocks of {block} "
          "steps per framework: median over blocks of the ms per step [IQR]")
    header = (f"{'model':<14}{'threads':>8}{'minits ms':>18}{'torch ms':>18}{'ratio':>8}"
              f"{'products':>10}{'ratio':>7}{'plain ms':>18}{'plain ratio':>12}")
    print(header)
    print("-" * len(header))
    for threads in thread_counts:
        # BLAS's threads; minits' own (the batch split of FastSequential) and torch's are
        # set in time_row
        with threadpool_limits(limits=threads):
            for name in MODELS:
                print(format_row(name, threads, time_row(name, threads, repeats, torch, block)),
                      flush=True)


def format_row(name, threads, row):
    """One line of the table; ratios to torch's median when torch ran."""
    tmed = row["torch"][0] if "torch" in row else None

    def cell(key, width=18):
        med, iqr = row[key]
        return f"{med:>{width - 8}.2f} [{iqr:5.2f}]"

    def ratio(key, width):
        return f"{row[key][0] / tmed:>{width}.2f}" if tmed else f"{'':>{width}}"

    torch_cell = cell("torch") if tmed else f"{'':>18}"
    return (f"{name:<14}{threads:>8}{cell('minits')}{torch_cell}{ratio('minits', 8)}"
            f"{row['products'][0]:>10.2f}{ratio('products', 7)}{cell('plain')}"
            f"{ratio('plain', 12)}")


# --- per-layer profile ---------------------------------------------------------------------------

def label(layer):
    """A short name for a table row: Conv2d(3->6, 5x5), MaxPool2d(2), ReLU, ..."""
    name = type(layer).__name__
    if hasattr(layer, "out_channels"):
        k = layer.kernel_size
        return f"{name}({layer.in_channels}->{layer.out_channels}, {k}x{k})"
    if hasattr(layer, "out_features"):
        return f"{name}({layer.in_features}->{layer.out_features})"
    if hasattr(layer, "kernel_size"):
        return f"{name}({layer.kernel_size})"
    return name


def profile(repeats, threads):
    """Median forward and backward time of every layer in one lenet5 (K = 10) step.

    Runs the step as FastSequential does, by hand: the batch split into its chunks
    (minits/fast/split.py), each chunk's replica layers in the order forward
    runs them (schedule(): a ReLU before a MaxPool2d runs after it), backward in
    reverse without an input gradient for the first layer; a layer's time is summed
    over the chunks, which run one after the other here (BLAS on `threads` threads
    when the batch is not split). Also times the loss, the sum of the chunks'
    gradients and the SGD update.
    """
    build, shape, k = MODELS["lenet5 K=10"]
    model = fast.convert(build(), threads=threads)
    data = batches(shape, k)
    order = model.schedule()
    first = next(i for i in order if model.layers[i].params)
    chunks = split.split_count(model.layers, BATCH)
    bounds = split.chunk_bounds(BATCH, chunks)
    fwd, bwd = {i: [] for i in order}, {i: [] for i in order}
    other = {"loss": [], "gradient sums": [], "sgd update": [], "whole step": []}

    def timed(record, i, call, *args, **kwargs):
        t0 = CLOCK()
        out = call(*args, **kwargs)
        record[i][-1] += CLOCK() - t0
        return out

    with threadpool_limits(limits=threads if chunks == 1 else 1):
        for r in range(WARMUP + repeats):
            x, y = data[r % len(data)]
            for t in (*fwd.values(), *bwd.values()):
                t.append(0.0)
            t_start = CLOCK()
            kept = split.replicas(model, chunks)
            parts = []
            for layers, (a, b) in zip(kept, bounds, strict=True):
                out = x[a:b]
                for i in order:
                    out = timed(fwd, i, layers[i].forward, out)
                parts.append(out)
            t0 = CLOCK()
            _, d = cross_entropy(np.concatenate(parts), y)
            other["loss"].append(CLOCK() - t0)
            for layers, (a, b) in zip(kept, bounds, strict=True):
                dc = d[a:b]
                for i in reversed(order[order.index(first):]):
                    dc = timed(bwd, i, layers[i].backward, dc, input_grad=i != first)
            t0 = CLOCK()
            for j, layer in enumerate(model.layers):
                for name, grad in layer.grads.items():
                    np.copyto(grad, kept[0][j].grads[name])
                    for chunk in kept[1:]:
                        grad += chunk[j].grads[name]
            other["gradient sums"].append(CLOCK() - t0)
            t0 = CLOCK()
            for layer in model.linear_layers():
                for name, p in layer.params.items():
                    p -= LR * layer.grads[name]
            other["sgd update"].append(CLOCK() - t0)
            other["whole step"].append(CLOCK() - t_start)
            if r < WARMUP:  # warm-up step: forget its times
                for t in (*fwd.values(), *bwd.values(), *other.values()):
                    t.clear()
    layers = model.layers

    def ms(times):
        return statistics.median(times) * 1e3 if times else 0.0

    print(blas.describe())
    print(f"lenet5 K=10, batch {BATCH} in {chunks} chunks, float32: median of {repeats} "
          "steps, ms")
    print(f"{'layer (in the order run)':<32}{'forward':>9}{'backward':>10}{'total':>9}")
    total_f = total_b = 0.0
    for i in order:
        f, b = ms(fwd[i]), ms(bwd[i])
        total_f, total_b = total_f + f, total_b + b
        print(f"{i:>2} {label(layers[i]):<29}{f:>9.2f}{b:>10.2f}{f + b:>9.2f}")
    print(f"{'sum of layers':<32}{total_f:>9.2f}{total_b:>10.2f}{total_f + total_b:>9.2f}")
    for name, t in other.items():
        print(f"{name:<32}{'':>19}{ms(t):>9.2f}")


# --- the floor: the step's matrix products alone ------------------------------------------------

def products(model, input_shape):
    """The (m, k, n) shapes of every matrix product of one fast training step of model on a
    batch of input_shape, per chunk of the batch split (minits/fast/split.py):
    convolutions as FastConv2d multiplies (output blocking, input_grad), dense
    layers as x @ W.T, dout.T @ x and dout @ W; no input gradient for the first layer.
    model: a FastSequential."""
    N = input_shape[0]
    chunks = split.split_count(model.layers, N)
    shapes, shape, first = [], (N // chunks, *input_shape[1:]), True
    for layer in model.layers:
        out = layer.output_shape(shape) if hasattr(layer, "output_shape") else shape
        if isinstance(layer, mt.Conv2d):
            n, C, H, W = shape
            _, F, Ho, Wo = out
            k, s = layer.kernel_size, layer.stride
            b = min(layer.block or blocking.choose_block(F, k, s, Wo), Wo)
            K = C * k * blocking.blocked_width(k, s, b)
            cols = n * Ho * blocking.num_blocks(Wo, b)
            shapes += [(F * b, K, cols), (F * b, cols, K)]  # forward, dW
            if not first:  # input_grad: (C*k, F*k) @ (F*k, n*Ho*Wp)
                shapes.append((C * k, F * k, n * Ho * (W + 2 * layer.padding)))
            first = False
        elif isinstance(layer, mt.Linear):
            n, d_in, d_out = shape[0], layer.in_features, layer.out_features
            shapes += [(n, d_in, d_out), (d_out, n, d_in)] + ([] if first else [(n, d_out, d_in)])
            first = False
        elif isinstance(layer, mt.Flatten):
            out = (shape[0], int(np.prod(shape[1:])))
        shape = out
    return shapes * chunks


def product_step(model, input_shape):
    """A function running the matrix products of one fast step of model (products()) on
    random float32 operands of the same shapes, one BLAS thread each, chunk by chunk on
    minits' threads as the batch split runs them: what no rearrangement of the copies
    around them can beat. model: a FastSequential. Returns (step, number of products)."""
    shapes = products(model, input_shape)
    chunks = split.split_count(model.layers, input_shape[0])
    rng = np.random.default_rng(0)
    mats = [(rng.standard_normal((m, k), dtype=np.float32),
             rng.standard_normal((k, n), dtype=np.float32), np.empty((m, n), np.float32))
            for m, k, n in shapes]
    per_chunk = len(mats) // chunks

    def chunk(c):
        for a, b, out in mats[c * per_chunk:(c + 1) * per_chunk]:
            np.matmul(a, b, out=out)

    if chunks == 1:  # not split: the products run on BLAS's threads, as in the step
        return (lambda: chunk(0)), len(mats)
    return ((lambda: split.run_parallel(chunk, [(c,) for c in range(chunks)], model.threads)),
            len(mats))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=60, help="timed steps per row (default 60)")
    parser.add_argument("--threads", default="1,2",
                        help="comma-separated BLAS / torch thread counts (default 1,2)")
    parser.add_argument("--quick", action="store_true", help="5 steps per row: a smoke test")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: elapsed time (default); cpu: this process's CPU time, "
                             "steadier on a busy machine, meaningful with 1 thread only")
    parser.add_argument("--profile", action="store_true",
                        help="per-layer forward/backward times of one lenet5 step instead")
    args = parser.parse_args(argv)
    try:
        thread_counts = [int(t) for t in args.threads.split(",")]
    except ValueError:
        parser.error(f"--threads must be comma-separated integers, got {args.threads!r}")
    if min(thread_counts) < 1 or args.repeats < 1:
        parser.error("--threads and --repeats must be >= 1")
    repeats = 5 if args.quick else args.repeats
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.profile:
        for threads in thread_counts:
            profile(repeats, threads)
    else:
        run_table(thread_counts, repeats)


if __name__ == "__main__":
    main()
