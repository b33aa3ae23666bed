"""Losses: each returns ``(loss, grad)`` where ``grad`` is dL/d(its first argument).

``softmax_cross_entropy`` and ``mse`` are the losses; ``log_softmax``, ``row_max`` and
``row_sum`` are their stable building blocks (prediction uses them too), and ``Scratch`` keeps a
loss's temporaries between training steps.

Heads emit *logits* (unnormalised scores); the classification loss takes logits, not
probabilities, so softmax and cross-entropy are fused into one stable function.

Missing labels: a class index of -1 or a NaN regression target means "no label on this row for
this task". Such entries add nothing to the loss and get a zero gradient, and the mean is taken
over the labelled entries only. With no labelled entry at all the loss is 0 and so is the gradient.
"""

import math

import numpy as np


class Scratch:
    """What a loss keeps between calls: arrays made on its first call and reused after.

    The training loop gives each head one Scratch per batch size, so after its first batch a
    loss allocates nothing. A loss called without one makes a fresh Scratch and drops it.
    """

    def __init__(self):
        self._made = {}

    def get(self, key, make):
        """What ``make()`` returned the first time ``key`` was asked for."""
        value = self._made.get(key)
        if value is None:
            value = self._made[key] = make()
        return value


def _order(array):
    """"F" for an array stored column by column (such as the transpose of a C array), else "C"."""
    return "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"


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


class _CrossEntropyBuffers:
    """The arrays ``softmax_cross_entropy`` needs besides its gradient, for one shape of call.

    Per row (batch,): the weight r, the largest logit m, the shifted true logit z_y - m, the
    sum s, the row's loss, its gradient's scale r / (s sum r), the true class's gradient and its
    flat position in the gradient's memory. Lookup tables from a label (0..k-1, or -1, which "wrap" mode sends to the extra last
    entry) to its class weight and to its class's offset in a row: -1 gets weight 0 and offset 0
    (class 0), so an unlabelled row counts for nothing. ``spread`` has the gradient's shape.
    """

    def __init__(self, grad, class_weights):
        n_rows, k = grad.shape
        dtype = grad.dtype
        (self.row_weight, self.largest, self.true_shifted, self.sums, self.row_loss, self.row_scale,
         self.true_grad) = (np.empty(n_rows, dtype) for _ in range(7))
        self.true_index = np.empty(n_rows, np.intp)
        row_stride, class_stride = (stride // grad.itemsize for stride in grad.strides)
        self.row_start = np.arange(n_rows, dtype=np.intp) * row_stride
        self.weight_of = np.array([*(class_weights or (1.0,) * k), 0.0], dtype)
        self.offset_of = np.append(np.arange(k, dtype=np.intp) * class_stride, 0)
        self.spread = np.empty_like(grad)
        self.largest_column, self.row_scale_column = self.largest[:, None], self.row_scale[:, None]


def softmax_cross_entropy(logits, labels, *, class_weights=None, out=None, scratch=None):
    """Mean cross-entropy of softmax(logits) against integer labels, and its gradient.

    logits (batch, k); labels (batch,) integers in [0, k), or -1 for "no label" (checked here
    unless ``scratch`` is given: the network checks a task's labels once, before training);
    class_weights (k,) or None; out (batch, k) or None, C or Fortran contiguous and apart from the logits,
    receives the gradient; scratch: a ``Scratch`` for the other arrays (see below).

        r_i = class_weights[labels[i]] (1 without class weights; 0 for unlabelled rows)
        L   = sum_i r_i * -log softmax(logits_i)[labels_i]  /  sum_i r_i
        dL/dlogits_i = r_i * (softmax(logits_i) - onehot(labels_i)) / sum_i r_i

    The softmax Jacobian and the derivative of the log cancel, which is why the gradient is so
    simple and why the two are one function. The weighted mean is PyTorch's ``cross_entropy``
    convention with ``weight=``.

    Stability (the log-sum-exp trick): with m_i = max_j z_ij and s_i = sum_j exp(z_ij - m_i),
    every exp(.) is <= 1 and s_i is in [1, k], so
        -log softmax(z_i)[y] = log s_i - (z_iy - m_i)     is finite for logits of any size.

    In plain NumPy, allocating as it goes, this function is:

        m = logits.max(axis=1, keepdims=True)
        e = np.exp(logits - m)
        s = e.sum(axis=1, keepdims=True)
        rows = np.flatnonzero(r)                              # the labelled rows
        loss = np.sum(r[rows] * (np.log(s[rows, 0]) - (logits - m)[rows, labels[rows]])) / r.sum()
        grad = e / s * r[:, None] / r.sum()
        grad[rows, labels[rows]] -= r[rows] / r.sum()

    (tests/test_losses.py checks it against that.) Speed and memory: with ``out`` and
    ``scratch`` given, nothing below is allocated. Every per-row vector lives in ``scratch``; a
    per-row value is spread over its row with ``copyto`` before it meets the (batch, k) array,
    because a ufunc that broadcasts it copies it through a scratch buffer of its own; the true
    class's entries are read and written at their flat positions in memory ("wrap" mode only
    skips the bounds check, which would gather through a buffer too). The network passes logits
    stored class by class (Fortran order): each class's column is contiguous, so a reduction
    over a row is k - 1 element-wise operations on whole columns.
    """
    n_rows, k = logits.shape
    grad = np.empty(logits.shape, logits.dtype, order=_order(logits)) if out is None else out
    if not (grad.flags.c_contiguous or grad.flags.f_contiguous):
        raise ValueError("softmax_cross_entropy needs a contiguous out array")
    if np.may_share_memory(grad, logits):
        raise ValueError("softmax_cross_entropy needs an out array apart from the logits")
    if scratch is None and n_rows and (np.minimum.reduce(labels) < -1
                                       or np.maximum.reduce(labels) >= k):
        raise ValueError(f"labels must be class indices 0..{k - 1}, or -1 for no label")
    weights = None if class_weights is None else tuple(class_weights)
    b = (Scratch() if scratch is None else scratch).get(
        ("cross-entropy", grad.shape, grad.strides, grad.dtype, weights),
        lambda: _CrossEntropyBuffers(grad, weights))

    r = b.weight_of.take(labels, out=b.row_weight, mode="wrap")          # r (batch,)
    total_weight = float(np.add.reduce(r))
    if total_weight == 0:  # no labelled row: no loss and no gradient
        grad[...] = 0
        return 0.0, grad
    flat = grad.ravel(order="K")  # its elements in memory order: a view, as grad is contiguous
    true_index = b.offset_of.take(labels, out=b.true_index, mode="wrap")
    true_index += b.row_start                                            # where grad[i, y_i] is

    np.maximum.reduce(logits, axis=1, out=b.largest)                     # m (batch,)
    np.copyto(grad, b.largest_column)                                    # m in every column
    np.subtract(logits, grad, out=grad)                                  # z - m, each <= 0
    flat.take(true_index, out=b.true_shifted, mode="wrap")               # z_y - m
    np.exp(grad, out=grad)                                               # exp(z - m), each <= 1
    np.add.reduce(grad, axis=1, out=b.sums)                              # s, in [1, k]
    row_loss = np.log(b.sums, out=b.row_loss)
    row_loss -= b.true_shifted                                           # log s - (z_y - m)
    loss = float(np.vdot(row_loss, r)) / total_weight

    r /= total_weight                                                    # r / sum r
    np.divide(r, b.sums, out=b.row_scale)                                # r / (s sum r)
    np.copyto(b.spread, b.row_scale_column)
    grad *= b.spread                                                     # r softmax / sum r
    true_grad = flat.take(true_index, out=b.true_grad, mode="wrap")
    true_grad -= r
    flat.put(true_index, true_grad, mode="wrap")                         # r (softmax - onehot) / sum r
    return loss, grad


def mse(pred, target, *, out=None, scratch=None):
    """Mean squared error over every labelled element, and its gradient.

    pred (batch, k); target (batch, k) of pred's dtype, NaN where there is no label;
    out (batch, k) or None, apart from pred and target, receives the gradient; scratch: a
    ``Scratch`` (see ``softmax_cross_entropy``).

        L        = sum_labelled (pred - target)^2 / n_labelled
        dL/dpred = 2 (pred - target) / n_labelled, and 0 where the target is missing

    With every element labelled this is ``torch.nn.MSELoss()`` (the mean over all elements).
    """
    diff = np.empty(pred.shape, pred.dtype, order=_order(pred)) if out is None else out
    if np.may_share_memory(diff, pred) or np.may_share_memory(diff, target):
        raise ValueError("mse needs an out array apart from pred and target")
    np.copyto(diff, target)  # the targets in pred's memory order: the subtraction needs no buffer
    np.subtract(pred, diff, out=diff)  # (batch, k); becomes the gradient below
    n_labelled = diff.size
    squared_error = _sum_of_squares(diff)  # NaN if a target is missing
    if math.isnan(squared_error):  # leave the missing targets (NaN) out
        missing = (Scratch() if scratch is None else scratch).get(
            ("missing", diff.shape, diff.strides), lambda: np.empty_like(diff, dtype=np.bool_))
        np.copyto(diff, target)
        np.isnan(diff, out=missing)
        np.subtract(pred, diff, out=diff)
        np.copyto(diff, 0, where=missing)
        n_labelled -= int(np.count_nonzero(missing))
        squared_error = _sum_of_squares(diff)
    if n_labelled == 0:
        return 0.0, diff
    diff *= 2.0 / n_labelled  # a Python float keeps the dtype
    return squared_error / n_labelled, diff


def _sum_of_squares(a):
    """sum(a ** 2) as one dot product; of a contiguous array (C or Fortran order) without a copy,
    which vdot would make to flatten a Fortran-order array."""
    flat = a.ravel(order="K")
    return float(np.vdot(flat, flat))
