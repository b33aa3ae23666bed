"""Prediction speed: tinymtl's ``predict`` against PyTorch under ``torch.no_grad()``.

Same weights (tinymtl's initial weights copied into nn.Linear layers), float32, 1 thread by
default. Two numbers per implementation and network:

- latency of one row through the Python API: ``net.predict(x[:1])`` for tinymtl;
  ``model(torch.from_numpy(x[:1]))``, softmax on the class logits, ``.numpy()`` for PyTorch
  (both return class probabilities and regression values as NumPy arrays);
- throughput: rows per second predicting 100,000 rows in one call.

Each implementation x network x round runs in its own subprocess; rounds are interleaved.
Before timing, the PyTorch worker checks that both give the same outputs.

    python benchmarks/predict_speed.py --rounds 5
"""

import os
import sys

import _common as c

IMPLS = ("tinymtl", "torch")


def _per_call(fn, min_time=0.05):
    return c.per_call(fn, min_time)


def worker(job):
    import numpy as np
    dtype = np.dtype(job["dtype"])
    spec = dict(c.workload_spec(job["workload"]), n_rows=job["rows"])
    X, _, _ = c.make_data(spec, dtype)
    net, _, how = c.tinymtl_net(spec, dtype, threads=job["threads"])
    one = X[:1]
    out = {"threads_via": how}
    if job["impl"] == "tinymtl":
        latency = _per_call(lambda: net.predict(one))
        bulk = min(_per_call(lambda: net.predict(X), min_time=0.0) for _ in range(3))
    else:
        import torch
        torch.set_num_threads(job["threads"])
        model = c.torch_model(net, spec, torch.float32 if dtype == np.float32 else torch.float64)
        model.eval()

        def predict(x):
            with torch.no_grad():
                out = model(torch.from_numpy(x))
                return {c.TASK_CLASSIFY: torch.softmax(out[c.TASK_CLASSIFY], dim=1).numpy(),
                        c.TASK_REGRESS: out[c.TASK_REGRESS].numpy()}

        ours, theirs = net.predict(X[:1000]), predict(X[:1000])
        out["max_abs_diff_vs_tinymtl"] = max(float(np.max(np.abs(ours[k] - theirs[k]))) for k in ours)
        latency = _per_call(lambda: predict(one))
        bulk = min(_per_call(lambda: predict(X), min_time=0.0) for _ in range(3))
    out.update(latency_sec=latency, rows_per_sec=X.shape[0] / bulk, blas=c.blas_info())
    return out


def main(argv=None):
    parser = c.base_parser("python benchmarks/predict_speed.py",
                           "One-row predict latency and bulk rows/s: tinymtl vs PyTorch no_grad.")
    parser.add_argument("--workloads", default="large,small", help="networks: comma-separated small, large")
    parser.add_argument("--rows", type=c.positive_int, default=100_000, help="rows for the throughput test")
    parser.add_argument("--threads", type=c.positive_int, default=1, help="threads for both")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    args = parser.parse_args(argv)
    if c.serve_worker(args, worker):
        return 0

    rounds = c.resolve_rounds(args)
    rows = 10_000 if args.quick and args.rows == 100_000 else args.rows
    workloads = [w for w in args.workloads.split(",") if w]
    bad = [w for w in workloads if w not in c.WORKLOADS]
    if bad:
        parser.error(f"--workloads: unknown {bad}; expected some of {list(c.WORKLOADS)}")
    impls = list(IMPLS)
    skipped = None
    if not c.have("torch"):
        impls.remove("torch")
        skipped = "PyTorch not installed: comparison skipped"
        c.log(skipped)
    script = os.path.abspath(__file__)
    note = c.openblas_env_note(args.keep_openblas_env)
    c.log(f"predict_speed: {rounds} round(s); {note}")
    jobs = [{"impl": i, "workload": w, "rows": rows, "threads": args.threads, "dtype": args.dtype}
            for w in workloads for i in impls]
    res = {n: [] for n in range(len(jobs))}
    for r in range(rounds):
        for n, job in enumerate(jobs):
            c.log(f"round {r + 1}/{rounds}: {job['impl']} {job['workload']}")
            res[n].append(c.run_worker(script, job, args.threads, args.keep_openblas_env,
                                       quiet=c.quiet_args(args)))

    results = []
    for n, job in enumerate(jobs):
        results.append({**job, "latency_sec": c.summary([x["latency_sec"] for x in res[n]]),
                        "rows_per_sec": c.summary([x["rows_per_sec"] for x in res[n]]),
                        "max_abs_diff_vs_tinymtl": res[n][0].get("max_abs_diff_vs_tinymtl"),
                        "blas": res[n][0]["blas"]})

    def get(impl, w):
        return next((r for r in results if r["impl"] == impl and r["workload"] == w), None)

    target = []
    for w in workloads:
        t, p = get("tinymtl", w), get("torch", w)
        if t and p:
            ratio = t["rows_per_sec"]["median"] / p["rows_per_sec"]["median"]
            target.append({"workload": w, "throughput_ratio": ratio, "goal": 1.0, "met": ratio >= 1.0,
                           "latency_ratio": p["latency_sec"]["median"] / t["latency_sec"]["median"]})
    report = {"rounds": rounds, "rows": rows, "tinymtl": c.tinymtl_origin(),
              "contention": c.contention([x for rs in res.values() for x in rs]),
              "threads": args.threads, "dtype": args.dtype,
              "openblas_env": note, "skipped": skipped, "results": results, "targets": target}
    if args.json:
        import json
        print(json.dumps(report, indent=2))
        return 0

    print(f"# predict_speed: {args.dtype}, {args.threads} thread(s), median [min, max] of {rounds} round(s)")
    print(f"OpenBLAS env: {note}")
    print(f"tinymtl: {c.tinymtl_origin()}")
    print(report["contention"])
    if skipped:
        print(f"SKIPPED: {skipped}")
    table = []
    for r in results:
        L, R = r["latency_sec"], r["rows_per_sec"]
        table.append([f"{r['workload']} net", r["impl"], c.fmt_time(L["median"]),
                      f"[{c.fmt_time(L['min'])}, {c.fmt_time(L['max'])}]",
                      f"{R['median']:,.0f}", f"[{R['min']:,.0f}, {R['max']:,.0f}]"])
    print(c.table(["network", "impl", "1-row latency", "[min, max]", f"rows/s ({rows:,} rows)", "[min, max]"],
                  table))
    for r in results:
        if r["max_abs_diff_vs_tinymtl"] is not None:
            print(f"{r['workload']} net: max |torch - tinymtl| output difference = "
                  f"{r['max_abs_diff_vs_tinymtl']:.1e}")
    print("\n## Targets (issue 5)")
    for t in target:
        print(f"{t['workload']} net: tinymtl rows/s / PyTorch rows/s = {t['throughput_ratio']:.2f}x "
              f"(goal >= 1.0x) {c.verdict(t['met'])}; "
              f"one-row latency: tinymtl {t['latency_ratio']:.2f}x faster")
    for line in c.describe_blas(results[-1]["blas"]):
        print(f"BLAS: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
