"""Stephens' (2000) KL relabelling of mixture draws (mixtures.relabel).

The classification probabilities are recomputed here independently, with
:func:`mixtures.em.e_step` on one :class:`MixtureParams` per draw, so the
objective and the fixed-point checks do not reuse the module's own density.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import xlogy

import mixtures.relabel as relabel_module
from mixtures.em import e_step
from mixtures.params import MixtureParams
from mixtures.relabel import (
    RelabelResult,
    apply_permutations,
    label_switching_rate,
    stephens_relabel,
)

TRUE_WEIGHTS = np.array([0.5, 0.3, 0.2])
TRUE_MEANS = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
TRUE_COVARIANCES = np.array(
    [
        [[1.0, 0.3], [0.3, 0.8]],
        [[0.6, 0.0], [0.0, 1.2]],
        [[1.1, -0.2], [-0.2, 0.7]],
    ]
)
JITTER = 0.05
SEPARATION = 6.0  # smallest distance between two true means


def posterior_like_draws(n_draws, rng, jitter=JITTER):
    """Draws scattered by ``jitter`` around the true 3-component mixture."""
    weights = rng.dirichlet(TRUE_WEIGHTS * 2000, size=n_draws)
    means = TRUE_MEANS + rng.normal(scale=jitter, size=(n_draws, 3, 2))
    scale = np.exp(rng.normal(scale=jitter, size=(n_draws, 3, 1, 1)))
    covariances = TRUE_COVARIANCES * scale
    return weights, means, covariances


def sample_data(n_samples, rng):
    truth = MixtureParams(TRUE_WEIGHTS, TRUE_MEANS, TRUE_COVARIANCES)
    X, _ = truth.sample(n_samples, rng)
    return X


def random_permutations(n_draws, n_components, rng):
    return np.array([rng.permutation(n_components) for _ in range(n_draws)])


def common_permutation(perms):
    """The single permutation shared by every row, or None."""
    perms = np.asarray(perms)
    return perms[0] if np.all(perms == perms[0]) else None


def compose(first, then):
    """Row-wise ``first[s][then[s]]``: apply ``first``, then ``then``."""
    return np.take_along_axis(first, then, axis=1)


def reference_probabilities(X, weights, means, covariances):
    """p_s[n, k] by mixtures.em.e_step, shape (S, N, K)."""
    return np.stack(
        [
            np.exp(e_step(X, MixtureParams(w / w.sum(), m, c))[1])
            for w, m, c in zip(weights, means, covariances, strict=True)
        ]
    )


def total_kl(probs, perms):
    """Stephens' objective sum_s sum_n sum_k p log(p / Q) for these perms."""
    permuted = np.stack([p[:, order] for p, order in zip(probs, perms, strict=True)])
    Q = permuted.mean(axis=0)
    return float(np.sum(xlogy(permuted, permuted) - xlogy(permuted, Q)))


@pytest.fixture(scope="module")
def switched():
    """200 jittered draws, each with its components permuted at random."""
    rng = np.random.default_rng(2000)
    X = sample_data(300, rng)
    weights, means, covariances = posterior_like_draws(200, rng)
    applied = random_permutations(200, 3, rng)
    switched_draws = apply_permutations(applied, weights, means, covariances)
    return X, (weights, means, covariances), applied, switched_draws


# ---------------------------------------------------------------------------
# Recovery


def test_switched_draws_are_relabelled_consistently(switched):
    X, _, applied, draws = switched
    _, means_before, _ = draws
    # The test can fail: before relabelling a component's means span the
    # whole configuration, not the jitter.
    assert means_before.std(axis=0).max() > SEPARATION / 4

    result = stephens_relabel(X, *draws)

    assert isinstance(result, RelabelResult)
    assert result.converged
    assert result.n_iter <= 5
    weights, means, covariances = apply_permutations(result.permutations, *draws)
    # Every component's spread over draws is the jitter, not the separation.
    assert means.std(axis=0).max() < 3 * JITTER
    assert weights.std(axis=0).max() < 0.05
    assert_allclose(np.sort(weights.mean(axis=0)), np.sort(TRUE_WEIGHTS), atol=0.02)
    # The relabelled draw s is the original draw permuted by
    # applied[s][permutations[s]]: one global permutation for all draws.
    total = compose(applied, result.permutations)
    glob = common_permutation(total)
    assert glob is not None
    assert_allclose(means.mean(axis=0), TRUE_MEANS[glob], atol=3 * JITTER)
    assert_allclose(
        covariances.mean(axis=0), TRUE_COVARIANCES[glob], rtol=0.05, atol=0.02
    )
    # n_changed counts the draws not at the identity (the dominant labelling).
    assert result.n_changed == np.count_nonzero(
        np.any(result.permutations != np.arange(3), axis=1)
    )
    assert 0 < result.n_changed < 200
    assert label_switching_rate(result.permutations) == result.n_changed / 200
    assert result.classification.shape == (300, 3)
    assert_allclose(result.classification.sum(axis=1), 1.0)
    assert_array_equal(result.rows, np.arange(300))


def test_consistent_draws_are_left_unchanged():
    rng = np.random.default_rng(7)
    X = sample_data(250, rng)
    draws = posterior_like_draws(100, rng)

    result = stephens_relabel(X, *draws)

    assert result.converged
    assert result.n_iter == 1
    assert result.n_changed == 0
    assert_array_equal(result.permutations, np.tile(np.arange(3), (100, 1)))
    assert label_switching_rate(result.permutations) == 0.0


def test_result_does_not_depend_on_draw_order(switched):
    X, _, _, draws = switched
    order = np.random.default_rng(11).permutation(200)

    first = stephens_relabel(X, *draws)
    shuffled = stephens_relabel(X, *(array[order] for array in draws))

    unshuffled = np.empty_like(shuffled.permutations)
    unshuffled[order] = shuffled.permutations
    # Same labelling up to one global permutation g: unshuffled[s] = first[s][g].
    glob = np.argsort(first.permutations[0])[unshuffled[0]]
    assert_array_equal(unshuffled, first.permutations[:, glob])
    assert shuffled.n_changed == first.n_changed


def test_draw_order_invariance_with_overlapping_components():
    """The same, where the components overlap and the answer is not trivial."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(120, 2)) * [2.0, 1.0]
    weights = rng.dirichlet(np.full(3, 4.0), size=60)
    means = rng.normal(scale=1.0, size=(60, 3, 2))
    covariances = np.tile(np.eye(2), (60, 3, 1, 1)) * rng.uniform(
        0.5, 1.5, size=(60, 3, 1, 1)
    )
    order = rng.permutation(60)

    first = stephens_relabel(X, weights, means, covariances)
    shuffled = stephens_relabel(X, weights[order], means[order], covariances[order])

    unshuffled = np.empty_like(shuffled.permutations)
    unshuffled[order] = shuffled.permutations
    glob = np.argsort(first.permutations[0])[unshuffled[0]]
    assert_array_equal(unshuffled, first.permutations[:, glob])


def test_max_iter_is_reported(switched):
    X, _, _, draws = switched
    result = stephens_relabel(X, *draws, max_iter=1)
    assert not result.converged
    assert result.n_iter == 1


def test_initial_permutations_are_the_start(switched):
    X, _, applied, draws = switched
    undo = np.argsort(applied, axis=1)  # applied[s][undo[s]] is the identity
    result = stephens_relabel(X, *draws, initial_permutations=undo)
    # Starting at a consistent labelling, nothing moves.
    assert result.converged
    assert result.n_iter == 1
    assert common_permutation(compose(applied, result.permutations)) is not None
    # Reported relative to the most frequent permutation, which becomes the
    # identity (here: the most frequent of the applied permutations).
    rows, counts = np.unique(result.permutations, axis=0, return_counts=True)
    assert_array_equal(rows[np.argmax(counts)], np.arange(3))
    assert result.n_changed == 200 - counts.max()


def test_row_subset_is_seeded_and_documented():
    rng = np.random.default_rng(3)
    X = sample_data(2000, rng)
    draws = posterior_like_draws(20, rng)

    result = stephens_relabel(X, *draws, max_rows=150, seed=42)

    expected = np.sort(np.random.default_rng(42).choice(2000, 150, replace=False))
    assert_array_equal(result.rows, expected)
    assert result.classification.shape == (150, 3)
    again = stephens_relabel(X, *draws, max_rows=150, seed=42)
    assert_array_equal(again.rows, result.rows)
    other = stephens_relabel(X, *draws, max_rows=150, seed=43)
    assert not np.array_equal(other.rows, result.rows)
    everything = stephens_relabel(X, *draws, max_rows=None)
    assert_array_equal(everything.rows, np.arange(2000))


def test_chunked_probabilities_match_one_chunk(switched, monkeypatch):
    X, _, _, draws = switched
    whole = stephens_relabel(X, *draws)
    # A chunk smaller than one draw: every draw is its own chunk.
    monkeypatch.setattr(relabel_module, "_CHUNK_BYTES", 1)
    chunked = stephens_relabel(X, *draws)
    assert_array_equal(chunked.permutations, whole.permutations)
    assert_allclose(chunked.classification, whole.classification, rtol=1e-12)


def test_far_from_origin_data_match_e_step():
    rng = np.random.default_rng(9)
    # At 1e12, L^-1 x - L^-1 mu without a common origin loses ~1e-3.
    X = sample_data(200, rng) + 1e12
    weights, means, covariances = posterior_like_draws(30, rng)
    means = means + 1e12
    perms = random_permutations(30, 3, rng)
    draws = apply_permutations(perms, weights, means, covariances)

    result = stephens_relabel(X, *draws)

    probs = reference_probabilities(X, *draws)
    permuted = np.stack(
        [p[:, order] for p, order in zip(probs, result.permutations, strict=True)]
    )
    assert_allclose(result.classification, permuted.mean(axis=0), atol=1e-7)
    assert common_permutation(compose(perms, result.permutations)) is not None


# ---------------------------------------------------------------------------
# Properties on random inputs


@st.composite
def random_draws(draw):
    n_components = draw(st.integers(1, 4))
    n_features = draw(st.integers(1, 3))
    n_draws = draw(st.integers(1, 25))
    n_samples = draw(st.integers(2, 40))
    spread = draw(st.floats(0.1, 5.0))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = rng.normal(scale=2.0, size=(n_samples, n_features))
    weights = rng.dirichlet(np.ones(n_components), size=n_draws)
    means = rng.normal(scale=spread, size=(n_draws, n_components, n_features))
    factors = rng.normal(size=(n_draws, n_components, n_features, n_features))
    covariances = factors @ np.swapaxes(factors, -1, -2) + 0.2 * np.eye(n_features)
    max_rows = draw(st.none() | st.integers(1, 50))
    return X, weights, means, covariances, max_rows


@settings(max_examples=20, deadline=None)
@given(random_draws())
def test_output_is_valid_and_lowers_the_objective(case):
    X, weights, means, covariances, max_rows = case
    n_draws, n_components = weights.shape

    result = stephens_relabel(X, weights, means, covariances, max_rows=max_rows)

    perms = result.permutations
    assert perms.shape == (n_draws, n_components)
    assert np.issubdtype(perms.dtype, np.integer)
    assert_array_equal(
        np.sort(perms, axis=1), np.tile(np.arange(n_components), (n_draws, 1))
    )
    n_used = X.shape[0] if max_rows is None else min(max_rows, X.shape[0])
    assert result.rows.shape == (n_used,)
    assert np.all(np.diff(result.rows) > 0)

    probs = reference_probabilities(X[result.rows], weights, means, covariances)
    identity = np.tile(np.arange(n_components), (n_draws, 1))
    start, final = total_kl(probs, identity), total_kl(probs, perms)
    assert final <= start + 1e-9 * (1.0 + abs(start))

    permuted = np.stack([p[:, order] for p, order in zip(probs, perms, strict=True)])
    Q = permuted.mean(axis=0)
    assert_allclose(result.classification, Q, atol=1e-9)
    if result.converged:
        # A fixed point: no draw can lower its divergence to Q on its own.
        log_q = np.log(np.maximum(Q, np.finfo(float).tiny))
        for p, order in zip(probs, perms, strict=True):
            costs = [
                -np.sum(p[:, list(candidate)] * log_q)
                for candidate in itertools.permutations(range(n_components))
            ]
            own = -np.sum(p[:, order] * log_q)
            assert own <= min(costs) + 1e-8 * (1.0 + abs(own))


# ---------------------------------------------------------------------------
# Helpers


def test_apply_permutations_reorders_the_component_axis():
    perms = np.array([[0, 1, 2], [2, 0, 1]])
    weights = np.array([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]])
    means = np.arange(12.0).reshape(2, 3, 2)

    new_weights, new_means = apply_permutations(perms, weights, means)

    assert_array_equal(new_weights, [[0.1, 0.2, 0.7], [0.2, 0.5, 0.3]])
    assert_array_equal(new_means[1], means[1][[2, 0, 1]])
    assert_array_equal(new_means[0], means[0])
    (only,) = apply_permutations(perms, weights)
    assert_array_equal(only, new_weights)


def test_label_switching_rate():
    perms = np.array([[0, 1, 2], [1, 0, 2], [0, 1, 2], [2, 1, 0]])
    assert label_switching_rate(perms) == 0.5
    assert label_switching_rate(np.tile(np.arange(4), (5, 1))) == 0.0


# ---------------------------------------------------------------------------
# Bad input


def singular_at(covariances, draw, component):
    out = covariances.copy()
    out[draw, component] = [[1.0, 1.0], [1.0, 1.0]]
    return out


@pytest.fixture
def good():
    rng = np.random.default_rng(1)
    X = sample_data(40, rng)
    weights, means, covariances = posterior_like_draws(10, rng)
    return X, weights, means, covariances


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda X, w, m, c: (X, w, m[:, :2], c),
            r"means must have shape \(S, K, D\) = \(10, 3, 2\) .* got \(10, 2, 2\)",
        ),
        (
            lambda X, w, m, c: (X, w, m, c[:5]),
            r"covariances must have shape \(S, K, D, D\) = \(10, 3, 2, 2\) "
            r".* got \(5, 3, 2, 2\)",
        ),
        (
            lambda X, w, m, c: (X[:, :1], w, m, c),
            r"means must have shape \(S, K, D\) = \(10, 3, 1\)",
        ),
        (
            lambda X, w, m, c: (X, w[0], m, c),
            r"weights must have shape \(S, K\).* got shape \(3,\)",
        ),
        (
            lambda X, w, m, c: (X[:, 0], w, m, c),
            r"X must have shape \(N, D\).* got shape \(40,\)",
        ),
        (
            lambda X, w, m, c: (X, w, m, singular_at(c, 0, 1)),
            r"covariances\[0, 1\] is not positive definite",
        ),
        (
            lambda X, w, m, c: (X, -w, m, c),
            r"weights must be non-negative",
        ),
        (
            lambda X, w, m, c: (X, w, m * np.nan, c),
            r"means contain NaN",
        ),
    ],
)
def test_bad_input_raises(good, change, message):
    X, weights, means, covariances = good
    with pytest.raises(ValueError, match=message):
        stephens_relabel(*change(X, weights, means, covariances))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_rows": 0}, r"max_rows must be a positive integer or None"),
        ({"max_iter": 0}, r"max_iter must be a positive integer"),
        (
            {"initial_permutations": np.zeros((10, 3), dtype=int)},
            r"permutation of 0\.\.2; row 0 is \[0, 0, 0\]",
        ),
        (
            {"initial_permutations": np.tile(np.arange(3), (9, 1))},
            r"permutations must have shape \(S, K\) = \(10, 3\); got \(9, 3\)",
        ),
    ],
)
def test_bad_options_raise(good, kwargs, message):
    with pytest.raises(ValueError, match=message):
        stephens_relabel(*good, **kwargs)


def test_apply_permutations_checks_shapes():
    perms = np.tile(np.arange(3), (4, 1))
    with pytest.raises(ValueError, match=r"array 1 must have shape \(S, K, \.\.\.\) "):
        apply_permutations(perms, np.ones((4, 3)), np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"permutations must have shape \(S, K\)"):
        apply_permutations(np.arange(3), np.ones((4, 3)))
