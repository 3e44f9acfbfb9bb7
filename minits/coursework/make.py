"""``minits assignment make OUT``: the student copy.

From the project's checkout it writes, into a new folder OUT:

    minits/            the plain package; each chosen task's regions hold one
                       ``raise NotImplementedError("Task <id>: ...")`` between the markers,
                       the other tasks' markers are dropped (their code is given);
                       no minits/fast (a fast twin would contain the solutions and would
                       replace the student's code in training) and no minits/coursework
    tests/test_tasks.py  the public tests, one pytest marker per task
    docs/              the guides a student reads (no notebook: it runs the fast twins)
    README.md          what to write, how to test it
    setup.cfg, pyproject.toml, LICENSE   so that ``pip install -e .`` works

Nothing else: no git history, no .pyc, no tests/reference.py. Before OUT appears,
every line removed from the regions is searched for in every file written
(``surviving_solution_lines``); a copy in which one survives is not written. The copy
is written beside OUT and renamed into place, so OUT is either complete or absent.
"""

import ast
import os
import shutil
import tempfile
from pathlib import Path

from .catalog import TASKS, check_tasks
from .regions import package_sources, regions_by_task, rewrite, stub_lines

# What a student copy takes from the checkout besides the package.
DOCS = ("coursework.md", "equations.md", "layers.md", "decisions.md", "data.md")
TOP_FILES = ("setup.cfg", "pyproject.toml", "LICENSE")
PUBLIC_TESTS = "tests/test_tasks.py"
# A removed line shorter than this (spaces aside) says nothing about a solution ("else:").
MIN_SOLUTION_LINE = 8


class AssignmentError(ValueError):
    """What stops `make`; the message names it (the command line prints it, rc 2)."""


def checkout():
    """The source checkout this minits comes from: the folder holding setup.cfg, the
    package and its tests. AssignmentError when minits is installed without one."""
    root = Path(__file__).resolve().parents[2]
    missing = [p for p in ("setup.cfg", "minits", PUBLIC_TESTS, "docs") if not (root / p).exists()]
    if missing:
        raise AssignmentError(f"minits assignment make needs the project's source checkout "
                              f"(an editable install); {root} has no {', '.join(missing)}")
    return root


def student_sources(sources, tasks):
    """relative path -> text of the package  ->  the same files as a student copy holds
    them: the regions of `tasks` stubbed (markers kept), the others' markers dropped."""
    by_task = regions_by_task(sources)
    out = {}
    for path, text in sources.items():
        replace = {t: [stub_lines(r, TASKS[t].stub_message()) for r in regions]
                   for t, regions in by_task.items() if t in tasks
                   for regions in [[r for r in regions if r.path == path]] if regions}
        out[path] = rewrite(text, path, replace, keep_markers=set(tasks))
    return out


def _normal(line):
    return " ".join(line.split())


def solution_lines(sources, tasks):
    """The lines of the chosen tasks' region bodies that must not appear in a student copy:
    all of them except lines too short to mean anything ("else:") and lines that stand,
    whole or as part of a line, in the code outside every region (they are in the copy
    anyway: "out = out + b" is part of conv_forward's bias line). Docstrings and comments
    do not count as code: a docstring that spells out a solution line leaks it.
    -> set of normalised lines."""
    given = [_normal(line) for text in student_sources(sources, tasks).values()
             for line in code_lines(text)]
    removed = set()
    for regions in (rs for t, rs in regions_by_task(sources).items() if t in tasks):
        for r in regions:
            lines = sources[r.path].splitlines()
            removed.update(_normal(lines[i]) for i in r.body)
    return {line for line in removed if len(line.replace(" ", "")) >= MIN_SOLUTION_LINE
            and not any(line in code for code in given)}


def code_lines(text):
    """The lines of a module that are code: no docstring lines, no comment lines."""
    lines = text.splitlines()
    docstrings = set()
    for node in ast.walk(ast.parse(text)):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            docstrings.update(range(body[0].lineno - 1, body[0].end_lineno))
    return [line for i, line in enumerate(lines)
            if i not in docstrings and not line.lstrip().startswith("#")]


def surviving_solution_lines(folder, lines):
    """Which of `lines` (normalised) occur anywhere in the files under folder, in any
    file, whatever it is. -> sorted list of (relative path, line)."""
    found = []
    for file in sorted(Path(folder).rglob("*")):
        if not file.is_file():
            continue
        text = _normal(file.read_bytes().decode("utf-8", errors="replace"))
        found.extend((file.relative_to(folder).as_posix(), line)
                     for line in sorted(lines) if line in text)
    return found


def make(out, tasks=None, source=None):
    """Write the student copy of `tasks` (default: all) into the new folder `out`.

    source: the checkout to copy (default: this minits's). Returns the list of task ids.
    AssignmentError (nothing written) when out exists and is not an empty folder, or
    when a solution line would survive in the copy.
    """
    tasks = check_tasks(tasks)
    root = Path(source) if source is not None else checkout()
    out = Path(out)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise AssignmentError(f"{out} already exists: name a new folder for the student copy")
    out.parent.mkdir(parents=True, exist_ok=True)
    sources = package_sources(root / "minits")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _write_copy(tmp, root, sources, tasks)
        leaks = surviving_solution_lines(tmp, solution_lines(sources, tasks))
        if leaks:
            raise AssignmentError("a solution line would survive in the student copy:\n" +
                                  "\n".join(f"  {path}: {line}" for path, line in leaks[:20]))
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tasks


def _write_copy(dest, root, sources, tasks):
    for path, text in student_sources(sources, tasks).items():
        _write(dest / "minits" / path, text)
    _write(dest / PUBLIC_TESTS, (root / PUBLIC_TESTS).read_text(encoding="utf-8"))
    for name in DOCS:
        if (root / "docs" / name).exists():
            _write(dest / "docs" / name, (root / "docs" / name).read_text(encoding="utf-8"))
    for name in TOP_FILES:
        if (root / name).exists():
            _write(dest / name, (root / name).read_text(encoding="utf-8"))
    _write(dest / "README.md", student_readme(tasks, sources))


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def student_readme(tasks, sources):
    """The README of a student copy: the tasks, where they are, how to test them."""
    where = {t: sorted({f"minits/{r.path}" for r in rs})
             for t, rs in regions_by_task(sources).items()}
    rows = "\n".join(f"| `{t}` | {TASKS[t].title} | {TASKS[t].equation} | "
                     f"{', '.join(where[t])} | {TASKS[t].points} |" for t in tasks)
    return f"""# minits: the coursework copy

minits is a deep-learning framework in NumPy, without autograd, written to be read beside
Berlyand, Creese & Jabin, *A novel multi-scale loss function for classification problems
in machine learning*. In this copy, the code of {len(tasks)} tasks is yours to write: each
sits between two comment lines,

```python
# BEGIN TASK {tasks[0]}
raise NotImplementedError(...)   # <- replace this line with your code
# END TASK
```

Write only between the markers and leave the marker lines as they are: the grader reads
your code from between them and runs it with the rest of minits as it is here (an edit
elsewhere is not graded and not run).

| task | what to write | paper | file | points |
|---|---|---|---|---|
{rows}

## Set up and test

```bash
python -m pip install -e '.[dev]'
python -m pytest -m {tasks[0]}          # the public tests of one task
python -m pytest                        # all of them
```

Until you write a task, its code raises `NotImplementedError("Task <id>: ...")`. What you
have written is the code that runs: the public tests, `minits train`, `minits demo` and
`minits.gradcheck.check_layer` all run your functions. docs/coursework.md explains each
task and how to read a failed gradient check; the grader runs more tests than the public
ones (more shapes, both sides of every branch).
"""

