"""Section "Missing values": EM over observed values against dropping or filling.

Issue 26's scenario (``experiments/configs/missing.toml``): the error of
the means against the missing rate per mechanism and arm, the fits each arm
left ok, its cost, and which arm is least biased where most is missing.
"""

from __future__ import annotations

from experiments.report.context import ReportData, Section
from experiments.report.document import Document
from experiments.report.figures.missing import missing_figure
from experiments.scenario_analysis import least_error, missing_recovery

__all__ = ["SECTION"]

_MECHANISMS = {
    "mcar": "completely at random",
    "mar": "at random",
    "mnar": "not at random",
}


def render(doc: Document, data: ReportData) -> None:
    """The recovery table and figure, and the least biased arm per mechanism."""
    table = missing_recovery(data.runs)
    doc.heading("Missing values: EM over observed values against dropping or filling")
    doc.text(
        "The same sample with a share of its values removed: completely at "
        "random (mcar), at random given an always-observed feature (mar), or "
        "not at random, the chance rising with the value itself (mnar). em "
        "maximises the likelihood of each row's observed values; "
        "em-complete-case drops every row with a hole; em-mean-imputed and "
        "em-iterative-imputed fill the holes (feature means; scikit-learn's "
        "IterativeImputer) and fit as if the fills were data. mean_rmse is "
        "the median error of the means against the truth over every fit that "
        "ran to the end (ok or not: a fill that makes a fit degenerate is part "
        "of what the arm does); ok counts the fits classified ok; seconds is "
        "the median time of a fit."
    )
    doc.table(table)
    doc.figure(
        missing_figure(table),
        "missing_recovery",
        "Median error of the means against the share of values missing, per "
        "mechanism and arm (log scale)",
    )
    for row in least_error(table).itertuples():
        doc.finding(
            f"Missing values {_MECHANISMS.get(row.mechanism, row.mechanism)}, "
            f"{row.rate:.0%} of them: {row.arm} has the smallest error of the "
            f"means ({row.mean_rmse:.3f}; next {row.runner_up}, "
            f"{row.runner_up_rmse:.3f})."
        )
    doc.text(
        "What to expect: EM over observed values is unbiased when values are "
        "missing completely at random or at random; dropping rows is unbiased "
        "only completely at random (at random, the rows kept are not a sample "
        "of the data); filling with means shrinks every covariance towards "
        "the fill and piles points on it. When values are missing not at "
        "random no method that ignores why they are missing is unbiased, EM "
        "over observed values included."
    )


def _applies(data: ReportData) -> bool:
    return data.fitted and not missing_recovery(data.runs).empty


SECTION = Section("missing", _applies, render)
