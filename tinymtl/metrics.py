"""Metrics per task: accuracy, macro F1 and the confusion matrix; RMSE, MAE and R^2.

Every function skips unlabelled rows (class -1, NaN value), as the losses do, and returns plain
Python values (float, int, lists) ready for JSON. A metric with no labelled row is None.
"""

import math

import numpy as np


def confusion_matrix(labels, predicted, n_classes):
    """counts[i][j]: rows whose true class is i and predicted class j (labelled rows only)."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    keep = labels >= 0
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (labels[keep], predicted[keep]), 1)
    return counts.tolist()


def accuracy(labels, predicted):
    """Fraction of labelled rows whose predicted class is the true one."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    keep = labels >= 0
    if not keep.any():
        return None
    return float(np.mean(labels[keep] == predicted[keep]))


def macro_f1(labels, predicted, n_classes):
    """Unweighted mean over classes of F1 = 2 TP / (2 TP + FP + FN).

    Classes that occur neither in the labels nor in the predictions are left out of the mean
    (scikit-learn's ``f1_score(average="macro")`` convention).
    """
    counts = np.asarray(confusion_matrix(labels, predicted, n_classes))
    if counts.sum() == 0:
        return None
    tp = np.diag(counts)
    fp = counts.sum(axis=0) - tp
    fn = counts.sum(axis=1) - tp
    present = (tp + fp + fn) > 0
    return float(np.mean(2 * tp[present] / (2 * tp[present] + fp[present] + fn[present])))


def _labelled(values, predicted):
    """The labelled rows' values and predictions, float64, divided by a unit u (returned too):
    the power of two just above the largest |value| or |prediction|. Squares of numbers near
    1e300 would overflow, and of numbers near 1e-160 underflow; divided by u they cannot, and
    each metric multiplies its result by u (R^2 cancels it). Scaling by a power of two is exact,
    so in the ordinary range every metric is the same to the last bit as without the unit."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    predicted = np.asarray(predicted, dtype=np.float64).reshape(-1)
    keep = ~np.isnan(values)
    y, p = values[keep], predicted[keep]
    largest = max(float(np.abs(y).max()), float(np.abs(p).max())) if y.size else 0.0
    unit = math.ldexp(1.0, math.frexp(largest)[1]) if 0 < largest < math.inf else 1.0
    return y / unit, p / unit, unit


def rmse(values, predicted):
    """sqrt(mean (predicted - value)^2) over labelled rows, in the values' units."""
    y, p, unit = _labelled(values, predicted)
    return float(np.sqrt(np.mean((p - y) ** 2))) * unit if y.size else None


def mae(values, predicted):
    """mean |predicted - value| over labelled rows, in the values' units."""
    y, p, unit = _labelled(values, predicted)
    return float(np.mean(np.abs(p - y))) * unit if y.size else None


def r2(values, predicted):
    """1 - sum (value - predicted)^2 / sum (value - mean value)^2 over labelled rows.

    1 is perfect; 0 is no better than predicting the mean; None when the values are constant.
    """
    y, p, _ = _labelled(values, predicted)
    # constant values are compared as such: their mean may round off them (786.0112019444884
    # three times has a mean 1e-13 away), which would make a total of rounding errors
    if y.size == 0 or np.all(y == y[0]):
        return None
    total = float(np.sum((y - y.mean()) ** 2))
    if total == 0.0:  # spread too small for its squares to be told from 0 (1e-208)
        return None
    return 1.0 - float(np.sum((y - p) ** 2)) / total


def classification_metrics(labels, probabilities):
    """labels (n,) with -1 = no label, probabilities (n, n_classes) -> dict of metrics."""
    n_classes = probabilities.shape[1]
    predicted = np.argmax(probabilities, axis=1)
    labels = np.asarray(labels)
    return {"n_labelled": int(np.sum(labels >= 0)), "accuracy": accuracy(labels, predicted),
            "macro_f1": macro_f1(labels, predicted, n_classes),
            "confusion_matrix": confusion_matrix(labels, predicted, n_classes)}


def regression_metrics(values, predicted):
    """values (n,) with NaN = no label, predicted (n,), same units -> dict of metrics."""
    return {"n_labelled": int(np.sum(~np.isnan(np.asarray(values, dtype=np.float64)))),
            "rmse": rmse(values, predicted), "mae": mae(values, predicted),
            "r2": r2(values, predicted)}
