"""CSV reading speed: tinymtl's reader against numpy.loadtxt and pandas.read_csv.

A 60,000 x 65 numeric file (64 float features and an integer class column, with a header row)
is written into a temporary directory, the features in the format ``--format`` names: "%.6g" by
default, "%.18e" (numpy.savetxt's default), "repr" (Python's shortest round-trip text, 17
digits), or any printf float format. Each reader loads it in its own subprocess (1 thread),
rounds interleaved, and the result is rows per second (median, min, max).

tinymtl's reader, ``tinymtl.data.read_csv(path)``, returns a ``Table`` of text cells; the training
command turns columns into numbers later. Both are timed: "read_csv (text)" alone, and
"read_csv + numbers", which also converts every column with ``tinymtl.data.numeric_column``
(the per-column conversion the training command uses), the fair match for loadtxt and pandas,
which return numbers. The numbers are checked against numpy.loadtxt's.

    python benchmarks/csv_speed.py --rounds 5
    python benchmarks/csv_speed.py --rounds 3 --format %.18e
"""

import argparse
import os
import sys
import tempfile
import time

import _common as c

N_ROWS, N_FEATURES = 60_000, 64


def number_format(text):
    """--format: "repr", or a printf format of one float such as "%.6g" or "%.18e"."""
    if text == "repr":
        return text
    try:
        text % 1.5
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(
            f'expected "repr" or a float format such as %.6g, got {text!r}') from None
    return text


def write_csv(path, n_rows, number_format="%.6g", seed=7):
    import numpy as np
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, N_FEATURES))
    y = rng.integers(0, 10, n_rows)
    header = ",".join([f"x{i}" for i in range(N_FEATURES)] + ["y"])
    with open(path, "w", newline="") as f:
        f.write(header + "\n")
        if number_format == "repr":
            for row, label in zip(X.tolist(), y.tolist()):
                f.write(",".join(map(repr, row)) + f",{label}\n")
        else:
            fmt = ",".join([number_format] * N_FEATURES) + ",%d"
            for row, label in zip(X, y):
                f.write(fmt % (*row, label) + "\n")


def tinymtl_reader():
    """(read, to_numbers) from tinymtl.data, or (None, why) when it is not there yet."""
    try:
        from tinymtl import data
    except ImportError as err:
        return None, f"tinymtl.data cannot be imported ({err}): tinymtl's reader skipped"
    read = getattr(data, "read_csv", None)
    if read is None:
        return None, "tinymtl.data has no read_csv(path): tinymtl's reader skipped"
    if hasattr(data, "numeric_column"):
        def to_numbers(table):
            import numpy as np
            return np.column_stack([data.numeric_column(table, name, what="feature")
                                    for name in table.names])
    else:
        def to_numbers(table):
            import numpy as np
            cells = getattr(table, "cells", table)
            return np.asarray(cells, dtype=np.float64)
    return (read, to_numbers), None


def worker(job):
    import numpy as np
    path, impl = job["path"], job["impl"]
    if impl == "numpy.loadtxt":
        fn = lambda: np.loadtxt(path, delimiter=",", skiprows=1)
    elif impl == "pandas.read_csv":
        import pandas as pd
        fn = lambda: pd.read_csv(path).to_numpy()
    else:
        (read, to_numbers), _ = tinymtl_reader()
        fn = (lambda: read(path)) if impl == "tinymtl read_csv (text)" else (lambda: to_numbers(read(path)))
    t0 = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - t0
    out = {"sec": elapsed}
    if job.get("check") and isinstance(result, np.ndarray) and result.dtype.kind == "f":
        ref = np.loadtxt(path, delimiter=",", skiprows=1)
        out["max_abs_diff_vs_loadtxt"] = (float(np.max(np.abs(result - ref)))
                                          if result.shape == ref.shape else f"shape {result.shape}")
    return out


def main(argv=None):
    parser = c.base_parser("python benchmarks/csv_speed.py",
                           "Rows/s reading a 60,000 x 65 numeric CSV: tinymtl vs numpy.loadtxt vs pandas.")
    parser.add_argument("--rows", type=c.positive_int, default=N_ROWS, help="data rows in the file")
    parser.add_argument("--format", type=number_format, default="%.6g",
                        help='how the features are written: "repr", or a printf float format '
                             '("%%.18e" is numpy.savetxt\'s default)')
    args = parser.parse_args(argv)
    if c.serve_worker(args, worker, threads=1):
        return 0

    rounds = c.resolve_rounds(args)
    n_rows = 6_000 if args.quick and args.rows == N_ROWS else args.rows
    impls, skipped = ["numpy.loadtxt"], []
    if c.have("pandas"):
        impls.append("pandas.read_csv")
    else:
        skipped.append("pandas not installed: pandas.read_csv skipped")
    reader, why = tinymtl_reader()
    if reader is None:
        skipped.append(why)
    else:
        impls += ["tinymtl read_csv (text)", "tinymtl read_csv + numbers"]
    for s in skipped:
        c.log(s)

    script = os.path.abspath(__file__)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.csv")
        c.log(f"writing {n_rows} x {N_FEATURES + 1} CSV ({args.format}) to {path}")
        write_csv(path, n_rows, args.format)
        size = os.path.getsize(path)
        secs = {i: [] for i in impls}
        checks, all_runs = {}, []
        for r in range(rounds):
            for impl in impls:
                c.log(f"round {r + 1}/{rounds}: {impl}")
                res = c.run_worker(script, {"path": path, "impl": impl, "check": r == 0}, 1,
                                   args.keep_openblas_env, quiet=c.quiet_args(args))
                secs[impl].append(res["sec"])
                all_runs.append(res)
                if "max_abs_diff_vs_loadtxt" in res:
                    checks[impl] = res["max_abs_diff_vs_loadtxt"]

    results = []
    for impl in impls:
        s = c.summary(secs[impl])
        results.append({"impl": impl, "sec": s, "rows_per_sec": n_rows / s["median"],
                        "rows_per_sec_min": n_rows / s["max"], "rows_per_sec_max": n_rows / s["min"],
                        "max_abs_diff_vs_loadtxt": checks.get(impl)})
    ref = results[0]["rows_per_sec"]
    target = None
    numbers = next((r for r in results if r["impl"] == "tinymtl read_csv + numbers"), None)
    if numbers:
        ratio = numbers["rows_per_sec"] / ref
        target = {"value": ratio, "goal": 1.0, "met": ratio >= 1.0}
    report = {"tinymtl": c.tinymtl_origin(), "contention": c.contention(all_runs), "rows": n_rows,
              "columns": N_FEATURES + 1, "format": args.format, "file_bytes": size, "rounds": rounds,
              "skipped": skipped, "results": results, "target_vs_loadtxt": target}
    if args.json:
        import json
        print(json.dumps(report, indent=2))
        return 0 if reader is not None else 0

    print(f"# csv_speed: {n_rows:,} x {N_FEATURES + 1} numeric CSV ({size / 1e6:.1f} MB, "
          f"features as {args.format}), 1 thread, "
          f"median [min, max] of {rounds} round(s)")
    print(f"tinymtl: {c.tinymtl_origin()}")
    print(report["contention"])
    for s in skipped:
        print(f"SKIPPED: {s}")
    rows = [[r["impl"], c.fmt_time(r["sec"]["median"]), f"{r['rows_per_sec']:,.0f}",
             f"[{r['rows_per_sec_min']:,.0f}, {r['rows_per_sec_max']:,.0f}]",
             f"{r['rows_per_sec'] / ref:.2f}x",
             "-" if r["max_abs_diff_vs_loadtxt"] is None else (
                 f"{r['max_abs_diff_vs_loadtxt']:.1e}" if isinstance(r["max_abs_diff_vs_loadtxt"], float)
                 else r["max_abs_diff_vs_loadtxt"])]
            for r in results]
    print(c.table(["reader", "time", "rows/s", "[min, max]", "vs loadtxt", "max |diff| vs loadtxt"], rows))
    print("\n## Target (issue 5)")
    if target:
        print(f"tinymtl read_csv + numbers: {target['value']:.2f}x numpy.loadtxt's rows/s (goal >= 1.0x) "
              f"{c.verdict(target['met'])}")
    else:
        print("tinymtl's reader not measured (see SKIPPED)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
