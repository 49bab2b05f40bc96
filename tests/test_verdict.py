"""The one verdict (mixtures.diagnostics.classify): units, bounded models, thin
spurious components (issue 23, items 1-3)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import eigh

from mixtures import GaussianMixture, MixtureParams
from mixtures.data import load_faithful
from mixtures.diagnostics import (
    MAX_R_HAT,
    MIN_ESS_BULK,
    STATUSES,
    THIN_POINTS,
    THIN_RATIO,
    bic,
    classify,
    sampler_findings,
    thin_components,
    volume_is_free,
)


def _blobs(rng, n=300):
    return np.vstack(
        [rng.normal([0, 0], 1.0, size=(n, 2)), rng.normal([8, 0], 1.0, size=(n, 2))]
    )


def _collapsed(X, reg_covar, n_on_spike=13):
    """Two broad components and one held at reg_covar * I on tied rows."""
    n = X.shape[0]
    weights = np.array([0.5, 0.5, n_on_spike / n])
    weights /= weights.sum()
    means = np.array([X[: n // 2].mean(0), X[n // 2 :].mean(0), X[0]])
    covariances = np.array(
        [np.cov(X[: n // 2].T), np.cov(X[n // 2 :].T), reg_covar * np.eye(2)]
    )
    return MixtureParams(weights, means, covariances)


@pytest.mark.parametrize("scale", [1e-6, 1e-3, 1.0, 1e3, 1e6])
def test_a_component_held_at_reg_covar_is_a_spike_in_any_units(scale):
    X = _blobs(np.random.default_rng(0)) * scale
    # reg_covar in the data's units, as a fit in standard units adds it.
    reg = 1e-6 * X.var(axis=0)
    params = _collapsed(X, reg_covar=float(reg.mean()))
    verdict = classify(params, X, reg_covar=reg)
    assert verdict.status == "degenerate"
    assert "relative variance" in verdict.reason


def test_without_taking_reg_covar_off_small_units_hide_the_spike():
    """The bug: 1e-6 * I is 'wide' when the data's variance is below 1."""
    X = _blobs(np.random.default_rng(0)) * 1e-2  # variances about 1e-4
    params = _collapsed(X, reg_covar=1e-6)
    assert classify(params, X).status == "ok"  # what the old sweep saw
    assert classify(params, X, reg_covar=1e-6).status == "degenerate"


def test_bounded_models_are_never_spikes():
    """A tied (EEE) component with n*w < D + 1 is a genuine local maximum."""
    X = _blobs(np.random.default_rng(1))
    tied = MixtureParams(
        np.array([0.4975, 0.4980, 0.0045]),
        np.array([[0, 0], [8, 0], [4, 4]], dtype=float),
        np.cov(X[:300].T),
        "tied",
    )
    assert X.shape[0] * tied.weights[2] < 3
    assert classify(tied, X).status == "ok"
    assert classify(tied, X, covariance_type="EEE").status == "ok"
    # The same mixture as a full (VVV) fit: the small component can collapse.
    full = tied.to_full()
    assert classify(full, X, covariance_type="full").status == "degenerate"
    assert [volume_is_free(m) for m in ("full", "diag", "spherical", "tied")] == [
        True,
        True,
        True,
        False,
    ]
    assert [volume_is_free(m) for m in ("VEV", "EVV", "EEE", "V", "E")] == [
        True,
        False,
        False,
        True,
        False,
    ]


def _with_small_component(X, covariance, n_points):
    base = GaussianMixture(2, random_state=0).fit(X)
    weights = np.append(base.weights_ * X.shape[0], n_points)
    return MixtureParams(
        weights / weights.sum(),
        np.vstack([base.means_, [4.0, 1.0]]),
        np.concatenate([base.covariances_, covariance[None]]),
    )


def test_thin_small_component_is_flagged_and_thin_large_or_small_round_are_not():
    X = _blobs(np.random.default_rng(2))
    thin = np.array([[1.0, 0.999], [0.999, 1.0]])  # ratio ~1e-3 of the pooled
    round_ = 0.5 * np.eye(2)
    flagged = classify(_with_small_component(X, thin, 6.0), X)
    assert flagged.status == "degenerate"
    assert "thin and small" in flagged.reason
    # Many points on a ridge: a real structure, kept.
    many = THIN_POINTS * 3 + 1
    assert classify(_with_small_component(X, thin, many), X).status == "ok"
    # A few points, round: kept.
    assert classify(_with_small_component(X, round_, 6.0), X).status == "ok"
    # Bounded model (common volume): kept.
    assert classify(_with_small_component(X, thin, 6.0), X, covariance_type="EVV")[
        0
    ] in ("ok",)


def test_thin_components_ratio_is_the_generalised_eigenvalue_against_the_pool():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(2, 2))
    covariances = np.array([a @ a.T + np.eye(2), np.diag([1e-4, 2.0])])
    weights = np.array([0.9, 0.1])
    found = thin_components(covariances, weights, n_samples=50)
    pooled = weights[0] * covariances[0] + weights[1] * covariances[1]
    expected = eigh(covariances[1], pooled, eigvals_only=True)[0]
    assert [k for k, _, _ in found] == [1]
    assert found[0][1] == pytest.approx(5.0)
    assert found[0][2] == pytest.approx(expected, rel=1e-8)
    assert expected < THIN_RATIO


def test_thin_rule_is_affine_invariant():
    X = _blobs(np.random.default_rng(4))
    params = _with_small_component(X, np.array([[1.0, 0.999], [0.999, 1.0]]), 6.0)
    A = np.array([[3.0, 1.0], [0.0, 0.01]])
    Y = X @ A.T + [5.0, -2.0]
    moved = MixtureParams(
        params.weights,
        params.means @ A.T + [5.0, -2.0],
        np.einsum("ij,kjl,ml->kim", A, params.covariances, A),
    )
    assert classify(params, X).reason == classify(moved, Y).reason


@pytest.mark.filterwarnings("ignore::mixtures.fitting.DegenerateComponentWarning")
def test_old_faithful_thin_spurious_fits_are_flagged():
    """Random-point starts of full K = 6 on Old Faithful reach thin spurious
    maxima (a component of under 15 points, nearly a line, correlation near
    +-1); every one is flagged, and the fits kept have none."""
    X = load_faithful()
    seen = 0
    for seed in range(10):
        fit = GaussianMixture(
            6, init_params="random_from_data", random_state=seed, tol=1e-8,
            max_iter=2000,
        ).fit(X)  # fmt: skip
        params = MixtureParams(fit.weights_, fit.means_, fit.covariances_)
        verdict = classify(params, X, reg_covar=fit.reg_covar)
        thin = thin_components(
            params.full_covariances() - 1e-6 * np.eye(2), params.weights, len(X)
        )
        if thin:
            seen += 1
            assert verdict.status == "degenerate"
        elif verdict.status == "ok":
            assert not thin
    assert seen >= 2


def test_statuses_criteria_and_sampler_thresholds_have_one_home():
    assert STATUSES == ("ok", "unconverged", "degenerate", "failed")
    assert bic(-100.0, 5, 100) == pytest.approx(200.0 + 5 * np.log(100))
    at_thresholds = {"r_hat_max": MAX_R_HAT, "ess_bulk_min": MIN_ESS_BULK}
    assert sampler_findings(at_thresholds) == []
    assert sampler_findings({"r_hat_max": np.nan})  # NaN is a breach
    X = _blobs(np.random.default_rng(5))
    params = GaussianMixture(2, random_state=0).fit(X)
    fitted = MixtureParams(params.weights_, params.means_, params.covariances_)
    assert classify(fitted, X, sampler={"divergences": 2}).status == "unconverged"
    assert classify(fitted, X, converged=False, n_iter=7).reason == (
        "stopped at max_iter after 7 iterations"
    )
    assert classify(fitted, X, log_likelihood=np.inf).status == "failed"
