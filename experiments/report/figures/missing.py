"""The missing-values scenario: recovery of the means against the missing rate."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from experiments.report.figures.style import arm_colours, subplots

__all__ = ["missing_figure"]

_TITLES = {
    "mcar": "MCAR: completely\nat random",
    "mar": "MAR: at random,\ngiven an observed value",
    "mnar": "MNAR: not at random",
}


def missing_figure(table: pd.DataFrame) -> Figure:
    """One panel per mechanism: median error of the means against the rate.

    ``table`` is :func:`experiments.scenario_analysis.missing_recovery`'s;
    one line per arm, the same colour in every panel, a shared log y axis.
    """
    mechanisms = [m for m in _TITLES if m in set(table["mechanism"])]
    fig, axes = subplots(1, max(len(mechanisms), 1), height=3.8, sharey=True)
    axes = [axes] if len(mechanisms) == 1 else list(axes)
    colours = arm_colours(table["arm"])
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
        ax.set_yscale("log")
    axes[0].set_ylabel("error of the means (median RMSE)")
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig
