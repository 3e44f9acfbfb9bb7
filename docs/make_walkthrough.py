"""Write docs/walkthrough.ipynb: its cells below, executed top to bottom, outputs stored.

    python docs/make_walkthrough.py          # with $MINITS_DATA holding MNIST

Edit the cells here, never the notebook by hand: tests/test_walkthrough.py executes the
committed notebook and compares every code cell's text output with the stored one, so
the stored outputs must be what this script's execution produced. Needs the `dev` extra
(nbformat, nbclient, ipykernel).
"""

import pathlib
import time

import nbformat
from nbclient import NotebookClient

HERE = pathlib.Path(__file__).resolve().parent
NOTEBOOK = HERE / "walkthrough.ipynb"
TIMEOUT_S = 300  # per cell; the whole notebook runs in well under a minute

SECTIONS = [
    ("sec-2-1", "1. Sec. 2.1: the network, its shapes, its backward"),
    ("eq-7-11", "2. Eq. (7)–(9), (11): confidence, homogeneity, R, α̂, X̂, W_η"),
    ("eq-13-15", "3. Eq. (13)–(15): the two-scale loss and dL/dR"),
    ("eq-16-18", "4. Eq. (16)–(18): fixed scales and the separation loss"),
    ("sec-3", "5. Sec. 3: a short training, and the measures of Sec. 3.1"),
    ("next", "6. Where next: the paper's figures"),
]


def heading(key):
    """Markdown heading of section `key`, with an HTML anchor docs/equations.md links to."""
    title = dict(SECTIONS)[key]
    return f'<a id="{key}"></a>\n## {title}\n\n'


INTRO = """# minits: the two-scale loss, equation by equation

A walkthrough to read beside Berlyand, Creese & Jabin, *A novel multi-scale loss function
for classification problems in machine learning*, in the paper's order. Every number below
is computed by `minits` (public API only, `import minits as mt`); the gradients shown are
checked against central finite differences, and each check is an `assert` that fails on a
wrong backward.

Two implementations compute the same numbers (README, "Two implementations"): the
**plain** objects that `mt.Linear`, `mt.models.mlp` or `mt.losses.TwoScale` make read like
the paper, and their **fast** twins (`minits.fast.convert(obj)`, sharing the parameter
arrays) run the training. Sections 1–4 use the plain objects; section 5 trains with the
fast twins, and says so.

The test suite executes this notebook (`tests/test_walkthrough.py`) and compares its
outputs with the ones stored here; it is written by `docs/make_walkthrough.py`.

Sections:
""" + "\n".join(f"- [{title}](#{key})" for key, title in SECTIONS)

SETUP = '''\
import io

import numpy as np
from IPython.display import Image, display
from matplotlib.figure import Figure
from threadpoolctl import threadpool_limits

import minits as mt
from minits import fast
from minits.training import train_step

threadpool_limits(1)  # one BLAS thread, fixed seeds: the same outputs at every run
np.set_printoptions(precision=4, suppress=True)


def show(fig):
    """Display a figure as a small PNG (no pyplot: whatever the matplotlib backend)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=70, metadata={"Software": None})
    display(Image(buf.getvalue()))


print("minits", mt.__version__)'''

DATA_MD = """The data: a batch of real MNIST digits from `$MINITS_DATA` (`mt.datasets.load`, never
downloading here). Where MNIST is absent the notebook falls back to scikit-learn's bundled
8×8 digits (the `digits` extra) and says so; its numbers then differ from the stored ones."""

DATA = '''\
try:
    train = mt.datasets.load("mnist", "train", download=False)
    test = mt.datasets.load("mnist", "test", download=False)
except FileNotFoundError:
    print("NOTE: MNIST not found in $MINITS_DATA: falling back to the bundled 8x8 digits")
    train = mt.datasets.load("digits", "train")
    test = mt.datasets.load("digits", "test")
print(train)
print(test)
D = int(np.prod(train.images.shape[1:]))  # 784 for MNIST, 64 for digits
side = train.images.shape[-1]
x = mt.datasets.to_float(train.images[:256], dtype=np.float64, max_value=train.max_value)
y = train.labels[:256]
print("batch:", x.shape, x.dtype, "labels:", np.bincount(y, minlength=10))'''

NET_MD = heading("sec-2-1") + """The paper's two networks are bias-free (Eq. (1) has no bias):
an mlp for MNIST, Sec. 3.3, and LeNet-5 for CIFAR, Sec. 3.2 (here its MNIST variant,
`input_size=28`). A forward pass layer by layer shows the shapes; `M − 1` is the number
of linear layers (the exponent of Eq. (8))."""

NET = '''\
mlp = mt.models.mlp([D, 128, 10], seed=0, dtype=np.float64)
lenet = mt.models.lenet5(num_classes=10, in_channels=1, input_size=side, seed=0,
                         dtype=np.float64) if side >= 28 else None
for name, model in (("mlp", mlp), ("lenet5", lenet)):
    if model is None:
        print("lenet5 needs 28x28 inputs: skipped on the 8x8 digits")
        continue
    print(f"{name}: M - 1 = {len(model.linear_layers())} linear layers, "
          f"{model.num_parameters()} parameters")
    h = x[:8]
    print(f"  {'input':<40} {h.shape}")
    for layer in model.layers:
        h = layer.forward(h)
        params = {k: v.shape for k, v in layer.params.items()}
        print(f"  {type(layer).__name__ + ' ' + str(params):<40} {h.shape}")'''

GRAD_MD = """Each layer's backward is written by hand. `mt.gradcheck.check_layer` checks it the
coursework way: `f(x) = sum(forward(x) * dout)` for a random `dout`, every entry of `x` and
of every parameter perturbed by ±1e-6 in float64, the relative error
`|a − n| / max(|a|, |n|)` printed and asserted. Random inputs keep the max-pool away from
ties (its kink)."""

GRAD = '''\
rng = np.random.default_rng(0)
checks = [
    ("Linear(6, 4)", mt.Linear(6, 4, dtype=np.float64, rng=1), rng.standard_normal((3, 6))),
    ("Conv2d(2, 3, 3, stride=2, padding=1)",
     mt.Conv2d(2, 3, kernel_size=3, stride=2, padding=1, dtype=np.float64, rng=2),
     rng.standard_normal((2, 2, 5, 6))),
    ("MaxPool2d(2)", mt.MaxPool2d(2), rng.standard_normal((2, 2, 4, 6))),
]
for name, layer, inp in checks:
    for result in mt.gradcheck.check_layer(layer, inp):
        print(f"{name:<38} d/d{result.name:<2} max relative error {result.max_rel_error:.1e}")
        assert result.ok and result.max_rel_error < 1e-6, result.report()'''

GRAD_WRONG = '''\
# The check is real: a backward that drops the factor 2 of a doubled output fails it.
class WrongLinear(mt.Linear):
    def forward(self, x):
        return 2 * super().forward(x)

try:
    mt.gradcheck.check_layer(WrongLinear(6, 4, dtype=np.float64, rng=1),
                             rng.standard_normal((3, 6)))
except mt.gradcheck.GradientCheckError as error:
    print("caught:", str(error).splitlines()[1][:60], "...")
else:
    raise AssertionError("a wrong backward passed the gradient check")'''

SCALE_MD = heading("eq-7-11") + """On the batch of 256 digits and the untrained mlp:

- the logits `X = X(α, s)` and the confidence `δX = X_{i(s)} − max_{i≠i(s)} X_i`
  (`mt.scale.confidence`; the paper's index slip: docs/decisions.md#D1); `s` is correctly
  classified iff `δX > 0`, Eq. (7), and the accuracy is `#W_{0} / #T`, Eq. (11);
- homogeneity, Eq. (8): `X(cα) = c^{M−1} X(α)` for bias-free ReLU networks;
- the scale `R = Π_l ‖α^l‖`, Eq. (9) (`mt.scale_R`), the normalised parameters
  `α̂ = α / R^{1/(M−1)}` with `R(α̂) = 1`, and `X̂ = X(α̂) = X / R`;
- the well-classified sets `W_η = {s : δX > η}` (strict, docs/decisions.md#D15)."""

SCALE = '''\
X = mlp.forward(x)
delta = mt.scale.confidence(X, y)
print("X:", X.shape, " delta X of the first 5 digits:", delta[:5])
print("correctly classified (delta X > 0), Eq. (7), (11): accuracy",
      mt.metrics.well_classified_count(delta, 0.0) / len(y))

M1 = len(mlp.linear_layers())
for c in (0.5, 3.0):
    scaled = mt.models.mlp([D, 128, 10], seed=0, dtype=np.float64)
    for layer in scaled.linear_layers():
        for p in layer.params.values():
            p *= c
    gap = np.max(np.abs(scaled.forward(x) - c ** M1 * X)) / np.max(np.abs(X))
    print(f"Eq. (8), c = {c}: max |X(c alpha) - c^{M1} X(alpha)| / max |X| = {gap:.1e}")
    assert gap < 1e-12'''

R_CELL = '''\
R = mt.scale_R(mlp)
print("layer norms ||alpha^l||:", mt.scale.layer_norms(mlp), " R, Eq. (9):", R)
alpha_hat = mt.scale.normalized_params(mlp)
norms_hat = [float(np.sqrt(sum(np.sum(p * p) for p in layer.values()))) for layer in alpha_hat]
print("||alpha_hat^l||:", norms_hat, " R(alpha_hat):", np.prod(norms_hat))
assert abs(np.prod(norms_hat) - 1) < 1e-12
X_hat = mt.scale.normalized_logits(mlp, x)  # a forward pass at alpha_hat
gap = np.max(np.abs(X_hat - X / R)) / np.max(np.abs(X_hat))
print(f"X_hat = X(alpha_hat) against X / R: max relative gap {gap:.1e}")
assert gap < 1e-12
for eta in (0.01, 0.1):
    print(f"#W_eta with eta = {eta}: {mt.metrics.well_classified_count(delta, eta)} of {len(y)}")'''

LOSS_MD = heading("eq-13-15") + """`mt.losses.TwoScale(eta)` is Eq. (13): cross-entropy of
`softmax(R_k X̂)` (docs/decisions.md#D5), with `R1` where `δX < η` and `R2` where
`δX ≥ η` (the raw confidence splits, docs/decisions.md#D4; the boundary goes to `R2`,
docs/decisions.md#D15). At the first forward `R1 = R(α⁰)` and `R2 = 10 R1`
(docs/decisions.md#D9). `loss.last.second` marks the objects of the `R2` case;
after `backward()`, `loss.grads` holds the batch means of `dL/dR1` and `dL/dR2`, Eq. (15),
here beside central differences in `R1` and `R2`."""

LOSS = '''\
eta = 0.01
loss = mt.losses.TwoScale(eta)
value = loss.forward(mlp, x, y)
loss.backward()
second = loss.last.second
R1, R2 = loss.params["R1"], loss.params["R2"]
print(f"L = {value:.12f}; R1 = {R1:.10f}, R2 = {R2:.10f}")
print(f"R1 case (delta X < eta): {np.count_nonzero(~second)} objects; "
      f"R2 case: {np.count_nonzero(second)} objects, all correctly classified:",
      bool(np.all(loss.last.correct[second])))


def loss_at(R1, R2):
    return mt.losses.TwoScale(eta, R1=R1, R2=R2, fixed=True).forward(mlp, x, y)


h = 1e-5
numerical = {"R1": (loss_at(R1 + h, R2) - loss_at(R1 - h, R2)) / (2 * h),
             "R2": (loss_at(R1, R2 + h) - loss_at(R1, R2 - h)) / (2 * h)}
for name in ("R1", "R2"):
    a, n = loss.grads[name], numerical[name]
    rel = abs(a - n) / max(abs(a), abs(n))
    print(f"dL/d{name}: Eq. (15) {a:.10f}, central difference {n:.10f}, relative error {rel:.0e}")
    assert rel < 1e-6'''

WHY_MD = """Why `dL/dR2 ≤ 0`: an object in the `R2` case has `δX ≥ η > 0`, so it is correctly
classified and every `d_i = X̂_i − X̂_{i(s)}` (`i ≠ i(s)`) is negative; each term of
Eq. (15), `Σ d_i e^{R2 d_i} / (1 + Σ e^{R2 d_i})`, is then negative. Gradient descent
(14) therefore only ever *increases* `R2`: the loss of the `R2`-case objects falls towards 0
as `R2` grows (the plot) — the second scale sharpens the well-classified objects. (The
paper's text calls the analogous `dL/dR_s` non-negative: a slip, docs/decisions.md#D3.)"""

WHY = '''\
per_object = mt.losses.dL_dR_eq15(X_hat, y, R2)[second]
print(f"Eq. (15) per R2-case object: max {per_object.max():.3e} (all < 0: "
      f"{bool(np.all(per_object < 0))})")
assert np.all(per_object < 0)
grid = np.linspace(0.25 * R2, 4 * R2, 40)
values = np.array([loss_at(R1, r) for r in grid])
assert np.all(np.diff(values) < 0)
fig = Figure(figsize=(4, 2.5))
ax = fig.subplots()
ax.plot(grid, values)
ax.axvline(R2, color="gray", ls=":")
ax.set(xlabel="R2", ylabel="batch loss, Eq. (13)", title="L decreases in R2")
fig.tight_layout()
show(fig)'''

VARIANTS_MD = heading("eq-16-18") + """**Eq. (16)**, fixed scales: `TwoScale(eta, fixed=True)` keeps
`R1 = R(α⁰)` and `R2 = 10 R1` constant; SGD moves `α` only (docs/decisions.md#D10)."""

FIXED = '''\
net = mt.models.mlp([D, 128, 10], seed=0, dtype=np.float64)
fixed = mt.losses.TwoScale(eta, fixed=True)
train_step(net, fixed, mt.SGD(lr=0.1), x, y)
print("params:", fixed.params, " grads:", fixed.grads)
assert fixed.grads == {} and fixed.params["R2"] == 10 * fixed.params["R1"]'''

SEP_MD = """**Eq. (17)–(18)**, the separation loss `TwoScaleSeparation(eta, Rs=10)`: cross-entropy
of `R X̂` where `δX < η` and of `R_s R X̂` where `δX ≥ η`; SGD trains `R_s`, and
`dL/dR_s ≤ 0` for the same reason as `dL/dR2` (docs/decisions.md#D3). Which `R` is meant
(docs/decisions.md#D11): `scale="fixed"` (default, `R = R(α⁰)`, a constant),
`"trained"` (`R` starts there and is trained too) or `"live"` (`R = R(α)`, differentiated
through `α`)."""

SEP = '''\
for scale in ("fixed", "trained", "live"):
    sep = mt.losses.TwoScaleSeparation(eta, scale=scale)
    value = sep.forward(mlp, x, y)
    sep.backward()
    print(f"{scale:<8} L = {value:.10f}  params: {sorted(sep.params)}  "
          f"grads: { {k: round(v, 8) for k, v in sep.grads.items()} }")
    assert sep.grads["Rs"] <= 0'''

TRAIN_MD = heading("sec-3") + """A short run of the protocol of Sec. 3.2 — plain SGD, batches
of 128, `τ = 0.1`, Gaussian `α⁰` from a seed, `R1 = R(α⁰)`, `R2 = 10 R1` — for the
traditional loss (`OneScale`: Eq. (13) with `R2 := R1`, docs/decisions.md#D8) and the
two-scale loss with `η = 0.01`. 300 steps (less than one epoch of MNIST; the paper runs
1000 iterations per seed, `minits reproduce mnist`). This section trains with the **fast**
twins (`fast.convert(model)`, `fast.convert(loss)`: what `minits train` runs), in float64
rather than minits' default float32. Its numbers still depend, in their last digits, on
the order in which the machine's BLAS kernel sums a product: 300 steps, each splitting the
batch at `η`, carry a difference of one rounding into the third or fourth digit (the tests
compare this section with a fresh execution to a looser tolerance than the others). Each
step is
`train_step(model, loss, sgd, x, y)`: `loss.forward`, `loss.backward`, `sgd.step`, Eq. (14).
The test-set accuracy uses the test-time probabilities `softmax(R1 X̂)`
(docs/decisions.md#D12)."""

TRAIN = '''\
x_test = mt.datasets.to_float(test.images, dtype=np.float64, max_value=test.max_value)
y_test = test.labels
STEPS, EVERY = 300, 25
runs = {}
for name, make in (("traditional", lambda: mt.losses.OneScale()),
                   ("two-scale 0.01", lambda: mt.losses.TwoScale(0.01))):
    model = fast.convert(mt.models.mlp([D, 128, 10], seed=0, dtype=np.float64))
    loss, sgd = fast.convert(make()), mt.SGD(lr=0.1)
    batch_acc, test_acc, step = [], [], 0
    while step < STEPS:
        for xb, yb in mt.datasets.batches(train, 128, seed=step, dtype=np.float64,
                                          drop_last=True):
            train_step(model, loss, sgd, xb, yb)
            batch_acc.append(loss.last.accuracy)
            step += 1
            if step % EVERY == 0:
                test_acc.append(mt.metrics.accuracy(y_test, loss.predict_proba(model, x_test)))
            if step == STEPS:
                break
    proba = loss.predict_proba(model, x_test)
    runs[name] = dict(batch=np.array(batch_acc), test=np.array(test_acc), proba=proba)
    scales = ", ".join(f"{k} = {v:.6g}" for k, v in loss.params.items())
    print(f"{name:<15} ({type(model).__name__}, {type(loss).__name__}) test accuracy after "
          f"{STEPS} steps: {test_acc[-1]:.4f}  ({scales})")'''

MEASURES_MD = """The measures of Sec. 3.1 on the test set (`mt.metrics`): accuracy (11), top-k,
the close-enough accuracy `acc_at = #{s : p_{i(s)} ≥ max_i p_i − at} / #T`, the
histograms of `max_i p_i` (Fig. 4), `p_{i(s)}` (Fig. 5) and of
`δp = p_{i(s)} − max_i p_i` over the misclassified objects, Eq. (19) (Fig. 6)."""

MEASURES = '''\
ats = [0.0, 0.05, 0.1, 0.2]
for name, run in runs.items():
    proba = run["proba"]
    dp = mt.metrics.delta_p(y_test, proba)
    print(f"{name}:")
    print(f"  accuracy {mt.metrics.accuracy(y_test, proba):.4f}, "
          f"top-2 {mt.metrics.top_k_accuracy(y_test, proba, 2):.4f}, "
          f"top-3 {mt.metrics.top_k_accuracy(y_test, proba, 3):.4f}")
    print("  close-enough acc_at, at =", ats, ":",
          np.round(mt.metrics.close_enough_accuracy(y_test, proba, ats), 4))
    print(f"  delta p (19) of the {dp.size} misclassified: mean {dp.mean():.4f}, "
          f"median {np.median(dp):.4f}")
    run["hist"] = mt.metrics.probability_histograms(y_test, proba, bins=10)

fig = Figure(figsize=(9, 2.6))
axes = fig.subplots(1, 3)
for name, run in runs.items():
    steps = np.arange(1, STEPS + 1)
    mean10 = np.convolve(run["batch"], np.ones(10) / 10, "valid")  # of steps t-9..t
    axes[0].plot(steps[9:], mean10, lw=0.8, label=f"{name}, batch (mean of 10)")
    axes[0].plot(steps[EVERY - 1::EVERY], run["test"], "o-", ms=3, label=f"{name}, test")
    for ax, key in ((axes[1], "max_p"), (axes[2], "delta_p")):
        counts, edges = run["hist"][key]
        ax.stairs(counts, edges, label=name)
axes[0].set(xlabel="step", ylabel="accuracy", ylim=(0.5, 1), title="Sec. 3.2")
axes[1].set(xlabel="max_i p_i", title="Fig. 4", yscale="log")
axes[2].set(xlabel="delta p, misclassified", title="Fig. 6, Eq. (19)")
axes[0].legend(fontsize=6)
axes[2].legend(fontsize=6)
fig.tight_layout()
show(fig)'''

NEXT_MD = heading("next") + """Each figure of the paper, with its seeds and lengths, is one
command (README, "Reproduce the paper's figures"; options and run folders in
docs/experiments.md); `--preset quick` is the short version:

| figure | command |
|---|---|
| Fig. 9, MNIST | `minits reproduce mnist --preset paper --jobs 2` |
| Fig. 8, CIFAR-10 | `minits reproduce cifar10 --preset paper --jobs 2` |
| Fig. 10, CIFAR-10 fixed scales | `minits reproduce cifar10-fixed --preset paper --jobs 2` |
| Fig. 11, CIFAR-10 separation | `minits reproduce cifar10-separation --preset paper --jobs 2` |
| Figs. 1–7, CIFAR-100 (+ super-classes) | `minits reproduce cifar100 --preset paper --jobs 2` |

The code behind each equation, and its tests: docs/equations.md; the decisions cited
above: docs/decisions.md."""

CLOSING = """---
*This notebook ran top to bottom in {seconds:.0f} s (one BLAS thread, on MNIST) when
`docs/make_walkthrough.py` wrote it. Sections: {sections}.*"""


def cells():
    """The notebook's cells, in order: (kind, source) with kind "markdown" or "code"."""
    md, code = "markdown", "code"
    return [(md, INTRO), (code, SETUP), (md, DATA_MD), (code, DATA),
            (md, NET_MD), (code, NET), (md, GRAD_MD), (code, GRAD), (code, GRAD_WRONG),
            (md, SCALE_MD), (code, SCALE), (code, R_CELL),
            (md, LOSS_MD), (code, LOSS), (md, WHY_MD), (code, WHY),
            (md, VARIANTS_MD), (code, FIXED), (md, SEP_MD), (code, SEP),
            (md, TRAIN_MD), (code, TRAIN), (md, MEASURES_MD), (code, MEASURES),
            (md, NEXT_MD)]


BLAS_TAG = "depends-on-blas"
"""The tag of the cells whose numbers come from training (TRAIN, MEASURES): their last
digits depend on the machine's BLAS kernel (tests/test_walkthrough.py)."""


def build():
    """A new, unexecuted notebook of cells(). -> nbformat.NotebookNode."""
    nb = nbformat.v4.new_notebook()
    make = {"markdown": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell}
    nb.cells = [make[kind](source) for kind, source in cells()]
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"  # stable ids: a rewrite changes only what changed
        if cell.source in (TRAIN, MEASURES):
            cell.metadata["tags"] = [BLAS_TAG]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def execute(nb, cwd=HERE):
    """Run every cell of nb top to bottom in a fresh kernel (in place). -> seconds taken."""
    started = time.perf_counter()
    NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return time.perf_counter() - started


def main():
    nb = build()
    seconds = execute(nb)
    sections = "; ".join(title for _, title in SECTIONS)
    nb.cells.append(nbformat.v4.new_markdown_cell(CLOSING.format(seconds=seconds,
                                                                 sections=sections)))
    nb.cells[-1].id = f"cell-{len(nb.cells) - 1:02d}"
    for cell in nb.cells:  # execution metadata holds timestamps: not worth storing
        cell.metadata.pop("execution", None)
    nbformat.write(nb, NOTEBOOK)
    print(f"wrote {NOTEBOOK} ({seconds:.1f} s of execution)")


if __name__ == "__main__":
    main()
