"""The report's document layer: HTML and Markdown written side by side.

A :class:`Document` collects headings, paragraphs, tables and figures as
escaped HTML and as Markdown, saves each figure as a PNG file next to the
page, and writes ``index.html``, ``report.md`` and the record of the files
it wrote, each whole (temporary file and rename) so a reader never sees a
half-written report. It knows nothing of mixtures, runs or statistics.

The page opens with what the report shows (the findings the sections
registered with :meth:`Document.finding`, each linking to its section) and
a table of contents; every heading has an anchor. Numbers in tables are
printed by :func:`~experiments.report.formatting.cell_text`, and every
figure is drawn at the content column's width
(:data:`~experiments.report.figures.style.FIGURE_WIDTH_PX`), so the page
shows it at its natural size.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from experiments.report.figures.style import (
    FIGURE_WIDTH_PX,
    check_figure,
    figure_file_name,
    png_bytes,
)
from experiments.report.formatting import cell_text
from experiments.tables import atomic_write

__all__ = ["FINDINGS_HEADING", "Document", "cell_text"]

#: The heading of the list of findings that opens the page.
FINDINGS_HEADING = "What this sweep shows"
#: The heading of the table of contents.
CONTENTS_HEADING = "Contents"
#: The anchors of those two headings.
_OPENING_ANCHORS = ("what-this-sweep-shows", "contents")

#: The page's style sheet: one content column as wide as every figure; a
#: table wider than the column scrolls inside its own box.
_STYLE_SHEET = (
    f"body{{font-family:sans-serif;max-width:{FIGURE_WIDTH_PX}px;margin:0 auto;"
    "padding:0 16px 2em;line-height:1.45}"
    "p,li{overflow-wrap:anywhere}"
    ".wide{overflow-x:auto;max-width:100%}"
    "table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}"
    "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right;"
    "vertical-align:top}"
    "th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}"
    "figure{margin:1em 0}img{display:block;max-width:100%;height:auto}"
    "figcaption{font-size:0.85em;color:#555}"
    ".findings li{margin:0.3em 0}.contents ul{margin:0.1em 0}"
)


def _markdown_cell(text: str) -> str:
    """A table cell on one Markdown line: no line break, ``|`` escaped."""
    return " ".join(text.split()).replace("|", "\\|")


class Document:
    """Collects sections as HTML and Markdown, and saves figures into ``out``."""

    def __init__(self, out: Path):
        self.out = out
        self.html: list[str] = []
        self.markdown: list[str] = []
        self.figures: list[str] = []
        #: (level, text, anchor) of every heading, in page order.
        self.headings: list[tuple[int, str, str]] = []
        #: (text, anchor of the heading it cites) of every finding.
        self.findings: list[tuple[str, str]] = []

    def _anchor(self, text: str) -> str:
        """A unique id for a heading: its words, lower case, joined by '-'."""
        base = "-".join(re.findall(r"[a-z0-9]+", text.lower())) or "section"
        taken = {*_OPENING_ANCHORS, *(anchor for *_, anchor in self.headings)}
        anchor, n = base, 1
        while anchor in taken:
            n += 1
            anchor = f"{base}-{n}"
        return anchor

    def heading(self, text: str, level: int = 2) -> None:
        """A heading of ``level`` (2 for a section, 3 for a subsection)."""
        anchor = self._anchor(text)
        self.headings.append((level, text, anchor))
        self.html.append(f'<h{level} id="{anchor}">{html.escape(text)}</h{level}>')
        self.markdown.append(f'<a id="{anchor}"></a>\n\n{"#" * level} {text}\n')

    def finding(self, text: str) -> None:
        """A line of the opening list, linking to the current section."""
        if not self.headings:
            raise ValueError("a finding belongs to a section: write its heading first")
        self.findings.append((text, self.headings[-1][2]))

    def text(self, text: str) -> None:
        """A paragraph."""
        self.html.append(f"<p>{html.escape(text)}</p>")
        self.markdown.append(f"{text}\n")

    def table(self, frame: pd.DataFrame) -> None:
        """A table of ``frame``'s columns, each number as its column's rule says.

        Every row stays on one Markdown line; in HTML a table wider than the
        column scrolls inside its box instead of widening the page.
        """
        if frame.empty:
            self.text("(no rows)")
            return
        columns = [str(c) for c in frame.columns]
        shown = pd.DataFrame(
            {
                name: [cell_text(value, name) for value in frame[column]]
                for name, column in zip(columns, frame.columns, strict=True)
            },
            dtype=object,
        )
        self.html.append(
            '<div class="wide">'
            + shown.to_html(index=False, border=0, escape=True, classes="table")
            + "</div>"
        )
        header = "| " + " | ".join(_markdown_cell(c) for c in columns) + " |"
        rule = "|" + "---|" * len(columns)
        body = [
            "| " + " | ".join(_markdown_cell(cell) for cell in row) + " |"
            for row in shown.to_numpy().tolist()
        ]
        self.markdown.append("\n".join([header, rule, *body]) + "\n")

    def figure(self, fig: Figure, name: str, caption: str) -> None:
        """Save ``fig`` as ``name``'s PNG file and show it with ``caption``.

        ValueError if ``fig`` is not drawn at the page's figure width or has
        type too small to read there (:func:`check_figure`).
        """
        check_figure(fig, name)
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

    def _opening_html(self) -> str:
        """The findings, each linking to its section, and the contents."""
        titles = {anchor: text for _, text, anchor in self.headings}
        items = "".join(
            f"<li>{html.escape(text)} "
            f'<a href="#{anchor}">({html.escape(titles[anchor])})</a></li>'
            for text, anchor in self.findings
        )
        contents, open_sub = [], False
        for level, text, anchor in self.headings:
            if level > 2 and not open_sub:
                contents.append("<ul>")
                open_sub = True
            elif level == 2 and open_sub:
                contents.append("</ul>")
                open_sub = False
            contents.append(f'<li><a href="#{anchor}">{html.escape(text)}</a></li>')
        if open_sub:
            contents.append("</ul>")
        return (
            f'<h2 id="{_OPENING_ANCHORS[0]}">{FINDINGS_HEADING}</h2>'
            f'<ul class="findings">{items}</ul>\n'
            f'<h2 id="{_OPENING_ANCHORS[1]}">{CONTENTS_HEADING}</h2>'
            f'<ul class="contents">{"".join(contents)}</ul>\n'
        )

    def _opening_markdown(self) -> str:
        """:meth:`_opening_html` in Markdown."""
        titles = {anchor: text for _, text, anchor in self.headings}
        findings = [
            f"- {text} ([{titles[anchor]}](#{anchor}))"
            for text, anchor in self.findings
        ]
        contents = [
            f"{'  ' * (level - 2)}- [{text}](#{anchor})"
            for level, text, anchor in self.headings
        ]
        return (
            f"## {FINDINGS_HEADING}\n\n"
            + "\n".join(findings)
            + f"\n\n## {CONTENTS_HEADING}\n\n"
            + "\n".join(contents)
            + "\n"
        )

    def write(self, title: str) -> Path:
        """Write ``index.html`` and ``report.md`` under ``title``; return the page.

        Figures an earlier build of this report wrote and this one did not (a
        renamed data set, a series that changed) are removed; files the report
        never wrote are left alone.
        """
        document = (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_STYLE_SHEET}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>\n"
            + self._opening_html()
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
            f"# {title}\n\n{self._opening_markdown()}\n" + "\n".join(self.markdown),
            self.out / "report.md",
        )
        return index
