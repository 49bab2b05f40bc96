"""A fitted mixture drawn over its data.

In 2-D or more, points coloured by component with 1- and 2-sigma
ellipses; in 1-D, a histogram with the mixture density and every weighted
component density. Components are numbered 1..K as in ``gmmlab fit``.
"""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse

from experiments.fit_views import component_densities, mixture_density
from experiments.report.figures.style import subplots
from mixtures import MixtureParams

__all__ = ["draw_mixture", "mixture_figure"]


def mixture_figure(X, labels, params: MixtureParams, names, title: str) -> Figure:
    """One fitted mixture over its data (:func:`draw_mixture`) under ``title``."""
    fig, ax = subplots(height=4.2)
    draw_mixture(ax, X, labels, params, names)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def draw_mixture(ax, X, labels, params: MixtureParams, names) -> None:
    """A fitted mixture over its data on ``ax``; components numbered 1..K.

    In 2-D or more (the first two columns of ``X``), 500 random points
    coloured by ``labels`` (0-based) with 1- and 2-sigma ellipses; in 1-D, a
    histogram with the mixture density and every weighted component density,
    each component normalised on its own.
    """
    cmap = matplotlib.colormaps["tab10"]
    if X.shape[1] == 1:
        _draw_density(ax, X, params, names[0])
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
        title="ellipses: 1 and 2 sd",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])


def _draw_density(ax, X, params: MixtureParams, name: str) -> None:
    """A 1-D mixture: histogram, mixture density, weighted component densities."""
    cmap = matplotlib.colormaps["tab10"]
    grid = np.linspace(X.min() - 0.1 * np.ptp(X), X.max() + 0.1 * np.ptp(X), 400)
    ax.hist(X[:, 0], bins=60, density=True, color="#cccccc", label="data")
    ax.plot(grid, mixture_density(grid, params), "k-", label="mixture density")
    for k, density in enumerate(component_densities(grid, params)):
        ax.plot(
            grid,
            density,
            "--",
            color=cmap(k % 10),
            label=f"component {k + 1}, weight {params.weights[k]:.2f}",
        )
    ax.set_xlabel(name)
    ax.set_ylabel("density (per unit of x)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _ellipse(ax, mean, cov, scale, colour) -> None:
    """The ``scale``-sigma ellipse of a 2-D Gaussian (dashed beyond 1 sigma)."""
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
