"""The report's document layer: HTML and Markdown written side by side.

A :class:`Document` collects headings, paragraphs, tables and figures as
escaped HTML and as Markdown, saves each figure as a PNG file next to the
page, and writes ``index.html``, ``report.md`` and the record of the files
it wrote, each whole (temporary file and rename) so a reader never sees a
half-written report. It knows nothing of mixtures, runs or statistics.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from experiments.report.figures.style import figure_file_name, png_bytes
from experiments.tables import atomic_write

__all__ = ["Document", "cell_text"]

#: The page's style sheet.
_STYLE_SHEET = (
    "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
    "table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}"
    "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}"
    "img{max-width:100%}figcaption{font-size:0.85em;color:#555}"
)


def cell_text(value, digits: int) -> str:
    """A table cell as text: blank for missing, floats to ``digits`` figures."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, float | np.floating):
        number = float(value)
        if number.is_integer() and abs(number) < 1e15:
            return str(int(number))
        return f"{number:.{digits}g}"
    return str(value)


class Document:
    """Collects sections as HTML and Markdown, and saves figures into ``out``."""

    def __init__(self, out: Path):
        self.out = out
        self.html: list[str] = []
        self.markdown: list[str] = []
        self.figures: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        """A heading of ``level`` (2 for a section, 3 for a subsection)."""
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")
        self.markdown.append(f"{'#' * level} {text}\n")

    def text(self, text: str) -> None:
        """A paragraph."""
        self.html.append(f"<p>{html.escape(text)}</p>")
        self.markdown.append(f"{text}\n")

    def table(self, frame: pd.DataFrame, digits: int = 4) -> None:
        """A table of ``frame``'s columns, floats to ``digits`` figures."""
        if frame.empty:
            self.text("(no rows)")
            return
        shown = pd.DataFrame(
            {
                column: [cell_text(value, digits) for value in frame[column]]
                for column in frame.columns
            },
            dtype=object,
        )
        self.html.append(
            shown.to_html(index=False, border=0, escape=True, classes="table")
        )
        header = "| " + " | ".join(shown.columns) + " |"
        rule = "|" + "---|" * len(shown.columns)
        body = ["| " + " | ".join(row) + " |" for row in shown.to_numpy().tolist()]
        self.markdown.append("\n".join([header, rule, *body]) + "\n")

    def figure(self, fig: Figure, name: str, caption: str) -> None:
        """Save ``fig`` as ``name``'s PNG file and show it with ``caption``."""
        path = self.out / figure_file_name(name)
        # Rendered in memory and written whole, like every other file.
        atomic_write(png_bytes(fig), path)
        self.figures.append(path.name)
        self.html.append(
            f'<figure><img src="{html.escape(path.name)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        self.markdown.append(f"![{caption}]({path.name})\n")

    def has_figure(self, name: str) -> bool:
        """Whether a figure called ``name`` is in the document already."""
        return figure_file_name(name) in self.figures

    def write(self, title: str) -> Path:
        """Write ``index.html`` and ``report.md`` under ``title``; return the page.

        Figures an earlier build of this report wrote and this one did not (a
        renamed data set, a series that changed) are removed; files the report
        never wrote are left alone.
        """
        document = (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{_STYLE_SHEET}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>\n"
            + "\n".join(self.html)
            + "\n</body></html>\n"
        )
        index = self.out / "index.html"
        record = self.out / ".report-files"
        written = {*self.figures, "index.html", "report.md"}
        if record.is_file():
            for name in set(record.read_text().split()) - written:
                (self.out / name).unlink(missing_ok=True)
        atomic_write("\n".join(sorted(written)) + "\n", record)
        atomic_write(document, index)
        atomic_write(
            f"# {title}\n\n" + "\n".join(self.markdown), self.out / "report.md"
        )
        return index
