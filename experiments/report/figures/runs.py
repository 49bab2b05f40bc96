"""Figures of fits across iterations, seeds, sample sizes and time.

The log-likelihood traces of one data set (one panel per engine), the final
log-likelihood of every seed against the best optimum, recovery error
against n, and the median fit time per engine. Each takes the rows to draw
and returns a :class:`~matplotlib.figure.Figure`.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from experiments.analysis import MAXIMUM_LIKELIHOOD
from experiments.report.figures.style import (
    CHAIN_COLOURS,
    INIT_STYLES,
    STATUS_MARKERS,
    colour,
    sparse_symlog_ticks,
    subplots,
)

__all__ = ["convergence_figure", "recovery_figure", "timing_figure", "traces_figure"]

_X_LABELS = {"advi_mean_elbo": "ADVI iteration", "vb_elbo": "VB iteration"}


def traces_figure(
    group: pd.DataFrame, traces: pd.DataFrame, best_ids: set, title: str
) -> Figure:
    """Every fit's trace of one data set and model, one panel per engine.

    ``group`` holds the runs (with their ``reference`` log-likelihood, the
    best optimum of their data), ``traces`` the traces table, ``best_ids``
    the run ids drawn bold (each engine's best eligible fit); ``title`` is
    wrapped to the figure's width.
    """
    engines = sorted(group["backend"].unique())
    fig, axes = subplots(
        1,
        len(engines),
        figsize=(max(5.5, 3.4 * len(engines)), 3.2),
        squeeze=False,
    )
    for ax, engine in zip(axes[0], engines, strict=True):
        _trace_panel(ax, group[group["backend"] == engine], traces, best_ids, engine)
    # Wrapped to the figure's width: with one or two panels a one-line
    # title ran past both edges.
    fig.suptitle(textwrap.fill(title, width=int(9 * fig.get_figwidth())))
    fig.tight_layout()
    return fig


def _trace_panel(ax, runs_e, traces, best_ids, engine) -> None:
    """One engine's traces: gap to the best optimum, or its own objective."""
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
                INIT_STYLES.get(run.init, "-"),
                color=CHAIN_COLOURS[restart % len(CHAIN_COLOURS)]
                if sampled
                else colour(engine),
                alpha=0.8 if sampled or is_best else 0.3,
                linewidth=1.6 if is_best and not sampled else 0.8,
                label=f"chain {restart + 1}" if sampled else None,
            )
    if kind == "advi_mean_elbo":
        ax.set_ylabel("ELBO per sample")
    elif kind == "vb_elbo":
        ax.set_yscale("symlog", linthresh=1e-4)
        sparse_symlog_ticks(ax)
        ax.set_ylabel("gap to its final lower bound (nats)")
    else:
        ax.set_yscale("symlog", linthresh=1e-4)
        sparse_symlog_ticks(ax)
        ax.set_ylabel("gap to the best optimum (nats)")
    ax.set_title(f"{engine} ({runs_e['status'].iloc[0]})" if sampled else engine)
    ax.set_xlabel("posterior draw" if sampled else _X_LABELS.get(kind, "EM iteration"))
    if sampled:
        ax.legend(fontsize=7)
    else:
        ax.legend(
            handles=[
                Line2D(
                    [],
                    [],
                    linestyle=INIT_STYLES.get(i, "-"),
                    color=colour(engine),
                    label=i.replace("_", " "),
                )
                for i in sorted(runs_e["init"].unique())
            ],
            fontsize=7,
        )


def convergence_figure(
    group: pd.DataFrame,
    cells: list[tuple[str, str]],
    tick_labels: list[str],
    nats: float,
    label: str,
) -> Figure:
    """Final log-likelihood of every seed minus the best, per engine and start.

    ``group`` holds one data set's runs of one model (with their
    ``reference`` log-likelihood), ``cells`` the (engine, initialisation)
    pairs drawn left to right under ``tick_labels``; the axis is symlog,
    linear within ``max(nats, 1e-3)`` of zero.
    """
    fig, ax = subplots(figsize=(max(5.5, 1.4 * len(cells)), 3.4))
    gaps = []
    for x, (engine, init) in enumerate(cells):
        cell = group[(group["backend"] == engine) & (group["init"] == init)]
        gap = (cell["log_likelihood"] - cell["reference"]).to_numpy()
        gaps.extend(gap[np.isfinite(gap)])
        jitter = np.linspace(-0.15, 0.15, gap.size) if gap.size > 1 else [0.0]
        for status, marker in STATUS_MARKERS.items():
            mask = (cell["status"] == status).to_numpy()
            if mask.any():
                ax.scatter(
                    x + np.asarray(jitter)[mask],
                    gap[mask],
                    color=colour(engine),
                    marker=marker,
                    s=16,
                )
    ax.axhline(0.0, color="k", linewidth=0.6, linestyle=":")
    ax.set_xticks(range(len(cells)))
    ax.set_xticklabels(tick_labels, fontsize=7)
    threshold = max(nats, 1e-3)
    ax.set_yscale("symlog", linthresh=threshold)
    low = min(min(gaps, default=0.0), -threshold)
    high = max(max(gaps, default=0.0), threshold)
    ax.set_ylim(low * 3 if low < 0 else low, high * 3 if high > 0 else high)
    ax.set_ylabel("log-likelihood minus best ok fit (nats)")
    ax.legend(
        handles=[
            Line2D([], [], marker=m, linestyle="", color="k", label=s)
            for s, m in STATUS_MARKERS.items()
        ],
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
    )
    ax.set_title(f"{label}: final log-likelihood per seed")
    fig.tight_layout()
    return fig


def recovery_figure(
    fits: pd.DataFrame, series: list[tuple[str, str, pd.DataFrame]]
) -> Figure:
    """Recovery error of the data's maximum against n, log-log.

    ``fits`` holds every recovery fit drawn (columns ``p_n``,
    ``m_mean_rmse``, ``m_cov_frobenius``); ``series`` one (estimator, legend
    label, rows) per line: the rows' points, and their median at each n.
    A dotted 1/sqrt(n) line starts at the median of the smallest n.
    """
    fig, axes = subplots(1, 2, figsize=(8, 3.2))
    for ax, metric in zip(axes, ("m_mean_rmse", "m_cov_frobenius"), strict=True):
        for estimator, label, group in series:
            shade = "k" if estimator == MAXIMUM_LIKELIHOOD else colour(estimator)
            medians = group.groupby("p_n")[metric].median()
            ax.scatter(group["p_n"], group[metric], color=shade, s=8, alpha=0.4)
            ax.plot(medians.index, medians.to_numpy(), "o-", color=shade, label=label)
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
    return fig


def timing_figure(table: pd.DataFrame) -> Figure:
    """Median seconds per fit, bars grouped by data set, one colour per engine.

    ``table`` has one row per ``dataset`` and ``backend`` with
    ``median_seconds``; log axis.
    """
    fig, ax = subplots(figsize=(9, 3.2))
    datasets = sorted(table["dataset"].unique())
    engines = sorted(table["backend"].unique())
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
            color=colour(engine),
            label=engine,
        )
    ax.set_xticks(np.arange(len(datasets)) + 0.4 - width / 2)
    ax.set_xticklabels(datasets)
    ax.set_yscale("log")
    ax.set_ylabel("median seconds per fit")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("Fit time per engine")
    fig.tight_layout()
    return fig
