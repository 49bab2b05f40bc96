"""Statistics the report's sections state, computed from the recorded tables.

Pure functions of the ``runs``, ``components`` and ``convergence`` tables:
rebuilding a run's point estimate, matching components between two fits,
selecting the rows of one cell, the median share of seeds at the best
optimum, the chosen model of a data set, whether EM's estimate lies inside
PyMC's intervals, and counts of fits by what their ``status_reason`` says.
None of them fits a model or draws anything; :mod:`experiments.analysis`
holds the statistics of whole sweeps, :mod:`experiments.scenario_analysis`
those of the five write-ups.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.analysis import best_eligible, choose_model, data_columns
from mixtures import MixtureParams
from mixtures.align import match_components

__all__ = [
    "COLLAPSED_COMPONENT",
    "IDENTICAL_COMPONENTS",
    "WEIGHTS_NOT_A_DISTRIBUTION",
    "cell_share_at_best",
    "chosen_on_first_replicate",
    "degenerate_actions",
    "map_component_points",
    "matched_to",
    "median_share_at_best",
    "mle_in_hdi",
    "params_from_components",
    "reason_count",
    "reason_mentions",
    "same_cell",
    "same_params",
]

#: What a ``status_reason`` says when two components of a fit are one and the
#: same Gaussian (written by :func:`mixtures.diagnostics.degeneracy_findings`).
IDENTICAL_COMPONENTS = "same Gaussian"
#: What it says when a component collapsed below the relative-variance floor
#: (:func:`mixtures.diagnostics.degeneracy_findings`).
COLLAPSED_COMPONENT = "relative variance"
#: What it says when a function arm returned weights that do not sum to one
#: (:mod:`mixtures.backends.function`).
WEIGHTS_NOT_A_DISTRIBUTION = "not a distribution"


def params_from_components(rows: pd.DataFrame) -> MixtureParams:
    """The point estimate of one run, rebuilt from its components-table rows.

    ``rows`` holds one run's rows: ``component``, ``parameter`` (``weight``,
    ``mean`` or ``covariance``), indices ``i`` and ``j`` and ``estimate``.
    A covariance entry ``(i, j)`` fills both ``(i, j)`` and ``(j, i)``; the
    weights are renormalised to sum to one.
    """
    k = int(rows["component"].max()) + 1
    d = int(rows.loc[rows["parameter"] == "mean", "i"].max()) + 1
    weights = np.zeros(k)
    means = np.zeros((k, d))
    covariances = np.zeros((k, d, d))
    for row in rows.itertuples(index=False):
        if row.parameter == "weight":
            weights[row.component] = row.estimate
        elif row.parameter == "mean":
            means[row.component, row.i] = row.estimate
        else:
            covariances[row.component, row.i, row.j] = row.estimate
            covariances[row.component, row.j, row.i] = row.estimate
    return MixtureParams(weights / weights.sum(), means, covariances)


def matched_to(rows: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """A run's components-table rows, renumbered to match ``reference``'s.

    Rows of a fit with a known truth are already aligned to it (by
    :func:`experiments.evaluate.evaluate_fit`) and are returned unchanged;
    otherwise each keeps the engine's own order, so two fits' component
    ``k`` need not be the same component until matched (Hungarian, on the
    2-Wasserstein distance, :func:`mixtures.align.match_components`).
    """
    if rows.empty or reference.empty or rows["truth"].notna().any():
        return rows
    order = match_components(
        params_from_components(rows), params_from_components(reference)
    )
    renumber = {int(fitted): k for k, fitted in enumerate(order)}
    return rows.assign(component=rows["component"].map(renumber))


def same_cell(runs: pd.DataFrame, run: pd.Series, keys: list[str]) -> pd.Series:
    """Mask of the rows of ``runs`` equal to ``run`` on ``keys``.

    A missing value in ``run`` matches the rows missing that key.
    """
    mask = pd.Series(True, index=runs.index)
    for key in keys:
        value = run[key]
        mask &= runs[key].isna() if pd.isna(value) else runs[key] == value
    return mask


def same_params(frame: pd.DataFrame, values: dict) -> pd.Series:
    """Mask of the rows of ``frame`` whose data-set parameters equal ``values``.

    Only the ``p_*`` keys of ``values`` present in ``frame`` count; a missing
    value matches the rows missing it.
    """
    mask = pd.Series(True, index=frame.index)
    for column, value in values.items():
        if column.startswith("p_") and column in frame:
            mask &= (frame[column] == value) | (frame[column].isna() & pd.isna(value))
    return mask


def reason_mentions(runs: pd.DataFrame, phrase: str) -> pd.Series:
    """Mask of the fits whose ``status_reason`` contains ``phrase``.

    A fit without a reason never matches. The phrases the report counts are
    :data:`IDENTICAL_COMPONENTS`, :data:`COLLAPSED_COMPONENT` and
    :data:`WEIGHTS_NOT_A_DISTRIBUTION`.
    """
    return runs["status_reason"].fillna("").astype(str).str.contains(phrase)


def reason_count(runs: pd.DataFrame, phrase: str) -> int:
    """How many fits' ``status_reason`` contains ``phrase``."""
    return int(reason_mentions(runs, phrase).sum())


def median_share_at_best(
    convergence: pd.DataFrame,
    dataset: str,
    backend: str,
    init: str,
    *,
    cell: pd.Series | None = None,
    **params,
) -> float:
    """Median over data replicates of the share of seeds at the best optimum.

    Over the convergence-table rows of ``dataset``, ``backend`` and ``init``
    (and, with ``cell`` a chosen run, of its ``n_components`` and
    ``covariance_type``; each keyword ``name=value`` keeps the rows whose
    ``p_name`` equals ``value``). NaN when no row matches.
    """
    mask = (
        (convergence["dataset"] == dataset)
        & (convergence["backend"] == backend)
        & (convergence["init"] == init)
    )
    if cell is not None:
        mask &= (convergence["n_components"] == cell["n_components"]) & (
            convergence["covariance_type"] == cell["covariance_type"]
        )
    for column, value in params.items():
        mask &= convergence[f"p_{column}"] == value
    values = convergence.loc[mask, "share_at_best"]
    return float(values.median()) if len(values) else float("nan")


def cell_share_at_best(convergence: pd.DataFrame, values: dict) -> float:
    """The share of seeds at the best optimum of one convergence-table row.

    ``values`` names the row: ``dataset``, ``backend``, ``init``,
    ``data_replicate``, ``n_components``, ``covariance_type`` and the data
    set's ``p_*`` parameters (missing values match missing values). NaN when
    no row matches, or when the row has no share (a posterior summary).
    """
    mask = same_params(convergence, values)
    for column in (
        "dataset",
        "backend",
        "init",
        "data_replicate",
        "n_components",
        "covariance_type",
    ):
        mask &= convergence[column] == values[column]
    share = convergence.loc[mask, "share_at_best"]
    return float(share.iloc[0]) if len(share) else float("nan")


def chosen_on_first_replicate(
    runs: pd.DataFrame, dataset: str, **params
) -> pd.Series | None:
    """The chosen model of one data set on its first data replicate, or None.

    :func:`experiments.analysis.choose_model` over the runs of ``dataset``
    on the sweep's first data replicate whose ``p_name`` equals each keyword
    ``name=value``; None when there is no such run or none is eligible.
    """
    mask = (runs["dataset"] == dataset) & (
        runs["data_replicate"] == runs["data_replicate"].min()
    )
    for column, value in params.items():
        mask &= runs[f"p_{column}"] == value
    group = runs[mask]
    if group.empty:
        return None
    try:
        return choose_model(group)
    except ValueError:
        return None


def mle_in_hdi(runs: pd.DataFrame, components: pd.DataFrame) -> pd.DataFrame:
    """Per NUTS fit: how many of EM's estimates lie inside its 94% HDIs.

    EM's fit is the best eligible k-means fit of the same data and cell.
    Components are matched (to the truth in both, or to each other,
    :func:`matched_to`), so component ``k`` is the same component in both.
    Intervals of zero width (the structural zeros of a diagonal or spherical
    covariance) are not counted. One row per NUTS fit (``pymc``, not failed)
    with such an EM fit: ``dataset`` and the data set's ``p_*`` parameters,
    ``run_id``, ``status``, ``n_conditioned`` (``d_n_conditioned``),
    ``n_samples``, ``parameters`` (how many were compared),
    ``em_inside_hdi`` (how many of EM's estimates lie inside, bounds
    included) and ``outside`` (the others, as ``parameter[component,i,j]``).
    Beside the count, the prior's weight in each component:
    ``component_points`` (n_k of the MAP, in the matched order),
    ``prior_points`` (the points the prior adds to every MAP covariance,
    ``d_prior_points``) and ``prior_share_max`` (the largest share of a MAP
    covariance's scatter the prior supplies, ``d_prior_share_max``).
    """
    rows = []
    nuts = runs[(runs["backend"] == "pymc") & (runs["status"] != "failed")]
    parameters = data_columns(runs)
    keys = [
        "dataset",
        *parameters,
        "data_replicate",
        "n_components",
        "covariance_type",
    ]
    for _, run in nuts.iterrows():
        here = runs[
            same_cell(runs, run, keys)
            & (runs["backend"] == "em")
            & (runs["init"] == "kmeans")
        ]
        em = best_eligible(here, ["dataset"])
        if em.empty:
            continue
        theirs = components[components["run_id"] == em.iloc[0]["run_id"]]
        mine = matched_to(components[components["run_id"] == run["run_id"]], theirs)
        component_points = map_component_points(mine, run)
        mine = mine[mine["hdi_high"] > mine["hdi_low"]]
        if mine.empty:
            continue
        merged = mine.merge(
            theirs[["component", "parameter", "i", "j", "estimate"]],
            on=["component", "parameter", "i", "j"],
            suffixes=("", "_em"),
        )
        inside = (merged["hdi_low"] <= merged["estimate_em"]) & (
            merged["estimate_em"] <= merged["hdi_high"]
        )
        rows.append(
            {
                "dataset": run["dataset"],
                **{column: run[column] for column in parameters},
                "run_id": run["run_id"],
                "status": run["status"],
                "n_conditioned": run.get("d_n_conditioned", np.nan),
                "n_samples": run["n_samples"],
                "parameters": len(merged),
                "em_inside_hdi": int(inside.sum()),
                "outside": ", ".join(
                    f"{r.parameter}[{r.component},{r.i},{r.j}]"
                    for r in merged[~inside].itertuples()
                ),
                "component_points": component_points,
                "prior_points": run.get("d_prior_points", np.nan),
                "prior_share_max": run.get("d_prior_share_max", np.nan),
            }
        )
    return pd.DataFrame(rows)


def degenerate_actions(runs: pd.DataFrame) -> int:
    """How many re-seeding and flooring actions gmmlab took over ``runs``.

    The sum of ``d_degenerate_events`` (what gmmlab's EM records each time it
    re-seeds a duplicate or empty component or floors a collapsing one); 0
    when the column is missing, and a missing value counts 0.
    """
    if "d_degenerate_events" not in runs:
        return 0
    return int(runs["d_degenerate_events"].fillna(0).sum())


def map_component_points(rows: pd.DataFrame, run: pd.Series) -> list[float]:
    """n_k of a Bayesian fit's MAP: each MAP weight times the rows it conditioned on.

    ``rows`` are the fit's components-table rows (with a ``map`` column), in
    the component order wanted; ``run`` its runs-table row, whose
    ``d_n_conditioned`` (all ``n_samples`` rows when missing) is the number
    of rows the fit conditioned on. One value per component, in order.
    """
    weights = rows[rows["parameter"] == "weight"].sort_values("component")
    conditioned = run.get("d_n_conditioned", np.nan)
    if pd.isna(conditioned):
        conditioned = run["n_samples"]
    return (weights["map"] * conditioned).tolist()
