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


def predict_rows(model, table):
    """[{task: {"label", "probabilities"} or value}] for every row of ``table``."""
    outputs = model.predict(model.inputs(table), where=table.where)
    rows = []
    for i in range(table.n_rows):
        row = {}
        for name, task in model.tasks.items():
            if task.kind == "classify":
                probabilities = outputs[name][i]
                row[name] = {"label": task.classes[int(probabilities.argmax())],
                             "probabilities": {c: cli.short_float(p)
                                               for c, p in zip(task.classes, probabilities)}}
            else:
                row[name] = cli.short_float(outputs[name][i])
        rows.append(row)
    return rows


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
    """4 decimals, as probabilities read best; 6 significant digits for very large values."""
    return f"{value:.4f}" if abs(value) < 1e9 else f"{value:.6g}"


def write(rows, model, fmt, stream):
    if fmt == "json":
        json.dump(rows, stream, indent=2)
        stream.write("\n")
    elif fmt == "csv":
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(columns(model))
        writer.writerows(flatten(row, model) for row in rows)
    else:
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
    write(predict_rows(model, table), model, args.format, stdout or sys.stdout)


def main(argv=None):
    return cli.run(build_parser(), argv, predict)


if __name__ == "__main__":
    sys.exit(main())
