"""Task weighting when one target's scale drowns the others: python benchmarks/weighting.py

The problem (6 standard-normal features x0..x5, generated with a fixed seed):

    big   = 1000 (sin x0 + 0.5 x1) + N(0, 100^2)     regression, values in the thousands
    small = x2 x3 + 0.5 x4 + N(0, 0.1^2)              regression, values near 1
    cls   = (x4 + x5 x2 > 0)                          classification, two balanced classes

trained as `python -m tinymtl.train --no-target-scaling --weighting METHOD`: with the targets left
in their units, big's squared error (about 1e6) is a million times the others' losses, so with
equal fixed weights its gradient is nearly all the trunk sees.

Fair protocol: every method gets the same network (trunk 32,32), budget (60 epochs, batch 32),
optimizer (SGD, momentum 0.9, no weight decay) and seeds, and its own best learning rate from the
grid LRS, chosen on the validation split (20% of the training CSV) by the mean over seeds of a
balanced score: the mean over the three tasks of R^2 (regression, clipped at -1) and 2 accuracy - 1
(classification; 0 is chance, like R^2 = 0). The chosen models are then scored on a separate test
CSV. A diverged run scores -1 on every task. As a reference, the same search for fixed weights
with standardised targets (train's default) shows what scaling alone does.

    python benchmarks/weighting.py            # 3 seeds, the full grid (about 2 minutes on 2 cores)
    python benchmarks/weighting.py --quick    # 1 seed, 2 rates, 8 epochs: a smoke run
    python benchmarks/weighting.py --json     # the results as JSON on stdout
"""

import argparse
import concurrent.futures
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per process: --jobs runs them side by side

from tinymtl import TrainingDiverged, train  # noqa: E402
from tinymtl.data import read_csv  # noqa: E402

METHODS = ["fixed", "uncertainty", "gradnorm", "dwa", "pcgrad"]
REFERENCE = "fixed, targets scaled"  # fixed weights with train's default standardisation
LRS = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2]
TASKS = {"big": "regress", "small": "regress", "cls": "classify"}
FULL = {"seeds": 3, "epochs": 60, "lrs": LRS, "n_train": 2000, "n_test": 1000}
QUICK = {"seeds": 1, "epochs": 8, "lrs": [1e-5, 1e-3], "n_train": 600, "n_test": 300}


def make_csv(path, n_rows, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_rows, 6))
    big = 1000 * (np.sin(x[:, 0]) + 0.5 * x[:, 1]) + rng.normal(0, 100, n_rows)
    small = x[:, 2] * x[:, 3] + 0.5 * x[:, 4] + rng.normal(0, 0.1, n_rows)
    cls = np.where(x[:, 4] + x[:, 5] * x[:, 2] > 0, "pos", "neg")
    with open(path, "w") as f:
        f.write("x0,x1,x2,x3,x4,x5,big,small,cls\n")
        for row, b, s, c in zip(x, big, small, cls):
            f.write(",".join(f"{v:.5f}" for v in row) + f",{b:.3f},{s:.5f},{c}\n")


def task_scores(metrics):
    """{task: R^2 or accuracy} from a model's metrics."""
    return {name: metrics[name]["r2"] if kind == "regress" else metrics[name]["accuracy"]
            for name, kind in TASKS.items()}


def balanced_score(scores):
    """Mean over tasks of R^2 (clipped at -1) and 2 accuracy - 1: 0 is chance for each."""
    parts = [max(scores[n], -1.0) if kind == "regress" else 2 * scores[n] - 1
             for n, kind in TASKS.items()]
    return sum(parts) / len(parts)


def run_one(job):
    """Train one model through the train command; score it on validation and test rows."""
    method, lr, seed, epochs, folder = job
    train_csv, test_csv = Path(folder, "train.csv"), Path(folder, "test.csv")
    out = Path(folder, f"{method.replace(', ', '-').replace(' ', '-')}-{lr:g}-{seed}.npz")
    history = out.with_suffix(".csv")
    argv = ["--csv", str(train_csv), "--regress", "big", "--regress", "small", "--classify", "cls",
            "--hidden", "32,32", "--epochs", str(epochs), "--batch-size", "32", "--lr", str(lr),
            "--lr-schedule", "constant",  # as when the table in the README was measured
            "--momentum", "0.9", "--weight-decay", "0", "--val-fraction", "0.2",
            "--seed", str(seed), "--quiet", "--out", str(out), "--history", str(history)]
    if method == REFERENCE:
        argv += ["--weighting", "fixed"]
    else:
        argv += ["--weighting", method, "--no-target-scaling"]
    args = train.build_parser().parse_args(argv)
    try:
        model = train.train(args, stdout=io.StringIO())
    except TrainingDiverged:
        return {"method": method, "lr": lr, "seed": seed, "diverged": True}
    table = read_csv(test_csv)
    test = model.evaluate(model.inputs(table), model.labels(table))
    with open(history) as f:
        first = dict(zip(f.readline().strip().split(","), f.readline().strip().split(",")))
    return {"method": method, "lr": lr, "seed": seed, "diverged": False,
            "val": task_scores(model.metrics), "test": task_scores(test),
            "weights_epoch_1": {n: float(first[f"{n}.weight"]) for n in TASKS},
            "weights_final": model.network.weighting.current_weights()}


def mean_std(values):
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def run(settings, jobs):
    methods = [*METHODS, REFERENCE]
    seeds = list(range(settings["seeds"]))
    with tempfile.TemporaryDirectory() as folder:
        make_csv(Path(folder, "train.csv"), settings["n_train"], seed=100)
        make_csv(Path(folder, "test.csv"), settings["n_test"], seed=200)
        work = [(m, lr, s, settings["epochs"], folder) for m in methods for lr in settings["lrs"]
                for s in seeds]
        if jobs == 1:
            results = [run_one(job) for job in work]
        else:
            with concurrent.futures.ProcessPoolExecutor(jobs) as pool:
                results = list(pool.map(run_one, work))

    grid = {}  # (method, lr) -> mean validation balanced score over seeds
    for m in methods:
        for lr in settings["lrs"]:
            runs = [r for r in results if r["method"] == m and r["lr"] == lr]
            scores = [-1.0 if r["diverged"] else balanced_score(r["val"]) for r in runs]
            grid[m, lr] = {"score": float(np.mean(scores)),
                           "diverged": sum(r["diverged"] for r in runs)}
    table = []
    for m in methods:
        best_lr = max(settings["lrs"], key=lambda lr: grid[m, lr]["score"])
        runs = [r for r in results if r["method"] == m and r["lr"] == best_lr and not r["diverged"]]
        row = {"method": m, "lr": best_lr, "runs": len(runs), "seeds": len(seeds)}
        if runs:
            for n in TASKS:
                row[n] = mean_std([r["test"][n] for r in runs])
            row["score"] = mean_std([balanced_score(r["test"]) for r in runs])
            row["weights_final"] = {n: float(np.mean([r["weights_final"][n] for r in runs]))
                                    for n in TASKS}
        table.append(row)
    uncertainty = {lr: [r["weights_epoch_1"] for r in results if r["method"] == "uncertainty"
                        and r["lr"] == lr and not r["diverged"]] for lr in settings["lrs"]}
    return {"settings": {k: v for k, v in settings.items()}, "grid": {f"{m} @ {lr:g}": v
                                                                    for (m, lr), v in grid.items()},
            "table": table, "uncertainty_weights_after_epoch_1": {f"{lr:g}": w for lr, w in uncertainty.items()},
            "raw": results}


def print_report(report):
    s = report["settings"]
    methods = [*METHODS, REFERENCE]
    print(f"weighting benchmark: {s['n_train']} training rows (20% validation), {s['n_test']} test "
          f"rows; trunk 32,32, {s['epochs']} epochs, batch 32, SGD momentum 0.9; "
          f"{s['seeds']} seed(s); targets in their units except the last row")
    print("\nvalidation balanced score (mean over seeds; 0 = chance, 1 = perfect; D = diverged runs)")
    print(f"  {'method':<22}" + "".join(f"{'lr ' + format(lr, 'g'):>12}" for lr in s["lrs"]))
    for m in methods:
        cells = []
        for lr in s["lrs"]:
            g = report["grid"][f"{m} @ {lr:g}"]
            cells.append(f"{g['score']:.3f}" + (f" {g['diverged']}D" if g["diverged"] else ""))
        print(f"  {m:<22}" + "".join(f"{c:>12}" for c in cells))
    print("\ntest metrics at each method's best learning rate (mean +/- std over seeds)")
    print(f"  {'method':<22} {'lr':>6}  {'big R^2':>15}  {'small R^2':>15}  {'cls accuracy':>15}"
          f"  {'score':>6}  final weights big/small/cls")
    for row in report["table"]:
        if not row["runs"]:
            print(f"  {row['method']:<22} {row['lr']:>6g}  every run diverged")
            continue
        cells = [f"{row[n][0]:.3f} +/- {row[n][1]:.3f}" for n in TASKS]
        w = row["weights_final"]
        print(f"  {row['method']:<22} {row['lr']:>6g}  " + "  ".join(f"{c:>15}" for c in cells)
              + f"  {row['score'][0]:>6.3f}  {w['big']:.3g} / {w['small']:.3g} / {w['cls']:.3g}")
    print("\nuncertainty: task weights c exp(-s) after the first epoch, by learning rate (seed 0)")
    for lr, weights in report["uncertainty_weights_after_epoch_1"].items():
        if weights:
            w = weights[0]
            print(f"  lr {lr:>6}: big {w['big']:.3g}  small {w['small']:.3g}  cls {w['cls']:.3g}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 seed, 2 rates, 8 epochs")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="runs trained at once (processes)")
    args = parser.parse_args(argv)
    report = run(QUICK if args.quick else FULL, max(1, args.jobs))
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
