"""Seconds per epoch of LeNet-5 on CIFAR-10, and the peak memory of a training run.

Two measurements, each in this (fresh) process, at 1 BLAS thread by default:

  epoch:  the 391 steps of one pass over the 50,000 training images in batches
          of 128 (the last one has 80), data loading included: each batch is
          gathered from the uint8 images and converted to float32 by
          mt.datasets.batches, then forward, cross-entropy, backward, SGD, with
          the fast implementation (minits.fast.convert), as training runs.
  --run:  one epoch of the real training loop (minits.training.train: the
          paper's protocol, with its test-set evaluations and the final
          evaluation of the training and test sets), to measure the peak
          resident memory of a complete training run.

Peak memory is the process's maximum resident set size (resource.getrusage),
which includes Python, NumPy and the data set itself (CIFAR-10 as uint8 is
184 MB for the training and test sets).

CIFAR-10 is not shipped with minits; on the development machines rebuild it with
    python ../shared/data/make_cifar10_from_jpeg.py /tmp/cifar10
and run
    python benchmarks/bench_epoch.py --data-dir /tmp/cifar10
    python benchmarks/bench_epoch.py --data-dir /tmp/cifar10 --run
"""

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import blas  # noqa: E402

blas.unset_coretype()  # before NumPy loads OpenBLAS
from threadpoolctl import threadpool_limits  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
import minits as mt  # noqa: E402
from minits import fast  # noqa: E402


def peak_rss_mb():
    """Maximum resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_epoch(model, loss, sgd, train_set, seed):
    """One pass over train_set in batches of 128 -> (steps, mean loss)."""
    steps, total = 0, 0.0
    for x, y in mt.datasets.batches(train_set, batch_size=128, seed=seed):
        total += float(loss.forward(model, x, y))
        loss.backward()
        sgd.step(model, loss)
        steps += 1
    return steps, total / steps


def time_epochs(args):
    t0 = time.perf_counter()
    train_set = mt.datasets.load("cifar10", "train", data_dir=args.data_dir)
    print(f"loaded CIFAR-10 training set in {time.perf_counter() - t0:.1f} s; "
          f"peak memory so far {peak_rss_mb():.0f} MB")
    model = fast.convert(mt.models.lenet5(num_classes=train_set.num_classes, seed=0))
    loss, sgd = fast.convert(mt.losses.CrossEntropy()), mt.SGD(lr=0.1)
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        steps, mean_loss = one_epoch(model, loss, sgd, train_set, seed=epoch)
        seconds = time.perf_counter() - t0
        print(f"epoch {epoch}: {steps} steps in {seconds:.2f} s "
              f"({seconds / steps * 1e3:.1f} ms per step), mean loss {mean_loss:.3f}")
    print(f"peak memory {peak_rss_mb():.0f} MB")


def training_run(args):
    from minits.training import RunConfig, train

    t0 = time.perf_counter()
    train_set = mt.datasets.load("cifar10", "train", data_dir=args.data_dir)
    test_set = mt.datasets.load("cifar10", "test", data_dir=args.data_dir)
    print(f"loaded CIFAR-10 in {time.perf_counter() - t0:.1f} s; "
          f"peak memory so far {peak_rss_mb():.0f} MB")
    steps = len(train_set) // 128 * args.epochs
    config = RunConfig(dataset="cifar10", variant="two-scale", eta=1.0, model="lenet5",
                       iterations=steps, eval_every=max(1, steps // 4), impl="fast")
    t0 = time.perf_counter()
    train(config, train_set, test_set)
    print(f"training run ({steps} steps, 4 test evaluations, final evaluation of both sets) "
          f"in {time.perf_counter() - t0:.1f} s")
    print(f"peak memory {peak_rss_mb():.0f} MB")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None,
                        help="folder holding cifar-10-batches-py (default: minits' search path)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    parser.add_argument("--run", action="store_true",
                        help="a complete training run (minits.training.train) for peak memory")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.threads < 1:
        parser.error("--epochs and --threads must be >= 1")
    print(blas.describe())
    with threadpool_limits(limits=args.threads):
        (training_run if args.run else time_epochs)(args)


if __name__ == "__main__":
    main()
