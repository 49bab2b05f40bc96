"""The report's sections, one module each, and their order on the page.

:data:`SECTIONS` lists every section in page order (what the sweep shows
first, its setup and versions last); :func:`build_report
<experiments.report.build_report>` writes each one whose condition holds.
Each module defines one :class:`~experiments.report.context.Section`
named ``SECTION``.
"""

from __future__ import annotations

from experiments.report.context import Section
from experiments.report.sections import (
    bayes,
    convergence,
    fitted,
    missing,
    model_search,
    not_eligible,
    recovery,
    s1,
    s2,
    s3,
    s4,
    s5,
    selection,
    setup,
    summary,
    timing,
    toolbox,
    traces,
    writeups,
)

__all__ = ["SECTIONS"]

#: Every section of the report, in page order.
SECTIONS: tuple[Section, ...] = (
    summary.SECTION,
    writeups.SECTION,
    s1.SECTION,
    s2.SECTION,
    s3.SECTION,
    s4.SECTION,
    s5.SECTION,
    traces.SECTION,
    convergence.SECTION,
    recovery.SECTION,
    missing.SECTION,
    bayes.SECTION,
    timing.SECTION,
    model_search.SECTION,
    toolbox.SECTION,
    selection.SECTION,
    fitted.SECTION,
    not_eligible.SECTION,
    setup.SECTION,
)
