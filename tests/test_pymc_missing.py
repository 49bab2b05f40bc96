"""The PyMC backends on data with missing values (``missing="marginal"``).

Checked against independent references: the model's likelihood against
scipy's multivariate normal densities of each row's observed values; its
mode against MAP-EM over observed values (``missing="em"``); the
imputation of a point-mass posterior against the exact conditional
intervals of :mod:`mixtures.imputation`; and one small NUTS fit against
EM's estimate and the removed values.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

pytest.importorskip("pymc")

from experiments.datasets import missing_synthetic
from mixtures import fit_em
from mixtures.align import align
from mixtures.backends import get_backend
from mixtures.backends.base import total_log_likelihood
from mixtures.backends.pymc import build_model, params_to_free, prior_strength
from mixtures.backends.pymc.criticism import posterior_criticism
from mixtures.backends.pymc.incomplete import posterior_imputation
from mixtures.imputation import conditional_intervals, imputation_scores
from mixtures.missing import mean_filled
from mixtures.params import MixtureParams
from mixtures.prior import ConjugatePrior

# PyMC's tests are the slow tier's (pyproject.toml: the fast tier needs no
# PyMC); most build or compile PyTensor graphs, a tenth to most of a second
# even for one log density.
pytestmark = pytest.mark.slow

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def _holed(n=120, seed=0, rate=0.25):
    """Two 3-D clusters with a share ``rate`` of cells removed, feature 0 kept.

    Every pattern occurs (complete rows, one, two missing); no row is empty.
    """
    rng = np.random.default_rng(seed)
    complete = np.vstack(
        [
            rng.multivariate_normal(
                [0, 0, 0], [[1.0, 0.5, 0.2], [0.5, 1.5, 0.3], [0.2, 0.3, 0.8]], n // 2
            ),
            rng.multivariate_normal(
                [4, 1, -2],
                [[0.6, -0.2, 0.1], [-0.2, 0.4, 0.0], [0.1, 0.0, 0.5]],
                n - n // 2,
            ),
        ]
    )
    X = complete.copy()
    holes = rng.random(X.shape) < rate
    holes[:, 0] = False
    X[holes] = np.nan
    return X, complete


def _random_params(rng, covariance_type, k=2, d=3):
    weights = rng.dirichlet(np.ones(k) * 3)
    means = rng.normal(size=(k, d)) * 2
    if covariance_type == "full":
        a = rng.normal(size=(k, d, d))
        covariances = a @ np.swapaxes(a, 1, 2) + np.eye(d)
    elif covariance_type == "tied":
        a = rng.normal(size=(d, d))
        covariances = a @ a.T + np.eye(d)
    elif covariance_type == "diag":
        covariances = rng.uniform(0.3, 2.0, size=(k, d))
    else:
        covariances = rng.uniform(0.3, 2.0, size=k)
    return MixtureParams(weights, means, covariances, covariance_type)


def _compiled(model, output):
    """``free -> value`` of a model variable (a potential or the log density)."""
    import pytensor

    inputs = [model.rvs_to_values[rv] for rv in model.free_RVs]
    names = [v.name for v in inputs]
    (output,) = model.replace_rvs_by_values([output])
    function = pytensor.function(inputs, output, mode="FAST_COMPILE")

    def call(free):
        return float(function(*(np.asarray(free[n], dtype=np.float64) for n in names)))

    return call


def _reference_log_likelihood(X, params):
    """``sum_n log sum_k w_k N(x_no | mu_k[o], Sigma_k[o, o])`` with scipy."""
    covariances = params.full_covariances()
    total = 0.0
    for row in X:
        o = ~np.isnan(row)
        total += logsumexp(
            [
                np.log(params.weights[k])
                + multivariate_normal(
                    params.means[k][o], covariances[k][np.ix_(o, o)]
                ).logpdf(row[o])
                for k in range(params.n_components)
            ]
        )
    return total


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_likelihood_is_scipy_over_each_rows_observed_values(covariance_type):
    X, _ = _holed()
    patterns = np.unique(np.isnan(X), axis=0)
    assert len(patterns) == 4  # complete, and three kinds of holes
    model = build_model(X, 2, covariance_type)
    loglik = _compiled(model, model.named_vars["loglik"])
    rng = np.random.default_rng(1)
    for _ in range(2):
        params = _random_params(rng, covariance_type)
        ours = loglik(params_to_free(params, covariance_type))
        assert ours == pytest.approx(_reference_log_likelihood(X, params), rel=1e-8)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_map_em_over_observed_values_is_the_posterior_mode(covariance_type):
    """The log posterior's gradient vanishes at MAP-EM with ``missing="em"``.

    MAP-EM (expected sufficient statistics, a separate implementation) and
    the model must agree on the likelihood and on the prior's
    hyper-parameters (from the mean-filled data).
    """
    X, _ = _holed(200)
    params = fit_em(
        X,
        2,
        covariance_type=covariance_type,
        prior="default",
        reg_covar=0.0,
        tol=1e-14,
        max_iter=5000,
        random_state=0,
        missing="em",
    ).params
    import pytensor

    model = build_model(X, 2, covariance_type, jacobian=False)
    inputs = [model.rvs_to_values[rv] for rv in model.free_RVs]
    gradient = pytensor.function(
        inputs, pytensor.grad(model.logp(), inputs), mode="FAST_COMPILE"
    )
    free = params_to_free(params, covariance_type)
    values = gradient(*(free[v.name] for v in inputs))
    assert max(np.max(np.abs(g)) for g in values) < 1e-5


def test_nan_is_refused_by_default_with_the_option_named():
    X, _ = _holed(40)
    for name in ("pymc", "pymc-advi"):
        assert "missing" in get_backend(name).options
        with pytest.raises(ValueError, match="missing='marginal'"):
            get_backend(name).fit(X, 2)
    with pytest.raises(ValueError, match="missing must be one of"):
        get_backend("pymc").fit(X, 2, missing="em")


def test_rows_or_features_with_nothing_observed_are_refused():
    X, _ = _holed(40)
    empty_row = X.copy()
    empty_row[5] = np.nan
    with pytest.raises(ValueError, match=r"every feature missing \(rows 5"):
        get_backend("pymc").fit(empty_row, 2, missing="marginal")
    empty_feature = X.copy()
    empty_feature[:, 2] = np.nan
    with pytest.raises(ValueError, match="missing in every row"):
        get_backend("pymc-advi").fit(empty_feature, 2, missing="marginal")


def test_imputation_of_a_point_mass_posterior_is_the_conditional_distribution():
    """With every draw at one point, the posterior is the plug-in conditional.

    The Rao-Blackwellised mean is then exactly the conditional expectation,
    and the draws' 5% and 95% quantiles estimate the exact quantiles of each
    cell's conditional mixture (:func:`conditional_intervals`).
    """
    X, _ = _holed(150)
    params = fit_em(X, 2, missing="em", random_state=0).params
    draws = 800
    imputation = posterior_imputation(
        X,
        np.broadcast_to(params.weights, (draws, 2)),
        np.broadcast_to(params.means, (draws, 2, 3)),
        np.broadcast_to(params.full_covariances(), (draws, 2, 3, 3)),
        seed=0,
    )
    exact = conditional_intervals(X, params)
    rows, columns = np.nonzero(np.isnan(X))
    assert_allclose(imputation.rows, rows)
    assert_allclose(imputation.columns, columns)
    assert imputation.level == 0.9
    assert_allclose(imputation.mean, exact.mean, rtol=1e-12, atol=1e-12)
    width = exact.upper - exact.lower
    # 500 draws: a 5% quantile's Monte Carlo SD is about 7% of the width.
    assert np.median(np.abs(imputation.lower - exact.lower) / width) < 0.1
    assert np.median(np.abs(imputation.upper - exact.upper) / width) < 0.1
    assert (
        posterior_imputation(
            np.nan_to_num(X),
            params.weights[None],
            params.means[None],
            params.full_covariances()[None],
            seed=0,
        )
        is None
    )


def test_prior_strength_with_holes_rebuilds_the_map_covariance():
    """At MAP-EM's fixed point (``missing="em"``), ``(W_k + E_k) / (n_k + m_k)``.

    ``n_k`` and ``W_k`` are the expected statistics given the observed values;
    the prior's hyper-parameters come from the mean-filled data.
    """
    X, _ = _holed(200)
    params = fit_em(
        X,
        2,
        prior="default",
        reg_covar=0.0,
        tol=1e-13,
        max_iter=5000,
        random_state=0,
        missing="em",
    ).params
    strength = prior_strength(X, params)
    points = strength["component_points"]
    assert_allclose(points, len(X) * params.weights, rtol=1e-6)
    prior = ConjugatePrior().resolve(mean_filled(X), np.ones(len(X)), 2)
    # The MAP mean is (n_k c_k + kappa mu_P) / (n_k + kappa): c_k from it.
    centres = ((points + 0.01)[:, None] * params.means - 0.01 * prior.mean) / points[
        :, None
    ]
    pull = 0.01 * points / (points + 0.01) * np.sum((centres - prior.mean) ** 2, 1)
    traces = np.trace(params.full_covariances(), axis1=1, axis2=2)
    assert_allclose(
        strength["prior_scatter_share"] * traces * (points + strength["prior_points"]),
        np.trace(prior.scale) + pull,
        rtol=1e-5,
    )


def test_criticism_with_holes_scores_observed_values_and_skips_holed_histograms():
    """A point-mass posterior: the pointwise log-likelihood is the observed one."""
    X, _ = _holed(100)
    params = fit_em(X, 2, missing="em", random_state=0).params
    draws = (
        np.broadcast_to(params.weights, (1, 10, 2)),
        np.broadcast_to(params.means, (1, 10, 2, 3)),
        np.broadcast_to(params.full_covariances(), (1, 10, 2, 3, 3)),
    )
    out = posterior_criticism(X, *draws, ppc_replicates=10, loo=False)
    # Only feature 0 has no holes: the histogram check is left out elsewhere.
    assert [entry["feature"] for entry in out["predictive_density"]] == [0]
    assert any("feature(s) 1, 2" in note for note in out["notes"])
    assert np.isfinite(out["responsibilities_mean"]).all()
    assert out["ppc_ties_observed"] == 0
    from mixtures.backends.pymc.criticism import _pointwise

    pointwise = _pointwise(X, *draws)[0]
    assert pointwise[0, 0].sum() == pytest.approx(
        _reference_log_likelihood(X, params), rel=1e-10
    )


@pytest.mark.slow
def test_nuts_with_holes_agrees_with_em_and_covers_the_removed_values():
    """20% removed completely at random: posterior means near EM's, intervals cover.

    The posterior mean and EM over observed values estimate one thing from
    300 rows; their means differ by less than a posterior SD. The 90%
    intervals of the imputed cells hold the removed values at about 90%.
    """
    data = missing_synthetic(seed=0, n=300, rate=0.2, mechanism="mcar")
    X = data.X
    fit = get_backend("pymc").fit(
        X, 3, random_state=0, missing="marginal", draws=500, tune=500
    )
    diagnostics = fit.diagnostics
    assert fit.converged, diagnostics["unconverged_reason"]
    assert diagnostics["divergences"] == 0
    assert diagnostics["missing_cells"] == int(np.isnan(X).sum())
    assert fit.log_likelihood == pytest.approx(total_log_likelihood(X, fit.params))
    assert all(np.isfinite(trace).all() for trace in fit.restart_traces)
    assert np.isfinite(diagnostics["elpd_loo"])
    assert diagnostics["ppc_bins"] > 0  # feature 0, the one with no holes
    em = fit_em(X, 3, missing="em", n_init=5, random_state=0, tol=1e-10).params
    em = align(em, fit.params)
    sd = diagnostics["posterior_sd"]["means"]
    assert np.all(np.abs(em.means - fit.params.means) < sd)
    assert_allclose(em.weights, fit.params.weights, atol=0.02)
    imputation = fit.imputation
    rows, columns = np.nonzero(np.isnan(X))
    assert np.array_equal(imputation.rows, rows)
    assert np.array_equal(imputation.columns, columns)
    scores = imputation_scores(imputation, X, data.complete)
    assert 0.75 <= scores["imputation_coverage"] <= 0.99
    # The posterior's intervals are at least as wide as EM's plug-in ones.
    plug_in = imputation_scores(conditional_intervals(X, em), X, data.complete)
    assert scores["imputation_width"] >= 0.98 * plug_in["imputation_width"]


def test_a_sweep_config_may_ask_the_pymc_backends_for_the_marginal():
    from experiments.config.validation import parse_config

    raw = {
        "sweep": {"name": "holes", "root_seed": 26, "seeds": 1},
        "datasets": [
            {
                "name": "missing_synthetic",
                "n_components": 3,
                "params": {"n": 300, "rate": 0.2, "mechanism": "mcar"},
            }
        ],
        "backends": {
            "pymc": {"missing": "marginal"},
            "pymc-advi": {"missing": "marginal"},
        },
    }
    config = parse_config(raw)
    assert config.arms["pymc"].options["missing"] == "marginal"
    assert config.arms["pymc-advi"].options["missing"] == "marginal"
