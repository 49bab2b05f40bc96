"""Section "Fits not eligible": every fit that is never chosen, with its reason."""

from __future__ import annotations

from experiments.analysis import eligible
from experiments.report.context import ReportData, Section
from experiments.report.document import Document

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
    shown = runs[~eligible(runs)]
    if shown.empty:
        doc.text("None: every fit is ok.")
        return
    doc.text(
        "Degenerate, unconverged and failed fits, and fits of arms run with "
        "their engine's own stopping rule; none of them is ever chosen as best."
    )
    doc.table(shown[[c for c in _COLUMNS if c in shown.columns]])


SECTION = Section("not_eligible", lambda data: True, render)
