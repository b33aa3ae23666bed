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

A second reference is the smallest NumPy program that does the same SGD step: straight-line
code on buffers made once (the bias trick, a random-row gather per batch, one ReLU mask per
layer, a fused softmax-cross-entropy, one update of one flat parameter vector), no classes, no
checks, no options. Its epoch, over the same rows, shows what tinymtl's structure costs on top
of the arithmetic.

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


def minimal_program(spec, np, dtype, X, labels, value, lr, start=None):
    """The smallest straight-line NumPy SGD program for the workload's step.

    Returns (step, Ws): ``step(rows)`` trains on those rows of the data (a full batch), ``Ws``
    the live [W; b] blocks, from ``start`` (a list of [W; b] arrays) when given.
    """
    batch, k = spec["batch_size"], spec["n_classes"]
    if spec["n_regress"] != 1:
        raise ValueError("minimal_program is written for one regression output")
    widths = (spec["n_features"], *spec["hidden"], k + spec["n_regress"])
    rng = np.random.default_rng(0)
    shapes = [(n_in + 1, n_out) for n_in, n_out in zip(widths[:-1], widths[1:])]  # [W; b]
    sizes = [a * b for a, b in shapes]
    params, grads = np.zeros(sum(sizes), dtype), np.zeros(sum(sizes), dtype)
    update = np.empty_like(params)
    offsets = np.cumsum([0, *sizes])
    Ws = [params[o:o + n].reshape(sh) for o, n, sh in zip(offsets, sizes, shapes)]
    Gs = [grads[o:o + n].reshape(sh) for o, n, sh in zip(offsets, sizes, shapes)]
    for i, (W, (n_in1, n_out)) in enumerate(zip(Ws, shapes)):
        W[:-1] = rng.standard_normal((n_in1 - 1, n_out)) * np.sqrt(2.0 / (n_in1 - 1))
        if start is not None:
            W[...] = start[i]
    acts = [np.ones((batch, w + 1), dtype) for w in widths[:-1]]  # input, hidden: ones column last
    grad_acts = [np.zeros((batch, w + 1), dtype) for w in widths[1:-1]]
    positive = [np.empty((batch, w + 1), bool) for w in widths[1:-1]]
    slope = [np.empty((batch, w + 1), dtype) for w in widths[1:-1]]
    logits = np.empty((widths[-1], batch), dtype).T  # class by class, as tinymtl
    grad_logits = np.empty((widths[-1], batch), dtype).T
    x_batch, y_batch = np.empty((batch, widths[0]), dtype), np.empty(batch, np.int64)
    t_batch = np.empty(batch, dtype)
    largest, sums, scale = (np.empty(batch, dtype) for _ in range(3))
    spread = np.empty((batch, k), dtype, order="F")
    true_index = np.empty(batch, np.intp)
    class_offset, rows = np.arange(k) * batch, np.arange(batch)
    depth = len(widths) - 2

    def step(idx):
        X.take(idx, axis=0, out=x_batch, mode="wrap")
        labels.take(idx, out=y_batch, mode="wrap")
        value.take(idx, out=t_batch, mode="wrap")
        np.copyto(acts[0][:, :-1], x_batch)
        for i in range(depth):  # forward: z = [h, 1] @ [W; b], then ReLU in place
            h = acts[i + 1]
            np.matmul(acts[i], Ws[i], out=h[:, :-1])
            np.greater(h, 0, out=positive[i])
            np.copyto(slope[i], positive[i])
            np.multiply(h, slope[i], out=h)
        np.matmul(acts[-1], Ws[-1], out=logits)
        z, g = logits[:, :k], grad_logits[:, :k]  # softmax cross-entropy, mean over the batch
        np.maximum.reduce(z, axis=1, out=largest)
        np.copyto(g, largest[:, None])
        np.subtract(z, g, out=g)
        flat = g.ravel(order="K")
        np.add(class_offset.take(y_batch, mode="wrap"), rows, out=true_index)
        true_shifted = flat.take(true_index, mode="wrap")
        np.exp(g, out=g)
        np.add.reduce(g, axis=1, out=sums)
        loss = (float(np.log(sums).sum()) - float(true_shifted.sum())) / batch
        np.divide(1.0 / batch, sums, out=scale)
        np.copyto(spread, scale[:, None])
        g *= spread
        true_grad = flat.take(true_index, mode="wrap")
        true_grad -= 1.0 / batch
        flat.put(true_index, true_grad, mode="wrap")
        d = grad_logits[:, k]  # mean squared error of the regression column
        np.subtract(logits[:, k], t_batch, out=d)
        loss += float(np.vdot(d, d)) / batch
        d *= 2.0 / batch
        if not np.isfinite(loss):
            raise FloatingPointError("the minimal step diverged")
        grad_out = grad_logits  # backward
        for i in reversed(range(depth + 1)):
            np.matmul(acts[i].T, grad_out, out=Gs[i])
            if i:
                np.matmul(grad_out, Ws[i][:-1].T, out=grad_acts[i - 1][:, :-1])
                np.multiply(grad_acts[i - 1], slope[i - 1], out=grad_acts[i - 1])
                grad_out = grad_acts[i - 1][:, :-1]
        np.multiply(grads, lr, out=update)
        np.subtract(params, update, out=params)

    return step, Ws


def minimal_epoch(spec, np, dtype, X, labels, value, lr, warm_batches=20):
    """Seconds per step of ``minimal_program`` over the rows in a random order (full batches
    only: the last, shorter one is dropped), after a warm-up of ``warm_batches``."""
    batch = spec["batch_size"]
    step, _ = minimal_program(spec, np, dtype, X, labels, value, lr)
    order = np.random.default_rng(1).permutation(X.shape[0])
    n_steps = X.shape[0] // batch
    for s in range(min(warm_batches, n_steps)):
        step(order[s * batch:(s + 1) * batch])
    order = np.random.default_rng(2).permutation(X.shape[0])
    t0 = time.perf_counter()
    for s in range(n_steps):
        step(order[s * batch:(s + 1) * batch])
    return (time.perf_counter() - t0) / n_steps


def minimal_check(spec, np, X, labels, value, n_batches=10, seed=3):
    """Largest |difference| between the parameters after ``n_batches`` float64 steps of the
    minimal program and of tinymtl's fit, from the same weights over the same rows in the same
    order: the minimal program is the same computation."""
    batch, dtype = spec["batch_size"], np.float64
    n = n_batches * batch
    X, labels, value = X[:n].astype(dtype), labels[:n], value[:n].astype(dtype)
    net, fit_kwargs, _ = c.tinymtl_net(spec, dtype, threads=1)
    layers = [*net.trunk, net.head_layer]
    step, Ws = minimal_program(spec, np, dtype, X, labels, value, spec["lr"],
                               start=[layer.Wb for layer in layers])
    net.fit(X, {c.TASK_CLASSIFY: labels, c.TASK_REGRESS: value}, epochs=1, batch_size=batch,
            lr=spec["lr"], rng=np.random.default_rng(seed), **fit_kwargs)
    order = np.random.default_rng(seed).permutation(n)
    for s in range(n_batches):
        step(order[s * batch:(s + 1) * batch])
    return max(float(np.max(np.abs(W - layer.Wb))) for W, layer in zip(Ws, layers))


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
    minimal = minimal_epoch(spec, np, dtype, X, labels, value, spec["lr"])
    out = {"gemm": gemm, "other": other, "epoch_sec": epoch, "steps": steps, "minimal_step_sec": minimal,
           "minimal_check": minimal_check(spec, np, X, labels, value),
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
        minimal = c.summary([r["minimal_step_sec"] for r in rs])
        report["threads"][t] = {"gemm": gemm, "other": other, "bound_sec": bound, "tinymtl_step_sec": step_s,
                                "fraction": bound["median"] / step_s["median"],
                                "minimal_step_sec": minimal,
                                "minimal_check_max_diff": max(r["minimal_check"] for r in rs),
                                "minimal_fraction": bound["median"] / minimal["median"],
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
        m = rep["minimal_step_sec"]
        rows.append(["minimal straight-line NumPy step", c.fmt_time(m["median"]), c.fmt_time(m["min"]),
                     c.fmt_time(m["max"]), ""])
        print(c.table(["product (np.matmul, out=)", "median", "min", "max", "GFLOP/s"], rows))
        print(f"tinymtl reaches {rep['fraction']:.1%} of the GEMM bound "
              f"(step - bound = {c.fmt_time(s['median'] - b['median'])} of non-GEMM time); "
              f"the minimal step reaches {rep['minimal_fraction']:.1%}, and tinymtl's step takes "
              f"{s['median'] / m['median']:.3f}x its time")
        print(f"(the minimal program is the same computation: after 10 float64 steps from the same "
              f"weights over the same rows, its parameters differ from tinymtl's by at most "
              f"{rep['minimal_check_max_diff']:.1e})")
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
