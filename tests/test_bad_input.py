"""Bad input gets a ValueError naming the problem, and nothing fitted is lost."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from mixtures import GaussianMixture, fit_em

GOOD = np.random.default_rng(0).normal(size=(60, 2))

BAD_DATA = [
    pytest.param(np.r_[GOOD[:-1], [[np.nan, 0.0]]], "NaN", id="nan"),
    pytest.param(np.r_[GOOD[:-1], [[np.inf, 0.0]]], "infinity", id="inf"),
    pytest.param(np.empty((0, 2)), "0 sample", id="empty"),
    pytest.param(np.empty((5, 0)), "0 feature", id="no-features"),
    pytest.param(GOOD.reshape(60, 2, 1), "dim 3", id="3d"),
    pytest.param(np.array([["a", "b"], ["c", "d"]]), "convert", id="strings"),
    pytest.param(GOOD[:1], "1 sample", id="one-sample"),
    pytest.param(GOOD[:2], "n_samples >= n_components", id="fewer-than-k"),
]

# Hyper-parameters are checked by scikit-learn's parameter validation, with
# its wording (an InvalidParameterError, a ValueError); arrays by our checks.
BAD_OPTIONS = [
    ({"n_components": 0}, "The 'n_components' parameter of GaussianMixture must be"),
    ({"n_components": 2.5}, "The 'n_components' parameter of GaussianMixture must be"),
    ({"tol": -1.0}, "The 'tol' parameter of GaussianMixture must be"),
    ({"reg_covar": -1e-6}, "The 'reg_covar' parameter of GaussianMixture must be"),
    ({"max_iter": -1}, "The 'max_iter' parameter of GaussianMixture must be"),
    ({"n_init": 0}, "The 'n_init' parameter of GaussianMixture must be"),
    (
        {"covariance_type": "banana"},
        "The 'covariance_type' parameter of GaussianMixture must be",
    ),
    (
        {"init_params": "magic"},
        "The 'init_params' parameter of GaussianMixture must be",
    ),
    (
        {"verbose_interval": 0},
        "The 'verbose_interval' parameter of GaussianMixture must be",
    ),
    ({"weights_init": [0.5, 0.5]}, r"'weights' should have the shape of \(3,\)"),
    ({"weights_init": [0.5, 0.5, 0.5]}, "'weights' should be normalized"),
    (
        {"weights_init": [1.5, -0.25, -0.25]},
        r"'weights' should be in the range \[0, 1\]",
    ),
    ({"means_init": np.zeros((3, 3))}, r"'means' should have the shape of \(3, 2\)"),
    ({"means_init": [[0, 0], [1, 1], [np.nan, 2]]}, "means_init contains NaN"),
    ({"precisions_init": np.ones((3, 2))}, "'full precision' should have the shape"),
    (
        {"precisions_init": np.repeat([[[1.0, 2.0], [2.0, 1.0]]], 3, axis=0)},
        "must be positive definite",
    ),
    (
        {"precisions_init": np.repeat([[[1.0, 0.5], [0.0, 1.0]]], 3, axis=0)},
        "must be symmetric",
    ),
    (
        {"covariance_type": "diag", "precisions_init": -np.ones((3, 2))},
        "strictly positive",
    ),
    ({"warm_start": "yes"}, "The 'warm_start' parameter of GaussianMixture must be"),
]

BAD_WEIGHTS = [
    (-np.ones(60), "non-negative"),
    (np.zeros(60), "zero everywhere"),
    (np.ones(59), r"shape \(60,\)"),
    (np.r_[np.ones(2), np.zeros(58)], "fewer than n_components"),
    (np.r_[np.ones(59), np.nan], "NaN"),
]


@pytest.fixture(scope="module")
def fitted() -> GaussianMixture:
    return GaussianMixture(3, random_state=0).fit(GOOD)


def _snapshot(estimator):
    """The fitted state: every attribute that ``fit`` sets."""
    fitted_state = {k: v for k, v in vars(estimator).items() if k.endswith("_")}
    assert fitted_state
    return pickle.dumps(fitted_state)


@pytest.mark.parametrize(("X", "message"), BAD_DATA)
def test_bad_data_raises_and_keeps_fitted_state(fitted, X, message):
    before = _snapshot(fitted)
    with pytest.raises(ValueError, match=message):
        fitted.fit(X)
    assert _snapshot(fitted) == before


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS)
def test_bad_options_raise_and_keep_fitted_state(fitted, options, message):
    before = _snapshot(fitted)
    original = fitted.get_params()
    fitted.set_params(**options)
    try:
        with pytest.raises(ValueError, match=message):
            fitted.fit(GOOD)
        assert _snapshot(fitted) == before
    finally:
        fitted.set_params(**original)


@pytest.mark.parametrize(("weights", "message"), BAD_WEIGHTS)
def test_bad_sample_weights(fitted, weights, message):
    before = _snapshot(fitted)
    with pytest.raises(ValueError, match=message):
        fitted.fit(GOOD, sample_weight=weights)
    assert _snapshot(fitted) == before


def test_estimator_refuses_1d_but_fit_em_accepts_it():
    x = GOOD[:, 0]
    with pytest.raises(ValueError, match="Expected 2D array"):
        GaussianMixture(2).fit(x)
    result = fit_em(x, 2, random_state=0)
    assert result.params.means.shape == (2, 1)
    reference = GaussianMixture(2, random_state=0).fit(x.reshape(-1, 1))
    assert_array_equal(result.params.means, reference.means_)


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS[:9])
def test_fit_em_validates_like_the_estimator(options, message):
    # The functional API is not an estimator: its own sentence names the option.
    (name,) = options
    options = {"n_components": 3, **options}
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        fit_em(GOOD, **options)


def test_predicting_with_the_wrong_number_of_features(fitted):
    with pytest.raises(ValueError, match="expecting 2 features"):
        fitted.predict(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        fitted.score_samples(np.array([[np.nan, 1.0]]))
