"""Imputations of missing cells with intervals, and how well they did.

Under a fitted Gaussian mixture, the distribution of a row's missing
coordinates given its observed ones is again a mixture (Little & Rubin,
*Statistical Analysis with Missing Data*, 3rd ed. 2019, sec. 11.2 and 17.1;
Ghahramani & Jordan 1994): component ``k`` with probability
``tau_k(x_o)`` (the responsibility computed from the observed values), and
within it ``x_m | x_o ~ N(mu_km + B_k (x_o - mu_ko), C_k)`` with
``B_k = Sigma_k,mo Sigma_k,oo^-1`` and ``C_k = Sigma_k,mm - B_k Sigma_k,om``
(:mod:`mixtures.missing`). One missing cell ``j`` is therefore a
*univariate* mixture of normals with weights ``tau_k``, means the ``j``
entries of the conditional means, and variances the ``j`` diagonal entries
of ``C_k``. :func:`conditional_intervals` gives its mean and its exact
central interval; :func:`imputation_scores` compares an imputation with the
values that were removed.

The intervals are plug-in: they take the fitted parameters as known, so
they ignore the parameters' own uncertainty, and they are only as right as
the model and the assumption that values are missing at random.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import logsumexp, ndtr, ndtri

from mixtures.backends.base import Imputation
from mixtures.missing import _pattern_terms, find_patterns
from mixtures.params import MixtureParams

__all__ = [
    "IMPUTATION_LEVEL",
    "conditional_intervals",
    "filled_imputation",
    "imputation_scores",
    "mixture_quantiles",
]

#: The nominal coverage of the intervals the backends report.
IMPUTATION_LEVEL = 0.9
#: Quantiles are found to this fraction of each cell's conditional SD.
_RELATIVE_TOLERANCE = 1e-10


def _check_level(level: float) -> float:
    level = float(level)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level}.")
    return level


def mixture_quantiles(
    weights: np.ndarray, means: np.ndarray, sds: np.ndarray, probability: float
) -> np.ndarray:
    """The ``probability`` quantile of each of many univariate normal mixtures.

    ``weights``, ``means`` and ``sds`` have shape (n, K): row ``i`` is the
    mixture ``sum_k w_ik N(m_ik, s_ik^2)`` (weights summing to 1; an SD of 0
    is a point mass). Returns shape (n,), found by bisection on the mixture
    CDF (``scipy.special.ndtr``) between the smallest and largest component
    quantile, which bracket the mixture's, to ``1e-10`` of the mixture's SD.
    """
    weights, means, sds = (
        np.asarray(a, dtype=np.float64) for a in (weights, means, sds)
    )
    if not 0 < probability < 1:
        raise ValueError(f"probability must be in (0, 1); got {probability}.")
    z = float(ndtri(probability))
    component = means + z * sds
    low, high = component.min(axis=1), component.max(axis=1)
    if weights.size == 0:
        return low
    average = np.sum(weights * means, axis=1)
    spread = np.sqrt(
        np.maximum(np.sum(weights * (sds**2 + (means - average[:, None]) ** 2), 1), 0)
    )
    tolerance = _RELATIVE_TOLERANCE * np.maximum(spread, np.finfo(float).tiny)
    width = float(np.max((high - low) / tolerance))
    steps = min(math.ceil(math.log2(width)) if width > 1 else 0, 200)
    safe_sds = np.where(sds > 0, sds, 1.0)
    for _ in range(steps):
        middle = 0.5 * (low + high)
        x = middle[:, None]
        cdf = np.where(sds > 0, ndtr((x - means) / safe_sds), x >= means)
        below = np.sum(weights * cdf, axis=1) < probability
        low = np.where(below, middle, low)
        high = np.where(below, high, middle)
    return 0.5 * (low + high)


def _cell_mixtures(X: np.ndarray, params: MixtureParams):
    """Each missing cell's conditional mixture: weights, means, SDs (n_cells, K).

    Cells in the order of ``np.nonzero(np.isnan(X))``.
    """
    missing = np.isnan(X)
    rows, columns = np.nonzero(missing)
    n_cells, K = rows.size, params.n_components
    position = np.full(X.shape, -1, dtype=np.int64)
    position[rows, columns] = np.arange(n_cells)
    weights, means, sds = (np.empty((n_cells, K)) for _ in range(3))
    patterns = find_patterns(X, allow_empty_feature=True)
    covariances = params.full_covariances()
    log_weights = np.log(params.weights)
    for observed, pattern_rows in zip(patterns.observed, patterns.rows, strict=True):
        o, m = np.flatnonzero(observed), np.flatnonzero(~observed)
        terms = _pattern_terms(
            X[np.ix_(pattern_rows, o)], observed, params.means, covariances
        )
        weighted = terms.log_gauss + log_weights
        tau = np.exp(weighted - logsumexp(weighted, axis=1, keepdims=True))
        # (K, n_rows, d_m): each component's conditional mean.
        means_m = params.means[:, m][:, np.newaxis] + np.einsum(
            "kmi,kni->knm", terms.regression, terms.centred
        )
        variances = np.maximum(np.diagonal(terms.conditional, axis1=1, axis2=2), 0)
        cells = position[np.ix_(pattern_rows, m)]  # (n_rows, d_m)
        weights[cells] = tau[:, np.newaxis, :]
        means[cells] = means_m.transpose(1, 2, 0)
        sds[cells] = np.sqrt(variances).T[np.newaxis]
    return rows, columns, weights, means, sds


def conditional_intervals(
    X: np.ndarray, params: MixtureParams, level: float = IMPUTATION_LEVEL
) -> Imputation:
    """Conditional means and central intervals of the missing cells of ``X``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data with NaN where a value is missing, in the units of ``params``.
        A row with every value missing is refused (it has no observed values
        to condition on: :func:`mixtures.missing.find_patterns`).
    params : MixtureParams
        A fitted mixture with ``n_features`` features, any covariance type.
    level : float, default 0.9
        The intervals' probability, in (0, 1).

    Returns
    -------
    Imputation
        One entry per missing cell, in the order of
        ``np.nonzero(np.isnan(X))``: ``mean`` the conditional expectation
        ``E[x_j | x_o]`` (as :func:`mixtures.missing.conditional_expectations`),
        ``lower`` and ``upper`` the exact ``(1 - level) / 2`` and
        ``(1 + level) / 2`` quantiles of the cell's conditional distribution,
        a univariate mixture of normals (module docstring; Little & Rubin
        2019, sec. 11.2). Empty when nothing is missing.

    Raises
    ------
    ValueError
        When ``level`` is not in (0, 1) or the shapes disagree.
    """
    level = _check_level(level)
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != params.n_features:
        raise ValueError(
            f"X must have shape (n_samples, {params.n_features}); got {X.shape}."
        )
    rows, columns, weights, means, sds = _cell_mixtures(X, params)
    tail = (1 - level) / 2
    return Imputation(
        rows=rows,
        columns=columns,
        mean=np.sum(weights * means, axis=1),
        lower=mixture_quantiles(weights, means, sds, tail),
        upper=mixture_quantiles(weights, means, sds, 1 - tail),
        level=level,
    )


def filled_imputation(X: np.ndarray, filled: np.ndarray) -> Imputation:
    """A single imputation: the fill of each NaN cell of ``X``, no interval.

    ``filled`` is ``X`` (n_samples, n_features) with its holes filled;
    ``lower`` and ``upper`` equal the fill, since a single fill claims no
    uncertainty.
    """
    rows, columns = np.nonzero(np.isnan(X))
    values = np.asarray(filled, dtype=np.float64)[rows, columns]
    return Imputation(rows, columns, values, values.copy(), values.copy())


def imputation_scores(imputation: Imputation, X: np.ndarray, complete: np.ndarray):
    """How an imputation of ``X``'s holes compares with the removed values.

    ``X`` (n_samples, n_features) has NaN where values were removed from
    ``complete`` (same shape, every value known). Returns a dict:
    ``imputation_rmse`` (root mean squared error of ``mean`` over the
    cells), ``imputation_coverage`` (share of the removed values inside
    ``[lower, upper]``; NaN when no cell has an interval, i.e. a single fill),
    ``imputation_width`` (mean ``upper - lower``), ``imputation_level``
    (nominal coverage; NaN without intervals) and ``imputation_cells``.

    Raises
    ------
    ValueError
        When the imputation's cells are not exactly the NaN cells of ``X``
        or ``complete`` is missing one of their values.
    """
    X, complete = np.asarray(X, dtype=float), np.asarray(complete, dtype=float)
    rows, columns = np.nonzero(np.isnan(X))
    if complete.shape != X.shape:
        raise ValueError(f"complete has shape {complete.shape}; X has {X.shape}.")
    if not (
        np.array_equal(rows, imputation.rows)
        and np.array_equal(columns, imputation.columns)
    ):
        raise ValueError(
            f"the imputation's {imputation.n_cells} cells are not the "
            f"{rows.size} missing cells of X, in np.nonzero order."
        )
    truth = complete[rows, columns]
    if not np.isfinite(truth).all():
        raise ValueError("complete lacks some of the removed values.")
    has_interval = bool(np.any(imputation.upper > imputation.lower))
    inside = (imputation.lower <= truth) & (truth <= imputation.upper)
    empty = rows.size == 0
    return {
        "imputation_rmse": (
            np.nan if empty else float(np.sqrt(np.mean((imputation.mean - truth) ** 2)))
        ),
        "imputation_coverage": float(np.mean(inside)) if has_interval else np.nan,
        "imputation_width": (
            np.nan if empty else float(np.mean(imputation.upper - imputation.lower))
        ),
        "imputation_level": imputation.level if has_interval else np.nan,
        "imputation_cells": int(rows.size),
    }
