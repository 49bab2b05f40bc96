"""The engine recovers known mixtures, however the data are placed or scaled."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from mixtures import GaussianMixture, MixtureParams, fit_em
from mixtures.align import hungarian

TRUTH = MixtureParams(
    weights=[0.5, 0.3, 0.2],
    means=[[0.0, 0.0], [6.0, 1.0], [-2.0, 7.0]],
    covariances=[
        [[1.0, 0.3], [0.3, 0.5]],
        [[0.6, -0.2], [-0.2, 1.2]],
        [[0.8, 0.0], [0.0, 0.8]],
    ],
)


def _match(estimated: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Order of estimated components matching the true ones (Hungarian)."""
    return hungarian(np.linalg.norm(true[:, None, :] - estimated[None, :, :], axis=2))


def test_recovers_a_known_mixture_within_standard_errors():
    rng = np.random.default_rng(2024)
    n = 5000
    X, _ = TRUTH.sample(n, random_state=rng)
    fitted = GaussianMixture(3, tol=1e-8, random_state=0).fit(X)
    order = _match(fitted.means_, TRUTH.means)
    weights, means = fitted.weights_[order], fitted.means_[order]
    covariances = fitted.covariances_[order]
    full = TRUTH.full_covariances()
    for k in range(3):
        n_k = n * TRUTH.weights[k]
        weight_se = np.sqrt(TRUTH.weights[k] * (1 - TRUTH.weights[k]) / n)
        assert abs(weights[k] - TRUTH.weights[k]) < 4 * weight_se
        mean_se = np.sqrt(np.diag(full[k]) / n_k)
        assert np.all(np.abs(means[k] - TRUTH.means[k]) < 4 * mean_se)
        # Var(s_ij) = (s_ij^2 + s_ii s_jj) / n for a Gaussian sample covariance.
        cov_se = np.sqrt(
            (full[k] ** 2 + np.outer(np.diag(full[k]), np.diag(full[k]))) / n_k
        )
        assert np.all(np.abs(covariances[k] - full[k]) < 4 * cov_se)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_far_from_origin_fits_like_centred_data(covariance_type):
    rng = np.random.default_rng(3)
    X, _ = TRUTH.sample(2000, random_state=rng)
    options = dict(
        n_components=3,
        covariance_type=covariance_type,
        tol=1e-10,
        random_state=0,
        reg_covar=0.0,
    )
    centred = GaussianMixture(**options).fit(X)
    shifted = GaussianMixture(**options).fit(X + 1e6)
    order = _match(shifted.means_ - 1e6, centred.means_)
    assert_allclose(shifted.means_[order] - 1e6, centred.means_, atol=1e-6)
    assert shifted.lower_bound_ == pytest.approx(centred.lower_bound_, rel=1e-7)
    relabelled = order.argsort()[centred.predict(X)]
    assert np.mean(shifted.predict(X + 1e6) == relabelled) > 0.999


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_features_on_very_different_scales_fit_like_scaled_data(covariance_type):
    rng = np.random.default_rng(4)
    X, _ = TRUTH.sample(2000, random_state=rng)
    scales = np.array([1e-3, 1e3])
    options = dict(
        n_components=3,
        covariance_type=covariance_type,
        tol=1e-10,
        random_state=0,
        reg_covar=0.0,
    )
    plain = GaussianMixture(**options).fit(X)
    scaled = GaussianMixture(**options).fit(X * scales)
    order = _match(scaled.means_ / scales, plain.means_)
    assert_allclose(scaled.means_[order] / scales, plain.means_, rtol=1e-6, atol=1e-8)
    # The log-likelihood changes by exactly the log-Jacobian of the scaling.
    assert scaled.lower_bound_ == pytest.approx(
        plain.lower_bound_ - np.log(scales).sum(), rel=1e-8
    )
    assert scaled.degenerate_events_ == []


def test_same_random_state_gives_identical_results(blobs):
    X, _ = blobs
    first = fit_em(X, 3, n_init=3, init_params="random", random_state=42)
    second = fit_em(X, 3, n_init=3, init_params="random", random_state=42)
    assert_array_equal(first.params.means, second.params.means)
    assert_array_equal(first.lower_bounds, second.lower_bounds)
    for a, b in zip(first.init_traces, second.init_traces, strict=True):
        assert_array_equal(a, b)
    generator_fit = fit_em(X, 3, random_state=np.random.default_rng(1))
    again = fit_em(X, 3, random_state=np.random.default_rng(1))
    assert_array_equal(generator_fit.params.means, again.params.means)


def test_zero_weights_equal_removed_rows(blobs):
    X, _ = blobs
    weights = np.ones(len(X))
    weights[::3] = 0.0
    init = dict(
        means_init=X[[0, 200, 400]] + 0.1,
        weights_init=[0.3, 0.3, 0.4],
        precisions_init=np.repeat(np.eye(2)[None], 3, axis=0),
    )
    weighted = GaussianMixture(3, **init).fit(X, sample_weight=weights)
    removed = GaussianMixture(3, **init).fit(X[weights > 0])
    assert_allclose(weighted.lower_bounds_, removed.lower_bounds_, rtol=1e-10)
    assert_allclose(weighted.covariances_, removed.covariances_, rtol=1e-9)


def test_weights_are_scale_free(blobs):
    X, _ = blobs
    weights = np.random.default_rng(0).uniform(0.5, 2.0, size=len(X))
    a = fit_em(X, 3, sample_weight=weights, random_state=0)
    b = fit_em(X, 3, sample_weight=1000 * weights, random_state=0)
    assert_allclose(a.params.means, b.params.means, rtol=1e-10)
    assert a.mean_log_likelihood == pytest.approx(b.mean_log_likelihood, rel=1e-12)
