"""The missing-values scenario: recovery of the means and the imputations' quality.

Both figures draw one panel per mechanism and one line per arm, each arm
the same colour in both (:func:`arm_colours` of the arms given).
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from experiments.report.figures.style import arm_colours, subplots

__all__ = ["imputation_figure", "missing_figure"]

_TITLES = {
    "mcar": "MCAR: completely\nat random",
    "mar": "MAR: at random,\ngiven an observed value",
    "mnar": "MNAR: not at random",
}


def missing_figure(table: pd.DataFrame, arms=None) -> Figure:
    """One panel per mechanism: median error of the means against the rate.

    ``table`` is :func:`experiments.scenario_analysis.missing_recovery`'s;
    one line per arm, the same colour in every panel, a shared log y axis.
    Colours are those of ``arms`` (default: the table's).
    """
    mechanisms = [m for m in _TITLES if m in set(table["mechanism"])]
    fig, axes = subplots(1, max(len(mechanisms), 1), height=3.8, sharey=True)
    axes = [axes] if len(mechanisms) == 1 else list(axes)
    colours = arm_colours(table["arm"] if arms is None else arms)
    for ax, mechanism in zip(axes, mechanisms, strict=False):
        rows = table[table["mechanism"] == mechanism]
        for arm, group in rows.groupby("arm", sort=False):
            group = group.sort_values("rate")
            ax.plot(
                100 * group["rate"],
                group["mean_rmse"],
                marker="o",
                color=colours[arm],
                label=arm,
            )
        ax.set_title(_TITLES[mechanism])
        ax.set_xlabel("values missing (%)")
        ax.set_xticks(sorted(100 * table["rate"].unique()))
        ax.set_yscale("log")
    axes[0].set_ylabel("error of the means (median RMSE)")
    # Every arm once, whichever panels it has points in (PyMC runs at one rate).
    handles = {
        text: handle
        for ax in axes
        for handle, text in zip(*ax.get_legend_handles_labels(), strict=True)
    }
    axes[-1].legend(
        handles.values(), handles.keys(), loc="upper left", bbox_to_anchor=(1.01, 1.0)
    )
    fig.tight_layout()
    return fig


def imputation_figure(table: pd.DataFrame, arms=None) -> Figure:
    """Per mechanism: imputation error (top) and interval coverage (bottom).

    ``table`` is :func:`experiments.scenario_analysis.imputation_quality`'s.
    Top row: the median RMSE of each arm's point imputations against the
    removed values, against the share missing. Bottom row: for the arms
    with intervals, the share of removed values inside them, with the
    nominal level dashed. Colours are those of ``arms`` (default: the
    table's), so they match :func:`missing_figure`'s.
    """
    mechanisms = [m for m in _TITLES if m in set(table["mechanism"])]
    columns = max(len(mechanisms), 1)
    fig, axes = subplots(2, columns, height=6.4, sharey="row", squeeze=False)
    colours = arm_colours(table["arm"] if arms is None else arms)
    intervals = table[table["coverage"].notna()]
    for column, mechanism in enumerate(mechanisms):
        top, bottom = axes[0, column], axes[1, column]
        for ax, rows, value in (
            (top, table, "imputation_rmse"),
            (bottom, intervals, "coverage"),
        ):
            rows = rows[rows["mechanism"] == mechanism]
            for arm, group in rows.groupby("arm", sort=False):
                group = group.sort_values("rate")
                ax.plot(
                    100 * group["rate"],
                    group[value],
                    marker="o",
                    color=colours[arm],
                    label=arm,
                )
        for level in sorted(set(intervals["nominal"].dropna())):
            bottom.axhline(level, color="0.3", linestyle="--", linewidth=1)
        top.set_title(_TITLES[mechanism])
        bottom.set_xlabel("values missing (%)")
        for ax in (top, bottom):
            ax.set_xticks(sorted(100 * table["rate"].unique()))
    axes[0, 0].set_ylabel("imputation error\n(median RMSE)")
    axes[1, 0].set_ylabel("share of removed values\ninside the intervals")
    if not intervals.empty:
        low = min(float(intervals["coverage"].min()), *intervals["nominal"]) - 0.05
        axes[1, 0].set_ylim(max(low, 0.0), 1.0)
    handles = {
        text: handle
        for ax in axes.ravel()
        for handle, text in zip(*ax.get_legend_handles_labels(), strict=True)
    }
    if not intervals.empty:
        from matplotlib.lines import Line2D

        handles["nominal level"] = Line2D([], [], color="0.3", linestyle="--")
    axes[0, -1].legend(
        handles.values(), handles.keys(), loc="upper left", bbox_to_anchor=(1.01, 1.0)
    )
    fig.tight_layout()
    return fig
