"""Running a training step on more than one core.

Two ways, used together. BLAS itself can split one matrix product across threads: ``fit`` sets
its thread count for the duration of training (and restores it after), so ``threads=1`` means
one core for tinymtl, as it does for PyTorch. And NumPy releases the GIL inside BLAS, so two
Python threads can each run a product on its own core: a layer's weight gradient x.T @ grad_out
and its input gradient grad_out @ W.T do not depend on each other, so the pool runs them side by
side, with BLAS single-threaded for that moment (else each would start BLAS threads of its own
and oversubscribe the cores).

Handing work to another thread costs tens of microseconds, so only pairs of products of at least
``MIN_WORK`` multiply-adds each go to the pool; small networks never pay for a hand-off.

The number of threads follows the usual settings: ``threads=`` where the API takes it, else
``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` or ``MKL_NUM_THREADS``, else the number of cores.
"""

import contextlib
import ctypes
import os
from concurrent.futures import ThreadPoolExecutor

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


class Pool:
    """One worker thread beside the calling thread, for pairs of independent products."""

    def __init__(self):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tinymtl")
        self._blas = _openblas_thread_functions()

    def close(self):
        self._executor.shutdown(wait=True)

    def side_by_side(self, first, second):
        """Run ``first()`` on the worker and ``second()`` here, each with single-threaded BLAS."""
        if self._blas is not None:
            set_threads, get_threads = self._blas
            before = get_threads()
            set_threads(1)
        try:
            job = self._executor.submit(first)
            second()
            job.result()
        finally:
            if self._blas is not None:
                set_threads(before)


    @staticmethod
    def worth_it(n_rows, n_in, n_out):
        """Is a layer's gradient pair, each of about n_rows * n_in * n_out multiply-adds, big
        enough to be worth a hand-off to another thread?"""
        return n_rows * n_in * n_out >= MIN_WORK
