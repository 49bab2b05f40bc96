"""The engine is a drop-in scikit-learn estimator that agrees with scikit-learn.

* ``check_estimator`` passes with no expected-failure list;
* from identical initial parameters, every entry of ``lower_bounds_`` agrees
  with scikit-learn's to 1e-8 relative and the fitted parameters to 1e-6;
* from the same ``random_state`` with k-means or random responsibilities the
  whole fit agrees, because the initialisation consumes the random state the
  way scikit-learn does.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from sklearn.utils.estimator_checks import parametrize_with_checks

from mixtures import GaussianMixture

from gmm_helpers import random_mixture

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


@parametrize_with_checks([GaussianMixture()])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _problem(seed: int, n_components: int, n_features: int, n_samples: int):
    rng = np.random.default_rng(seed)
    truth = random_mixture(rng, n_components, n_features, separation=3.0)
    X, _ = truth.sample(n_samples, random_state=rng)
    return X, rng


def _initial_guess(X, n_components, covariance_type, rng):
    """Deliberately rough initial parameters, identical for both engines."""
    n_features = X.shape[1]
    weights = rng.dirichlet(np.full(n_components, 2.0))
    means = X[rng.choice(X.shape[0], n_components, replace=False)]
    spread = np.cov(X.T).reshape(n_features, n_features) + 0.1 * np.eye(n_features)
    precision = np.linalg.inv(spread)
    precisions = {
        "full": np.repeat(precision[None], n_components, 0),
        "tied": precision,
        "diag": np.repeat(np.diag(precision)[None], n_components, 0),
        "spherical": np.full(n_components, np.diag(precision).mean()),
    }[covariance_type]
    return {"weights_init": weights, "means_init": means, "precisions_init": precisions}


PROBLEMS = [
    # (seed, n_components, n_features, n_samples)
    (0, 3, 1, 400),
    (1, 2, 2, 500),
    (2, 4, 5, 800),
    (3, 3, 20, 1500),
]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: f"K{p[1]}-D{p[2]}")
def test_agrees_with_sklearn_from_identical_initial_parameters(
    problem, covariance_type
):
    seed, n_components, n_features, n_samples = problem
    X, rng = _problem(seed, n_components, n_features, n_samples)
    init = _initial_guess(X, n_components, covariance_type, rng)
    options = dict(
        n_components=n_components,
        covariance_type=covariance_type,
        tol=1e-10,
        max_iter=60,
        **init,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = GaussianMixture(**options).fit(X)
        reference = SklearnGaussianMixture(**options).fit(X)

    assert ours.n_iter_ == reference.n_iter_
    assert ours.converged_ == reference.converged_
    assert_allclose(ours.lower_bounds_, reference.lower_bounds_, rtol=1e-8)
    assert ours.lower_bound_ == pytest.approx(reference.lower_bound_, rel=1e-8)
    assert_allclose(ours.weights_, reference.weights_, rtol=1e-6, atol=1e-9)
    assert_allclose(ours.means_, reference.means_, rtol=1e-6, atol=1e-8)
    assert_allclose(ours.covariances_, reference.covariances_, rtol=1e-6, atol=1e-8)
    assert_allclose(ours.precisions_, reference.precisions_, rtol=1e-6, atol=1e-8)
    assert_allclose(
        ours.precisions_cholesky_, reference.precisions_cholesky_, rtol=1e-6, atol=1e-8
    )
    assert_array_equal(ours.predict(X), reference.predict(X))
    assert_allclose(ours.score_samples(X), reference.score_samples(X), rtol=1e-8)
    assert ours.bic(X) == pytest.approx(reference.bic(X), rel=1e-8)
    assert ours.aic(X) == pytest.approx(reference.aic(X), rel=1e-8)
    assert ours.degenerate_events_ == []


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("init_params", ["kmeans", "random"])
def test_same_random_state_gives_sklearns_fit(covariance_type, init_params):
    X, _ = _problem(11, 3, 3, 600)
    options = dict(
        n_components=3,
        covariance_type=covariance_type,
        init_params=init_params,
        n_init=2,
        random_state=5,
        max_iter=300,
    )
    ours = GaussianMixture(**options).fit(X)
    reference = SklearnGaussianMixture(**options).fit(X)
    assert_allclose(ours.lower_bounds_, reference.lower_bounds_, rtol=1e-8)
    order, reference_order = np.arange(3), np.arange(3)
    if np.ptp(ours.init_lower_bounds_) < 1e-9 * abs(ours.lower_bound_):
        # Both restarts reach one optimum with its labels permuted (k-means
        # found the same partition): which one "wins" is a last-bit tie, so
        # the fits are compared up to the order of their components.
        order = np.lexsort(ours.means_.T)
        reference_order = np.lexsort(reference.means_.T)
    assert_allclose(
        ours.means_[order], reference.means_[reference_order], rtol=1e-6, atol=1e-8
    )
    if covariance_type != "tied":
        assert_allclose(
            ours.covariances_[order],
            reference.covariances_[reference_order],
            rtol=1e-6,
            atol=1e-8,
        )
    else:
        assert_allclose(ours.covariances_, reference.covariances_, rtol=1e-6, atol=1e-8)


def test_warm_start_continues_like_sklearn():
    X, _ = _problem(4, 3, 2, 500)
    options = dict(n_components=3, warm_start=True, max_iter=2, random_state=0)
    ours, reference = GaussianMixture(**options), SklearnGaussianMixture(**options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(4):
            ours.fit(X)
            reference.fit(X)
            assert_allclose(ours.lower_bounds_, reference.lower_bounds_, rtol=1e-8)
    assert_allclose(ours.means_, reference.means_, rtol=1e-8)


def test_max_iter_zero_keeps_initial_parameters_like_sklearn():
    X, _ = _problem(5, 2, 2, 200)
    ours = GaussianMixture(2, max_iter=0, random_state=0).fit(X)
    reference = SklearnGaussianMixture(2, max_iter=0, random_state=0).fit(X)
    assert ours.n_iter_ == 0
    assert ours.lower_bound_ == -np.inf == reference.lower_bound_
    assert_allclose(ours.means_, reference.means_, rtol=1e-10)


def test_fit_predict_equals_fit_then_predict(blobs):
    X, _ = blobs
    labels = GaussianMixture(3, random_state=1).fit_predict(X)
    assert_array_equal(labels, GaussianMixture(3, random_state=1).fit(X).predict(X))


def test_float32_input_keeps_float32_attributes(blobs):
    X, _ = blobs
    ours = GaussianMixture(3, random_state=0).fit(X.astype(np.float32))
    for name in ("weights_", "means_", "covariances_", "precisions_"):
        assert getattr(ours, name).dtype == np.float32
    reference = GaussianMixture(3, random_state=0).fit(X)
    assert ours.lower_bound_ == pytest.approx(reference.lower_bound_, rel=1e-4)


def test_sample_draws_from_the_fitted_mixture(blobs):
    X, _ = blobs
    model = GaussianMixture(3, random_state=0).fit(X)
    drawn, labels = model.sample(20_000)
    assert drawn.shape == (20_000, 2)
    assert np.all(np.diff(labels) >= 0)
    shares = np.bincount(labels, minlength=3) / labels.size
    assert_allclose(shares, model.weights_, atol=0.015)
    for k in range(3):
        assert_allclose(drawn[labels == k].mean(0), model.means_[k], atol=0.06)
    with pytest.raises(ValueError, match="at least one sample"):
        model.sample(0)


def test_scikit_learns_tied_start_from_random_points_is_n_over_k_too_wide():
    """The report explains scikit-learn's tied fits from random points (all
    stopped at a saddle) by this: its tied covariance sums X^T X over every
    row, but the one-hot start gives only K rows any responsibility. If
    scikit-learn changes this, the report's sentence must change too."""
    from sklearn.mixture._gaussian_mixture import _estimate_gaussian_parameters

    from mixtures.data import load_faithful
    from mixtures.fitting import initial_parameters
    from mixtures.initialization import initial_responsibilities

    X = load_faithful()
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    n, k = X.shape[0], 3
    resp = initial_responsibilities(X, k, "random_from_data", np.random.RandomState(0))
    _, _, theirs = _estimate_gaussian_parameters(X, resp, 1e-6, "tied")
    second_moment = X.T @ X / n
    np.testing.assert_allclose(theirs, n / k * second_moment, rtol=0.02)
    # Ours: the scatter of the K chosen rows (zero) plus reg_covar.
    ours = initial_parameters(
        X, k, covariance_type="tied", init_params="random_from_data", random_state=0
    )
    assert np.all(np.linalg.eigvalsh(ours.full_covariances()[0]) < 1e-3)
