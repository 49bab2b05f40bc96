"""The compiled fused EM pass: E-step and sufficient statistics in one sweep.

One pass over the data computes, block of rows by block of rows and
component by component, everything EM needs from X: the centred rows, their
product with the precision's Cholesky factor, the squared norm, the
log-sum-exp over components, the responsibilities and the r-weighted first
and second moments about the component means. A block's rows are held
transposed, ``(n_features, BLOCK)``, so every inner loop runs over the block's
rows, contiguously, and vectorises; nothing of size (K, N, D) or (N, K) ever
exists. Memory is O(N D) for X plus O(tasks K D^2) of partial sums.

Two kernels cover all covariance models (:attr:`CovarianceModel.kernel`):

* ``"full"`` takes (K, D, D) upper-triangular precision factors: 'full',
  'tied' (its one factor repeated) and every constrained mclust model, which
  all store full covariances. It returns (K, D, D) second moments; a model
  that shares its covariance sums them (``moments_from_kernel``).
* ``"diag"`` takes (K, D) precision factors: 'diag', and 'spherical' with its
  factor repeated over features. It returns (K, D) second moments, which
  'spherical' sums over features.

So the model-specific work is only the small per-component M-step.

Determinism and precision
-------------------------
The rows are split into at most :data:`MAX_TASKS` tasks of whole blocks; the
split depends only on N, never on the number of threads. Each task sums its
blocks in order, and the tasks' partial sums are added in task order, so the
result is bit-for-bit the same on one thread or sixteen. Float32 data are
processed in float32 within a block (at most :data:`BLOCK` rows), and block
sums are accumulated in float64; log-densities, the log-sum-exp and the
log-likelihood are float64 throughout. Fast-math is limited to
reassociation and contraction (no assumptions about NaN or infinity, which
mark empty components), and the compiled code is the same for every task.

Compiled code is cached on disk (numba's ``cache=True``), so only the first
use on a machine pays for compilation; see the README for the cost.
"""

from __future__ import annotations

import math
import threading
from typing import NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from mixtures._parallel import n_threads

__all__ = ["BLOCK", "MAX_TASKS", "PassResult", "fused_pass", "n_tasks"]

#: Rows per block: the unit of vectorised work and of float32 partial sums.
BLOCK = 128
#: At most this many tasks (contiguous runs of blocks) per pass, and at
#: least this many rows per task (fewer buffers to set up on small data).
MAX_TASKS = 64
MIN_TASK_ROWS = 4096
#: Memory for the tasks' partial sums (64 MiB): bounds the tasks when K D^2 is
#: large, so memory stays O(N D) plus a constant.
PARTIAL_BYTES = 1 << 26
#: Below this many (rows x components x features) one thread does the work:
#: starting the thread pool costs more than it saves.
SERIAL_BELOW = 1 << 17

_FASTMATH = {"reassoc", "contract"}
_JIT = {"cache": True, "nogil": True, "fastmath": _FASTMATH, "error_model": "numpy"}

# numba's default threading layer may not be entered from two Python threads
# at once; a second caller takes the serial kernel instead (same result).
_parallel_lock = threading.Lock()


# ---------------------------------------------------------------------------
# A vectorisable exponential
#
# libm's exp is a function call the compiler cannot vectorise; it took most
# of the time of a pass when D is small. This one is Cody & Waite's argument
# reduction (x = n ln 2 + r, |r| <= ln(2)/2, ln 2 split in two parts so n ln 2
# is exact) and the degree-13 Taylor polynomial of e^r, whose truncation error
# (|r|^14 / 14! < 5e-18) is below float64's rounding; 2^n is built from its
# bits. Within 1 ulp of numpy.exp on [-700, 0] (tests/test_kernel.py).
# W. J. Cody and W. Waite, Software Manual for the Elementary Functions,
# Prentice-Hall, 1980, chapter 6.

_LOG2_E = 1.4426950408889634
_LN2_HIGH = 6.93147180369123816490e-01  # ln 2 to 32 bits: n * it is exact
_LN2_LOW = 1.90821492927058770002e-10


@intrinsic
def _float_from_bits(typingctx, bits):
    """Reinterpret an int64's bits as a float64 (an LLVM bitcast)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@numba.njit(inline="always", fastmath={"contract"}, cache=True)
def _exp_nonpositive(x):
    """``exp(x)`` for x in [-700, 0], to 1 ulp, in a form that vectorises."""
    n = np.floor(x * _LOG2_E + 0.5)
    r = (x - n * _LN2_HIGH) - n * _LN2_LOW
    p = 1.0 / 6227020800.0  # 1/13!
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _float_from_bits((np.int64(n) + 1023) << 52)


@numba.njit(**_JIT)
def _exp_array(x):
    """:func:`_exp_nonpositive` of every element (for tests and inspection)."""
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = _exp_nonpositive(x[i])
    return out


# ---------------------------------------------------------------------------
# The compiled kernels


@numba.njit(**_JIT)
def _setup(X, weights, means, factors, log_det):
    """Parameters in the pass's frame, mirroring passes._prepare.

    Returns ``(origin, local_means, centres, log_norm, local_factors)``: the
    mixture's mean and the means relative to it in X's dtype, the centres
    the moments are about (float64, exactly what the dtype can represent),
    ``log w_k + log det P_k - D/2 log 2 pi`` (float64) and the factors in
    X's dtype. ``log_det`` is ``log det P_k``, shape (K,).
    """
    dtype = X.dtype
    n_components, n_features = means.shape
    origin64 = np.zeros(n_features)
    for k in range(n_components):
        for j in range(n_features):
            origin64[j] += weights[k] * means[k, j]
    origin = origin64.astype(dtype)
    local_means = np.empty((n_components, n_features), dtype)
    centres = np.empty((n_components, n_features))
    log_norm = np.empty(n_components)
    for k in range(n_components):
        for j in range(n_features):
            shift = np.float64(origin[j])
            local_means[k, j] = means[k, j] - shift
            centres[k, j] = shift + np.float64(local_means[k, j])
        log_norm[k] = (
            np.log(weights[k]) + log_det[k] - 0.5 * n_features * np.log(2 * np.pi)
        )
    return origin, local_means, centres, log_norm, factors.astype(dtype)


@numba.njit(**_JIT)
def _log_det_full(factors):
    """``log det P_k`` from (K, D, D) triangular factors."""
    out = np.zeros(factors.shape[0])
    for k in range(factors.shape[0]):
        for j in range(factors.shape[1]):
            out[k] += np.log(factors[k, j, j])
    return out


@numba.njit(**_JIT)
def _log_det_diag(precisions):
    """``log det P_k`` from (K, D) precisions (squared factors)."""
    out = np.zeros(precisions.shape[0])
    for k in range(precisions.shape[0]):
        for j in range(precisions.shape[1]):
            out[k] += 0.5 * np.log(precisions[k, j])
    return out


@numba.njit(**_JIT)
def _load_block(X, origin, start, rows, xt):
    """Rows ``start:start+rows`` of X, moved to the origin, transposed into xt."""
    for j in range(X.shape[1]):
        shift = origin[j]
        for i in range(rows):
            xt[j, i] = X[start + i, j] - shift


@numba.njit(**_JIT)
def _responsibilities(logp, rows, sample_weight, start, log_prob, labels):
    """Turn logp (K, BLOCK) into weighted responsibilities, in place.

    Writes ``log p(x)`` of each row into ``log_prob`` (and the most probable
    component into ``labels`` unless it is empty) and returns the block's
    ``(sum_n w_n log p(x_n), sum_n w_n)`` (rows of weight 0 left out). The
    callers flush responsibilities below ``sqrt(tiny)`` of X's dtype to zero
    (1.5e-154 in float64, 1.1e-19 in float32): their products with the data
    would be subnormal numbers, whose arithmetic is a hundred times slower,
    and no statistic of a component that is not empty can see them.
    """
    n_components = logp.shape[0]
    peak = np.full(rows, -np.inf)
    for k in range(n_components):
        for i in range(rows):
            peak[i] = max(peak[i], logp[k, i])
    if labels.shape[0]:
        for i in range(rows):
            labels[start + i] = 0
        for k in range(n_components - 1, -1, -1):  # the first maximum wins
            for i in range(rows):
                if logp[k, i] == peak[i]:
                    labels[start + i] = k
    total = np.zeros(rows)
    for k in range(n_components):
        for i in range(rows):
            # Branch-free; exp(-700) is still a normal float64.
            value = _exp_nonpositive(max(logp[k, i] - peak[i], -700.0))
            logp[k, i] = value
            total[i] += value
    log_likelihood = 0.0
    weight_sum = 0.0
    for i in range(rows):
        weight = sample_weight[start + i]
        if peak[i] > -np.inf:
            value = np.log(total[i]) + peak[i]
            total[i] = weight / total[i]
        else:  # no component explains the row (all weights zero)
            value = -np.inf
            total[i] = 0.0
        log_prob[start + i] = value
        if weight != 0.0:
            log_likelihood += weight * value
            weight_sum += weight
    for k in range(n_components):
        for i in range(rows):
            logp[k, i] *= total[i]
    return log_likelihood, weight_sum


@numba.njit(**_JIT)
def _component_weights(weighted, rows, tiny, resp):
    """One component's weighted responsibilities into ``resp`` (X's dtype).

    Values below ``tiny`` are flushed to zero (see :func:`_responsibilities`).
    Returns their sum, in float64.
    """
    total = 0.0
    for i in range(rows):
        value = weighted[i]
        value = value if value >= tiny else 0.0
        total += value
        resp[i] = value
    return total


@numba.njit(**_JIT)
def _partials(n_samples, n_components, moment_shape, tasks, with_moments):
    """The pass's outputs and per-task partial sums, zeroed."""
    log_prob = np.empty(n_samples)
    labels = np.zeros(0 if with_moments else n_samples, np.int64)
    mass = np.zeros((tasks, n_components))
    first = np.zeros((tasks, n_components, moment_shape[0]))
    second = np.zeros((tasks, n_components, *moment_shape))
    sums = np.zeros((tasks, 2))
    return log_prob, labels, mass, first, second, sums


@numba.njit(**_JIT)
def _full_task(
    X, sample_weight, origin, means, prec_chol, log_norm, tiny, first_block,
    last_block, log_prob, labels, with_moments, mass, first, second,
):  # fmt: skip
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    dtype = X.dtype
    xt = np.empty((n_features, BLOCK), dtype)
    ct = np.empty((n_features, BLOCK), dtype)
    y = np.empty(BLOCK, dtype)
    maha = np.empty(BLOCK, dtype)
    resp = np.empty(BLOCK, dtype)
    weighted = np.empty(BLOCK, dtype)
    logp = np.empty((n_components, BLOCK))
    log_likelihood = 0.0
    weight_sum = 0.0
    for block in range(first_block, last_block):
        start = block * BLOCK
        rows = min(BLOCK, n_samples - start)
        _load_block(X, origin, start, rows, xt)
        # E-step: log w_k + log N(x | mu_k, Sigma_k) for every row and k.
        for k in range(n_components):
            for j in range(n_features):
                mu = means[k, j]
                for i in range(rows):
                    ct[j, i] = xt[j, i] - mu
            maha[:rows] = 0
            for j in range(n_features):
                y[:rows] = 0
                for m in range(j + 1):  # P is upper triangular
                    p = prec_chol[k, m, j]
                    for i in range(rows):
                        y[i] += ct[m, i] * p
                for i in range(rows):
                    maha[i] += y[i] * y[i]
            for i in range(rows):
                logp[k, i] = log_norm[k] - 0.5 * maha[i]
        block_ll, block_w = _responsibilities(
            logp, rows, sample_weight, start, log_prob, labels
        )
        log_likelihood += block_ll
        weight_sum += block_w
        if not with_moments:
            continue
        # Moments about the means, summed over the block in X's dtype.
        for k in range(n_components):
            mass[k] += _component_weights(logp[k], rows, tiny, resp)
            for j in range(n_features):
                mu = means[k, j]
                for i in range(rows):
                    ct[j, i] = xt[j, i] - mu
            for j in range(n_features):
                total = dtype.type(0)
                for i in range(rows):
                    weighted[i] = resp[i] * ct[j, i]
                    total += weighted[i]
                first[k, j] += total
                for m in range(j, n_features):
                    total = dtype.type(0)
                    for i in range(rows):
                        total += weighted[i] * ct[m, i]
                    second[k, j, m] += total
    return log_likelihood, weight_sum


@numba.njit(**_JIT)
def _diag_task(
    X, sample_weight, origin, means, precisions, log_norm, tiny, first_block,
    last_block, log_prob, labels, with_moments, mass, first, second,
):  # fmt: skip
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    dtype = X.dtype
    xt = np.empty((n_features, BLOCK), dtype)
    maha = np.empty(BLOCK, dtype)
    resp = np.empty(BLOCK, dtype)
    logp = np.empty((n_components, BLOCK))
    log_likelihood = 0.0
    weight_sum = 0.0
    for block in range(first_block, last_block):
        start = block * BLOCK
        rows = min(BLOCK, n_samples - start)
        _load_block(X, origin, start, rows, xt)
        for k in range(n_components):
            maha[:rows] = 0
            for j in range(n_features):
                mu = means[k, j]
                p = precisions[k, j]
                for i in range(rows):
                    t = xt[j, i] - mu
                    maha[i] += t * t * p
            for i in range(rows):
                logp[k, i] = log_norm[k] - 0.5 * maha[i]
        block_ll, block_w = _responsibilities(
            logp, rows, sample_weight, start, log_prob, labels
        )
        log_likelihood += block_ll
        weight_sum += block_w
        if not with_moments:
            continue
        for k in range(n_components):
            mass[k] += _component_weights(logp[k], rows, tiny, resp)
            for j in range(n_features):
                mu = means[k, j]
                s1 = dtype.type(0)
                s2 = dtype.type(0)
                for i in range(rows):
                    t = xt[j, i] - mu
                    rt = resp[i] * t
                    s1 += rt
                    s2 += rt * t
                first[k, j] += s1
                second[k, j] += s2
    return log_likelihood, weight_sum


@numba.njit(**_JIT)
def precision_factors(covariances, floor):
    """Upper-triangular precision factors of (K, D, D) covariances, or None.

    ``P_k = L_k^-T`` with ``L_k`` the lower Cholesky factor of ``Sigma_k``:
    the compiled form of the usual case of
    :meth:`mixtures.covariance.Full.precision_cholesky`. Returns
    ``(factors, ok)``; ``ok`` is False as soon as a covariance is not
    positive definite, is not finite or has a squared pivot below the
    per-feature ``floor`` (D,), and the caller then takes the careful path.
    """
    n_components, n_features, _ = covariances.shape
    factors = np.zeros((n_components, n_features, n_features))
    lower = np.zeros((n_features, n_features))
    for k in range(n_components):
        lower[:] = 0.0
        for j in range(n_features):
            pivot = covariances[k, j, j]
            for m in range(j):
                pivot -= lower[j, m] * lower[j, m]
            if not (pivot >= floor[j] and pivot > 0.0 and pivot < np.inf):
                return factors, False
            lower[j, j] = np.sqrt(pivot)
            for i in range(j + 1, n_features):
                value = covariances[k, i, j]
                for m in range(j):
                    value -= lower[i, m] * lower[j, m]
                lower[i, j] = value / lower[j, j]
        # Column c of L^-1 by forward substitution; P = (L^-1)^T.
        for c in range(n_features):
            for i in range(c, n_features):
                value = 1.0 if i == c else 0.0
                for m in range(c, i):
                    value -= lower[i, m] * factors[k, c, m]
                factors[k, c, i] = value / lower[i, i]
    return factors, True


def n_tasks(n_samples: int, n_components: int = 1, moment_size: int = 1) -> int:
    """Tasks of a pass: from the problem's shape only, never from the threads.

    At most :data:`MAX_TASKS`, at least :data:`MIN_TASK_ROWS` rows each, and
    few enough that the tasks' partial sums (``moment_size`` numbers per
    component: D^2 or D) stay within :data:`PARTIAL_BYTES`.
    """
    per_task = 8 * n_components * (2 + moment_size)
    return max(1, min(MAX_TASKS, n_samples // MIN_TASK_ROWS, PARTIAL_BYTES // per_task))


@numba.njit(**_JIT)
def _task_bounds(n_samples, tasks):
    n_blocks = (n_samples + BLOCK - 1) // BLOCK
    return (np.arange(tasks + 1) * n_blocks) // tasks


@numba.njit(**_JIT)
def _mirror_upper(second):
    """Fill the lower triangles of (K, D, D) from the accumulated upper ones."""
    for k in range(second.shape[0]):
        for j in range(second.shape[1]):
            for m in range(j):
                second[k, j, m] = second[k, m, j]


@numba.njit(**_JIT)
def _sum_tasks(mass, first, second, sums):
    """Partial sums added in task order."""
    total_mass = mass[0].copy()
    total_first = first[0].copy()
    total_second = second[0].copy()
    log_likelihood, weight_sum = sums[0, 0], sums[0, 1]
    for t in range(1, mass.shape[0]):
        total_mass += mass[t]
        total_first += first[t]
        total_second += second[t]
        log_likelihood += sums[t, 0]
        weight_sum += sums[t, 1]
    return total_mass, total_first, total_second, log_likelihood, weight_sum


# A serial and a parallel driver per kernel: separate compiled functions (not
# one with a flag, nor closures, which numba's disk cache cannot tell apart),
# so each is cached on its own and the serial one never starts the pool. Each
# returns (mass, first, second, log_likelihood, weight_sum, log_prob, centres).


@numba.njit(**_JIT)
def _full_serial(X, w, weights, means, factors, tiny, tasks, with_moments):
    origin, local, centres, log_norm, fac = _setup(
        X, weights, means, factors, _log_det_full(factors)
    )
    n_samples, n_features = X.shape
    bounds = _task_bounds(n_samples, tasks)
    log_prob, labels, mass, first, second, sums = _partials(
        n_samples, means.shape[0], (n_features, n_features), tasks, with_moments
    )
    for t in range(tasks):
        sums[t] = _full_task(X, w, origin, local, fac, log_norm, tiny, bounds[t],
                             bounds[t + 1], log_prob, labels, with_moments, mass[t],
                             first[t], second[t])  # fmt: skip
    totals = _sum_tasks(mass, first, second, sums)
    _mirror_upper(totals[2])
    return (*totals, log_prob, centres, labels)


@numba.njit(parallel=True, **_JIT)
def _full_parallel(X, w, weights, means, factors, tiny, tasks, with_moments):
    origin, local, centres, log_norm, fac = _setup(
        X, weights, means, factors, _log_det_full(factors)
    )
    n_samples, n_features = X.shape
    bounds = _task_bounds(n_samples, tasks)
    log_prob, labels, mass, first, second, sums = _partials(
        n_samples, means.shape[0], (n_features, n_features), tasks, with_moments
    )
    for t in prange(tasks):
        sums[t] = _full_task(X, w, origin, local, fac, log_norm, tiny, bounds[t],
                             bounds[t + 1], log_prob, labels, with_moments, mass[t],
                             first[t], second[t])  # fmt: skip
    totals = _sum_tasks(mass, first, second, sums)
    _mirror_upper(totals[2])
    return (*totals, log_prob, centres, labels)


@numba.njit(**_JIT)
def _diag_serial(X, w, weights, means, factors, tiny, tasks, with_moments):
    origin, local, centres, log_norm, fac = _setup(
        X, weights, means, factors, _log_det_diag(factors)
    )
    n_samples, n_features = X.shape
    bounds = _task_bounds(n_samples, tasks)
    log_prob, labels, mass, first, second, sums = _partials(
        n_samples, means.shape[0], (n_features,), tasks, with_moments
    )
    for t in range(tasks):
        sums[t] = _diag_task(X, w, origin, local, fac, log_norm, tiny, bounds[t],
                             bounds[t + 1], log_prob, labels, with_moments, mass[t],
                             first[t], second[t])  # fmt: skip
    totals = _sum_tasks(mass, first, second, sums)
    return (*totals, log_prob, centres, labels)


@numba.njit(parallel=True, **_JIT)
def _diag_parallel(X, w, weights, means, factors, tiny, tasks, with_moments):
    origin, local, centres, log_norm, fac = _setup(
        X, weights, means, factors, _log_det_diag(factors)
    )
    n_samples, n_features = X.shape
    bounds = _task_bounds(n_samples, tasks)
    log_prob, labels, mass, first, second, sums = _partials(
        n_samples, means.shape[0], (n_features,), tasks, with_moments
    )
    for t in prange(tasks):
        sums[t] = _diag_task(X, w, origin, local, fac, log_norm, tiny, bounds[t],
                             bounds[t + 1], log_prob, labels, with_moments, mass[t],
                             first[t], second[t])  # fmt: skip
    totals = _sum_tasks(mass, first, second, sums)
    return (*totals, log_prob, centres, labels)


_RUNNERS = {
    "full": (_full_serial, _full_parallel),
    "diag": (_diag_serial, _diag_parallel),
}
_TINY = {np.dtype(t): math.sqrt(np.finfo(t).tiny) for t in (np.float32, np.float64)}


class PassResult(NamedTuple):
    """What one compiled pass returns (all float64)."""

    #: (K,) ``sum_n w_n r_nk``.
    mass: np.ndarray
    #: (K, D) ``sum_n w_n r_nk (x_n - c_k)``.
    first: np.ndarray
    #: (K, D, D) ``sum_n w_n r_nk (x_n - c_k)(x_n - c_k)^T``, or its (K, D)
    #: diagonal for "diag".
    second: np.ndarray
    #: ``sum_n w_n log p(x_n)`` over rows of positive weight.
    log_likelihood: float
    #: ``sum_n w_n``.
    weight_sum: float
    #: (N,) ``log p(x_n)``.
    log_prob: np.ndarray
    #: (K, D) the centres ``c_k``: the means as X's dtype represents them
    #: relative to the mixture's mean.
    centres: np.ndarray
    #: (N,) the most probable component of each row, when asked for
    #: (``with_moments=False``); else empty.
    labels: np.ndarray


def fused_pass(
    X: np.ndarray,
    sample_weight: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    factors: np.ndarray,
    kind: str,
    threads: int | None = None,
    with_moments: bool = True,
) -> PassResult:
    """One compiled pass over X: the E-step and the M-step's statistics.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64
    sample_weight : ndarray of shape (n_samples,)
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    factors : ndarray, float64
        For ``kind="full"``, (K, D, D) upper-triangular Cholesky factors of
        the precisions; for "diag", (K, D) precisions (squared factors).
    kind : {"full", "diag"}
    threads : int, optional
        Threads for the parallel kernel; None means ``GMMLAB_NUM_THREADS``,
        else the usable cores (:func:`mixtures._parallel.n_threads`). The
        result does not depend on it.
    with_moments : bool, default=True
        False scores the rows only: ``log_prob`` and ``labels``, and zero
        moments.

    Returns
    -------
    PassResult
    """
    n_samples, n_features = X.shape
    if n_samples < MIN_TASK_ROWS:
        tasks = 1  # what n_tasks says, without its arithmetic (small data)
    else:
        moment_size = factors.shape[-1] ** 2 if kind == "full" else n_features
        tasks = n_tasks(n_samples, means.shape[0], moment_size + n_features)
    run_serial, run_parallel = _RUNNERS[kind]
    arguments = (
        X if X.flags.c_contiguous else np.ascontiguousarray(X),
        np.ascontiguousarray(sample_weight, dtype=np.float64),
        np.ascontiguousarray(weights, dtype=np.float64),
        np.ascontiguousarray(means, dtype=np.float64),
        np.ascontiguousarray(factors, dtype=np.float64),
        _TINY[X.dtype],
        tasks,
        with_moments,
    )
    small = n_samples * means.shape[0] * n_features < SERIAL_BELOW
    if small or tasks == 1:
        return PassResult._make(run_serial(*arguments))
    if threads is None:
        threads = n_threads()
    threads = min(threads, tasks, numba.config.NUMBA_NUM_THREADS)
    if threads <= 1 or not _parallel_lock.acquire(blocking=False):
        return PassResult._make(run_serial(*arguments))
    try:
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            return PassResult._make(run_parallel(*arguments))
        finally:
            numba.set_num_threads(previous)
    finally:
        _parallel_lock.release()
