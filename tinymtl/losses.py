"""Losses: each returns ``(loss, grad)`` where ``grad`` is dL/d(its first argument).

Heads emit *logits* (unnormalised scores); the classification loss takes logits, not
probabilities, so softmax and cross-entropy are fused into one stable function.

Missing labels: a class index of -1 or a NaN regression target means "no label on this row for
this task". Such entries add nothing to the loss and get a zero gradient, and the mean is taken
over the labelled entries only. With no labelled entry at all the loss is 0 and so is the gradient.
"""

import math

import numpy as np


def row_max(x):
    """x (batch, k) -> (batch, 1), the largest entry of each row.

    NumPy's max(axis=1) runs one short reduction per row, which for a few columns and many rows
    is up to 30 times slower than k - 1 element-wise maxima over whole columns (0.12 ms against
    3.6 ms for 100,000 x 3), so we take the columns when there are few of them.
    """
    n_rows, k = x.shape
    if k > 16 or n_rows < 1024:
        return np.maximum.reduce(x, axis=1, keepdims=True)  # max() without its Python wrapper
    largest = x[:, :1].copy()
    for j in range(1, k):
        np.maximum(largest, x[:, j:j + 1], out=largest)
    return largest


def row_sum(x):
    """x (batch, k) -> (batch, 1), each row's sum, as the product x @ ones: BLAS sums short rows
    several times faster than sum(axis=1)."""
    return x @ np.ones((x.shape[1], 1), dtype=x.dtype)


def log_softmax(logits, out=None):
    """logits (batch, k) -> log-probabilities (batch, k), same dtype.

    log softmax(z)_j = z_j - log sum_l exp(z_l). Subtracting the row maximum first (the log-sum-exp
    trick) keeps every exp(.) <= 1, so logits of any size give finite results.
    """
    out = np.subtract(logits, row_max(logits), out=out)
    out -= np.log(row_sum(np.exp(out)))
    return out


def softmax_cross_entropy(logits, labels, *, class_weights=None, out=None):
    """Mean cross-entropy of softmax(logits) against integer labels, and its gradient.

    logits (batch, k); labels (batch,) integers in [0, k), or -1 for "no label";
    class_weights (k,) or None; out (batch, k) or None, receives the gradient.

        r_i = class_weights[labels[i]] (1 without class weights; 0 for unlabelled rows)
        L   = sum_i r_i * -log softmax(logits_i)[labels_i]  /  sum_i r_i
        dL/dlogits_i = r_i * (softmax(logits_i) - onehot(labels_i)) / sum_i r_i

    The softmax Jacobian and the derivative of the log cancel, which is why the gradient is so
    simple and why the two are one function. The weighted mean is PyTorch's ``cross_entropy``
    convention with ``weight=``.

    Stability (the log-sum-exp trick): with m_i = max_j z_ij and s_i = sum_j exp(z_ij - m_i),
    every exp(.) is <= 1 and s_i is in [1, k], so
        -log softmax(z_i)[y] = m_i + log s_i - z_iy     is finite for logits of any size.
    """
    n_rows = logits.shape[0]
    rows = np.arange(n_rows)
    # A training batch has few rows: here plain reductions beat row_max and row_sum.
    largest = np.maximum.reduce(logits, axis=1, keepdims=True)       # m (batch, 1)
    grad_logits = np.subtract(logits, largest, out=out)              # z - m, each <= 0
    plain = class_weights is None and n_rows > 0 and np.minimum.reduce(labels) >= 0  # r_i = 1
    labelled = None if plain else labels >= 0
    safe_labels = labels if plain else np.where(labelled, labels, 0)
    true_shifted = grad_logits[rows, safe_labels]                    # z_iy - m_i (batch,)
    np.exp(grad_logits, out=grad_logits)                             # exp(z - m), each <= 1
    sums = np.add.reduce(grad_logits, axis=1, keepdims=True)         # s (batch, 1), in [1, k]
    row_loss = np.log(sums[:, 0]) - true_shifted                     # m + log s - z_y

    if plain:
        sums *= n_rows
        grad_logits /= sums                                          # softmax / batch
        grad_logits[rows, labels] -= 1.0 / n_rows                    # (softmax - onehot) / batch
        return float(np.add.reduce(row_loss)) / n_rows, grad_logits

    row_weights = labelled.astype(logits.dtype)                      # r (batch,)
    if class_weights is not None:
        row_weights *= np.asarray(class_weights, dtype=logits.dtype)[safe_labels]
    total_weight = float(np.add.reduce(row_weights))
    if total_weight == 0:
        grad_logits[...] = 0
        return 0.0, grad_logits
    grad_logits /= sums                                              # softmax
    grad_logits[rows, safe_labels] -= 1.0                            # softmax - onehot
    grad_logits *= (row_weights / total_weight)[:, None]
    return float(row_loss @ row_weights) / total_weight, grad_logits


def mse(pred, target, *, out=None):
    """Mean squared error over every labelled element, and its gradient.

    pred (batch, k); target (batch, k) of pred's dtype, NaN where there is no label;
    out (batch, k) or None, receives the gradient.

        L        = sum_labelled (pred - target)^2 / n_labelled
        dL/dpred = 2 (pred - target) / n_labelled, and 0 where the target is missing

    With every element labelled this is ``torch.nn.MSELoss()`` (the mean over all elements).
    """
    diff = np.subtract(pred, target, out=out)  # (batch, k); becomes the gradient below
    n_labelled = diff.size
    squared_error = float(np.vdot(diff, diff))  # sum of squares; NaN if a target is missing
    if math.isnan(squared_error):  # leave the missing targets (NaN) out
        missing = np.isnan(target)
        diff[missing] = 0
        n_labelled -= int(np.add.reduce(missing, axis=None))
        squared_error = float(np.vdot(diff, diff))
    if n_labelled == 0:
        return 0.0, diff
    diff *= 2.0 / n_labelled  # a Python float keeps the dtype
    return squared_error / n_labelled, diff
