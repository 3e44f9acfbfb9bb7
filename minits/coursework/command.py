"""``minits assignment make`` and ``minits assignment grade``: from parsed arguments to
the work and an exit status (the parser itself is in minits/cli.py)."""

import sys
from pathlib import Path

from .catalog import check_tasks
from .grade import Limits, feedback_folder, grade, summary
from .make import AssignmentError, make


def run(args):
    """args of `minits assignment make|grade` -> exit status (0, or 1 for a grading run
    that could not write its output)."""
    if args.action == "make":
        tasks = make(args.out, args.tasks)
        print(f"wrote the student copy of {len(tasks)} task(s) to {args.out}: "
              + ", ".join(tasks))
        return 0
    missing = [str(p) for p in args.submissions if not Path(p).is_dir()]
    if missing:
        raise AssignmentError(f"not a folder: {', '.join(missing)} (a submission is a folder "
                              "holding a filled-in student copy)")
    rows = grade(args.submissions, out=args.out, tasks=args.tasks, jobs=args.jobs,
                 limits=Limits(timeout=args.timeout, memory_mb=args.memory),
                 points=dict(points_item(t) for t in args.points or []),
                 progress=not args.no_progress)
    print(summary(rows))
    print(f"grades: {args.out}; feedback: {feedback_folder(args.out)}/",
          file=sys.stderr)
    return 0


def points_item(text):
    """'conv-backward=3' -> ('conv-backward', 3)."""
    task, sep, value = text.partition("=")
    if not sep or not value.strip().isdigit():
        raise ValueError(f"--points takes TASK=N with N a whole number, got {text!r}")
    check_tasks([task])
    return task, int(value)


__all__ = ["AssignmentError", "points_item", "run"]
