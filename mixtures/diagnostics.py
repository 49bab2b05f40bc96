"""Diagnostics of a fitted mixture: degeneracy, classification uncertainty, ICL.

One definition of a *degenerate* (spurious) solution serves the model search
(:mod:`mixtures.select`) and the experiments (:mod:`experiments.evaluate`):
a component with effective size ``n * w_k < D + 1``; a component whose
variance in some direction is below :data:`MIN_RELATIVE_VARIANCE` times the
data's variance in that direction (the smallest generalised eigenvalue of its
covariance against the data's covariance: a spike on tied or duplicated
values); or two components that are the same Gaussian, exactly (EM can never
separate them) or within :data:`INDISTINGUISHABLE` (a saddle of the
likelihood, one Gaussian split in two, that EM leaves too slowly for any
stopping rule to notice: the fit is a (K - 1)-component fit). A likelihood that
rises without bound as a covariance collapses onto a few points is the
classic spurious maximum (Day 1969; McLachlan & Peel 2000, section 3.10).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg

from mixtures.em import EMRun, e_step
from mixtures.params import MixtureParams

__all__ = [
    "INDISTINGUISHABLE",
    "MIN_RELATIVE_VARIANCE",
    "classification_entropy",
    "degeneracy_findings",
    "in_force",
    "uncertainty",
]

MIN_RELATIVE_VARIANCE = 1e-6
_DUPLICATE_RTOL = 1e-6

#: Two components are indistinguishable when the Mahalanobis distance
#: between their means (under their average covariance) is below this and
#: their covariances differ by less than this, relative (Frobenius norm).
#: At distance d the split changes the density by O(d^2) and the
#: log-likelihood by O(n d^4): 0.05 needs ~10^6 rows to be seen.
INDISTINGUISHABLE = 0.05


def _data_covariance(X: np.ndarray) -> np.ndarray:
    covariance = np.atleast_2d(np.cov(X, rowvar=False, bias=True))
    # A constant feature would make the pencil singular; a ridge far below
    # any real variance keeps the generalised problem defined.
    ridge = np.finfo(np.float64).eps * max(float(np.max(np.diag(covariance))), 1e-300)
    return covariance + ridge * np.eye(covariance.shape[0])


def degeneracy_findings(
    params: MixtureParams, X: np.ndarray, reg_covar: float | np.ndarray = 0.0
) -> dict[str, Any]:
    """Measures of degeneracy of ``params`` fitted to ``X`` (n_samples, n_features).

    Returns ``min_effective_size`` (smallest ``n * w_k``),
    ``min_relative_variance`` (smallest generalised eigenvalue of any
    component's covariance against the data's covariance) and ``reasons``,
    a list of sentences for every breach of the module's thresholds.
    ``reg_covar``, the regularisation the fit added to every covariance, is
    taken off first: a component on duplicated points has covariance
    ``reg_covar * I``, which is no evidence of spread.
    """
    n_samples, n_features = X.shape
    data_covariance = _data_covariance(X)
    covariances = params.full_covariances() - np.diag(
        np.broadcast_to(np.asarray(reg_covar, dtype=float), (n_features,))
    )
    effective = n_samples * params.weights
    relative = np.array(
        [
            scipy.linalg.eigh(cov, data_covariance, eigvals_only=True)[0]
            for cov in covariances
        ]
    )
    reasons = [
        f"component {k} has effective size n*w = {size:.3g} < D + 1 = {n_features + 1}"
        for k, size in enumerate(effective)
        if size < n_features + 1
    ]
    reasons.extend(
        f"component {k} has relative variance {value:.2g} < "
        f"{MIN_RELATIVE_VARIANCE:g} of the data's in some direction"
        for k, value in enumerate(relative)
        if value < MIN_RELATIVE_VARIANCE
    )
    scale = np.sqrt(np.diag(data_covariance))
    for j in range(params.n_components):
        for k in range(j):
            same_mean = np.all(
                np.abs(params.means[j] - params.means[k]) <= _DUPLICATE_RTOL * scale
            )
            same_cov = np.all(
                np.abs(covariances[j] - covariances[k])
                <= _DUPLICATE_RTOL * np.outer(scale, scale)
            )
            if same_mean and same_cov:
                reasons.append(f"components {k} and {j} are the same Gaussian")
                continue
            average = 0.5 * (covariances[j] + covariances[k])
            difference = params.means[j] - params.means[k]
            try:
                distance = float(
                    np.sqrt(difference @ np.linalg.solve(average, difference))
                )
            except np.linalg.LinAlgError:
                continue
            spread = np.linalg.norm(covariances[j] - covariances[k]) / max(
                np.linalg.norm(average), np.finfo(float).tiny
            )
            if distance < INDISTINGUISHABLE and spread < INDISTINGUISHABLE:
                reasons.append(
                    f"components {k} and {j} are indistinguishable (Mahalanobis "
                    f"distance {distance:.2g} between means, covariances "
                    f"{spread:.1%} apart): one Gaussian split in two, a saddle "
                    "EM leaves too slowly to notice"
                )
    return {
        "min_effective_size": float(effective.min()),
        "min_relative_variance": float(relative.min()),
        "reasons": reasons,
    }


def in_force(run: EMRun) -> list[str]:
    """Degenerate-component actions of a run's last M-step, still in the fit.

    A floored covariance or a component reseeded and never re-fitted.
    """
    return [
        f"{event.action} of component {event.component} ({event.reason})"
        for event in run.events
        if event.iteration == run.n_iter
    ]


def uncertainty(X: np.ndarray, params: MixtureParams) -> np.ndarray:
    """Classification uncertainty ``1 - max_k tau_nk`` of every row, shape (n,)."""
    _, log_resp = e_step(X, params)
    return -np.expm1(log_resp.max(axis=1))


def classification_entropy(X: np.ndarray, params: MixtureParams) -> float:
    """``-sum_n log max_k tau_nk``: the penalty ICL adds to BIC, halved.

    ICL (Biernacki, Celeux & Govaert 2000, in the form mclust uses) is the
    BIC of the classification likelihood at the MAP labels; with
    scikit-learn's sign (lower is better), ``ICL = BIC + 2 * this``.
    """
    _, log_resp = e_step(X, params)
    return float(-np.sum(log_resp.max(axis=1)))
