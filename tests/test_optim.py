import numpy as np
import pytest

from tinymtl.optim import LR_SCHEDULES, SGD, ParamGroup, lr_factor


def reference_sgd(p, grads, lr, momentum, nesterov, weight_decay):
    """PyTorch's documented SGD, written out plainly, one step per gradient."""
    p, v = p.copy(), np.zeros_like(p)
    for g in grads:
        d = g + weight_decay * p
        if momentum:
            v = momentum * v + d
            d = d + momentum * v if nesterov else v
        p = p - lr * d
    return p


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.8, True)])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_sgd_matches_the_reference_update(momentum, nesterov, weight_decay):
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(6)
    grads = [rng.standard_normal(6) for _ in range(4)]
    p, g = p0.copy(), np.zeros(6)
    opt = SGD([ParamGroup([p], [g], 0.1)], momentum=momentum, nesterov=nesterov,
              weight_decay=weight_decay)
    for step_grad in grads:
        g[...] = step_grad
        opt.step()
    np.testing.assert_allclose(p, reference_sgd(p0, grads, 0.1, momentum, nesterov, weight_decay),
                               rtol=1e-12)


def test_sgd_updates_in_place_and_keeps_float32():
    p, g = np.ones(3, np.float32), np.full(3, 0.5, np.float32)
    alias = p
    SGD([ParamGroup([p], [g], 0.1)], momentum=0.9, weight_decay=0.1).step()
    assert alias is p and p.dtype == np.float32
    np.testing.assert_allclose(p, 1 - 0.1 * (0.5 + 0.1), rtol=1e-6)


@pytest.mark.parametrize("kwargs, word", [({"momentum": 1.0}, "momentum"),
                                          ({"momentum": -0.1}, "momentum"),
                                          ({"nesterov": True}, "nesterov"),
                                          ({"weight_decay": -1.0}, "weight_decay")])
def test_sgd_rejects_bad_settings(kwargs, word):
    with pytest.raises(ValueError, match=word):
        SGD([ParamGroup([np.ones(2)], [np.ones(2)], 0.1)], **kwargs)


def test_sgd_rejects_a_non_positive_learning_rate():
    with pytest.raises(ValueError, match="lr"):
        SGD([ParamGroup([np.ones(2)], [np.ones(2)], 0.0)])


@pytest.mark.parametrize("epochs", [1, 2, 7, 300])
def test_cosine_schedule_starts_at_the_full_rate_and_falls_smoothly_towards_zero(epochs):
    factors = [lr_factor("cosine", epoch, epochs) for epoch in range(1, epochs + 1)]
    assert factors[0] == 1.0
    assert all(a > b for a, b in zip(factors, factors[1:]))  # strictly falling
    assert 0 < factors[-1] <= 0.5 * (1 + np.cos(np.pi * (epochs - 1) / epochs)) + 1e-15
    if epochs > 1:  # halfway through, half the rate (the cosine's symmetry)
        assert lr_factor("cosine", epochs / 2 + 1, epochs) == pytest.approx(0.5)
    assert [lr_factor("constant", epoch, epochs) for epoch in range(1, epochs + 1)] == [1.0] * epochs


def test_an_unknown_schedule_is_refused_by_name():
    assert LR_SCHEDULES == ("constant", "cosine")
    with pytest.raises(ValueError, match="lr_schedule must be one of constant, cosine, got 'linear'"):
        lr_factor("linear", 1, 10)
