"""Shared helpers for the benchmark scripts: workloads, subprocess runs, statistics, BLAS info.

Every measurement runs in a fresh subprocess whose thread variables are set before NumPy (or
PyTorch) is imported, so "1 thread" means one core for every implementation. The parent process
only schedules the rounds, collects one JSON line per run and prints the tables.

Optional packages (torch, scikit-learn, pandas, threadpoolctl) are imported only inside the
worker that needs them; a missing one turns that comparison into a clear skip.
"""

import argparse
import importlib.util
import inspect
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# OpenBLAS tuning variables some machines set globally; they can pick a slower kernel for NumPy.
OPENBLAS_TUNING_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# The two workloads of issue 5. "epochs" is what one timed round trains; "lr" keeps SGD finite.
WORKLOADS = {
    "small": dict(n_rows=150, n_features=3, hidden=(16, 16), n_classes=3, n_regress=1,
                  batch_size=16, lr=0.05, epochs=200, quick_epochs=20, quick_rows=150),
    "large": dict(n_rows=60_000, n_features=64, hidden=(256, 256), n_classes=10, n_regress=1,
                  batch_size=128, lr=0.01, epochs=2, quick_epochs=1, quick_rows=12_800),
}
DATA_SEED, INIT_SEED, SHUFFLE_SEED = 1234, 0, 42
TASK_CLASSIFY, TASK_REGRESS = "label", "value"


def have(module):
    """True when ``module`` can be imported (without importing it)."""
    return importlib.util.find_spec(module) is not None


# ------------------------------------------------------------------------------------------
# Command line

def base_parser(prog, description, default_rounds=5):
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rounds", type=positive_int, default=None,
                        help=f"timed rounds per setting (default {default_rounds}, 1 with --quick); "
                             "medians, min and max are over rounds")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document on stdout instead of tables")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: fewer rows/epochs, 1 round unless --rounds is given")
    parser.add_argument("--keep-openblas-env", action="store_true",
                        help="pass OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE on to the subprocesses "
                             "(by default both are unset there when either is set)")
    parser.add_argument("--quiet-below", type=float, default=0.25,
                        help="before each run, wait until other processes use fewer than this many "
                             "cores (read from /proc/stat); a run during which they used more than "
                             "twice this is repeated, up to --retries times")
    parser.add_argument("--max-wait", type=float, default=30.0,
                        help="seconds to wait for a quiet machine before a run goes ahead anyway")
    parser.add_argument("--retries", type=int, default=2,
                        help="repeats of a run disturbed by other processes (0: never repeat)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: JSON job description
    return parser


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def int_list(text):
    try:
        values = [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1, got {text!r}")
    return values


def resolve_rounds(args, default=5):
    """--rounds if given, else 1 with --quick, else ``default``."""
    if args.rounds is not None:
        return args.rounds
    return 1 if args.quick else default


def tinymtl_origin():
    """Where ``import tinymtl`` resolves (PYTHONPATH can point at a snapshot), and its git state."""
    spec = importlib.util.find_spec("tinymtl")
    if spec is None or spec.origin is None:
        return "tinymtl not importable"
    where = os.path.dirname(spec.origin)
    try:
        sha = subprocess.run(["git", "-C", where, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        if sha.returncode != 0:
            return where
        dirty = subprocess.run(["git", "-C", where, "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return where
    return f"{where} (git {sha.stdout.strip()}{', with uncommitted changes' if dirty else ''})"


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------
# Subprocesses

def child_env(threads, keep_openblas_env=False):
    """Environment for a worker: thread variables set, OpenBLAS tuning variables removed."""
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    if not keep_openblas_env:
        for var in OPENBLAS_TUNING_VARS:
            env.pop(var, None)
    return env


def openblas_env_note(keep_openblas_env):
    """One line saying what happened to OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE."""
    found = {var: os.environ[var] for var in OPENBLAS_TUNING_VARS if var in os.environ}
    if not found:
        return "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are not set in this environment"
    shown = ", ".join(f"{k}={v}" for k, v in found.items())
    if keep_openblas_env:
        return f"kept for the subprocesses (--keep-openblas-env): {shown}"
    return f"unset both OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for the subprocesses (were {shown})"


def _busy_cpu_seconds():
    """CPU seconds all processes on the machine have used (user + system + ...), or None."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait


def other_load(interval=0.25):
    """Cores busy over ``interval`` seconds while this process sleeps: other people's work."""
    before = _busy_cpu_seconds()
    if before is None:
        return 0.0
    time.sleep(interval)
    return max(0.0, (_busy_cpu_seconds() - before) / interval)


def wait_for_quiet(threshold, max_wait):
    """Sleep until other processes use fewer than ``threshold`` cores, or ``max_wait`` passes."""
    deadline = time.monotonic() + max_wait
    load = other_load()
    while load >= threshold and time.monotonic() < deadline:
        time.sleep(1.0)
        load = other_load()
    return load


def run_worker(script, job, threads, keep_openblas_env=False, timeout=1800, quiet=None):
    """Run ``script --worker JOB`` in a fresh interpreter; return the JSON of its last stdout line.

    With ``quiet=(threshold, max_wait, retries)``, wait for a quiet machine first, measure the
    cores other processes used during the run (machine-wide CPU time minus the worker's own, over
    the wall time), and repeat a disturbed run. The result then holds ``other_cores``.
    """
    cmd = [sys.executable, script, "--worker", json.dumps(job)]
    threshold, max_wait, retries = quiet if quiet else (None, 0, 0)
    for attempt in range(retries + 1):
        if threshold is not None:
            wait_for_quiet(threshold, max_wait)
        own0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy0, wall0 = _busy_cpu_seconds(), time.perf_counter()
        proc = subprocess.run(cmd, env=child_env(threads, keep_openblas_env), capture_output=True,
                              text=True, timeout=timeout)
        wall = time.perf_counter() - wall0
        own1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise RuntimeError(f"worker {job} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        result = json.loads(lines[-1])
        busy1 = _busy_cpu_seconds()
        if busy0 is None:
            return result
        own = (own1.ru_utime - own0.ru_utime) + (own1.ru_stime - own0.ru_stime)
        result["other_cores"] = max(0.0, (busy1 - busy0 - own) / wall)
        result["attempts"] = attempt + 1
        if threshold is None or result["other_cores"] < 2 * threshold or attempt == retries:
            break
        log(f"  other processes used {result['other_cores']:.2f} cores during that run: repeating")
    return result


def contention(results):
    """'other processes used median X, max Y cores during the runs' from workers' results."""
    values = [r["other_cores"] for r in results if "other_cores" in r]
    if not values:
        return "other processes' CPU use not measured (no /proc/stat)"
    s = summary(values)
    return (f"other processes used median {s['median']:.2f}, max {s['max']:.2f} cores during the "
            f"runs (of {os.cpu_count()})")


def quiet_args(args):
    return (args.quiet_below, args.max_wait, max(0, args.retries))


def per_call(fn, min_time):
    """Seconds per call of ``fn`` (called once first, to warm up): loop twice as many calls each
    time until a loop lasts at least ``min_time`` seconds."""
    fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time:
            return elapsed / n
        n *= 2


def serve_worker(args, worker, threads=None):
    """In a worker process (``--worker JSON``): run the job and print its result as JSON.

    Returns True there (the script's ``main`` then returns 0), False in the parent.
    ``threads`` overrides the job's thread count.
    """
    if not args.worker:
        return False
    import json
    job = json.loads(args.worker)
    worker_setup(job["threads"] if threads is None else threads)
    print(json.dumps(worker(job)))
    return True


def worker_setup(threads):
    """Call first thing in a worker, before importing NumPy: pin every thread variable."""
    for var in THREAD_VARS:
        os.environ[var] = str(threads)


# ------------------------------------------------------------------------------------------
# Statistics and formatting

def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def fmt_time(seconds):
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def table(headers, rows):
    """Plain text table with right-aligned columns after the first."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def verdict(ok):
    return "MET" if ok else "NOT MET"


# ------------------------------------------------------------------------------------------
# BLAS and thread information (inside a worker)

def blas_info():
    """What BLAS kernel runs: threadpoolctl's view of every loaded pool, plus PyTorch's own."""
    info = {}
    if have("threadpoolctl"):
        from threadpoolctl import threadpool_info
        info["threadpools"] = [
            {**{k: pool.get(k) for k in ("prefix", "user_api", "internal_api", "architecture",
                                         "num_threads", "version")},
             "file": os.path.basename(pool.get("filepath") or "")}
            for pool in threadpool_info()]
    else:
        info["threadpools"] = "threadpoolctl not installed"
    if "torch" in sys.modules:
        import torch
        config = torch.__config__.show()
        blas = next((part.split("=", 1)[1] for part in config.replace(",", "\n").split()
                     if part.startswith("BLAS_INFO=")), "?")
        info["torch"] = {"blas": blas, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                         "num_threads": torch.get_num_threads(),
                         "mkldnn": bool(torch.backends.mkldnn.is_available())}
    return info


def describe_blas(info):
    """One line per thread pool: 'openblas SkylakeX 1 thread(s)'."""
    lines = []
    pools = info.get("threadpools")
    if isinstance(pools, str):
        lines.append(pools)
    else:
        for pool in pools:
            lines.append(f"{pool['file'] or pool['prefix']}: internal_api={pool['internal_api']} "
                         f"architecture={pool.get('architecture') or '-'} "
                         f"num_threads={pool['num_threads']}")
    if "torch" in info:
        t = info["torch"]
        lines.append(f"torch: BLAS_INFO={t['blas']} cpu_capability={t['cpu_capability']} "
                     f"torch.get_num_threads()={t['num_threads']} mkldnn={t['mkldnn']}")
    return lines


# ------------------------------------------------------------------------------------------
# Workloads

def workload_spec(name, quick=False):
    spec = dict(WORKLOADS[name])
    if quick:
        spec["n_rows"], spec["epochs"] = spec["quick_rows"], spec["quick_epochs"]
    return spec


def make_data(spec, dtype):
    """Deterministic synthetic data: X (n, f), integer labels (n,), a regression target (n,).

    Labels come from a random linear teacher, the target from another one plus noise, so the
    tasks are learnable and share structure (as multi-task data should).
    """
    import numpy as np
    rng = np.random.default_rng(DATA_SEED)
    n, f = spec["n_rows"], spec["n_features"]
    X = rng.standard_normal((n, f), dtype=np.float64)
    teacher = rng.standard_normal((f, spec["n_classes"]))
    labels = np.argmax(X @ teacher + 0.5 * rng.standard_normal((n, spec["n_classes"])), axis=1)
    value = X @ rng.standard_normal(f) / math.sqrt(f) + 0.1 * rng.standard_normal(n)
    return X.astype(dtype), labels.astype(np.int64), value.astype(dtype)


def tinymtl_net(spec, dtype, threads=None):
    """The workload's MultiTaskNet; passes threads= to the constructor when it accepts it.

    Returns (net, fit_extra_kwargs, how_threads_were_given). The fit arguments ask for plain SGD
    (no momentum, no weight decay, a constant rate), whatever fit's defaults are: the races are
    against ``torch.optim.SGD(lr=...)``.
    """
    import tinymtl
    heads = {TASK_CLASSIFY: tinymtl.Classify(spec["n_classes"]),
             TASK_REGRESS: tinymtl.Regress(spec["n_regress"])}
    kwargs = dict(n_inputs=spec["n_features"], hidden=spec["hidden"], heads=heads,
                  seed=INIT_SEED, dtype=dtype)
    fit_kwargs, how = {}, "env vars only (MultiTaskNet and fit take no threads=)"
    fit_parameters = inspect.signature(tinymtl.MultiTaskNet.fit).parameters
    plain_sgd = {"momentum": 0.0, "weight_decay": 0.0, "lr_schedule": "constant"}
    fit_kwargs.update({k: v for k, v in plain_sgd.items() if k in fit_parameters})
    if threads is not None:
        if "threads" in inspect.signature(tinymtl.MultiTaskNet).parameters:
            kwargs["threads"], how = threads, f"MultiTaskNet(threads={threads})"
        elif "threads" in inspect.signature(tinymtl.MultiTaskNet.fit).parameters:
            fit_kwargs["threads"], how = threads, f"fit(threads={threads})"
    return tinymtl.MultiTaskNet(**kwargs), fit_kwargs, how


def torch_model(net, spec, torch_dtype, fused_head=False):
    """A PyTorch eager copy of ``net``: nn.Linear + ReLU trunk, one nn.Linear per head.

    tinymtl stores W as (n_in, n_out); nn.Linear.weight is (n_out, n_in), so every W is
    transposed on the way in. With ``fused_head`` the heads share one nn.Linear (as tinymtl's
    head layer does) and each task reads its own columns.
    """
    import numpy as np
    import torch
    from torch import nn

    params = net.parameters()
    widths = (spec["n_features"], *spec["hidden"])

    def linear(W, b):
        layer = nn.Linear(W.shape[0], W.shape[1], dtype=torch_dtype)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
            layer.bias.copy_(torch.from_numpy(np.ascontiguousarray(b)))
        return layer

    class TorchMultiTask(nn.Module):
        def __init__(self):
            super().__init__()
            layers = []
            for i in range(len(widths) - 1):
                layers += [linear(params[f"trunk.{i}.W"], params[f"trunk.{i}.b"]), nn.ReLU()]
            self.trunk = nn.Sequential(*layers)
            names = (TASK_CLASSIFY, TASK_REGRESS)
            if fused_head:
                W = np.concatenate([params[f"heads.{n}.W"] for n in names], axis=1)
                b = np.concatenate([params[f"heads.{n}.b"] for n in names])
                self.head = linear(W, b)
                self.split = spec["n_classes"]
            else:
                self.heads = nn.ModuleDict({n: linear(params[f"heads.{n}.W"], params[f"heads.{n}.b"])
                                            for n in names})

        def forward(self, x):
            features = self.trunk(x)
            if fused_head:
                logits = self.head(features)
                return {TASK_CLASSIFY: logits[:, :self.split], TASK_REGRESS: logits[:, self.split:]}
            return {name: head(features) for name, head in self.heads.items()}

    return TorchMultiTask()


def torch_parameters(model, spec, fused_head=False):
    """The torch model's parameters under tinymtl's names and layout (W as (n_in, n_out))."""
    out = {}
    n_trunk = len(spec["hidden"])
    for i in range(n_trunk):
        layer = model.trunk[2 * i]
        out[f"trunk.{i}.W"] = layer.weight.detach().numpy().T
        out[f"trunk.{i}.b"] = layer.bias.detach().numpy()
    if fused_head:
        W, b, k = model.head.weight.detach().numpy().T, model.head.bias.detach().numpy(), model.split
        out[f"heads.{TASK_CLASSIFY}.W"], out[f"heads.{TASK_REGRESS}.W"] = W[:, :k], W[:, k:]
        out[f"heads.{TASK_CLASSIFY}.b"], out[f"heads.{TASK_REGRESS}.b"] = b[:k], b[k:]
    else:
        for name, head in model.heads.items():
            out[f"heads.{name}.W"] = head.weight.detach().numpy().T
            out[f"heads.{name}.b"] = head.bias.detach().numpy()
    return out
