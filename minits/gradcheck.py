"""Numerical gradient checking by central differences, for tests and coursework.

    df/dx_i ~ (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)          (element-wise)
    <grad f, v> ~ (f(x + eps v) - f(x - eps v)) / (2 eps)           (along a direction v)

The error of a central difference is O(eps^2) plus rounding of order
(machine epsilon * |f|) / eps, so checks run in float64 with eps ~ 1e-6; in
float32 they mean little. The directional check (Chainer's) costs two function
evaluations whatever the size of x; the element-wise one tells *which* entry is wrong.

A layer is checked through the scalar f(x) = sum(forward(x) * dout) for a fixed
random dout: then dL/dx is exactly what backward(dout) returns (check_layer). A loss
is checked through its own value, the batch mean, in every parameter of the model and
every trainable scale (check_loss).
"""

from dataclasses import dataclass

import numpy as np


def numerical_gradient(f, x, eps=1e-6, indices=None):
    """Element-wise central differences of a scalar function.

    Inputs:
        f: callable taking no arguments (it reads x, which is perturbed in place)
           or one argument (x), returning a scalar
        x: float array, perturbed in place and restored exactly
        indices: flat indices to estimate (default: all); the others stay NaN
    Returns:
        grad: array shaped like x (float64)
    """
    call = _as_nullary(f, x)
    flat = x.reshape(-1)  # a view: perturbations reach x
    if not np.shares_memory(flat, x):
        raise ValueError("numerical_gradient needs a contiguous x it can perturb in place")
    if indices is None:
        grad = np.zeros(x.shape, dtype=np.float64)
        indices = range(flat.size)
    else:
        grad = np.full(x.shape, np.nan)
    for i in indices:
        old = flat[i]
        flat[i] = old + eps
        f_plus = float(call())
        flat[i] = old - eps
        f_minus = float(call())
        flat[i] = old
        grad.reshape(-1)[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def directional_derivative(f, x, v, eps=1e-6):
    """Central difference of f along direction v: ~ <grad f(x), v>. x is restored exactly."""
    call = _as_nullary(f, x)
    old = x.copy()
    x += eps * v
    f_plus = float(call())
    x[...] = old - eps * v
    f_minus = float(call())
    x[...] = old
    return (f_plus - f_minus) / (2 * eps)


def _as_nullary(f, x):
    try:
        import inspect
        n_args = len(inspect.signature(f).parameters)
    except (TypeError, ValueError):
        n_args = 1
    return f if n_args == 0 else (lambda: f(x))


@dataclass
class CheckResult:
    """Outcome of comparing one analytic gradient with its numerical estimate."""

    name: str
    ok: bool
    max_rel_error: float
    worst_index: tuple  # None when only a random direction was checked
    numerical: float
    analytic: float
    directional: tuple = None  # (numerical, analytic) along a random direction, or None

    def report(self):
        status = "ok" if self.ok else "FAILED"
        where = ("along a random direction" if self.worst_index is None
                 else f"worst element {self.worst_index}")
        text = (f"{self.name}: {status}; {where}: numerical {self.numerical:.10g} vs analytic "
                f"{self.analytic:.10g}, relative error {self.max_rel_error:.3g}")
        if self.directional is not None:
            n, a = self.directional
            text += f"; along a random direction: numerical {n:.10g} vs analytic {a:.10g}"
        return text


class GradientCheckError(AssertionError):
    """Raised by check_* when an analytic gradient disagrees with finite differences."""


def relative_error(analytic, numerical, floor=1e-10):
    """|a - n| / max(|a|, |n|, floor), element-wise (CS231n's measure, guarded at 0)."""
    analytic, numerical = np.asarray(analytic, float), np.asarray(numerical, float)
    return np.abs(analytic - numerical) / np.maximum(np.maximum(np.abs(analytic),
                                                                np.abs(numerical)), floor)


def compare(name, analytic, numerical, rtol=1e-5, atol=1e-7, directional=None, checked=None):
    """Element-wise: ok where |a - n| <= atol + rtol * max(|a|, |n|).

    checked: boolean mask of the entries to compare (default: all).
    """
    analytic, numerical = np.asarray(analytic, float), np.asarray(numerical, float)
    if analytic.shape != numerical.shape:
        raise ValueError(f"{name}: analytic shape {analytic.shape} != numerical {numerical.shape}")
    if checked is not None:  # compare only these entries: zero out the rest
        analytic, numerical = np.where(checked, analytic, 0.0), np.where(checked, numerical, 0.0)
    for what, values in (("analytic", analytic), ("numerical", numerical)):
        if not np.all(np.isfinite(values)):
            raise GradientCheckError(f"{name}: the {what} gradient has NaN or inf entries")
    err = np.abs(analytic - numerical)
    allowed = atol + rtol * np.maximum(np.abs(analytic), np.abs(numerical))
    ok = bool(np.all(err <= allowed))
    if directional is not None:
        n, a = directional
        ok = ok and abs(n - a) <= atol + rtol * max(abs(n), abs(a))
    if analytic.size == 0:
        return CheckResult(name, ok, 0.0, (), 0.0, 0.0, directional)
    worst = np.unravel_index(np.argmax(err - allowed), err.shape)
    rel = relative_error(analytic, numerical)
    return CheckResult(name, ok, float(rel.max()), tuple(int(i) for i in worst),
                       float(numerical[worst]), float(analytic[worst]), directional)


def check_gradient(f, x, analytic, eps=1e-6, rtol=1e-5, atol=1e-7, name="x", seed=0,
                   elementwise=True, max_elements=None, raise_on_failure=True):
    """Check an analytic gradient of scalar f at x, element-wise and along a random direction.

    Inputs:
        f: scalar function (of x, or of nothing, reading x)
        x: float64 array (perturbed in place, restored)
        analytic: claimed df/dx, shaped like x
        elementwise: False checks only the random direction (2 evaluations of f)
        max_elements: check at most this many randomly chosen entries element-wise
    Returns:
        CheckResult; raises GradientCheckError with a readable report on failure
        unless raise_on_failure=False.
    """
    _require_float64(x, name)
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(x.shape)
    directional = (directional_derivative(f, x, v, eps), float(np.sum(analytic * v)))
    if elementwise:
        indices, checked = None, None
        if max_elements is not None and max_elements < x.size:
            indices = rng.choice(x.size, size=max_elements, replace=False)
            checked = np.zeros(x.shape, dtype=bool)
            checked.reshape(-1)[indices] = True
        numerical = numerical_gradient(f, x, eps, indices)
        result = compare(name, analytic, numerical, rtol, atol, directional, checked)
    else:  # only along the direction: two evaluations of f, whatever the size of x
        n, a = directional
        ok = abs(n - a) <= atol + rtol * max(abs(n), abs(a))
        rel = float(relative_error(a, n))
        result = CheckResult(name, ok, rel, None, n, a, None)
    if raise_on_failure and not result.ok:
        raise GradientCheckError(result.report())
    return result


def check_layer(layer, x, dout=None, eps=1e-6, rtol=1e-5, atol=1e-7, seed=0, elementwise=True,
                max_elements=None, raise_on_failure=True):
    """Check a layer's backward: dL/dx and dL/d(every parameter), L = sum(forward(x) * dout).

    The check runs exactly the code of the object it is given: a plain layer's plain
    functions, a fast twin's fast code (minits.fast.convert(layer)), a subclass's own
    forward and backward.

    Inputs:
        layer: anything with forward, backward, params, grads (a Layer or a Sequential
               model; for a model, parameters are named "<layer index>.<name>")
        x: float64 input; dout: float64 array shaped like the output (random when None)
    Returns:
        list of CheckResult (input first, then parameters); raises GradientCheckError
        listing every failure unless raise_on_failure=False.
    """
    x = np.array(x, dtype=np.float64)  # our own copy, contiguous, perturbed in place
    _require_float64(x, "x")
    rng = np.random.default_rng(seed)
    out = layer.forward(x)
    if dout is None:
        dout = rng.standard_normal(out.shape)

    def loss():
        return float(np.sum(layer.forward(x) * dout))

    layer.forward(x)
    dx = layer.backward(dout)
    named = _named_params(layer)
    analytic = {name: g.copy() for name, (_, g) in named.items()}
    kw = dict(eps=eps, rtol=rtol, atol=atol, seed=seed, elementwise=elementwise,
              max_elements=max_elements, raise_on_failure=False)
    results = [check_gradient(loss, x, dx, name="x", **kw)]
    for name, (p, _) in named.items():
        _require_float64(p, name)
        results.append(check_gradient(loss, p, analytic[name], name=name, **kw))
    failed = [r for r in results if not r.ok]
    if raise_on_failure and failed:
        raise GradientCheckError("gradient check failed:\n" + "\n".join(r.report() for r in failed))
    return results


def check_loss(loss, model, x, y, eps=1e-6, rtol=1e-5, atol=1e-7, seed=0, elementwise=True,
               max_elements=None, raise_on_failure=True):
    """Check a loss's backward: dL/d(every parameter of the model) and dL/d(every
    trainable scale of the loss), L = loss.forward(model, x, y), the batch mean (Eq. (5)).

    The loss-level companion of check_layer: the gradient reaches alpha through the
    normalised logits X_hat (Eq. (8)-(9), the chain rule of docs/decisions.md#D7) and
    the scales R1, R2 (Eq. (14)-(15)), Rs, R (Eq. (18)) through the loss itself.

    Inputs:
        loss: a minits loss (forward(model, x, y) -> float, backward(), params, grads)
        model: a Sequential in float64; x: its input (N, ...); y: labels (N,)
    Returns:
        list of CheckResult: the model's parameters first, named "<layer index>.<name>"
        as check_layer names them, then the scales by their names ("R1", "R2", "Rs",
        "R"); raises GradientCheckError listing every failure unless
        raise_on_failure=False. Raises ValueError when a perturbation moves an object
        from one case of the loss to the other (its confidence is within reach of eta):
        there the loss has a jump and no derivative.
    """
    loss.forward(model, x, y)
    loss.backward()
    split = _split(loss)
    named = _named_params(model)
    analytic = {name: g.copy() for name, (_, g) in named.items()}
    scale_grads = dict(loss.grads)

    def value():
        L = float(loss.forward(model, x, y))
        if not np.array_equal(_split(loss), split):
            moved = int(np.flatnonzero(_split(loss) != split)[0])
            raise ValueError(f"a perturbation of {eps:g} moved object {moved} to the other "
                             "case of the loss: it sits at the threshold eta, where the loss "
                             "jumps; check at a point whose confidences are away from eta")
        return L

    kw = dict(eps=eps, rtol=rtol, atol=atol, seed=seed, elementwise=elementwise,
              max_elements=max_elements, raise_on_failure=False)
    results = []
    for name, (p, _) in named.items():
        _require_float64(p, name)
        results.append(check_gradient(value, p, analytic[name], name=name, **kw))
    for name, g in scale_grads.items():
        results.append(_check_scale(loss, name, g, value, kw))
    failed = [r for r in results if not r.ok]
    if raise_on_failure and failed:
        raise GradientCheckError("gradient check failed:\n" + "\n".join(r.report() for r in failed))
    return results


def _split(loss):
    """Which objects took the second case of the loss on its last batch (all False for a
    loss with one case)."""
    last = getattr(loss, "last", None)
    return None if last is None else np.asarray(last.second).copy()


def _check_scale(loss, name, analytic, value, kw):
    """check_gradient of the scalar scale loss.params[name] (a Python float), through a
    one-element array that the finite differences perturb."""
    start = float(loss.params[name])
    v = np.array([start])

    def at_v():
        loss.params[name] = float(v[0])
        return value()

    try:
        return check_gradient(at_v, v, np.array([float(analytic)]), name=name, **kw)
    finally:
        loss.params[name] = start


def _named_params(obj):
    """name -> (param array, grad array) for a layer or a model."""
    if hasattr(obj, "layers"):
        return {f"{i}.{n}": (layer.params[n], layer.grads[n])
                for i, layer in enumerate(obj.layers) for n in layer.params}
    return {n: (obj.params[n], obj.grads[n]) for n in obj.params}


def _require_float64(a, name):
    if np.asarray(a).dtype != np.float64:
        raise TypeError(f"gradient checks need float64 ({name} is {np.asarray(a).dtype}): "
                        "finite differences in float32 are dominated by rounding")
