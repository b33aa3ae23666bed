import numpy as np
import pytest
from hypothesis import assume, given, strategies as st
from hypothesis.extra import numpy as npst

from tinymtl.gradcheck import numerical_gradient, relative_error
from tinymtl.losses import log_softmax, mse, row_max, row_sum, softmax_cross_entropy

logits_arrays = npst.arrays(np.float64, npst.array_shapes(min_dims=2, max_dims=2, min_side=2, max_side=8),
                            elements=st.floats(-1e4, 1e4))


@st.composite
def logits_and_labels(draw):
    z = draw(logits_arrays)
    labels = draw(npst.arrays(np.int64, z.shape[0], elements=st.integers(0, z.shape[1] - 1)))
    return z, labels


@given(logits_arrays, st.floats(-1e3, 1e3))
def test_log_softmax_normalises_and_ignores_a_shift(z, c):
    np.testing.assert_allclose(np.exp(log_softmax(z)).sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(log_softmax(z + c), log_softmax(z), atol=1e-6)


@given(logits_and_labels())
def test_cross_entropy_is_finite_nonnegative_and_minus_log_p_of_the_true_class(case):
    z, labels = case
    loss, grad = softmax_cross_entropy(z, labels)
    assert np.isfinite(loss) and loss >= 0
    rows = np.arange(len(labels))
    expected = -np.mean(log_softmax(z)[rows, labels])
    assert loss == pytest.approx(expected, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-12)  # softmax - onehot rows sum to 0


def test_cross_entropy_at_a_logit_gap_of_a_thousand_is_a_thousand():
    loss, _ = softmax_cross_entropy(np.array([[0.0, 1000.0]]), np.array([0]))
    assert loss == pytest.approx(1000.0)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_cross_entropy_gradient_matches_central_differences(seed, weighted):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((7, 4)) * 3
    labels = rng.integers(0, 4, 7)
    labels[[1, 4]] = -1  # unlabelled rows
    weights = rng.uniform(0.2, 3.0, 4) if weighted else None
    _, grad = softmax_cross_entropy(z, labels, class_weights=weights)
    numeric = numerical_gradient(lambda: softmax_cross_entropy(z, labels, class_weights=weights)[0], z)
    assert relative_error(grad, numeric) < 1e-7
    np.testing.assert_array_equal(grad[[1, 4]], 0.0)


def test_cross_entropy_ignores_unlabelled_rows_and_weighs_classes_like_pytorch():
    z = np.array([[2.0, 0.0], [0.0, 1.0], [5.0, -5.0]])
    per_row = -log_softmax(z)[[0, 1], [0, 1]]
    loss, _ = softmax_cross_entropy(z, np.array([0, 1, -1]))
    assert loss == pytest.approx(per_row.mean())
    loss, _ = softmax_cross_entropy(z, np.array([0, 1, -1]), class_weights=[1.0, 3.0])
    assert loss == pytest.approx((per_row[0] + 3 * per_row[1]) / 4)
    loss, grad = softmax_cross_entropy(z, np.array([-1, -1, -1]))
    assert loss == 0.0 and not grad.any()


values = st.integers(-10**6, 10**6).map(lambda i: i / 1000)  # squares never underflow to 0


@given(npst.arrays(np.float64, npst.array_shapes(min_dims=2, max_dims=2, max_side=8),
                   elements=values), st.data())
def test_mse_is_zero_exactly_when_prediction_equals_target(pred, data):
    target = data.draw(npst.arrays(np.float64, pred.shape, elements=values))
    loss, grad = mse(pred, pred.copy())
    assert loss == 0.0 and not grad.any()
    assume(not np.array_equal(pred, target))
    loss, _ = mse(pred, target)
    assert loss > 0
    assert loss == pytest.approx(np.mean((pred - target) ** 2), rel=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_mse_gradient_matches_central_differences_with_missing_targets(seed):
    rng = np.random.default_rng(seed)
    pred, target = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    target[rng.random(target.shape) < 0.3] = np.nan
    loss, grad = mse(pred, target)
    labelled = ~np.isnan(target)
    assert loss == pytest.approx(np.mean((pred - target)[labelled] ** 2))
    numeric = numerical_gradient(lambda: mse(pred, target)[0], pred)
    assert relative_error(grad, numeric) < 1e-7
    np.testing.assert_array_equal(grad[~labelled], 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_losses_keep_their_dtype(dtype):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((5, 3)).astype(dtype)
    assert log_softmax(z).dtype == dtype
    assert softmax_cross_entropy(z, np.array([0, 1, 2, -1, 1]))[1].dtype == dtype
    assert softmax_cross_entropy(z, np.array([0, 1, 2, 0, 1]), class_weights=[1, 2, 3])[1].dtype == dtype
    target = z.copy()
    target[0, 0] = np.nan
    assert mse(z + 1, target)[1].dtype == dtype


@given(npst.arrays(np.float64, st.tuples(st.integers(1, 1500), st.integers(1, 24)),
                   elements=st.floats(-1e4, 1e4)))
def test_row_max_and_row_sum_match_numpy_on_both_paths(x):
    np.testing.assert_array_equal(row_max(x), x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(row_sum(x), x.sum(axis=1, keepdims=True), rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize("n_rows, k", [(2000, 3), (2000, 2), (2000, 16), (10, 3), (2000, 17)])
def test_row_max_finds_a_maximum_in_the_last_column_on_both_paths(n_rows, k):
    """Tall and narrow (k <= 16, 1024 rows or more) takes the column-by-column path, the rest
    NumPy's reduction: either way a row whose largest entry is its last one gives that entry."""
    rng = np.random.default_rng(k)
    x = rng.uniform(-1.0, 1.0, (n_rows, k))
    x[:, -1] = 2.0 + np.arange(n_rows)  # every row's maximum in the last column
    np.testing.assert_array_equal(row_max(x), x[:, -1:])
    # and so log_softmax, which subtracts it, stays finite for logits far beyond exp's range
    assert np.isfinite(log_softmax(x * 1e3)).all()


def plain_cross_entropy(logits, labels, class_weights=None):
    """The docstring's plain NumPy version of softmax_cross_entropy: the reference."""
    k = logits.shape[1]
    r = np.where(labels >= 0, 1.0 if class_weights is None else np.asarray(class_weights)[labels % k], 0.0)
    m = logits.max(axis=1, keepdims=True)
    e = np.exp(logits - m)
    s = e.sum(axis=1, keepdims=True)
    rows = np.flatnonzero(r)
    if r.sum() == 0:
        return 0.0, np.zeros_like(logits)
    loss = np.sum(r[rows] * (np.log(s[rows, 0]) - (logits - m)[rows, labels[rows]])) / r.sum()
    grad = e / s * r[:, None] / r.sum()
    grad[rows, labels[rows]] -= r[rows] / r.sum()
    return loss, grad


@given(logits_and_labels(), st.data())
def test_cross_entropy_in_buffers_equals_the_plain_version(case, data):
    """With a Fortran- or C-order out and one Scratch reused over calls (as in training), with
    unlabelled rows and class weights (some zero)."""
    from tinymtl.losses import Scratch
    z, labels = case
    n, k = z.shape
    labels = np.where(data.draw(npst.arrays(np.bool_, n)), -1, labels)
    weights = data.draw(st.none() | st.lists(st.sampled_from([0.0, 0.5, 1.0, 3.0]), min_size=k, max_size=k))
    order = data.draw(st.sampled_from("CF"))
    logits = np.asfortranarray(z) if order == "F" else z
    out, scratch = np.empty((n, k), order=order), Scratch()
    expected_loss, expected_grad = plain_cross_entropy(z, labels, weights)
    for _ in range(2):  # the second call reuses the scratch arrays
        loss, grad = softmax_cross_entropy(logits, labels, class_weights=weights, out=out, scratch=scratch)
        assert grad is out
        assert loss == pytest.approx(expected_loss, rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-15)


def test_losses_refuse_an_out_that_overlaps_their_inputs_and_labels_out_of_range():
    z, labels = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]), np.array([0, 2])
    with pytest.raises(ValueError, match="apart from the logits"):
        softmax_cross_entropy(z, labels, out=z)
    for bad in ([0, 3], [-2, 0]):
        with pytest.raises(ValueError, match=r"class indices 0\.\.2, or -1"):
            softmax_cross_entropy(z, np.array(bad))
    with pytest.raises(ValueError, match="apart from pred and target"):
        mse(z, z * 2, out=z)


def test_mse_into_a_strided_out_leaves_missing_targets_out():
    pred = np.arange(8.0).reshape(4, 2)
    target = np.zeros((4, 2))
    target[0, 1] = np.nan
    out = np.empty((4, 4))[:, :2]
    loss, grad = mse(pred, target, out=out)
    assert loss == pytest.approx(np.nansum((pred - target) ** 2) / 7)
    assert grad is out and grad[0, 1] == 0.0
