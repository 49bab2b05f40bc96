"""Figures of a mixture density estimate: the density with its HDRs, and its fit.

:func:`density_figure` draws a :class:`mixtures.density.MixtureDensity`
over its data with the highest density regions of Hyndman (1996): in 1-D the
density over a histogram with the HDR intervals shaded, in 2-D the data with
the HDR contours, in more dimensions the pairwise marginal densities of the
first few features with each marginal's own HDR contours.
:func:`probability_plot_figure` draws the diagnostics of a one-dimensional
density (:func:`mixtures.density.density_diagnostic`): fitted against
empirical CDF, and the Q-Q plot. Each returns a
:class:`~matplotlib.figure.Figure`.
"""

from __future__ import annotations

import itertools

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from experiments.report.figures.style import SMALL_TYPE, subplots
from mixtures.density import (
    DEFAULT_PROBABILITIES,
    MixtureDensity,
    density_diagnostic,
)

__all__ = ["density_figure", "probability_plot_figure"]

#: Features whose pairs a density of more than two features shows (6 panels).
MAX_PAIR_FEATURES = 4
_GRID = 200


def density_figure(
    density: MixtureDensity,
    X,
    feature_names=None,
    probabilities=DEFAULT_PROBABILITIES,
) -> Figure:
    """The density over its data with its highest density regions.

    Parameters
    ----------
    density : MixtureDensity
    X : array-like of shape (n_samples, n_features) or (n_samples,)
        The data drawn under the density.
    feature_names : sequence of str, optional
        Axis labels; by default the density's, else ``x1, x2...``.
    probabilities : sequence of float, default=(0.25, 0.5, 0.75, 0.95)
        The HDRs drawn (levels from :meth:`MixtureDensity.hdr_levels`).

    Returns
    -------
    Figure
        1-D: one axis, the density curve over a histogram of the data with
        each HDR shaded under the curve (darker: smaller probability).
        2-D: one axis, the data with one labelled contour per probability.
        More: the pairwise marginal densities of the first
        :data:`MAX_PAIR_FEATURES` features, each with its own HDR contours
        (the title says which features).
    """
    X = density._rows(X)
    names = _names(density, feature_names)
    probabilities = sorted({float(p) for p in np.atleast_1d(probabilities)})
    title = _title(density)
    if density.n_features == 1:
        fig, ax = subplots(height=5.0)
        _draw_1d(ax, density, X[:, 0], probabilities, names[0])
        ax.set_title(title)
    elif density.n_features == 2:
        fig, ax = subplots(height=5.4)
        _draw_2d(ax, density, X, probabilities, names)
        ax.set_title(f"{title}: HDR contours")
    else:
        shown = list(range(min(density.n_features, MAX_PAIR_FEATURES)))
        pairs = list(itertools.combinations(shown, 2))
        ncols = min(3, len(pairs))
        nrows = -(-len(pairs) // ncols)
        fig, axes = subplots(nrows, ncols, height=3.2 * nrows, squeeze=False)
        for ax, pair in zip(axes.flat, pairs, strict=False):
            marginal = MixtureDensity(density.marginal(list(pair)))
            _draw_2d(ax, marginal, X[:, list(pair)], probabilities, names, pair)
        for ax in list(axes.flat)[len(pairs) :]:
            ax.axis("off")
        fig.suptitle(
            f"{title}: pairwise marginal HDR contours of the first "
            f"{len(shown)} of {density.n_features} features"
        )
    fig.tight_layout()
    return fig


def _names(density: MixtureDensity, feature_names) -> list[str]:
    if feature_names is None:
        feature_names = density.feature_names
    if feature_names is None:
        return [f"x{j + 1}" for j in range(density.n_features)]
    names = [str(name) for name in feature_names]
    if len(names) != density.n_features:
        raise ValueError(
            f"feature_names has {len(names)} names for {density.n_features} features."
        )
    return names


def _title(density: MixtureDensity) -> str:
    text = f"{density.model},{density.n_components} mixture density"
    if np.isfinite(density.bic):
        text += f" (BIC {density.bic:.2f}, lower is better)"
    return text


def _shades(probabilities) -> list:
    """One blue per probability, darkest for the smallest."""
    cmap = matplotlib.colormaps["Blues"]
    count = len(probabilities)
    return [cmap(0.98 - 0.48 * i / max(1, count - 1)) for i in range(count)]


def _draw_1d(ax, density: MixtureDensity, x, probabilities, name: str) -> None:
    """Histogram, density curve and the HDRs shaded under the curve."""
    span = np.ptp(x)
    grid = np.linspace(x.min() - 0.1 * span, x.max() + 0.1 * span, 1000)
    f = density.pdf(grid)
    hist = ax.hist(
        x,
        bins="auto",
        density=True,
        histtype="step",
        color="#404040",
        zorder=3,
        label="data (histogram)",
    )[2]
    levels = density.hdr_levels(probabilities)
    shades = _shades(probabilities)
    regions = {}
    # Largest region first, so the smaller (darker) ones are drawn over it.
    for p, level, shade in reversed(
        list(zip(probabilities, levels, shades, strict=True))
    ):
        where = ", ".join(f"[{a:.4g}, {b:.4g}]" for a, b in density.hdr_intervals(p))
        regions[p] = ax.fill_between(
            grid,
            0,
            f,
            where=f >= level,
            color=shade,
            alpha=0.8,
            linewidth=0,
            label=f"{p:.0%} HDR (f >= {level:.3g}): {where}",
        )
    (curve,) = ax.plot(grid, f, "k-", linewidth=1.5, label="fitted density")
    ax.set_xlabel(name)
    ax.set_ylabel("density (per unit of x)")
    ax.set_ylim(bottom=0)
    handles = [curve, hist[0], *(regions[p] for p in probabilities)]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)


def _draw_2d(ax, density: MixtureDensity, X, probabilities, names, pair=(0, 1)):
    """The data and one contour per probability at its HDR level, labelled."""
    pad = 0.15 * np.ptp(X, axis=0)
    low, high = X.min(axis=0) - pad, X.max(axis=0) + pad
    u = np.linspace(low[0], high[0], _GRID)
    v = np.linspace(low[1], high[1], _GRID)
    U, V = np.meshgrid(u, v)
    f = density.pdf(np.column_stack([U.ravel(), V.ravel()])).reshape(U.shape)
    ax.scatter(X[:, 0], X[:, 1], s=6, color="#7f7f7f", alpha=0.6, zorder=1)
    levels = density.hdr_levels(probabilities)
    # contour wants increasing levels: the largest probability first.
    order = np.argsort(levels)
    shades = _shades(probabilities)
    contours = ax.contour(
        U,
        V,
        f,
        levels=levels[order],
        colors=[shades[i] for i in order],
        linewidths=1.6,
        zorder=2,
    )
    label_of = {
        level: f"{probabilities[i]:.0%}"
        for level, i in zip(contours.levels, order, strict=True)
    }
    ax.clabel(contours, fmt=label_of, fontsize=SMALL_TYPE, inline=True)
    ax.set_xlabel(names[pair[0]])
    ax.set_ylabel(names[pair[1]])
    return contours


def probability_plot_figure(density: MixtureDensity, x=None) -> Figure:
    """Fitted against empirical CDF, and the Q-Q plot, of a 1-D density.

    Parameters
    ----------
    density : MixtureDensity
        A mixture of one feature.
    x : array-like of shape (n,), optional
        The data; by default those of ``density.search``.

    Returns
    -------
    Figure
        Left, the fitted CDF (line) over the empirical CDF (steps) with the
        Kolmogorov-Smirnov distance; right, the sorted data against the
        fitted quantiles at the plotting positions, with the line y = x.
    """
    diagnostic = density_diagnostic(density, x)
    name = (density.feature_names or ("x",))[0]
    fig, (left, right) = subplots(1, 2, height=3.8)
    values = diagnostic.x
    span = np.ptp(values)
    grid = np.linspace(values.min() - 0.1 * span, values.max() + 0.1 * span, 600)
    n = values.shape[0]
    left.step(
        values,
        np.arange(1, n + 1) / n,
        where="post",
        color="k",
        linewidth=1,
        label="empirical CDF",
    )
    left.plot(grid, density.cdf(grid), color="#1f77b4", linewidth=2, label="fitted CDF")
    left.set_xlabel(name)
    left.set_ylabel("cumulative probability")
    left.set_title(f"CDF (KS distance {diagnostic.ks_statistic:.3f})")
    left.legend(loc="upper left")
    right.scatter(diagnostic.fitted_quantiles, values, s=8, color="#1f77b4")
    ends = [
        min(values.min(), diagnostic.fitted_quantiles.min()),
        max(values.max(), diagnostic.fitted_quantiles.max()),
    ]
    right.plot(ends, ends, "k--", linewidth=1, label="y = x")
    right.set_xlabel("quantile of the fitted density")
    right.set_ylabel(f"sample quantile of {name}")
    right.set_title("Q-Q plot")
    right.legend(loc="upper left")
    fig.suptitle(f"{_title(density)}: fit to the data")
    fig.tight_layout()
    return fig
