"""Training speed: tinymtl against PyTorch eager and scikit-learn's MLPClassifier (issue 5).

The same multi-task network (same initial weights, same data, same batch order, plain SGD) is
trained by tinymtl's ``MultiTaskNet.fit`` and by a PyTorch eager loop (nn.Linear + ReLU,
cross_entropy + mse_loss, optim.SGD); MLPClassifier trains the classification task alone, as a
floor. Every implementation x workload x dtype x thread count runs in its own subprocess, with
OMP/OPENBLAS/MKL_NUM_THREADS (and torch.set_num_threads) set before import; the rounds are
interleaved (round r of every setting before round r + 1). Before timing, one tinymtl step and
one PyTorch step from the same float64 weights on the same batch must agree within 1e-10.

    python benchmarks/train_speed.py --rounds 5
"""

import os
import platform
import sys
import time

import _common as c

IMPLS = ("tinymtl", "torch", "sklearn")
CHECK_TOL = 1e-10


# ------------------------------------------------------------------------------------------
# Workers (run in a subprocess; thread variables are already in the environment)

def _targets(labels, value):
    return {c.TASK_CLASSIFY: labels, c.TASK_REGRESS: value}


def _torch_step_fn(model, opt, F):
    def step(xb, yb, tb):
        out = model(xb)
        loss_ce = F.cross_entropy(out[c.TASK_CLASSIFY], yb)
        loss_mse = F.mse_loss(out[c.TASK_REGRESS], tb)
        loss = loss_ce + loss_mse
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss_ce, loss_mse
    return step


def _torch_fit(model, opt, F, torch, X, labels, value, *, epochs, batch_size, rng):
    """PyTorch's twin of MultiTaskNet.fit: one permutation per epoch from ``rng``, one gather,
    then slices; per-task losses summed for the history as tinymtl does."""
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(labels)
    t_t = torch.from_numpy(value.reshape(-1, 1))
    n_rows = X.shape[0]
    step = _torch_step_fn(model, opt, F)
    history = {c.TASK_CLASSIFY: [], c.TASK_REGRESS: []}
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(n_rows))
        xe, ye, te = X_t.index_select(0, order), y_t.index_select(0, order), t_t.index_select(0, order)
        sums = [0.0, 0.0]
        for start in range(0, n_rows, batch_size):
            stop = min(start + batch_size, n_rows)
            loss_ce, loss_mse = step(xe[start:stop], ye[start:stop], te[start:stop])
            sums[0] += loss_ce.item() * (stop - start)
            sums[1] += loss_mse.item() * (stop - start)
        history[c.TASK_CLASSIFY].append(sums[0] / n_rows)
        history[c.TASK_REGRESS].append(sums[1] / n_rows)
    return history


def worker_check(job):
    """float64: one SGD step (and one shuffled epoch of 10 steps) in tinymtl and PyTorch."""
    import inspect
    import numpy as np
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(1)
    result = {}
    for name in job["workloads"]:
        spec = c.workload_spec(name, quick=True)
        X, labels, value = c.make_data(spec, np.float64)
        net, fit_kwargs, _ = c.tinymtl_net(spec, np.float64, threads=1)
        model = c.torch_model(net, spec, torch.float64, fused_head=job["fused_head"])
        before = max(float(np.max(np.abs(p - c.torch_parameters(model, spec, job["fused_head"])[k])))
                     for k, p in net.parameters().items())
        bs, lr = spec["batch_size"], spec["lr"]
        xb, yb, tb = X[:bs], labels[:bs], value[:bs]
        # tinymtl: fit on exactly one batch = one full-batch step (its shuffle leaves the mean alone).
        hist = net.fit(xb, _targets(yb, tb), epochs=1, batch_size=bs, lr=lr, **fit_kwargs)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        loss_ce, loss_mse = _torch_step_fn(model, opt, F)(
            torch.from_numpy(xb), torch.from_numpy(yb), torch.from_numpy(tb.reshape(-1, 1)))
        theirs = c.torch_parameters(model, spec, job["fused_head"])
        diffs = {k: float(np.max(np.abs(p - theirs[k]))) for k, p in net.parameters().items()}
        loss_diff = max(abs(hist[c.TASK_CLASSIFY][0] - loss_ce.item()),
                        abs(hist[c.TASK_REGRESS][0] - loss_mse.item()))
        entry = {"initial_copy_max_diff": before, "step_param_max_diff": diffs,
                 "step_max_diff": max(diffs.values()), "step_loss_diff": loss_diff}
        # One shuffled epoch of 10 batches from fresh copies: checks the batch order too.
        if "rng" in inspect.signature(net.fit).parameters:
            n10 = 10 * bs
            net2, fit_kwargs, _ = c.tinymtl_net(spec, np.float64, threads=1)
            model2 = c.torch_model(net2, spec, torch.float64, fused_head=job["fused_head"])
            net2.fit(X[:n10], _targets(labels[:n10], value[:n10]), epochs=1, batch_size=bs, lr=lr,
                     rng=np.random.default_rng(c.SHUFFLE_SEED), **fit_kwargs)
            opt2 = torch.optim.SGD(model2.parameters(), lr=lr)
            _torch_fit(model2, opt2, F, torch, X[:n10], labels[:n10], value[:n10], epochs=1,
                       batch_size=bs, rng=np.random.default_rng(c.SHUFFLE_SEED))
            theirs = c.torch_parameters(model2, spec, job["fused_head"])
            entry["epoch10_max_diff"] = max(float(np.max(np.abs(p - theirs[k])))
                                            for k, p in net2.parameters().items())
        else:
            entry["epoch10_max_diff"] = None
        entry["passed"] = (before == 0.0 and entry["step_max_diff"] < CHECK_TOL
                           and (entry["epoch10_max_diff"] is None
                                or entry["epoch10_max_diff"] < CHECK_TOL))
        result[name] = entry
    return result


def worker_time(job):
    """Time ``epochs`` epochs of one implementation after a short warm-up; seconds per epoch."""
    import inspect
    import numpy as np
    dtype = np.dtype(job["dtype"])
    spec = c.workload_spec(job["workload"], quick=job["quick"])
    X, labels, value = c.make_data(spec, dtype)
    bs, lr, epochs = spec["batch_size"], spec["lr"], spec["epochs"]
    n_warm = min(X.shape[0], 20 * bs)  # warm-up: buffers, BLAS threads, first-call costs
    steps = -(-X.shape[0] // bs)
    out = {"steps_per_epoch": steps, "epochs": epochs}

    if job["impl"] == "tinymtl":
        net, fit_kwargs, how = c.tinymtl_net(spec, dtype, threads=job["threads"])
        out["threads_via"] = how
        order_kwargs = ({"rng": np.random.default_rng(c.SHUFFLE_SEED)}
                        if "rng" in inspect.signature(net.fit).parameters else {})
        net.fit(X[:n_warm], _targets(labels[:n_warm], value[:n_warm]), epochs=1, batch_size=bs,
                lr=lr, **fit_kwargs)
        t0 = time.perf_counter()
        net.fit(X, _targets(labels, value), epochs=epochs, batch_size=bs, lr=lr, **order_kwargs,
                **fit_kwargs)
        elapsed = time.perf_counter() - t0

    elif job["impl"] == "torch":
        import torch
        import torch.nn.functional as F
        torch.set_num_threads(job["threads"])
        net, _, _ = c.tinymtl_net(spec, dtype)  # only for the initial weights
        torch_dtype = torch.float32 if dtype == np.float32 else torch.float64
        model = c.torch_model(net, spec, torch_dtype, fused_head=job["fused_head"])
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        _torch_fit(model, opt, F, torch, X[:n_warm], labels[:n_warm], value[:n_warm], epochs=1,
                   batch_size=bs, rng=np.random.default_rng(c.SHUFFLE_SEED))
        t0 = time.perf_counter()
        _torch_fit(model, opt, F, torch, X, labels, value, epochs=epochs, batch_size=bs,
                   rng=np.random.default_rng(c.SHUFFLE_SEED))
        elapsed = time.perf_counter() - t0

    elif job["impl"] == "sklearn":
        import warnings
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        def model(max_iter):
            return MLPClassifier(hidden_layer_sizes=spec["hidden"], activation="relu",
                                 solver="sgd", alpha=0.0, batch_size=bs, learning_rate="constant",
                                 learning_rate_init=lr, momentum=0.0, nesterovs_momentum=False,
                                 max_iter=max_iter, shuffle=True, random_state=c.INIT_SEED,
                                 tol=0.0, n_iter_no_change=max_iter + 1, early_stopping=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model(1).fit(X[:n_warm], labels[:n_warm])
            t0 = time.perf_counter()
            model(epochs).fit(X, labels)
            elapsed = time.perf_counter() - t0
    else:
        raise ValueError(job["impl"])

    out["sec_per_epoch"] = elapsed / epochs
    out["blas"] = c.blas_info()
    return out


# ------------------------------------------------------------------------------------------
# Parent: schedule, collect, print

def main(argv=None):
    parser = c.base_parser("python benchmarks/train_speed.py",
                           "Time per epoch of tinymtl vs PyTorch eager vs scikit-learn.")
    parser.add_argument("--workloads", default="small,large",
                        help="comma-separated subset of: small, large")
    parser.add_argument("--dtypes", default="float32,float64", help="comma-separated dtypes")
    parser.add_argument("--threads", type=c.int_list, default=[1, 2],
                        help="comma-separated thread counts")
    parser.add_argument("--impls", default=",".join(IMPLS),
                        help="comma-separated subset of: " + ", ".join(IMPLS))
    parser.add_argument("--torch-fused-head", action="store_true",
                        help="give PyTorch one nn.Linear for all heads (as tinymtl has) instead of "
                             "one per task")
    args = parser.parse_args(argv)
    if args.worker:
        import json
        job = json.loads(args.worker)
        c.worker_setup(job.get("threads", 1))
        result = worker_check(job) if job["kind"] == "check" else worker_time(job)
        print(json.dumps(result))
        return 0

    rounds = c.resolve_rounds(args)
    workloads = [w for w in args.workloads.split(",") if w]
    dtypes = [d for d in args.dtypes.split(",") if d]
    impls = [i for i in args.impls.split(",") if i]
    for label, values, allowed in (("--workloads", workloads, c.WORKLOADS),
                                   ("--dtypes", dtypes, ("float32", "float64")),
                                   ("--impls", impls, IMPLS)):
        bad = [v for v in values if v not in allowed]
        if bad:
            parser.error(f"{label}: unknown {bad}; expected some of {list(allowed)}")
    skipped = {}
    if "torch" in impls and not c.have("torch"):
        impls.remove("torch"); skipped["torch"] = "PyTorch not installed: comparison skipped"
    if "sklearn" in impls and not c.have("sklearn"):
        impls.remove("sklearn"); skipped["sklearn"] = "scikit-learn not installed: floor skipped"

    script = os.path.abspath(__file__)
    report = {"machine": {"python": platform.python_version(), "platform": platform.platform(),
                          "cpus": os.cpu_count()},
              "openblas_env": c.openblas_env_note(args.keep_openblas_env),
              "tinymtl": c.tinymtl_origin(),
              "rounds": rounds, "quick": args.quick, "skipped": skipped,
              "torch_heads": "fused" if args.torch_fused_head else "one nn.Linear per task"}
    c.log(f"train_speed: {rounds} round(s); {report['openblas_env']}")
    for why in skipped.values():
        c.log(why)

    # 1. The race is fair only if both compute the same step.
    if "torch" in impls:
        c.log("checking one float64 step tinymtl == PyTorch ...")
        check = c.run_worker(script, {"kind": "check", "workloads": workloads,
                                      "fused_head": args.torch_fused_head},
                             1, args.keep_openblas_env, quiet=c.quiet_args(args))
        report["check"] = {w: check[w] for w in workloads}  # without run_worker's own keys
    else:
        report["check"] = None

    # 2. Interleaved rounds, one subprocess per run.
    jobs = [{"kind": "time", "impl": impl, "workload": w, "dtype": d, "threads": t,
             "quick": args.quick, "fused_head": args.torch_fused_head}
            for w in workloads for d in dtypes for t in args.threads for impl in impls]
    times = {i: [] for i in range(len(jobs))}
    extra, loads = {}, []
    for r in range(rounds):
        order = list(range(len(jobs)))
        order = order[r % len(order):] + order[:r % len(order)]  # rotate: no fixed position
        for n, i in enumerate(order):
            job = jobs[i]
            c.log(f"round {r + 1}/{rounds} run {n + 1}/{len(jobs)}: {job['impl']} {job['workload']} "
                  f"{job['dtype']} {job['threads']} thread(s)")
            res = c.run_worker(script, job, job["threads"], args.keep_openblas_env, quiet=c.quiet_args(args))
            times[i].append(res["sec_per_epoch"])
            loads.append(res.get("other_cores", 0.0))
            extra[i] = res

    results = []
    for i, job in enumerate(jobs):
        s = c.summary(times[i])
        results.append({**{k: job[k] for k in ("impl", "workload", "dtype", "threads")},
                        "sec_per_epoch": s, "steps_per_epoch": extra[i]["steps_per_epoch"],
                        "threads_via": extra[i].get("threads_via"), "blas": extra[i]["blas"]})
    report["results"] = results
    report["other_cores_during_runs"] = c.summary(loads)
    report["targets"] = targets(results)

    if args.json:
        import json
        print(json.dumps(report, indent=2))
    else:
        try:
            print_report(report)
        except Exception:  # never lose a long run to a printing bug: dump the raw numbers
            import json
            print(json.dumps(report, indent=2))
            raise
    check_ok = report["check"] is None or all(e["passed"] for e in report["check"].values())
    return 0 if check_ok else 1


def _lookup(results, impl, workload, dtype, threads):
    for r in results:
        if (r["impl"], r["workload"], r["dtype"], r["threads"]) == (impl, workload, dtype, threads):
            return r["sec_per_epoch"]["median"]
    return None


def targets(results):
    """Issue 5's training-speed targets, from the medians."""
    out = []

    def ratio(a, b):
        return None if a is None or b is None else a / b

    def add(name, value, goal):
        out.append({"target": name, "value": value, "goal": goal,
                    "met": None if value is None else value >= goal})

    tiny = lambda w, t: _lookup(results, "tinymtl", w, "float32", t)
    torch_ = lambda w, t: _lookup(results, "torch", w, "float32", t)
    add("small f32 1 thread: PyTorch epoch / tinymtl epoch", ratio(torch_("small", 1), tiny("small", 1)), 6.0)
    add("large f32 1 thread: PyTorch epoch / tinymtl epoch", ratio(torch_("large", 1), tiny("large", 1)), 1.6)
    add("large f32 2 threads: PyTorch epoch / tinymtl epoch",
        ratio(torch_("large", 2), tiny("large", 2)), 1.3)
    add("large f32 tinymtl: 1-thread epoch / 2-thread epoch", ratio(tiny("large", 1), tiny("large", 2)), 1.3)
    return out


def print_report(report):
    print("# train_speed: seconds per epoch, median [min, max] over "
          f"{report['rounds']} interleaved round(s), one subprocess per run")
    m = report["machine"]
    print(f"machine: {m['platform']}, {m['cpus']} CPUs, Python {m['python']}")
    print(f"OpenBLAS env: {report['openblas_env']}")
    print(f"tinymtl: {report['tinymtl']}")
    print(f"PyTorch heads: {report['torch_heads']}")
    ld = report["other_cores_during_runs"]
    print(f"cores used by other processes during the kept runs: median {ld['median']:.2f}, "
          f"max {ld['max']:.2f} (of {m['cpus']}; 2-thread runs are the most sensitive)")
    for why in report["skipped"].values():
        print(f"SKIPPED: {why}")
    if report["check"] is not None:
        print("\n## One-step equality check (float64, same weights, same batch, SGD)")
        for name, e in report["check"].items():
            ep = "n/a" if e["epoch10_max_diff"] is None else f"{e['epoch10_max_diff']:.2e}"
            print(f"{name}: max |tinymtl - torch| after 1 step = {e['step_max_diff']:.2e}, "
                  f"after 10 shuffled steps = {ep}, loss diff = {e['step_loss_diff']:.2e}, "
                  f"initial copy = {e['initial_copy_max_diff']:.1e} -> "
                  f"{'PASS' if e['passed'] else 'FAIL'} (tolerance {CHECK_TOL:g})")
    results = report["results"]
    rows = []
    for r in results:
        s = r["sec_per_epoch"]
        ref = _lookup(results, "torch", r["workload"], r["dtype"], r["threads"])
        speed = "-" if ref is None else f"{ref / s['median']:.2f}x"
        rows.append([f"{r['workload']} {r['dtype']} {r['threads']}t", r["impl"],
                     c.fmt_time(s["median"]), c.fmt_time(s["min"]), c.fmt_time(s["max"]),
                     c.fmt_time(s["median"] / r["steps_per_epoch"]), speed])
    print("\n## Time per epoch (speed-up = PyTorch median / this median)")
    print(c.table(["setting", "impl", "median", "min", "max", "per step", "vs torch"], rows))
    print("(sklearn trains the classification task only: a floor, not the same computation)")
    print("\n## Targets (issue 5)")
    for t in report["targets"]:
        v = "-" if t["value"] is None else f"{t['value']:.2f}x"
        met = "skipped" if t["met"] is None else c.verdict(t["met"])
        print(f"{t['target']}: {v} (goal >= {t['goal']}x) {met}")
    how = {r["threads_via"] for r in results if r["impl"] == "tinymtl"}
    print(f"tinymtl threads given via: {'; '.join(sorted(h for h in how if h))}")
    print("\n## BLAS kernels seen by the workers (threadpoolctl)")
    seen = []
    for r in results:
        key = (r["impl"], r["threads"])
        if key in seen:
            continue
        seen.append(key)
        for line in c.describe_blas(r["blas"]):
            print(f"{r['impl']} {r['threads']}t: {line}")


if __name__ == "__main__":
    sys.exit(main())
