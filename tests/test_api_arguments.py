"""The Python API's arguments: a bad one is a ValueError naming it, never a TypeError from deep
inside, and never silently read as something else ("16,16" as five layers, "trunk" as letters)."""

import numpy as np
import pytest

from tinymtl import Classify, MultiTaskNet, Regress

HEADS = {"kind": Classify(3), "size": Regress(1)}


def data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3)).astype(np.float32)
    return X, {"kind": rng.integers(0, 3, n), "size": rng.standard_normal(n).astype(np.float32)}


@pytest.mark.parametrize("kwargs, words", [
    ({"hidden": 8}, "hidden must be a sequence of layer widths"),
    ({"hidden": "16,16"}, "hidden must be a sequence of layer widths"),
    ({"hidden": (16, 0)}, "hidden sizes must be integers >= 1"),
    ({"weighting": "gradnorm", "weighting_options": {"alfa": 1.0}},
     r"weighting 'gradnorm' takes the options \['alpha', 'weight_lr'\], got unknown \['alfa'\]"),
    ({"weighting": "dwa", "weighting_options": {"temp": 2.0}}, "unknown"),
    ({"weighting": "fixed", "weighting_options": {"alpha": 1.0}}, "takes no options"),
    ({"weighting": ["fixed"]}, "weighting must be one of"),
    ({"weighting": "gradnorm", "weighting_options": {"alpha": "1"}},
     "gradnorm alpha must be a finite number >= 0, got '1'"),
    ({"weighting": "dwa", "weighting_options": {"temperature": 10 ** 400}},
     "dwa temperature must be a finite number > 0"),
    ({"weighting": "dwa", "weighting_options": {"temperature": np.float32("inf")}},
     "dwa temperature must be a finite number > 0"),
    ({"weighting": "dwa", "weighting_options": {"temperature": np.array("2")}},
     "dwa temperature must be a finite number > 0"),
])
def test_bad_constructor_arguments_are_value_errors_naming_them(kwargs, words):
    with pytest.raises(ValueError, match=words):
        MultiTaskNet(3, heads=HEADS, **kwargs)


@pytest.mark.parametrize("kwargs, words", [
    ({"lr": "0.1"}, "lr must be a number, got '0.1'"),
    ({"trunk_lr": "0.1"}, "trunk_lr must be a number"),
    ({"momentum": "0.9"}, "momentum must be a number"),
    ({"weight_decay": None}, "weight_decay must be a number"),
    ({"lr": True}, "lr must be a number"),
    ({"lr": np.array(True)}, "lr must be a number"),
    ({"lr": np.array("0.01")}, "lr must be a number"),
    ({"momentum": np.array("0.5")}, "momentum must be a number"),
    ({"lr": np.complex128(0.5)}, "lr must be a number"),
    ({"lr": 10 ** 400}, "lr must be a number"),
    ({"freeze": 3}, "freeze must be a list of names"),
    ({"freeze": ["trunk", "nope"]}, r"freeze names unknown groups \['nope'\]"),
])
def test_bad_fit_arguments_are_value_errors_before_training(kwargs, words):
    net = MultiTaskNet(3, heads=HEADS)
    before = net.flat_params.copy()
    X, targets = data()
    with pytest.raises(ValueError, match=words):
        net.fit(X, targets, epochs=1, **kwargs)
    np.testing.assert_array_equal(net.flat_params, before)


def test_one_name_alone_is_a_list_of_one_for_freeze_and_keep():
    X, targets = data()
    net = MultiTaskNet(3, heads=HEADS)
    trunk = {k: v.copy() for k, v in net.parameters().items() if k.startswith("trunk.")}
    net.fit(X, targets, epochs=2, freeze="trunk")
    for name, value in trunk.items():
        np.testing.assert_array_equal(net.parameters()[name], value, err_msg=name)
    assert list(net.with_heads({"new": Regress(1)}, keep="kind").heads) == ["kind", "new"]


def test_fit_refuses_targets_without_any_label():
    X, targets = data()
    net = MultiTaskNet(3, heads=HEADS)
    nothing = {"kind": np.full(len(X), -1), "size": np.full(len(X), np.nan, np.float32)}
    with pytest.raises(ValueError, match="no label of any task"):
        net.fit(X, nothing, epochs=1)


def test_a_kept_head_without_labels_is_left_as_it_was_despite_weight_decay():
    """A head with no label in fit's targets gets no gradient; fit freezes it, so weight decay
    and momentum do not shrink it (as `train --from ... --keep-heads` does)."""
    X, targets = data()
    source = MultiTaskNet(3, heads=HEADS)
    source.fit(X, targets, epochs=5)
    net = source.with_heads({"new": Regress(1)}, keep=["kind"])
    kept = {k: v.copy() for k, v in net.parameters().items() if k.startswith("heads.kind.")}
    history = net.fit(X, {"new": targets["size"], "kind": np.full(len(X), -1)}, epochs=5,
                      weight_decay=0.1, freeze=["trunk"],
                      validation=(X, {"new": np.full(len(X), np.nan), "kind": targets["kind"]}))
    assert np.isnan(history["kind"]).all() and np.isfinite(history["new"]).all()  # no label: NaN
    assert np.isnan(history["val_new"]).all() and np.isfinite(history["val_kind"]).all()
    for name, value in kept.items():
        np.testing.assert_array_equal(net.parameters()[name], value, err_msg=name)
    new = [v for k, v in net.parameters().items() if k.startswith("heads.new.")]
    assert any(np.any(v != 0) for v in new)


def test_with_heads_keeps_the_weighting_method_and_its_options():
    net = MultiTaskNet(3, heads=HEADS, weighting="gradnorm", weighting_options={"alpha": 0.5})
    new = net.with_heads({"other": Regress(1)}, keep=["kind"])
    assert new.weighting.method == "gradnorm" and new.weighting.alpha == 0.5


def test_patience_true_is_not_an_integer():
    X, targets = data()
    with pytest.raises(ValueError, match="patience must be an integer >= 1, got True"):
        MultiTaskNet(3, heads=HEADS).fit(X, targets, epochs=1, patience=True,
                                         validation=(X, targets))


def test_pcgrad_without_a_generator_is_refused():
    from tinymtl.weighting import make_weighting
    with pytest.raises(ValueError, match="needs rng"):
        make_weighting("pcgrad", HEADS, {"kind": 1.0, "size": 1.0})


def test_warnings_are_not_raised_by_the_checks_on_large_finite_float32_values():
    """Sums in the input and label checks may overflow to inf on values near float32's limit:
    that is no error, and must not warn (warnings are errors in this suite)."""
    net = MultiTaskNet(3, heads=HEADS)
    big = np.full((4, 3), 3e38, np.float32)
    assert net._check_inputs(big).dtype == np.float32
    targets = {"kind": np.zeros(4, int), "size": np.full(4, 3e38, np.float32)}
    from tinymtl.network import _fully_labelled
    assert _fully_labelled(HEADS["size"], targets["size"])


def test_numpy_scalars_are_numbers():
    net = MultiTaskNet(np.int64(3), hidden=[np.int64(4)], heads=HEADS, weighting="gradnorm",
                       weighting_options={"alpha": np.float32(1.5)})
    assert net.weighting.alpha == 1.5
    X, targets = data()
    net.fit(X, targets, epochs=1, lr=np.float32(0.01), momentum=np.float64(0.5),
            weight_decay=np.array(0.001))


def test_with_heads_takes_new_options_for_the_same_method_or_another_method():
    net = MultiTaskNet(3, heads=HEADS, weighting="gradnorm", weighting_options={"alpha": 0.5})
    assert net.with_heads(keep=["kind"], weighting_options={"alpha": 3.0}).weighting.alpha == 3.0
    dwa = net.with_heads(keep=["kind"], weighting="dwa")
    assert dwa.weighting.method == "dwa" and dwa.weighting.temperature == 2.0


def test_loss_weights_take_numbers_as_the_other_arguments_do():
    net = MultiTaskNet(3, heads=HEADS, loss_weights={"kind": np.array(0.5), "size": np.float32(2)})
    assert net.loss_weights == {"kind": 0.5, "size": 2.0}
    with pytest.raises(ValueError, match=r'loss_weights\["kind"\] must be a finite number >= 0'):
        MultiTaskNet(3, heads=HEADS, loss_weights={"kind": np.array(True)})


def test_large_integers_and_fractions_are_numbers_until_beyond_float():
    from fractions import Fraction
    from tinymtl.optim import is_number
    assert is_number(10 ** 20) and is_number(Fraction(1, 100)) and is_number(np.array(2))
    assert not is_number(10 ** 400) and not is_number([1, [2, 3]]) and not is_number(np.ones(2))
    net = MultiTaskNet(3, heads=HEADS, loss_weights={"kind": 10 ** 20})
    assert net.loss_weights["kind"] == 1e20


def test_with_heads_may_switch_to_uncertainty_and_its_variances_start_afresh():
    source = MultiTaskNet(3, heads=HEADS, weighting="uncertainty", weighting_options={"init": "zero"})
    source.parameters()["weighting.kind.log_var"][...] = 3.0
    for net in (source, MultiTaskNet(3, heads=HEADS)):
        new = net.with_heads({"g": Regress(1)}, keep=["kind"], weighting="uncertainty",
                             weighting_options={"init": "zero"})
        assert new.parameters()["weighting.kind.log_var"] == 0.0
