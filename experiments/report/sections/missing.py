"""Section "Missing values": EM over observed values against dropping or filling.

Issue 26's scenario (``experiments/configs/missing.toml``): the error of
the means against the missing rate per mechanism and arm, the fits each arm
left ok, its cost, and which arm is least biased where most is missing;
then the imputations of the holes: their error against the removed values,
and how often each arm's 90% intervals hold the removed value (any arm that
reports intervals, a Bayesian one included where its runs exist).
"""

from __future__ import annotations

import pandas as pd

from experiments.report.context import ReportData, Section
from experiments.report.document import Document
from experiments.report.figures.missing import imputation_figure, missing_figure
from experiments.scenario_analysis import (
    COVERAGE_TOLERANCE,
    MISSING_ARMS,
    coverage_against_nominal,
    imputation_quality,
    least_error,
    missing_recovery,
)

__all__ = ["SECTION"]

_MECHANISMS = {
    "mcar": "completely at random",
    "mar": "at random",
    "mnar": "not at random",
}


def _mechanism(name: str) -> str:
    return _MECHANISMS.get(name, name)


def render(doc: Document, data: ReportData) -> None:
    """The recovery table and figure, then the imputations' error and coverage."""
    table = missing_recovery(data.runs)
    imputations = imputation_quality(data.runs)
    arms = sorted(set(table["arm"]) | set(imputations["arm"]))
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
        "the median time of a fit; rows_used the median number of rows it "
        "was fitted to."
    )
    doc.table(table)
    doc.figure(
        missing_figure(table, arms),
        "missing_recovery",
        "Median error of the means against the share of values missing, per "
        "mechanism and arm (log scale)",
    )
    for row in least_error(table).itertuples():
        doc.finding(
            f"Missing values {_mechanism(row.mechanism)}, "
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
    if not imputations.empty:
        _imputations(doc, imputations, arms)


def _imputations(doc: Document, table: pd.DataFrame, arms: list[str]) -> None:
    """The imputations' error and the intervals' coverage, with what they show."""
    with_intervals = list(table.loc[table["coverage"].notna(), "arm"].unique())
    doc.heading("Imputations of the removed values: error and coverage", level=3)
    doc.text(
        "Each arm's estimate of every removed value, scored against the value "
        "that was removed. em and em-complete-case impute with the conditional "
        "distribution of the hole given the row's observed values under the "
        "mixture each fitted (Little & Rubin, ch. 11): its mean, and its "
        "central 90% interval. em-mean-imputed and em-iterative-imputed report "
        "the fill they fitted with, a single value that claims no uncertainty, "
        "so they have no coverage. imputation_rmse is the median over fits of "
        "the RMSE of the point imputations; coverage the mean over fits of the "
        "share of removed values inside the intervals, against nominal; width "
        "the mean interval width (in the data's units)."
    )
    doc.table(table)
    doc.figure(
        imputation_figure(table, arms),
        "missing_imputation",
        "Error of the point imputations (top) and share of removed values "
        "inside the 90% intervals (bottom, nominal dashed) against the share "
        "of values missing, per mechanism and arm",
    )
    coverage = coverage_against_nominal(table)
    for row in least_error(table, "imputation_rmse").itertuples():
        covered = coverage[
            (coverage["mechanism"] == row.mechanism) & (coverage["rate"] == row.rate)
        ]
        intervals = "; ".join(
            f"{c.arm}'s {c.nominal:.0%} intervals hold {c.coverage:.1%}"
            for c in covered.itertuples()
        )
        doc.finding(
            f"Imputing values missing {_mechanism(row.mechanism)}, "
            f"{row.rate:.0%} of them: {row.arm} has the smallest imputation "
            f"error ({row.imputation_rmse:.3f}; next {row.runner_up}, "
            f"{row.runner_up_rmse:.3f})" + (f"; {intervals}." if intervals else ".")
        )
    under = coverage[coverage["verdict"] == "under"]
    if not under.empty:
        names = dict.fromkeys([*_MECHANISMS, *table["arm"]])
        order = {name: i for i, name in enumerate(names)}
        under = under.sort_values(
            ["arm", "mechanism", "rate"], key=lambda c: c.map(order).fillna(c)
        )
        listed = "; ".join(
            f"{arm} at "
            + ", ".join(f"{r.mechanism} {r.rate:.0%}" for r in rows.itertuples())
            for arm, rows in under.groupby("arm", sort=False)
        )
        doc.text(
            "Intervals holding the removed value more than "
            f"{100 * COVERAGE_TOLERANCE:.0f} percentage points less often than "
            f"nominal: {listed}."
        )
    doc.text(_what_to_expect(with_intervals))


def _what_to_expect(with_intervals: list[str]) -> str:
    """Which approach is biased when, in plain words."""
    text = (
        "Which imputations are biased, and when: em's are unbiased when values "
        "are missing completely at random or at random, but its intervals are "
        "plug-in, taking the fitted parameters as known, so they ignore the "
        "parameters' own uncertainty and run a little under nominal where "
        "much is missing. em-complete-case conditions on the observed values "
        "too, but under a mixture fitted to the complete rows only: at random, "
        "those rows are not a sample of the data, and at high rates so few "
        "rows are complete (rows_used above) that the fitted mixture, its "
        "imputations and its intervals are poor whatever the mechanism. Mean "
        "imputation puts every hole at its feature's mean, ignoring the "
        "row's other values: large errors, and a fit whose variances and "
        "covariances shrink towards the fill. IterativeImputer's regressions "
        "use the other values, but a fit on its fills still treats guesses as "
        "data. When values are missing not at random, every approach here is "
        "biased: the removed values are the large ones, so the imputations "
        "fall short of them and no interval covers them at nominal."
    )
    bayesian = [a for a in with_intervals if a not in MISSING_ARMS]
    if bayesian:
        text += (
            f" The intervals of {', '.join(bayesian)} are posterior intervals: "
            "they carry the parameters' uncertainty, which plug-in intervals "
            "leave out."
        )
    return text


def _applies(data: ReportData) -> bool:
    return data.fitted and not missing_recovery(data.runs).empty


SECTION = Section("missing", _applies, render)
