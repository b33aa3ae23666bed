import csv
import warnings
from importlib import resources

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import tinymtl
from tinymtl import Classify, MultiTaskNet, Regress
from tinymtl.gradcheck import check_network, worst_error
from tinymtl.heads import has_label
from tinymtl.losses import log_softmax

from helpers import kink_margin, random_net, random_targets

head_kinds = st.one_of(st.integers(2, 4).map(Classify), st.integers(1, 3).map(Regress))
architectures = st.tuples(
    st.integers(1, 5),                                   # n_inputs
    st.lists(st.integers(1, 6), min_size=0, max_size=3),  # hidden
    st.lists(head_kinds, min_size=1, max_size=4),         # heads
    st.integers(1, 9),                                   # rows
    st.integers(0, 2**32 - 1),                           # seed
)


def build(arch, dtype=np.float64, missing=0.0):
    n_inputs, hidden, kinds, n_rows, seed = arch
    rng = np.random.default_rng(seed)
    heads = {f"task{i}": head for i, head in enumerate(kinds)}
    net = random_net(rng, n_inputs, tuple(hidden), heads, dtype)
    X = rng.standard_normal((n_rows, n_inputs))
    return net, X, random_targets(rng, heads, n_rows, missing)


@pytest.mark.parametrize("hidden", [(), (5,), (4, 6), (3, 5, 4)])
@pytest.mark.parametrize("missing", [0.0, 0.3])
def test_whole_network_gradients_match_central_differences(hidden, missing):
    rng = np.random.default_rng(len(hidden))
    heads = {"a": Classify(3), "b": Regress(2), "c": Classify(2), "d": Regress(1)}
    net = random_net(rng, 4, hidden, heads)
    X = rng.standard_normal((9, 4))
    targets = random_targets(rng, heads, 9, missing)
    results = check_network(net, X, targets)
    assert set(results) == set(net.parameters())
    worst = worst_error(results)  # NaN-aware: a NaN error fails
    assert worst < 1e-7, {name: r[2] for name, r in results.items()}


def test_weighted_task_losses_pass_the_gradient_check():
    rng = np.random.default_rng(3)
    heads = {"a": Classify(3, class_weights=(1.0, 2.5, 0.5)), "b": Regress(2)}
    net = tinymtl.MultiTaskNet(3, (5,), heads, rng=rng, dtype=np.float64, loss_weights={"a": 0.3, "b": 2.0})
    for name, p in net.parameters().items():
        if name.endswith(".b"):
            p[...] = rng.normal(0, 0.5, p.shape)
    targets = random_targets(rng, heads, 8, missing=0.2)
    results = check_network(net, rng.standard_normal((8, 3)), targets)
    assert worst_error(results) < 1e-7


@given(architectures)
def test_random_networks_pass_the_gradient_check(arch):
    net, X, targets = build(arch)
    assume(kink_margin(net, X) > 1e-3)  # one CI example had a ReLU input of 5.6e-6 < h
    # h = 1e-5: float64 rounding in the central differences is about eps * L / h = 2e-11 * L
    # per element (L, the loss, reaches ~10 with four heads), the truncation error ~1e-10.
    # Where a saturated softmax leaves a gradient below 1e-3 (CI examples: norms 1.2e-7 and
    # 1.4e-5, whose 5e-11 of rounding made a relative error of 2.6e-6), that rounding alone
    # can pass 1e-6 relative, so such an array is held to the absolute error instead: below
    # 1e-9, far below what a bug would make.
    for name, (analytic, numeric, error) in check_network(net, X, targets, h=1e-5).items():
        if np.linalg.norm(analytic) < 1e-3:
            assert np.linalg.norm(analytic - numeric) < 1e-9, name
        else:
            assert error < 1e-6, name


@given(architectures)
def test_loss_is_the_sum_of_task_losses_computed_from_predictions(arch):
    net, X, targets = build(arch, missing=0.2)
    loss, _ = net.loss_and_gradients(X, targets)
    out = net.predict(X)
    expected = 0.0
    for name, head in net.heads.items():
        if head.kind == "classify":
            y = targets[name]
            keep = y >= 0
            if keep.any():
                expected += -np.mean(np.log(out[name][keep, y[keep]]))
        else:
            sq = (out[name] - targets[name]) ** 2
            if (~np.isnan(sq)).any():
                expected += np.nanmean(sq)
    assert loss == pytest.approx(expected, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(arch=architectures)
def test_outputs_gradients_and_parameters_keep_the_dtype(dtype, arch):
    net, X, targets = build(arch, dtype)
    X = X.astype(dtype)
    out = net.predict(X)
    _, grads = net.loss_and_gradients(X, targets)
    for name, head in net.heads.items():
        assert out[name].shape == (X.shape[0], head.n_outputs) and out[name].dtype == dtype
    for array in (*grads.values(), *net.parameters().values()):
        assert array.dtype == dtype
    net.fit(X, targets, epochs=2, batch_size=4, lr=0.01)
    assert all(p.dtype == dtype for p in net.parameters().values())


@given(architectures)
def test_one_small_sgd_step_lowers_the_loss_on_a_fixed_batch(arch):
    net, X, targets = build(arch)
    loss, grads = net.loss_and_gradients(X, targets)
    if sum(float(np.sum(g * g)) for g in grads.values()) < 1e-6:
        return  # (nearly) stationary: the decrease, about 1e-4 |g|^2, would drown in rounding
    for name, p in net.parameters().items():
        p -= 1e-4 * grads[name]
    assert net.loss_and_gradients(X, targets)[0] < loss


def unlabelled(head, target):
    """``target`` with every label removed (class -1, value NaN)."""
    return np.full_like(target, -1) if head.kind == "classify" else np.full_like(target, np.nan)


@given(architectures, st.integers(1, 4), st.sampled_from([np.float32, np.float64]))
def test_fit_is_sgd_on_loss_and_gradients_batch_by_batch(arch, batch_size, dtype):
    """Each step of fit is p -= lr * dL/dp of that batch, as loss_and_gradients gives it, in the
    shuffle's order: also the epoch's shorter last batch (whose workspace lies within the full
    batch's), with missing labels and targets. A task labelled on fewer than half of a batch's
    entries steps with its gradient scaled by (labelled share) / 0.5 (see _step_weight)."""
    n_inputs, hidden, kinds, n_rows, seed = arch
    rng = np.random.default_rng(seed)
    heads = {f"task{i}": head for i, head in enumerate(kinds)}
    X = rng.standard_normal((n_rows, n_inputs))
    targets = random_targets(rng, heads, n_rows, missing=0.2)
    assume(any(map(has_label, targets.values())))  # with no label at all, fit refuses to run
    trained = MultiTaskNet(n_inputs, hidden, heads, seed=seed % 1000, dtype=dtype)
    stepped = MultiTaskNet(n_inputs, hidden, heads, seed=seed % 1000, dtype=dtype)
    trained.fit(X, targets, epochs=2, batch_size=batch_size, lr=0.01, momentum=0.0, weight_decay=0.0,
                lr_schedule="constant", rng=np.random.default_rng(1))
    shuffle = np.random.default_rng(1)
    for _ in range(2):
        order = shuffle.permutation(n_rows)
        for start in range(0, n_rows, batch_size):
            rows = order[start:start + batch_size]
            batch = {k: t[rows] for k, t in targets.items()}
            step = {name: np.zeros_like(p) for name, p in stepped.parameters().items()}
            for task, head in heads.items():  # the loss is a sum over tasks: one task at a time
                alone = {k: (t if k == task else unlabelled(heads[k], t)) for k, t in batch.items()}
                _, grads = stepped.loss_and_gradients(X[rows], alone)
                labelled = batch[task] >= 0 if head.kind == "classify" else ~np.isnan(batch[task])
                weight = min(1.0, labelled.mean() / 0.5)
                for name in step:
                    step[name] += weight * grads[name]
            for name, p in stepped.parameters().items():
                p -= 0.01 * step[name]
    for name, p in trained.parameters().items():
        np.testing.assert_allclose(p, stepped.parameters()[name], rtol=1e-5 if dtype == np.float32 else 1e-12,
                                   atol=1e-6 if dtype == np.float32 else 1e-14, err_msg=name)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_a_cosine_schedule_scales_each_epochs_steps(momentum):
    """fit(lr_schedule="cosine") is fit with lr * lr_factor(epoch) in each epoch, as epochs of
    single-batch steps taken by hand show, with momentum carried across the epochs."""
    from tinymtl.optim import SGD, lr_factor
    rng = np.random.default_rng(5)
    heads = {"y": Classify(3), "t": Regress(1)}
    X = rng.standard_normal((12, 4))
    targets = random_targets(rng, heads, 12)
    scheduled = MultiTaskNet(4, (5,), heads, seed=2, dtype=np.float64)
    by_hand = MultiTaskNet(4, (5,), heads, seed=2, dtype=np.float64)
    scheduled.fit(X, targets, epochs=4, batch_size=12, lr=0.1, momentum=momentum,
                  weight_decay=0.0, lr_schedule="cosine")
    optimizer = SGD(by_hand.param_groups(0.1), momentum=momentum)
    checked = by_hand._check_targets(targets, 12)
    for epoch in range(1, 5):
        optimizer.groups[0].lr = 0.1 * lr_factor("cosine", epoch, 4)
        by_hand.train_step(by_hand._check_inputs(X), checked, optimizer)
    np.testing.assert_allclose(scheduled.flat_params, by_hand.flat_params, rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match="lr_schedule"):
        scheduled.fit(X, targets, epochs=1, lr_schedule="step")


def test_parameters_are_live_arrays():
    rng = np.random.default_rng(0)
    net = random_net(rng, 3, (4,), {"y": Classify(3), "t": Regress(1)})
    X = rng.standard_normal((5, 3))
    before = net.predict(X)["t"].copy()
    net.parameters()["heads.t.b"][0] += 1.0
    np.testing.assert_allclose(net.predict(X)["t"], before + 1.0)
    net.parameters()["trunk.0.W"][...] = 0.0
    net.parameters()["trunk.0.b"][...] = -1.0  # every hidden unit dead: outputs are the head biases
    np.testing.assert_allclose(net.predict(X)["y"], np.exp(log_softmax(
        np.tile(net.parameters()["heads.y.b"], (5, 1)))))


def test_returned_gradients_are_copies_not_buffers():
    rng = np.random.default_rng(0)
    heads = {"y": Classify(3)}
    net = random_net(rng, 3, (4,), heads)
    X, targets = rng.standard_normal((6, 3)), random_targets(rng, heads, 6)
    _, first = net.loss_and_gradients(X, targets)
    kept = {k: v.copy() for k, v in first.items()}
    net.loss_and_gradients(X * 2, targets)
    for k in kept:
        np.testing.assert_array_equal(first[k], kept[k])


def test_same_seed_same_training_and_another_seed_differs():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3)).astype(np.float32)
    heads = {"y": Classify(3), "t": Regress(2)}
    targets = random_targets(rng, heads, 40)

    def trained(seed):
        net = MultiTaskNet(3, (8, 8), heads, seed=seed)
        history = net.fit(X, targets, epochs=5, batch_size=8, lr=0.05, momentum=0.9)
        return net.flat_params.copy(), history

    a, history_a = trained(7)
    b, history_b = trained(7)
    c, _ = trained(8)
    np.testing.assert_array_equal(a, b)
    assert history_a == history_b
    assert not np.array_equal(a, c)
    assert not np.array_equal(MultiTaskNet(3, (8,), heads, seed=1).flat_params,
                              MultiTaskNet(3, (8,), heads, seed=2).flat_params)


def load_iris():
    with resources.files("tinymtl").joinpath("data/iris.csv").open() as f:
        rows = list(csv.DictReader(f))
    X = np.array([[float(r[c]) for c in ("sepal_length", "sepal_width", "petal_length")] for r in rows])
    classes = sorted({r["species"] for r in rows})
    y = np.array([classes.index(r["species"]) for r in rows])
    t = np.array([float(r["petal_width"]) for r in rows])
    return X, y, t


def test_fit_learns_iris_species_and_petal_width_jointly():
    X, y, t = load_iris()
    accuracies, errors = [], []
    for split_seed in range(5):  # Iris without petal width: about 1 flower in 20 is ambiguous
        order = np.random.default_rng(split_seed).permutation(len(y))
        train, test = order[:105], order[105:]
        mean, std = X[train].mean(axis=0), X[train].std(axis=0)
        Xs = ((X - mean) / std).astype(np.float32)
        net = MultiTaskNet(3, (16, 16), {"species": Classify(3), "petal_width": Regress(1)}, seed=0)
        history = net.fit(Xs[train], {"species": y[train], "petal_width": t[train]})  # defaults
        assert len(history["species"]) == 300
        assert history["species"][-1] < history["species"][0] / 4
        out = net.predict(Xs[test])
        assert out["species"].dtype == np.float32
        accuracies.append(np.mean(out["species"].argmax(axis=1) == y[test]))
        errors.append(np.sqrt(np.mean((out["petal_width"][:, 0] - t[test]) ** 2)))
    assert np.mean(accuracies) >= 0.93 and min(accuracies) >= 0.88, accuracies
    assert max(errors) <= 0.3, errors


def test_full_batch_fit_keeps_no_extra_copy_of_the_data():
    """fit reads batches from its gathered chunk; the workspace's own input buffer (for
    train_step) is not made, and a chunk bigger than GATHER_BYTES is let go after fit."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3000, 40)).astype(np.float32)  # 480 KB: more than a chunk
    net = MultiTaskNet(40, (4,), {"t": Regress(1)}, seed=0)
    net.fit(X, {"t": X[:, 0]}, epochs=2, batch_size=3000)
    assert net._gathered is None
    assert net._workspaces[3000]._inputs is None
    net.fit(X, {"t": X[:, 0]}, epochs=1, batch_size=16)  # small batches: the chunk is kept
    assert net._gathered is not None and net._gathered.nbytes <= 256 * 1024


def test_fit_refuses_data_without_rows():
    net = MultiTaskNet(2, (3,), {"y": Classify(2)}, seed=0)
    with pytest.raises(ValueError, match=r"at least one row of X, got shape \(0, 2\)"):
        net.fit(np.zeros((0, 2)), {"y": np.zeros(0, int)}, epochs=2)
    with pytest.raises(ValueError, match=r"validation needs at least one row"):
        net.fit(np.zeros((4, 2)), {"y": np.zeros(4, int)}, epochs=2,
                validation=(np.zeros((0, 2)), {"y": np.zeros(0, int)}))


def test_fit_has_the_command_lines_defaults():
    """One set of defaults: MultiTaskNet.fit's are python -m tinymtl.train's."""
    import inspect

    from tinymtl.cli import DEFAULTS
    signature = inspect.signature(MultiTaskNet.fit).parameters
    for name, value in DEFAULTS.items():
        if name != "hidden":  # the network's, not fit's
            assert signature[name].default == value, name


def test_rows_without_a_label_still_train_the_other_task():
    X, y, t = load_iris()
    Xs = ((X - X.mean(axis=0)) / X.std(axis=0)).astype(np.float32)
    t_missing = t.copy()
    t_missing[::2] = np.nan  # half the rows have no petal width
    y_missing = y.copy()
    y_missing[1::2] = -1     # the other half have no species
    net = MultiTaskNet(3, (16, 16), {"species": Classify(3), "petal_width": Regress(1)}, seed=0)
    net.fit(Xs, {"species": y_missing, "petal_width": t_missing}, epochs=150, lr=0.05)
    out = net.predict(Xs)
    assert np.mean(out["species"].argmax(axis=1) == y) > 0.9
    assert np.sqrt(np.mean((out["petal_width"][:, 0] - t) ** 2)) < 0.3


def test_fit_freezes_groups_and_gives_the_trunk_its_own_rate():
    rng = np.random.default_rng(0)
    heads = {"y": Classify(3), "t": Regress(1)}
    X, targets = rng.standard_normal((30, 3)), random_targets(rng, heads, 30)
    net = MultiTaskNet(3, (6,), heads, seed=0, dtype=np.float64)
    trunk = {k: p.copy() for k, p in net.parameters().items() if k.startswith("trunk")}
    head_t = net.parameters()["heads.t.W"].copy()
    net.fit(X, targets, epochs=3, lr=0.1, momentum=0.9, weight_decay=0.1, freeze=["trunk", "t"])
    params = net.parameters()
    for k, p in trunk.items():
        np.testing.assert_array_equal(params[k], p)
    np.testing.assert_array_equal(params["heads.t.W"], head_t)
    assert not np.array_equal(params["heads.y.W"], MultiTaskNet(3, (6,), heads, seed=0).parameters()["heads.y.W"])


def test_divergence_raises_and_restores_the_parameters():
    rng = np.random.default_rng(0)
    net = MultiTaskNet(3, (8,), {"t": Regress(1)}, seed=0)
    before = net.flat_params.copy()
    X = rng.standard_normal((50, 3)).astype(np.float32)
    with pytest.raises(tinymtl.TrainingDiverged, match="lower learning rate"):
        net.fit(X, {"t": X[:, 0] * 1e6}, epochs=50, lr=10.0)
    np.testing.assert_array_equal(net.flat_params, before)


def test_early_stopping_restores_the_best_epoch():
    rng = np.random.default_rng(0)
    heads = {"y": Classify(2)}
    X = rng.standard_normal((60, 3))
    y = (X[:, 0] > 0).astype(int)
    y_noisy = np.where(rng.random(60) < 0.4, 1 - y, y)  # overfit the noise
    net = MultiTaskNet(3, (32, 32), heads, seed=0, dtype=np.float64)
    history = net.fit(X[:30], {"y": y_noisy[:30]}, epochs=300, lr=0.2,
                      validation=(X[30:], {"y": y[30:]}), patience=10)
    best = int(np.argmin(history["val_y"]))
    assert net.best_epoch == best + 1
    assert net.task_losses(X[30:], {"y": y[30:]})["y"] == pytest.approx(history["val_y"][best])


def test_early_stopping_calls_back_for_every_epoch_the_last_one_included():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = (X[:, 0] > 0).astype(int)
    y_noisy = np.where(rng.random(60) < 0.4, 1 - y, y)
    net = MultiTaskNet(3, (32, 32), {"y": Classify(2)}, seed=0, dtype=np.float64)
    seen = []
    history = net.fit(X[:30], {"y": y_noisy[:30]}, epochs=300, lr=0.2, patience=5,
                      validation=(X[30:], {"y": y[30:]}),
                      callback=lambda epoch, h: seen.append((epoch, len(h["val_y"]))))
    assert len(history["y"]) < 300  # it did stop early
    assert seen == [(epoch, epoch) for epoch in range(1, len(history["y"]) + 1)]
    assert len(history["y"]) == net.best_epoch + 5


BAD_CALLS = [
    (lambda: MultiTaskNet(3, (0,), {"y": Classify(2)}), "hidden"),
    (lambda: MultiTaskNet(3, (4,), {"y": Classify(2)}, dtype=np.int32), "dtype"),
    (lambda: MultiTaskNet(3, (4,), {}), "heads"),
    (lambda: MultiTaskNet(0, (4,), {"y": Classify(2)}), "n_inputs"),
]


@pytest.mark.parametrize("call, word", BAD_CALLS)
def test_bad_constructor_arguments_raise_value_error(call, word):
    with pytest.raises(ValueError, match=word):
        call()


def bad_fit_cases():
    X = np.zeros((4, 3))
    good = {"y": np.array([0, 1, 2, 0]), "t": np.zeros(4)}
    return [
        (np.zeros((4, 2)), good, {}, r"X must have shape \(n, 3\), got \(4, 2\)"),
        (np.zeros(3), good, {}, r"X must have shape"),
        (np.array([[0, 0, np.inf]] * 4), good, {}, "non-finite"),
        (X, {"y": good["y"]}, {}, r"missing \['t'\]"),
        (X, {**good, "z": good["t"]}, {}, r"unknown \['z'\]"),
        (X, {**good, "y": np.array([0, 1, 3, 0])}, {}, "class index 3"),
        (X, {**good, "y": np.array([0, -2, 2, 0])}, {}, "class index -2"),  # -1 alone is "no label"
        (X, {**good, "t": np.array([0.0, np.inf, 1.0, 0.0])}, {}, r'targets\["t"\] holds a value that is infinite'),
        (X, {**good, "t": np.array([0.0, 1.0, -1e39, 0.0])}, {},  # -inf as float32
         r'targets\["t"\] holds a value that is infinite as float32'),
        (X, {**good, "y": np.array([0, 1.5, 2, 0])}, {}, "integer class indices"),
        (X, {**good, "y": np.array([0, 1, 2])}, {}, r"shape \(4,\)"),
        (X, {**good, "t": np.zeros((4, 2))}, {}, r"shape \(4, 1\)"),
        (X, good, {"lr": 0.0}, "lr"),
        (X, good, {"lr": -1.0}, "lr"),
        (X, good, {"epochs": 0}, "epochs"),
        (X, good, {"batch_size": 0}, "batch_size"),
    ]


@pytest.mark.parametrize("X, targets, options, message", bad_fit_cases())
def test_bad_fit_arguments_raise_value_error_and_change_nothing(X, targets, options, message):
    net = MultiTaskNet(3, (4,), {"y": Classify(3), "t": Regress(1)}, seed=0)
    before = net.flat_params.copy()
    with pytest.raises(ValueError, match=message):
        net.fit(X, targets, epochs=options.get("epochs", 2), lr=options.get("lr", 0.1),
                batch_size=options.get("batch_size", 2))
    np.testing.assert_array_equal(net.flat_params, before)


@pytest.mark.parametrize("y, t, message", [
    ([0, -2, 1, 0], [0.0, 1.0, 2.0, 3.0], r'targets\["y"\] holds class index -2: expected 0..2, or -1'),
    ([0, 1, 2, -1], [0.0, np.inf, 2.0, 3.0], r'targets\["t"\] holds a value that is infinite as float64'),
    ([0, 1, 2, -1], [0.0, 1.0, -np.inf, 3.0], r'targets\["t"\] holds a value that is infinite'),
])
def test_a_bad_target_is_named_by_loss_and_gradients_and_fit(y, t, message):
    """A class index below -1 and an infinite regression target are the caller's mistakes: a
    ValueError naming the target, from fit too, never a TrainingDiverged after a step on them."""
    net = MultiTaskNet(3, (4,), {"y": Classify(3), "t": Regress(1)}, seed=0, dtype=np.float64)
    X, targets = np.zeros((4, 3)), {"y": np.array(y), "t": np.array(t)}
    with pytest.raises(ValueError, match=message) as err:
        net.loss_and_gradients(X, targets)
    assert not isinstance(err.value, tinymtl.TrainingDiverged)
    with pytest.raises(ValueError, match=message) as err:
        net.fit(X, targets, epochs=1)
    assert not isinstance(err.value, tinymtl.TrainingDiverged)


@pytest.mark.parametrize("n_rows, batch_size", [(10, 4), (7, 3), (9, 8)])
def test_fit_history_is_the_row_weighted_mean_of_the_batch_losses(n_rows, batch_size):
    """An epoch's loss is the mean over its rows: a last batch of fewer rows counts for its own
    rows, not a whole batch. With a learning rate too small to move any float64 weight, every
    batch sees the same network, so that mean is the loss of the network on all the rows."""
    rng = np.random.default_rng(n_rows)
    heads = {"y": Classify(3), "t": Regress(2)}
    net = random_net(rng, 4, (5,), heads)
    X = rng.standard_normal((n_rows, 4))
    targets = random_targets(rng, heads, n_rows)
    before = net.flat_params.copy()
    history = net.fit(X, targets, epochs=2, batch_size=batch_size, lr=1e-300, momentum=0.0,
                      weight_decay=0.0)
    np.testing.assert_array_equal(net.flat_params, before)  # nothing moved
    expected = net.task_losses(X, targets)
    for task in heads:
        assert history[task] == pytest.approx([expected[task]] * 2, rel=1e-12), task


def test_divergence_after_the_first_epoch_with_validation_warns_nothing():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    t = X[:, 0] * 3.0
    net = MultiTaskNet(3, (8,), {"t": Regress(1)}, seed=0, dtype=np.float64)
    with pytest.raises(tinymtl.TrainingDiverged):  # filterwarnings=error turns a warning into a failure
        net.fit(X, {"t": t}, epochs=30, lr=0.9, momentum=0.99, validation=(X, {"t": t}))


def test_a_bad_trunk_learning_rate_is_named():
    net = MultiTaskNet(3, (4,), {"t": Regress(1)})
    with pytest.raises(ValueError, match="trunk_lr must be"):
        net.fit(np.zeros((4, 3)), {"t": np.zeros(4)}, epochs=1, trunk_lr=-1.0)


def test_inputs_too_large_for_float32_are_a_data_error():
    net = MultiTaskNet(2, (4,), {"t": Regress(1)})  # float32
    with pytest.raises(tinymtl.DataError, match=r"row 1, column 0 \(as float32\)"):
        net.predict(np.array([[0.0, 1.0], [1e300, 2.0]]))


@pytest.mark.parametrize("weighted", [False, True])
def test_a_warm_training_step_allocates_no_array(weighted):
    """After a batch size's first step, a step allocates only Python objects (about 1.5 KB).

    Also with unlabelled rows, missing regression targets (NaN), class weights, a 2-output
    regression head, momentum and weight decay. A (batch,) float32 vector at batch 1024 would
    add 3 KB between the two batch sizes; NumPy's ufunc buffers are 8 KB or more.
    """
    import tracemalloc

    from tinymtl.optim import SGD

    rng = np.random.default_rng(0)
    heads = {"y": Classify(10, (1.0, 2.0) * 5 if weighted else None), "t": Regress(2)}
    net = MultiTaskNet(64, (128, 128), heads, seed=0)
    optimizer = SGD(net.param_groups(0.001), momentum=0.9, weight_decay=0.01)
    peaks = {}
    for batch in (256, 1024):
        x = rng.standard_normal((batch, 64), dtype=np.float32)
        targets = {"y": rng.integers(-1 if weighted else 0, 10, batch),
                   "t": rng.standard_normal((batch, 2), dtype=np.float32)}
        if weighted:
            targets["t"][::7, 1] = np.nan
        targets = net._check_targets(targets, batch)
        for _ in range(2):  # warm-up: the workspace for this batch size is made here
            net.train_step(x, targets, optimizer)
        tracemalloc.start()
        try:
            start = tracemalloc.get_traced_memory()[0]
            net.train_step(x, targets, optimizer)
            now, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        peaks[batch] = peak - start
        assert now - start < 1024  # nothing kept
    assert max(peaks.values()) < 4096, peaks
    assert abs(peaks[1024] - peaks[256]) < 512, peaks  # nothing grows with the batch


@pytest.mark.parametrize("patience", [None, 1])
def test_divergence_on_the_last_step_or_in_validation_restores_and_raises(patience):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3)).astype(np.float32)
    targets = {"y": rng.integers(0, 3, 40), "t": X[:, 0]}
    net = MultiTaskNet(3, (8,), {"y": Classify(3), "t": Regress(1)}, seed=0)
    before = net.flat_params.copy()
    with pytest.raises(tinymtl.TrainingDiverged, match="epoch 1"):  # one full-batch step
        net.fit(X, targets, epochs=1, batch_size=40, lr=1e30, validation=(X, targets), patience=patience)
    np.testing.assert_array_equal(net.flat_params, before)
    with pytest.raises(tinymtl.TrainingDiverged, match="parameters became"):
        net.fit(X, targets, epochs=1, batch_size=40, lr=1e38)  # the one step overflows float32


def test_patience_needs_a_labelled_validation_row():
    heads = {"c": Classify(2), "r": Regress(1)}
    net = MultiTaskNet(2, (4,), heads, seed=0)
    X = np.zeros((6, 2), np.float32)
    targets = {"c": np.array([0, 1, 0, 1, 0, 1]), "r": np.ones((6, 1), np.float32)}
    unlabelled = {"c": np.full(2, -1), "r": np.full((2, 1), np.nan, np.float32)}
    with pytest.raises(ValueError, match="patience needs a validation loss"):
        net.fit(X, targets, epochs=2, validation=(X[:2], unlabelled), patience=1)
    before = net.flat_params.copy()  # without patience, an unlabelled validation is allowed
    net.fit(X, targets, epochs=1, validation=(X[:2], unlabelled))
    assert not np.array_equal(before, net.flat_params)


def test_weights_that_would_train_nothing_are_refused():
    with pytest.raises(ValueError, match="some class a weight > 0"):
        Classify(3, class_weights=(0, 0, 0))
    heads = {"c": Classify(2), "r": Regress(1)}
    with pytest.raises(ValueError, match="some task a weight > 0"):
        MultiTaskNet(2, (4,), heads, loss_weights={"c": 0, "r": 0.0})
    MultiTaskNet(2, (4,), heads, loss_weights={"c": 0})  # one task may sit out


def test_a_sparsely_labelled_target_trains_without_diverging():
    """2% of a regression target labelled, fit's defaults: the lone labelled rows once got a
    whole batch's push each, which momentum carried on until training diverged (7 of 8 runs)."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((600, 3)).astype(np.float32)
    y = (X[:, 0] + 0.3 * X[:, 2] > 0).astype(np.int64)
    value = (np.sin(X[:, :1]) + 0.5 * X[:, 1:2]).astype(np.float32)
    X_test = rng.standard_normal((1000, 3)).astype(np.float32)
    truth = np.sin(X_test[:, 0]) + 0.5 * X_test[:, 1]
    for seed in range(3):
        t = value.copy()
        t[rng.random(600) > 0.02] = np.nan
        t = (t - np.nanmean(t)) / np.nanstd(t)
        net = MultiTaskNet(3, (64, 64), {"c": Classify(2), "t": Regress(1)}, seed=seed)
        net.fit(X, {"c": y, "t": t}, epochs=40)  # raised TrainingDiverged before
        out = net.predict(X_test)
        assert np.isfinite(out["t"]).all()
        assert np.mean(out["c"].argmax(axis=1) == (X_test[:, 0] + 0.3 * X_test[:, 2] > 0)) > 0.9
        assert abs(np.corrcoef(out["t"][:, 0], truth)[0, 1]) > 0.3  # it learned something


def test_train_step_on_an_empty_batch_changes_nothing_and_warns_nothing():
    from tinymtl.optim import SGD
    heads = {"c": Classify(2), "r": Regress(1)}
    net = MultiTaskNet(2, (4,), heads, seed=0)
    before = net.flat_params.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        losses = net.train_step(np.zeros((0, 2), np.float32),
                                {"c": np.zeros(0, np.int64), "r": np.zeros((0, 1), np.float32)},
                                SGD(net.param_groups(0.1)))
    assert losses == {"c": 0.0, "r": 0.0} and np.array_equal(before, net.flat_params)
