"""Task regions: one comment line at each end, in the plain code.

    <indent># BEGIN TASK <id>
    <indent>...the body: what a student writes...
    <indent># END TASK

A task may have several regions (conv-backward: col2im and conv_backward); regions do
not nest. A student copy keeps the markers of its tasks around a one-line stub; the
grader reads a submission's bodies between the same markers. Files are named by their
path relative to the package folder, with "/" (e.g. "layers/linear.py").
"""

import re
from dataclasses import dataclass
from pathlib import Path

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN TASK (?P<task>\S+)[ \t]*$")
END = re.compile(r"^[ \t]*# END TASK[ \t]*$")

# Parts of the package that never go into a student copy and carry no regions.
NOT_IN_STUDENT_COPY = ("fast", "coursework")


class RegionError(ValueError):
    """Markers that do not pair up (named by file and line)."""


@dataclass(frozen=True)
class Region:
    """The lines [begin, end] of a region (0-based, the marker lines included)."""

    task: str
    path: str
    begin: int
    end: int
    indent: str

    @property
    def body(self):
        """The index range of the body lines."""
        return range(self.begin + 1, self.end)


def find_regions(lines, path):
    """lines: a file's lines (keepends) -> its regions, in order; RegionError when the
    markers do not pair up."""
    regions, open_ = [], None
    for i, line in enumerate(lines):
        begin, end = BEGIN.match(line.rstrip("\n")), END.match(line.rstrip("\n"))
        if begin and open_ is not None:
            raise RegionError(f"{path}, line {i + 1}: BEGIN TASK {begin['task']} inside the "
                              f"region of task {open_[0]} (line {open_[1] + 1}), not closed")
        if begin:
            open_ = (begin["task"], i, begin["indent"])
        elif end and open_ is None:
            raise RegionError(f"{path}, line {i + 1}: END TASK without a BEGIN TASK")
        elif end:
            regions.append(Region(open_[0], path, open_[1], i, open_[2]))
            open_ = None
    if open_ is not None:
        raise RegionError(f"{path}, line {open_[1] + 1}: BEGIN TASK {open_[0]} is never "
                          "closed by END TASK")
    return regions


def package_sources(package):
    """Every .py file of the package folder that a student copy holds:
    relative path -> text."""
    package = Path(package)
    sources = {}
    for file in sorted(package.rglob("*.py")):
        rel = file.relative_to(package)
        if rel.parts[0] in NOT_IN_STUDENT_COPY or "__pycache__" in rel.parts:
            continue
        sources[rel.as_posix()] = file.read_text(encoding="utf-8")
    return sources


def regions_by_task(sources):
    """relative path -> text  ->  task id -> list of its regions, in file order."""
    tasks = {}
    for path, text in sources.items():
        for region in find_regions(text.splitlines(keepends=True), path):
            tasks.setdefault(region.task, []).append(region)
    return tasks


def stub_lines(region, message):
    """The body of an assigned region in a student copy: one raise, at the region's
    indentation."""
    return [f'{region.indent}raise NotImplementedError({message!r})\n']


def bodies(text, path, task):
    """The bodies of `task`'s regions in one file's text -> list of lists of lines."""
    lines = text.splitlines(keepends=True)
    return [[lines[i] for i in r.body] for r in find_regions(lines, path) if r.task == task]


def rewrite(text, path, replace, keep_markers):
    """One file's text with region bodies replaced.

    replace: task id -> list (one per region of that task in this file, in order) of
        body lines; the regions of other tasks keep their bodies
    keep_markers: task ids whose marker lines stay; the others' markers are dropped
    Returns the new text.
    """
    lines = text.splitlines(keepends=True)
    out, seen, last = [], {}, 0
    for region in find_regions(lines, path):
        out.extend(lines[last:region.begin])
        keep = region.task in keep_markers
        if keep:
            out.append(lines[region.begin])
        if region.task in replace:
            k = seen.get(region.task, 0)
            seen[region.task] = k + 1
            out.extend(replace[region.task][k])
        else:
            out.extend(lines[i] for i in region.body)
        if keep:
            out.append(lines[region.end])
        last = region.end + 1
    out.extend(lines[last:])
    return "".join(out)


def outside_regions(text, path, tasks):
    """What a student must leave as it is: the lines of a file outside the bodies of the
    regions of `tasks`, each such body shown as one placeholder line; the marker lines of
    other tasks are left out (a student copy has none). -> list of (line number or None,
    line)."""
    lines = text.splitlines(keepends=True)
    kept, last = [], 0
    for region in find_regions(lines, path):
        kept.extend((i + 1, lines[i]) for i in range(last, region.begin))
        if region.task in tasks:
            kept += [(region.begin + 1, lines[region.begin]),
                     (None, f"<body of task {region.task}>\n"), (region.end + 1, lines[region.end])]
        else:
            kept.extend((i + 1, lines[i]) for i in region.body)
        last = region.end + 1
    kept.extend((i + 1, lines[i]) for i in range(last, len(lines)))
    return kept
