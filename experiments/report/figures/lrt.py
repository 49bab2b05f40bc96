"""The bootstrap likelihood-ratio tests' figure: each step's null distribution."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from experiments.report.figures.style import subplots

__all__ = ["lrt_figure"]


def lrt_figure(result) -> Figure:
    """One panel per step of a :class:`mixtures.lrt.LRTResult`.

    Each panel is the histogram of the step's bootstrap statistics (the
    distribution of ``2 (loglik_{K+1} - loglik_K)`` when K components are
    true) with the observed statistic as a vertical line, and the p-value
    in the title. An observed value far to the right of the histogram
    rejects K.
    """
    n_steps = len(result.n_components)
    ncols = min(n_steps, 3)
    nrows = -(-n_steps // ncols)
    fig, axes = subplots(nrows, ncols, height=2.9 * nrows, squeeze=False)
    for index, ax in enumerate(axes.ravel()):
        if index >= n_steps:
            ax.set_visible(False)
            continue
        k = int(result.n_components[index])
        values = result.bootstrap[:, index]
        observed = float(result.observed[index])
        ax.hist(values, bins=40, color="0.75", edgecolor="0.6", linewidth=0.5)
        ax.axvline(observed, color="#d62728", linewidth=2, linestyle="--")
        low = min(float(np.min(values)), observed)
        high = max(float(np.max(values)), observed)
        span = high - low or 1.0
        ax.set_xlim(low - 0.05 * span, high + 0.08 * span)
        verdict = "rejected" if result.p_values[index] <= result.level else "kept"
        ax.set_title(
            f"{k} vs {k + 1}: p = {result.p_values[index]:.3g} ({k} {verdict})"
        )
        ax.set_xlabel("LRTS = 2 (loglik K+1 - loglik K)")
        if index % ncols == 0:
            ax.set_ylabel("replicates")
    fig.suptitle(
        f"Bootstrap LRT, {result.model}: null distributions (grey) and observed "
        f"statistic (dashed), {result.bootstrap.shape[0]} replicates per step"
    )
    fig.tight_layout()
    return fig
