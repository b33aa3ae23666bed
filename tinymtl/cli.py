"""What the command-line tools share: option types, the data and training options, exit codes,
printing.

Exit codes: 0 success; 1 bad data or file (a DataError or CheckpointError, a diverged training);
2 bad usage (argparse, or an OptionError for a value argparse cannot check alone, such as an
unknown column name); 130 interrupted by Ctrl-C. Every failure is one line on stderr.
"""

import argparse
import os
import sys
from dataclasses import dataclass

import numpy as np

from .checkpoint import replaceable_target
from .data import ClassTarget, Features, RegressTarget, read_bundled, read_csv, split_rows
from .errors import CheckpointError, DataError, OptionError, TinyMTLError
from .heads import has_label
from .optim import LR_SCHEDULES
from .weighting import METHODS

IRIS_CLASSIFY, IRIS_REGRESS = ["species"], ["petal_width"]
DEFAULT_VAL_FRACTION = 0.1  # of the rows, held out for validation (early stopping, metrics)


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default in --help, except for flags (a '(default: True)' after
    --no-target-scaling reads as the opposite of what it means) and where there is none."""

    def _get_help_string(self, action):
        if action.nargs == 0 or action.default is None:
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: 'prog: error: ... (see --help)', exit 2."""

    def __init__(self, **kwargs):
        super().__init__(formatter_class=_DefaultsFormatter, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see --help)\n")


def one_line(text):
    return " ".join(str(text).split())


def run(parser, argv, command):
    """Parse ``argv`` and call ``command(args)``; turn every user error into an exit code.

    Returns the exit code (``main`` functions return it; ``sys.exit`` uses it).
    """
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help (0) or a usage error (2), already printed
        return done.code
    try:
        code = command(args)  # an int is the command's own exit code (gradcheck: 1 for a FAIL)
        sys.stdout.flush()  # a full disk shows here, as an OSError, not at exit as a traceback
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; nothing was saved", file=sys.stderr)
        return 130
    except OptionError as err:
        print(f"{parser.prog}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except TinyMTLError as err:
        print(f"{parser.prog}: error: {one_line(err)}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head`: not an error of ours
        sys.stderr.close()
        return 1
    except MemoryError:
        print(f"{parser.prog}: error: not enough memory (a smaller network, --hidden, or less data "
              f"would fit)", file=sys.stderr)
        return 1
    except OSError as err:  # the output (a full disk, a closed terminal), or a file not named
        if err.filename is not None:  # where it was opened
            print(f"{parser.prog}: error: {err.filename}: {err.strerror or err}", file=sys.stderr)
            return 1
        print(f"{parser.prog}: error: cannot write the output: {err.strerror or err}",
              file=sys.stderr)
        _discard_stdout()
        return 1
    return code if isinstance(code, int) else 0


def _discard_stdout():
    """Send what is left in stdout's buffer to /dev/null: Python flushes it at exit, and a
    second failure there would print a traceback after our one line."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file behind stdout (a test's capture)
        pass


# ------------------------------------------------------------------------------------------------
# Option types: a ValueError or ArgumentTypeError here makes argparse name the option


def _int_at_least(text, minimum):
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
    return value


def positive_int(text):
    return _int_at_least(text, 1)


def at_least_two(text):
    return _int_at_least(text, 2)


def non_negative_int(text):
    return _int_at_least(text, 0)


def _finite(text, expected):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_float(text):
    value = _finite(text, "a number > 0")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def non_negative_float(text):
    value = _finite(text, "a number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def momentum(text):
    value = _finite(text, "a number in [0, 1)")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def fraction(text):
    value = _finite(text, "a number between 0 and 1 (exclusive)")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1 (exclusive), got {text!r}")
    return value


def hidden_sizes(text):
    """'16,16' -> (16, 16); '' or 'none' -> () (heads straight on the inputs)."""
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected layer widths such as 64,64, got {text!r}") from None
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"layer widths must be >= 1, got {text!r}")
    return sizes


def task_weight(text):
    """'species=0.5' -> ('species', 0.5): a task's weight, a finite number >= 0."""
    name, sep, value = text.rpartition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected TASK=WEIGHT such as species=0.5, got {text!r}")
    try:
        weight = non_negative_float(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected TASK=WEIGHT with a weight >= 0, got {text!r}") from None
    return name.strip(), weight


def class_weight_spec(text):
    """'species=balanced' -> ('species', 'balanced'); 'y=a:1,b:3' -> ('y', {'a': 1.0, 'b': 3.0})."""
    expected = "TASK=balanced or TASK=CLASS:WEIGHT,CLASS:WEIGHT"
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    if value.strip().lower() == "balanced":
        return name.strip(), "balanced"
    weights = {}
    for item in value.split(","):
        label, colon, number = item.rpartition(":")
        try:
            if not colon or not label.strip():
                raise argparse.ArgumentTypeError
            weights[label.strip()] = non_negative_float(number)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"expected {expected} with weights >= 0, "
                                             f"got {text!r} (at {item!r})") from None
    return name.strip(), weights


def column_list(text):
    """'a,b,c' -> ['a', 'b', 'c']."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated column names, got {text!r}")
    return names


# ------------------------------------------------------------------------------------------------
# The data options, shared by train (and by later commands such as compare)


def add_data_options(parser, *, held_out=True):
    """--csv, --classify, --regress, --features, --categorical, --val-fraction, --seed,
    --no-target-scaling. ``held_out=False`` (compare, which holds out folds of its own):
    --val-fraction only sizes the split that --patience watches, and has no default here."""
    group = parser.add_argument_group("data")
    group.add_argument("--csv", metavar="FILE",
                       help="CSV file with a header row (default: the bundled Iris data, "
                            "classifying species and regressing petal_width)")
    group.add_argument("--classify", metavar="COL", action="append", default=[],
                       help="a classification target column (repeatable); each is its own task head")
    group.add_argument("--regress", metavar="COL", action="append", default=[],
                       help="a regression target column, in its own units (repeatable)")
    group.add_argument("--features", metavar="COL,COL,...", type=column_list,
                       help="feature columns (default: every column that is not a target)")
    group.add_argument("--categorical", metavar="COL", action="append", default=[],
                       help="treat a numeric-looking feature column (codes, years) as categories, "
                            "one-hot encoded (repeatable)")
    if held_out:
        group.add_argument("--val-fraction", type=fraction, default=DEFAULT_VAL_FRACTION,
                           help="fraction of rows held out for validation metrics, stratified on "
                                "the first classification target")
    else:
        group.add_argument("--val-fraction", type=fraction,
                           help="with --patience: the fraction of each fold's training rows held "
                                f"out for early stopping (default: {DEFAULT_VAL_FRACTION})")
    group.add_argument("--seed", type=non_negative_int, default=0,
                       help="random seed for the split, the initial weights and the batch order")
    group.add_argument("--no-target-scaling", dest="target_scaling", action="store_false",
                       help="train on regression targets in the CSV's units instead of "
                            "standardising them (mean 0, standard deviation 1) first")


@dataclass
class Dataset:
    """A table with its roles: feature names, tasks (fitted on the training rows) and the split."""

    table: object
    feature_names: list
    categorical: list
    tasks: dict          # {name: ClassTarget | RegressTarget}, classification targets first
    labels: dict         # {name: class indices or values in the user's units} for every row
    train_rows: np.ndarray
    val_rows: np.ndarray
    target_scaling: bool = True

    def split(self, train_rows, val_rows, where=None):
        """The same data with other training and validation rows: regression statistics are
        taken again from the new training rows (compare uses this for every fold, ``where``
        naming it, such as "seed 0, fold 2")."""
        tasks = {name: (RegressTarget.fit(self.table, name, rows=train_rows, scale=self.target_scaling)
                        if task.kind == "regress" else task)
                 for name, task in self.tasks.items()}
        check_classes_in_training_rows(self.table, tasks, self.labels, train_rows, where=where)
        return Dataset(self.table, self.feature_names, self.categorical, tasks, self.labels,
                       np.asarray(train_rows), np.asarray(val_rows), self.target_scaling)

    def labelled_tasks(self, rows):
        """The tasks with at least one label among ``rows``."""
        return [name for name in self.tasks if has_label(self.labels[name][rows])]


def check_classes_in_training_rows(table, tasks, labels, train_rows, *, where=None):
    """DataError for a classification task without a single label in the training rows: its
    head would be saved untrained. (RegressTarget.fit says the same of a regression task.)
    ``where`` names compare's fold; without it the rows are train's split."""
    for name, task in tasks.items():
        if task.kind == "classify" and not has_label(labels[name][train_rows]):
            n_labelled = int((labels[name] >= 0).sum())
            if where is None:
                place, advice = "the training rows", "lower --val-fraction"
            else:
                place, advice = f"the training rows of {where}", "use fewer --folds"
            raise DataError(f'{table.source}: classification target "{name}" has no labels in '
                            f"{place}: its {n_labelled} labelled rows all fell in the held-out "
                            f"rows; label more rows, or {advice}")


def load_dataset(args, *, rng, hold_out=True):
    """Read the CSV (or bundled Iris) named by the data options, check every role, split the rows.

    ``rng`` draws the split (``args.val_fraction`` of the rows); with ``hold_out=False``, every
    row is a training row (compare holds out folds of its own). OptionError for options that
    do not fit the file, DataError for file content.
    """
    if args.csv is None:
        table = read_bundled("iris.csv")
        classify, regress = args.classify, args.regress
        if not classify and not regress:
            classify, regress = IRIS_CLASSIFY, IRIS_REGRESS
    else:
        table = read_csv(args.csv)
        classify, regress = args.classify, args.regress
        if not classify and not regress:
            raise OptionError(f"name at least one target column with --classify or --regress; "
                              f"{table.source} has the columns {', '.join(table.names)}")
    targets = [*classify, *regress]
    for option, names in (("--classify", classify), ("--regress", regress),
                          ("--features", args.features or []), ("--categorical", args.categorical)):
        for name in names:
            if name not in table.names:
                raise OptionError(f'{option} {name}: {table.source} has no column "{name}"; '
                                  f"the columns are {', '.join(table.names)}")
    repeated = sorted({name for name in targets if targets.count(name) > 1})
    if repeated:
        raise OptionError(f"column {repeated[0]} is named as a target more than once "
                          f"(--classify/--regress); each column is one task")
    if args.features is None:
        feature_names = [name for name in table.names if name not in targets]
    else:
        feature_names = list(dict.fromkeys(args.features))
        both = [name for name in feature_names if name in targets]
        if both:
            option = "--classify" if both[0] in classify else "--regress"
            raise OptionError(f"column {both[0]} is both a feature (--features) and a target "
                              f"({option}); a column cannot predict itself")
    not_features = [name for name in args.categorical if name not in feature_names]
    if not_features:
        raise OptionError(f"--categorical {not_features[0]}: not a feature column "
                          f"(the features are {', '.join(feature_names)})")
    if not feature_names:
        raise OptionError(f"no feature columns: every column of {table.source} is a target")

    classes = {name: ClassTarget.fit(table, name) for name in classify}
    labels = {name: target.encode(table) for name, target in classes.items()}
    for name in regress:
        labels[name] = RegressTarget.fit(table, name).encode(table)  # checks every cell
    if not hold_out:
        train_rows, val_rows = np.arange(table.n_rows), np.arange(0)
    else:
        strata = labels[classify[0]] if classify else None
        train_rows, val_rows = split_rows(table.n_rows, args.val_fraction, rng=rng,
                                          strata=strata, source=table.source)
    target_scaling = getattr(args, "target_scaling", True)
    tasks = dict(classes)
    for name in regress:
        tasks[name] = RegressTarget.fit(table, name, rows=train_rows, scale=target_scaling)
    tasks = {name: tasks[name] for name in targets}  # the user's order
    check_classes_in_training_rows(table, tasks, labels, train_rows)
    return Dataset(table, feature_names, list(args.categorical), tasks,
                   {name: labels[name] for name in targets}, train_rows, val_rows, target_scaling)


def fit_features(dataset):
    """Type every feature column and take its statistics from the training rows."""
    return Features.fit(dataset.table, dataset.feature_names, categorical=dataset.categorical,
                        rows=dataset.train_rows)


# ------------------------------------------------------------------------------------------------
# The training options, shared by train and compare

# Chosen by measurement against scikit-learn's MLP on synthetic CSVs of 250-500 rows (nonlinear
# classes, nonlinear regression, text + numeric features): weight decay 0.01 closed most of the gap
# (1e-4: 0.03-0.05 behind; 0.01: within 0.02), 10% validation rather than 20% the rest. Then on
# 37 targets of 34 CSVs (150-5,000 rows): a constant rate of 0.01 left the last epoch's weights
# noisy from 3,000 rows on (-0.044 R^2); falling along a cosine it trails by 0.012 at worst.
DEFAULTS = {"hidden": (64, 64), "epochs": 300, "batch_size": 16, "lr": 0.01,
            "lr_schedule": "cosine", "momentum": 0.9, "weight_decay": 0.01}  # fit's own defaults


def add_training_options(parser, *, transfer=True):
    """--hidden, --epochs, --batch-size, --lr, --lr-schedule, --momentum, --weight-decay,
    --patience, and the task-balance options --weighting, --loss-weight, --gradnorm-alpha,
    --dwa-temperature, --class-weight (``network_options`` and ``fit_options`` read them
    back). ``transfer``: the command also takes --from, whose trunk sets the default --hidden."""
    group = parser.add_argument_group("training")
    group.add_argument("--hidden", type=hidden_sizes, metavar="W,W,...",
                       help="widths of the shared trunk's hidden layers (units); 'none' puts the "
                            f"heads on the inputs (default: {','.join(map(str, DEFAULTS['hidden']))}"
                            + ("; with --from, the source trunk's)" if transfer else ")"))
    group.add_argument("--epochs", type=positive_int, default=DEFAULTS["epochs"],
                       help="passes over the training rows (at most, with --patience)")
    group.add_argument("--batch-size", type=positive_int, default=DEFAULTS["batch_size"],
                       help="rows per SGD step")
    group.add_argument("--lr", type=positive_float, default=DEFAULTS["lr"],
                       help="SGD learning rate (step size per unit of gradient)")
    group.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=DEFAULTS["lr_schedule"],
                       help="learning rate over the epochs: constant, or cosine (from --lr in the "
                            "first epoch down to nearly 0 in the last)")
    group.add_argument("--momentum", type=momentum, default=DEFAULTS["momentum"],
                       help="SGD momentum, in [0, 1)")
    group.add_argument("--weight-decay", type=non_negative_float, default=DEFAULTS["weight_decay"],
                       help="L2 penalty on the weights (per unit of weight)")
    group.add_argument("--patience", type=positive_int, metavar="N",
                       help="early stopping: stop when the validation loss (the sum of the tasks' "
                            "unweighted mean losses) has not improved for N epochs, and keep the "
                            "best epoch's weights (default: train every epoch, keep the last)")
    balance = parser.add_argument_group("task balance")
    balance.add_argument("--weighting", choices=METHODS, default="fixed",
                         help="how the tasks' losses combine: fixed weights; learned uncertainty "
                              "weights (Kendall et al. 2018); GradNorm (Chen et al. 2018); "
                              "Dynamic Weight Average (Liu et al. 2019); PCGrad gradient surgery "
                              "(Yu et al. 2020)")
    balance.add_argument("--loss-weight", metavar="TASK=W", type=task_weight, action="extend",
                         nargs="+", default=[],
                         help="a task's loss weight, >= 0 (default 1; repeatable: "
                              "--loss-weight species=1 petal_width=0.5); with gradnorm and dwa it "
                              "multiplies the adapted weight; uncertainty learns its own")
    balance.add_argument("--gradnorm-alpha", type=non_negative_float, metavar="ALPHA",
                         help="GradNorm's asymmetry: 0 equalises the tasks' gradient norms, "
                              "larger values push harder on tasks that train slower "
                              "(default 1.5, the paper's)")
    balance.add_argument("--dwa-temperature", type=positive_float, metavar="T",
                         help="DWA's temperature: larger values give more even weights "
                              "(default 2, the paper's)")
    balance.add_argument("--class-weight", metavar="TASK=SPEC", type=class_weight_spec,
                         action="extend", nargs="+", default=[],
                         help="class weights of a classification task, for imbalanced labels: "
                              "TASK=balanced (n_rows / (n_classes * rows of the class), over the "
                              "training rows) or TASK=CLASS:W,CLASS:W (unnamed classes weigh 1)")


def network_options(args, dataset):
    """The MultiTaskNet options the task-balance arguments ask for: a dict for ``Model.build``.

    OptionError for a task or class the data does not have, or an option the method ignores.
    """
    tasks = dataset.tasks
    loss_weights = {}
    for name, weight in args.loss_weight:
        _check_task(name, tasks, "--loss-weight")
        loss_weights[name] = weight
    if all(loss_weights.get(name, 1.0) == 0 for name in tasks):
        raise OptionError("--loss-weight gives every task weight 0, so training would learn "
                          "nothing; give at least one task a weight > 0")
    if loss_weights and args.weighting == "uncertainty":
        raise OptionError("--loss-weight does not apply to --weighting uncertainty, which learns "
                          "every task's weight; drop --loss-weight or choose another method")
    options = {}
    for option, value, method, key in (("--gradnorm-alpha", args.gradnorm_alpha, "gradnorm", "alpha"),
                                       ("--dwa-temperature", args.dwa_temperature, "dwa", "temperature")):
        if value is None:
            continue
        if args.weighting != method:
            raise OptionError(f"{option} applies to --weighting {method} only "
                              f"(the weighting is {args.weighting})")
        options[key] = value
    class_weights = {}
    for name, spec in args.class_weight:
        _check_task(name, tasks, "--class-weight")
        task = tasks[name]
        if task.kind != "classify":
            raise OptionError(f"--class-weight {name}: {name} is a regression task; class weights "
                              f"apply to --classify tasks")
        if spec == "balanced":
            class_weights[name] = balanced_class_weights(dataset.labels[name][dataset.train_rows],
                                                         len(task.classes))
            continue
        unknown = [label for label in spec if label not in task.classes]
        if unknown:
            raise OptionError(f"--class-weight {name}: no class {unknown[0]!r} in column {name}; "
                              f"its classes are {', '.join(task.classes)}")
        class_weights[name] = tuple(spec.get(label, 1.0) for label in task.classes)
        if not any(class_weights[name]):
            raise OptionError(f"--class-weight {name}: every class has weight 0, so task {name} "
                              f"would learn nothing; give at least one class a weight > 0")
    return {"loss_weights": loss_weights, "weighting": args.weighting,
            "weighting_options": options, "class_weights": class_weights}


def _check_task(name, tasks, option):
    if name not in tasks:
        raise OptionError(f"{option} {name}: no task {name!r}; the tasks are {', '.join(tasks)}")


def balanced_class_weights(labels, n_classes):
    """scikit-learn's "balanced" weights: n_labelled / (n_classes * count of the class), one per
    class, from class indices (-1 = no label); a class absent from ``labels`` weighs 1."""
    labels = labels[labels >= 0]
    counts = np.bincount(labels, minlength=n_classes)
    return tuple(len(labels) / (n_classes * int(c)) if c else 1.0 for c in counts)


def hidden_of(args):
    """The trunk widths --hidden asks for, or the default when it is left out (args.hidden is
    None then, so that --from can tell a width given from the default)."""
    return DEFAULTS["hidden"] if args.hidden is None else args.hidden


def fit_options(args):
    """The MultiTaskNet.fit options the training arguments ask for (no data, no callback)."""
    return {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
            "lr_schedule": args.lr_schedule, "momentum": args.momentum,
            "weight_decay": args.weight_decay, "patience": args.patience}


def random_streams(seed):
    """(split_rng, net_rng): independent streams for the validation split and the network."""
    return np.random.default_rng(seed).spawn(2)


# ------------------------------------------------------------------------------------------------
# Printing


def format_metrics(metrics, tasks):
    """Readable lines: one per task, then each classification task's confusion matrix."""
    lines = []
    for name, m in metrics.items():
        task = tasks[name]
        if m.get("n_labelled", 0) == 0:
            lines.append(f"  {name}: no labelled rows")
            continue
        if task.kind == "classify":
            lines.append(f"  {name} (classify, {m['n_labelled']} rows): accuracy {m['accuracy']:.4f}"
                         f"  macro F1 {m['macro_f1']:.4f}")
            width = max(len(str(v)) for v in [*task.classes, *np.ravel(m["confusion_matrix"])])
            lines.append("    confusion matrix (rows: true class, columns: predicted)")
            lines.append("    " + " " * width + "  " + "  ".join(f"{c:>{width}}" for c in task.classes))
            for c, row in zip(task.classes, m["confusion_matrix"]):
                lines.append(f"    {c:>{width}}  " + "  ".join(f"{v:>{width}}" for v in row))
        else:
            r2 = ("undefined (constant values)" if m["r2"] is None
                  else f"{m['r2']:.4f}" if abs(m["r2"]) < 1e6 else f"{m['r2']:.4g}")  # -5e58: short
            lines.append(f"  {name} (regress, {m['n_labelled']} rows): RMSE {m['rmse']:#.4g}"
                         f"  MAE {m['mae']:#.4g}  R^2 {r2}")
    return lines


def check_output_path(path, option):
    """Before any work: the file at ``path`` can be written (its folder exists and is writable,
    and it is not a folder), else a TinyMTLError (exit 1, a file problem) naming ``option``."""
    try:
        target = replaceable_target(path)
    except CheckpointError as err:
        raise TinyMTLError(f"{err} ({option})") from None
    folder = target.parent
    if not folder.is_dir():
        raise TinyMTLError(f"{path}: cannot write ({option}): the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise TinyMTLError(f"{path}: cannot write ({option}): the folder {folder} is not writable")


def check_distinct_files(outputs, inputs=()):
    """OptionError unless every output file differs from every other output and every input.

    ``outputs`` and ``inputs`` are (option, path) pairs; a path of None is skipped. Paths are
    compared after following symbolic links, and existing files by device and inode (a hard
    link is the same file), so ``--history model.npz`` cannot replace the model just saved and
    ``--out data.csv`` cannot replace the data.
    """
    def same(a, b):
        if os.path.realpath(a) == os.path.realpath(b):
            return True
        try:
            return os.path.samefile(a, b)
        except OSError:  # one of them does not exist yet
            return False

    outputs = [(option, path) for option, path in outputs if path is not None]
    inputs = [(option, path) for option, path in inputs if path is not None]
    for i, (option, path) in enumerate(outputs):
        for other, other_path in outputs[:i]:
            if same(path, other_path):
                raise OptionError(f"{option} {path} is the same file as {other} {other_path}; "
                                  f"give each output its own file")
        for other, other_path in inputs:
            if same(path, other_path):
                raise OptionError(f"{option} {path} is the same file as {other} {other_path}, "
                                  f"which writing it would replace; give another file name")
