"""python -m tinymtl.train's task-balance options: --weighting, --loss-weight, --gradnorm-alpha,
--dwa-temperature, --class-weight, --patience and --no-target-scaling."""

import numpy as np
import pytest

from tinymtl import train
from tinymtl.checkpoint import load_npz
from tinymtl.data import read_bundled
from tinymtl.model import Model

FAST = ["--epochs", "4", "--hidden", "8", "--quiet"]


def imbalanced_csv(tmp_path, n=60):
    """Column 'kind': 45 rows of 'common', 15 of 'rare'; 'size' a regression target."""
    rng = np.random.default_rng(1)
    lines = ["a,b,kind,size"]
    for i in range(n):
        a, b = rng.normal(size=2)
        lines.append(f"{a:.3f},{b:.3f},{'rare' if i % 4 == 0 else 'common'},{a - b:.3f}")
    path = tmp_path / "imbalanced.csv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize("method", ["uncertainty", "gradnorm", "dwa", "pcgrad"])
def test_weighting_is_reported_and_stored_in_the_model(tmp_path, capsys, method):
    out = tmp_path / "m.npz"
    assert train.main(["--epochs", "4", "--hidden", "8", "--weighting", method, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    model = Model.load(out)
    weights = model.network.weighting.current_weights()
    assert model.network.weighting.method == method
    _, meta = load_npz(out)
    assert meta["network"]["weighting"]["weights"] == pytest.approx(weights)
    assert meta["training"]["weighting"] == method
    final = next(line for line in err.splitlines() if line.startswith("final task weights"))
    assert f"species {weights['species']:.4g}" in final
    assert sum("| weights:" in line for line in err.splitlines()) >= 2
    if method == "uncertainty":  # learned log-variances are parameters in the file
        assert set(model.network.parameters()) >= {"weighting.species.log_var",
                                                   "weighting.petal_width.log_var"}
        assert weights["petal_width"] != 0.5  # learned: moved from exp(0) / 2


def test_fixed_loss_weights_and_method_options_reach_the_network(tmp_path):
    out = tmp_path / "m.npz"
    assert train.main([*FAST, "--loss-weight", "species=2", "petal_width=0.25",
                       "--out", str(out)]) == 0
    assert Model.load(out).network.loss_weights == {"species": 2.0, "petal_width": 0.25}
    assert train.main([*FAST, "--weighting", "gradnorm", "--gradnorm-alpha", "0.5",
                       "--loss-weight", "species=3", "--out", str(out)]) == 0
    weighting = Model.load(out).network.weighting
    assert weighting.alpha == 0.5 and weighting.loss_weights["species"] == 3.0
    assert train.main([*FAST, "--weighting", "dwa", "--dwa-temperature", "4", "--out", str(out)]) == 0
    assert Model.load(out).network.weighting.temperature == 4.0


def test_balanced_class_weights_follow_the_training_rows(tmp_path, capsys):
    csv, out = imbalanced_csv(tmp_path), tmp_path / "m.npz"
    assert train.main(["--csv", csv, "--classify", "kind", "--regress", "size", *FAST,
                       "--class-weight", "kind=balanced", "--val-fraction", "0.2",
                       "--out", str(out)]) == 0
    model = Model.load(out)
    assert model.tasks["kind"].classes == ["common", "rare"]
    # 48 training rows, stratified: 36 common and 12 rare -> 48 / (2 * 36), 48 / (2 * 12)
    assert model.network.heads["kind"].class_weights == pytest.approx((48 / 72, 2.0))
    assert model.training["class_weights"]["kind"] == pytest.approx([48 / 72, 2.0])


def test_explicit_class_weights_default_to_one_for_unnamed_classes(tmp_path):
    csv, out = imbalanced_csv(tmp_path), tmp_path / "m.npz"
    assert train.main(["--csv", csv, "--classify", "kind", *FAST, "--class-weight",
                       "kind=rare:3.5", "--out", str(out)]) == 0
    assert Model.load(out).network.heads["kind"].class_weights == (1.0, 3.5)


def test_no_target_scaling_trains_in_the_csv_units(tmp_path, capsys):
    out = tmp_path / "m.npz"
    assert train.main(["--epochs", "60", "--hidden", "16", "--quiet", "--no-target-scaling",
                       "--out", str(out)]) == 0
    model = Model.load(out)
    assert (model.tasks["petal_width"].mean, model.tasks["petal_width"].scale) == (0.0, 1.0)
    assert model.training["target_scaling"] is False
    iris = read_bundled()
    labels = model.labels(iris)
    np.testing.assert_array_equal(model.targets(labels)["petal_width"], labels["petal_width"])
    assert model.metrics["petal_width"]["r2"] > 0.8  # predictions are still in centimetres
    assert train.main([*FAST, "--out", str(out)]) == 0
    assert Model.load(out).tasks["petal_width"].scale == pytest.approx(0.76, abs=0.02)


BAD = [
    (["--loss-weight", "nope=1"], 2, ["--loss-weight nope", "species, petal_width"]),
    (["--loss-weight", "species=-1"], 2, ["--loss-weight", "species=-1"]),
    (["--loss-weight", "species"], 2, ["--loss-weight", "TASK=WEIGHT"]),
    (["--weighting", "uncertainty", "--loss-weight", "species=2"], 2, ["uncertainty", "learns"]),
    (["--gradnorm-alpha", "1"], 2, ["--gradnorm-alpha", "gradnorm only"]),
    (["--weighting", "gradnorm", "--dwa-temperature", "1"], 2, ["--dwa-temperature", "dwa only"]),
    (["--weighting", "magic"], 2, ["--weighting", "magic"]),
    (["--class-weight", "petal_width=balanced"], 2, ["petal_width", "regression task"]),
    (["--class-weight", "species=daisy:2"], 2, ["'daisy'", "setosa, versicolor, virginica"]),
    (["--class-weight", "species=setosa:x"], 2, ["--class-weight", "CLASS:WEIGHT"]),
    (["--patience", "0"], 2, ["--patience"]),
]


@pytest.mark.parametrize("argv, code, words", BAD)
def test_bad_balance_options_are_one_line_naming_the_option(tmp_path, capsys, argv, code, words):
    out = tmp_path / "m.npz"
    assert train.main([*FAST, *argv, "--out", str(out)]) == code
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    for word in words:
        assert word in err
    assert not out.exists()


def test_help_lists_the_balance_options(capsys):
    assert train.main(["--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--weighting", "--loss-weight", "--gradnorm-alpha", "--dwa-temperature",
                   "--class-weight", "--patience", "--no-target-scaling", "--history", "--plot"):
        assert option in text


def test_balance_options_apply_to_a_transferred_network(tmp_path, capsys):
    """--from builds its own network: weighting and class weights still apply, trunk copied."""
    source, out = tmp_path / "source.npz", tmp_path / "m.npz"
    assert train.main([*FAST, "--out", str(source)]) == 0
    assert train.main([*FAST, "--classify", "species", "--from", str(source), "--freeze-trunk",
                       "--features", "sepal_length,sepal_width,petal_length",
                       "--weighting", "uncertainty", "--class-weight", "species=setosa:2",
                       "--out", str(out)]) == 0
    before, after = Model.load(source).network.parameters(), Model.load(out).network.parameters()
    for name in ("trunk.0.W", "trunk.0.b"):
        np.testing.assert_array_equal(after[name], before[name])
    network = Model.load(out).network
    assert network.weighting.method == "uncertainty" and "weighting.species.log_var" in after
    assert network.heads["species"].class_weights == (2.0, 1.0, 1.0)
