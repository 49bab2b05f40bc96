"""Comparison reports from a results folder: ``index.html``, ``report.md``, figures.

A report reads only the recorded tables and ``manifest.json``; it never fits
a model. For the per-data-set figures it regenerates the data from the
recorded data set name, parameters and data seed, and assigns points to
components with the recorded parameters. Figures are PNG files (matplotlib,
Agg backend) written next to ``index.html``; one colour per engine
throughout. Building the same report twice gives byte-identical files.
"""

from __future__ import annotations

import html
import io
import json
import re
import textwrap
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse

from experiments import scenarios
from experiments.analysis import (
    MAXIMUM_LIKELIHOOD,
    SAME_OPTIMUM_NATS,
    STATUSES,
    arm_outcomes,
    best_eligible,
    choose_model,
    data_columns,
    eligible,
    engine_pairs,
    recovery_fits,
    recovery_slope,
    recovery_summary,
    reference_log_likelihood,
    selection_table,
    summary_table,
)
from experiments.analysis import posterior as posterior_fits
from experiments.datasets import load_dataset
from experiments.scenario_analysis import (
    S3_INTERVAL,
    S3_NEW_POINT,
    affine_check,
    best_log_likelihood_over_weights,
    distinct_corner_probability,
    duplicate_start_probability,
    interval_probability,
    point_density,
    reported_beside_ours,
    sampling_spread,
    unnormalised_curve_at,
)
from experiments.tables import atomic_write, read_tables
from mixtures import MixtureParams
from mixtures.align import match_components
from mixtures.diagnostics import MAX_R_HAT, MIN_ESS_BULK
from mixtures.em import predict_labels, score_samples
from mixtures.select import top_models

__all__ = ["ENGINE_COLOURS", "build_report", "params_from_components"]

ENGINE_COLOURS = {
    "em": "#1f77b4",
    "sklearn": "#ff7f0e",
    "pymc": "#2ca02c",
    "pymc-advi": "#d62728",
    "sklearn-vb": "#393b79",
}
_INIT_STYLES: dict[str, Any] = {
    "kmeans": "-",
    "random_from_data": "--",
    "k-means++": ":",
    "random": "-.",
    "default": "-",
}
#: Applied with ``matplotlib.rc_context`` while a report is built: importing
#: this module changes no global matplotlib state.
_STYLE: Any = {  # matplotlib types its keys as literals
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "font.size": 9,
    "svg.hashsalt": "gmmlab",
}


def _subplots(nrows: int = 1, ncols: int = 1, **kwargs):
    """A new ``Figure`` and its axes, without pyplot (no global figure state)."""
    figsize = kwargs.pop("figsize", None)
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


#: Colours for arms that are not one of the engines (write-ups' code, named
#: arms), given in order of the arm name's hash so they are stable.
_OTHER_COLOURS = (
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#aec7e8",
    "#ffbb78",
)


def _colour(engine: str) -> str:
    if engine in ENGINE_COLOURS:
        return ENGINE_COLOURS[engine]
    if engine == "sklearn-defaults":
        return "#7f7f7f"
    digest = sum(ord(c) * (i + 1) for i, c in enumerate(engine))
    return _OTHER_COLOURS[digest % len(_OTHER_COLOURS)]


# ---------------------------------------------------------------------------
# Reading recorded parameters


def params_from_components(rows: pd.DataFrame) -> MixtureParams:
    """The point estimate of one run, rebuilt from its components-table rows."""
    k = int(rows["component"].max()) + 1
    d = int(rows.loc[rows["parameter"] == "mean", "i"].max()) + 1
    weights = np.zeros(k)
    means = np.zeros((k, d))
    covariances = np.zeros((k, d, d))
    for row in rows.itertuples(index=False):
        if row.parameter == "weight":
            weights[row.component] = row.estimate
        elif row.parameter == "mean":
            means[row.component, row.i] = row.estimate
        else:
            covariances[row.component, row.i, row.j] = row.estimate
            covariances[row.component, row.j, row.i] = row.estimate
    return MixtureParams(weights / weights.sum(), means, covariances)


# ---------------------------------------------------------------------------
# Output helpers


def _cell(value, digits: int) -> str:
    """A table cell as text: blank for missing, floats to ``digits`` figures."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, float | np.floating):
        number = float(value)
        if number.is_integer() and abs(number) < 1e15:
            return str(int(number))
        return f"{number:.{digits}g}"
    return str(value)


class _Report:
    """Collects sections as HTML and Markdown, and saves figures."""

    def __init__(self, out: Path):
        self.out = out
        self.html: list[str] = []
        self.markdown: list[str] = []
        self.figures: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")
        self.markdown.append(f"{'#' * level} {text}\n")

    def text(self, text: str) -> None:
        self.html.append(f"<p>{html.escape(text)}</p>")
        self.markdown.append(f"{text}\n")

    def table(self, frame: pd.DataFrame, digits: int = 4) -> None:
        if frame.empty:
            self.text("(no rows)")
            return
        shown = pd.DataFrame(
            {
                column: [_cell(value, digits) for value in frame[column]]
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

    def figure(self, fig, name: str, caption: str) -> None:
        # Data set names may be file:PATH; keep file names portable.
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
        path = self.out / f"{safe}.png"
        # Rendered in memory and written whole, like every other file.
        image = io.BytesIO()
        fig.savefig(image, format="png", metadata={"Software": None})
        atomic_write(image.getvalue(), path)
        self.figures.append(path.name)
        self.html.append(
            f'<figure><img src="{html.escape(path.name)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        self.markdown.append(f"![{caption}]({path.name})\n")

    def write(self, title: str) -> Path:
        style = (
            "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
            "table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}"
            "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}"
            "img{max-width:100%}figcaption{font-size:0.85em;color:#555}"
        )
        document = (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{style}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>\n"
            + "\n".join(self.html)
            + "\n</body></html>\n"
        )
        index = self.out / "index.html"
        # Remove the figures an earlier build of this report wrote and this
        # one did not (a renamed data set, a series that changed); files the
        # report never wrote are left alone.
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


# ---------------------------------------------------------------------------
# Sections


def _setup(report: _Report, manifest: dict, runs: pd.DataFrame) -> None:
    report.heading("Setup")
    counts = runs["status"].value_counts() if len(runs) else pd.Series(dtype=int)
    stopping = manifest.get("stopping", {})
    nats = manifest.get("same_optimum_nats", SAME_OPTIMUM_NATS)
    report.text(
        f"Configuration {Path(str(manifest.get('config_source'))).name} (hash "
        f"{str(manifest.get('config_hash'))[:12]}), {len(runs)} runs: "
        + ", ".join(f"{int(counts.get(s, 0))} {s}" for s in STATUSES)
        + f"; started {manifest.get('started_at')}, finished "
        f"{manifest.get('finished_at')}; git commit {manifest.get('git_commit')}."
    )
    report.text(
        f"Stopping rule of every iterative engine: {stopping.get('rule', '?')}, "
        f"tol = {stopping.get('tol', float('nan')):g}, max_iter = "
        f"{stopping.get('max_iter', '?')} (converted to each engine's units). "
        f"Two fits are at the same optimum when their total log-likelihoods "
        f"differ by at most {nats:g} nats. Only fits with status ok take part "
        "in 'best', model selection, engine agreement and the fitted-mixture "
        "figures; the others are counted and listed under 'Fits not eligible'."
    )
    versions = manifest.get("versions", {})
    platform_info = manifest.get("platform", {})
    report.table(
        pd.DataFrame(
            [
                {"item": k, "value": str(v)}
                for k, v in {**versions, **platform_info}.items()
            ]
        )
    )


def _summary(report: _Report, runs, convergence, nats) -> None:
    """The summary table, then a few conclusions, each citing its columns."""
    report.heading("Summary")
    table = summary_table(runs, convergence)
    keys = ["dataset", *data_columns(runs)]
    summaries = table["backend"].isin(runs.loc[posterior_fits(runs), "backend"])
    shown = pd.DataFrame(
        {
            "data": [
                _data_label(dict(zip(keys, row, strict=True)), runs)
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
    report.text(
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
    report.table(shown, digits=6)
    report.text(" ".join(_conclusions(runs, table, nats)))


def _conclusions(runs, table, nats) -> list[str]:
    """Sentences stating what the summary table shows, every number from it."""
    sentences = []
    total = int(table["n_runs"].sum())
    ok = int(table["n_ok"].sum())
    sentences.append(
        f"{ok} of {total} fits are ok; the other {total - ok} are listed with "
        "their reasons under 'Fits not eligible' (Summary table, status "
        "columns)."
    )
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
    shares = {
        init: table[f"share_at_best_{init}"].dropna()
        for init in ("kmeans", "random_from_data")
        if f"share_at_best_{init}" in table
    }
    compared = table["backend"].isin(["em", "sklearn"])
    for init, values in shares.items():
        values = values[compared.loc[values.index]]
        if len(values):
            worst = _summary_label(table.loc[values.idxmin()], runs)
            sentences.append(
                f"{init.replace('_', ' ')} starts put between {values.min():.0%} "
                f"({worst}) and {values.max():.0%} of seeds at the "
                f"best optimum (Summary table, 'at best, {init.replace('_', ' ')}')."
            )
    defaults = table[table["backend"] == "sklearn-defaults"]
    if len(defaults) and "share_at_best_kmeans" in defaults:
        never = defaults[defaults["share_at_best_kmeans"] == 0]
        sentences.append(
            f"scikit-learn's default tolerance stops after a median of "
            f"{defaults['median_iterations'].median():g} iterations, and its "
            f"k-means fits never reach the best optimum on {len(never)} of "
            f"{len(defaults)} data sets "
            f"({', '.join(_summary_label(r, runs) for _, r in never.iterrows())}; "
            "Summary "
            "table, sklearn-defaults): the sweep's own rule is the basis of "
            "every comparison."
        )
    bayes = table[table["backend"] == "pymc"]
    if len(bayes):
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
                f"{_summary_label(r, runs)} ({r['status']}: {r['status_reason']})"
                for _, r in failing.iterrows()
            )
        sentences.append(sentence + ".")
    return sentences


def _summary_label(row: pd.Series, runs) -> str:
    """A summary-table row's data: 's5 scaled=True', 'synthetic n=250'."""
    keys = ["dataset", *data_columns(runs)]
    return _data_label({k: row[k] for k in keys if k in row}, runs)


def _traces(report: _Report, runs, traces) -> None:
    report.heading("Log-likelihood traces")
    report.text(
        "How far every fit is from the best optimum of the same data, at "
        "every iteration: the best eligible maximum-likelihood total "
        "log-likelihood minus the fit's, in nats, on a log axis (symmetric "
        "below 1e-4 nats, so a fit that ends above the best, such as a "
        "degenerate one, shows as negative). First data replicate; the cell "
        "of the chosen model when a data set was searched over K. One line "
        "per seed (per chain for PyMC, whose draws scatter around the "
        "posterior); line style by initialisation, the best eligible fit bold. "
        "sklearn-vb's trace is its variational lower bound, a different "
        "objective: shown as its gap to its own final value. pymc-advi's is "
        "its ELBO per sample."
    )
    fitted = runs[runs["status"] != "failed"].copy()
    fitted["reference"] = reference_log_likelihood(fitted)
    first = fitted[fitted["data_replicate"] == fitted["data_replicate"].min()]
    keys = ["dataset", *data_columns(runs)]
    for key, group in first.groupby(keys, dropna=False, sort=True):
        label = _data_label(dict(zip(keys, key, strict=True)), runs)
        try:
            chosen = choose_model(group)
        except ValueError:
            chosen = group.iloc[0]
        group = group[
            (group["n_components"] == chosen["n_components"])
            & (group["covariance_type"] == chosen["covariance_type"])
        ]
        engines = sorted(group["backend"].unique())
        fig, axes = _subplots(
            1,
            len(engines),
            figsize=(max(5.5, 3.4 * len(engines)), 3.2),
            squeeze=False,
        )
        best_ids = set(best_eligible(group, ["backend"])["run_id"])
        for ax, engine in zip(axes[0], engines, strict=True):
            runs_e = group[group["backend"] == engine]
            kind = runs_e["trace_kind"].iloc[0]
            sampled = kind == "draw_mean_loglik"
            for run in runs_e.itertuples():
                rows = traces[traces["run_id"] == run.run_id]
                is_best = run.run_id in best_ids
                for restart, trace in rows.groupby("restart"):
                    values = trace["value"].to_numpy()
                    if kind == "advi_mean_elbo":
                        shown = values
                    elif kind == "vb_elbo":
                        # A total lower bound, not a log-likelihood: its gap to
                        # its own final value.
                        shown = values[-1] - values
                    else:
                        shown = run.reference - run.n_samples * values
                    ax.plot(
                        trace["iteration"],
                        shown,
                        _INIT_STYLES.get(run.init, "-"),
                        color=_CHAIN_COLOURS[restart % len(_CHAIN_COLOURS)]
                        if sampled
                        else _colour(engine),
                        alpha=0.8 if sampled or is_best else 0.3,
                        linewidth=1.6 if is_best and not sampled else 0.8,
                        label=f"chain {restart + 1}" if sampled else None,
                    )
            if kind == "advi_mean_elbo":
                ax.set_ylabel("ELBO per sample")
            elif kind == "vb_elbo":
                ax.set_yscale("symlog", linthresh=1e-4)
                _sparse_symlog_ticks(ax)
                ax.set_ylabel("gap to its final lower bound (nats)")
            else:
                ax.set_yscale("symlog", linthresh=1e-4)
                _sparse_symlog_ticks(ax)
                ax.set_ylabel("gap to the best optimum (nats)")
            ax.set_title(
                f"{engine} ({runs_e['status'].iloc[0]})" if sampled else engine
            )
            ax.set_xlabel(
                "posterior draw"
                if sampled
                else {
                    "advi_mean_elbo": "ADVI iteration",
                    "vb_elbo": "VB iteration",
                }.get(kind, "EM iteration")
            )
            if sampled:
                ax.legend(fontsize=7)
            else:
                ax.legend(
                    handles=[
                        Line2D(
                            [],
                            [],
                            linestyle=_INIT_STYLES.get(i, "-"),
                            color=_colour(engine),
                            label=i.replace("_", " "),
                        )
                        for i in sorted(runs_e["init"].unique())
                    ],
                    fontsize=7,
                )
        title = (
            f"{label} (K = {int(chosen['n_components'])}, "
            f"{chosen['covariance_type']}): distance to the best optimum"
        )
        if {"pymc-advi", "sklearn-vb"} & set(engines):
            title += " (ADVI and VB: their own objectives)"
        # Wrapped to the figure's width: with one or two panels a one-line
        # title ran past both edges.
        fig.suptitle(textwrap.fill(title, width=int(9 * fig.get_figwidth())))
        fig.tight_layout()
        report.figure(fig, f"traces_{label}", f"{label}: traces per engine")


def _sparse_symlog_ticks(ax, linthresh: float = 1e-4) -> None:
    """Ticks at 0 and every third power of ten on a symlog axis, not every one."""
    low, high = ax.get_ylim()
    top = int(np.ceil(np.log10(max(abs(low), abs(high), linthresh * 10))))
    powers = [10.0**k for k in range(-3, top + 1, 3)]
    ticks = [0.0] + [p for p in powers if p <= high] + [-p for p in powers if -p >= low]
    ax.set_yticks(sorted(ticks))
    ax.set_yticklabels([_power_label(v) for v in sorted(ticks)])


def _power_label(value: float) -> str:
    if value == 0:
        return "0"
    exponent = round(float(np.log10(abs(value))))
    return f"{'-' if value < 0 else ''}1e{exponent}"


_CHAIN_COLOURS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


_STATUS_MARKERS = {"ok": "o", "degenerate": "x", "unconverged": "^"}


def _convergence(report: _Report, runs, convergence, nats) -> None:
    report.heading("Convergence across seeds (initialisation impact)")
    report.text(
        "Final total log-likelihood of every seed on the first data replicate, "
        "per engine and initialisation, relative to the best eligible fit of "
        "that data (any engine or initialisation; 0 = best). Circles are ok "
        "fits, crosses degenerate, triangles unconverged. The share printed "
        f"above each group is of its seeds that are ok and within {nats:g} "
        "nats of the best: the same number as the table below, which gives "
        "it for every data replicate."
    )
    fitted = runs[runs["status"] != "failed"].copy()
    fitted["reference"] = reference_log_likelihood(fitted)
    first = fitted[fitted["data_replicate"] == fitted["data_replicate"].min()]
    keys = ["dataset", *data_columns(runs)]
    for key, group in first.groupby(keys, dropna=False, sort=True):
        dataset = key[0]
        label = _data_label(dict(zip(keys, key, strict=True)), runs)
        if group[["n_components", "covariance_type"]].drop_duplicates().shape[0] > 1:
            try:  # a model search: the chosen model's cell
                chosen = choose_model(group)
            except ValueError:
                chosen = group.iloc[0]
            group = group[
                (group["n_components"] == chosen["n_components"])
                & (group["covariance_type"] == chosen["covariance_type"])
            ]
            label = (
                f"{label} (K = {int(chosen['n_components'])}, "
                f"{chosen['covariance_type']})"
            )
        cells = sorted({(r.backend, r.init) for r in group.itertuples()})
        fig, ax = _subplots(figsize=(max(5.5, 1.4 * len(cells)), 3.4))
        names, gaps = [], []
        for x, (engine, init) in enumerate(cells):
            cell = group[(group["backend"] == engine) & (group["init"] == init)]
            gap = (cell["log_likelihood"] - cell["reference"]).to_numpy()
            gaps.extend(gap[np.isfinite(gap)])
            jitter = np.linspace(-0.15, 0.15, gap.size) if gap.size > 1 else [0.0]
            for status, marker in _STATUS_MARKERS.items():
                mask = (cell["status"] == status).to_numpy()
                if mask.any():
                    ax.scatter(
                        x + np.asarray(jitter)[mask],
                        gap[mask],
                        color=_colour(engine),
                        marker=marker,
                        s=16,
                    )
            share = convergence[
                (convergence["dataset"] == dataset)
                & (convergence["backend"] == engine)
                & (convergence["init"] == init)
                & (convergence["data_replicate"] == cell["data_replicate"].iloc[0])
                & (convergence["n_components"] == cell["n_components"].iloc[0])
                & (convergence["covariance_type"] == cell["covariance_type"].iloc[0])
                & _same_params(convergence, dict(zip(keys, key, strict=True)))
            ]["share_at_best"]
            if len(share) and pd.notna(share.iloc[0]):
                at_best = f"\n{share.iloc[0]:.0%} at best"
            else:
                at_best = "\n(posterior: no optimum)"
            names.append(f"{engine}\n{init}{at_best}")
        ax.axhline(0.0, color="k", linewidth=0.6, linestyle=":")
        ax.set_xticks(range(len(cells)))
        ax.set_xticklabels(names, fontsize=7)
        threshold = max(nats, 1e-3)
        ax.set_yscale("symlog", linthresh=threshold)
        low = min(min(gaps, default=0.0), -threshold)
        high = max(max(gaps, default=0.0), threshold)
        ax.set_ylim(low * 3 if low < 0 else low, high * 3 if high > 0 else high)
        ax.set_ylabel("log-likelihood minus best ok fit (nats)")
        ax.legend(
            handles=[
                Line2D([], [], marker=m, linestyle="", color="k", label=s)
                for s, m in _STATUS_MARKERS.items()
            ],
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
        )
        ax.set_title(f"{label}: final log-likelihood per seed")
        fig.tight_layout()
        report.figure(fig, f"convergence_{label}", f"{label}: seeds' optima")
    columns = [
        c
        for c in (
            "dataset",
            *data_columns(convergence),
            "data_replicate",
            "backend",
            "init",
            "n_components",
            "covariance_type",
            "n_runs",
            "n_ok",
            "n_degenerate",
            "n_unconverged",
            "n_failed",
            "reference_log_likelihood",
            "best_log_likelihood",
            "share_at_best",
            "n_optima",
            "n_iter_median",
            "n_iter_max",
        )
        if c in convergence.columns
    ]
    report.text(
        "Convergence table: one row per data replicate, engine, "
        "initialisation and model (n_components = K, covariance_type); "
        "reference_log_likelihood is the best eligible fit of that data and "
        "model. n_optima counts the distinct optima (log-likelihoods more than "
        f"{nats:g} nats apart) among the fits that converged under the "
        "sweep's stopping rule (status ok); it is blank for an arm run with "
        "its engine's own stopping rule (sklearn-defaults: where it stops "
        "early is not an optimum) and for posterior summaries."
    )
    report.table(convergence[columns])


def _data_label(values: dict, runs: pd.DataFrame) -> str:
    """'synthetic n=250': a data set and the parameters that vary in its series."""
    parts = [str(values["dataset"])]
    mine = runs[runs["dataset"] == values["dataset"]]
    for column, value in values.items():
        varies = column in mine and mine[column].nunique(dropna=False) > 1
        if column.startswith("p_") and pd.notna(value) and varies:
            shown = (
                int(value) if isinstance(value, float) and value.is_integer() else value
            )
            parts.append(f"{column.removeprefix('p_')}={shown}")
    return " ".join(parts)


def _same_params(frame: pd.DataFrame, values: dict) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for column, value in values.items():
        if column.startswith("p_") and column in frame:
            mask &= (frame[column] == value) | (frame[column].isna() & pd.isna(value))
    return mask


def _recovery(report: _Report, runs) -> None:
    report.heading("Parameter recovery against the truth")
    summary = recovery_summary(runs)
    if summary.empty:
        report.text("No data set in this sweep has a known truth.")
        return
    report.text(
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
    report.table(
        pd.DataFrame(
            {
                "data": [
                    _data_label(dict(zip(keys, row, strict=True)), runs)
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
        report.text(" ".join(_slope_sentences(slopes, runs)))
    _recovery_figure(report, runs)


_METRIC_NAMES = {
    "m_mean_rmse": "mean RMSE",
    "m_cov_frobenius": "covariance Frobenius error",
}


def _slope_sentences(slopes: pd.DataFrame, runs) -> list[str]:
    """One sentence per series over n, every number from ``slopes``."""
    sentences = []
    keys = ["dataset", *[c for c in data_columns(runs) if c in slopes]]
    series_keys = [*keys, "n_components", "covariance_type"]
    for key, series in slopes.groupby(series_keys, dropna=False, sort=False):
        values = dict(zip(series_keys, key, strict=True))
        first = series.iloc[0]
        label = _data_label({k: values[k] for k in keys}, runs)
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


def _recovery_figure(report: _Report, runs) -> None:
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
    series = list(fits.groupby([*keys, "estimator"], dropna=False, sort=True))
    fig, axes = _subplots(1, 2, figsize=(8, 3.2))
    for ax, metric in zip(axes, ("m_mean_rmse", "m_cov_frobenius"), strict=True):
        for key, group in series:
            estimator = key[-1]
            colour = "k" if estimator == MAXIMUM_LIKELIHOOD else _colour(estimator)
            label = estimator
            if len(series) > 1:
                values = dict(zip(keys, key[:-1], strict=True))
                label = f"{_data_label(values, runs)} K={int(values['n_components'])}"
                label += f" {values['covariance_type']}: {estimator}"
            medians = group.groupby("p_n")[metric].median()
            ax.scatter(group["p_n"], group[metric], color=colour, s=8, alpha=0.4)
            ax.plot(medians.index, medians.to_numpy(), "o-", color=colour, label=label)
        n = np.array(sorted(fits["p_n"].unique()), dtype=float)
        anchor = fits[fits["p_n"] == n[0]][metric].median()
        ax.plot(n, anchor * np.sqrt(n[0] / n), "k:", label="1/sqrt(n)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("n (nested samples of one truth per data replicate)")
        ax.set_ylabel(metric.removeprefix("m_"))
        ax.legend(fontsize=7)
    fig.suptitle("Recovery error of the data's maximum against n")
    fig.tight_layout()
    report.figure(fig, "recovery_vs_n", "Recovery error against n, log-log")


#: Engines whose point estimate summarises a posterior or its approximation.
def _matched_to(rows: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """A run's components-table rows, renumbered to match ``reference``'s.

    Rows of a fit with a known truth are already aligned to it (by
    :func:`experiments.evaluate.evaluate_fit`) and are returned unchanged;
    otherwise each keeps the engine's own order, so two fits' component
    ``k`` need not be the same component until matched (Hungarian, on the
    2-Wasserstein distance, :func:`mixtures.align.match_components`).
    """
    if rows.empty or reference.empty or rows["truth"].notna().any():
        return rows
    order = match_components(
        params_from_components(rows), params_from_components(reference)
    )
    renumber = {int(fitted): k for k, fitted in enumerate(order)}
    return rows.assign(component=rows["component"].map(renumber))


def _same_cell(runs: pd.DataFrame, run: pd.Series, keys: list[str]) -> pd.Series:
    """Rows of ``runs`` equal to ``run`` on ``keys`` (missing values match)."""
    mask = pd.Series(True, index=runs.index)
    for key in keys:
        value = run[key]
        mask &= runs[key].isna() if pd.isna(value) else runs[key] == value
    return mask


def _mle_in_hdi(runs, components) -> pd.DataFrame:
    """Per NUTS fit: how many of EM's estimates lie inside its 94% HDIs.

    EM's fit is the best eligible k-means fit of the same data and cell.
    Components are matched (to the truth in both, or to each other,
    :func:`_matched_to`), so component ``k`` is the same component in both.
    Intervals of zero width (the structural zeros of a diagonal or spherical
    covariance) are not counted. Beside the count, the prior's weight in each
    component: ``component_points`` (n_k of the MAP, in the matched order),
    ``prior_points`` (the points the prior adds to every MAP covariance,
    ``d_prior_points``) and ``prior_share_max`` (the largest share of a MAP
    covariance's scatter the prior supplies, ``d_prior_share_max``).
    """
    rows = []
    nuts = runs[(runs["backend"] == "pymc") & (runs["status"] != "failed")]
    keys = [
        "dataset",
        *data_columns(runs),
        "data_replicate",
        "n_components",
        "covariance_type",
    ]
    for _, run in nuts.iterrows():
        here = runs[
            _same_cell(runs, run, keys)
            & (runs["backend"] == "em")
            & (runs["init"] == "kmeans")
        ]
        em = best_eligible(here, ["dataset"])
        if em.empty:
            continue
        theirs = components[components["run_id"] == em.iloc[0]["run_id"]]
        mine = _matched_to(components[components["run_id"] == run["run_id"]], theirs)
        weights = mine[mine["parameter"] == "weight"].sort_values("component")
        conditioned = run.get("d_n_conditioned", np.nan)
        if pd.isna(conditioned):
            conditioned = run["n_samples"]
        component_points = (weights["map"] * conditioned).tolist()
        mine = mine[mine["hdi_high"] > mine["hdi_low"]]
        if mine.empty:
            continue
        merged = mine.merge(
            theirs[["component", "parameter", "i", "j", "estimate"]],
            on=["component", "parameter", "i", "j"],
            suffixes=("", "_em"),
        )
        inside = (merged["hdi_low"] <= merged["estimate_em"]) & (
            merged["estimate_em"] <= merged["hdi_high"]
        )
        rows.append(
            {
                "dataset": run["dataset"],
                "label": _data_label(
                    {key: run[key] for key in ["dataset", *data_columns(runs)]}, runs
                ),
                "run_id": run["run_id"],
                "status": run["status"],
                "n_conditioned": run.get("d_n_conditioned", np.nan),
                "n_samples": run["n_samples"],
                "parameters": len(merged),
                "em_inside_hdi": int(inside.sum()),
                "outside": ", ".join(
                    f"{r.parameter}[{r.component},{r.i},{r.j}]"
                    for r in merged[~inside].itertuples()
                ),
                "component_points": component_points,
                "prior_points": run.get("d_prior_points", np.nan),
                "prior_share_max": run.get("d_prior_share_max", np.nan),
            }
        )
    return pd.DataFrame(rows)


def _engines(report: _Report, runs, components, predictive) -> None:
    bayes = runs[posterior_fits(runs)]
    if bayes.empty:
        return
    report.heading("Likelihood and Bayesian views of the same data")
    report.text(
        "Five estimates of each data set's mixture. em: the maximum of the "
        "likelihood (best eligible k-means fit). MAP: the posterior mode under "
        "the Fraley-Raftery conjugate prior (inverse-Wishart covariances, "
        "data-scaled; MAP-EM, the best of 20 restarts, column "
        "map_log_likelihood). The prior is weak on the means but not always on "
        "the covariances: it adds d_prior_points points (2D + 4) to every MAP "
        "covariance, carrying a scatter of about one cluster's spread, and "
        "d_prior_share_max is the largest share of a MAP covariance's scatter "
        "that comes from the prior rather than the data; against a component "
        "of few points (n_k, given below wherever MAP or posterior meets EM) "
        "it dominates. pymc: the posterior mean of the same model sampled by "
        "NUTS (nutpie, labels resolved by Stephens' KL relabelling, never by "
        "matching to EM). Its d_chains chains are dealt round the distinct "
        "modes that the 20 MAP-EM restarts found (d_map_em_modes; a mode more "
        "than 10 nats of log posterior below the best gets no chain; "
        "d_chain_start_modes is how many the chains started in), each chain "
        "scattered about its mode by one component standard deviation on "
        "every mean, far wider than the posterior. So r-hat certifies that "
        "chains from those starts sample one distribution: where "
        "d_chain_start_modes is 1, mixing within the one mode every restart "
        "reached, not the absence of modes no start led to. pymc-advi: the "
        "same model by mean-field ADVI. sklearn-vb: scikit-learn's variational "
        "BayesianGaussianMixture (its own priors: Dirichlet-process weights, "
        "Wishart precisions). Every log-likelihood scores all n rows at the "
        "point estimate; the Bayesian fits condition on n_conditioned rows "
        "(all of them unless max_samples was set). elpd_loo and elpd_waic are "
        "PSIS-LOO and WAIC from ArviZ on the pointwise log-likelihood of "
        "thinned NUTS draws; a Pareto k above 0.7 makes LOO unreliable for "
        "that point. ADVI has none: its draws come from its approximation, "
        "not the posterior, and PSIS-LOO would treat them as posterior draws. "
        "d_ppc_bins_outside counts the data's histogram bars outside the "
        "simultaneous 94% band of replicated histograms (figure below), "
        "beside d_ppc_bins_outside_expected, the number expected outside "
        "under the model (of d_ppc_bins bars). "
        f"A NUTS fit is ok only with r-hat <= {MAX_R_HAT}, bulk ESS >= "
        f"{MIN_ESS_BULK:g} and "
        "no divergence after relabelling; when its first draws fail r-hat or "
        "ESS it samples afresh with twice the draws (d_sampling_attempts, "
        "d_draws per chain at the end), and if it still fails it is "
        "unconverged, with the reason. fits_ok counts an engine's seeds that "
        "ended ok (the row shows its first seed). sklearn-vb's "
        "d_effective_components counts the components holding more than half "
        "a data point: its Dirichlet-process prior empties the components the "
        "data do not need, and gmmlab's degeneracy rule then calls the "
        "K-component point estimate degenerate; "
        "for VB that is the prior at work, not a failed fit. ADVI is converged "
        "when its ELBO has no trend over its last 2,000 iterations "
        "(d_elbo_window_change, nats)."
    )
    columns = [
        c
        for c in (
            "dataset",
            *[c for c in data_columns(runs) if c in bayes],
            "backend",
            "status",
            "n_samples",
            "d_n_conditioned",
            "log_likelihood",
            "d_map_log_likelihood",
            "d_prior_points",
            "d_prior_share_max",
            "d_elpd_loo",
            "d_elpd_loo_se",
            "d_p_loo",
            "d_pareto_k_max",
            "d_pareto_k_bad",
            "d_n_loo",
            "d_elpd_waic",
            "d_ppc_bins_outside",
            "d_ppc_bins_outside_expected",
            "d_ppc_bins",
            "d_r_hat_max",
            "d_ess_bulk_min",
            "d_divergences",
            "d_chains",
            "d_map_em_modes",
            "d_chain_start_modes",
            "d_draws",
            "d_sampling_attempts",
            "d_relabelled_draws",
            "d_responsibility_sd_mean",
            "d_min_variance_ratio",
            "d_effective_components",
            "d_elbo_window_change",
            "d_compile_seconds",
            "d_sampling_seconds",
            "seconds",
            "status_reason",
        )
        if c in runs.columns
    ]
    views = []
    cell_keys = [
        "dataset",
        *data_columns(runs),
        "data_replicate",
        "n_components",
        "covariance_type",
    ]
    for _, cell in bayes.groupby(cell_keys, sort=True, dropna=False):
        here = runs[_same_cell(runs, cell.iloc[0], cell_keys)]
        em = best_eligible(here[here["backend"] == "em"], ["dataset"])
        if len(em):
            views.append(em.iloc[0].copy())
        for _, fits in cell.groupby("backend", sort=True):
            # One row per engine: its first seed, with how many of its seeds
            # ended ok (sklearn-vb runs every seed).
            row = fits.sort_values("seed").iloc[0].copy()
            row["fits_ok"] = f"{int((fits['status'] == 'ok').sum())}/{len(fits)}"
            views.append(row)
    views = pd.DataFrame(views)
    columns = [c for c in columns if c in views.columns]
    columns.insert(columns.index("status") + 1, "fits_ok")
    shown = views[columns].dropna(axis=1, how="all")
    report.table(shown)
    ties = bayes[bayes["backend"] == "pymc"]
    if "d_ppc_ties_observed" in ties and (ties["d_ppc_ties_observed"] > 0).any():
        tied = ties[ties["d_ppc_ties_observed"] > 0]
        report.text(
            "Posterior predictive check on tied values: "
            + "; ".join(
                f"{r.dataset} has {int(r.d_ppc_ties_observed)} rows equal to "
                "an earlier row; data sets replicated from the posterior"
                + (
                    f", rounded to the data's recording step {r.d_ppc_resolution:g},"
                    if pd.notna(getattr(r, "d_ppc_resolution", np.nan))
                    else " (the data are on no decimal grid of up to 6 places, so "
                    "replicates are not rounded)"
                )
                + f" have {r.d_ppc_ties_replicated:.1f} on average "
                f"(p = {r.d_ppc_ties_p:.2f}, the share of replicates with at "
                "least as many)"
                for r in tied.itertuples()
            )
            + ". Where p is near 0, the ties are not rounding: repeated values "
            "(copied or imputed) that a continuous mixture cannot produce. A "
            "maximum-likelihood component can collapse onto them; the posterior "
            "cannot, because the inverse-Wishart prior keeps every draw's "
            "variances away from zero (d_min_variance_ratio: the smallest "
            "variance in any draw over the data's variance of that feature)."
        )

    def prior_weight(points, prior_points, share) -> str:
        # The prior's strength against each component's own points, as
        # recorded by the fit (mixtures.backends.pymc.prior_strength).
        if pd.isna(prior_points) or not len(points):
            return ""
        counts = ", ".join(f"{p:.1f}" for p in points)
        return (
            f"; the prior adds {prior_points:g} points to each MAP covariance "
            f"against n_k = {counts} (components 0 to {len(points) - 1}), and up "
            f"to {100 * share:.2g}% of a MAP covariance's scatter is the prior's"
        )

    inside = _mle_in_hdi(runs, components)
    if len(inside):
        report.text(
            "Is EM's maximum-likelihood estimate inside PyMC's 94% HDI? "
            + "; ".join(
                f"{r.label}: {r.em_inside_hdi} of {r.parameters} parameters "
                f"(NUTS fit {r.status}, conditioned on {int(r.n_conditioned):,} of "
                f"{int(r.n_samples):,} rows"
                + (f"; outside: {r.outside}" if r.outside else "")
                + prior_weight(r.component_points, r.prior_points, r.prior_share_max)
                + ")"
                for r in inside.sort_values("label").itertuples()
            )
            + ". "
            + (
                "Every one is: the posterior concentrates around the "
                "likelihood's maximum, so the Bayesian and likelihood views "
                "agree on these data."
                if (inside["em_inside_hdi"] == inside["parameters"]).all()
                else "Where EM's estimate is outside, the prior or a different "
                "mode moves the posterior away from the likelihood's maximum; "
                "the side-by-side tables below show by how much."
            )
        )
    _predictive_figure(report, runs, predictive)
    first = runs[runs["data_replicate"] == 0]
    keys = ["dataset", *data_columns(runs)]
    for key, here in first.groupby(keys, dropna=False, sort=True):
        posterior = here[posterior_fits(here)]
        if posterior.empty:
            continue
        label = _data_label(dict(zip(keys, key, strict=True)), runs)
        # The Bayesian cell: the same K and covariance type for every column.
        cell = posterior.iloc[0]
        here = here[
            (here["n_components"] == cell["n_components"])
            & (here["covariance_type"] == cell["covariance_type"])
        ]
        posterior = here[posterior_fits(here)]
        chosen = []
        em = best_eligible(
            here[(here["backend"] == "em") & (here["init"] == "kmeans")], ["dataset"]
        )
        if len(em):
            chosen.append(em.iloc[0])
            twin = here[
                (here["backend"] == "sklearn")
                & (here["init"] == "kmeans")
                & (here["seed"] == em.iloc[0]["seed"])
            ]
            chosen.extend(row for _, row in twin.iterrows())
        # One column per Bayesian engine: its first seed (an engine with
        # several seeds, such as sklearn-vb, has one fit per seed).
        chosen.extend(
            row
            for _, row in posterior.sort_values(["backend", "seed"])
            .drop_duplicates("backend")
            .iterrows()
        )
        side = None
        weight = ""
        reference = (
            components[components["run_id"] == chosen[0]["run_id"]]
            if chosen
            else pd.DataFrame()
        )
        for run in chosen:
            rows = _matched_to(
                components[components["run_id"] == run["run_id"]], reference
            ).copy()
            if rows.empty:
                continue
            column = f"{run['backend']} ({run['status']})"
            rows[column] = rows["estimate"]
            keep = ["component", "parameter", "i", "j", "truth", column]
            if run["backend"] == "pymc" and "map" in rows:
                rows[f"{run['backend']} MAP"] = rows["map"]
                keep.append(f"{run['backend']} MAP")
                conditioned = run.get("d_n_conditioned", np.nan)
                weights = rows[rows["parameter"] == "weight"].sort_values("component")
                weight = prior_weight(
                    (
                        weights["map"]
                        * (run["n_samples"] if pd.isna(conditioned) else conditioned)
                    ).tolist(),
                    run.get("d_prior_points", np.nan),
                    run.get("d_prior_share_max", np.nan),
                )
            if run["backend"] == "pymc":
                rows[f"{column} 94% HDI"] = [
                    f"[{lo:.3g}, {hi:.3g}]"
                    for lo, hi in zip(rows["hdi_low"], rows["hdi_high"], strict=True)
                ]
                keep.append(f"{column} 94% HDI")
            rows = rows[keep]
            side = (
                rows
                if side is None
                else side.merge(
                    rows.drop(columns="truth"), on=["component", "parameter", "i", "j"]
                )
            )
        if side is not None:
            report.heading(label, level=3)
            report.table(side)
            if weight:
                report.text(
                    "The prior's weight in the MAP and pymc columns, in this "
                    "table's component order" + weight + "."
                )


def _predictive_figure(report: _Report, runs, predictive) -> None:
    """Posterior predictive density of each feature over the data's histogram."""
    if predictive is None or predictive.empty:
        return
    nuts = runs[(runs["backend"] == "pymc") & runs["run_id"].isin(predictive["run_id"])]
    panels = [
        (run, feature)
        for _, run in nuts.sort_values(["dataset", "run_id"]).iterrows()
        for feature in sorted(
            predictive.loc[predictive["run_id"] == run["run_id"], "feature"].unique()
        )
    ]
    if not panels:
        return
    ncols = min(3, len(panels))
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = _subplots(
        nrows, ncols, figsize=(4.2 * ncols, 3.0 * nrows), squeeze=False
    )
    for ax, (run, feature) in zip(axes.ravel(), panels, strict=False):
        here = predictive[
            (predictive["run_id"] == run["run_id"]) & (predictive["feature"] == feature)
        ]
        bars = here[here["kind"] == "histogram"]
        edges = np.append(bars["x"].to_numpy(), bars["right"].to_numpy()[-1:])
        # The band of replicated histograms, bin by bin, under the data's.
        ax.stairs(
            bars["high"].to_numpy(),
            edges,
            baseline=bars["low"].to_numpy(),
            fill=True,
            color="#999999",
            alpha=0.45,
            label="replicated histograms, simultaneous 94%",
        )
        ax.stairs(bars["mean"].to_numpy(), edges, color="black", lw=1.0, label="data")
        outside = (bars["mean"] < bars["low"]) | (bars["mean"] > bars["high"])
        if outside.any():
            ax.plot(
                (bars["x"] + bars["right"])[outside] / 2,
                bars["mean"][outside],
                "v",
                color="#d62728",
                markersize=4,
                label="bar outside",
            )
        curve = here[here["kind"] == "density"]
        colour = _colour("pymc")
        ax.fill_between(
            curve["x"],
            curve["low"],
            curve["high"],
            color=colour,
            alpha=0.3,
            label="predictive density, 94%",
        )
        ax.plot(
            curve["x"],
            curve["mean"],
            color=colour,
            lw=1.2,
            label="predictive density, mean",
        )
        params = {
            c.removeprefix("p_"): run[c] for c in data_columns(runs) if pd.notna(run[c])
        }
        extra = ", ".join(f"{k}={v}" for k, v in params.items() if k != "path")
        name = str(run["dataset"])
        if name.startswith("file:"):
            name = Path(name.removeprefix("file:")).name
        ax.set_title(
            f"{name}{' (' + extra + ')' if extra else ''}, "
            f"feature {feature} ({run['status']}): "
            f"{int(outside.sum())} of {len(bars)} bars outside",
            fontsize=8,
        )
        ax.set_ylabel("density")
    for ax in axes.ravel()[len(panels) :]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=7)
    fig.suptitle("Posterior predictive check: each feature's marginal density")
    fig.tight_layout()
    counts = [
        f"{_data_label({k: run[k] for k in ['dataset', *data_columns(runs)]}, runs)}"
        f": {int(run['d_ppc_bins_outside'])} of {int(run['d_ppc_bins'])} bars "
        f"outside, {run['d_ppc_bins_outside_expected']:.2f} expected"
        for _, run in nuts.drop_duplicates("run_id").iterrows()
        if pd.notna(run.get("d_ppc_bins_outside_expected", np.nan))
    ]
    totals = f" Over these panels, {'; '.join(counts)}." if counts else ""
    report.figure(
        fig,
        "posterior_predictive",
        "Posterior predictive check of each feature (NUTS). Black steps: the "
        "data's histogram; grey band: a simultaneous 94% band of replicated "
        "histograms of n points drawn from the posterior (so it includes the "
        "sampling noise of n points): 94% of replicated histograms lie inside "
        "it at every bar at once. A pointwise 94% band would leave about 6% "
        "of the bars outside by chance, several when a feature has dozens; "
        "under the model, all of a feature's bars lie inside this band 94% of "
        "the time, and the table above gives the number expected outside "
        "(d_ppc_bins_outside_expected) beside the data's (d_ppc_bins_outside). "
        "Red marks: bars outside the band, evidence against the model only "
        "where they outnumber that expectation. The data were used to fit the "
        "model, so they fall outside less often than fresh replicates would."
        + totals
        + " Line and green band: the posterior predictive density (mean and "
        "3%-97% over draws).",
    )


# ---------------------------------------------------------------------------
# The five scenarios


def _run_data(run, runs):
    """Regenerate the data a recorded run was fitted to."""
    values = {
        c.removeprefix("p_"): run[c]
        for c in data_columns(runs)
        if c != "p_path" and pd.notna(run[c])
    }
    values = {
        k: (int(v) if isinstance(v, float) and v.is_integer() else v)
        for k, v in values.items()
    }
    return load_dataset(run["dataset"], seed=int(run["data_seed"]), **values)


def _run_params(run, components) -> MixtureParams:
    return params_from_components(components[components["run_id"] == run["run_id"]])


def _chosen_on(runs, dataset, **params):
    """choose_model on the first data replicate of one data set, or None."""
    mask = (runs["dataset"] == dataset) & (
        runs["data_replicate"] == runs["data_replicate"].min()
    )
    for column, value in params.items():
        mask &= runs[f"p_{column}"] == value
    group = runs[mask]
    if group.empty:
        return None
    try:
        return choose_model(group)
    except ValueError:
        return None


def _share(convergence, dataset, backend, init, *, cell=None, **params) -> float:
    """Median share of seeds at best of one cell (``cell``: a chosen run)."""
    mask = (
        (convergence["dataset"] == dataset)
        & (convergence["backend"] == backend)
        & (convergence["init"] == init)
    )
    if cell is not None:
        mask &= (convergence["n_components"] == cell["n_components"]) & (
            convergence["covariance_type"] == cell["covariance_type"]
        )
    for column, value in params.items():
        mask &= convergence[f"p_{column}"] == value
    values = convergence.loc[mask, "share_at_best"]
    return float(values.median()) if len(values) else float("nan")


def _scenarios(report: _Report, runs, components, convergence, checks) -> None:
    present = set(runs["dataset"])
    if not present & {"s1", "s2", "s3", "s4", "s5"}:
        return
    report.heading("The five write-ups, answered")
    report.text(
        "Each section states a write-up's question (shared/scenarios.md) and "
        "answers it from this sweep's tables; where the write-up gave numbers, "
        "ours stand beside them."
    )
    for name, section in (
        ("s1", _scenario_s1),
        ("s2", _scenario_s2),
        ("s3", _scenario_s3),
        ("s4", _scenario_s4),
        ("s5", _scenario_s5),
    ):
        if name in present:
            section(report, runs, components, convergence, checks)


def _scenario_s1(report, runs, components, convergence, checks) -> None:
    report.heading("S1: a 1-D series, three clusters, k-means against random starts", 3)
    s1 = runs[runs["dataset"] == "s1"]
    series = scenarios.S1_SERIES
    chance = duplicate_start_probability(series, scenarios.S1_K)
    repeated = int(np.max(np.unique(series, return_counts=True)[1]))
    report.text(
        "Question: why does my EM return mostly zeros, and why do random "
        "starts end with all three means at 44.43? The write-up's code ran "
        "here (experiments/writeups/): s1-sd-as-variance passes the standard "
        "deviation where the density expects the variance; s1-wrong-axis "
        "normalises responsibilities over the samples instead of the "
        "components; s1-fixed is the corrected code (100 iterations, no "
        "stopping rule, so it is 'unconverged' by definition even when it has "
        "arrived). Each started from the engines' start of the same seed "
        "made fair (experiments/starts.py, fair_start): the same weights and "
        "means, but where the engines' start gives a component one data point "
        "(every random-point start), and so a variance of reg_covar, the code "
        f"gets the data's variance, {series.var():.4g}, as the write-up's fix "
        "takes its variances from the data. A plain EM that computes densities "
        "(not their logarithms), as the write-up's does, cannot start from a "
        "variance of reg_covar: its first E-step underflows to 0/0 for every "
        "point not next to a start mean, and every fit ends in NaN."
    )
    outcomes = arm_outcomes(s1)
    report.table(_outcome_table(outcomes), digits=6)
    starts = {"kmeans": "k-means", "random_from_data": "random-point"}
    reference = reference_log_likelihood(s1)
    best = float(reference.max())
    at_best = (s1["log_likelihood"] - reference).abs() <= SAME_OPTIMUM_NATS
    sound = s1["status"].isin(["ok", "unconverged"])
    identical = s1["status_reason"].fillna("").str.contains("same Gaussian")

    def outcome(arm, where):
        """What one arm did from one kind of start, as one sentence."""
        parts = []
        if (arm["status"] != "failed").any():
            parts.append(
                f"{int(at_best[arm.index].sum())} of {len(arm)} reach the best "
                f"optimum ({best:.2f})"
            )
        twins = arm[identical[arm.index]]
        if len(twins):
            shared = set()
            for _, run in twins.iterrows():
                values, counts = np.unique(
                    np.round(_run_params(run, components).means[:, 0], 2),
                    return_counts=True,
                )
                shared.update(values[counts > 1].tolist())
            parts.append(
                f"{len(twins)} end with two identical components, both at "
                + ", ".join(f"{m:.2f}" for m in sorted(shared))
                + (
                    ": their start drew one value twice"
                    if (arm["init"] == "random_from_data").all()
                    else ""
                )
                + (
                    f" (a chance of {chance:.1%} per start; "
                    f"{chance * len(arm):.1f} expected in {len(arm)})"
                    if (arm["init"] == "random_from_data").all()
                    and (arm["backend"] == "s1-fixed").all()
                    else ""
                )
            )
        lower = arm[sound[arm.index] & ~at_best[arm.index]].sort_values(
            "log_likelihood", ascending=False
        )
        while len(lower):
            value = lower["log_likelihood"].iloc[0]
            same = (lower["log_likelihood"] - value).abs() <= SAME_OPTIMUM_NATS
            engines_there = (
                eligible(s1)
                & ((s1["log_likelihood"] - value).abs() <= SAME_OPTIMUM_NATS)
            ).any()
            means = np.sort(_run_params(lower.iloc[0], components).means[:, 0])
            parts.append(
                f"{int(same.sum())} stop at {value:.2f}, {best - value:.2f} nats "
                "below (means "
                + ", ".join(f"{m:.2f}" for m in means)
                + (
                    "; a local maximum where the engines also stop from some starts)"
                    if engines_there
                    else ")"
                )
            )
            lower = lower[~same]
        failed = arm.loc[arm["status"] == "failed", "status_reason"]
        if len(failed):
            reason = failed.mode().iloc[0].removeprefix("ValueError: ").rstrip(".")
            parts.append(f"{len(failed)} end in an invalid mixture ({reason})")
        else:
            parts.append("none ends in an invalid mixture")
        return f"{where}: " + "; ".join(parts) + "."

    for backend in ("s1-sd-as-variance", "s1-wrong-axis", "s1-fixed"):
        arm = s1[s1["backend"] == backend]
        sentences = [
            outcome(arm[arm["init"] == init], f"{backend} from {label} starts")
            for init, label in starts.items()
            if (arm["init"] == init).any()
        ]
        if not sentences:
            continue
        reasons = arm["status_reason"].fillna("")
        if backend == "s1-sd-as-variance":
            sentences.append(
                "The standard-deviation bug changes the update itself: what it "
                "iterates is not EM for this model, so it stops where its own "
                "update does, below the likelihood's maximum."
            )
        if reasons.str.contains("not a distribution").any():
            sentences.append(
                "Responsibilities normalised over the samples sum to one per "
                "component, so each weight is 1/n and the weights sum to K/n = "
                f"{scenarios.S1_K}/{series.size} = "
                f"{scenarios.S1_K / series.size:.2g}: the write-up's 'mostly zeros'."
            )
        pairs = arm[identical[arm.index]].merge(
            s1[s1["backend"] == "em"], on=["init", "fit_seed"], suffixes=("", "_em")
        )
        if backend == "s1-fixed" and len(pairs):
            separated = (pairs["status_em"] == "ok") & (
                (pairs["log_likelihood_em"] - best).abs() <= SAME_OPTIMUM_NATS
            )
            actions = int(pairs.get("d_degenerate_events_em", 0).fillna(0).sum())
            sentences.append(
                "A plain EM never separates two components started at one "
                "point (below); gmmlab's EM, from the same seeds (the same "
                f"means), re-seeds the twin ({actions} re-seeding or flooring "
                f"actions on those fits), and {int(separated.sum())} of those "
                f"{len(pairs)} seeds reach the best optimum."
            )
        report.text(" ".join(sentences))
    sentences = [
        f"The series has {series.size} values, {repeated} of them the same "
        f"value 44.4457. Random-point initialisation draws {scenarios.S1_K} "
        f"distinct rows, and with probability {chance:.1%} two of them are the "
        "same point (exact: 1 - e_3(counts) / C(50, 3) over the counts of "
        "each distinct value). Two components started at one point with one "
        "covariance receive identical responsibilities at every step: EM can "
        "never separate them."
    ]
    random_sklearn = s1[
        (s1["backend"] == "sklearn") & (s1["init"] == "random_from_data")
    ]
    twins = int(random_sklearn["status_reason"].str.contains("same Gaussian").sum())
    collapsed = int(
        random_sklearn["status_reason"].str.contains("relative variance").sum()
    )
    random_em = s1[(s1["backend"] == "em") & (s1["init"] == "random_from_data")]
    if len(random_sklearn):
        sentences.append(
            f"Here, of {len(random_sklearn)} random starts, scikit-learn ended "
            f"{twins} with two identical components and {collapsed} with a "
            "component collapsed onto the tied values (variance below 1e-6 of "
            "the data's); all are classified degenerate."
        )
    if len(random_em) and "d_degenerate_events" in random_em:
        events = int(random_em["d_degenerate_events"].fillna(0).sum())
        bad = int((random_em["status"] != "ok").sum())
        sentences.append(
            f"gmmlab's EM, from the same starts, re-seeds a duplicate or empty "
            f"component and floors a collapsing one ({events} such actions over "
            f"{len(random_em)} fits); {bad} fits still end degenerate, because "
            "the likelihood keeps rising towards the collapse."
        )
    shares = {
        (backend, init): _share(convergence, "s1", backend, init)
        for backend in ("em", "sklearn")
        for init in ("kmeans", "random_from_data")
    }
    sentences.append(
        "Share of seeds at the best optimum on this fixed series: "
        + ", ".join(
            f"{backend} {init.replace('_', ' ')} {share:.0%}"
            for (backend, init), share in shares.items()
            if share == share
        )
        + "."
    )
    report.text(" ".join(sentences))
    chosen = _chosen_on(runs, "s1")
    if chosen is not None:
        ours = _run_params(chosen, components)
        beside = reported_beside_ours(
            ours, scenarios.S1_REPORTED_MEANS, scenarios.S1_REPORTED_VARIANCES
        )
        gaps = (beside["mean"] - beside["reported mean"]).abs()
        close = beside[gaps <= 0.1]
        apart = beside[gaps > 0.1]
        text = (
            "The write-up's fixed code (k-means start) reported the means and "
            "variances below; beside them, the chosen fit "
            f"({chosen['backend']}, log-likelihood {chosen['log_likelihood']:.2f}). "
            f"{len(close)} of {len(beside)} means agree within 0.1"
        )
        if len(apart):
            row = apart.iloc[0]
            text += (
                f"; the write-up's component at {row['reported mean']:g} "
                f"(variance {row['reported variance']:g}) is, in the best fit, a "
                f"broad component at {row['mean']:.2f} (variance "
                f"{row['variance']:.3g}) covering the scattered middle values"
            )
        theirs = best_log_likelihood_over_weights(
            series, scenarios.S1_REPORTED_MEANS, scenarios.S1_REPORTED_VARIANCES
        )
        text += (
            ". The write-up did not report its weights; with its means and "
            "variances, the best any weights can do is a log-likelihood of "
            f"{theirs['log_likelihood']:.1f}, "
            f"{chosen['log_likelihood'] - theirs['log_likelihood']:.0f} nats below "
            f"the best fit, and {theirs['n_unexplained']} of the {series.size} "
            "values get a density below 1e-10: three narrow components cannot "
            "explain the scattered values between 26 and 43. The reported "
            "answer is not a maximum of the likelihood, which suggests a bug "
            "was still present, or the numbers were taken before convergence."
        )
        report.text(text)
        report.table(beside, digits=5)


def _outcome_table(outcomes: pd.DataFrame) -> pd.DataFrame:
    """arm_outcomes with readable column names."""
    return pd.DataFrame(
        {
            "engine or code": outcomes["backend"],
            "start": outcomes["init"].str.replace("_", " "),
            "fits": outcomes["n_runs"],
            **{status: outcomes[f"n_{status}"] for status in STATUSES},
            "best log-lik (not degenerate)": outcomes["best_log_likelihood"],
            "median iterations": outcomes["median_iterations"],
            "median seconds": outcomes["median_seconds"],
            "typical reason": outcomes["reason"],
        }
    )


def _scenario_s2(report, runs, components, convergence, checks) -> None:
    report.heading("S2: the four-cluster homework, its five questions", 3)
    chosen = _chosen_on(runs, "s2")
    if chosen is None:
        return
    s2 = runs[
        (runs["dataset"] == "s2")
        & (runs["n_components"] == 4)
        & (runs["covariance_type"] == "full")
    ]
    iterations = s2[s2["backend"] == "em"].groupby("init")["n_iter"].median()
    report.text(
        "(1) The log-likelihood against the iteration: the 's2' figure under "
        "Log-likelihood traces, as the distance to the best optimum. "
        f"k-means starts took a median of "
        f"{iterations.get('kmeans', np.nan):g} iterations, random starts "
        f"{iterations.get('random_from_data', np.nan):g}."
    )
    rows = components[components["run_id"] == chosen["run_id"]]
    table = rows.pivot_table(
        index="component", columns=["parameter", "i", "j"], values=["estimate", "truth"]
    )

    def entries(kind, parameter, indices):
        """One text cell per component: the given entries of a parameter."""
        columns = [table[(kind, parameter, i, j)] for i, j in indices]
        return [
            ", ".join(f"{v:.5f}" for v in values)
            for values in zip(*columns, strict=True)
        ]

    mean, covariance = [(0, 0), (1, 0)], [(0, 0), (0, 1), (1, 1)]
    shown = pd.DataFrame(
        {
            "weight": table[("estimate", "weight", 0, 0)],
            "homework weight": table[("truth", "weight", 0, 0)],
            "mean": [f"({v})" for v in entries("estimate", "mean", mean)],
            "homework mean": [f"({v})" for v in entries("truth", "mean", mean)],
            "covariance (xx, xy, yy)": entries("estimate", "covariance", covariance),
            "homework covariance": entries("truth", "covariance", covariance),
        }
    ).reset_index()
    report.text(
        f"(2) The learned parameters (chosen fit: {chosen['backend']}, K = 4 "
        f"full, log-likelihood {chosen['log_likelihood']:.2f}), beside the "
        "homework's, which generated our data:"
    )
    report.table(shown, digits=5)
    report.text(
        "(3) 500 points coloured by assigned component, with 1- and 2-sigma "
        "ellipses: the 's2' figure under The fitted mixtures."
    )
    ok = s2[(s2["backend"] == "em") & (s2["status"] == "ok")]
    optima = np.sort(ok["log_likelihood"].round(2).unique())[::-1]
    kmeans = _share(convergence, "s2", "em", "kmeans", cell=chosen)
    random = _share(convergence, "s2", "em", "random_from_data", cell=chosen)
    report.text(
        "(4) Initialisation: on this one data set, k-means starts reached the "
        f"best optimum in {kmeans:.0%} of seeds and random-point starts in "
        f"{random:.0%}; the "
        "distinct end points of gmmlab's EM were "
        f"{', '.join(f'{v:.2f}' for v in optima[:4])}. "
        "The homework's own start (means from random integers in {0, 1}, "
        "identity covariances), with the engines under the sweep's rule and "
        "with the homework's code and rule (|change of the total "
        "log-likelihood| < 0.01 after at least 5 iterations):"
    )
    outcomes = arm_outcomes(s2[s2["backend"].isin(["em", "sklearn", "homework"])])
    report.table(_outcome_table(outcomes), digits=7)
    homework = outcomes[outcomes["backend"] == "homework"]
    if len(homework) and not np.isfinite(homework.iloc[0]["best_log_likelihood"]):
        row = homework.iloc[0]
        report.text(
            f"Every one of the {int(row['n_runs'])} runs of the homework's code "
            f"from its own start ended degenerate ({row['reason']}): see (5) "
            "below."
        )
    elif len(homework):
        row = homework.iloc[0]
        short = float(chosen["log_likelihood"]) - row["best_log_likelihood"]
        cause = (
            "its |change| < 0.01 rule stops it that early"
            if short < 1.0
            else "its start, not its stopping rule: see (5) below"
        )
        report.text(
            f"The homework's code from its own start: its best run ends "
            f"{short:.3f} nats below the best fit after a median of "
            f"{row['median_iterations']:g} iterations ({cause})."
        )
    data = _run_data(chosen, runs)
    spread = sampling_spread(data.X, data.truth)
    report.text(
        "(5) What -1946 means: the homework's best run reached a total "
        "log-likelihood of about -1946 on its own 5,000 points, which are "
        "lost; ours are a new sample from the parameters it learned. Those "
        f"parameters score our sample at {spread['log_likelihood']:.2f}, and "
        f"our best fit reaches {chosen['log_likelihood']:.2f}. A total "
        "log-likelihood varies from sample to sample by about "
        f"{spread['spread']:.0f} nats (standard deviation) at this n, so "
        f"-1946 and {chosen['log_likelihood']:.0f} are the same answer on "
        "different samples."
        if len(optima)
        else ""
    )
    homework = s2[s2["backend"] == "homework"]
    if len(homework):
        chance = distinct_corner_probability(4, 2)
        ends = np.sort(homework["log_likelihood"].dropna().round(0).unique())[::-1]
        twins = s2[(s2["backend"] == "sklearn") & (s2["init"] == "homework")]
        identical = int(twins["status_reason"].str.contains("same Gaussian").sum())
        report.text(
            "The homework's -2000 and -3000 runs: its start draws the four "
            "means from random integers in {0, 1}, i.e. from the 4 corners of "
            f"the unit square, and all four differ with probability only "
            f"{chance:.1%} (4!/4^4). Two components that start on one corner "
            "with one covariance get identical responsibilities forever. Here "
            f"the homework's own code, from {len(homework)} such starts, ended "
            f"at {', '.join(f'{v:.0f}' for v in ends)}; scikit-learn from the "
            f"same starts kept identical components in {identical} of "
            f"{len(twins)} fits (classified degenerate), while gmmlab's EM "
            "re-seeds a duplicate and reached the best optimum in "
            f"{_share(convergence, 's2', 'em', 'homework', cell=chosen):.0%} "
            "of them."
        )


def _scenario_s3(report, runs, components, convergence, checks) -> None:
    report.heading("S3: why the sum of my Gaussians does not match score_samples", 3)
    chosen = _chosen_on(runs, "s3")
    if chosen is None:
        return
    params = _run_params(chosen, components)
    x = S3_NEW_POINT
    at: dict[str, Any] = point_density(params, x)
    low, high = S3_INTERVAL
    probability = interval_probability(params, low, high)
    asker = unnormalised_curve_at(params, x)
    report.text(
        f"score_samples returns the log of a density, not a probability: at "
        f"the new point x = {x:g} the chosen fit ({chosen['backend']}, "
        f"log-likelihood {chosen['log_likelihood']:.2f}) gives log density "
        f"{at['log_density']:.4f}, so density {at['density']:.4f} per unit of "
        "x. A density can exceed 1 (this mixture peaks near 1.8); the "
        "probability of any single point is 0. Probabilities belong to "
        f"intervals: P({low:g} < X <= {high:g}) = {probability:.4f}, the "
        "weighted sum of each component's normal CDF difference. The density "
        "is the sum of the components' contributions w_k N(x | m_k, s_k^2):"
    )
    order = np.argsort(params.means[:, 0])
    report.table(
        pd.DataFrame(
            {
                "component (by mean)": np.arange(params.n_components),
                "weight": params.weights[order],
                "mean": params.means[order, 0],
                "sd": np.sqrt(params.full_covariances()[order, 0, 0]),
                f"contribution at x = {x:g}": at["contributions"][order],
                "membership probability": at["membership"][order],
            }
        ),
        digits=5,
    )
    report.text(
        "Why each component's curve is normalised on its own: the asker "
        "summed unnormalised bumps w_k exp(-(x - m_k)^2 / 2 s_k^2) and "
        "rescaled the sum over the plotting grid. A bump's area is "
        "w_k s_k sqrt(2 pi), so the narrow component (sd "
        f"{np.sqrt(params.full_covariances()[:, 0, 0]).min():.3f}) is "
        "under-weighted against the wide ones. At x = "
        f"{x:g} the asker's curve is {asker:.4f} against the true "
        f"{at['density']:.4f}. Normalise each component, then weight and sum: "
        "that is exp(score_samples), as in the 's3' figure under The fitted "
        "mixtures."
    )


def _scenario_s4(report, runs, components, convergence, checks) -> None:
    report.heading("S4: loops against vectorised code", 3)
    s4 = runs[(runs["dataset"] == "s4") & (runs["status"] != "failed")]
    timing = s4[~posterior_fits(s4)].groupby("backend")[["seconds", "n_iter"]].median()
    parts = [
        f"{backend} {row.seconds * 1e3:.1f} ms ({row.n_iter:g} iterations)"
        for backend, row in timing.iterrows()
    ]
    report.text(
        "The lecture timed its Python-loop EM at 13.9 s and vectorised "
        "versions at about 22 ms, on its own hardware. On this machine, the "
        "median whole fit on the same 1,000 points under the sweep's "
        "stopping rule: " + ", ".join(parts) + " (Run time table)."
    )
    same_start = s4[s4["init"] == "lecture"]
    outcomes = arm_outcomes(same_start)
    if len(outcomes):
        report.text(
            "From the lecture's own start (random weights, means uniform in "
            "[0, 1)^2, identity covariances), the same parameters for every "
            "implementation, the lecture's loop code as written (a scipy "
            "multivariate_normal built for every point, component and "
            "iteration) against the engines:"
        )
        report.table(_outcome_table(outcomes), digits=6)
        loops = outcomes[outcomes["backend"] == "lecture-loops"]
        engine = outcomes[outcomes["backend"] == "em"]
        if len(loops) and len(engine):
            slow, fast = loops.iloc[0], engine.iloc[0]
            report.text(
                f"Here the loops take {slow['median_seconds']:.2f} s "
                f"({slow['median_iterations']:g} iterations, ending "
                f"{fast['best_log_likelihood'] - slow['best_log_likelihood']:.4f} "
                "nats short under the lecture's |change| < 0.01 rule) and "
                f"gmmlab's EM {fast['median_seconds'] * 1e3:.1f} ms "
                f"({fast['median_iterations']:g} iterations, to the sweep's "
                f"rule): {slow['median_seconds'] / fast['median_seconds']:,.0f} "
                "times faster on this machine. The lecture's 13.9 s and 22 ms "
                "were measured on other hardware; only the ratio travels."
            )


def _scenario_s5(report, runs, components, convergence, checks) -> None:
    report.heading("S5: the blog's min-max scaling", 3)
    scaled = _chosen_on(runs, "s5", scaled=True) if "p_scaled" in runs else None
    raw = _chosen_on(runs, "s5", scaled=False) if "p_scaled" in runs else None
    if scaled is None or raw is None:
        report.text("This sweep did not fit S5 both scaled and unscaled.")
        return
    raw_data = _run_data(raw, runs)
    low, span = raw_data.X.min(axis=0), np.ptp(raw_data.X, axis=0)
    check = affine_check(
        _run_params(scaled, components),
        _run_params(raw, components),
        low,
        span,
        float(scaled["log_likelihood"]),
        float(raw["log_likelihood"]),
        raw_data.X.shape[0],
    )
    smallest = float(
        np.min(np.linalg.eigvalsh(_run_params(scaled, components).full_covariances()))
    )
    report.text(
        "Min-max scaling is an affine map, and maximum likelihood is "
        "equivariant under it: the best fit on scaled data maps to the best "
        "fit on raw data (the same sample). Here the weights differ by at "
        f"most {check['weights']:.1e}, the means by {check['means']:.1e} and the "
        f"covariances by {check['covariances']:.1e} (relative to the span), "
        "and the log-likelihoods differ by "
        f"{check['log_likelihood_difference']:.4f} nats against the log-Jacobian "
        f"n sum(log span) = {check['log_jacobian']:.4f}. Scaling can matter "
        "only through what is not equivariant: the start, and scikit-learn's "
        f"absolute reg_covar = 1e-6 (here {1e-6 / smallest:.1e} of the smallest "
        "scaled variance: negligible)."
    )
    rows = []
    for scaled_flag in (True, False):
        for backend in ("em", "blog"):
            share = _share(convergence, "s5", backend, "blog", scaled=scaled_flag)
            if share == share:
                rows.append(
                    {
                        "features": "min-max scaled" if scaled_flag else "raw",
                        "engine or code": backend,
                        "share of blog starts at the best optimum": share,
                    }
                )
    if rows:
        shares = pd.DataFrame(rows)
        report.text(
            "The blog's start (means uniform in [0, 1)^2, identity covariances, "
            "weights 1/2) on scaled and on raw features, with gmmlab's EM and "
            "with the blog's own loop (100 iterations):"
        )
        report.table(shares, digits=3)
        ranges = ", ".join(
            f"[{lo:.2f}, {hi:.2f}]" for lo, hi in zip(low, low + span, strict=True)
        )
        inside = bool(np.all(low <= 0) and np.all(low + span >= 1))
        em_shares = shares[shares["engine or code"] == "em"].set_index("features")[
            "share of blog starts at the best optimum"
        ]
        gap = abs(
            em_shares.get("min-max scaled", np.nan) - em_shares.get("raw", np.nan)
        )
        report.text(
            f"The raw features span {ranges}, so [0, 1)^2 lies "
            + ("inside" if inside else "partly outside")
            + " the raw data: the blog's start is "
            + ("a start inside the data either way" if inside else "not")
            + f", and here the shares differ by {gap:.0%} "
            + (
                "(within one or two seeds: no effect of scaling on this data). "
                "Scaling the features first matters for data far from [0, 1)^D, "
                "where such a start puts every mean outside the data."
                if gap <= 0.2
                else "."
            )
        )
    if checks is not None and len(checks):
        early = checks[checks["target"].str.contains("early_return")]
        if len(early):
            report.text(
                "The blog's published bug (the return inside the loop, so one "
                "iteration) is what gmmlab check reports, recorded by this sweep "
                f"({early['target'].iloc[0]}):"
            )
            report.table(early[["check", "result", "evidence", "diagnosis"]])


def _timing(report: _Report, runs) -> None:
    report.heading("Run time")
    report.text(
        "Every fit that ran to the end, whatever its status (time spent on an "
        "unconverged or degenerate fit is still time spent)."
    )
    ok = runs[runs["status"] != "failed"].copy()
    ok["seconds_per_iteration"] = ok["seconds"] / ok["n_iter"].clip(lower=1)
    table = (
        ok.groupby(["dataset", "backend"], sort=True)
        .agg(
            fits=("seconds", "size"),
            median_seconds=("seconds", "median"),
            median_seconds_per_iteration=("seconds_per_iteration", "median"),
        )
        .reset_index()
    )
    report.table(table)
    fig, ax = _subplots(figsize=(9, 3.2))
    datasets = sorted(ok["dataset"].unique())
    engines = sorted(ok["backend"].unique())
    width = 0.8 / max(1, len(engines))
    for e, engine in enumerate(engines):
        values = [
            table[(table.dataset == d) & (table.backend == engine)][
                "median_seconds"
            ].sum()
            or np.nan
            for d in datasets
        ]
        ax.bar(
            np.arange(len(datasets)) + e * width,
            values,
            width,
            color=_colour(engine),
            label=engine,
        )
    ax.set_xticks(np.arange(len(datasets)) + 0.4 - width / 2)
    ax.set_xticklabels(datasets)
    ax.set_yscale("log")
    ax.set_ylabel("median seconds per fit")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("Fit time per engine")
    fig.tight_layout()
    report.figure(fig, "timing", "Median fit time per engine (log scale)")


def _model_search(report: _Report, table: pd.DataFrame, points) -> None:
    """The BIC table of ``gmmlab fit``'s search over covariance models x K."""
    report.heading("Model search: covariance models x K (BIC, as mclust)")
    top = top_models(table, 3, "bic")
    counts = table["status"].value_counts()
    flagged = table[table["status"] != "ok"]
    prior = bool(table["prior"].iloc[0]) if "prior" in table else False
    report.text(
        f"{len(table)} cells: {table['model'].nunique()} covariance models x K = "
        f"{table['n_components'].min()}..{table['n_components'].max()}, each fitted "
        "from the hierarchical start (Fraley 1998) and seeded k-means starts, "
        + (
            "by MAP-EM with the Fraley & Raftery (2007) prior. "
            if prior
            else "by maximum likelihood. "
        )
        + "BIC = -2 log L + p log n, lower is better (mclust reports minus this). "
        "The rule: a cell whose best fit is degenerate (a spike on tied values, "
        "fewer than D + 1 effective points, duplicated components, or a repair "
        "still in force), unconverged or failed is never chosen. "
        + ", ".join(f"{int(counts[s])} {s}" for s in counts.index)
        + "."
    )
    if not top.empty:
        best = top.iloc[0]
        if prior:
            report.text(
                "The sections after this one (the engine cross-check at the "
                "chosen model) are maximum-likelihood fits: scikit-learn has "
                "no prior, so their log-likelihoods are slightly higher than "
                "the MAP fit's below."
            )
        report.text(
            f"Chosen: {best['model']} with K = {int(best['n_components'])}, BIC "
            f"{best['bic']:.2f}, log-likelihood {best['log_likelihood']:.3f}, ICL "
            f"{best['icl']:.2f}."
        )
        # How the engine cross-check compares, and whether its higher maximum
        # was adopted: gmmlab fit's own sentences, as printed.
        note = best.get("chosen_note")
        if isinstance(note, str) and note:
            report.text(note)
        report.table(
            top[
                [
                    "model",
                    "n_components",
                    "log_likelihood",
                    "n_parameters",
                    "bic",
                    "icl",
                    "start",
                ]
            ].rename(columns={"n_components": "K"}),
            digits=6,
        )
    if not flagged.empty:
        report.text(
            "Flagged cells (never chosen), with the reason of their best start:"
        )
        report.table(
            flagged[
                ["model", "n_components", "status", "log_likelihood", "bic", "reason"]
            ].rename(columns={"n_components": "K"}),
            digits=6,
        )
    fig, ax = _subplots(1, 1, figsize=(9, 4.6))
    markers = "os^Dv<>p*hH8dP"
    for index, (model, cells) in enumerate(table.groupby("model", sort=False)):
        ok = cells[cells["status"] == "ok"]
        ax.plot(
            ok["n_components"],
            ok["bic"],
            color=matplotlib.colormaps["tab20"](index % 20),
            marker=markers[index % len(markers)],
            markersize=4,
            linewidth=1,
            label=model,
        )
    if not flagged.empty:
        ax.scatter(
            flagged["n_components"],
            flagged["bic"],
            marker="x",
            color="k",
            s=30,
            zorder=3,
            label="flagged (never chosen)",
        )
    if not top.empty:
        ax.scatter(
            top["n_components"].iloc[:1],
            top["bic"].iloc[:1],
            s=180,
            facecolors="none",
            edgecolors="k",
            zorder=4,
            label="chosen",
        )
        # Zoom on the competitive models: three in four models' best K are
        # on the plot; models far worse leave it at the top.
        low = float(top["bic"].iloc[0])
        ok_cells = table[(table["status"] == "ok") & np.isfinite(table["bic"])]
        best_per_model = ok_cells.groupby("model")["bic"].min()
        span = 1.5 * (float(best_per_model.quantile(0.75)) - low) + 10.0
        ax.set_ylim(low - 0.05 * span, low + span)
    ax.set_xlabel("number of components K")
    ax.set_ylabel("BIC (lower is better)")
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    report.figure(
        fig,
        "model_search_bic",
        "BIC of every covariance model over K; lines join ok cells, crosses "
        "mark flagged ones; models far worse than the best leave the top",
    )
    if points is not None and not points.empty:
        _uncertainty_figure(report, points)
        _chosen_fit(report, table, points)
        if "label" in points:
            _label_agreement(report, table, points)


def _chosen_fit(report: _Report, table: pd.DataFrame, points: pd.DataFrame) -> None:
    """``gmmlab fit``'s chosen fit, drawn from the parameters it recorded.

    The fit of the console, ``parameters.json`` and ``assignments.csv``, in
    the file's units, components numbered 1..K as there. The figure is named
    ``fit_DATASET`` like :func:`_data_figures`' figures, which therefore does
    not draw this data set again from the cross-check's runs.
    """
    if "chosen_params" not in table:  # a results folder from before the record
        return
    chosen = table[table["chosen"].fillna(False).astype(bool)]
    if chosen.empty:
        return
    row = chosen.iloc[0]
    recorded = json.loads(row["chosen_params"])
    params = MixtureParams(
        recorded["weights"], recorded["means"], recorded["covariances"]
    )
    names = [
        c for c in points.columns if c not in ("component", "uncertainty", "label")
    ]
    report.heading("The chosen fit", level=3)
    fig, ax = _subplots(figsize=(5, 4))
    _draw_mixture(
        ax,
        points[names].to_numpy(dtype=float),
        points["component"].to_numpy(dtype=int) - 1,
        params,
        names,
    )
    ax.set_title(
        f"chosen fit: {row['model']}, K = {params.n_components}, "
        f"log-likelihood {row['log_likelihood']:.2f}\n(start {row['start']})"
    )
    fig.tight_layout()
    report.figure(fig, f"fit_{row['dataset']}", f"{row['dataset']}: the chosen fit")
    report.text(
        f"The chosen fit, {row['model']} with K = {params.n_components} (start "
        f"{row['start']}; log-likelihood {row['log_likelihood']:.3f}, BIC "
        f"{row['bic']:.2f}): the fit of the console, parameters.json and "
        "assignments.csv, components numbered 1..K as there. Points coloured "
        "by their most probable component, with 1- and 2-sigma ellipses; its "
        "parameters in the file's units:"
    )
    report.table(_parameter_table(params))


def _label_agreement(report: _Report, table: pd.DataFrame, points) -> None:
    """ARI and confusion table of the chosen clustering against known classes."""
    from sklearn.metrics import adjusted_rand_score

    report.heading("Agreement with the known classes")
    labels = points["label"].astype(str)
    n_classes = labels.nunique()
    ari = adjusted_rand_score(labels, points["component"])
    chosen = top_models(table, 1, "bic").iloc[0]
    text = (
        f"The label column has {n_classes} classes; the chosen model "
        f"{chosen['model']} has K = {int(chosen['n_components'])} components. "
        f"Adjusted Rand index {ari:.3f} (1: the same partition; 0: what "
        "random assignments give). "
    )
    at_classes = top_models(table[table["n_components"] == n_classes], 1, "bic")
    if (
        "ari" in table
        and not at_classes.empty
        and int(chosen["n_components"]) != n_classes
    ):
        row = at_classes.iloc[0]
        text += (
            f"The best ok fit with K = {n_classes}, {row['model']}, has BIC "
            f"{row['bic']:.2f} ({row['bic'] - chosen['bic']:+.2f} against the "
            f"chosen) and ARI {row['ari']:.3f}. "
        )
    text += (
        "BIC chooses the number of Gaussian components that best describes the "
        "density; a class need not be one Gaussian, and two overlapping "
        "classes can be one, so a K different from the number of classes is "
        "a finding about the data, not an error of the fit."
    )
    report.text(text)
    confusion = pd.crosstab(
        labels.rename("class"), points["component"].rename("component")
    )
    confusion.columns = [f"component {c}" for c in confusion.columns]
    report.table(confusion.reset_index())


def _uncertainty_figure(report: _Report, points: pd.DataFrame) -> None:
    columns = [
        c for c in points.columns if c not in ("component", "uncertainty", "label")
    ]
    uncertainty = points["uncertainty"].to_numpy()
    fig, axes = _subplots(1, 2, figsize=(10, 4))
    if len(columns) >= 2:
        ax = axes[0]
        # mclust's uncertainty plot: larger, darker points are less certain.
        order = np.argsort(uncertainty)
        scatter = ax.scatter(
            points[columns[0]].to_numpy()[order],
            points[columns[1]].to_numpy()[order],
            c=uncertainty[order],
            s=8 + 400 * uncertainty[order],
            cmap="viridis",
            vmin=0,
            vmax=max(0.5, float(uncertainty.max())),
            edgecolors="none",
        )
        ax.set_xlabel(columns[0])
        ax.set_ylabel(columns[1])
        fig.colorbar(scatter, ax=ax, label="uncertainty 1 - max_k tau")
    else:
        axes[0].axis("off")
    ax = axes[1]
    ax.plot(np.arange(1, len(uncertainty) + 1), np.sort(uncertainty)[::-1])
    ax.set_xlabel("rows, most uncertain first")
    ax.set_ylabel("classification uncertainty")
    ax.set_ylim(0, max(0.01, 1.05 * float(uncertainty.max())))
    fig.tight_layout()
    report.figure(
        fig,
        "model_search_uncertainty",
        "Classification uncertainty 1 - max_k tau of every row under the chosen "
        "model: on the first two columns (larger, brighter = less certain), and "
        "sorted",
    )
    report.text(
        f"Mean classification uncertainty {uncertainty.mean():.3f}; "
        f"{int(np.sum(uncertainty > 0.1))} of {len(uncertainty)} rows above 0.1."
    )


def _model_selection(report: _Report, runs) -> None:
    report.heading("Model selection: BIC and ICL")
    first = runs[runs["data_replicate"] == runs["data_replicate"].min()]
    keys = ["dataset", *data_columns(runs)]
    searched = [
        (key, group)
        for key, group in first.groupby(keys, dropna=False, sort=True)
        if group["n_components"].nunique() > 1 or group["covariance_type"].nunique() > 1
    ]
    if not searched:
        report.text(
            "Every data set was fitted with one K and one covariance type "
            "in this sweep; nothing to select."
        )
        return
    report.text(
        "For each data set searched over K and covariance types: the best "
        "eligible fit of every cell (lower is better for both criteria; BIC "
        "= -2 log L + p log n, ICL = BIC + 2 x the entropy of the MAP "
        "classification, as in mclust). Fits classified degenerate or "
        "unconverged never compete; a cross marks the lowest BIC among them "
        "where it is below every eligible fit of the cell: the spurious "
        "choice a search that trusted every fit would have made."
    )
    markers = "os^Dv<>p*h"
    for key, group in searched:
        label = _data_label(dict(zip(keys, key, strict=True)), runs)
        table = selection_table(group)
        fig, axes = _subplots(1, 2, figsize=(9, 3.4))
        for ax, criterion in zip(axes, ("bic", "icl"), strict=True):
            for index, (covariance_type, cell) in enumerate(
                table.groupby("covariance_type", sort=True)
            ):
                ax.plot(
                    cell["n_components"],
                    cell[criterion],
                    marker=markers[index % len(markers)],
                    label=covariance_type,
                )
                if criterion == "bic":
                    fooled = cell[cell["excluded_bic"] < cell["bic"].fillna(np.inf)]
                    ax.scatter(
                        fooled["n_components"],
                        fooled["excluded_bic"],
                        marker="x",
                        color="k",
                        s=25,
                        zorder=3,
                    )
            top = table[table[f"chosen_{criterion}"]]
            ax.scatter(
                top["n_components"],
                top[criterion],
                s=160,
                facecolors="none",
                edgecolors="k",
                label="chosen",
                zorder=4,
            )
            # Zoom on the neighbourhood of the minimum (crosses included):
            # far worse models leave the top of the axis.
            shown = [table[criterion].min()]
            if criterion == "bic":
                shown.append(table["excluded_bic"].min())
            lows = [v for v in shown if np.isfinite(v)]
            highs = [v for v in table[criterion] if np.isfinite(v)]
            if lows and highs:  # a cell with no eligible fit has no value
                low = min(lows)
                span = min(max(highs) - low, 0.1 * abs(low) + 50.0)
                if span > 0:
                    ax.set_ylim(low - 0.08 * span, low + span)
            ax.set_xlabel("number of components K")
            ax.set_ylabel(f"{criterion.upper()} (lower is better)")
            ax.legend(fontsize=7, title="covariance", title_fontsize=7)
        fig.suptitle(f"{label}: model selection (x: lowest BIC of an excluded fit)")
        fig.tight_layout()
        report.figure(fig, f"selection_{label}", f"{label}: BIC and ICL across K")
        sentences = [
            f"{label}: {criterion.upper()} chooses K = {int(row['n_components'])} "
            f"({row['covariance_type']}), {criterion.upper()} {row[criterion]:.2f}, "
            f"log-likelihood {row['log_likelihood']:.2f}."
            for criterion in ("bic", "icl")
            for _, row in table[table[f"chosen_{criterion}"]].iterrows()
        ]
        fooled = table[table["excluded_bic"] < table["bic"].min()]
        if len(fooled):
            worst = fooled.loc[fooled["excluded_bic"].idxmin()]
            sentences.append(
                f"Trusting every fit would have chosen K = "
                f"{int(worst['n_components'])} ({worst['covariance_type']}), BIC "
                f"{worst['excluded_bic']:.2f}: a degenerate or unconverged fit."
            )
        report.text(" ".join(sentences))
        report.table(
            table[
                [
                    "covariance_type",
                    "n_components",
                    "n_runs",
                    "n_ok",
                    "n_degenerate",
                    "n_unconverged",
                    "log_likelihood",
                    "bic",
                    "icl",
                    "excluded_bic",
                    "chosen_bic",
                    "chosen_icl",
                ]
            ],
            digits=7,
        )


def _ellipse(ax, mean, cov, scale, colour) -> None:
    values, vectors = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(vectors[1, -1], vectors[0, -1]))
    width, height = 2 * scale * np.sqrt(values[::-1])
    ax.add_patch(
        Ellipse(
            mean,
            width,
            height,
            angle=angle,
            fill=False,
            edgecolor=colour,
            linewidth=1.2,
            linestyle="-" if scale == 1 else "--",
        )
    )


def _parameter_table(params: MixtureParams) -> pd.DataFrame:
    """One row per component (numbered 1..K): weight, mean and covariance, as text."""
    return pd.DataFrame(
        {
            "component": np.arange(1, params.n_components + 1),
            "weight": params.weights,
            "mean": [
                np.array2string(m, precision=5, separator=", ") for m in params.means
            ],
            "covariance": [
                np.array2string(c, precision=5, separator=", ").replace("\n", "")
                for c in params.covariances
            ],
        }
    )


def _draw_mixture(ax, X, labels, params: MixtureParams, names) -> None:
    """A fitted mixture over its data on ``ax``; components numbered 1..K.

    In 2-D or more (the first two columns of ``X``), 500 random points
    coloured by ``labels`` (0-based) with 1- and 2-sigma ellipses; in 1-D, a
    histogram with the mixture density and every weighted component density,
    each component normalised on its own.
    """
    cmap = matplotlib.colormaps["tab10"]
    if X.shape[1] == 1:
        grid = np.linspace(X.min() - 0.1 * np.ptp(X), X.max() + 0.1 * np.ptp(X), 400)
        ax.hist(X[:, 0], bins=60, density=True, color="#cccccc", label="data")
        ax.plot(
            grid,
            np.exp(score_samples(grid[:, None], params)),
            "k-",
            label="mixture density",
        )
        for k in range(params.n_components):
            sd = np.sqrt(params.full_covariances()[k, 0, 0])
            density = (
                params.weights[k]
                * np.exp(-0.5 * ((grid - params.means[k, 0]) / sd) ** 2)
                / (sd * np.sqrt(2 * np.pi))
            )
            ax.plot(
                grid,
                density,
                "--",
                color=cmap(k % 10),
                label=f"component {k + 1}, weight {params.weights[k]:.2f}",
            )
        ax.set_xlabel(names[0])
        ax.set_ylabel("density (per unit of x)")
        ax.legend(fontsize=7)
        return
    rng = np.random.default_rng(0)
    shown = rng.choice(X.shape[0], min(500, X.shape[0]), replace=False)
    ax.scatter(
        X[shown, 0],
        X[shown, 1],
        c=[cmap(k % 10) for k in labels[shown]],
        s=8,
        alpha=0.7,
    )
    for k in range(params.n_components):
        cov = params.full_covariances()[k][:2, :2]
        for scale in (1, 2):
            _ellipse(ax, params.means[k, :2], cov, scale, cmap(k % 10))
    ax.legend(
        handles=[
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                color=cmap(k % 10),
                label=f"component {k + 1}, weight {params.weights[k]:.2f}",
            )
            for k in range(params.n_components)
        ],
        fontsize=7,
        title="ellipses: 1 and 2 sd",
        title_fontsize=7,
    )
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])


def _drawn(report: _Report, name: str) -> bool:
    """Whether ``report`` holds figure ``name`` already (as _Report.figure names it)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
    return f"{safe}.png" in report.figures


def _data_figures(report: _Report, runs, components) -> None:
    report.heading("The fitted mixtures")
    report.text(
        "For each data set (each n of a series, on its first data replicate), "
        "the eligible run (status ok) with the lowest BIC (with K fixed, the "
        "highest log-likelihood). "
        "In 2-D (or the first two features), 500 random points coloured by "
        "assigned component with 1- and 2-sigma ellipses; in 1-D, a "
        "histogram with the mixture density and every weighted component "
        "density, each component normalised on its own."
    )
    ok = runs[eligible(runs)]
    ok = ok[ok["data_replicate"] == ok["data_replicate"].min()]
    parameter_columns = data_columns(runs)
    keys = ["dataset", *parameter_columns]
    for key, group in ok.groupby(keys, dropna=False, sort=True):
        dataset = key[0]
        label = _data_label(dict(zip(keys, key, strict=True)), runs)
        if _drawn(report, f"fit_{label}"):
            # gmmlab fit's chosen fit, drawn with the model search: the one
            # fit the user keeps, which may not be any run of the cross-check.
            report.text(
                f"{label}: the chosen fit is drawn above, with the model search."
            )
            continue
        # BIC compares fits of the same data only: one choice per data set
        # and parameters (each n of a series).
        try:
            run = choose_model(group)
        except ValueError:  # only posterior summaries are eligible here
            continue
        params_cols = {
            c.removeprefix("p_"): run[c]
            for c in parameter_columns
            if c != "p_path" and pd.notna(run[c])
        }
        params_cols = {
            k: (int(v) if isinstance(v, float) and v.is_integer() else v)
            for k, v in params_cols.items()
        }
        data = load_dataset(dataset, seed=int(run["data_seed"]), **params_cols)
        params = params_from_components(components[components["run_id"] == run.run_id])
        X = data.X
        names = list(
            data.notes.get("columns")
            or data.notes.get("features")
            or (["x"] if X.shape[1] == 1 else [f"x{i + 1}" for i in range(X.shape[1])])
        )
        fig, ax = _subplots(figsize=(5, 4))
        labels = predict_labels(X, params) if X.shape[1] > 1 else None
        _draw_mixture(ax, X, labels, params, names)
        ax.set_title(
            f"{label}: lowest-BIC fit\n{run['backend']}, K = "
            f"{params.n_components}, log-likelihood {run['log_likelihood']:.2f}"
        )
        fig.tight_layout()
        report.figure(fig, f"fit_{label}", f"{label}: fitted mixture")
        report.text(
            f"{label}: learned parameters of that run ({run['backend']}, "
            f"K = {params.n_components}, init {run['init']}, seed "
            f"{int(run['seed'])}, log-likelihood {run['log_likelihood']:.2f}, "
            f"status {run['status']})."
        )
        report.table(_parameter_table(params))


def _not_eligible(report: _Report, runs) -> None:
    report.heading("Fits not eligible")
    shown = runs[~eligible(runs)]
    if shown.empty:
        report.text("None: every fit is ok.")
        return
    report.text(
        "Degenerate, unconverged and failed fits, and fits of arms run with "
        "their engine's own stopping rule; none of them is ever chosen as best."
    )
    columns = [
        "run_id",
        "dataset",
        "backend",
        "n_components",
        "init",
        "data_replicate",
        "seed",
        "status",
        "status_reason",
    ]
    report.table(shown[[c for c in columns if c in shown.columns]])


def build_report(results: str | Path, out: str | Path) -> Path:
    """Build the report of a results folder into ``out``; return ``index.html``."""
    results, out = Path(results), Path(out)
    manifest_path = results / "manifest.json"
    if not manifest_path.is_file():
        raise ValueError(
            f"{str(results)!r} is not a results folder (no manifest.json); "
            "run `gmmlab run` first."
        )
    tables = read_tables(results)
    if "runs" not in tables:
        raise ValueError(
            f"{str(results)!r} has no runs.parquet yet; the sweep has not "
            "finished once."
        )
    manifest = json.loads(manifest_path.read_text())
    runs = tables["runs"]
    traces = tables.get("traces", pd.DataFrame())
    components = tables.get("components", pd.DataFrame())
    out.mkdir(parents=True, exist_ok=True)
    report = _Report(out)
    nats = float(manifest.get("same_optimum_nats", SAME_OPTIMUM_NATS))
    convergence = tables.get("convergence", pd.DataFrame())
    with matplotlib.rc_context(_STYLE):
        _setup(report, manifest, runs)
        if (runs["status"] != "failed").any():
            _summary(report, runs, convergence, nats)
            _scenarios(report, runs, components, convergence, tables.get("checks"))
            _traces(report, runs, traces)
            _convergence(report, runs, convergence, nats)
            _recovery(report, runs)
            _engines(report, runs, components, tables.get("predictive"))
            _timing(report, runs)
            if "model_search" in tables:
                _model_search(report, tables["model_search"], tables.get("uncertainty"))
            _model_selection(report, runs)
            _data_figures(report, runs, components)
        _not_eligible(report, runs)
    name = Path(str(manifest.get("config_source", results))).stem
    return report.write(f"gmmlab report: {name}")
