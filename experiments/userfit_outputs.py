"""What ``gmmlab fit`` writes, built as data and then written.

:func:`file_outputs` turns the chosen fit of a file's model search into
every table it writes, in the file's units (:class:`FitOutputs`: the
search's table, the assignments, the report's two tables and the
``parameters.json`` summary), writing nothing; :func:`write_outputs` writes
them, each file whole, under the names :mod:`experiments.tables` gives
them, and builds the report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from experiments.datasets import read_table
from experiments.report import build_report
from experiments.tables import (
    ASSIGNMENTS_CSV,
    MODEL_SEARCH,
    MODEL_SEARCH_CSV,
    PARAMETERS_JSON,
    RESULTS,
    UNCERTAINTY,
    atomic_write,
    table_path,
)
from mixtures.missing import observed_e_step
from mixtures.select import top_models

if TYPE_CHECKING:
    from experiments.userfit import ChosenFit, FileData, FileSearch

__all__ = ["FitOutputs", "file_outputs", "write_outputs"]


@dataclass(frozen=True)
class FitOutputs:
    """Everything :func:`fit_file` writes, in the file's units.

    Attributes
    ----------
    table : DataFrame
        ``model_search.csv``: every cell, the chosen one marked ``chosen``.
    assignments : DataFrame
        ``assignments.csv``: the file's rows, their component (1..K), the
        probability of each and the classification uncertainty.
    points : DataFrame
        The results folder's ``uncertainty`` table.
    record : DataFrame
        The results folder's ``model_search`` table, from which the report
        draws the chosen fit.
    summary : dict
        ``parameters.json``, and what the console prints.
    """

    table: pd.DataFrame
    assignments: pd.DataFrame
    points: pd.DataFrame
    record: pd.DataFrame
    summary: dict[str, Any]


def file_outputs(
    file: FileData,
    found: FileSearch,
    chosen: ChosenFit,
    notes: list[str],
    *,
    prior: bool,
) -> FitOutputs:
    """The tables and summary of ``chosen`` on ``file``, writing nothing."""
    data, model, n_components = file.data, found.model, found.n_components
    # A row with missing values: by the density of its observed values.
    _, log_resp = observed_e_step(data.X, chosen.params)
    probabilities = np.exp(log_resp)
    labels = probabilities.argmax(axis=1)
    table = found.table.copy()
    cell = (table["model"] == model) & (table["n_components"] == n_components)
    table.loc[cell, ["log_likelihood", "bic", "icl", "start", "n_iter"]] = [
        chosen.log_likelihood,
        chosen.bic,
        chosen.icl,
        chosen.start,
        chosen.n_iter,
    ]
    if data.labels is not None:
        table.loc[cell, "ari"] = adjusted_rand_score(data.labels, labels)
    # In the file's units from here on.
    table["log_likelihood"] -= file.log_jacobian
    table["bic"] += 2 * file.log_jacobian
    table["icl"] += 2 * file.log_jacobian
    table["chosen"] = cell
    uncertainty = 1.0 - probabilities.max(axis=1)
    frame = read_table(file.path, **file.table_options)
    assignments = frame.copy()
    # Components are numbered 1..K in every output, as in mclust; a row left
    # out of the fit (no value at all) is unassigned (empty).
    kept = file.kept_rows
    assignments["component"] = pd.array([pd.NA] * len(frame), dtype="Int64")
    assignments.loc[assignments.index[kept], "component"] = labels + 1
    for k in range(n_components):
        column = np.full(len(frame), np.nan)
        column[kept] = probabilities[:, k]
        assignments[f"p_component_{k + 1}"] = column
    assignments["uncertainty"] = np.nan
    assignments.loc[assignments.index[kept], "uncertainty"] = uncertainty
    frame = frame.iloc[kept]
    columns = list(data.notes["columns"])
    original = data.X * file.spread + file.center
    points = pd.DataFrame(original, columns=columns)
    points["component"] = labels + 1
    points["uncertainty"] = uncertainty
    if file.label is not None:
        points["label"] = frame[file.label].astype(str).to_numpy()
    # Parameters in the file's units: x = center + spread * x'.
    means = file.center + file.spread * chosen.params.means
    covariances = chosen.params.full_covariances() * np.outer(file.spread, file.spread)
    parameters = {
        "weights": chosen.params.weights.tolist(),
        "means": means.tolist(),
        "covariances": covariances.tolist(),
    }
    # The report draws the chosen fit from this record, never from a refit.
    record = table.assign(
        file=file.path.name,
        dataset=f"file:{file.path}",
        prior=bool(prior),
        scale=file.scale,
        chosen_note=np.where(cell, " ".join(notes), ""),
        chosen_params=np.where(cell, json.dumps(parameters), ""),
    )
    summary = _summary(
        file, found, chosen, notes, table, parameters, uncertainty, prior=prior
    )
    return FitOutputs(table, assignments, points, record, summary)


def _summary(
    file: FileData,
    found: FileSearch,
    chosen: ChosenFit,
    notes: list[str],
    table: pd.DataFrame,
    parameters: dict[str, list],
    uncertainty: np.ndarray,
    *,
    prior: bool,
) -> dict[str, Any]:
    """``parameters.json``: the chosen fit, its parameters and the top three."""
    # An adopted maximum only lowers the chosen cell's BIC: it stays first.
    top = top_models(table, 3, "bic")
    best = top.iloc[0]
    return {
        "file": str(file.path),
        "columns": list(file.data.notes["columns"]),
        "model": found.model,
        "n_components": found.n_components,
        "covariance_type": found.model,
        "prior": bool(prior),
        "scale": file.scale,
        "source": chosen.source,
        "start": chosen.start,
        "log_likelihood": float(best["log_likelihood"]),
        "bic": float(best["bic"]),
        "icl": float(best["icl"]),
        "n_parameters": int(best["n_parameters"]),
        "mean_uncertainty": float(uncertainty.mean()),
        "notes": notes,
        **parameters,
        "top3": [
            {
                "model": str(row["model"]),
                "n_components": int(row["n_components"]),
                "bic": float(row["bic"]),
                "log_likelihood": float(row["log_likelihood"]),
            }
            for _, row in top.iterrows()
        ],
        "flagged_cells": int((table["status"] != "ok").sum()),
        **(
            _label_agreement(table, best, file.label, file.data)
            if file.label is not None
            else {}
        ),
        "degenerate_events": list(chosen.repairs),
    }


def write_outputs(outputs: FitOutputs, out: Path) -> Path:
    """Write every file of ``outputs`` and the report into ``out``; return the page.

    Each file whole (:func:`~experiments.tables.atomic_write`), named as
    :mod:`experiments.tables` says; the report reads ``out/results``.
    """
    results = out / RESULTS
    atomic_write(outputs.assignments.to_csv(index=False), out / ASSIGNMENTS_CSV)
    atomic_write(outputs.table.to_csv(index=False), out / MODEL_SEARCH_CSV)
    atomic_write(outputs.points, table_path(results, UNCERTAINTY))
    atomic_write(outputs.record, table_path(results, MODEL_SEARCH))
    atomic_write(json.dumps(outputs.summary, indent=2) + "\n", out / PARAMETERS_JSON)
    classification = outputs.summary.get("classification")
    if classification:  # the report's "Beyond BIC" section shows it
        frame = pd.DataFrame([classification])
        atomic_write(frame, table_path(results, "classification"))
    return build_report(results, out)


def _label_agreement(table: pd.DataFrame, best, label: str, data) -> dict:
    """ARI of the chosen model, and of the best cell with K = classes.

    Both against the label column; the second cell is the best ok one with
    as many components as there are classes.
    """
    n_classes = int(np.unique(data.labels).size)
    at_classes = top_models(table[table["n_components"] == n_classes], 1, "bic")
    agreement = {
        "label": label,
        "n_classes": n_classes,
        "ari": float(best["ari"]),
    }
    if not at_classes.empty:
        row = at_classes.iloc[0]
        agreement["best_at_n_classes"] = {
            "model": str(row["model"]),
            "n_components": n_classes,
            "bic": float(row["bic"]),
            "ari": float(row["ari"]),
        }
    classification = _classification(data)
    if classification is not None:
        agreement["classification"] = classification
    return agreement


def _classification(data) -> dict | None:
    """Cross-validated error of classifying the rows by the label column.

    One Gaussian per class under the covariance model BIC prefers (EDDA,
    :class:`mixtures.classify.MixtureDiscriminant`), stratified folds (10,
    or fewer when a class is smaller), as mclust's ``cvMclustDA``: how well
    the features separate the known classes, beside how well the clustering
    found them. None with missing values or a class of fewer than 2 rows.
    """
    from mixtures.classify import MixtureDiscriminant, cross_validate

    counts = np.unique(data.labels, return_counts=True)[1]
    if np.isnan(data.X).any() or counts.min() < 2 or counts.size < 2:
        return None
    classifier = MixtureDiscriminant(model_type="EDDA")
    try:
        fitted = classifier.fit(data.X, data.labels)
        result = cross_validate(
            classifier, data.X, data.labels, n_folds=int(min(10, counts.min()))
        )
    except ValueError:  # no model estimable on these classes
        return None
    return {
        "model": str(fitted.model_),
        "n_folds": int(min(10, counts.min())),
        "training_error": float(fitted.training_error_),
        "cv_error": float(result.error),
        "cv_error_se": float(result.error_se),
    }
