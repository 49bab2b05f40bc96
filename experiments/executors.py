"""Where runs execute: in this process, a process pool, or a Dask cluster.

:func:`map_as_completed` yields each run's result as soon as it finishes, with
every executor, so the caller can write it to disk at once: an interrupted
sweep loses at most the runs in flight.

* ``jobs = 1``: one run after another in this process (lazily: a run starts
  only when the previous one has been handed back);
* ``jobs > 1``: a pool of ``jobs`` spawned processes, one thread each;
* ``scheduler = "local"``: a new Dask ``LocalCluster`` of ``jobs`` worker
  processes; ``scheduler = "tcp://host:port"``: an existing cluster.

Time limits (:func:`call_with_time_limit`): in a process's main thread (the
in-process and pool executors) a ``SIGALRM`` interrupts the run; elsewhere
(Dask runs tasks in worker threads, where no signal can be delivered) the run
is executed in a child Python process that is killed when its time is up.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

__all__ = [
    "RunTimeoutError",
    "call_with_time_limit",
    "map_as_completed",
    "signal_cause",
]


class RunTimeoutError(TimeoutError):
    """A run exceeded the sweep's per-run timeout."""


# ---------------------------------------------------------------------------
# Time limits


def signal_cause(error: BaseException) -> BaseException | None:
    """The time limit or Ctrl-C a compiled kernel's SystemError wraps, or None.

    A signal handler's exception raised while numba's compiled code runs
    (the parallel kernel) reaches Python as ``SystemError: ... returned a
    result with an exception set``, the real exception as its cause.
    """
    cause: BaseException | None = error
    while isinstance(cause, SystemError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, RunTimeoutError | KeyboardInterrupt):
        return cause
    return None


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    def expire(signum, frame):
        raise RunTimeoutError(f"run exceeded its timeout of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def call_with_time_limit(function: Callable[[Any], Any], argument, seconds):
    """``function(argument)``, raising :class:`RunTimeoutError` after ``seconds``.

    ``function`` must be importable by name (a module-level function) and its
    argument and result picklable: off the main thread they cross a process
    boundary. ``seconds=None`` means no limit. A time limit or Ctrl-C that
    lands inside compiled code is raised as itself (:func:`signal_cause`).
    """
    try:
        if not seconds:
            return function(argument)
        if _in_main_thread() and hasattr(signal, "setitimer"):
            with _alarm(seconds):
                return function(argument)
    except SystemError as error:
        # The alarm or Ctrl-C fired inside compiled code (the numba kernel):
        # CPython wraps the handler's exception in SystemErrors; unwrap it.
        cause = signal_cause(error)
        if cause is not None:
            raise cause from None
        raise
    return _call_in_child(function, argument, seconds)


def _call_in_child(function, argument, seconds: float):
    package_root = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    env = {
        **os.environ,
        "PYTHONPATH": package_root + (os.pathsep + path if path else ""),
        "GMMLAB_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    try:
        finished = subprocess.run(
            [sys.executable, "-m", "experiments.executors"],
            input=pickle.dumps((function, argument)),
            capture_output=True,
            timeout=seconds,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:  # subprocess.run has killed the child
        raise RunTimeoutError(f"run exceeded its timeout of {seconds:g} s") from None
    if finished.returncode != 0:
        tail = finished.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(
            f"the run's child process exited with status {finished.returncode}: "
            + " | ".join(tail)
        )
    return pickle.loads(finished.stdout)


def _child_main() -> None:
    function, argument = pickle.loads(sys.stdin.buffer.read())
    result = function(argument)
    sys.stdout.buffer.write(pickle.dumps(result))
    sys.stdout.buffer.flush()


# ---------------------------------------------------------------------------
# Executors


def _worker_setup() -> None:
    # One process per core: keep each worker's numerical code single-threaded.
    os.environ["GMMLAB_NUM_THREADS"] = "1"
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def map_as_completed(
    function: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    jobs: int = 1,
    scheduler: str | None = None,
) -> Iterator[tuple[Any, Any, BaseException | None]]:
    """Yield ``(item, result, error)`` for every item, as each finishes.

    ``error`` is the exception raised by the worker itself (a killed process,
    a lost Dask worker); ``function``'s own errors are its business.
    Closing the generator (``break``, Ctrl-C) cancels the runs not started.
    """
    items = list(items)
    if scheduler is not None:
        yield from _dask(function, items, jobs, scheduler)
    elif jobs <= 1:
        for item in items:
            try:
                result = function(item)
            except Exception as error:
                yield item, None, error
            else:
                yield item, result, None
    else:
        yield from _pool(function, items, jobs)


def _drain(futures: dict) -> Iterator[tuple[Any, Any, BaseException | None]]:
    for future in as_completed(futures):
        error = future.exception()
        yield futures[future], (None if error else future.result()), error


def _pool(function, items, jobs):
    import multiprocessing

    pool = ProcessPoolExecutor(
        jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_setup
    )
    try:
        yield from _drain({pool.submit(function, item): item for item in items})
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _dask(function, items, jobs, scheduler):
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ValueError("--scheduler needs Dask: pip install 'gmmlab[dask]'") from None
    cluster = None
    if scheduler == "local":
        cluster = LocalCluster(
            n_workers=jobs,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        client.run(_worker_setup)
        executor = client.get_executor(pure=False)
        yield from _drain({executor.submit(function, item): item for item in items})
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


if __name__ == "__main__":
    _child_main()
