"""Losses: each returns ``(loss, grad)`` where ``grad`` is dL/d(its first argument).

Heads emit *logits* (unnormalised scores); the classification loss takes logits, not
probabilities, so softmax and cross-entropy are fused into one stable function.

Missing labels: a class index of -1 or a NaN regression target means "no label on this row for
this task". Such entries add nothing to the loss and get a zero gradient, and the mean is taken
over the labelled entries only. With no labelled entry at all the loss is 0 and so is the gradient.
"""

import numpy as np


def log_softmax(logits, out=None):
    """logits (batch, k) -> log-probabilities (batch, k), same dtype.

    log softmax(z)_j = z_j - log sum_l exp(z_l). Subtracting the row maximum first (the log-sum-exp
    trick) keeps every exp(.) <= 1, so logits of any size give finite results.
    """
    out = np.subtract(logits, logits.max(axis=1, keepdims=True), out=out)
    out -= np.log(np.exp(out).sum(axis=1, keepdims=True))
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
    """
    n_rows = logits.shape[0]
    rows = np.arange(n_rows)
    labelled = labels >= 0
    fully_labelled = class_weights is None and bool(labelled.all())
    safe_labels = labels if fully_labelled else np.where(labelled, labels, 0)

    log_probs = log_softmax(logits, out=out)  # (batch, k); becomes the gradient below
    picked = log_probs[rows, safe_labels]     # (batch,) log-probability of the true class
    if fully_labelled:
        row_weights, total_weight = None, n_rows
        loss = -float(picked.sum()) / n_rows
    else:
        row_weights = labelled.astype(logits.dtype)
        if class_weights is not None:
            row_weights *= np.asarray(class_weights, dtype=logits.dtype)[safe_labels]
        total_weight = float(row_weights.sum())
        loss = -float(picked @ row_weights) / total_weight if total_weight > 0 else 0.0

    grad_logits = np.exp(log_probs, out=log_probs)  # softmax
    grad_logits[rows, safe_labels] -= 1.0            # softmax - onehot
    if row_weights is None:
        grad_logits /= total_weight
    elif total_weight > 0:
        grad_logits *= (row_weights / total_weight)[:, None]
    else:
        grad_logits[...] = 0
    return loss, grad_logits


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
    missing = np.isnan(target)
    if missing.any():
        diff[missing] = 0
        n_labelled -= int(missing.sum())
    if n_labelled == 0:
        return 0.0, diff
    loss = float(np.einsum("ij,ij->", diff, diff)) / n_labelled
    diff *= 2.0 / n_labelled  # a Python float keeps the dtype
    return loss, diff
