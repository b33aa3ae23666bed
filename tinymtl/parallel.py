"""Training on more than one core: the thread count of BLAS, set for the duration of ``fit``.

Nearly all of a large step's time is in matrix products, and BLAS splits each product across
its threads. ``fit`` sets that count to ``threads`` and restores it afterwards, so ``threads=1``
means one core for tinymtl, as ``torch.set_num_threads(1)`` does for PyTorch. The count follows
the usual settings: ``threads=`` where the API takes it, else ``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS`` or ``MKL_NUM_THREADS``, else the number of cores.

What we measured and dropped (benchmarks/gemm_limit.py, 2 cores, 256-256 trunk, batch 128):
running a layer's two independent gradient products side by side on a Python thread pool, each
with single-threaded BLAS, made a step slower, 800 us against 600 us with OpenBLAS's own two
threads (a hand-off to a pool thread costs ~50 us here, and OpenBLAS's idle threads spin);
splitting one product by rows across the pool gained nothing either (157 vs 169 us).
"""

import contextlib
import ctypes
import functools
import os

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def default_threads():
    """Threads to use when none are given: the first thread variable set, else the core count."""
    for variable in THREAD_VARIABLES:
        value = os.environ.get(variable, "").strip()
        if value.isdigit() and int(value) >= 1:
            return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@functools.lru_cache(maxsize=1)  # which library NumPy loaded does not change
def _openblas_thread_functions():
    """(set, get) for the OpenBLAS that NumPy loaded, or None where it cannot be found."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", ""), ("openblas", "64_"),
                               ("openblas", "")):
            setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
            getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            if setter is not None and getter is not None:
                setter.argtypes, getter.restype = [ctypes.c_int], ctypes.c_int
                return setter, getter
    return None


@contextlib.contextmanager
def blas_threads(threads):
    """Run the block with BLAS on ``threads`` threads (where they can be controlled), then restore."""
    functions = _openblas_thread_functions()
    if functions is None:
        yield
        return
    set_threads, get_threads = functions
    before = get_threads()
    set_threads(threads)
    try:
        yield
    finally:
        set_threads(before)
