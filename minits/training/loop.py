"""One training run, the protocol of Sec. 3.2: plain SGD on batches of 128, tau = 0.1,
Gaussian alpha^0 from a seed, R1 = R(alpha^0), R2 = 10 R1.

One data path per step (README.md#where-things-are): batch -> loss.forward (model.forward
inside) -> loss.backward (model.backward inside) -> SGD step, Eq. (14).
"""

import math
import os
import sys
import time

import numpy as np

from .. import optim
from ..scale import scale_R
from . import checkpoint, evaluate
from .build import batch_accuracy, build_loss, build_model, loss_scales, well_classified_fraction
from .history import History, evaluation_iterations
from .results import RunResult

_ORDER_TAG = 0xB47C4  # keeps the batch-order stream apart from the initialisation stream


def steps_per_epoch(n, batch_size):
    """Full batches per pass over n objects: the last partial batch is dropped, so
    every step sees exactly batch_size objects (one epoch = #TR / #B steps, Sec. 3.2)."""
    if n < batch_size:
        raise ValueError(f"batch_size {batch_size} is larger than the training set ({n} objects)")
    return n // batch_size


def epoch_order(seed, epoch, n):
    """The order of the n training objects in `epoch`: a permutation drawn from (seed, epoch).

    A pure function of its arguments, so a run resumed at any iteration of any epoch
    sees exactly the batches an uninterrupted run would. Returns int64 (n,).
    """
    return np.random.default_rng([int(seed), int(epoch), _ORDER_TAG]).permutation(n)


def _stderr(message):
    print(message, file=sys.stderr, flush=True)


def train(config, train_set, test_set, *, checkpoint_path=None, checkpoint_every=None,
          stop=None, max_iterations=None, progress=None, log=_stderr, eval_chunk=500,
          test_inputs=None):
    """Train one run of `config`; resume from `checkpoint_path` when it exists.

    train_set, test_set: objects with .images uint8 (n, C, H, W), .labels int (n,),
        .num_classes, .max_value, .name (and .coarse_labels, .fine_to_coarse for
        config.superclass), e.g. minits.datasets.load(...).
    checkpoint_path: where to save the state; saved every epoch, every
        `checkpoint_every` iterations (if given), and when stopping early.
    stop: object with is_set() (e.g. threading.Event), polled every iteration: when
        set, the run saves a checkpoint and returns unfinished.
    max_iterations: stop (with a checkpoint) once this many steps are done.
    progress: callable(k) told after every k finished steps.
    log: callable(str) for loud messages (scale <= 0, non-finite loss).

    test_inputs: the test images as floats, evaluate.to_inputs(test_set, slice(None),
        dtype, config.standardize), when the caller keeps them for several runs (a
        sweep's worker process does); None: evaluate.held_inputs converts them here,
        once for the run, when they fit its memory budget (MNIST: 31 MB), else every
        evaluation converts chunk by chunk (the same numbers).

    Returns a RunResult; result.completed is False when the run stopped early.
    """
    started = time.perf_counter()
    dtype = np.dtype(config.dtype)
    if config.superclass and getattr(train_set, "coarse_labels", None) is None:
        raise ValueError(f"data set {train_set.name!r} has no coarse labels: "
                         "super-class measures (Eq. (20)) need them")
    n = len(train_set.labels)
    per_epoch = steps_per_epoch(n, config.batch_size)
    model = build_model(config, train_set.num_classes, train_set.images.shape[1:])
    loss = build_loss(config, scale_R(model))
    sgd = optim.SGD(lr=config.lr)

    T = config.iterations
    t = 0
    history = History(T, config.eval_every)
    if checkpoint_path is not None and os.path.exists(checkpoint_path):
        t, history = checkpoint.load(checkpoint_path, config, model, loss)
    elapsed_before = history.elapsed  # seconds spent in earlier (interrupted) sessions
    eval_points = set(evaluation_iterations(T, config.eval_every).tolist())
    if test_inputs is None:  # the test set is evaluated at every point of eval_points
        test_inputs = evaluate.held_inputs(test_set, dtype, config.standardize)
    elif test_inputs.shape != test_set.images.shape or test_inputs.dtype != dtype:
        raise ValueError(f"test_inputs must be the test images as {dtype} of shape "
                         f"{test_set.images.shape}, got {test_inputs.dtype} {test_inputs.shape}")
    if t == 0:
        _evaluate(history, 0, model, loss, test_set, test_inputs, config, eval_chunk)

    def save(step):
        history.elapsed = elapsed_before + time.perf_counter() - started
        if checkpoint_path is not None:
            checkpoint.save(checkpoint_path, config, step, model, loss, history)

    order_epoch, order = -1, None
    B = config.batch_size
    while t < T:
        epoch, i = divmod(t, per_epoch)
        if epoch != order_epoch:
            order_epoch, order = epoch, epoch_order(config.seed, epoch, n)
        index = np.sort(order[i * B:(i + 1) * B])  # sorted: faster gather, same set
        x = evaluate.to_inputs(train_set, index, dtype, config.standardize)
        y = train_set.labels[index]

        scales = loss_scales(loss)  # the scales this step's loss uses
        value = float(loss.forward(model, x, y))
        R = getattr(loss.last, "R", None)  # R(alpha) of this batch, when the loss computed it
        if R is None:
            R = scale_R(model)
        history.record_step(t, batch_acc=batch_accuracy(loss), batch_loss=value, R=R,
                            R1=scales.get("R1", np.nan), R2=scales.get("R2", np.nan),
                            Rs=scales.get("Rs", np.nan),
                            frac_well=(well_classified_fraction(loss)
                                       if config.eta is not None else np.nan))
        loss.backward()
        sgd.step(model, loss)
        _check_scales(history, t, value, loss_scales(loss), config, log)
        t += 1

        if t in eval_points and t < T:  # the evaluation at T is part of the final measures
            _evaluate(history, t, model, loss, test_set, test_inputs, config, eval_chunk)
        if progress is not None:
            progress(1)
        if t < T:
            if (stop is not None and stop.is_set()) or (max_iterations is not None
                                                        and t >= max_iterations):
                save(t)
                return RunResult(config, history, completed=False, iteration=t)
            if t % per_epoch == 0 or (checkpoint_every and t % checkpoint_every == 0):
                save(t)

    train_measures = evaluate.full_measures(model, loss, train_set, dtype, config.standardize,
                                            superclass=config.superclass, chunk=eval_chunk)
    test_measures = evaluate.full_measures(model, loss, test_set, dtype, config.standardize,
                                           superclass=config.superclass, per_object=True,
                                           chunk=eval_chunk, inputs=test_inputs)
    # the test evaluation after the last step: the same probabilities quick_measures
    # would compute, so the same accuracy and cross-entropy (NaN for a diverged run)
    history.record_eval(T, test_measures["accuracy"], test_measures["nll"])
    history.elapsed = elapsed_before + time.perf_counter() - started
    final_scales = loss_scales(loss)
    final_scales["R"] = scale_R(model)
    return RunResult(config, history, completed=True, iteration=T, train=train_measures,
                     test=test_measures, final_scales=final_scales)


def _evaluate(history, t, model, loss, test_set, test_inputs, config, chunk):
    acc, nll = evaluate.quick_measures(model, loss, test_set, np.dtype(config.dtype),
                                       config.standardize, chunk, inputs=test_inputs)
    history.record_eval(t, acc, nll)


def _check_scales(history, t, value, scales, config, log):
    """Paper-notes §14: a scale <= 0 flips the logits; say so loudly, once per run."""
    bad = {k: v for k, v in scales.items() if not (v > 0 and math.isfinite(v))}
    if not bad and math.isfinite(value):
        return
    if history.scale_alarm_iteration >= 0:
        return
    what = (", ".join(f"{k} = {v:.4g}" for k, v in bad.items()) + " <= 0 or not finite"
            if bad else f"loss = {value}")
    message = (f"WARNING: {config.key} seed {config.seed}: {what} after iteration {t + 1}; "
               "the results of this run are not meaningful (docs/decisions.md#D17)")
    history.raise_alarm(t, message)
    if log is not None:
        log(message)
