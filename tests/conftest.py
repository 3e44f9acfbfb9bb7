"""Test settings shared by the whole suite.

Hypothesis profiles (choose with HYPOTHESIS_PROFILE=...):
    default  a few dozen examples per property, no deadline (timing is not tested)
    ci       used when CI=true: fewer, derandomised examples so the run is
             reproducible and fits the CI budget on 2 cores
    dev      quick local iterations
    thorough many examples, for a long local run before a release

Implementations (minits.backend): the ``impl`` fixture runs a test once under
"plain" and once under "fast" (Hypothesis tests parametrise instead, see
tests/strategies.py). Every test starts under the implementation that was
current when the session began, whatever an earlier test switched to.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import minits

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("default", max_examples=30, **_common)
settings.register_profile("ci", max_examples=50, derandomize=True, print_blob=True, **_common)
settings.register_profile("dev", max_examples=8, **_common)
settings.register_profile("thorough", max_examples=300, **_common)
_default = "ci" if os.environ.get("CI", "").lower() in ("1", "true", "yes") else "default"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", _default))

_SESSION_IMPL = minits.current_impl()
_SESSION_THREADS = minits.get_num_threads()


@pytest.fixture(autouse=True)
def _restore_impl():
    """A test that calls minits.use() or minits.set_num_threads() must not change what
    the next test runs."""
    minits.use(_SESSION_IMPL)
    minits.set_num_threads(_SESSION_THREADS)
    yield
    minits.use(_SESSION_IMPL)
    minits.set_num_threads(_SESSION_THREADS)


@pytest.fixture(params=minits.backend.IMPLEMENTATIONS)
def impl(request):
    """The test body runs inside minits.using("plain"), then again inside using("fast")."""
    with minits.using(request.param):
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def shared_data_dir():
    """$MINITS_DATA when set and present, else None (real-data tests skip)."""
    path = os.environ.get("MINITS_DATA")
    return path if path and os.path.isdir(path) else None

