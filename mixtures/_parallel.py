"""Running independent chunks of an EM pass on a few threads.

NumPy releases the GIL in its element-wise loops and BLAS calls, so threads
over chunks use every core for the element-wise work that a single
multi-threaded BLAS call cannot; BLAS itself is held to one thread meanwhile
so the two levels do not oversubscribe the cores. Results come back in chunk
order, so sums over them do not depend on the number of threads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from threadpoolctl import threadpool_limits

__all__ = ["map_chunks", "n_threads"]

T = TypeVar("T")
R = TypeVar("R")

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def n_threads() -> int:
    """Threads to use: ``GMMLAB_NUM_THREADS`` if set, else the usable cores."""
    configured = os.environ.get("GMMLAB_NUM_THREADS")
    if configured:
        return max(1, int(configured))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _shared_executor(workers: int) -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None or _executor._max_workers < workers:
            _executor = ThreadPoolExecutor(workers, thread_name_prefix="gmmlab")
        return _executor


def map_chunks(function: Callable[[T], R], chunks: Sequence[T]) -> list[R]:
    """``[function(c) for c in chunks]``, on several threads when it pays."""
    if len(chunks) == 1:  # small data: no thread, no lookups
        return [function(chunks[0])]
    workers = min(n_threads(), len(chunks))
    if workers <= 1 or threading.current_thread().name.startswith("gmmlab"):
        return [function(chunk) for chunk in chunks]
    executor = _shared_executor(workers)
    with threadpool_limits(limits=1, user_api="blas"):
        return list(executor.map(function, chunks))
