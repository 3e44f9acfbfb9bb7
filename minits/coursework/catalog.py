"""The coursework tasks: what each task region asks for, where it is explained, and its
default points. The regions themselves are comment lines in the plain code
(``# BEGIN TASK <id>`` ... ``# END TASK``, regions.py); every id used there is here."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    """One task: id (the marker's and the pytest marker's name), what to write, the
    equation it implements, the explanation a stub points at, default points."""

    id: str
    title: str
    equation: str
    doc: str
    points: int = 1

    def stub_message(self):
        """The message of the NotImplementedError a student copy raises in its place."""
        return f"Task {self.id}: {self.title}. {self.equation}; {self.doc}"


def _task(id, title, equation, points=1):
    return Task(id, title, equation, f"docs/coursework.md#{id}", points)


# In the order of one training step (the reading order of the package).
TASKS = {t.id: t for t in (
    _task("linear-forward", "the Linear layer's forward pass, out = x W^T (+ b)", "Eq. (1)"),
    _task("linear-backward", "the Linear layer's backward pass, dx, dW and db", "Eq. (1)"),
    _task("relu-backward", "ReLU's backward pass, with derivative 0 at the kink x = 0",
          "Eq. (2)"),
    _task("softmax-cross-entropy", "the cross-entropy of softmax(z), per object, and its "
          "gradient in z, computed stably", "Eq. (3)-(4)"),
    _task("im2col", "im2col, the columns of a padded image batch (one strided slice per "
          "kernel offset)", "Eq. (1), Sec. 2.1"),
    _task("conv-backward", "col2im (the adjoint of im2col) and the convolution's backward "
          "pass, padding cropped", "Eq. (1), Sec. 2.1", points=2),
    _task("maxpool-forward", "max pooling's forward pass, with the offset of each window's "
          "first maximum", "Sec. 2.1"),
    _task("maxpool-backward", "max pooling's backward pass: each window's gradient to its "
          "first maximum, summed where windows overlap", "Sec. 2.1"),
    _task("confidence", "the two terms of the confidence delta X = X_i(s) - max_{i != i(s)} "
          "X_i", "Eq. (7), Sec. 2.2"),
    _task("scale-r", "the squared norms of the layers, R(alpha) and the factor "
          "c = R^(-1/(M-1)) of alpha_hat", "Eq. (9), Sec. 2.2"),
    _task("alpha-hat-backward", "the chain rule back through alpha_hat = c alpha, "
          "c = R(alpha)^(-1/n)", "Eq. (8)-(9), docs/decisions.md#D7", points=2),
    _task("eq13-split", "the split of Eq. (13) at eta (delta >= eta takes R2) and the "
          "scale R_k of each object", "Eq. (13)"),
    _task("eq15", "dL/dR_k by Eq. (15), overflow-free, and by the general formula "
          "sum_i p_i X_hat_i - X_hat_i(s)", "Eq. (15), docs/decisions.md#D6"),
    _task("eq17-gradients", "the values and gradients of Eq. (17), dRs and dR, by the chain "
          "rule through Eq. (13)", "Eq. (17)-(18)"),
    _task("eq14-sgd", "one SGD step on the loss's trainable scales", "Eq. (14), (18)"),
)}


def check_tasks(ids):
    """ids (an iterable of task ids, or None for all) -> a list of ids in catalogue order;
    a ValueError naming the unknown ones."""
    if ids is None:
        return list(TASKS)
    ids = list(dict.fromkeys(ids))
    unknown = [i for i in ids if i not in TASKS]
    if unknown:
        raise ValueError(f"unknown task {', '.join(map(repr, unknown))}; the tasks are: "
                         + ", ".join(TASKS))
    return [i for i in TASKS if i in ids]
