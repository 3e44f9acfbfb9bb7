"""Naive references: plain Python loops over every index, written straight from the
definitions. Slow and obviously right; both implementations of the layers and losses
(plain and fast) are tested against them. Shapes are the public ones: (N, D) for
Linear, (N, C, H, W) for images; the losses' formulas are the paper's, for one object.
"""

import math

import numpy as np


def linear_forward(x, W, b):
    """out[n, f] = sum_d x[n, d] * W[f, d] + b[f]."""
    N, D = x.shape
    F = W.shape[0]
    out = np.zeros((N, F), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            out[n, f] = sum(x[n, d] * W[f, d] for d in range(D)) + (b[f] if b is not None else 0)
    return out


def linear_backward(dout, x, W):
    """Every product x[n, d] * W[f, d] sends dout[n, f] times its other factor back."""
    dx, dW = np.zeros_like(x), np.zeros_like(W)
    N, F = dout.shape
    for n in range(N):
        for f in range(F):
            dx[n] += dout[n, f] * W[f]
            dW[f] += dout[n, f] * x[n]
    return dx, dW, dout.sum(axis=0)


def conv_forward(x, W, b, stride, padding):
    """out[n, f, y, x] = sum_{c, i, j} W[f, c, i, j] * xp[n, c, s*y + i, s*x + j] + b[f]."""
    N, C, H, Wd = x.shape
    F, _, k, _ = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    Ho = (H + 2 * padding - k) // stride + 1
    Wo = (Wd + 2 * padding - k) // stride + 1
    out = np.zeros((N, F, Ho, Wo), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for y in range(Ho):
                for xx in range(Wo):
                    window = xp[n, :, y * stride:y * stride + k, xx * stride:xx * stride + k]
                    out[n, f, y, xx] = np.sum(window * W[f]) + (b[f] if b is not None else 0)
    return out


def conv_backward(dout, x, W, stride, padding):
    """Adjoint of conv_forward: every product W[f,c,i,j] * xp[...] sends its share back."""
    N, C, H, Wd = x.shape
    F, _, k, _ = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dxp = np.zeros_like(xp)
    dW = np.zeros_like(W)
    _, _, Ho, Wo = dout.shape
    for n in range(N):
        for f in range(F):
            for y in range(Ho):
                for xx in range(Wo):
                    rows = slice(y * stride, y * stride + k)
                    cols = slice(xx * stride, xx * stride + k)
                    dW[f] += dout[n, f, y, xx] * xp[n, :, rows, cols]
                    dxp[n, :, rows, cols] += dout[n, f, y, xx] * W[f]
    dx = dxp[:, :, padding:padding + H, padding:padding + Wd]
    db = dout.sum(axis=(0, 2, 3))
    return dx, dW, db


def maxpool_forward(x, k, stride):
    N, C, H, W = x.shape
    Ho, Wo = (H - k) // stride + 1, (W - k) // stride + 1
    out = np.zeros((N, C, Ho, Wo), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for y in range(Ho):
                for xx in range(Wo):
                    out[n, c, y, xx] = x[n, c, y * stride:y * stride + k,
                                         xx * stride:xx * stride + k].max()
    return out


def maxpool_backward(dout, x, k, stride):
    """Each window's gradient to its first maximum in row-major order."""
    dx = np.zeros_like(x)
    N, C, Ho, Wo = dout.shape
    for n in range(N):
        for c in range(C):
            for y in range(Ho):
                for xx in range(Wo):
                    window = x[n, c, y * stride:y * stride + k, xx * stride:xx * stride + k]
                    i, j = np.unravel_index(np.argmax(window), window.shape)  # first max
                    dx[n, c, y * stride + i, xx * stride + j] += dout[n, c, y, xx]
    return dx


def eq13(x_hat, y, R):
    """-log(1 / (1 + sum_{i != i(s)} exp(R (x_i - x_{i(s)})))) for one object, Eq. (13)
    (Eq. (10) with R = 1 on logits x)."""
    total = 1.0
    for i in range(len(x_hat)):
        if i != y:
            total += math.exp(R * (x_hat[i] - x_hat[y]))
    return -math.log(1.0 / total)


def eq15(x_hat, y, R):
    """Eq. (15) for one object, term by term as printed."""
    num, den = 0.0, 1.0
    for i in range(len(x_hat)):
        if i != y:
            d = x_hat[i] - x_hat[y]
            num += d * math.exp(R * d)
            den += math.exp(R * d)
    return num / den


def eq17(X_hat, y, R, Rs, second):
    """Eq. (17) for every object: Eq. (13) with r = R (first case) or Rs R (second case).
    X_hat (N, K); y, second (N,) -> values (N,)."""
    return np.array([eq13(X_hat[s], y[s], Rs * R if second[s] else R) for s in range(len(y))])
