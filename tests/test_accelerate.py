"""SQUAREM and Aitken's stopping rule: monotone, same optimum, fewer iterations."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from mixtures import GaussianMixture, fit_em
from mixtures.accelerate import aitken_limit, squarem_point
from mixtures.align import align
from mixtures.covariance import COVARIANCE_MODELS


def _overlapping(n=3000, seed=0):
    """Three 1-D components as in S3: heavy overlap, slow EM."""
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [
            rng.normal(-0.5, 0.2, n * 2 // 17),
            rng.normal(-0.1, 0.07, n * 5 // 17),
            rng.normal(0.2, 0.13, n * 10 // 17),
        ]
    )[:, None]


def _overlapping_2d(n=2100, seed=1):
    """Three overlapping 2-D components."""
    rng = np.random.default_rng(seed)
    return np.vstack(
        [
            rng.multivariate_normal([0, 0], [[1.0, 0.3], [0.3, 1.0]], n // 3),
            rng.multivariate_normal([1.5, 1.0], [[0.8, -0.2], [-0.2, 1.2]], n // 3),
            rng.multivariate_normal([-1.0, 2.0], [[0.5, 0.0], [0.0, 0.7]], n // 3),
        ]
    )


def test_aitken_limit_of_a_geometric_sequence_is_exact():
    limit, c, rate = -100.0, 5.0, 0.9
    values = [limit - c * rate**k for k in range(3)]
    assert aitken_limit(*values) == pytest.approx(limit, rel=1e-12)
    assert np.isnan(aitken_limit(0.0, 1.0, 3.0))  # accelerating: no estimate
    assert np.isnan(aitken_limit(0.0, 1.0, 0.5))  # decreasing
    assert aitken_limit(2.0, 2.0, 2.0) == 2.0


def test_squarem_point_with_no_curvature_is_not_used():
    X = _overlapping(300)
    p0 = fit_em(X, 3, max_iter=0, random_state=0).params
    assert squarem_point(p0, p0, p0) == (None, -1.0)


# The 14 multivariate models (VII, VVI, EEE and VVV are aliases of the
# scikit-learn names).
MULTIVARIATE_MODELS = [
    m for m in COVARIANCE_MODELS if m not in ("E", "V", "VII", "VVI", "EEE", "VVV")
]


@pytest.mark.parametrize(
    ("covariance_type", "prior"),
    [(model, None) for model in MULTIVARIATE_MODELS] + [("full", "default")],
)
def test_squarem_never_lowers_the_objective_and_reaches_the_same_optimum(
    covariance_type, prior
):
    X = _overlapping_2d()
    start = fit_em(X, 3, covariance_type=covariance_type, max_iter=0, random_state=3)
    options = {
        "covariance_type": covariance_type,
        "prior": prior,
        "tol": 1e-11,
        "max_iter": 20000,
        "initial_params": start.params,
    }
    plain = fit_em(X, 3, **options)
    fast = fit_em(X, 3, acceleration="squarem", **options)
    assert plain.converged
    assert fast.converged
    if prior is None:  # the trace is the log-likelihood, which EM increases
        assert np.all(np.diff(fast.lower_bounds) >= -1e-12)
    assert fast.log_likelihood == pytest.approx(plain.log_likelihood, rel=1e-7)
    # At a flat optimum the parameters agree less closely than the
    # log-likelihood does.
    aligned = align(fast.params, plain.params)
    assert_allclose(aligned.means, plain.params.means, atol=1e-2)
    assert fast.n_iter < plain.n_iter


def test_squarem_needs_fewer_iterations_on_an_overlapping_mixture():
    X = _overlapping()
    plain = fit_em(X, 3, tol=1e-9, max_iter=20000, random_state=0)
    fast = fit_em(
        X, 3, tol=1e-9, max_iter=20000, random_state=0, acceleration="squarem"
    )
    assert fast.log_likelihood >= plain.log_likelihood - 1e-6 * abs(
        plain.log_likelihood
    )
    assert fast.n_iter * 2 <= plain.n_iter


def test_aitken_stops_nearer_the_limit_than_the_change_rule_at_the_same_tol():
    X = _overlapping()
    reference = fit_em(X, 3, tol=1e-14, max_iter=100000, random_state=0)
    change = fit_em(X, 3, tol=1e-6, max_iter=100000, random_state=0)
    aitken = fit_em(X, 3, tol=1e-6, max_iter=100000, random_state=0, stopping="aitken")
    gap_change = reference.log_likelihood - change.log_likelihood
    gap_aitken = reference.log_likelihood - aitken.log_likelihood
    assert gap_aitken < gap_change
    assert gap_aitken >= -1e-8


def test_bad_options_are_refused_with_the_choices():
    X = _overlapping(100)
    with pytest.raises(ValueError, match="acceleration must be None"):
        fit_em(X, 2, acceleration="anderson")
    with pytest.raises(ValueError, match="stopping must be 'change'"):
        fit_em(X, 2, stopping="never")
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="acceleration"):
        GaussianMixture(2, acceleration="anderson").fit(X)


def test_estimator_takes_both_options():
    X = _overlapping_2d(600)
    model = GaussianMixture(
        2,
        acceleration="squarem",
        stopping="aitken",
        tol=1e-8,
        max_iter=5000,
        random_state=0,
    ).fit(X)
    assert model.converged_
    assert model.get_params()["acceleration"] == "squarem"
    plain = GaussianMixture(2, tol=1e-8, max_iter=5000, random_state=0).fit(X)
    assert model.score(X) == pytest.approx(plain.score(X), abs=1e-6)
