"""Section "Fits not eligible": every fit that is never chosen, with its reason."""

from __future__ import annotations

from experiments.analysis import eligible
from experiments.report.context import ReportData, Section
from experiments.report.document import Document
from experiments.report.views import dataset_name

__all__ = ["SECTION"]

_COLUMNS = (
    "run_id",
    "dataset",
    "backend",
    "n_components",
    "init",
    "data_replicate",
    "seed",
    "status",
    "status_reason",
)


def render(doc: Document, data: ReportData) -> None:
    """The degenerate, unconverged and failed fits and the engines' own rules."""
    runs = data.runs
    doc.heading("Fits not eligible")
    if not data.fitted:
        doc.finding(
            f"No fit ran to the end: every one of the {len(runs)} fits failed; "
            "each is listed with its reason."
        )
    shown = runs[~eligible(runs)]
    if shown.empty:
        doc.text("None: every fit is ok.")
        return
    doc.text(
        "Degenerate, unconverged and failed fits, and fits of arms run with "
        "their engine's own stopping rule; none of them is ever chosen as best."
    )
    shown = shown[[c for c in _COLUMNS if c in shown.columns]].copy()
    shown["dataset"] = shown["dataset"].map(dataset_name)
    doc.table(shown)


SECTION = Section("not_eligible", lambda data: True, render)
