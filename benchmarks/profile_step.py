"""Where a tinymtl training step spends its time: cProfile of ``MultiTaskNet.fit``.

Runs ``fit`` under cProfile on the small workload (many epochs) and on the large one (one epoch),
float32, 1 thread (in a subprocess with the thread variables set), and prints every function's
own time (``tottime``) and time including callees (``cumtime``) in microseconds *per step*, with
its calls per step. NumPy ufuncs such as ``np.matmul`` and ``np.add`` are not Python functions,
so cProfile charges their time to the tinymtl function that called them; NumPy functions written
in Python (``np.sum``, ``np.take``...) appear on their own lines.

An unprofiled run gives the true step time, since cProfile itself adds time to every call.

    python benchmarks/profile_step.py
"""

import cProfile
import os
import pstats
import sys
import time

import _common as c


def worker(job):
    import numpy as np
    dtype = np.dtype(job["dtype"])
    spec = c.workload_spec(job["workload"], quick=job["quick"])
    epochs = job["epochs"] or (2000 if job["workload"] == "small" else 1)
    if job["quick"]:
        epochs = max(1, epochs // 10)
    X, labels, value = c.make_data(spec, dtype)
    targets = {c.TASK_CLASSIFY: labels, c.TASK_REGRESS: value}
    net, fit_kwargs, _ = c.tinymtl_net(spec, dtype, threads=job["threads"])
    kw = dict(batch_size=spec["batch_size"], lr=spec["lr"], **fit_kwargs)
    net.fit(X, targets, epochs=1, **kw)  # warm-up
    steps = epochs * -(-X.shape[0] // spec["batch_size"])
    t0 = time.perf_counter()
    net.fit(X, targets, epochs=epochs, **kw)
    plain = (time.perf_counter() - t0) / steps
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.runcall(net.fit, X, targets, epochs=epochs, **kw)
    profiled = (time.perf_counter() - t0) / steps
    stats = pstats.Stats(prof)
    rows = []
    for (file, line, func), (cc, nc, tt, ct, _) in stats.stats.items():
        where = f"{os.path.basename(file)}:{line}({func})" if line else func
        rows.append({"function": where, "calls_per_step": nc / steps, "tottime_us": tt / steps * 1e6,
                     "cumtime_us": ct / steps * 1e6})
    rows.sort(key=lambda r: -r["tottime_us"])
    return {"steps": steps, "step_us": plain * 1e6, "profiled_step_us": profiled * 1e6, "rows": rows}


def main(argv=None):
    parser = c.base_parser("python benchmarks/profile_step.py",
                           "cProfile of tinymtl's fit, per training step.", default_rounds=1)
    parser.add_argument("--workloads", default="small,large", help="comma-separated small, large")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--threads", type=c.positive_int, default=1, help="BLAS threads")
    parser.add_argument("--epochs", type=c.positive_int, default=None,
                        help="epochs profiled (default 2000 small, 1 large)")
    parser.add_argument("--top", type=c.positive_int, default=25, help="functions listed")
    args = parser.parse_args(argv)
    if c.serve_worker(args, worker):
        return 0
    script = os.path.abspath(__file__)
    report = {}
    for w in [w for w in args.workloads.split(",") if w]:
        report[w] = c.run_worker(script, {"workload": w, "dtype": args.dtype, "threads": args.threads,
                                          "epochs": args.epochs, "quick": args.quick},
                                 args.threads, args.keep_openblas_env, quiet=c.quiet_args(args))
    if args.json:
        import json
        print(json.dumps(report, indent=2))
        return 0
    print(f"tinymtl: {c.tinymtl_origin()}")
    print(c.contention(list(report.values())))
    for w, r in report.items():
        print(f"\n# {w} workload, {args.dtype}, {args.threads} thread(s): {r['steps']} steps; "
              f"step {r['step_us']:.1f} us unprofiled, {r['profiled_step_us']:.1f} us under cProfile")
        rows = [[x["function"][:70], f"{x['calls_per_step']:.2f}", f"{x['tottime_us']:.2f}",
                 f"{x['cumtime_us']:.2f}"] for x in r["rows"][:args.top]]
        print(c.table(["function", "calls/step", "own us/step", "incl. us/step"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
