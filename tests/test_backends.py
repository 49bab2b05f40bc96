"""One contract for every registered backend, and the registry itself."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats
from sklearn.mixture import BayesianGaussianMixture
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from mixtures import MixtureParams, fit_em
from mixtures.align import align
from mixtures.backends import (
    TRACE_KINDS,
    BackendUnavailableError,
    MixtureFit,
    available_backends,
    backend_statuses,
    get_backend,
    is_posterior_backend,
    reload_backends,
    total_log_likelihood,
)

from gmm_helpers import CONTRACT_TRUTH

# The contract is for engines that fit from data alone; the "function"
# backend (someone's EM code from a given start) has its own tests.
BACKENDS = [
    name
    for name in available_backends()
    if not getattr(get_backend(name), "needs_start", False)
]
SLOW = {"pymc", "pymc-advi"}


def _marks(name):
    return [pytest.mark.slow] if name in SLOW else []


ALL = [pytest.param(name, marks=_marks(name)) for name in BACKENDS]


def test_builtin_backends_are_registered():
    assert {"em", "sklearn", "sklearn-vb", "pymc", "pymc-advi"} <= set(
        backend_statuses()
    )
    assert {"em", "sklearn", "sklearn-vb"} <= set(BACKENDS)


@pytest.mark.parametrize("name", ALL)
def test_backend_recovers_a_well_separated_mixture(name, backend_fit, contract_data):
    X, _ = contract_data
    fit = backend_fit(name)
    assert isinstance(fit, MixtureFit)
    assert fit.backend == name
    assert fit.params.covariance_type == "full"
    assert fit.params.weights.shape == (3,)
    assert fit.params.means.shape == (3, 2)
    assert fit.params.covariances.shape == (3, 2, 2)
    aligned = align(fit.params, CONTRACT_TRUTH)
    assert_allclose(aligned.weights, CONTRACT_TRUTH.weights, atol=0.06)
    assert_allclose(aligned.means, CONTRACT_TRUTH.means, atol=0.2)
    assert_allclose(aligned.covariances, CONTRACT_TRUTH.covariances, atol=0.2)
    assert fit.trace_kind in TRACE_KINDS
    assert fit.loglik_trace.ndim == 1
    assert fit.loglik_trace.size > 0
    assert np.all(np.isfinite(fit.loglik_trace))
    assert fit.n_iter > 0
    assert 0 < fit.seconds < 3600
    assert fit.log_likelihood == total_log_likelihood(X, fit.params)
    assert isinstance(fit.version, str)


@pytest.mark.parametrize("name", ALL)
def test_same_random_state_gives_the_same_fit(name, contract_data):
    X, _ = contract_data
    # One chain has no r-hat, so its checks always fail and NUTS samples
    # again with twice the draws up to max_draws: 120 keeps one such
    # resample (60, then 120 draws) instead of seven (up to 3840).
    small = {
        "pymc": {"draws": 60, "tune": 60, "chains": 1, "max_draws": 120},
        "pymc-advi": {"n_iter": 500, "draws": 50},
    }.get(name, {})
    first = get_backend(name).fit(X, 3, random_state=11, **small)
    second = get_backend(name).fit(X, 3, random_state=11, **small)
    if name == "pymc":
        assert first.diagnostics["sampling_attempts"] == 2
    assert_array_equal(first.params.means, second.params.means)
    assert_array_equal(first.params.covariances, second.params.covariances)
    assert_array_equal(first.loglik_trace, second.loglik_trace)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize(
    ("X", "k", "options", "message"),
    [
        (np.array([[0.0, np.nan]] * 10), 2, {}, "NaN"),
        (np.zeros((10, 2)), 0, {}, "n_components must be an integer >= 1"),
        (np.zeros((1, 2)), 1, {}, "sample"),
        (np.zeros((3, 2)), 5, {}, "n_samples >= n_components"),
        (np.zeros((10, 2, 2)), 2, {}, "dim 3"),
        (np.zeros((10, 2)), 2, {"no_such_option": 1}, "unknown options"),
    ],
    ids=["nan", "k0", "one-sample", "k>n", "3d", "unknown-option"],
)
def test_bad_input_raises_value_error(name, X, k, options, message):
    with pytest.raises(ValueError, match=message):
        get_backend(name).fit(X, k, **options)


@pytest.mark.parametrize("name", BACKENDS)
def test_unknown_covariance_type(name):
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        get_backend(name).fit(np.zeros((10, 2)), 2, covariance_type="banana")


def test_sklearn_trace_is_sklearns_lower_bounds(contract_data):
    X, _ = contract_data
    fit = get_backend("sklearn").fit(X, 3, random_state=4, tol=1e-6)
    direct = SklearnGaussianMixture(3, random_state=4, tol=1e-6).fit(X)
    assert_array_equal(fit.loglik_trace, direct.lower_bounds_)
    assert fit.n_iter == direct.n_iter_


# ---------------------------------------------------------------------------
# sklearn-vb: scikit-learn's variational BayesianGaussianMixture


def _two_blobs(n_per_blob=300, seed=0):
    rng = np.random.default_rng(seed)
    return np.vstack(
        [
            rng.normal([0.0, 0.0], 0.5, size=(n_per_blob, 2)),
            rng.normal([6.0, 6.0], 0.5, size=(n_per_blob, 2)),
        ]
    )


@pytest.mark.parametrize("prior", ["dirichlet_process", "dirichlet_distribution"])
def test_sklearn_vb_runs_with_both_weight_priors(prior, contract_data):
    X, _ = contract_data
    fit = get_backend("sklearn-vb").fit(
        X, 3, random_state=0, weight_concentration_prior_type=prior
    )
    assert fit.trace_kind == "vb_elbo"
    assert fit.diagnostics["weight_concentration_prior_type"] == prior
    assert fit.diagnostics["weight_concentration_prior"] == pytest.approx(1 / 3)
    assert fit.diagnostics["effective_components"] == 3
    assert sum(fit.diagnostics["component_counts"]) == pytest.approx(len(X))
    assert_allclose(fit.params.weights.sum(), 1.0, rtol=1e-12)
    aligned = align(fit.params, CONTRACT_TRUTH)
    assert_allclose(aligned.means, CONTRACT_TRUTH.means, atol=0.2)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_sklearn_vb_takes_scikit_learns_four_covariance_types(covariance_type):
    X = _two_blobs(60)
    fit = get_backend("sklearn-vb").fit(
        X, 2, covariance_type=covariance_type, random_state=0
    )
    assert fit.params.covariances.shape == (2, 2, 2)  # always full form
    assert fit.loglik_trace.ndim == 1  # scikit-learn's tied bound has shape (1,)
    assert np.all(np.isfinite(fit.loglik_trace))
    assert isinstance(fit.diagnostics["lower_bound"], float)
    # Computed on the typed parameters (as the sklearn backend does), so the
    # full form kept in the fit agrees to rounding only.
    assert fit.log_likelihood == pytest.approx(
        total_log_likelihood(X, fit.params), rel=1e-12
    )


def test_sklearn_vb_refuses_gmmlabs_other_covariance_models():
    with pytest.raises(ValueError, match="covariance_type must be one of 'full'"):
        get_backend("sklearn-vb").fit(_two_blobs(20), 2, covariance_type="VVV")


def test_sklearn_vb_dirichlet_process_empties_unneeded_components():
    """K = 6 on two well-separated Gaussians: at most two components hold data."""
    X = _two_blobs()
    for seed in range(3):
        fit = get_backend("sklearn-vb").fit(X, 6, random_state=seed, max_iter=500)
        counts = np.array(fit.diagnostics["component_counts"])
        effective = counts > 0.5
        assert fit.diagnostics["effective_components"] == effective.sum() <= 2
        # Whatever the weights of the empty components, the occupied ones
        # hold (nearly) the whole sample.
        assert counts[effective].sum() == pytest.approx(len(X), abs=0.5)
        assert fit.params.weights[effective].sum() > 0.99


@pytest.mark.parametrize("prior", ["dirichlet_process", "dirichlet_distribution"])
def test_sklearn_vb_matches_a_direct_scikit_learn_fit(prior, contract_data):
    X, _ = contract_data
    options = {"weight_concentration_prior_type": prior}
    fit = get_backend("sklearn-vb").fit(X, 4, random_state=5, tol=1e-5, **options)
    direct = BayesianGaussianMixture(
        n_components=4, random_state=5, tol=1e-5, **options
    ).fit(X)
    assert_array_equal(fit.params.weights, direct.weights_ / direct.weights_.sum())
    assert_allclose(fit.params.weights, direct.weights_, rtol=1e-14)
    assert_array_equal(fit.params.means, direct.means_)
    assert_array_equal(fit.params.covariances, direct.covariances_)
    assert_array_equal(fit.loglik_trace, direct.lower_bounds_)
    assert fit.n_iter == direct.n_iter_
    assert fit.converged == direct.converged_
    assert fit.diagnostics["lower_bound"] == direct.lower_bound_


def test_sklearn_vb_unknown_option_is_named():
    with pytest.raises(ValueError, match=r"'sklearn-vb'.*\['means_init'\]"):
        get_backend("sklearn-vb").fit(_two_blobs(20), 2, means_init=np.zeros((2, 2)))


def test_sklearn_vb_gets_the_sweeps_threshold_in_total_nats(contract_data):
    """Its lower bound is a total, so its tol is the sweep's threshold in nats."""
    from experiments.config import Stopping, engine_stopping_options

    X, _ = contract_data
    rule = Stopping(tol=1e-7, max_iter=300)
    vb = engine_stopping_options("sklearn-vb", rule, X)
    per_sample = engine_stopping_options("sklearn", rule, X)
    assert vb["max_iter"] == per_sample["max_iter"] == 300
    assert vb["tol"] == pytest.approx(per_sample["tol"] * len(X), rel=1e-12)
    fit = get_backend("sklearn-vb").fit(X, 3, random_state=0, **vb)
    assert fit.converged
    assert abs(fit.loglik_trace[-1] - fit.loglik_trace[-2]) < vb["tol"]


def test_em_backend_keeps_every_restart(contract_data):
    X, _ = contract_data
    fit = get_backend("em").fit(X, 3, random_state=0, n_init=4, init_params="random")
    assert len(fit.restart_traces) == 4
    assert fit.diagnostics["n_init"] == 4
    assert_array_equal(
        fit.loglik_trace, fit.restart_traces[fit.diagnostics["best_restart"]]
    )


def test_log_likelihood_is_one_shared_function(contract_data, backend_fit):
    """Every backend reports the same function of its parameters."""
    X, _ = contract_data
    reference = sum(
        w * stats.multivariate_normal(m, c).pdf(X)
        for w, m, c in zip(
            CONTRACT_TRUTH.weights,
            CONTRACT_TRUTH.means,
            CONTRACT_TRUTH.covariances,
            strict=True,
        )
    )
    assert total_log_likelihood(X, CONTRACT_TRUTH) == pytest.approx(
        np.log(reference).sum(), rel=1e-12
    )
    # Each backend's reported value is that function at its own parameters,
    # computed here independently with scipy.
    for name in ("em", "sklearn"):
        fit = backend_fit(name)
        independent = np.log(
            sum(
                w * stats.multivariate_normal(m, c).pdf(X)
                for w, m, c in zip(
                    fit.params.weights,
                    fit.params.means,
                    fit.params.covariances,
                    strict=True,
                )
            )
        ).sum()
        assert fit.log_likelihood == pytest.approx(independent, rel=1e-10)
    em, sk = backend_fit("em"), backend_fit("sklearn")
    assert em.log_likelihood == pytest.approx(sk.log_likelihood, rel=1e-6)


@pytest.mark.parametrize("name", ["em", "sklearn", "sklearn-vb"])
def test_reported_seconds_are_the_fits_own_wall_time(contract_data, name):
    import time

    X, _ = contract_data
    backend = get_backend(name)
    backend.fit(X, 3, random_state=0)  # warm: imports and compiled kernels
    start = time.perf_counter()
    fit = backend.fit(X, 3, random_state=0)
    wall = time.perf_counter() - start
    # Timed inside the call: positive, and not more than the call took.
    assert 0 < fit.seconds <= wall


def test_unknown_backend_lists_the_registered_ones():
    with pytest.raises(ValueError, match="registered backends: em, sklearn"):
        get_backend("banana")


def test_pymc_missing_is_reported_with_install_hint(monkeypatch, contract_data):
    monkeypatch.setitem(sys.modules, "pymc", None)  # import pymc -> ImportError
    reload_backends()
    try:
        status = backend_statuses()["pymc"]
        assert not status.available
        assert "pip install 'gmmlab[bayes]'" in status.detail
        assert "pymc" not in available_backends()
        with pytest.raises(BackendUnavailableError, match=r"gmmlab\[bayes\]"):
            get_backend("pymc")
        fit = get_backend("em").fit(contract_data[0], 3, random_state=0)
        assert fit.backend == "em"
    finally:
        monkeypatch.undo()
        reload_backends()


def test_third_party_backend_registers_through_an_entry_point(
    tmp_path, monkeypatch, contract_data
):
    (tmp_path / "toy_backend.py").write_text(
        textwrap.dedent(
            """
            import numpy as np
            from mixtures import fit_em
            from mixtures.backends import MixtureFit, total_log_likelihood

            class ToyBackend:
                name = "toy"
                is_posterior = True  # a plug-in declares what it returns

                def fit(self, X, n_components, *, covariance_type="full",
                        random_state=None, **options):
                    result = fit_em(X, n_components, random_state=random_state)
                    return MixtureFit(
                        backend="toy", version="0.0", params=result.params,
                        log_likelihood=total_log_likelihood(X, result.params),
                        loglik_trace=result.lower_bounds,
                        trace_kind="em_mean_loglik", n_iter=result.n_iter,
                        converged=result.converged, seconds=0.0,
                    )
            """
        )
    )
    dist_info = tmp_path / "toy_backend-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: toy-backend\nVersion: 0.1\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "[gmmlab.backends]\ntoy = toy_backend:ToyBackend\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reload_backends()
    try:
        assert "toy" in available_backends()
        assert backend_statuses()["toy"].detail.startswith("plug-in")
        assert is_posterior_backend("toy")
        fit = get_backend("toy").fit(contract_data[0], 3, random_state=0)
        assert fit.backend == "toy"
        assert_allclose(
            align(fit.params, CONTRACT_TRUTH).means, CONTRACT_TRUTH.means, atol=0.2
        )
    finally:
        monkeypatch.undo()
        reload_backends()


def test_backends_declare_whether_they_summarise_a_posterior():
    declared = {name: is_posterior_backend(name) for name in available_backends()}
    expected = {
        "em": False,
        "sklearn": False,
        "function": False,
        "sklearn-vb": True,
        "pymc": True,
        "pymc-advi": True,
    }
    assert {name: declared[name] for name in expected if name in declared} == {
        name: value for name, value in expected.items() if name in declared
    }
    assert not is_posterior_backend("no-such-backend")


def test_pymc_subsample_is_seeded_and_bounded():
    pytest.importorskip("pymc")
    from mixtures.backends.pymc import _subsample

    data = np.arange(100.0).reshape(50, 2)
    assert _subsample(data, None, 0) is data
    assert _subsample(data, 80, 0) is data
    picked = _subsample(data, 10, 3)
    assert picked.shape == (10, 2)
    assert_array_equal(picked, _subsample(data, 10, 3))
    assert np.all(np.diff(picked[:, 0]) > 0)  # rows kept in their order
    with pytest.raises(ValueError, match="max_samples must be an integer >= 2"):
        _subsample(data, 1, 0)


# ---------------------------------------------------------------------------
# The Bayesian backends' own checks on the contract fits. They live here, not
# in test_pymc.py, so that the cached PyMC fits of the contract data are made
# once: the suite runs a module per worker (pytest-xdist --dist loadfile).


_NEEDS_PYMC = pytest.mark.skipif(
    "pymc" not in BACKENDS, reason="needs the bayes extra (PyMC)"
)


@pytest.mark.slow
@_NEEDS_PYMC
def test_nuts_converges_on_the_contract_data(backend_fit, contract_data):
    fit = backend_fit("pymc")
    diagnostics = fit.diagnostics
    assert fit.converged, diagnostics["unconverged_reason"]
    assert diagnostics["r_hat_max"] <= 1.01
    assert diagnostics["ess_bulk_min"] >= 400
    assert diagnostics["divergences"] == 0
    assert diagnostics["n_conditioned"] == diagnostics["n_samples"] == 600
    assert fit.trace_kind == "draw_mean_loglik"
    assert len(fit.restart_traces) == 4  # one per chain
    # EM's maximum-likelihood estimate lies inside every 94% interval.
    ml = fit_em(contract_data[0], 3, n_init=3, random_state=0, tol=1e-10).params
    ml = align(ml, fit.params)
    hdi = diagnostics["hdi_94"]
    for name, value in (
        ("weights", ml.weights),
        ("means", ml.means),
        ("covariances", ml.full_covariances()),
    ):
        assert np.all(hdi[name][..., 0] <= value), name
        assert np.all(value <= hdi[name][..., 1]), name
    # The MAP (MAP-EM) sits beside the posterior mean.
    assert_allclose(
        align(MixtureParams(**diagnostics["map"]), fit.params).means,
        fit.params.means,
        atol=0.05,
    )
    assert diagnostics["pareto_k_max"] < 0.7
    assert diagnostics["elpd_loo"] == pytest.approx(diagnostics["elpd_waic"], abs=1.0)
    assert diagnostics["responsibilities_mean"].shape == (600, 3)


@pytest.mark.slow
@_NEEDS_PYMC
def test_advi_agrees_with_em(backend_fit, contract_data):
    fit = backend_fit("pymc-advi")
    assert fit.trace_kind == "advi_mean_elbo"
    assert fit.diagnostics["final_elbo"] < 0
    em = fit_em(contract_data[0], 3, n_init=3, random_state=0).params
    aligned = align(fit.params, em)
    assert np.allclose(aligned.means, em.means, atol=0.15)
    # ADVI's draws are not posterior draws: no PSIS-LOO or WAIC from them.
    assert "elpd_loo" not in fit.diagnostics
    assert "elpd_waic" not in fit.diagnostics
    assert fit.diagnostics["ppc_bins"] > 0
