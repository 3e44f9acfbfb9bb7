"""The grader's hidden checks: one function per task, CHECKS[task](mt, gc).

mt is the minits under test (a submission's code for the task, the solution
everywhere else: grade.py); gc is the grader's own minits.gradcheck, loaded from the
instructor's copy, so that a submission's edits of its gradcheck change nothing. A
check returns when the task is right and raises otherwise:

    CheckFailed / gc.GradientCheckError   a wrong result, named the checker's way
    anything else                         the submission's code raised it

Every exception carries ``grader_case``: the shapes and settings that exposed it.

Each check runs a few fixed cases chosen to reach every branch first (padding 0 and
> 0, stride != kernel, overlapping and disjoint windows, batch 1, K = 2 and K = 100,
ties, objects on both sides of eta and exactly at it), then Hypothesis examples,
derandomised: the same submission gets the same examples and the same grade every
time. Forward passes are compared with naive loops written here (rtol 1e-10 in
float64); backward passes with central differences in float64 (check_layer's and
check_loss's defaults: eps 1e-6, |analytic - numerical| <= 1e-7 + 1e-5 |.|).

This file is loaded by path in the grading process (child.py); it imports minits
only through the mt it is given.
"""

import importlib
import math
from contextlib import contextmanager

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = 20
RTOL, ATOL = 1e-10, 1e-12


class CheckFailed(AssertionError):
    """A result of the submission is wrong; the message says which element and by how much."""


def hypothesis_settings(examples=EXAMPLES):
    return settings(derandomize=True, database=None, deadline=None, max_examples=examples,
                    suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
                    print_blob=False)


@contextmanager
def case(description):
    """Attach what is being tried to any exception raised inside (the innermost wins)."""
    try:
        yield
    except BaseException as error:
        if not hasattr(error, "grader_case"):
            error.grader_case = description
        raise


def expect(name, yours, expected, rtol=RTOL, atol=ATOL):
    """Compare a result with the naive one: shape, then every element."""
    yours = np.asarray(yours)
    expected = np.asarray(expected)
    if yours.shape != expected.shape:
        raise CheckFailed(f"{name}: your result has shape {yours.shape}, expected "
                          f"{expected.shape}")
    if yours.dtype == bool or expected.dtype == bool:
        wrong = np.flatnonzero(yours.astype(bool) != expected.astype(bool))
        if wrong.size:
            at = np.unravel_index(wrong[0], expected.shape)
            raise CheckFailed(f"{name}: wrong at element {tuple(map(int, at))}: expected "
                              f"{expected[at]}, yours {yours[at]}")
        return
    yours, expected = yours.astype(np.float64), expected.astype(np.float64)
    if not np.all(np.isfinite(yours) == np.isfinite(expected)):
        at = np.unravel_index(np.argmax(np.isfinite(yours) != np.isfinite(expected)),
                              expected.shape)
        raise CheckFailed(f"{name}: element {tuple(map(int, at))} is {yours[at]}, expected "
                          f"{expected[at]} (an overflow?)")
    err = np.abs(yours - expected)
    allowed = atol + rtol * np.abs(expected)
    if np.any(err > allowed):
        at = np.unravel_index(np.argmax(err - allowed), expected.shape)
        rel = err[at] / max(abs(expected[at]), abs(yours[at]), 1e-300)
        raise CheckFailed(f"{name}: wrong at element {tuple(map(int, at))}: expected "
                          f"{expected[at]:.10g}, yours {yours[at]:.10g}, relative error "
                          f"{rel:.3g}")


def module(mt, name):
    return importlib.import_module(f"{mt.__name__}.{name}")


def rng(*seed):
    return np.random.default_rng(list(seed))


# ---------------------------------------------------------------- naive references

def naive_conv_windows(x, k, s):
    """x (N, C, H, W) -> windows (N, C, Ho, Wo, k, k), by loops."""
    N, C, H, W = x.shape
    Ho, Wo = (H - k) // s + 1, (W - k) // s + 1
    out = np.empty((N, C, Ho, Wo, k, k), dtype=x.dtype)
    for y in range(Ho):
        for xo in range(Wo):
            out[:, :, y, xo] = x[:, :, s * y:s * y + k, s * xo:s * xo + k]
    return out


def naive_cross_entropy(z, y):
    z = z.astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(z - m).sum(axis=1)) + m[:, 0]
    return log_sum - z[np.arange(len(y)), y]


# ---------------------------------------------------------------- strategies

def arrays(shape, seed, low=-1.0, high=1.0):
    return rng(seed, *shape).uniform(low, high, size=shape)


def distinct(shape, seed):
    """Values at least 0.01 apart, so that a perturbation of 1e-6 keeps every maximum."""
    n = int(np.prod(shape))
    return rng(seed, n).permutation(n).reshape(shape) / 100.0 - n / 200.0


@st.composite
def conv_shapes(draw, pool=False):
    """(N, C, H, W, k, s, p) whose windows fit: padding 0..2 (none for pooling)."""
    k = draw(st.integers(1, 3))
    s = draw(st.integers(1, 3))
    p = 0 if pool else draw(st.integers(0, 2))
    H = draw(st.integers(max(1, k - 2 * p), 7))
    W = draw(st.integers(max(1, k - 2 * p), 7))
    return draw(st.integers(1, 2)), draw(st.integers(1, 2)), H, W, k, s, p


# ---------------------------------------------------------------- the checks

def check_linear_forward(mt, gc):
    linear = module(mt, "layers.linear")

    def one(N, D, F, bias, seed):
        x, W = arrays((N, D), seed), arrays((F, D), seed + 1)
        b = arrays((F,), seed + 2) if bias else None
        with case(f"x {x.shape}, W {W.shape}, b {b.shape if bias else None}"):
            out, cache = linear.linear_forward(x, W, b)
            expected = np.einsum("nd,fd->nf", x, W) + (0 if b is None else b)
            expect("out", out, expected)
            dout = arrays((N, F), seed + 3)
            dx, dW, _ = linear.linear_backward(dout, cache)  # the cache backward needs
            expect("dx of the solution's backward on your cache", dx, dout @ W)
            expect("dW of the solution's backward on your cache", dW, dout.T @ x)

    for N, D, F, bias in ((1, 3, 2, True), (4, 2, 5, False), (3, 1, 1, True)):
        one(N, D, F, bias, 0)
    _run(lambda N, D, F, bias: one(N, D, F, bias, 7),
         st.integers(1, 4), st.integers(1, 5), st.integers(1, 5), st.booleans())


def _run(body, *strategies, examples=EXAMPLES):
    """body(*values) on derandomised Hypothesis examples of the strategies."""
    hypothesis_settings(examples)(given(*strategies)(body))()


def check_linear_backward(mt, gc):
    def one(N, D, F, bias):
        layer = mt.Linear(D, F, bias=bias, dtype=np.float64, rng=rng(N, D, F))
        if bias:
            layer.params["b"][...] = arrays((F,), 5)
        with case(f"Linear({D}, {F}, bias={bias}), x ({N}, {D})"):
            gc.check_layer(layer, arrays((N, D), 1))

    for args in ((1, 3, 2, True), (3, 2, 4, False), (2, 4, 3, True)):
        one(*args)
    _run(one, st.integers(1, 4), st.integers(1, 5), st.integers(1, 5), st.booleans())


def check_relu_backward(mt, gc):
    act = module(mt, "layers.activations")

    def one(shape, seed):
        x = arrays(shape, seed)
        x = np.where(np.abs(x) < 0.05, 0.5, x)  # no value within reach of the kink
        with case(f"x {shape}"):
            gc.check_layer(mt.ReLU(), x)

    one((1, 3), 0)
    one((2, 3, 4, 2), 1)
    _run(one, st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple),
         st.integers(0, 99))
    x = np.array([[-1.0, 0.0, 1.0, 0.0, -0.0]])
    with case(f"x = {x.tolist()}: the kink at 0"):
        _, cache = act.relu_forward(x)
        expect("dx at the kink (the derivative of max(x, 0) is taken as 0 at x = 0)",
               act.relu_backward(np.full_like(x, 2.0), cache), [[0.0, 0.0, 2.0, 0.0, 0.0]])


def check_softmax_cross_entropy(mt, gc):
    ce = module(mt, "losses.cross_entropy").cross_entropy

    def one(N, K, scale, seed):
        z = arrays((N, K), seed) * scale
        y = rng(seed, N, K).integers(0, K, size=N)
        with case(f"z ({N}, {K}) of magnitude up to {scale:g}, y = {y.tolist()}"):
            values, dz = ce(z, y)
            expect("values", values, naive_cross_entropy(z, y), rtol=1e-9)
            gc.check_gradient(lambda: float(np.sum(ce(z, y)[0])), z, dz, name="z")

    for N, K, scale in ((1, 2, 1.0), (3, 100, 3.0), (4, 5, 0.1)):
        one(N, K, scale, 0)
    _run(lambda N, K, scale: one(N, K, scale, 3),
         st.integers(1, 5), st.sampled_from([2, 3, 4, 7, 100]), st.sampled_from([0.5, 2.0, 10.0]))
    z = np.array([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 999.0]])
    y = np.array([0, 0])
    with case(f"z = {z.tolist()}, y = {y.tolist()}: huge logits must not overflow"):
        values, dz = ce(z, y)
        expect("values", values, naive_cross_entropy(z, y))
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(2), y] -= 1
        expect("dz", dz, p, atol=1e-12)


def check_im2col(mt, gc):
    im2col = module(mt, "layers.im2col").im2col

    def one(N, C, Hp, Wp, k, s):
        if k > min(Hp, Wp):
            return
        x = arrays((C, N, Hp, Wp), N + 10 * C)
        with case(f"x_pad (C, N, Hp, Wp) = {x.shape}, kernel {k}, stride {s}"):
            windows = naive_conv_windows(x.transpose(1, 0, 2, 3), k, s)  # (N, C, Ho, Wo, k, k)
            expected = windows.transpose(1, 4, 5, 0, 2, 3).reshape(C * k * k, -1)
            expect("cols", im2col(x, k, s), expected)

    for args in ((1, 1, 3, 3, 3, 1), (2, 3, 5, 7, 3, 2), (1, 2, 6, 4, 2, 3), (3, 1, 4, 5, 1, 2)):
        one(*args)
    _run(one, st.integers(1, 3), st.integers(1, 3), st.integers(1, 7), st.integers(1, 7),
         st.integers(1, 4), st.integers(1, 3))


def check_conv_backward(mt, gc):
    im = module(mt, "layers.im2col")

    def one(N, C, H, W, k, s, p, F=2, bias=True):
        layer = mt.Conv2d(C, F, k, stride=s, padding=p, bias=bias, dtype=np.float64,
                          rng=rng(N, C, H, W, k, s, p))
        if bias:
            layer.params["b"][...] = arrays((F,), 3)
        x = arrays((N, C, H, W), 4)
        with case(f"Conv2d({C}, {F}, kernel_size={k}, stride={s}, padding={p}, "
                  f"bias={bias}), x {x.shape}"):
            gc.check_layer(layer, x)
            xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))).transpose(1, 0, 2, 3).copy()
            cols = arrays(im.im2col(xp, k, s).shape, 5)
            left, right = np.vdot(im.im2col(xp, k, s), cols), np.vdot(
                xp, im.col2im(cols, xp.shape, k, s))
            if not math.isclose(left, right, rel_tol=1e-10, abs_tol=1e-12):
                raise CheckFailed(f"col2im is not the adjoint of im2col: <im2col(x), c> = "
                                  f"{left:.10g} but <x, col2im(c)> = {right:.10g}")

    for args in ((1, 1, 4, 4, 3, 1, 1), (2, 2, 5, 5, 3, 2, 1), (1, 2, 6, 5, 2, 3, 0),
                 (1, 1, 3, 3, 3, 3, 0), (2, 1, 5, 4, 3, 1, 2)):
        one(*args)
    one(1, 2, 4, 4, 2, 1, 0, bias=False)
    _run(lambda shape: one(*shape), conv_shapes())


def check_maxpool_forward(mt, gc):
    pool = module(mt, "layers.pool")

    def one(N, C, H, W, k, s, ties=False):
        x = (rng(N, C, H, W).integers(0, 3, size=(N, C, H, W)).astype(np.float64) if ties
             else distinct((N, C, H, W), k + s))
        with case(f"x {x.shape}{' with ties' if ties else ''}, kernel {k}, stride {s}"):
            out, cache = pool.maxpool_forward(x, k, s)
            windows = naive_conv_windows(x, k, s)  # (N, C, Ho, Wo, k, k)
            flat = windows.reshape(*windows.shape[:4], k * k)
            expect("out", out, flat.max(axis=-1))
            expect("argmax in the cache (offset i*k + j of the first maximum)", cache[0],
                   flat.argmax(axis=-1).astype(float))

    for args in ((1, 1, 4, 4, 2, 2), (2, 1, 5, 5, 3, 2), (1, 2, 5, 6, 2, 3), (1, 1, 3, 5, 1, 1)):
        one(*args)
    one(2, 2, 5, 5, 3, 2, ties=True)
    one(1, 1, 4, 4, 2, 2, ties=True)
    _run(lambda shape, ties: one(*shape[:6], ties=ties), conv_shapes(pool=True), st.booleans())


def check_maxpool_backward(mt, gc):
    pool = module(mt, "layers.pool")

    def one(N, C, H, W, k, s):
        x = distinct((N, C, H, W), k + 2 * s)
        with case(f"MaxPool2d({k}, stride={s}), x {x.shape}"):
            gc.check_layer(mt.MaxPool2d(k, stride=s), x)

    def ties(N, C, H, W, k, s):
        x = rng(N, C, H, W, k).integers(0, 2, size=(N, C, H, W)).astype(np.float64)
        with case(f"MaxPool2d({k}, stride={s}), x {x.shape} with ties"):
            out, cache = pool.maxpool_forward(x, k, s)
            dout = arrays(out.shape, 9)
            flat = naive_conv_windows(x, k, s).reshape(*out.shape, k * k)
            first = flat.argmax(axis=-1)
            expected = np.zeros_like(x)
            for n, c, y, xo in np.ndindex(out.shape):
                i, j = divmod(int(first[n, c, y, xo]), k)
                expected[n, c, s * y + i, s * xo + j] += dout[n, c, y, xo]
            expect("dx (ties: the whole gradient to the first maximum)",
                   pool.maxpool_backward(dout, cache), expected)

    for args in ((1, 1, 4, 4, 2, 2), (2, 1, 5, 5, 3, 2), (1, 2, 5, 6, 2, 3), (1, 1, 4, 4, 2, 1)):
        one(*args)
        ties(*args)
    _run(lambda shape: one(*shape[:6]), conv_shapes(pool=True))


def check_confidence(mt, gc):
    scale = module(mt, "scale")

    def one(N, K, seed, tie=False):
        X = arrays((N, K), seed)
        if tie:
            X = np.round(X * 2) / 2  # ties among the logits
        y = rng(seed, N).integers(0, K, size=N)
        with case(f"X ({N}, {K}){' with ties' if tie else ''}, y = {y.tolist()}"):
            true, runner_up = scale.confidence_terms(X, y)
            others = np.where(np.arange(K) == y[:, None], -np.inf, X)
            expect("X_i(s)", true, X[np.arange(N), y])
            expect("max_{i != i(s)} X_i", runner_up, others.max(axis=1))

    for args in ((1, 2, 0), (3, 100, 1), (5, 4, 2), (4, 3, 3, True)):
        one(*args)
    _run(lambda N, K, seed, tie: one(N, K, seed, tie), st.integers(1, 6),
         st.sampled_from([2, 3, 5, 100]), st.integers(0, 50), st.booleans())


def small_models(mt):
    """(description, model) pairs in float64: biases or not, dense and convolutional."""
    models = module(mt, "models")
    layers = mt.layers
    conv = layers.Sequential([layers.Conv2d(1, 2, 3, padding=1, bias=True, dtype=np.float64,
                                            rng=rng(1)),
                              layers.ReLU(), layers.MaxPool2d(2), layers.Flatten(),
                              layers.Linear(8, 3, dtype=np.float64, rng=rng(2))])
    return [("mlp [5, 4, 3] without bias", models.mlp([5, 4, 3], seed=1, dtype=np.float64)),
            ("mlp [6, 5, 4, 3] with biases",
             models.mlp([6, 5, 4, 3], bias=True, seed=2, dtype=np.float64)),
            ("Conv2d(1, 2, 3, padding=1, bias) - ReLU - MaxPool2d(2) - Linear(8, 3)", conv)]


def model_input(name, seed):
    return arrays((3, 1, 4, 4) if "Conv2d" in name else (3, 6 if "[6" in name else 5), seed)


def loss_case(mt, bias, seed=5):
    """A float64 mlp, an input, labels it classifies correctly (all delta > 0) and an eta
    halfway between two of their confidences: objects on both sides, none near it."""
    model = module(mt, "models").mlp([5, 4, 3], bias=bias, seed=seed, dtype=np.float64)
    x = arrays((6, 5), seed)
    X = model.forward(x)
    y = X.argmax(axis=1)
    delta = np.sort(X[np.arange(6), y] - np.where(np.arange(3) == y[:, None], -np.inf,
                                                   X).max(axis=1))
    return model, x, y, float(delta[2] + delta[3]) / 2


def check_scale_r(mt, gc):
    scale = module(mt, "scale")
    for name, model in small_models(mt):
        for p in (p for layer in model.linear_layers() for p in layer.params.values()):
            p[...] = arrays(p.shape, p.size) * 1.5  # bias parameters non-zero too
        with case(f"model: {name}"):
            sq = [sum(float(np.sum(p ** 2)) for p in layer.params.values())
                  for layer in model.linear_layers()]
            expect("squared norm of each linear layer (W and b together)",
                   scale.layer_sq_norms(model), sq)
            R = float(np.prod(np.sqrt(sq)))
            expect("R(alpha)", scale.scale_R(model), R)
            n = len(sq)
            expect("c = R^(-1/(M-1))", scale.normalization_factor(model), R ** (-1.0 / n))
            normalized = scale.normalized_params(model)
            R_hat = np.prod([np.sqrt(sum(np.sum(p ** 2) for p in layer.values()))
                             for layer in normalized])
            expect("R(alpha_hat), which must be 1", R_hat, 1.0, rtol=1e-9)


def check_alpha_hat_backward(mt, gc):
    losses = mt.losses
    for name, model in small_models(mt):
        x = model_input(name, 3)
        y = np.array([0, 2, 1])
        cases = [("OneScale(R1=3, fixed, confidence='normalized')",
                  losses.OneScale(R1=3.0, fixed=True, confidence="normalized")),
                 ("TwoScaleSeparation(eta=1e6, scale='live'): an explicit dL/dR as well",
                  losses.TwoScaleSeparation(eta=1e6, scale="live"))]
        for what, loss in cases:
            with case(f"model: {name}; loss: {what}; x {x.shape}"):
                gc.check_loss(loss, model, x, y)


def check_eq13_split(mt, gc):
    base = module(mt, "losses.base")
    two = module(mt, "losses.two_scale")
    eta = 0.25
    delta = np.array([-1.0, 0.0, 0.2499, 0.25, 0.2501, 3.0])
    with case(f"delta = {delta.tolist()}, eta = {eta} (exactly at eta: the second case)"):
        expect("second (delta >= eta)", base.second_branch(delta, eta), delta >= eta)
    for dtype in (np.float64, np.float32):
        X_hat = arrays((6, 4), 1).astype(dtype)
        y = np.array([0, 1, 2, 3, 0, 1])
        second = delta >= eta
        with case(f"X_hat (6, 4) {np.dtype(dtype).name}, R1 = 2, R2 = 20, "
                  f"second = {second.tolist()}"):
            R_k, values, dz, dX_hat = two.at_scales(module(mt, "losses.cross_entropy")
                                                    .cross_entropy, X_hat, y, 2.0, 20.0, second)
            expect("R_k", R_k, np.where(second, 20.0, 2.0))
            if np.asarray(R_k).dtype != dtype:
                raise CheckFailed(f"R_k has dtype {np.asarray(R_k).dtype}: it must keep the "
                                  f"dtype of X_hat ({np.dtype(dtype).name})")
            expect("values", values, naive_cross_entropy(X_hat * np.where(second, 20.0, 2.0)
                                                         [:, None], y), rtol=1e-5,
                   atol=1e-6)
    X_hat, y, second = arrays((6, 4), 1), np.array([0, 1, 2, 3, 0, 1]), delta >= eta
    _, dX_hat, _, _ = two.two_scale_value_and_grad(X_hat, y, 2.0, 20.0, second)
    with case(f"X_hat (6, 4), R1 = 2, R2 = 20, second = {second.tolist()}: dL/dX_hat"):
        gc.check_gradient(lambda: float(np.sum(two.two_scale_value_and_grad(
            X_hat, y, 2.0, 20.0, second)[0])), X_hat, dX_hat, name="X_hat")
    for bias in (False, True):
        model, x, y, eta = loss_case(mt, bias)
        with case(f"TwoScale(eta={eta:.6g}, R1=2, R2=20) on an mlp [5, 4, 3] "
                  f"{'with' if bias else 'without'} biases, x (6, 5): dL/dalpha, dL/dR1, "
                  "dL/dR2"):
            gc.check_loss(mt.losses.TwoScale(eta=eta, R1=2.0, R2=20.0), model, x, y)
    model = module(mt, "models").mlp([5, 4, 3], seed=3, dtype=np.float64)
    x, y = arrays((8, 5), 2), rng(4).integers(0, 3, size=8)
    X = model.forward(x)
    delta = X[np.arange(8), y] - np.where(np.arange(3) == y[:, None], -np.inf, X).max(axis=1)
    positive = np.sort(delta[delta > 0])
    eta = float(positive[len(positive) // 2]) if positive.size else 0.1  # one object at eta
    loss = mt.losses.TwoScale(eta=eta, R1=2.0, R2=20.0, reduction="none")
    with case(f"TwoScale(eta={eta:.6g}, R1=2, R2=20) on an mlp [5, 4, 3], x (8, 5): "
              f"an object exactly at eta"):
        values = loss.forward(model, x, y)
        second = delta >= eta
        from_eq13 = naive_cross_entropy(np.where(second, 20.0, 2.0)[:, None] *
                                        module(mt, "scale").normalized_logits(model, x), y)
        expect("per-object loss of Eq. (13)", values, from_eq13, rtol=1e-9)


def naive_dL_dR(X_hat, y, R_k):
    """Eq. (15) per object, in float64, as the paper writes it (with the max shift)."""
    R_k = np.broadcast_to(np.asarray(R_k, dtype=np.float64), (len(y),))
    out = np.empty(len(y))
    for n in range(len(y)):
        d = np.delete(X_hat[n] - X_hat[n, y[n]], y[n]).astype(np.float64)
        a = R_k[n] * d
        m = max(0.0, a.max())
        e = np.exp(a - m)
        out[n] = np.sum(d * e) / (np.exp(-m) + np.sum(e))
    return out


def check_eq15(mt, gc):
    two = module(mt, "losses.two_scale")
    ce = module(mt, "losses.cross_entropy").cross_entropy

    def one(N, K, R, per_object, seed):
        X_hat = arrays((N, K), seed)
        y = rng(seed, K).integers(0, K, size=N)
        R_k = np.linspace(R, 2 * R, N) if per_object else R
        where = (f"X_hat ({N}, {K}), y = {y.tolist()}, R_k = "
                 f"{np.round(R_k, 4).tolist() if per_object else R}")
        with case(where):
            for name, f in (("Eq. (15)", two.dL_dR_eq15), ("the general formula",
                                                             two.dL_dR_general)):
                yours = f(X_hat, y, R_k)
                expect(f"dL/dR_k by {name}", yours, naive_dL_dR(X_hat, y, R_k), rtol=1e-8,
                       atol=1e-12)
            r = np.array(np.broadcast_to(np.asarray(R_k, dtype=float), (N,)))
            gc.check_gradient(lambda: float(np.sum(ce(X_hat * r[:, None], y)[0])), r,
                              two.dL_dR_eq15(X_hat, y, r), name="R_k of each object")

    for args in ((1, 2, 1.0, False), (3, 100, 5.0, True), (4, 3, 0.5, False)):
        one(*args, 0)
    _run(lambda N, K, R, per: one(N, K, R, per, 2), st.integers(1, 5),
         st.sampled_from([2, 3, 6, 100]), st.sampled_from([0.1, 1.0, 7.0, 30.0]), st.booleans())
    model, x, y, eta = loss_case(mt, bias=True, seed=6)
    for name, loss in (("TwoScale", mt.losses.TwoScale(eta=eta, R1=2.0, R2=20.0)),
                       ("OneScale", mt.losses.OneScale(R1=3.0))):
        with case(f"{name}(eta={eta:.6g}) on an mlp [5, 4, 3] with biases, x (6, 5): "
                  "the scales' gradients"):
            gc.check_loss(loss, model, x, y)
    X_hat = np.array([[0.0, 1.0, -1.0], [1.0, 0.0, 0.5]])
    y = np.array([0, 0])
    with case(f"X_hat = {X_hat.tolist()}, y = {y.tolist()}, R_k = 1e4: no overflow"):
        expect("dL/dR_k by Eq. (15)", two.dL_dR_eq15(X_hat, y, 1e4), naive_dL_dR(X_hat, y, 1e4),
               rtol=1e-9)


def check_eq17_gradients(mt, gc):
    sep = module(mt, "losses.separation")
    two = module(mt, "losses.two_scale")

    def one(N, K, R, Rs, seed):
        X_hat = arrays((N, K), seed)
        y = rng(seed, N).integers(0, K, size=N)
        second = rng(seed, 1).random(N) < 0.5
        second[0] = True  # both cases in every example of two or more objects
        if N > 1:
            second[1] = False
        with case(f"X_hat ({N}, {K}), R = {R}, Rs = {Rs}, second = {second.tolist()}"):
            values, dX_hat, dRs, dR = sep.separation_value_and_grad(X_hat, y, R, Rs, second)
            v13, d13, _, _ = two.two_scale_value_and_grad(X_hat, y, R, Rs * R, second)
            expect("values (Eq. (13) at R1 = R, R2 = Rs R)", values, v13)
            expect("dX_hat", dX_hat, d13)

            def total(R_, Rs_):
                return float(np.sum(sep.separation_value_and_grad(X_hat, y, R_, Rs_,
                                                                  second)[0]))

            for name, analytic, f, at in (
                    ("Rs", dRs, lambda v: total(R, v[0]), Rs),
                    ("R", dR, lambda v: total(v[0], Rs), R)):
                gc.check_gradient(f, np.array([float(at)]), np.array([float(analytic)]),
                                  name=name)

    for args in ((1, 2, 1.0, 10.0), (4, 3, 2.5, 10.0), (5, 100, 0.5, 3.0)):
        one(*args, 0)
    model, x, y, eta = loss_case(mt, bias=False, seed=7)
    for scale in ("trained", "live"):
        loss = mt.losses.TwoScaleSeparation(eta=eta, scale=scale, confidence="normalized")
        with case(f"TwoScaleSeparation(eta={eta:.6g}, scale={scale!r}, confidence="
                  f"'normalized') on an mlp [5, 4, 3], x (6, 5): dL/dalpha, dL/dRs"
                  f"{', dL/dR' if scale == 'trained' else ''}"):
            gc.check_loss(loss, model, x, y)
    _run(lambda N, K, R, Rs: one(N, K, R, Rs, 1), st.integers(1, 6),
         st.sampled_from([2, 3, 10]), st.sampled_from([0.3, 1.0, 4.0]),
         st.sampled_from([1.5, 10.0, 30.0]))


class _Scales:
    """Just what SGD.step reads of a loss: params and grads."""

    def __init__(self, params, grads):
        self.params, self.grads = dict(params), dict(grads)


def check_eq14_sgd(mt, gc):
    models = module(mt, "models")
    for lr, params, grads in ((0.1, {"R1": 2.0, "R2": 20.0}, {"R1": 0.5, "R2": -3.0}),
                              (0.5, {"R": 1.5, "Rs": 10.0}, {"Rs": -2.0}),
                              (0.01, {"R1": 4.0}, {"R1": 100.0})):
        model = models.mlp([3, 2], seed=1, dtype=np.float64)
        layer = model.linear_layers()[0]
        layer.grads["W"][...] = 1.0
        W = layer.params["W"].copy()
        loss = _Scales(params, grads)
        with case(f"SGD(lr={lr}), loss.params = {params}, loss.grads = {grads}"):
            bad = mt.SGD(lr=lr, on_nonpositive_scale="ignore").step(model, loss)
            expected = {k: v - lr * grads.get(k, 0.0) for k, v in params.items()}
            for name in params:
                expect(f"{name} after the step ({'trained' if name in grads else 'fixed'})",
                       loss.params[name], expected[name], rtol=1e-15, atol=0)
            expect("alpha after the step", layer.params["W"], W - lr)
            if bad:
                raise CheckFailed(f"step reported non-positive scales {bad} where all are > 0")
    loss = _Scales({"R1": 0.1, "R2": 5.0}, {"R1": 2.0, "R2": 0.0})
    model = models.mlp([3, 2], seed=1, dtype=np.float64)
    with case("SGD(lr=0.1, on_nonpositive_scale='raise'), R1 = 0.1 with dL/dR1 = 2: "
              "the step would make R1 = -0.1"):
        try:
            mt.SGD(lr=0.1, on_nonpositive_scale="raise").step(model, loss)
        except mt.ScaleWarning:
            pass
        else:
            raise CheckFailed("the step made R1 <= 0 without raising ScaleWarning")
        expect("R1 (unchanged after the refused step)", loss.params["R1"], 0.1, rtol=0)


CHECKS = {
    "linear-forward": check_linear_forward,
    "linear-backward": check_linear_backward,
    "relu-backward": check_relu_backward,
    "softmax-cross-entropy": check_softmax_cross_entropy,
    "im2col": check_im2col,
    "conv-backward": check_conv_backward,
    "maxpool-forward": check_maxpool_forward,
    "maxpool-backward": check_maxpool_backward,
    "confidence": check_confidence,
    "scale-r": check_scale_r,
    "alpha-hat-backward": check_alpha_hat_backward,
    "eq13-split": check_eq13_split,
    "eq15": check_eq15,
    "eq17-gradients": check_eq17_gradients,
    "eq14-sgd": check_eq14_sgd,
}
