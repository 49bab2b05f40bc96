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

from experiments.recovery import MAXIMUM_LIKELIHOOD
from experiments.report.figures.style import (
    CHAIN_COLOURS,
    INIT_STYLES,
    STATUS_MARKERS,
    arm_colours,
    colour,
    sparse_symlog_ticks,
    subplots,
)

__all__ = [
    "RECOVERY_METRICS",
    "convergence_figure",
    "recovery_figure",
    "timing_figure",
    "traces_figure",
]

#: Panels a row of the traces figure.
_PANELS_PER_ROW = 3
#: Characters a line of a figure's title (at 10 pt on the page's width).
_TITLE_CHARACTERS = 100

_X_LABELS = {"advi_mean_elbo": "ADVI iteration", "vb_elbo": "VB iteration"}


def traces_figure(
    group: pd.DataFrame, traces: pd.DataFrame, best_ids: set, title: str
) -> Figure:
    """Every fit's trace of one data set and model, one panel per engine.

    ``group`` holds the runs (with their ``reference`` log-likelihood, the
    best optimum of their data), ``traces`` the traces table, ``best_ids``
    the run ids drawn bold (each engine's best eligible fit); ``title`` is
    wrapped to the figure's width. Three panels a row.
    """
    engines = sorted(group["backend"].unique())
    ncols = min(_PANELS_PER_ROW, len(engines))
    nrows = -(-len(engines) // ncols)
    title = textwrap.fill(title, width=_TITLE_CHARACTERS)
    fig, axes = subplots(
        nrows,
        ncols,
        height=2.7 * nrows + 0.25 * (title.count("\n") + 1),
        squeeze=False,
    )
    colours = arm_colours(engines)
    for ax, engine in zip(axes.ravel(), engines, strict=False):
        _trace_panel(
            ax,
            group[group["backend"] == engine],
            traces,
            best_ids,
            (engine, colours[engine]),
        )
    for ax in axes.ravel()[len(engines) :]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _trace_panel(ax, runs_e, traces, best_ids, engine_colour) -> None:
    """One engine's traces: gap to the best optimum, or its own objective."""
    engine, shade = engine_colour
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
                color=CHAIN_COLOURS[restart % len(CHAIN_COLOURS)] if sampled else shade,
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
        ax.legend()
    else:
        ax.legend(
            handles=[
                Line2D(
                    [],
                    [],
                    linestyle=INIT_STYLES.get(i, "-"),
                    color=shade,
                    label=i.replace("_", " "),
                )
                for i in sorted(runs_e["init"].unique())
            ]
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
    pairs drawn top to bottom, one row each, named by ``tick_labels``; the
    axis is symlog, linear within ``max(nats, 1e-3)`` of zero.
    """
    fig, ax = subplots(height=1.2 + 0.3 * len(cells))
    colours = arm_colours(engine for engine, _ in cells)
    gaps = []
    for y, (engine, init) in enumerate(cells):
        cell = group[(group["backend"] == engine) & (group["init"] == init)]
        gap = (cell["log_likelihood"] - cell["reference"]).to_numpy()
        gaps.extend(gap[np.isfinite(gap)])
        jitter = np.linspace(-0.2, 0.2, gap.size) if gap.size > 1 else [0.0]
        for status, marker in STATUS_MARKERS.items():
            mask = (cell["status"] == status).to_numpy()
            if mask.any():
                ax.scatter(
                    gap[mask],
                    y + np.asarray(jitter)[mask],
                    color=colours[engine],
                    marker=marker,
                    s=16,
                )
    ax.axvline(0.0, color="k", linewidth=0.6, linestyle=":")
    ax.set_yticks(range(len(cells)))
    ax.set_yticklabels(tick_labels)
    ax.set_ylim(len(cells) - 0.5, -0.5)
    threshold = max(nats, 1e-3)
    ax.set_xscale("symlog", linthresh=threshold)
    low = min(min(gaps, default=0.0), -threshold)
    high = max(max(gaps, default=0.0), threshold)
    ax.set_xlim(low * 3 if low < 0 else low, high * 3 if high > 0 else high)
    ax.set_xlabel("log-likelihood minus best ok fit (nats)")
    ax.legend(
        handles=[
            Line2D([], [], marker=m, linestyle="", color="k", label=s)
            for s, m in STATUS_MARKERS.items()
        ],
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
    )
    ax.set_title(textwrap.fill(f"{label}: final log-likelihood per seed", 90))
    fig.tight_layout()
    return fig


#: How the recovery figure names each metric on its axis.
RECOVERY_METRICS = {
    "m_mean_rmse": "error of the means (RMSE)",
    "m_cov_frobenius": "error of the covariances (Frobenius)",
}
#: Marker and line style of each series of the recovery figure, in turn, so
#: that series lying on one another all show.
_SERIES_STYLES = (("o", "-"), ("s", "--"), ("^", ":"), ("D", "-."), ("v", "--"))


def recovery_figure(
    fits: pd.DataFrame, series: list[tuple[str, str, pd.DataFrame]]
) -> Figure:
    """Recovery error of the data's maximum against n, log-log.

    ``fits`` holds every recovery fit drawn (columns ``p_n``,
    ``m_mean_rmse``, ``m_cov_frobenius``); ``series`` one (estimator, legend
    label, rows) per line: the rows' points, and their median at each n.
    Each series has its own marker and line style and is shifted sideways
    by a few percent of n, so two series with the same values both show. A
    dotted 1/sqrt(n) line starts at the median of the smallest n.
    """
    fig, axes = subplots(1, 2, height=3.6)
    shifts = 1.04 ** (np.arange(len(series)) - (len(series) - 1) / 2)
    for ax, metric in zip(axes, RECOVERY_METRICS, strict=True):
        for index, (estimator, label, group) in enumerate(series):
            shade = "k" if estimator == MAXIMUM_LIKELIHOOD else colour(estimator)
            marker, line = _SERIES_STYLES[index % len(_SERIES_STYLES)]
            medians = group.groupby("p_n")[metric].median()
            ax.scatter(
                group["p_n"] * shifts[index],
                group[metric],
                color=shade,
                marker=marker,
                s=8,
                alpha=0.4,
            )
            ax.plot(
                medians.index * shifts[index],
                medians.to_numpy(),
                marker=marker,
                linestyle=line,
                color=shade,
                markerfacecolor="none" if index % 2 else shade,
                label=label,
            )
        n = np.array(sorted(fits["p_n"].unique()), dtype=float)
        anchor = fits[fits["p_n"] == n[0]][metric].median()
        ax.plot(n, anchor * np.sqrt(n[0] / n), "k:", label="1/sqrt(n)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("sample size n")
        ax.set_ylabel(RECOVERY_METRICS[metric])
        ax.legend()
    fig.suptitle(
        "Recovery error of the data's maximum against n "
        "(nested samples of one truth per data replicate)"
    )
    fig.tight_layout()
    return fig


def timing_figure(table: pd.DataFrame) -> Figure:
    """Median seconds per fit, bars grouped by data set, one colour per arm.

    ``table`` has one row per ``dataset`` and ``backend`` with
    ``median_seconds``; log axis. Each data set's group holds the arms that
    ran on it, side by side; no two arms share a colour.
    """
    fig, ax = subplots(height=3.8)
    datasets = list(dict.fromkeys(table["dataset"]))
    colours = arm_colours(table["backend"])
    widest = max(table.groupby("dataset")["backend"].nunique().max(), 1)
    width = 0.8 / widest
    drawn: set[str] = set()
    for x, dataset in enumerate(datasets):
        here = table[table["dataset"] == dataset].sort_values("backend")
        left = x - width * (len(here) - 1) / 2
        for i, row in enumerate(here.itertuples(index=False)):
            ax.bar(
                left + i * width,
                row.median_seconds,
                width,
                color=colours[row.backend],
                label=None if row.backend in drawn else row.backend,
            )
            drawn.add(row.backend)
    ax.set_xticks(np.arange(len(datasets)))
    ax.set_xticklabels(datasets)
    ax.set_yscale("log")
    ax.set_ylabel("median seconds per fit")
    handles, labels = ax.get_legend_handles_labels()
    order = np.argsort(labels)
    ax.legend(
        [handles[i] for i in order],
        [labels[i] for i in order],
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
    )
    ax.set_title("Fit time per engine")
    fig.tight_layout()
    return fig
