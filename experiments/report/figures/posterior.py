"""The posterior predictive check: each feature's density over its histogram.

One panel per NUTS fit and feature: the data's histogram, the simultaneous
94% band of replicated histograms, the bars outside it, and the posterior
predictive density with its 94% band, all read from the recorded
``predictive`` table.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from experiments.report.figures.style import SMALL_TYPE, colour, subplots
from experiments.report.formatting import parameter_text

__all__ = ["predictive_figure"]


def predictive_figure(
    panels: list[tuple[pd.Series, object]],
    predictive: pd.DataFrame,
    parameters: list[str],
) -> Figure:
    """Posterior predictive density of each feature over the data's histogram.

    ``panels`` lists (run, feature) pairs, three panels a row; ``predictive``
    is the recorded table (rows of kind ``histogram`` and ``density`` per run
    and feature); ``parameters`` the data set's ``p_*`` columns shown in each
    panel's title.
    """
    ncols = min(3, len(panels))
    nrows = int(np.ceil(len(panels) / ncols))
    height = 1.1 + 2.8 * nrows
    fig, axes = subplots(nrows, ncols, height=height, squeeze=False)
    for ax, (run, feature) in zip(axes.ravel(), panels, strict=False):
        here = predictive[
            (predictive["run_id"] == run["run_id"]) & (predictive["feature"] == feature)
        ]
        outside = _draw_panel(ax, here)
        params = {c.removeprefix("p_"): run[c] for c in parameters if pd.notna(run[c])}
        extra = ", ".join(
            f"{k}={parameter_text(v)}" for k, v in params.items() if k != "path"
        )
        name = str(run["dataset"])
        if name.startswith("file:"):
            name = Path(name.removeprefix("file:")).name
        ax.set_title(
            textwrap.fill(
                f"{name}{' (' + extra + ')' if extra else ''}, "
                f"feature {feature} ({run['status']}): "
                f"{int(outside.sum())} of {int(outside.size)} bars outside",
                38,
            ),
            fontsize=SMALL_TYPE,
        )
        ax.set_ylabel("density")
    for ax in axes.ravel()[len(panels) :]:
        ax.set_visible(False)
    # One legend for every panel, under them: inside a panel it hid the data.
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    for ax in axes.ravel()[1 : len(panels)]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    fig.legend(handles, labels, loc="lower center", ncol=3)
    fig.suptitle("Posterior predictive check: each feature's marginal density")
    fig.tight_layout(rect=(0.0, 0.55 / height, 1.0, 1.0))
    return fig


def _draw_panel(ax, here: pd.DataFrame) -> pd.Series:
    """One run and feature's panel; returns which histogram bars are outside."""
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
    shade = colour("pymc")
    ax.fill_between(
        curve["x"],
        curve["low"],
        curve["high"],
        color=shade,
        alpha=0.3,
        label="predictive density, 94%",
    )
    ax.plot(
        curve["x"],
        curve["mean"],
        color=shade,
        lw=1.2,
        label="predictive density, mean",
    )
    return outside
