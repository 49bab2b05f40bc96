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
from scipy.special import logsumexp

from mixtures.covariance import CovarianceModel
from mixtures.params import MixtureParams

__all__ = [
    "DegeneracyPolicy",
    "DegenerateEvent",
    "EMRun",
    "StepInfo",
    "SufficientStats",
    "e_step",
    "em_step",
    "estimate_log_gaussian_prob",
    "estimate_weighted_log_prob",
    "m_step",
    "mean_log_likelihood",
    "params_from_responsibilities",
    "run_em",
    "sufficient_statistics",
]

logger = logging.getLogger("mixtures")

# scikit-learn adds this many machine epsilons to every component's mass so a
# component with no responsibility keeps a finite mean; we do the same so the
# two engines agree to rounding.
_MASS_EPS = 10 * np.finfo(np.float64).eps


# ---------------------------------------------------------------------------
# E-step


def estimate_log_gaussian_prob(X: np.ndarray, params: MixtureParams) -> np.ndarray:
    """``log N(x_n | mu_k, Sigma_k)`` for every sample and component.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    params : MixtureParams

    Returns
    -------
    log_prob : ndarray of shape (n_samples, n_components)
    """
    model = params.model
    n_features = X.shape[1]
    log_det = model.log_det_precision_cholesky(params.precisions_cholesky, n_features)
    maha = model.squared_mahalanobis(X, params.means, params.precisions_cholesky)
    return -0.5 * (n_features * math.log(2 * math.pi) + maha) + log_det


def estimate_weighted_log_prob(X: np.ndarray, params: MixtureParams) -> np.ndarray:
    """``log w_k + log N(x_n | mu_k, Sigma_k)``, shape (n_samples, n_components)."""
    with np.errstate(divide="ignore"):
        log_weights = np.log(params.weights)
    return estimate_log_gaussian_prob(X, params) + log_weights


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
    log_prob_norm = logsumexp(weighted, axis=1)
    with np.errstate(under="ignore"):
        log_resp = weighted - log_prob_norm[:, np.newaxis]
    return log_prob_norm, log_resp


def mean_log_likelihood(log_prob_norm: np.ndarray, sample_weight: np.ndarray) -> float:
    """Weighted mean of per-sample log-likelihoods (scikit-learn's lower bound)."""
    return float(np.dot(sample_weight, log_prob_norm) / np.sum(sample_weight))


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


def sufficient_statistics(
    X: np.ndarray,
    sample_weight: np.ndarray,
    resp: np.ndarray,
    centres: np.ndarray,
    model: CovarianceModel,
) -> SufficientStats:
    """Accumulate the M-step's statistics from responsibilities.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    sample_weight : ndarray of shape (n_samples,)
    resp : ndarray of shape (n_samples, n_components)
        Responsibilities (not their logarithms).
    centres : ndarray of shape (n_components, n_features)
        Reference points; the means entering the iteration are the best
        choice, since the moments about them are small near convergence.
    model : CovarianceModel
    """
    weighted_resp = resp * sample_weight[:, np.newaxis]
    first = np.stack(
        [weighted_resp[:, k] @ (X - centre) for k, centre in enumerate(centres)]
    )
    return SufficientStats(
        weight_sums=weighted_resp.sum(axis=0),
        centres=np.asarray(centres, dtype=np.float64),
        first_moments=first.astype(np.float64, copy=False),
        second_moments=model.second_moment(X, weighted_resp, centres),
        total_weight=float(np.sum(sample_weight)),
    )


def m_step(
    stats: SufficientStats, model: CovarianceModel, reg_covar: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximum-likelihood parameters from sufficient statistics.

    Returns raw ``(weights, means, covariances)``: covariances include
    ``reg_covar`` but are not yet checked for positive definiteness (see
    :func:`finalise_components`).
    """
    denominators = stats.weight_sums + _MASS_EPS
    offsets = stats.first_moments / denominators[:, np.newaxis]
    means = stats.centres + offsets
    covariances = model.covariances_from_moments(
        stats.weight_sums,
        stats.first_moments,
        offsets,
        stats.second_moments,
        denominators,
        reg_covar,
    )
    weights = denominators / denominators.sum()
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
    reg_covar: float
    empty_threshold: float = 1e-6
    max_reseeds_per_component: int = 10

    @classmethod
    def for_data(
        cls, X: np.ndarray, sample_weight: np.ndarray, reg_covar: float
    ) -> DegeneracyPolicy:
        total = float(np.sum(sample_weight))
        mean = (sample_weight @ X) / total
        variances = np.asarray(
            sample_weight @ np.square(X - mean) / total, dtype=np.float64
        )
        positive = variances[variances > 0]
        fallback = positive.max() if positive.size else 1.0
        variances[variances <= 0] = fallback
        return cls(
            covariance_floor=np.sqrt(np.finfo(X.dtype).eps) * variances,
            feature_scale=np.sqrt(variances),
            mean_sample_weight=total / np.count_nonzero(sample_weight),
            reg_covar=reg_covar,
        )


def _duplicate_of(
    means: np.ndarray,
    covariances: np.ndarray,
    model: CovarianceModel,
    scale: np.ndarray,
) -> dict[int, int]:
    """Map component j to an earlier component k it duplicates exactly."""
    duplicates: dict[int, int] = {}
    n_components = means.shape[0]
    for j in range(1, n_components):
        for k in range(j):
            if k in duplicates:
                continue
            same_mean = np.all(np.abs(means[j] - means[k]) <= 1e-10 * scale)
            same_cov = model.shared or np.allclose(
                covariances[j], covariances[k], rtol=1e-8, atol=0.0
            )
            if same_mean and same_cov:
                duplicates[j] = k
                break
    return duplicates


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
) -> tuple[MixtureParams, list[DegenerateEvent]]:
    """Apply the degenerate-component policy and build the parameters.

    ``rank_samples`` returns sample indices from worst to best explained; it is
    called only when a component must be reseeded.
    """
    n_components = weights.shape[0]
    reasons: dict[int, str] = {}
    empty = weight_sums / policy.mean_sample_weight < policy.empty_threshold
    for k in np.flatnonzero(empty):
        reasons[int(k)] = "empty component"
    for j, k in _duplicate_of(means, covariances, model, policy.feature_scale).items():
        reasons.setdefault(j, f"duplicate of component {k}")
    reseed = sorted(reasons)[:reseeds_left]
    if len(reseed) == n_components:  # nothing to take a covariance from
        reseed = reseed[1:]

    covariances, events = _floor_collapsed(
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
    params = MixtureParams(weights, means, covariances, model.name, prec_chol)
    return params, events


def _floor_collapsed(
    covariances: np.ndarray,
    model: CovarianceModel,
    policy: DegeneracyPolicy,
    skip: list[int],
    restart: int,
    iteration: int,
) -> tuple[np.ndarray, list[DegenerateEvent]]:
    """Add the covariance floor to every collapsed covariance not in ``skip``."""
    _, collapsed = model.precision_cholesky(covariances, policy.covariance_floor)
    if not model.shared:
        collapsed[skip] = False
    if not np.any(collapsed):
        return covariances, []
    repaired = model.add_floor(covariances, policy.covariance_floor, collapsed)
    components = [-1] if model.shared else np.flatnonzero(collapsed).tolist()
    return repaired, [
        DegenerateEvent(restart, iteration, int(k), "floor", "collapsed covariance")
        for k in components
    ]


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
    reg_covar: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Raw ``(weights, means, covariances, weight_sums)`` from responsibilities.

    Two passes: the means about the data mean, then the covariances about
    those means, so the result is accurate however far the data lie from 0.
    """
    data_mean = (sample_weight @ X) / np.sum(sample_weight)
    centres = np.broadcast_to(data_mean, (resp.shape[1], X.shape[1]))
    first = sufficient_statistics(X, sample_weight, resp, centres, model)
    _, means, _ = m_step(first, model, reg_covar)
    stats = sufficient_statistics(X, sample_weight, resp, means, model)
    weights, means, covariances = m_step(stats, model, reg_covar)
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
    log_prob_norm, log_resp = e_step(X, params)
    stats = sufficient_statistics(
        X, sample_weight, np.exp(log_resp), params.means, model
    )
    weights, means, covariances = m_step(stats, model, policy.reg_covar)
    positive = np.flatnonzero(sample_weight > 0)
    new_params, events = finalise_components(
        weights,
        means,
        covariances,
        stats.weight_sums,
        X,
        lambda: positive[np.argsort(log_prob_norm[positive], kind="stable")],
        model,
        policy,
        restart=restart,
        iteration=iteration,
        reseeds_left=reseeds_left,
    )
    return new_params, StepInfo(
        mean_log_likelihood(log_prob_norm, sample_weight), events
    )


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
) -> EMRun:
    """Iterate :func:`em_step` until ``|change of lower bound| < tol`` or ``max_iter``.

    Mirrors scikit-learn's loop exactly, so that from the same initial
    parameters both engines produce the same trace. ``verbose_interval > 0``
    logs every that many iterations on the ``mixtures`` logger.
    """
    params = initial_params
    lower_bound = initial_lower_bound
    trace: list[float] = []
    events = list(initial_events)
    converged = False
    reseeds_left = policy.max_reseeds_per_component * params.n_components
    reseeded_last_step = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        previous = lower_bound
        params, info = em_step(
            X,
            sample_weight,
            params,
            policy,
            restart=restart,
            iteration=n_iter,
            reseeds_left=reseeds_left,
        )
        lower_bound = info.lower_bound
        trace.append(lower_bound)
        events.extend(info.events)
        n_reseeds = sum(event.action == "reseed" for event in info.events)
        reseeds_left -= n_reseeds
        change = lower_bound - previous
        if verbose_interval and n_iter % verbose_interval == 0:
            logger.info(
                "  iteration %d\tlower bound %.6f\tchange %.3g",
                n_iter,
                lower_bound,
                change,
            )
        if abs(change) < tol and not reseeded_last_step:
            converged = True
            break
        reseeded_last_step = n_reseeds > 0
    return EMRun(
        params, np.asarray(trace, dtype=np.float64), n_iter, converged, tuple(events)
    )
