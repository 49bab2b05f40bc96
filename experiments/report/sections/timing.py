"""Section "Run time": median seconds per fit and per iteration, per engine."""

from __future__ import annotations

from experiments.report.context import ReportData, Section
from experiments.report.document import Document
from experiments.report.figures.runs import timing_figure
from experiments.report.views import dataset_name

__all__ = ["SECTION"]


def render(doc: Document, data: ReportData) -> None:
    """The run-time table per data set and engine, and its figure."""
    runs = data.runs
    doc.heading("Run time")
    doc.text(
        "Every fit that ran to the end, whatever its status (time spent on an "
        "unconverged or degenerate fit is still time spent)."
    )
    ok = runs[runs["status"] != "failed"].copy()
    ok["seconds_per_iteration"] = ok["seconds"] / ok["n_iter"].clip(lower=1)
    table = (
        ok.groupby(["dataset", "backend"], sort=True)
        .agg(
            fits=("seconds", "size"),
            median_seconds=("seconds", "median"),
            median_seconds_per_iteration=("seconds_per_iteration", "median"),
        )
        .reset_index()
    )
    table["dataset"] = table["dataset"].map(dataset_name)
    doc.table(table)
    doc.figure(timing_figure(table), "timing", "Median fit time per engine (log scale)")


SECTION = Section("timing", lambda data: data.fitted, render)
