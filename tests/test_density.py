"""mixtures.density: mclust's densityMclust, with highest density regions.

References the implementation does not use: mclust 6's
``densityMclust(faithful)`` (EEE with 3 components, log-likelihood
-1126.326, BIC -2314.316 in mclust's sign); scipy's normal and multivariate
normal densities, CDFs and quantiles; the chi-squared closed form of a
normal's highest density regions (Hyndman 1996); numerical quadrature; and
draws made by scipy rather than by the density's own sampler.
"""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.contour import ContourSet
from scipy import integrate, stats

from experiments.report.figures.density import (
    density_figure,
    probability_plot_figure,
)
from experiments.report.figures.style import check_figure
from mixtures import MixtureParams
from mixtures.data import load_faithful
from mixtures.density import MixtureDensity, density_diagnostic, fit_density

PROBABILITIES = (0.25, 0.5, 0.75, 0.95)


@pytest.fixture(scope="module")
def faithful_frame():
    return load_faithful(as_frame=True)


@pytest.fixture(scope="module")
def searched_density(faithful_frame):
    """The default search (14 models x K = 1..9): run once, slow tests only."""
    return fit_density(faithful_frame, n_jobs=2)


@pytest.fixture(scope="module")
def faithful_density(faithful_frame):
    """The cell the default search chooses, EEE,3, searched alone (fast).

    The slow acceptance test shows it is the default search's choice, with
    the same parameters.
    """
    return fit_density(faithful_frame, models="EEE", n_components=3)


@pytest.fixture(scope="module")
def waiting_density(faithful_frame):
    """One-dimensional: Old Faithful's waiting times alone (models E and V).

    K = 1..3 holds the default search's choice (E with 2 components, the same
    fit); the tests read the density, not the search.
    """
    return fit_density(faithful_frame[["waiting"]], n_components=range(1, 4))


def _scipy_draws(params: MixtureParams, n: int, seed: int) -> np.ndarray:
    """Draws of the mixture by scipy, not by MixtureDensity.sample."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, params.weights)
    full = params.full_covariances()
    return np.vstack(
        [
            stats.multivariate_normal(mean, cov).rvs(size=count, random_state=rng)
            for mean, cov, count in zip(params.means, full, counts, strict=True)
        ]
    ).reshape(n, params.n_features)


def _scipy_pdf(params: MixtureParams, X: np.ndarray) -> np.ndarray:
    full = params.full_covariances()
    return sum(
        w * stats.multivariate_normal(m, c).pdf(X)
        for w, m, c in zip(params.weights, params.means, full, strict=True)
    )


def _one_normal(n_features: int, seed: int = 3) -> MixtureDensity:
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n_features, n_features))
    cov = A @ A.T + n_features * np.eye(n_features)
    mean = rng.normal(scale=5, size=n_features)
    return MixtureDensity(MixtureParams([1.0], mean[np.newaxis], cov[np.newaxis]))


# -- the acceptance: Old Faithful -------------------------------------------


@pytest.mark.slow
def test_old_faithful_density_is_mclusts_eee3(
    searched_density, faithful_density, faithful_frame
):
    density = searched_density
    assert len(density.search.table) == 14 * 9
    assert (density.model, density.n_components) == ("EEE", 3)
    assert density.log_likelihood == pytest.approx(-1126.32, abs=0.01)
    assert density.bic == pytest.approx(2314.30, abs=0.01)
    # mclust's -1126.326 / -2314.316 stop at its looser tolerance; ours
    # climbs 0.01 further on the same maximum.
    assert density.log_likelihood == pytest.approx(-1126.326, abs=0.02)
    assert -density.bic == pytest.approx(-2314.316, abs=0.04)
    assert density.feature_names == ("eruptions", "waiting")
    X = faithful_frame.to_numpy()
    # The numbers are those of the density itself, not only of the table:
    assert density.logpdf(X).sum() == pytest.approx(density.log_likelihood, abs=1e-6)
    n_parameters = 2 * 3 + 3 + 3 - 1  # means, one 2x2 covariance, weights
    assert density.bic == pytest.approx(
        -2 * density.log_likelihood + n_parameters * np.log(272), abs=1e-6
    )
    # Its HDR levels hold their probabilities of 100,000 fresh draws.
    levels = density.hdr_levels(PROBABILITIES, random_state=0)
    fresh = density.pdf(_scipy_draws(density.params, 100_000, seed=2026))
    coverage = [(fresh >= level).mean() for level in levels]
    assert coverage == pytest.approx(PROBABILITIES, abs=0.005)
    # The fast tests' EEE,3 fit is this one.
    alone = faithful_density
    assert alone.log_likelihood == pytest.approx(density.log_likelihood, abs=1e-8)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(
            np.sort(getattr(alone.params, name), axis=0),
            np.sort(getattr(density.params, name), axis=0),
            rtol=1e-6,
        )


def test_faithful_hdr_levels_hold_their_probability_of_fresh_draws(
    faithful_density,
):
    assert (faithful_density.model, faithful_density.n_components) == ("EEE", 3)
    assert faithful_density.bic == pytest.approx(2314.30, abs=0.01)
    levels = faithful_density.hdr_levels(PROBABILITIES, random_state=0)
    assert levels.shape == (4,)
    assert np.all(np.diff(levels) < 0)  # larger region, lower level
    fresh = _scipy_draws(faithful_density.params, 100_000, seed=2026)
    density = faithful_density.pdf(fresh)
    coverage = [(density >= level).mean() for level in levels]
    assert coverage == pytest.approx(PROBABILITIES, abs=0.005)
    # in_hdr is the same comparison
    inside = faithful_density.in_hdr(fresh[:1000], 0.5)
    np.testing.assert_array_equal(inside, density[:1000] >= levels[1])


def test_faithful_hdr_levels_by_quadrature(faithful_density):
    """Integral of f over {f >= level} on a fine grid: no sampling at all."""
    levels = faithful_density.hdr_levels(PROBABILITIES)
    u = np.linspace(0.0, 7.5, 1201)
    v = np.linspace(20.0, 120.0, 1201)
    U, V = np.meshgrid(u, v)
    f = faithful_density.pdf(np.column_stack([U.ravel(), V.ravel()]))
    cell = (u[1] - u[0]) * (v[1] - v[0])
    assert f.sum() * cell == pytest.approx(1.0, abs=1e-3)
    content = [f[f >= level].sum() * cell for level in levels]
    assert content == pytest.approx(PROBABILITIES, abs=0.005)


# -- density, CDF, quantiles, marginals ---------------------------------------


def test_logpdf_is_the_scipy_mixture_sum(faithful_density, faithful_frame):
    X = np.vstack([faithful_frame.to_numpy(), [[0.0, 0.0], [10.0, 150.0]]])
    expected = np.log(_scipy_pdf(faithful_density.params, X))
    np.testing.assert_allclose(faithful_density.logpdf(X), expected, rtol=1e-10)
    np.testing.assert_allclose(faithful_density.pdf(X), np.exp(expected), rtol=1e-9)


def test_univariate_logpdf_takes_a_flat_array(waiting_density):
    x = np.linspace(30, 110, 50)
    np.testing.assert_allclose(
        waiting_density.logpdf(x), waiting_density.logpdf(x[:, np.newaxis])
    )
    expected = np.log(_scipy_pdf(waiting_density.params, x[:, np.newaxis]))
    np.testing.assert_allclose(waiting_density.logpdf(x), expected, rtol=1e-10)


def test_univariate_cdf_is_the_normal_mixture(waiting_density):
    params = waiting_density.params
    x = np.linspace(20, 120, 401)
    sds = np.sqrt(params.full_covariances()[:, 0, 0])
    expected = sum(
        w * stats.norm.cdf(x, m, s)
        for w, m, s in zip(params.weights, params.means[:, 0], sds, strict=True)
    )
    cdf = waiting_density.cdf(x)
    np.testing.assert_allclose(cdf, expected, rtol=1e-12, atol=1e-15)
    assert np.all(np.diff(cdf) >= 0)
    assert waiting_density.cdf(-1e6) == 0.0
    assert waiting_density.cdf(1e6) == 1.0
    assert waiting_density.cdf([[50.0, 80.0]]).shape == (1, 2)
    # the derivative of the CDF is the density
    h = 1e-4
    slope = (waiting_density.cdf(x + h) - waiting_density.cdf(x - h)) / (2 * h)
    np.testing.assert_allclose(slope, waiting_density.pdf(x), rtol=1e-6, atol=1e-12)


def test_marginal_cdf_of_a_2d_fit_is_the_mixture_of_marginal_normals(
    faithful_density,
):
    params = faithful_density.params
    full = params.full_covariances()
    for feature, x in ((0, np.linspace(1, 6, 101)), (1, np.linspace(40, 100, 101))):
        expected = sum(
            w * stats.norm.cdf(x, m, np.sqrt(c[feature, feature]))
            for w, m, c in zip(
                params.weights, params.means[:, feature], full, strict=True
            )
        )
        np.testing.assert_allclose(
            faithful_density.cdf(x, feature), expected, rtol=1e-12
        )
        alone = MixtureDensity(faithful_density.marginal([feature]))
        np.testing.assert_allclose(alone.cdf(x), expected, rtol=1e-12)


def test_marginal_density_integrates_the_joint_one(faithful_density):
    """marginal([1]) is f(x2) = int f(x1, x2) dx1, by adaptive quadrature."""
    alone = MixtureDensity(faithful_density.marginal(1))
    for waiting in (50.0, 66.0, 80.0):
        joint, _ = integrate.quad(
            lambda e, w=waiting: faithful_density.pdf([[e, w]])[0], -5, 12, limit=200
        )
        assert alone.pdf([waiting])[0] == pytest.approx(joint, rel=1e-7)
    swapped = faithful_density.marginal([1, 0])
    assert swapped.means[:, 0] == pytest.approx(faithful_density.params.means[:, 1])


def test_marginal_cdf_of_one_normal_is_scipys():
    density = _one_normal(2)
    mean, cov = density.params.means[0], density.params.full_covariances()[0]
    x = np.linspace(-15, 15, 61)
    for feature in (0, 1):
        np.testing.assert_allclose(
            density.cdf(x, feature),
            stats.norm.cdf(x, mean[feature], np.sqrt(cov[feature, feature])),
            rtol=1e-12,
            atol=1e-300,
        )
        q = np.array([0.0, 0.01, 0.3, 0.5, 0.99, 1.0])
        np.testing.assert_allclose(
            density.ppf(q, feature),
            stats.norm.ppf(q, mean[feature], np.sqrt(cov[feature, feature])),
            rtol=1e-10,
        )


def test_ppf_inverts_the_mixture_cdf(waiting_density):
    q = np.linspace(0.001, 0.999, 99)
    x = waiting_density.ppf(q)
    np.testing.assert_allclose(waiting_density.cdf(x), q, atol=1e-10)
    assert waiting_density.ppf(0.0) == -np.inf
    assert waiting_density.ppf(1.0) == np.inf


def test_sample_has_the_mixtures_moments(faithful_density):
    params = faithful_density.params
    draws = faithful_density.sample(200_000, random_state=5)
    mean = params.weights @ params.means
    spread = params.means - mean
    cov = np.einsum("k,kij->ij", params.weights, params.full_covariances()) + np.einsum(
        "k,ki,kj->ij", params.weights, spread, spread
    )
    np.testing.assert_allclose(draws.mean(axis=0), mean, rtol=2e-3)
    np.testing.assert_allclose(np.cov(draws.T), cov, rtol=1e-2)
    again = faithful_density.sample(200_000, random_state=5)
    np.testing.assert_array_equal(draws, again)


# -- highest density regions against closed forms -----------------------------


@pytest.mark.parametrize("n_features", [1, 2, 3])
def test_hdr_level_of_one_normal_is_the_chi2_closed_form(n_features):
    """For N(mu, S): f >= c iff Mahalanobis^2 <= chi2_D(p), so
    c_p = f_max exp(-chi2_D(p) / 2) with f_max = (2 pi)^(-D/2) |S|^(-1/2)."""
    density = _one_normal(n_features)
    cov = density.params.full_covariances()[0]
    peak = (2 * np.pi) ** (-n_features / 2) / np.sqrt(np.linalg.det(cov))
    assert density.pdf(density.params.means)[0] == pytest.approx(peak, rel=1e-12)
    p = np.array(PROBABILITIES)
    closed = peak * np.exp(-stats.chi2.ppf(p, n_features) / 2)
    levels = density.hdr_levels(p, n_draws=100_000, random_state=1)
    np.testing.assert_allclose(levels, closed, rtol=0.03)
    # in probability, the levels' exact content is p to Monte Carlo error
    content = stats.chi2.cdf(-2 * np.log(levels / peak), n_features)
    np.testing.assert_allclose(content, p, atol=0.005)


def test_hdr_interval_of_one_normal_is_mean_plus_minus_z_sd():
    density = _one_normal(1)
    mean = density.params.means[0, 0]
    sd = np.sqrt(density.params.full_covariances()[0, 0, 0])
    for p in PROBABILITIES:
        ((low, high),) = density.hdr_intervals(p)
        half = stats.norm.ppf(0.5 + p / 2) * sd
        assert low == pytest.approx(mean - half, rel=0.01, abs=0.01 * sd)
        assert high == pytest.approx(mean + half, rel=0.01, abs=0.01 * sd)
        assert stats.norm.cdf(high, mean, sd) - stats.norm.cdf(
            low, mean, sd
        ) == pytest.approx(p, abs=0.005)


def test_hdr_intervals_of_waiting_hold_their_probability(waiting_density):
    for p in PROBABILITIES:
        intervals = waiting_density.hdr_intervals(p)
        content = sum(
            waiting_density.cdf(b) - waiting_density.cdf(a) for a, b in intervals
        )
        assert content == pytest.approx(p, abs=0.005)
        level = waiting_density.hdr_levels([p])[0]
        for a, b in intervals:
            assert waiting_density.pdf([a, b]) == pytest.approx([level] * 2, rel=1e-8)
            assert waiting_density.in_hdr([(a + b) / 2], p)[0]
    # waiting is bimodal (E,2, weights 0.64 and 0.36): the 25% HDR is one
    # interval about the higher mode, the 50% one reaches the lower mode too.
    assert len(waiting_density.hdr_intervals(0.25)) == 1
    assert len(waiting_density.hdr_intervals(0.5)) == 2


# -- the diagnostic -----------------------------------------------------------


def test_diagnostic_matches_scipys_kstest(waiting_density, faithful_frame):
    x = faithful_frame["waiting"].to_numpy()
    diagnostic = density_diagnostic(waiting_density)
    np.testing.assert_array_equal(diagnostic.x, np.sort(x))
    np.testing.assert_allclose(diagnostic.fitted_cdf, waiting_density.cdf(np.sort(x)))
    n = x.size
    np.testing.assert_allclose(
        diagnostic.empirical_cdf, (np.arange(1, n + 1) - 0.5) / n
    )
    np.testing.assert_allclose(
        waiting_density.cdf(diagnostic.fitted_quantiles),
        diagnostic.empirical_cdf,
        atol=1e-10,
    )
    reference = stats.kstest(x, waiting_density.cdf).statistic
    assert diagnostic.ks_statistic == pytest.approx(reference, rel=1e-12)
    assert 0 < diagnostic.ks_statistic < 0.1
    same = density_diagnostic(waiting_density, x)
    assert same.ks_statistic == diagnostic.ks_statistic


# -- figures -------------------------------------------------------------------


def _contours(ax) -> list[ContourSet]:
    return [c for c in ax.collections if isinstance(c, ContourSet)]


def test_density_figure_2d_has_four_labelled_hdr_contours(
    faithful_density, faithful_frame
):
    fig = density_figure(faithful_density, faithful_frame)
    check_figure(fig, "faithful density")
    (ax,) = fig.axes
    (contours,) = _contours(ax)
    levels = faithful_density.hdr_levels(PROBABILITIES)
    np.testing.assert_allclose(contours.levels, np.sort(levels))
    labels = sorted(text.get_text() for text in contours.labelTexts)
    assert set(labels) == {"25%", "50%", "75%", "95%"}
    assert "EEE,3" in ax.get_title()


def test_density_figure_1d_shades_four_hdrs(waiting_density, faithful_frame):
    fig = density_figure(waiting_density, faithful_frame[["waiting"]])
    check_figure(fig, "waiting density")
    (ax,) = fig.axes
    shaded = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(shaded) == 4
    assert ax.get_xlabel() == "waiting"
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend[0] == "fitted density"
    assert [label.split()[0] for label in legend[2:]] == ["25%", "50%", "75%", "95%"]


def test_density_figure_3d_draws_pairwise_marginals():
    rng = np.random.default_rng(1)
    means = rng.normal(scale=4, size=(2, 3))
    params = MixtureParams([0.4, 0.6], means, np.stack([np.eye(3), 2 * np.eye(3)]))
    density = MixtureDensity(params)
    X = _scipy_draws(params, 300, seed=2)
    fig = density_figure(density, X, ["a", "b", "c"])
    check_figure(fig, "3-D density")
    drawn = [ax for ax in fig.axes if _contours(ax)]
    assert len(drawn) == 3  # pairs (a, b), (a, c), (b, c)
    assert all(len(_contours(ax)[0].levels) == 4 for ax in drawn)
    assert [ax.get_xlabel() + ax.get_ylabel() for ax in drawn] == ["ab", "ac", "bc"]
    assert "first 3 of 3 features" in fig.get_suptitle()


def test_probability_plot_figure(waiting_density):
    fig = probability_plot_figure(waiting_density)
    check_figure(fig, "waiting probability plot")
    left, right = fig.axes
    ks = density_diagnostic(waiting_density).ks_statistic
    assert f"{ks:.3f}" in left.get_title()
    assert len(right.collections[0].get_offsets()) == 272


# -- bad input -------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda d: d.hdr_levels([0.0]),
        lambda d: d.hdr_levels([1.0]),
        lambda d: d.hdr_levels([0.5, 1.5]),
        lambda d: d.hdr_levels([-0.1]),
        lambda d: d.hdr_levels([np.nan]),
        lambda d: d.hdr_levels([]),
        lambda d: d.hdr_levels("half"),
        lambda d: d.hdr_levels(0.5, n_draws=999),
        lambda d: d.hdr_levels(0.5, n_draws=5000.0),
        lambda d: d.in_hdr([[1.0, 2.0]], 1.0),
        lambda d: d.cdf([1.0], feature=2),
        lambda d: d.cdf([1.0], feature=-1),
        lambda d: d.cdf([np.nan]),
        lambda d: d.ppf([1.2]),
        lambda d: d.marginal([0, 0]),
        lambda d: d.marginal([]),
        lambda d: d.marginal([3]),
        lambda d: d.logpdf([1.0, 2.0]),
        lambda d: d.logpdf([[1.0, 2.0, 3.0]]),
        lambda d: d.pdf([[1.0, np.nan]]),
        lambda d: d.sample(0),
        lambda d: d.hdr_intervals(0.5),
        lambda d: density_diagnostic(d),
        lambda d: density_figure(d, [[1.0, 2.0], [2.0, 1.0]], ["only one"]),
    ],
)
def test_bad_input_raises_value_error(call):
    density = _one_normal(2)
    with pytest.raises(ValueError):
        call(density)


def test_fit_density_refuses_bad_settings():
    X = load_faithful()
    with pytest.raises(ValueError):
        fit_density(X, models="EEE", n_components=3, criterion="aic")
    with pytest.raises(ValueError):
        fit_density(X, models="EEE", n_components=3, missing="em")
    with pytest.raises(ValueError):
        MixtureDensity(np.ones(3))
    with pytest.raises(ValueError):
        density_diagnostic(MixtureDensity(MixtureParams([1.0], [[0.0]], [[[1.0]]])))
