"""The machine's matmul limit for one training step of the large workload, and how close tinymtl gets.

One SGD step of the large workload (batch 128, 64 -> 256 -> 256 -> 10 + 1 logits) does eight
matrix products: three forward (x @ W), three weight gradients (x.T @ grad_out) and two input
gradients (grad_out @ W.T; the first layer's input is the data and needs none). Each is timed
alone with NumPy (``np.matmul(..., out=)``, the layouts tinymtl uses) in float32, with 1 and 2
BLAS threads, each thread count in its own subprocess. Their sum is a lower bound on a step's time
for any NumPy implementation; tinymtl's step time is one ``fit`` epoch over the rows divided by
the number of steps, and the fraction it reaches is bound / step.

The element-wise work of a step (bias adds, ReLU, softmax-cross-entropy, bias gradients, the SGD
update) is timed the same way and shown apart: it is not in the bound.

    python benchmarks/gemm_limit.py --rounds 5
"""

import os
import sys
import time

import _common as c


def _per_call(fn, min_time=0.02):
    return c.per_call(fn, min_time)


def step_products(spec, np, dtype, batch):
    """The step's products, as (name, (m, k, n), callable) with preallocated operands."""
    rng = np.random.default_rng(0)
    widths = (spec["n_features"], *spec["hidden"], spec["n_classes"] + spec["n_regress"])

    def arr(*shape):
        return rng.standard_normal(shape).astype(dtype)

    layers = []
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        layers.append({"x": arr(batch, n_in), "W": arr(n_in, n_out), "out": np.empty((batch, n_out), dtype),
                       "grad_out": arr(batch, n_out), "grad_W": np.empty((n_in, n_out), dtype),
                       "grad_x": np.empty((batch, n_in), dtype)})
    ops = []
    for i, L in enumerate(layers):
        n_in, n_out = L["W"].shape
        ops.append((f"fwd   layer {i}: x{L['x'].shape} @ W{L['W'].shape}", (batch, n_in, n_out),
                    lambda L=L: np.matmul(L["x"], L["W"], out=L["out"])))
    for i, L in reversed(list(enumerate(layers))):
        n_in, n_out = L["W"].shape
        ops.append((f"gradW layer {i}: x.T{L['x'].T.shape} @ g{L['grad_out'].shape}", (n_in, batch, n_out),
                    lambda L=L: np.matmul(L["x"].T, L["grad_out"], out=L["grad_W"])))
        if i > 0:
            ops.append((f"gradx layer {i}: g{L['grad_out'].shape} @ W.T{L['W'].T.shape}",
                        (batch, n_out, n_in),
                        lambda L=L: np.matmul(L["grad_out"], L["W"].T, out=L["grad_x"])))
    return ops, layers


def elementwise_ops(spec, np, dtype, batch, layers):
    """The non-GEMM NumPy work of one step at the same shapes (informative, not in the bound)."""
    n_params = sum(L["W"].size + L["W"].shape[1] for L in layers)
    p, g, u = (np.ones(n_params, dtype) for _ in range(3))
    k = spec["n_classes"]
    labels = np.random.default_rng(1).integers(0, k, batch)
    rows = np.arange(batch)
    logits = layers[-1]["out"]
    b = [np.zeros(L["W"].shape[1], dtype) for L in layers]
    masks = [np.empty(L["out"].shape, bool) for L in layers[:-1]]

    def softmax_ce():
        z = logits[:, :k]
        out = np.subtract(z, z.max(axis=1, keepdims=True), out=layers[-1]["grad_out"][:, :k])
        out -= np.log(np.exp(out).sum(axis=1, keepdims=True))
        float(out[rows, labels].sum())
        np.exp(out, out=out)
        out[rows, labels] -= 1.0
        out /= batch

    ops = [("bias add (all layers)",
            lambda: [np.add(L["out"], bb, out=L["out"]) for L, bb in zip(layers, b)]),
           ("ReLU forward: mask + maximum", lambda: [(np.greater(L["out"], 0, out=m),
                                                      np.maximum(L["out"], 0, out=L["out"]))
                                                     for L, m in zip(layers, masks)]),
           ("ReLU backward: grad * mask", lambda: [np.multiply(L["grad_out"], m, out=L["grad_out"])
                                                   for L, m in zip(layers, masks)]),
           ("bias gradients: sum over batch", lambda: [np.sum(L["grad_out"], axis=0, out=bb)
                                                       for L, bb in zip(layers, b)]),
           ("softmax cross-entropy + grad", softmax_ce),
           (f"SGD update ({n_params} params)",
            lambda: (np.multiply(g, 0.01, out=u), np.subtract(p, u, out=p)))]
    return ops


def worker(job):
    import numpy as np
    dtype = np.dtype(job["dtype"])
    spec = c.workload_spec("large", quick=job["quick"])
    batch = spec["batch_size"]
    ops, layers = step_products(spec, np, dtype, batch)
    gemm = []
    for name, (m, k, n), fn in ops:
        sec = _per_call(fn)
        gemm.append({"name": name, "mkn": [m, k, n], "sec": sec, "gflops": 2 * m * k * n / sec / 1e9})
    other = [{"name": name, "sec": _per_call(fn)}
             for name, fn in elementwise_ops(spec, np, dtype, batch, layers)]

    X, labels, value = c.make_data(spec, dtype)
    net, fit_kwargs, how = c.tinymtl_net(spec, dtype, threads=job["threads"])
    targets = {c.TASK_CLASSIFY: labels, c.TASK_REGRESS: value}
    n_warm = 20 * batch
    net.fit(X[:n_warm], {k: v[:n_warm] for k, v in targets.items()}, epochs=1, batch_size=batch,
            lr=spec["lr"], **fit_kwargs)
    t0 = time.perf_counter()
    net.fit(X, targets, epochs=1, batch_size=batch, lr=spec["lr"], **fit_kwargs)
    epoch = time.perf_counter() - t0
    steps = -(-X.shape[0] // batch)
    out = {"gemm": gemm, "other": other, "epoch_sec": epoch, "steps": steps,
           "threads_via": how, "blas": c.blas_info()}
    return out


def main(argv=None):
    parser = c.base_parser("python benchmarks/gemm_limit.py",
                           "GEMM lower bound for one large-workload step, and tinymtl's fraction of it.")
    parser.add_argument("--threads", type=c.int_list, default=[1, 2], help="comma-separated thread counts")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    args = parser.parse_args(argv)
    if c.serve_worker(args, worker):
        return 0

    rounds = c.resolve_rounds(args)
    script = os.path.abspath(__file__)
    runs = {t: [] for t in args.threads}
    c.log(f"gemm_limit: {rounds} round(s); {c.openblas_env_note(args.keep_openblas_env)}")
    for r in range(rounds):
        for t in args.threads:
            c.log(f"round {r + 1}/{rounds}: {t} thread(s)")
            runs[t].append(c.run_worker(script, {"threads": t, "dtype": args.dtype, "quick": args.quick},
                                        t, args.keep_openblas_env, quiet=c.quiet_args(args)))

    report = {"dtype": args.dtype, "rounds": rounds, "tinymtl": c.tinymtl_origin(),
              "openblas_env": c.openblas_env_note(args.keep_openblas_env),
              "contention": c.contention([r for rs in runs.values() for r in rs]), "threads": {}}
    for t, rs in runs.items():
        names = [g["name"] for g in rs[0]["gemm"]]
        gemm = []
        for j, name in enumerate(names):
            s = c.summary([r["gemm"][j]["sec"] for r in rs])
            m, k, n = rs[0]["gemm"][j]["mkn"]
            gemm.append({"name": name, "mkn": [m, k, n], "sec": s,
                         "gflops": 2 * m * k * n / s["median"] / 1e9})
        other = [{"name": o["name"], "sec": c.summary([r["other"][j]["sec"] for r in rs])}
                 for j, o in enumerate(rs[0]["other"])]
        bounds = [sum(r["gemm"][j]["sec"] for j in range(len(names))) for r in rs]
        step = [r["epoch_sec"] / r["steps"] for r in rs]
        bound, step_s = c.summary(bounds), c.summary(step)
        report["threads"][t] = {"gemm": gemm, "other": other, "bound_sec": bound, "tinymtl_step_sec": step_s,
                                "fraction": bound["median"] / step_s["median"],
                                "other_sum_sec": sum(o["sec"]["median"] for o in other),
                                "steps": rs[0]["steps"], "threads_via": rs[0]["threads_via"],
                                "blas": rs[0]["blas"]}
    ts = report["threads"]
    if 1 in ts:
        f = ts[1]["fraction"]
        report["target_fraction_1t"] = {"value": f, "goal": 0.8, "met": f >= 0.8}
    if 1 in ts and 2 in ts:
        sp = ts[1]["tinymtl_step_sec"]["median"] / ts[2]["tinymtl_step_sec"]["median"]
        report["speedup_2t_over_1t"] = {"value": sp, "goal": 1.3, "met": sp >= 1.3}
        report["ideal_2core_bound_sec"] = ts[1]["bound_sec"]["median"] / 2
    if args.json:
        import json
        print(json.dumps(report, indent=2))
        return 0

    print(f"# gemm_limit: {args.dtype}, large workload step (batch 128), "
          f"median [min, max] of {rounds} round(s)")
    print(f"OpenBLAS env: {report['openblas_env']}")
    print(f"tinymtl: {c.tinymtl_origin()}")
    print(report["contention"])
    for t, rep in ts.items():
        print(f"\n## {t} thread(s)   (tinymtl threads via: {rep['threads_via']})")
        rows = [[g["name"], c.fmt_time(g["sec"]["median"]), c.fmt_time(g["sec"]["min"]),
                 c.fmt_time(g["sec"]["max"]), f"{g['gflops']:.1f}"] for g in rep["gemm"]]
        b, s = rep["bound_sec"], rep["tinymtl_step_sec"]
        rows.append(["GEMM bound (sum)", c.fmt_time(b["median"]), c.fmt_time(b["min"]),
                     c.fmt_time(b["max"]), ""])
        rows.append([f"tinymtl step (epoch / {rep['steps']})", c.fmt_time(s["median"]), c.fmt_time(s["min"]),
                     c.fmt_time(s["max"]), ""])
        print(c.table(["product (np.matmul, out=)", "median", "min", "max", "GFLOP/s"], rows))
        print(f"tinymtl reaches {rep['fraction']:.1%} of the GEMM bound "
              f"(step - bound = {c.fmt_time(s['median'] - b['median'])} of non-GEMM time)")
        print("element-wise work of a step, timed alone (not in the bound):")
        print(c.table(["op", "median"], [[o["name"], c.fmt_time(o["sec"]["median"])] for o in rep["other"]]
                      + [["sum", c.fmt_time(rep["other_sum_sec"])]]))
        for line in c.describe_blas(rep["blas"]):
            print(f"BLAS: {line}")
    print("\n## Targets (issue 5)")
    if "target_fraction_1t" in report:
        f = report["target_fraction_1t"]
        print(f"1 thread: tinymtl reaches {f['value']:.1%} of the GEMM bound (goal >= 80%) "
              f"{c.verdict(f['met'])}")
    if "speedup_2t_over_1t" in report:
        f = report["speedup_2t_over_1t"]
        print(f"tinymtl 2 threads vs 1: {f['value']:.2f}x (goal >= 1.3x) {c.verdict(f['met'])}")
        print(f"ideal 2-core bound (1-thread products split over two cores): "
              f"{c.fmt_time(report['ideal_2core_bound_sec'])} per step; "
              f"2-thread BLAS bound: {c.fmt_time(ts[2]['bound_sec']['median'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
