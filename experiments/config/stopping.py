"""The sweep's stopping rule in each iterative engine's own units.

``[stopping] tol`` is a relative change of the *total* log-likelihood (see
:mod:`experiments.config`); :func:`engine_stopping_options` turns it into
the ``tol`` and ``max_iter`` an engine takes, given the data it fits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments.config.schema import ITERATIVE_ENGINES, Stopping

__all__ = ["TOTAL_TOL_ENGINES", "engine_stopping_options"]

#: Iterative engines whose ``tol`` is an absolute change of a *total* over the
#: data: scikit-learn's ``BayesianGaussianMixture`` compares successive values
#: of its variational lower bound, which is summed over the samples.
TOTAL_TOL_ENGINES = {"sklearn-vb"}


def engine_stopping_options(
    engine: str, stopping: Stopping, X: np.ndarray
) -> dict[str, Any]:
    """The sweep's stopping rule as ``engine``'s own options (``{}`` if none).

    gmmlab's EM and scikit-learn stop when the *mean* log-likelihood changes
    by less than their ``tol``; the sweep's rule is a change of the *total*
    below ``stopping.tol * max(|L_1|, n)``, so their ``tol`` is
    ``stopping.tol * max(|L_1| / n, 1)``, with ``L_1`` the log-likelihood of
    ``X`` (n_samples, n_features) under one Gaussian fitted to it.

    scikit-learn's variational mixture (``sklearn-vb``, in
    :data:`TOTAL_TOL_ENGINES`) stops when its lower bound, a total over the
    data (``BayesianGaussianMixture._compute_lower_bound`` sums over the
    samples; ``GaussianMixture``'s is a mean), changes by less than its
    ``tol``: it gets the same threshold in nats, ``stopping.tol * max(|L_1|,
    n)``, applied to the change of its lower bound instead of the
    log-likelihood.
    """
    if engine not in ITERATIVE_ENGINES:
        return {}
    tol = stopping.tol * max(abs(_one_gaussian_mean_loglik(X)), 1.0)
    if engine in TOTAL_TOL_ENGINES:
        tol *= np.shape(X)[0]
    return {"tol": tol, "max_iter": stopping.max_iter}


def _one_gaussian_mean_loglik(X: np.ndarray) -> float:
    """Mean log-likelihood of ``X`` under its maximum-likelihood Gaussian."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, np.newaxis]
    n_features = X.shape[1]
    if np.isnan(X).any():  # missing values: each entry from the rows with both
        from mixtures.missing import pairwise_covariance

        covariance = pairwise_covariance(X)
    else:
        covariance = np.atleast_2d(np.cov(X, rowvar=False, bias=True))
    sign, logdet = np.linalg.slogdet(covariance)
    if sign <= 0 or not np.isfinite(logdet):
        return float("nan") if X.shape[0] == 0 else 0.0
    return float(-0.5 * (n_features * np.log(2 * np.pi) + logdet + n_features))
