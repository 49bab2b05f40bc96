"""Section "Model selection: BIC and ICL": a sweep's searches over K and models."""

from __future__ import annotations

import pandas as pd

from experiments.analysis import data_columns, selection_table
from experiments.report.context import ReportData, Section
from experiments.report.document import Document
from experiments.report.figures.selection import selection_figure
from experiments.report.views import data_label

__all__ = ["SECTION"]

_COLUMNS = [
    "covariance_type",
    "n_components",
    "n_runs",
    "n_ok",
    "n_degenerate",
    "n_unconverged",
    "log_likelihood",
    "bic",
    "icl",
    "excluded_bic",
    "chosen_bic",
    "chosen_icl",
]


def _searched(runs: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    """The data sets (first replicate) fitted with more than one K or model."""
    first = runs[runs["data_replicate"] == runs["data_replicate"].min()]
    keys = ["dataset", *data_columns(runs)]
    return [
        (key, group)
        for key, group in first.groupby(keys, dropna=False, sort=True)
        if group["n_components"].nunique() > 1 or group["covariance_type"].nunique() > 1
    ]


def render(doc: Document, data: ReportData) -> None:
    """Per data set searched: BIC and ICL over K, the choices, the table."""
    runs = data.runs
    doc.heading("Model selection: BIC and ICL")
    keys = ["dataset", *data_columns(runs)]
    searched = _searched(runs)
    if not searched:
        doc.text(
            "Every data set was fitted with one K and one covariance type "
            "in this sweep; nothing to select."
        )
        return
    doc.text(
        "For each data set searched over K and covariance types: the best "
        "eligible fit of every cell (lower is better for both criteria; BIC "
        "= -2 log L + p log n, ICL = BIC + 2 x the entropy of the MAP "
        "classification, as in mclust). Fits classified degenerate or "
        "unconverged never compete; a cross marks the lowest BIC among them "
        "where it is below every eligible fit of the cell: the spurious "
        "choice a search that trusted every fit would have made."
    )
    for key, group in searched:
        label = data_label(dict(zip(keys, key, strict=True)), runs)
        table = selection_table(group)
        doc.figure(
            selection_figure(table, label),
            f"selection_{label}",
            f"{label}: BIC and ICL across K",
        )
        sentences = [
            f"{label}: {criterion.upper()} chooses K = {int(row['n_components'])} "
            f"({row['covariance_type']}), {criterion.upper()} {row[criterion]:.2f}, "
            f"log-likelihood {row['log_likelihood']:.2f}."
            for criterion in ("bic", "icl")
            for _, row in table[table[f"chosen_{criterion}"]].iterrows()
        ]
        fooled = table[table["excluded_bic"] < table["bic"].min()]
        if len(fooled):
            worst = fooled.loc[fooled["excluded_bic"].idxmin()]
            sentences.append(
                f"Trusting every fit would have chosen K = "
                f"{int(worst['n_components'])} ({worst['covariance_type']}), BIC "
                f"{worst['excluded_bic']:.2f}: a degenerate or unconverged fit."
            )
        doc.text(" ".join(sentences))
        if sentences:
            doc.finding(sentences[0])
        doc.table(table[_COLUMNS])


def _applies(data: ReportData) -> bool:
    """Whenever fits ran, but not after ``gmmlab fit``'s model search.

    There the search chose the model (section "Model search") and the
    engine cross-check fits only that one, so there is nothing more to
    select, and saying so would contradict the search above.
    """
    if not data.fitted:
        return False
    return data.model_search is None or bool(_searched(data.runs))


SECTION = Section("selection", _applies, render)
