import math
import sys

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from tinymtl import metrics

labels_and_predictions = st.integers(1, 40).flatmap(lambda n: st.tuples(
    st.lists(st.integers(-1, 3), min_size=n, max_size=n),
    st.lists(st.integers(0, 3), min_size=n, max_size=n)))


def test_classification_metrics_on_a_worked_example():
    labels = [0, 0, 1, 1, 2, -1]
    predicted = [0, 1, 1, 1, 0, 2]  # the unlabelled last row must not count
    assert metrics.accuracy(labels, predicted) == 3 / 5
    assert metrics.confusion_matrix(labels, predicted, 3) == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    # F1 per class: 0: 2*1/(2+1+1) = 0.5; 1: 2*2/(4+1+0) = 0.8; 2: 0 / (0+0+1) = 0
    assert math.isclose(metrics.macro_f1(labels, predicted, 3), (0.5 + 0.8 + 0.0) / 3)


def test_macro_f1_leaves_out_classes_absent_from_labels_and_predictions():
    assert metrics.macro_f1([0, 1, 1], [0, 1, 1], 5) == 1.0


def test_regression_metrics_on_a_worked_example():
    values = [1.0, 2.0, 3.0, np.nan]
    predicted = [1.5, 2.0, 2.0, 100.0]  # the unlabelled last row must not count
    assert math.isclose(metrics.rmse(values, predicted), math.sqrt((0.25 + 0 + 1) / 3))
    assert math.isclose(metrics.mae(values, predicted), 1.5 / 3)
    assert math.isclose(metrics.r2(values, predicted), 1 - 1.25 / 2)


def test_metrics_without_labelled_rows_are_none():
    assert metrics.accuracy([-1, -1], [0, 1]) is None
    assert metrics.macro_f1([-1], [0], 2) is None
    assert metrics.rmse([np.nan], [1.0]) is None
    assert metrics.r2([2.0, 2.0], [2.0, 1.0]) is None  # constant values: R^2 undefined


@given(labels_and_predictions)
def test_confusion_matrix_counts_every_labelled_row_and_its_diagonal_is_accuracy(pair):
    labels, predicted = pair
    counts = np.array(metrics.confusion_matrix(labels, predicted, 4))
    n_labelled = sum(1 for y in labels if y >= 0)
    assert counts.sum() == n_labelled
    if n_labelled:
        assert math.isclose(np.trace(counts) / n_labelled, metrics.accuracy(labels, predicted))
        f1 = metrics.macro_f1(labels, predicted, 4)
        assert 0.0 <= f1 <= 1.0


@given(st.lists(st.integers(0, 3), min_size=1, max_size=30))
def test_perfect_predictions_score_one(labels):
    assert metrics.accuracy(labels, labels) == 1.0
    assert metrics.macro_f1(labels, labels, 4) == 1.0


values_in_units = st.floats(-1e3, 1e3).map(lambda v: round(v, 6))  # no underflow when squared


@given(st.lists(values_in_units, min_size=2, max_size=30),
       st.lists(values_in_units, min_size=30, max_size=30))
def test_rmse_bounds_mae_and_perfect_regression_scores_zero_error(values, predicted):
    predicted = predicted[:len(values)]
    assert metrics.rmse(values, values) == 0.0 and metrics.mae(values, values) == 0.0
    assert metrics.rmse(values, predicted) >= metrics.mae(values, predicted) * (1 - 1e-12)
    if metrics.r2(values, values) is not None:
        assert metrics.r2(values, values) == 1.0
        mean = [float(np.mean(values))] * len(values)
        assert abs(metrics.r2(values, mean)) < 1e-9


@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=30),
       st.integers(-300, 300))
def test_regression_metrics_scale_with_the_values_without_overflow(values, power):
    """Multiplying values and predictions by 10**power multiplies RMSE and MAE by it and leaves
    R^2 alone, even where the squares would overflow float64 (10**300)."""
    y = np.array(values)
    p = y[::-1] * 0.5 + 1.0
    # a value scaled below float64's smallest normal number (2.2e-308) keeps only a few bits:
    # no metric can come out the same from it (a CI example: 1.8e-40 * 1e-276)
    assume(all(v == 0 or abs(v) * 10.0 ** power >= sys.float_info.min for v in [*y, *p]))
    plain = metrics.regression_metrics(y, p)
    scaled = metrics.regression_metrics(y * 10.0 ** power, p * 10.0 ** power)
    for name in ("rmse", "mae"):
        assert math.isfinite(scaled[name])
        assert math.isclose(scaled[name], plain[name] * 10.0 ** power, rel_tol=1e-9, abs_tol=1e-300)
    if plain["r2"] is None or scaled["r2"] is None:
        return
    assert math.isclose(scaled["r2"], plain["r2"], rel_tol=1e-9, abs_tol=1e-9)


def test_r2_of_constant_values_is_undefined_even_where_their_mean_rounds_off_them():
    values = [786.0112019444884] * 3  # np.mean is 1.1e-13 away: a total of rounding errors
    assert float(np.mean(values)) != values[0]
    assert metrics.r2(values, [1.0, 2.0, 3.0]) is None


def test_a_huge_negative_r2_prints_short():
    from tinymtl.cli import format_metrics
    from tinymtl.data import RegressTarget
    m = {"n_labelled": 3, "rmse": 5.2e29, "mae": 4e29, "r2": -5.123456e58}
    (line,) = format_metrics({"y": m}, {"y": RegressTarget("y", 0.0, 1.0)})
    assert line.endswith("R^2 -5.123e+58") and len(line) < 80


def test_in_the_ordinary_range_rmse_is_the_plain_formula_to_the_last_bit():
    rng = np.random.default_rng(0)
    for _ in range(200):
        y = rng.normal(size=20) * rng.uniform(0.01, 100)
        p = y + rng.normal(size=20)
        assert metrics.rmse(y, p) == float(np.sqrt(np.mean((p - y) ** 2)))
        assert metrics.mae(y, p) == float(np.mean(np.abs(p - y)))
