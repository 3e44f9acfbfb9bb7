"""``minits assignment grade SUBMISSION...``: the autograder.

A submission is a folder holding a filled-in student copy (its minits/ folder; the
project's own checkout is one too). For each submission and task:

1. The task's region bodies are read from the submission, between its markers. Only
   they are graded: they are spliced into the instructor's package, whose other tasks
   keep their solutions, so that a mistake in one task costs points on that task alone
   and an edit outside the regions (a tampered gradcheck.py, a raise at import) is not
   run -- the feedback names it.
2. A body still equal to the stub is "not implemented" without running anything; a
   body already graded in this run (the same task, the same text) gets the same
   result without running it again (the checks are deterministic).
3. The others run in the submission's own process (child.py): a time limit per task,
   a memory limit, output to a capped file, several submissions at once. A task whose
   process hangs, dies or exits is marked, and a new process takes the next task.

Statuses: passed, failed (a check found a wrong result), error (the code raised, or
the process died), timeout, not implemented. A task scores its points when it passes,
0 otherwise. The CSV has the columns COLUMNS; each submission also gets a readable
feedback file. docs/coursework.md says what the process boundary protects.
"""

import csv
import io
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

from ..atomic import write_text
from ..experiments.progress import progress_bar
from .catalog import TASKS, check_tasks
from .make import student_sources
from .regions import (
    RegionError,
    bodies,
    find_regions,
    outside_regions,
    package_sources,
    regions_by_task,
    rewrite,
    stub_lines,
)

COLUMNS = ("submission", "task", "points", "max_points", "status", "feedback")
STATUSES = ("passed", "failed", "error", "timeout", "not implemented")
PACKAGE = Path(__file__).resolve().parents[1]  # the instructor's minits


@dataclass
class Limits:
    """Per task: seconds; per process: memory and the size of its output file (MiB)."""

    timeout: float = 60.0
    memory_mb: int = 2048
    output_mb: int = 64
    startup: float = 60.0  # for a process to import numpy, hypothesis and the checks


@dataclass
class Result:
    status: str
    feedback: str = ""


@dataclass
class Submission:
    """One folder to grade: its name in the CSV, its bodies per task, and notes."""

    name: str
    path: Path
    bodies: dict = field(default_factory=dict)  # task -> {file: [body lines per region]}
    starts: dict = field(default_factory=dict)  # task -> {file: [BEGIN line numbers, 1-based]}
    results: dict = field(default_factory=dict)  # task -> Result
    notes: list = field(default_factory=list)


class Template:
    """The instructor's package: its sources, its regions, the student copy of `tasks`."""

    def __init__(self, tasks, package=PACKAGE):
        self.package = Path(package)
        self.tasks = tasks
        self.sources = package_sources(self.package)
        self.regions = regions_by_task(self.sources)
        self.student = student_sources(self.sources, tasks)
        self.stubs = {t: [stub_lines(r, TASKS[t].stub_message()) for r in self.regions[t]]
                      for t in tasks}

    def copy(self, folder):
        """A copy, for one grading process, of the instructor's package (the files a
        student copy has, with the solutions) and of the grader's checks: what the
        process may damage is its own. -> the copy's package folder."""
        for rel, text in self.sources.items():
            _write(folder / "minits" / rel, text)
        for name, source in (("gradcheck.py", self.package / "gradcheck.py"),
                             ("hidden.py", Path(__file__).with_name("hidden.py"))):
            _write(folder / "grader" / name, source.read_text(encoding="utf-8"))
        return folder / "minits"

    def files(self, task):
        """The files holding the task's regions, in order, with their region count."""
        counts = {}
        for r in self.regions[task]:
            counts[r.path] = counts.get(r.path, 0) + 1
        return counts

    def splice(self, task, submitted):
        """The files to override for grading `task` with the submitted bodies:
        relative path -> source, and the spans [(path, begin, end, student BEGIN line)]
        of the submitted regions (1-based marker lines) in the spliced sources."""
        overrides, spans = {}, []
        for path, regions in submitted.bodies[task].items():
            text = rewrite(self.sources[path], path, {task: regions}, keep_markers={task})
            overrides[path] = text
            spliced = [r for r in find_regions(text.splitlines(keepends=True), path)
                       if r.task == task]
            for r, start in zip(spliced, submitted.starts[task][path], strict=True):
                spans.append((path, r.begin + 1, r.end + 1, start))
        return overrides, spans


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def read_submission(path, template, name):
    """The bodies of every task in the submission folder, and notes on what it changed
    outside them. A task whose regions cannot be read gets its error result here."""
    sub = Submission(name, Path(path))
    root = sub.path / "minits"
    if not root.is_dir():
        for task in template.tasks:
            sub.results[task] = Result("error", f"{path} has no minits/ folder: a submission "
                                                "is a folder holding a filled-in student copy")
        return sub
    texts = {}
    for rel in template.student:
        file = root / rel
        try:
            texts[rel] = file.read_text(encoding="utf-8") if file.is_file() else None
        except (OSError, UnicodeDecodeError) as error:
            texts[rel] = None
            sub.notes.append(f"minits/{rel} could not be read: {error}")
    for task in template.tasks:
        _read_task(sub, task, template, texts)
    sub.notes.extend(_edits_outside(template, texts))
    return sub


def _read_task(sub, task, template, texts):
    sub.bodies[task], sub.starts[task] = {}, {}
    for rel, count in template.files(task).items():
        text = texts.get(rel)
        if text is None:
            sub.results[task] = Result("error", f"minits/{rel} is missing from the submission")
            return
        try:
            regions = [r for r in find_regions(text.splitlines(keepends=True), rel)
                       if r.task == task]
        except RegionError as error:
            sub.results[task] = Result("error", f"the task markers are broken: {error}")
            return
        if len(regions) != count:
            sub.results[task] = Result(
                "error", f"minits/{rel} has {len(regions)} region(s) of task {task}, expected "
                         f"{count}: keep the lines '# BEGIN TASK {task}' and '# END TASK'")
            return
        sub.bodies[task][rel] = bodies(text, rel, task)
        sub.starts[task][rel] = [r.begin + 1 for r in regions]


def _edits_outside(template, texts):
    """Notes naming the lines changed outside the task regions (not run, not graded)."""
    notes = []
    for rel, expected in template.student.items():
        text = texts.get(rel)
        if text is None:
            continue
        try:
            theirs = outside_regions(text, rel, template.tasks)
        except RegionError:
            continue  # reported with the task
        ours = [line for _, line in outside_regions(expected, rel, template.tasks)]
        matcher = SequenceMatcher(None, ours, [line for _, line in theirs], autojunk=False)
        changed = []
        for tag, _, _, j1, j2 in matcher.get_opcodes():
            if tag != "equal":  # for a deletion, the line before it
                changed.extend(n for n, _ in theirs[j1:j2] or theirs[max(j1 - 1, 0):j1] if n)
        if changed:
            lines = _ranges(changed)
            notes.append(f"minits/{rel}: line{'s' if ',' in lines or '-' in lines else ''} "
                         f"{lines} differ from the student copy outside the task regions; "
                         "that code was neither run nor graded")
    return notes


def _ranges(numbers):
    numbers = sorted(set(numbers))
    parts, start = [], None
    for i, n in enumerate(numbers):
        if start is None:
            start = n
        if i + 1 == len(numbers) or numbers[i + 1] != n + 1:
            parts.append(str(start) if start == n else f"{start}-{n}")
            start = None
    return ", ".join(parts[:8]) + (" ..." if len(parts) > 8 else "")


class Processes:
    """The grading processes alive, so that Ctrl-C can end them all; once stopped, no new
    one starts."""

    def __init__(self):
        self._alive, self._lock, self.stopped = set(), threading.Lock(), False

    def start(self, *args, **kwargs):
        with self._lock:
            if self.stopped:
                raise KeyboardInterrupt
            proc = subprocess.Popen(*args, **kwargs)
            self._alive.add(proc)
            return proc

    def done(self, proc):
        with self._lock:
            self._alive.discard(proc)

    def stop(self):
        with self._lock:
            self.stopped = True
            alive = list(self._alive)
        for proc in alive:
            _kill(proc)


class Cache:
    """task, its bodies -> Result, for this run: the same code gets the same grade."""

    def __init__(self):
        self._results, self._lock = {}, threading.Lock()

    @staticmethod
    def key(task, sub):
        return task, json.dumps(sub.bodies[task], sort_keys=True)

    def get(self, task, sub):
        with self._lock:
            return self._results.get(self.key(task, sub))

    def put(self, task, sub, result):
        if result.status in ("passed", "failed", "not implemented"):  # never a crash
            with self._lock:
                self._results.setdefault(self.key(task, sub), result)


class OutputWatch:
    """Notices a change of the grader's own output files while submissions run."""

    def __init__(self, paths):
        self.paths = [Path(p) for p in paths]
        self._lock = threading.Lock()
        self._running = {}
        self._state = self._fingerprint()

    def _fingerprint(self):
        state = []
        for path in self.paths:
            entries = sorted(path.rglob("*")) if path.is_dir() else [path]
            for p in entries:
                try:
                    st = p.lstat()
                    state.append((str(p), st.st_size, st.st_mtime_ns))
                except OSError:
                    state.append((str(p), None, None))
        return state

    def begin(self, name):
        with self._lock:
            self._running[name] = self._running.get(name, 0) + 1

    def end(self, name):
        with self._lock:
            self._running[name] -= 1

    def check(self, name):
        """-> None when the output is as it was; else (alone, message): alone when `name`
        was the only submission running since the last check."""
        with self._lock:
            now = self._fingerprint()
            if now == self._state:
                return None
            self._state = now
            others = [n for n, k in self._running.items() if k and n != name]
            paths = ", ".join(str(p) for p in self.paths)
            if not others:
                return True, f"the submission wrote into the grader's output ({paths})"
            return False, (f"the grader's output ({paths}) changed while this and other "
                           "submissions ran; grade again with --jobs 1 to tell which")


def grade(submissions, out="grades.csv", tasks=None, jobs=None, limits=None, points=None,
          progress=True, feedback_dir=None):
    """Grade the submission folders; write the CSV and the feedback files.

    Returns the rows, (submission, task, points, max_points, status, feedback) dicts, in
    the order of the submissions and the tasks.
    """
    tasks = check_tasks(tasks)
    points = _points(tasks, points)
    limits = limits or Limits()
    out = Path(out)
    feedback_dir = Path(feedback_dir) if feedback_dir else feedback_folder(out)
    template = Template(tasks)
    subs = [read_submission(p, template, n) for p, n in zip(submissions, _names(submissions),
                                                            strict=True)]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(subs)))
    run = _Run(template, Cache(), OutputWatch([out, feedback_dir]), limits, Processes(),
               progress_bar(len(subs) * len(tasks), enabled=progress, desc="grading"))
    with tempfile.TemporaryDirectory(prefix="minits-grade-") as scratch, \
            ThreadPoolExecutor(jobs) as pool:
        todo = sorted(subs, key=lambda s: -sum(t not in s.results for t in tasks))
        futures = [pool.submit(_grade_submission, s, run, Path(scratch)) for s in todo]
        try:
            for future in futures:
                future.result()
        except BaseException:  # Ctrl-C: end every grading process, write nothing
            run.processes.stop()
            pool.shutdown(cancel_futures=True)
            raise
    run.bar.close()
    rows = [dict(submission=s.name, task=t, points=points[t] if s.results[t].status == "passed"
                 else 0, max_points=points[t], status=s.results[t].status,
                 feedback=s.results[t].feedback) for s in subs for t in tasks]
    write_outputs(rows, subs, out, feedback_dir, tasks)
    return rows


def feedback_folder(out):
    """Where the feedback files of the CSV `out` go: grades.csv -> grades-feedback/."""
    return out.with_name(out.stem + "-feedback")


def _points(tasks, points):
    points = dict(points or {})
    check_tasks(points)  # a ValueError naming a task that does not exist
    return {t: points.get(t, TASKS[t].points) for t in tasks}


def _names(paths):
    """The submissions' names: their folder names, made unique with their parents."""
    paths = [Path(p).resolve() for p in paths]
    names = [p.name for p in paths]
    for i, name in enumerate(names):
        if names.count(name) > 1:
            names[i] = "/".join(paths[i].parts[-2:])
    return names


@dataclass
class _Run:
    """What every submission's grading shares."""

    template: Template
    cache: Cache
    watch: OutputWatch
    limits: Limits
    processes: Processes
    bar: object


def _grade_submission(sub, run, scratch):
    """Every task of one submission; the ones needing a process run in its process."""
    template, cache, bar = run.template, run.cache, run.bar
    todo = []
    for task in template.tasks:
        if task in sub.results:
            pass
        elif [b for f in sub.bodies[task].values() for b in f] == template.stubs[task]:
            sub.results[task] = Result("not implemented", TASKS[task].stub_message())
        elif (hit := cache.get(task, sub)) is not None:
            sub.results[task] = hit
        else:
            todo.append(task)
            continue
        bar.update(1)
    folder = Path(tempfile.mkdtemp(dir=scratch))
    while todo:
        todo = _run_process(sub, todo, run, folder)
    return sub


def _run_process(sub, tasks, run, folder):
    """One grading process for `tasks`; returns the tasks it did not reach (after a hang
    or a crash, the next process takes them)."""
    cache, watch, limits, bar = run.cache, run.watch, run.limits, run.bar
    work = Path(tempfile.mkdtemp(dir=folder))
    log = work / "output.txt"
    proc, read_fd = _start(_job(sub, tasks, run, work), run, work, log)
    watch.begin(sub.name)
    current, deadline = None, time.monotonic() + limits.startup
    pending = list(tasks)
    events = _Lines(read_fd)
    try:
        while pending:
            event = events.next(deadline)
            if event is _Lines.TIMEOUT:
                _kill(proc)
                what = (f"over the time limit of {limits.timeout:g} s" if current else
                        f"the grading process did not start within {limits.startup:g} s")
                return _stop(sub, current or pending[0], pending,
                             _watched(watch, sub, Result("timeout", what)), bar)
            if event is _Lines.EOF:
                code = _wait(proc)
                return _stop(sub, current or pending[0], pending,
                             _watched(watch, sub, Result("error", _death(code, log))),
                             bar)
            if event.get("event") == "start" and event.get("task") in pending:
                current, deadline = event["task"], time.monotonic() + limits.timeout
            elif event.get("event") == "done" and event.get("task") == current:
                result = Result(event.get("status", "error"), str(event.get("feedback", "")))
                if result.status not in STATUSES:
                    result = Result("error", f"the grading process reported {result.status!r}")
                result = _watched(watch, sub, result)
                if event.get("printed", 0) > 2 ** 20:
                    sub.notes.append(f"task {current} printed {event['printed'] / 2 ** 20:.0f} "
                                     "MB while it was checked (discarded)")
                sub.results[current] = result
                cache.put(current, sub, result)
                pending.remove(current)
                current, deadline = None, time.monotonic() + limits.startup
                bar.update(1)
        return []
    finally:
        events.close()
        _kill(proc)
        run.processes.done(proc)
        watch.end(sub.name)


def _job(sub, tasks, run, work):
    """What the grading process runs: its copy of the package, the grader's checks, the
    limits, and per task the sources spliced with the submission's code. -> job file."""
    template, limits = run.template, run.limits
    job = dict(package=str(template.copy(work)), gradcheck=str(work / "grader" / "gradcheck.py"),
               hidden=str(work / "grader" / "hidden.py"), memory_mb=limits.memory_mb,
               file_mb=limits.output_mb, tasks=[])
    for task in tasks:
        overrides, spans = template.splice(task, sub)
        job["tasks"].append(dict(task=task, overrides=overrides, spans=spans))
    (work / "job.json").write_text(json.dumps(job), encoding="utf-8")
    return work / "job.json"


def _start(job, run, work, log):
    """Start child.py on the job, its output to `log`, its events to a pipe.
    -> (process, the pipe's read end)."""
    read_fd, write_fd = os.pipe()
    try:
        with open(log, "wb") as output:
            proc = run.processes.start(
                [sys.executable, str(Path(__file__).with_name("child.py")), str(job),
                 str(write_fd)], pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=output,
                stderr=subprocess.STDOUT, cwd=work, env=_child_env(work),
                start_new_session=True)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return proc, read_fd


def _watched(watch, sub, result):
    """The result of a task, unless the grader's output changed while it ran: then an
    error (when the submission ran alone) or a note."""
    seen = watch.check(sub.name)
    if seen is None:
        return result
    alone, message = seen
    if alone:
        return Result("error", message)
    sub.notes.append(message)
    return result


def _stop(sub, task, pending, result, bar):
    sub.results[task] = result
    bar.update(1)
    return [t for t in pending if t != task]


class _Lines:
    """JSON lines from a pipe, with a deadline per read."""

    TIMEOUT, EOF = object(), object()

    def __init__(self, fd):
        self.fd, self.buffer, self.eof = fd, b"", False

    def next(self, deadline):
        while b"\n" not in self.buffer:
            if self.eof:
                return self.EOF
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return self.TIMEOUT
            chunk = os.read(self.fd, 65536)
            self.eof = not chunk
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            event = json.loads(line)
        except ValueError:
            return {}
        return event if isinstance(event, dict) else {}

    def close(self):
        os.close(self.fd)


def _child_env(work):
    env = {name: os.environ[name] for name in ("PATH", "LANG", "LC_ALL", "SYSTEMROOT")
           if name in os.environ}
    env.update(HOME=str(work), TMPDIR=str(work), PYTHONDONTWRITEBYTECODE="1",
               PYTHONHASHSEED="0", MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def _kill(proc):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def _wait(proc):
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        _kill(proc)
        return proc.returncode


def _death(code, log):
    if code is not None and code < 0:
        how = f"was killed by signal {signal.Signals(-code).name}"
        if -code == signal.SIGKILL:
            how += (" (as the system does when memory runs out, or the submission's code "
                    "killed it)")
    else:
        how = f"exited with code {code}"
    tail = _tail(log)
    return f"the grading process {how} during this task" + (f"; its last output: {tail}"
                                                              if tail else "")


def _tail(log, size=400):
    try:
        with open(log, "rb") as f:
            f.seek(max(0, os.path.getsize(log) - size))
            return " ".join(f.read().decode("utf-8", errors="replace").split())
    except OSError:
        return ""


def write_outputs(rows, subs, out, feedback_dir, tasks):
    """The CSV and one feedback file per submission, each written atomically."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, text.getvalue())
    feedback_dir.mkdir(parents=True, exist_ok=True)
    for sub in subs:
        mine = [r for r in rows if r["submission"] == sub.name]
        write_text(feedback_dir / f"{_file_name(sub.name)}.txt", feedback_text(sub, mine))


def _file_name(name):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def feedback_text(sub, rows):
    """The readable feedback of one submission."""
    total, most = sum(r["points"] for r in rows), sum(r["max_points"] for r in rows)
    lines = [f"Feedback for {sub.name}: {total} of {most} points", ""]
    for r in rows:
        lines.append(f"[{r['status']}] {r['task']}: {r['points']}/{r['max_points']}")
        if r["status"] != "passed" and r["feedback"]:
            lines.extend("    " + line for line in r["feedback"].splitlines())
    if sub.notes:
        lines += ["", "Notes:"] + [f"  - {note}" for note in sub.notes]
    lines += ["", "A failed check names the result, its worst element, the expected (or "
              "numerical) value beside yours, and the shapes that exposed it: "
              "docs/coursework.md, 'Reading a failed check'."]
    return "\n".join(lines) + "\n"


def summary(rows):
    """The table the command prints: one line per submission."""
    by = {}
    for r in rows:
        by.setdefault(r["submission"], []).append(r)
    width = max(len(n) for n in by) if by else 10
    lines = [f"{'submission':<{width}}  points  " + "  ".join(s for s in STATUSES)]
    for name, mine in by.items():
        counts = [sum(r["status"] == s for r in mine) for s in STATUSES]
        total, most = sum(r["points"] for r in mine), sum(r["max_points"] for r in mine)
        lines.append(f"{name:<{width}}  {total:>2}/{most:<3} " + "  ".join(
            f"{c:>{len(s)}}" for c, s in zip(counts, STATUSES, strict=True)))
    return "\n".join(lines)
