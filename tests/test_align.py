"""Component matching and recovery metrics against closed forms and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.linalg import sqrtm
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from mixtures import MixtureParams
from mixtures.align import (
    align,
    bures_distance,
    match_components,
    mixture_kl,
    pairwise_w2,
    recovery_metrics,
)

from gmm_helpers import random_mixture


def test_bures_matches_the_matrix_square_root_formula(rng):
    for _ in range(5):
        a, b = (m @ m.T + 0.1 * np.eye(3) for m in rng.normal(size=(2, 3, 3)))
        root = sqrtm(a)
        expected = np.trace(a) + np.trace(b) - 2 * np.trace(sqrtm(root @ b @ root)).real
        assert bures_distance(a, b) == pytest.approx(np.sqrt(expected), rel=1e-8)
    assert bures_distance(a, a) == pytest.approx(0.0, abs=1e-7)


def test_w2_of_diagonal_gaussians_has_a_closed_form():
    means = np.array([[0.0, 0.0]]), np.array([[1.0, 2.0]])
    covs = np.array([np.diag([1.0, 4.0])]), np.array([np.diag([9.0, 1.0])])
    # Commuting covariances: B^2 = sum (sqrt(a_i) - sqrt(b_i))^2 = 4 + 1.
    assert pairwise_w2(means[0], covs[0], means[1], covs[1])[0, 0] == pytest.approx(
        10.0
    )


@pytest.mark.parametrize("seed", range(5))
def test_matching_undoes_a_permutation(seed):
    rng = np.random.default_rng(seed)
    params = random_mixture(rng, 5, 3)
    order = rng.permutation(5)
    shuffled = params.permute(order)
    recovered = match_components(shuffled, params)
    assert_array_equal(order[recovered], np.arange(5))
    assert_allclose(align(shuffled, params).means, params.means)


def test_matching_uses_covariances_when_means_coincide():
    wide, narrow = np.eye(2) * 4.0, np.eye(2) * 0.25
    reference = MixtureParams([0.5, 0.5], [[0.0, 0.0], [0.0, 0.0]], [wide, narrow])
    estimate = MixtureParams([0.5, 0.5], [[0.05, 0.0], [0.0, 0.05]], [narrow, wide])
    assert_array_equal(match_components(estimate, reference), [1, 0])


def test_matching_refuses_different_shapes(rng):
    with pytest.raises(ValueError, match="different numbers of components"):
        match_components(random_mixture(rng, 2, 2), random_mixture(rng, 3, 2))


def test_kl_of_shifted_gaussians_matches_the_closed_form():
    truth = MixtureParams([1.0], [[0.0]], [[[1.0]]])
    shifted = MixtureParams([1.0], [[0.6]], [[[1.0]]])
    kl, se = mixture_kl(truth, shifted, n_samples=40_000, random_state=0)
    assert abs(kl - 0.18) < 4 * se  # KL = delta^2 / 2
    assert se < 0.01


def test_recovery_metrics_of_the_truth_itself(rng):
    truth = random_mixture(rng, 3, 2)
    X, labels = truth.sample(3000, random_state=1)
    shuffled = truth.permute([2, 0, 1])
    metrics = recovery_metrics(shuffled, truth, X=X, true_labels=labels, random_state=0)
    for key in ("weight_l1", "mean_rmse", "cov_frobenius"):
        assert metrics[key] == pytest.approx(0.0, abs=1e-12)
    assert metrics["cov_bures"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["kl"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["ari"] > 0.95


def test_recovery_metrics_agree_with_direct_computations(rng):
    truth = random_mixture(rng, 3, 2)
    estimate = MixtureParams(
        truth.weights[[1, 0, 2]] * 0 + [0.3, 0.3, 0.4],
        truth.means[[1, 0, 2]] + 0.1,
        truth.full_covariances()[[1, 0, 2]] * 1.1,
    )
    X, labels = truth.sample(2000, random_state=3)
    metrics = recovery_metrics(estimate, truth, X=X, true_labels=labels, random_state=0)
    aligned = align(estimate, truth)
    assert metrics["weight_l1"] == pytest.approx(
        np.abs(aligned.weights - truth.weights).sum()
    )
    assert metrics["mean_rmse"] == pytest.approx(0.1)
    from mixtures.em import predict_labels

    predicted = predict_labels(X, aligned)
    assert metrics["ari"] == pytest.approx(adjusted_rand_score(labels, predicted))
    assert metrics["nmi"] == pytest.approx(
        normalized_mutual_info_score(labels, predicted)
    )


def test_sample_draws_from_the_mixture(rng):
    params = random_mixture(rng, 2, 2)
    n = 50_000
    X, labels = params.sample(n, random_state=0)
    counts = np.bincount(labels, minlength=2)
    # Within 4 standard errors: binomial counts, and Wishart-type sample
    # covariances, Var(S_ij) = (S_ii S_jj + S_ij^2) / n_k.
    weight_se = np.sqrt(params.weights * (1 - params.weights) / n)
    assert np.all(np.abs(counts / n - params.weights) < 4 * weight_se)
    truth = params.full_covariances()[0]
    cov_se = np.sqrt((np.outer(np.diag(truth), np.diag(truth)) + truth**2) / counts[0])
    assert np.all(np.abs(np.cov(X[labels == 0].T) - truth) < 4 * cov_se)
    again, _ = params.sample(n, random_state=0)
    assert_array_equal(X, again)


def test_samples_are_nested(rng):
    params = random_mixture(rng, 3, 2)
    small, small_labels = params.sample(100, random_state=7)
    large, large_labels = params.sample(1000, random_state=7)
    assert_array_equal(small, large[:100])
    assert_array_equal(small_labels, large_labels[:100])


@pytest.mark.parametrize("n_features", [1, 4, 13])
def test_samples_are_the_per_row_product_bit_for_bit(rng, n_features):
    # Drawn component by component (O(n D) memory), the rows are exactly
    # mean_k + L_k z of each row's own factor, as every seed has drawn them.
    params = random_mixture(rng, 5, n_features)
    X, labels = params.sample(2_000, random_state=3)
    _, noise_rng = np.random.default_rng(3).spawn(2)
    noise = noise_rng.standard_normal((2_000, n_features))
    factors = np.linalg.cholesky(params.full_covariances())
    per_row = params.means[labels] + np.einsum("nij,nj->ni", factors[labels], noise)
    assert_array_equal(X, per_row)
