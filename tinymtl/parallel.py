"""Running a training step's large matrix products on more than one core.

NumPy releases the GIL inside BLAS, so two Python threads can each run a product on its own core.
A step has products that do not depend on each other: a layer's weight gradient x.T @ grad_out
and its input gradient grad_out @ W.T. And any product splits by rows of its output: the top
half of x @ W needs only the top half of x. The pool runs such pieces side by side while BLAS
itself runs single-threaded (else each piece would start BLAS threads of its own and the cores
would be oversubscribed).

The number of threads follows the usual settings: ``threads=`` where the API takes it, else
``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` or ``MKL_NUM_THREADS``, else the number of cores.
Only products of at least ``MIN_WORK`` multiply-adds go to the pool: for small ones a thread
hand-off costs more than the product.
"""

import contextlib
import ctypes
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

MIN_WORK = 1 << 20  # multiply-adds; below this a product runs on the calling thread
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
def single_threaded_blas():
    """Run the block with BLAS on one thread (where its threads can be controlled), then restore."""
    functions = _openblas_thread_functions()
    if functions is None:
        yield
        return
    set_threads, get_threads = functions
    before = get_threads()
    set_threads(1)
    try:
        yield
    finally:
        set_threads(before)


class Pool:
    """``threads - 1`` worker threads; the calling thread does a share of every job too."""

    def __init__(self, threads):
        self.threads = int(threads)
        self._executor = ThreadPoolExecutor(max_workers=self.threads - 1,
                                            thread_name_prefix="tinymtl")

    def close(self):
        self._executor.shutdown(wait=True)

    def side_by_side(self, first, second):
        """Run ``first()`` on a worker and ``second()`` here; return when both are done."""
        job = self._executor.submit(first)
        second()
        job.result()

    def matmul(self, a, b, out):
        """out = a @ b with the rows of ``out`` split evenly across the threads."""
        n_rows = a.shape[0]
        bounds = [n_rows * k // self.threads for k in range(self.threads + 1)]
        jobs = [self._executor.submit(np.matmul, a[lo:hi], b, out=out[lo:hi])
                for lo, hi in zip(bounds[:-1], bounds[1:-1]) if hi > lo]
        np.matmul(a[bounds[-2]:], b, out=out[bounds[-2]:])
        for job in jobs:
            job.result()
        return out

    def worth_it(self, n_rows, n_inner, n_cols):
        return worth_it(n_rows, n_inner, n_cols)


def worth_it(n_rows, n_inner, n_cols):
    """Is an (n_rows, n_inner) @ (n_inner, n_cols) product big enough to split across threads?"""
    return n_rows * n_inner * n_cols >= MIN_WORK
