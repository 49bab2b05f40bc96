"""Bootstrap standard errors and intervals (mixtures.bootstrapping)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from joblib import parallel_config
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

import mixtures.bootstrapping as bootstrap_module
from mixtures import GaussianMixture
from mixtures.bootstrapping import BootstrapResult, bootstrap

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def two_blobs(
    n: int = 400, p: float = 0.3, gap: float = 8.0, seed: int = 0
) -> np.ndarray:
    """``n`` points, a fraction ``p`` around the origin and the rest ``gap`` away."""
    rng = np.random.default_rng(seed)
    n_first = round(p * n)
    cov = np.array([[1.0, 0.3], [0.3, 0.6]])
    return np.vstack(
        [
            rng.multivariate_normal([0.0, 0.0], cov, n_first),
            rng.multivariate_normal([gap, gap / 2], cov, n - n_first),
        ]
    )


@pytest.fixture(scope="module")
def blobs_fit() -> tuple[GaussianMixture, np.ndarray]:
    X = two_blobs()
    return GaussianMixture(2, random_state=0).fit(X), X


def fitted_state(estimator) -> dict:
    state = {k: v for k, v in vars(estimator).items() if k.endswith("_")}
    return {"params": estimator.get_params(), **state}


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key])
        elif key != "params":
            assert a[key] == b[key], key
    assert repr(a["params"]) == repr(b["params"])


# -- closed-form references ------------------------------------------------------


def test_mean_standard_error_of_one_gaussian_is_sigma_over_root_n():
    n = 400
    rng = np.random.default_rng(1)
    X = rng.multivariate_normal([1.0, -2.0], [[2.0, 0.5], [0.5, 1.0]], n)
    gm = GaussianMixture(1, random_state=0).fit(X)
    result = bootstrap(gm, X, n_bootstrap=400, random_state=2)

    expected = X.std(axis=0, ddof=1) / np.sqrt(n)
    np.testing.assert_allclose(result.std_errors["means"][0], expected, rtol=0.15)
    # A single component has weight one in every replicate.
    np.testing.assert_array_equal(result.weights, 1.0)
    np.testing.assert_array_equal(result.std_errors["weights"], 0.0)


def test_variance_standard_errors_follow_the_fourth_moment():
    # Uniform data (kurtosis 1.8) fitted by one Gaussian. The sample variance
    # s2 has sd sqrt((m4 - s2^2) / n) under the data's own distribution, which
    # the nonparametric bootstrap reproduces, and s2 sqrt(2 (n - 1)) / n under
    # the fitted normal, which the parametric bootstrap reproduces; the two
    # differ by a factor of about 0.63, so each kind is told apart. Monte
    # Carlo error is about 1 / sqrt(2 B) = 3.5%.
    n = 400
    X = np.random.default_rng(3).uniform(0.0, 6.0, size=(n, 1))
    gm = GaussianMixture(1, reg_covar=0.0, random_state=0).fit(X)
    variance = X.var()
    fourth = np.mean((X - X.mean()) ** 4)

    parametric = bootstrap(gm, X, n_bootstrap=400, kind="parametric", random_state=4)
    np.testing.assert_allclose(
        parametric.std_errors["covariances"][0, 0, 0],
        variance * np.sqrt(2.0 * (n - 1)) / n,
        rtol=0.15,
    )
    np.testing.assert_allclose(
        parametric.std_errors["means"][0, 0], np.sqrt(variance / n), rtol=0.15
    )

    nonparametric = bootstrap(gm, X, n_bootstrap=400, random_state=4)
    np.testing.assert_allclose(
        nonparametric.std_errors["covariances"][0, 0, 0],
        np.sqrt((fourth - variance**2) / n),
        rtol=0.15,
    )


def test_weight_standard_error_of_separated_mixture_is_binomial(blobs_fit):
    gm, X = blobs_fit
    result = bootstrap(gm, X, n_bootstrap=200, random_state=5)

    p = gm.weights_
    expected = np.sqrt(p * (1 - p) / X.shape[0])
    np.testing.assert_allclose(result.std_errors["weights"], expected, rtol=0.2)
    # Weights sum to one in every replicate, so their SEs agree.
    np.testing.assert_allclose(result.weights.sum(axis=1), 1.0)


def test_parametric_and_nonparametric_give_standard_errors_of_the_same_order(
    blobs_fit,
):
    gm, X = blobs_fit
    nonparametric = bootstrap(gm, X, n_bootstrap=100, random_state=6)
    parametric = bootstrap(gm, X, n_bootstrap=100, kind="parametric", random_state=6)

    assert nonparametric.kind == "nonparametric"
    assert parametric.kind == "parametric"
    for name in ("weights", "means"):
        ratio = parametric.std_errors[name] / nonparametric.std_errors[name]
        assert np.all((ratio > 0.5) & (ratio < 2.0)), (name, ratio)
    diagonal = np.diagonal(parametric.std_errors["covariances"], axis1=1, axis2=2)
    reference = np.diagonal(nonparametric.std_errors["covariances"], axis1=1, axis2=2)
    ratio = diagonal / reference
    assert np.all((ratio > 0.4) & (ratio < 2.5)), ratio


# -- summaries -------------------------------------------------------------------


def test_intervals_are_replicate_percentiles_and_bracket_the_estimates(blobs_fit):
    gm, X = blobs_fit
    result = bootstrap(gm, X, n_bootstrap=60, alpha=0.1, random_state=7)

    assert isinstance(result, BootstrapResult)
    assert result.alpha == 0.1
    for name in ("weights", "means", "covariances"):
        replicates = getattr(result, name)
        interval = result.intervals[name]
        assert interval.shape == (2, *replicates.shape[1:])
        np.testing.assert_array_equal(
            interval, np.quantile(replicates, [0.05, 0.95], axis=0)
        )
        np.testing.assert_array_equal(
            result.std_errors[name], replicates.std(axis=0, ddof=1)
        )
        estimate = result.estimates[name]
        assert np.all(interval[0] <= estimate + 1e-12)
        assert np.all(estimate <= interval[1] + 1e-12)
    np.testing.assert_array_equal(result.estimates["means"], gm.means_)

    wider = bootstrap(gm, X, n_bootstrap=60, alpha=0.01, random_state=7)
    assert np.all(wider.intervals["means"][0] <= result.intervals["means"][0])
    assert np.all(wider.intervals["means"][1] >= result.intervals["means"][1])


def test_summary_is_a_tidy_table():
    X = pd.DataFrame(two_blobs(n=200), columns=["x", "y"])
    gm = GaussianMixture(2, random_state=0).fit(X)
    result = bootstrap(gm, X, n_bootstrap=30, random_state=8)
    table = result.summary()

    assert list(table.columns) == [
        "parameter",
        "component",
        "index",
        "estimate",
        "std_error",
        "lower",
        "upper",
    ]
    k, d = 2, 2
    assert len(table) == k + k * d + k * d * (d + 1) // 2
    assert table["parameter"].value_counts().to_dict() == {
        "weights": 2,
        "means": 4,
        "covariances": 6,
    }
    row = table.query("parameter == 'covariances' and component == 1")
    assert row["index"].tolist() == ["x,x", "x,y", "y,y"]
    np.testing.assert_allclose(
        row["std_error"], result.std_errors["covariances"][1][np.triu_indices(2)]
    )
    means = table[table["parameter"] == "means"]
    np.testing.assert_allclose(means["estimate"], gm.means_.ravel())
    np.testing.assert_allclose(means["lower"], result.intervals["means"][0].ravel())
    weights = table[table["parameter"] == "weights"]
    np.testing.assert_allclose(weights["estimate"], gm.weights_)
    assert (table["lower"] <= table["upper"]).all()


# -- reproducibility -------------------------------------------------------------


def test_same_random_state_gives_identical_replicates(blobs_fit):
    gm, X = blobs_fit
    for kind in ("nonparametric", "parametric"):
        first = bootstrap(gm, X, n_bootstrap=20, kind=kind, random_state=9)
        second = bootstrap(gm, X, n_bootstrap=20, kind=kind, random_state=9)
        other = bootstrap(gm, X, n_bootstrap=20, kind=kind, random_state=10)
        for name in ("weights", "means", "covariances"):
            np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
        assert not np.array_equal(first.means, other.means)


def test_seed_sequence_children_do_not_depend_on_n_jobs(blobs_fit):
    gm, X = blobs_fit
    serial = bootstrap(gm, X, n_bootstrap=24, random_state=11, n_jobs=1)
    parallel = bootstrap(gm, X, n_bootstrap=24, random_state=11, n_jobs=2)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(getattr(serial, name), getattr(parallel, name))
    np.testing.assert_array_equal(serial.converged, parallel.converged)
    with parallel_config(backend="threading"):
        threaded = bootstrap(gm, X, n_bootstrap=24, random_state=11, n_jobs=2)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(getattr(serial, name), getattr(threaded, name))


@pytest.mark.parametrize("backend", ["sequential", "threading"])
def test_unconverged_replicates_are_kept_flagged_and_quiet(backend):
    X = two_blobs(n=200, gap=2.0, seed=24)
    with pytest.warns(ConvergenceWarning):
        gm = GaussianMixture(2, max_iter=1, random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with parallel_config(backend=backend):
            result = bootstrap(gm, X, n_bootstrap=6, random_state=25, n_jobs=2)
    assert result.n_failed == 0
    assert not result.converged.any()
    assert not result.degenerate.any()


def test_seed_sequence_and_none_are_accepted(blobs_fit):
    gm, X = blobs_fit
    from_int = bootstrap(gm, X, n_bootstrap=5, random_state=12)
    from_sequence = bootstrap(
        gm, X, n_bootstrap=5, random_state=np.random.SeedSequence(12)
    )
    np.testing.assert_array_equal(from_int.means, from_sequence.means)
    fresh = bootstrap(gm, X, n_bootstrap=5, random_state=None)
    assert fresh.means.shape == from_int.means.shape


def test_the_estimator_is_left_unchanged(blobs_fit):
    gm, X = blobs_fit
    before = fitted_state(gm)
    bootstrap(gm, X, n_bootstrap=5, random_state=13)
    bootstrap(gm, X, n_bootstrap=5, kind="parametric", random_state=13)
    assert_same_state(before, fitted_state(gm))


# -- label switching -------------------------------------------------------------


def closer_to_own_component(means: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(B, K) mask: replicate mean k is nearest to reference mean k."""
    distances = np.linalg.norm(
        means[:, :, np.newaxis, :] - reference[np.newaxis, np.newaxis, :, :], axis=-1
    )
    return distances.argmin(axis=-1) == np.arange(reference.shape[0])


def test_replicate_components_stay_with_their_original_component():
    X = two_blobs(n=300, p=0.4, gap=3.0, seed=14)
    gm = GaussianMixture(2, random_state=0).fit(X)
    result = bootstrap(gm, X, n_bootstrap=50, random_state=15)
    assert closer_to_own_component(result.means, gm.means_).all()


def test_label_switched_refits_are_realigned(blobs_fit, monkeypatch):
    """Refits that come back in reversed order are put back in place."""
    gm, X = blobs_fit
    original_fit = GaussianMixture.fit

    def reversed_fit(self, *args, **kwargs):
        original_fit(self, *args, **kwargs)
        for name in (
            "weights_",
            "means_",
            "covariances_",
            "precisions_",
            "precisions_cholesky_",
        ):
            setattr(self, name, getattr(self, name)[::-1].copy())
        return self

    monkeypatch.setattr(GaussianMixture, "fit", reversed_fit)
    result = bootstrap(gm, X, n_bootstrap=10, random_state=16, n_jobs=1)
    assert closer_to_own_component(result.means, gm.means_).all()
    assert np.all(np.abs(result.weights - gm.weights_) < 0.1)

    # Without the alignment step the same refits are all switched.
    monkeypatch.setattr(bootstrap_module, "align", lambda params, reference: params)
    unaligned = bootstrap(gm, X, n_bootstrap=10, random_state=16, n_jobs=1)
    assert not closer_to_own_component(unaligned.means, gm.means_).any()


# -- covariance types ------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("kind", ["nonparametric", "parametric"])
def test_every_covariance_type_gives_full_covariances(covariance_type, kind):
    X = two_blobs(n=200, seed=17)
    gm = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    result = bootstrap(gm, X, n_bootstrap=12, kind=kind, random_state=18)

    assert result.weights.shape == (12, 2)
    assert result.means.shape == (12, 2, 2)
    assert result.covariances.shape == (12, 2, 2, 2)
    assert result.n_failed == 0
    assert result.n_replicates == result.n_bootstrap == 12
    for name in ("weights", "means", "covariances"):
        assert np.all(np.isfinite(getattr(result, name)))
    assert np.all(result.std_errors["weights"] > 0)
    assert np.all(result.std_errors["means"] > 0)
    np.testing.assert_allclose(
        result.estimates["covariances"], gm.params_.full_covariances()
    )
    covs = result.covariances
    np.testing.assert_allclose(covs, np.swapaxes(covs, -1, -2))
    if covariance_type == "tied":
        np.testing.assert_array_equal(covs[:, 0], covs[:, 1])
    if covariance_type in ("diag", "spherical"):
        np.testing.assert_array_equal(covs[:, :, 0, 1], 0.0)
        np.testing.assert_array_equal(result.std_errors["covariances"][:, 0, 1], 0.0)
    if covariance_type == "spherical":
        np.testing.assert_array_equal(covs[:, :, 0, 0], covs[:, :, 1, 1])


def test_float32_data_and_scikit_learn_estimators_work():
    X = two_blobs(n=200, seed=19)
    gm = GaussianMixture(2, random_state=0).fit(X.astype(np.float32))
    result = bootstrap(gm, X.astype(np.float32), n_bootstrap=8, random_state=20)
    assert result.means.dtype == np.float64
    assert np.all(np.isfinite(result.covariances))

    sk = SklearnGaussianMixture(2, covariance_type="diag", random_state=0).fit(X)
    result = bootstrap(sk, X, n_bootstrap=8, random_state=20)
    assert result.n_failed == 0
    assert closer_to_own_component(result.means, sk.means_).all()


# -- failures and bad input ------------------------------------------------------


def test_failed_replicates_are_counted_and_left_out(blobs_fit, monkeypatch):
    gm, X = blobs_fit
    original_fit = GaussianMixture.fit
    calls = []

    def flaky_fit(self, *args, **kwargs):
        calls.append(None)
        if len(calls) % 3 == 0:
            raise np.linalg.LinAlgError("simulated breakdown")
        return original_fit(self, *args, **kwargs)

    monkeypatch.setattr(GaussianMixture, "fit", flaky_fit)
    result = bootstrap(gm, X, n_bootstrap=9, random_state=21, n_jobs=1)
    assert result.n_failed == 3
    assert result.n_replicates == 6
    assert result.weights.shape == (6, 2)
    assert result.failures[0] == "replicate 2: LinAlgError: simulated breakdown"
    assert np.all(np.isfinite(result.std_errors["means"]))


def test_non_finite_refits_fail_and_all_failures_raise(blobs_fit, monkeypatch):
    gm, X = blobs_fit
    original_fit = GaussianMixture.fit

    def nan_fit(self, *args, **kwargs):
        original_fit(self, *args, **kwargs)
        self.means_ = np.full_like(self.means_, np.nan)
        return self

    monkeypatch.setattr(GaussianMixture, "fit", nan_fit)
    with pytest.raises(RuntimeError, match="only 0 of 4 bootstrap replicates"):
        bootstrap(gm, X, n_bootstrap=4, random_state=22, n_jobs=1)


def test_unfitted_estimator_is_rejected():
    X = two_blobs(n=50)
    with pytest.raises(NotFittedError):
        bootstrap(GaussianMixture(2), X, n_bootstrap=5)
    assert issubclass(NotFittedError, ValueError)


def test_feature_count_must_match(blobs_fit):
    gm, X = blobs_fit
    with pytest.raises(ValueError, match="features"):
        bootstrap(gm, np.hstack([X, X]), n_bootstrap=5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_bootstrap": 1}, "n_bootstrap must be an integer >= 2"),
        ({"n_bootstrap": 10.0}, "n_bootstrap must be an integer >= 2"),
        ({"n_bootstrap": True}, "n_bootstrap must be an integer >= 2"),
        ({"kind": "jackknife"}, "kind must be one of 'nonparametric', 'parametric'"),
        ({"alpha": 0.0}, "alpha must be a number strictly between 0 and 1"),
        ({"alpha": 1.0}, "alpha must be a number strictly between 0 and 1"),
        ({"alpha": 5}, "alpha must be a number strictly between 0 and 1"),
        ({"random_state": -1}, "random_state must be None"),
        ({"random_state": np.random.default_rng(0)}, "random_state must be None"),
    ],
)
def test_bad_options_say_what_to_do(blobs_fit, options, message):
    gm, X = blobs_fit
    with pytest.raises(ValueError, match=message):
        bootstrap(gm, X, **{"n_bootstrap": 5, **options})


def test_progress_bar_runs(blobs_fit, capsys):
    gm, X = blobs_fit
    result = bootstrap(gm, X, n_bootstrap=5, random_state=23, progress=True)
    assert result.n_replicates == 5
    assert "bootstrap" in capsys.readouterr().err
