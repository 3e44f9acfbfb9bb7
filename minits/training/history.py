"""What one run records while it trains (Sec. 3.2: "accuracy for the batch used is
recorded at each iteration"), in arrays allocated once for the whole run.

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
    points = list(range(0, iterations + 1, eval_every))
    if points[-1] != iterations:
        points.append(iterations)
    return np.asarray(points, dtype=np.int64)


class History:
    """Preallocated per-iteration and per-evaluation records of one run.

    iterations: T; eval_every: interval. Unwritten entries are NaN, so a history
    restored from a checkpoint mid-run shows exactly what has been computed.
    `scale_alarm` holds the first iteration at which a scale was <= 0
    (docs/decisions.md#D17) or a loss was not finite, with a message; None while all
    is well.
    """

    def __init__(self, iterations, eval_every):
        self.iterations = int(iterations)
        self.arrays = {name: np.full(self.iterations, np.nan) for name in PER_ITERATION}
        points = evaluation_iterations(self.iterations, int(eval_every))
        self.arrays["eval_iteration"] = points
        for name in PER_EVALUATION[1:]:
            self.arrays[name] = np.full(len(points), np.nan)
        self.scale_alarm_iteration = -1
        self.scale_alarm_message = ""
        self.elapsed = 0.0  # seconds of training so far, summed over resumed sessions

    def __getitem__(self, name):
        return self.arrays[name]

    def record_step(self, t, **values):
        """Store the scalars of iteration t (names from PER_ITERATION)."""
        for name, value in values.items():
            self.arrays[name][t] = value

    def record_eval(self, iteration, **values):
        """Store the test measures taken after `iteration` SGD steps (names from
        PER_EVALUATION: test_acc, test_loss, test_ece, test_mce)."""
        (index,) = np.flatnonzero(self.arrays["eval_iteration"] == iteration)
        for name, value in values.items():
            self.arrays[name][index] = value

    def raise_alarm(self, t, message):
        """Remember the first iteration where a scale went <= 0 or the loss went non-finite."""
        if self.scale_alarm_iteration < 0:
            self.scale_alarm_iteration = int(t)
            self.scale_alarm_message = str(message)

    def state(self):
        """Arrays for saving (checkpoints and results): name -> ndarray."""
        out = {f"history_{k}": v for k, v in self.arrays.items()}
        out["history_scale_alarm_iteration"] = np.int64(self.scale_alarm_iteration)
        out["history_scale_alarm_message"] = np.str_(self.scale_alarm_message)
        out["history_elapsed"] = np.float64(self.elapsed)
        return out

    @classmethod
    def from_state(cls, state, iterations, eval_every):
        """Rebuild from `state()` output (e.g. an open np.load archive)."""
        history = cls(iterations, eval_every)
        for name in history.arrays:
            saved = np.asarray(state[f"history_{name}"])
            if saved.shape != history.arrays[name].shape:
                raise ValueError(f"saved history '{name}' has shape {saved.shape}, "
                                 f"expected {history.arrays[name].shape}")
            history.arrays[name][...] = saved
        history.scale_alarm_iteration = int(state["history_scale_alarm_iteration"])
        history.scale_alarm_message = str(state["history_scale_alarm_message"])
        history.elapsed = float(state["history_elapsed"])
        return history
