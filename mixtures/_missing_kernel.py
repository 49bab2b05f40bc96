"""The compiled pass over rows with missing values (numba).

The statistics of :func:`mixtures.missing.incomplete_statistics` (see that
module for the mathematics), written in each component's precision
``P = Sigma^-1`` (upper Cholesky factor ``U``, ``U U' = P``) so that a
pattern costs one factorisation of its *missing* block only, and so that
the O(n K D^2) work is matrix products:

* the conditional covariance of the missing coordinates is ``C = P_mm^-1``,
  the regression ``B = -C P_mo``, and the observed block's log-determinant
  is ``log det Sigma + log det P_mm``;
* a row's conditional fill about the component's mean,
  ``yhat = (x_o - mu_o, B (x_o - mu_o))``, has
  ``|yhat' U|^2 = (x_o - mu_o)' Sigma_oo^-1 (x_o - mu_o)``, and its
  statistics are ``yhat`` and ``yhat yhat'`` plus ``C`` on the missing
  block.

The fills and the small factorisations are compiled (numba, in parallel
over patterns); the Mahalanobis terms and the moments are BLAS products
over chunks of rows.
"""

from __future__ import annotations

import itertools
import math

import numba
import numpy as np
from numba import prange

__all__ = ["compiled_incomplete_statistics", "task_bounds"]

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_LOG_2PI = math.log(2 * math.pi)


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
def _missing_block(precisions, k, o, m, L, C, B, unit, half):  # pragma: no cover
    """``log det P_mm``, and ``C = P_mm^-1`` and ``B = -C P_mo`` into C, B.

    ``L`` (at least d_m x d_m), ``unit`` and ``half`` (d_m,) are scratch.
    """
    dm, do = m.size, o.size
    for a in range(dm):  # Cholesky of P_mm into L (lower)
        for b in range(a + 1):
            total = precisions[k, m[a], m[b]]
            for c in range(b):
                total -= L[a, c] * L[b, c]
            if a == b:
                L[a, a] = math.sqrt(total)
            else:
                L[a, b] = total / L[b, b]
    log_det = 0.0
    for a in range(dm):
        log_det += 2.0 * math.log(L[a, a])
    factor = L[:dm, :dm]
    for j in range(dm):
        unit[:] = 0.0
        unit[j] = 1.0
        _forward(factor, unit, half)
        _backward(factor, half, unit)
        for a in range(dm):
            C[a, j] = unit[a]
    for a in range(dm):
        for b in range(do):
            total = 0.0
            for c in range(dm):
                total -= C[a, c] * precisions[k, m[c], o[b]]
            B[a, b] = total
    return log_det


def _fill(X, observed, starts, order, first, last, means, precisions, log_dets,
          log_weights, filled, constants, conditionals, offsets):  # fmt: skip
    """Patterns ``first..last``: every row's fill per component, and its constant.

    ``filled[k, i]`` is row ``i``'s ``yhat`` under component ``k`` (rows
    counted from ``starts[first]``), ``constants[i, k]`` is ``log w_k - (d_o
    log 2 pi + log det Sigma_oo) / 2``; each pattern's ``C`` per component
    goes to ``conditionals[offsets[p - first]:]`` (K blocks of d_m x d_m).
    """
    K, D = means.shape
    base = starts[first]
    for p in prange(first, last):
        o = np.flatnonzero(observed[p])
        m = np.flatnonzero(~observed[p])
        do, dm = o.size, m.size
        L = np.empty((D, D))
        C = np.empty((dm, dm))
        B = np.empty((dm, do))
        unit = np.empty(dm)
        half = np.empty(dm)
        for k in range(K):
            log_det = log_dets[k] + _missing_block(
                precisions, k, o, m, L, C, B, unit, half
            )
            constant = log_weights[k] - 0.5 * (do * _LOG_2PI + log_det)
            at = offsets[p - first] + k * dm * dm
            for a in range(dm):
                for b in range(dm):
                    conditionals[at + a * dm + b] = C[a, b]
            for row in range(starts[p], starts[p + 1]):
                i = row - base
                x = order[row]
                for a in range(do):
                    filled[k, i, o[a]] = X[x, o[a]] - means[k, o[a]]
                for a in range(dm):
                    total = 0.0
                    for b in range(do):
                        total += B[a, b] * filled[k, i, o[b]]
                    filled[k, i, m[a]] = total
                constants[i, k] = constant


def _add_conditional(observed, first, last, masses, conditionals, offsets, second):
    """Add ``mass_pk C_pk`` to the missing block of ``second[k]``, each pattern."""
    K = second.shape[0]
    for p in range(first, last):
        m = np.flatnonzero(~observed[p])
        dm = m.size
        for k in range(K):
            at = offsets[p - first] + k * dm * dm
            mass = masses[p - first, k]
            for a in range(dm):
                for b in range(dm):
                    second[k, m[a], m[b]] += mass * conditionals[at + a * dm + b]


_fill_serial = numba.njit(**_JIT)(_fill)
_fill_parallel = numba.njit(parallel=True, **_JIT)(_fill)
_add_conditional = numba.njit(**_JIT)(_add_conditional)

#: Rows per chunk of the BLAS products (K x rows x D fills in memory).
CHUNK_ROWS = 8192
#: Below this many rows of a chunk the fills run in one thread.
PARALLEL_ROWS = 2048


def task_bounds(starts: np.ndarray, rows: int = CHUNK_ROWS) -> np.ndarray:
    """Pattern ranges of at most about ``rows`` rows (whole patterns), (T + 1,)."""
    n_patterns = starts.size - 1
    targets = np.arange(0, starts[-1], rows)
    bounds = np.searchsorted(starts, targets, side="left")
    return np.unique(np.concatenate([bounds, [0, n_patterns]]))


def compiled_incomplete_statistics(
    X, sample_weight, observed, starts, order, bounds, means, covariances, weights
):
    """``(S0 (K,), S1 (K, D), S2 (K, D, D), log p(x_o) (n_incomplete,))``.

    As :func:`mixtures.missing.incomplete_statistics`, rows in the order of
    ``order`` (the incomplete rows, grouped by pattern; pattern ``p`` holds
    ``order[starts[p]:starts[p + 1]]``), ``bounds`` from :func:`task_bounds`
    (the chunks of rows).
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    means = np.ascontiguousarray(means, dtype=np.float64)
    covariances = np.asarray(covariances, dtype=np.float64)
    K, D = means.shape
    lower = np.linalg.cholesky(covariances)
    eye = np.broadcast_to(np.eye(D), covariances.shape)
    inverse_lower = np.linalg.solve(lower, eye)
    # P = Sigma^-1 = L^-T L^-1, and U = L^-T is an upper factor with U U' = P.
    factors = np.ascontiguousarray(inverse_lower.transpose(0, 2, 1))
    precisions = np.ascontiguousarray(factors @ inverse_lower)
    log_dets = 2 * np.log(np.diagonal(lower, axis1=1, axis2=2)).sum(axis=1)
    log_weights = np.log(np.asarray(weights, dtype=np.float64))
    s0, s1, s2 = np.zeros(K), np.zeros((K, D)), np.zeros((K, D, D))
    log_prob = np.empty(order.size)
    for first, last in itertools.pairwise(bounds):
        a, b = starts[first], starts[last]
        filled = np.empty((K, b - a, D))
        constants = np.empty((b - a, K))
        sizes = K * (D - observed[first:last].sum(axis=1)) ** 2
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        conditionals = np.empty(offsets[-1])
        fill = _fill_parallel if b - a >= PARALLEL_ROWS else _fill_serial
        fill(X, observed, starts, order, first, last, means, precisions, log_dets,
             log_weights, filled, constants, conditionals, offsets)  # fmt: skip
        z = filled @ factors
        weighted = constants - 0.5 * np.einsum("knd,knd->nk", z, z)
        top = weighted.max(axis=1, keepdims=True)
        chunk_log_prob = top[:, 0] + np.log(np.exp(weighted - top).sum(axis=1))
        log_prob[a:b] = chunk_log_prob
        resp = np.exp(weighted - chunk_log_prob[:, None])
        resp *= sample_weight[order[a:b], None]
        s0 += resp.sum(axis=0)
        by_component = np.ascontiguousarray(resp.T)[:, np.newaxis, :]  # (K, 1, n)
        s1 += (by_component @ filled)[:, 0]
        s2 += (filled.transpose(0, 2, 1) * by_component) @ filled
        masses = np.add.reduceat(resp, starts[first:last] - a, axis=0)
        _add_conditional(observed, first, last, masses, conditionals, offsets, s2)
    return s0, s1, s2, log_prob
