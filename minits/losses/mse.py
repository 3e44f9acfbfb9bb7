"""Mean squared error on the probabilities, a per-object objective for the
generic two-scale wrapper (end of Sec. 2.3).

    L(z, s) = (1/K) sum_i (p_i - [i = i(s)])^2,   p = softmax(z), Eq. (3)

(the same as torch.nn.MSELoss()(softmax(z), one_hot) for one object).
"""

import numpy as np

from ..layers import softmax


def mse_probabilities(z, y):
    """Inputs:  z: logits (N, K); y: labels (N,)
    Returns: values (N,) and dz = d(sum values)/dz (N, K), dtype of z.

    With r = p - e_{i(s)}, dL/dp = (2/K) r and through the softmax Jacobian
    diag(p) - p p^T:  dz = p * (dL/dp - <dL/dp, p>).
    """
    K = z.shape[1]
    p = softmax(z)
    r = p.copy()
    r[np.arange(z.shape[0]), y] -= 1
    values = np.sum(r * r, axis=1) / K
    dp = r * (2 / K)
    dz = p * (dp - np.sum(dp * p, axis=1, keepdims=True))
    return values, dz
