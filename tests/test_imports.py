"""Plain first: the code to read knows nothing of the code to run.

The import contracts of setup.cfg ([importlinter]: the plain floors never reach
minits.fast, above them only minits.training.build imports it, each floor uses only
the floors below it) hold; a plain training step runs no line of minits.fast; and
with minits.fast gone, minits still trains (the plain way).
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import docs_module

ROOT = Path(__file__).resolve().parents[1]
LINT = ("from importlinter.cli import lint_imports; "
        "raise SystemExit(lint_imports(config_filename='setup.cfg', no_cache=True))")


def lint_imports(folder):
    """import-linter's check of folder/setup.cfg on the package minits in folder."""
    pytest.importorskip("importlinter", reason="the `dev` extra installs import-linter")
    return subprocess.run([sys.executable, "-c", LINT], cwd=folder, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(folder)})


def test_the_import_contracts_of_setup_cfg_are_kept():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "3 kept, 0 broken" in done.stdout


def test_a_contract_is_broken_by_a_plain_module_that_imports_a_fast_one(tmp_path):
    """The contracts can fail: a copy of the package whose plain Linear imports
    minits.fast breaks the first two."""
    copy = tmp_path / "minits"
    subprocess.run(["cp", "-r", str(ROOT / "minits"), str(copy)], check=True)
    linear = copy / "layers" / "linear.py"
    linear.write_text(linear.read_text().replace("import numpy as np\n",
                                                 "import numpy as np\n\nfrom .. import fast\n", 1))
    (tmp_path / "setup.cfg").write_text((ROOT / "setup.cfg").read_text())
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    assert "minits.layers.linear -> minits.fast" in done.stdout
    assert "BROKEN" in done.stdout


@pytest.mark.parametrize("kind", ["mlp", "lenet5"])
def test_a_plain_training_step_runs_no_fast_code(kind):
    """Every function a plain step of Eq. (13)-(15) calls (traced by docs/reading_path.py)
    is outside minits/fast, and the step does run the plain loss and layers."""
    seen = docs_module("reading_path").reading_path(kind)
    assert [path for path in seen if path.startswith("fast/")] == []
    assert "TwoScale.forward" in seen["losses/two_scale.py"]
    assert "linear_backward" in seen["layers/linear.py"]
    if kind == "lenet5":
        assert "conv_backward" in seen["layers/conv.py"] and "col2im" in seen["layers/im2col.py"]


def test_minits_without_its_fast_package_still_trains_the_plain_way(tmp_path):
    """Deleting minits/fast leaves a working, slower minits: importing it, a gradient
    check, a plain training run; a fast run then says what is missing."""
    script = textwrap.dedent("""
        import sys
        sys.modules["minits.fast"] = None  # as if the package were deleted
        import numpy as np
        import minits as mt
        from minits.training import RunConfig, train
        from minits.datasets import load
        conv = mt.Conv2d(2, 3, 3, padding=1, dtype=np.float64, rng=0)
        mt.gradcheck.check_layer(conv, np.random.default_rng(1).standard_normal((2, 2, 5, 5)))
        train_set, test_set = load("digits", "train"), load("digits", "test")
        config = RunConfig(dataset="digits", variant="two-scale", eta=0.01, iterations=5,
                           eval_every=5, impl="plain")
        assert train(config, train_set, test_set, log=None).completed
        try:
            train(config.replace(impl="fast"), train_set, test_set, log=None)
        except ImportError as exc:
            print("fast:", exc)
        print("trained")
    """)
    pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT),
                                            "MINITS_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trained" in done.stdout and "fast:" in done.stdout and "minits.fast" in done.stdout


def test_the_readmes_reading_path_is_what_a_plain_step_runs():
    """README.md's table of the files and functions of one plain step is the output of
    docs/reading_path.py (which traces the step): it cannot go stale."""
    module = docs_module("reading_path")
    table = module.table(module.reading_path("mlp"))
    assert table in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_floors_the_readme_names_are_attributes_of_minits():
    """Issue 23: `import minits as mt; mt.training.train_step` (the README's words) works
    in a fresh interpreter, and `import minits` alone still loads no fast code."""
    code = ("import sys, minits as mt; fast_before = 'minits.fast' in sys.modules; "
            "print(fast_before, mt.training.train_step.__module__, mt.experiments.Experiment"
            ".__name__); mt.nothing")
    sub = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert sub.stdout.split() == ["False", "minits.training.loop", "Experiment"], sub.stderr
    assert "AttributeError: module 'minits' has no attribute 'nothing'" in sub.stderr
