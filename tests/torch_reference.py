"""The paper written as a PyTorch program, the independent reference of
tests/test_autograd.py: the network of Eq. (1)-(2), R(alpha) of Eq. (9), the
normalised logits X_hat = X(alpha / R^{1/(M-1)}), the confidence delta X and the
per-object objectives of Eq. (4) / (10), (12) and the mean squared error.

Autograd differentiates everything here; nothing calls a minits computation (the
minits layers are read only for their type and hyper-parameters, to build the
same network). Everything is float64.
"""

import math

import torch
import torch.nn.functional as tF

import minits


def scalar(value, grad=False):
    """A float64 0-d tensor (torch.tensor(float) alone would be float32)."""
    return torch.tensor(float(value), dtype=torch.float64, requires_grad=grad)


def tensors(params):
    """Copies of a layer's params as float64 leaf tensors that record their gradients."""
    return {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}


# -- the torch side: networks, Eq. (1)-(2) ---------------------------------------------

def torch_layer(layer, x, p):
    """One minits layer's computation, written with torch: x -> out (PyTorch's layouts)."""
    if isinstance(layer, minits.Linear):
        return tF.linear(x, p["W"], p.get("b"))
    if isinstance(layer, minits.Conv2d):
        return tF.conv2d(x, p["W"], p.get("b"), stride=layer.stride, padding=layer.padding)
    if isinstance(layer, minits.MaxPool2d):
        return tF.max_pool2d(x, layer.kernel_size, layer.stride)
    if isinstance(layer, minits.ReLU):
        return torch.relu(x)
    if isinstance(layer, minits.Flatten):
        return x.flatten(1)
    if isinstance(layer, minits.Softmax):
        return torch.softmax(x, dim=-1)
    raise TypeError(f"no torch counterpart for {layer!r}")


def torch_forward(model, x, alphas):
    """X(alpha, x): the model's layers in their listed order; alphas: one dict per linear layer."""
    alphas = iter(alphas)
    for layer in model.layers:
        x = torch_layer(layer, x, next(alphas) if layer.params else None)
    return x


def torch_R(alphas):
    """R(alpha) = prod_l ||alpha^l||, Eq. (9) (alpha^l: W and b together)."""
    R = torch.ones((), dtype=torch.float64)
    for p in alphas:
        R = R * torch.sqrt(sum((v * v).sum() for v in p.values()))
    return R


def torch_normalized(model, x, alphas):
    """(X_hat (N, K), R): X_hat = X(alpha_hat), alpha_hat = alpha / R^{1/(M-1)}, both
    differentiable in alpha."""
    R = torch_R(alphas)
    c = R ** (-1.0 / len(alphas))
    return torch_forward(model, x, [{k: v * c for k, v in p.items()} for p in alphas]), R


def torch_confidence(X, y):
    """delta X = X_{i(s)} - max_{i != i(s)} X_i, X: (N, K) -> (N,) NumPy (a constant:
    it only splits)."""
    X = X.detach()
    rows = torch.arange(len(y))
    others = X.clone()
    others[rows, y] = -math.inf
    return (X[rows, y] - others.max(dim=1).values).numpy()


def torch_differences(X, y):
    """X_i - X_{i(s)}, X: (N, K) -> (N, K), exactly 0 at i = i(s)."""
    return X - X[torch.arange(len(y)), y][:, None]


def torch_ce(d):
    """Eq. (4) as Eq. (10), (13) write it, from the differences d = z - z_{i(s)}:
    log(1 + sum_{i != i(s)} exp(d_i)) = logsumexp_i d_i, since d_{i(s)} = 0.

    Why not -log_softmax(z)_{i(s)}: its autograd forms p_{i(s)} - 1, which loses
    all relative accuracy as p_{i(s)} -> 1 (the R2 case at large scales): on the
    LeNet-5 case, dL/dR2 = -5.4e-10 came out 2e-11 off a 50-digit reference, minits'
    Eq. (15) 5e-15 off. In the difference form d_{i(s)} = 0 carries no gradient to
    the scale: dL/dR = sum_{i != i(s)} p_i d_i / R, Eq. (15), with no 1 - p_{i(s)}.
    d: (N, K) -> (N,).
    """
    return torch.logsumexp(d, dim=1)


def torch_p_true(d):
    """p_{i(s)} = softmax(d)_{i(s)} = 1 / sum_i exp(d_i), d: (N, K) -> (N,) NumPy
    (a constant: it only splits)."""
    return (1 / torch.exp(d.detach()).sum(dim=1)).numpy()


def torch_truncated(d, k):
    """Eq. (12) per object: -log k if p_{i(s)} < k, else the cross-entropy
    (docs/decisions.md#D2). d = z - z_{i(s)}: (N, K) -> (N,)."""
    cut = torch.as_tensor(torch_p_true(d) < k)
    return torch.where(cut, torch.full_like(d[:, 0], -math.log(k)), torch_ce(d))


def torch_mse(d, y):
    """(1/K) sum_i (softmax(z)_i - [i = i(s)])^2 per object; d = z - z_{i(s)} (the same
    softmax): (N, K) -> (N,)."""
    r = torch.softmax(d, dim=1) - tF.one_hot(torch.as_tensor(y), d.shape[1]).double()
    return (r * r).sum(dim=1) / d.shape[1]
