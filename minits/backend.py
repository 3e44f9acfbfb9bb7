"""Which implementation runs: the plain one, to read, or the fast one, to train.

Every layer, the normalisation alpha -> alpha_hat and every loss has a *plain*
implementation that reads like the paper (short functions, the equation and the
shapes in the docstring, no speed tricks) and, where speed pays, a *fast* one
that must compute the same numbers (bit for bit, or to float rounding where its
docstring says so). The two sit behind the same objects; this module says which
one they run:

    import minits as mt
    mt.use("plain")                  # from now on
    with mt.using("plain"):          # for a block, then back
        ...
    mt.current_impl()                # "plain" or "fast"

The environment variable MINITS_IMPL=plain|fast sets the choice at import; the
default is "fast". The choice is read when an object *runs*, not when it is built:
a layer or loss built under one implementation runs under whichever is current at
its forward, and its backward always uses the implementation of its own forward
(the two are never mixed within one step).

The setting is one process-wide value, like NumPy's print options. Worker
processes of a sweep get it from the environment (minits.experiments.executor).

The second setting here is how many threads the fast implementation may use for
one network: ``mt.set_num_threads(n)`` (default 1, what a sweep's runs use: a
sweep runs one process per core instead). The fast Sequential then spreads the
chunks of a batch over n threads (minits/layers/fast_split.py); the numbers do
not depend on n.
"""

import os
from contextlib import contextmanager

IMPLEMENTATIONS = ("plain", "fast")
ENV_VAR = "MINITS_IMPL"
DEFAULT = "fast"


def check_impl(name, what="implementation"):
    """name, if it is "plain" or "fast"; else a ValueError naming the choices."""
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"{what} must be one of {IMPLEMENTATIONS}, got {name!r}")
    return name


def _from_environment():
    value = os.environ.get(ENV_VAR, "").strip()
    return check_impl(value, f"${ENV_VAR}") if value else DEFAULT


_current = _from_environment()


def current_impl():
    """The implementation that layers, normalisation and losses run now: "plain" | "fast"."""
    return _current


def is_fast():
    """True when the fast implementation is current."""
    return _current == "fast"


def use(name):
    """Run the "plain" or the "fast" implementation from now on (process-wide)."""
    global _current
    _current = check_impl(name)


def set_num_threads(n):
    """Let the fast implementation run a network's batch on n threads (n >= 1).

    Like torch.set_num_threads: process-wide, and the results are the same for
    every n (minits/layers/fast_split.py). With n > 1 each thread calls BLAS with
    one thread of its own, so n threads use n cores.
    """
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of threads must be an integer >= 1, got {n!r}")
    _num_threads = n


def get_num_threads():
    """The number of threads the fast implementation may use for one network (default 1)."""
    return _num_threads


_num_threads = 1


@contextmanager
def using(name):
    """Run the "plain" or the "fast" implementation inside a with-block, then restore
    whatever was current before (also when the block raises)."""
    check_impl(name)
    before = _current
    use(name)
    try:
        yield name
    finally:
        use(before)
