"""Wall time of `minits assignment grade` on a class of synthetic submissions.

Each submission answers each task with the solution, one of the wrong implementations
of tests/mistakes.py, or the untouched stub, drawn at random (seeded; about 60 %
solutions, 25 % mistakes, 15 % stubs). By default every answer also carries a comment
naming its submission, so that no two submissions share a task's code and the grader's
cache (the same code, the same grade) never hits: the worst case, a class in which
everyone wrote their own code. --shared drops the comments (a class handing in
identical code gets graded once per distinct answer).

    python benchmarks/bench_grade.py                      # 100 submissions, --jobs 2
    python benchmarks/bench_grade.py --submissions 20 --jobs 1
    python benchmarks/bench_grade.py --shared
"""

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))
import blas  # noqa: E402

blas.unset_coretype()  # before NumPy loads OpenBLAS
from mistakes import MISTAKES  # noqa: E402

from minits.coursework.catalog import TASKS  # noqa: E402
from minits.coursework.grade import PACKAGE, STATUSES, Limits, grade  # noqa: E402
from minits.coursework.regions import (  # noqa: E402
    find_regions,
    package_sources,
    regions_by_task,
    stub_lines,
)


def answer(text, path, task, choice, tag):
    """One file's text with the regions of `task` answered by `choice`: "solution",
    "stub", or a Mistake; tag: a comment line put first in every answer (or None)."""
    lines = text.splitlines(keepends=True)
    regions = [r for r in find_regions(lines, path) if r.task == task]
    applied = False
    for region in reversed(regions):
        body = lines[region.begin + 1:region.end]
        if choice == "stub":
            body = stub_lines(region, TASKS[task].stub_message())
        else:
            if choice != "solution" and not applied and choice.old in "".join(body):
                body = ["".join(body).replace(choice.old, choice.new, 1)]
                applied = True
            if tag:
                body = [f"{region.indent}# {tag}\n", *body]
        lines[region.begin + 1:region.end] = body
    return "".join(lines)


def make_class(folder, n, shared, seed=0):
    rng = random.Random(seed)
    sources = package_sources(PACKAGE)
    files = {t: sorted({r.path for r in rs}) for t, rs in regions_by_task(sources).items()}
    subs = []
    for k in range(n):
        mine = dict(sources)
        for task in TASKS:
            wrong = [m for m in MISTAKES if m.task == task]
            u = rng.random()
            choice = "solution" if u < 0.6 else "stub" if u > 0.85 else rng.choice(wrong)
            for path in files[task]:  # a mistake is in one file; the others: the solution
                here = choice if isinstance(choice, str) or choice.file == path else "solution"
                mine[path] = answer(mine[path], path, task, here,
                                    None if shared else f"submission {k}")
        sub = folder / f"s{k:03d}"
        for rel, text in mine.items():
            (sub / "minits" / rel).parent.mkdir(parents=True, exist_ok=True)
            (sub / "minits" / rel).write_text(text)
        subs.append(sub)
    return subs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--shared", action="store_true",
                        help="no per-submission comments: identical answers are shared")
    args = parser.parse_args()
    print(blas.describe())
    with tempfile.TemporaryDirectory() as tmp:
        subs = make_class(Path(tmp), args.submissions, args.shared)
        start = time.perf_counter()
        rows = grade(subs, out=Path(tmp) / "grades.csv", jobs=args.jobs, progress=False,
                     limits=Limits(timeout=60))
        wall = time.perf_counter() - start
    counts = Counter(r["status"] for r in rows)
    print(f"submissions {len(subs)}, tasks {len(TASKS)}, task grades {len(rows)}, "
          f"jobs {args.jobs}, {'shared' if args.shared else 'distinct'} answers")
    print("statuses: " + ", ".join(f"{s} {counts[s]}" for s in STATUSES))
    print(f"wall {wall:.2f} s, {wall / len(subs):.2f} s per submission")


if __name__ == "__main__":
    main()
