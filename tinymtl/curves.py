"""Learning curves for the command line: every task's loss and metric after each epoch, on the
training and the validation rows, written as CSV (``--history``) and drawn (``--plot``).

One row per completed epoch, numbered from 1. Columns, with ``{task}`` each task's name:

    epoch                  1, 2, ...
    train_loss, val_loss   sums of the tasks' unweighted mean losses (val_loss is what
                           early stopping watches)
    {task}.train_loss      the task's mean loss over the epoch's training batches, as fit reports it
    {task}.val_loss        the task's mean loss on the validation rows after the epoch
    {task}.train_accuracy, {task}.val_accuracy            a classification task, after the epoch
    {task}.train_r2, {task}.val_r2, {task}.train_rmse, {task}.val_rmse   a regression task
                           (RMSE in the target's units)
    {task}.weight          the task's weight in the training loss after the epoch

A cell is empty where it has no value: a metric that is undefined, or the loss of a task on a
split that holds no label of it (the sums leave such a task out).

Losses are those the network trains on (standardised regression targets unless
--no-target-scaling); metrics are in the user's units. Drawing needs matplotlib, an optional
extra; nothing else here does.
"""

import csv
import importlib
import io
import math
from pathlib import Path

from . import metrics
from .checkpoint import write_atomically
from .errors import OptionError
from .heads import has_label

PLOT_FORMATS = ("png", "pdf", "svg")
INSTALL_HINT = "pip install 'tinymtl[plot]' (or pip install matplotlib)"


def check_plot_path(path):
    """OptionError, before any training, if ``path`` cannot be drawn: matplotlib is missing or
    the file type is not one matplotlib writes here."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in PLOT_FORMATS:
        raise OptionError(f"--plot {path}: expected a file name ending in "
                          f"{', '.join('.' + f for f in PLOT_FORMATS)}")
    _matplotlib_figure()


def _matplotlib_figure():
    """matplotlib's Figure class (no pyplot: no window, no global state), or OptionError."""
    try:
        return importlib.import_module("matplotlib.figure").Figure
    except ImportError:
        raise OptionError(f"--plot needs matplotlib, which is not installed: {INSTALL_HINT}; "
                          f"--history writes the same curves as CSV without it") from None


def _or_nan(value):
    return math.nan if value is None else value


class LearningCurves:
    """A ``fit`` callback that records one row per epoch; then ``write_csv`` and ``plot``.

    ``model`` is the command-line Model being trained; ``labels_train`` and ``labels_val`` are
    {task: labels in the user's terms} for the rows of ``X_train`` and ``X_val``.
    """

    def __init__(self, model, X_train, labels_train, X_val, labels_val):
        self.model = model
        self.splits = {"train": (X_train, labels_train), "val": (X_val, labels_val)}
        # a task's loss on a split without one label of it is no loss (fit reports it as NaN)
        self.labelled = {split: {name for name, y in labels.items() if has_label(y)}
                         for split, (_, labels) in self.splits.items()}
        self.rows = []

    def __call__(self, epoch, history):
        tasks = self.model.tasks
        losses = {split: {name: history[prefix + name][-1] for name in self.labelled[split]}
                  for split, prefix in (("train", ""), ("val", "val_"))}
        row = {"epoch": epoch,
               "train_loss": sum(losses["train"].values()) if losses["train"] else None,
               "val_loss": sum(losses["val"].values()) if losses["val"] else None}
        scores = {split: self._scores(X, labels) for split, (X, labels) in self.splits.items()}
        weights = self.model.network.weighting.current_weights()
        for name in tasks:
            row[f"{name}.train_loss"] = losses["train"].get(name)
            row[f"{name}.val_loss"] = losses["val"].get(name)
            for metric in scores["train"][name]:
                for split in ("train", "val"):
                    row[f"{name}.{split}_{metric}"] = scores[split][name][metric]
            row[f"{name}.weight"] = weights[name]
        self.rows.append(row)

    def _scores(self, X, labels):
        """{task: {metric: value}} of the model as it is now, on X (None without labels)."""
        predictions = self.model.predict(X)
        scores = {}
        for name, task in self.model.tasks.items():
            if name not in labels:  # a head kept by transfer learning, not a target of this data
                scores[name] = {"accuracy": None} if task.kind == "classify" else {"r2": None, "rmse": None}
            elif task.kind == "classify":
                predicted = predictions[name].argmax(axis=1)
                scores[name] = {"accuracy": metrics.accuracy(labels[name], predicted)}
            else:
                scores[name] = {"r2": metrics.r2(labels[name], predictions[name]),
                                "rmse": metrics.rmse(labels[name], predictions[name])}
        return scores

    def write_csv(self, path):
        """Write the rows as CSV, atomically (an empty cell where a metric is undefined)."""
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=list(self.rows[0]) if self.rows else ["epoch"],
                                lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
        write_atomically(path, lambda f: f.write(text.getvalue().encode("utf-8")))

    def plot(self, path, *, title, best_epoch=None):
        """Draw loss (left) and metric (right) per epoch, a line per task and split, into ``path``."""
        Figure = _matplotlib_figure()
        fig = Figure(figsize=(12, 4.8), layout="constrained")
        ax_loss, ax_metric = fig.subplots(1, 2)
        epochs = [row["epoch"] for row in self.rows]
        colours = [f"C{i % 10}" for i in range(len(self.model.tasks))]
        lowest_metric = 0.0
        for colour, (name, task) in zip(colours, self.model.tasks.items()):
            metric, shown = ("accuracy", "accuracy") if task.kind == "classify" else ("r2", "R^2")
            for split, style, word in (("train", "-", "training"), ("val", "--", "validation")):
                if name not in self.labelled[split]:
                    continue  # no label: no line, and no legend entry for one
                ax_loss.plot(epochs, [_or_nan(row[f"{name}.{split}_loss"]) for row in self.rows],
                             color=colour, linestyle=style, label=f"{name} ({word})")
                values = [_or_nan(row[f"{name}.{split}_{metric}"]) for row in self.rows]
                ax_metric.plot(epochs, values, color=colour, linestyle=style,
                               label=f"{name} {shown} ({word})")
                finite = [v for v in values if math.isfinite(v)]
                lowest_metric = min([lowest_metric, *finite])
        losses = [row[key] for row in self.rows for key in row
                  if key.endswith("_loss") and "." in key and row[key] is not None]
        if losses and min(losses) > 0:
            ax_loss.set_yscale("log")  # tasks' losses may differ by orders of magnitude
        if best_epoch is not None:
            for ax in (ax_loss, ax_metric):
                ax.axvline(best_epoch, color="0.5", linewidth=1, linestyle=":",
                           label=f"best epoch ({best_epoch}), kept")
        ax_loss.set_title("Loss per task (unweighted mean)")
        ax_loss.set_xlabel("epoch")
        ax_loss.set_ylabel("loss" + (" (log scale)" if ax_loss.get_yscale() == "log" else ""))
        ax_metric.set_title("Metric per task (higher is better)")
        ax_metric.set_xlabel("epoch")
        ax_metric.set_ylabel("accuracy (classification), R^2 (regression)")
        # An R^2 far below 0 (early epochs) would squash every other line: clip the axis at -1.
        ax_metric.set_ylim(max(lowest_metric, -1.0) - 0.05, 1.05)
        for ax in (ax_loss, ax_metric):
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize="small")
        fig.suptitle(f"Learning curves: {title}")
        write_atomically(path, lambda f: fig.savefig(f, format=Path(path).suffix.lower().lstrip("."),
                                                      dpi=110))
