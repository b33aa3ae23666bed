"""python -m tinymtl.train: called as main([...]); exit code, stdout, stderr and the model file."""

import csv
import os
import stat

import numpy as np
import pytest

from tinymtl import TrainingDiverged, cli, train
from tinymtl.data import read_bundled
from tinymtl.model import Model

FAST = ["--epochs", "3", "--hidden", "8"]
SENTINEL = b"an existing model that must survive"


@pytest.fixture
def out(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(SENTINEL)
    return path


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def small_csv(n=40):
    rng = np.random.default_rng(0)
    lines = ["a,b,colour,kind,size"]
    for i in range(n):
        a, b = rng.normal(size=2)
        lines.append(f"{a:.3f},{b:.3f},{['red', 'blue'][i % 2]},{'xy'[int(a > 0)]},{2 * a + b:.3f}")
    return "\n".join(lines) + "\n"


def test_no_arguments_trains_on_iris_and_writes_model_npz(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert train.main([]) == 0
    captured = capsys.readouterr()
    assert "species (classify" in captured.out and "petal_width (regress" in captured.out
    assert "accuracy" in captured.out and "RMSE" in captured.out and "R^2" in captured.out
    assert 3 <= len(captured.err.splitlines()) <= 20
    with np.load(tmp_path / "model.npz", allow_pickle=False) as npz:
        assert "trunk.0.W" in npz.files
    model = Model.load(tmp_path / "model.npz")
    iris = read_bundled()
    predictions, labels = model.predict(model.inputs(iris)), model.labels(iris)
    assert np.mean(predictions["species"].argmax(axis=1) == labels["species"]) >= 0.95
    assert np.sqrt(np.mean((predictions["petal_width"] - labels["petal_width"]) ** 2)) <= 0.3


def test_the_saved_metrics_are_those_of_the_saved_model(tmp_path, capsys):
    path = tmp_path / "m.npz"
    argv = [*FAST, "--quiet", "--seed", "7", "--out", str(path)]
    assert train.main(argv) == 0
    assert capsys.readouterr().err == ""
    model = Model.load(path)
    split_rng, _ = cli.random_streams(7)
    val = cli.load_dataset(train.build_parser().parse_args(argv), rng=split_rng).val_rows
    iris = read_bundled().take(val)
    assert model.evaluate(model.inputs(iris), model.labels(iris)) == model.metrics
    assert model.metrics["species"]["n_labelled"] == 15


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_validation_split_is_stratified_on_the_first_classify_column(seed):
    """Iris by default: 10% of 150 rows, 15, held out; stratified on species, 5 of each."""
    args = train.build_parser().parse_args(["--seed", str(seed)])
    dataset = cli.load_dataset(args, rng=cli.random_streams(seed)[0])
    assert len(dataset.val_rows) == 15 and len(dataset.train_rows) == 135
    species = dataset.labels["species"]
    assert np.bincount(species[dataset.val_rows], minlength=3).tolist() == [5, 5, 5]
    assert np.bincount(species[dataset.train_rows], minlength=3).tolist() == [45, 45, 45]


def test_the_stored_confusion_matrix_has_five_validation_rows_of_each_iris_species(tmp_path):
    path = tmp_path / "m.npz"
    assert train.main(["--epochs", "1", "--hidden", "4", "--quiet", "--out", str(path)]) == 0
    confusion = np.array(Model.load(path).metrics["species"]["confusion_matrix"])
    assert confusion.sum(axis=1).tolist() == [5, 5, 5]  # rows: the true classes


def test_verbose_prints_every_epoch(tmp_path, capsys):
    assert train.main(["--epochs", "30", "--hidden", "4", "--verbose", "--out", str(tmp_path / "m.npz")]) == 0
    assert sum(line.startswith("epoch") for line in capsys.readouterr().err.splitlines()) == 30


def test_any_csv_by_column_name_with_text_features(tmp_path, out, capsys):
    csv = write(tmp_path, small_csv())
    assert train.main(["--csv", csv, "--classify", "kind", "--regress", "size", *FAST,
                       "--val-fraction", "0.25", "--out", str(out)]) == 0
    model = Model.load(out)
    assert model.features.names == ["a", "b", "colour"]
    assert model.features.n_inputs == 4  # a, b and two colours one-hot
    assert list(model.tasks) == ["kind", "size"]
    assert model.training["n_val"] == 10


def test_categorical_makes_a_numeric_column_one_hot(tmp_path, out):
    csv = write(tmp_path, "code,y\n" + "".join(f"{c},{c // 10 % 2}\n" for c in [10, 20, 30] * 5))
    assert train.main(["--csv", csv, "--classify", "y", "--categorical", "code", *FAST,
                       "--val-fraction", "0.3", "--out", str(out)]) == 0
    assert Model.load(out).features.columns[0].categories == ["10", "20", "30"]


def test_training_is_float32_by_default(tmp_path, out):
    assert train.main([*FAST, "--quiet", "--out", str(out)]) == 0
    model = Model.load(out)
    assert all(p.dtype == np.float32 for p in model.network.parameters().values())


# ------------------------------------------------------------------------------------------------
# Bad input: one line on stderr naming what and where, a non-zero exit, the old file untouched

GOOD_ROWS = "a,b,y,t\n" + "".join(f"{i},{i % 3},{'pq'[i % 2]},{i * 0.5}\n" for i in range(20))


def rows_with(line_5):
    """GOOD_ROWS with the data row on line 5 replaced."""
    lines = GOOD_ROWS.splitlines()
    lines[4] = line_5
    return "\n".join(lines) + "\n"


BAD_CSV = [
    # (csv text or None for a missing file, extra options, exit code, words the message must hold)
    (None, [], 1, ["missing.csv", "no such file"]),
    ("", [], 1, ["empty"]),
    ("a,b,y,t\n", [], 1, ["no data rows"]),
    (rows_with("1,2,p"), [], 1, ["line 5", "3 fields, expected 4"]),
    (rows_with("x9,1,p,2"), [], 1, ["line 5", 'column "a"', "'x9'", "--categorical a"]),
    (rows_with(",1,p,2"), [], 1, ["line 5", 'column "a"', "missing feature value"]),
    (rows_with("inf,1,p,2"), [], 1, ["line 5", 'column "a"', "infinite"]),
    (rows_with("1,1,p,lots"), [], 1, ["line 5", 'column "t"', "'lots'", "number"]),
    (GOOD_ROWS.replace(",q,", ",p,"), [], 1, ['"y"', "only the class", "two classes"]),
    (GOOD_ROWS, ["--classify", "nope"], 2, ["--classify nope", "a, b, y, t"]),
    (GOOD_ROWS, ["--features", "a,y"], 2, ["y", "both a feature", "target"]),
    (GOOD_ROWS, ["--classify", "t"], 2, ["t", "more than once"]),
    (GOOD_ROWS, ["--categorical", "y"], 2, ["--categorical y", "not a feature"]),
    (GOOD_ROWS[:GOOD_ROWS.index("\n2,")], [], 1, ["too few rows (2)", "--val-fraction"]),
]


@pytest.mark.parametrize("text, extra, code, words", BAD_CSV)
def test_bad_csv_is_one_line_and_keeps_the_old_model(tmp_path, out, capsys, text, extra, code, words):
    csv = str(tmp_path / "missing.csv") if text is None else write(tmp_path, text)
    argv = ["--csv", csv, "--out", str(out), *FAST]
    if "--classify" not in extra:
        argv += ["--classify", "y"]
    argv += ["--regress", "t", *extra]
    assert train.main(argv) == code
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    for word in words:
        assert word in err
    assert out.read_bytes() == SENTINEL


BAD_OPTIONS = [
    (["--lr", "0"], "--lr"), (["--lr", "-1"], "--lr"), (["--epochs", "0"], "--epochs"),
    (["--hidden", "16,x"], "--hidden"), (["--hidden", "16,0"], "--hidden"),
    (["--batch-size", "0"], "--batch-size"), (["--momentum", "1"], "--momentum"),
    (["--val-fraction", "1"], "--val-fraction"), (["--lr", "nan"], "--lr"), (["--bogus"], "--bogus"),
    (["--lr-schedule", "linear"], "--lr-schedule"),
    (["--csv", "x.csv"], "--classify or --regress"),
]


@pytest.mark.parametrize("argv, option", BAD_OPTIONS)
def test_bad_options_exit_2_naming_the_option(tmp_path, monkeypatch, out, capsys, argv, option):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.csv").write_text(GOOD_ROWS)
    assert train.main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and option in err
    assert out.read_bytes() == SENTINEL


def test_diverging_training_saves_nothing_and_suggests_a_lower_rate(out, capsys):
    assert train.main(["--lr", "1e6", "--epochs", "5", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 2  # the first progress line, then the error
    assert "diverged" in err and "lower learning rate" in err
    assert out.read_bytes() == SENTINEL


def test_ctrl_c_exits_130_without_a_traceback_and_saves_nothing(out, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("tinymtl.network.MultiTaskNet.fit", interrupted)
    assert train.main(["--quiet", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" in err and "Traceback" not in err
    assert out.read_bytes() == SENTINEL


def test_an_unwritable_out_path_is_one_line(tmp_path, capsys):
    assert train.main([*FAST, "--quiet", "--out", str(tmp_path / "no" / "such" / "m.npz")]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "cannot write" in err


def test_help_exits_0(capsys):
    assert train.main(["--help"]) == 0
    help_text = capsys.readouterr().out
    for option in ("--csv", "--classify", "--regress", "--features", "--categorical", "--hidden",
                   "--epochs", "--batch-size", "--lr", "--momentum", "--seed", "--val-fraction",
                   "--out", "--quiet", "--verbose"):
        assert option in help_text


def test_training_diverged_is_a_library_error():
    assert issubclass(TrainingDiverged, ValueError)



def test_an_unwritable_out_is_reported_before_training(tmp_path, capsys, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking --out")

    monkeypatch.setattr(train.Model, "build", no_training)
    assert train.main(["--epochs", "1", "--out", str(tmp_path / "missing" / "m.npz")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err and "--out" in err
    assert train.main(["--epochs", "1", "--out", str(tmp_path)]) == 1
    assert "is a folder" in capsys.readouterr().err


@pytest.mark.parametrize("clash", [["--out", "{csv}"], ["--history", "{csv}"],
                                   ["--history", "{out}"], ["--plot", "{out}.png", "--history", "{out}.png"]])
def test_an_output_that_would_replace_an_input_or_another_output_is_refused(tmp_path, out, capsys,
                                                                           clash):
    data = write(tmp_path, small_csv())
    before = (tmp_path / "data.csv").read_bytes()
    argv = [part.format(csv=data, out=out) for part in clash]
    if "--out" not in argv:
        argv += ["--out", str(out)]
    code = train.main([*FAST, "--quiet", "--csv", data, "--classify", "kind", *argv])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and "is the same file as" in err, err
    assert (tmp_path / "data.csv").read_bytes() == before and out.read_bytes() == SENTINEL


def test_an_output_reached_through_a_link_is_the_same_file(tmp_path, capsys):
    data = write(tmp_path, small_csv())
    (tmp_path / "link.csv").symlink_to(tmp_path / "data.csv")
    code = train.main([*FAST, "--quiet", "--csv", data, "--classify", "kind",
                       "--out", str(tmp_path / "link.csv")])
    assert code == 2 and "is the same file as --csv" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--out", "--history"])
def test_an_output_hard_linked_to_the_input_csv_is_the_same_file(tmp_path, capsys, option):
    """A hard link has its own path (no symbolic link to follow) but is the same file, found by
    device and inode: writing it would replace the data."""
    data = write(tmp_path, small_csv())
    before = (tmp_path / "data.csv").read_bytes()
    os.link(data, tmp_path / "hard.csv")
    argv = [*FAST, "--quiet", "--csv", data, "--classify", "kind", option, str(tmp_path / "hard.csv")]
    if option != "--out":
        argv += ["--out", str(tmp_path / "m.npz")]
    code = train.main(argv)
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"{option} {tmp_path / 'hard.csv'} is the same file as --csv {data}" in err
    assert (tmp_path / "data.csv").read_bytes() == before and not (tmp_path / "m.npz").exists()


def test_out_through_a_symbolic_link_replaces_the_file_it_points_to(tmp_path):
    target = tmp_path / "models" / "v1.npz"
    target.parent.mkdir()
    target.write_bytes(SENTINEL)
    link = tmp_path / "model.npz"
    link.symlink_to(target)
    assert train.main([*FAST, "--quiet", "--out", str(link)]) == 0
    assert link.is_symlink() and Model.load(target).training["epochs"] == 3


@pytest.mark.parametrize("kind", ["fifo", "read-only"])
def test_out_that_is_not_a_writable_regular_file_is_refused_before_training(tmp_path, capsys, kind):
    path = tmp_path / "model.npz"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.write_bytes(SENTINEL)
        path.chmod(0o444)
    assert train.main([*FAST, "--quiet", "--out", str(path)]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "cannot write" in err and "--out" in err
    assert ("not a regular file" in err) if kind == "fifo" else ("read-only" in err)
    if kind == "fifo":
        assert stat.S_ISFIFO(path.stat().st_mode)
    else:
        assert path.read_bytes() == SENTINEL


def test_out_ending_in_safetensors_writes_safetensors(tmp_path):
    path = tmp_path / "model.safetensors"
    assert train.main([*FAST, "--quiet", "--out", str(path)]) == 0
    header_length = int.from_bytes(path.read_bytes()[:8], "little")
    assert path.read_bytes()[8:9] == b"{" and header_length < path.stat().st_size
    assert Model.load(path).training["epochs"] == 3


def rare_csv(tmp_path, n=40, labelled=(3, 7)):
    """a, b, cls (always labelled), rare (labelled on the rows ``labelled`` only), val."""
    rng = np.random.default_rng(1)
    lines = ["a,b,cls,rare,val"]
    for i in range(n):
        a, b = rng.normal(size=2)
        rare = ["p", "q"][labelled.index(i) % 2] if i in labelled else ""
        lines.append(f"{a:.3f},{b:.3f},{'xy'[int(a > 0)]},{rare},{a + b:.3f}")
    return write(tmp_path, "\n".join(lines) + "\n", "rare.csv")


def split_with_validation(rows):
    """A stand-in for data.split_rows that puts ``rows`` (and only them) in the validation split."""
    def split(n_rows, val_fraction, *, rng, strata=None, source=""):
        val = np.array(sorted(rows))
        return np.setdiff1d(np.arange(n_rows), val), val

    return split


def test_a_class_target_without_labels_in_the_training_rows_is_refused(tmp_path, out, capsys,
                                                                      monkeypatch):
    monkeypatch.setattr(cli, "split_rows", split_with_validation([3, 7, 10, 11]))
    code = train.main([*FAST, "--quiet", "--csv", rare_csv(tmp_path), "--classify", "cls",
                       "--classify", "rare", "--features", "a,b", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and len(err.splitlines()) == 1, err
    assert '"rare" has no labels in the training rows' in err and out.read_bytes() == SENTINEL


def test_patience_without_a_labelled_validation_row_is_refused(tmp_path, out, capsys, monkeypatch):
    monkeypatch.setattr(cli, "split_rows", split_with_validation([0, 1, 2, 4]))  # rare unlabelled
    code = train.main([*FAST, "--quiet", "--csv", rare_csv(tmp_path), "--classify", "rare",
                       "--features", "a,b", "--patience", "2", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and len(err.splitlines()) == 1 and "--patience 2" in err, err
    assert "no label" in err and out.read_bytes() == SENTINEL


def test_history_leaves_a_task_without_validation_labels_empty(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "split_rows", split_with_validation([0, 1, 2, 4]))
    history = tmp_path / "h.csv"
    assert train.main([*FAST, "--quiet", "--csv", rare_csv(tmp_path), "--classify", "rare",
                       "--regress", "val", "--features", "a,b", "--patience", "2",
                       "--out", str(tmp_path / "m.npz"), "--history", str(history)]) == 0
    with history.open() as f:
        rows = list(csv.DictReader(f))
    assert rows and all(row["rare.val_loss"] == "" for row in rows)
    assert all(row["rare.train_loss"] != "" for row in rows)
    for row in rows:  # the sum watched by early stopping is the labelled task's loss alone
        assert float(row["val_loss"]) == float(row["val.val_loss"])


@pytest.mark.parametrize("weights, words", [
    (["--loss-weight", "species=0", "--loss-weight", "petal_width=0"], "--loss-weight gives every task"),
    (["--class-weight", "species=setosa:0,versicolor:0,virginica:0"], "--class-weight species: every class"),
])
def test_weights_that_would_train_nothing_are_refused(out, capsys, weights, words):
    assert train.main([*FAST, "--quiet", *weights, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and words in err and out.read_bytes() == SENTINEL


def test_divergence_without_target_scaling_suggests_turning_it_back_on(tmp_path, out, capsys):
    rng = np.random.default_rng(0)
    rows = "".join(f"{x:.4f},{(3 + x) * 1e6:.6g}\n" for x in rng.normal(size=60))
    data = write(tmp_path, "a,t\n" + rows)
    assert train.main([*FAST, "--quiet", "--csv", data, "--regress", "t", "--no-target-scaling",
                       "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "lower learning rate" in err
    assert "drop --no-target-scaling" in err and out.read_bytes() == SENTINEL


def test_an_identifier_column_is_warned_about(tmp_path, out, capsys):
    rng = np.random.default_rng(0)
    rows = "".join(f"cust{i:04d},{x:.3f},{'xy'[int(x > 0)]}\n" for i, x in enumerate(rng.normal(size=60)))
    data = write(tmp_path, "id,a,kind\n" + rows)
    assert train.main([*FAST, "--quiet", "--csv", data, "--classify", "kind", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "warning: column 'id' has 54 different values" in err
    assert train.main([*FAST, "--quiet", "--csv", data, "--classify", "kind", "--features", "a",
                       "--out", str(out)]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("values, warned", [
    ([f"{0.1 * (i % 22):.1f}" for i in range(60)], True),    # a measurement: not whole numbers
    ([str(i % 25) for i in range(60)], True),                # more than 20 numbered classes
    ([str(1 + i % 3) for i in range(60)], False),            # classes coded 1, 2, 3
    ([["low", "mid", "high"][i % 3] for i in range(60)], False),
])
def test_a_class_target_of_measured_numbers_suggests_regress(tmp_path, out, capsys, values, warned):
    rng = np.random.default_rng(0)
    data = write(tmp_path, "a,b,y\n" + "".join(f"{rng.normal():.3f},{rng.normal():.3f},{v}\n"
                                                for v in values))
    assert train.main([*FAST, "--quiet", "--csv", data, "--classify", "y", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert ("warning: --classify y: its" in err and "use --regress y" in err) == warned, err


def huge_csv(tmp_path, feature_scale, target_scale, outlier=None):
    rng = np.random.default_rng(0)
    lines = ["a,b,t"] + [f"{rng.normal() * (outlier if i == 5 else feature_scale)},"  # line 7
                         f"{rng.normal()},{rng.normal() * target_scale}" for i in range(60)]
    path = tmp_path / "huge.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("label", ["", ",red"])  # a file of numbers (fast path), one with text
def test_no_target_scaling_names_the_line_and_column_of_a_target_beyond_float32(tmp_path, out,
                                                                                capsys, label):
    rows = [f"{i},{2 * i}{label}" for i in range(20)]
    rows[6] = f"6,1e39{label}"  # line 9: the header, a blank line, then rows from line 3
    path = write(tmp_path, "x,y" + (",colour" if label else "") + "\n\n" + "\n".join(rows) + "\n")
    argv = [*FAST, "--quiet", "--csv", path, "--regress", "y", "--out", str(out)]
    assert train.main([*argv, "--features", "x", "--no-target-scaling"]) == 1
    err = capsys.readouterr().err
    assert err == (f"python -m tinymtl.train: error: {path}: line 9, column \"y\": '1e39' is beyond "
                   f"the range of float32 (3.4e+38), the network's dtype; rescale the column or "
                   f"leave target scaling on\n")
    assert out.read_bytes() == SENTINEL  # refused before training: the old model is whole
    assert train.main([*argv, "--features", "x"]) == 0  # standardised, 1e39 is in range


def test_values_beyond_float32_are_trained_on_or_refused_in_one_line(tmp_path, capsys):
    out = str(tmp_path / "m.npz")
    assert train.main([*FAST, "--quiet", "--csv", str(huge_csv(tmp_path, 1e300, 1, outlier=1e300)),
                       "--regress", "t", "--out", out]) == 0  # standardising brings 1e300 into range
    capsys.readouterr()
    assert train.main([*FAST, "--quiet", "--csv", str(huge_csv(tmp_path, 1, 1e40, outlier=1)),
                       "--regress", "t", "--out", out]) == 0
    assert "nan" not in capsys.readouterr().out  # metrics in the user's units, in float64
    code = train.main([*FAST, "--quiet", "--csv", str(huge_csv(tmp_path, 1, 1e40, outlier=1)),
                       "--regress", "t", "--no-target-scaling", "--out", out])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and 'huge.csv: line 2, column "t"' in err
    assert "beyond the range of float32" in err
    for seed in range(4):  # an outlier of 1e300 among values near 1: fine in the training
        code = train.main([*FAST, "--quiet", "--seed", str(seed), "--out", out, "--regress", "t",
                           "--csv", str(huge_csv(tmp_path, 1, 1, outlier=1e300))])
        err = capsys.readouterr().err  # split, where it sets the scale; in the validation rows,
        assert code == 0 or (code == 1 and err.count("\n") == 1  # beyond float32: named
                             and 'line 7, column "a": a value too large' in err)
