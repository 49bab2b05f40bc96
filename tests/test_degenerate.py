"""The degenerate-component policy: never LinAlgError, never NaN, every event logged."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from experiments.scenarios import S1_SERIES
from mixtures import DegenerateComponentWarning, GaussianMixture, fit_em


def _fit_quietly(*args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit_em(*args, **kwargs)
    return result, [w.category for w in caught]


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical", "tied"])
def test_s1_series_without_regularisation_completes_for_every_seed(covariance_type):
    """Scenario S1: 13 identical values, K = 3, reg_covar = 0, 50 seeds."""
    collapsed_fits = 0
    for seed in range(50):
        result, categories = _fit_quietly(
            S1_SERIES,
            3,
            covariance_type=covariance_type,
            reg_covar=0.0,
            init_params="random_from_data",
            random_state=seed,
        )
        params = result.params
        for array in (
            params.weights,
            params.means,
            params.covariances,
            params.precisions_cholesky,
            result.lower_bounds,
        ):
            assert np.all(np.isfinite(array)), seed
        assert np.isfinite(result.log_likelihood)
        # One-point initial components have zero variance: each is floored at
        # initialisation (or reseeded, when two seeds drew the same value).
        first = [e for e in result.events if e.iteration == 0]
        floored = {e.component for e in first if e.action == "floor"}
        reseeded = {e.component for e in first if e.action == "reseed"}
        if covariance_type == "tied":
            assert floored == {-1}, seed
        else:
            assert floored | reseeded == {0, 1, 2}, seed
        assert DegenerateComponentWarning in categories
        # Whenever a final component sits collapsed on the floor, the last
        # iteration logged the floor for it.
        final_variances = np.atleast_1d(
            params.full_covariances()[:, 0, 0]
            if covariance_type != "tied"
            else params.covariances[0, 0]
        )
        if np.any(final_variances < 1e-6):
            collapsed_fits += 1
            last = [e for e in result.events if e.iteration == result.n_iter]
            assert any(e.action == "floor" for e in last), seed
    assert collapsed_fits < 50


def test_duplicated_random_draws_are_reseeded():
    """S1's original bug: drawing 44.4457 twice gives components that never separate."""
    duplicated = [
        seed
        for seed in range(50)
        if np.unique(
            S1_SERIES[np.random.RandomState(seed).choice(50, 3, replace=False)]
        ).size
        < 3
    ]
    assert duplicated, "the series should make some seeds draw a value twice"
    for seed in duplicated:
        result, _ = _fit_quietly(
            S1_SERIES, 3, init_params="random_from_data", random_state=seed
        )
        reseeds = [e for e in result.events if e.action == "reseed"]
        assert reseeds
        assert reseeds[0].iteration == 0
        assert "duplicate" in reseeds[0].reason
        assert np.unique(np.round(result.params.means, 6)).size == 3


def test_collapsed_component_where_sklearn_raises():
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(size=(40, 2)), np.full((10, 2), 5.0)]
    options = dict(
        n_components=2,
        reg_covar=0.0,
        means_init=[[0.0, 0.0], [5.0, 5.0]],
        random_state=0,
    )
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        SklearnGaussianMixture(**options).fit(X)
    with pytest.warns(DegenerateComponentWarning, match="floor"):
        model = GaussianMixture(**options).fit(X)
    assert {(e.component, e.action) for e in model.degenerate_events_} == {(1, "floor")}
    assert np.all(np.isfinite(model.score_samples(X)))
    assert np.all(np.linalg.eigvalsh(model.covariances_) > 0)


def test_constant_feature_without_regularisation():
    rng = np.random.default_rng(1)
    X = np.c_[rng.normal(size=100), np.full(100, 3.0)]
    for covariance_type in ("full", "tied", "diag"):
        with pytest.raises(ValueError, match="ill-defined"):
            SklearnGaussianMixture(
                2, covariance_type=covariance_type, reg_covar=0.0, random_state=0
            ).fit(X)
        with pytest.warns(DegenerateComponentWarning):
            model = GaussianMixture(
                2, covariance_type=covariance_type, reg_covar=0.0, random_state=0
            ).fit(X)
        assert np.all(np.isfinite(model.score_samples(X)))
        expected = {-1} if covariance_type == "tied" else {0, 1}
        assert {e.component for e in model.degenerate_events_} == expected
        assert {e.action for e in model.degenerate_events_} == {"floor"}
    # A spherical variance averages over features: one constant feature does
    # not collapse it, and nothing needs repairing.
    model = GaussianMixture(
        2, covariance_type="spherical", reg_covar=0.0, random_state=0
    ).fit(X)
    assert model.degenerate_events_ == []


def test_empty_component_is_reseeded_at_the_worst_explained_point(blobs):
    X, truth = blobs
    means = np.r_[truth.means[:2], [[1e3, 1e3]]]  # third start explains nothing
    with pytest.warns(DegenerateComponentWarning):
        model = GaussianMixture(3, means_init=means, tol=1e-8, max_iter=300).fit(X)
    events = model.degenerate_events_
    assert [(e.iteration, e.component, e.action, e.reason) for e in events] == [
        (1, 2, "reseed", "empty component")
    ]
    assert model.weights_.min() > 0.1
    recovered = np.sort(model.means_[:, 0])
    assert np.allclose(recovered, np.sort(truth.means[:, 0]), atol=0.5)


def test_trace_after_reseed_is_not_declared_converged(blobs):
    X, truth = blobs
    means = np.r_[truth.means[:2], [[1e3, 1e3]]]
    with pytest.warns(DegenerateComponentWarning):
        result = fit_em(X, 3, means_init=means, tol=10.0)
    # tol=10 would stop at iteration 2 but the reseed at 1 forbids it.
    assert result.n_iter == 3
    assert result.converged


def test_duplicate_initial_means_separate(rng):
    from mixtures import MixtureParams

    truth = MixtureParams([0.5, 0.5], [[0.0], [8.0]], [[[1.0]], [[1.0]]])
    X, _ = truth.sample(400, random_state=rng)
    with pytest.warns(DegenerateComponentWarning, match="reseed"):
        result = fit_em(
            X,
            2,
            means_init=[[4.0], [4.0]],
            weights_init=[0.5, 0.5],
            precisions_init=[[[0.1]], [[0.1]]],
            tol=1e-8,
        )
    assert [(e.iteration, e.component, e.action) for e in result.events] == [
        (0, 1, "reseed")
    ]
    assert np.allclose(np.sort(result.params.means[:, 0]), [0.0, 8.0], atol=0.3)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_more_components_than_distinct_points_ends_quickly(covariance_type):
    """scikit-learn's test_regularisation data: 10 components on 2 points."""
    X = np.vstack((np.ones((5, 5)), np.zeros((5, 5))))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DegenerateComponentWarning)
        model = GaussianMixture(10, covariance_type=covariance_type, random_state=0)
        fit = model.fit(X)
    messages = [str(w.message) for w in caught]
    assert any("2 distinct rows, fewer than n_components" in m for m in messages)
    assert fit.converged_
    assert fit.n_iter_ < 20
    assert len(fit.degenerate_events_) <= 10
    assert np.all(np.isfinite(fit.weights_))
    with pytest.raises(ValueError, match="2 distinct rows, fewer than n_components"):
        GaussianMixture(10, covariance_type=covariance_type, reg_covar=0).fit(X)


@pytest.mark.parametrize(("distance", "flagged"), [(0.01, True), (0.5, False)])
def test_a_gaussian_split_in_two_is_indistinguishable(distance, flagged):
    """One Gaussian split into two near-copies is a saddle, not a K = 2 fit:
    scikit-learn's tied model from random_from_data stops there on Old
    Faithful (three components 0.007 standard deviations apart)."""
    from mixtures.diagnostics import degeneracy_findings
    from mixtures.params import MixtureParams

    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 2))
    covariance = np.eye(2)
    params = MixtureParams(
        np.array([0.5, 0.5]),
        np.array([[0.0, 0.0], [distance, 0.0]]),
        np.array([covariance, covariance]),
        "full",
    )
    reasons = degeneracy_findings(params, X)["reasons"]
    assert any("indistinguishable" in r for r in reasons) is flagged
    assert not any("same Gaussian" in r for r in reasons)
