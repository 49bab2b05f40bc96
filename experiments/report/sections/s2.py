"""Section "S2": the four-cluster homework, its five questions answered.

Iterations, the learned parameters beside the homework's, initialisation,
the homework's own start and stopping rule, and what its best reported
log-likelihood means.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.analysis import arm_outcomes
from experiments.report.context import (
    MISSING_DATA_NOTE,
    ReportData,
    Section,
    run_data_set,
)
from experiments.report.document import Document
from experiments.report.formatting import vector_text
from experiments.report.sections.writeups import has_write_up
from experiments.report.views import outcome_table
from experiments.report_stats import (
    IDENTICAL_COMPONENTS,
    chosen_on_first_replicate,
    median_share_at_best,
    reason_count,
)
from experiments.scenario_analysis import distinct_corner_probability
from experiments.scenarios import (
    S2_HOMEWORK_MIN_ITER,
    S2_HOMEWORK_TOL,
    S2_MEANS,
    S2_N,
    S2_REPORTED_LOGLIKS,
)

__all__ = ["SECTION"]

#: The homework's number of clusters and its three reported optima.
_K = len(S2_MEANS)
_BEST, _LOW, _LOWEST = S2_REPORTED_LOGLIKS


def render(doc: Document, data: ReportData) -> None:
    """The homework's five questions, each answered from the tables."""
    runs, components, convergence = data.runs, data.components, data.convergence
    doc.heading("S2: the four-cluster homework, its five questions", 3)
    chosen = chosen_on_first_replicate(runs, "s2")
    if chosen is None:
        return
    s2 = runs[
        (runs["dataset"] == "s2")
        & (runs["n_components"] == _K)
        & (runs["covariance_type"] == "full")
    ]
    iterations = s2[s2["backend"] == "em"].groupby("init")["n_iter"].median()
    doc.text(
        "(1) The log-likelihood against the iteration: the 's2' figure under "
        "Log-likelihood traces, as the distance to the best optimum. "
        f"k-means starts took a median of "
        f"{iterations.get('kmeans', np.nan):g} iterations, random starts "
        f"{iterations.get('random_from_data', np.nan):g}."
    )
    doc.text(
        f"(2) The learned parameters (chosen fit: {chosen['backend']}, K = {_K} "
        f"full, log-likelihood {chosen['log_likelihood']:.2f}), beside the "
        "homework's, which generated our data:"
    )
    doc.table(_parameters(components[components["run_id"] == chosen["run_id"]]))
    doc.text(
        "(3) 500 points coloured by assigned component, with 1- and 2-sigma "
        "ellipses: the 's2' figure under The fitted mixtures."
    )
    ok = s2[(s2["backend"] == "em") & (s2["status"] == "ok")]
    optima = np.sort(ok["log_likelihood"].round(2).unique())[::-1]
    kmeans = median_share_at_best(convergence, "s2", "em", "kmeans", cell=chosen)
    random = median_share_at_best(
        convergence, "s2", "em", "random_from_data", cell=chosen
    )
    doc.text(
        "(4) Initialisation: on this one data set, k-means starts reached the "
        f"best optimum in {kmeans:.0%} of seeds and random-point starts in "
        f"{random:.0%}; the "
        "distinct end points of gmmlab's EM were "
        f"{', '.join(f'{v:.2f}' for v in optima[:4])}. "
        "The homework's own start (means from random integers in {0, 1}, "
        "identity covariances), with the engines under the sweep's rule and "
        "with the homework's code and rule (|change of the total "
        f"log-likelihood| < {S2_HOMEWORK_TOL:g} after at least "
        f"{S2_HOMEWORK_MIN_ITER} iterations):"
    )
    outcomes = arm_outcomes(s2[s2["backend"].isin(["em", "sklearn", "homework"])])
    doc.table(outcome_table(outcomes))
    _homework_outcome(doc, outcomes, chosen)
    _what_it_means(doc, data, chosen, optima)
    _homework_start(doc, s2, convergence, chosen)


def _what_it_means(doc: Document, data: ReportData, chosen, optima) -> None:
    """(5): the homework's best log-likelihood beside ours, and the spread."""
    facts = run_data_set(chosen, data)
    if facts is None:
        doc.text(f"(5) {MISSING_DATA_NOTE}")
        return
    spread = {
        "log_likelihood": float(facts["truth_log_likelihood"]),
        "spread": float(facts["truth_spread"]),
    }
    if len(optima):
        doc.finding(
            f"S2: the homework's {_BEST:.0f} and our "
            f"{chosen['log_likelihood']:.0f} "
            "are the same answer on different samples: a total log-likelihood "
            f"varies by about {spread['spread']:.0f} nats from sample to "
            "sample at this n."
        )
    doc.text(
        f"(5) What {_BEST:.0f} means: the homework's best run reached a total "
        f"log-likelihood of about {_BEST:.0f} on its own {S2_N:,} points, which "
        "are lost; ours are a new sample from the parameters it learned. Those "
        f"parameters score our sample at {spread['log_likelihood']:.2f}, and "
        f"our best fit reaches {chosen['log_likelihood']:.2f}. A total "
        "log-likelihood varies from sample to sample by about "
        f"{spread['spread']:.0f} nats (standard deviation) at this n, so "
        f"{_BEST:.0f} and {chosen['log_likelihood']:.0f} are the same answer on "
        "different samples."
        if len(optima)
        else ""
    )


def _parameters(rows: pd.DataFrame) -> pd.DataFrame:
    """The chosen fit's parameters beside the homework's, one row a component."""
    table = rows.pivot_table(
        index="component", columns=["parameter", "i", "j"], values=["estimate", "truth"]
    )

    def entries(kind, parameter, indices):
        """One text cell per component: the given entries of a parameter."""
        columns = [table[(kind, parameter, i, j)] for i, j in indices]
        return [vector_text(values) for values in zip(*columns, strict=True)]

    mean, covariance = [(0, 0), (1, 0)], [(0, 0), (0, 1), (1, 1)]
    return pd.DataFrame(
        {
            "weight": table[("estimate", "weight", 0, 0)],
            "homework weight": table[("truth", "weight", 0, 0)],
            "mean": entries("estimate", "mean", mean),
            "homework mean": entries("truth", "mean", mean),
            "covariance (xx, xy, yy)": entries("estimate", "covariance", covariance),
            "homework covariance": entries("truth", "covariance", covariance),
        }
    ).reset_index()


def _homework_outcome(doc: Document, outcomes: pd.DataFrame, chosen) -> None:
    """How far the homework's code from its own start ends from the best fit."""
    homework = outcomes[outcomes["backend"] == "homework"]
    if len(homework) and not np.isfinite(homework.iloc[0]["best_log_likelihood"]):
        row = homework.iloc[0]
        doc.text(
            f"Every one of the {int(row['n_runs'])} runs of the homework's code "
            f"from its own start ended degenerate ({row['reason']}): see (5) "
            "below."
        )
    elif len(homework):
        row = homework.iloc[0]
        short = float(chosen["log_likelihood"]) - row["best_log_likelihood"]
        cause = (
            f"its |change| < {S2_HOMEWORK_TOL:g} rule stops it that early"
            if short < 1.0
            else "its start, not its stopping rule: see (5) below"
        )
        doc.text(
            f"The homework's code from its own start: its best run ends "
            f"{short:.3f} nats below the best fit after a median of "
            f"{row['median_iterations']:g} iterations ({cause})."
        )


def _homework_start(doc: Document, s2, convergence, chosen) -> None:
    """Why the homework's start ends at its two low optima, engine by engine."""
    homework = s2[s2["backend"] == "homework"]
    if not len(homework):
        return
    chance = distinct_corner_probability(_K, 2)
    ends = np.sort(homework["log_likelihood"].dropna().round(0).unique())[::-1]
    twins = s2[(s2["backend"] == "sklearn") & (s2["init"] == "homework")]
    identical = reason_count(twins, IDENTICAL_COMPONENTS)
    share = median_share_at_best(convergence, "s2", "em", "homework", cell=chosen)
    doc.text(
        f"The homework's {_LOW:.0f} and {_LOWEST:.0f} runs: its start draws "
        f"the {_K} means from random integers in {{0, 1}}, i.e. from the 4 "
        f"corners of the unit square, and all {_K} differ with probability "
        f"only {chance:.1%} ({_K}!/4^{_K}). Two components that start on one "
        "corner with one covariance get identical responsibilities forever. "
        "Here "
        f"the homework's own code, from {len(homework)} such starts, ended "
        f"at {', '.join(f'{v:.0f}' for v in ends)}; scikit-learn from the "
        f"same starts kept identical components in {identical} of "
        f"{len(twins)} fits (classified degenerate), while gmmlab's EM "
        f"re-seeds a duplicate and reached the best optimum in {share:.0%} "
        "of them."
    )


SECTION = Section("s2", lambda data: has_write_up(data, "s2"), render)
