"""The loss side of a training step: what mt.losses and the training loop add to a bare step.

Prints the median CPU time of one step (batch 128, float32, 1 thread) of
  bare:  model.forward, an inline softmax cross-entropy, model.backward, p -= lr * g
  real:  what minits.training.loop runs per step: TwoScale (or --loss) forward and
         backward (normalisation, Eq. (13)-(15), diagnostics), mt.SGD, batch accuracy
and their difference, the per-step bookkeeping. Both run the fast implementation
(minits.fast.convert: the model and the loss training uses). Steps are interleaved.

    python benchmarks/bench_loss.py                 # mlp and lenet5, TwoScale(eta=0.01)
    python benchmarks/bench_loss.py --loss one-scale --repeats 300
"""

import argparse
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
from minits.training.build import loss_scales, second_case_fraction  # noqa: E402

LOSSES = {
    "two-scale": lambda R0: mt.losses.TwoScale(0.01, R1=R0, R2=10 * R0),
    "one-scale": lambda R0: mt.losses.OneScale(R1=R0),
    "separation": lambda R0: mt.losses.TwoScaleSeparation(0.01),
    "plain-ce": lambda R0: mt.losses.CrossEntropy(),
}


def setup(kind, rng):
    if kind == "mlp":
        return (fast.convert(mt.models.mlp([784, 128, 10], seed=0)),
                rng.random((128, 1, 28, 28), dtype=np.float32))
    return (fast.convert(mt.models.lenet5(num_classes=10, seed=0)),
            rng.standard_normal((128, 3, 32, 32)).astype(np.float32))


def bench(kind, loss_name, repeats):
    rng = np.random.default_rng(0)
    model, x = setup(kind, rng)
    y = rng.integers(0, 10, len(x))
    loss = fast.convert(LOSSES[loss_name](mt.scale_R(model)))
    sgd = mt.SGD(0.01)  # small steps: the model stays near its start for every repeat
    rows = np.arange(len(x))

    def real():
        loss_scales(loss.params)
        loss.forward(model, x, y)
        loss.last.accuracy  # noqa: B018 (what the loop's history reads)
        second_case_fraction(loss)
        loss.backward()
        sgd.step(model, loss)

    def bare():
        X = model.forward(x)
        p = np.exp(X - X.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[rows, y] -= 1
        model.backward(p / len(x), input_grad=False)
        for layer in model.linear_layers():
            layer.params["W"] -= 0.01 * layer.grads["W"]

    times = {real: [], bare: []}
    for i in range(repeats + 5):
        for f in (real, bare) if i % 2 else (bare, real):
            t = time.thread_time()
            f()
            if i >= 5:  # warm-up
                times[f].append(time.thread_time() - t)
    r, b = np.median(times[real]) * 1e3, np.median(times[bare]) * 1e3
    print(f"{kind:7s} {loss_name:11s} real {r:7.3f} ms   bare {b:7.3f} ms   "
          f"bookkeeping {r - b:6.3f} ms")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", choices=sorted(LOSSES), default="two-scale")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--models", default="mlp,lenet5")
    args = parser.parse_args()
    print(blas.describe())
    with threadpool_limits(1):
        for kind in args.models.split(","):
            bench(kind, args.loss, args.repeats if kind == "mlp" else max(20, args.repeats // 4))


if __name__ == "__main__":
    main()
