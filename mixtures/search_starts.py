"""The starts of a model search: mclust's hierarchical ones, k-means, random.

The first pass's starts are shared by every model of a given K
(:func:`_all_starts`); the second pass starts each cell from the other
models' maxima and from split and merge moves of its neighbours
(:func:`_shared_starts`). See :mod:`mixtures.select` for the scheme.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from sklearn.cluster import KMeans

from mixtures.em import e_step, score_and_label
from mixtures.hierarchical import HC_MODELS, HC_TRANSFORMS, hierarchical_partitions
from mixtures.initialization import hc_rows
from mixtures.params import MixtureParams

#: The hierarchical starts: (criterion, transformation), mclust's first.
_HC_STARTS = tuple(
    [("VVV", "svd")]
    + [(m, t) for m in HC_MODELS for t in HC_TRANSFORMS if (m, t) != ("VVV", "svd")]
)


def _kmeans_resp(X: np.ndarray, k: int, seed: int) -> np.ndarray:
    labels = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(X).labels_
    resp = np.zeros((X.shape[0], k))
    resp[np.arange(X.shape[0]), labels] = 1.0
    return resp


def _hc_trees(X: np.ndarray, max_k: int, seed: int) -> dict[str, tuple]:
    """The merge trees of every hierarchical start, built once per search.

    ``{name: (rows, partitions)}``: ``"hc"`` is mclust's default (the
    regularised VVV criterion on the scaled SVD of the data), the others
    the five other criterion x transformation pairs mclust offers
    (``hc(modelName=, use=)``). Above ``HC_MAX_SAMPLES`` rows every tree is
    built on one seeded subsample, and the other rows start unassigned.
    """
    rows = hc_rows(X.shape[0], np.random.default_rng(seed))
    levels = min(max_k, rows.size)
    trees = {}
    for model, transform in _HC_STARTS:
        name = (
            "hc"
            if (model, transform) == ("VVV", "svd")
            else (f"hc-{model}-{transform}")
        )
        trees[name] = (
            rows,
            hierarchical_partitions(X[rows], levels, model=model, transform=transform),
        )
    return trees


def _starts(
    X: np.ndarray,
    k: int,
    trees: dict[str, tuple],
    n_random_starts: int,
    n_soft_starts: int,
    seeds: np.ndarray,
) -> tuple[list[str], list[np.ndarray]]:
    """Every start of the cells with ``k`` components, shared by all models.

    Hierarchical partitions first (mclust's own start is the first), then
    ``n_random_starts`` k-means partitions and ``n_soft_starts`` random
    responsibilities (each row drawn from the flat Dirichlet distribution,
    which spreads the initial means further apart than scikit-learn's
    uniform ``init_params='random'``); a partition equal to an earlier one
    is dropped, since it would give the same fit.
    """
    n_samples = X.shape[0]
    names, resp, seen = [], [], set()

    def add(name: str, candidate: np.ndarray) -> None:
        key = _canonical(candidate)
        if key not in seen:  # the same partition would give the same fit
            seen.add(key)
            names.append(name)
            resp.append(candidate)

    for name, (rows, tree) in trees.items():
        if k > tree.shape[0]:
            continue
        candidate = np.zeros((n_samples, k))
        candidate[rows, tree[k - 1]] = 1.0
        add(name, candidate)
    if k > 1:
        for i in range(n_random_starts):
            add(f"kmeans-{i}", _kmeans_resp(X, k, int(seeds[i])))
        rng = np.random.RandomState(int(seeds[-1]))
        for i in range(n_soft_starts):
            names.append(f"random-{i}")  # soft: never equal to another start
            resp.append(rng.dirichlet(np.ones(k), size=n_samples))
    return names, resp


def _canonical(resp: np.ndarray) -> bytes:
    """A partition's labels renumbered in order of first appearance."""
    return _canonical_labels(resp.argmax(axis=1))


def _canonical_labels(labels: np.ndarray) -> bytes:
    _, first = np.unique(labels, return_index=True)
    order = np.empty(int(labels.max()) + 1, dtype=np.intp)
    order[labels[np.sort(first)]] = np.arange(first.size)
    return order[labels].tobytes()


def _split_largest(X: np.ndarray, params: MixtureParams, *, kernel: str) -> np.ndarray:
    """K + 1 labels: the fit's largest cluster cut in two along its major axis.

    The split move of split-and-merge EM (Ueda, Nakano, Ghahramani & Hinton
    2000): the rows of the largest cluster go to one side or the other of
    its mean along the leading eigenvector of its fitted covariance.
    """
    labels = score_and_label(X, params, kernel=kernel)[1]
    largest = int(np.argmax(np.bincount(labels, minlength=params.n_components)))
    axis = np.linalg.eigh(params.full_covariances()[largest])[1][:, -1]
    rows = np.flatnonzero(labels == largest)
    side = (X[rows] - params.means[largest]) @ axis > 0
    labels = labels.copy()
    labels[rows[side]] = params.n_components
    return labels


def _merge_closest(X: np.ndarray, params: MixtureParams) -> np.ndarray:
    """K - 1 labels: the fit's two most overlapping components merged.

    The merge move of split-and-merge EM (Ueda et al. 2000), with the
    overlap of components i and j measured as ``sum_n min(tau_ni, tau_nj)``.
    """
    resp = np.exp(e_step(X, params)[1])
    k = params.n_components
    overlap = np.array(
        [[np.minimum(resp[:, i], resp[:, j]).sum() for j in range(k)] for i in range(k)]
    )
    np.fill_diagonal(overlap, -np.inf)
    i, j = sorted(np.unravel_index(np.argmax(overlap), overlap.shape))
    labels = resp.argmax(axis=1)
    labels[labels == j] = i
    labels[labels > j] -= 1
    return labels


def _shared_starts(
    X: np.ndarray, results: dict, cells: Sequence[tuple[str, int]], kernel: str
) -> dict[tuple[str, int], tuple[list[str], list[np.ndarray]]]:
    """Second-pass starts, from the maxima the first pass found.

    For a cell (model, K):

    * the MAP partition of every ok start run to convergence in the other
      models' cells with the same K (``VVV-fit`` ...): models of one K often
      share their clusters and differ in how they shape them, so one
      model's maximum is a good start for its neighbours;
    * the same model's fit with K - 1 components, its largest cluster split
      (``split``), and with K + 1, its two closest components merged
      (``merge``): the moves of split-and-merge EM (Ueda et al. 2000), which
      reach what mclust's nested hierarchical partitions reach.

    Duplicates and the cell's own partition are dropped. mclust starts every
    model from one hierarchical partition instead. Labels are computed on
    ``kernel``, the search's.
    """
    labels: list[tuple[tuple[str, int], np.ndarray]] = []
    for cell, (row, params, _) in results.items():
        if params is not None:
            labels.extend((cell, label) for label in row["_partitions"])
    second = {}
    for model, k in cells:
        if k == 1:
            continue
        own = results[(model, k)][1]
        seen = set()
        if own is not None:
            seen.add(_canonical_labels(score_and_label(X, own, kernel=kernel)[1]))
        candidates = [
            (f"{other}-fit", label)
            for (other, k_other), label in labels
            if k_other == k and other != model
        ]
        for neighbour, move, name in (
            (k - 1, functools.partial(_split_largest, kernel=kernel), "split"),
            (k + 1, _merge_closest, "merge"),
        ):
            row, params, _ = results.get((model, neighbour), ({}, None, None))
            if params is not None and row["status"] == "ok":
                candidates.append((name, move(X, params)))
        names, resp = [], []
        for name, label in candidates:
            key = _canonical_labels(label)
            if key in seen or np.unique(label).size != k:
                continue
            seen.add(key)
            names.append(name)
            one_hot = np.zeros((X.shape[0], k))
            one_hot[np.arange(X.shape[0]), label] = 1.0
            resp.append(one_hot)
        if names:
            second[(model, k)] = (names, resp)
    return second


def _all_starts(
    X: np.ndarray,
    ks: Sequence[int],
    n_random_starts: int,
    n_soft_starts: int,
    random_state: int | None,
) -> dict[int, tuple[list[str], list[np.ndarray]]]:
    """The first pass's starts of every K (:func:`_starts`), seeded."""
    seed_sequence = np.random.SeedSequence(0 if random_state is None else random_state)
    seeds = {
        k: child.generate_state(n_random_starts + 1)
        for k, child in zip(ks, seed_sequence.spawn(len(ks)), strict=True)
    }
    trees = _hc_trees(X, max(ks), int(seed_sequence.generate_state(1)[0]))
    return {
        k: _starts(X, k, trees, n_random_starts, n_soft_starts, seeds[k]) for k in ks
    }
