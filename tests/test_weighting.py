import math

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as npst

from tinymtl import Classify, MultiTaskNet, Regress, train
from tinymtl.errors import TrainingDiverged
from tinymtl.gradcheck import check_network, numerical_gradient, worst_error
from tinymtl.weighting import DWA, GradNorm, project_conflicts

from helpers import random_targets


def weighted_net(method, heads, seed=0, hidden=(5, 4), **kwargs):
    rng = np.random.default_rng(seed)
    net = MultiTaskNet(3, hidden, heads, rng=rng, dtype=np.float64, weighting=method, **kwargs)
    for name, p in net.parameters().items():
        if not name.endswith(".W"):  # random biases and log-variances, off every kink
            p[...] = rng.normal(0, 0.5, p.shape)
    return net, rng


@pytest.mark.parametrize("hidden", [(), (5,), (5, 4)])
def test_uncertainty_weighting_passes_the_gradient_check_with_its_log_variances(hidden):
    heads = {"y": Classify(3, class_weights=(1.0, 2.0, 0.5)), "t": Regress(2), "u": Regress(1)}
    net, rng = weighted_net("uncertainty", heads, hidden=hidden)
    targets = random_targets(rng, heads, 9, missing=0.25)  # masked and class-weighted together
    results = check_network(net, rng.standard_normal((9, 3)), targets)
    assert {f"weighting.{n}.log_var" for n in heads} <= set(results)
    worst = worst_error(results)  # NaN-aware: a NaN error fails
    assert worst < 1e-7, {name: r[2] for name, r in results.items()}


def test_uncertainty_loss_follows_the_stated_convention():
    heads = {"y": Classify(3), "t": Regress(1)}
    net, rng = weighted_net("uncertainty", heads)
    X = rng.standard_normal((6, 3))
    targets = random_targets(rng, heads, 6)
    task = net.task_losses(X, targets)
    s = {n: float(net.parameters()[f"weighting.{n}.log_var"][0]) for n in heads}
    expected = (math.exp(-s["y"]) * task["y"] + s["y"] / 2
                + 0.5 * math.exp(-s["t"]) * task["t"] + s["t"] / 2)
    assert net.loss_and_gradients(X, targets)[0] == pytest.approx(expected, rel=1e-12)


def test_uncertainty_log_variance_of_a_regression_task_learns_its_loss():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 2))
    t = X[:, 0] + rng.normal(0, 3.0, 200)  # noise variance 9 the network cannot explain
    net = MultiTaskNet(2, (8,), {"t": Regress(1), "y": Classify(2)}, seed=0,
                       dtype=np.float64, weighting="uncertainty")
    net.fit(X, {"t": t, "y": (X[:, 1] > 0).astype(int)}, epochs=150, lr=0.01)
    s = float(net.parameters()["weighting.t.log_var"][0])
    loss = net.task_losses(X, {"t": t, "y": (X[:, 1] > 0).astype(int)})["t"]
    assert math.exp(s) == pytest.approx(loss, rel=0.25)  # optimum: exp(s) = L


@pytest.mark.parametrize("method", ["fixed", "gradnorm", "dwa", "pcgrad"])
def test_every_method_gives_the_exact_gradient_of_its_current_loss(method):
    heads = {"y": Classify(3), "t": Regress(2)}
    net, rng = weighted_net(method, heads, loss_weights={"y": 0.7})
    targets = random_targets(rng, heads, 8, missing=0.2)
    results = check_network(net, rng.standard_normal((8, 3)), targets)
    assert worst_error(results) < 1e-7


def test_gradnorm_weights_sum_to_the_number_of_tasks_and_favour_the_small_gradient():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 3))
    targets = {"big": 1000 * X[:, 0], "small": X[:, 1], "y": (X[:, 2] > 0).astype(int)}
    net = MultiTaskNet(3, (8,), {"big": Regress(1), "small": Regress(1), "y": Classify(2)},
                       seed=0, dtype=np.float64, weighting="gradnorm")
    net.fit(X, targets, epochs=3, lr=1e-7)
    weights = net.weighting.current_weights()
    assert sum(weights.values()) == pytest.approx(3.0)
    assert weights["big"] < weights["small"] and weights["big"] < weights["y"]


@pytest.mark.parametrize("hidden", [(6,), (6, 5), ()])
def test_task_gradient_norms_are_the_norms_of_each_task_alone(hidden):
    """GradNorm's G_i: the norm of dL_i/dW at the last shared layer, as backprop of task i alone
    gives it (the heads' input gradient without a trunk), through a training workspace."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 4))
    heads = {"y": Classify(3), "t": Regress(2)}
    targets = random_targets(rng, heads, 12)
    net = MultiTaskNet(4, hidden, heads, seed=1, dtype=np.float64)
    ws = net._workspace(12)
    np.copyto(ws.inputs[:, :-1], X)
    _, _, grad_logits = net._losses(net._forward(ws.inputs, ws), net._check_targets(targets, 12), ws)
    norms = net.task_gradient_norms(grad_logits)
    for task in heads:
        alone = MultiTaskNet(4, hidden, heads, seed=1, dtype=np.float64,
                             loss_weights={name: float(name == task) for name in heads})
        if hidden:
            _, grads = alone.loss_and_gradients(X, targets)
            expected = np.linalg.norm(grads[f"trunk.{len(hidden) - 1}.W"])
            assert norms[task] == pytest.approx(expected, rel=1e-12)
        else:  # no trunk: the gradient reaching the heads' input, dL_i/dX
            expected = np.linalg.norm(numerical_gradient(lambda: alone.loss_and_gradients(X, targets)[0], X))
            assert norms[task] == pytest.approx(expected, rel=1e-6)


def test_dwa_follows_its_formula():
    dwa = DWA({"a": Regress(), "b": Regress()}, {"a": 1.0, "b": 1.0}, temperature=2.0)
    dwa.end_epoch({"a": 1.0, "b": 1.0})
    assert dwa.current_weights() == {"a": 1.0, "b": 1.0}  # two epochs are needed
    dwa.end_epoch({"a": 0.5, "b": 0.9})
    ea, eb = math.exp(0.5 / 2), math.exp(0.9 / 2)
    weights = dwa.current_weights()
    assert weights["a"] == pytest.approx(2 * ea / (ea + eb))
    assert weights["b"] == pytest.approx(2 * eb / (ea + eb))


vectors = npst.arrays(np.float64, 5, elements=st.floats(-100, 100))


@given(st.lists(vectors, min_size=2, max_size=4), st.integers(0, 2**32 - 1))
def test_pcgrad_removes_conflicts_and_sums_agreeing_gradients(grads, seed):
    rng = np.random.default_rng(seed)
    total = project_conflicts(grads, rng)
    if all(float(a @ b) >= 0 for i, a in enumerate(grads) for b in grads[i + 1:]):
        np.testing.assert_allclose(total, np.sum(grads, axis=0))
    if len(grads) == 2:
        g1, g2 = grads
        if float(g1 @ g2) < 0 and g1 @ g1 > 1e-6 and g2 @ g2 > 1e-6:
            # each projected gradient is orthogonal to the other task's gradient
            p1 = g1 - (g1 @ g2) / (g2 @ g2) * g2
            p2 = g2 - (g2 @ g1) / (g1 @ g1) * g1
            np.testing.assert_allclose(total, p1 + p2, atol=1e-8)


def test_a_pcgrad_step_gives_every_head_its_own_tasks_plain_gradient():
    """PCGrad projects only the shared trunk's gradients: each head's columns see only its own
    task, so a training step moves every head by -lr times the gradient of L that
    loss_and_gradients gives (with the tasks' weights), the first heads as the last."""
    heads = {"y": Classify(3), "t": Regress(2), "u": Classify(2)}
    net, rng = weighted_net("pcgrad", heads, loss_weights={"y": 0.7, "u": 2.0})
    X = rng.standard_normal((10, 3))
    targets = random_targets(rng, heads, 10)
    before = {name: p.copy() for name, p in net.parameters().items()}
    _, grads = net.loss_and_gradients(X, targets)
    net.fit(X, targets, epochs=1, batch_size=10, lr=0.1, lr_schedule="constant", momentum=0.0,
            weight_decay=0.0)
    for name in before:
        if name.startswith("heads."):
            assert np.any(grads[name] != 0), name
            np.testing.assert_allclose((before[name] - net.parameters()[name]) / 0.1, grads[name],
                                       rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("method", ["uncertainty", "gradnorm", "dwa", "pcgrad"])
def test_every_method_trains_and_survives_save_and_load(method, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 3)).astype(np.float32)
    targets = {"y": (X[:, 0] + X[:, 1] > 0).astype(int), "t": X[:, 2] * 2}
    net = MultiTaskNet(3, (8,), {"y": Classify(2), "t": Regress(1)}, seed=0, weighting=method)
    start = {name: p.copy() for name, p in net.parameters().items()}
    history = net.fit(X, targets, epochs=30, lr=0.05)
    assert history["y"][-1] < history["y"][0] and history["t"][-1] < history["t"][0]
    for name, p in net.parameters().items():  # every head trains, not only the trunk
        if name.startswith(("trunk.", "heads.")):
            assert not np.array_equal(p, start[name]), f"{name} never trained"
    net.save(tmp_path / "net.npz")
    loaded = MultiTaskNet.load(tmp_path / "net.npz")
    assert loaded.weighting.method == method
    assert loaded.weighting.current_weights() == pytest.approx(net.weighting.current_weights())
    assert net.loss_and_gradients(X, targets)[0] == loaded.loss_and_gradients(X, targets)[0]


def test_unknown_weighting_is_a_value_error():
    with pytest.raises(ValueError, match="weighting must be one of"):
        MultiTaskNet(3, (4,), {"y": Classify(2)}, weighting="magic")


def test_uncertainty_starts_each_log_variance_at_its_first_batch_optimum():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3))
    targets = {"big": 1000 * X[:, 0], "y": (X[:, 1] > 0).astype(int)}
    heads = {"big": Regress(1), "y": Classify(2)}
    net = MultiTaskNet(3, (8,), heads, seed=0, dtype=np.float64, weighting="uncertainty")
    first = net.task_losses(X[:8], {k: v[:8] for k, v in targets.items()})
    net.fit(X[:8], {k: v[:8] for k, v in targets.items()}, epochs=1, batch_size=8, lr=1e-3)
    s = {n: float(net.parameters()[f"weighting.{n}.log_var"][0]) for n in heads}
    # one step from the optimum, where dL/ds = 0, leaves s where it started
    assert s["big"] == pytest.approx(math.log(2 * 0.5 * first["big"]), abs=1e-9)
    assert s["y"] == pytest.approx(math.log(2 * 1.0 * first["y"]), abs=1e-9)
    net.fit(X, targets, epochs=20, lr=1e-3)
    assert float(net.parameters()["weighting.big.log_var"][0]) < 20  # no blow-up to thousands

    paper = MultiTaskNet(3, (8,), heads, seed=0, dtype=np.float64, weighting="uncertainty",
                         weighting_options={"init": "zero"})
    paper.fit(X, targets, epochs=1, lr=1e-3)
    assert float(paper.parameters()["weighting.big.log_var"][0]) > 100  # the failure it avoids


def test_weight_decay_leaves_the_log_variances_alone():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 3))
    targets = {"t": X[:, 0], "y": (X[:, 1] > 0).astype(int)}
    runs = []
    for decay in (0.0, 0.5):
        net = MultiTaskNet(3, (4,), {"t": Regress(1), "y": Classify(2)}, seed=0, dtype=np.float64,
                           weighting="uncertainty")
        net.fit(X, targets, epochs=1, batch_size=32, lr=0.1, weight_decay=decay)
        runs.append(net.parameters())
    np.testing.assert_array_equal(runs[0]["weighting.t.log_var"], runs[1]["weighting.t.log_var"])
    assert not np.array_equal(runs[0]["trunk.0.W"], runs[1]["trunk.0.W"])


class FixedNorms:
    """Stands in for the network in GradNorm.after_step: G_i = ||dL_i/dW|| given by the test."""

    def __init__(self, norms):
        self.norms = norms

    def task_gradient_norms(self, grad_logits):
        return dict(self.norms)


def gradnorm_after_two_steps(alpha=1.5, weight_lr=0.025):
    """Equal gradient norms; task a's loss stays at 1 while b's halves, so r = (4/3, 2/3)."""
    gradnorm = GradNorm({"a": Regress(), "b": Regress()}, {"a": 1.0, "b": 1.0},
                        alpha=alpha, weight_lr=weight_lr)
    net = FixedNorms({"a": 1.0, "b": 1.0})
    gradnorm.after_step(net, {"a": 1.0, "b": 1.0}, None)  # r = (1, 1): on target, no change
    assert gradnorm.current_weights() == {"a": 1.0, "b": 1.0}
    gradnorm.after_step(net, {"a": 1.0, "b": 0.5}, None)
    return gradnorm


@pytest.mark.parametrize("alpha", [1.5, 1000.0, 3000.0, 1e4, 1e308])
def test_gradnorm_takes_any_finite_alpha_without_overflow(alpha):
    """(4/3)^alpha overflows a float for alpha > 2467; only the sign of G_i - target_i counts,
    so every alpha here moves a up and b down by the same step in log w, weight_lr G_i / mean(G)."""
    weights = gradnorm_after_two_steps(alpha).current_weights()
    up, down = math.exp(0.025), math.exp(-0.025)
    assert weights["a"] == pytest.approx(2 * up / (up + down), rel=1e-12)
    assert weights["b"] == pytest.approx(2 * down / (up + down), rel=1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
def test_gradnorm_moves_each_weight_toward_its_target_norm_mean_g_times_r_to_the_alpha(alpha):
    """Unequal norms G = (1.35, 0.65) and loss ratios r = (4/3, 2/3): the targets mean(G) r_i^alpha
    lie below or above G_i depending on alpha (for b: 0.65 against (2/3)^alpha), and each
    log w_i steps by -weight_lr sign(G_i - target_i) G_i / mean(G), then w is renormalised to
    sum to 2: the weights follow the published formula, alpha included."""
    gradnorm = GradNorm({"a": Regress(), "b": Regress()}, {"a": 1.0, "b": 1.0},
                        alpha=alpha, weight_lr=0.025)
    gradnorm.after_step(FixedNorms({"a": 1.0, "b": 1.0}), {"a": 1.0, "b": 1.0}, None)  # L_i(0)
    assert gradnorm.current_weights() == {"a": 1.0, "b": 1.0}
    G = {"a": 1.35, "b": 0.65}  # the weights are 1: these are the G_i; mean(G) = 1
    gradnorm.after_step(FixedNorms(G), {"a": 1.0, "b": 0.5}, None)
    rates = {"a": 4 / 3, "b": 2 / 3}  # (L_i / L_i(0)) / mean: (1, 0.5) / 0.75
    log_w = {n: -0.025 * math.copysign(G[n], G[n] - rates[n] ** alpha) for n in G}
    total = sum(math.exp(v) for v in log_w.values())
    expected = {n: 2 * math.exp(v) / total for n, v in log_w.items()}
    weights = gradnorm.current_weights()
    assert weights == pytest.approx(expected, rel=1e-12)
    # the direction, spelled out: a is below its target 1.35 < (4/3)^alpha (a gains weight)
    # for alpha > 1.0431, b below its target 0.65 < (2/3)^alpha for alpha < 1.0624
    a_up = alpha > math.log(1.35) / math.log(4 / 3)
    assert (weights["a"] > weights["b"]) == a_up and (weights["b"] > 1.0) == (not a_up)


def test_gradnorm_with_alpha_0_equalises_the_gradient_norms():
    gradnorm = gradnorm_after_two_steps(alpha=0.0)  # targets = mean(G) = G_i: nothing moves
    assert gradnorm.current_weights() == {"a": 1.0, "b": 1.0}


@pytest.mark.parametrize("weight_lr", [1000.0, 1e308])
def test_gradnorm_takes_a_huge_weight_lr_without_overflow(weight_lr):
    """A step of weight_lr in log w: exp(1000) overflows; renormalised with a shift, b falls to
    the floor (1e-6 before the renormalisation) and a takes nearly all of the sum, 2."""
    gradnorm = gradnorm_after_two_steps(weight_lr=weight_lr)
    weights = gradnorm.current_weights()
    assert weights["a"] == 2.0 and 0 <= weights["b"] < 1e-300
    gradnorm.after_step(FixedNorms({"a": 1.0, "b": 1.0}), {"a": 1.0, "b": 0.5}, None)  # log 0 too
    weights = gradnorm.current_weights()
    assert all(math.isfinite(w) for w in weights.values())
    assert sum(weights.values()) == pytest.approx(2.0)


@pytest.mark.parametrize("alpha", [3000.0, 1e308])
def test_gradnorm_trains_with_a_huge_alpha(alpha):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    targets = {"t": X[:, 0], "y": (X[:, 1] > 0).astype(int)}
    net = MultiTaskNet(3, (4,), {"t": Regress(1), "y": Classify(2)}, seed=0, dtype=np.float64,
                       weighting="gradnorm", weighting_options={"alpha": alpha})
    net.fit(X, targets, epochs=3, lr=0.05)
    weights = net.weighting.current_weights()
    assert all(math.isfinite(w) and w > 0 for w in weights.values())
    assert sum(weights.values()) == pytest.approx(2.0)


@pytest.mark.parametrize("temperature, expected", [(5e-324, {"a": 2.0, "b": 0.0}),
                                                   (1e-300, {"a": 2.0, "b": 0.0}),
                                                   (1e300, {"a": 1.0, "b": 1.0}),
                                                   (1.7e308, {"a": 1.0, "b": 1.0})])
def test_dwa_reaches_its_limits_for_a_tiny_or_huge_temperature(temperature, expected):
    """T -> 0: all of the sum K on the slowest task (the largest r_i); T -> inf: every w_i = 1."""
    dwa = DWA({"a": Regress(), "b": Regress()}, {"a": 1.0, "b": 1.0}, temperature=temperature)
    dwa.end_epoch({"a": 1.0, "b": 1.0})
    dwa.end_epoch({"a": 0.9, "b": 0.5})
    assert dwa.current_weights() == pytest.approx(expected, abs=1e-12)


def test_dwa_survives_a_rate_beyond_the_largest_float():
    """A float64 loss can reach 1e-320; the next epoch's rate 1 / 1e-320 is inf, and inf - inf
    once made every weight NaN."""
    dwa = DWA({"a": Regress(), "b": Regress()}, {"a": 1.0, "b": 1.0})
    dwa.end_epoch({"a": 1e-320, "b": 1.0})
    dwa.end_epoch({"a": 1.0, "b": 0.5})
    assert dwa.current_weights() == {"a": 2.0, "b": 0.0}


def test_uncertainty_with_a_diverged_log_variance_stops_training_in_one_line():
    """exp(-s) for s < -709.78 overflows: the loss is then infinite, and fit says it diverged
    (a TrainingDiverged, not an OverflowError)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 3))
    targets = {"t": X[:, 0], "y": (X[:, 1] > 0).astype(int)}
    net = MultiTaskNet(3, (4,), {"t": Regress(1), "y": Classify(2)}, seed=0, dtype=np.float64,
                       weighting="uncertainty", weighting_options={"init": "zero"})
    net.parameters()["weighting.t.log_var"][0] = -800.0
    assert net.weighting.current_weights()["t"] == math.inf
    with pytest.raises(TrainingDiverged, match="diverged"):
        net.fit(X, targets, epochs=1, lr=1e-3)


@pytest.mark.parametrize("option, value", [
    ("--gradnorm-alpha", "3000"), ("--gradnorm-alpha", "1e4"), ("--gradnorm-alpha", "1e308"),
    ("--dwa-temperature", "1e-300"), ("--dwa-temperature", "1e300")])
def test_train_cli_takes_an_extreme_weighting_option(option, value, tmp_path, capsys):
    """--gradnorm-alpha 3000 was an OverflowError traceback; every value argparse lets through
    trains, with finite weights that sum to the number of tasks."""
    method = "gradnorm" if option == "--gradnorm-alpha" else "dwa"
    out = tmp_path / "m.npz"
    assert train.main(["--epochs", "4", "--hidden", "8", "--quiet", "--weighting", method,
                       option, value, "--out", str(out)]) == 0
    assert capsys.readouterr().err == ""
    weights = MultiTaskNet.load(out).weighting.current_weights()
    assert all(math.isfinite(w) and w >= 0 for w in weights.values())
    assert sum(weights.values()) == pytest.approx(2.0)


@pytest.mark.parametrize("method", ["gradnorm", "dwa", "uncertainty"])
def test_a_task_without_labels_takes_no_share_of_the_adapted_weights(method):
    """A head with no label in fit's data (kept by transfer learning, say) has no loss: its
    weight stays as it was, and the trained tasks' adapted weights sum to their own number."""
    heads = {"y": Classify(3), "t": Regress(1), "dead": Regress(1)}
    rng = np.random.default_rng(4)
    X = rng.standard_normal((48, 3))
    targets = random_targets(rng, heads, 48)
    targets["dead"][:] = np.nan
    net = MultiTaskNet(3, (6,), heads, seed=1, dtype=np.float64, weighting=method)
    net.fit(X, targets, epochs=4, batch_size=8)
    weights = net.weighting.current_weights()
    if method == "uncertainty":
        assert net.parameters()["weighting.dead.log_var"][0] == 0.0  # never moved
        assert net.parameters()["weighting.y.log_var"][0] != 0.0
    else:
        assert weights["dead"] == 1.0
        assert math.isclose(weights["y"] + weights["t"], 2.0) and weights["y"] != 1.0
    # after fit every task counts again: labelled now, 'dead' has a loss and gradients
    assert net.weighting.active == list(heads)
    labelled = random_targets(rng, heads, 48)
    _, grads = net.loss_and_gradients(X, labelled)
    assert np.any(grads["heads.dead.W"] != 0)
