"""How recorded rows are named and laid out for a reader.

Labels of data sets ('synthetic n=250': a data set and the parameters that
vary in its series; a user's file by its name, never its folder), the
outcome table with readable column names, and a fitted mixture's
parameters in tables whose rows each fit on one line. Shared by the
sections and the figures; no statistic is computed here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.analysis import STATUSES, choose_model, data_columns
from experiments.datasets import dataset_name
from experiments.report.formatting import (
    matrix_text,
    parameter_text,
    significant,
    vector_text,
)
from mixtures import MixtureParams

__all__ = [
    "data_label",
    "dataset_name",
    "outcome_table",
    "parameter_tables",
    "summary_label",
]

#: Up to this many features, a component's mean and covariance fit in one
#: row of one table; beyond, each feature has its row.
_FEATURES_IN_ONE_ROW = 3


def data_label(values: dict, runs: pd.DataFrame) -> str:
    """'synthetic n=250': a data set and the parameters that vary in its series."""
    parts = [dataset_name(values["dataset"])]
    mine = runs[runs["dataset"] == values["dataset"]]
    for column, value in values.items():
        varies = column in mine and mine[column].nunique(dropna=False) > 1
        if column.startswith("p_") and pd.notna(value) and varies:
            parts.append(f"{column.removeprefix('p_')}={parameter_text(value)}")
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


def _is_diagonal(covariances: np.ndarray) -> bool:
    """Whether every covariance matrix has zeros off its diagonal."""
    d = covariances.shape[-1]
    return d > 1 and not np.any(covariances[:, ~np.eye(d, dtype=bool)])


def parameter_tables(
    params: MixtureParams, names: list[str] | None = None
) -> list[tuple[str, pd.DataFrame]]:
    """A fitted mixture's parameters as (caption, table) pairs, components 1..K.

    A diagonal model (every covariance zero off its diagonal) shows its
    variances only. Up to three features, one table with a row per
    component; beyond, the weights, then a row per feature (its mean and
    variance in each component), then, unless diagonal, each component's
    covariance matrix as its own table: no row is longer than a few
    numbers per component, so each fits on one line.
    """
    weights, means = params.weights, params.means
    covariances = params.full_covariances()
    k, d = means.shape
    # Named as given; features beyond the names given by their position.
    given = list(names or [])[:d]
    names = given + [f"feature {i + 1}" for i in range(len(given), d)]
    diagonal = _is_diagonal(covariances)
    variances = np.diagonal(covariances, axis1=1, axis2=2)
    components = np.arange(1, k + 1)
    if d <= _FEATURES_IN_ONE_ROW:
        spread: dict[str, object] = (
            {"variances (diagonal model)": [vector_text(v) for v in variances]}
            if diagonal
            else {"covariance": [matrix_text(c) for c in covariances]}
        )
        shown_means: object = [vector_text(m) for m in means]
        if d == 1:
            shown_means, spread = means[:, 0], {"variance": variances[:, 0]}
        table = pd.DataFrame(
            {
                "component": components,
                "weight": weights,
                "mean": shown_means,
                **spread,
            }
        )
        return [("", table)]
    tables = [
        ("", pd.DataFrame({"component": components, "weight": weights})),
        (
            "Means and variances, one row per feature"
            + (" (a diagonal model: no covariances)" if diagonal else "")
            + ":",
            pd.DataFrame(
                {
                    "feature": names,
                    **{f"mean {j}": means[j - 1] for j in components},
                    **{f"variance {j}": variances[j - 1] for j in components},
                }
            ),
        ),
    ]
    if not diagonal:
        tables += [
            (
                f"Covariance matrix of component {j}:",
                # Printed here: a feature's name says nothing of the digits.
                pd.DataFrame(
                    {
                        "feature": names,
                        **{
                            name: [significant(float(v)) for v in column]
                            for name, column in zip(
                                names, covariances[j - 1].T, strict=True
                            )
                        },
                    }
                ),
            )
            for j in components
        ]
    return tables


def chosen_cell(group: pd.DataFrame) -> tuple[pd.Series, pd.DataFrame]:
    """The model a data set's runs choose (BIC), and that model's runs.

    Where no run can be chosen (none eligible), the first run's model.
    """
    try:
        chosen = choose_model(group)
    except ValueError:
        chosen = group.iloc[0]
    cell = group[
        (group["n_components"] == chosen["n_components"])
        & (group["covariance_type"] == chosen["covariance_type"])
    ]
    return chosen, cell
