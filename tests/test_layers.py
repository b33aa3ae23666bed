import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as npst

from tinymtl.gradcheck import numerical_gradient, relative_error
from tinymtl.layers import Dense, ReLU


def dense_check(rng, batch=5, n_in=4, n_out=3):
    layer = Dense(n_in, n_out, rng=rng, dtype=np.float64)
    layer.params["b"][...] = rng.normal(size=n_out)
    x = rng.standard_normal((batch, n_in))
    grad_out = rng.standard_normal((batch, n_out))  # a random upstream gradient, never all ones
    layer.forward(x)
    grad_x = layer.backward(grad_out).copy()
    analytic = {k: g.copy() for k, g in layer.grads.items()}

    def loss():
        return float(np.sum(layer.forward(x) * grad_out))

    errors = {k: relative_error(analytic[k], numerical_gradient(loss, layer.params[k]))
              for k in layer.params}
    errors["x"] = relative_error(grad_x, numerical_gradient(loss, x))
    return errors, analytic, layer, loss, x


@pytest.mark.parametrize("seed", range(5))
def test_dense_gradients_match_central_differences(seed):
    errors, *_ = dense_check(np.random.default_rng(seed))
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("seed", range(3))
def test_dense_with_a_column_of_ones_is_the_same_layer(seed):
    """The bias trick: [x, 1] @ [W; b] gives x @ W + b, and its one weight-gradient product
    gives the same dW and db as the plain path, which the central differences above check."""
    _, analytic, layer, _, x = dense_check(np.random.default_rng(seed))
    grad_out = np.random.default_rng(seed + 10).standard_normal((x.shape[0], layer.n_out))
    plain = layer.forward(x).copy()
    layer.backward(grad_out)
    expected = {k: g.copy() for k, g in layer.grads.items()}
    x1 = np.hstack([x, np.ones((x.shape[0], 1))])
    np.testing.assert_allclose(layer.forward(x1, ones_column=True), plain, rtol=1e-12, atol=1e-12)
    grad_x = layer.backward(grad_out)
    for k in ("W", "b"):
        np.testing.assert_allclose(layer.grads[k], expected[k], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad_x, grad_out @ layer.params["W"].T, rtol=1e-12)
    with pytest.raises(ValueError, match="ending in a column of ones"):
        layer.forward(x, ones_column=True)
    with pytest.raises(ValueError, match=r"expects inputs \(batch, 4\)"):
        layer.forward(x1)


def test_gradient_check_catches_a_gradient_off_by_one_percent():
    rng = np.random.default_rng(0)
    _, analytic, layer, loss, _ = dense_check(rng)
    numeric = numerical_gradient(loss, layer.params["W"])
    assert relative_error(analytic["W"], numeric) < 1e-7
    assert relative_error(1.01 * analytic["W"], numeric) > 1e-3


@pytest.mark.parametrize("seed", range(5))
def test_relu_gradient_matches_central_differences_off_the_kink(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((6, 5))
    x[np.abs(x) < 0.1] = 0.5  # keep every input away from the kink at 0
    grad_out = rng.standard_normal(x.shape)
    relu = ReLU()
    relu.forward(x)
    grad_x = relu.backward(grad_out)
    numeric = numerical_gradient(lambda: float(np.sum(ReLU().forward(x) * grad_out)), x)
    assert relative_error(grad_x, numeric) < 1e-7


@given(npst.arrays(np.float64, npst.array_shapes(min_dims=2, max_dims=2, max_side=8),
                   elements=st.floats(-1e3, 1e3)), st.data())
def test_relu_passes_the_gradient_exactly_where_the_input_is_positive(x, data):
    grad_out = data.draw(npst.arrays(np.float64, x.shape, elements=st.floats(-1e3, 1e3)))
    before = grad_out.copy()
    relu = ReLU()
    out = relu.forward(x)
    grad_x = relu.backward(grad_out)
    np.testing.assert_array_equal(out, np.where(x > 0, x, 0.0))
    np.testing.assert_array_equal(grad_x, np.where(x > 0, grad_out, 0.0))
    np.testing.assert_array_equal(grad_out, before)  # the caller's gradient is untouched


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layers_keep_their_dtype(dtype):
    rng = np.random.default_rng(0)
    layer, relu = Dense(4, 3, rng=rng, dtype=dtype), ReLU()
    x = rng.standard_normal((5, 4)).astype(dtype)
    out = relu.forward(layer.forward(x))
    grad_x = layer.backward(relu.backward(np.ones_like(out)))
    for array in (out, grad_x, *layer.params.values(), *layer.grads.values()):
        assert array.dtype == dtype


def test_dense_writes_into_given_buffers():
    rng = np.random.default_rng(0)
    layer = Dense(4, 3, rng=rng)
    x = rng.standard_normal((5, 4), dtype=np.float32)
    out, grad_x = np.empty((5, 3), np.float32), np.empty((5, 4), np.float32)
    assert layer.forward(x, out=out) is out
    np.testing.assert_allclose(out, x @ layer.params["W"] + layer.params["b"], rtol=1e-6)
    grad_out = rng.standard_normal((5, 3), dtype=np.float32)
    assert layer.backward(grad_out, out=grad_x) is grad_x
    np.testing.assert_allclose(grad_x, grad_out @ layer.params["W"].T, rtol=1e-5)
    assert layer.backward(grad_out, need_grad_x=False) is None


def test_apply_is_forward_without_a_cache():
    """Prediction uses apply: the same numbers as forward, and no reference to its input kept."""
    rng = np.random.default_rng(3)
    dense = Dense(4, 3, rng=rng, dtype=np.float32)
    x = rng.standard_normal((6, 4), dtype=np.float32)
    before = dense.x
    out = dense.apply(x)
    assert dense.x is before and out.dtype == np.float32
    np.testing.assert_array_equal(out, dense.forward(x))
