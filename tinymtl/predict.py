"""python -m tinymtl.predict: predictions of a trained model for new rows.

    python -m tinymtl.predict --model model.npz 5.1,3.5,1.4 6.2,2.9,4.3
    python -m tinymtl.predict --model model.npz --csv new.csv --format json

Rows on the command line hold the feature values in the model's feature order; a CSV file's
feature columns are found by name (other columns are ignored). Classification tasks give a label
and every class's probability, regression tasks a value in the training CSV's units.
"""

import csv
import json
import re
import sys

from . import cli
from .data import read_csv, table_from_values
from .errors import OptionError
from .model import Model


class _ValueRowParser(cli.Parser):
    """Reads a row that starts with a negative number, such as -1.5,2, as a row, not an option.

    argparse takes anything that starts with "-" for an option, except plain negative numbers;
    a comma-separated row is not one.
    """

    VALUE_ROW = re.compile(r"^-(\.?\d|inf|nan)", re.IGNORECASE)

    def _parse_optional(self, arg_string):
        if self.VALUE_ROW.match(arg_string):
            return None  # a positional value
        return super()._parse_optional(arg_string)


def build_parser():
    parser = _ValueRowParser(
        prog="python -m tinymtl.predict",
        description="Predict every task of a model trained by tinymtl.train for new rows.",
        epilog="Example: python -m tinymtl.predict --model model.npz 5.1,3.5,1.4")
    parser.add_argument("--model", metavar="PATH", default="model.npz",
                        help="model file written by tinymtl.train")
    parser.add_argument("rows", nargs="*", metavar="V,V,...",
                        help="a row of feature values, comma-separated, in the model's feature order")
    parser.add_argument("--csv", metavar="FILE", help="read rows from a CSV file, feature columns by name")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table",
                        help="output: a readable table, CSV, or a JSON array of one object per row")
    return parser


BLOCK_ROWS = 4096  # rows turned into Python objects and written at a time


def predict_blocks(model, table):
    """The rows of ``predict_rows``, in lists of at most BLOCK_ROWS.

    Every row is predicted first, into NumPy arrays (a few bytes a row), so that an input that
    overflows the network is reported before anything is written. Only then are the rows
    turned into Python objects, a block at a time: the output never holds them all.
    """
    outputs = model.predict(model.inputs(table), where=table.where)  # now, not on first use
    return (_rows(model, {name: y[start:start + BLOCK_ROWS] for name, y in outputs.items()})
            for start in range(0, table.n_rows, BLOCK_ROWS))


def predict_rows(model, table):
    """[{task: {"label", "probabilities"} or value}] for every row of ``table``."""
    return [row for block in predict_blocks(model, table) for row in block]


def _rows(model, outputs):
    """{task: outputs of some rows} -> [{task: {"label", "probabilities"} or value}] of them.

    Numbers are the shortest decimals that read back as the same value of their dtype: a
    float32 probability 0.1 prints as 0.1, not 0.10000000149011612, and a float64 value (a
    regression output beyond float32's range) keeps its size. ``astype(str)`` writes those
    decimals for a whole array at once.
    """
    by_task = {}
    for name, task in model.tasks.items():
        y = outputs[name]
        if task.kind == "classify":
            labels = [task.classes[i] for i in y.argmax(axis=1).tolist()]
            probabilities = [[float(p) for p in row] for row in y.astype(str).tolist()]
            by_task[name] = [{"label": label, "probabilities": dict(zip(task.classes, p))}
                             for label, p in zip(labels, probabilities)]
        else:
            by_task[name] = [float(value) for value in y.astype(str).tolist()]
    return [dict(zip(by_task, values)) for values in zip(*by_task.values())]


def columns(model):
    """Output column names: each classification task's label and P(task=class), each value."""
    names = []
    for name, task in model.tasks.items():
        names.append(name)
        if task.kind == "classify":
            names += [f"P({name}={c})" for c in task.classes]
    return names


def flatten(row, model):
    cells = []
    for name, task in model.tasks.items():
        if task.kind == "classify":
            cells.append(row[name]["label"])
            cells += [row[name]["probabilities"][c] for c in task.classes]
        else:
            cells.append(row[name])
    return cells


def _table_number(value):
    """4 decimals, as probabilities read best; from 10,000 on, the shortest decimal that reads
    back as the value (as csv and json print it), where 4 decimals would show digits that a
    float32 output does not have (30474.1600 for 30474.16)."""
    return f"{value:.4f}" if abs(round(value, 4)) < 1e4 else repr(value)


def write(blocks, model, fmt, stream):
    """Write the rows of ``blocks`` (lists of rows, as ``predict_blocks`` returns them) in ``fmt``.

    csv and json are written a block at a time; the json text is exactly that of
    ``json.dump(rows, stream, indent=2)`` for all the rows. The table needs every row first, to
    size its columns.
    """
    if fmt == "json":
        written = False
        for block in blocks:
            if not block:
                continue
            text = json.dumps(block, indent=2)  # "[\n  {...},\n  {...}\n]": keep the middle
            stream.write(("," if written else "[") + "\n" + text[2:-2])
            written = True
        stream.write("\n]\n" if written else "[]\n")
    elif fmt == "csv":
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(columns(model))
        for block in blocks:
            writer.writerows(flatten(row, model) for row in block)
    else:
        rows = [row for block in blocks for row in block]
        header = ["row", *columns(model)]
        body = [[str(i), *(_table_number(c) if isinstance(c, float) else c for c in flatten(row, model))]
                for i, row in enumerate(rows, start=1)]
        widths = [max(len(r[j]) for r in [header, *body]) for j in range(len(header))]
        for r in [header, *body]:
            stream.write("  ".join(cell.rjust(w) for cell, w in zip(r, widths)).rstrip() + "\n")


def predict(args, *, stdout=None):
    if bool(args.rows) == bool(args.csv):
        raise OptionError("give either rows of values (such as 5.1,3.5,1.4) or --csv FILE, not "
                          + ("both" if args.rows else "neither"))
    model = Model.load(args.model)
    if args.csv:
        table = read_csv(args.csv)
    else:
        table = table_from_values(args.rows, model.features.names)
    write(predict_blocks(model, table), model, args.format, stdout or sys.stdout)


def main(argv=None):
    return cli.run(build_parser(), argv, predict)


if __name__ == "__main__":
    sys.exit(main())
