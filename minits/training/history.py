"""What one run records while it trains (Sec. 3.2: "accuracy for the batch used is
recorded at each iteration"), in arrays that grow with what is recorded.

Per iteration t = 0..T-1 (before the SGD step of iteration t):
    batch_acc   accuracy of the batch, Eq. (11) on the batch: #W_{0,B} / #B
    batch_loss  the mean loss of the batch
    R_alpha     R(alpha), the scale of the parameters, Eq. (9)
    R1, R2      the loss's scales of Eq. (13) (NaN where the loss has none)
    Rs          the separation of Eq. (17) (NaN where the loss has none)
    R           the first scale R of Eq. (17) as the loss used it: R(alpha^0) (fixed),
                the trained scale (trained) or R(alpha) (live), docs/decisions.md#D11
                (NaN for the other losses)
    frac_second fraction of the batch in the second case of Eq. (13)/(16)/(17),
                dX >= eta (NaN for losses without cases)
Per evaluation e (iterations 0, eval_every, 2*eval_every, ..., T):
    eval_iteration, test_acc, test_loss (cross-entropy of the test probabilities),
    test_ece, test_mce (calibration errors of the test probabilities, 15 bins:
    metrics.expected_calibration_error with norm "l1" and "max")
"""

import numpy as np

PER_ITERATION = ("batch_acc", "batch_loss", "R_alpha", "R1", "R2", "Rs", "R", "frac_second")
PER_EVALUATION = ("eval_iteration", "test_acc", "test_loss", "test_ece", "test_mce")

FORMAT = 2
"""The layout of the records in a run's checkpoint and results files (their "format"
entry). 2: R(alpha) is recorded as R_alpha, the R of Eq. (17) as R, and the fraction of
the batch in the second case as frac_second."""


def check_format(saved, path):
    """Refuse a checkpoint or results file (`saved`: its arrays) of another layout."""
    found = int(saved["format"]) if "format" in saved else 1
    if found != FORMAT:
        raise ValueError(f"{path} was written by another version of minits (file format "
                         f"{found}; this version reads format {FORMAT})")


def evaluation_iterations(iterations, eval_every):
    """Iterations after which the test set is evaluated: 0, k, 2k, ..., and always the last.

    Returns an int64 array, strictly increasing, starting at 0 and ending at `iterations`.
    """
    points = np.arange(0, iterations + 1, eval_every, dtype=np.int64)
    return points if points[-1] == iterations else np.append(points, np.int64(iterations))


def evaluation_count(iterations, eval_every):
    """len(evaluation_iterations(iterations, eval_every)), without making the array."""
    return iterations // eval_every + 1 + (iterations % eval_every != 0)


def is_evaluation(t, iterations, eval_every):
    """True when the test set is evaluated after iteration t (evaluation_iterations)."""
    return t == iterations or (0 <= t < iterations and t % eval_every == 0)


class History:
    """The per-iteration and per-evaluation records of one run.

    iterations: T; eval_every: interval. history[name] is the record of the whole run:
    length T (per iteration) or the number of evaluations, NaN where nothing has been
    recorded (yet), so a history restored from a checkpoint mid-run shows exactly what
    has been computed. Memory follows what is recorded, not T: the arrays grow (doubling)
    as the run goes, and a checkpoint holds the `steps` iterations and `evals`
    evaluations recorded so far (a run asked for 10^8 iterations does not hold 10^8
    entries per record from its first step).
    `scale_alarm` holds the first iteration at which a scale was <= 0
    (docs/decisions.md#D17) or a loss was not finite, with a message; None while all
    is well.
    """

    def __init__(self, iterations, eval_every):
        self.iterations, self.eval_every = int(iterations), int(eval_every)
        self.points = evaluation_count(self.iterations, self.eval_every)
        self.steps = 0  # iterations recorded: 0..steps-1 (the per-iteration records' length)
        self.evals = 0  # evaluations recorded (the per-evaluation records' length)
        self._per_step = {name: np.full(0, np.nan) for name in PER_ITERATION}
        self._per_eval = {name: np.full(0, np.nan) for name in PER_EVALUATION[1:]}
        self.scale_alarm_iteration = -1
        self.scale_alarm_message = ""
        self.elapsed = 0.0  # seconds of training so far, summed over resumed sessions

    def __getitem__(self, name):
        if name == "eval_iteration":
            return evaluation_iterations(self.iterations, self.eval_every)
        records, length = ((self._per_step, self.iterations) if name in self._per_step
                           else (self._per_eval, self.points))
        return _padded(records[name], length)

    @property
    def arrays(self):
        """Every record of the whole run: name -> ndarray (history[name])."""
        return {name: self[name] for name in (*PER_ITERATION, *PER_EVALUATION)}

    def record_step(self, t, **values):
        """Store the scalars of iteration t (names from PER_ITERATION)."""
        if not 0 <= t < self.iterations:
            raise IndexError(f"iteration {t} outside 0..{self.iterations - 1}")
        self.steps = max(self.steps, t + 1)
        _grow(self._per_step, self.steps, self.iterations)
        for name, value in values.items():
            self._per_step[name][t] = value

    def record_eval(self, iteration, **values):
        """Store the test measures taken after `iteration` SGD steps (names from
        PER_EVALUATION: test_acc, test_loss, test_ece, test_mce)."""
        if not is_evaluation(iteration, self.iterations, self.eval_every):
            raise ValueError(f"iteration {iteration} is not an evaluation point")
        index = self.points - 1 if iteration == self.iterations else iteration // self.eval_every
        self.evals = max(self.evals, index + 1)
        _grow(self._per_eval, self.evals, self.points)
        for name, value in values.items():
            self._per_eval[name][index] = value

    def raise_alarm(self, t, message):
        """Remember the first iteration where a scale went <= 0 or the loss went non-finite."""
        if self.scale_alarm_iteration < 0:
            self.scale_alarm_iteration = int(t)
            self.scale_alarm_message = str(message)

    def state(self, whole=True):
        """Arrays for saving: name -> ndarray. whole: every record at its full length
        (results files); False: only what has been recorded (checkpoints)."""
        if whole:
            out = {f"history_{k}": v for k, v in self.arrays.items()}
        else:
            out = {f"history_{k}": v[:self.steps] for k, v in self._per_step.items()}
            out["history_eval_iteration"] = self["eval_iteration"][:self.evals]
            out.update({f"history_{k}": v[:self.evals] for k, v in self._per_eval.items()})
        out["history_scale_alarm_iteration"] = np.int64(self.scale_alarm_iteration)
        out["history_scale_alarm_message"] = np.str_(self.scale_alarm_message)
        out["history_elapsed"] = np.float64(self.elapsed)
        return out

    @classmethod
    def from_state(cls, state, iterations, eval_every):
        """Rebuild from `state()` output (e.g. an open np.load archive), whole or not."""
        history = cls(iterations, eval_every)
        history.steps = _restore(history._per_step, state, history.iterations)
        history.evals = _restore(history._per_eval, state, history.points)
        points = np.asarray(state["history_eval_iteration"])
        if not np.array_equal(points, history["eval_iteration"][:history.evals]):
            raise ValueError(f"saved history 'eval_iteration' has shape {points.shape}, "
                             f"expected the first {history.evals} of {history.points} "
                             f"evaluation points")
        history.scale_alarm_iteration = int(state["history_scale_alarm_iteration"])
        history.scale_alarm_message = str(state["history_scale_alarm_message"])
        history.elapsed = float(state["history_elapsed"])
        return history


def _grow(records, length, limit):
    """Make every array of `records` hold at least `length` entries (at most `limit`),
    doubling so that a run of T steps copies its records O(log T) times; new entries NaN."""
    capacity = len(next(iter(records.values())))
    if length <= capacity:
        return
    capacity = min(limit, max(length, 2 * capacity, 1024))
    for name, old in records.items():
        records[name] = np.full(capacity, np.nan)
        records[name][:len(old)] = old


def _padded(array, length):
    """`array` as `length` entries (NaN after its end): the array itself when it is."""
    if len(array) == length:
        return array
    out = np.full(length, np.nan)
    out[:min(len(array), length)] = array[:length]
    return out


def _restore(records, state, limit):
    """Fill `records` from `state` (all of one length, at most `limit`); returns the length."""
    saved = {name: np.asarray(state[f"history_{name}"]) for name in records}
    lengths = {a.shape for a in saved.values()}
    if len(lengths) != 1 or len(shape := lengths.pop()) != 1 or shape[0] > limit:
        name, a = next(iter(saved.items()))
        raise ValueError(f"saved history '{name}' has shape {a.shape}, expected "
                         f"({limit},) or fewer entries, one length for all")
    for name, a in saved.items():
        records[name] = a.astype(np.float64, copy=True)
    return shape[0]
