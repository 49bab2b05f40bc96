"""The compiled pass over rows with missing values (numba).

The statistics of :func:`mixtures.missing.incomplete_statistics` (see that
module for the mathematics), computed the way the engine's fused pass
(:mod:`mixtures._kernel`) computes them for complete rows: block of rows by
block of rows, each block held transposed, ``(n_features, BLOCK)``, so the
inner loops run over the block's rows and vectorise, and nothing of size
(K, N, D) ever exists.

The only extra work is the fill. With the precision ``P = Sigma^-1`` of a
component and a pattern with observed coordinates ``o`` and missing ``m``:

* ``C = P_mm^-1`` is the conditional covariance of ``x_m`` given ``x_o``,
  and ``B = -C P_mo`` its regression on ``x_o - mu_o``;
* the observed block's log-determinant is ``log det Sigma + log det P_mm``;
* a row's fill about the component's mean, ``yhat = (x_o - mu_o,
  B (x_o - mu_o))``, has ``yhat' P yhat = (x_o - mu_o)' Sigma_oo^-1
  (x_o - mu_o)``, so the Mahalanobis term is the complete pass's loop over
  the filled block, with the component's own upper Cholesky factor of ``P``;
* the statistics are ``yhat`` and ``yhat yhat'`` (the complete pass's loops
  again) plus ``C`` on the missing block, weighted by the responsibility.

So per (pattern, component) one factorisation of ``P_mm`` (d_m x d_m), per
row and component ``d_m d_o`` operations for the fill; the rest is the same
O(D^2) arithmetic as a complete row. Rows are split into tasks that depend
only on their number (never on the threads) and the tasks' partial sums are
added in order, so the result is the same on one thread or sixteen.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from mixtures._kernel import (
    _JIT,
    BLOCK,
    SERIAL_BELOW,
    _component_weights,
    _mirror_upper,
    _parallel_lock,
    _responsibilities,
    _sum_tasks,
    n_tasks,
    precision_factors,
)
from mixtures._parallel import n_threads

__all__ = ["IncompleteRows", "compiled_incomplete_statistics"]

_LOG_2PI = math.log(2 * math.pi)
#: Runs of fewer rows than this are filled row by row (:func:`_block_fill`).
SHORT_RUN = 8
_TINY = math.sqrt(np.finfo(np.float64).tiny)


@numba.njit(**_JIT)
def _conditional(precisions, k, coords, p, do, L, inverse, tables, at):
    """``log det P_mm`` of pattern ``p`` under component ``k``; C into tables.

    ``tables[at:at + d_m^2]`` receives ``C = P_mm^-1``, row-major. ``L`` and
    ``inverse`` (D x D) are scratch; no array views are made (each would
    cost reference counting, per pattern and component).
    """
    D = precisions.shape[1]
    dm = D - do
    determinant = 1.0
    for a in range(dm):  # Cholesky of P_mm into L (lower)
        ma = coords[p, do + a]
        for b in range(a + 1):
            total = precisions[k, ma, coords[p, do + b]]
            for c in range(b):
                total -= L[a, c] * L[b, c]
            if a == b:
                L[a, a] = math.sqrt(total)
                inverse[a, a] = 1.0 / L[a, a]
                determinant *= L[a, a]
            else:
                L[a, b] = total * inverse[b, b]
    for j in range(dm):  # L^-1, lower
        for a in range(j + 1, dm):
            total = 0.0
            for c in range(j, a):
                total -= L[a, c] * inverse[c, j]
            inverse[a, j] = total * inverse[a, a]
    for a in range(dm):  # C = L^-T L^-1
        for b in range(a, dm):
            total = 0.0
            for c in range(b, dm):
                total += inverse[c, a] * inverse[c, b]
            tables[at + a * dm + b] = total
            tables[at + b * dm + a] = total
    return 2.0 * math.log(determinant)


@numba.njit(**_JIT)
def _pattern_tables(coords, n_observed, first, last, precisions, log_dets, log_weights):
    """C of patterns ``first..last - 1`` under every component.

    Returns ``offsets`` (n + 1,), the flat ``tables`` (pattern ``p``'s
    component ``k``'s C, d_m x d_m, at ``offsets[p - first] + k d_m^2``) and
    ``log_norm`` (n, K): ``log w_k - (d_o log 2 pi + log det Sigma_oo) / 2``.
    """
    K, D = precisions.shape[0], precisions.shape[1]
    n = last - first
    offsets = np.zeros(n + 1, np.int64)
    for p in range(first, last):
        offsets[p - first + 1] = offsets[p - first] + K * (D - n_observed[p]) ** 2
    tables = np.empty(offsets[n])
    log_norm = np.empty((n, K))
    L, inverse = np.empty((D, D)), np.empty((D, D))
    for p in range(first, last):
        do = n_observed[p]
        for k in range(K):
            at = offsets[p - first] + k * (D - do) ** 2
            log_det = log_dets[k] + _conditional(
                precisions, k, coords, p, do, L, inverse, tables, at
            )
            log_norm[p - first, k] = log_weights[k] - 0.5 * (do * _LOG_2PI + log_det)
    return offsets, tables, log_norm


@numba.njit(**_JIT)
def _block_runs(starts, pattern, start, rows, run_pattern, runs):
    """Split rows ``start..start + rows`` into runs of one pattern each.

    ``pattern`` is the pattern of row ``start``; writes the runs' patterns
    and bounds (relative to ``start``) and returns their number.
    """
    n_runs = 0
    i = 0
    while i < rows:
        while starts[pattern + 1] <= start + i:
            pattern += 1
        run_pattern[n_runs] = pattern
        runs[n_runs] = i
        n_runs += 1
        i = min(rows, starts[pattern + 1] - start)
    runs[n_runs] = rows
    return n_runs


@numba.njit(**_JIT)
def _observed_mask(mask, coords, n_observed, n_runs, run_pattern, runs):
    """``mask`` (D, BLOCK): 1 where the block's row observes the coordinate, else 0."""
    D = mask.shape[0]
    for r in range(n_runs):
        p = run_pattern[r]
        for a in range(D):
            value = 1.0 if a < n_observed[p] else 0.0
            target = coords[p, a]
            for i in range(runs[r], runs[r + 1]):
                mask[target, i] = value


@numba.njit(**_JIT)
def _block_fill(cts, logp, precisions, coords, n_observed, offsets, tables, log_norm,
                base, n_runs, run_pattern, runs, g):  # fmt: skip
    """The conditional fill of the holes into ``cts``, and the log-densities.

    On entry ``cts[k]`` (D, BLOCK) holds the rows about component ``k``'s
    mean with the holes at 0, and ``logp[k]`` minus half their Mahalanobis
    term. With ``g = (P ct)_m = P_mo ct_o``, the fill is ``-C g`` and the
    observed coordinates' term is that one minus ``g' C g``; ``logp`` gets
    it and the constant. Runs of a few rows go row by row (a loop over a
    run's rows would cost more to start than to run), longer ones
    vectorise over their rows.
    """
    K, D = cts.shape[0], cts.shape[1]
    for r in range(n_runs):
        p = run_pattern[r]
        i0, i1 = runs[r], runs[r + 1]
        do = n_observed[p]
        for k in range(K):
            at = offsets[p - base] + k * (D - do) * (D - do)
            if i1 - i0 < SHORT_RUN:
                _rows_fill(i0, i1, k, p, do, at, precisions, coords, tables, cts[k],
                           g, logp)  # fmt: skip
            else:
                _run_fill(i0, i1, k, p, do, at, precisions, coords, tables, cts[k],
                          g, logp)  # fmt: skip
            constant = log_norm[p - base, k]
            for i in range(i0, i1):
                logp[k, i] += constant


@numba.njit(**_JIT)
def _run_fill(i0, i1, k, p, do, at, precisions, coords, tables, ct, g, logp):
    """:func:`_block_fill` of one run, vectorised over its rows ``i0..i1 - 1``.

    The loops run over 1-D slices from 0: LLVM vectorises those, not loops
    over 2-D arrays or from an index it cannot prove non-negative.
    """
    D = ct.shape[0]
    dm = D - do
    n = i1 - i0
    log_density = logp[k, i0:i1]
    for a in range(dm):
        ma = coords[p, do + a]
        target = g[a, i0:i1]
        target[:] = 0.0
        for b in range(do):
            source = ct[coords[p, b], i0:i1]
            f = precisions[k, ma, coords[p, b]]
            for i in range(n):
                target[i] += f * source[i]
    for a in range(dm):
        fill = ct[coords[p, do + a], i0:i1]
        for c in range(dm):
            coefficient = tables[at + a * dm + c]
            source = g[c, i0:i1]
            for i in range(n):
                fill[i] -= coefficient * source[i]
        source = g[a, i0:i1]
        for i in range(n):
            log_density[i] -= 0.5 * source[i] * fill[i]


@numba.njit(**_JIT)
def _rows_fill(i0, i1, k, p, do, at, precisions, coords, tables, ct, g, logp):
    """:func:`_block_fill` of one short run, row by row."""
    D = ct.shape[0]
    dm = D - do
    for i in range(i0, i1):
        for a in range(dm):
            ma = coords[p, do + a]
            total = 0.0
            for b in range(do):
                total += precisions[k, ma, coords[p, b]] * ct[coords[p, b], i]
            g[a, i] = total
        for a in range(dm):
            total = 0.0
            for c in range(dm):
                total -= tables[at + a * dm + c] * g[c, i]
            ct[coords[p, do + a], i] = total
            logp[k, i] -= 0.5 * g[a, i] * total


@numba.njit(**_JIT)
def _block_moments(cts, logp, rows, coords, n_observed, offsets, tables, base,
                   n_runs, run_pattern, runs, resp, weighted, mass, first,
                   second):  # fmt: skip
    """Add ``sum r``, ``sum r yhat`` and ``sum r (yhat yhat' + C)`` (upper).

    ``logp`` (K, BLOCK) holds the weighted responsibilities.
    """
    K, D = cts.shape[0], cts.shape[1]
    for k in range(K):
        mass[k] += _component_weights(logp[k], rows, _TINY, resp)
        ct = cts[k]
        for j in range(D):
            total = 0.0
            for i in range(rows):
                weighted[i] = resp[i] * ct[j, i]
                total += weighted[i]
            first[k, j] += total
            for c in range(j, D):
                total = 0.0
                for i in range(rows):
                    total += weighted[i] * ct[c, i]
                second[k, j, c] += total
        for r in range(n_runs):
            p = run_pattern[r]
            run_mass = 0.0
            for i in range(runs[r], runs[r + 1]):
                run_mass += resp[i]
            do = n_observed[p]
            dm = D - do
            at = offsets[p - base] + k * dm * dm
            for a in range(dm):
                for b in range(a, dm):  # coords are increasing: m[a] <= m[b]
                    second[k, coords[p, do + a], coords[p, do + b]] += (
                        run_mass * tables[at + a * dm + b]
                    )


@numba.njit(**_JIT)
def _task(X, w, starts, coords, n_observed, row0, row1, means, factors, precisions,
          log_dets, log_weights, log_prob, labels, mass, first, second):  # fmt: skip
    """Rows ``row0..row1 - 1``: log p(x_o) and labels out, sums into the partials."""
    K, D = means.shape
    base = np.searchsorted(starts, row0, side="right") - 1
    last = np.searchsorted(starts, row1 - 1, side="right")
    offsets, tables, log_norm = _pattern_tables(
        coords, n_observed, base, last, precisions, log_dets, log_weights
    )
    xt, mask, g = np.empty((D, BLOCK)), np.empty((D, BLOCK)), np.empty((D, BLOCK))
    cts = np.empty((K, D, BLOCK))
    maha, y = np.empty(BLOCK), np.empty(BLOCK)
    resp, weighted = np.empty(BLOCK), np.empty(BLOCK)
    logp = np.empty((K, BLOCK))
    run_pattern = np.empty(BLOCK, np.int64)
    runs = np.empty(BLOCK + 1, np.int64)
    sums = np.zeros(2)
    pattern = base
    for start in range(row0, row1, BLOCK):
        rows = min(BLOCK, row1 - start)
        for j in range(D):
            for i in range(rows):
                xt[j, i] = X[start + i, j]
        n_runs = _block_runs(starts, pattern, start, rows, run_pattern, runs)
        pattern = run_pattern[n_runs - 1]
        _observed_mask(mask, coords, n_observed, n_runs, run_pattern, runs)
        for k in range(K):
            # The rows about the mean, holes at 0, and half their Mahalanobis
            # term. Written here, not in a function called per component:
            # those calls cost more than these loops.
            ct = cts[k]
            for j in range(D):
                mu = means[k, j]
                for i in range(rows):
                    ct[j, i] = (xt[j, i] - mu) * mask[j, i]
            maha[:rows] = 0.0
            for j in range(D):
                y[:rows] = 0.0
                for c in range(j + 1):  # the factor is upper triangular
                    f = factors[k, c, j]
                    for i in range(rows):
                        y[i] += ct[c, i] * f
                for i in range(rows):
                    maha[i] += y[i] * y[i]
            for i in range(rows):
                logp[k, i] = -0.5 * maha[i]
        _block_fill(cts, logp, precisions, coords, n_observed, offsets, tables,
                    log_norm, base, n_runs, run_pattern, runs, g)  # fmt: skip
        block_ll, block_w = _responsibilities(logp, rows, w, start, log_prob, labels)
        sums[0] += block_ll
        sums[1] += block_w
        _block_moments(cts, logp, rows, coords, n_observed, offsets, tables, base,
                       n_runs, run_pattern, runs, resp, weighted, mass, first,
                       second)  # fmt: skip
    return sums


@numba.njit(**_JIT)
def _partials(n_rows, K, D, tasks):
    """``log_prob`` (n_rows,) and the tasks' zeroed partial sums."""
    log_prob = np.empty(n_rows)
    labels = np.empty(n_rows, np.int64)
    mass = np.zeros((tasks, K))
    first = np.zeros((tasks, K, D))
    second = np.zeros((tasks, K, D, D))
    return log_prob, labels, mass, first, second, np.zeros((tasks, 2))


@numba.njit(**_JIT)
def _totals(mass, first, second, sums, log_prob, labels):
    """The tasks' sums added in task order, the second moments mirrored."""
    totals = _sum_tasks(mass, first, second, sums)
    _mirror_upper(totals[2])
    return totals[0], totals[1], totals[2], log_prob, labels


# A serial and a parallel driver: separate functions, not one compiled twice,
# since numba's disk cache keys compiled code by the function's name and line
# and would hand one the other's code; the serial one never starts the pool.


@numba.njit(**_JIT)
def _run_serial(X, w, starts, coords, n_observed, bounds, means, factors,
                precisions, log_dets, log_weights):  # fmt: skip
    tasks = bounds.size - 1
    log_prob, labels, mass, first, second, sums = _partials(
        X.shape[0], *means.shape, tasks
    )
    for t in range(tasks):
        sums[t] = _task(X, w, starts, coords, n_observed, bounds[t], bounds[t + 1],
                        means, factors, precisions, log_dets, log_weights, log_prob,
                        labels, mass[t], first[t], second[t])  # fmt: skip
    return _totals(mass, first, second, sums, log_prob, labels)


@numba.njit(parallel=True, **_JIT)
def _run_parallel(X, w, starts, coords, n_observed, bounds, means, factors,
                  precisions, log_dets, log_weights):  # fmt: skip
    tasks = bounds.size - 1
    log_prob, labels, mass, first, second, sums = _partials(
        X.shape[0], *means.shape, tasks
    )
    for t in prange(tasks):
        sums[t] = _task(X, w, starts, coords, n_observed, bounds[t], bounds[t + 1],
                        means, factors, precisions, log_dets, log_weights, log_prob,
                        labels, mass[t], first[t], second[t])  # fmt: skip
    return _totals(mass, first, second, sums, log_prob, labels)


@numba.njit(**_JIT)
def _precisions(factors):
    """``P = U U'`` (K, D, D) and ``log det Sigma = -2 sum log U_jj`` (K,)."""
    K, D = factors.shape[0], factors.shape[1]
    precisions = np.zeros((K, D, D))
    log_dets = np.zeros(K)
    for k in range(K):
        for a in range(D):
            log_dets[k] -= 2.0 * math.log(factors[k, a, a])
            for b in range(a, D):
                total = 0.0
                for c in range(b, D):  # U is upper triangular
                    total += factors[k, a, c] * factors[k, b, c]
                precisions[k, a, b] = total
                precisions[k, b, a] = total
    return precisions, log_dets


class IncompleteRows:
    """The incomplete rows of a data set, laid out once for every pass.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The data, NaN where missing.
    patterns : mixtures.missing.MissingPatterns
        Its rows grouped by pattern (``patterns.order``, ``patterns.starts``).

    The rows are gathered in pattern order (holes set to 0, never read),
    each pattern's coordinates listed observed first then missing, both
    increasing, and the rows split into tasks of whole blocks by their
    number alone.
    """

    def __init__(self, X: np.ndarray, patterns) -> None:
        rows = np.asarray(X, dtype=np.float64)[patterns.order]
        self.X = np.ascontiguousarray(np.nan_to_num(rows, nan=0.0))
        self.order = patterns.order
        self.starts = np.ascontiguousarray(patterns.starts, dtype=np.int64)
        observed = patterns.observed
        self.n_observed = observed.sum(axis=1).astype(np.int64)
        # A stable sort of ~observed lists observed coordinates, then missing.
        self.coords = np.ascontiguousarray(
            np.argsort(~observed, axis=1, kind="stable"), dtype=np.int64
        )
        n, D = self.X.shape
        tasks = 1 if n < 4096 else n_tasks(n, 1, D * D + D)
        blocks = -(-n // BLOCK)
        self.bounds = np.minimum(
            (np.arange(tasks + 1) * blocks) // tasks * BLOCK, n
        ).astype(np.int64)

    @property
    def n_rows(self) -> int:
        """Number of incomplete rows."""
        return int(self.X.shape[0])


def compiled_incomplete_statistics(
    layout: IncompleteRows, sample_weight, means, covariances, weights
):
    """``(S0 (K,), S1 (K, D), S2 (K, D, D), log p(x_o), labels)``.

    As :func:`mixtures.missing.incomplete_statistics`: moments about the
    current ``means``; ``log p(x_o)`` and the most probable component
    (``labels``), both (n_incomplete,), of the rows in the order of
    ``layout.order``; ``sample_weight`` (n_samples,) is indexed by the
    data's rows.
    """
    means = np.ascontiguousarray(means, dtype=np.float64)
    covariances = np.ascontiguousarray(covariances, dtype=np.float64)
    K, D = means.shape
    factors, ok = precision_factors(covariances, np.zeros(D))
    if not ok:  # not positive definite: LinAlgError, as NumPy's path raises
        np.linalg.cholesky(covariances)
        raise np.linalg.LinAlgError("a covariance is not positive definite.")
    precisions, log_dets = _precisions(factors)
    arguments = (
        layout.X,
        np.ascontiguousarray(np.asarray(sample_weight, dtype=np.float64)[layout.order]),
        layout.starts,
        layout.coords,
        layout.n_observed,
        layout.bounds,
        means,
        factors,
        precisions,
        log_dets,
        np.log(np.asarray(weights, dtype=np.float64)),
    )
    tasks = layout.bounds.size - 1
    threads = min(n_threads(), tasks, numba.config.NUMBA_NUM_THREADS)
    small = layout.n_rows * K * D < SERIAL_BELOW
    if small or threads <= 1 or not _parallel_lock.acquire(blocking=False):
        return _run_serial(*arguments)
    try:
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            return _run_parallel(*arguments)
        finally:
            numba.set_num_threads(previous)
    finally:
        _parallel_lock.release()
