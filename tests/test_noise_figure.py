"""The noise figure's view of many features: the standardised principal plane."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from experiments.report.figures.noise import noise_figure, principal_plane


def _rows(seed=0, n=200, d=6):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)


def test_the_plane_is_scikit_learns_pca_of_the_standardised_columns():
    X = _rows()
    coordinates, explained = principal_plane(X)
    pca = PCA(n_components=2).fit(StandardScaler().fit_transform(X))
    reference = pca.transform(StandardScaler().fit_transform(X))
    # Equal up to each axis's sign.
    for axis in range(2):
        sign = np.sign(coordinates[:, axis] @ reference[:, axis])
        np.testing.assert_allclose(
            coordinates[:, axis], sign * reference[:, axis], atol=1e-10
        )
    np.testing.assert_allclose(explained, pca.explained_variance_ratio_, rtol=1e-10)


def test_the_plane_does_not_depend_on_units_or_row_order():
    X = _rows(seed=1)
    coordinates, explained = principal_plane(X)
    scaled, scaled_explained = principal_plane(X * [1e3, 1e-2, 1, 7, 1, 1e5] + 4)
    np.testing.assert_allclose(scaled, coordinates, atol=1e-8)
    np.testing.assert_allclose(scaled_explained, explained, rtol=1e-10)
    order = np.random.default_rng(2).permutation(X.shape[0])
    permuted, _ = principal_plane(X[order])
    np.testing.assert_allclose(permuted, coordinates[order], atol=1e-10)


def test_a_constant_column_is_only_centred():
    X = _rows(seed=3, d=4)
    X[:, 2] = 5.0
    coordinates, explained = principal_plane(X)
    assert np.isfinite(coordinates).all()
    reference, reference_explained = principal_plane(np.delete(X, 2, axis=1))
    np.testing.assert_allclose(np.abs(coordinates), np.abs(reference), atol=1e-10)
    np.testing.assert_allclose(explained, reference_explained, rtol=1e-10)


@pytest.mark.parametrize(
    ("d", "xlabel", "ylabel"),
    [(2, "f0", "f1"), (5, "principal component 1 (", "principal component 2 (")],
)
def test_the_figure_names_its_axes(d, xlabel, ylabel):
    X = _rows(seed=4, d=d)
    rows = np.arange(X.shape[0])
    components = np.where(rows % 10 == 0, 0, 1 + rows % 2)
    figure = noise_figure(X, components, [f"f{i}" for i in range(d)], "title")
    axis = figure.axes[0]
    assert axis.get_xlabel().startswith(xlabel)
    assert axis.get_ylabel().startswith(ylabel)


@pytest.mark.parametrize(
    ("n_noise", "label"), [(1, "noise (1 row)"), (3, "noise (3 rows)")]
)
def test_the_legend_counts_the_noise_rows(n_noise, label):
    X = _rows(seed=5, d=2)
    components = np.ones(X.shape[0], dtype=int)
    components[:n_noise] = 0
    figure = noise_figure(X, components, ["a", "b"], "title")
    texts = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert texts[-1] == label
