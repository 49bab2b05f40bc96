"""The fused chunked pass: float32, memory, and independence of the executor."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning

import mixtures._covariance_linalg as covariance_linalg
from mixtures import GaussianMixture, MixtureParams
from mixtures.em import e_step, em_pass, sufficient_statistics

from gmm_helpers import random_mixture

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


@pytest.fixture(scope="module")
def separated():
    rng = np.random.default_rng(99)
    truth = random_mixture(rng, 4, 5, separation=4.0)
    X, _ = truth.sample(20_000, random_state=rng)
    return X, truth


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_fit_matches_float64(separated, covariance_type):
    X, truth = separated
    init = truth.as_covariance_type(covariance_type)
    options = dict(
        n_components=4,
        covariance_type=covariance_type,
        weights_init=init.weights,
        means_init=init.means,
        precisions_init=init.precisions,
        tol=1e-6,
    )
    double = GaussianMixture(**options).fit(X)
    single = GaussianMixture(**options).fit(X.astype(np.float32))
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert getattr(single, name).dtype == np.float32
    assert single.lower_bound_ == pytest.approx(double.lower_bound_, rel=1e-4)
    assert_array_equal(single.predict(X.astype(np.float32)), double.predict(X))
    assert_allclose(single.means_, double.means_, rtol=1e-3, atol=1e-3)
    assert single.score_samples(X[:5].astype(np.float32)).dtype == np.float32


def _peak_bytes_of_fit(X: np.ndarray, truth: MixtureParams) -> int:
    options = dict(
        n_components=truth.n_components,
        weights_init=truth.weights,
        means_init=truth.means,
        precisions_init=truth.precisions,
        max_iter=3,
        tol=0.0,
    )
    tracemalloc.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        GaussianMixture(**options).fit(X)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def test_memory_grows_with_n_like_the_outputs_not_like_copies(monkeypatch):
    """No float64 copy of float32 X, no (N, K) or (N, K, D) array in a fit.

    Chunk temporaries are a constant; what grows with N is X itself (not
    traced here) and the O(N) outputs: labels and log p(x), 16 bytes a row.
    A float64 copy of X would add 128 bytes a row, an (N, K) float64 array 64.
    One thread: with two, whether two chunks' temporaries overlap in time
    changes the peak by megabytes from run to run.
    """
    monkeypatch.setenv("GMMLAB_NUM_THREADS", "1")
    rng = np.random.default_rng(0)
    truth = random_mixture(rng, 8, 16)
    X = truth.sample(200_000, random_state=rng)[0].astype(np.float32)
    small, large = _peak_bytes_of_fit(X[:50_000], truth), _peak_bytes_of_fit(X, truth)
    growth_per_row = (large - small) / 150_000
    assert growth_per_row < 40, growth_per_row


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_pass_does_not_depend_on_chunking_or_threads(
    separated, covariance_type, monkeypatch
):
    X, truth = separated
    params = truth.as_covariance_type(covariance_type)
    weights = np.random.default_rng(1).uniform(size=X.shape[0])
    monkeypatch.setenv("GMMLAB_NUM_THREADS", "1")
    serial, serial_lpn = em_pass(X, weights, params)
    monkeypatch.setenv("GMMLAB_NUM_THREADS", "2")
    threaded, threaded_lpn = em_pass(X, weights, params)
    # Same chunks summed in the same order: bit-for-bit identical.
    assert_array_equal(threaded.second_moments, serial.second_moments)
    assert_array_equal(threaded_lpn, serial_lpn)
    monkeypatch.setattr(covariance_linalg, "_CHUNK_BYTES", 2**14)
    small, small_lpn = em_pass(X, weights, params)
    assert_allclose(small.second_moments, serial.second_moments, rtol=1e-10)
    assert_allclose(small_lpn, serial_lpn, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fused_pass_equals_separate_e_and_m_statistics(separated, covariance_type):
    X, truth = separated
    params = truth.as_covariance_type(covariance_type)
    weights = np.random.default_rng(2).uniform(size=X.shape[0])
    fused, log_prob_norm = em_pass(X, weights, params)
    reference_lpn, log_resp = e_step(X, params)
    reference = sufficient_statistics(
        X, weights, np.exp(log_resp), fused.centres, params.model
    )
    assert_allclose(log_prob_norm, reference_lpn, rtol=1e-12)
    assert_allclose(fused.weight_sums, reference.weight_sums, rtol=1e-10)
    assert_allclose(fused.second_moments, reference.second_moments, rtol=1e-8)


def test_far_offset_float32_stays_accurate():
    """Centring each chunk keeps float32 usable at an offset of 1e4."""
    rng = np.random.default_rng(5)
    truth = MixtureParams(
        [0.5, 0.5], [[0.0, 0.0], [6.0, 0.0]], np.stack([np.eye(2)] * 2)
    )
    X, _ = truth.sample(5000, random_state=rng)
    init = dict(
        weights_init=truth.weights,
        precisions_init=truth.precisions,
        tol=1e-6,
    )
    double = GaussianMixture(2, means_init=truth.means, **init).fit(X)
    shifted = GaussianMixture(2, means_init=truth.means + 1e4, **init).fit(
        (X + 1e4).astype(np.float32)
    )
    assert_allclose(shifted.means_ - 1e4, double.means_, atol=5e-3)
    assert_allclose(shifted.covariances_, double.covariances_, rtol=5e-3, atol=5e-3)
