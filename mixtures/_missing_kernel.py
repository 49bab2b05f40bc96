"""The compiled pass over rows with missing values (numba).

The same arithmetic as :func:`mixtures.missing.incomplete_statistics` (see
that module for the mathematics), without Python's cost per pattern: the
patterns are split into tasks of about equal numbers of rows, run in
parallel, each accumulating its own statistics, which are summed at the
end. Per (pattern, component): one Cholesky factor of the observed block,
the regression ``B = Sigma_mo Sigma_oo^-1`` and the conditional covariance
``C``; per row and component: one forward substitution.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from mixtures._parallel import n_threads

__all__ = ["compiled_incomplete_statistics", "task_bounds"]

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_LOG_2PI = math.log(2 * math.pi)


def task_bounds(starts: np.ndarray) -> np.ndarray:
    """Pattern ranges of about equal row counts, one per task, shape (T + 1,)."""
    n_patterns = starts.size - 1
    tasks = max(1, min(n_patterns, 4 * n_threads()))
    targets = np.linspace(0, starts[-1], tasks + 1)
    bounds = np.searchsorted(starts, targets, side="left")
    bounds[0], bounds[-1] = 0, n_patterns
    return np.unique(bounds)


@numba.njit(**_JIT)
def _forward(L, b, out):  # pragma: no cover - compiled
    """Solve ``L out = b`` for lower-triangular ``L``."""
    n = b.size
    for i in range(n):
        total = b[i]
        for j in range(i):
            total -= L[i, j] * out[j]
        out[i] = total / L[i, i]


@numba.njit(**_JIT)
def _backward(L, b, out):  # pragma: no cover - compiled
    """Solve ``L.T out = b`` for lower-triangular ``L``."""
    n = b.size
    for i in range(n - 1, -1, -1):
        total = b[i]
        for j in range(i + 1, n):
            total -= L[j, i] * out[j]
        out[i] = total / L[i, i]


@numba.njit(**_JIT)
def _pattern(X, w, o, m, rows, offset, means, covariances, log_weights,
             s0, s1, s2, log_prob):  # fmt: skip  # pragma: no cover - compiled
    n_rows, do, dm = rows.size, o.size, m.size
    K = means.shape[0]
    Y = np.empty((n_rows, do))
    for i in range(n_rows):
        for a in range(do):
            Y[i, a] = X[rows[i], o[a]]
    resp = np.empty((n_rows, K))
    B = np.empty((K, dm, do))
    C = np.empty((K, dm, dm))
    S = np.empty((do, do))
    column = np.empty(do)
    half = np.empty(do)
    y = np.empty(do)
    z = np.empty(do)
    for k in range(K):
        for a in range(do):
            for b in range(do):
                S[a, b] = covariances[k, o[a], o[b]]
        L = np.linalg.cholesky(S)
        log_det = 0.0
        for a in range(do):
            log_det += 2.0 * math.log(L[a, a])
        for j in range(dm):
            for a in range(do):
                column[a] = covariances[k, o[a], m[j]]
            _forward(L, column, half)
            _backward(L, half, z)
            for a in range(do):
                B[k, j, a] = z[a]
        for i in range(dm):
            for j in range(dm):
                total = covariances[k, m[i], m[j]]
                for a in range(do):
                    total -= B[k, i, a] * covariances[k, o[a], m[j]]
                C[k, i, j] = total
        constant = -0.5 * (do * _LOG_2PI + log_det) + log_weights[k]
        for i in range(n_rows):
            for a in range(do):
                y[a] = Y[i, a] - means[k, o[a]]
            _forward(L, y, z)
            squared = 0.0
            for a in range(do):
                squared += z[a] * z[a]
            resp[i, k] = constant - 0.5 * squared
    for i in range(n_rows):
        top = resp[i, 0]
        for k in range(1, K):
            top = max(top, resp[i, k])
        total = 0.0
        for k in range(K):
            total += math.exp(resp[i, k] - top)
        row_log_prob = top + math.log(total)
        log_prob[offset + i] = row_log_prob
        for k in range(K):
            resp[i, k] = math.exp(resp[i, k] - row_log_prob) * w[rows[i]]
    ry = np.empty(do)
    A = np.empty((do, do))
    BA = np.empty((dm, do))
    for k in range(K):
        mass = 0.0
        ry[:] = 0.0
        A[:] = 0.0
        for i in range(n_rows):
            r = resp[i, k]
            mass += r
            for a in range(do):
                y[a] = Y[i, a] - means[k, o[a]]
                ry[a] += r * y[a]
            for a in range(do):
                ra = r * y[a]
                for b in range(a + 1):
                    A[a, b] += ra * y[b]
        for a in range(do):
            for b in range(a):
                A[b, a] = A[a, b]
        s0[k] += mass
        for a in range(do):
            s1[k, o[a]] += ry[a]
        for j in range(dm):
            total = 0.0
            for a in range(do):
                total += B[k, j, a] * ry[a]
            s1[k, m[j]] += total
        for j in range(dm):
            for a in range(do):
                total = 0.0
                for b in range(do):
                    total += B[k, j, b] * A[b, a]
                BA[j, a] = total
        for a in range(do):
            for b in range(do):
                s2[k, o[a], o[b]] += A[a, b]
        for j in range(dm):
            for a in range(do):
                s2[k, m[j], o[a]] += BA[j, a]
                s2[k, o[a], m[j]] += BA[j, a]
        for i in range(dm):
            for j in range(dm):
                total = mass * C[k, i, j]
                for a in range(do):
                    total += BA[i, a] * B[k, j, a]
                s2[k, m[i], m[j]] += total


def _incomplete(X, w, observed, starts, order, means, covariances, log_weights,
                bounds):  # fmt: skip  # pragma: no cover - compiled
    K, D = means.shape
    tasks = bounds.size - 1
    s0 = np.zeros((tasks, K))
    s1 = np.zeros((tasks, K, D))
    s2 = np.zeros((tasks, K, D, D))
    log_prob = np.empty(order.size)
    for t in prange(tasks):
        for p in range(bounds[t], bounds[t + 1]):
            o = np.flatnonzero(observed[p])
            m = np.flatnonzero(~observed[p])
            rows = order[starts[p] : starts[p + 1]]
            _pattern(X, w, o, m, rows, starts[p], means, covariances, log_weights,
                     s0[t], s1[t], s2[t], log_prob)  # fmt: skip
    return s0.sum(axis=0), s1.sum(axis=0), s2.sum(axis=0), log_prob


#: Below this many incomplete rows the tasks run in one thread: starting
#: the threads costs more than the work.
PARALLEL_ROWS = 4096
_incomplete_serial = numba.njit(**_JIT)(_incomplete)
_incomplete_parallel = numba.njit(parallel=True, **_JIT)(_incomplete)


def compiled_incomplete_statistics(
    X, sample_weight, observed, starts, order, bounds, means, covariances, weights
):
    """``(S0 (K,), S1 (K, D), S2 (K, D, D), log p(x_o) (n_incomplete,))``.

    As :func:`mixtures.missing.incomplete_statistics`, rows in the order of
    ``order`` (the incomplete rows, grouped by pattern; pattern ``p`` holds
    ``order[starts[p]:starts[p + 1]]``), ``bounds`` from :func:`task_bounds`.
    """
    run = _incomplete_parallel if order.size >= PARALLEL_ROWS else _incomplete_serial
    return run(
        np.ascontiguousarray(X, dtype=np.float64),
        np.ascontiguousarray(sample_weight, dtype=np.float64),
        observed,
        starts,
        order,
        np.ascontiguousarray(means, dtype=np.float64),
        np.ascontiguousarray(covariances, dtype=np.float64),
        np.log(np.asarray(weights, dtype=np.float64)),
        bounds,
    )
