"""mclust's noise component (issue 28, item 4), each against its own reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from mixtures.covariance import mclust_name
from mixtures.data import load_faithful
from mixtures.noise import (
    fit_noise,
    hypervolume,
    log_hypervolume,
    nn_clean,
)
from mixtures.noise_estimator import NoiseMixture
from mixtures.noise_search import search_noise
from mixtures.select import search

MEANS = np.array([[0.0, 0.0], [8.0, 0.0], [4.0, 7.0]])
# Tight clusters (standard deviations 0.27 to 0.39) 8 apart: the noise
# points that fall inside a cluster, which no method can tell from it, are
# few, so the Bayes classifier with the true parameters (_oracle) recalls
# most of the noise (1.0 with this seed).
COVARIANCES = np.array(
    [
        [[0.125, 0.05], [0.05, 0.1]],
        [[0.075, -0.025], [-0.025, 0.15]],
        [[0.15, 0.0], [0.0, 0.075]],
    ]
)
WEIGHTS = np.array([0.4, 0.35, 0.25])
N_CLUSTERED, N_NOISE = 950, 50


def _planted(seed: int = 2026):
    """3 Gaussian clusters (950 points) plus 5% uniform over a 1.5x box."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, size=N_CLUSTERED, p=WEIGHTS)
    factors = np.linalg.cholesky(COVARIANCES)
    draws = rng.standard_normal((N_CLUSTERED, 2))
    clustered = MEANS[labels] + np.einsum("nij,nj->ni", factors[labels], draws)
    low, high = clustered.min(axis=0), clustered.max(axis=0)
    centre, half = (low + high) / 2, 0.75 * (high - low)
    background = rng.uniform(centre - half, centre + half, size=(N_NOISE, 2))
    X = np.vstack([clustered, background])
    is_noise = np.r_[np.zeros(N_CLUSTERED, bool), np.ones(N_NOISE, bool)]
    order = rng.permutation(X.shape[0])
    box_area = float(np.prod(2 * half))
    return X[order], is_noise[order], box_area


def _precision_recall(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    hits = np.count_nonzero(flagged & truth)
    return hits / max(np.count_nonzero(flagged), 1), hits / np.count_nonzero(truth)


@pytest.fixture(scope="module")
def planted():
    return _planted()


@pytest.fixture(scope="module")
def fitted(planted):
    X, _, _ = planted
    return fit_noise(X, 3, "VVV")


# ---------------------------------------------------------------------------
# hypervolume


def _boxes(X: np.ndarray) -> tuple[float, float]:
    """Volumes of the bounding box and of the principal-component box."""
    bounding = float(np.prod(X.max(axis=0) - X.min(axis=0)))
    _, vectors = np.linalg.eigh(np.cov(X, rowvar=False))
    scores = (X - X.mean(axis=0)) @ vectors
    return bounding, float(np.prod(scores.max(axis=0) - scores.min(axis=0)))


def test_hypervolume_is_the_smaller_of_the_two_boxes():
    rng = np.random.default_rng(0)
    # A thin diagonal cloud: its principal-component box is the smaller.
    t = rng.uniform(-5, 5, 400)
    diagonal = np.column_stack([t, t]) + rng.normal(0, 0.1, (400, 2))
    bounding, principal = _boxes(diagonal)
    assert principal < bounding / 10
    assert hypervolume(diagonal) == pytest.approx(principal, rel=1e-10)
    # A uniform axis-aligned box in 3-D: the bounding box is the smaller.
    square = rng.uniform([0, 0, 0], [1, 2, 3], size=(500, 3))
    bounding, principal = _boxes(square)
    assert bounding < principal
    assert hypervolume(square) == pytest.approx(bounding, rel=1e-10)
    assert log_hypervolume(square) == pytest.approx(math.log(bounding), rel=1e-12)


def test_hypervolume_of_one_feature_is_its_range():
    x = np.array([3.0, -1.0, 2.5, 7.0])
    assert hypervolume(x) == pytest.approx(8.0)
    assert hypervolume(x[:, np.newaxis]) == pytest.approx(8.0)


# ---------------------------------------------------------------------------
# nn_clean


def test_nn_clean_recovers_byers_rafterys_setting():
    # Its model: a dense uniform feature (900 points on a 4 x 2 rectangle,
    # intensity 112.5) in sparse uniform clutter (100 points on 20 x 20,
    # intensity 0.25). No edge correction: both intensities come out a
    # little low (points near a window's edge see fewer neighbours).
    rng = np.random.default_rng(0)
    feature = rng.uniform([8, 8], [12, 10], size=(900, 2))
    clutter = rng.uniform([0, 0], [20, 20], size=(100, 2))
    truth = np.r_[np.zeros(900, bool), np.ones(100, bool)]
    result = nn_clean(np.vstack([feature, clutter]), k=5)
    precision, recall = _precision_recall(result.noise, truth)
    assert precision >= 0.95
    assert recall >= 0.95
    assert result.converged
    assert result.noise.tolist() == (result.probability > 0.5).tolist()
    assert result.feature_proportion == pytest.approx(0.9, abs=0.01)
    assert result.feature_intensity == pytest.approx(112.5, rel=0.1)
    assert result.clutter_intensity == pytest.approx(0.25, rel=0.25)


def test_nn_clean_on_gaussian_clusters_finds_the_noise_and_tails(planted):
    # Gaussian clusters are not uniform features: nn_clean flags all the
    # planted noise but also the clusters' sparse tails (precision about
    # 0.5 here), which the fitted noise model then gives back to them.
    X, is_noise, _ = planted
    result = nn_clean(X, k=5)
    _, recall = _precision_recall(result.noise, is_noise)
    assert recall >= 0.9
    assert N_NOISE <= np.count_nonzero(result.noise) <= 3 * N_NOISE


def test_nn_clean_distances_are_the_kth_neighbour():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 3))
    result = nn_clean(X, k=4)
    pairwise = np.linalg.norm(X[:, np.newaxis] - X[np.newaxis], axis=2)
    # Column 0 of each sorted row is the point itself.
    np.testing.assert_allclose(result.distances, np.sort(pairwise, axis=1)[:, 4])


# ---------------------------------------------------------------------------
# fit_noise


def _oracle(X: np.ndarray, box_area: float) -> np.ndarray:
    """Rows the Bayes classifier with the true parameters calls noise."""
    gaussians = sum(
        (1 - N_NOISE / (N_CLUSTERED + N_NOISE)) * w * multivariate_normal(m, c).pdf(X)
        for w, m, c in zip(WEIGHTS, MEANS, COVARIANCES, strict=True)
    )
    return N_NOISE / (N_CLUSTERED + N_NOISE) / box_area > gaussians


def test_fit_noise_recovers_the_planted_noise(planted, fitted):
    X, is_noise, box_area = planted
    flagged = fitted.noise_probability > 0.5
    precision, recall = _precision_recall(flagged, is_noise)
    assert precision >= 0.9
    assert recall >= 0.9
    # As good as knowing the truth: at most 2 rows called otherwise.
    assert np.count_nonzero(flagged != _oracle(X, box_area)) <= 2
    assert fitted.noise_weight == pytest.approx(N_NOISE / X.shape[0], abs=0.01)
    assert fitted.status == "ok"
    assert fitted.converged
    # Every true mean has a fitted mean near it.
    distance = np.linalg.norm(MEANS[:, np.newaxis] - fitted.params.means, axis=2)
    assert distance.min(axis=1).max() < 0.1


def test_log_likelihood_is_the_mixture_with_uniform_noise(planted, fitted):
    X, _, _ = planted
    density = fitted.noise_weight / hypervolume(X) + sum(
        weight * multivariate_normal(mean, cov).pdf(X)
        for weight, mean, cov in zip(
            fitted.weights,
            fitted.params.means,
            fitted.params.full_covariances(),
            strict=True,
        )
    )
    assert fitted.log_likelihood == pytest.approx(np.log(density).sum(), rel=1e-10)
    log_prob, resp = fitted.e_step(X)
    assert log_prob.sum() == pytest.approx(fitted.log_likelihood, rel=1e-12)
    np.testing.assert_allclose(resp, fitted.responsibilities, atol=1e-12)


def test_weights_noise_and_labels_are_consistent(fitted):
    assert fitted.weights.sum() + fitted.noise_weight == pytest.approx(1.0)
    # At convergence tau_0 is the mean noise responsibility (its M-step).
    assert fitted.noise_weight == pytest.approx(
        fitted.noise_probability.mean(), abs=1e-6
    )
    resp = fitted.responsibilities
    assert resp.shape == (resp.shape[0], 4)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0)
    expected = np.where(resp.argmax(axis=1) == 3, 0, resp.argmax(axis=1) + 1)
    assert fitted.labels.tolist() == expected.tolist()


def test_em_never_lowers_the_log_likelihood(fitted):
    trace = fitted.log_likelihoods
    assert trace.size == fitted.n_iter >= 2
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))
    assert fitted.log_likelihood >= trace[-1] - 1e-9 * abs(trace[-1])


def test_bic_counts_the_noise_proportion(planted, fitted):
    X, _, _ = planted
    # VVV, K = 3, D = 2: 9 covariance + 6 mean + 2 weight parameters, + noise.
    assert fitted.params.n_parameters() == 17
    assert fitted.n_parameters == 18
    expected = -2 * fitted.log_likelihood + 18 * math.log(X.shape[0])
    assert fitted.bic == pytest.approx(expected, rel=1e-12)


def test_a_given_noise_mask_starts_the_fit(planted, fitted):
    X, is_noise, _ = planted
    given = fit_noise(X, 3, "VVV", noise=is_noise)
    assert given.initial_noise.tolist() == is_noise.tolist()
    # The same maximum as from nn_clean's start.
    assert given.log_likelihood == pytest.approx(fitted.log_likelihood, rel=1e-6)


def test_a_given_volume_is_used(planted):
    X, _, box_area = planted
    fit = fit_noise(X, 3, "EEE", volume=box_area)
    assert fit.log_volume == pytest.approx(math.log(box_area))
    assert fit.params.covariance_type == "tied"


def test_one_feature_noise_is_uniform_over_the_range():
    rng = np.random.default_rng(4)
    x = np.r_[rng.normal(0, 1, 300), rng.normal(6, 0.5, 200), rng.uniform(-10, 15, 30)]
    fit = fit_noise(x, 2, "V")
    assert fit.log_volume == pytest.approx(math.log(np.ptp(x)))
    np.testing.assert_allclose(np.sort(fit.params.means.ravel()), [0, 6], atol=0.15)
    assert fit.noise_weight == pytest.approx(30 / 530, abs=0.02)
    assert fit.n_parameters == 6  # 2 means, 2 variances, 1 weight, the noise


# ---------------------------------------------------------------------------
# search_noise


def test_search_with_noise_keeps_old_faithfuls_choice():
    X = load_faithful()
    models, ks = ["EEE", "VVV", "VEV"], range(1, 5)
    plain = search(X, models, ks).best("bic")
    assert (mclust_name(plain.covariance_type), plain.n_components) == ("EEE", 3)
    result = search_noise(X, models, ks)
    best = result.best()
    chosen = (mclust_name(best.params.covariance_type), best.n_components)
    assert chosen == ("EEE", 3)
    table = result.table
    assert len(table) == 12
    assert set(table["status"]) <= {"ok", "unconverged", "degenerate", "failed"}
    row = table[(table.model == "EEE") & (table.n_components == 3)].iloc[0]
    assert row["bic"] == pytest.approx(best.bic)
    assert row["noise_weight"] == pytest.approx(best.noise_weight)


# ---------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda X: fit_noise(X, 0), "n_components"),
        (lambda X: fit_noise(X, 2, noise=np.zeros(5, bool)), "shape"),
        (lambda X: fit_noise(X, 2, noise=np.ones(X.shape[0], bool)), "every"),
        (lambda X: fit_noise(X, 2, noise=np.zeros(X.shape[0], bool)), "no row"),
        (lambda X: fit_noise(X, 2, noise=np.zeros(X.shape[0])), "boolean"),
        (lambda X: fit_noise(X, 2, volume=-1.0), "volume"),
        (lambda X: fit_noise(X, 2, volume=float("inf")), "volume"),
        (lambda X: fit_noise(X, 2, "nonsense"), "covariance_type"),
        (lambda X: nn_clean(X, k=0), "k must"),
        (lambda X: nn_clean(X[:4], k=5), "rows"),
        (lambda X: hypervolume(np.column_stack([X[:, 0], np.ones(len(X))])), "volume"),
        (lambda X: search_noise(X, ["EEE"], [-1]), "n_components"),
        (lambda X: search_noise(X, ["EEE"], [1], n_random_starts=-1), "starts"),
        (lambda X: search_noise(X, ["E"], [1]), "univariate"),
    ],
)
def test_bad_input_raises_value_error(call, message):
    X = np.random.default_rng(1).normal(size=(40, 2))
    with pytest.raises(ValueError, match=message):
        call(X)


# ---------------------------------------------------------------------------
# the search's starts, the noise-only model, parallel cells


def test_noise_only_model_is_uniform_over_the_volume_and_wins_on_uniform_data():
    U = np.random.default_rng(0).uniform(size=(300, 2))
    result = search_noise(U, ["EEE"], range(0, 3))
    row = result.table.iloc[0]
    assert (row["model"], row["n_components"], row["n_parameters"]) == ("noise", 0, 0)
    assert row["log_likelihood"] == pytest.approx(-300 * log_hypervolume(U))
    assert row["bic"] == pytest.approx(-2 * row["log_likelihood"])
    # No cluster above a uniform background: BIC keeps the noise alone, and
    # best() says so instead of returning a Gaussian.
    assert result.noise_only
    with pytest.raises(ValueError, match="noise-only"):
        result.best()


def test_a_cell_keeps_its_best_ok_start_never_below_mclusts(planted):
    X, _, _ = planted
    result = search_noise(X, ["VVV", "EEI"], [2, 3], n_random_starts=2)
    table = result.table
    assert set(table["n_starts"]) == {3}
    assert set(table["start"]) <= {"hc", "kmeans-0", "kmeans-1"}
    for row in table.itertuples():
        # The hierarchical start alone, from the same initial noise.
        alone = fit_noise(X, row.n_components, row.model, noise=result.noise)
        if alone.status == "ok":
            assert row.status == "ok"
            assert row.log_likelihood >= alone.log_likelihood - 1e-9


@pytest.mark.slow
def test_the_search_is_the_same_in_parallel(planted):
    X, _, _ = planted
    one = search_noise(X, ["EEE", "VVV"], [2, 3], n_jobs=1).table
    two = search_noise(X, ["EEE", "VVV"], [2, 3], n_jobs=2).table
    columns = [c for c in one.columns if c != "seconds"]
    assert one[columns].equals(two[columns])


# ---------------------------------------------------------------------------
# NoiseMixture, the estimator


@pytest.fixture(scope="module")
def estimator(planted):
    X, _, _ = planted
    return NoiseMixture(3, "VVV", random_state=0).fit(X)


def test_estimator_is_the_search_cell(planted, estimator):
    X, _, _ = planted
    row = search_noise(X, ["VVV"], [3]).table.iloc[0]
    assert estimator.log_likelihood_ == pytest.approx(row["log_likelihood"], abs=1e-9)
    assert estimator.noise_weight_ == pytest.approx(row["noise_weight"], abs=1e-12)
    assert estimator.bic(X) == pytest.approx(row["bic"], rel=1e-10)
    assert estimator.weights_.sum() + estimator.noise_weight_ == pytest.approx(1.0)


def test_estimator_recovers_the_planted_noise(planted, estimator):
    X, is_noise, _ = planted
    precision, recall = _precision_recall(estimator.predict(X) == -1, is_noise)
    assert precision >= 0.9
    assert recall >= 0.9
    assert np.array_equal(estimator.predict(X), estimator.labels_)


def test_estimator_density_is_gaussians_plus_uniform(planted, estimator):
    X, _, _ = planted
    expected = np.full(
        X.shape[0], estimator.noise_weight_ / np.exp(estimator.log_volume_)
    )
    for weight, mean, cov in zip(
        estimator.weights_, estimator.means_, estimator.covariances_, strict=True
    ):
        expected += weight * multivariate_normal(mean, cov).pdf(X)
    np.testing.assert_allclose(estimator.score_samples(X), np.log(expected), rtol=1e-10)
    proba = estimator.predict_proba(X[:10])
    assert proba.shape == (10, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert estimator.score(X) == pytest.approx(np.log(expected).mean())


def test_estimator_takes_a_mask_and_clones(planted):
    from sklearn.base import clone

    X, is_noise, _ = planted
    model = NoiseMixture(3, "EEE", noise_init=is_noise, n_random_starts=0)
    fitted = clone(model).fit(X)
    assert np.array_equal(fitted.fit_.initial_noise, is_noise)
    assert fitted.start_ == "hc"
    assert fitted.get_params()["covariance_type"] == "EEE"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"noise_init": "everything"}, "noise_init"),
        ({"noise_init": np.zeros(3, bool)}, "shape"),
        ({"n_random_starts": -1}, "n_random_starts"),
        ({"n_components": 0}, "n_components"),
        ({"volume": 0.0}, "volume"),
    ],
)
def test_estimator_bad_parameters_raise_value_error(params, message):
    X = np.random.default_rng(1).normal(size=(40, 2))
    with pytest.raises(ValueError, match=message):
        NoiseMixture(**{"n_components": 2, **params}).fit(X)
