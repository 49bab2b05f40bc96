"""Statistics over recorded runs: the numbers a report states, and nothing else.

Only reads tables; never fits a model. Every comparison here follows three
rules:

* **One definition of "same optimum"** (:func:`same_optimum`): two fits of
  the same data are at the same optimum when their total log-likelihoods
  differ by at most ``nats`` (0.01 by default; ``[sweep] same_optimum_nats``).
* **Only eligible fits compete** (:func:`eligible`): status ``ok`` and a
  comparable arm (not one run with its engine's own stopping rule).
  Degenerate, unconverged and failed fits are counted, never chosen.
* **Like with like**: convergence across seeds is measured within one data
  replicate, against the best eligible fit *of that data* (any engine or
  initialisation, same K and covariance type), then summarised across data
  replicates; recovery is measured across data replicates; engines are
  compared run by run on the same data, initialisation method and seed
  (:func:`engine_pairs`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.config import SAME_OPTIMUM_NATS
from mixtures.diagnostics import STATUSES
from mixtures.select import top_models

__all__ = [
    "CELL_COLUMNS",
    "SAME_OPTIMUM_NATS",
    "STATUSES",
    "arm_outcomes",
    "at_an_optimum",
    "best_eligible",
    "choose_model",
    "convergence_across_replicates",
    "convergence_summary",
    "count_optima",
    "data_columns",
    "data_set_summary",
    "eligible",
    "engine_pairs",
    "posterior",
    "reference_log_likelihood",
    "same_optimum",
    "selection_table",
    "summary_table",
]

#: What a cell of a sweep is, besides the data set's parameters.
CELL_COLUMNS = ["dataset", "backend", "n_components", "covariance_type", "init"]
_METRICS = (
    "m_weight_l1",
    "m_mean_rmse",
    "m_cov_frobenius",
    "m_cov_bures",
    "m_kl",
    "m_ari",
    "m_nmi",
)


def same_optimum(a, b, nats: float = SAME_OPTIMUM_NATS):
    """Whether total log-likelihoods ``a`` and ``b`` are the same optimum.

    Element-wise for arrays; NaN is never the same optimum as anything.
    """
    return np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)) <= nats


def count_optima(values, nats: float = SAME_OPTIMUM_NATS) -> int:
    """How many distinct optima a set of log-likelihoods holds.

    Sorted values are split wherever consecutive ones are more than ``nats``
    apart (single linkage at ``nats``). Pass only fits that converged under
    the sweep's stopping rule (:func:`at_an_optimum`): an engine stopped
    early by its own rule ends wherever it stopped, and counting those end
    points would make every early stop a distinct "optimum".
    """
    values = np.sort(np.asarray(values, dtype=float))
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0
    return int(1 + np.sum(np.diff(values) > nats))


def data_columns(runs: pd.DataFrame) -> list[str]:
    """The data set's ``p_*`` parameter columns (not the engines' options)."""
    arms = set(runs["backend"].unique()) if "backend" in runs else set()
    return sorted(
        column
        for column in runs.columns
        if column.startswith("p_")
        and not any(column.startswith(f"p_{arm}_") for arm in arms)
    )


def eligible(runs: pd.DataFrame) -> pd.Series:
    """Boolean mask of the fits that may be best, selected or compared."""
    mask = runs["status"] == "ok"
    if "comparable" in runs:
        mask &= runs["comparable"].fillna(True).astype(bool)
    return mask


def _data_keys(runs: pd.DataFrame) -> list[str]:
    return ["dataset", *data_columns(runs), "data_replicate"]


def posterior(runs: pd.DataFrame) -> pd.Series:
    """Mask of fits whose point estimate summarises a posterior.

    The ``posterior`` column, written from each backend's declared
    capability (:func:`mixtures.backends.is_posterior_backend`), so a failed
    posterior fit is still a posterior fit and a plug-in declares its own.
    Such a fit is not a maximum of the likelihood: never a reference optimum
    or a BIC choice.
    """
    if "posterior" not in runs:  # a table of maximum-likelihood fits only
        return pd.Series(False, index=runs.index)
    return runs["posterior"].fillna(False).astype(bool)


def _maximum_likelihood(runs: pd.DataFrame) -> pd.Series:
    """Mask of fits that maximise the likelihood (not posterior summaries)."""
    return ~posterior(runs)


def _own_stopping_rule(runs: pd.DataFrame) -> pd.Series:
    """Mask of fits of arms run with their engine's own stopping rule."""
    if "comparable" not in runs:
        return pd.Series(False, index=runs.index)
    return ~runs["comparable"].fillna(True).astype(bool)


def at_an_optimum(runs: pd.DataFrame) -> pd.Series:
    """Mask of the fits that stand for a maximum of the likelihood.

    Eligible (``ok``, so converged under the sweep's stopping rule, of a
    comparable arm) and maximum-likelihood (not a posterior summary): the
    only fits that may be a reference optimum, count as an optimum
    (:func:`count_optima`) or be the data's maximum (:func:`recovery_fits`).
    """
    return eligible(runs) & _maximum_likelihood(runs)


def reference_log_likelihood(runs: pd.DataFrame) -> pd.Series:
    """Best eligible maximum-likelihood fit on each run's data, K and covariance.

    The reference optimum of "share of seeds at best": the highest
    log-likelihood of an eligible fit that maximises the likelihood (a
    posterior mean is not an optimum). Aligned with ``runs``; NaN where no
    such fit of that data exists.
    """
    keys = [*_data_keys(runs), "n_components", "covariance_type"]
    values = runs["log_likelihood"].where(at_an_optimum(runs))
    return values.groupby([runs[k] for k in keys], dropna=False).transform("max")


def convergence_summary(
    runs: pd.DataFrame, nats: float = SAME_OPTIMUM_NATS
) -> pd.DataFrame:
    """Convergence across seeds on fixed data, one row per cell and data replicate.

    Columns: the cell, the data set's ``p_*`` parameters, ``data_replicate``,
    ``n_runs`` and ``n_`` of every status, ``reference_log_likelihood``
    (best eligible fit of that data, any engine or initialisation),
    ``best_log_likelihood`` (this cell's best ``ok`` fit), ``n_at_best`` and
    ``share_at_best`` (share of the cell's seeds, whatever their status,
    that are ``ok`` and at the reference optimum), ``n_optima`` (distinct
    optima among its fits :func:`at_an_optimum`), the spread of its ``ok``
    fits' log-likelihoods and their iteration counts. ``n_at_best`` and
    ``share_at_best`` are NaN for posterior summaries, which have no optimum
    to reach; ``n_optima`` is NaN for them and for arms run with their
    engine's own stopping rule, whose early stops are end points, not optima.
    """
    if runs.empty or "status" not in runs:
        return pd.DataFrame(columns=[*CELL_COLUMNS, "data_replicate", "n_runs"])
    runs = runs.copy()
    if "log_likelihood" not in runs:
        runs["log_likelihood"] = np.nan
        runs["n_iter"] = np.nan
    runs["_reference"] = reference_log_likelihood(runs)
    keys = [*CELL_COLUMNS, *data_columns(runs), "data_replicate"]
    rows = []
    for key, group in runs.groupby(keys, dropna=False, sort=True):
        ok = group[group["status"] == "ok"]
        values = ok["log_likelihood"].to_numpy(dtype=float)
        reference = float(group["_reference"].iloc[0])
        at_best = int(np.sum(same_optimum(values, reference, nats)))
        # Posterior sampling has no optimum to reach: not applicable.
        applicable = bool(_maximum_likelihood(group).any())
        # Only fits converged under the sweep's rule count as optima.
        optima_counted = applicable and not _own_stopping_rule(group).all()
        optima = group.loc[at_an_optimum(group), "log_likelihood"]
        row = dict(zip(keys, key, strict=True))
        row.update(n_runs=len(group))
        row.update(
            {
                f"n_{status}": int((group["status"] == status).sum())
                for status in STATUSES
            }
        )
        iterations = ok["n_iter"].to_numpy(dtype=float)
        row.update(
            reference_log_likelihood=reference,
            best_log_likelihood=float(values.max()) if values.size else np.nan,
            n_at_best=at_best if applicable else np.nan,
            share_at_best=at_best / len(group) if applicable else np.nan,
            n_optima=count_optima(optima, nats) if optima_counted else np.nan,
            log_likelihood_std=float(values.std(ddof=0)) if values.size else np.nan,
            n_iter_median=float(np.median(iterations)) if values.size else np.nan,
            n_iter_max=float(iterations.max()) if values.size else np.nan,
        )
        rows.append(row)
    return pd.DataFrame(rows)


def convergence_across_replicates(convergence: pd.DataFrame) -> pd.DataFrame:
    """:func:`convergence_summary` summarised over data replicates, per cell.

    Columns: the cell and ``p_*`` parameters, ``n_replicates``,
    ``n_runs`` and ``n_<status>`` (totals), ``share_at_best_median``,
    ``share_at_best_min``, ``share_at_best_max``, ``n_optima_median``.
    """
    if convergence.empty:
        return convergence
    keys = [*CELL_COLUMNS, *data_columns(convergence)]
    grouped = convergence.groupby(keys, dropna=False, sort=True)
    summary = grouped.agg(
        n_replicates=("data_replicate", "nunique"),
        n_runs=("n_runs", "sum"),
        **{f"n_{s}": (f"n_{s}", "sum") for s in STATUSES},
        share_at_best_median=("share_at_best", "median"),
        share_at_best_min=("share_at_best", "min"),
        share_at_best_max=("share_at_best", "max"),
        n_optima_median=("n_optima", "median"),
    )
    return summary.reset_index()


def best_eligible(runs: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """The eligible run with the highest log-likelihood in each group of ``by``.

    Ties go to the smallest ``run_id``, so the choice is reproducible.
    """
    candidates = runs[eligible(runs)]
    if candidates.empty:
        return candidates
    ordered = candidates.sort_values(
        ["log_likelihood", "run_id"], ascending=[False, True], kind="stable"
    )
    return ordered.groupby(by, dropna=False, sort=True).head(1).reset_index(drop=True)


def choose_model(runs: pd.DataFrame) -> pd.Series:
    """The model a user keeps: the eligible maximum-likelihood fit of lowest BIC.

    The one rule for the report and ``gmmlab fit`` alike: among the eligible
    maximum-likelihood fits, :func:`mixtures.select.top_models` (the model
    search's own choice: lowest BIC, ties to fewer parameters), then the
    smallest ``run_id``. ``runs`` must hold fits of one data set (one data
    set, parameters and data replicate): BIC compares fits of the same data
    only.

    Raises
    ------
    ValueError
        When ``runs`` mixes data, or none of its fits is eligible (the
        message lists the statuses found).
    """
    keys = [k for k in _data_keys(runs) if k in runs]
    if len(runs.drop_duplicates(keys)) > 1:
        raise ValueError(
            "choose_model compares fits of one data set only; got "
            f"{len(runs.drop_duplicates(keys))} (by {', '.join(keys)})."
        )
    candidates = runs[eligible(runs) & _maximum_likelihood(runs)]
    if candidates.empty:
        found = runs["status"].value_counts().to_dict()
        raise ValueError(
            "no eligible maximum-likelihood fit (status ok, not a posterior "
            f"summary) to choose from; found {found}."
        )
    return top_models(candidates.sort_values("run_id", kind="stable"), 1).iloc[0]


def selection_table(runs: pd.DataFrame) -> pd.DataFrame:
    """BIC and ICL per covariance type and K, for fits of one data set.

    One row per ``(covariance_type, n_components)``: ``n_runs`` and the
    count of every status; ``bic``, ``icl`` and ``log_likelihood`` of the
    best eligible fit (lowest BIC; with K and covariance type fixed, the
    highest likelihood), NaN where none is eligible; ``excluded_bic``, the
    lowest BIC among fits *not* eligible (what a search that trusted every
    fit could have picked), NaN where there is none; ``chosen_bic`` and
    ``chosen_icl`` mark the row that criterion selects (lowest value). Both
    criteria are on scikit-learn's scale: lower is better.
    """
    keys = [k for k in _data_keys(runs) if k in runs]
    if len(runs.drop_duplicates(keys)) > 1:
        raise ValueError("selection_table compares fits of one data set only.")
    # Maximum-likelihood fits of comparable arms: a posterior mean has no BIC,
    # and an engine run with its own stopping rule is not a candidate.
    keep = _maximum_likelihood(runs)
    if "comparable" in runs:
        keep &= runs["comparable"].fillna(True).astype(bool)
    runs = runs[keep]
    ok = eligible(runs)
    rows = []
    for (covariance_type, k), group in runs.groupby(
        ["covariance_type", "n_components"], sort=True
    ):
        good = group[ok.loc[group.index]]
        bad = group[~ok.loc[group.index]].dropna(subset=["bic"])
        best = good.sort_values(["bic", "run_id"]).head(1)
        row = {"covariance_type": covariance_type, "n_components": int(k)}
        row["n_runs"] = len(group)
        for status in STATUSES:
            row[f"n_{status}"] = int((group["status"] == status).sum())
        found = len(best) > 0
        row["log_likelihood"] = best["log_likelihood"].iloc[0] if found else np.nan
        row["bic"] = best["bic"].iloc[0] if found else np.nan
        row["icl"] = good["icl"].min() if found and "icl" in good else np.nan
        row["excluded_bic"] = bad["bic"].min() if len(bad) else np.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    for criterion in ("bic", "icl"):
        table[f"chosen_{criterion}"] = False
        if table[criterion].notna().any():
            table.loc[table[criterion].idxmin(), f"chosen_{criterion}"] = True
    return table


def _chosen_cell(first: pd.DataFrame, row: dict, keys: list[str]):
    """(K, covariance type) chosen on a searched data set, else None."""
    mask = pd.Series(True, index=first.index)
    for key in keys:
        value = row[key]
        mask &= (first[key] == value) | (first[key].isna() & pd.isna(value))
    data = first[mask]
    if data[["n_components", "covariance_type"]].drop_duplicates().shape[0] < 2:
        return None
    try:
        chosen = choose_model(data)
    except ValueError:
        return None
    return chosen["n_components"], chosen["covariance_type"]


def summary_table(
    runs: pd.DataFrame, convergence: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per data set (with its parameters) and arm: the report's summary.

    Columns: the data set's ``p_*`` parameters, ``backend``, ``n_runs`` and
    ``n_<status>``; ``best_ok_log_likelihood`` (best ``ok`` fit of the arm on the
    first data replicate, comparable or not); ``share_at_best_<init>``
    (median over data replicates of
    :func:`convergence_summary`'s share, one column per initialisation;
    NaN where it does not apply; for a data set searched over K and
    covariance types, the chosen model's cell); ``median_iterations`` and
    ``median_seconds`` over the fits that ran to the end.
    """
    if convergence is None:
        convergence = convergence_summary(runs)
    keys = ["dataset", *data_columns(runs)]
    first = runs[runs["data_replicate"] == runs["data_replicate"].min()]
    across = convergence_across_replicates(convergence)
    rows = []
    for key, group in runs.groupby([*keys, "backend"], dropna=False, sort=True):
        row = dict(zip([*keys, "backend"], key, strict=True))
        row["n_runs"] = len(group)
        for status in STATUSES:
            row[f"n_{status}"] = int((group["status"] == status).sum())
        mine = first.loc[first.index.intersection(group.index)]
        cell = _chosen_cell(first, row, keys)
        if cell is not None:  # a model search: the chosen model's cell
            mine = mine[
                (mine["n_components"] == cell[0]) & (mine["covariance_type"] == cell[1])
            ]
        best = mine.loc[mine["status"] == "ok", "log_likelihood"]
        row["best_ok_log_likelihood"] = float(best.max()) if len(best) else np.nan
        cells = across[
            (across["backend"] == row["backend"])
            & (across["dataset"] == row["dataset"])
        ]
        if cell is not None:
            cells = cells[
                (cells["n_components"] == cell[0])
                & (cells["covariance_type"] == cell[1])
            ]
        for column in data_columns(runs):
            if column in cells:
                value = row[column]
                cells = cells[
                    (cells[column] == value) | (cells[column].isna() & pd.isna(value))
                ]
        for cell in cells.itertuples():
            row[f"share_at_best_{cell.init}"] = cell.share_at_best_median
        finished = group[group["status"] != "failed"]
        row["median_iterations"] = (
            float(finished["n_iter"].median()) if len(finished) else np.nan
        )
        row["median_seconds"] = (
            float(finished["seconds"].median()) if len(finished) else np.nan
        )
        rows.append(row)
    table = pd.DataFrame(rows)
    empty = [
        c for c in table if c.startswith("share_at_best_") and table[c].isna().all()
    ]
    return table.drop(columns=empty)


def arm_outcomes(runs: pd.DataFrame) -> pd.DataFrame:
    """What each arm and start gave on one data set: one row per (arm, init).

    Columns: ``backend``, ``init``, ``n_runs``, ``n_<status>``,
    ``best_log_likelihood`` (highest of the fits that are neither failed nor
    degenerate: a collapse's likelihood is not a result),
    ``median_iterations``, ``median_seconds`` and ``reason`` (the
    most common status reason of the fits that are not ok, "" if none).
    """
    rows = []
    for (backend, init), group in runs.groupby(["backend", "init"], sort=True):
        finished = group[group["status"] != "failed"]
        sound = group[group["status"].isin(["ok", "unconverged"])]
        reasons = group.loc[group["status"] != "ok", "status_reason"].dropna()
        # One wording per reason: strip component indices and numbers.
        reasons = reasons.str.replace(r"[-+]?\d[\d.e+-]*", "#", regex=True)
        row = {"backend": backend, "init": init, "n_runs": len(group)}
        for status in STATUSES:
            row[f"n_{status}"] = int((group["status"] == status).sum())
        row.update(
            best_log_likelihood=float(sound["log_likelihood"].max())
            if len(sound)
            else np.nan,
            median_iterations=float(finished["n_iter"].median())
            if len(finished)
            else np.nan,
            median_seconds=float(finished["seconds"].median())
            if len(finished)
            else np.nan,
            reason=reasons.mode().iloc[0] if len(reasons) else "",
        )
        rows.append(row)
    return pd.DataFrame(rows)


def data_set_summary(
    runs: pd.DataFrame, nats: float = SAME_OPTIMUM_NATS
) -> pd.DataFrame:
    """What a sweep found on each data set variant, one row each.

    A variant is a data set, its ``p_*`` parameters and its data replicate:
    fits of different data are never pooled. Columns: those keys, ``n_runs``
    and ``n_<status>`` over every arm, ``n_posterior`` (posterior summaries
    among them: counted, never best); the model :func:`choose_model` keeps
    (``n_components``, ``covariance_type``) and ``best_log_likelihood``, the
    highest log-likelihood of that model's fits :func:`at_an_optimum`;
    ``n_at_best`` of the ``n_candidates`` comparable maximum-likelihood fits
    of that model (any status) that are ``ok`` and within ``nats`` of it;
    ``median_seconds`` over the fits that did not fail. The model columns
    are missing values where no fit of the data is eligible.
    """
    if runs.empty:
        return pd.DataFrame()
    keys = _data_keys(runs)
    rows = []
    for key, data in runs.groupby(keys, dropna=False, sort=True):
        row = dict(zip(keys, key, strict=True))
        row["n_runs"] = len(data)
        for status in STATUSES:
            row[f"n_{status}"] = int((data["status"] == status).sum())
        row["n_posterior"] = int(posterior(data).sum())
        row.update(
            n_components=np.nan,
            covariance_type=None,
            best_log_likelihood=np.nan,
            n_at_best=0,
            n_candidates=0,
        )
        if at_an_optimum(data).any():
            chosen = choose_model(data)
            model = (data["n_components"] == chosen["n_components"]) & (
                data["covariance_type"] == chosen["covariance_type"]
            )
            candidates = data[model & _maximum_likelihood(data)]
            candidates = candidates[~_own_stopping_rule(candidates)]
            best = float(data.loc[model & at_an_optimum(data), "log_likelihood"].max())
            at_best = at_an_optimum(candidates) & same_optimum(
                candidates["log_likelihood"], best, nats
            )
            row.update(
                n_components=int(chosen["n_components"]),
                covariance_type=chosen["covariance_type"],
                best_log_likelihood=best,
                n_at_best=int(at_best.sum()),
                n_candidates=len(candidates),
            )
        finished = data[data["status"] != "failed"]
        row["median_seconds"] = (
            float(finished["seconds"].median())
            if len(finished) and "seconds" in finished
            else np.nan
        )
        rows.append(row)
    return pd.DataFrame(rows)


def engine_pairs(
    runs: pd.DataFrame, first: str, second: str, nats: float = SAME_OPTIMUM_NATS
) -> pd.DataFrame:
    """Runs of arms ``first`` and ``second`` paired on identical starting conditions.

    A pair shares the data (data set, parameters, data replicate), K,
    covariance type, initialisation method and seed; since fit seeds do not
    depend on the engine, EM engines start from the same initial parameters.
    Columns: those keys, ``run_id``, ``status`` and ``log_likelihood`` of
    each side (suffixes ``_FIRST`` / ``_SECOND``), ``difference``
    (first minus second), ``same_optimum`` and ``both_eligible``.
    """
    keys = [
        *_data_keys(runs),
        "n_components",
        "covariance_type",
        "init",
        "seed",
    ]
    columns = [*keys, "run_id", "status", "log_likelihood", "comparable"]
    columns = [c for c in columns if c in runs.columns]
    left = runs.loc[runs["backend"] == first, columns]
    right = runs.loc[runs["backend"] == second, columns]
    pairs = left.merge(right, on=keys, suffixes=(f"_{first}", f"_{second}"))
    pairs["difference"] = (
        pairs[f"log_likelihood_{first}"] - pairs[f"log_likelihood_{second}"]
    )
    pairs["same_optimum"] = same_optimum(
        pairs[f"log_likelihood_{first}"], pairs[f"log_likelihood_{second}"], nats
    )
    both = (pairs[f"status_{first}"] == "ok") & (pairs[f"status_{second}"] == "ok")
    if f"comparable_{first}" in pairs:
        both &= pairs[f"comparable_{first}"].astype(bool)
        both &= pairs[f"comparable_{second}"].astype(bool)
    pairs["both_eligible"] = both
    return pairs.drop(
        columns=[c for c in pairs.columns if c.startswith("comparable_")]
    ).reset_index(drop=True)
