"""What the command-line tools share: option types, the data options, exit codes, printing.

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

IRIS_CLASSIFY, IRIS_REGRESS = ["species"], ["petal_width"]


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


def add_data_options(parser):
    """--csv, --classify, --regress, --features, --categorical, --val-fraction, --seed,
    --no-target-scaling."""
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
    group.add_argument("--val-fraction", type=fraction, default=0.1,
                       help="fraction of rows held out for validation metrics, stratified on the "
                            "first classification target")
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
    row is a training row (compare holds out folds of its own). OptionError for options that do not fit the file, DataError for
    file content.
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
    strata = labels[classify[0]] if classify else None
    if not hold_out:
        train_rows, val_rows = np.arange(table.n_rows), np.arange(0)
    else:
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
