"""A fit with a uniform noise component drawn over its data.

Rows the fit calls noise are grey crosses, the others coloured by their
component (1..K, as in ``noise_assignments.csv``); in 1-D, the values along
the axis with each row's label as its height band. Above two features the rows
are drawn on the first two principal components of the standardised features
(each column centred and divided by its standard deviation, so the picture
does not depend on the units): the first two columns alone rarely show why a
row in ten or more dimensions lies outside every cluster.
"""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from experiments.report.figures.style import subplots

__all__ = ["noise_figure", "principal_plane"]


def principal_plane(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``X`` (n_samples, n_features) on their first two principal axes.

    The columns are standardised first (a constant column is only centred).
    Each axis is signed so that its largest loading is positive, which makes
    the picture the same for any order of rows.

    Returns
    -------
    coordinates : ndarray of shape (n_samples, 2)
    explained : ndarray of shape (2,)
        The share of the standardised data's variance along each axis.
    """
    X = np.asarray(X, dtype=float)
    spread = X.std(axis=0)
    Z = (X - X.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    _, singular, axes = np.linalg.svd(Z, full_matrices=False)
    axes = axes[:2]
    signs = np.sign(axes[np.arange(2), np.argmax(np.abs(axes), axis=1)])
    axes = axes * signs[:, None]
    total = float(np.sum(singular**2))
    explained = singular[:2] ** 2 / total if total > 0 else np.zeros(2)
    return Z @ axes.T, explained


def noise_figure(X, components, names, title: str) -> Figure:
    """Rows of ``X`` (n_samples, n_features) by ``components`` (n,; 0 noise).

    Two features: the two columns; more: the first two principal components
    of the standardised features (:func:`principal_plane`); noise as grey
    crosses over the clustered rows. One feature: a strip of the values, one band per
    component and one for the noise.
    """
    X = np.asarray(X, dtype=float)
    components = np.asarray(components, dtype=int)
    cmap = matplotlib.colormaps["tab10"]
    fig, ax = subplots(height=4.2)
    noise = components == 0
    if X.shape[1] == 1:
        rng = np.random.default_rng(0)
        height = components + rng.uniform(-0.25, 0.25, size=components.size)
        colours = ["0.45" if k == 0 else cmap((k - 1) % 10) for k in components]
        ax.scatter(X[:, 0], height, c=colours, s=8, alpha=0.7)
        ax.set_yticks(range(int(components.max()) + 1))
        ax.set_yticklabels(
            ["noise", *(str(k) for k in range(1, int(components.max()) + 1))]
        )
        ax.set_xlabel(names[0])
        ax.set_ylabel("component")
    else:
        if X.shape[1] > 2:
            X, explained = principal_plane(X)
            names = [
                f"principal component {i + 1} ({share:.0%} of the variance)"
                for i, share in enumerate(explained)
            ]
        clustered = ~noise
        ax.scatter(
            X[clustered, 0],
            X[clustered, 1],
            c=[cmap((k - 1) % 10) for k in components[clustered]],
            s=8,
            alpha=0.7,
        )
        ax.scatter(X[noise, 0], X[noise, 1], marker="x", color="0.3", s=18)
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        n_clusters = int(components.max())
        n_noise = int(noise.sum())
        handles = [
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                color=cmap(k % 10),
                label=f"component {k + 1}",
            )
            for k in range(n_clusters)
        ]
        handles.append(
            Line2D(
                [],
                [],
                marker="x",
                linestyle="",
                color="0.3",
                label=f"noise ({n_noise} row{'' if n_noise == 1 else 's'})",
            )
        )
        ax.legend(handles=handles, loc="best", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig
