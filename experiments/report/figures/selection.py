"""Figures of model selection: BIC and ICL over K, and the chosen model's doubt.

The BIC and ICL of a sweep's search over K and covariance types, the BIC of
``gmmlab fit``'s search over covariance models, and the classification
uncertainty of every row under the chosen model. Each takes tables and
returns a :class:`~matplotlib.figure.Figure`.
"""

from __future__ import annotations

import textwrap

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from experiments.report.figures.style import subplots

__all__ = ["model_search_figure", "selection_figure", "uncertainty_figure"]


def selection_figure(table: pd.DataFrame, label: str) -> Figure:
    """BIC and ICL against K per covariance type, from a selection table.

    ``table`` is :func:`experiments.analysis.selection_table` of one data
    set. Circles mark the chosen cells; on the BIC panel a cross marks an
    excluded fit's BIC where it is below the cell's eligible ones. Each axis
    zooms on the neighbourhood of its minimum; a covariance type whose every
    value lies above the axis is not drawn, and the legend says so.
    """
    markers = "os^Dv<>p*h"
    fig, axes = subplots(1, 2, height=3.6)
    for ax, criterion in zip(axes, ("bic", "icl"), strict=True):
        top_of_axis = _zoom_on_minimum(ax, table, criterion)
        above = []
        for index, (covariance_type, cell) in enumerate(
            table.groupby("covariance_type", sort=True)
        ):
            values = cell[criterion].to_numpy(dtype=float)
            if (values[np.isfinite(values)] <= top_of_axis).any():
                ax.plot(
                    cell["n_components"],
                    cell[criterion],
                    color=matplotlib.colormaps["tab10"](index % 10),
                    marker=markers[index % len(markers)],
                    label=covariance_type,
                )
            else:
                above.append(covariance_type)
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
        ax.set_xlabel("number of components K")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"{criterion.upper()} (lower is better)")
        handles, names = ax.get_legend_handles_labels()
        if above:  # named, with no line: drawn nowhere on this axis
            handles.append(Line2D([], [], linestyle="", marker=""))
            names.append(f"above the top: {', '.join(above)}")
        ax.legend(handles, names, title="covariance")
    fig.suptitle(f"{label}: model selection (x: lowest BIC of an excluded fit)")
    fig.tight_layout()
    return fig


def _zoom_on_minimum(ax, table: pd.DataFrame, criterion: str) -> float:
    """Zoom on the neighbourhood of the minimum (crosses included).

    Far worse models leave the top of the axis; returns the top (infinite
    when the axis is left to matplotlib).
    """
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
            return low + span
    return np.inf


def model_search_figure(
    table: pd.DataFrame, flagged: pd.DataFrame, top: pd.DataFrame
) -> Figure:
    """BIC of every covariance model over K, from ``gmmlab fit``'s search.

    ``table`` is the model-search table, ``flagged`` its cells never chosen
    (crosses), ``top`` its best cells (the first is circled). Lines join ok
    cells; the axis keeps the competitive models: three in four models'
    best K are on it.
    """
    fig, ax = subplots(1, 1, height=4.6)
    markers = "os^Dv<>p*hH8dP"
    top_of_axis = _zoom_on_competitive(ax, table, top)
    above = []
    for index, (model, cells) in enumerate(table.groupby("model", sort=False)):
        ok = cells[cells["status"] == "ok"]
        if not (ok["bic"] <= top_of_axis).any():
            above.append(str(model))
            continue
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
    ax.set_xlabel("number of components K")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("BIC (lower is better)")
    handles, names = ax.get_legend_handles_labels()
    if above:  # named, with no line: drawn nowhere on this axis
        handles.append(Line2D([], [], linestyle="", marker=""))
        names.append("above the top:\n" + textwrap.fill(", ".join(above), 24))
    ax.legend(handles, names, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def _zoom_on_competitive(ax, table: pd.DataFrame, top: pd.DataFrame) -> float:
    """Zoom on the competitive models; return the top of the axis.

    Three in four models' best K are on the plot; models far worse leave it
    at the top. Infinite (the axis left to matplotlib) without a best cell.
    """
    if top.empty:
        return np.inf
    low = float(top["bic"].iloc[0])
    ok_cells = table[(table["status"] == "ok") & np.isfinite(table["bic"])]
    best_per_model = ok_cells.groupby("model")["bic"].min()
    span = 1.5 * (float(best_per_model.quantile(0.75)) - low) + 10.0
    ax.set_ylim(low - 0.05 * span, low + span)
    return low + span


def uncertainty_figure(points: pd.DataFrame, columns: list[str]) -> Figure:
    """Classification uncertainty of every row: on two columns, and sorted.

    ``points`` holds the data's ``columns`` and each row's ``uncertainty``
    (1 - max_k tau). Left, as mclust draws it, larger and brighter points
    are less certain (blank with fewer than two columns); right, the values
    sorted, most uncertain first.
    """
    uncertainty = points["uncertainty"].to_numpy()
    fig, axes = subplots(1, 2, height=4.0)
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
    return fig
