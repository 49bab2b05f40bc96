"""The Bayesian PyMC backends: the model, its starts, relabelling and criticism.

The model's log density is checked against independent references (the
log-likelihood and scipy's inverse-Wishart and normal densities through
:meth:`ResolvedPrior.log_density`, and a finite-difference Jacobian of the
change of variables); its mode against MAP-EM. The sampled fits are small
(the contract data, S1) and share one compiled model per shape.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

pytest.importorskip("pymc")

from experiments.datasets import load_dataset
from mixtures import fit_em
from mixtures.backends import get_backend
from mixtures.backends import pymc as pymc_backend
from mixtures.backends.base import total_log_likelihood
from mixtures.backends.pymc import (
    build_model,
    draws_to_params,
    params_to_free,
    posterior_criticism,
    prior_strength,
    simultaneous_band,
)
from mixtures.params import MixtureParams
from mixtures.prior import ConjugatePrior

# PyMC's tests are the slow tier's (pyproject.toml: the fast tier needs no
# PyMC); most build or compile PyTensor graphs, a tenth to most of a second
# even for one log density.
pytestmark = pytest.mark.slow

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    return np.vstack(
        [
            rng.multivariate_normal([0, 0], [[1.0, 0.5], [0.5, 1.5]], n // 2),
            rng.multivariate_normal([4, 1], [[0.6, -0.2], [-0.2, 0.4]], n - n // 2),
        ]
    )


def _logp_function(model, gradient=False):
    """The model's log density (and gradient) in the free variables, uncompiled."""
    import pytensor

    inputs = [model.rvs_to_values[rv] for rv in model.free_RVs]
    logp = model.logp()
    outputs = [logp, *pytensor.grad(logp, inputs)] if gradient else [logp]
    function = pytensor.function(inputs, outputs, mode="FAST_COMPILE")
    names = [v.name for v in inputs]

    def call(free):
        values = function(*(np.asarray(free[name], dtype=np.float64) for name in names))
        return values if gradient else float(values[0])

    return call


def _random_params(rng, covariance_type, k=2, d=2):
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


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_free_coordinates_round_trip(covariance_type):
    rng = np.random.default_rng(1)
    params = _random_params(rng, covariance_type, k=3, d=3)
    free = params_to_free(params, covariance_type)
    weights, means, covariances = draws_to_params(free, covariance_type)
    assert_allclose(weights, params.weights, rtol=1e-12)
    assert_allclose(means, params.means, rtol=1e-12)
    assert_allclose(covariances, params.full_covariances(), rtol=1e-10)
    # Leading (chain, draw) axes are kept.
    stacked = {
        name: np.broadcast_to(v, (2, 5, *np.shape(v))) for name, v in free.items()
    }
    w, m, c = draws_to_params(stacked, covariance_type)
    assert w.shape == (2, 5, 3)
    assert m.shape == (2, 5, 3, 3)
    assert c.shape == (2, 5, 3, 3, 3)
    assert_allclose(c[1, 4], params.full_covariances(), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_posterior_is_likelihood_plus_the_map_em_prior(covariance_type):
    """Without the Jacobian, the model is log p(X | theta) + log prior(mu, Sigma).

    The prior's density is scipy's (``ResolvedPrior.log_density``, the one
    MAP-EM maximises); the comparison is between two parameter points, so
    normalising constants cancel.
    """
    X = _data()
    model = build_model(X, 2, covariance_type, jacobian=False)
    logp = _logp_function(model)
    prior = ConjugatePrior().resolve(X, np.ones(len(X)), 2)
    rng = np.random.default_rng(2)
    first, second = (_random_params(rng, covariance_type) for _ in range(2))

    def reference(params):
        return total_log_likelihood(X, params) + prior.log_density(params)

    ours = logp(params_to_free(first, covariance_type)) - logp(
        params_to_free(second, covariance_type)
    )
    assert ours == pytest.approx(reference(first) - reference(second), rel=1e-9)


def _numerical_log_jacobian(free, covariance_type):
    """log |det d(w_1..w_{K-1}, mu, Sigma's free entries) / d(free)|, numerically."""
    names = list(free)
    flat = np.concatenate([np.ravel(free[n]) for n in names])
    shapes = [np.shape(free[n]) for n in names]

    def unflatten(vector):
        out, start = {}, 0
        for name, shape in zip(names, shapes, strict=True):
            size = int(np.prod(shape))
            out[name] = vector[start : start + size].reshape(shape)
            start += size
        return out

    def image(vector):
        weights, means, covariances = draws_to_params(
            unflatten(vector), covariance_type
        )
        d = means.shape[-1]
        if covariance_type == "full":
            rows, columns = np.tril_indices(d)
            sigma = covariances[:, rows, columns].ravel()
        elif covariance_type == "tied":
            rows, columns = np.tril_indices(d)
            sigma = covariances[0][rows, columns]
        elif covariance_type == "diag":
            sigma = np.diagonal(covariances, axis1=1, axis2=2).ravel()
        else:
            sigma = covariances[:, 0, 0]
        return np.concatenate([weights[:-1], means.ravel(), sigma])

    step = 1e-6
    columns = [
        (image(flat + step * e) - image(flat - step * e)) / (2 * step)
        for e in np.eye(flat.size)
    ]
    return np.linalg.slogdet(np.column_stack(columns))[1]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sampled_density_adds_the_change_of_variables_jacobian(covariance_type):
    """jacobian=True minus jacobian=False is log|det J|, J by finite differences."""
    X = _data(40)
    with_jacobian = _logp_function(build_model(X, 2, covariance_type))
    without = _logp_function(build_model(X, 2, covariance_type, jacobian=False))
    rng = np.random.default_rng(3)
    points = [
        params_to_free(_random_params(rng, covariance_type), covariance_type)
        for _ in range(2)
    ]
    ours = [with_jacobian(p) - without(p) for p in points]
    numerical = [_numerical_log_jacobian(p, covariance_type) for p in points]
    assert ours[0] - ours[1] == pytest.approx(numerical[0] - numerical[1], abs=1e-5)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_map_em_is_the_posterior_mode(covariance_type):
    """The gradient of the log posterior (Sigma parametrisation) vanishes at MAP-EM."""
    X = _data()
    fit = fit_em(
        X,
        2,
        covariance_type=covariance_type,
        prior="default",
        reg_covar=0.0,
        tol=1e-14,
        max_iter=5000,
        random_state=0,
    )
    model = build_model(X, 2, covariance_type, jacobian=False)
    _, *gradients = _logp_function(model, gradient=True)(
        params_to_free(fit.params, covariance_type)
    )
    assert max(np.max(np.abs(g)) for g in gradients) < 1e-5
    # ...and not at the maximum-likelihood estimate, which the prior moves.
    ml = fit_em(
        X,
        2,
        covariance_type=covariance_type,
        reg_covar=0.0,
        tol=1e-14,
        max_iter=5000,
        random_state=0,
    ).params
    _, *gradients = _logp_function(model, gradient=True)(
        params_to_free(ml, covariance_type)
    )
    assert max(np.max(np.abs(g)) for g in gradients) > 1e-3


def _three_clusters(sizes=(100, 150, 200), seed=0, apex=6.0):
    """Three tight 2-D clusters: with K = 2, MAP-EM has one mode per merger.

    ``apex`` is the height of the third centre above the midpoint of the
    other two (6 apart); ``3 * sqrt(3)`` makes the triangle equilateral.
    """
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [3.0, apex]])
    X = np.vstack(
        [rng.normal(c, 0.4, size=(n, 2)) for c, n in zip(centres, sizes, strict=True)]
    )
    return X, np.repeat([0, 1, 2], sizes)


def test_chain_starts_are_overdispersed_and_a_function_of_the_seed():
    X = _data()
    first = pymc_backend._chain_starts(X, 2, "full", 11, 4)
    again = pymc_backend._chain_starts(X, 2, "full", 11, 4)
    for start, same in zip(first.starts, again.starts, strict=True):
        for name in start:
            assert_allclose(start[name], same[name], rtol=0, atol=0)
    # Two well-separated clusters: every restart reaches one mode, and the
    # chains are scattered about it, far wider than the posterior of a mean.
    assert first.diagnostics()["map_em_modes"] == 1
    assert first.origins == ("mode 0",) * 4
    mode = first.modes[0].params
    posterior_sd = np.sqrt(
        np.diagonal(mode.full_covariances(), axis1=1, axis2=2)
        / (len(X) * mode.weights[:, None])
    )
    means = np.array([start["mu"] for start in first.starts])  # (chains, K, D)
    displacement = np.abs(means - mode.means) / posterior_sd
    assert displacement.mean() > 2.0
    other = pymc_backend._chain_starts(X, 2, "full", 12, 4)
    assert not np.allclose(other.starts[0]["mu"], first.starts[0]["mu"])
    random = pymc_backend._chain_starts(X, 2, "full", 11, 4, init="random")
    assert random.origins == ("random",) * 4
    assert random.diagnostics()["chain_random_starts"] == 4


def test_chains_start_in_every_mode_the_restarts_find():
    """K = 2 on three clusters: the restarts merge different pairs.

    Equal clusters at the corners of an equilateral triangle make the three
    mergers' log posteriors close (within 10 nats here), so each is a mode
    within the gap and gets a chain.
    """
    X, _ = _three_clusters(sizes=(150, 150, 150), apex=3 * np.sqrt(3))
    starts = pymc_backend._chain_starts(X, 2, "full", 0, 4)
    diagnostics = starts.diagnostics()
    assert diagnostics["map_em_modes"] == 3
    assert diagnostics["chain_start_modes"] == 3
    assert starts.origins == ("mode 0", "mode 1", "mode 2", "mode 0")
    assert sum(diagnostics["map_em_mode_restarts"]) == pymc_backend.MODE_RESTARTS
    gaps = np.diff(diagnostics["map_em_mode_log_posteriors"])
    assert np.all(gaps <= 0)  # best first
    # Chains said to start in different modes do: their start means are
    # nearer their own mode's than the other's.
    for chain, own, other in ((0, 0, 1), (1, 1, 2), (2, 2, 0)):
        mu = np.sort(starts.starts[chain]["mu"], axis=0)
        nearest = [
            np.abs(mu - np.sort(starts.modes[m].params.means, axis=0)).sum()
            for m in (own, other)
        ]
        assert nearest[0] < nearest[1]


def test_a_permuted_or_nearby_fit_is_the_same_mode_and_a_merger_is_not():
    X, labels = _three_clusters()
    modes = []
    for pair in ([0, 1], [1, 2]):
        groups = [np.isin(labels, pair), ~np.isin(labels, pair)]
        modes.append(
            MixtureParams(
                [g.mean() for g in groups],
                [X[g].mean(axis=0) for g in groups],
                [np.cov(X[g].T) for g in groups],
            )
        )
    first, second = modes
    assert pymc_backend._same_mode(first, first.permute([1, 0]))
    nudged = MixtureParams(
        first.weights, first.means + 0.01, first.full_covariances() * 1.01
    )
    assert pymc_backend._same_mode(first, nudged)
    assert not pymc_backend._same_mode(first, second)


def test_criticism_of_a_point_mass_posterior_is_the_likelihood():
    """Every draw the same: LOO = WAIC = log-likelihood, p_loo = 0, no spread."""
    X = _data(80)
    params = fit_em(X, 2, random_state=0).params
    full = params.full_covariances()
    draws = (
        np.broadcast_to(params.weights, (2, 30, 2)),
        np.broadcast_to(params.means, (2, 30, 2, 2)),
        np.broadcast_to(full, (2, 30, 2, 2, 2)),
    )
    out = posterior_criticism(X, *draws, ppc_replicates=20)
    total = total_log_likelihood(X, params)
    assert out["loo"]["elpd"] == pytest.approx(total, rel=1e-9)
    assert out["waic"]["elpd"] == pytest.approx(total, rel=1e-9)
    assert out["loo"]["p"] == pytest.approx(0.0, abs=1e-8)
    assert_allclose(out["responsibilities_sd"], 0.0, atol=1e-7)
    from mixtures.em import e_step

    assert_allclose(
        out["responsibilities_mean"], np.exp(e_step(X, params)[1]), rtol=1e-9
    )
    assert out["ppc_ties_observed"] == 0
    density = out["predictive_density"][0]
    assert_allclose(density["low"], density["high"], rtol=1e-9)
    # The fitted marginal density integrates to about one over the data's
    # range padded by 10% on each side.
    assert np.trapezoid(density["mean"], density["grid"]) == pytest.approx(
        1.0, abs=0.02
    )


def test_tied_values_are_counted_in_data_and_replicates():
    X = np.repeat(_data(40), [2] * 13 + [1] * 27, axis=0)  # 13 rows tied
    params = _random_params(np.random.default_rng(5), "full")
    draws = (
        np.broadcast_to(params.weights, (1, 10, 2)),
        np.broadcast_to(params.means, (1, 10, 2, 2)),
        np.broadcast_to(params.full_covariances(), (1, 10, 2, 2, 2)),
    )
    out = posterior_criticism(X, *draws, ppc_replicates=10)
    assert out["ppc_ties_observed"] == 13
    assert out["ppc_ties_replicated"] == 0.0  # continuous replicates never tie
    assert out["ppc_ties_p"] == 0.0


def test_bad_options_are_refused():
    X = _data(20)
    with pytest.raises(ValueError, match="max_samples must be an integer >= 2"):
        get_backend("pymc").fit(X, 2, max_samples=1)
    with pytest.raises(ValueError, match="draws must be an integer >= 1"):
        get_backend("pymc").fit(X, 2, draws=0)
    with pytest.raises(ValueError, match="covariance_type must be 'full', 'tied'"):
        get_backend("pymc").fit(X, 2, covariance_type="VVV")
    with pytest.raises(ValueError, match="unknown options"):
        get_backend("pymc").fit(X, 2, nonsense=1)
    with pytest.raises(ValueError, match="init must be 'em' or 'random'"):
        get_backend("pymc-advi").fit(X, 2, init="prior")


# ---------------------------------------------------------------------------
# Sampled fits (slow: each shape compiles once, then is cached)


#: Short runs: reproducibility needs two identical runs, not a converged
#: posterior; ``max_draws`` equal to ``draws`` keeps an unconverged run from
#: sampling again.
_REPRODUCED = {"random_state": 3, "draws": 100, "tune": 100, "max_draws": 100}

_SUMMARY_SCRIPT = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[2])
from test_pymc import _REPRODUCED, _data, _fit_summary
from mixtures.backends import get_backend
fit = get_backend("pymc").fit(_data(), 2, cores=int(sys.argv[1]), **_REPRODUCED)
print(json.dumps(_fit_summary(fit)))
"""


def _fit_summary(fit) -> dict:
    """Every number of a NUTS fit that the tables keep, as plain floats."""
    diagnostics = fit.diagnostics
    keys = (
        "r_hat_max",
        "ess_bulk_min",
        "elpd_loo",
        "pareto_k_max",
        "pareto_k_bad",
        "ppc_bins_outside",
        "ppc_bins_outside_expected",
        "ppc_ties_replicated",
        "divergences",
    )
    return {
        "log_likelihood": float(fit.log_likelihood),
        "means": np.asarray(fit.params.means).tolist(),
        "covariances": fit.params.full_covariances().tolist(),
        "chain_log_likelihoods": [
            float(v) for v in diagnostics["chain_log_likelihoods"]
        ],
        "chain_starts": diagnostics["chain_starts"],
        **{key: float(diagnostics[key]) for key in keys},
    }


@pytest.mark.slow
def test_nuts_is_reproducible_from_its_seed():
    """The same seed gives the same fit to the last bit.

    In one process (the second fit from the cached compiled model), on one
    core or four (nutpie then asks for the chain starts in another order),
    and in a fresh process with another hash seed.
    """
    import json
    import os
    import subprocess
    import sys

    # The fresh process imports PyMC and compiles its own model meanwhile,
    # on the other core.
    fresh = subprocess.Popen(
        [sys.executable, "-c", _SUMMARY_SCRIPT, "2", os.path.dirname(__file__)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    try:
        X = _data()
        first = _fit_summary(get_backend("pymc").fit(X, 2, cores=4, **_REPRODUCED))
        again = get_backend("pymc").fit(X, 2, cores=1, **_REPRODUCED)
        assert again.diagnostics["compile_seconds"] == 0.0  # the cached model
        assert _fit_summary(again) == first
        other = get_backend("pymc").fit(X, 2, **{**_REPRODUCED, "random_state": 4})
        assert _fit_summary(other)["log_likelihood"] != first["log_likelihood"]
        out, err = fresh.communicate(timeout=600)
    finally:
        if fresh.poll() is None:
            fresh.kill()
            fresh.communicate()
    assert fresh.returncode == 0, err[-3000:]
    assert json.loads(out.strip().splitlines()[-1]) == first
    # The flat vector the chain starts fill has nutpie's layout.
    compiled, _ = pymc_backend._compiled_nutpie(X, 2, "full")
    assert compiled.shape_info[0] == ["logits", "mu", "log_diag", "offdiag"]


@pytest.mark.slow
def test_chains_in_different_modes_are_reported_not_hidden(monkeypatch):
    """Chains started in two different optima of K = 2 on three clusters.

    The restarts are made to report two modes (two different mergers of the
    clusters); the chains are dealt round them. Relabelling cannot make
    different modes agree, so r-hat exposes them and the fit is classified
    unconverged with that reason.
    """
    X, labels = _three_clusters()

    def merged(pair):
        # Two clusters merged into one component, the third alone: an optimum.
        groups = [np.isin(labels, pair), ~np.isin(labels, pair)]
        start = MixtureParams(
            [g.mean() for g in groups],
            [X[g].mean(axis=0) for g in groups],
            [np.cov(X[g].T) for g in groups],
        )
        return fit_em(X, 2, prior="default", initial_params=start, tol=1e-10).params

    modes = [merged([0, 1]), merged([1, 2])]
    assert (
        abs(total_log_likelihood(X, modes[0]) - total_log_likelihood(X, modes[1])) > 1
    )
    found = tuple(
        pymc_backend._Mode(params, -float(i), 10) for i, params in enumerate(modes)
    )
    monkeypatch.setattr(pymc_backend, "_map_em_modes", lambda *args: found)
    # Scattered by a tenth of a standard deviation, each chain stays in the
    # basin it starts in (at 1, a start about the merger of two clusters can
    # land in the other mode's basin).
    fit = get_backend("pymc").fit(
        X, 2, random_state=0, draws=200, tune=200, max_draws=200, jitter=0.1
    )
    diagnostics = fit.diagnostics
    assert diagnostics["chain_starts"] == ["mode 0", "mode 1", "mode 0", "mode 1"]
    assert diagnostics["chain_start_modes"] == 2
    assert not fit.converged
    assert diagnostics["r_hat_max"] > 1.1
    assert "r-hat" in diagnostics["unconverged_reason"]
    # Each chain stayed in the mode its start is recorded in: nutpie's chain
    # c got start c.
    chain_ll = np.array(diagnostics["chain_log_likelihoods"])
    mode_ll = np.array([total_log_likelihood(X, mode) for mode in modes])
    assert np.all(np.abs(chain_ll - mode_ll[[0, 1, 0, 1]]) < 5)
    assert abs(mode_ll[0] - mode_ll[1]) > 10


@pytest.mark.slow
def test_s1_does_not_collapse_onto_its_tied_values():
    data = load_dataset("s1", seed=0)
    assert pymc_backend._ties(data.X) >= 13
    fit = get_backend("pymc").fit(data.X, 3, random_state=0, draws=500, tune=500)
    variances = np.diagonal(fit.params.full_covariances(), axis1=1, axis2=2)
    assert np.all(variances > 1e-3 * data.X.var())
    # Every draw, not only the mean, stays away from zero.
    assert fit.diagnostics["min_variance_ratio"] > 1e-3
    assert fit.diagnostics["ppc_ties_observed"] >= 13
    assert fit.diagnostics["ppc_ties_p"] == 0.0


def test_advi_elbo_stationarity_sees_a_trend_and_ignores_noise():
    rng = np.random.default_rng(6)
    noise = rng.normal(0.0, 5.0, 4000)
    flat, change = pymc_backend._elbo_stationary(-1000.0 + noise)
    assert flat
    assert abs(change) < 1.0
    rising, change = pymc_backend._elbo_stationary(
        -1000.0 + noise + np.arange(4000) * 0.01
    )
    assert not rising
    assert change == pytest.approx(10.0, abs=1.0)
    assert pymc_backend._elbo_stationary(noise[:1500]) == (
        False,
        pytest.approx(np.nan, nan_ok=True),
    )


def test_predictive_rows_hold_the_density_and_the_histogram():
    from experiments.evaluate import predictive_rows

    X = _data(80)
    params = fit_em(X, 2, random_state=0).params
    draws = (
        np.broadcast_to(params.weights, (1, 200, 2)),
        np.broadcast_to(params.means, (1, 200, 2, 2)),
        np.broadcast_to(params.full_covariances(), (1, 200, 2, 2, 2)),
    )
    out = posterior_criticism(X, *draws, ppc_replicates=200)
    rows = predictive_rows("r1", {"predictive_density": out["predictive_density"]})
    for feature, entry in enumerate(out["predictive_density"]):
        mine = [r for r in rows if r["feature"] == feature]
        density = [r for r in mine if r["kind"] == "density"]
        bars = [r for r in mine if r["kind"] == "histogram"]
        assert len(density) == entry["grid"].size
        assert len(bars) == entry["histogram_density"].size
        # The simultaneous band of replicated histograms holds the data's
        # bars when the draws are the data's own fit.
        low = np.array([r["low"] for r in bars])
        high = np.array([r["high"] for r in bars])
        heights = np.array([r["mean"] for r in bars])
        assert np.all(low <= high)
        assert entry["bins_outside"] == np.sum((heights < low) | (heights > high))
        assert entry["bins_outside"] <= 1
    assert predictive_rows("r1", {}) == []


def test_simultaneous_band_holds_the_share_of_curves_it_promises():
    """94% of fresh histograms lie wholly inside; a pointwise 94% band holds few."""
    rng = np.random.default_rng(8)
    probabilities = rng.dirichlet(np.full(41, 5.0))  # 40 bins and the rest
    calibration = rng.multinomial(500, probabilities, size=8000)[:, :-1]
    fresh = rng.multinomial(500, probabilities, size=8000)[:, :-1]
    low, high, level = simultaneous_band(calibration)
    inside = np.all((fresh >= low) & (fresh <= high), axis=1)
    assert inside.mean() == pytest.approx(0.94, abs=0.015)
    assert level < 0.01  # each bin's band is far wider than its 94% interval
    pointwise = np.quantile(calibration, [0.03, 0.97], axis=0)
    assert (
        np.all((fresh >= pointwise[0]) & (fresh <= pointwise[1]), axis=1).mean() < 0.6
    )


def _point_mass(params, draws=200):
    k, d = params.n_components, params.n_features
    return (
        np.broadcast_to(params.weights, (1, draws, k)),
        np.broadcast_to(params.means, (1, draws, k, d)),
        np.broadcast_to(params.full_covariances(), (1, draws, k, d, d)),
    )


def test_histogram_check_expects_few_bars_outside_and_finds_a_misfit():
    """Bars outside the band: about 0.06 per feature expected under the model.

    Data drawn from the model itself have about that many; a one-component
    model of two separated clusters has many more.
    """
    truth = MixtureParams(
        [0.4, 0.6], [[0.0, 0.0], [4.0, 1.0]], [np.eye(2), [[0.6, 0.2], [0.2, 0.5]]]
    )
    X, _ = truth.sample(3000, random_state=9)
    out = posterior_criticism(X, *_point_mass(truth), ppc_replicates=20)
    for entry in out["predictive_density"]:
        assert entry["histogram_density"].size > 15  # many bars, few outside
        assert 0.02 < entry["bins_outside_expected"] < 0.15
        assert entry["band_coverage"] == pytest.approx(0.94, abs=0.02)
        assert entry["bins_outside"] <= 1
    # One Gaussian for two clusters 4 apart in feature 0: its bimodal
    # marginal leaves the band in many bars (feature 1's barely shows it).
    one = fit_em(X, 1).params
    misfit = posterior_criticism(X, *_point_mass(one), ppc_replicates=20)
    first = misfit["predictive_density"][0]
    assert first["bins_outside"] >= 10
    assert first["bins_outside_expected"] < 0.15


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_prior_strength_rebuilds_the_map_covariance(covariance_type):
    """At MAP-EM's fixed point, (W_k + E_k) / (n_k + m_k) is each covariance.

    So the prior's scatter ``tr E_k`` is its share times ``tr Sigma_k (n_k +
    m_k)``, and ``E_k`` is ``Lambda_P`` plus the mean's pull, from the prior's
    own hyper-parameters. A component of 6 points takes most of its
    covariance from the prior; the large ones little.
    """
    rng = np.random.default_rng(10)
    X = np.vstack([_data(200), rng.normal([-6.0, 5.0], 0.1, size=(6, 2))])
    params = fit_em(
        X,
        3,
        covariance_type=covariance_type,
        prior="default",
        reg_covar=0.0,
        tol=1e-13,
        max_iter=5000,
        random_state=0,
    ).params
    strength = prior_strength(X, params)
    points = strength["component_points"]
    assert_allclose(points, len(X) * params.weights, rtol=1e-6)
    assert_allclose(strength["prior_points"], 2 * 2 + 4)
    prior = ConjugatePrior().resolve(X, np.ones(len(X)), 3)
    resp = np.exp(pymc_backend.e_step(X, params)[1])
    centres = resp.T @ X / points[:, None]
    pull = 0.01 * points / (points + 0.01) * np.sum((centres - prior.mean) ** 2, 1)
    prior_scatter = np.trace(prior.scale) + pull
    traces = np.trace(params.full_covariances(), axis1=1, axis2=2)
    assert_allclose(
        strength["prior_scatter_share"] * traces * (points + 8),
        prior_scatter,
        rtol=1e-5,
    )
    small = int(np.argmin(points))
    assert points[small] == pytest.approx(6.0, abs=0.1)
    assert strength["prior_scatter_share"][small] > 0.9
    others = np.delete(strength["prior_scatter_share"], small)
    assert np.all(others < 0.1)


def test_one_component_has_no_logits():
    params = MixtureParams([1.0], [[0.5, -1.0]], [[[2.0, 0.3], [0.3, 1.0]]])
    free = params_to_free(params, "full")
    assert "logits" not in free
    weights, _means, covariances = draws_to_params(free, "full")
    assert_allclose(weights, [1.0])
    assert_allclose(covariances, params.full_covariances(), rtol=1e-10)


def test_replicates_are_rounded_as_the_data_were_recorded():
    """Data on a 0.1 grid tie often; so do the model's replicates, rounded alike."""
    rng = np.random.default_rng(7)
    X = np.round(rng.normal(0.0, 0.5, size=(300, 1)), 1)
    assert pymc_backend._resolution(X) == pytest.approx(0.1)
    assert pymc_backend._resolution(X + 1e-3 * np.pi) is None
    params = fit_em(X, 1).params
    draws = (
        np.ones((1, 20, 1)),
        np.broadcast_to(params.means, (1, 20, 1, 1)),
        np.broadcast_to(params.full_covariances(), (1, 20, 1, 1, 1)),
    )
    out = posterior_criticism(X, *draws, ppc_replicates=20)
    assert out["ppc_ties_observed"] > 250  # 300 rows on ~30 grid values
    assert out["ppc_ties_replicated"] > 250
    assert out["ppc_ties_p"] > 0.05  # the model reproduces the data's ties


def test_loo_leaves_out_only_rows_the_posterior_saw():
    X = _data(80)
    params = fit_em(X, 2, random_state=0).params
    draws = (
        np.broadcast_to(params.weights, (1, 10, 2)),
        np.broadcast_to(params.means, (1, 10, 2, 2)),
        np.broadcast_to(params.full_covariances(), (1, 10, 2, 2, 2)),
    )
    rows = pymc_backend._subsample_rows(80, 30, seed=1)
    assert rows.shape == (30,)
    assert np.all(np.diff(rows) > 0)
    out = posterior_criticism(X, *draws, ppc_replicates=5, loo_rows=rows)
    assert out["loo"]["n"] == 30
    assert out["loo"]["elpd"] == pytest.approx(
        total_log_likelihood(X[rows], params), rel=1e-9
    )
    assert out["responsibilities_mean"].shape == (80, 2)  # every row


@pytest.mark.slow
def test_failed_checks_sample_again_with_twice_the_draws(monkeypatch, contract_data):
    real = pymc_backend._summaries
    failures = {"left": 1}

    def first_attempt_fails(draws):
        summary = real(draws)
        if failures["left"]:
            failures["left"] -= 1
            summary = {**summary, "r_hat_max": 1.2, "ess_bulk_min": 50.0}
        return summary

    monkeypatch.setattr(pymc_backend, "_summaries", first_attempt_fails)
    fit = get_backend("pymc").fit(
        contract_data[0], 3, random_state=0, draws=50, tune=100, max_draws=100
    )
    diagnostics = fit.diagnostics
    assert diagnostics["sampling_attempts"] == 2
    assert [a["draws"] for a in diagnostics["draw_attempts"]] == [50, 100]
    assert diagnostics["draw_attempts"][0]["r_hat_max"] == 1.2
    assert diagnostics["draws"] == 100
    assert fit.n_iter == 4 * 100
    # Never beyond max_draws: one attempt when doubling would exceed it.
    failures["left"] = 1
    fit = get_backend("pymc").fit(
        contract_data[0], 3, random_state=0, draws=50, tune=100, max_draws=60
    )
    assert fit.diagnostics["sampling_attempts"] == 1
    assert not fit.converged
