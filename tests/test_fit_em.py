"""The functional entry point ``fit_em`` and the per-restart records."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from experiments.cli import main
from mixtures import GaussianMixture, fit_em


def test_result_fields_are_consistent(blobs):
    X, _ = blobs
    result = fit_em(X, 3, n_init=4, init_params="random", random_state=3)
    model = GaussianMixture(3, n_init=4, init_params="random", random_state=3).fit(X)
    assert_array_equal(result.params.means, model.means_)
    assert result.trace is result.lower_bounds
    assert result.n_iter == result.lower_bounds.size == model.n_iter_
    # The total log-likelihood is at the final parameters: one step past the
    # last trace entry, so at least as large as it.
    assert result.log_likelihood == pytest.approx(
        model.score_samples(X).sum(), rel=1e-12
    )
    assert result.mean_log_likelihood >= result.lower_bound - 1e-12
    assert_array_equal(result.labels, model.predict(X))


def test_every_restart_is_recorded_and_the_best_kept(blobs):
    X, _ = blobs
    model = GaussianMixture(
        3, n_init=5, init_params="random_from_data", random_state=0
    ).fit(X)
    assert model.init_lower_bounds_.shape == (5,)
    assert len(model.init_traces_) == 5
    for trace, bound in zip(model.init_traces_, model.init_lower_bounds_, strict=True):
        assert trace[-1] == bound
    assert model.best_init_ == int(np.argmax(model.init_lower_bounds_))
    assert model.lower_bound_ == model.init_lower_bounds_.max()
    assert_array_equal(model.lower_bounds_, model.init_traces_[model.best_init_])
    # Restart i reproduces a single fit drawing from the same random stream.
    single = GaussianMixture(
        3, n_init=1, init_params="random_from_data", random_state=0
    ).fit(X)
    assert_allclose(model.init_traces_[0], single.lower_bounds_)


def test_verbose_logs_progress(blobs, capsys):
    X, _ = blobs
    GaussianMixture(3, verbose=2, verbose_interval=1, random_state=0).fit(X)
    out = capsys.readouterr().out
    assert "Initialization 0" in out
    assert "iteration 1\t" in out
    assert "converged" in out
    assert not logging.getLogger("mixtures").handlers


def test_cli_demo_prints_learned_parameters(capsys):
    assert main(["demo", "--components", "3"]) == 0
    out = capsys.readouterr().out
    assert "converged" in out
    assert out.count("component ") == 3
    assert "largest difference in the means" in out


def test_from_result_gives_the_estimator_fit_would_give():
    from mixtures import GaussianMixture

    X = np.random.default_rng(3).normal(size=(300, 2)) + np.repeat([[0], [4]], 150, 0)
    options = {"covariance_type": "diag", "n_init": 3, "random_state": 1}
    result = fit_em(X, 2, **options)
    built = GaussianMixture.from_result(result, covariance_type="diag")
    fitted = GaussianMixture(2, **options).fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(built, name), getattr(fitted, name))
    for name in ("n_iter_", "converged_", "lower_bound_", "best_init_"):
        assert getattr(built, name) == getattr(fitted, name)
    np.testing.assert_array_equal(built.init_lower_bounds_, fitted.init_lower_bounds_)
    np.testing.assert_array_equal(built.predict(X), fitted.predict(X))
    assert built.score(X) == fitted.score(X)
    assert built.params_.n_parameters() == fitted.params_.n_parameters()
    one = GaussianMixture.from_result(result.restarts[0], feature_names_in=["a", "b"])
    assert one.covariance_type == "diag"
    assert one.n_iter_ == result.restarts[0].n_iter
    assert list(one.feature_names_in_) == ["a", "b"]


def test_params_before_fit_says_not_fitted():
    from sklearn.exceptions import NotFittedError

    from mixtures import GaussianMixture

    with pytest.raises(NotFittedError):
        GaussianMixture().params_
    assert not hasattr(GaussianMixture(), "params_")
