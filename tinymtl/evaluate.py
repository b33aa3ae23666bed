"""python -m tinymtl.evaluate: a trained model's metrics on labelled CSV rows.

    python -m tinymtl.evaluate --model model.npz --csv test.csv

Every task whose target column is in the CSV is scored, with the metrics train reports:
accuracy, macro F1 and the confusion matrix, or RMSE, MAE and R^2 in the target's units. Empty
(or NA) target cells are unlabelled rows and are skipped.
"""

import json
import sys

from . import cli
from .data import read_csv
from .errors import DataError
from .heads import has_label
from .model import Model


def build_parser():
    parser = cli.Parser(
        prog="python -m tinymtl.evaluate",
        description="Score a model trained by tinymtl.train on labelled CSV rows.")
    parser.add_argument("--model", metavar="PATH", default="model.npz",
                        help="model file written by tinymtl.train")
    parser.add_argument("--csv", metavar="FILE", required=True,
                        help="CSV file with the feature columns and target columns, by name")
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="output: readable lines, or a JSON object of metrics per task")
    return parser


def evaluate(args, *, stdout=None):
    stdout = stdout or sys.stdout
    model = Model.load(args.model)
    table = read_csv(args.csv)
    X = model.inputs(table)  # every feature column must be there, by name
    names = [name for name in model.tasks if name in table.names]
    if not names:
        raise DataError(f"{table.source}: none of the model's target columns "
                        f"({', '.join(model.tasks)}) is in the file; its columns are "
                        f"{', '.join(table.names)}")
    labels = model.labels(table, names)
    if not any(map(has_label, labels.values())):
        raise DataError(f"{table.source}: the target columns ({', '.join(names)}) hold no label "
                        f"on any row: nothing to score")
    results = model.evaluate(X, labels, where=table.where)
    if args.format == "json":
        json.dump(results, stdout, indent=2)
        stdout.write("\n")
        return
    print(f"metrics on {table.source} ({table.n_rows} rows):", file=stdout)
    for line in cli.format_metrics(results, model.tasks):
        print(line, file=stdout)
    skipped = [name for name in model.tasks if name not in names]
    if skipped:
        print(f"  not scored (no column in the file): {', '.join(skipped)}", file=stdout)


def main(argv=None):
    return cli.run(build_parser(), argv, evaluate)


if __name__ == "__main__":
    sys.exit(main())
