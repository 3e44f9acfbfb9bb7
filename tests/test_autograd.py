"""Every layer, model and loss of minits against an independent autograd program
(PyTorch), in float64 on identical weights, under both implementations.

The torch side (tests/torch_reference.py, and the losses' formulas below) is
written from the paper -- Eq. (1)-(4) for the network and the cross-entropy, Eq. (9)
for R, alpha_hat = alpha / R^{1/(M-1)}, Eq. (12), (13), (16), (17) for the losses --
and never calls a minits computation: it reads the minits model's list of layers
only to build the same network, and copies its weights. The split of Eq. (13) is
decided on the torch side too, and the two splits must agree. Every test runs the
minits side under both implementations (the ``impl`` fixture: the plain objects, then
their fast twins of minits.fast), and the fast-only output blocking of FastConv2d is
checked on its own; run the module with -s to see the worst error per family.
"""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="optional comparison with PyTorch")
from torch_reference import (  # noqa: E402
    scalar,
    tensors,
    torch_ce,
    torch_confidence,
    torch_differences,
    torch_forward,
    torch_layer,
    torch_mse,
    torch_normalized,
    torch_p_true,
    torch_truncated,
)

import minits  # noqa: E402
from minits import fast, losses, models  # noqa: E402

RTOL = 1e-12
GAP = 1e-6  # no confidence (or p_{i(s)}) closer than this to a threshold eta (or k)
WORST = {}  # family -> largest relative error seen, printed at the end (pytest -s)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread_and_report():
    """Torch on one thread for this module (its small convolutions took 30 ms instead of
    40 us on two shared cores); at the end, the worst error per family (pytest -s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    for family, err in sorted(WORST.items()):
        print(f"\n  worst relative error, {family}: {err:.2e}", end="")


# -- comparison -----------------------------------------------------------------------

def rel_err(a, b):
    """max|a - b| / max|b|: the error relative to the largest entry of the reference.

    Entry-wise rtol alone would fail on entries that come out of cancelling sums
    (a gradient entry near 0 carries the rounding of its largest terms), so the
    tolerance is scaled to the array's magnitude: rtol = 1e-12 with atol = 1e-12 max|b|.
    Float64 rounding of two summation orders is ~1e-15 here; a wrong formula is off by
    far more than 1e-12.
    """
    a = np.asarray(a)
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    assert a.shape == b.shape, f"shape {a.shape} != torch's {b.shape}"
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), np.finfo(float).tiny)


def check(family, what, a, b):
    """Assert minits' a (float64, no silent dtype change) equals torch's b to RTOL."""
    if isinstance(a, np.ndarray):
        assert a.dtype == np.float64, f"{family}: {what} has dtype {a.dtype}"
    err = rel_err(a, b)
    WORST[family] = max(WORST.get(family, 0.0), err)
    assert err <= RTOL, f"{family}: {what} differs from torch by {err:.3g} (relative)"


def threshold_between(values, positive=True):
    """A threshold in the widest gap of the sorted values, with values on both sides
    and none within GAP of it (positive: a threshold > 0, as eta must be)."""
    v = np.sort(np.asarray(values))
    mids, gaps = (v[1:] + v[:-1]) / 2, v[1:] - v[:-1]
    ok = mids > 0 if positive else np.ones_like(mids, bool)
    assert ok.any(), f"no threshold splits {v}"
    i = np.argmax(np.where(ok, gaps, -1))
    assert gaps[i] / 2 > GAP, f"values {v} too close together to split"
    return float(mids[i])


# -- layers ---------------------------------------------------------------------------

def compare_layer(family, layer, x, seed):
    """Forward output, dx and every parameter gradient for a random upstream dout;
    layer: a plain layer or a fast one (the torch side reads its type and settings)."""
    xt = torch.tensor(x, requires_grad=True)
    pt = tensors(layer.params)
    out_t = torch_layer(layer, xt, pt)
    dout = np.random.default_rng(seed + 1).standard_normal(tuple(out_t.shape))
    out_t.backward(torch.tensor(dout))
    out = np.array(layer.forward(x))
    dx = np.array(layer.backward(dout))
    check(family, "forward", out, out_t)
    check(family, "dx", dx, xt.grad)
    for name in pt:
        check(family, f"d{name}", layer.grads[name], pt[name].grad)
    assert set(layer.grads) == set(pt)


def with_random_bias(layer, rng):
    if "b" in layer.params:  # biases start at 0: make them count
        layer.params["b"][...] = rng.standard_normal(layer.params["b"].shape)
    return layer


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("N, d_in, d_out", [(3, 5, 4), (1, 7, 2)])
def test_linear(impl, bias, N, d_in, d_out):
    rng = np.random.default_rng(N + d_in)
    layer = with_random_bias(minits.Linear(d_in, d_out, bias=bias, dtype=np.float64, rng=rng), rng)
    compare_layer("Linear", impl(layer), rng.standard_normal((N, d_in)), 1)


CONV_CASES = [  # N, C, F, k, stride, padding, H, W
    (2, 2, 3, 3, 1, 0, 7, 6),
    (1, 2, 3, 3, 2, 1, 9, 8),     # stride != kernel, padding, batch 1
    (2, 1, 2, 5, 3, 2, 11, 13),   # odd sizes, stride > 1 < k, trailing rows unused
    (3, 3, 4, 2, 2, 0, 8, 8),     # stride = kernel
    (2, 2, 2, 1, 1, 0, 5, 5),     # 1 x 1 kernel
    (2, 3, 5, 3, 1, 2, 6, 7),     # padding > k // 2
]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d(impl, bias, case):
    N, C, F, k, s, p, H, W = case
    rng = np.random.default_rng(sum(case))
    layer = minits.Conv2d(C, F, k, stride=s, padding=p, bias=bias, dtype=np.float64, rng=rng)
    compare_layer("Conv2d", impl(with_random_bias(layer, rng)),
                  rng.standard_normal((N, C, H, W)), 2)


@pytest.mark.parametrize("block", [1, 2, 3, 4])
@pytest.mark.parametrize("case", [(2, 2, 3, 3, 1, 0, 7, 10), (1, 1, 2, 5, 2, 1, 8, 13)])
def test_conv2d_blocked(block, case):
    """FastConv2d's output blocking, fast-only (any b computes the same convolution)."""
    N, C, F, k, s, p, H, W = case
    rng = np.random.default_rng(block)
    layer = fast.FastConv2d(C, F, k, stride=s, padding=p, bias=True, dtype=np.float64, rng=rng,
                            block=block)
    compare_layer("Conv2d", with_random_bias(layer, rng), rng.standard_normal((N, C, H, W)), 3)


@pytest.mark.parametrize("k, s, H, W", [(2, 2, 8, 8), (3, 2, 9, 7), (2, 1, 5, 6), (3, 3, 10, 11),
                                        (3, 1, 6, 5)])
def test_maxpool2d(impl, k, s, H, W):
    """Overlapping windows (s < k) included; continuous values, so no window has a tie."""
    x = np.random.default_rng(k * s + H).standard_normal((2, 3, H, W))
    assert np.unique(x).size == x.size
    compare_layer("MaxPool2d", impl(minits.MaxPool2d(k, s)), x, 4)


SIMPLE_LAYERS = {  # name -> (layer, input shape); ReLU's inputs are kept away from 0
    "ReLU": (minits.ReLU, (4, 3, 5)),
    "Softmax": (minits.Softmax, (5, 4)),
    "Softmax_3d": (minits.Softmax, (2, 3, 7)),
    "Flatten": (minits.Flatten, (3, 2, 4, 5)),
}


@pytest.mark.parametrize("name", sorted(SIMPLE_LAYERS))
def test_parameter_free_layers(impl, name):
    make, shape = SIMPLE_LAYERS[name]
    rng = np.random.default_rng(len(name))
    x = rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.1, 3.0, size=shape)
    compare_layer(name.split("_")[0], impl(make()), x, 5)


@pytest.mark.parametrize("name", ["ReLU", "MaxPool2d", "MaxPool2d_overlapping"])
def test_kinks_take_the_same_subgradient(impl, name):
    """Small integers: many exact zeros and tied windows. Both sides take ReLU'(0) = 0
    and send a tied window's gradient to its first maximum in row-major order."""
    layer = {"ReLU": minits.ReLU(), "MaxPool2d": minits.MaxPool2d(2),
             "MaxPool2d_overlapping": minits.MaxPool2d(3, 1)}[name]
    x = np.random.default_rng(8).integers(-2, 3, size=(2, 3, 6, 7)).astype(np.float64)
    compare_layer(name.split("_")[0], impl(layer), x, 8)


# -- models ---------------------------------------------------------------------------

def randomize_biases(model, seed):
    rng = np.random.default_rng(seed)
    for layer in model.linear_layers():
        with_random_bias(layer, rng)
    return model


MODELS = {  # name -> (model, input shape)
    "mlp": lambda: (models.mlp([20, 7, 3], dtype=np.float64, seed=1), (6, 20)),
    "mlp_bias": lambda: (randomize_biases(models.mlp([20, 7, 3], bias=True, dtype=np.float64,
                                                     seed=2), 2), (6, 20)),
    "lenet5_K10": lambda: (models.lenet5(10, dtype=np.float64, seed=3), (2, 3, 32, 32)),
    "lenet5_K100": lambda: (models.lenet5(100, dtype=np.float64, seed=4), (2, 3, 32, 32)),
    "lenet5_bias": lambda: (randomize_biases(models.lenet5(10, bias=True, dtype=np.float64,
                                                           seed=5), 5), (2, 3, 32, 32)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_logits_and_gradients(impl, name):
    """Logits and every gradient of sum(logits * G), G random."""
    model, shape = MODELS[name]()
    rng = np.random.default_rng(11)
    x = rng.standard_normal(shape)
    xt = torch.tensor(x, requires_grad=True)
    alphas = [tensors(layer.params) for layer in model.linear_layers()]
    X_t = torch_forward(model, xt, alphas)
    G = rng.standard_normal(tuple(X_t.shape))
    (X_t * torch.tensor(G)).sum().backward()
    model = impl(model)
    X = np.array(model.forward(x))
    dx = np.array(model.backward(G))
    check("models", f"{name} logits", X, X_t)
    check("models", f"{name} dx", dx, xt.grad)
    for l, (layer, p) in enumerate(zip(model.linear_layers(), alphas, strict=True)):
        for k in p:
            check("models", f"{name} layer {l} d{k}", layer.grads[k], p[k].grad)


# -- losses ---------------------------------------------------------------------------

LOSS_NETS = {  # bias-free mlp and small LeNet-5, and an mlp with biases (X_hat literal)
    "mlp": lambda: (models.mlp([20, 7, 3], dtype=np.float64, seed=21), (16, 20)),
    "mlp_bias": lambda: (randomize_biases(models.mlp([20, 7, 3], bias=True, dtype=np.float64,
                                                     seed=22), 22), (16, 20)),
    "lenet5": lambda: (models.lenet5(5, in_channels=1, input_size=16, dtype=np.float64, seed=23),
                       (12, 1, 16, 16)),
}


def loss_setup(net):
    """(model, x, y, alphas, X): labels half right (argmax of the raw logits X), half
    random, so that both cases of every equation occur; alphas: torch copies of alpha."""
    model, shape = LOSS_NETS[net]()
    rng = np.random.default_rng(len(net))
    x = rng.standard_normal(shape)
    alphas = [tensors(layer.params) for layer in model.linear_layers()]
    X = torch_forward(model, torch.tensor(x), alphas)
    y = rng.integers(0, X.shape[1], size=len(x))
    y[::2] = X.detach().argmax(dim=1).numpy()[::2]
    return model, x, y, alphas, X


def compare_loss(family, impl, model, x, y, loss, alphas, t_value, t_scales, trainable, t_second):
    """Run the minits loss (forward, backward) in impl's implementation (the plain model
    and loss, or their fast twins); compare with torch's batch mean t_value, every layer's
    gradient, the scales t_scales (name -> tensor; R1 = R(alpha^0) when not given), the
    gradients of the trainable ones, and the split."""
    t_value.backward()
    model, loss = impl(model), impl(loss)
    value = loss.forward(model, x, y)
    loss.backward()
    check(family, "value", value, t_value)
    for l, (layer, p) in enumerate(zip(model.linear_layers(), alphas, strict=True)):
        for k in p:
            check(family, f"layer {l} d{k}", layer.grads[k], p[k].grad)
    for name, t in t_scales.items():
        check(family, name, loss.params[name], t)
    assert set(loss.grads) == set(trainable)
    for name in trainable:
        check(family, f"d{name}", loss.grads[name], t_scales[name].grad)
    np.testing.assert_array_equal(loss.last.second, t_second)


def split(delta, eta):
    """Eq. (13)'s second case, delta >= eta, with both cases populated, none near eta."""
    second = delta >= eta
    assert 0 < second.sum() < len(delta) and np.min(np.abs(delta - eta)) > GAP
    return second


@pytest.mark.parametrize("net", sorted(LOSS_NETS))
@pytest.mark.parametrize("kind", ["cross_entropy", "truncated"])
def test_raw_logit_losses(impl, net, kind):
    """CrossEntropy, Eq. (4), and Truncated(k), Eq. (12), on the raw logits X."""
    model, x, y, alphas, X = loss_setup(net)
    d = torch_differences(X, y)
    if kind == "cross_entropy":
        loss, values, second = losses.CrossEntropy(), torch_ce(d), np.zeros(len(y), bool)
    else:
        p_true = torch_p_true(d)
        k = threshold_between(p_true)
        loss, values, second = losses.Truncated(k), torch_truncated(d, k), p_true >= k
    compare_loss(kind, impl, model, x, y, loss, alphas, values.mean(), {}, (), second)


TWO_SCALE_CASES = {  # name -> (kind, objective, confidence, R1, R2); None: the default scale
    "two_scale_raw": ("two", "cross_entropy", "raw", None, None),
    "two_scale_normalized": ("two", "cross_entropy", "normalized", 2.0, 9.0),
    "two_scale_scaled": ("two", "cross_entropy", "scaled", 3.0, 12.0),
    "one_scale": ("one", "cross_entropy", "raw", None, None),
    "fixed": ("fixed", "cross_entropy", "raw", None, None),
    "wrapper_mse": ("two", "mse", "raw", 2.0, 15.0),
    "wrapper_truncated": ("two", "truncated", "normalized", 2.0, 9.0),
}


def torch_scales(kind, R1, R2, R0):
    """R1, R2 tensors (R1 = R(alpha^0), R2 = 10 R1 by default, docs/decisions.md#D9) and the names
    of the trainable ones: Eq. (13) trains both, OneScale only R1 (R2 := R1), Eq. (16) none."""
    R1 = scalar(R0 if R1 is None else R1, grad=kind != "fixed")
    if kind == "one":
        return R1, R1, ("R1",)
    R2 = scalar(10 * R1.item() if R2 is None else R2, grad=kind != "fixed")
    return R1, R2, () if kind == "fixed" else ("R1", "R2")


def torch_objective(objective, d, y):
    """Per-object objective on the rescaled logits, given as d = R_k (X_hat - X_hat_{i(s)}),
    and the k it chose (Eq. (12) only)."""
    if objective == "cross_entropy":
        return torch_ce(d), None
    if objective == "mse":
        return torch_mse(d, y), None
    k = threshold_between(torch_p_true(d))
    return torch_truncated(d, k), k


def minits_two_scale(kind, objective, eta, R1, R2, confidence, k):
    if kind == "one":
        return losses.OneScale(R1=R1, confidence=confidence)
    if objective != "cross_entropy":
        return losses.TwoScaleWrapper(objective, eta, R1=R1, R2=R2, confidence=confidence, k=k)
    return losses.TwoScale(eta, R1=R1, R2=R2, confidence=confidence, fixed=kind == "fixed")


@pytest.mark.parametrize("net", sorted(LOSS_NETS))
@pytest.mark.parametrize("case", sorted(TWO_SCALE_CASES))
def test_two_scale_losses(impl, net, case):
    """Eq. (13) (and OneScale, Eq. (16), the generic wrapper): per object
    objective(R_k X_hat), k = 2 where delta >= eta, R1 and R2 trainable."""
    kind, objective, confidence, R1_init, R2_init = TWO_SCALE_CASES[case]
    model, x, y, alphas, X = loss_setup(net)
    X_hat, R = torch_normalized(model, torch.tensor(x), alphas)
    R1, R2, trainable = torch_scales(kind, R1_init, R2_init, R.item())
    delta = torch_confidence({"raw": X, "normalized": X_hat, "scaled": R1 * X_hat}[confidence], y)
    if kind == "one":
        eta, second = math.inf, np.zeros(len(y), bool)
    else:
        eta = threshold_between(delta)
        second = split(delta, eta)
    scale = torch.where(torch.as_tensor(second), R2, R1)
    values, k = torch_objective(objective, scale[:, None] * torch_differences(X_hat, y), y)
    loss = minits_two_scale(kind, objective, eta, R1_init, R2_init, confidence, k)
    t_scales = {"R1": R1} if kind == "one" else {"R1": R1, "R2": R2}
    compare_loss(case, impl, model, x, y, loss, alphas, values.mean(), t_scales, trainable,
                 second)


SEPARATION_CASES = [  # scale, confidence, Rs (None: the default 10, docs/decisions.md#D9)
    ("fixed", "raw", None), ("fixed", "scaled", 6.0),
    ("trained", "raw", None), ("trained", "normalized", 6.0),
    ("live", "raw", None), ("live", "scaled", 6.0),
]


@pytest.mark.parametrize("net", sorted(LOSS_NETS))
@pytest.mark.parametrize("scale, confidence, Rs_init", SEPARATION_CASES)
def test_separation_loss(impl, net, scale, confidence, Rs_init):
    """Eq. (17): CE(R X_hat) if delta < eta, CE(Rs R X_hat) if delta >= eta, Rs trainable;
    R = R(alpha^0) a constant ("fixed"), a trainable scale from R(alpha^0) ("trained"),
    or R(alpha) differentiated through alpha ("live", docs/decisions.md#D11)."""
    model, x, y, alphas, X = loss_setup(net)
    X_hat, R_alpha = torch_normalized(model, torch.tensor(x), alphas)
    R = {"fixed": lambda: scalar(R_alpha.item()),
         "trained": lambda: scalar(R_alpha.item(), grad=True),
         "live": lambda: R_alpha}[scale]()
    Rs = scalar(10.0 if Rs_init is None else Rs_init, grad=True)
    t_scales = {"Rs": Rs, "R": R} if scale == "trained" else {"Rs": Rs}
    delta = torch_confidence({"raw": X, "normalized": X_hat, "scaled": R * X_hat}[confidence], y)
    eta = threshold_between(delta)
    second = split(delta, eta)
    R_k = torch.where(torch.as_tensor(second), Rs * R, R)  # R in the first case, Rs R in the second
    values = torch_ce(R_k[:, None] * torch_differences(X_hat, y))
    kw = {} if Rs_init is None else {"Rs": Rs_init}
    loss = losses.TwoScaleSeparation(eta, scale=scale, confidence=confidence, **kw)
    compare_loss(f"separation_{scale}", impl, model, x, y, loss, alphas, values.mean(),
                 t_scales, tuple(t_scales), second)
