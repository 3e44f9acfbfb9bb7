"""The fast per-object functions of the losses: Eq. (13) (two_scale_value_and_grad of
minits/losses/two_scale.py) and Eq. (4) with its diagnostics (what CrossEntropy.forward
computes), the same numbers bit for bit.

Each pays as a whole, about 3-4 % of an mlp training step (docs/performance.md): the
savings are NumPy's Python wrappers (np.sum -> np.add.reduce), short rows reduced
along the long axis (row_max), and in-place arithmetic on temporaries. Read the plain
functions first (minits/layers/activations.py: log_softmax; minits/losses/
cross_entropy.py: cross_entropy; two_scale.py: dL_dR_eq15, two_scale_value_and_grad;
minits/scale.py: confidence; minits/losses/base.py: reduce).
"""

import numpy as np


def row_max(a, keepdims=False):
    """a.max(axis=-1, keepdims=keepdims) of an (N, K) array, the same numbers.

    Taken over the rows of a's transpose, K vectorised np.maximum of length N, because
    NumPy reduces many short rows (K = 10) one by one, about twice as slowly. A maximum
    is exact, so the order of the comparisons cannot change it (NaN propagates either
    way); only a tie of +0 and -0 could come out with the other sign of zero, which no
    result here depends on.
    """
    m = np.maximum.reduce(np.ascontiguousarray(a.T), axis=0)
    return m[:, None] if keepdims else m


def row_sum(a, keepdims=False):
    """np.sum(a, axis=-1, keepdims=keepdims), the same numbers: np.add.reduce is what
    np.sum calls, without its Python wrapper (a few microseconds on every batch)."""
    return np.add.reduce(a, axis=-1, keepdims=keepdims)


def sum64(a):
    """float(np.sum(a, dtype=np.float64)), the same number, without np.sum's wrapper."""
    return float(np.add.reduce(a, axis=None, dtype=np.float64))


def mean64(a):
    """float(np.mean(a, dtype=np.float64)), the same number: the float64 sum divided by
    the number of entries, as np.mean computes it, without its wrapper."""
    return float(np.add.reduce(a, axis=None, dtype=np.float64)) / a.size


def fast_confidence(X, y):
    """minits.scale.confidence, bit for bit: delta X = X_{i(s)} - max_{i != i(s)} X_i (N,).

    The maximum over the classes is taken on the transpose, as row_max does (a maximum
    is exact, so the order of the comparisons cannot change it).
    """
    rows = np.arange(X.shape[0])
    others = X.T.copy()  # (K, N)
    others[y, rows] = -np.inf
    return X[rows, y] - np.maximum.reduce(others, axis=0)


def fast_cross_entropy(z, y):
    """minits.losses.cross_entropy.cross_entropy, bit for bit (Eq. (4)): log_softmax with
    the row maximum and the row sums along the long axis, the logarithm subtracted in
    place.

    z: logits (N, K); y: labels (N,) -> values (N,), dz = p - e_{i(s)} (N, K).
    """
    logp = z - row_max(z, keepdims=True)
    total = row_sum(np.exp(logp), keepdims=True)
    logp -= np.log(total, out=total)
    rows = np.arange(z.shape[0])
    values = -logp[rows, y]
    dz = np.exp(logp)
    dz[rows, y] -= 1
    return values, dz


def fast_dL_dR_eq15(X_hat, y, R_k):
    """minits.losses.two_scale.dL_dR_eq15, bit for bit (Eq. (15)).

    X_hat (N, K); y (N,); R_k: one scale per object (N,) -> (N,), dtype of X_hat.
    """
    rows = np.arange(X_hat.shape[0])
    d = X_hat - X_hat[rows, y][:, None]
    a = R_k.astype(X_hat.dtype, copy=False)[:, None] * d
    a[rows, y] = -np.inf
    m = np.maximum(row_max(a), 0)
    e = np.exp(a - m[:, None])
    return row_sum(d * e) / (np.exp(-m) + row_sum(e))


def fast_two_scale_value_and_grad(X_hat, y, R1, R2, second, fixed=False):
    """minits.losses.two_scale.two_scale_value_and_grad, bit for bit.

    X_hat (N, K); y (N,); R1, R2 floats; second (N,) bool -> values (N,),
    dX_hat (N, K), dR1, dR2 (floats, or None when fixed).
    """
    R_k = np.where(second, R2, R1).astype(X_hat.dtype)
    values, dz = fast_cross_entropy(X_hat * R_k[:, None], y)
    dX_hat = dz * R_k[:, None]
    if fixed:
        return values, dX_hat, None, None
    s = fast_dL_dR_eq15(X_hat, y, R_k)
    return values, dX_hat, sum64(s[~second]), sum64(s[second])
