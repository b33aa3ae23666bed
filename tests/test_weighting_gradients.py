"""Gradient checks of the weighted losses beyond tests/test_weighting.py: adapted (non-unit)
weights with masked, class-weighted targets, and checks that a slightly wrong gradient fails."""

import numpy as np
import pytest

from tinymtl import Classify, MultiTaskNet, Regress
from tinymtl.gradcheck import PASS_BELOW, check_network
from tinymtl.weighting import Uncertainty

from helpers import random_targets

HEADS = {"y": Classify(3, class_weights=(0.5, 2.0, 1.25)), "t": Regress(2), "u": Regress(1)}


def net_with(method, seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    net = MultiTaskNet(3, (5, 4), HEADS, rng=rng, dtype=np.float64, weighting=method, **kwargs)
    for name, p in net.parameters().items():
        if not name.endswith(".W"):  # random biases and log-variances, off every kink
            p[...] = rng.normal(0, 0.5, p.shape)
    return net, rng


@pytest.mark.parametrize("method", ["gradnorm", "dwa"])
def test_adapted_weights_with_masked_class_weighted_targets_pass(method):
    net, rng = net_with(method, loss_weights={"t": 0.3})
    adapted = {"y": 1.7, "t": 0.4, "u": 0.9}
    net.weighting.restore({"weights": {n: w * net.loss_weights[n] for n, w in adapted.items()}})
    assert net.weighting.current_weights() == pytest.approx({"y": 1.7, "t": 0.12, "u": 0.9})
    targets = random_targets(rng, HEADS, 10, missing=0.3)
    results = check_network(net, rng.standard_normal((10, 3)), targets)
    assert max(error for _, _, error in results.values()) < PASS_BELOW


def test_a_log_variance_gradient_off_by_one_percent_fails_the_check(monkeypatch):
    net, rng = net_with("uncertainty")
    targets = random_targets(rng, HEADS, 10, missing=0.3)
    X = rng.standard_normal((10, 3))
    results = check_network(net, X, targets)
    assert max(results[f"weighting.{n}.log_var"][2] for n in HEADS) < PASS_BELOW

    combine = Uncertainty.combine

    def off_by_one_percent(self, losses):
        total, scales = combine(self, losses)
        for name in self.heads:
            self.grad_log_var[name][0] *= 1.01
        return total, scales

    monkeypatch.setattr(Uncertainty, "combine", off_by_one_percent)
    results = check_network(net, X, targets)
    assert min(results[f"weighting.{n}.log_var"][2] for n in HEADS) > 1e-3


def test_a_task_weight_applied_to_the_loss_but_not_the_gradient_fails_the_check(monkeypatch):
    """The check sees the weights: scale only the reported loss of one task and it must fail."""
    net, rng = net_with("fixed", loss_weights={"y": 0.7, "t": 1.3})
    targets = random_targets(rng, HEADS, 10, missing=0.3)
    X = rng.standard_normal((10, 3))
    combine = net.weighting.combine
    monkeypatch.setattr(net.weighting, "combine",
                        lambda losses: (combine(losses)[0] + 0.01 * losses["t"], combine(losses)[1]))
    results = check_network(net, X, targets)
    assert results["heads.t.W"][2] > 1e-3 and results["heads.y.W"][2] < PASS_BELOW
