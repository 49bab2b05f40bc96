"""Section "Log-likelihood traces": every fit's distance to the best optimum."""

from __future__ import annotations

from experiments.analysis import (
    best_eligible,
    data_columns,
    reference_log_likelihood,
)
from experiments.report.context import ReportData, Section
from experiments.report.document import Document
from experiments.report.figures.runs import traces_figure
from experiments.report.views import chosen_cell, data_label

__all__ = ["SECTION"]


def render(doc: Document, data: ReportData) -> None:
    """One figure per data set: the chosen model's traces, a panel per engine."""
    runs = data.runs
    doc.heading("Log-likelihood traces")
    doc.text(
        "How far every fit is from the best optimum of the same data, at "
        "every iteration: the best eligible maximum-likelihood total "
        "log-likelihood minus the fit's, in nats, on a log axis (symmetric "
        "below 1e-4 nats, so a fit that ends above the best, such as a "
        "degenerate one, shows as negative). First data replicate; the cell "
        "of the chosen model when a data set was searched over K. One line "
        "per seed (per chain for PyMC, whose draws scatter around the "
        "posterior); line style by initialisation, the best eligible fit bold. "
        "sklearn-vb's trace is its variational lower bound, a different "
        "objective: shown as its gap to its own final value. pymc-advi's is "
        "its ELBO per sample."
    )
    fitted = runs[runs["status"] != "failed"].copy()
    fitted["reference"] = reference_log_likelihood(fitted)
    first = fitted[fitted["data_replicate"] == fitted["data_replicate"].min()]
    keys = ["dataset", *data_columns(runs)]
    for key, group in first.groupby(keys, dropna=False, sort=True):
        label = data_label(dict(zip(keys, key, strict=True)), runs)
        chosen, group = chosen_cell(group)
        title = (
            f"{label} (K = {int(chosen['n_components'])}, "
            f"{chosen['covariance_type']}): distance to the best optimum"
        )
        if {"pymc-advi", "sklearn-vb"} & set(group["backend"].unique()):
            title += " (ADVI and VB: their own objectives)"
        best_ids = set(best_eligible(group, ["backend"])["run_id"])
        fig = traces_figure(group, data.traces, best_ids, title)
        doc.figure(fig, f"traces_{label}", f"{label}: traces per engine")


SECTION = Section("traces", lambda data: data.fitted, render)
