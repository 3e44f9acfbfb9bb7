"""Test settings and fixtures shared by the whole suite (helpers: tests/helpers.py).

Hypothesis profiles (choose with HYPOTHESIS_PROFILE=...):
    default  a few dozen examples per property, no deadline (timing is not tested)
    ci       used when CI=true: fewer, derandomised examples so the run is
             reproducible and fits the CI budget on 2 cores
    dev      quick local iterations
    thorough many examples, for a long local run before a release

Implementations: a test that takes the ``impl`` fixture runs once with the plain
code and once with the fast code. ``impl(obj)`` is the object of that implementation
(the plain object itself, or its twin of minits.fast sharing its parameters), so one
test body checks both. Hypothesis tests take it too (it is session-scoped).
"""

import os

import numpy as np
import pytest
from datasets_files import isolate
from helpers import IMPLS, Impl, tiny_dataset
from hypothesis import HealthCheck, settings

from minits.experiments import data as experiment_data

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("default", max_examples=30, **_common)
settings.register_profile("ci", max_examples=50, derandomize=True, print_blob=True, **_common)
settings.register_profile("dev", max_examples=8, **_common)
settings.register_profile("thorough", max_examples=300, **_common)
_default = "ci" if os.environ.get("CI", "").lower() in ("1", "true", "yes") else "default"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", _default))


@pytest.fixture(params=IMPLS, scope="session")
def impl(request):
    """Impl("plain"), then Impl("fast"): impl(obj) is obj in that implementation."""
    return Impl(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def data():
    """A tiny learnable (train, test) pair of data sets (helpers.tiny_dataset)."""
    return tiny_dataset(96, "train", 1), tiny_dataset(40, "test", 2)


@pytest.fixture
def tiny(monkeypatch):
    """A tiny data set the executors find under the name 'tiny' (in this process)."""
    monkeypatch.setattr(experiment_data, "_DATA", {})
    monkeypatch.setattr(experiment_data, "_TEST_INPUTS", {})
    experiment_data.remember_split("tiny", "train", None, tiny_dataset(96, "train", 1))
    experiment_data.remember_split("tiny", "test", None, tiny_dataset(40, "test", 2))


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No network, no real data, no user cache: every data search root under tmp_path
    (datasets_files.isolate). Returns tmp_path."""
    return isolate(tmp_path, monkeypatch)


@pytest.fixture
def offline(monkeypatch):
    """scikit-learn's digits, with no network and no $MINITS_DATA (sweeps of the CLI)."""
    pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn")
    monkeypatch.delenv("MINITS_DATA", raising=False)
    monkeypatch.setenv("MINITS_OFFLINE", "1")
    monkeypatch.setattr(experiment_data, "_DATA", {})
    monkeypatch.setattr(experiment_data, "_TEST_INPUTS", {})
