"""Model-based agglomerative hierarchical clustering (mixtures.hierarchical)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.metrics import adjusted_rand_score

from mixtures.hierarchical import _transform, hierarchical_partitions

FAITHFUL = Path(__file__).resolve().parents[1] / "mixtures" / "data" / "faithful.csv"

MODELS = ("VVV", "EII")
TRANSFORMS = ("svd", "var", "none")


def canonical(labels: np.ndarray) -> np.ndarray:
    """Relabel 0, 1, ... in order of first appearance."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.intp)
    rank[np.argsort(first)] = np.arange(first.size)
    return rank[inverse]


def assert_valid_tree(partitions: np.ndarray, n_samples: int) -> None:
    """Row k-1 is a canonical k-partition that splits one cluster of row k-2."""
    max_components = partitions.shape[0]
    assert partitions.shape == (max_components, n_samples)
    assert np.issubdtype(partitions.dtype, np.integer)
    assert np.all(partitions[0] == 0)
    for k in range(1, max_components + 1):
        row = partitions[k - 1]
        assert np.array_equal(np.unique(row), np.arange(k)), k
        np.testing.assert_array_equal(canonical(row), row)
        if k == 1:
            continue
        coarse = partitions[k - 2]
        # nested: every k-cluster lies inside one (k-1)-cluster ...
        for label in range(k):
            assert np.unique(coarse[row == label]).size == 1, (k, label)
        # ... so exactly one (k-1)-cluster splits in two
        pieces = [np.unique(row[coarse == c]).size for c in range(k - 1)]
        assert sorted(pieces) == [1] * (k - 2) + [2], (k, pieces)


def load_faithful() -> np.ndarray:
    data = np.genfromtxt(FAITHFUL, delimiter=",", names=True)
    return np.column_stack([data["eruptions"], data["waiting"]])


# ---------------------------------------------------------------------------
# Agreement with independent references


@pytest.mark.parametrize(("n_samples", "n_features"), [(80, 1), (150, 2), (120, 5)])
def test_eii_equals_scipy_ward(n_samples, n_features):
    rng = np.random.default_rng(n_samples + n_features)
    centres = rng.normal(scale=4.0, size=(4, n_features))
    X = centres[rng.integers(4, size=n_samples)] + rng.normal(
        size=(n_samples, n_features)
    )
    partitions = hierarchical_partitions(X, 6, model="EII", transform="none")
    tree = linkage(X, method="ward")
    for k in range(1, 7):
        reference = fcluster(tree, k, criterion="maxclust")
        assert adjusted_rand_score(reference, partitions[k - 1]) == 1.0, k
        np.testing.assert_array_equal(partitions[k - 1], canonical(reference))


def _brute_force_tree(Z, max_components, model, alpha=1.0, beta=1.0):
    """Greedy agglomeration straight from the definitions: O(n^4), tiny n only.

    Every candidate merge is scored by recomputing the cluster terms from the
    member points; ties (none expected on continuous data) go to the first
    pair of clusters ordered by their lowest member.
    """
    n, d = Z.shape
    alpha_eff = alpha * np.sum((Z - Z.mean(axis=0)) ** 2) / (n * d)

    def term(members):
        points = Z[members]
        size = len(members)
        centred = points - points.mean(axis=0)
        scatter = centred.T @ centred
        trace = np.trace(scatter)
        if model == "EII":
            return trace
        if d == 1:
            return size * np.log((trace + alpha_eff) / size)
        det = max(np.linalg.det(scatter / size), 0.0) if size > d else 0.0
        return size * np.log(det + beta * (trace + alpha_eff) / size)

    clusters = [[i] for i in range(n)]
    rows = {}
    while True:
        clusters.sort(key=min)
        if len(clusters) <= max_components:
            labels = np.empty(n, dtype=np.intp)
            for label, members in enumerate(clusters):
                labels[members] = label
            rows[len(clusters)] = labels
        if len(clusters) == 1:
            break
        best = None
        for i, j in itertools.combinations(range(len(clusters)), 2):
            a, b = clusters[i], clusters[j]
            cost = term(a + b) - term(a) - term(b)
            if best is None or cost < best[0]:
                best = (cost, i, j)
        _, i, j = best
        merged = clusters[i] + clusters[j]
        clusters = [c for k, c in enumerate(clusters) if k not in (i, j)]
        clusters.append(merged)
    return np.array([rows[k] for k in range(1, max_components + 1)])


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("transform", ["svd", "none"])
@pytest.mark.parametrize(("n_samples", "n_features"), [(14, 1), (18, 2), (16, 3)])
def test_matches_brute_force_greedy(model, transform, n_samples, n_features):
    rng = np.random.default_rng(7 * n_samples + n_features)
    X = rng.normal(size=(n_samples, n_features)) * rng.uniform(
        0.5, 4.0, size=n_features
    )
    X[: n_samples // 2] += 3.0
    got = hierarchical_partitions(X, 8, model=model, transform=transform)
    expected = _brute_force_tree(_transform(X, transform), 8, model)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(("alpha", "beta"), [(50.0, 1.0), (1.0, 0.01)])
def test_alpha_and_beta_change_the_tree_as_defined(alpha, beta):
    """The brute-force comparison is sensitive to the regularisation constants."""
    rng = np.random.default_rng(11)
    X = rng.normal(size=(18, 2)) * [3.0, 0.5]
    X[:9] += [2.0, 1.0]
    Z = _transform(X, "none")
    default = _brute_force_tree(Z, 8, "VVV")
    expected = _brute_force_tree(Z, 8, "VVV", alpha=alpha, beta=beta)
    assert not np.array_equal(default, expected)
    np.testing.assert_array_equal(
        hierarchical_partitions(
            X, 8, model="VVV", transform="none", alpha=alpha, beta=beta
        ),
        expected,
    )


def test_svd_transform_is_mclusts_scaled_svd():
    """hcUse = "SVD": Z = X_s V D^(-1/2) with X_s centred and scaled (sd, n - 1)."""
    rng = np.random.default_rng(10)
    X = rng.normal(size=(50, 3)) @ rng.normal(size=(3, 3)) + [5.0, -1.0, 100.0]
    standardised = (X - X.mean(axis=0)) / X.std(axis=0, ddof=1)
    _, singular, vt = np.linalg.svd(standardised, full_matrices=False)
    expected = standardised @ vt.T / np.sqrt(singular)
    Z = _transform(X, "svd")
    signs = np.sign(np.sum(Z * expected, axis=0))  # singular vectors' sign is free
    np.testing.assert_allclose(Z * signs, expected, atol=1e-10)
    np.testing.assert_allclose(_transform(X, "var"), standardised, atol=1e-12)
    np.testing.assert_array_equal(_transform(X, "none"), X)


# ---------------------------------------------------------------------------
# Structure, determinism, invariances


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("transform", TRANSFORMS)
def test_partitions_are_nested_and_canonical(model, transform):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(90, 3)) + np.repeat(rng.normal(scale=5, size=(3, 3)), 30, 0)
    partitions = hierarchical_partitions(X, 9, model=model, transform=transform)
    assert_valid_tree(partitions, 90)


@pytest.mark.parametrize("model", MODELS)
def test_extreme_max_components(model):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(12, 2))
    one = hierarchical_partitions(X, 1, model=model)
    np.testing.assert_array_equal(one, np.zeros((1, 12), dtype=int))
    full = hierarchical_partitions(X, 12, model=model)
    assert_valid_tree(full, 12)
    np.testing.assert_array_equal(full[-1], np.arange(12))
    two_rows = hierarchical_partitions(X[:2], 2, model=model)
    np.testing.assert_array_equal(two_rows, [[0, 0], [0, 1]])


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("transform", TRANSFORMS)
def test_deterministic_and_translation_invariant(model, transform):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(120, 2)) * [2.0, 0.5]
    first = hierarchical_partitions(X, 7, model=model, transform=transform)
    again = hierarchical_partitions(X.copy(), 7, model=model, transform=transform)
    np.testing.assert_array_equal(first, again)
    shifted = hierarchical_partitions(
        X + np.array([250.0, -40.0]), 7, model=model, transform=transform
    )
    np.testing.assert_array_equal(first, shifted)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("transform", ["svd", "var"])
def test_standardising_transforms_ignore_column_scale(model, transform):
    rng = np.random.default_rng(6)
    X = rng.normal(size=(100, 3)) + np.repeat(rng.normal(scale=3, size=(4, 3)), 25, 0)
    base = hierarchical_partitions(X, 6, model=model, transform=transform)
    rescaled = hierarchical_partitions(
        X * [1000.0, -0.01, 3.0], 6, model=model, transform=transform
    )
    np.testing.assert_array_equal(base, rescaled)


def test_ward_without_transform_ignores_rotation_and_uniform_scale():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(100, 2)) + np.repeat([[0, 0], [4, 1], [1, 5]], [30, 40, 30], 0)
    angle = 0.7
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    )
    base = hierarchical_partitions(X, 6, model="EII", transform="none")
    moved = hierarchical_partitions(
        7.5 * X @ rotation.T, 6, model="EII", transform="none"
    )
    np.testing.assert_array_equal(base, moved)


@pytest.mark.parametrize("model", MODELS)
def test_row_order_does_not_change_the_tree(model):
    """Without ties the tree depends on the points, not on their order."""
    rng = np.random.default_rng(9)
    X = rng.normal(size=(80, 2)) + np.repeat(rng.normal(scale=4, size=(4, 2)), 20, 0)
    base = hierarchical_partitions(X, 8, model=model)
    order = rng.permutation(80)
    permuted = hierarchical_partitions(X[order], 8, model=model)
    unpermuted = np.empty_like(permuted)
    unpermuted[:, order] = permuted
    for k in range(8):
        np.testing.assert_array_equal(canonical(unpermuted[k]), base[k])


# ---------------------------------------------------------------------------
# Clustering quality


def _elongated_parallel_clusters(seed: int, n_per_cluster: int = 100):
    """Two long thin parallel clusters 2 apart plus a perpendicular third.

    Ward (spherical) cuts the parallel pair across its length; a criterion
    that models cluster shape should not.
    """
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n_per_cluster, 2)) * [5.0, 0.15]
    b = rng.normal(size=(n_per_cluster, 2)) * [5.0, 0.15] + [0.0, 2.0]
    c = rng.normal(size=(n_per_cluster, 2)) * [0.15, 5.0] + [20.0, 1.0]
    # Units in which cluster variances exceed 1, so the determinant term of
    # the regularised VVV criterion dominates its trace term.
    X = 10.0 * np.vstack([a, b, c])
    return X, np.repeat([0, 1, 2], n_per_cluster)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vvv_separates_elongated_clusters_that_ward_splits(seed):
    X, truth = _elongated_parallel_clusters(seed)
    vvv = hierarchical_partitions(X, 3, model="VVV", transform="none")[2]
    ward = hierarchical_partitions(X, 3, model="EII", transform="none")[2]
    ari_vvv = adjusted_rand_score(truth, vvv)
    ari_ward = adjusted_rand_score(truth, ward)
    assert ari_vvv >= 0.9
    assert ari_vvv >= ari_ward + 0.3


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("transform", TRANSFORMS)
def test_well_separated_shaped_clusters_recovered(model, transform):
    rng = np.random.default_rng(12)
    a = rng.normal(size=(80, 2)) * [3.0, 0.3]
    b = rng.normal(size=(60, 2)) @ np.array([[1.5, 1.2], [0.0, 0.4]]) + [20.0, 15.0]
    c = rng.normal(size=(70, 2)) * 0.5 + [0.0, 25.0]
    X = np.vstack([a, b, c])
    truth = np.repeat([0, 1, 2], [80, 60, 70])
    labels = hierarchical_partitions(X, 3, model=model, transform=transform)[2]
    assert adjusted_rand_score(truth, labels) >= 0.95


def test_univariate_vvv_uses_v_criterion_and_finds_groups():
    rng = np.random.default_rng(13)
    x = np.concatenate([rng.normal(0.0, 0.3, 60), rng.normal(5.0, 1.5, 90)])
    truth = np.repeat([0, 1], [60, 90])
    for transform in TRANSFORMS:
        partitions = hierarchical_partitions(x[:, None], 4, transform=transform)
        assert_valid_tree(partitions, 150)
        assert adjusted_rand_score(truth, partitions[1]) >= 0.9


def test_old_faithful_three_groups():
    X = load_faithful()
    assert X.shape == (272, 2)
    partitions = hierarchical_partitions(X, 3, model="VVV", transform="svd")
    assert_valid_tree(partitions, 272)
    sizes = np.bincount(partitions[2])
    assert sizes.sum() == 272
    assert sizes.min() >= 10
    # The two-group cut is the familiar short / long eruption split.
    assert adjusted_rand_score(X[:, 0] > 3.0, partitions[1]) >= 0.9


# ---------------------------------------------------------------------------
# Ties and degenerate data


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("transform", TRANSFORMS)
def test_integer_rounded_data_with_many_ties(model, transform):
    rng = np.random.default_rng(14)
    X = np.round(rng.normal(size=(300, 2)) * [3.0, 1.0])  # ~10 distinct values each
    assert np.unique(X, axis=0).shape[0] < 150
    partitions = hierarchical_partitions(X, 8, model=model, transform=transform)
    assert_valid_tree(partitions, 300)
    again = hierarchical_partitions(X, 8, model=model, transform=transform)
    np.testing.assert_array_equal(partitions, again)
    # exact ties are decided by index, not by rounding noise of the shift
    shifted = hierarchical_partitions(
        X + np.array([100.0, 7.0]), 8, model=model, transform=transform
    )
    np.testing.assert_array_equal(partitions, shifted)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("transform", TRANSFORMS)
def test_degenerate_data(model, transform):
    identical = np.ones((10, 3))
    partitions = hierarchical_partitions(identical, 4, model=model, transform=transform)
    assert_valid_tree(partitions, 10)
    # all costs tie: lowest index pairs merge first, so the last rows split off
    np.testing.assert_array_equal(partitions[3], [0, 0, 0, 0, 0, 0, 0, 1, 2, 3])

    rng = np.random.default_rng(15)
    base = rng.normal(size=(40, 2))
    constant_column = np.column_stack([base, np.full(40, 3.0)])
    duplicated_column = np.column_stack([base, base[:, 0]])
    collinear = np.column_stack([base[:, 0], 2.0 * base[:, 0] + 1.0])
    for X in (constant_column, duplicated_column, collinear):
        partitions = hierarchical_partitions(X, 5, model=model, transform=transform)
        assert_valid_tree(partitions, 40)


def test_ward_merges_duplicates_before_anything_else():
    """Merging duplicates costs 0 under Ward. (Not so under VVV, whose
    -n log n terms can make a close third point join a duplicate pair first.)
    """
    rng = np.random.default_rng(16)
    X = rng.normal(size=(30, 2))
    X = np.vstack([X, X[:5]])  # rows 30..34 duplicate rows 0..4
    partitions = hierarchical_partitions(X, 35, model="EII", transform="none")
    row = partitions[29]  # 30 clusters: only the five duplicate pairs merged
    np.testing.assert_array_equal(row[30:], row[:5])
    assert np.unique(row[:30]).size == 30


# ---------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("X", "kwargs", "message"),
    [
        (np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]]), {}, "NaN or infinite"),
        (np.array([[0.0, 1.0], [np.inf, 2.0], [1.0, 1.0]]), {}, "NaN or infinite"),
        (np.array([[0.0, 1.0]]), {"max_components": 1}, "at least 2 samples"),
        (np.arange(5.0), {}, r"reshape\(-1, 1\)"),
        (np.zeros((3, 2, 2)), {}, "must be 2-D"),
        (np.zeros((4, 0)), {}, "no features"),
        (np.array([[1 + 2j, 0], [0, 1]]), {}, "real"),
        (np.array([["a", "b"], ["c", "d"]]), {}, "real numbers"),
        (np.zeros((5, 2)), {"max_components": 0}, "1 <= max_components <= n_samples"),
        (np.zeros((5, 2)), {"max_components": 6}, "n_samples = 5; got 6"),
        (np.zeros((5, 2)), {"model": "VII"}, "model must be one of 'VVV', 'EII'"),
        (np.zeros((5, 2)), {"model": "vvv"}, "case-sensitive"),
        (np.zeros((5, 2)), {"transform": "pca"}, "'svd', 'var', 'none'"),
        (np.zeros((5, 2)), {"alpha": 0.0}, "alpha must be positive"),
        (np.zeros((5, 2)), {"beta": np.nan}, "beta must be positive"),
    ],
)
def test_bad_input_raises_value_error(X, kwargs, message):
    kwargs = {"max_components": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        hierarchical_partitions(X, **kwargs)


@pytest.mark.parametrize("max_components", [2.0, "3", None, True])
def test_non_integer_max_components(max_components):
    with pytest.raises(TypeError, match="max_components must be an integer"):
        hierarchical_partitions(np.zeros((5, 2)), max_components)


def test_accepts_lists_and_integer_arrays():
    X = [[0, 0], [0, 1], [10, 10], [10, 11]]
    expected = [[0, 0, 0, 0], [0, 0, 1, 1]]
    for data in (X, np.array(X), np.array(X, dtype=np.float32)):
        for model in MODELS:
            np.testing.assert_array_equal(
                hierarchical_partitions(data, np.int64(2), model=model), expected
            )
