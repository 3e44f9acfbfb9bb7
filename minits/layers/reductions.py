"""Reductions of the fast paths: the numbers of NumPy's plain reductions, cheaper on
the small arrays a training step reduces on every batch (a (128, 10) batch of logits).

Each function names the plain expression it must equal bit for bit; the tests
(tests/test_scale.py, tests/test_losses_logits.py) compare them on ties, infinities
and NaN. Plain code uses the plain expressions; only fast_*.py modules (and the
evaluation of whole data sets) call these.
"""

import numpy as np


def row_max(a, keepdims=False):
    """a.max(axis=-1, keepdims=keepdims), the same numbers.

    a: (N, K) -> (N,) (or (N, 1)); other shapes are reduced as a.max(axis=-1).
    For (N, K) it is taken over the rows of a's transpose, K vectorised np.maximum
    of length N, because NumPy reduces many short rows (K = 10) one by one, about
    twice as slowly. A maximum is exact, so the order of the comparisons cannot
    change it (NaN propagates either way); only a tie of +0 and -0 could come out
    with the other sign of zero, which no result here depends on.
    """
    if a.ndim != 2:
        return np.maximum.reduce(a, axis=-1, keepdims=keepdims)
    m = np.maximum.reduce(np.ascontiguousarray(a.T), axis=0)
    return m[:, None] if keepdims else m


def row_sum(a, keepdims=False):
    """np.sum(a, axis=-1, keepdims=keepdims), the same numbers: np.add.reduce is what
    np.sum calls, without its Python wrapper (a few microseconds on every batch).

    a: (..., K) -> (...) (or (..., 1)).
    """
    return np.add.reduce(a, axis=-1, keepdims=keepdims)


def sum64(a):
    """float(np.sum(a, dtype=np.float64)), the same number, without np.sum's wrapper.

    a: any shape -> Python float, accumulated in float64 whatever a's dtype.
    """
    return float(np.add.reduce(a, axis=None, dtype=np.float64))


def mean64(a):
    """float(np.mean(a, dtype=np.float64)), the same number: the float64 sum divided
    by the number of entries, as np.mean computes it, without its wrapper.

    a: any shape with at least one entry -> Python float.
    """
    return float(np.add.reduce(a, axis=None, dtype=np.float64)) / a.size
