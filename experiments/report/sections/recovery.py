"""Section "Parameter recovery against the truth": error of the data's maximum."""

from __future__ import annotations

import pandas as pd

from experiments.analysis import data_columns
from experiments.recovery import recovery_fits, recovery_slope, recovery_summary
from experiments.report.context import ReportData, Section
from experiments.report.document import Document
from experiments.report.figures.runs import recovery_figure
from experiments.report.views import data_label

__all__ = ["SECTION"]

_METRIC_NAMES = {
    "m_mean_rmse": "mean RMSE",
    "m_cov_frobenius": "covariance Frobenius error",
}


def render(doc: Document, data: ReportData) -> None:
    """The recovery table, the slopes over n, and recovery against n."""
    runs = data.runs
    doc.heading("Parameter recovery against the truth")
    summary = recovery_summary(runs)
    if summary.empty:
        doc.text("No data set in this sweep has a known truth.")
        return
    doc.text(
        "Recovery of the data's maximum: for every data replicate and model "
        "(K, covariance type), the ok maximum-likelihood fit of highest "
        "log-likelihood over every engine, initialisation and seed (arms run "
        "with their engine's own stopping rule excluded), which is what "
        "maximum likelihood estimates whichever start found it; components "
        "matched to the truth (Hungarian assignment on the 2-Wasserstein "
        "distance); medians over data replicates. A posterior engine's row "
        "(estimator = its name) is its own best ok fit."
    )
    keys = ["dataset", *data_columns(runs)]
    metrics = [c for c in summary.columns if c.startswith("m_")]
    doc.table(
        pd.DataFrame(
            {
                "data": [
                    data_label(dict(zip(keys, row, strict=True)), runs)
                    for row in summary[keys].itertuples(index=False)
                ],
                "K": summary["n_components"],
                "covariance_type": summary["covariance_type"],
                "estimator": summary["estimator"],
                "n_replicates": summary["n_replicates"],
                **{metric: summary[metric] for metric in metrics},
            }
        )
    )
    slopes = [
        recovery_slope(runs, metric)
        for metric in ("m_mean_rmse", "m_cov_frobenius")
        if metric in runs
    ]
    slopes = pd.concat(slopes, ignore_index=True) if slopes else pd.DataFrame()
    if not slopes.empty:
        doc.text(" ".join(_slope_sentences(slopes, runs)))
        first = slopes.iloc[0]
        keys = ["dataset", *[c for c in data_columns(runs) if c in slopes]]
        doc.finding(
            f"On {data_label({k: first[k] for k in keys}, runs)}, the "
            f"{_METRIC_NAMES.get(first['metric'], first['metric'])} of the "
            f"data's maximum scales as n^{first['slope']:.2f} "
            f"[{first['slope_low']:.2f}, {first['slope_high']:.2f}] "
            "(1/sqrt(n) is n^-0.50)."
        )
    _figure(doc, runs)


def _slope_sentences(slopes: pd.DataFrame, runs) -> list[str]:
    """One sentence per series over n, every number from ``slopes``."""
    sentences = []
    keys = ["dataset", *[c for c in data_columns(runs) if c in slopes]]
    series_keys = [*keys, "n_components", "covariance_type"]
    for key, series in slopes.groupby(series_keys, dropna=False, sort=False):
        values = dict(zip(series_keys, key, strict=True))
        first = series.iloc[0]
        label = data_label({k: values[k] for k in keys}, runs)
        scalings = [
            f"{_METRIC_NAMES.get(r.metric, r.metric)} scales as n^{r.slope:.2f} "
            f"[{r.slope_low:.2f}, {r.slope_high:.2f}]"
            for r in series.itertuples(index=False)
        ]
        sentences.append(
            f"On {label} (K = {int(values['n_components'])}, "
            f"{values['covariance_type']}), the data's maximum's "
            f"{' and its '.join(scalings)} (1/sqrt(n) is n^-0.50): "
            "least-squares slopes of the log median over "
            f"{first['n_replicates']} data replicates on log n, n = "
            f"{first['size_min']:g} to {first['size_max']:g}; in brackets the "
            f"{first['confidence']:.0%} bootstrap interval over data replicates "
            f"({first['n_boot']} resamples of whole replicates, seeded)."
        )
    return sentences


def _figure(doc: Document, runs) -> None:
    """Recovery error of the data's maximum against n, one line per series."""
    fits = recovery_fits(runs)
    if "p_n" not in fits or fits["p_n"].nunique() < 2:
        return
    fits = fits.dropna(subset=["p_n", "m_mean_rmse"])
    keys = [
        "dataset",
        *[c for c in data_columns(runs) if c != "p_n"],
        "n_components",
        "covariance_type",
    ]
    # A series at one n (a data set fitted at one size) has no line against n.
    groups = [
        (key, group)
        for key, group in fits.groupby([*keys, "estimator"], dropna=False, sort=True)
        if group["p_n"].nunique() >= 2
    ]
    if not groups:
        return
    series = []
    for key, group in groups:
        estimator = key[-1]
        label = estimator
        if len(groups) > 1:
            values = dict(zip(keys, key[:-1], strict=True))
            label = f"{data_label(values, runs)} K={int(values['n_components'])}"
            label += f" {values['covariance_type']}: {estimator}"
        series.append((estimator, label, group))
    doc.figure(
        recovery_figure(pd.concat([group for _, group in groups]), series),
        "recovery_vs_n",
        "Recovery error against n, log-log",
    )


SECTION = Section("recovery", lambda data: data.fitted, render)
