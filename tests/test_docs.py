"""The documentation names what exists: every test, module and function it cites.

docs/equations.md, docs/decisions.md and README.md cite tests as `tests/file.py::test`
(a following `::test` repeats the file before it; `[id]` is a parametrisation) and code
as `minits/path.py`; these must exist, so that a renamed or deleted test or module
cannot leave a citation behind. setup.cfg's comments name functions too.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "docs" / "equations.md", ROOT / "docs" / "decisions.md",
        ROOT / "docs" / "layers.md", ROOT / "docs" / "experiments.md",
        ROOT / "docs" / "performance.md", ROOT / "docs" / "data.md",
        ROOT / "benchmarks" / "README.md"]
CITATION = re.compile(r"(tests/[\w/]+\.py)?::(\w+)")
MODULE = re.compile(r"\b(minits/[\w/]+\.py|docs/[\w/]+\.py|benchmarks/[\w/]+\.py)\b")


def function_names(path):
    """The names of the test functions of a test module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def citations(text):
    """(file, test) for every test the text cites, `::test` taking the file before it."""
    current, found = None, []
    for match in CITATION.finditer(text):
        current = match.group(1) or current
        if current is not None:
            found.append((current, match.group(2)))
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_cited_test_exists(doc):
    text = doc.read_text(encoding="utf-8")
    missing = []
    for file, name in citations(text):
        path = ROOT / file
        if not path.is_file() or name not in function_names(path):
            missing.append(f"{file}::{name}")
    assert missing == [], f"{doc.name} cites tests that do not exist: {sorted(set(missing))}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_cited_module_exists(doc):
    text = doc.read_text(encoding="utf-8")
    missing = sorted({m for m in MODULE.findall(text) if not (ROOT / m).is_file()})
    assert missing == [], f"{doc.name} cites files that do not exist: {missing}"


def test_setup_cfg_names_only_functions_that_exist():
    """A comment of setup.cfg that names minits.module.function names one that exists."""
    import importlib

    text = (ROOT / "setup.cfg").read_text(encoding="utf-8")
    for dotted in re.findall(r"\bminits(?:\.\w+)+", text):
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            for attr in parts[cut:]:
                assert hasattr(obj, attr), f"setup.cfg names {dotted}, which does not exist"
                obj = getattr(obj, attr)
            break
        else:
            pytest.fail(f"setup.cfg names {dotted}, which does not exist")


MACHINE_WORDS = ("/work/", "../shared", "shared/data", ".ci/run", "/home/", "/Users/")


@pytest.mark.parametrize("path", ["README.md", "datasets/README.md", *sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")), *sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py"))])
def test_what_users_read_names_no_machine_of_ours(path):
    """Issue 23: the docs, and the tests' skip messages, name no folder of one particular
    machine nor the build scripts (a user has neither)."""
    text = (ROOT / path).read_text(encoding="utf-8")
    if path.startswith("tests/"):  # what a user sees of a test: why it skipped
        text = "\n".join(re.findall(r"pytest\.skip\((.*?)\)\n", text, flags=re.S))
    found = [w for w in MACHINE_WORDS if w in text and not (path == "tests/test_docs.py")]
    assert not found, f"{path} names {found}"


def test_the_licence_setup_cfg_declares_is_there_and_goes_into_the_wheel():
    """Issue 23: setup.cfg says MIT; the repository holds that licence, and setuptools is
    told to put it into the wheel and the sdist (metadata license_files)."""
    from setuptools.config.setupcfg import read_configuration

    metadata = read_configuration(str(ROOT / "setup.cfg"))["metadata"]
    assert metadata["license"] == "MIT" and "LICENSE" in metadata["license_files"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text


def test_the_walkthrough_can_be_opened_with_an_extra_the_readme_names():
    """Issue 23: the README says, beside the notebook's link, which extra opens it, and
    setup.cfg has that extra with Jupyter in it."""
    from setuptools.config.setupcfg import read_configuration

    extras = read_configuration(str(ROOT / "setup.cfg"))["options"]["extras_require"]
    assert any(r.startswith("notebook") for r in extras["notebook"])
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    paragraph = next(p for p in readme.split("\n\n") if "(docs/walkthrough.ipynb)" in p)
    assert "'.[notebook]'" in paragraph and "jupyter notebook docs/walkthrough.ipynb" in paragraph
