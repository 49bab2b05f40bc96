"""What the report needs to know about the data, recorded while it is in memory.

The report never loads a data set nor calls the engine: it reads tables. So
the runner records, once per data set variant on the sweep's first data
replicate (the one the report draws), two tables:

``data_sets``
    ``data_key, dataset, n_samples, n_features, features`` (the
    feature names, JSON), ``low, high`` (each feature's minimum and maximum,
    JSON), ``truth_log_likelihood`` and ``truth_spread``: the data's total
    log-likelihood under the generating mixture, and how much that total
    varies from sample to sample (:func:`experiments.scenario_analysis.
    sampling_spread`); NaN where the truth is unknown.
``samples``
    ``data_key, row, feature, value`` (long form): the rows the
    report draws. :data:`SHOWN_POINTS` random rows (seeded) in 2-D or more;
    in 1-D every row up to :data:`SHOWN_1D`, for the histogram.

A run's rows are those with its ``data_key``
(:attr:`experiments.config.RunSpec.data_key`, a column of ``runs``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from experiments.config import RunSpec
from experiments.datasets import Dataset, load_dataset
from experiments.scenario_analysis import sampling_spread

__all__ = [
    "SHOWN_1D",
    "SHOWN_POINTS",
    "data_set_row",
    "feature_names",
    "record_data",
    "sample_rows",
    "shown_rows",
]

#: Points drawn in a 2-D figure (a seeded random subset of the rows).
SHOWN_POINTS = 500
#: Rows kept for a 1-D histogram (all of them, up to this many).
SHOWN_1D = 20_000


def feature_names(data: Dataset) -> list[str]:
    """The data's feature names: its columns, else x (1-D) or x1, x2, ..."""
    names = data.notes.get("columns") or data.notes.get("features")
    if names:
        return [str(name) for name in names]
    d = data.X.shape[1]
    return ["x"] if d == 1 else [f"x{i + 1}" for i in range(d)]


def shown_rows(n_samples: int, n_features: int) -> np.ndarray:
    """Indices of the rows the report draws, sorted; seeded, so always the same."""
    limit = SHOWN_1D if n_features == 1 else SHOWN_POINTS
    if n_samples <= limit:
        return np.arange(n_samples)
    return np.sort(np.random.default_rng(0).choice(n_samples, limit, replace=False))


def data_set_row(spec: RunSpec, data: Dataset) -> dict[str, Any]:
    """The ``data_sets`` row of one data set variant."""
    X = np.asarray(data.X, dtype=float)
    spread = (
        sampling_spread(X, data.truth)
        if data.truth is not None
        else {"log_likelihood": np.nan, "spread": np.nan}
    )
    return {
        "data_key": spec.data_key,
        "dataset": spec.dataset,
        "n_samples": X.shape[0],
        "n_features": X.shape[1],
        "features": json.dumps(feature_names(data)),
        # Of the observed values, where some are missing.
        "low": json.dumps(np.nanmin(X, axis=0).tolist()),
        "high": json.dumps(np.nanmax(X, axis=0).tolist()),
        "truth_log_likelihood": spread["log_likelihood"],
        "truth_spread": spread["spread"],
    }


def sample_rows(spec: RunSpec, data: Dataset) -> pd.DataFrame:
    """The ``samples`` rows of one data set variant (long form)."""
    X = np.asarray(data.X, dtype=float)
    rows = shown_rows(*X.shape)
    n_features = X.shape[1]
    return pd.DataFrame(
        {
            "data_key": spec.data_key,
            "row": np.repeat(rows, n_features),
            "feature": np.tile(np.arange(n_features), rows.size),
            "value": X[rows].ravel(),
        }
    )


def record_data(
    specs: Iterable[RunSpec], known: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The ``data_sets`` and ``samples`` tables of the specs' first replicate.

    One load per data set variant. Returns None when ``known`` (a stored
    ``data_sets`` table) already holds every variant, so a resumed sweep
    does not load its data again. A data set that cannot be loaded is left
    out (its runs are recorded as failed by the runner).
    """
    specs = list(specs)
    if not specs:
        return None
    first = min(spec.data_replicate for spec in specs)
    variants: dict[str, RunSpec] = {}
    for spec in specs:
        if spec.data_replicate == first:
            variants.setdefault(spec.data_key, spec)
    if (
        known is not None
        and "data_key" in known
        and set(variants) <= set(known["data_key"])
    ):
        return None
    facts, samples = [], []
    for spec in variants.values():
        try:
            data = load_dataset(
                spec.dataset, seed=spec.data_seed, **spec.dataset_params
            )
        except Exception:  # its runs record the error
            continue
        facts.append(data_set_row(spec, data))
        samples.append(sample_rows(spec, data))
    if not samples:
        samples.append(pd.DataFrame(columns=["data_key", "row", "feature", "value"]))
    return pd.DataFrame(facts), pd.concat(samples, ignore_index=True)
