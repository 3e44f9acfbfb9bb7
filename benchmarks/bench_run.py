"""Where the time of one CIFAR-10 `--preset paper` run goes, phase by phase, and what
the whole grid of `minits reproduce cifar10 --preset paper` costs.

One run, the way `reproduce cifar10 --preset paper` runs it (the same Experiment from
minits.experiments.presets, restricted to one configuration and one seed, through
minits.experiments.sweep.run_experiment: the same RunConfig, the same test-set
conversion, checkpoints, result file and summary), for the first N iterations
(default 2000, eval_every 2000 as in the grid: one periodic evaluation at t = 0, then
the end-of-run measures of finish() at t = N), then the figures `reproduce` draws.
Every run computes with one BLAS thread and (default) one thread of minits, as a
sweep of one run per core does (--threads N: the batch split of reproduce --threads).
--preset quick times a whole run of the quick grid (600 iterations, an evaluation
every 150).

Each phase is timed by wrapping, from this script, the function that does it
(monkeypatching at the script level: the package holds no timer and computes the
same numbers, result file for result file). Time is charged to the innermost phase
running (a step's loss.forward is "loss" less the model's forward inside it), except
inside an evaluation, a write or the figures, which are charged whole. CPU time is
time.process_time (steadier on a busy machine), wall time time.perf_counter.

The grid estimate scales the phases to a full run and to all runs of the grid:
    run  = (training per iteration) x T + (checkpoint) x checkpoints
         + (periodic evaluation) x evaluations + set-up, final measures, result file
    grid = run x configurations x seeds + figures, sweep set-up and summary (once)
with T, eval_every and the checkpoints (one an epoch) of the preset. The training
cost per iteration depends on the loss (plain-ce has no normalisation); the default
representative is two-scale eta = 0.01 (--variant, --eta).

    python benchmarks/bench_run.py                       # CIFAR-10 from ./datasets
    python benchmarks/bench_run.py --iterations 300      # does it run?
    python benchmarks/bench_run.py --preset quick        # a whole quick run
    python benchmarks/bench_run.py --data-dir /tmp/cifar10 --out /tmp/one-run
"""

import argparse
import collections
import functools
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import blas  # noqa: E402

blas.unset_coretype()  # before NumPy loads OpenBLAS
from threadpoolctl import threadpool_limits  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from minits import fast, losses, normalization, optim, plots  # noqa: E402
from minits.experiments import Experiment, presets, sweep  # noqa: E402
from minits.experiments.data import load_split  # noqa: E402
from minits.layers import sequential  # noqa: E402
from minits.training import config as run_config  # noqa: E402
from minits.training import evaluate, history, loop, results  # noqa: E402

LOSS_CLASSES = (losses.Loss, losses.CrossEntropy, losses.Truncated, losses.NormalizedLoss,
                losses.TwoScale, losses.OneScale, losses.TwoScaleWrapper,
                losses.TwoScaleSeparation, *(cls for cls in fast.TWINS.values()
                                              if issubclass(cls, losses.Loss)))

TRAINING = ("data batches (to_inputs)", "model forward+backward",
            "loss: normalisation (R, X_hat, chain rule)", "loss: objective, split, diagnostics",
            "SGD update", "bookkeeping (history, checks)")
EVALUATION = "periodic test evaluation"
FINAL = ("final measures: training set", "final measures: test set", "finish (rest)")
WRITES = ("checkpoints", "result file")
SETUP = "run setup (model, loss, test inputs)"
ONCE = ("figures", "sweep setup, summary (once)")
OTHER = "loop and sweep (rest)"


class Phases:
    """CPU and wall seconds per phase; time goes to the innermost phase on the stack."""

    def __init__(self):
        self.cpu = collections.defaultdict(float)
        self.wall = collections.defaultdict(float)
        self.calls = collections.Counter()
        self.stack = [(OTHER, False)]
        self.mark = (time.process_time(), time.perf_counter())

    def _charge(self):
        now = (time.process_time(), time.perf_counter())
        phase = self.stack[-1][0]
        self.cpu[phase] += now[0] - self.mark[0]
        self.wall[phase] += now[1] - self.mark[1]
        self.mark = now

    def wrap(self, owner, name, phase, whole=False):
        """Time owner.name as `phase`; whole=True charges everything inside to it."""
        original = getattr(owner, name)
        pick = phase if callable(phase) else (lambda *a, **k: phase)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            if self.stack[-1][1]:  # inside a phase charged whole
                return original(*args, **kwargs)
            self._charge()
            self.stack.append((pick(*args, **kwargs), whole))
            self.calls[self.stack[-1][0]] += 1
            try:
                return original(*args, **kwargs)
            finally:
                self._charge()
                self.stack.pop()

        setattr(owner, name, timed)

    def close(self):
        self._charge()


def _final_phase(model, loss, dataset, *args, **kwargs):
    return FINAL[0] if dataset.split == "train" else FINAL[1]


def instrument(phases):
    """Wrap the functions of each phase (see the module docstring)."""
    w = phases.wrap
    w(loop._Run, "batch", TRAINING[0])
    for cls in (sequential.Sequential, fast.FastSequential):
        w(cls, "forward", TRAINING[1])
        w(cls, "backward", TRAINING[1])
    for cls in (fast.FastNormalization, normalization.Normalization):
        w(cls, "forward", TRAINING[2])
        w(cls, "backward", TRAINING[2])
    for cls in LOSS_CLASSES:  # every class that has a forward or backward of its own
        for name in ("forward", "backward"):
            if name in vars(cls):
                w(cls, name, TRAINING[3])
    w(optim.SGD, "step", TRAINING[4])
    w(loop._Run, "step", TRAINING[5])
    w(loop._Run, "__init__", SETUP)
    w(loop._Run, "evaluate", EVALUATION, whole=True)
    w(evaluate, "full_measures", _final_phase, whole=True)
    w(loop._Run, "finish", FINAL[2])
    w(loop._Run, "save", WRITES[0], whole=True)
    w(results, "save", WRITES[1], whole=True)
    w(plots, "draw_all", ONCE[0], whole=True)
    w(sweep, "load_data", ONCE[1], whole=True)
    w(sweep.summary, "load_groups", ONCE[1], whole=True)
    w(sweep.summary, "write", ONCE[1], whole=True)
    w(sweep.rundir, "write_config", ONCE[1], whole=True)


def experiment(args):
    """The grid of `reproduce cifar10 --preset P` and its run of one configuration and
    one seed, cut to the first N iterations (the grid's eval_every kept)."""
    full = presets.figure("cifar10", args.preset)
    variant = (args.variant, args.eta if args.variant in ("two-scale", "fixed",
                                                          "separation") else None)
    if variant not in full.variants:
        raise SystemExit(f"{variant} is not a configuration of cifar10 --preset "
                         f"{args.preset}: {full.variants}")
    N = min(args.iterations or 2000, full.run["iterations"])
    one = presets.figure("cifar10", args.preset, seeds=1, iterations=N,
                         eval_every=min(N, full.run["eval_every"]))
    return full, Experiment(**{**one.__dict__, "variants": [variant]}), N


def run_once(args, phases):
    """Load the data (untimed: once per worker), then the timed sweep of one run."""
    t0 = time.perf_counter()
    for split in ("train", "test"):
        load_split("cifar10", split, args.data_dir)
    print(f"loaded CIFAR-10 in {time.perf_counter() - t0:.1f} s (not counted: once a worker)")
    full, exp, N = experiment(args)
    if args.out and os.path.exists(args.out) and os.listdir(args.out):
        raise SystemExit(f"--out {args.out} is not empty: a finished run there would be "
                         "skipped, not timed")
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or scratch
        instrument(phases)
        phases.mark = (time.process_time(), time.perf_counter())
        table, _, outcomes = sweep.run_experiment(exp, out, jobs=1, data_dir=args.data_dir,
                                                  show_progress=False, say=print,
                                                  threads=args.threads)
        if outcomes[0].status != "done":
            raise SystemExit(f"the run did not finish: {outcomes[0]}")
        plots.draw_all(table, os.path.join(out, "figures"))
        phases.close()
    return full, exp, N


def per_run_counts(config, iterations):
    """(checkpoints, periodic evaluations) of a run of `config` over `iterations` steps."""
    per_epoch = loop.steps_per_epoch(50000, config.batch_size)
    saves = (iterations - 1) // per_epoch  # one an epoch, none at the end
    evals = len(history.evaluation_iterations(iterations, config.eval_every)) - 1
    return saves, evals


def report(phases, full, exp, N):
    """Print the table of phases and the grid estimate."""
    clock = {"cpu": phases.cpu, "wall": phases.wall}
    print(f"\nphase (one run, {N} iterations){'':22s}  CPU s    wall s   calls")
    for phase in (*TRAINING, EVALUATION, *FINAL, *WRITES, SETUP, *ONCE, OTHER):
        print(f"  {phase:50s} {clock['cpu'][phase]:7.2f}  {clock['wall'][phase]:7.2f}"
              f"  {phases.calls[phase]:6d}")
    for c in ("cpu", "wall"):
        print(f"  {'total ' + c:50s} {sum(clock[c].values()):7.2f}")
    config = full.configs()[0]
    T, runs = config.iterations, len(full.configs()) * len(full.seeds)
    saves, evals = per_run_counts(config, T)
    print(f"\ngrid: reproduce cifar10 --preset {full.preset} = {len(full.configs())} "
          f"configurations x {len(full.seeds)} seeds = {runs} runs of T = {T}, {evals} periodic "
          f"evaluations and {saves} checkpoints each")
    for c in ("cpu", "wall"):
        grid(c, clock[c], per_run_counts(exp.configs()[0], N), N, (T, saves, evals), runs)


def grid(clock, d, counts_here, N, counts, runs):
    """Print one clock's grid estimate from the phases d of a run of N iterations.

    counts_here: (checkpoints, periodic evaluations) of the timed run; counts: (T,
    checkpoints, periodic evaluations) of a run of the grid; runs: runs in the grid.
    """
    (saves_here, evals_here), (T, saves, evals) = counts_here, counts
    step = sum(d[p] for p in (*TRAINING, OTHER)) / N
    evaluation = d[EVALUATION] / max(evals_here, 1)
    save = d[WRITES[0]] / max(saves_here, 1)
    final = sum(d[p] for p in FINAL) + d[WRITES[1]] + d[SETUP]
    rest = evaluation * evals + save * saves + final  # a run's time outside its steps
    run = step * T + rest
    total = run * runs + sum(d[p] for p in ONCE)
    print(f"  {clock:4s}: {step * 1e3:5.1f} ms an iteration ({d[TRAINING[1]] / N * 1e3:.1f} the "
          f"model's), {evaluation:4.2f} s an evaluation, {save * 1e3:4.1f} ms a checkpoint, "
          f"{final:4.2f} s set-up + final measures + result file")
    print(f"        run {run / 60:5.1f} min, grid {total / 3600:6.2f} h "
          f"(training {step * T * runs / total:4.0%}); half the grid needs iterations of "
          f"{(run / 2 - rest) / T * 1e3:.1f} ms with all the rest unchanged")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=presets.PRESETS, default="paper")
    p.add_argument("--iterations", type=int, default=None,
                   help="the first N iterations of the run (default 2000, at most the preset's)")
    p.add_argument("--variant", default="two-scale")
    p.add_argument("--eta", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=1,
                   help="minits' threads per run, as reproduce --threads (default 1, what a "
                        "sweep of one run per core uses); CPU time counts every thread")
    p.add_argument("--data-dir", default=None, help="CIFAR-10's folder (default: the loaders')")
    p.add_argument("--out", default=None,
                   help="keep the run folder here (default: a temporary folder, removed)")
    args = p.parse_args()
    print(blas.describe())
    print(f"minits, implementation {run_config.default_impl()}, 1 BLAS thread, "
          f"{args.threads} thread(s) per run")
    phases = Phases()
    with threadpool_limits(limits=1):
        full, exp, N = run_once(args, phases)
    report(phases, full, exp, N)


if __name__ == "__main__":
    main()
