"""python -m tinymtl.compare: does one shared network beat one network per task on this data?

    python -m tinymtl.compare                        # Iris: species and petal_width, 5 folds
    python -m tinymtl.compare --csv cars.csv --classify origin --regress mpg --folds 10 --seeds 3

Takes train's data and training options. For every fold of k-fold cross-validation (stratified on
the first --classify column), repeated with --seeds seeds, it trains the multi-task model and one
single-task model per task, on the same training rows, with the same trunk widths, epochs, batch
size, learning rate and (for the same seed) the same initial trunk weights and batch order, then
scores every model on the fold's held-out rows. The single-task models keep their task's class
weights and train with a weight of 1 (a weighting method has nothing to balance for one task).
With --patience, each model stops early on a validation split (--val-fraction) of its training rows.

For each task it prints each metric's mean and sample standard deviation over the runs for both
models, the mean paired difference, and which model is better; "within noise" when the mean
difference is smaller than its standard error times Student's t (95%, two-sided: 12.7 with 2
runs, 2.26 with 10, about 2 from 30 on).
"""

import json
import math
import sys
import time

import numpy as np

from . import cli
from .data import fold_rows, split_rows, take_targets
from .errors import DataError, OptionError, TrainingDiverged
from .heads import has_label
from .model import Model

# metric -> (label, higher is better); the first of each kind decides the verdict line's order
METRICS = {"classify": [("accuracy", "accuracy", True), ("macro_f1", "macro F1", True)],
           "regress": [("rmse", "RMSE", False), ("mae", "MAE", False), ("r2", "R^2", True)]}


def build_parser():
    parser = cli.Parser(
        prog="python -m tinymtl.compare",
        description="Compare one multi-task network with one single-task network per task, "
                    "over cross-validation folds and seeds, on the same data options as train.",
        epilog="With no arguments, compares on the bundled Iris data (species and petal_width).")
    cli.add_data_options(parser, held_out=False)
    cli.add_training_options(parser, transfer=False)
    group = parser.add_argument_group("comparison")
    group.add_argument("--folds", type=cli.at_least_two, default=5,
                       help="k of k-fold cross-validation (at least 2): every row is scored once per seed")
    group.add_argument("--seeds", type=cli.positive_int, default=1,
                       help="repeat the folds with this many seeds (--seed, --seed + 1, ...): "
                            "new folds, initial weights and batch order each time")
    output = parser.add_argument_group("output")
    output.add_argument("--format", choices=("table", "json"), default="table",
                        help="a readable table per task, or one JSON object")
    output.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


def compare(args, *, stdout=None, stderr=None):
    """Run the comparison as ``args`` say; print the report; return it as a dict."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    if args.val_fraction is not None and args.patience is None:
        raise OptionError("--val-fraction applies only with --patience: compare scores every "
                          "model on its fold's held-out rows")

    def say(text):
        if not args.quiet:
            print(text, file=stderr, flush=True)

    dataset = cli.load_dataset(args, rng=None, hold_out=False)  # the folds hold out rows
    table = dataset.table
    first_class = next((n for n, t in dataset.tasks.items() if t.kind == "classify"), None)
    strata = dataset.labels[first_class] if first_class else None
    scores = {name: {"multi_task": [], "single_task": []} for name in dataset.tasks}
    n_runs = args.folds * args.seeds
    say(f"{table.source}: {table.n_rows} rows; tasks: "
        + ", ".join(f"{name} ({task.kind})" for name, task in dataset.tasks.items())
        + f"; {args.folds} folds x {args.seeds} seed(s) = {n_runs} runs of "
        f"{1 + len(dataset.tasks)} models")
    run = 0
    for seed in range(args.seed, args.seed + args.seeds):
        folds = fold_rows(table.n_rows, args.folds, rng=np.random.default_rng(seed),
                          strata=strata, source=table.source)
        for fold, (train_rows, test_rows) in enumerate(folds, start=1):
            run += 1
            start = time.perf_counter()
            where = f"seed {seed}, fold {fold}"
            results = run_fold(args, dataset, train_rows, test_rows, seed=seed, fold=fold, where=where)
            for name, (multi, single) in results.items():
                scores[name]["multi_task"].append(multi)
                scores[name]["single_task"].append(single)
            say(f"run {run}/{n_runs} ({where}): "
                + "  ".join(_primary(name, dataset.tasks[name].kind, *pair) for name, pair in results.items())
                + f"  ({time.perf_counter() - start:.1f} s)")

    report = summarise(args, dataset, scores)
    if args.format == "json":
        json.dump(report, stdout, indent=2)
        stdout.write("\n")
    else:
        for line in format_report(report):
            print(line, file=stdout)
    return report


def _primary(name, kind, multi, single):
    """'species accuracy 0.95 (multi) / 0.93 (single)': a run's first metric, for progress."""
    key, label, _ = METRICS[kind][0]
    shown = ["n/a" if m[key] is None else f"{m[key]:.4g}" for m in (multi, single)]
    return f"{name} {label} {shown[0]} (multi) / {shown[1]} (single)"


def stopping_fraction(args):
    """The share of each fold's training rows that --patience watches; None without it."""
    if args.patience is None:
        return None
    return cli.DEFAULT_VAL_FRACTION if args.val_fraction is None else args.val_fraction


def run_fold(args, dataset, train_rows, test_rows, *, seed, fold, where):
    """Train the multi-task model and every single-task model on ``train_rows``; score them on
    ``test_rows``. Returns {task: (multi-task metrics, single-task metrics)}."""
    fit_rows, val_rows = train_rows, None
    if args.patience is not None:  # early stopping watches a validation split of the training rows
        first_class = next((n for n, t in dataset.tasks.items() if t.kind == "classify"), None)
        strata = dataset.labels[first_class][train_rows] if first_class else None
        inner_fit, inner_val = split_rows(len(train_rows), stopping_fraction(args), strata=strata,
                                          rng=np.random.default_rng([seed, fold, 1]),
                                          source=f"{dataset.table.source} ({where})")
        fit_rows, val_rows = train_rows[inner_fit], train_rows[inner_val]
    data = dataset.split(fit_rows, test_rows, where)  # features, targets scaled on fit rows only
    features = cli.fit_features(data)
    balance = cli.network_options(args, data)
    test_labels = take_targets(data.labels, test_rows)

    def fit_and_score(tasks, options, label):
        # The same seed for every model of a run: the same initial trunk and batch order.
        model = Model.build(features, tasks, hidden=cli.hidden_of(args),
                            rng=np.random.default_rng([seed, fold]), **options)
        X = model.inputs(data.table)
        targets = model.targets({name: data.labels[name] for name in tasks})
        model.check_targets_fit(data.table, targets)
        validation = None if val_rows is None else (X[val_rows], take_targets(targets, val_rows))
        if validation is not None and not any(map(has_label, validation[1].values())):
            raise DataError(f"{label} ({where}): its {len(val_rows)} validation rows for "
                            f"--patience hold no label of {', '.join(tasks)}; raise "
                            f"--val-fraction or drop --patience")
        try:
            model.network.fit(X[fit_rows], take_targets(targets, fit_rows), **cli.fit_options(args),
                              validation=validation)
        except TrainingDiverged as err:
            if not data.target_scaling and any(t.kind == "regress" for t in tasks.values()):
                err = f"{err}, or drop --no-target-scaling"
            raise TrainingDiverged(f"{label} ({where}): {err}") from None
        return model.evaluate(X[test_rows], {name: test_labels[name] for name in tasks},
                              where=lambda i: data.table.where(test_rows[i]))

    multi = fit_and_score(data.tasks, balance, "the multi-task model")
    results = {}
    for name, task in data.tasks.items():
        options = {"class_weights": {name: balance["class_weights"][name]}
                   if name in balance["class_weights"] else {}}
        single = fit_and_score({name: task}, options, f"the single-task model for {name}")
        results[name] = (multi[name], single[name])
    return results


# Student's t, two-sided 95%, for 1..30 degrees of freedom; 2.0 beyond (1.96 in the limit)
_T_95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_critical(df):
    """How many standard errors a mean difference of df + 1 paired runs must reach to count as
    more than noise (95%, two-sided): with 2 runs a standard error is itself a wild guess."""
    return _T_95[df - 1] if df <= len(_T_95) else 2.0


def verdict(diffs, higher):
    """(better model, within noise) from the paired differences multi - single of one metric:
    "tie" at a mean of 0, and within noise when |mean| < t * standard error (one run: never)."""
    d_mean, d_std = _stats(diffs)
    if d_mean is None or d_mean == 0:
        better = "tie"
    else:
        better = "multi-task" if (d_mean > 0) == higher else "single-task"
    n = len([d for d in diffs if d is not None and math.isfinite(d)])
    noise = d_std is not None and n > 1 and abs(d_mean) < t_critical(n - 1) * d_std / math.sqrt(n)
    return better, bool(noise)


def _stats(values):
    """mean and sample standard deviation (0 for one value) of the finite values, or None."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def summarise(args, dataset, scores):
    """The report as JSON-able dict: per task and metric, both models' runs and the verdict."""
    tasks = {}
    for name, task in dataset.tasks.items():
        entries = {}
        for key, label, higher in METRICS[task.kind]:
            multi = [s[key] for s in scores[name]["multi_task"]]
            single = [s[key] for s in scores[name]["single_task"]]
            diffs = [m - s for m, s in zip(multi, single) if m is not None and s is not None]
            d_mean, d_std = _stats(diffs)
            better, noise = verdict(diffs, higher)
            m_mean, m_std = _stats(multi)
            s_mean, s_std = _stats(single)
            entries[key] = {"label": label, "higher_is_better": higher,
                            "multi_task": {"mean": m_mean, "std": m_std, "values": multi},
                            "single_task": {"mean": s_mean, "std": s_std, "values": single},
                            "difference": {"mean": d_mean, "std": d_std},
                            "better": better, "within_noise": noise}
        tasks[name] = {"kind": task.kind, "metrics": entries}
    return {"source": dataset.table.source, "n_rows": int(dataset.table.n_rows),
            "folds": args.folds, "seeds": list(range(args.seed, args.seed + args.seeds)),
            "runs": args.folds * args.seeds,
            "training": {"hidden": list(cli.hidden_of(args)), "epochs": args.epochs,
                         "batch_size": args.batch_size, "lr": args.lr,
                         "lr_schedule": args.lr_schedule, "momentum": args.momentum,
                         "weight_decay": args.weight_decay, "patience": args.patience,
                         "val_fraction": stopping_fraction(args),
                         "weighting": args.weighting, "target_scaling": dataset.target_scaling},
            "tasks": tasks}


def format_report(report):
    """The readable table: a block per task, a line per metric."""
    t = report["training"]
    hidden = ",".join(map(str, t["hidden"])) or "none"
    lines = [f"multi-task vs single-task on {report['source']} ({report['n_rows']} rows): "
             f"{report['folds']} folds x {len(report['seeds'])} seed(s) = {report['runs']} runs, "
             f"mean +/- sample std over runs",
             f"every model: trunk {hidden}, {t['epochs']} epochs"
             + (f" (patience {t['patience']})" if t["patience"] else "")
             + f", batch {t['batch_size']}, lr {t['lr']:g} ({t['lr_schedule']}); "
               f"multi-task weighting {t['weighting']}"]

    def pm(stats):
        return "n/a" if stats["mean"] is None else f"{stats['mean']:.4f} +/- {stats['std']:.4f}"

    for name, task in report["tasks"].items():
        lines += ["", f"{name} ({task['kind']})",
                  f"  {'metric':<9} {'multi-task':<19} {'single-task':<19} "
                  f"{'difference (MTL - single)':<26} better"]
        for entry in task["metrics"].values():
            direction = "higher" if entry["higher_is_better"] else "lower"
            verdict = entry["better"]
            if verdict != "tie":
                verdict += f" ({direction} is better" + (", within noise)" if entry["within_noise"] else ")")
            diff = pm(entry["difference"])
            if entry["difference"]["mean"] is not None:
                diff = f"{entry['difference']['mean']:+.4f} +/- {entry['difference']['std']:.4f}"
            lines.append(f"  {entry['label']:<9} {pm(entry['multi_task']):<19} "
                         f"{pm(entry['single_task']):<19} {diff:<26} {verdict}")
    return lines


def main(argv=None):
    return cli.run(build_parser(), argv, compare)


if __name__ == "__main__":
    sys.exit(main())
