"""Section "Model search": ``gmmlab fit``'s search over covariance models x K.

The BIC of every cell, the chosen model, the classification uncertainty of
every row, the chosen fit drawn from its recorded parameters, and its
agreement with a column of known classes (with the cross-validated error of
classifying it, when ``gmmlab fit --label`` recorded one).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from experiments.fit_views import confusion_table
from experiments.report.context import ReportData, Section
from experiments.report.document import Document
from experiments.report.figures.mixture import mixture_figure
from experiments.report.figures.selection import (
    model_search_figure,
    uncertainty_figure,
)
from experiments.report.views import dataset_name, parameter_tables
from mixtures import MixtureParams
from mixtures.select import top_models

__all__ = ["SECTION"]

_TOP_COLUMNS = [
    "model",
    "n_components",
    "log_likelihood",
    "n_parameters",
    "bic",
    "icl",
    "start",
]
_FLAGGED_COLUMNS = [
    "model",
    "n_components",
    "status",
    "log_likelihood",
    "bic",
    "reason",
]


def render(doc: Document, data: ReportData) -> None:
    """The BIC table of the search, its figure, then the chosen fit's views."""
    table, points = data.model_search, data.uncertainty
    if table is None:  # not a results folder of gmmlab fit
        return
    doc.heading("Model search: covariance models x K (BIC, as mclust)")
    top = top_models(table, 3, "bic")
    flagged = table[table["status"] != "ok"]
    _search_text(doc, table, top)
    if not flagged.empty:
        doc.text("Flagged cells (never chosen), with the reason of their best start:")
        doc.table(flagged[_FLAGGED_COLUMNS].rename(columns={"n_components": "K"}))
    doc.figure(
        model_search_figure(table, flagged, top),
        "model_search_bic",
        "BIC of every covariance model over K; lines join ok cells, crosses "
        "mark flagged ones; models far worse than the best leave the top",
    )
    if points is not None and not points.empty:
        _uncertainty(doc, points)
        _chosen_fit(doc, table, points)
        if "label" in points:
            _label_agreement(doc, table, points)
            if "classification" in data.toolbox:
                _classification(doc, data.toolbox["classification"].iloc[0])


def _search_text(doc: Document, table: pd.DataFrame, top: pd.DataFrame) -> None:
    """What was searched and how, the chosen model, and the best three cells."""
    counts = table["status"].value_counts()
    prior = bool(table["prior"].iloc[0]) if "prior" in table else False
    doc.text(
        f"{len(table)} cells: {table['model'].nunique()} covariance models x K = "
        f"{table['n_components'].min()}..{table['n_components'].max()}, each fitted "
        "from the hierarchical start (Fraley 1998) and seeded k-means starts, "
        + (
            "by MAP-EM with the Fraley & Raftery (2007) prior. "
            if prior
            else "by maximum likelihood. "
        )
        + "BIC = -2 log L + p log n, lower is better (mclust reports minus this). "
        "The rule: a cell whose best fit is degenerate (a spike on tied values, "
        "fewer than D + 1 effective points, duplicated components, or a repair "
        "still in force), unconverged or failed is never chosen. "
        + ", ".join(f"{int(counts[s])} {s}" for s in counts.index)
        + "."
    )
    if top.empty:
        return
    best = top.iloc[0]
    if prior:
        doc.text(
            "The sections after this one (the engine cross-check at the "
            "chosen model) are maximum-likelihood fits: scikit-learn has "
            "no prior, so their log-likelihoods are slightly higher than "
            "the MAP fit's below."
        )
    chosen = (
        f"Chosen: {best['model']} with K = {int(best['n_components'])}, BIC "
        f"{best['bic']:.2f}, log-likelihood {best['log_likelihood']:.3f}, ICL "
        f"{best['icl']:.2f}."
    )
    doc.text(chosen)
    doc.finding(
        f"BIC chooses {best['model']} with K = {int(best['n_components'])} "
        f"among {len(table)} cells (covariance models x K): BIC "
        f"{best['bic']:.2f}, log-likelihood {best['log_likelihood']:.2f}."
    )
    # How the engine cross-check compares, and whether its higher maximum
    # was adopted: gmmlab fit's own sentences, as printed.
    note = best.get("chosen_note")
    if isinstance(note, str) and note:
        doc.text(note)
    doc.table(top[_TOP_COLUMNS].rename(columns={"n_components": "K"}))


def _feature_columns(points: pd.DataFrame) -> list[str]:
    """The data's columns in the points table (not the fit's own columns)."""
    return [c for c in points.columns if c not in ("component", "uncertainty", "label")]


def _uncertainty(doc: Document, points: pd.DataFrame) -> None:
    """The classification uncertainty of every row, drawn and summarised."""
    uncertainty = points["uncertainty"].to_numpy()
    doc.figure(
        uncertainty_figure(points, _feature_columns(points)),
        "model_search_uncertainty",
        "Classification uncertainty 1 - max_k tau of every row under the chosen "
        "model: on the first two columns (larger, brighter = less certain), and "
        "sorted",
    )
    doc.text(
        f"Mean classification uncertainty {uncertainty.mean():.3f}; "
        f"{int(np.sum(uncertainty > 0.1))} of {len(uncertainty)} rows above 0.1."
    )


def _chosen_fit(doc: Document, table: pd.DataFrame, points: pd.DataFrame) -> None:
    """``gmmlab fit``'s chosen fit, drawn from the parameters it recorded.

    The fit of the console, ``parameters.json`` and ``assignments.csv``, in
    the file's units, components numbered 1..K as there. The figure is named
    ``fit_DATASET`` like the figures of the section "The fitted mixtures",
    which therefore does not draw this data set again from the cross-check's
    runs.
    """
    if "chosen_params" not in table:  # a results folder from before the record
        return
    chosen = table[table["chosen"].fillna(False).astype(bool)]
    if chosen.empty:
        return
    row = chosen.iloc[0]
    recorded = json.loads(row["chosen_params"])
    params = MixtureParams(
        recorded["weights"], recorded["means"], recorded["covariances"]
    )
    names = _feature_columns(points)
    doc.heading("The chosen fit", level=3)
    fig = mixture_figure(
        points[names].to_numpy(dtype=float),
        points["component"].to_numpy(dtype=int) - 1,
        params,
        names,
        f"chosen fit: {row['model']}, K = {params.n_components}, "
        f"log-likelihood {row['log_likelihood']:.2f}\n(start {row['start']})",
    )
    name = dataset_name(row["dataset"])
    doc.figure(fig, f"fit_{name}", f"{name}: the chosen fit")
    doc.text(
        f"The chosen fit, {row['model']} with K = {params.n_components} (start "
        f"{row['start']}; log-likelihood {row['log_likelihood']:.3f}, BIC "
        f"{row['bic']:.2f}): the fit of the console, parameters.json and "
        "assignments.csv, components numbered 1..K as there. Points coloured "
        "by their most probable component, with 1- and 2-sigma ellipses"
        + _undrawn(points, names)
        + "; its parameters in the file's units:"
    )
    for caption, frame in parameter_tables(params, names):
        if caption:
            doc.text(caption)
        doc.table(frame)


def _undrawn(points: pd.DataFrame, names: list[str]) -> str:
    """Say how many rows a missing drawn coordinate keeps off the figure."""
    drawn = names[:2]
    n_off = int(points[drawn].isna().any(axis=1).sum())
    if not n_off:
        return ""
    return (
        f" ({n_off} rows with a missing value in {' or '.join(drawn)} are not "
        "drawn; they were fitted over their observed values)"
    )


def _label_agreement(doc: Document, table: pd.DataFrame, points) -> None:
    """ARI and confusion table of the chosen clustering against known classes.

    The ARI is the one ``gmmlab fit`` recorded in the table (its ``ari``
    column), computed on the fit it keeps.
    """
    doc.heading("Agreement with the known classes")
    n_classes = points["label"].astype(str).nunique()
    chosen = top_models(table, 1, "bic").iloc[0]
    text = (
        f"The label column has {n_classes} classes; the chosen model "
        f"{chosen['model']} has K = {int(chosen['n_components'])} components. "
    )
    if "ari" in table and pd.notna(chosen.get("ari")):
        text += (
            f"Adjusted Rand index {chosen['ari']:.3f} (1: the same partition; "
            "0: what random assignments give). "
        )
    at_classes = top_models(table[table["n_components"] == n_classes], 1, "bic")
    if (
        "ari" in table
        and not at_classes.empty
        and int(chosen["n_components"]) != n_classes
    ):
        row = at_classes.iloc[0]
        text += (
            f"The best ok fit with K = {n_classes}, {row['model']}, has BIC "
            f"{row['bic']:.2f} ({row['bic'] - chosen['bic']:+.2f} against the "
            f"chosen) and ARI {row['ari']:.3f}. "
        )
    text += (
        "BIC chooses the number of Gaussian components that best describes the "
        "density; a class need not be one Gaussian, and two overlapping "
        "classes can be one, so a K different from the number of classes is "
        "a finding about the data, not an error of the fit."
    )
    doc.text(text)
    doc.table(confusion_table(points["label"], points["component"]))


def _classification(doc: Document, row: pd.Series) -> None:
    """EDDA's cross-validated error on the label column, beside the ARI."""
    doc.text(
        "With the labels, how well the features separate the classes: one "
        f"Gaussian per class under the common covariance model {row['model']} "
        "(chosen by BIC; EDDA, Bensmail & Celeux 1996: mclust's MclustDA with "
        f"modelType = 'EDDA'), {int(row['n_folds'])}-fold stratified "
        f"cross-validation as cvMclustDA: error {row['cv_error']:.3f} "
        f"(standard error {row['cv_error_se']:.3f}); training error "
        f"{row['training_error']:.3f}. A low error beside a low agreement "
        "means the classes are separable, but not as the Gaussian clusters "
        "BIC finds without the labels."
    )
    doc.finding(
        f"Classifying the label column by EDDA ({row['model']}) errs on "
        f"{row['cv_error']:.1%} of rows in cross-validation."
    )


def _applies(data: ReportData) -> bool:
    return data.fitted and data.model_search is not None


SECTION = Section("model_search", _applies, render)
