"""Section "S4": the lecture's loops against vectorised code, timed here."""

from __future__ import annotations

from experiments.analysis import arm_outcomes
from experiments.analysis import posterior as posterior_fits
from experiments.report.context import ReportData, Section
from experiments.report.document import Document
from experiments.report.sections.writeups import has_write_up
from experiments.report.views import outcome_table
from experiments.scenarios import S4_COUNTS, S4_SECONDS_LOOPS, S4_SECONDS_VECTORISED

__all__ = ["SECTION"]

#: The lecture's own timings (experiments.scenarios, with their source).
_LOOPS = f"{S4_SECONDS_LOOPS:g} s"
_VECTORISED = f"{S4_SECONDS_VECTORISED * 1e3:.0f} ms"


def render(doc: Document, data: ReportData) -> None:
    """Median fit times on S4, and the lecture's loops from its own start."""
    runs = data.runs
    doc.heading("S4: loops against vectorised code", 3)
    s4 = runs[(runs["dataset"] == "s4") & (runs["status"] != "failed")]
    timing = s4[~posterior_fits(s4)].groupby("backend")[["seconds", "n_iter"]].median()
    parts = [
        f"{backend} {row.seconds * 1e3:.1f} ms ({row.n_iter:g} iterations)"
        for backend, row in timing.iterrows()
    ]
    doc.text(
        f"The lecture timed its Python-loop EM at {_LOOPS} and vectorised "
        f"versions at about {_VECTORISED}, on its own hardware. On this "
        f"machine, the median whole fit on the same {sum(S4_COUNTS):,} points "
        "under the sweep's stopping rule: " + ", ".join(parts) + " (Run time table)."
    )
    same_start = s4[s4["init"] == "lecture"]
    outcomes = arm_outcomes(same_start)
    if not len(outcomes):
        return
    doc.text(
        "From the lecture's own start (random weights, means uniform in "
        "[0, 1)^2, identity covariances), the same parameters for every "
        "implementation, the lecture's loop code as written (a scipy "
        "multivariate_normal built for every point, component and "
        "iteration) against the engines:"
    )
    doc.table(outcome_table(outcomes))
    loops = outcomes[outcomes["backend"] == "lecture-loops"]
    engine = outcomes[outcomes["backend"] == "em"]
    if len(loops) and len(engine):
        slow, fast = loops.iloc[0], engine.iloc[0]
        doc.text(
            f"Here the loops take {slow['median_seconds']:.2f} s "
            f"({slow['median_iterations']:g} iterations, ending "
            f"{fast['best_log_likelihood'] - slow['best_log_likelihood']:.4f} "
            "nats short under the lecture's |change| < 0.01 rule) and "
            f"gmmlab's EM {fast['median_seconds'] * 1e3:.1f} ms "
            f"({fast['median_iterations']:g} iterations, to the sweep's "
            f"rule): {slow['median_seconds'] / fast['median_seconds']:,.0f} "
            f"times faster on this machine. The lecture's {_LOOPS} and "
            f"{_VECTORISED} were measured on other hardware; only the ratio "
            "travels."
        )
        doc.finding(
            f"S4: from the lecture's own start its loops take "
            f"{slow['median_seconds']:.2f} s and gmmlab's EM "
            f"{fast['median_seconds'] * 1e3:.1f} ms on this machine, "
            f"{slow['median_seconds'] / fast['median_seconds']:,.0f} times faster."
        )


SECTION = Section("s4", lambda data: has_write_up(data, "s4"), render)
