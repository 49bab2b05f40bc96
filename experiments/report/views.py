"""How recorded rows are named and laid out for a reader.

Labels of data sets ('synthetic n=250': a data set and the parameters that
vary in its series), the outcome table with readable column names, and a
fitted mixture's parameters as one row per component. Shared by the
sections and the figures; no statistic is computed here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.analysis import STATUSES, data_columns
from mixtures import MixtureParams

__all__ = ["data_label", "outcome_table", "parameter_table", "summary_label"]


def data_label(values: dict, runs: pd.DataFrame) -> str:
    """'synthetic n=250': a data set and the parameters that vary in its series."""
    parts = [str(values["dataset"])]
    mine = runs[runs["dataset"] == values["dataset"]]
    for column, value in values.items():
        varies = column in mine and mine[column].nunique(dropna=False) > 1
        if column.startswith("p_") and pd.notna(value) and varies:
            shown = (
                int(value) if isinstance(value, float) and value.is_integer() else value
            )
            parts.append(f"{column.removeprefix('p_')}={shown}")
    return " ".join(parts)


def summary_label(row: pd.Series, runs: pd.DataFrame) -> str:
    """A summary-table row's data: 's5 scaled=True', 'synthetic n=250'."""
    keys = ["dataset", *data_columns(runs)]
    return data_label({k: row[k] for k in keys if k in row}, runs)


def outcome_table(outcomes: pd.DataFrame) -> pd.DataFrame:
    """:func:`experiments.analysis.arm_outcomes` with readable column names."""
    return pd.DataFrame(
        {
            "engine or code": outcomes["backend"],
            "start": outcomes["init"].str.replace("_", " "),
            "fits": outcomes["n_runs"],
            **{status: outcomes[f"n_{status}"] for status in STATUSES},
            "best log-lik (not degenerate)": outcomes["best_log_likelihood"],
            "median iterations": outcomes["median_iterations"],
            "median seconds": outcomes["median_seconds"],
            "typical reason": outcomes["reason"],
        }
    )


def parameter_table(params: MixtureParams) -> pd.DataFrame:
    """One row per component (numbered 1..K): weight, mean and covariance, as text."""
    return pd.DataFrame(
        {
            "component": np.arange(1, params.n_components + 1),
            "weight": params.weights,
            "mean": [
                np.array2string(m, precision=5, separator=", ") for m in params.means
            ],
            "covariance": [
                np.array2string(c, precision=5, separator=", ").replace("\n", "")
                for c in params.covariances
            ],
        }
    )
