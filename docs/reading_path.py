"""The reading path of one plain training step of Eq. (13)-(15): every file and function
of minits it runs, in the order each file is first entered.

    python docs/reading_path.py            # mlp [784, 128, 10], TwoScale(eta = 0.01)
    python docs/reading_path.py lenet5     # LeNet-5 on (3, 32, 32) inputs

The step is minits.training.train_step(model, loss, sgd, x, y) on plain objects (what
mt.models and mt.losses make), after a first step that sets R1 = R(alpha^0) and
R2 = 10 R1. Functions are counted by their code objects (a comprehension inside a
function is one more). README.md ("The reading path of one step") quotes the mlp
table, and tests/test_imports.py checks that it is this script's output.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
import minits as mt  # noqa: E402
from minits.training import train_step  # noqa: E402

PACKAGE = Path(mt.__file__).resolve().parent


def reading_path(kind="mlp"):
    """{file relative to minits/: [function names, in the order first run]} of one plain
    step, the files in the order first entered."""
    rng = np.random.default_rng(0)
    if kind == "mlp":
        model = mt.models.mlp([784, 128, 10], seed=0)
        x = rng.random((128, 1, 28, 28), dtype=np.float32)
    else:
        model = mt.models.lenet5(seed=0)
        x = rng.random((128, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 10, 128)
    loss, sgd = mt.losses.TwoScale(eta=0.01), mt.SGD(lr=0.1)
    train_step(model, loss, sgd, x, y)  # the first step sets R1 and R2
    seen = {}

    def trace(frame, event, arg):
        if event != "call":
            return
        path = Path(frame.f_code.co_filename).resolve()
        if PACKAGE in path.parents:
            names = seen.setdefault(path.relative_to(PACKAGE).as_posix(), [])
            if frame.f_code.co_qualname not in names:
                names.append(frame.f_code.co_qualname)

    sys.setprofile(trace)
    try:
        train_step(model, loss, sgd, x, y)
    finally:
        sys.setprofile(None)
    return seen


def table(seen):
    """The Markdown table README.md quotes: | file | functions |, and a line of totals."""
    lines = ["| file | functions, in the order run |", "|---|---|"]
    for path, names in seen.items():
        lines.append(f"| `minits/{path}` | {', '.join(f'`{n}`' for n in names)} |")
    total = sum(len(names) for names in seen.values())
    lines.append("")
    lines.append(f"{len(seen)} files, {total} functions.")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(reading_path(sys.argv[1] if len(sys.argv) > 1 else "mlp")))
