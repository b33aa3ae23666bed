"""Memory: peak traced memory while training the large workload, and what a step allocates.

tracemalloc sees NumPy's array buffers as well as Python objects. Three measurements, each run in
a subprocess (1 thread) with tracemalloc started before the data is made:

1. Peak during ``fit(epochs=1)`` (first call, then a second "warm" call) against the memory the
   training really needs: data + parameters + parameter gradients + one batch's activations
   (every layer's output) and their gradients. Goal (issue 5): peak <= 1.25x that.
   A snapshot taken from ``fit``'s per-epoch callback lists the largest arrays alive during
   training, by the line that made them.
2. ``fit(epochs=1)`` on the warm network, peak minus baseline: every byte ``fit`` needs beyond
   what the caller already holds, per call.
3. Per step, after warm-up: a line tracer (sys.settrace on tinymtl's own files) records, for every
   line of tinymtl that runs, the peak memory it added while it ran. Lines that run once per step
   or more are the step's lines; the run is repeated at batch 128 and at batch 512, and a line
   whose allocation grows with the batch allocates an array of batch size.

    python benchmarks/memory.py
"""

import gc
import os
import sys

import _common as c

BATCHES = (128, 512)   # for the batch-dependence test of measurement 3
TRACED_STEPS = 20


def _expected(net, spec, X, labels, value, batch):
    """Bytes of data, parameters, their gradients, and one batch's activations and gradients."""
    import numpy as np
    item = np.dtype(net.dtype).itemsize
    data = X.nbytes + labels.nbytes + value.nbytes
    params = sum(p.nbytes for p in net.parameters().values())
    widths = (*spec["hidden"], spec["n_classes"] + spec["n_regress"])
    activations = sum(batch * w * item for w in widths)  # each Dense layer's output
    return {"data": data, "parameters": params, "parameter_gradients": params,
            "batch_activations": activations, "batch_activation_gradients": activations}


class LineAllocations:
    """sys.settrace profiler: peak bytes added by each executed line of files under ``root``."""

    def __init__(self, root):
        self.root = root
        self.stats = {}  # (file, line) -> [executions, total bytes, max bytes]
        self.key = None
        self.start = 0

    def _account(self):
        import tracemalloc
        if self.key is not None:
            delta = max(0, tracemalloc.get_traced_memory()[1] - self.start)
            s = self.stats.get(self.key)
            if s is None:
                s = self.stats[self.key] = [0, 0, 0]
            s[0] += 1
            s[1] += delta
            if delta > s[2]:
                s[2] = delta
        tracemalloc.reset_peak()
        self.start = tracemalloc.get_traced_memory()[0]

    def _global(self, frame, event, arg):
        if not frame.f_code.co_filename.startswith(self.root):
            return None
        self._account()  # what the caller's line allocated up to the call (its arguments)
        self.key = None
        return self._local

    def _local(self, frame, event, arg):
        if event == "line":
            self._account()
            self.key = (frame.f_code.co_filename, frame.f_lineno)
        elif event == "return":
            self._account()
            caller = frame.f_back
            self.key = ((caller.f_code.co_filename, caller.f_lineno)
                        if caller is not None and caller.f_code.co_filename.startswith(self.root)
                        else None)
        return self._local

    def run(self, fn):
        import tracemalloc
        self.stats, self.key = {}, None
        tracemalloc.reset_peak()
        self.start = tracemalloc.get_traced_memory()[0]
        sys.settrace(self._global)
        try:
            fn()
        finally:
            sys.settrace(None)
        return self.stats


def _source(file, line):
    import linecache
    return linecache.getline(file, line).strip()


def worker(job):
    import tracemalloc
    import numpy as np
    import tinymtl  # imported before tracing starts: module objects are not counted
    dtype = np.dtype(job["dtype"])
    spec = c.workload_spec("large", quick=job["quick"])
    batch, lr = spec["batch_size"], spec["lr"]
    out = {}

    # 1 + 2: peak during fit against what training needs
    tracemalloc.start(1)
    X, labels, value = c.make_data(spec, dtype)
    targets = {c.TASK_CLASSIFY: labels, c.TASK_REGRESS: value}
    net, fit_kwargs, _ = c.tinymtl_net(spec, dtype, threads=1)
    gc.collect()
    baseline = tracemalloc.get_traced_memory()[0]
    during = {}

    def callback(epoch, history):
        if "snapshot" not in during:
            during["snapshot"] = tracemalloc.take_snapshot()

    tracemalloc.reset_peak()
    net.fit(X, targets, epochs=1, batch_size=batch, lr=lr, **fit_kwargs)  # first call: cold
    cold_peak = tracemalloc.get_traced_memory()[1]
    gc.collect()
    after_cold = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    net.fit(X, targets, epochs=1, batch_size=batch, lr=lr, **fit_kwargs)  # second call: warm
    gc.collect()
    warm_current, warm_peak = tracemalloc.get_traced_memory()
    expected = _expected(net, spec, X, labels, value, batch)

    # Where the bytes are: a fresh network, snapshots before fit, in fit's per-epoch callback
    # and after fit returns (snapshots take memory themselves: they come after the measured calls).
    del net
    gc.collect()
    net, fit_kwargs, _ = c.tinymtl_net(spec, dtype, threads=1)
    gc.collect()
    before = tracemalloc.take_snapshot()
    net.fit(X, targets, epochs=1, batch_size=batch, lr=lr, callback=callback, **fit_kwargs)
    gc.collect()
    after = tracemalloc.take_snapshot()

    def biggest(snapshot):
        rows = []
        for stat in snapshot.compare_to(before, "lineno")[:8]:
            if stat.size_diff < 1000:
                continue
            frame = stat.traceback[0]
            rows.append({"where": f"{os.path.basename(frame.filename)}:{frame.lineno}",
                         "code": _source(frame.filename, frame.lineno), "bytes": stat.size_diff})
        return rows
    top, kept = biggest(during["snapshot"]), biggest(after)
    out.update(baseline=baseline, cold_peak=cold_peak, warm_peak=warm_peak,
               retained_after_cold=after_cold - baseline, retained_after_warm=warm_current - after_cold,
               expected=expected, expected_total=sum(expected.values()),
               alive_during_training=top, retained_after_fit=kept)
    tracemalloc.stop()
    del X, labels, value, targets, net
    gc.collect()

    # 3: per-line allocations of a warm training step, at two batch sizes
    tracemalloc.start(1)
    root = os.path.dirname(tinymtl.__file__)
    per_batch, steps = {}, {}
    for b in job["batches"]:
        # The first batch size trains on the whole data set (so per-call lines show their real
        # size); the others on TRACED_STEPS batches.
        n_rows = spec["n_rows"] if b == job["batches"][0] else TRACED_STEPS * b
        steps[b] = -(-n_rows // b)
        spec_b = dict(spec, n_rows=n_rows)
        X, labels, value = c.make_data(spec_b, dtype)
        targets = {c.TASK_CLASSIFY: labels, c.TASK_REGRESS: value}
        net, fit_kwargs, _ = c.tinymtl_net(spec_b, dtype, threads=1)
        net.fit(X, targets, epochs=1, batch_size=b, lr=lr, **fit_kwargs)  # warm-up
        tracer = LineAllocations(root)
        for _ in range(2):  # the second run is measured: the tracer's own dict is full by then
            stats = tracer.run(lambda: net.fit(X, targets, epochs=1, batch_size=b, lr=lr, **fit_kwargs))
        per_batch[b] = {f"{f}:{n}": s for (f, n), s in stats.items()}
    b0, b1 = job["batches"]
    lines = []
    per_call = []
    for key, (count, total, mx) in per_batch[b0].items():
        if count < steps[b0]:  # runs once per fit or per epoch, not per step
            f, n = key.rsplit(":", 1)
            per_call.append({"where": f"{os.path.basename(f)}:{n}", "code": _source(f, int(n)),
                             "runs": count, "max_bytes": mx})
            continue
        f, n = key.rsplit(":", 1)
        other = per_batch[b1].get(key, [count, 0, 0])
        mean0, mean1 = total / count, other[1] / max(other[0], 1)
        lines.append({"where": f"{os.path.basename(f)}:{n}", "code": _source(f, int(n)),
                      "runs_per_step": count / steps[b0], "bytes_per_run": mean0,
                      f"bytes_per_run_at_{b1}": mean1, "max_bytes": mx,
                      "grows_with_batch": mean1 - mean0 >= 0.5 * (b1 - b0)})
    lines.sort(key=lambda e: -e["bytes_per_run"] * e["runs_per_step"])
    per_call.sort(key=lambda e: -e["max_bytes"])
    out["per_call_lines"] = per_call[:8]
    out["step_lines"] = lines
    out["step_bytes"] = sum(e["bytes_per_run"] * e["runs_per_step"] for e in lines)
    out["step_bytes_batch_sized"] = sum(e["bytes_per_run"] * e["runs_per_step"]
                                        for e in lines if e["grows_with_batch"])
    out["batch_sized_lines"] = sum(e["grows_with_batch"] for e in lines)
    return out


def mb(n):
    return f"{n / 1e6:.2f} MB"


def main(argv=None):
    parser = c.base_parser("python benchmarks/memory.py",
                           "Peak memory of training the large workload, and allocations per step.",
                           default_rounds=1)
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--top", type=c.positive_int, default=15, help="step lines to list")
    args = parser.parse_args(argv)
    if c.serve_worker(args, worker, threads=1):
        return 0

    rounds = c.resolve_rounds(args, default=1)
    script = os.path.abspath(__file__)
    c.log(f"memory: {rounds} round(s); {c.openblas_env_note(args.keep_openblas_env)}")
    runs = [c.run_worker(script, {"dtype": args.dtype, "quick": args.quick, "batches": BATCHES},
                         1, args.keep_openblas_env, quiet=c.quiet_args(args)) for _ in range(rounds)]
    r = runs[0]
    peak = c.summary([x["cold_peak"] for x in runs])
    ratio = peak["median"] / r["expected_total"]
    report = {"dtype": args.dtype, "rounds": rounds, "tinymtl": c.tinymtl_origin(), "runs": runs,
              "peak": peak, "peak_ratio": ratio,
              "target_peak_ratio": {"value": ratio, "goal": 1.25, "met": ratio <= 1.25},
              "target_no_batch_sized_alloc": {"value": r["batch_sized_lines"], "goal": 0,
                                              "met": r["batch_sized_lines"] == 0}}
    if args.json:
        import json
        print(json.dumps(report, indent=2))
        return 0

    print(f"# memory: large workload, {args.dtype}, batch 128, tracemalloc, {rounds} round(s)")
    print(f"tinymtl: {c.tinymtl_origin()}")
    print("\n## 1. Peak during fit(epochs=1) against what training needs")
    rows = [[k.replace("_", " "), mb(v)] for k, v in r["expected"].items()]
    rows.append(["needed (sum)", mb(r["expected_total"])])
    rows.append(["baseline before fit (data + network)", mb(r["baseline"])])
    rows.append(["peak, first fit", f"{mb(peak['median'])} [{mb(peak['min'])}, {mb(peak['max'])}]"])
    rows.append(["peak, second (warm) fit", mb(r["warm_peak"])])
    print(c.table(["what", "bytes"], rows))
    print(f"peak / needed = {ratio:.2f} (goal <= 1.25) {c.verdict(ratio <= 1.25)}")
    print("what fit holds while it trains (snapshot in fit's callback minus one before fit):")
    print(c.table(["where", "size", "code"],
                  [[t["where"], mb(t["bytes"]), t["code"][:70]] for t in r["alive_during_training"]]))
    print("what is still alive after fit returns (snapshot after fit minus one before):")
    print(c.table(["where", "size", "code"],
                  [[t["where"], mb(t["bytes"]), t["code"][:70]] for t in r["retained_after_fit"]]))
    print("\n## 2. fit(epochs=1) on the warm network")
    print(f"peak - baseline = {mb(r['warm_peak'] - r['baseline'])} per fit call "
          f"(retained after the calls: {r['retained_after_cold']} B, then {r['retained_after_warm']} B)")
    print("the lines of one fit(epochs=1) call that allocate most (line tracer; peak bytes the "
          "line added while it ran, callees included):")
    print(c.table(["line", "runs", "peak added", "code"],
                  [[e["where"], e["runs"], mb(e["max_bytes"]), e["code"][:70]] for e in r["per_call_lines"]]))
    print(f"\n## 3. Allocations per training step after warm-up (line tracer, batches {BATCHES})")
    print(f"bytes allocated per step (sum over the step's lines of each line's peak): "
          f"{r['step_bytes']:.0f} B, of which in lines that grow with the batch: "
          f"{r['step_bytes_batch_sized']:.0f} B")
    print(f"lines allocating a batch-sized array: {r['batch_sized_lines']} (goal 0) "
          f"{c.verdict(r['batch_sized_lines'] == 0)}")
    b1 = BATCHES[1]
    rows = [[e["where"], f"{e['runs_per_step']:.0f}", f"{e['bytes_per_run']:.0f}",
             f"{e[f'bytes_per_run_at_{b1}']:.0f}", "yes" if e["grows_with_batch"] else "",
             e["code"][:60]] for e in r["step_lines"][:args.top] if e["bytes_per_run"] >= 1]
    print(c.table(["line", "runs/step", f"B/run @{BATCHES[0]}", f"B/run @{b1}", "batch-sized", "code"], rows))
    print("(small constant amounts, under ~150 B, are Python objects: views, floats, tuples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
