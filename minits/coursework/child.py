"""The grading process of one submission: python child.py JOB.json RESULT_FD.

grade.py starts it in a scratch folder of its own, with no inherited PYTHONPATH, and
reads one JSON line per event from RESULT_FD (never from stdout, which the submission
may flood):

    {"event": "start", "task": id}                        before a task's checks
    {"event": "done", "task": id, "status": ..., "feedback": ..., "seconds": ...}

For each task the job gives the sources to use: the package (a copy of the
instructor's, in the process's own folder, read into memory before any submitted line
runs) with the submission's region bodies of that task spliced in (grade.py). They are
served by an import hook (TreeFinder) from memory, and minits is imported afresh for
every task, so that one task's code never sees another's. The process limits its own address
space and file sizes first, before any submitted line runs, and refuses to import
autograd libraries. The hidden checks (hidden.py) and the gradient checker
(minits/gradcheck.py) are the instructor's, loaded by path.

This file is run as a script and imports nothing of minits.
"""

import importlib
import importlib.abc
import importlib.util
import json
import os
import resource
import signal
import sys
import time
import traceback

FORBIDDEN = ("torch", "jax", "jaxlib", "tensorflow", "autograd", "mxnet", "paddle",
             "chainer", "theano", "mlx")
EXCLUDED = ("fast", "coursework")  # not in a student copy: never served


class Refuse(importlib.abc.MetaPathFinder):
    """Refuses the autograd libraries: a gradient must be derived by hand."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in FORBIDDEN:
            raise ImportError(f"a submission may not import {fullname} (no autograd: the "
                              "gradients are yours to derive)", name=fullname)
        return None


class SourceLoader(importlib.abc.Loader):
    """Executes a module from its source text; a text seen before in this process is not
    compiled again (minits is imported afresh for every task, mostly the same files)."""

    compiled = {}

    def __init__(self, source, filename):
        self.source, self.filename = source, filename

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        key = (self.filename, self.source)
        if key not in self.compiled:
            self.compiled[key] = compile(self.source, self.filename, "exec", dont_inherit=True)
        exec(self.compiled[key], module.__dict__)

    def get_source(self, fullname):
        return self.source


class TreeFinder(importlib.abc.MetaPathFinder):
    """Serves minits and minits.* from memory: `sources` maps a relative path
    ("layers/linear.py") to its text; the modules' files are named under `root`.
    minits.fast and minits.coursework do not exist, as in a student copy."""

    def __init__(self, root, sources):
        self.root, self.sources = root, sources

    def find_spec(self, fullname, path=None, target=None):
        parts = fullname.split(".")
        if parts[0] != "minits" or (len(parts) > 1 and parts[1] in EXCLUDED):
            return None
        rel = "/".join(parts[1:])
        for candidate, package in ((f"{rel}/__init__.py" if rel else "__init__.py", True),
                                   (f"{rel}.py", False)):
            if candidate in self.sources:
                filename = os.path.join(self.root, *candidate.split("/"))
                return importlib.util.spec_from_file_location(
                    fullname, filename, loader=SourceLoader(self.sources[candidate], filename),
                    submodule_search_locations=[] if package else None)
        return None


def read_tree(root):
    """Every .py file under root: relative path -> text, read before any submitted code
    runs (what the submission then writes on disk changes nothing)."""
    tree = {}
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    tree[os.path.relpath(path, root).replace(os.sep, "/")] = f.read()
    return tree


class Capped:
    """sys.stdout / sys.stderr of the graded code: counts what it prints, keeps nothing
    (a submission that prints megabytes is slow, not wrong)."""

    encoding = "utf-8"

    def __init__(self):
        self.count = 0

    def write(self, text):
        self.count += len(text)
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False


def limit(memory_mb, file_mb):
    """The process's own limits, set before any submitted code runs. (A system that does
    not enforce one -- macOS ignores RLIMIT_AS -- grades without it.)"""
    for which, mb in ((resource.RLIMIT_AS, memory_mb), (resource.RLIMIT_FSIZE, file_mb),
                      (resource.RLIMIT_CORE, 0)):
        try:
            resource.setrlimit(which, (mb * 2 ** 20, mb * 2 ** 20))
        except (ValueError, OSError):
            pass
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an over-long write fails, not the process


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def fresh_minits(root, sources):
    """Import minits anew from the sources (relative path -> text), named under root."""
    for name in [n for n in sys.modules if n == "minits" or n.startswith("minits.")]:
        del sys.modules[name]
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, TreeFinder)]
    sys.meta_path.insert(1, TreeFinder(root, sources))
    importlib.invalidate_caches()
    mt = importlib.import_module("minits")
    if not os.path.abspath(mt.__file__).startswith(os.path.abspath(root)):
        raise RuntimeError(f"the grader imported minits from {mt.__file__}, not from {root}")
    return mt


def where(error, job, spans):
    """Where in the submission an exception was raised: the innermost frame in a task
    region, as a line of the submission's file; else the innermost frame in minits."""
    root = os.path.abspath(job["package"])
    frames = traceback.extract_tb(error.__traceback__)
    if isinstance(error, SyntaxError) and error.filename and error.lineno:
        frames.append(traceback.FrameSummary(error.filename, error.lineno, "<module>"))
    inside = [f for f in frames if os.path.abspath(f.filename).startswith(root + os.sep)]
    for frame in reversed(inside):
        rel = os.path.relpath(frame.filename, root).replace(os.sep, "/")
        for path, begin, end, student_begin in spans:
            if path == rel and begin < frame.lineno <= end:
                return (f" (your code: minits/{rel}, line {student_begin + frame.lineno - begin}"
                        f", in {frame.name})")
    if inside:
        frame = inside[-1]
        rel = os.path.relpath(frame.filename, root).replace(os.sep, "/")
        return f" (raised in minits/{rel}, line {frame.lineno}, in {frame.name}: not a task region)"
    return ""


def outcome(error, hidden, gc, job, spans):
    """(status, feedback) of an exception raised by a task's checks."""
    exposed = getattr(error, "grader_case", None)
    tail = f"\n  exposed by: {exposed}" if exposed else ""
    if isinstance(error, (hidden.CheckFailed, gc.GradientCheckError)):
        return "failed", f"{error}{tail}"
    if isinstance(error, NotImplementedError) and str(error).startswith("Task "):
        return "not implemented", str(error)
    if isinstance(error, MemoryError):
        return "error", (f"MemoryError: over the memory limit of {job['memory_mb']} MiB"
                         f"{where(error, job, spans)}{tail}")
    text = f"{type(error).__name__}: {error}".strip()
    return "error", f"{text}{where(error, job, spans)}{tail}"


def run_task(item, job, tree, hidden, gc):
    """The checks of one task -> (status, feedback)."""
    spans = item["spans"]
    try:
        mt = fresh_minits(job["package"], {**tree, **item["overrides"]})
        hidden.CHECKS[item["task"]](mt, gc)
        status, feedback = "passed", ""
    except BaseException as error:  # noqa: B036 - SystemExit and the like from the submission too
        status, feedback = outcome(error, hidden, gc, job, spans)
    borrowed = sorted(n for n in sys.modules if n.split(".")[0] in FORBIDDEN)
    if borrowed:
        status, feedback = "error", (f"the submission imported {borrowed[0]}: no autograd "
                                     "library may compute a gradient")
    return status, feedback[:4000]


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        job = json.load(f)
    results = os.fdopen(int(sys.argv[2]), "w", buffering=1, encoding="utf-8")
    limit(job["memory_mb"], job["file_mb"])
    sys.meta_path.insert(0, Refuse())
    sys.dont_write_bytecode = True
    tree = read_tree(job["package"])
    gc = load("_grader_gradcheck", job["gradcheck"])
    hidden = load("_grader_hidden", job["hidden"])
    for item in job["tasks"]:
        results.write(json.dumps({"event": "start", "task": item["task"]}) + "\n")
        start = time.monotonic()
        sys.stdout = sys.stderr = printed = Capped()
        status, feedback = run_task(item, job, tree, hidden, gc)
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        results.write(json.dumps({"event": "done", "task": item["task"], "status": status,
                                  "feedback": feedback, "printed": printed.count,
                                  "seconds": round(time.monotonic() - start, 3)}) + "\n")
    results.close()


if __name__ == "__main__":
    main()
