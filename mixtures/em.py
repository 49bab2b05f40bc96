"""Pure functions of expectation maximisation for Gaussian mixtures.

The E-step maps data and :class:`~mixtures.params.MixtureParams` to
log-responsibilities and per-sample log-likelihoods; the M-step maps weighted
*sufficient statistics* to new parameters. Statistics are taken about a
reference point per component (the means entering the iteration), which keeps
them accurate for data far from the origin, and they add up, so they can be
accumulated over chunks, files or workers.

The pass over the data (E-step and statistics) lives in
:mod:`mixtures.passes`, the degenerate-component policy in
:mod:`mixtures.degenerate`; this module holds the M-step, one EM iteration
and the loop, and re-exports the others' public names.

Every function that runs a pass or an M-step takes ``kernel``, ``"numba"``
(the compiled helpers) or ``"numpy"``: :func:`mixtures.fitting.fit_validated`
resolves the fit's option once and passes it down; None (for a direct call)
means the default, ``resolve_kernel(None)`` (:mod:`mixtures._parallel`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from mixtures._parallel import resolve_kernel
from mixtures.covariance import CovarianceModel
from mixtures.degenerate import (
    DegeneracyPolicy,
    DegenerateEvent,
    finalise_components,
)
from mixtures.params import MixtureParams
from mixtures.passes import (
    SufficientStats,
    _scored_pass,
    e_step,
    em_pass,
    estimate_log_gaussian_prob,
    estimate_weighted_log_prob,
    mean_log_likelihood,
    predict_labels,
    score_and_label,
    score_samples,
    sufficient_statistics,
    weighted_feature_variance,
    weighted_mean,
)
from mixtures.prior import ResolvedPrior

__all__ = [
    "DegeneracyPolicy",
    "DegenerateEvent",
    "EMRun",
    "ScoredPass",
    "StepInfo",
    "SufficientStats",
    "e_step",
    "em_pass",
    "em_step",
    "estimate_log_gaussian_prob",
    "estimate_weighted_log_prob",
    "finalise_components",
    "m_step",
    "mean_log_likelihood",
    "params_from_responsibilities",
    "predict_labels",
    "run_em",
    "score_and_label",
    "score_samples",
    "sufficient_statistics",
    "weighted_feature_variance",
    "weighted_mean",
]

logger = logging.getLogger("mixtures")

#: A pass over the data: ``(X, sample_weight, params) -> (statistics about
#: the current means, log p(x_n) of every row, weighted mean log-likelihood)``.
ScoredPass = Callable[
    [np.ndarray, np.ndarray, MixtureParams], tuple[SufficientStats, np.ndarray, float]
]

# scikit-learn adds this many machine epsilons to every component's mass so a
# component with no responsibility keeps a finite mean; we do the same so the
# two engines agree to rounding.
_MASS_EPS = 10 * np.finfo(np.float64).eps


def m_step(
    stats: SufficientStats,
    model: CovarianceModel,
    reg_covar: float | np.ndarray,
    prior: ResolvedPrior | None = None,
    previous: np.ndarray | None = None,
    *,
    kernel: str | None = None,
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
    if kernel is None:
        kernel = resolve_kernel(None)
    moments = (
        stats.weight_sums,
        stats.first_moments,
        offsets,
        second_moments,
        denominators,
    )
    covariances = model.covariances_from_moments(
        moments, reg_covar, previous, kernel=kernel
    )
    return weights, means, covariances


# ---------------------------------------------------------------------------
# Initialisation from responsibilities


def params_from_responsibilities(
    X: np.ndarray,
    sample_weight: np.ndarray,
    resp: np.ndarray,
    model: CovarianceModel,
    reg_covar: float | np.ndarray,
    prior: ResolvedPrior | None = None,
    *,
    kernel: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Raw ``(weights, means, covariances, weight_sums)`` from responsibilities.

    Two passes: the means about the data mean, then the covariances about
    those means, so the result is accurate however far the data lie from 0.
    """
    if kernel is None:
        kernel = resolve_kernel(None)
    data_mean = weighted_mean(X, sample_weight)
    centres = np.broadcast_to(data_mean, (resp.shape[1], X.shape[1]))
    first = sufficient_statistics(X, sample_weight, resp, centres, model)
    _, means, _ = m_step(first, model, reg_covar, kernel=kernel)
    stats = sufficient_statistics(X, sample_weight, resp, means, model)
    weights, means, covariances = m_step(stats, model, reg_covar, prior, kernel=kernel)
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
    kernel: str | None = None,
    scored_pass: ScoredPass | None = None,
) -> tuple[MixtureParams, StepInfo]:
    """One E-step and M-step: ``(new_params, info)``.

    ``info.lower_bound`` scores ``params`` (the parameters entering the
    step), as scikit-learn's ``lower_bounds_`` does. ``scored_pass``
    replaces the engine's pass over ``X`` (the pass over data with missing
    values, :mod:`mixtures.missing`, is one); ``X`` then serves only the
    degenerate-component policy's reseeding.
    """
    if kernel is None:
        kernel = resolve_kernel(None)
    model = params.model
    if scored_pass is None:
        stats, log_prob_norm, lower_bound = _scored_pass(
            X, sample_weight, params, kernel
        )
    else:
        stats, log_prob_norm, lower_bound = scored_pass(X, sample_weight, params)
    weights, means, covariances = m_step(
        stats, model, policy.reg_covar, policy.prior, params.covariances, kernel=kernel
    )

    def worst_explained_first() -> np.ndarray:
        positive = np.flatnonzero(sample_weight > 0)
        # A device pass's log p stays on its device until needed here.
        from mixtures._arrays import to_numpy

        scores = to_numpy(log_prob_norm)[positive]
        return positive[np.argsort(scores, kind="stable")]

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
        kernel=kernel,
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
    kernel: str | None = None,
    scored_pass: ScoredPass | None = None,
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
    ``mixtures`` logger. Every pass and M-step runs on ``kernel``;
    ``scored_pass`` replaces the pass over ``X`` (see :func:`em_step`).
    """
    from mixtures.accelerate import aitken_limit, squarem_point

    if kernel is None:
        kernel = resolve_kernel(None)
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
            kernel=kernel,
            scored_pass=scored_pass,
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
        candidate, _ = squarem_point(start, middle, params, kernel=kernel)
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
