"""Training floor: one run of the paper's protocol (Sec. 3.2), its evaluation
(Sec. 3.1), history, checkpoints and results files.

Reading order: config -> build (the objects of a run) -> loop (train_step: one SGD
step; train: one run) -> history -> evaluate -> checkpoint -> results. Files are
written by minits.atomic's rule.
"""

from .config import CONFIDENCES, VARIANTS, VARIANTS_WITH_ETA, RunConfig
from .history import History
from .loop import epoch_order, steps_per_epoch, train, train_step
from .results import RunResult

__all__ = ["CONFIDENCES", "VARIANTS", "VARIANTS_WITH_ETA", "History", "RunConfig", "RunResult",
           "epoch_order", "steps_per_epoch", "train", "train_step"]
