"""EM over the observed coordinates: data with missing values."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats
from scipy.special import logsumexp

from mixtures import GaussianMixture, MixtureParams, fit_em
from mixtures.covariance import COVARIANCE_MODELS, UNIVARIATE_MODELS
from mixtures.missing import (
    conditional_expectations,
    find_patterns,
    incomplete_statistics,
    observed_log_prob,
)


def _params(rng, n_features=4, n_components=3):
    means = rng.normal(scale=3, size=(n_components, n_features))
    factors = rng.normal(size=(n_components, n_features, n_features))
    covariances = factors @ factors.transpose(0, 2, 1) + np.eye(n_features)
    return MixtureParams(rng.dirichlet(np.ones(n_components) * 3), means, covariances)


def _holes(rng, X, rate):
    X = X.copy()
    X[rng.random(X.shape) < rate] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 0.5  # keep every row informative
    return X


def _reference_log_prob(X, params):
    """log N(x_o | mu_k, Sigma_k) row by row with scipy.stats, (n, K)."""
    out = np.empty((X.shape[0], params.n_components))
    covariances = params.full_covariances()
    for n, x in enumerate(X):
        o = ~np.isnan(x)
        for k in range(params.n_components):
            out[n, k] = stats.multivariate_normal(
                params.means[k, o], covariances[k][np.ix_(o, o)]
            ).logpdf(x[o])
    return out


def test_patterns_group_rows_and_keep_every_row_once():
    rng = np.random.default_rng(0)
    X = _holes(rng, rng.normal(size=(300, 5)), 0.2)
    patterns = find_patterns(X)
    seen = np.concatenate([patterns.complete, *patterns.rows])
    assert_array_equal(np.sort(seen), np.arange(300))
    assert patterns.n_missing == int(np.isnan(X).sum())
    for observed, rows in zip(patterns.observed, patterns.rows, strict=True):
        assert_array_equal(
            ~np.isnan(X[rows]), np.broadcast_to(observed, (rows.size, 5))
        )
    assert len(patterns.observed) == len(
        {tuple(r) for r in np.isnan(X[np.isnan(X).any(1)])}
    )


def test_rows_and_features_with_nothing_observed_are_named():
    X = np.ones((5, 3))
    X[[1, 3]] = np.nan
    with pytest.raises(
        ValueError, match=r"2 row\(s\) have every feature missing \(rows 1, 3"
    ):
        find_patterns(X)
    X = np.ones((5, 3))
    X[:, 2] = np.nan
    with pytest.raises(ValueError, match="'depth' are missing in every row"):
        find_patterns(X, feature_names=["a", "b", "depth"])


def test_observed_log_prob_equals_scipy_on_each_rows_observed_coordinates():
    rng = np.random.default_rng(1)
    params = _params(rng)
    X = _holes(rng, rng.normal(scale=3, size=(200, 4)), 0.3)
    patterns = find_patterns(X)
    order = np.concatenate(patterns.rows)
    ours = observed_log_prob(X, patterns, params)
    assert_allclose(ours, _reference_log_prob(X[order], params), rtol=1e-10)


def _brute_force_statistics(X, weights, params):
    """Expected statistics row by row from the conditional distributions."""
    K, D = params.means.shape
    covariances = params.full_covariances()
    s0, s1, s2 = np.zeros(K), np.zeros((K, D)), np.zeros((K, D, D))
    log_gauss = _reference_log_prob(X, params) + np.log(params.weights)
    resp = np.exp(log_gauss - logsumexp(log_gauss, axis=1, keepdims=True))
    for n, x in enumerate(X):
        o, m = ~np.isnan(x), np.isnan(x)
        for k in range(K):
            S = covariances[k]
            B = S[np.ix_(m, o)] @ np.linalg.inv(S[np.ix_(o, o)])
            filled = x.copy()
            filled[m] = params.means[k, m] + B @ (x[o] - params.means[k, o])
            extra = np.zeros((D, D))
            extra[np.ix_(m, m)] = S[np.ix_(m, m)] - B @ S[np.ix_(o, m)]
            y = filled - params.means[k]
            r = weights[n] * resp[n, k]
            s0[k] += r
            s1[k] += r * y
            s2[k] += r * (np.outer(y, y) + extra)
    return s0, s1, s2, logsumexp(log_gauss, axis=1)


def test_expected_statistics_equal_the_row_by_row_conditional_moments():
    rng = np.random.default_rng(2)
    params = _params(rng)
    X = _holes(rng, rng.normal(scale=3, size=(120, 4)), 0.35)
    X = X[np.isnan(X).any(axis=1)]
    weights = rng.uniform(0.5, 2.0, size=X.shape[0])
    patterns = find_patterns(X)
    order = np.concatenate(patterns.rows)
    ours = incomplete_statistics(X, patterns, weights, params)
    reference = _brute_force_statistics(X[order], weights[order], params)
    for a, b in zip(ours, reference, strict=True):
        assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def test_conditional_expectation_is_the_mean_of_the_draws():
    rng = np.random.default_rng(3)
    params = _params(rng, n_features=3, n_components=2)
    X = _holes(rng, params.sample(50, 0)[0], 0.3)
    patterns = find_patterns(X)
    mean = conditional_expectations(X, patterns, params)
    observed = ~np.isnan(X)
    assert_array_equal(mean[observed], X[observed])
    assert not np.isnan(mean).any()
    draws = conditional_expectations(
        X, patterns, params, n_draws=4000, rng=np.random.default_rng(0)
    )
    assert draws.shape == (4000, *X.shape)
    assert_array_equal(
        draws[:, observed], np.broadcast_to(X[observed], (4000, observed.sum()))
    )
    spread = draws.std(axis=0)
    assert_allclose(
        draws.mean(axis=0), mean, atol=float(5 * spread.max() / np.sqrt(4000))
    )


# ---------------------------------------------------------------------------
# The fit


MODELS = sorted(
    {model.name for model in COVARIANCE_MODELS.values()} - set(UNIVARIATE_MODELS)
)


def _mixture_data(seed, n=400, rate=0.3):
    rng = np.random.default_rng(seed)
    truth = MixtureParams(
        [0.4, 0.6],
        [[0.0, 0.0, 0.0], [3.0, 2.0, -1.0]],
        [np.eye(3), [[1.0, 0.5, 0.0], [0.5, 1.5, 0.3], [0.0, 0.3, 0.8]]],
    )
    X, labels = truth.sample(n, rng)
    return truth, X, _holes(rng, X, rate), labels


def _independent_log_likelihood(X, params):
    """The observed-data log-likelihood with scipy.stats, row by row."""
    weighted = _reference_log_prob(X, params) + np.log(params.weights)
    return float(logsumexp(weighted, axis=1).sum())


@pytest.mark.parametrize("model", MODELS)
def test_observed_log_likelihood_and_monotone_trace_for_every_model(model):
    _, _, X, _ = _mixture_data(4, rate=0.3)
    result = fit_em(X, 2, covariance_type=model, missing="em", random_state=0,
                    tol=1e-10, max_iter=300)  # fmt: skip
    assert_allclose(
        result.log_likelihood, _independent_log_likelihood(X, result.params), rtol=1e-10
    )
    steps = np.diff(result.lower_bounds)
    # EM never lowers the observed-data likelihood (to rounding).
    assert steps.min() > -1e-10 * abs(result.lower_bounds[-1])
    assert result.converged


@pytest.mark.parametrize("model", ["full", "VEV", "diag", "spherical"])
def test_without_holes_the_fit_is_todays_fit(model):
    _, X, _, _ = _mixture_data(5)
    plain = fit_em(X, 2, covariance_type=model, random_state=1, n_init=2)
    asked = fit_em(X, 2, covariance_type=model, random_state=1, n_init=2, missing="em")
    assert_array_equal(plain.params.means, asked.params.means)
    assert_array_equal(plain.params.covariances, asked.params.covariances)
    assert_array_equal(plain.lower_bounds, asked.lower_bounds)


def test_nan_is_refused_by_default_with_the_option_named():
    _, _, X, _ = _mixture_data(6)
    with pytest.raises(ValueError, match="missing='em'"):
        fit_em(X, 2)
    with pytest.raises(ValueError, match=r"GaussianMixture\(missing='em'\)"):
        GaussianMixture(2).fit(X)
    with pytest.raises(ValueError, match="missing must be one of"):
        fit_em(X, 2, missing="drop")
    X[3] = np.nan
    with pytest.raises(ValueError, match=r"rows 3, counting from 0"):
        fit_em(X, 2, missing="em")
    _, complete, _, _ = _mixture_data(6)
    no_depth = complete.copy()
    no_depth[:, 1] = np.nan
    with pytest.raises(ValueError, match="missing in every row"):
        GaussianMixture(2, missing="em").fit(no_depth)
    complete[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"[Ii]nfinity"):
        fit_em(complete, 2, missing="em")


def _mean_error(params, truth):
    order = np.argsort(params.means[:, 0])
    return float(np.sqrt(np.mean((params.means[order] - truth.means) ** 2)))


def test_em_over_observed_values_recovers_the_means_better_than_dropping_or_filling():
    """At 30% of values missing at random (two coordinates' chance of being
    missing rises with the always-observed first one), EM over the observed
    values beats complete-case EM and mean imputation then EM on the means'
    error in at least 9 of 10 replicates."""
    wins = 0
    for seed in range(10):
        rng = np.random.default_rng(100 + seed)
        truth = MixtureParams(
            [0.5, 0.5],
            [[0.0, 0.0, 0.0], [3.0, 3.0, 3.0]],
            [[[1, 0.6, 0.6], [0.6, 1, 0.6], [0.6, 0.6, 1]]] * 2,
        )
        X, _ = truth.sample(600, rng)
        holes = X.copy()
        # Missing at random: columns 1 and 2 go missing more often where the
        # always-observed column 0 is large.
        chance = 0.9 / (1 + np.exp(-2 * (X[:, 0] - 1.5)))
        for j in (1, 2):
            holes[rng.random(600) < chance, j] = np.nan
        assert 0.25 < np.isnan(holes).mean() < 0.35  # about 30% of the values
        kwargs = {"random_state": 0, "n_init": 3, "tol": 1e-6, "max_iter": 3000}
        ours = fit_em(holes, 2, missing="em", **kwargs).params
        kept = holes[~np.isnan(holes).any(axis=1)]
        complete_case = fit_em(kept, 2, **kwargs).params
        filled = np.where(np.isnan(holes), np.nanmean(holes, axis=0), holes)
        mean_filled = fit_em(filled, 2, **kwargs).params
        error = _mean_error(ours, truth)
        wins += error < min(
            _mean_error(complete_case, truth), _mean_error(mean_filled, truth)
        )
    assert wins >= 9


def test_the_estimator_scores_predicts_and_imputes_rows_with_holes():
    _, X, holes, _ = _mixture_data(7, n=600, rate=0.2)
    model = GaussianMixture(2, missing="em", random_state=0).fit(holes)
    assert model.__sklearn_tags__().input_tags.allow_nan
    assert not GaussianMixture(2).__sklearn_tags__().input_tags.allow_nan
    fitted = model.params_
    assert_allclose(
        model.score_samples(holes).sum(), _independent_log_likelihood(holes, fitted),
        rtol=1e-10,
    )  # fmt: skip
    proba = model.predict_proba(holes)
    assert_allclose(proba.sum(axis=1), 1.0)
    assert_array_equal(model.predict(holes), proba.argmax(axis=1))
    # Complete rows score as the engine scores them.
    complete = ~np.isnan(holes).any(axis=1)
    assert_allclose(
        model.score_samples(holes)[complete], model.score_samples(holes[complete])
    )
    filled = model.impute(holes)
    assert not np.isnan(filled).any()
    assert_array_equal(filled[~np.isnan(holes)], holes[~np.isnan(holes)])
    # The fill is closer to the removed values than the feature means are.
    gone = np.isnan(holes)
    means = np.broadcast_to(np.nanmean(holes, axis=0), holes.shape)
    assert np.abs(filled - X)[gone].mean() < np.abs(means - X)[gone].mean()
    draws = model.impute(holes[:20], n_draws=3, random_state=0)
    assert draws.shape == (3, 20, 3)
    assert_array_equal(draws, model.impute(holes[:20], n_draws=3, random_state=0))
    with pytest.raises(ValueError, match="n_draws must be an integer >= 0"):
        model.impute(holes, n_draws=-1)


def test_the_compiled_pass_equals_the_numpy_pass():
    rng = np.random.default_rng(8)
    params = _params(rng, n_features=6, n_components=4)
    X = _holes(rng, rng.normal(scale=3, size=(3000, 6)), 0.25)
    weights = rng.uniform(0.5, 2.0, size=X.shape[0])
    patterns = find_patterns(X)
    compiled = incomplete_statistics(X, patterns, weights, params, "numba")
    plain = incomplete_statistics(X, patterns, weights, params, "numpy")
    for a, b in zip(compiled, plain, strict=True):
        assert_allclose(a, b, rtol=1e-11, atol=1e-9)
    fits = [
        fit_em(X, 3, missing="em", kernel=kernel, random_state=0, max_iter=3000)
        for kernel in ("numba", "numpy")
    ]
    assert_allclose(fits[0].log_likelihood, fits[1].log_likelihood, rtol=1e-10)
    assert fits[0].n_iter == fits[1].n_iter


def test_the_compiled_pass_splits_rows_into_tasks_without_changing_the_result(
    monkeypatch,
):
    """Many tasks and blocks, patterns cut by their bounds; any thread count."""
    from mixtures._missing_kernel import IncompleteRows, compiled_incomplete_statistics

    rng = np.random.default_rng(26)
    params = _params(rng, n_features=5, n_components=3)
    X = _holes(rng, rng.normal(scale=3, size=(20000, 5)), 0.3)
    weights = rng.uniform(0.5, 2.0, size=X.shape[0])
    patterns = find_patterns(X)
    layout = IncompleteRows(X, patterns)
    assert layout.bounds.size > 3  # several tasks
    cut = set(layout.bounds[1:-1]) - set(patterns.starts)
    assert cut  # some task bound falls inside a pattern
    compiled = compiled_incomplete_statistics(
        layout, weights, params.means, params.full_covariances(), params.weights
    )
    plain = incomplete_statistics(X, patterns, weights, params, "numpy")
    for a, b in zip(compiled[:4], plain, strict=True):
        assert_allclose(a, b, rtol=1e-11, atol=1e-9)
    weighted = observed_log_prob(X, patterns, params) + np.log(params.weights)
    assert_array_equal(compiled[4], weighted.argmax(axis=1))
    monkeypatch.setenv("GMMLAB_NUM_THREADS", "1")
    serial = compiled_incomplete_statistics(
        layout, weights, params.means, params.full_covariances(), params.weights
    )
    for a, b in zip(compiled, serial, strict=True):
        assert_array_equal(a, b)


def test_the_model_search_scores_cells_by_the_observed_data_likelihood():
    from mixtures import search

    _, _, holes, _ = _mixture_data(9, n=300, rate=0.2)
    result = search(holes, ["EII", "VVV"], [1, 2, 3], missing="em", random_state=0)
    table = result.table.set_index(["model", "n_components"])
    assert (table["status"] == "ok").all()
    for (model, k), row in table.iterrows():
        params = result.fits[(model, k)].params_
        log_likelihood = _independent_log_likelihood(holes, params)
        assert_allclose(row["log_likelihood"], log_likelihood, rtol=1e-9)
        expected_bic = -2 * log_likelihood + row["n_parameters"] * np.log(300)
        assert_allclose(row["bic"], expected_bic, rtol=1e-9)
    # With the generating model's shape, BIC finds the two components.
    assert table.loc["VVV", "bic"].idxmin() == 2
    with pytest.raises(ValueError, match="missing='em'"):
        search(holes, ["EII"], [1])


@pytest.mark.parametrize("kind", ["nonparametric", "parametric"])
def test_the_bootstrap_keeps_the_holes(kind):
    from mixtures import bootstrap
    from mixtures.bootstrapping import _draw

    _, _, holes, _ = _mixture_data(10, n=300, rate=0.2)
    model = GaussianMixture(2, missing="em", random_state=0).fit(holes)
    draw = _draw(holes, model.params_, kind, np.random.default_rng(0))
    if kind == "parametric":
        assert_array_equal(np.isnan(draw), np.isnan(holes))
    else:
        assert np.isnan(draw).any()
    result = bootstrap(model, holes, n_bootstrap=10, kind=kind, random_state=0)
    errors = result.std_errors["means"]
    assert errors.shape == (2, 3)
    assert np.all(np.isfinite(errors))
    assert np.all(errors > 0)


def test_the_readme_example_runs():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## Missing values") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    _, _, holes, _ = _mixture_data(11, n=200, rate=0.1)
    namespace = {"X_with_nans": holes}
    exec(
        code.replace("search(X_with_nans,", "search(X_with_nans, n_components=[1, 2],"),
        namespace,
    )
    assert not np.isnan(namespace["filled"]).any()
    assert namespace["draws"].shape == (20, *holes.shape)
    assert namespace["result"].table["status"].eq("ok").any()
