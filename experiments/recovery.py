"""Parameter recovery against known truth: per fit, per sample size, its slope.

The numbers the report's recovery section states: each fit's error against
the data's true mixture, summarised per sample size, and the log-log slope
of the error against n (1/2 for a root-n consistent estimator).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.analysis import (
    _METRICS,
    _data_keys,
    at_an_optimum,
    best_eligible,
    data_columns,
    eligible,
    posterior,
)

__all__ = ["MAXIMUM_LIKELIHOOD", "recovery_fits", "recovery_slope", "recovery_summary"]

#: The ``estimator`` of the data's maximum-likelihood fit in the recovery tables.
MAXIMUM_LIKELIHOOD = "maximum likelihood"


def recovery_fits(runs: pd.DataFrame) -> pd.DataFrame:
    """The fits recovery is measured on: one per data replicate, model and estimator.

    For every data set, its ``p_*`` parameters, data replicate, K and
    covariance type: the data's maximum, the fit :func:`at_an_optimum` of
    highest log-likelihood over every arm, initialisation and seed
    (``estimator`` = :data:`MAXIMUM_LIKELIHOOD`), which is what maximum
    likelihood estimates, whichever start found it; and, for each posterior
    arm, its best eligible fit (``estimator`` = the arm). Rows of ``runs``
    with ``estimator`` added, ties to the smallest ``run_id``; only fits
    with recovery metrics (data with a known truth).
    """
    metrics = [m for m in _METRICS if m in runs.columns]
    if not metrics or runs.empty:
        return pd.DataFrame()
    keys = [*_data_keys(runs), "n_components", "covariance_type"]
    maximum = best_eligible(runs[at_an_optimum(runs)], keys)
    bayes = best_eligible(runs[eligible(runs) & posterior(runs)], [*keys, "backend"])
    fits = pd.concat(
        [
            maximum.assign(estimator=MAXIMUM_LIKELIHOOD),
            bayes.assign(estimator=bayes["backend"]),
        ],
        ignore_index=True,
    )
    return fits.dropna(subset=metrics, how="all").reset_index(drop=True)


def recovery_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Parameter recovery across data replicates, one row per data set and estimator.

    Per data set, ``p_*`` parameters, K, covariance type and ``estimator``
    (:func:`recovery_fits`: the data's maximum, or a posterior arm's best
    fit): ``n_replicates`` and the median of each ``m_*`` metric over data
    replicates.
    """
    fits = recovery_fits(runs)
    if fits.empty:
        return pd.DataFrame()
    metrics = [m for m in _METRICS if m in fits.columns]
    keys = [
        "dataset",
        *data_columns(runs),
        "n_components",
        "covariance_type",
        "estimator",
    ]
    grouped = fits.groupby(keys, dropna=False, sort=True)
    summary = grouped[metrics].median()
    summary.insert(0, "n_replicates", grouped["data_replicate"].nunique())
    return summary.reset_index()


def _log_log_slope(log_sizes: np.ndarray, values: np.ndarray):
    """Least-squares slope of ``log(values)`` on ``log_sizes`` (last axis)."""
    x = log_sizes - log_sizes.mean()
    y = np.log(values)
    return (y - y.mean(axis=-1, keepdims=True)) @ x / (x @ x)


def recovery_slope(
    runs: pd.DataFrame,
    metric: str = "m_mean_rmse",
    *,
    size: str = "p_n",
    n_boot: int = 2000,
    confidence: float = 0.95,
    random_state: int = 0,
) -> pd.DataFrame:
    """How recovery error falls with the sample size, with a bootstrap interval.

    For every series over ``size`` (a data set with its other ``p_*``
    parameters, K and covariance type): the data's maximum's ``metric``
    (:func:`recovery_fits`) per data replicate and size, its median over
    replicates at each size, and ``slope``, the least-squares slope of the
    log median on the log size (-0.5 is the parametric 1/sqrt(n)).
    ``slope_low`` and ``slope_high`` are the percentile interval at
    ``confidence`` of the same slope over ``n_boot`` bootstrap resamples of
    the data replicates (a replicate is a truth with nested samples over
    ``size``, so it is resampled whole), drawn from
    ``numpy.random.default_rng(random_state)`` afresh for every series:
    reproducible, and independent of the other series. Only replicates
    measured at every size take part (``n_replicates``, at ``n_sizes`` sizes
    from ``size_min`` to ``size_max``); series with fewer than two sizes are
    left out.
    """
    columns = [
        "dataset",
        "n_components",
        "covariance_type",
        "metric",
        "n_replicates",
        "n_sizes",
        "size_min",
        "size_max",
        "slope",
        "slope_low",
        "slope_high",
        "confidence",
        "n_boot",
    ]
    fits = recovery_fits(runs)
    if fits.empty or size not in fits or metric not in fits:
        return pd.DataFrame(columns=columns)
    fits = fits[fits["estimator"] == MAXIMUM_LIKELIHOOD]
    fits = fits[fits[size].notna() & (fits[metric] > 0)]
    keys = [
        "dataset",
        *[c for c in data_columns(runs) if c != size],
        "n_components",
        "covariance_type",
    ]
    tail = 100 * (1 - confidence) / 2
    rows = []
    for key, series in fits.groupby(keys, dropna=False, sort=True):
        table = series.pivot(
            index="data_replicate", columns=size, values=metric
        ).dropna()
        if table.shape[1] < 2 or table.empty:
            continue
        log_sizes = np.log(table.columns.to_numpy(dtype=float))
        values = table.to_numpy(dtype=float)
        rng = np.random.default_rng(random_state)
        draws = rng.integers(0, len(values), size=(n_boot, len(values)))
        slopes = _log_log_slope(log_sizes, np.median(values[draws], axis=1))
        low, high = np.percentile(slopes, [tail, 100 - tail])
        row = dict(zip(keys, key, strict=True))
        row.update(
            metric=metric,
            n_replicates=len(values),
            n_sizes=len(log_sizes),
            size_min=float(table.columns.min()),
            size_max=float(table.columns.max()),
            slope=float(_log_log_slope(log_sizes, np.median(values, axis=0))),
            slope_low=float(low),
            slope_high=float(high),
            confidence=confidence,
            n_boot=n_boot,
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=[*keys, *columns[3:]])
