"""The kernels' worker threads: how many (set_threads, local_threads) and the pool that
runs a driver's tasks over them (_run_task_range).  Every task writes only its own output,
so the split never changes a byte.  Re-exported by tqcli.kernels, which calls the drivers.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from .. import limits
from .groups import task_count


def thread_limit() -> int:
    """The most worker threads the kernels use: NUMBA_NUM_THREADS if set, else the cores
    this process may run on (limits.thread_limit)."""
    return limits.thread_limit()


_threads = thread_limit()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _forget_pool() -> None:
    """In a forked child the parent's worker threads do not exist: start a fresh pool."""
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def set_threads(n: int | None) -> int:
    """Use n worker threads (None or <= 0: thread_limit()); returns the number set."""
    global _threads
    limit = thread_limit()
    _threads = limit if n is None or n <= 0 else min(n, limit)
    return _threads


def thread_count() -> int:
    return _threads


_local = threading.local()


class local_threads:
    """`with local_threads(n):` kernels called from this thread use at most n worker
    threads (never more than set_threads allows): for callers that run several kernel
    calls at once, each in a thread of its own (tqcli/arrayio/pipeline.py run_ordered), so
    that together they use the cores once.  The output does not depend on it."""

    def __init__(self, n: int):
        self.n = max(1, int(n))

    def __enter__(self):
        self.saved = getattr(_local, "threads", None)
        _local.threads = self.n
        return self

    def __exit__(self, *exc):
        _local.threads = self.saved



def _run_tasks(driver, n: int, *args) -> None:
    """Run `driver(*args, task0, task1)` over the tasks of n rows, one contiguous range
    of tasks per worker thread (the calling thread takes the first).  The drivers release
    the GIL; every task writes only its own output, so the split cannot change a byte."""
    _run_task_range(driver, task_count(n), *args)


def _run_task_range(driver, ntasks: int, *args) -> None:
    """Run `driver(*args, task0, task1)` over tasks 0..ntasks-1, one contiguous range per
    worker thread (see _run_tasks)."""
    global _pool, _pool_size
    here = getattr(_local, "threads", None)
    workers = min(_threads if here is None else min(here, _threads), ntasks)
    if workers <= 1:
        driver(*args, 0, ntasks)
        return
    cuts = [ntasks * i // workers for i in range(workers + 1)]
    with _pool_lock:  # submitted under the lock: another caller may be replacing the pool
        if _pool_size < workers - 1:
            if _pool is not None:
                _pool.shutdown(wait=False)  # what was submitted to it still runs
            size = max(workers, _threads) - 1  # room for callers under local_threads too
            _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="tq-kernel")
            _pool_size = size
        futures = [_pool.submit(driver, *args, cuts[i], cuts[i + 1])
                   for i in range(1, workers)]
    try:
        driver(*args, cuts[0], cuts[1])
    finally:
        for f in futures:
            f.result()
