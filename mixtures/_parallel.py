"""How the EM passes run: on which kernel, and on how many threads.

Kernel
------
The pass over the data (E-step and sufficient statistics) has two
implementations: ``"numba"``, the compiled fused kernel of
:mod:`mixtures._kernel` (the default), and ``"numpy"``, chunked NumPy (the
fallback, and the reference the kernel is tested against). The choice is the
``kernel=`` option of :func:`mixtures.fit_em` and
:class:`mixtures.GaussianMixture`; ``"auto"`` (the default) means the
``GMMLAB_KERNEL`` environment variable, else ``"numba"``. The option is
resolved once, where a fit or a score starts (:func:`resolve_kernel`), and the
resolved name is passed down as an argument (``kernel=``) to the passes and to
the covariance models' methods whose arithmetic depends on it: no ambient
state, so worker threads and processes see the kernel they are given.

Threads
-------

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

__all__ = [
    "DEVICE_KERNEL",
    "KERNELS",
    "host_kernel",
    "map_chunks",
    "n_threads",
    "resolve_kernel",
]

#: The implementations of the pass over the data.
KERNELS = ("numba", "numpy")
#: The option value that runs a fit's passes on the data's own array library
#: and device (:mod:`mixtures.array_api_pass`); everything else of that fit
#: runs on the host's kernel (:func:`host_kernel`).
DEVICE_KERNEL = "array-api"


def resolve_kernel(kernel: str | None) -> str:
    """``"numba"`` or ``"numpy"`` from an option value, ``"auto"`` or None.

    ``"auto"`` and None mean the ``GMMLAB_KERNEL`` environment variable if it
    is set, else ``"numba"``; anything else is a ValueError naming the
    choices. Called where a fit or a score starts, never inside the passes.
    """
    source = "kernel"
    if kernel is None or kernel == "auto":
        kernel = os.environ.get("GMMLAB_KERNEL", "").strip().lower() or "numba"
        source = "the environment variable GMMLAB_KERNEL"
    if kernel not in KERNELS:
        device = ", 'array-api' (the passes on the data's own device)"
        raise ValueError(
            f"{source} must be 'auto', 'numba' (the compiled kernel)"
            f"{device if source == 'kernel' else ''} or 'numpy' (the NumPy "
            f"fallback); got {kernel!r}."
        )
    return kernel


def host_kernel(kernel: str | None) -> str:
    """The host's kernel for an option value (:func:`resolve_kernel`'s).

    For ``"array-api"``, the default host kernel: the M-step, the starts and
    the scores of such a fit run there.
    """
    return resolve_kernel(None if kernel == DEVICE_KERNEL else kernel)


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
