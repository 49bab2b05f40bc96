"""Section "The five write-ups, answered": the heading over sections S1 to S5."""

from __future__ import annotations

from experiments.report.context import ReportData, Section
from experiments.report.document import Document

__all__ = ["SECTION", "WRITE_UPS", "has_write_up"]

#: The data sets of the five write-ups, each answered by its own section.
WRITE_UPS = ("s1", "s2", "s3", "s4", "s5")


def has_write_up(data: ReportData, name: str) -> bool:
    """Whether write-up ``name``'s section appears: its data set was fitted."""
    return data.fitted and name in set(data.runs["dataset"])


def render(doc: Document, data: ReportData) -> None:
    """The heading and introduction of the write-ups' sections."""
    doc.heading("The five write-ups, answered")
    doc.text(
        "Each section states a write-up's question (shared/scenarios.md) and "
        "answers it from this sweep's tables; where the write-up gave numbers, "
        "ours stand beside them."
    )


def _applies(data: ReportData) -> bool:
    return data.fitted and bool(set(data.runs["dataset"]) & set(WRITE_UPS))


SECTION = Section("writeups", _applies, render)
