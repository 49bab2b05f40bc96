"""Pure functions of expectation maximisation for Gaussian mixtures.

The E-step maps data and :class:`~mixtures.params.MixtureParams` to
log-responsibilities and per-sample log-likelihoods; the M-step maps weighted
*sufficient statistics* to new parameters. Statistics are taken about a
reference point per component (the means entering the iteration), which keeps
them accurate for data far from the origin, and they add up, so they can be
accumulated over chunks, files or workers.

The degenerate-component policy
-------------------------------
EM on real data meets components whose covariance stops being positive
definite (a component collapsed onto one point or onto duplicated points: the
likelihood is unbounded there) and components whose weight falls to zero.
scikit-learn raises in the first case. Here, after every M-step (and after
initialisation), in this order:

1. **reseed** a component whose responsibility mass falls below
   ``empty_threshold`` (in units of one average sample), or which duplicates an
   earlier component (equal means and covariances, so EM can never separate
   them): its mean moves to the worst-explained sample (lowest log-likelihood
   under the current mixture, distinct from other reseeds), its covariance
   becomes the mean covariance of the other components (so it competes on
   their scale), its weight ``1 / K`` before renormalising. At most
   ``max_reseeds_per_component * K`` reseeds per run; the convergence test is
   skipped in the iteration after a reseed, because the log-likelihood may
   drop there.
2. **floor** a covariance that is not positive definite or has a conditional
   variance (squared Cholesky pivot) below the covariance floor: the floor is
   added to its diagonal. The floor is per feature,
   ``sqrt(machine epsilon) * variance of that feature in the data``, so it is
   invariant to the units of each feature and far below any covariance met on
   non-degenerate data.

Every action is a :class:`DegenerateEvent` ``(restart, iteration, component,
action, reason)``; iteration 0 is initialisation, component -1 the shared
covariance of 'tied'. Fits never raise ``LinAlgError`` and never return NaN.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from mixtures._parallel import active_kernel, map_chunks
from mixtures.covariance import CovarianceModel, rows_for
from mixtures.params import MixtureParams
from mixtures.prior import ResolvedPrior

__all__ = [
    "DegeneracyPolicy",
    "DegenerateEvent",
    "EMRun",
    "StepInfo",
    "SufficientStats",
    "e_step",
    "em_pass",
    "em_step",
    "estimate_log_gaussian_prob",
    "estimate_weighted_log_prob",
    "m_step",
    "mean_log_likelihood",
    "params_from_responsibilities",
    "predict_labels",
    "run_em",
    "score_and_label",
    "score_samples",
    "sufficient_statistics",
]

logger = logging.getLogger("mixtures")

# scikit-learn adds this many machine epsilons to every component's mass so a
# component with no responsibility keeps a finite mean; we do the same so the
# two engines agree to rounding.
_MASS_EPS = 10 * np.finfo(np.float64).eps


# ---------------------------------------------------------------------------
# E-step and the fused pass over the data
#
# The pass over X runs on one of two kernels (mixtures._parallel): the
# compiled fused kernel of mixtures._kernel (the default), or the NumPy code
# below. The NumPy pass goes chunk by chunk: a chunk of rows is centred on a
# common origin (the mixture's mean), its log-densities, responsibilities and
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


def score_samples(X: np.ndarray, params: MixtureParams) -> np.ndarray:
    """``log p(x_n)`` under the mixture, (n_samples,) in X's dtype, O(N) memory."""
    if active_kernel() == "numba":
        # In X's dtype, as the NumPy path and scikit-learn return it.
        return score_and_label(X, params)[0].astype(X.dtype, copy=False)
    return np.concatenate(_log_prob_chunks(X, params, True, _logsumexp_rows))


def score_and_label(
    X: np.ndarray, params: MixtureParams
) -> tuple[np.ndarray, np.ndarray]:
    """``log p(x_n)`` and the most probable component, in one O(N) pass."""
    if active_kernel() == "numba":
        result = _compiled_pass(X, np.ones(X.shape[0]), params, with_moments=False)
        return result.log_prob, result.labels.astype(np.intp, copy=False)

    def reduce(block: np.ndarray) -> np.ndarray:
        return np.column_stack([_logsumexp_rows(block), np.argmax(block, axis=1)])

    both = np.concatenate(_log_prob_chunks(X, params, True, reduce))
    return both[:, 0].astype(np.float64), both[:, 1].astype(np.intp)


def predict_labels(X: np.ndarray, params: MixtureParams) -> np.ndarray:
    """Most probable component of every sample, shape (n_samples,), in O(N) memory."""
    if active_kernel() == "numba":
        return score_and_label(X, params)[1]
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
    X: np.ndarray, sample_weight: np.ndarray, params: MixtureParams
) -> tuple[SufficientStats, np.ndarray]:
    """The fused E-step: one chunked pass giving the M-step's statistics.

    Returns the statistics about the current means and ``log p(x_n)`` of
    every sample (float64, shape (n_samples,)).
    """
    return _scored_pass(X, sample_weight, params)[:2]


def _scored_pass(
    X: np.ndarray, sample_weight: np.ndarray, params: MixtureParams
) -> tuple[SufficientStats, np.ndarray, float]:
    """:func:`em_pass` and the weighted mean log-likelihood, on the active kernel."""
    if active_kernel() == "numba":
        model = params.model
        result = _compiled_pass(X, sample_weight, params, model=model)
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
        with_moments=with_moments,
    )


def m_step(
    stats: SufficientStats,
    model: CovarianceModel,
    reg_covar: float | np.ndarray,
    prior: ResolvedPrior | None = None,
    previous: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximum-likelihood (or, with ``prior``, posterior-mode) parameters.

    Returns raw ``(weights, means, covariances)``: covariances include
    ``reg_covar`` but are not yet checked for positive definiteness (see
    :func:`finalise_components`). ``previous`` covariances warm-start the
    iterative M-steps of the constrained models.
    """
    denominators = stats.weight_sums + _MASS_EPS
    # The weights are the masses plus _MASS_EPS, normalised: these very
    # denominators (before a prior adds to them), one addition fewer.
    weights = denominators / denominators.sum()
    offsets = stats.first_moments / denominators[:, np.newaxis]
    means = stats.centres + offsets
    second_moments = stats.second_moments
    if prior is not None:
        # The posterior mode is the ML step on augmented statistics.
        means, extra_scatter, extra_mass = prior.adjust(
            stats.weight_sums, means, model.single_covariance
        )
        second_moments = second_moments + model.moments_from_full(extra_scatter)
        denominators = denominators + extra_mass
    covariances = model.covariances_from_moments(
        stats.weight_sums,
        stats.first_moments,
        offsets,
        second_moments,
        denominators,
        reg_covar,
        previous,
    )
    return weights, means, covariances


# ---------------------------------------------------------------------------
# Degenerate components


class DegenerateEvent(NamedTuple):
    """One action of the degenerate-component policy."""

    restart: int
    iteration: int
    component: int
    action: str  # "floor" or "reseed"
    reason: str  # "collapsed covariance", "empty component", "duplicate of k"


@dataclass(frozen=True, eq=False)
class DegeneracyPolicy:
    """Data-dependent constants of the degenerate-component policy.

    Build it with :meth:`for_data`; see the module docstring for the rules.
    """

    covariance_floor: np.ndarray  # (n_features,)
    feature_scale: np.ndarray  # (n_features,) standard deviations, all > 0
    mean_sample_weight: float
    reg_covar: float | np.ndarray  # (D,) in relative mode
    empty_threshold: float = 1e-6
    max_reseeds_per_component: int = 10
    #: Hyperparameters of MAP-EM's prior; None for maximum likelihood.
    prior: ResolvedPrior | None = None
    #: Distinct rows of the data (with positive weight), exact when fewer
    #: than K, else a lower bound of at least K: with fewer than K,
    #: duplicated components cannot be separated and are not reseeded.
    n_distinct_rows: int | None = None

    @classmethod
    def for_data(
        cls,
        X: np.ndarray,
        sample_weight: np.ndarray,
        reg_covar: float | np.ndarray,
        prior: ResolvedPrior | None = None,
        n_components: int | None = None,
    ) -> DegeneracyPolicy:
        """The policy's constants for data X.

        ``n_components`` lets the count of distinct rows stop as soon as it
        reaches K (all the policy needs); None counts them all.
        """
        total = float(np.sum(sample_weight))
        variances = weighted_feature_variance(X, sample_weight)
        positive = variances[variances > 0]
        fallback = positive.max() if positive.size else 1.0
        variances[variances <= 0] = fallback
        return cls(
            covariance_floor=np.sqrt(np.finfo(X.dtype).eps) * variances,
            feature_scale=np.sqrt(variances),
            mean_sample_weight=total / np.count_nonzero(sample_weight),
            reg_covar=reg_covar,
            prior=prior,
            # No boolean-indexed copy of X when every weight is positive.
            n_distinct_rows=_count_distinct_rows(
                X if np.all(sample_weight > 0) else X[sample_weight > 0],
                enough=n_components,
            ),
        )


def _count_distinct_rows(
    X: np.ndarray, head: int = 4096, enough: int | None = None
) -> int:
    """Distinct rows of X, or a lower bound once it reaches ``enough``.

    Cheap when the first rows are distinct: with ``enough`` it looks at a
    few rows only, else at the first ``head``.
    """
    if enough is not None:
        seen = {row.tobytes() for row in X[: 4 * enough]}
        if len(seen) >= enough:
            return len(seen)
    first = np.unique(X[:head], axis=0).shape[0]
    if first == min(head, X.shape[0]):
        # All distinct so far: at least this many, more than any K in use.
        return max(first, X.shape[0] if X.shape[0] <= head else first)
    return int(np.unique(X, axis=0).shape[0])


#: Two means are equal when every coordinate differs by at most this many
#: feature scales (the one rule; ``_policy_is_idle`` applies it too).
_SAME_MEAN_RTOL = 1e-10


def _same_means(means: np.ndarray, scale: np.ndarray) -> np.ndarray | None:
    """(K, K) mask of pairs of equal means, or None when no two coincide."""
    if means.shape[0] == 1:
        return None
    same_mean = np.all(
        np.abs(means[:, np.newaxis, :] - means[np.newaxis, :, :])
        <= _SAME_MEAN_RTOL * scale,
        axis=2,
    )
    # Each component equals itself: anything beyond the diagonal is a pair.
    if np.count_nonzero(same_mean) == means.shape[0]:
        return None
    return same_mean


def _duplicate_of(
    means: np.ndarray,
    covariances: np.ndarray,
    model: CovarianceModel,
    scale: np.ndarray,
) -> dict[int, int]:
    """Map component j to an earlier component k it duplicates exactly."""
    same_mean = _same_means(means, scale)
    if same_mean is None:
        return {}
    duplicates: dict[int, int] = {}
    for j, k in zip(*np.nonzero(np.tril(same_mean, k=-1)), strict=True):
        j, k = int(j), int(k)
        if j in duplicates or k in duplicates:
            continue
        if model.shared or np.allclose(
            covariances[j], covariances[k], rtol=1e-8, atol=0
        ):
            duplicates[j] = k
    return duplicates


#: Up to this many components the fast path's test runs on Python floats
#: (a pair of means costs a few hundred nanoseconds; most pairs differ in
#: their first feature), beyond it as NumPy expressions.
_PAIR_LOOP_MAX_COMPONENTS = 8
_FLOAT64 = np.dtype(np.float64)
#: Half the largest float64: means within it cannot overflow a difference.
_HALF_MAX = float(np.finfo(np.float64).max) / 2
#: Scales from which ``_SAME_MEAN_RTOL * scale`` is a normal number.
_SMALLEST_SCALE = 1e-290
_SMALLEST_NORMAL = float(np.finfo(np.float64).tiny)


def _policy_is_idle(
    weights: np.ndarray,
    means: np.ndarray,
    weight_sums: np.ndarray,
    policy: DegeneracyPolicy,
) -> bool:
    """True when the degenerate-component policy can at most floor covariances.

    That is: every weight and mean is finite, no component is empty and no
    two means are equal, each as :func:`finalise_components` and
    :func:`_duplicate_of` decide it; then nothing is reseeded and nothing
    raises. False sends :func:`finalise_components` down its full path, which
    decides every rule itself: the test may say False where the full path
    then does nothing (costing time only), but says True only where the full
    path would find no empty component, no pair of equal means and no NaN or
    infinity, and where its arithmetic for those decisions would raise no
    floating-point flag (overflow, division by zero...), so that skipping it
    also skips no warning that NumPy's error state would have issued.
    """
    n_components = means.shape[0]
    mean_sample_weight = float(policy.mean_sample_weight)
    scales = policy.feature_scale
    if (
        n_components > _PAIR_LOOP_MAX_COMPONENTS
        or not 0.0 < mean_sample_weight < math.inf
        or not (
            weights.dtype == _FLOAT64
            and means.dtype == _FLOAT64
            and weight_sums.dtype == _FLOAT64
            and scales.dtype == _FLOAT64
        )
    ):
        return _policy_is_idle_numpy(weights, means, weight_sums, policy)
    scales = scales.tolist()
    if not min(scales) >= _SMALLEST_SCALE:
        return _policy_is_idle_numpy(weights, means, weight_sums, policy)
    # The full path's float64 operations on Python floats (IEEE doubles):
    # the same quotient and comparison for each mass, the same difference,
    # magnitude, product and comparison for each pair of means, so the same
    # decisions bit for bit, without a dozen NumPy calls.
    rows = means.tolist()
    # A sum is finite only if every term is (a NaN or infinity propagates; a
    # sum of finite terms that overflows only takes the full path). The
    # means' magnitudes within half the largest float: no difference of two
    # overflows in _duplicate_of.
    if not math.isfinite(sum(weights.tolist())):
        return False
    magnitude = 0.0
    for row in rows:
        magnitude += sum(map(abs, row))
    if not magnitude <= _HALF_MAX:
        return False
    threshold = float(policy.empty_threshold)
    for mass in weight_sums.tolist():
        quotient = mass / mean_sample_weight
        if quotient < threshold:
            return False
        if quotient == math.inf and mass != math.inf:
            return False  # overflow: NumPy's divide would flag it
        if 0.0 < abs(quotient) < _SMALLEST_NORMAL:
            return False  # underflow, flagged likewise
    for j in range(1, n_components):
        row = rows[j]
        for k in range(j):
            # Most pairs differ in their first feature: one comparison each.
            for a, b, scale in zip(row, rows[k], scales, strict=True):
                if not abs(a - b) <= _SAME_MEAN_RTOL * scale:
                    break
            else:  # every feature within tolerance: equal means
                return False
    return True


def _policy_is_idle_numpy(
    weights: np.ndarray,
    means: np.ndarray,
    weight_sums: np.ndarray,
    policy: DegeneracyPolicy,
) -> bool:
    """:func:`_policy_is_idle` as the full path's own NumPy expressions.

    Any floating-point flag raised on the way (which the full path would
    report, or not, under the caller's error state) means False: the full
    path then runs, and reports it as it always did.
    """
    try:
        with np.errstate(all="raise"):
            return (
                bool(np.all(np.isfinite(weights)))
                and bool(np.all(np.isfinite(means)))
                and not np.any(
                    weight_sums / policy.mean_sample_weight < policy.empty_threshold
                )
                and _same_means(means, policy.feature_scale) is None
            )
    except FloatingPointError:
        return False


def finalise_components(
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    weight_sums: np.ndarray,
    X: np.ndarray,
    rank_samples: Callable[[], np.ndarray],
    model: CovarianceModel,
    policy: DegeneracyPolicy,
    *,
    restart: int,
    iteration: int,
    reseeds_left: int,
    owned: bool = False,
) -> tuple[MixtureParams, list[DegenerateEvent]]:
    """Apply the degenerate-component policy and build the parameters.

    ``owned=True`` promises the arrays are the caller's own fresh ones (the
    M-step's), so the parameters adopt them instead of copying.

    ``rank_samples`` returns sample indices from worst to best explained; it is
    called only when a component must be reseeded.
    """
    if _policy_is_idle(weights, means, weight_sums, policy):
        # The fast path of the usual iteration. The test found every weight
        # and mean finite, no component empty and no two means equal, so the
        # full path below would find no reason to reseed (reseed == []) and
        # pass both finiteness checks: all it would do is _floor_collapsed
        # with nothing to skip, then build the parameters. That is what runs
        # here, without the bookkeeping (a dozen small NumPy calls, about
        # half of an iteration on small data).
        prec_chol, covariances, events = _floor_collapsed(
            covariances, model, policy, [], restart, iteration
        )
        params = MixtureParams._trusted(
            weights, means, covariances, model.name, prec_chol, owned=owned
        )
        return params, events
    n_components = weights.shape[0]
    reasons: dict[int, str] = {}
    empty = weight_sums / policy.mean_sample_weight < policy.empty_threshold
    for index in np.flatnonzero(empty):
        reasons[int(index)] = "empty component"
    # Duplicates are reseeded only when the data have a distinct point for
    # every component; otherwise reseeding would only make new duplicates.
    separable = policy.n_distinct_rows is None or policy.n_distinct_rows >= n_components
    duplicates = _duplicate_of(means, covariances, model, policy.feature_scale)
    for j, k in duplicates.items() if separable else ():
        reasons.setdefault(j, f"duplicate of component {k}")
    reseed = sorted(reasons)[:reseeds_left]
    if len(reseed) == n_components:  # nothing to take a covariance from
        reseed = reseed[1:]

    prec_chol, covariances, events = _floor_collapsed(
        covariances, model, policy, reseed, restart, iteration
    )
    if reseed:
        weights, means, covariances = weights.copy(), means.copy(), covariances.copy()
        kept = [k for k in range(n_components) if k not in reseed]
        # A reseeded component takes the average shape of the others, so it
        # competes on their scale: a spike among initial spikes, a typical
        # cluster in the middle of a fit.
        start_cov = None if model.shared else np.mean(covariances[kept], axis=0)
        for k, point in zip(
            reseed, _distinct_rows(X, rank_samples(), len(reseed)), strict=False
        ):
            means[k] = point
            weights[k] = 1.0 / n_components
            if start_cov is not None:
                covariances[k] = start_cov
            events.append(DegenerateEvent(restart, iteration, k, "reseed", reasons[k]))
        weights = weights / weights.sum()
        prec_chol, collapsed = model.precision_cholesky(
            covariances, np.zeros_like(policy.covariance_floor)
        )
        if np.any(collapsed):  # pragma: no cover - the floor keeps every one PD
            raise FloatingPointError("covariance floor failed to restore definiteness")
    for name, array in (("weights", weights), ("means", means)):
        if not np.all(np.isfinite(array)):
            raise ValueError(
                f"{name} contain NaN or infinity: EM overflowed; the data may "
                "hold values too large to square (rescale them)."
            )
    params = MixtureParams._trusted(
        weights, means, covariances, model.name, prec_chol, owned=owned
    )
    return params, events


def _floor_collapsed(
    covariances: np.ndarray,
    model: CovarianceModel,
    policy: DegeneracyPolicy,
    skip: list[int],
    restart: int,
    iteration: int,
) -> tuple[np.ndarray, np.ndarray, list[DegenerateEvent]]:
    """Precision factors, with the floor added to every collapsed covariance.

    Returns ``(precisions_cholesky, covariances, events)``; components in
    ``skip`` (about to be reseeded) are not floored.
    """
    prec_chol, collapsed = model.precision_cholesky(
        covariances, policy.covariance_floor
    )
    if skip and not model.shared:  # (assigning to no element does nothing)
        collapsed[skip] = False
    if not collapsed.any():  # (the method: a fraction of np.any's cost)
        return prec_chol, covariances, []
    repaired = model.add_floor(covariances, policy.covariance_floor, collapsed)
    prec_chol, _ = model.precision_cholesky(
        repaired, np.zeros_like(policy.covariance_floor)
    )
    components = [-1] if model.shared else np.flatnonzero(collapsed).tolist()
    return (
        prec_chol,
        repaired,
        [
            DegenerateEvent(restart, iteration, int(k), "floor", "collapsed covariance")
            for k in components
        ],
    )


def _distinct_rows(X: np.ndarray, order: np.ndarray, count: int) -> list[np.ndarray]:
    """The first ``count`` rows of ``X`` in ``order`` with pairwise distinct values."""
    chosen: list[np.ndarray] = []
    for index in order:
        if len(chosen) == count:
            break
        row = np.asarray(X[index], dtype=np.float64)
        if all(np.any(row != other) for other in chosen):
            chosen.append(row)
    return chosen


# ---------------------------------------------------------------------------
# Initialisation from responsibilities


def params_from_responsibilities(
    X: np.ndarray,
    sample_weight: np.ndarray,
    resp: np.ndarray,
    model: CovarianceModel,
    reg_covar: float | np.ndarray,
    prior: ResolvedPrior | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Raw ``(weights, means, covariances, weight_sums)`` from responsibilities.

    Two passes: the means about the data mean, then the covariances about
    those means, so the result is accurate however far the data lie from 0.
    """
    data_mean = weighted_mean(X, sample_weight)
    centres = np.broadcast_to(data_mean, (resp.shape[1], X.shape[1]))
    first = sufficient_statistics(X, sample_weight, resp, centres, model)
    _, means, _ = m_step(first, model, reg_covar)
    stats = sufficient_statistics(X, sample_weight, resp, means, model)
    weights, means, covariances = m_step(stats, model, reg_covar, prior)
    return weights, means, covariances, stats.weight_sums


# ---------------------------------------------------------------------------
# One EM iteration and the loop


class StepInfo(NamedTuple):
    """Diagnostics of one EM iteration."""

    lower_bound: float  # mean log-likelihood of the parameters entering the step
    events: list[DegenerateEvent]


def em_step(
    X: np.ndarray,
    sample_weight: np.ndarray,
    params: MixtureParams,
    policy: DegeneracyPolicy,
    *,
    restart: int = 0,
    iteration: int = 1,
    reseeds_left: int = 0,
) -> tuple[MixtureParams, StepInfo]:
    """One E-step and M-step: ``(new_params, info)``.

    ``info.lower_bound`` scores ``params`` (the parameters entering the
    step), as scikit-learn's ``lower_bounds_`` does.
    """
    model = params.model
    stats, log_prob_norm, lower_bound = _scored_pass(X, sample_weight, params)
    weights, means, covariances = m_step(
        stats, model, policy.reg_covar, policy.prior, params.covariances
    )

    def worst_explained_first() -> np.ndarray:
        positive = np.flatnonzero(sample_weight > 0)
        return positive[np.argsort(log_prob_norm[positive], kind="stable")]

    new_params, events = finalise_components(
        weights,
        means,
        covariances,
        stats.weight_sums,
        X,
        worst_explained_first,
        model,
        policy,
        restart=restart,
        iteration=iteration,
        reseeds_left=reseeds_left,
        owned=True,
    )
    return new_params, StepInfo(lower_bound, events)


@dataclass(frozen=True, eq=False)
class EMRun:
    """The outcome of EM from one initialisation.

    Attributes
    ----------
    params : MixtureParams
        Parameters after the last M-step.
    lower_bounds : ndarray of shape (n_iter,)
        Entry ``k`` is the mean log-likelihood of the parameters entering
        iteration ``k + 1`` (scikit-learn's ``lower_bounds_``).
    n_iter : int
    converged : bool
    events : tuple of DegenerateEvent
    """

    params: MixtureParams
    lower_bounds: np.ndarray
    n_iter: int
    converged: bool
    events: tuple[DegenerateEvent, ...]

    @property
    def lower_bound(self) -> float:
        """The last entry of the trace, ``-inf`` when no iteration ran."""
        return float(self.lower_bounds[-1]) if self.lower_bounds.size else -np.inf


@dataclass
class _LoopState:
    """The EM loop's counters, shared by its inner functions."""

    n_iter: int
    reseeds_left: int
    reseeded_last_step: bool
    previous: float


def run_em(
    X: np.ndarray,
    sample_weight: np.ndarray,
    initial_params: MixtureParams,
    policy: DegeneracyPolicy,
    *,
    tol: float,
    max_iter: int,
    initial_lower_bound: float = -np.inf,
    restart: int = 0,
    initial_events: tuple[DegenerateEvent, ...] = (),
    verbose_interval: int = 0,
    acceleration: str | None = None,
    stopping: str = "change",
) -> EMRun:
    """Iterate :func:`em_step` until the stopping rule holds or ``max_iter``.

    With the defaults (``acceleration=None, stopping="change"``) this mirrors
    scikit-learn's loop exactly (stop when ``|change of lower bound| < tol``),
    so that from the same initial parameters both engines produce the same
    trace. ``stopping="aitken"`` stops when Aitken's estimate of the limit is
    within ``tol`` of the last value, and ``acceleration="squarem"``
    extrapolates every two EM steps (:mod:`mixtures.accelerate`); then
    ``lower_bounds`` holds the points on the accepted path and ``n_iter``
    counts every E-step, a rejected extrapolation's included.
    ``verbose_interval > 0`` logs every that many iterations on the
    ``mixtures`` logger.
    """
    from mixtures.accelerate import aitken_limit, squarem_point

    trace: list[float] = []
    events = list(initial_events)
    state = _LoopState(
        n_iter=0,
        reseeds_left=policy.max_reseeds_per_component * initial_params.n_components,
        reseeded_last_step=False,
        previous=initial_lower_bound,
    )

    def advance(params: MixtureParams) -> tuple[MixtureParams, StepInfo]:
        state.n_iter += 1
        return em_step(
            X,
            sample_weight,
            params,
            policy,
            restart=restart,
            iteration=state.n_iter,
            reseeds_left=state.reseeds_left,
        )

    def commit(info: StepInfo) -> bool:
        """Record a scored point; True when the stopping rule holds."""
        trace.append(info.lower_bound)
        events.extend(info.events)
        n_reseeds = sum(event.action == "reseed" for event in info.events)
        state.reseeds_left -= n_reseeds
        change = info.lower_bound - state.previous
        state.previous = info.lower_bound
        if verbose_interval and state.n_iter % verbose_interval == 0:
            logger.info(
                "  iteration %d\tlower bound %.6f\tchange %.3g",
                state.n_iter,
                info.lower_bound,
                change,
            )
        if stopping == "aitken":
            done = len(trace) >= 3 and (
                abs(aitken_limit(*trace[-3:]) - trace[-1]) < tol
            )
        else:
            done = abs(change) < tol
        done = done and not state.reseeded_last_step
        state.reseeded_last_step = n_reseeds > 0
        return done

    def objective(params: MixtureParams, mean_loglik: float) -> float:
        total = mean_loglik * float(np.sum(sample_weight))
        if policy.prior is not None:
            total += policy.prior.log_density(params)
        return total

    params = initial_params
    converged = False
    while state.n_iter < max_iter:
        start, first_events = params, len(events)
        params, info = advance(start)
        if commit(info):
            converged = True
            break
        if acceleration != "squarem" or state.n_iter >= max_iter:
            continue
        middle = params
        params, info = advance(middle)
        if commit(info):
            converged = True
            break
        if state.n_iter >= max_iter or len(events) > first_events:
            continue  # no extrapolation across degenerate-component actions
        candidate, _ = squarem_point(start, middle, params)
        if candidate is None:
            continue
        stabilised, candidate_info = advance(candidate)
        if objective(candidate, candidate_info.lower_bound) < objective(
            middle, info.lower_bound
        ):
            continue  # would lower the objective: keep the plain EM point
        params = stabilised
        if commit(candidate_info):
            converged = True
            break
    return EMRun(
        params,
        np.asarray(trace, dtype=np.float64),
        state.n_iter,
        converged,
        tuple(events),
    )
