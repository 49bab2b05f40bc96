"""``NoiseMixture``: a scikit-learn estimator for K Gaussians plus uniform noise.

The estimator face of :mod:`mixtures.noise` (Banfield & Raftery 1993;
mclust's ``Mclust(..., initialization = list(noise = ...))``): ``fit`` runs
the starts of one cell of :func:`mixtures.noise_search.search_noise` (mclust's
hierarchical start and seeded k-means starts of the Gaussians, on the rows not
flagged as noise, each run by EM with the noise column) and keeps the best
``ok`` fit. It is a separate class, not an option of
:class:`mixtures.GaussianMixture`, because its answers have another shape:
``predict_proba`` has a column for the noise and ``predict`` labels noise
``-1`` (scikit-learn's convention for outliers, as ``DBSCAN``), which
scikit-learn's own checks of a mixture would reject.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from mixtures.diagnostics import bic
from mixtures.noise import (
    _FIT_DEFAULTS,
    _as_data,
    _check_k,
    _check_noise,
    _check_volume,
    _labels,
)
from mixtures.noise_search import _search_cell, _start_seeds

__all__ = ["NoiseMixture"]


class NoiseMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture with a uniform noise component, fitted by EM.

    Parameters
    ----------
    n_components : int, default=1
        K >= 1, the number of Gaussians (the noise not counted).
    covariance_type : str, default='VVV'
        Any of mclust's (or scikit-learn's) model names.
    noise_init : 'nn_clean' or array-like of shape (n_samples,), bool
        The rows that start as noise: 'nn_clean' (default) finds them by
        Byers & Raftery's nearest-neighbour clutter removal (k = 5,
        :func:`mixtures.noise.nn_clean`); a mask flags them for the data
        given to ``fit``.
    volume : float or None, default=None
        ``V``, the volume the noise is uniform over; None: mclust's
        ``hypvol`` of the training data (:func:`mixtures.noise.hypervolume`).
    tol : float, default=1e-8
        EM stops when the mean log-likelihood changes by less than ``tol``.
    max_iter : int, default=2000
    reg_covar : float, default=1e-6
        Added to every variance, in units of each feature's variance when
        ``reg_covar_relative`` (the default; the fit does not depend on the
        units).
    reg_covar_relative : bool, default=True
    n_random_starts : int, default=2
        Seeded k-means starts besides mclust's hierarchical one; the best
        ``ok`` fit is kept.
    random_state : int or None, default=None
        Seeds the k-means starts; None means 0 (reproducible).

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        The Gaussians' proportions in the whole mixture; with
        ``noise_weight_`` they sum to one.
    noise_weight_ : float
        The noise proportion ``tau_0``.
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        Shaped as :class:`mixtures.GaussianMixture`'s for ``covariance_type``.
    log_volume_ : float
        ``log V``.
    log_likelihood_ : float
        The training data's log-likelihood at the fit.
    n_iter_, converged_ : int, bool
    status_, reason_ : str
        :func:`mixtures.diagnostics.classify`'s verdict on the Gaussian part.
    start_ : str
        The start of the kept fit ('hc' or 'kmeans-i').
    labels_ : ndarray of shape (n_samples,)
        The training rows' labels: 0..K-1 the Gaussians, -1 noise.
    fit_ : mixtures.noise.NoiseFit
        The fit itself (responsibilities, trace, initial noise).
    """

    def __init__(
        self,
        n_components=1,
        covariance_type="VVV",
        *,
        noise_init="nn_clean",
        volume=None,
        tol=1e-8,
        max_iter=2000,
        reg_covar=1e-6,
        reg_covar_relative=True,
        n_random_starts=2,
        random_state=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.noise_init = noise_init
        self.volume = volume
        self.tol = tol
        self.max_iter = max_iter
        self.reg_covar = reg_covar
        self.reg_covar_relative = reg_covar_relative
        self.n_random_starts = n_random_starts
        self.random_state = random_state

    def fit(self, X, y=None):
        """Fit to ``X`` (n_samples, n_features); ``y`` is ignored."""
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        X = _as_data(X)
        k = _check_k(self.n_components)
        if isinstance(self.noise_init, str):
            if self.noise_init != "nn_clean":
                raise ValueError(
                    "noise_init must be 'nn_clean' or a boolean mask of the rows; "
                    f"got {self.noise_init!r}."
                )
            mask = _check_noise(X, None)
        else:
            mask = _check_noise(X, self.noise_init)
        log_volume = _check_volume(X, self.volume)
        settings = {
            **_FIT_DEFAULTS,
            "tol": self.tol,
            "max_iter": self.max_iter,
            "reg_covar": self.reg_covar,
            "reg_covar_relative": self.reg_covar_relative,
            "random_state": self.random_state,
        }
        if (
            isinstance(self.n_random_starts, bool)
            or not isinstance(self.n_random_starts, int | np.integer)
            or self.n_random_starts < 0
        ):
            raise ValueError(
                "n_random_starts must be an integer >= 0; got "
                f"{self.n_random_starts!r}."
            )
        seeds = _start_seeds(self.random_state, int(self.n_random_starts))
        row, fit = _search_cell(
            X, self.covariance_type, k, mask, log_volume, settings, seeds
        )
        if fit is None:
            raise ValueError(f"every start of the fit failed: {row['reason']}")
        params = fit.params
        self.fit_ = fit
        self.weights_ = fit.weights
        self.noise_weight_ = float(fit.noise_weight)
        self.means_ = params.means
        self.covariances_ = params.covariances
        self.log_volume_ = float(fit.log_volume)
        self.log_likelihood_ = float(fit.log_likelihood)
        self.n_iter_, self.converged_ = int(fit.n_iter), bool(fit.converged)
        self.status_, self.reason_, self.start_ = fit.status, fit.reason, row["start"]
        self.labels_ = _labels(fit.responsibilities) - 1
        return self

    def _posterior(self, X) -> tuple[np.ndarray, np.ndarray]:
        check_is_fitted(self, "fit_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.fit_.e_step(X)

    def score_samples(self, X) -> np.ndarray:
        """``log p(x)`` of every row, the noise density ``1 / V`` included, (n,)."""
        return self._posterior(X)[0]

    def score(self, X, y=None) -> float:
        """Mean log-likelihood per row."""
        return float(self.score_samples(X).mean())

    def predict_proba(self, X) -> np.ndarray:
        """Responsibilities (n_samples, n_components + 1); the last is noise."""
        return self._posterior(X)[1]

    def predict(self, X) -> np.ndarray:
        """Labels (n_samples,): 0..K-1 the Gaussians, -1 noise."""
        return _labels(self.predict_proba(X)) - 1

    def fit_predict(self, X, y=None) -> np.ndarray:
        """Fit, then the training rows' labels (``labels_``)."""
        return self.fit(X).labels_

    def _n_parameters(self) -> int:
        check_is_fitted(self, "fit_")
        return int(self.fit_.n_parameters)

    def bic(self, X) -> float:
        """``-2 log L(X) + p log n``, p counting the noise proportion."""
        X = np.asarray(X)
        return bic(float(self.score_samples(X).sum()), self._n_parameters(), len(X))

    def aic(self, X) -> float:
        """``-2 log L(X) + 2 p``."""
        return -2.0 * float(self.score_samples(X).sum()) + 2 * self._n_parameters()
