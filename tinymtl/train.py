"""python -m tinymtl.train: train one network on several columns of a CSV file.

    python -m tinymtl.train                      # Iris: species and petal_width at once
    python -m tinymtl.train --csv cars.csv --classify origin --regress mpg --out cars.npz
    python -m tinymtl.train --csv new.csv --classify y --from cars.npz --freeze-trunk   # transfer

Reads the CSV once, encodes every column once (vectorised), trains with MultiTaskNet.fit, then
reports each task's validation metrics, computed by a copy of the model rebuilt exactly as
``predict`` will load it from the file, so the metrics printed are the saved model's.
"""

import sys
import time

import numpy as np

from . import cli, transfer
from .data import take_targets
from .model import Model

# Chosen by measurement against scikit-learn's MLP on synthetic CSVs of 250-500 rows (nonlinear
# classes, nonlinear regression, text + numeric features): weight decay 0.01 closed most of the gap
# (1e-4: 0.03-0.05 behind; 0.01: within 0.02), 10% validation rather than 20% the rest.
DEFAULTS = {"hidden": (64, 64), "epochs": 300, "batch_size": 16, "lr": 0.01, "momentum": 0.9,
            "weight_decay": 0.01}


def build_parser():
    parser = cli.Parser(
        prog="python -m tinymtl.train",
        description="Train one network on several CSV targets at once: every --classify and "
                    "--regress column is a task head on a shared trunk.",
        epilog="With no arguments, trains on the bundled Iris data (species and petal_width from "
               "the other three measurements) and writes model.npz.")
    cli.add_data_options(parser)
    add_training_options(parser)
    transfer.add_transfer_options(parser)
    output = parser.add_argument_group("output")
    output.add_argument("--out", metavar="PATH", default="model.npz",
                        help="model file to write (replaced atomically; untouched on error)")
    noise = output.add_mutually_exclusive_group()
    noise.add_argument("--quiet", action="store_true", help="no progress on stderr")
    noise.add_argument("--verbose", action="store_true", help="progress after every epoch")
    return parser


def add_training_options(parser):
    """--hidden, --epochs, --batch-size, --lr, --momentum, --weight-decay."""
    group = parser.add_argument_group("training")
    group.add_argument("--hidden", type=cli.hidden_sizes, default=DEFAULTS["hidden"],
                       metavar="W,W,...", help="widths of the shared trunk's hidden layers "
                                               "(units); 'none' puts the heads on the inputs")
    group.add_argument("--epochs", type=cli.positive_int, default=DEFAULTS["epochs"],
                       help="passes over the training rows")
    group.add_argument("--batch-size", type=cli.positive_int, default=DEFAULTS["batch_size"],
                       help="rows per SGD step")
    group.add_argument("--lr", type=cli.positive_float, default=DEFAULTS["lr"],
                       help="SGD learning rate (step size per unit of gradient)")
    group.add_argument("--momentum", type=cli.momentum, default=DEFAULTS["momentum"],
                       help="SGD momentum, in [0, 1)")
    group.add_argument("--weight-decay", type=cli.non_negative_float, default=DEFAULTS["weight_decay"],
                       help="L2 penalty on the weights (per unit of weight)")


class Progress:
    """Compact progress on stderr: about ten lines by default, every epoch with --verbose."""

    def __init__(self, epochs, *, quiet=False, verbose=False, stream=None):
        self.every = 1 if verbose else max(1, epochs // 10)
        self.quiet, self.epochs, self.stream = quiet, epochs, stream or sys.stderr
        self.start = time.perf_counter()

    def say(self, text):
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def __call__(self, epoch, history):
        if epoch % self.every and epoch != 1 and epoch != self.epochs:
            return
        train = "  ".join(f"{name} {losses[-1]:.4f}" for name, losses in history.items()
                          if not name.startswith("val_"))
        val = "  ".join(f"{name[4:]} {losses[-1]:.4f}" for name, losses in history.items()
                        if name.startswith("val_"))
        self.say(f"epoch {epoch:>{len(str(self.epochs))}}/{self.epochs}  loss: {train}"
                 + (f"  | validation: {val}" if val else "")
                 + f"  ({time.perf_counter() - self.start:.1f} s)")


def random_streams(seed):
    """(split_rng, net_rng): independent streams for the validation split and the network."""
    return np.random.default_rng(seed).spawn(2)


def train(args, *, stdout=None):
    """Train as ``args`` says and save the model; returns the Model (with its metrics)."""
    stdout = stdout or sys.stdout
    transfer.check_options(args)
    progress = Progress(args.epochs, quiet=args.quiet, verbose=args.verbose)
    split_rng, net_rng = random_streams(args.seed)
    dataset = cli.load_dataset(args, rng=split_rng)
    if args.source is None:
        model = Model.build(cli.fit_features(dataset), dataset.tasks, hidden=args.hidden, rng=net_rng)
        fit_options, origin = {}, None
    else:  # transfer learning: the source's trunk and features, new heads
        model, fit_options, origin = transfer.start_from(args, dataset, rng=net_rng,
                                                         default_hidden=DEFAULTS["hidden"])
    features = model.features
    X = model.inputs(dataset.table)                     # (n_rows, n_inputs), every row at once
    targets = model.targets(dataset.labels)
    if origin is not None:  # kept heads that are not in the data get no labels
        targets = transfer.targets_for(model, targets, dataset.table.n_rows)
        progress.say(f"from {origin['from']}: trunk {','.join(map(str, model.network.hidden))} "
                     f"{origin['trunk']}; heads kept: {', '.join(origin['kept_heads']) or 'none'}")
    train_rows, val_rows = dataset.train_rows, dataset.val_rows
    progress.say(f"{dataset.table.source}: {dataset.table.n_rows} rows ({len(train_rows)} training, "
                 f"{len(val_rows)} validation); {len(features.names)} features -> "
                 f"{features.n_inputs} inputs; tasks: "
                 + ", ".join(f"{name} ({task.kind})" for name, task in dataset.tasks.items()))

    progress.start = time.perf_counter()
    model.network.fit(X[train_rows], take_targets(targets, train_rows),
                      epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      momentum=args.momentum, weight_decay=args.weight_decay,
                      validation=(X[val_rows], take_targets(targets, val_rows)), callback=progress,
                      **fit_options)

    model.training = {"source": dataset.table.source, "features": dataset.feature_names,
                      "categorical": dataset.categorical, "seed": args.seed,
                      "val_fraction": args.val_fraction, "hidden": list(model.network.hidden),
                      "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                      "momentum": args.momentum, "weight_decay": args.weight_decay,
                      "n_train": int(len(train_rows)), "n_val": int(len(val_rows))}
    if origin is not None:
        model.training["transfer"] = origin
    saved = model.reloaded()  # exactly what predict will load from the file
    model.metrics = saved.evaluate(X[val_rows], take_targets(dataset.labels, val_rows))
    model.save(args.out)

    print(f"validation metrics ({len(val_rows)} rows held out of {dataset.table.n_rows}):", file=stdout)
    for line in cli.format_metrics(model.metrics, model.tasks):
        print(line, file=stdout)
    progress.say(f"model saved to {args.out}")
    return model


def main(argv=None):
    return cli.run(build_parser(), argv, train)


if __name__ == "__main__":
    sys.exit(main())
