"""The benchmark scripts still run against the package as it is (a few steps each), and
print complete tables.

Nothing here times anything: the scripts print timings, and these tests check that they
finish and that every row of their tables holds numbers (a positive time for every
variant and framework, ratios that are the quotients of the times printed, the BLAS
kernel named), so that a change of the package cannot leave a script broken or
printing an empty or partial table.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CIFAR10 = ROOT / "datasets" / "cifar10" / "cifar-10-batches-py"
sys.path.insert(0, str(ROOT / "benchmarks"))
NUMBER = r"[-+]?\d+(?:\.\d+)?"


def run(script, *args, timeout=300):
    """Run benchmarks/<script> with args from the repository root; returns its stdout."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{script} {' '.join(args)} failed:\n{done.stderr[-3000:]}"
    assert re.search(r"^BLAS: \w+ [\d.]+, kernel \w+", done.stdout, re.M), done.stdout[:500]
    return done.stdout


def numbers(line):
    return [float(v) for v in re.findall(NUMBER, line)]


def test_bench_step_table_and_profile():
    out = run("bench_step.py", "--quick", "--threads", "1")
    for model in ("mlp", "lenet5 K=10", "lenet5 K=100"):
        (line,) = [row for row in out.splitlines() if row.startswith(model + " ")]
        values = numbers(line[len(model):])
        # threads, minits ms [iqr], torch ms [iqr], ratio, products, ratio, plain ms [iqr], ratio
        assert len(values) == 11, line
        threads, fast_ms, _, torch_ms, _, ratio, products, p_ratio, plain_ms, _, pl_ratio = values
        assert threads == 1 and min(fast_ms, torch_ms, products, plain_ms) > 0
        assert ratio == pytest.approx(fast_ms / torch_ms, abs=0.011)
        assert p_ratio == pytest.approx(products / torch_ms, abs=0.011)
        assert pl_ratio == pytest.approx(plain_ms / torch_ms, abs=0.011)
    out = run("bench_step.py", "--profile", "--threads", "1", "--repeats", "2")
    layers = [row for row in out.splitlines() if re.match(r"\s*\d+ \w", row)]
    assert len(layers) == 10 and "FastConv2d(3->6, 5x5)" in layers[0]  # every layer of lenet5
    for row in layers:
        forward, backward, total = numbers(row)[-3:]
        assert min(forward, backward) >= 0 and total == pytest.approx(forward + backward,
                                                                      abs=0.011)
        assert "Conv2d" not in row or total > 0
    for name in ("sum of layers", "loss", "gradient sums", "sgd update", "whole step"):
        (line,) = [row for row in out.splitlines() if row.startswith(name + " ")]
        assert numbers(line)[-1] >= 0


def lever_rows(out, names):
    """{variant: (ms, difference ms)} of a bench_levers table."""
    rows = {}
    for name in names:
        (line,) = [row for row in out.splitlines() if row.startswith(name + " ")]
        ms, diff = numbers(line[len(name):])[:2]
        rows[name] = ms, diff
    return rows


def test_bench_levers():
    import bench_levers

    out = run("bench_levers.py", "--repeats", "1")
    network, loss = out.split("the loss's levers")
    for table, variants in ((network, bench_levers.VARIANTS), (loss, bench_levers.LOSS_VARIANTS)):
        rows = lever_rows(table, variants)
        base = rows["all levers"][0]
        for ms, diff in rows.values():
            assert ms > 0 and diff == pytest.approx(ms - base, abs=0.0011)


def test_bench_loss():
    out = run("bench_loss.py", "--repeats", "2", "--models", "mlp")
    (line,) = [row for row in out.splitlines() if row.startswith("mlp ")]
    real, bare, bookkeeping = numbers(line.split("two-scale")[1])
    assert real > 0 and bare > 0 and bookkeeping == pytest.approx(real - bare, abs=0.0011)


@pytest.mark.skipif(not CIFAR10.is_dir(), reason="CIFAR-10 is not in datasets/cifar10 "
                    "(make it with the script in the data's README; docs/data.md)")
def test_bench_run(tmp_path):
    out = run("bench_run.py", "--iterations", "20", "--data-dir", str(CIFAR10.parent),
              "--out", str(tmp_path / "run"))
    phases = {}
    for line in out.splitlines():
        m = re.match(r"\s{2}(\S.*?)\s{2,}(" + NUMBER + r")\s+(" + NUMBER + r")\s+(\d+)$", line)
        if m:
            phases[m.group(1)] = float(m.group(2))
    assert phases["model forward+backward"] > 0 and phases["data batches (to_inputs)"] > 0
    (total,) = [numbers(row)[-1] for row in out.splitlines() if "total cpu" in row]
    assert total == pytest.approx(sum(phases.values()), abs=0.05)
    assert re.search(r"grid\s+" + NUMBER + " h", out)


def test_bench_grade():
    out = run("bench_grade.py", "--submissions", "3", "--jobs", "1")
    (line,) = [row for row in out.splitlines() if row.startswith("submissions ")]
    assert numbers(line)[:4] == [3, 15, 45, 1]
    (statuses,) = [row for row in out.splitlines() if row.startswith("statuses: ")]
    assert sum(numbers(statuses)) == 45
    (wall,) = [row for row in out.splitlines() if row.startswith("wall ")]
    total, per = numbers(wall)
    assert total > 0 and per == pytest.approx(total / 3, abs=0.011)
