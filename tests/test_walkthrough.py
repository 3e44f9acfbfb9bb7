"""docs/walkthrough.ipynb: it executes top to bottom, and its stored outputs are what
that execution produces.

The notebook is executed in a fresh kernel (nbclient, the `dev` extra) and every code
cell's text outputs (streams, text/plain) are compared with the committed ones: the
text with its numbers taken out must be equal, and the numbers equal to rtol 1e-6.
Numbers below 1e-7 in magnitude are finite-difference errors and rounding gaps
(e.g. "relative error 3e-09"), which depend on the last bits of a sum: they are compared
to that absolute tolerance. The cells tagged "depends-on-blas" (the short training of
Sec. 3 and its measures) are compared to rtol 2e-2 and atol 5e-3: 300 SGD steps in float64
that split every batch at eta carry the rounding of the machine's BLAS kernel (the order
in which it sums a product) into the third digit (measured: a Haswell and an AVX-512
kernel gave test accuracies 0.9248 and 0.9245, 752 and 755 misclassified objects, a mean
delta p of -0.0964 and -0.0980); a wrong loss or step moves them by far more. Images
are not compared (only that each code cell has an output). Where MNIST is absent from
$MINITS_DATA the notebook falls back to the digits and prints a note; its numbers then
differ from the stored MNIST ones, so only the execution and the presence of every
cell's output are checked.
"""

import pathlib
import re

import pytest
from helpers import docs_module

nbformat = pytest.importorskip("nbformat", reason="the `dev` extra runs the walkthrough")
pytest.importorskip("nbclient", reason="the `dev` extra runs the walkthrough")
pytest.importorskip("ipykernel", reason="the `dev` extra runs the walkthrough")

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
NOTEBOOK = DOCS / "walkthrough.ipynb"
FALLBACK_NOTE = "MNIST not found"
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
RTOL, ATOL = 1e-6, 1e-7
BLAS_RTOL, BLAS_ATOL = 2e-2, 5e-3  # the cells tagged "depends-on-blas"


def _generator():
    """docs/make_walkthrough.py as a module."""
    return docs_module("make_walkthrough")


def text_outputs(cell):
    """A code cell's text outputs: {"stdout": ..., "stderr": ..., "text/plain": ...}.

    Streams are joined: the kernel may split one print into several chunks."""
    out = {}
    for o in cell.get("outputs", []):
        if o["output_type"] == "stream":
            out[o["name"]] = out.get(o["name"], "") + o["text"]
        elif o["output_type"] in ("execute_result", "display_data"):
            out["text/plain"] = out.get("text/plain", "") + o["data"].get("text/plain", "") + "\n"
        elif o["output_type"] == "error":
            out["error"] = f"{o['ename']}: {o['evalue']}"
    return out


def mismatch(stored, fresh, rtol=RTOL, atol=ATOL):
    """None when two output texts agree (numbers to rtol / atol, the rest exactly);
    else a message saying where they differ."""
    if NUMBER.sub("#", stored) != NUMBER.sub("#", fresh):
        return f"text differs:\n--- stored\n{stored}\n--- executed\n{fresh}"
    for a, b in zip(NUMBER.findall(stored), NUMBER.findall(fresh), strict=True):
        x, y = float(a), float(b)
        if abs(x - y) > atol + rtol * max(abs(x), abs(y)):
            return f"number {a} stored, {b} executed"
    return None


def test_mismatch_catches_changed_numbers_and_text():
    assert mismatch("acc 0.9219 (R1 = 36.0198)", "acc 0.9219 (R1 = 36.0198)") is None
    assert mismatch("relative error 3e-09", "relative error 8e-09") is None  # below ATOL
    assert mismatch("L = 2.124795991679", "L = 2.124795991680") is None  # within RTOL
    assert mismatch("acc 0.9219", "acc 0.9220") is not None
    assert mismatch("221 objects", "222 objects") is not None
    assert mismatch("all < 0: True", "all < 0: False") is not None
    assert mismatch("shape (8, 10)", "shape (8, 10, 1)") is not None
    assert mismatch("acc 0.9245", "acc 0.9248", BLAS_RTOL, BLAS_ATOL) is None
    assert mismatch("acc 0.9245", "acc 0.8948", BLAS_RTOL, BLAS_ATOL) is not None


def test_the_committed_notebook_is_the_generators_with_every_output():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    written = [(c.cell_type, c.source) for c in nb.cells]
    assert written[:-1] == _generator().cells(), \
        "docs/walkthrough.ipynb is stale: run python docs/make_walkthrough.py"
    assert "This notebook ran top to bottom" in written[-1][1]
    # the tags too (the stored notebook has one more cell: the closing note)
    for cell, built in zip(nb.cells[:-1], _generator().build().cells, strict=True):
        assert cell.metadata.get("tags") == built.metadata.get("tags"), cell.id
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs, f"code cell {cell.id} has no stored output"
            assert "error" not in text_outputs(cell), f"cell {cell.id} stored an error"


def test_the_notebook_executes_and_reproduces_its_stored_outputs():
    stored = nbformat.read(NOTEBOOK, as_version=4)
    fresh = nbformat.read(NOTEBOOK, as_version=4)
    for cell in fresh.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    _generator().execute(fresh)  # raises CellExecutionError if any cell fails
    executed = [c for c in fresh.cells if c.cell_type == "code"]
    for cell in executed:
        assert cell.outputs, f"code cell {cell.id} produced no output"
    if any(FALLBACK_NOTE in text_outputs(c).get("stdout", "") for c in executed):
        pytest.skip("MNIST is not in $MINITS_DATA: the notebook ran on the digits and every "
                    "cell gave an output; its numbers are not the stored MNIST ones, so the "
                    "comparison with the stored outputs is skipped")
    for old, new in zip([c for c in stored.cells if c.cell_type == "code"], executed,
                        strict=True):
        old_out, new_out = text_outputs(old), text_outputs(new)
        assert sorted(old_out) == sorted(new_out), f"cell {old.id}: outputs {sorted(old_out)} " \
            f"stored, {sorted(new_out)} executed"
        blas = _generator().BLAS_TAG in old.metadata.get("tags", [])
        tolerance = (BLAS_RTOL, BLAS_ATOL) if blas else (RTOL, ATOL)
        for kind in old_out:
            problem = mismatch(old_out[kind], new_out[kind], *tolerance)
            assert problem is None, f"cell {old.id} ({kind}) is stale: {problem}"
