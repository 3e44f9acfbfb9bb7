"""The `minits` command: train, compare, reproduce the paper's figures, demo, report.

    minits demo                                  # offline, under a minute
    minits reproduce mnist --preset quick        # Fig. 9 in a few minutes
    minits reproduce cifar100 --preset paper --jobs 2 --out runs/c100
    minits reproduce cifar100 --preset paper --scheduler tcp://host:8786 --out /shared/c100
    minits compare fashion-mnist --etas 0.01 1 --seeds 3
    minits train mnist --variant two-scale --eta 0.01
    minits report runs/mnist-quick               # table and figures again
    minits assignment make student/              # coursework: the student copy
    minits assignment grade class/* --out grades.csv

Every command writes a run folder (see minits.experiments.rundir), prints the
summary table, and draws the figures. Rerunning the same command skips what is
finished and resumes what is not. Arguments are checked before any work starts.
"""

import argparse
import difflib
import math
import os
import sys
from pathlib import Path

from . import experiments
from .experiments import executor, presets
from .experiments.spec import DATASETS, STANDARDIZE
from .training.config import (
    CONFIDENCES,
    IMPLEMENTATIONS,
    SEPARATION_SCALES,
    VARIANTS,
    default_impl,
)

EXIT_BAD_ARGS, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130


# ----------------------------------------------------------------------------- arg types

def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def eta_list(text):
    """'0.01,0.1' or '0.01' -> [0.01, 0.1]; every eta > 0 (Eq. (13) needs eta > 0)."""
    values = []
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"eta must be a number, got {part!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(
                f"eta must be a finite number > 0 (Eq. (13) splits at eta > 0), got {part}")
        values.append(value)
    return values


LOSSES = ("traditional", "two-scale", "fixed", "separation", "plain-ce")
"""The losses as the command line, the tables and the figures name them: "traditional" is
the paper's name of Eq. (13) with R2 = R1, the variant "one-scale" (still understood)."""


def loss_name(text):
    """--variant / --variants: a name of LOSSES -> the RunConfig variant."""
    variant = {"traditional": "one-scale"}.get(text, text)
    if variant not in VARIANTS:
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from "
                                         f"{', '.join(LOSSES)})")
    return variant


def shown(variant):
    """The name LOSSES gives a RunConfig variant."""
    return "traditional" if variant == "one-scale" else variant


def hidden_list(text):
    return [positive_int(p) for p in text.split(",") if p.strip()]


# ----------------------------------------------------------------------------- parser

def _common(p, *, seeds_default=None):
    g = p.add_argument_group("runs")
    g.add_argument("--seeds", type=positive_int, default=seeds_default, metavar="N",
                   help="number of seeds (0..N-1)" + ("" if seeds_default is None
                                                      else f" (default {seeds_default})"))
    cores = executor.available_cores()
    g.add_argument("--jobs", type=positive_int, default=cores, metavar="N",
                   help="runs side by side in N processes (default: the number of cores, "
                        f"{cores} here); every run trains with one BLAS thread, so the "
                        "numbers are the same whatever N is")
    g.add_argument("--threads", type=positive_int, default=1, metavar="N",
                   help="threads per run (default 1): a convolutional network's batch runs "
                        "in chunks on N threads; BLAS stays at one thread per run, so the "
                        "numbers are the same whatever N is (a dense network runs on one "
                        "thread). With --jobs, jobs x N should not exceed the cores")
    g.add_argument("--executor", choices=executor.EXECUTORS, default=None,
                   help="where the runs train: local (this machine's processes, default) or "
                        "dask (a Dask cluster: a LocalCluster of --jobs workers, or the one "
                        f"at --scheduler; needs {executor.DASK_INSTALL})")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="a Dask scheduler, e.g. tcp://host:8786 (implies --executor dask; "
                        "--out must be a folder every worker sees)")
    g.add_argument("--out", metavar="DIR", help="run folder (default runs/<name>)")
    g.add_argument("--data-dir", metavar="DIR",
                   help="folder with the data sets (default: $MINITS_DATA, ./datasets, cache)")
    g.add_argument("--iterations", type=positive_int, metavar="N",
                   help="SGD steps per run (overrides the preset)")
    g.add_argument("--eval-every", type=positive_int, metavar="N",
                   help="test-set evaluation interval in iterations")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--no-figures", action="store_true", help="do not draw PNG figures")
    _training_args(p.add_argument_group("model and loss"))


def _training_args(m):
    """The options of every run: confidence, initialisation, SGD, dtype, implementation."""
    m.add_argument("--confidence", choices=CONFIDENCES, default="raw",
                   help="which dX splits Eq. (13): raw dX (literal, default), normalized dX_hat, "
                        "or dX of R1 X_hat (scaled)")
    m.add_argument("--gain", type=positive_float, default=1.0,
                   help="initial weights ~ N(0, (gain/sqrt(fan_in))^2) (default 1)")
    m.add_argument("--lr", type=positive_float, default=0.1, help="SGD step tau (default 0.1)")
    m.add_argument("--batch-size", type=positive_int, default=128, help="#B (default 128)")
    m.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    m.add_argument("--impl", choices=IMPLEMENTATIONS, default=None,
                   help="plain: the implementation that reads like the paper; fast: the one "
                        "to train with (default: $MINITS_IMPL, else fast). They agree to "
                        "float rounding; a run folder holds runs of one of them only")
    m.add_argument("--separation-scale", choices=SEPARATION_SCALES,
                   help="the first scale R of Eq. (17) for the separation loss: fixed at "
                        "R(alpha^0) (default), trained by SGD, or live R(alpha) "
                        "(docs/decisions.md#D11)")
    m.add_argument("--standardize", choices=STANDARDIZE, default="auto",
                   help="inputs in [0, 1] (none) or standardised per channel with the training "
                        "set's mean/std (channel); auto: channel for CIFAR, none otherwise")


def _model_args(p):
    p.add_argument("dataset", nargs="?", choices=DATASETS, metavar="DATASET",
                   help="the data set: " + ", ".join(DATASETS))
    # the older spelling, still understood; DATASET is the one the help shows
    p.add_argument("--dataset", dest="dataset_option", choices=DATASETS, help=argparse.SUPPRESS)
    p.add_argument("--model", choices=("mlp", "lenet5"),
                   help="network (default: lenet5 for CIFAR, mlp otherwise)")
    p.add_argument("--hidden", type=hidden_list, default=[128], metavar="W[,W...]",
                   help="hidden widths of the mlp (default 128)")
    p.add_argument("--superclass", action="store_true",
                   help="also measure super-class accuracy, Eq. (20) (needs coarse labels: "
                        "cifar100)")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="minits",
        description="Experiments of the two-scale loss paper (Berlyand, Creese, Jabin) "
                    "on a CPU, with NumPy.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="traditional vs two-scale on the 8x8 digits (offline, "
                                    "under a minute)")
    _common(p)

    p = sub.add_parser("reproduce", help="one of the paper's figures",
                       description="Reproduce a figure of the paper. Figures: "
                       + ", ".join(f"{n} ({presets._FIGURES[n][0].split(':')[0]})"
                                   for n in presets.FIGURES))
    p.add_argument("figure", choices=presets.FIGURES, metavar="FIGURE",
                   help="one of: " + ", ".join(presets.FIGURES))
    p.add_argument("--preset", choices=presets.PRESETS, default="quick",
                   help="paper: the paper's lengths and seeds; quick: minutes (default)")
    p.add_argument("--etas", type=eta_list, nargs="+", metavar="ETA",
                   help="eta values (default: the preset's)")
    _common(p)

    _compare_and_train(sub)

    p = sub.add_parser("report", help="print the table and redraw the figures of a run folder")
    p.add_argument("folder", metavar="DIR")
    p.add_argument("--no-figures", action="store_true")

    _assignment_parser(sub)
    return parser


def _assignment_parser(sub):
    """minits assignment make | grade (docs/coursework.md); the work is in
    minits.coursework, which a student copy does not have."""
    p = sub.add_parser("assignment", help="coursework: write a student copy, grade submissions")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    m = actions.add_parser("make", help="write a student copy: the tasks' code replaced by "
                                        "raise NotImplementedError")
    m.add_argument("out", type=Path, metavar="OUT", help="a new folder")
    m.add_argument("--tasks", nargs="+", metavar="TASK", help="the tasks to set (default: all)")
    g = actions.add_parser("grade", help="run the hidden checks on submissions; write a CSV "
                                         "and feedback files")
    g.add_argument("submissions", nargs="+", metavar="SUBMISSION",
                   help="folders holding a filled-in student copy")
    g.add_argument("--out", type=Path, default=Path("grades.csv"),
                   help="the CSV (default grades.csv); feedback goes to <name>-feedback/")
    g.add_argument("--tasks", nargs="+", metavar="TASK", help="the tasks to grade, as set by "
                                                              "make (default: all)")
    g.add_argument("--points", nargs="+", metavar="TASK=N", help="points of a task (default: "
                                                                 "the catalogue's)")
    g.add_argument("--jobs", type=positive_int, default=None,
                   help="submissions graded at once (default: the number of CPUs)")
    g.add_argument("--timeout", type=positive_float, default=60.0,
                   help="seconds per task and submission (default 60)")
    g.add_argument("--memory", type=positive_int, default=2048, metavar="MIB",
                   help="memory limit of a grading process in MiB (default 2048)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse(parser, argv=None):
    """parser.parse_args, except that an unknown option after a command is refused by that
    command (its usage, not the top level's), with the closest options it has; and no
    option is taken for another by its prefix (--job is not --jobs)."""
    for command in _commands(parser).values():
        command.allow_abbrev = False
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        name = getattr(args, "action", None) or getattr(args, "command", None)
        command = _commands(parser).get(name, parser)  # the innermost command given
        options = [o for a in command._actions for o in a.option_strings]
        near = list(dict.fromkeys(  # the closest first, each once
            m for u in unknown if u.startswith("-")
            for m in difflib.get_close_matches(u.split("=")[0], options, n=2, cutoff=0.75)))
        command.error(f"unrecognized arguments: {' '.join(unknown)}"
                      + (f" (did you mean {' or '.join(near)}?)" if near else ""))
    return args


def _commands(parser):
    """{name: parser} of the commands of `parser` and of theirs (assignment's make and
    grade), and the parser itself under None."""
    found = {None: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                found[name] = command
                found.update({k: v for k, v in _commands(command).items() if k is not None})
    return found


def _compare_and_train(sub):
    """The two commands for one's own comparisons: compare (several losses) and train."""
    p = sub.add_parser("compare", help="traditional vs two-scale variants vs plain "
                                       "cross-entropy on one data set")
    _model_args(p)
    p.add_argument("--etas", type=eta_list, nargs="+", metavar="ETA",
                   help="eta values (default 0.01 0.1 1 10 100)")
    p.add_argument("--variants", nargs="+", type=loss_name, metavar="LOSS",
                   default=["one-scale", "two-scale", "plain-ce"],
                   help=f"losses to compare, of {', '.join(LOSSES)} (default traditional "
                        "two-scale plain-ce)")
    _common(p, seeds_default=3)

    p = sub.add_parser("train", help="one loss configuration (over --seeds seeds)")
    _model_args(p)
    p.add_argument("--variant", type=loss_name, default="two-scale",
                   metavar="{" + ",".join(LOSSES) + "}", help="loss (default two-scale)")
    p.add_argument("--eta", type=positive_float,
                   help="threshold of Eq. (13) (two-scale, fixed, separation; default 0.01)")
    _common(p, seeds_default=1)


# ----------------------------------------------------------------------------- commands

def _run_fields(args):
    return {"confidence": args.confidence, "gain": args.gain, "lr": args.lr,
            "batch_size": args.batch_size, "dtype": args.dtype,
            "impl": args.impl or default_impl(),
            "separation_scale": args.separation_scale or "fixed"}


def _flatten(lists):
    return None if lists is None else [v for part in lists for v in part]


def experiment_from_args(args):
    """The Experiment a parsed command line asks for, and its run folder (ValueError when
    the arguments are inconsistent)."""
    if args.out == "":
        raise ValueError("--out is empty: name a folder (without --out: runs/<name>)")
    exp, out = _experiment(args)
    try:
        experiments.rundir.check_folder(out)
    except ValueError as exc:
        raise ValueError(f"--out {exc}") from None
    if args.separation_scale and not any(v == "separation" for v, _ in exp.variants):
        raise ValueError("--separation-scale applies to the separation loss (Eq. (17)) "
                         "only, and this experiment has none")
    return exp, out


def _one_dataset(args):
    """args.dataset from DATASET or the older --dataset (ValueError: neither, or both
    naming different sets)."""
    given = {d for d in (args.dataset, args.dataset_option) if d}
    if len(given) != 1:
        raise ValueError(f"name one data set: minits {args.command} DATASET (one of "
                         f"{', '.join(DATASETS)})" + (f"; got {' and '.join(sorted(given))}"
                                                     if given else ""))
    args.dataset = given.pop()


def _experiment(args):
    if args.command in ("compare", "train"):
        _one_dataset(args)
    if args.command == "demo":
        exp = presets.demo(seeds=args.seeds, iterations=args.iterations, **_run_fields(args))
        return _with_overrides(exp, args), args.out or os.path.join("runs", "demo")
    if args.command == "reproduce":
        exp = presets.figure(args.figure, args.preset, seeds=args.seeds,
                             etas=_flatten(args.etas), iterations=args.iterations,
                             eval_every=args.eval_every, standardize=args.standardize,
                             **_run_fields(args))
        return exp, args.out or os.path.join("runs", f"{args.figure}-{args.preset}")
    if args.superclass and args.dataset not in experiments.spec.DATASETS_WITH_COARSE_LABELS:
        raise ValueError(f"--superclass needs a data set with coarse labels "
                         f"({', '.join(experiments.spec.DATASETS_WITH_COARSE_LABELS)}); "
                         f"{args.dataset} has none")
    fields = {**_run_fields(args), "superclass": args.superclass,
              "hidden": tuple(args.hidden)}
    length = {"iterations": args.iterations or 1000, "eval_every": args.eval_every or 100}
    if args.command == "compare":
        exp = presets.compare(args.dataset, etas=_flatten(args.etas) or presets.PAPER_ETAS,
                              variants=tuple(args.variants), seeds=args.seeds,
                              standardize=args.standardize, model=args.model, **length, **fields)
        return exp, args.out or os.path.join("runs", f"compare-{args.dataset}")
    # train
    if args.variant in ("plain-ce", "one-scale"):
        if args.eta is not None:
            raise ValueError(f"--eta does not apply to --variant {shown(args.variant)}")
        etas = ()
    else:
        etas = (args.eta if args.eta is not None else 0.01,)
    exp = presets.compare(args.dataset, etas=etas, variants=(args.variant,), seeds=args.seeds,
                          standardize=args.standardize, model=args.model, name="train",
                          title=f"{shown(args.variant)} on {args.dataset}", **length,
                          **fields)
    key = exp.configs()[0].key
    return exp, args.out or os.path.join("runs", f"train-{args.dataset}-{key}")


def _with_overrides(exp, args):
    run = dict(exp.run)
    if args.eval_every:
        run["eval_every"] = args.eval_every
    run["eval_every"] = min(run["eval_every"], run["iterations"])
    standardize = exp.standardize if args.standardize == "auto" else args.standardize
    return experiments.Experiment(**{**exp.__dict__, "run": run, "standardize": standardize})


def _finish(summary, out, args, stopped=False, failed=0):
    from .experiments import summary as summaries

    print(summaries.format_table(summary), end="")
    print(f"\nresults: {out}  (summary.txt, summary.csv, config.json, runs/)")
    if not args.no_figures and any(summary.groups.values()):
        from . import plots  # matplotlib only for the faces

        try:
            paths = plots.draw_all(summary, os.path.join(out, "figures"))
        except OSError as exc:  # a full disk, a read-only folder
            print(f"minits: error: could not save the figures in {out} ({os_error(exc)}); "
                  "the table above is complete", file=sys.stderr)
            return EXIT_BAD_ARGS
        print("figures: " + ", ".join(os.path.relpath(p, out) for p in paths))
    if stopped:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    if failed:
        print(f"{failed} run(s) failed; see the messages above", file=sys.stderr)
        return EXIT_FAILED
    return 0


def main(argv=None):
    parser = build_parser()
    args = parse(parser, argv)
    if args.command == "report":
        try:
            return _report(parser, args)
        except KeyboardInterrupt:
            return _aborted()
    if args.command == "assignment":
        return _assignment(parser, args)
    try:
        experiment, out = experiment_from_args(args)
        engine = _executor(args)
    except ValueError as exc:
        parser.error(str(exc))
    except ImportError as exc:  # --executor dask without the extra
        print(f"minits: error: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    try:
        summary, stopped, outcomes = experiments.run_experiment(
            experiment, out, jobs=args.jobs, data_dir=args.data_dir,
            show_progress=not args.no_progress, threads=args.threads,
            executor_name=engine, scheduler=args.scheduler)
    except (ValueError, FileNotFoundError, ImportError, RuntimeError) as exc:
        print(f"minits: error: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    except OSError as exc:  # a read-only or full file system, a name it refuses
        print(f"minits: error: cannot write in {out}: {os_error(exc)}", file=sys.stderr)
        return EXIT_BAD_ARGS
    except KeyboardInterrupt:
        return _aborted()
    failed = sum(o.status == "failed" for o in outcomes)
    try:
        return _finish(summary, out, args, stopped, failed)
    except KeyboardInterrupt:  # Ctrl-C (again) while the table and figures are written
        return _aborted()


def _aborted():
    print("\naborted: finished runs and saved checkpoints are kept; run the same command "
          "again to resume", file=sys.stderr)
    return EXIT_INTERRUPTED


def _executor(args):
    """'local' or 'dask' (--scheduler implies dask); ImportError with the install command
    when dask is asked for and not installed, before any work."""
    if args.scheduler and args.executor == "local":
        raise ValueError("--scheduler is a Dask scheduler: it needs --executor dask "
                         "(or no --executor)")
    engine = "dask" if args.scheduler else (args.executor or "local")
    if engine == "dask":
        executor.require_dask()
    return engine


def _report(parser, args):
    from .experiments import summary as summaries

    try:
        summary = experiments.report(args.folder)
    except OSError as exc:  # none there, a file, a name too long for the file system
        parser.error(f"{args.folder} is not a run folder ({os_error(exc)})")
    except ValueError as exc:  # a corrupt config.json or results file, named in exc
        print(f"minits: error: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    try:
        summaries.write(args.folder, summary)
    except OSError as exc:  # a read-only folder: the table still, then why it is not saved
        print(summaries.format_table(summary), end="")
        print(f"minits: error: could not save the table in {args.folder} ({os_error(exc)}); "
              "the table above is complete", file=sys.stderr)
        return EXIT_BAD_ARGS
    return _finish(summary, args.folder, args)


def _assignment(parser, args):
    # this package's own folder is asked: the import system might find another copy's
    if not (Path(__file__).resolve().parent / "coursework" / "__init__.py").is_file():
        parser.error("minits assignment is the instructor's tool; this copy of minits has no "
                     "minits.coursework (a student copy)")
    from .coursework import command

    try:
        return command.run(args)
    except ValueError as exc:  # unknown task, existing OUT, bad --points, a leak
        print(f"minits: error: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    except OSError as exc:  # the copy or the grades could not be written
        print(f"minits: error: {os_error(exc)}", file=sys.stderr)
        return EXIT_BAD_ARGS
    except KeyboardInterrupt:
        print("\naborted: every grading process was ended; nothing was written",
              file=sys.stderr)
        return EXIT_INTERRUPTED


def os_error(exc):
    """An OSError in words: 'Read-only file system: runs/x/summary.txt'."""
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {os.fsdecode(exc.filename)}"
    return str(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
