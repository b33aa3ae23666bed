"""Task heads: what each kind of task predicts, which loss it trains with, what targets it takes.

A head is a description, not a layer: the network gives all heads one shared ``Dense`` layer (one
matrix product serves every task) and hands each head its own columns of the logits.
"""

from dataclasses import dataclass

import numpy as np

from .errors import DataError
from .losses import log_softmax, mse, softmax_cross_entropy


def has_label(target):
    """Whether ``target`` holds at least one label: a class index >= 0 (-1 is no label) or a
    value that is not NaN."""
    target = np.asarray(target)
    return bool((target >= 0).any()) if target.dtype.kind in "iu" else not np.isnan(target).all()


def _positive_int(value, what):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Classify:
    """A classification task: ``n_classes`` logits, softmax + cross-entropy.

    Targets: integer class indices of shape (n,), -1 where a row has no label.
    ``class_weights`` (optional, length n_classes, >= 0) weigh each class's rows in the mean loss.
    Predictions: class probabilities of shape (n, n_classes).
    """

    n_classes: int
    class_weights: tuple = None
    kind = "classify"

    def __post_init__(self):
        if isinstance(self.n_classes, (bool, np.bool_)) or not isinstance(
                self.n_classes, (int, np.integer)) or self.n_classes < 2:
            raise ValueError(f"Classify(n_classes) must be an integer >= 2, got {self.n_classes!r}")
        n = int(self.n_classes)
        object.__setattr__(self, "n_classes", n)
        if self.class_weights is not None:
            weights = tuple(float(w) for w in self.class_weights)
            if len(weights) != n or not all(np.isfinite(w) and w >= 0 for w in weights):
                raise ValueError(f"Classify(class_weights) must be {n} finite numbers >= 0, "
                                 f"got {self.class_weights!r}")
            if not any(weights):
                raise ValueError(f"Classify(class_weights) must give some class a weight > 0, "
                                 f"got {self.class_weights!r}: the task would learn nothing")
            object.__setattr__(self, "class_weights", weights)

    @property
    def n_outputs(self):
        return self.n_classes

    def loss(self, logits, target, out=None, scratch=None):
        """logits (batch, n_classes), target (batch,) -> (mean cross-entropy, dL/dlogits)."""
        return softmax_cross_entropy(logits, target, class_weights=self.class_weights, out=out,
                                     scratch=scratch)

    def output(self, logits):
        """logits (n, n_classes) -> class probabilities (n, n_classes), exp(log_softmax)."""
        return np.exp(log_softmax(logits))

    def check_target(self, name, target, n_rows, dtype):
        """Return ``target`` as an int64 array of shape (n_rows,), or raise ValueError."""
        y = np.asarray(target)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or y.shape[0] != n_rows:
            raise ValueError(f'targets["{name}"] must have shape ({n_rows},), got {y.shape}')
        if y.dtype.kind == "f":
            finite = np.isfinite(y)
            if not finite.all() or not np.array_equal(y, np.round(y)):
                raise ValueError(f'targets["{name}"] must hold integer class indices, '
                                 f"got non-integer values such as {y[~finite | (y != np.round(y))][0]!r}")
        elif y.dtype.kind not in "iub":
            raise ValueError(f'targets["{name}"] must hold integer class indices, got dtype {y.dtype}')
        y = y.astype(np.int64, copy=False)
        bad = (y < -1) | (y >= self.n_classes)
        if bad.any():
            raise ValueError(f'targets["{name}"] holds class index {int(y[bad][0])}: expected '
                             f"0..{self.n_classes - 1}, or -1 for a missing label")
        return y


@dataclass(frozen=True)
class Regress:
    """A regression task: ``n_outputs`` real values, mean squared error.

    Targets: shape (n, n_outputs), or (n,) when n_outputs is 1; NaN where there is no label.
    Predictions: shape (n, n_outputs).
    """

    n_outputs: int = 1
    kind = "regress"

    def __post_init__(self):
        object.__setattr__(self, "n_outputs", _positive_int(self.n_outputs, "Regress(n_outputs)"))

    def loss(self, pred, target, out=None, scratch=None):
        """pred (batch, k), target (batch, k) -> (mean squared error, dL/dpred)."""
        return mse(pred, target, out=out, scratch=scratch)

    def output(self, pred):
        """The prediction is the head's output itself, shape (n, k)."""
        return pred

    def check_target(self, name, target, n_rows, dtype):
        """Return ``target`` as a ``dtype`` array of shape (n_rows, n_outputs), or raise ValueError."""
        t = np.asarray(target)
        if t.ndim == 1 and self.n_outputs == 1:
            t = t[:, None]
        expected = (n_rows, self.n_outputs)
        if t.ndim != 2 or t.shape != expected:
            raise ValueError(f'targets["{name}"] must have shape {expected}'
                             f'{" or (%d,)" % n_rows if self.n_outputs == 1 else ""}, got {t.shape}')
        if t.dtype.kind not in "iuf":
            raise ValueError(f'targets["{name}"] must be numeric, got dtype {t.dtype}')
        with np.errstate(over="ignore"):  # a value beyond the dtype becomes inf: reported below
            t = t.astype(dtype, copy=False)
        if np.isinf(t).any():
            raise DataError(f'targets["{name}"] holds a value that is infinite as {np.dtype(dtype).name}; '
                            f"use NaN for a missing label")
        return t


def head_from_kind(kind, n_outputs, class_weights=None):
    """Build a head from its stored description ("classify" or "regress", number of outputs)."""
    if kind == "classify":
        return Classify(n_outputs, class_weights)
    if kind == "regress":
        return Regress(n_outputs)
    raise ValueError(f'unknown head kind {kind!r}: expected "classify" or "regress"')
