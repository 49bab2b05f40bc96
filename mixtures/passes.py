"""The pass over the data: E-step, scores and the M-step's statistics.

The E-step maps data and :class:`~mixtures.params.MixtureParams` to
log-responsibilities and per-sample log-likelihoods, and one fused pass gives
the weighted *sufficient statistics* the M-step (:mod:`mixtures.em`) needs.
Statistics are taken about a reference point per component (the means
entering the iteration), which keeps them accurate for data far from the
origin, and they add up, so they can be accumulated over chunks, files or
workers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from mixtures._parallel import map_chunks, resolve_kernel
from mixtures.covariance import CovarianceModel, rows_for
from mixtures.params import MixtureParams

__all__ = [
    "SufficientStats",
    "e_step",
    "em_pass",
    "estimate_log_gaussian_prob",
    "estimate_weighted_log_prob",
    "mean_log_likelihood",
    "predict_labels",
    "score_and_label",
    "score_samples",
    "sufficient_statistics",
    "weighted_feature_variance",
    "weighted_mean",
]

# ---------------------------------------------------------------------------
# E-step and the fused pass over the data
#
# The pass over X runs on one of two kernels (mixtures._parallel): the
# compiled fused kernel of mixtures._kernel (kernel="numba"), or the NumPy
# code below (kernel="numpy"). The public functions take the resolved name as
# an argument (None: resolve_kernel(None), the default); a fit passes its own.
# The NumPy pass goes chunk by chunk: a chunk of rows is centred on a common
# origin (the mixture's mean), its log-densities, responsibilities and
# moments are computed while it is in cache, and only per-chunk sums leave
# it. Memory is O(N D) for X plus O(chunk K D) per thread, never O(N K D).
# Float32 data stay float32 in the chunk; sums are accumulated in float64.
# Both kernels give the same statistics to 1e-10 (tests/test_kernel.py).


def _chunk_slices(n_samples: int, rows: int) -> list[slice]:
    return [
        slice(start, min(start + rows, n_samples))
        for start in range(0, n_samples, rows)
    ]


class _Prepared(NamedTuple):
    """Parameters cast to the data's dtype and moved to a common origin."""

    origin: np.ndarray  # (D,) in X.dtype
    means: np.ndarray  # (K, D) means - origin, in X.dtype
    precisions_cholesky: np.ndarray
    log_norm: np.ndarray  # (K,) log w_k + log det P_k - D/2 log(2 pi)
    rows: int


def _prepare(X: np.ndarray, params: MixtureParams, with_weights: bool) -> _Prepared:
    dtype = X.dtype
    model = params.model
    n_features = params.n_features
    origin = (params.weights @ params.means).astype(dtype)
    log_norm = model.log_det_precision_cholesky(
        params.precisions_cholesky, n_features
    ) - 0.5 * n_features * math.log(2 * math.pi)
    if with_weights:
        with np.errstate(divide="ignore"):
            log_norm = log_norm + np.log(params.weights)
    return _Prepared(
        origin=origin,
        means=(params.means - origin.astype(np.float64)).astype(dtype),
        precisions_cholesky=params.precisions_cholesky.astype(dtype),
        log_norm=np.broadcast_to(log_norm, (params.n_components,)).astype(dtype),
        rows=model.rows_per_chunk(params.n_components, n_features, dtype.itemsize),
    )


def _chunk_log_prob(
    Xb: np.ndarray, model: CovarianceModel, prepared: _Prepared
) -> tuple[np.ndarray, object]:
    maha, cache = model.chunk_squared_mahalanobis(
        Xb, prepared.means, prepared.precisions_cholesky
    )
    maha *= -0.5
    maha += prepared.log_norm
    return maha, cache


def _logsumexp_rows(values: np.ndarray) -> np.ndarray:
    """``log(sum(exp(values), axis=1))``, stable; rows of -inf give -inf."""
    peak = values.max(axis=1)
    finite_peak = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore", under="ignore"):
        shifted = np.exp(values - finite_peak[:, np.newaxis])
        return np.log(shifted.sum(axis=1)) + finite_peak


def _log_prob_chunks(
    X: np.ndarray,
    params: MixtureParams,
    with_weights: bool,
    reduce: Callable[[np.ndarray], np.ndarray] = lambda block: block,
) -> list[np.ndarray]:
    """``reduce`` applied to every chunk's (B, K) block of log-densities.

    Reducing inside the chunk keeps memory O(N) when only a per-sample
    value (a label, ``log p(x)``) is wanted.
    """
    prepared = _prepare(X, params, with_weights)
    model = params.model

    def work(rows: slice) -> np.ndarray:
        return reduce(_chunk_log_prob(X[rows] - prepared.origin, model, prepared)[0])

    return map_chunks(work, _chunk_slices(X.shape[0], prepared.rows))


def estimate_log_gaussian_prob(X: np.ndarray, params: MixtureParams) -> np.ndarray:
    """``log N(x_n | mu_k, Sigma_k)`` for every sample and component.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    params : MixtureParams

    Returns
    -------
    log_prob : ndarray of shape (n_samples, n_components), in X's dtype
    """
    return np.concatenate(_log_prob_chunks(X, params, with_weights=False))


def estimate_weighted_log_prob(X: np.ndarray, params: MixtureParams) -> np.ndarray:
    """``log w_k + log N(x_n | mu_k, Sigma_k)``, shape (n_samples, n_components)."""
    return np.concatenate(_log_prob_chunks(X, params, with_weights=True))


def e_step(X: np.ndarray, params: MixtureParams) -> tuple[np.ndarray, np.ndarray]:
    """The E-step.

    Returns
    -------
    log_prob_norm : ndarray of shape (n_samples,)
        ``log p(x_n)`` under the mixture.
    log_resp : ndarray of shape (n_samples, n_components)
        Log-responsibilities; ``exp(log_resp)`` sums to one over components.
    """
    weighted = estimate_weighted_log_prob(X, params)
    log_prob_norm = _logsumexp_rows(weighted)
    with np.errstate(under="ignore", invalid="ignore"):
        log_resp = weighted - log_prob_norm[:, np.newaxis]
    return log_prob_norm, log_resp


def score_samples(
    X: np.ndarray, params: MixtureParams, *, kernel: str | None = None
) -> np.ndarray:
    """``log p(x_n)`` under the mixture, (n_samples,) in X's dtype, O(N) memory."""
    if kernel is None:
        kernel = resolve_kernel(None)
    if kernel == "numba":
        # In X's dtype, as the NumPy path and scikit-learn return it.
        return score_and_label(X, params, kernel="numba")[0].astype(X.dtype, copy=False)
    return np.concatenate(_log_prob_chunks(X, params, True, _logsumexp_rows))


def score_and_label(
    X: np.ndarray, params: MixtureParams, *, kernel: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``log p(x_n)`` and the most probable component, in one O(N) pass."""
    if kernel is None:
        kernel = resolve_kernel(None)
    if kernel == "numba":
        result = _compiled_pass(X, np.ones(X.shape[0]), params, with_moments=False)
        return result.log_prob, result.labels.astype(np.intp, copy=False)

    def reduce(block: np.ndarray) -> np.ndarray:
        return np.column_stack([_logsumexp_rows(block), np.argmax(block, axis=1)])

    both = np.concatenate(_log_prob_chunks(X, params, True, reduce))
    return both[:, 0].astype(np.float64), both[:, 1].astype(np.intp)


def predict_labels(
    X: np.ndarray, params: MixtureParams, *, kernel: str | None = None
) -> np.ndarray:
    """Most probable component of every sample, shape (n_samples,), in O(N) memory."""
    if kernel is None:
        kernel = resolve_kernel(None)
    if kernel == "numba":
        return score_and_label(X, params, kernel="numba")[1]
    return np.concatenate(
        _log_prob_chunks(X, params, True, lambda block: np.argmax(block, axis=1))
    )


def _feature_chunks(X: np.ndarray) -> list[slice]:
    return _chunk_slices(X.shape[0], rows_for(X.shape[1], X.dtype.itemsize))


def weighted_mean(X: np.ndarray, sample_weight: np.ndarray) -> np.ndarray:
    """Weighted mean of the rows (D,), float64, without a float64 copy of X."""

    def work(chunk: slice) -> np.ndarray:
        return (sample_weight[chunk].astype(X.dtype) @ X[chunk]).astype(np.float64)

    return _sum_in_order(map_chunks(work, _feature_chunks(X))) / float(
        np.sum(sample_weight)
    )


def weighted_feature_variance(X: np.ndarray, sample_weight: np.ndarray) -> np.ndarray:
    """Per-feature weighted variance (D,) in float64, two chunked passes."""
    mean = weighted_mean(X, sample_weight).astype(X.dtype)

    def work(chunk: slice) -> np.ndarray:
        centred = X[chunk] - mean
        return sample_weight[chunk] @ np.square(centred, dtype=np.float64)

    return _sum_in_order(map_chunks(work, _feature_chunks(X))) / float(
        np.sum(sample_weight)
    )


def mean_log_likelihood(log_prob_norm: np.ndarray, sample_weight: np.ndarray) -> float:
    """Weighted mean of per-sample log-likelihoods (scikit-learn's lower bound).

    ``einsum`` rather than ``dot``: a long BLAS dot wakes OpenBLAS's threads,
    which then spin on the cores the compiled pass needs next.
    """
    total = np.einsum("n,n->", sample_weight, log_prob_norm)
    return float(total / np.sum(sample_weight))


# ---------------------------------------------------------------------------
# Sufficient statistics and M-step


@dataclass(frozen=True, eq=False)
class SufficientStats:
    """Weighted sufficient statistics of one E-step, about reference centres.

    Attributes
    ----------
    weight_sums : ndarray of shape (n_components,)
        ``S0_k = sum_n w_n r_nk``.
    centres : ndarray of shape (n_components, n_features)
        Reference points ``c_k`` the moments are taken about.
    first_moments : ndarray of shape (n_components, n_features)
        ``S1_k = sum_n w_n r_nk (x_n - c_k)``.
    second_moments : ndarray
        The covariance model's statistic about ``c_k``: (K, D, D) for 'full',
        (D, D) summed over components for 'tied', (K, D) for 'diag', (K,) of
        summed squares for 'spherical'.
    total_weight : float
        ``sum_n w_n``.
    """

    weight_sums: np.ndarray
    centres: np.ndarray
    first_moments: np.ndarray
    second_moments: np.ndarray
    total_weight: float

    def __add__(self, other: SufficientStats) -> SufficientStats:
        if not np.array_equal(self.centres, other.centres):
            raise ValueError("statistics about different centres cannot be added.")
        return SufficientStats(
            self.weight_sums + other.weight_sums,
            self.centres,
            self.first_moments + other.first_moments,
            self.second_moments + other.second_moments,
            self.total_weight + other.total_weight,
        )


def _sum_chunk_moments(
    results: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    centres: np.ndarray,
    total_weight: float,
) -> SufficientStats:
    # Summed in chunk order, so the result does not depend on the threads.
    mass = _sum_in_order([r[0] for r in results])
    first = _sum_in_order([r[1] for r in results])
    second = _sum_in_order([r[2] for r in results])
    return SufficientStats(mass, centres, first, second, total_weight)


def _sum_in_order(parts: list[np.ndarray]) -> np.ndarray:
    """``parts[0] + parts[1] + ...``, left to right (as ``sum`` adds them)."""
    total = np.array(parts[0], dtype=np.float64, copy=True)
    for part in parts[1:]:
        total += part
    return total


def sufficient_statistics(
    X: np.ndarray,
    sample_weight: np.ndarray,
    resp: np.ndarray,
    centres: np.ndarray,
    model: CovarianceModel,
) -> SufficientStats:
    """Accumulate the M-step's statistics from given responsibilities.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    sample_weight : ndarray of shape (n_samples,)
    resp : ndarray of shape (n_samples, n_components)
        Responsibilities (not their logarithms).
    centres : ndarray of shape (n_components, n_features)
        Reference points; the means are the best choice, since the moments
        about them are small. The returned ``centres`` are these, rounded to
        X's dtype.
    model : CovarianceModel
    """
    dtype = X.dtype
    origin = weighted_mean(X, sample_weight).astype(dtype)
    origin64 = origin.astype(np.float64)
    local_centres = (np.asarray(centres, dtype=np.float64) - origin64).astype(dtype)
    rows = model.rows_per_chunk(resp.shape[1], X.shape[1], dtype.itemsize)

    def work(chunk: slice):
        weighted_resp = (resp[chunk] * sample_weight[chunk, np.newaxis]).astype(dtype)
        first, second = model.chunk_moments(
            X[chunk] - origin, weighted_resp, local_centres
        )
        return weighted_resp.sum(axis=0, dtype=np.float64), first, second

    results = map_chunks(work, _chunk_slices(X.shape[0], rows))
    return _sum_chunk_moments(
        results,
        origin64 + local_centres.astype(np.float64),
        float(np.sum(sample_weight)),
    )


def em_pass(
    X: np.ndarray,
    sample_weight: np.ndarray,
    params: MixtureParams,
    *,
    kernel: str | None = None,
) -> tuple[SufficientStats, np.ndarray]:
    """The fused E-step: one chunked pass giving the M-step's statistics.

    Returns the statistics about the current means and ``log p(x_n)`` of
    every sample (float64, shape (n_samples,)).
    """
    if kernel is None:
        kernel = resolve_kernel(None)
    return _scored_pass(X, sample_weight, params, kernel)[:2]


def _scored_pass(
    X: np.ndarray,
    sample_weight: np.ndarray,
    params: MixtureParams,
    kernel: str,
    threads: int | None = None,
) -> tuple[SufficientStats, np.ndarray, float]:
    """:func:`em_pass` and the weighted mean log-likelihood, on ``kernel``.

    ``threads`` caps the compiled kernel's threads (None: the usable cores);
    a caller that already runs passes side by side gives 1.
    """
    if kernel == "numba":
        model = params.model
        result = _compiled_pass(X, sample_weight, params, model=model, threads=threads)
        stats = SufficientStats(
            result.mass,
            result.centres,
            result.first,
            model.moments_from_kernel(result.second),
            result.weight_sum,
        )
        return stats, result.log_prob, result.log_likelihood / result.weight_sum
    stats, log_prob_norm = _numpy_pass(X, sample_weight, params)
    return stats, log_prob_norm, mean_log_likelihood(log_prob_norm, sample_weight)


def _numpy_pass(
    X: np.ndarray, sample_weight: np.ndarray, params: MixtureParams
) -> tuple[SufficientStats, np.ndarray]:
    """:func:`em_pass` in NumPy, chunk by chunk (the fallback kernel)."""
    model = params.model
    prepared = _prepare(X, params, with_weights=True)
    dtype = X.dtype

    def work(chunk: slice):
        Xb = X[chunk] - prepared.origin
        weighted, cache = _chunk_log_prob(Xb, model, prepared)
        log_prob_norm = _logsumexp_rows(weighted)
        weighted -= log_prob_norm[:, np.newaxis]
        with np.errstate(under="ignore"):
            resp = np.exp(weighted, out=weighted)
        resp *= sample_weight[chunk, np.newaxis].astype(dtype)
        first, second = model.chunk_moments(Xb, resp, prepared.means, cache)
        return log_prob_norm, (resp.sum(axis=0, dtype=np.float64), first, second)

    results = map_chunks(work, _chunk_slices(X.shape[0], prepared.rows))
    centres = prepared.origin.astype(np.float64) + prepared.means.astype(np.float64)
    stats = _sum_chunk_moments(
        [r[1] for r in results], centres, float(np.sum(sample_weight))
    )
    log_prob_norm = np.concatenate([r[0] for r in results]).astype(np.float64)
    return stats, log_prob_norm


_KERNEL_MODULE = None


def _kernel_module():
    # Imported on first use: numba costs about half a second to import.
    global _KERNEL_MODULE
    if _KERNEL_MODULE is None:
        from mixtures import _kernel

        _KERNEL_MODULE = _kernel
    return _KERNEL_MODULE


def _compiled_pass(
    X: np.ndarray,
    sample_weight: np.ndarray,
    params: MixtureParams,
    with_moments: bool = True,
    model: CovarianceModel | None = None,
    threads: int | None = None,
):
    """One pass of the compiled kernel: a :class:`mixtures._kernel.PassResult`.

    ``model`` is ``params.model``, when the caller has it at hand.
    """
    if model is None:
        model = params.model
    means = params.means
    factors = model.kernel_factors(params.precisions_cholesky, *means.shape)
    return _kernel_module().fused_pass(
        X,
        sample_weight,
        params.weights,
        means,
        factors,
        model.kernel,
        threads=threads,
        with_moments=with_moments,
    )
