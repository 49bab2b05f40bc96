"""Imputations with intervals (mixtures.imputation) and how the sweep scores them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats
from scipy.special import ndtr

from experiments.datasets import load_dataset
from mixtures.backends import get_backend
from mixtures.backends.base import Imputation, fit_in_standard_units
from mixtures.imputation import (
    conditional_intervals,
    filled_imputation,
    imputation_scores,
    mixture_quantiles,
)
from mixtures.missing import conditional_expectations, find_patterns
from mixtures.params import MixtureParams


def _random_covariance(rng, dim):
    A = rng.normal(size=(dim, dim))
    return A @ A.T + 0.5 * np.eye(dim)


def _with_holes(rng, X, rate):
    """``X`` with cells removed at ``rate``; every row keeps one value."""
    X = X.copy()
    holes = rng.random(X.shape) < rate
    holes[holes.all(axis=1), 0] = False
    X[holes] = np.nan
    return X


def test_one_component_gives_the_normal_conditional_quantiles():
    rng = np.random.default_rng(0)
    dim = 4
    mean, cov = rng.normal(size=dim) * 3, _random_covariance(rng, dim)
    params = MixtureParams(np.ones(1), mean[None], cov[None])
    X = _with_holes(rng, rng.multivariate_normal(mean, cov, 200), 0.4)
    imputation = conditional_intervals(X, params, level=0.8)
    rows, columns = np.nonzero(np.isnan(X))
    assert_array_equal(imputation.rows, rows)
    assert_array_equal(imputation.columns, columns)
    assert imputation.level == 0.8
    # Independently, cell by cell, from the covariance.
    for cell, (i, j) in enumerate(zip(rows, columns, strict=True)):
        o = np.flatnonzero(~np.isnan(X[i]))
        s_jo, s_oo = cov[j, o], cov[np.ix_(o, o)]
        centre = mean[j] + s_jo @ np.linalg.solve(s_oo, X[i, o] - mean[o])
        sd = np.sqrt(cov[j, j] - s_jo @ np.linalg.solve(s_oo, s_jo))
        assert imputation.mean[cell] == pytest.approx(centre, abs=1e-9 * sd)
        assert imputation.lower[cell] == pytest.approx(
            stats.norm.ppf(0.1, centre, sd), abs=1e-9 * sd
        )
        assert imputation.upper[cell] == pytest.approx(
            stats.norm.ppf(0.9, centre, sd), abs=1e-9 * sd
        )


def _three_overlapping_components(rng, dim=3):
    means = np.array([[0.0, 0.0, 0.0], [2.5, -1.0, 3.0], [-2.0, 3.0, 1.0]])[:, :dim]
    covariances = np.stack([_random_covariance(rng, dim) for _ in range(3)])
    return MixtureParams(np.array([0.5, 0.3, 0.2]), means, covariances)


def test_several_components_agree_with_draws_from_the_conditional():
    rng = np.random.default_rng(1)
    params = _three_overlapping_components(rng)
    X = _with_holes(rng, params.sample(40, random_state=2)[0], 0.4)
    imputation = conditional_intervals(X, params)
    patterns = find_patterns(X)
    # The point imputation is the conditional expectation.
    expected = conditional_expectations(X, patterns, params)
    assert_allclose(imputation.mean, expected[imputation.rows, imputation.columns])
    n_draws = 20_000
    draws = conditional_expectations(
        X, patterns, params, n_draws=n_draws, rng=np.random.default_rng(3)
    )[:, imputation.rows, imputation.columns]
    # The share of draws below each quantile is its probability, within
    # five binomial standard errors.
    for values, probability in ((imputation.lower, 0.05), (imputation.upper, 0.95)):
        share = (draws <= values).mean(axis=0)
        error = np.sqrt(probability * (1 - probability) / n_draws)
        assert np.abs(share - probability).max() < 5 * error
    assert_allclose(
        draws.mean(axis=0),
        imputation.mean,
        atol=5 * draws.std(axis=0).max() / np.sqrt(n_draws),
    )


def test_mixture_quantiles_solve_the_mixture_cdf():
    rng = np.random.default_rng(4)
    weights = rng.dirichlet(np.ones(3), size=50)
    means = rng.normal(scale=5, size=(50, 3))
    sds = rng.uniform(0.1, 3, size=(50, 3))
    for probability in (0.01, 0.5, 0.95):
        q = mixture_quantiles(weights, means, sds, probability)
        cdf = np.sum(weights * ndtr((q[:, None] - means) / sds), axis=1)
        assert_allclose(cdf, probability, atol=1e-9)
    # A point mass (SD 0): its quantile is the point.
    point = mixture_quantiles(
        np.ones((1, 1)), np.full((1, 1), 2.0), np.zeros((1, 1)), 0.3
    )
    assert point[0] == pytest.approx(2.0)


@pytest.mark.parametrize("level", [0.0, 1.0, -0.1, 1.5])
def test_a_level_outside_zero_one_is_refused(level):
    params = MixtureParams(np.ones(1), np.zeros((1, 2)), np.eye(2)[None])
    X = np.array([[0.0, np.nan], [1.0, 2.0]])
    with pytest.raises(ValueError, match="level must be in"):
        conditional_intervals(X, params, level=level)
    with pytest.raises(ValueError, match="probability must be in"):
        mixture_quantiles(np.ones((1, 1)), np.zeros((1, 1)), np.ones((1, 1)), level)


def test_complete_data_has_nothing_to_impute():
    params = MixtureParams(np.ones(1), np.zeros((1, 2)), np.eye(2)[None])
    imputation = conditional_intervals(np.ones((3, 2)), params)
    assert imputation.n_cells == 0
    with pytest.raises(ValueError, match="shape"):
        conditional_intervals(np.ones((3, 3)), params)


@pytest.mark.parametrize("mechanism", ["mcar", "mar"])
def test_intervals_under_the_truth_cover_at_nominal(mechanism):
    data = load_dataset(
        "missing_synthetic", seed=5, n=3000, rate=0.3, mechanism=mechanism
    )
    imputation = conditional_intervals(data.X, data.truth)
    scores = imputation_scores(imputation, data.X, data.complete)
    assert scores["imputation_cells"] > 3000
    assert scores["imputation_coverage"] == pytest.approx(0.9, abs=0.03)
    assert scores["imputation_level"] == 0.9


def _in_odd_units(X):
    return X * np.array([1.0, 250.0, 0.01, 7.0]) + np.array([0.0, -3e3, 5.0, 40.0])


@pytest.mark.parametrize("arm", ["em", "em-complete-case"])
def test_a_backends_intervals_are_those_of_its_fitted_mixture_in_data_units(arm):
    data = load_dataset("missing_synthetic", seed=6, n=500, rate=0.3, mechanism="mar")
    X = _in_odd_units(data.X)
    options = {"missing": "em"} if arm == "em" else {}
    fit = fit_in_standard_units(
        get_backend(arm), X, 3, random_state=0, n_init=2, **options
    )
    assert fit.imputation is not None
    again = conditional_intervals(X, fit.params)
    assert_array_equal(fit.imputation.rows, again.rows)
    assert_array_equal(fit.imputation.columns, again.columns)
    scale = np.nanstd(X, axis=0)[again.columns]
    for name in ("mean", "lower", "upper"):
        assert_allclose(
            getattr(fit.imputation, name) / scale,
            getattr(again, name) / scale,
            atol=1e-7,
        )
    assert np.all(fit.imputation.lower < fit.imputation.upper)


def test_the_em_backend_imputes_only_with_missing_em_and_holes():
    data = load_dataset("missing_synthetic", seed=6, n=300, rate=0.0, mechanism="mar")
    assert get_backend("em").fit(data.X, 3, random_state=0).imputation is None
    complete = get_backend("em").fit(data.X, 3, random_state=0, missing="em")
    assert complete.imputation is None


@pytest.mark.parametrize("arm", ["em-mean-imputed", "em-iterative-imputed"])
def test_a_filling_arm_reports_its_fill_without_an_interval(arm):
    data = load_dataset("missing_synthetic", seed=7, n=300, rate=0.3, mechanism="mcar")
    X = _in_odd_units(data.X)
    fit = fit_in_standard_units(get_backend(arm), X, 3, random_state=0, n_init=1)
    imputation = fit.imputation
    assert_array_equal(imputation.lower, imputation.mean)
    assert_array_equal(imputation.upper, imputation.mean)
    if arm == "em-mean-imputed":
        assert_allclose(imputation.mean, np.nanmean(X, axis=0)[imputation.columns])
    scores = imputation_scores(imputation, X, _in_odd_units(data.complete))
    assert np.isnan(scores["imputation_coverage"])
    assert np.isnan(scores["imputation_level"])
    assert scores["imputation_width"] == 0


def test_imputation_scores_count_what_the_intervals_hold():
    X = np.array([[1.0, np.nan], [np.nan, 2.0], [3.0, np.nan]])
    complete = np.array([[1.0, 5.0], [0.0, 2.0], [3.0, 1.0]])
    imputation = Imputation(
        rows=np.array([0, 1, 2]),
        columns=np.array([1, 0, 1]),
        mean=np.array([4.0, 0.0, 2.0]),
        lower=np.array([3.0, -1.0, 1.5]),
        upper=np.array([6.0, 1.0, 2.5]),
    )
    scores = imputation_scores(imputation, X, complete)
    assert scores["imputation_rmse"] == pytest.approx(np.sqrt(2 / 3))
    assert scores["imputation_coverage"] == pytest.approx(2 / 3)
    assert scores["imputation_width"] == pytest.approx(2.0)
    assert scores["imputation_cells"] == 3
    shuffled = Imputation(
        imputation.rows[::-1], imputation.columns[::-1], *(np.zeros(3),) * 3
    )
    with pytest.raises(ValueError, match="not the 3 missing cells"):
        imputation_scores(shuffled, X, complete)
    filled = filled_imputation(X, np.nan_to_num(X, nan=9.0))
    assert_array_equal(filled.mean, [9.0, 9.0, 9.0])


def test_an_imputation_moves_to_other_units_exactly():
    values = np.array([1.0, 2.0])
    imputation = Imputation(
        np.array([0, 1]), np.array([1, 0]), values, values, np.array([3.0, 4.0])
    )
    moved = imputation.in_units(np.array([2.0, 10.0]), np.array([-1.0, 5.0]))
    assert_allclose(moved.mean, [15.0, 3.0])
    assert_allclose(moved.upper, [35.0, 7.0])
    with pytest.raises(ValueError, match="positive"):
        imputation.in_units(np.array([-1.0, 1.0]), np.zeros(2))


def test_the_scenario_keeps_the_values_it_removed():
    data = load_dataset("missing_synthetic", seed=3, n=200, rate=0.3, mechanism="mnar")
    observed = ~np.isnan(data.X)
    assert not np.isnan(data.complete).any()
    assert_array_equal(data.complete[observed], data.X[observed])
    assert load_dataset("synthetic", seed=3).complete is None


def test_a_run_records_its_imputation_scores():
    from experiments.config import parse_config, plan_runs
    from experiments.runner import execute_run

    config = parse_config(
        {
            "datasets": [
                {
                    "name": "missing_synthetic",
                    "n_components": 3,
                    "params": {"n": 300, "rate": 0.3, "mechanism": "mar"},
                }
            ],
            "backends": {"em": {"missing": "em"}, "em-mean-imputed": {}},
        }
    )
    rows = {spec.backend: execute_run(spec)["run"] for spec in plan_runs(config)}
    em, filled = rows["em"], rows["em-mean-imputed"]
    assert em["status"] != "failed", em["error"]
    assert 0 < em["m_imputation_rmse"] < filled["m_imputation_rmse"]
    assert 0.7 < em["m_imputation_coverage"] <= 1
    assert em["m_imputation_level"] == 0.9
    assert em["m_imputation_width"] > 0
    assert em["m_imputation_cells"] == filled["m_imputation_cells"] > 0
    assert np.isnan(filled["m_imputation_coverage"])
    assert filled["d_rows_fitted"] == 300


def _runs():
    return pd.DataFrame(
        {
            "p_mechanism": ["mar"] * 5 + ["mnar"] * 2,
            "p_rate": [0.3, 0.3, 0.3, 0.3, 0.1, 0.3, 0.3],
            "backend": ["em", "em", "em-mean-imputed", "pymc", "em", "em", "pymc"],
            "status": ["ok", "degenerate", "ok", "ok", "failed", "ok", "ok"],
            "m_imputation_rmse": [1.0, 3.0, 2.5, 1.5, np.nan, 4.0, 3.0],
            "m_imputation_coverage": [0.88, 0.84, np.nan, 0.91, np.nan, 0.6, 0.7],
            "m_imputation_level": [0.9, 0.9, np.nan, 0.9, np.nan, 0.9, 0.9],
            "m_imputation_width": [3.0, 2.0, 0.0, 4.0, np.nan, 3.0, 3.0],
        }
    )


def test_imputation_quality_summarises_every_arm_that_imputed():
    from experiments.scenario_analysis import imputation_quality

    table = imputation_quality(_runs())
    assert list(table["arm"]) == ["em", "em-mean-imputed", "pymc", "em", "pymc"]
    first = table.iloc[0]
    assert (first["mechanism"], first["rate"], first["fits"]) == ("mar", 0.3, 2)
    assert first["imputation_rmse"] == pytest.approx(2.0)
    assert first["coverage"] == pytest.approx(0.86)
    assert first["width"] == pytest.approx(2.5)
    assert np.isnan(table.iloc[1]["coverage"])
    assert imputation_quality(_runs().drop(columns=["m_imputation_rmse"])).empty


def test_coverage_against_nominal_and_least_imputation_error():
    from experiments.scenario_analysis import (
        coverage_against_nominal,
        imputation_quality,
        least_error,
    )

    table = imputation_quality(_runs())
    coverage = coverage_against_nominal(table).set_index(["mechanism", "arm"])
    assert "em-mean-imputed" not in coverage.index.get_level_values("arm")
    assert coverage.loc[("mar", "em"), "verdict"] == "under"  # 0.86 < 0.9 - 0.03
    assert coverage.loc[("mar", "pymc"), "verdict"] == "nominal"
    assert coverage.loc[("mnar", "em"), "shortfall"] == pytest.approx(0.3)
    assert coverage_against_nominal(table, tolerance=0.05).loc[0, "verdict"] == (
        "nominal"
    )
    best = least_error(table, "imputation_rmse").set_index("mechanism")
    assert best.loc["mar", "arm"] == "pymc"
    assert best.loc["mar", "imputation_rmse"] == pytest.approx(1.5)
    assert best.loc["mar", "runner_up"] == "em"
    assert best.loc["mnar", "runner_up_rmse"] == pytest.approx(4.0)


def test_traces_in_data_units_end_at_the_observed_data_log_likelihood():
    """The log-Jacobian of a row with holes counts its observed features only."""
    from experiments.datasets import missing_synthetic
    from mixtures.backends import get_backend
    from mixtures.backends.base import fit_in_standard_units

    data = missing_synthetic(seed=2, n=400, rate=0.3, mechanism="mar")
    X = data.X * np.array([1.0, 100.0, 10.0, 1000.0])  # units far from 1
    fit = fit_in_standard_units(
        get_backend("em"), X, 3, missing="em", random_state=0, tol=1e-12
    )
    assert fit.loglik_trace[-1] * X.shape[0] == pytest.approx(
        fit.log_likelihood, rel=1e-6
    )
