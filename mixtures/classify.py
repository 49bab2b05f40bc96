"""Discriminant analysis with Gaussian mixtures: mclust's EDDA and MclustDA.

:class:`MixtureDiscriminant` is a scikit-learn classifier that models the
density of every class by a Gaussian mixture and classifies by Bayes' rule,
``P(c | x) ∝ π_c f_c(x)``, with the class priors ``π_c`` taken from the
training proportions or given. It follows R mclust's ``MclustDA`` (Fraley &
Raftery 2002; Scrucca et al. 2016):

EDDA (eigenvalue decomposition discriminant analysis; Bensmail & Celeux 1996)
    Every class is one Gaussian, and the covariance model (one of the 14
    parsimonious models of Celeux & Govaert 1995, e.g. VEV: variable volume,
    equal shape, variable orientation) constrains the class covariances
    *jointly*. The parameters are those of one M-step of the constrained
    model with the responsibilities fixed to the one-hot class labels, as
    mclust's ``mstep(..., z = unmap(class))``: EEE is linear discriminant
    analysis, VVV quadratic discriminant analysis (both with the
    maximum-likelihood covariances). Given several models, the one with the
    best BIC is kept; a model whose covariances are singular on the data is
    not estimable and is skipped, as mclust's ``NA``.
MclustDA (the general case)
    Every class gets its own mixture, chosen by BIC over covariance models
    and numbers of components by :func:`mixtures.select.search` on that
    class's rows.

``log_likelihood_`` is mclust's ``logLik.MclustDA``: the mixture
log-likelihood of the training data with the class proportions as weights,
``sum_n log sum_c p_c f_c(x_n)``, with ``C - 1`` proportions among its
degrees of freedom. :func:`cross_validate` is mclust's ``cvMclustDA``. BIC
has scikit-learn's sign, as everywhere in gmmlab: ``-2 loglik + df log N``,
lower is better (minus mclust's).

References
----------
Bensmail, H. and Celeux, G. (1996). Regularized Gaussian discriminant
analysis through eigenvalue decomposition. JASA 91:1743-1748.
Celeux, G. and Govaert, G. (1995). Gaussian parsimonious clustering models.
Pattern Recognit. 28:781-793.
Fraley, C. and Raftery, A. E. (2002). Model-based clustering, discriminant
analysis, and density estimation. JASA 97:611-631.
Scrucca, L., Fop, M., Murphy, T. B. and Raftery, A. E. (2016). mclust 5:
clustering, classification and density estimation using Gaussian finite
mixture models. The R Journal 8(1):289-317.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import logsumexp
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import StratifiedKFold
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, check_X_y, validate_data

from mixtures.covariance import (
    get_covariance_model,
    mclust_name,
)
from mixtures.diagnostics import bic
from mixtures.em import e_step, params_from_responsibilities
from mixtures.params import MixtureParams
from mixtures.select import _check_models

__all__ = ["CVResult", "MixtureDiscriminant", "brier_score", "cross_validate"]

MODEL_TYPES = ("EDDA", "MclustDA")

#: mclust's default numbers of components per class (``G = 1:5``).
DEFAULT_COMPONENTS = (1, 2, 3, 4, 5)

#: The models mclust keeps for a class with no more rows than features
#: (diagonal and spherical ones: a full class scatter would be singular).
SMALL_CLASS_MODELS = ("EII", "VII", "EEI", "VEI", "EVI", "VVI")

#: A class covariance whose correlation matrix has its smallest eigenvalue
#: below this is singular: the model cannot be estimated (mclust's ``NA``).
_MIN_CORRELATION_EIGENVALUE = 1e-10

#: A (model, K) choice for one class.
Choice = tuple[str, int]


def _check_components(n_components) -> tuple[int, ...]:
    """Numbers of components per class (MclustDA), sorted, without repeats."""
    if n_components is None:
        return DEFAULT_COMPONENTS
    values = [n_components] if np.ndim(n_components) == 0 else list(n_components)
    if not values or any(
        isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1
        for k in values
    ):
        raise ValueError(
            "n_components must be None, an integer >= 1 or a list of them; "
            f"got {n_components!r}."
        )
    return tuple(sorted({int(k) for k in values}))


def _check_priors(priors, n_classes: int) -> np.ndarray | None:
    """The class priors as a float array of shape (n_classes,), or None."""
    if priors is None:
        return None
    try:
        values = np.asarray(priors, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"priors must be numbers; got {priors!r}.") from None
    if values.ndim != 1 or values.shape[0] != n_classes:
        raise ValueError(
            f"priors must have one value per class ({n_classes}); got shape "
            f"{values.shape}."
        )
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"priors must be finite and non-negative; got {values}.")
    if abs(values.sum() - 1.0) > 1e-8:
        raise ValueError(f"priors must sum to 1; they sum to {values.sum():.10g}.")
    return values


def _check_reg_covar(reg_covar) -> float:
    if (
        isinstance(reg_covar, bool)
        or not isinstance(reg_covar, numbers.Real)
        or not math.isfinite(float(reg_covar))
        or reg_covar < 0
    ):
        raise ValueError(f"reg_covar must be a number >= 0; got {reg_covar!r}.")
    return float(reg_covar)


def _search_seed(random_state) -> int | None:
    """An integer seed for :func:`mixtures.select.search` (None: its default)."""
    if random_state is None or isinstance(random_state, numbers.Integral):
        return None if random_state is None else int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _class_log_densities(X: np.ndarray, class_params) -> np.ndarray:
    """``log f_c(x_n)``, shape (n_samples, n_classes), each a mixture."""
    return np.column_stack([e_step(X, params)[0] for params in class_params])


def _log_posterior(log_densities: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """``log P(c | x_n)`` by Bayes' rule in log space, (n_samples, n_classes)."""
    with np.errstate(divide="ignore"):
        joint = log_densities + np.log(priors)
    return joint - logsumexp(joint, axis=1, keepdims=True)


def brier_score(probabilities: np.ndarray, codes: np.ndarray) -> float:
    """The Brier score as mclust's ``BrierScore``: ``sum (one-hot - P)^2 / (2 N)``.

    Parameters
    ----------
    probabilities : ndarray of shape (n_samples, n_classes)
        Class probabilities; rows are normalised first, as mclust does.
    codes : ndarray of shape (n_samples,)
        The true class of every row as an index into the columns.

    Returns
    -------
    float
        0 for certain and correct predictions, at most 1.
    """
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    truth = np.zeros_like(probabilities)
    truth[np.arange(codes.shape[0]), codes] = 1.0
    return float(np.sum((truth - probabilities) ** 2) / (2 * codes.shape[0]))


def _singular_classes(full: np.ndarray) -> np.ndarray:
    """Indices of the (K, D, D) covariances that are not safely definite.

    Judged on the correlation matrices, so that features on very different
    scales are not mistaken for a singular covariance.
    """
    with np.errstate(all="ignore"):
        finite = np.all(np.isfinite(full), axis=(1, 2))
        diagonal = np.diagonal(full, axis1=1, axis2=2)
        positive = finite & np.all(diagonal > 0, axis=1)
        scale = np.sqrt(np.where(positive[:, None], diagonal, 1.0))
        correlation = full / (scale[:, :, None] * scale[:, None, :])
        correlation[~positive] = np.eye(full.shape[1])
        smallest = np.linalg.eigvalsh(correlation)[:, 0]
    return np.flatnonzero(~positive | (smallest <= _MIN_CORRELATION_EIGENVALUE))


def _edda_step(
    X: np.ndarray, codes: np.ndarray, n_classes: int, model: str, reg_covar: float
) -> list[MixtureParams] | int:
    """One Gaussian per class from one M-step of ``model`` on the labels.

    Returns the classes' one-component mixtures (full storage), or the index
    of a class whose covariance is singular under ``model``.
    """
    n_samples, n_features = X.shape
    resp = np.zeros((n_samples, n_classes))
    resp[np.arange(n_samples), codes] = 1.0
    covariance_model = get_covariance_model(model)
    with np.errstate(all="ignore"):
        _, means, covariances, _ = params_from_responsibilities(
            X, np.ones(n_samples), resp, covariance_model, reg_covar, kernel="numpy"
        )
        full = covariance_model.to_full(covariances, n_classes, n_features)
    singular = _singular_classes(full)
    if singular.size:
        return int(singular[0])
    return [
        MixtureParams([1.0], means[c : c + 1], full[c : c + 1], "full", kernel="numpy")
        for c in range(n_classes)
    ]


def _mixture_log_likelihood(
    log_densities: np.ndarray, proportions: np.ndarray
) -> float:
    """``sum_n log sum_c p_c f_c(x_n)``: mclust's ``logLik.MclustDA``."""
    return float(logsumexp(log_densities + np.log(proportions), axis=1).sum())


def _fit_edda(
    X: np.ndarray,
    codes: np.ndarray,
    proportions: np.ndarray,
    models: tuple[str, ...],
    reg_covar: float,
    classes: np.ndarray,
) -> tuple[list[MixtureParams], list[Choice], pd.DataFrame]:
    """EDDA over ``models``: the best by BIC, and the table of all of them."""
    n_samples, n_features = X.shape
    n_classes = proportions.shape[0]
    rows: list[tuple] = []
    best: tuple[str, list[MixtureParams]] | None = None
    best_bic = np.inf
    for model in models:
        fitted = _edda_step(X, codes, n_classes, model, reg_covar)
        n_parameters = (
            n_classes * n_features
            + get_covariance_model(model).n_parameters(n_classes, n_features)
            + n_classes
            - 1
        )
        if isinstance(fitted, int):
            rows.append((model, np.nan, n_parameters, np.nan, "singular"))
            continue
        log_lik = _mixture_log_likelihood(_class_log_densities(X, fitted), proportions)
        score = bic(log_lik, n_parameters, n_samples)
        rows.append((model, log_lik, n_parameters, score, "ok"))
        if score <= best_bic:  # mclust keeps the later model on a tie
            best, best_bic = (model, fitted), score
    table = pd.DataFrame(
        rows, columns=["model", "log_likelihood", "n_parameters", "bic", "status"]
    )
    if best is None:
        counts = np.bincount(codes, minlength=n_classes)
        raise ValueError(
            f"no covariance model of {list(models)} can be estimated: the class "
            "covariances are singular (class sizes "
            f"{dict(zip(classes.tolist(), counts.tolist(), strict=True))} for "
            f"{n_features} features). Give more rows per class, or models that "
            "pool the covariance across classes (e.g. 'EEE', 'EII')."
        )
    model, fitted = best
    return fitted, [(model, 1)] * n_classes, table


def _class_mixture(Xc, label, models, ks, reg_covar, seed, options):
    """The best (by BIC) mixture of one class's rows, its choice and table."""
    from mixtures.select import search

    n_rows, n_features = Xc.shape
    if n_rows < 2:
        raise ValueError(
            f"class {label!r} has only {n_rows} sample: MclustDA fits a "
            "mixture to each class and needs at least 2 (model_type='EDDA' "
            "pools the covariance across classes)."
        )
    if n_features > 1 and n_rows <= n_features:
        # mclust's rule: no full class scatter from so few rows.
        models = tuple(name for name in models if name in SMALL_CLASS_MODELS)
        if not models:
            raise ValueError(
                f"class {label!r} has {n_rows} samples for {n_features} "
                "features: too few rows for the models asked for; only "
                f"{', '.join(SMALL_CLASS_MODELS)} can be estimated (mclust's "
                "rule)."
            )
    ks = tuple(k for k in ks if k < n_rows) or (1,)
    try:
        result = search(
            Xc, models, ks, random_state=seed, reg_covar=reg_covar, **options
        )
        fitted = result.best("bic")
    except ValueError as error:
        raise ValueError(f"class {label!r}: {error}") from error
    choice = (mclust_name(fitted.covariance_type), int(fitted.n_components))
    return fitted.params_, choice, result.table.assign(**{"class": label})


def _fixed_class_mixture(Xc, label, choice, reg_covar, seed, options):
    """The class's mixture for a fixed (model, K), K lowered until it fits.

    cvMclustDA's rule: the training fold's fit keeps the full fit's choice,
    with fewer components when a fold cannot support them.
    """
    model, k = choice
    while True:
        try:
            return _class_mixture(Xc, label, (model,), (k,), reg_covar, seed, options)
        except ValueError:
            if k == 1:
                raise
            k -= 1


def _fit_mclustda(X, codes, classes, settings, fixed):
    """Every class's mixture (searched, or at the ``fixed`` choices)."""
    models, ks, reg_covar, seed, options = settings
    params, choices, tables = [], [], []
    for c, label in enumerate(classes.tolist()):
        Xc = X[codes == c]
        if fixed is None:
            fitted, choice, table = _class_mixture(
                Xc, label, models, ks, reg_covar, seed, options
            )
        else:
            fitted, choice, table = _fixed_class_mixture(
                Xc, label, fixed[c], reg_covar, seed, options
            )
        params.append(fitted)
        choices.append(choice)
        tables.append(table)
    return params, choices, pd.concat(tables, ignore_index=True)


class MixtureDiscriminant(ClassifierMixin, BaseEstimator):
    """Gaussian-mixture discriminant analysis: mclust's EDDA and MclustDA.

    See the module docstring for the two models, the log-likelihood and
    the references (Bensmail & Celeux 1996; Fraley & Raftery 2002; Scrucca
    et al. 2016).

    Parameters
    ----------
    model_type : {'MclustDA', 'EDDA'}, default='MclustDA'
        'EDDA': one Gaussian per class, the covariance model spanning the
        classes ('EEE' is LDA, 'VVV' QDA). 'MclustDA': a mixture per class,
        chosen by BIC over ``models`` x ``n_components``.
    models : None, str or list of str, default=None
        Covariance models by mclust's names ('EII' ... 'VVV'; 'E', 'V' for
        one feature; scikit-learn's 'full', 'tied', 'diag', 'spherical' are
        'VVV', 'EEE', 'VVI', 'VII'). None: all of them for the data's
        dimension. With several, EDDA keeps the best by BIC; MclustDA
        searches them in every class.
    n_components : None, int or list of int, default=None
        Numbers of components searched per class (MclustDA only; EDDA has
        one per class). None is mclust's 1 to 5. Values not below a class's
        row count are dropped for that class.
    priors : None or array-like of shape (n_classes,), default=None
        Class priors for prediction, in the order of ``classes_``; they must
        be non-negative and sum to one. None: the training proportions.
    reg_covar : float, default=0.0
        Added to the diagonal of every covariance. 0 gives the
        maximum-likelihood estimates, as mclust (and scikit-learn's LDA and
        QDA) compute them.
    random_state : None, int or RandomState, default=None
        Seeds the model searches of MclustDA (None: their fixed default
        seed, so a fit is reproducible); EDDA is deterministic.
    search_options : None or dict, default=None
        Further keyword arguments of :func:`mixtures.select.search` for
        MclustDA (e.g. ``{"n_soft_starts": 0, "refine": False}`` for speed).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    class_counts_ : ndarray of shape (n_classes,)
        Training rows per class.
    class_proportions_ : ndarray of shape (n_classes,)
        Training proportions (mclust's ``prop``).
    priors_ : ndarray of shape (n_classes,)
        The priors used for prediction.
    class_params_ : list of MixtureParams
        The density of every class: one component for EDDA (full storage),
        the chosen mixture for MclustDA.
    models_ : tuple of str
        The covariance model of every class (all the same for EDDA).
    n_components_ : tuple of int
        The number of components of every class.
    model_ : str or None
        EDDA's common covariance model; None for MclustDA.
    bic_table_ : pandas.DataFrame
        EDDA: one row per model tried (``model, log_likelihood,
        n_parameters, bic, status``; status 'singular' where the model
        cannot be estimated). MclustDA: every class's search table, with a
        ``class`` column.
    log_likelihood_ : float
        ``sum_n log sum_c p_c f_c(x_n)`` on the training data, ``p`` the
        class proportions (mclust's ``logLik.MclustDA``).
    n_parameters_ : int
        Its degrees of freedom: means, covariances, mixing weights within
        classes and the ``n_classes - 1`` proportions.
    bic_ : float
        ``-2 log_likelihood_ + n_parameters_ log N`` (lower is better).
    training_error_ : float
        Misclassification rate on the training data, with ``priors_``.
    brier_score_ : float
        Brier score on the training data (see :func:`brier_score`).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when ``X`` has string feature names.
    """

    def __init__(
        self,
        model_type="MclustDA",
        models=None,
        n_components=None,
        priors=None,
        reg_covar=0.0,
        random_state=None,
        search_options=None,
    ):
        self.model_type = model_type
        self.models = models
        self.n_components = n_components
        self.priors = priors
        self.reg_covar = reg_covar
        self.random_state = random_state
        self.search_options = search_options

    def fit(self, X, y):
        """Fit every class's density.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Class labels; at least two classes.

        Returns
        -------
        self : MixtureDiscriminant
        """
        return self._fit(X, y, fixed=None)

    def _fit(self, X, y, fixed: list[Choice] | None):
        """Fit; ``fixed`` gives every class's (model, K) instead of choosing."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        classes, codes = np.unique(y, return_inverse=True)
        if classes.shape[0] < 2:
            raise ValueError(
                "MixtureDiscriminant needs at least 2 classes to discriminate; "
                f"got 1 class ({classes[0]!r})."
            )
        if self.model_type not in MODEL_TYPES:
            raise ValueError(
                f"model_type must be one of {MODEL_TYPES}; got {self.model_type!r}."
            )
        priors = _check_priors(self.priors, classes.shape[0])
        models = _check_models(self.models, X.shape[1])
        ks = _check_components(self.n_components)
        reg_covar = _check_reg_covar(self.reg_covar)
        counts = np.bincount(codes, minlength=classes.shape[0])
        proportions = counts / X.shape[0]
        if self.model_type == "EDDA":
            if fixed is not None:
                models = (fixed[0][0],)
            params, choices, table = _fit_edda(
                X, codes, proportions, models, reg_covar, classes
            )
        else:
            options = dict(self.search_options or {})
            settings = (models, ks, reg_covar, _search_seed(self.random_state), options)
            params, choices, table = _fit_mclustda(X, codes, classes, settings, fixed)
        self.classes_ = classes
        self.class_counts_ = counts
        self.class_proportions_ = proportions
        self.priors_ = proportions.copy() if priors is None else priors
        self.class_params_ = params
        self.models_ = tuple(model for model, _ in choices)
        self.n_components_ = tuple(k for _, k in choices)
        self.model_ = self.models_[0] if self.model_type == "EDDA" else None
        self.bic_table_ = table
        self._summarise(X, codes)
        return self

    def _summarise(self, X: np.ndarray, codes: np.ndarray) -> None:
        """Log-likelihood, degrees of freedom, BIC, training error and Brier."""
        log_densities = _class_log_densities(X, self.class_params_)
        n_classes, n_features = self.classes_.shape[0], X.shape[1]
        self.log_likelihood_ = _mixture_log_likelihood(
            log_densities, self.class_proportions_
        )
        if self.model_type == "EDDA":
            covariance = get_covariance_model(self.models_[0]).n_parameters(
                n_classes, n_features
            )
            n_parameters = n_classes * n_features + covariance
        else:  # mixture weights, means and covariances of every class
            n_parameters = sum(params.n_parameters() for params in self.class_params_)
        self.n_parameters_ = int(n_parameters + n_classes - 1)
        self.bic_ = bic(self.log_likelihood_, self.n_parameters_, X.shape[0])
        posterior = np.exp(_log_posterior(log_densities, self.priors_))
        self.training_error_ = float(np.mean(np.argmax(posterior, axis=1) != codes))
        self.brier_score_ = brier_score(posterior, codes)

    def _choices(self) -> list[Choice]:
        """The fitted (model, K) of every class."""
        check_is_fitted(self)
        return list(zip(self.models_, self.n_components_, strict=True))

    def predict_log_proba(self, X):
        """Log-posterior class probabilities, shape (n_samples, n_classes)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return _log_posterior(_class_log_densities(X, self.class_params_), self.priors_)

    def predict_proba(self, X):
        """Posterior class probabilities by Bayes' rule with ``priors_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``; rows sum to one.
        """
        return np.exp(self.predict_log_proba(X))

    def predict(self, X):
        """The most probable class of every row, shape (n_samples,)."""
        log_proba = self.predict_log_proba(X)  # checks that it is fitted
        return self.classes_[np.argmax(log_proba, axis=1)]


@dataclass(frozen=True, eq=False)
class CVResult:
    """Cross-validated error and Brier score, as mclust's ``cvMclustDA``.

    Attributes
    ----------
    error, error_se : float
        Misclassification rate (fold rates weighted by fold size) and its
        standard error.
    brier, brier_se : float
        Brier score, the same way, and its standard error.
    fold_errors, fold_briers : ndarray of shape (n_folds,)
    fold_sizes : ndarray of shape (n_folds,)
    predictions : ndarray of shape (n_samples,)
        Every row's class as predicted by the fit that did not see it.
    probabilities : ndarray of shape (n_samples, n_classes)
        Its class probabilities.
    """

    error: float
    error_se: float
    brier: float
    brier_se: float
    fold_errors: np.ndarray
    fold_briers: np.ndarray
    fold_sizes: np.ndarray
    predictions: np.ndarray
    probabilities: np.ndarray


def _weighted_mean_and_se(values: np.ndarray, sizes: np.ndarray) -> tuple[float, float]:
    """The estimate and standard error of cvMclustDA from per-fold values.

    ``cv = sum s_i m_i / S`` and ``se = sqrt(sum s_i (m_i - cv)^2 /
    (S (F - 1) / F) / F)``, with ``S = sum s_i`` over ``F`` folds: with
    equal folds, the standard deviation of the fold values over sqrt(F).
    """
    n_folds, total = values.shape[0], sizes.sum()
    mean = float(np.sum(values * sizes) / total)
    spread = np.sum((values - mean) ** 2 * sizes) / (total * (n_folds - 1) / n_folds)
    return mean, float(np.sqrt(spread / n_folds))


def cross_validate(
    estimator: MixtureDiscriminant,
    X,
    y,
    n_folds: int = 10,
    random_state: Any = 0,
    *,
    reselect: bool = False,
) -> CVResult:
    """Stratified ``n_folds``-fold cross-validation, as mclust's ``cvMclustDA``.

    ``estimator`` is fitted to all the data first; every training fold is
    then fitted with the models and numbers of components that fit chose
    (fewer components where a fold cannot support them), and predicts its
    held-out fold with the full data's class proportions (or the
    estimator's ``priors``), as cvMclustDA does.

    Parameters
    ----------
    estimator : MixtureDiscriminant
        Unfitted settings (it is cloned, never changed).
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    n_folds : int, default=10
    random_state : int, RandomState or None, default=0
        Seeds the shuffle of :class:`sklearn.model_selection.StratifiedKFold`.
    reselect : bool, default=False
        True: every fold chooses its models afresh (the whole procedure is
        cross-validated), instead of cvMclustDA's fixed choice.

    Returns
    -------
    CVResult
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, numbers.Integral):
        raise ValueError(f"n_folds must be an integer >= 2; got {n_folds!r}.")
    if n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2; got {n_folds}.")
    X, y = check_X_y(X, y, dtype=np.float64)
    full = clone(estimator).fit(X, y)
    codes = np.searchsorted(full.classes_, y)
    priors = full.priors_
    folds = StratifiedKFold(n_folds, shuffle=True, random_state=random_state)
    probabilities = np.full((X.shape[0], full.classes_.shape[0]), np.nan)
    errors, briers, sizes = [], [], []
    for train, test in folds.split(X, y):
        model = clone(estimator).set_params(priors=priors)
        model._fit(X[train], y[train], fixed=None if reselect else full._choices())
        if not np.array_equal(model.classes_, full.classes_):
            raise ValueError(
                "a training fold lacks a class: every class needs more rows "
                f"than there are folds; use fewer folds than {n_folds}."
            )
        proba = model.predict_proba(X[test])
        probabilities[test] = proba
        errors.append(np.mean(np.argmax(proba, axis=1) != codes[test]))
        briers.append(brier_score(proba, codes[test]))
        sizes.append(test.shape[0])
    fold_sizes = np.asarray(sizes, dtype=np.float64)
    error, error_se = _weighted_mean_and_se(np.asarray(errors), fold_sizes)
    brier, brier_se = _weighted_mean_and_se(np.asarray(briers), fold_sizes)
    return CVResult(
        error=error,
        error_se=error_se,
        brier=brier,
        brier_se=brier_se,
        fold_errors=np.asarray(errors),
        fold_briers=np.asarray(briers),
        fold_sizes=fold_sizes.astype(int),
        predictions=full.classes_[np.argmax(probabilities, axis=1)],
        probabilities=probabilities,
    )
