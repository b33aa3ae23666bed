"""Transfer learning: does a pretrained trunk help learn a new task from k labelled rows?

    python benchmarks/transfer.py                # 10 seeds, k = 5, 10, 20, 50, 100
    python benchmarks/transfer.py --quick        # smoke run: 2 seeds, fewer rows
    python benchmarks/transfer.py --json         # one JSON document on stdout

The tasks come from a synthetic family built so that transfer *should* help: every task reads
the same hidden nonlinear features of the inputs,

    x ~ N(0, I) in R^10,   phi(x) = tanh(x @ A) in R^6   (A random, shared by the family)
    task t: class = argmax(phi(x) @ V_t)                  (V_t random, one per task)

The source task (8 classes, so its logits span all of phi) has many rows; the target task
(3 classes, its own V) has k labelled rows. A trunk that learned phi from the source only has to
learn a linear head for the target; from scratch, the network must find phi from k rows.

For each seed (a new family: A, V_source, V_target, data and initial weights all drawn from
it): pretrain a 10 -> 64 -> 64 trunk on the source, then for every k train the target three ways
with the same optimiser, lr, batch size and number of steps:

    scratch     a fresh network of the same shape
    frozen      the source trunk, frozen (fit(freeze=["trunk"])), a new head
    fine-tuned  the source trunk trained at trunk_lr = lr / 10, a new head

and score accuracy on held-out target rows. The tables print mean +- std and [min, max] over
seeds, and in how many seeds each transfer beat scratch. This is the same code path as
``python -m tinymtl.train --from MODEL --freeze-trunk | --trunk-lr`` (MultiTaskNet.with_heads,
fit(freeze=, trunk_lr=)), without the CSV handling.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import tinymtl

N_INPUTS, N_HIDDEN_FEATURES, SOURCE_CLASSES, TARGET_CLASSES = 10, 6, 8, 3
HIDDEN = (64, 64)
FULL = dict(seeds=10, ks=(5, 10, 20, 50, 100), source_rows=20_000, source_epochs=20, test_rows=5_000)
QUICK = dict(seeds=2, ks=(10, 50), source_rows=4_000, source_epochs=5, test_rows=1_000)
LR, MOMENTUM, WEIGHT_DECAY, TARGET_STEPS = 0.05, 0.9, 1e-3, 300
METHODS = ("scratch", "frozen", "fine-tuned")


def family(seed):
    """(sample(n, task, rng) -> (X, y), names): a family of tasks sharing phi(x) = tanh(x @ A)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((N_INPUTS, N_HIDDEN_FEATURES)) * (1.5 / np.sqrt(N_INPUTS))
    V = {"source": rng.standard_normal((N_HIDDEN_FEATURES, SOURCE_CLASSES)),
         "target": rng.standard_normal((N_HIDDEN_FEATURES, TARGET_CLASSES))}

    def sample(n_rows, task, data_rng):
        X = data_rng.standard_normal((n_rows, N_INPUTS)).astype(np.float32)
        return X, np.argmax(np.tanh(X @ A) @ V[task], axis=1)

    return sample


def accuracy(net, task, X, y):
    return float(np.mean(net.predict(X)[task].argmax(axis=1) == y))


def run_seed(seed, config):
    """Pretrain on the source, then learn the target from k rows three ways; {k: {method: acc}}."""
    sample = family(seed)
    data_rng, init_rng = np.random.default_rng(seed + 1000).spawn(2)
    X_source, y_source = sample(config["source_rows"], "source", data_rng)
    X_test, y_test = sample(config["test_rows"], "target", data_rng)
    X_source_test, y_source_test = sample(config["test_rows"], "source", data_rng)
    pretrained = tinymtl.MultiTaskNet(N_INPUTS, HIDDEN, {"source": tinymtl.Classify(SOURCE_CLASSES)},
                                      rng=init_rng.spawn(1)[0])
    start = time.perf_counter()
    pretrained.fit(X_source, {"source": y_source}, epochs=config["source_epochs"], batch_size=64,
                   lr=LR, lr_schedule="constant", momentum=MOMENTUM, weight_decay=WEIGHT_DECAY,
                   threads=1)
    result = {"seed": seed, "source_accuracy": accuracy(pretrained, "source", X_source_test, y_source_test),
              "pretrain_seconds": time.perf_counter() - start,
              "target_majority": float(np.bincount(y_test).max() / len(y_test)), "k": {}}
    for k in config["ks"]:
        X, y = sample(k, "target", data_rng)
        batch_size = min(16, k)
        epochs = max(1, round(TARGET_STEPS * batch_size / k))  # about the same number of steps for every k
        head = {"target": tinymtl.Classify(TARGET_CLASSES)}
        head_seed = int(init_rng.integers(2**31))
        nets = {"scratch": tinymtl.MultiTaskNet(N_INPUTS, HIDDEN, head, seed=head_seed),
                "frozen": pretrained.with_heads(head, seed=head_seed),
                "fine-tuned": pretrained.with_heads(head, seed=head_seed)}
        options = {"scratch": {}, "frozen": {"freeze": ["trunk"]}, "fine-tuned": {"trunk_lr": LR / 10}}
        scores = {}
        for method, net in nets.items():
            net.fit(X, {"target": y}, epochs=epochs, batch_size=batch_size, lr=LR, momentum=MOMENTUM,
                    lr_schedule="constant", weight_decay=WEIGHT_DECAY, threads=1, **options[method])
            scores[method] = accuracy(net, "target", X_test, y_test)
        result["k"][k] = scores
    return result


def summarise(values):
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def summary(results, ks):
    table = {}
    for k in ks:
        row = {m: summarise([r["k"][k][m] for r in results]) for m in METHODS}
        for m in ("frozen", "fine-tuned"):
            row[m]["beats_scratch"] = sum(r["k"][k][m] > r["k"][k]["scratch"] for r in results)
        table[k] = row
    return table


def tinymtl_origin():
    folder = Path(tinymtl.__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(folder), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return f"{folder} (git {commit})"


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def k_list(text):
    try:
        ks = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected row counts such as 5,10,20, got {text!r}") from None
    if any(k < 1 for k in ks):
        raise argparse.ArgumentTypeError(f"row counts must be >= 1, got {text!r}")
    return ks


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python benchmarks/transfer.py", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--seeds", type=positive_int, help=f"families drawn (default {FULL['seeds']}, "
                                                           f"{QUICK['seeds']} with --quick)")
    parser.add_argument("--k", type=k_list, help="labelled target rows, comma-separated (default "
                                                 f"{','.join(map(str, FULL['ks']))})")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 seeds, fewer rows and epochs")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout instead of tables")
    args = parser.parse_args(argv)
    config = dict(QUICK if args.quick else FULL)
    if args.seeds:
        config["seeds"] = args.seeds
    if args.k:
        config["ks"] = args.k

    results = []
    for seed in range(config["seeds"]):
        results.append(run_seed(seed, config))
        print(f"seed {seed}: source accuracy {results[-1]['source_accuracy']:.3f} "
              f"(pretrained in {results[-1]['pretrain_seconds']:.1f} s)", file=sys.stderr, flush=True)
    table = summary(results, config["ks"])
    source = summarise([r["source_accuracy"] for r in results])
    majority = summarise([r["target_majority"] for r in results])
    if args.json:
        json.dump({"tinymtl": tinymtl_origin(), "config": {**config, "hidden": HIDDEN, "lr": LR,
                   "trunk_lr_fine_tuned": LR / 10, "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY,
                   "target_steps": TARGET_STEPS}, "source_accuracy": source,
                   "target_majority_class": majority, "accuracy": table, "per_seed": results},
                  sys.stdout, indent=2)
        print()
        return 0
    print(f"tinymtl: {tinymtl_origin()}")
    print(f"Synthetic family where transfer should help: every task is argmax(tanh(x @ A) @ V_task), "
          f"x in R^{N_INPUTS}, {N_HIDDEN_FEATURES} shared hidden features.")
    print(f"Source: {SOURCE_CLASSES} classes, {config['source_rows']} rows, {config['source_epochs']} "
          f"epochs; held-out accuracy {source['mean']:.3f} +- {source['std']:.3f}. Target: "
          f"{TARGET_CLASSES} classes from k rows, ~{TARGET_STEPS} SGD steps, lr {LR} (fine-tuned "
          f"trunk {LR / 10}), momentum {MOMENTUM}, weight decay {WEIGHT_DECAY}, trunk {HIDDEN}.")
    print(f"Target accuracy on {config['test_rows']} held-out rows, over {config['seeds']} seeds: "
          f"mean +- std [min, max]; majority class {majority['mean']:.3f}.")
    print()
    print(f"{'k':>5}  " + "  ".join(f"{m:<28}" for m in METHODS) + "  beats scratch (frozen, fine-tuned)")
    for k, row in table.items():
        cells = [f"{row[m]['mean']:.3f} +- {row[m]['std']:.3f} [{row[m]['min']:.2f}, {row[m]['max']:.2f}]"
                 for m in METHODS]
        print(f"{k:>5}  " + "  ".join(f"{c:<28}" for c in cells)
              + f"  {row['frozen']['beats_scratch']}/{config['seeds']}, "
                f"{row['fine-tuned']['beats_scratch']}/{config['seeds']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
