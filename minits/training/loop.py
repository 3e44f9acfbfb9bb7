"""One training run, the protocol of Sec. 3.2: plain SGD on batches of 128, tau = 0.1,
Gaussian alpha^0 from a seed, R1 = R(alpha^0), R2 = 10 R1.

One data path per step (README.md#where-things-are): batch -> train_step: loss.forward
(model.forward inside) -> loss.backward (model.backward inside) -> SGD step, Eq. (14).
`train` only orchestrates: batches, records, evaluations, checkpoints, the end.
"""

import math
import os
import sys
import time

import numpy as np

from .. import optim
from ..scale import scale_R
from . import checkpoint, evaluate
from .build import build_loss, build_model, loss_scales, second_case_fraction
from .history import History, is_evaluation
from .results import RunResult

_ORDER_TAG = 0xB47C4  # keeps the batch-order stream apart from the initialisation stream


def steps_per_epoch(n, batch_size):
    """Full batches per pass over n objects: the last partial batch is dropped, so
    every step sees exactly batch_size objects (one epoch = #TR / #B steps, Sec. 3.2)."""
    if n < batch_size:
        raise ValueError(f"batch_size {batch_size} is larger than the training set ({n} "
                         f"objects): a step needs a full batch; choose a batch size of at "
                         f"most {n}" if n else "the training set holds no objects")
    return n // batch_size


def epoch_order(seed, epoch, n):
    """The order of the n training objects in `epoch`: a permutation drawn from (seed, epoch).

    A pure function of its arguments, so a run resumed at any iteration of any epoch
    sees exactly the batches an uninterrupted run would. Returns int64 (n,).
    """
    return np.random.default_rng([int(seed), int(epoch), _ORDER_TAG]).permutation(n)


def train_step(model, loss, sgd, x, y):
    """One SGD step on the batch B_n = (x, y): the batch loss, its gradient, the update.

    model: a Sequential (minits.models); loss: a loss of minits.losses; sgd: optim.SGD
    x: inputs (B, C, H, W) or (B, D) in the model's dtype; y: labels (B,) ints
    Returns the batch loss L_hat_n = (1/B) sum_s L(alpha, s), Eq. (5), as a float, taken
    before the update. Afterwards loss.last describes the forward (accuracy, branches,
    the scales it used) and alpha and the loss's scales have moved, Eq. (6), (14), (18).
    """
    value = loss.forward(model, x, y)  # Eq. (5); model.forward inside
    loss.backward()                    # dL/dalpha and dL/dR (Eq. (15)), model.backward inside
    sgd.step(model, loss)              # Eq. (6), (14), (18)
    return float(value)


def _stderr(message):
    print(message, file=sys.stderr, flush=True)


def train(config, train_set, test_set, *, checkpoint_path=None, checkpoint_every=None,
          stop=None, max_iterations=None, progress=None, log=_stderr, eval_chunk=500,
          test_inputs=None, threads=1):
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
    log: callable(str) for loud messages (a scale <= 0, a diverged run).
    test_inputs: the test images as floats, evaluate.to_inputs(test_set, slice(None),
        dtype, config.standardize), when the caller keeps them for several runs (a
        sweep's worker process does); None: evaluate.held_inputs converts them here,
        once for the run, when they fit its memory budget (MNIST: 31 MB), else every
        evaluation converts chunk by chunk (the same numbers).
    threads: how many threads the fast network may spread a batch over (build_model;
        the numbers do not depend on it).

    The run computes with config.impl ("plain" | "fast": build_model, build_loss).
    A run whose loss or parameters become inf or NaN (divergence) stops there, says so
    through `log`, and ends completed with NaN measures: running on cannot bring it back.
    Returns a RunResult; result.completed is False when the run stopped early.
    """
    started = time.perf_counter()
    run = _Run(config, train_set, test_set, checkpoint_path, test_inputs, eval_chunk, log,
               threads)
    T = config.iterations
    if run.t == 0:
        run.evaluate()
    while run.t < T:
        run.step()
        done = run.t >= T or run.diverged
        if is_evaluation(run.t, T, config.eval_every) and not done:
            run.evaluate()  # the evaluation at T is part of the final measures
        if progress is not None:  # a diverged run skips the steps it had left
            progress(1 + (T - run.t if run.diverged else 0))
        if done:
            break
        if (stop is not None and stop.is_set()) or (max_iterations is not None
                                                    and run.t >= max_iterations):
            run.save(checkpoint_path, started)
            return RunResult(config, run.history, completed=False, iteration=run.t)
        if run.t % run.per_epoch == 0 or (checkpoint_every and run.t % checkpoint_every == 0):
            run.save(checkpoint_path, started)
    return run.finish(started)


class _Run:
    """One run while it trains: network, loss, SGD, history and the iteration t."""

    def __init__(self, config, train_set, test_set, checkpoint_path, test_inputs, chunk, log,
                 threads):
        if config.superclass and getattr(train_set, "coarse_labels", None) is None:
            raise ValueError(f"data set {train_set.name!r} has no coarse labels: "
                             "super-class measures (Eq. (20)) need them")
        self.config, self.train_set, self.test_set = config, train_set, test_set
        self.dtype, self.chunk, self.log = np.dtype(config.dtype), chunk, log
        self.per_epoch = steps_per_epoch(len(train_set.labels), config.batch_size)
        self.model = build_model(config, train_set.num_classes, train_set.images.shape[1:],
                                 threads)
        self.loss = build_loss(config, scale_R(self.model))
        # the run reports a scale <= 0 itself, once (_check_scales), not at every step
        self.sgd = optim.SGD(lr=config.lr, on_nonpositive_scale="ignore")
        self.t, self.history = 0, History(config.iterations, config.eval_every)
        if checkpoint_path is not None and os.path.exists(checkpoint_path):
            self.t, self.history = checkpoint.load(checkpoint_path, config, self.model, self.loss)
        self.elapsed_before = self.history.elapsed  # seconds of earlier (interrupted) sessions
        self.test_inputs = _test_inputs(test_set, test_inputs, self.dtype, config.standardize)
        self.order_epoch, self.order = -1, None
        self.diverged = False

    def batch(self):
        """(x, y) of iteration t: batch i of the epoch's order (sorted: faster gather, same set)."""
        epoch, i = divmod(self.t, self.per_epoch)
        if epoch != self.order_epoch:
            self.order_epoch = epoch
            self.order = epoch_order(self.config.seed, epoch, len(self.train_set.labels))
        B = self.config.batch_size
        index = np.sort(self.order[i * B:(i + 1) * B])
        x = evaluate.to_inputs(self.train_set, index, self.dtype, self.config.standardize)
        return x, self.train_set.labels[index]

    def step(self):
        """train_step on the batch of iteration t, its records, the checks; then t += 1."""
        x, y = self.batch()
        # Eq. (4) on raw logits computes no R(alpha): the history's R is taken here, before
        # the step (the other losses report the R(alpha) they computed in loss.last.R_alpha)
        R_alpha = scale_R(self.model) if self.config.variant == "plain-ce" else None
        errors = _FloatingPointErrors()
        with np.errstate(over="call", invalid="call", divide="call", call=errors):
            value = train_step(self.model, self.loss, self.sgd, x, y)
        self._record(value, R_alpha)
        if errors.first is not None or not math.isfinite(value):
            self._check_divergence(value, errors.first)
        if not self.diverged:
            _check_scales(self.history, self.t, loss_scales(self.loss.params), self.config,
                          self.log)
        self.t += 1

    def _record(self, value, R_alpha):
        """The history of iteration t, from what the forward saw (loss.last)."""
        last = self.loss.last
        scales = loss_scales(last.scales)
        nan = np.nan
        self.history.record_step(
            self.t, batch_acc=last.accuracy, batch_loss=value,
            R_alpha=last.R_alpha if R_alpha is None else R_alpha,
            R1=scales.get("R1", nan), R2=scales.get("R2", nan), Rs=scales.get("Rs", nan),
            R=scales.get("R", nan),
            frac_second=(second_case_fraction(self.loss) if self.config.eta is not None
                         else nan))

    def _check_divergence(self, value, numpy_error):
        """Stop the run when the loss, a parameter or a scale is inf or NaN (SGD cannot bring
        it back); a floating-point error whose numbers stayed finite is only reported."""
        what = _not_finite(value, self.model, self.loss)
        config = self.config
        where = f"{config.key} seed {config.seed}, iteration {self.t + 1}"
        if what is None:
            if self.log is not None:
                self.log(f"WARNING: {where}: floating-point {numpy_error} in a step whose "
                         "numbers stayed finite; the run goes on")
            return
        message = (f"WARNING: {where}: the run diverged ({what}"
                   + (f"; numpy: {numpy_error}" if numpy_error else "") + "): it stops here "
                   f"with NaN results; lower the learning rate (--lr, now {config.lr:g}) "
                   "(docs/decisions.md#D17)")
        self.diverged = True
        self.history.raise_alarm(self.t, message)
        if self.log is not None:
            self.log(message)

    def evaluate(self):
        """Test accuracy, cross-entropy and calibration errors after t steps (Sec. 3.2:
        every eval_every)."""
        measures = evaluate.quick_measures(self.model, self.loss, self.test_set, self.dtype,
                                           self.config.standardize, self.chunk,
                                           inputs=self.test_inputs)
        self.history.record_eval(self.t, **measures)

    def save(self, path, started):
        """The checkpoint after t steps (nothing without a path), with the time spent."""
        self.history.elapsed = self.elapsed_before + time.perf_counter() - started
        if path is not None:
            checkpoint.save(path, self.config, self.t, self.model, self.loss, self.history)

    def finish(self, started):
        """The completed run: every measure of Sec. 3.1 on the training and test sets."""
        config, T = self.config, self.config.iterations
        if self.diverged:  # NaN: the model is not run on parameters that are not finite
            train_measures = evaluate.diverged_measures(self.train_set, config.superclass)
            test_measures = evaluate.diverged_measures(self.test_set, config.superclass, True)
        else:
            train_measures = evaluate.full_measures(
                self.model, self.loss, self.train_set, self.dtype, config.standardize,
                superclass=config.superclass, chunk=self.chunk)
            test_measures = evaluate.full_measures(
                self.model, self.loss, self.test_set, self.dtype, config.standardize,
                superclass=config.superclass, per_object=True, chunk=self.chunk,
                inputs=self.test_inputs)
        # the test evaluation after the last step: the same probabilities quick_measures
        # would compute, so the same measures (NaN for a diverged run)
        self.history.record_eval(T, test_acc=test_measures["accuracy"],
                                 test_loss=test_measures["nll"], test_ece=test_measures["ece"],
                                 test_mce=test_measures["mce"])
        self.history.elapsed = self.elapsed_before + time.perf_counter() - started
        final_scales = loss_scales(self.loss.params)
        final_scales["R_alpha"] = np.nan if self.diverged else scale_R(self.model)
        return RunResult(config, self.history, completed=True, iteration=T,
                         train=train_measures, test=test_measures, final_scales=final_scales)


def _test_inputs(test_set, given, dtype, standardize):
    """The converted test set: `given` (checked), or evaluate.held_inputs (None over budget)."""
    if given is None:  # the test set is evaluated at every evaluation point
        return evaluate.held_inputs(test_set, dtype, standardize)
    if given.shape != test_set.images.shape or given.dtype != dtype:
        raise ValueError(f"test_inputs must be the test images as {dtype} of shape "
                         f"{test_set.images.shape}, got {given.dtype} {given.shape}")
    return given


class _FloatingPointErrors:
    """numpy's floating-point errors of one step (np.errstate(call=...)): remembered here
    instead of printed as RuntimeWarnings, so the run can say what they mean."""

    def __init__(self):
        self.first = None

    def __call__(self, kind, flag):
        if self.first is None:
            self.first = kind


def _not_finite(value, model, loss):
    """What is inf or NaN after a step (the loss, alpha or a scale), or None when all is finite."""
    if not math.isfinite(value):
        return f"the batch loss is {value}"
    # the loss on alpha_hat may stay finite while the raw logits X(alpha) overflow; then the
    # confidence that splits Eq. (13) is inf or NaN and the split means nothing
    delta = getattr(loss.last, "confidence", None)
    if delta is not None and not np.isfinite(delta).all():
        return "the confidence dX that splits the batch is inf or NaN (the raw logits overflow)"
    for l, layer in enumerate(model.linear_layers(), start=1):
        for name, p in layer.params.items():
            if not np.isfinite(p).all():
                return f"alpha{l} ({name}) holds inf or NaN after the SGD step"
    bad = {k: v for k, v in loss_scales(loss.params).items() if not math.isfinite(v)}
    return ", ".join(f"{k} = {v}" for k, v in bad.items()) or None


def _check_scales(history, t, scales, config, log):
    """docs/decisions.md#D17: a scale <= 0 flips the logits; say so loudly, once per run."""
    bad = {k: v for k, v in scales.items() if not (v > 0 and math.isfinite(v))}
    if not bad or history.scale_alarm_iteration >= 0:
        return
    what = ", ".join(f"{k} = {v:.4g}" for k, v in bad.items()) + " <= 0 or not finite"
    message = (f"WARNING: {config.key} seed {config.seed}: {what} after iteration {t + 1}; "
               "the results of this run are not meaningful (docs/decisions.md#D17)")
    history.raise_alarm(t, message)
    if log is not None:
        log(message)
