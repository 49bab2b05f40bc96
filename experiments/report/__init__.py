"""Comparison reports from a results folder: ``index.html``, ``report.md``, figures.

A report reads only the recorded tables and ``manifest.json``; it never fits
a model. For the per-data-set figures it regenerates the data from the
recorded data set name, parameters and data seed, and assigns points to
components with the recorded parameters. Figures are PNG files (matplotlib,
Agg backend) written next to ``index.html``; one colour per engine
throughout. Building the same report twice gives byte-identical files.

The page opens with what the sweep shows (a few findings the sections
register, each linking to the section that supports it) and a table of
contents; the setup and versions come last. Every number in a table is
rounded by one rule per kind of number (:mod:`.formatting`), and every
figure is drawn at the width of the page's content column, so the page
shows it at its natural size.

The package: :mod:`.context` reads the results folder, :mod:`.document`
writes HTML and Markdown, :mod:`.formatting` prints numbers,
:mod:`.figures` draws, :mod:`.views` names and lays out rows, and
:mod:`.sections` holds one module per section, in page order in
:data:`~experiments.report.sections.SECTIONS`. The statistics the
sections state live in :mod:`experiments.analysis`,
:mod:`experiments.report_stats` and :mod:`experiments.scenario_analysis`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

from experiments.report.context import read_results
from experiments.report.document import Document
from experiments.report.figures.style import ENGINE_COLOURS, STYLE
from experiments.report.sections import SECTIONS
from experiments.report_stats import params_from_components

__all__ = ["ENGINE_COLOURS", "SECTIONS", "build_report", "params_from_components"]


def build_report(results: str | Path, out: str | Path) -> Path:
    """Build the report of a results folder into ``out``; return ``index.html``."""
    results, out = Path(results), Path(out)
    data = read_results(results)
    out.mkdir(parents=True, exist_ok=True)
    document = Document(out)
    with matplotlib.rc_context(STYLE):
        for section in SECTIONS:
            if section.applies(data):
                section.render(document, data)
    name = Path(str(data.manifest.get("config_source", results))).stem
    return document.write(f"gmmlab report: {name}")
