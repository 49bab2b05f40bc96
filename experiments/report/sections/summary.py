"""Section "Summary": one row per data set and engine, then what it shows."""

from __future__ import annotations

import pandas as pd

from experiments.analysis import (
    STATUSES,
    data_columns,
    engine_pairs,
    summary_table,
)
from experiments.analysis import posterior as posterior_fits
from experiments.report.context import ReportData, Section
from experiments.report.document import Document
from experiments.report.views import data_label, summary_label
from mixtures.diagnostics import MAX_R_HAT, MIN_ESS_BULK

__all__ = ["SECTION"]


def render(doc: Document, data: ReportData) -> None:
    """The summary table, then a few conclusions, each citing its columns."""
    runs, nats = data.runs, data.nats
    doc.heading("Summary")
    table = summary_table(runs, data.convergence)
    doc.text(
        "Summary table: one row per data set (with the parameters that vary "
        "in its series) and engine. 'best ok log-lik' is the engine's best "
        "ok fit on the first data replicate; a posterior summary's "
        "log-likelihood (NUTS, ADVI, variational Bayes) goes in its own "
        "column: it is not a maximum and never 'best'. 'at best' is the "
        "share of seeds that are ok and within "
        f"{nats:g} nats of the best eligible fit of the same data (median over "
        "data replicates; for a data set searched over K and covariance "
        "types, log-likelihood and shares are those of the chosen model). "
        "sklearn-defaults is scikit-learn with its own "
        "stopping rule (tol = 1e-3 on the mean log-likelihood): shown, never "
        "compared."
    )
    doc.table(_shown(runs, table))
    counts = _count_sentence(table)
    agreement = _agreement_sentences(runs, nats)
    doc.text(
        " ".join(
            [
                counts,
                *agreement,
                *_share_sentences(runs, table),
                *_defaults_sentences(runs, table),
                *_nuts_sentences(runs, table),
            ]
        )
    )
    # How many fits are ok, and whether the engines agree, open the page.
    doc.finding(counts)
    if agreement:
        doc.finding(agreement[0])


def _shown(runs: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The summary table with readable column names."""
    keys = ["dataset", *data_columns(runs)]
    summaries = table["backend"].isin(runs.loc[posterior_fits(runs), "backend"])
    return pd.DataFrame(
        {
            "data": [
                data_label(dict(zip(keys, row, strict=True)), runs)
                for row in table[keys].itertuples(index=False)
            ],
            "engine": table["backend"],
            "fits": table["n_runs"],
            **{status: table[f"n_{status}"] for status in STATUSES},
            "best ok log-lik": table["best_ok_log_likelihood"].where(~summaries),
            **(
                {
                    "log-lik at posterior summary": table[
                        "best_ok_log_likelihood"
                    ].where(summaries)
                }
                if summaries.any()
                else {}
            ),
            **{
                f"at best, {c.removeprefix('share_at_best_').replace('_', ' ')}": table[
                    c
                ]
                for c in table.columns
                if c.startswith("share_at_best_")
            },
            "median iterations": table["median_iterations"],
            "median seconds": table["median_seconds"],
        }
    )


def _count_sentence(table) -> str:
    """How many fits are ok, and where the others are listed."""
    total = int(table["n_runs"].sum())
    ok = int(table["n_ok"].sum())
    if ok == total:
        return f"All {total} fits are ok (Summary table, status columns)."
    return (
        f"{ok} of {total} fits are ok; the other "
        + ("one is" if total - ok == 1 else f"{total - ok} are")
        + " listed with their reasons under 'Fits not eligible' (Summary "
        "table, status columns)."
    )


def _agreement_sentences(runs, nats) -> list[str]:
    """Sentences on gmmlab's EM against scikit-learn from identical starts."""
    sentences = []
    all_pairs = engine_pairs(runs, "em", "sklearn", nats)
    pairs = all_pairs[all_pairs["both_eligible"]]
    if len(pairs):
        same = int(pairs["same_optimum"].sum())
        sentences.append(
            f"From identical starts, gmmlab's EM and scikit-learn end at the "
            f"same optimum in {same} of the {len(pairs)} pairs where both fits "
            f"are ok (largest difference {pairs['difference'].abs().max():.1e} "
            "nats)"
            + (
                ", so those rows agree (Summary table, em and sklearn)."
                if same == len(pairs)
                else "; the others reached different optima from the same start."
            )
        )
    apart = all_pairs[~all_pairs["both_eligible"]]
    if len(apart):
        ours = apart["status_em"] == "ok"
        theirs = apart["status_sklearn"] == "ok"
        by_init = ", ".join(
            f"{n} {init.replace('_', ' ')}"
            for init, n in apart["init"].value_counts().items()
        )
        sentences.append(
            f"In {len(apart)} more pairs ({by_init}) the two engines' rows "
            "differ because one side is not ok: scikit-learn's fit in "
            f"{int((ours & ~theirs).sum())}, gmmlab's in "
            f"{int((~ours & theirs).sum())}, both in "
            f"{int((~ours & ~theirs).sum())} (reasons under 'Fits not "
            "eligible'), so their shares at the best optimum differ there."
        )
        tied = apart[
            (apart["covariance_type"].isin(["tied", "EEE"]))
            & (apart["init"].isin(["random_from_data", "k-means++"]))
            & ours
            & ~theirs
        ]
        if len(tied):
            sentences.append(
                f"{len(tied)} of them are the tied model from a start that is "
                "one-hot on K rows (random points or k-means++ seeds), "
                "where the starts differ by construction: scikit-learn "
                "computes the tied covariance as (X^T X - sum_k n_k m_k "
                "m_k^T) / sum_k n_k with X^T X over all rows, which holds only "
                "when every row's responsibilities sum to one; with the other "
                "rows at zero its first covariance "
                "is about n/K times the data's second moment. Every component "
                "starts as the same broad Gaussian and EM stops at that saddle "
                "(classified degenerate: indistinguishable components). "
                "gmmlab's M-step uses the chosen rows' own scatter."
            )
    return sentences


def _share_sentences(runs, table) -> list[str]:
    """The range of shares of seeds at the best optimum, per kind of start."""
    sentences = []
    shares = {
        init: table[f"share_at_best_{init}"].dropna()
        for init in ("kmeans", "random_from_data")
        if f"share_at_best_{init}" in table
    }
    compared = table["backend"].isin(["em", "sklearn"])
    for init, values in shares.items():
        values = values[compared.loc[values.index]]
        if not len(values):
            continue
        starts, column = init.replace("_", " "), f"'at best, {init.replace('_', ' ')}'"
        low, high = f"{values.min():.0%}", f"{values.max():.0%}"
        if low == high:  # one row, or every row the same: no range to give
            rows = table.loc[values.index]
            where = (
                f"{summary_label(rows.iloc[0], runs)}, {rows.iloc[0]['backend']}"
                if len(rows) == 1
                else f"each of its {len(rows)} rows"
            )
            sentences.append(
                f"{starts} starts put {low} of seeds at the best optimum "
                f"(Summary table, {column}, {where})."
            )
            continue
        worst = summary_label(table.loc[values.idxmin()], runs)
        sentences.append(
            f"{starts} starts put between {low} ({worst}) and {high} of seeds "
            f"at the best optimum (Summary table, {column})."
        )
    return sentences


def _defaults_sentences(runs, table) -> list[str]:
    """What scikit-learn's own stopping rule does (the sklearn-defaults arm)."""
    defaults = table[table["backend"] == "sklearn-defaults"]
    if not (len(defaults) and "share_at_best_kmeans" in defaults):
        return []
    never = defaults[defaults["share_at_best_kmeans"] == 0]
    where = (
        f"never reach the best optimum on {len(never)} of {len(defaults)} data "
        f"sets ({', '.join(summary_label(r, runs) for _, r in never.iterrows())}; "
        if len(never)
        else f"reach the best optimum from some seeds on each of the {len(defaults)} "
        "data sets ("
    )
    return [
        f"scikit-learn's default tolerance stops after a median of "
        f"{defaults['median_iterations'].median():g} iterations, and its "
        f"k-means fits {where}Summary table, sklearn-defaults): the sweep's own "
        "rule is the basis of every comparison."
    ]


def _nuts_sentences(runs, table) -> list[str]:
    """How many NUTS fits pass their convergence checks, and why the others not."""
    bayes = table[table["backend"] == "pymc"]
    if not len(bayes):
        return []
    nuts = runs[runs["backend"] == "pymc"]
    sentence = (
        f"PyMC's NUTS passes its convergence checks (r-hat <= {MAX_R_HAT}, "
        f"bulk ESS >= {MIN_ESS_BULK:g}, no divergence, after relabelling) in "
        f"{int(bayes['n_ok'].sum())} of {int(bayes['n_runs'].sum())} fits "
        "(Summary table, pymc rows)"
    )
    failing = nuts[nuts["status"] != "ok"]
    if len(failing):
        sentence += "; the others: " + "; ".join(
            f"{summary_label(r, runs)} ({r['status']}: {r['status_reason']})"
            for _, r in failing.iterrows()
        )
    return [sentence + "."]


SECTION = Section("summary", lambda data: data.fitted, render)
