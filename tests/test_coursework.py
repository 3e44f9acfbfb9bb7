"""Coursework (minits/coursework, docs/coursework.md): the task regions, the student copy
and the grader.

The student copy must hold no solution line, install and run the student's code; the
grader must give the solution full marks and the untouched copy none, fault each of the
wrong implementations of tests/mistakes.py on its own task and only there, in words
that point at the mistake, and survive hostile submissions without touching anyone
else's grade.
"""

import ast
import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mistakes import MISTAKES

from minits.coursework import catalog, hidden
from minits.coursework.grade import COLUMNS, PACKAGE, Limits, grade
from minits.coursework.make import AssignmentError, make, solution_lines
from minits.coursework.regions import (
    RegionError,
    find_regions,
    package_sources,
    regions_by_task,
    rewrite,
)

ROOT = Path(__file__).resolve().parents[1]
TASKS = list(catalog.TASKS)
SOURCES = package_sources(PACKAGE)


def run_minits(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "minits", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)


def submission(folder, mistake=None, edits=(), outside=None):
    """A submission: the project's package (every task solved) with one mistake, code
    put at the start of task regions (task, file, code), or a change outside them."""
    sources = dict(SOURCES)
    if mistake is not None:
        sources[mistake.file] = _in_region(sources[mistake.file], mistake.file, mistake.task,
                                           lambda body: _replace(body, mistake))
    for task, file, code in edits:
        sources[file] = _in_region(sources[file], file, task, lambda body, code=code: "".join(
            f"{body[:len(body) - len(body.lstrip())]}{line}\n" for line in code.splitlines())
            + body)
    if outside is not None:
        file, change = outside
        sources[file] = change(sources[file])
    for rel, text in sources.items():
        (folder / "minits" / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / "minits" / rel).write_text(text)
    return folder


def _replace(body, mistake):
    assert mistake.old in body, f"{mistake.name}: {mistake.old!r} is not in the region"
    return body.replace(mistake.old, mistake.new, 1)


def _in_region(text, path, task, change):
    """text with change(body) applied to the first region of `task` whose body it alters."""
    lines = text.splitlines(keepends=True)
    for region in (r for r in find_regions(lines, path) if r.task == task):
        body = "".join(lines[i] for i in region.body)
        try:
            new = change(body)
        except AssertionError:
            continue
        return "".join(lines[:region.begin + 1]) + new + "".join(lines[region.end:])
    raise AssertionError(f"no region of {task} in {path} takes the change")


def rows_by(rows):
    out = {}
    for row in rows:
        out.setdefault(row["submission"], {})[row["task"]] = row
    return out


# ----------------------------------------------------------------------------- regions

def test_every_task_has_regions_checks_public_tests_and_a_pytest_marker():
    assert set(regions_by_task(SOURCES)) == set(TASKS)
    assert set(hidden.CHECKS) == set(TASKS)
    public = (ROOT / "tests" / "test_tasks.py").read_text()
    markers = re.findall(r'"([a-z0-9-]+): coursework task', (ROOT / "pyproject.toml").read_text())
    for task in TASKS:
        assert f'@task("{task}")' in public, task
        assert task in markers, task
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", task)


@pytest.mark.parametrize("text, message", [
    ("a\n# BEGIN TASK x\nb\n", "never closed"),
    ("# END TASK\n", "without a BEGIN"),
    ("# BEGIN TASK x\n# BEGIN TASK y\n# END TASK\n# END TASK\n", "inside the region"),
])
def test_markers_that_do_not_pair_up_are_refused_by_line(text, message):
    with pytest.raises(RegionError, match=message):
        find_regions(text.splitlines(keepends=True), "f.py")


def test_rewrite_replaces_bodies_and_keeps_or_drops_markers():
    text = "def f():\n    # BEGIN TASK a\n    return 1\n    # END TASK\n\n" \
           "def g():\n    # BEGIN TASK b\n    return 2\n    # END TASK\n"
    out = rewrite(text, "f.py", {"a": [["    raise NotImplementedError\n"]]}, keep_markers={"a"})
    assert out == ("def f():\n    # BEGIN TASK a\n    raise NotImplementedError\n    # END TASK\n"
                   "\ndef g():\n    return 2\n")


# ----------------------------------------------------------------------------- make

@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    out = tmp_path_factory.mktemp("course") / "student"
    make(out)
    return out


def test_the_student_copy_stubs_every_task_at_its_indentation(copy):
    for rel in SOURCES:
        mine = (copy / "minits" / rel).read_text()
        ast.parse(mine)  # it compiles
        for region in find_regions(mine.splitlines(keepends=True), rel):
            body = mine.splitlines()[region.begin + 1:region.end]
            assert body == [f'{region.indent}raise NotImplementedError('
                            f'{catalog.TASKS[region.task].stub_message()!r})']


def test_no_solution_line_survives_anywhere_in_the_student_copy(copy):
    """Every line removed from a region is searched for in every file of the copy. Only
    lines that the copy's own code outside the regions contains are allowed (e.g.
    "return dx"); a docstring or a doc spelling out a solution line is a leak."""
    removed = {" ".join(SOURCES[r.path].splitlines()[i].split())
               for rs in regions_by_task(SOURCES).values() for r in rs for i in r.body}
    code = " \n ".join(" ".join(line.split()) for rel in SOURCES
                       for line in _code_outside_docstrings((copy / "minits" / rel).read_text()))
    files = {p: " ".join(p.read_bytes().decode("utf-8", "replace").split())
             for p in copy.rglob("*") if p.is_file()}
    leaks = [(str(p.relative_to(copy)), line) for line in removed
             if len(line.replace(" ", "")) >= 8 and line not in code
             for p, text in files.items() if line in text]
    assert not leaks
    assert len(removed) > 60  # the search had something to find


def _code_outside_docstrings(text):
    tree = ast.parse(text)
    doc = {n for node in ast.walk(tree) if isinstance(getattr(node, "body", None), list)
           and node.body and isinstance(node.body[0], ast.Expr)
           and isinstance(node.body[0].value, ast.Constant)
           for n in range(node.body[0].lineno - 1, node.body[0].end_lineno)}
    return [line for i, line in enumerate(text.splitlines())
            if i not in doc and not line.strip().startswith("#")]


def test_the_student_copy_holds_nothing_else(copy):
    names = {p.relative_to(copy).as_posix() for p in copy.rglob("*")}
    assert not [n for n in names if n.endswith(".pyc") or "__pycache__" in n or ".git" in n
                or n.startswith(("minits/fast", "minits/coursework", "benchmarks"))
                or n.endswith((".ipynb", "reference.py", "mistakes.py"))]
    assert {"README.md", "setup.cfg", "pyproject.toml", "tests/test_tasks.py",
            "docs/coursework.md"} <= names


def test_make_refuses_a_copy_in_which_a_solution_line_survives(tmp_path):
    """The check make runs before a copy appears: a doc quoting a solution line."""
    source = tmp_path / "project"
    for part in ("minits", "tests", "docs"):
        shutil.copytree(ROOT / part, source / part,
                        ignore=shutil.ignore_patterns("__pycache__", "fast", "coursework"))
    shutil.copy(ROOT / "setup.cfg", source)
    doc = source / "docs" / "layers.md"
    doc.write_text(doc.read_text() + "\n    dW = (dout2 @ cols.T).reshape(W.shape)\n")
    with pytest.raises(AssignmentError, match=r"docs/layers.md: dW = \(dout2 @ cols.T\)"):
        make(tmp_path / "out", source=source)
    assert not (tmp_path / "out").exists()
    assert "dW = (dout2 @ cols.T).reshape(W.shape)" in solution_lines(SOURCES, TASKS)


def test_make_loses_nothing_and_names_what_is_wrong(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    result = run_minits("assignment", "make", tmp_path / "taken")
    assert result.returncode == 2 and "already exists" in result.stderr
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    result = run_minits("assignment", "make", tmp_path / "new", "--tasks", "conv-backwards")
    assert result.returncode == 2 and "unknown task 'conv-backwards'" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "new").exists()


def test_a_copy_of_some_tasks_keeps_the_others_solved(tmp_path):
    make(tmp_path / "two", tasks=["eq15", "im2col"])
    text = (tmp_path / "two" / "minits" / "losses" / "two_scale.py").read_text()
    assert "# BEGIN TASK eq15" in text and "Task eq15:" in text
    assert "# BEGIN TASK eq13-split" not in text  # a task not set: its code, no markers
    assert "R_k = np.where(second, R2, R1).astype(X_hat.dtype)" in text


def solve(copy, dest):
    """The student copy with every region filled in by the solution."""
    shutil.copytree(copy, dest)
    for rel, text in SOURCES.items():
        theirs = (dest / "minits" / rel).read_text()
        answers = {}
        for region in find_regions(text.splitlines(keepends=True), rel):
            answers.setdefault(region.task, []).append(
                text.splitlines(keepends=True)[region.begin + 1:region.end])
        (dest / "minits" / rel).write_text(rewrite(theirs, rel, answers, keep_markers=TASKS))
    return dest


@pytest.mark.slow
def test_the_student_copy_installs_and_runs_the_students_code(copy, tmp_path):
    solved = solve(copy, tmp_path / "solved")
    linear = solved / "minits" / "layers" / "linear.py"
    linear.write_text(linear.read_text().replace(
        "    # BEGIN TASK linear-forward\n",
        "    # BEGIN TASK linear-forward\n    open(__import__('os').environ['MARK'], 'a')"
        ".write('x')\n"))
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                              "--no-build-isolation", "--no-index", "--target", str(site),
                              str(solved)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    mark = tmp_path / "mark"
    env = {**os.environ, "PYTHONPATH": str(site), "MARK": str(mark)}
    script = "\n".join([
        "import numpy as np, minits as mt",
        "from minits.training.config import default_impl",
        f"assert mt.__file__.startswith({str(site)!r}), mt.__file__",
        "assert default_impl() == 'plain'",
        "model = mt.models.mlp([4, 5, 3], seed=0)",
        "loss, sgd = mt.losses.TwoScale(eta=0.1), mt.SGD(lr=0.1)",
        "x = np.random.default_rng(0).standard_normal((8, 4), np.float32)",
        "y = np.arange(8) % 3",
        "for _ in range(3):",
        "    loss.forward(model, x, y); loss.backward(); sgd.step(model, loss)",
        "import os",
        "if not os.path.exists(os.path.join(os.path.dirname(mt.__file__), 'fast')):",
        "    print('no fast twins')"])
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "no fast twins\n"
    assert len(mark.read_text()) >= 3  # the student's linear_forward ran in every step
    impl = subprocess.run([sys.executable, "-m", "minits", "train", "--dataset", "digits",
                           "--impl", "fast", "--iterations", "2"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert impl.returncode == 2 and "this copy of minits does not have" in impl.stderr
    grader = subprocess.run([sys.executable, "-m", "minits", "assignment", "make", "x"],
                            cwd=tmp_path, env=env, capture_output=True, text=True)
    assert grader.returncode == 2 and "no minits.coursework" in grader.stderr


def test_public_tests_of_the_student_copy_select_by_task(copy, tmp_path):
    untouched = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                "-m", "conv-backward", "tests"], cwd=copy, capture_output=True,
                               text=True)
    assert untouched.returncode == 1
    assert "NotImplementedError: Task im2col" in untouched.stdout  # conv builds on im2col
    assert "4 failed, 17 deselected" in untouched.stdout
    solved = solve(copy, tmp_path / "solved")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "tests"], cwd=solved, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "21 passed" in result.stdout


# ----------------------------------------------------------------------------- grade

def test_the_solution_scores_full_marks_and_the_untouched_copy_none(copy, tmp_path):
    out = tmp_path / "grades.csv"
    result = run_minits("assignment", "grade", ROOT, copy, "--out", out, "--jobs", "2",
                        "--no-progress")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out.open()))
    assert tuple(rows[0]) == COLUMNS
    by = rows_by(rows)
    assert {r["status"] for r in by[ROOT.name].values()} == {"passed"}
    assert all(r["points"] == r["max_points"] for r in by[ROOT.name].values())
    assert {r["status"] for r in by["student"].values()} == {"not implemented"}
    assert sum(int(r["points"]) for r in by["student"].values()) == 0
    assert (tmp_path / "grades-feedback" / "student.txt").read_text().startswith(
        "Feedback for student: 0 of 17 points")
    assert re.search(rf"\n{ROOT.name} +17/17 +15 ", result.stdout)
    first = out.read_text()
    run_minits("assignment", "grade", ROOT, copy, "--out", out, "--jobs", "1", "--no-progress")
    assert out.read_text() == first  # the same grades, whatever --jobs, every time


def test_each_mistake_loses_points_on_its_own_task_only(tmp_path):
    assert len(MISTAKES) >= 30
    subs = [submission(tmp_path / f"m{i:02d}", mistake=m) for i, m in enumerate(MISTAKES)]
    rows = rows_by(grade([ROOT, *subs], out=tmp_path / "g.csv", jobs=2, progress=False))
    assert {r["status"] for r in rows[ROOT.name].values()} == {"passed"}
    wrong = []
    for i, m in enumerate(MISTAKES):
        lost = {t: r for t, r in rows[f"m{i:02d}"].items() if r["status"] != "passed"}
        if list(lost) != [m.task] or m.says not in lost[m.task]["feedback"]:
            wrong.append((m.name, {t: (r["status"], r["feedback"]) for t, r in lost.items()}))
    assert not wrong


def test_hidden_checks_are_derandomised(tmp_path):
    sub = submission(tmp_path / "m", mistake=MISTAKES[0])
    one = grade([sub], out=tmp_path / "a.csv", tasks=[MISTAKES[0].task], progress=False)
    two = grade([sub], out=tmp_path / "b.csv", tasks=[MISTAKES[0].task], progress=False)
    assert one == two and one[0]["status"] == "error"


HOSTILE = {
    "raises-at-import": dict(outside=("layers/linear.py", lambda t: t.replace(
        "import numpy as np\n", "import numpy as np\nraise RuntimeError('at import')\n", 1))),
    "syntax-error": dict(edits=[("im2col", "layers/im2col.py", "def (:")]),
    "loops": dict(edits=[("relu-backward", "layers/activations.py", "while True:\n    pass")]),
    "sleeps": dict(edits=[("im2col", "layers/im2col.py", "import time\ntime.sleep(1000)")]),
    "allocates-20GB": dict(edits=[("confidence", "scale.py", "big = np.ones(20 * 2**30 // 8)")]),
    "calls-os-exit": dict(edits=[("scale-r", "scale.py", "import os\nos._exit(3)")]),
    "prints-megabytes": dict(edits=[("linear-forward", "layers/linear.py",
                                     "print('x' * 2**23)")]),
    "imports-torch": dict(edits=[("linear-backward", "layers/linear.py", "import torch")]),
    "edits-gradcheck": dict(edits=[("linear-backward", "layers/linear.py", "dout = 2 * dout")],
                            outside=("gradcheck.py", lambda t: t + "\n\ndef check_layer(*a, **k):"
                                                                   "\n    return []\n")),
    "writes-grader-output": dict(edits=[("eq15", "losses/two_scale.py", "\n".join([
        "import os",
        "ppid = os.getppid()",
        "args = open(f'/proc/{ppid}/cmdline', 'rb').read().split(bytes(1))",
        "out = args[args.index(b'--out') + 1].decode()",
        "out = os.path.join(os.readlink(f'/proc/{ppid}/cwd'), out)",
        "os.makedirs(os.path.dirname(out), exist_ok=True)",
        "open(out, 'w').write('submission,task,points\\nme,all,1000\\n')"]))]),
    "kills-its-process-group": dict(edits=[("eq17-gradients", "losses/separation.py",
                                            "import os, signal\n"
                                            "os.killpg(os.getpgid(0), signal.SIGKILL)")]),
}
EXPECTED = {  # submission -> (task, status, words of the feedback)
    "raises-at-import": (None, None, "minits/layers/linear.py: line"),
    "syntax-error": ("im2col", "error", "SyntaxError"),
    "loops": ("relu-backward", "timeout", "over the time limit of 5 s"),
    "sleeps": ("im2col", "timeout", "over the time limit of 5 s"),
    "allocates-20GB": ("confidence", "error", "MemoryError: over the memory limit"),
    "calls-os-exit": ("scale-r", "error", "exited with code 3"),
    "prints-megabytes": (None, None, "task linear-forward printed"),
    "imports-torch": ("linear-backward", "error", "may not import torch"),
    "edits-gradcheck": ("linear-backward", "failed", "x: FAILED"),
    "writes-grader-output": ("eq15", "error", "wrote into the grader's output"),
    "kills-its-process-group": ("eq17-gradients", "error", "killed by signal SIGKILL"),
}


@pytest.mark.slow
def test_hostile_submissions_get_a_clear_status_and_leave_the_others_alone(tmp_path):
    subs = [submission(tmp_path / name, **kw) for name, kw in HOSTILE.items()]
    clean = submission(tmp_path / "clean")
    wrong = submission(tmp_path / "wrong", mistake=MISTAKES[20])
    out = tmp_path / "out" / "grades.csv"
    result = run_minits("assignment", "grade", *subs, clean, wrong, "--out", out, "--jobs", "1",
                        "--timeout", "5", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = rows_by(list(csv.DictReader(out.open())))
    assert "me,all,1000" not in out.read_text()
    for name, (task, status, words) in EXPECTED.items():
        lost = {t: r for t, r in rows[name].items() if r["status"] != "passed"}
        feedback = (tmp_path / "out" / "grades-feedback" / f"{name}.txt").read_text()
        assert list(lost) == ([task] if task else []), (name, lost)
        if task:
            assert lost[task]["status"] == status and words in lost[task]["feedback"], name
        assert words in feedback, name
    alone = rows_by(grade([clean, wrong], out=tmp_path / "alone.csv", progress=False))
    for name in ("clean", "wrong"):
        assert rows[name] == {t: {k: str(v) for k, v in r.items()} for t, r in alone[name].items()}
    assert {r["status"] for r in rows["clean"].values()} == {"passed"}


def test_a_folder_without_a_student_copy_is_an_error_on_every_task(tmp_path):
    (tmp_path / "empty").mkdir()
    rows = grade([tmp_path / "empty"], out=tmp_path / "g.csv", progress=False,
                 limits=Limits(timeout=5))
    assert {r["status"] for r in rows} == {"error"}
    assert "has no minits/ folder" in rows[0]["feedback"]


def test_broken_markers_are_an_error_on_the_tasks_of_their_file_only(tmp_path):
    sub = submission(tmp_path / "s", outside=("losses/two_scale.py", lambda t: t.replace(
        "    # END TASK\n", "", 1)))
    rows = rows_by(grade([sub], out=tmp_path / "g.csv", progress=False))["s"]
    lost = {t: r["feedback"] for t, r in rows.items() if r["status"] != "passed"}
    assert set(lost) == {"eq13-split", "eq15"}  # the two tasks of losses/two_scale.py
    assert all("the task markers are broken" in f and "line" in f for f in lost.values())


def test_grade_refuses_unknown_tasks_and_bad_points(tmp_path):
    for args, words in ((["--tasks", "nope"], "unknown task 'nope'"),
                        (["--points", "im2col=two"], "--points takes TASK=N"),
                        (["--points", "nope=2"], "unknown task 'nope'"),
                        (["--job", "2"], "minits assignment grade: error: unrecognized "
                                         "arguments: --job 2 (did you mean --jobs?)")):
        result = run_minits("assignment", "grade", ROOT, "--out", tmp_path / "g.csv", *args)
        assert result.returncode == 2 and words in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "g.csv").exists()


def test_points_and_a_subset_of_tasks(tmp_path):
    rows = grade([ROOT], out=tmp_path / "g.csv", tasks=["im2col", "eq15"],
                 points={"im2col": 5}, progress=False)
    assert [(r["task"], r["points"], r["max_points"]) for r in rows] == [("im2col", 5, 5),
                                                                          ("eq15", 1, 1)]
    # the markers of the tasks not graded are no edit of the project's own checkout
    assert "Notes:" not in (tmp_path / "g-feedback" / f"{ROOT.name}.txt").read_text()
