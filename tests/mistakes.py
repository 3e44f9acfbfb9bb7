"""Wrong implementations of the coursework tasks: the mistakes students make, each as
an edit of the solution inside one task region (tests/test_coursework.py grades them).

A Mistake replaces the text `old` by `new` in the region of `task` in `file` (the
first occurrence inside the region); `says` is a piece of the feedback that must point
at it: the wrong result's name, as the hidden check words it.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Mistake:
    name: str
    task: str
    file: str
    old: str
    new: str
    says: str


MISTAKES = [
    # Linear, Eq. (1)
    Mistake("linear forward without the transpose", "linear-forward", "layers/linear.py",
            "out = x @ W.T", "out = x @ W", "exposed by"),
    Mistake("linear forward ignores the bias", "linear-forward", "layers/linear.py",
            "out = out + b", "out = out", "out: wrong"),
    Mistake("linear forward subtracts the bias", "linear-forward", "layers/linear.py",
            "out = out + b", "out = out - b", "out: wrong"),
    Mistake("linear forward caches the output", "linear-forward", "layers/linear.py",
            "return out, (x, W)", "return out, (out, W)", "your cache"),
    Mistake("linear backward with a missing transpose in dW", "linear-backward",
            "layers/linear.py", "dW = dout.T @ x", "dW = x.T @ dout", "exposed by"),
    Mistake("linear backward with dx through W transposed", "linear-backward",
            "layers/linear.py", "dx = dout @ W", "dx = dout @ W.T", "exposed by"),
    Mistake("linear backward divides db by the batch size", "linear-backward",
            "layers/linear.py", "db = dout.sum(axis=0)", "db = dout.mean(axis=0)", "b:"),
    Mistake("linear backward with the sign of dW flipped", "linear-backward",
            "layers/linear.py", "dW = dout.T @ x", "dW = -(dout.T @ x)", "W:"),
    # ReLU, Eq. (2)
    Mistake("relu backward passes the gradient at 0", "relu-backward",
            "layers/activations.py", "x > 0", "x >= 0", "kink"),
    Mistake("relu backward passes every gradient", "relu-backward", "layers/activations.py",
            "return np.where(x > 0, dout, 0)", "return dout", "x:"),
    Mistake("relu backward masks by the sign of dout", "relu-backward",
            "layers/activations.py", "np.where(x > 0, dout, 0)", "np.where(dout > 0, dout, 0)",
            "x:"),
    # cross-entropy, Eq. (3)-(4)
    Mistake("cross-entropy gradient without the one-hot", "softmax-cross-entropy",
            "losses/cross_entropy.py", "dz[rows, y] -= 1", "pass", "z:"),
    Mistake("cross-entropy gradient of the mean instead of the sum", "softmax-cross-entropy",
            "losses/cross_entropy.py", "dz[rows, y] -= 1",
            "dz[rows, y] -= 1\n    dz /= len(y)", "z:"),
    Mistake("cross-entropy without the log-sum-exp", "softmax-cross-entropy",
            "losses/cross_entropy.py", "values = -logp[rows, y]", "values = -z[rows, y]",
            "values: wrong"),
    Mistake("softmax that overflows", "softmax-cross-entropy", "losses/cross_entropy.py",
            "logp = log_softmax(z)",
            "logp = np.log(np.exp(z) / np.exp(z).sum(axis=1, keepdims=True))", "overflow"),
    # im2col
    Mistake("im2col with the kernel offsets swapped", "im2col", "layers/im2col.py",
            "cols[:, i, j] = x_pad[:, :, i:i + s * Ho:s, j:j + s * Wo:s]",
            "cols[:, j, i] = x_pad[:, :, i:i + s * Ho:s, j:j + s * Wo:s]", "cols"),
    Mistake("im2col ignores the stride", "im2col", "layers/im2col.py",
            "x_pad[:, :, i:i + s * Ho:s, j:j + s * Wo:s]", "x_pad[:, :, i:i + Ho, j:j + Wo]",
            "stride"),
    Mistake("im2col with Ho and Wo swapped", "im2col", "layers/im2col.py",
            "Ho, Wo = conv_output_size(Hp, k, s), conv_output_size(Wp, k, s)",
            "Wo, Ho = conv_output_size(Hp, k, s), conv_output_size(Wp, k, s)", "exposed by"),
    # conv backward (col2im)
    Mistake("conv backward with the padding crop off by one", "conv-backward",
            "layers/conv.py", "dx = dx_pad[:, :, p:p + H, p:p + Wd]",
            "dx = dx_pad[:, :, :H, :Wd]", "padding="),
    Mistake("col2im overwrites instead of adding", "conv-backward", "layers/im2col.py",
            "dx[:, :, i:i + s * Ho:s, j:j + s * Wo:s] += cols[:, i, j]",
            "dx[:, :, i:i + s * Ho:s, j:j + s * Wo:s] = cols[:, i, j]", "stride=1"),
    Mistake("conv backward without the bias gradient", "conv-backward", "layers/conv.py",
            "db = dout2.sum(axis=1)", "db = np.zeros(F)", "b:"),
    Mistake("conv backward divides dW by the batch size", "conv-backward", "layers/conv.py",
            "dW = (dout2 @ cols.T).reshape(W.shape)",
            "dW = (dout2 @ cols.T).reshape(W.shape) / N", "W:"),
    Mistake("conv backward without transposing W", "conv-backward", "layers/conv.py",
            "dcols = W.reshape(F, -1).T @ dout2", "dcols = W.reshape(-1, F) @ dout2",
            "exposed by"),
    # max pooling
    Mistake("max pooling ties to the last maximum", "maxpool-forward", "layers/pool.py",
            "argmax = np.argmax(windows, axis=0)",
            "argmax = k * k - 1 - np.argmax(windows[::-1], axis=0)", "ties"),
    Mistake("max pooling with windows every k pixels", "maxpool-forward", "layers/pool.py",
            "windows[i * k + j] = x[:, :, i:i + s * Ho:s, j:j + s * Wo:s]",
            "windows[i * k + j] = x[:, :, i:i + k * Ho:k, j:j + k * Wo:k]", "stride"),
    Mistake("average pooling", "maxpool-forward", "layers/pool.py",
            "out = np.max(windows, axis=0)", "out = np.mean(windows, axis=0)", "out: wrong"),
    Mistake("max pooling backward overwrites where windows overlap", "maxpool-backward",
            "layers/pool.py", "dx[:, :, i:i + s * Ho:s, j:j + s * Wo:s] += np.where(won, dout, 0)",
            "dx[:, :, i:i + s * Ho:s, j:j + s * Wo:s] = np.where(won, dout, 0)", "x: FAILED"),
    Mistake("max pooling backward with the argmax transposed", "maxpool-backward",
            "layers/pool.py", "won = argmax == i * k + j", "won = argmax == j * k + i", "dx"),
    Mistake("max pooling backward spreads the gradient over the window", "maxpool-backward",
            "layers/pool.py", "np.where(won, dout, 0)", "dout / (k * k)", "x:"),
    # the confidence, Eq. (7)
    Mistake("confidence against X_{i(s)+1} (the paper's typo)", "confidence", "scale.py",
            "return X[rows, y], others.max(axis=1)",
            "return X[rows, y], X[rows, (y + 1) % X.shape[1]]", "max_{i != i(s)}"),
    Mistake("confidence with the max over all classes", "confidence", "scale.py",
            "others[rows, y] = -np.inf", "pass", "max_{i != i(s)}"),
    # R and alpha_hat, Eq. (9)
    Mistake("R over the weights only, without the biases", "scale-r", "scale.py",
            "return [sum(sq_norm(p) for p in layer.params.values())",
            "return [sq_norm(layer.params['W'])", "W and b"),
    Mistake("R over all layers but the last", "scale-r", "scale.py",
            "return float(np.prod(layer_norms(model)))",
            "return float(np.prod(layer_norms(model)[:-1]))", "R(alpha)"),
    Mistake("R as the sum of the norms", "scale-r", "scale.py",
            "return float(np.prod(layer_norms(model)))",
            "return float(np.sum(layer_norms(model)))", "R(alpha)"),
    Mistake("c = R^(-1/M) instead of R^(-1/(M-1))", "scale-r", "scale.py",
            "return R ** (-1.0 / len(linear_layers(model)))",
            "return R ** (-1.0 / (len(linear_layers(model)) + 1))", "c = R"),
    # the chain rule through alpha_hat, D7
    Mistake("the chain rule through alpha_hat dropped", "alpha-hat-backward",
            "normalization.py", "g[...] = c * g + (total_dL_dR * dR_dalpha) * p",
            "g[...] = c * g", "W: FAILED"),
    Mistake("dc/dR with the wrong sign", "alpha-hat-backward", "normalization.py",
            "dc_dR = -c / (len(layers) * R)", "dc_dR = c / (len(layers) * R)", "W: FAILED"),
    Mistake("dR/dalpha with the norm, not its square", "alpha-hat-backward",
            "normalization.py", "dR_dalpha = R / sq_norm", "dR_dalpha = R / sq_norm ** 0.5",
            "W: FAILED"),
    Mistake("the explicit dL/dR of the loss ignored", "alpha-hat-backward",
            "normalization.py", "total_dL_dR = float(dL_dR) + dL_dc * dc_dR",
            "total_dL_dR = dL_dc * dc_dR", "live"),
    # Eq. (13) split, Eq. (15)
    Mistake("the split with > instead of >= at eta", "eq13-split", "losses/base.py",
            "return delta >= eta", "return delta > eta", "exactly at eta"),
    Mistake("the two cases swapped", "eq13-split", "losses/two_scale.py",
            "R_k = np.where(second, R2, R1).astype(X_hat.dtype)",
            "R_k = np.where(second, R1, R2).astype(X_hat.dtype)", "R_k: wrong"),
    Mistake("R_k in float64 whatever X_hat", "eq13-split", "losses/two_scale.py",
            "R_k = np.where(second, R2, R1).astype(X_hat.dtype)",
            "R_k = np.where(second, R2, R1)", "dtype"),
    Mistake("Eq. (15) without the 1 +", "eq15", "losses/two_scale.py",
            "/ (np.exp(-m) + np.sum(e, axis=1))", "/ np.sum(e, axis=1)", "Eq. (15)"),
    Mistake("Eq. (15) with d_i of the wrong sign", "eq15", "losses/two_scale.py",
            "d = X_hat - X_hat[rows, y][:, None]", "d = X_hat[rows, y][:, None] - X_hat",
            "Eq. (15)"),
    Mistake("Eq. (15) with the true class in the sums", "eq15", "losses/two_scale.py",
            "a[rows, y] = -np.inf", "pass", "Eq. (15)"),
    Mistake("Eq. (15) that overflows", "eq15", "losses/two_scale.py",
            "m = np.maximum(np.max(a, axis=1), 0)", "m = np.zeros(len(a))", "R_k"),
    # Eq. (17)-(18)
    Mistake("dL/dRs without the factor R", "eq17-gradients", "losses/separation.py",
            "return values, dX_hat, R * dR2, dR1 + Rs * dR2",
            "return values, dX_hat, dR2, dR1 + Rs * dR2", "Rs:"),
    Mistake("dL/dR without the second case", "eq17-gradients", "losses/separation.py",
            "return values, dX_hat, R * dR2, dR1 + Rs * dR2",
            "return values, dX_hat, R * dR2, dR1", "R:"),
    # SGD on the scales, Eq. (14)
    Mistake("SGD ascends the scales", "eq14-sgd", "optim.py",
            "float(loss.params[name] - lr * g)", "float(loss.params[name] + lr * g)",
            "after the step"),
    Mistake("SGD on the scales without the learning rate", "eq14-sgd", "optim.py",
            "float(loss.params[name] - lr * g)", "float(loss.params[name] - g)",
            "after the step"),
    Mistake("SGD moves the scales in place, before the check", "eq14-sgd", "optim.py",
            "scales = {} if loss is None else {name: float(loss.params[name] - lr * g)",
            "scales = {} if loss is None else {name: loss.params.__setitem__(name, float("
            "loss.params[name] - lr * g)) or loss.params[name]", "unchanged"),
]
