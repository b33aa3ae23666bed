"""Learning curves from python -m tinymtl.train: --history CSV, --plot PNG, and early stopping's
restored weights checked against the history."""

import csv
import sys

import numpy as np
import pytest

from tinymtl import cli, curves, train
from tinymtl.errors import CheckpointError
from tinymtl.data import take_targets
from tinymtl.model import Model

SENTINEL = b"an existing model that must survive"


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_history_has_one_row_per_epoch_numbered_from_one(tmp_path, capsys):
    history = tmp_path / "h.csv"
    assert train.main(["--epochs", "7", "--hidden", "8", "--quiet", "--history", str(history),
                       "--weighting", "dwa", "--out", str(tmp_path / "m.npz")]) == 0
    rows = read_rows(history)
    assert [int(row["epoch"]) for row in rows] == list(range(1, 8))
    for task, metric in (("species", "accuracy"), ("petal_width", "r2"), ("petal_width", "rmse")):
        for split in ("train", "val"):
            assert f"{task}.{split}_{metric}" in rows[0]
    for row in rows:
        total = float(row["species.val_loss"]) + float(row["petal_width.val_loss"])
        assert float(row["val_loss"]) == pytest.approx(total, rel=1e-12)
        assert 0 <= float(row["species.val_accuracy"]) <= 1
    # the last row's weights and metrics are the saved model's (no early stopping here)
    model = Model.load(tmp_path / "m.npz")
    assert float(rows[-1]["species.weight"]) == pytest.approx(
        model.network.weighting.current_weights()["species"])
    assert float(rows[-1]["species.val_accuracy"]) == pytest.approx(model.metrics["species"]["accuracy"])
    assert float(rows[-1]["petal_width.val_rmse"]) == pytest.approx(model.metrics["petal_width"]["rmse"])


def test_early_stopping_saves_the_best_epoch_of_the_history(tmp_path, capsys):
    """Must-show 5: the saved model's validation loss is the best epoch's in the history."""
    out, history = tmp_path / "m.npz", tmp_path / "h.csv"
    argv = ["--epochs", "300", "--hidden", "64,64", "--lr", "0.05", "--patience", "5",
            "--seed", "3", "--history", str(history), "--out", str(out)]
    assert train.main(argv) == 0
    err = capsys.readouterr().err
    rows = read_rows(history)
    model = Model.load(out)
    best = model.training["best_epoch"]
    assert len(rows) == model.training["epochs_run"] < 300  # it stopped early ...
    assert len(rows) == best + 5                             # ... patience epochs after the best
    val_losses = [float(row["val_loss"]) for row in rows]
    assert best == int(np.argmin(val_losses)) + 1
    # recompute the validation loss of the model as loaded from the file
    args = train.build_parser().parse_args(argv)
    dataset = cli.load_dataset(args, rng=cli.random_streams(3)[0])
    X = model.inputs(dataset.table)[dataset.val_rows]
    targets = model.targets(take_targets(dataset.labels, dataset.val_rows))
    saved_loss = sum(model.network.task_losses(X, targets).values())
    assert saved_loss == val_losses[best - 1] == model.training["val_loss"]
    assert saved_loss < val_losses[-1]  # not the last epoch's weights
    assert f"in epoch {best}, whose weights are kept" in err


def test_a_history_in_a_missing_folder_fails_before_training(tmp_path, capsys):
    out = tmp_path / "m.npz"
    assert train.main(["--epochs", "2", "--hidden", "4", "--quiet", "--out", str(out),
                       "--history", str(tmp_path / "no" / "dir" / "h.csv")]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "cannot write (--history)" in err and "does not exist" in err
    assert not out.exists()  # nothing was trained


def test_a_history_that_fails_to_write_keeps_the_model(tmp_path, capsys, monkeypatch):
    def fail(self, path):  # the disk fills up after the model is saved
        raise CheckpointError(f"{path}: cannot write: No space left on device")

    monkeypatch.setattr(curves.LearningCurves, "write_csv", fail)
    out = tmp_path / "m.npz"
    assert train.main(["--epochs", "2", "--hidden", "4", "--quiet", "--out", str(out),
                       "--history", str(tmp_path / "h.csv")]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "cannot write" in err and "model was saved" in err
    assert Model.load(out).training["epochs_run"] == 2


def test_plot_without_matplotlib_fails_up_front_saying_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    out = tmp_path / "m.npz"
    out.write_bytes(SENTINEL)
    assert train.main(["--epochs", "2", "--hidden", "4", "--plot", str(tmp_path / "c.png"),
                       "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1  # no progress line: nothing was trained
    assert "matplotlib" in err and "pip install 'tinymtl[plot]'" in err and "--history" in err
    assert out.read_bytes() == SENTINEL and not (tmp_path / "c.png").exists()


def test_plot_needs_a_known_image_type(tmp_path, capsys):
    assert train.main(["--epochs", "2", "--plot", str(tmp_path / "c.txt"),
                       "--out", str(tmp_path / "m.npz")]) == 2
    assert ".png" in capsys.readouterr().err
    assert not (tmp_path / "m.npz").exists()


def test_plot_draws_titled_axes_a_line_per_task_and_split_and_a_legend(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure
    from matplotlib.image import imread

    drawn = []
    savefig = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (drawn.append(fig), savefig(fig, *a, **k)))
    png = tmp_path / "curves.png"
    assert train.main(["--epochs", "12", "--hidden", "8", "--quiet", "--patience", "20",
                       "--plot", str(png), "--out", str(tmp_path / "m.npz")]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert imread(png).shape[0] > 300  # a real image, not a stub
    (fig,) = drawn
    assert "Learning curves" in fig.get_suptitle()
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel() == "epoch" and ax.get_ylabel()
        labels = [text.get_text() for text in ax.get_legend().get_texts()]
        for task in ("species", "petal_width"):
            assert sum(label.startswith(task) and "(training)" in label for label in labels) == 1
            assert sum(label.startswith(task) and "(validation)" in label for label in labels) == 1
        assert len(ax.get_lines()) == 5 and len(ax.get_lines()[0].get_xdata()) == 12  # + best epoch


def test_history_of_a_transfer_with_a_kept_head_that_has_no_labels(tmp_path, capsys):
    source, history = tmp_path / "source.npz", tmp_path / "h.csv"
    assert train.main(["--epochs", "2", "--hidden", "8", "--quiet", "--out", str(source)]) == 0
    assert train.main(["--epochs", "3", "--hidden", "8", "--quiet", "--classify", "species",
                       "--features", "sepal_length,sepal_width,petal_length", "--from", str(source),
                       "--keep-heads", "--history", str(history), "--out", str(tmp_path / "m.npz")]) == 0
    rows = read_rows(history)
    assert len(rows) == 3
    model = Model.load(tmp_path / "m.npz")
    assert list(model.tasks) == ["species", "petal_width"]
    for row in rows:
        for column in ("train_loss", "val_loss", "train_r2", "val_r2", "train_rmse", "val_rmse"):
            assert row[f"petal_width.{column}"] == "", column  # kept, frozen, unlabelled here
        assert float(row["petal_width.weight"]) == 1.0
        # the totals are species' alone: an unlabelled task adds nothing
        assert float(row["train_loss"]) == float(row["species.train_loss"]) > 0
        assert float(row["val_loss"]) == float(row["species.val_loss"]) > 0
        # an accuracy on the 15 validation rows
        assert float(row["species.val_accuracy"]) * 15 == pytest.approx(
            round(float(row["species.val_accuracy"]) * 15), abs=1e-9)
    # the last row's accuracy is the saved model's, as train printed it
    assert float(rows[-1]["species.val_accuracy"]) == pytest.approx(model.metrics["species"]["accuracy"])
    assert "petal_width" not in model.metrics or model.metrics["petal_width"].get("n_labelled", 0) == 0


def test_plot_of_a_kept_head_without_labels_draws_no_line_and_no_legend_entry(tmp_path, capsys,
                                                                              monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    drawn = []
    savefig = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (drawn.append(fig), savefig(fig, *a, **k)))
    source = tmp_path / "source.npz"
    assert train.main(["--epochs", "2", "--hidden", "8", "--quiet", "--out", str(source)]) == 0
    assert train.main(["--epochs", "3", "--quiet", "--classify", "species", "--from", str(source),
                       "--keep-heads", "--plot", str(tmp_path / "c.png"),
                       "--out", str(tmp_path / "m.npz")]) == 0
    (fig,) = drawn
    for ax in fig.axes:
        labels = [text.get_text() for text in ax.get_legend().get_texts()]
        assert labels and all(label.startswith("species") for label in labels), labels
        assert len(ax.get_lines()) == 2
    capsys.readouterr()
