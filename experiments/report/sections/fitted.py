"""Section "The fitted mixtures": each data set's chosen fit over its data."""

from __future__ import annotations

from experiments.analysis import choose_model, data_columns, eligible
from experiments.fit_views import assign_components
from experiments.report.context import (
    MISSING_DATA_NOTE,
    ReportData,
    Section,
    run_params,
    run_points,
)
from experiments.report.document import Document
from experiments.report.figures.mixture import mixture_figure
from experiments.report.views import data_label, parameter_tables

__all__ = ["SECTION"]


def render(doc: Document, data: ReportData) -> None:
    """Per data set and parameters: the lowest-BIC eligible fit, drawn."""
    runs = data.runs
    doc.heading("The fitted mixtures")
    doc.text(
        "For each data set (each n of a series, on its first data replicate), "
        "the eligible run (status ok) with the lowest BIC (with K fixed, the "
        "highest log-likelihood). "
        "In 2-D (or the first two features), 500 random points coloured by "
        "assigned component with 1- and 2-sigma ellipses; in 1-D, a "
        "histogram with the mixture density and every weighted component "
        "density, each component normalised on its own."
    )
    ok = runs[eligible(runs)]
    ok = ok[ok["data_replicate"] == ok["data_replicate"].min()]
    keys = ["dataset", *data_columns(runs)]
    for key, group in ok.groupby(keys, dropna=False, sort=True):
        label = data_label(dict(zip(keys, key, strict=True)), runs)
        if doc.has_figure(f"fit_{label}"):
            # gmmlab fit's chosen fit, drawn with the model search: the one
            # fit the user keeps, which may not be any run of the cross-check.
            doc.text(f"{label}: the chosen fit is drawn above, with the model search.")
            continue
        # BIC compares fits of the same data only: one choice per data set
        # and parameters (each n of a series).
        try:
            run = choose_model(group)
        except ValueError:  # only posterior summaries are eligible here
            continue
        recorded = run_points(run, data)
        if recorded is None:
            doc.text(f"{label}: {MISSING_DATA_NOTE}")
            continue
        X, names = recorded
        params = run_params(run, data.components)
        labels = assign_components(X, params) if X.shape[1] > 1 else None
        title = (
            f"{label}: lowest-BIC fit\n{run['backend']}, K = "
            f"{params.n_components}, log-likelihood {run['log_likelihood']:.2f}"
        )
        fig = mixture_figure(X, labels, params, names, title)
        doc.figure(fig, f"fit_{label}", f"{label}: fitted mixture")
        doc.text(
            f"{label}: learned parameters of that run ({run['backend']}, "
            f"K = {params.n_components}, init {run['init']}, seed "
            f"{int(run['seed'])}, log-likelihood {run['log_likelihood']:.2f}, "
            f"status {run['status']})."
        )
        for caption, frame in parameter_tables(params, names):
            if caption:
                doc.text(caption)
            doc.table(frame)


SECTION = Section("fitted", lambda data: data.fitted, render)
