"""The benchmark scripts still run against the package as it is (a few steps each).

Nothing here times anything: the scripts print timings, and these tests only check
that they finish and print their tables, so that a change of the package cannot
leave a script broken (bench_loss.py once imported a function that was gone).
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CIFAR10 = ROOT / "datasets" / "cifar10" / "cifar-10-batches-py"


def run(script, *args, timeout=300):
    """Run benchmarks/<script> with args from the repository root; returns its stdout."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{script} {' '.join(args)} failed:\n{done.stderr[-3000:]}"
    return done.stdout


def test_bench_step_table_and_profile():
    out = run("bench_step.py", "--quick", "--threads", "1")
    for row in ("mlp", "lenet5 K=10", "lenet5 K=100"):
        assert row in out
    out = run("bench_step.py", "--profile", "--threads", "1", "--repeats", "2")
    assert "Conv2d(3->6, 5x5)" in out and "whole step" in out


def test_bench_levers():
    out = run("bench_levers.py", "--repeats", "1")
    assert "no batch split (one chunk)" in out and "plain implementation" in out


def test_bench_loss():
    out = run("bench_loss.py", "--repeats", "2", "--models", "mlp")
    assert "bookkeeping" in out


@pytest.mark.skipif(not CIFAR10.is_dir(), reason="CIFAR-10 is not in datasets/cifar10 "
                    "(.ci/run rebuilds it from ../shared/data)")
def test_bench_run(tmp_path):
    out = run("bench_run.py", "--iterations", "20", "--data-dir", str(CIFAR10.parent),
              "--out", str(tmp_path / "run"))
    assert "model forward+backward" in out and "grid" in out
