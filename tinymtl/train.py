"""python -m tinymtl.train: train one network on several columns of a CSV file.

    python -m tinymtl.train                      # Iris: species and petal_width at once
    python -m tinymtl.train --csv cars.csv --classify origin --regress mpg --out cars.npz
    python -m tinymtl.train --csv new.csv --classify y --from cars.npz --freeze-trunk   # transfer

Reads the CSV once, encodes every column once (vectorised), trains with MultiTaskNet.fit, then
reports each task's validation metrics, computed by a copy of the model rebuilt exactly as
``predict`` will load it from the file, so the metrics printed are the saved model's.
"""

import math
import sys
import time

import numpy as np

from . import cli, curves, transfer
from .data import take_targets
from .errors import DataError, TinyMTLError, TrainingDiverged
from .heads import Classify
from .model import Model
from .network import MultiTaskNet

PROG = "python -m tinymtl.train"


def build_parser():
    parser = cli.Parser(
        prog=PROG,
        description="Train one network on several CSV targets at once: every --classify and "
                    "--regress column is a task head on a shared trunk.",
        epilog="With no arguments, trains on the bundled Iris data (species and petal_width from "
               "the other three measurements) and writes model.npz.")
    cli.add_data_options(parser)
    cli.add_training_options(parser)
    transfer.add_transfer_options(parser)
    output = parser.add_argument_group("output")
    output.add_argument("--out", metavar="PATH", default="model.npz",
                        help="model file to write (replaced atomically; untouched on error)")
    output.add_argument("--history", metavar="CSV",
                        help="write learning curves: one row per epoch, numbered from 1, with "
                             "each task's training and validation loss and metric (accuracy; "
                             "R^2 and RMSE), the summed validation loss and the task weights")
    output.add_argument("--plot", metavar="PNG",
                        help="draw the learning curves (loss and metric per task and split) "
                             "into a PNG, PDF or SVG file; needs matplotlib: "
                             "pip install 'tinymtl[plot]'")
    noise = output.add_mutually_exclusive_group()
    noise.add_argument("--quiet", action="store_true", help="no progress on stderr")
    noise.add_argument("--verbose", action="store_true", help="progress after every epoch")
    return parser


def identifier_like(dataset, features):
    """(name, number of distinct values) of each text feature with at least 20 distinct values
    in the training rows, over half as many as there are rows: an ID or a free-text column."""
    found = []
    for column in features.columns:
        if column.kind == "categorical" and column.name in dataset.table.names:
            n_values = len(np.unique(dataset.table.column(column.name)[dataset.train_rows]))
            if n_values >= 20 and n_values * 2 > len(dataset.train_rows):
                found.append((column.name, n_values))
    return found


def quantity_like(dataset):
    """(name, number of classes) of each classification target whose classes are all numbers
    and look like a measured quantity: some are not whole numbers, or there are more than 20."""
    found = []
    for name, task in dataset.tasks.items():
        if task.kind != "classify":
            continue
        try:
            values = [float(c) for c in task.classes]
        except ValueError:
            continue  # text classes
        if len(values) > 20 or any(not v.is_integer() for v in values if math.isfinite(v)):
            found.append((name, len(values)))
    return found


def rebalanced(network, balance, rng):
    """``network`` with the task-balance options ``balance`` (``cli.network_options``) applied.

    Transfer learning (``--from``) builds its network with fixed weighting, and heads kept from
    the source keep their loss and class weights there; this returns a network of the same
    architecture, every parameter copied, that weighs its tasks exactly as this run asks: unit
    loss weights and no class weights unless given (the uncertainty method's log-variances
    start as its ``init`` says). The batch order is kept; ``rng`` (a numpy Generator, from
    --seed) seeds the rest, such as the order of PCGrad's projections.
    """
    heads = {name: (Classify(head.n_classes, balance["class_weights"].get(name))
                    if head.kind == "classify" else head)
             for name, head in network.heads.items()}
    loss_weights = {name: balance["loss_weights"].get(name, 1.0) for name in network.heads}
    if (network.weighting.method == balance["weighting"] == "fixed" and heads == network.heads
            and loss_weights == network.loss_weights):
        return network  # already as asked
    net = MultiTaskNet(network.n_inputs, network.hidden, heads, rng=rng, dtype=network.dtype,
                       loss_weights=loss_weights, weighting=balance["weighting"],
                       weighting_options=balance["weighting_options"])
    source = network.parameters()
    for name, p in net.parameters().items():
        if name in source:
            p[...] = source[name]
    net.shuffle_rng = network.shuffle_rng
    return net


class Progress:
    """Compact progress on stderr: about ten lines by default, every epoch with --verbose.

    With ``weights`` (a function returning {task: weight}) each line also shows the current task
    weights, for the methods that adapt or learn them. ``labelled`` ({"train": tasks, "val":
    tasks}) names the tasks with labels on each split: another task has no loss there (NaN
    in fit's history) and shows as n/a.
    """

    def __init__(self, epochs, *, quiet=False, verbose=False, stream=None, weights=None,
                 labelled=None):
        self.every = 1 if verbose else max(1, epochs // 10)
        self.quiet, self.epochs, self.stream = quiet, epochs, stream or sys.stderr
        self.weights, self.labelled = weights, labelled
        self.start = time.perf_counter()

    def _loss(self, split, name, value):
        if self.labelled is not None and name not in self.labelled[split]:
            return f"{name} n/a"
        return f"{name} {value:.4f}"

    def say(self, text):
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def __call__(self, epoch, history):
        if epoch % self.every and epoch != 1 and epoch != self.epochs:
            return
        train = "  ".join(self._loss("train", name, losses[-1]) for name, losses in history.items()
                          if not name.startswith("val_"))
        val = "  ".join(self._loss("val", name[4:], losses[-1]) for name, losses in history.items()
                        if name.startswith("val_"))
        weights = ""
        if self.weights is not None:
            weights = "  | weights: " + format_weights(self.weights())
        self.say(f"epoch {epoch:>{len(str(self.epochs))}}/{self.epochs}  loss: {train}"
                 + (f"  | validation: {val}" if val else "") + weights
                 + f"  ({time.perf_counter() - self.start:.1f} s)")


def format_weights(weights):
    return "  ".join(f"{name} {weight:.4g}" for name, weight in weights.items())


def train(args, *, stdout=None):
    """Train as ``args`` says and save the model; returns the Model (with its metrics).

    Then write the learning curves (--history, --plot), after the model: a failure there loses
    nothing. A missing matplotlib is reported before any training.
    """
    stdout = stdout or sys.stdout
    transfer.check_options(args)
    # before training, so no time is lost: every output can be written, none replaces another
    # output or an input (but --out may replace the --from model: fine-tuning in place, which
    # reads the source before it writes, and only once training succeeded)
    cli.check_distinct_files([("--out", args.out), ("--history", args.history), ("--plot", args.plot)],
                             [("--csv", args.csv)])
    cli.check_distinct_files([("--history", args.history), ("--plot", args.plot)],
                             [("--from", args.source)])
    cli.check_output_path(args.out, "--out")
    if args.history is not None:
        cli.check_output_path(args.history, "--history")
    if args.plot is not None:
        curves.check_plot_path(args.plot)
        cli.check_output_path(args.plot, "--plot")
    split_rng, net_rng = cli.random_streams(args.seed)
    dataset = cli.load_dataset(args, rng=split_rng)
    balance = cli.network_options(args, dataset)
    if args.source is None:
        model = Model.build(cli.fit_features(dataset), dataset.tasks, hidden=cli.hidden_of(args),
                            rng=net_rng, **balance)
        transfer_fit, origin = {}, None
    else:  # transfer learning: the source's trunk and features, new heads
        model, transfer_fit, origin = transfer.start_from(args, dataset, rng=net_rng)
        model.network = rebalanced(model.network, balance, net_rng)
    features = model.features
    network = model.network
    adaptive = network.weighting.method != "fixed"
    progress = Progress(args.epochs, quiet=args.quiet, verbose=args.verbose,
                        weights=network.weighting.current_weights if adaptive else None,
                        labelled={"train": dataset.labelled_tasks(dataset.train_rows),
                                  "val": dataset.labelled_tasks(dataset.val_rows)})
    X = model.inputs(dataset.table)                     # (n_rows, n_inputs), every row at once
    targets = model.targets(dataset.labels)
    model.check_targets_fit(dataset.table, targets)
    if origin is not None:  # kept heads that are not in the data get no labels
        targets = transfer.targets_for(model, targets, dataset.table.n_rows)
        progress.say(f"from {origin['from']}: trunk {','.join(map(str, model.network.hidden))} "
                     f"{origin['trunk']}; heads kept: {', '.join(origin['kept_heads']) or 'none'}")
    train_rows, val_rows = dataset.train_rows, dataset.val_rows
    progress.say(f"{dataset.table.source}: {dataset.table.n_rows} rows ({len(train_rows)} training, "
                 f"{len(val_rows)} validation); {len(features.names)} features -> "
                 f"{features.n_inputs} inputs; tasks: "
                 + ", ".join(f"{name} ({task.kind})" for name, task in dataset.tasks.items()))
    for name, n_values in identifier_like(dataset, features):
        print(f"{PROG}: warning: column {name!r} has {n_values} different values in "
              f"{len(train_rows)} training rows, like an identifier; as one-hot inputs it cannot "
              f"help predict new rows, which will also be refused for values not seen in "
              f"training: leave it out with --features", file=sys.stderr)
    for name, n_classes in quantity_like(dataset):
        print(f"{PROG}: warning: --classify {name}: its {n_classes} classes are all numbers, like "
              f"a measured quantity; to predict the value itself, use --regress {name}",
              file=sys.stderr)
    if adaptive or balance["loss_weights"] or balance["class_weights"]:
        progress.say(f"weighting: {network.weighting.method}, starting weights "
                     + format_weights(network.weighting.current_weights())
                     + "".join(f"; {name} class weights " + ", ".join(
                         f"{c} {w:.4g}" for c, w in zip(dataset.tasks[name].classes, weights))
                         for name, weights in balance["class_weights"].items()))

    recorder = None
    callback = progress
    if args.history is not None or args.plot is not None:
        recorder = curves.LearningCurves(model, X[train_rows], take_targets(dataset.labels, train_rows),
                                         X[val_rows], take_targets(dataset.labels, val_rows))

        def callback(epoch, history):
            recorder(epoch, history)
            progress(epoch, history)

    if args.patience is not None and not dataset.labelled_tasks(val_rows):
        raise DataError(f"--patience {args.patience}: the {len(val_rows)} validation rows hold no "
                        f"label of any task, so there is no validation loss to watch; raise "
                        f"--val-fraction or drop --patience")
    targets_val = take_targets(targets, val_rows)
    options = cli.fit_options(args)
    progress.start = time.perf_counter()
    try:
        history = network.fit(X[train_rows], take_targets(targets, train_rows), **options,
                              validation=(X[val_rows], targets_val), callback=callback,
                              **transfer_fit)
    except TrainingDiverged as err:
        if dataset.target_scaling or not any(t.kind == "regress" for t in dataset.tasks.values()):
            raise
        raise TrainingDiverged(f"{err}, or drop --no-target-scaling: regression targets far from "
                               f"size 1 need a far smaller rate unless standardised") from None
    epochs_run = len(history[next(iter(model.tasks))])
    if args.patience is not None:
        stopped = f"stopped after epoch {epochs_run}" if epochs_run < args.epochs else \
            f"ran all {epochs_run} epochs"
        best = [history["val_" + name][network.best_epoch - 1] for name in model.tasks]
        best = math.fsum(loss for loss in best if not math.isnan(loss))  # NaN: no labels
        progress.say(f"early stopping: {stopped}; best validation loss {best:.6g} "
                     f"in epoch {network.best_epoch}, whose weights are kept")
    if adaptive:
        progress.say(f"final task weights ({network.weighting.method}): "
                     + format_weights(network.weighting.current_weights()))

    model.training = {"source": dataset.table.source, "features": dataset.feature_names,
                      "categorical": dataset.categorical, "seed": args.seed,
                      "val_fraction": args.val_fraction, "hidden": list(model.network.hidden),
                      "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                      "lr_schedule": args.lr_schedule, "momentum": args.momentum,
                      "weight_decay": args.weight_decay,
                      "target_scaling": dataset.target_scaling, "weighting": args.weighting,
                      "loss_weights": balance["loss_weights"],
                      "weighting_options": balance["weighting_options"],
                      "class_weights": {n: list(w) for n, w in balance["class_weights"].items()},
                      "patience": args.patience, "epochs_run": epochs_run,
                      "best_epoch": network.best_epoch,
                      "n_train": int(len(train_rows)), "n_val": int(len(val_rows))}
    if origin is not None:
        model.training["transfer"] = origin
    saved = model.reloaded()  # exactly what predict will load from the file
    model.training["val_loss"] = sum(saved.network.task_losses(X[val_rows], targets_val).values())
    model.metrics = saved.evaluate(X[val_rows], take_targets(dataset.labels, val_rows),
                                   where=lambda i: dataset.table.where(val_rows[i]))
    model.save(args.out)  # npz, or safetensors for a .safetensors name; predict reads either

    print(f"validation metrics ({len(val_rows)} rows held out of {dataset.table.n_rows}):", file=stdout)
    for line in cli.format_metrics(model.metrics, model.tasks):
        print(line, file=stdout)
    progress.say(f"model saved to {args.out}")
    if recorder is not None:
        try:
            if args.history is not None:
                recorder.write_csv(args.history)
                progress.say(f"learning curves ({len(recorder.rows)} epochs) written to {args.history}")
            if args.plot is not None:
                recorder.plot(args.plot, title=f"{dataset.table.source}: {network.weighting.method} "
                                               f"weighting", best_epoch=network.best_epoch)
                progress.say(f"learning curves drawn in {args.plot}")
        except TinyMTLError as err:
            raise type(err)(f"{err} (the model was saved to {args.out})") from None
    return model


def main(argv=None):
    return cli.run(build_parser(), argv, train)


if __name__ == "__main__":
    sys.exit(main())
