"""mixtures.classify: mclust's EDDA, MclustDA and cvMclustDA as a classifier.

References: R mclust's printout for iris (EDDA, VEV: training error 0.02,
log-likelihood -187.7097), scikit-learn's LDA (EDDA with EEE) and QDA
(EDDA with VVV), and a synthetic class that is itself a 2-component mixture.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.datasets import load_iris
from sklearn.discriminant_analysis import (
    LinearDiscriminantAnalysis,
    QuadraticDiscriminantAnalysis,
)
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.estimator_checks import parametrize_with_checks

from mixtures.classify import MixtureDiscriminant, brier_score, cross_validate

#: mclust 6: summary(MclustDA(iris[, 1:4], iris$Species, modelType = "EDDA",
#: modelNames = "VEV")) prints "log-likelihood -187.7097" and
#: "Classification error = 0.0200".
MCLUST_IRIS_VEV_LOGLIK = -187.7097

#: A few MclustDA search settings that keep the tests fast.
FAST_SEARCH = {"n_soft_starts": 0, "n_random_starts": 1, "refine": False}


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def iris_vev(iris):
    X, y = iris
    return MixtureDiscriminant(model_type="EDDA", models="VEV").fit(X, y)


# ---------------------------------------------------------------------------
# mclust's numbers on iris


def test_iris_edda_vev_training_error_is_mclusts(iris, iris_vev):
    X, y = iris
    assert iris_vev.model_ == "VEV"
    assert iris_vev.models_ == ("VEV",) * 3
    assert np.sum(iris_vev.predict(X) != y) == 3
    assert iris_vev.training_error_ == pytest.approx(0.02, abs=1e-12)


def test_iris_edda_vev_log_likelihood_is_mclusts(iris_vev):
    assert iris_vev.log_likelihood_ == pytest.approx(MCLUST_IRIS_VEV_LOGLIK, abs=1e-4)
    # logLik.MclustDA's df: 4 x 3 means, VEV's 3 + 3 + 3 x 6 covariance
    # parameters, 2 class proportions.
    assert iris_vev.n_parameters_ == 38
    assert iris_vev.bic_ == pytest.approx(
        -2 * iris_vev.log_likelihood_ + 38 * np.log(150)
    )


def test_log_likelihood_is_the_mixture_one_with_class_proportions(iris, iris_vev):
    """What mclust reports: sum_n log sum_c p_c phi(x_n | c), not the own-class sum."""
    X, y = iris
    densities = np.column_stack(
        [
            multivariate_normal(p.means[0], p.full_covariances()[0]).logpdf(X)
            for p in iris_vev.class_params_
        ]
    )
    proportions = np.bincount(y) / y.size
    mixture = logsumexp(densities + np.log(proportions), axis=1).sum()
    assert iris_vev.log_likelihood_ == pytest.approx(mixture, abs=1e-9)
    own_class = densities[np.arange(y.size), y].sum()
    assert abs(own_class - MCLUST_IRIS_VEV_LOGLIK) > 1.0


def test_vev_covariances_share_their_shape(iris_vev):
    """VEV: Sigma_c = lambda_c D_c A D_c^T, so the normalised eigenvalues agree."""
    shapes = []
    for params in iris_vev.class_params_:
        values = np.linalg.eigvalsh(params.full_covariances()[0])[::-1]
        shapes.append(values / np.exp(np.mean(np.log(values))))
    np.testing.assert_allclose(shapes[0], shapes[1], rtol=1e-7)
    np.testing.assert_allclose(shapes[0], shapes[2], rtol=1e-7)


# ---------------------------------------------------------------------------
# EEE is LDA, VVV is QDA


def test_edda_eee_is_linear_discriminant_analysis(iris):
    X, y = iris
    ours = MixtureDiscriminant(model_type="EDDA", models="EEE").fit(X, y)
    # 'lsqr' uses the maximum-likelihood pooled covariance (the 'svd' solver
    # divides by n - n_classes).
    lda = LinearDiscriminantAnalysis(solver="lsqr").fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), lda.predict_proba(X), atol=1e-8)
    np.testing.assert_array_equal(ours.predict(X), lda.predict(X))
    np.testing.assert_allclose(ours.priors_, lda.priors_)


def test_edda_eee_with_given_priors_is_lda_reweighted_by_bayes_rule(iris):
    """Priors change the decision, not the fit.

    (scikit-learn's LDA would also weight its pooled covariance by the given
    priors, so the reference is its fit with the training proportions,
    re-weighted by Bayes' rule.)
    """
    X, y = iris
    priors = np.array([0.2, 0.3, 0.5])
    ours = MixtureDiscriminant(model_type="EDDA", models="EEE", priors=priors)
    ours.fit(X, y)
    lda = LinearDiscriminantAnalysis(solver="lsqr").fit(X, y)
    reweighted = lda.predict_proba(X) * priors / lda.priors_
    reweighted /= reweighted.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(ours.predict_proba(X), reweighted, atol=1e-8)
    np.testing.assert_allclose(ours.priors_, priors)


def test_edda_vvv_is_quadratic_discriminant_analysis(iris):
    X, y = iris
    ours = MixtureDiscriminant(model_type="EDDA", models="VVV").fit(X, y)
    # reg_param=0: no shrinkage towards the identity; QDA's class covariances
    # are the maximum-likelihood ones (S^2 / n_samples of the class).
    qda = QuadraticDiscriminantAnalysis(reg_param=0.0).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), qda.predict_proba(X), atol=1e-8)
    np.testing.assert_array_equal(ours.predict(X), qda.predict(X))


# ---------------------------------------------------------------------------
# Model choice, priors, Brier score


def test_edda_over_all_models_keeps_the_best_bic(iris):
    X, y = iris
    fitted = MixtureDiscriminant(model_type="EDDA").fit(X, y)
    table = fitted.bic_table_
    assert len(table) == 14
    ok = table[table["status"] == "ok"]
    best = ok.loc[ok["bic"].idxmin()]
    assert fitted.model_ == best["model"]
    assert fitted.bic_ == pytest.approx(best["bic"])
    assert fitted.log_likelihood_ == pytest.approx(best["log_likelihood"])
    # On iris VEV wins, by 20 BIC units over the next (VVV).
    assert fitted.model_ == "VEV"


def test_given_priors_move_the_decision(iris):
    X, y = iris
    even = MixtureDiscriminant(model_type="EDDA", models="VEV").fit(X, y)
    tilted = MixtureDiscriminant(
        model_type="EDDA", models="VEV", priors=[0.01, 0.01, 0.98]
    ).fit(X, y)
    np.testing.assert_allclose(tilted.predict_proba(X).sum(axis=1), 1.0)
    # Only versicolor rows can flip, and only towards virginica.
    flipped = even.predict(X) != tilted.predict(X)
    assert flipped.any()
    assert np.all(tilted.predict(X)[flipped] == 2)
    # The log-likelihood is mclust's, with the training proportions.
    assert tilted.log_likelihood_ == pytest.approx(even.log_likelihood_)


def test_brier_score_is_mclusts_formula():
    proba = np.array([[1.0, 0.0], [0.5, 0.5], [0.2, 0.8]])
    codes = np.array([0, 0, 0])
    # (0 + 0) + (0.25 + 0.25) + (0.64 + 0.64), over 2 x 3
    assert brier_score(proba, codes) == pytest.approx(1.78 / 6)


def test_training_brier_score_matches_its_definition(iris, iris_vev):
    X, y = iris
    proba = iris_vev.predict_proba(X)
    expected = np.sum((np.eye(3)[y] - proba) ** 2) / (2 * len(y))
    assert iris_vev.brier_score_ == pytest.approx(expected)


# ---------------------------------------------------------------------------
# Cross-validation


def test_iris_ten_fold_cross_validation_with_standard_error(iris):
    X, y = iris
    estimator = MixtureDiscriminant(model_type="EDDA", models="VEV")
    result = cross_validate(estimator, X, y, n_folds=10, random_state=0)
    again = cross_validate(estimator, X, y, n_folds=10, random_state=0)
    assert result.error == again.error
    assert result.error_se == again.error_se
    np.testing.assert_array_equal(result.predictions, again.predictions)
    assert result.fold_sizes.tolist() == [15] * 10
    assert result.error == pytest.approx(np.mean(result.predictions != y))
    # Our value for these folds (4 of 150 rows); not an mclust number, whose
    # folds come from R's generator.
    assert result.error == pytest.approx(4 / 150)
    # Equal folds: cvMclustDA's standard error is the fold rates' standard
    # deviation over sqrt(10).
    assert result.error_se == pytest.approx(
        np.std(result.fold_errors, ddof=1) / np.sqrt(10)
    )
    assert result.brier_se == pytest.approx(
        np.std(result.fold_briers, ddof=1) / np.sqrt(10)
    )
    assert 0.0 < result.brier < 0.1
    assert not np.isnan(result.probabilities).any()


def test_cross_validation_of_eee_is_that_of_lda_on_the_same_folds(iris):
    """cvMclustDA's procedure, replayed with scikit-learn's LDA as the model."""
    X, y = iris
    estimator = MixtureDiscriminant(model_type="EDDA", models="EEE")
    result = cross_validate(estimator, X, y, n_folds=5, random_state=3)
    folds = StratifiedKFold(5, shuffle=True, random_state=3).split(X, y)
    errors = []
    for train, test in folds:
        lda = LinearDiscriminantAnalysis(solver="lsqr", priors=[1 / 3] * 3)
        proba = lda.fit(X[train], y[train]).predict_proba(X[test])
        np.testing.assert_allclose(result.probabilities[test], proba, atol=1e-8)
        errors.append(np.mean(lda.predict(X[test]) != y[test]))
    np.testing.assert_allclose(result.fold_errors, errors)


# ---------------------------------------------------------------------------
# MclustDA: a mixture per class


def _two_class_data():
    rng = np.random.default_rng(0)
    left = rng.normal([-4.0, 0.0], 1.0, size=(150, 2))
    right = rng.normal([4.0, 0.0], 1.0, size=(150, 2))
    single = rng.normal([0.0, 6.0], 1.0, size=(200, 2))
    X = np.vstack([left, right, single])
    y = np.array(["pair"] * 300 + ["single"] * 200)
    return X, y


def test_mclustda_finds_the_class_made_of_two_components():
    X, y = _two_class_data()
    fitted = MixtureDiscriminant(
        models=("EII", "VVV"),
        n_components=(1, 2, 3),
        random_state=0,
        search_options=FAST_SEARCH,
    ).fit(X, y)
    assert fitted.classes_.tolist() == ["pair", "single"]
    assert fitted.n_components_ == (2, 1)
    pair_means = np.sort(fitted.class_params_[0].means[:, 0])
    np.testing.assert_allclose(pair_means, [-4.0, 4.0], atol=0.3)
    assert fitted.training_error_ < 0.01
    # df: per class (K - 1) + K d + covariance parameters, plus 1 proportion.
    expected = sum(p.n_parameters() for p in fitted.class_params_) + 1
    assert fitted.n_parameters_ == expected
    assert set(fitted.bic_table_["class"]) == {"pair", "single"}


def test_mclustda_cross_validation_keeps_the_choice():
    X, y = _two_class_data()
    estimator = MixtureDiscriminant(
        models="VVV", n_components=(1, 2), random_state=0, search_options=FAST_SEARCH
    )
    result = cross_validate(estimator, X, y, n_folds=3, random_state=0)
    assert result.error < 0.02
    assert result.fold_sizes.sum() == 500


# ---------------------------------------------------------------------------
# Bad input


def test_one_class_is_refused():
    X = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(ValueError, match="at least 2 classes"):
        MixtureDiscriminant(model_type="EDDA").fit(X, np.zeros(10))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"models": "XYZ"}, "unknown covariance model 'XYZ'"),
        ({"models": ["VVV", 3]}, "unknown covariance model 3"),
        ({"models": "E"}, "univariate"),
        ({"models": []}, "at least one covariance model"),
        ({"priors": [0.5, 0.5]}, "one value per class"),
        ({"priors": [0.5, 0.3, 0.3]}, "sum to 1"),
        ({"priors": [1.2, -0.1, -0.1]}, "non-negative"),
        ({"model_type": "LDA"}, "model_type must be one of"),
        ({"reg_covar": -1.0}, "reg_covar"),
        ({"n_components": 0}, "n_components"),
    ],
)
def test_bad_settings_are_refused_clearly(iris, settings, message):
    X, y = iris
    estimator = MixtureDiscriminant(**{"model_type": "EDDA", **settings})
    with pytest.raises(ValueError, match=message):
        estimator.fit(X, y)


def test_a_class_too_small_for_the_model_is_refused(iris):
    X, y = iris
    keep = np.r_[0:3, 50:150]  # setosa keeps 3 rows for 4 features
    estimator = MixtureDiscriminant(model_type="EDDA", models="VVV")
    with pytest.raises(ValueError, match="can be estimated"):
        estimator.fit(X[keep], y[keep])
    # A model that pools the covariance across classes still fits.
    pooled = MixtureDiscriminant(model_type="EDDA", models="EEE").fit(X[keep], y[keep])
    assert pooled.training_error_ < 0.1


def test_mclustda_refuses_a_class_of_one_row(iris):
    X, y = iris
    keep = np.r_[0:1, 50:150]
    with pytest.raises(ValueError, match="class 0 has only 1 sample"):
        MixtureDiscriminant(models="VVV", n_components=1).fit(X[keep], y[keep])


def test_cross_validation_settings_are_checked(iris):
    X, y = iris
    estimator = MixtureDiscriminant(model_type="EDDA", models="EEE")
    with pytest.raises(ValueError, match="n_folds"):
        cross_validate(estimator, X, y, n_folds=1)


# ---------------------------------------------------------------------------
# scikit-learn's estimator checks


@parametrize_with_checks([MixtureDiscriminant(model_type="EDDA")])
def test_edda_passes_scikit_learns_estimator_checks(estimator, check):
    check(estimator)


# The same checks of the same class with MclustDA's per-class mixtures: the
# full suite runs them; the fast loop keeps EDDA's above (a sixth of the
# time) for the interface both share.
@pytest.mark.slow
@parametrize_with_checks(
    [
        MixtureDiscriminant(
            models=("EII", "VVV"),
            n_components=(1, 2),
            # The checks are of the interface (inputs, outputs, determinism,
            # blobs learnt): EM stopped at 1e-4 per row serves them as well
            # as at the default 1e-8, in two thirds of the time.
            search_options={**FAST_SEARCH, "tol": 1e-4},
        )
    ]
)
def test_mclustda_passes_scikit_learns_estimator_checks(estimator, check):
    check(estimator)
