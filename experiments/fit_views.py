"""A recorded fit over recorded points: what the report draws and counts.

Closed forms over a fit's parameters (:class:`~mixtures.MixtureParams`, as
the tables record them) and the rows the runner kept
(:mod:`experiments.data_facts`), computed with :mod:`scipy.stats`. The
report never calls the engine; these are independent of it, and the tests
check them against it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import logsumexp

from mixtures import MixtureParams

__all__ = [
    "assign_components",
    "component_densities",
    "confusion_table",
    "mixture_density",
]


def _weighted_log_densities(X: np.ndarray, params: MixtureParams) -> np.ndarray:
    """``log w_k + log N(x_n | mu_k, Sigma_k)``, shape (n_samples, K).

    A row with missing values (NaN) by the density of its observed values.
    """
    X = np.asarray(X, dtype=float)
    covariances = params.full_covariances()
    out = np.empty((X.shape[0], params.n_components))
    holes = np.isnan(X)
    for observed in np.unique(~holes, axis=0):
        rows = np.flatnonzero((~holes == observed).all(axis=1))
        if not observed.any():
            out[rows] = np.log(params.weights)
            continue
        for k in range(params.n_components):
            out[rows, k] = np.log(params.weights[k]) + np.atleast_1d(
                stats.multivariate_normal(
                    params.means[k, observed],
                    covariances[k][np.ix_(observed, observed)],
                    allow_singular=True,
                ).logpdf(X[np.ix_(rows, observed)])
            )
    return out


def assign_components(X: np.ndarray, params: MixtureParams) -> np.ndarray:
    """Each row's most probable component (0-based), shape (n_samples,).

    ``X`` has shape (n_samples, n_features), in the units the parameters
    are in.
    """
    return _weighted_log_densities(X, params).argmax(axis=1)


def component_densities(grid: np.ndarray, params: MixtureParams) -> np.ndarray:
    """Weighted component densities ``w_k N(x | mu_k, sigma_k^2)`` of a 1-D fit.

    ``grid`` has shape (m,); returns shape (K, m). They sum to the mixture
    density.
    """
    grid = np.asarray(grid, dtype=float)
    return np.exp(_weighted_log_densities(grid[:, None], params)).T


def mixture_density(grid: np.ndarray, params: MixtureParams) -> np.ndarray:
    """The mixture density of a 1-D fit on ``grid`` (m,), shape (m,)."""
    grid = np.asarray(grid, dtype=float)
    return np.exp(logsumexp(_weighted_log_densities(grid[:, None], params), axis=1))


def confusion_table(labels, components) -> pd.DataFrame:
    """Rows per known class (``class``) and component (``component c``) column.

    ``labels`` and ``components`` have one entry per data row; components
    as numbered in the outputs (1..K).
    """
    table = pd.crosstab(
        pd.Series(np.asarray(labels)).astype(str).rename("class"),
        pd.Series(np.asarray(components)).rename("component"),
    )
    table.columns = [f"component {c}" for c in table.columns]
    return table.reset_index()
