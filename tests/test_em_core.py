"""Unit tests of the covariance models and the pure E/M-step functions.

Every helper is compared with a naive reference: scipy.stats densities,
weighted moments computed directly, scikit-learn's parameter counts.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from mixtures import MixtureParams
from mixtures.covariance import get_covariance_model
from mixtures.em import (
    DegeneracyPolicy,
    SufficientStats,
    e_step,
    em_step,
    estimate_log_gaussian_prob,
    m_step,
    sufficient_statistics,
)

from gmm_helpers import random_mixture

# scikit-learn's four: these tests compare with its private functions.
COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_features", [1, 3])
def test_log_density_matches_scipy(covariance_type, n_features, rng):
    params = random_mixture(rng, 3, n_features, covariance_type=covariance_type)
    X = rng.normal(scale=4, size=(50, n_features))
    full = params.full_covariances()
    expected = np.column_stack(
        [
            stats.multivariate_normal(params.means[k], full[k]).logpdf(X)
            for k in range(3)
        ]
    ).reshape(50, 3)
    assert_allclose(estimate_log_gaussian_prob(X, params), expected, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_precision_round_trips(covariance_type, rng):
    params = random_mixture(rng, 3, 4, covariance_type=covariance_type)
    model = params.model
    full_prec = np.linalg.inv(params.full_covariances())
    assert_allclose(
        model.to_full(params.precisions, 3, 4), full_prec, rtol=1e-9, atol=1e-12
    )
    chol = model.precision_cholesky_from_precisions(params.precisions)
    assert_allclose(model.precisions_from_cholesky(chol), params.precisions, rtol=1e-10)
    assert_allclose(
        model.covariances_from_precision_cholesky(chol), params.covariances, rtol=1e-9
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_parameter_count_matches_sklearn(covariance_type, rng):
    X = rng.normal(size=(40, 3))
    reference = SklearnGaussianMixture(2, covariance_type=covariance_type).fit(X)
    params = random_mixture(rng, 2, 3, covariance_type=covariance_type)
    assert params.n_parameters() == reference._n_parameters()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_responsibilities_sum_to_one(covariance_type, rng):
    params = random_mixture(rng, 4, 2, covariance_type=covariance_type)
    X, _ = params.sample(200, random_state=rng)
    log_prob_norm, log_resp = e_step(X, params)
    assert_allclose(np.exp(log_resp).sum(axis=1), 1.0, rtol=1e-12)
    density = sum(
        params.weights[k]
        * stats.multivariate_normal(params.means[k], params.full_covariances()[k]).pdf(
            X
        )
        for k in range(4)
    )
    assert_allclose(log_prob_norm, np.log(density), rtol=1e-10)


def _naive_m_step(X, weight, resp, covariance_type):
    """Weighted maximum likelihood, written out directly."""
    wr = resp * weight[:, None]
    nk = wr.sum(0)
    means = wr.T @ X / nk[:, None]
    full = np.stack(
        [
            (wr[:, k, None] * (X - means[k])).T @ (X - means[k]) / nk[k]
            for k in range(resp.shape[1])
        ]
    )
    covariances = {
        "full": full,
        "tied": np.einsum("k,kij->ij", nk, full) / nk.sum(),
        "diag": np.diagonal(full, axis1=1, axis2=2),
        "spherical": np.diagonal(full, axis1=1, axis2=2).mean(1),
    }[covariance_type]
    return nk / nk.sum(), means, covariances


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_m_step_is_weighted_maximum_likelihood(covariance_type, rng):
    X = rng.normal(size=(120, 3)) + 100.0
    weight = rng.uniform(0.1, 3.0, size=120)
    resp = rng.dirichlet(np.ones(3), size=120)
    model = get_covariance_model(covariance_type)
    centres = rng.normal(size=(3, 3)) + 100.0  # any reference point works
    stats_ = sufficient_statistics(X, weight, resp, centres, model)
    weights, means, covariances = m_step(stats_, model, reg_covar=0.0)
    expected = _naive_m_step(X, weight, resp, covariance_type)
    assert_allclose(weights, expected[0], rtol=1e-12)
    assert_allclose(means, expected[1], rtol=1e-12)
    assert_allclose(covariances, expected[2], rtol=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_statistics_add_over_chunks(covariance_type, rng):
    X = rng.normal(size=(101, 2))
    weight = rng.uniform(size=101)
    resp = rng.dirichlet(np.ones(2), size=101)
    model = get_covariance_model(covariance_type)
    centres = np.zeros((2, 2))
    whole = sufficient_statistics(X, weight, resp, centres, model)
    parts = [
        sufficient_statistics(X[s], weight[s], resp[s], centres, model)
        for s in (slice(0, 40), slice(40, 101))
    ]
    total = parts[0] + parts[1]
    assert isinstance(total, SufficientStats)
    assert_allclose(total.second_moments, whole.second_moments, rtol=1e-12)
    assert_allclose(total.first_moments, whole.first_moments, rtol=1e-12, atol=1e-13)
    assert_allclose(total.weight_sums, whole.weight_sums, rtol=1e-12)
    with pytest.raises(ValueError, match="different centres"):
        whole + sufficient_statistics(X, weight, resp, centres + 1, model)


def test_em_step_scores_the_parameters_entering_it(rng):
    params = random_mixture(rng, 2, 2)
    X, _ = params.sample(300, random_state=rng)
    weight = np.ones(300)
    policy = DegeneracyPolicy.for_data(X, weight, reg_covar=0.0)
    new_params, info = em_step(X, weight, params, policy)
    log_prob_norm, _ = e_step(X, params)
    assert info.lower_bound == pytest.approx(log_prob_norm.mean(), rel=1e-14)
    assert not info.events
    new_bound = e_step(X, new_params)[0].mean()
    assert new_bound >= info.lower_bound


def test_mixture_params_validation_and_conversions(rng):
    params = random_mixture(rng, 3, 2, covariance_type="diag")
    assert params.to_full().covariance_type == "full"
    assert_allclose(params.to_full().covariances, params.full_covariances())
    permuted = params.permute([2, 0, 1])
    assert_allclose(permuted.means[0], params.means[2])
    assert params.weights.flags.writeable is False
    with pytest.raises(ValueError, match="sum to one"):
        MixtureParams([0.5, 0.6], [[0.0], [1.0]], [[[1.0]], [[1.0]]])
    with pytest.raises(ValueError, match="shape"):
        MixtureParams([0.5, 0.5], [[0.0], [1.0]], [[1.0]], "full")
    with pytest.raises(ValueError, match="positive definite"):
        MixtureParams([1.0], [[0.0, 0.0]], [[[1.0, 2.0], [2.0, 1.0]]])
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        MixtureParams([1.0], [[0.0]], [1.0], "banana")
    with pytest.raises(ValueError, match="permutation"):
        params.permute([0, 0, 1])
