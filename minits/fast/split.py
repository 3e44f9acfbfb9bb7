"""Batch split: FastSequential runs a convolutional network's batch in chunks.

Why. Most of a LeNet-5 step is not arithmetic but copies and element-wise work
(im2col, the input gradient, pooling), which NumPy runs on one core however many
threads BLAS has. Splitting the batch into chunks and giving each chunk its own
copy of the network's state lets several threads run the *whole* forward and
backward at once (NumPy releases the GIL in copies, ufuncs and BLAS calls).

How. A batch of N samples is cut into S = split_count(layers, N) consecutive
chunks. Chunk c runs the layers' own fast forward and backward on replicas: each
replica shares its layer's params (so an SGD step on the layer is seen at once)
but has its own grads, cache and work arrays. After backward the layer's
gradient is the sum of the chunks' gradients, added in chunk order:

    dW = (((dW_0 + dW_1) + dW_2) + ...)

The logits and dL/dx are the chunks' results side by side. The layers themselves
keep no cache of a split forward: its backward goes through the model
(FastSequential.backward), not through one of its layers. S depends only on the
layers and N, never on the number of threads (FastSequential's `threads`), and
every chunk calls BLAS on one thread, so every thread count gives the same numbers,
bit for bit; against the unsplit batch (the plain Sequential) only the gradients'
summation order differs (rounding).

Which networks. Only networks of minits' own fast layer types with at least one
FastConv2d are split, and only batches of at least 2 * MIN_CHUNK samples: a dense
network is one GEMM per layer, which BLAS already spreads over its threads, and
splitting it only adds Python overhead (mlp [784, 128, 10]: about 1.3x slower
per step in 4 chunks; docs/performance.md).
"""

import contextvars
import copy
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .conv import FastConv2d
from .dense import FastFlatten, FastLinear, FastReLU
from .pool import FastMaxPool2d
from .schedule import layers_backward

MAX_SPLIT = 4  # chunks per batch: 1, 2 or 4 threads share them evenly
MIN_CHUNK = 32  # samples per chunk at least
SPLITTABLE = (FastConv2d, FastLinear, FastMaxPool2d, FastReLU, FastFlatten)
_OWN = ("grads", "_work", "_cache")  # what a replica does not share


def split_count(layers, batch_size):
    """S, the number of chunks FastSequential cuts a batch of batch_size into.

    1 (no split) unless every layer is exactly one of minits' fast layer types (a
    subclass may keep state a replica would share) and one is a FastConv2d; then
    min(MAX_SPLIT, batch_size // MIN_CHUNK), at least 1.
    """
    if not all(type(layer) in SPLITTABLE for layer in layers):
        return 1
    if not any(type(layer) is FastConv2d for layer in layers):
        return 1
    return max(1, min(MAX_SPLIT, batch_size // MIN_CHUNK))


def chunk_bounds(batch_size, chunks):
    """[(start, stop), ...]: chunks consecutive slices of nearly equal size
    (np.array_split's sizes: the first batch_size % chunks are one longer)."""
    size, longer = divmod(batch_size, chunks)
    starts = [c * size + min(c, longer) for c in range(chunks + 1)]
    return list(zip(starts[:-1], starts[1:], strict=True))


def replicas(model, chunks):
    """The replica layers of each chunk: [[layer replica, ...] for c in range(chunks)].

    Kept on the model and reused (their work arrays are what makes them cheap);
    every call refreshes what replicas share with their layer (params and settings),
    so a layer changed in place or rebound since is seen.
    """
    layers = list(model.layers)
    if getattr(model, "_replicated", None) != layers:  # a layer added, removed or replaced
        model._replicated, model._replicas = layers, []
    kept = model._replicas
    while len(kept) < chunks:
        kept.append([_new_replica(layer) for layer in model.layers])
    for chunk in kept[:chunks]:
        for layer, replica in zip(model.layers, chunk, strict=True):
            shared = {k: v for k, v in layer.__dict__.items() if k not in _OWN}
            replica.__dict__.update(shared)
            if replica.grads.keys() != layer.grads.keys() or any(
                    replica.grads[k].shape != g.shape or replica.grads[k].dtype != g.dtype
                    for k, g in layer.grads.items()):
                replica.grads = {k: np.empty_like(g) for k, g in layer.grads.items()}
    return kept[:chunks]


def _new_replica(layer):
    replica = copy.copy(layer)
    replica.grads = {k: np.empty_like(g) for k, g in layer.grads.items()}
    replica._work = {}
    replica._cache = None
    return replica


def split_forward(model, order, x, chunks):
    """The logits of x, chunk by chunk: forward of every replica in `order`.

    Inputs:
        model: the FastSequential; order: its schedule (pool_first_order)
        x: (N, ...) the batch; chunks: S from split_count
    Returns:
        X: (N, K), chunk c's logits in rows chunk_bounds(N, S)[c]
    """
    bounds = chunk_bounds(len(x), chunks)

    def forward(layers, start, stop):
        out = x[start:stop]
        for i in order:
            out = layers[i].forward(out)
        return out

    parts = run_parallel(forward, [(layers, *b) for layers, b in
                                   zip(replicas(model, chunks), bounds, strict=True)],
                         model.threads)
    return np.concatenate(parts)


def split_backward(model, order, dX, chunks, input_grad):
    """Backward of each chunk on its replicas (layers_backward, the reverse of
    `order`), then every layer's grads = the sum over chunks in chunk order.

    Inputs:
        model, order, chunks: as split_forward was given; dX: dL/dX, (N, K)
    Returns:
        dL/dx (N, ...), the chunks' side by side, or None when not input_grad
    """
    bounds = chunk_bounds(len(dX), chunks)
    kept = replicas(model, chunks)

    def backward(layers, start, stop):
        return layers_backward(layers, order, dX[start:stop], input_grad)

    parts = run_parallel(backward, [(layers, *b) for layers, b in zip(kept, bounds, strict=True)],
                         model.threads)
    for j, layer in enumerate(model.layers):
        for name, grad in layer.grads.items():
            np.copyto(grad, kept[0][j].grads[name])
            for chunk in kept[1:]:
                grad += chunk[j].grads[name]
    return np.concatenate(parts) if input_grad else None


# --- the thread pool -----------------------------------------------------------------------------

_pool = None
_pool_key = None  # (process id, threads) the pool was made for: a forked child makes its own


def run_parallel(task, args, threads):
    """[task(*a) for a in args], on `threads` threads (at most one per task).

    BLAS is held at one thread meanwhile, whatever the number of threads: n threads
    then use n cores, and the numbers cannot depend on n (a multi-threaded BLAS may
    round a product differently from a single-threaded one). Each task runs in a copy
    of the caller's context, so np.errstate (the training loop catches overflow with
    it) holds in the threads too.
    """
    threads = min(threads, len(args))
    with _blas_limit():
        if threads <= 1:
            return [task(*a) for a in args]
        futures = [_thread_pool(threads).submit(contextvars.copy_context().run, task, *a)
                   for a in args]
        return [f.result() for f in futures]


def _thread_pool(threads):
    """The pool of `threads` threads, made once per process and size."""
    global _pool, _pool_key
    if _pool_key != (os.getpid(), threads):
        _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="minits")
        _pool_key = (os.getpid(), threads)
    return _pool


_controller = None


def _blas_limit():
    """A context in which BLAS runs on one thread (threadpoolctl, made once)."""
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")
