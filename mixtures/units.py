"""Fitting in standard units: one affine map of the columns and its inverse.

A maximum-likelihood fit should not depend on the units the data were
recorded in: metres or millimetres, hours or minutes. EM itself is
equivariant under an affine change of units, but three things around it are
not: an absolute ``reg_covar`` (1e-6 is nothing for a variance of 184 and
everything for a variance of 1e-12), k-means starts (Euclidean distances
weigh columns by their units) and absolute tolerances. :class:`Standardization`
maps the columns to standard units before the fit and maps the fitted mixture
back, so that a fit of ``X * c + b`` is the fit of ``X`` in new units, to
rounding: the same partitions, statuses and optima, log-likelihoods shifted
by exactly the log-Jacobian ``-n * sum(log c)``.

Each column is centred and divided by its own standard deviation when the
covariance model is closed under rescaling columns (mclust's EEI, VEI, EVI,
VVI, EEE, VEE, EVV, VVV; scikit-learn's full, tied and diag): its fit in
standard units maps back to a fit of the same model. The six others (EII,
VII, EVE, VVE, EEV, VEV; scikit-learn's spherical) are only closed under one
common scale, so every column is divided by the same number, the root mean
variance; such a model's fit then depends on the columns' relative units, as
it must.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixtures.covariance import mclust_name
from mixtures.params import MixtureParams

__all__ = ["COLUMN_SCALING_MODELS", "Standardization"]

#: mclust names of the models closed under rescaling each column on its own.
COLUMN_SCALING_MODELS = frozenset(
    {"EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVV", "VVV", "E", "V"}
)


@dataclass(frozen=True)
class Standardization:
    """The map ``z = (x - center) / spread`` of every column.

    Attributes
    ----------
    center : ndarray of shape (n_features,)
    spread : ndarray of shape (n_features,)
        Positive; equal entries for models closed only under a common scale.
    """

    center: np.ndarray
    spread: np.ndarray

    @classmethod
    def for_model(cls, X: np.ndarray, covariance_type: str) -> Standardization:
        """The standardisation of ``X`` (n_samples, n_features) for a model.

        Per-column standard deviations for models in
        :data:`COLUMN_SCALING_MODELS`, one common scale otherwise; a column
        without spread keeps scale 1 (nothing can be fitted to it anyway).
        """
        X = np.asarray(X, dtype=np.float64)
        # Missing values (NaN): the statistics of the observed ones.
        center = np.nanmean(X, axis=0) if np.isnan(X).any() else X.mean(axis=0)
        variance = np.nanvar(X, axis=0) if np.isnan(X).any() else X.var(axis=0)
        if mclust_name(covariance_type) not in COLUMN_SCALING_MODELS:
            variance = np.full_like(variance, variance.mean())
        spread = np.sqrt(variance)
        spread[~(spread > 0) | ~np.isfinite(spread)] = 1.0
        return cls(center, spread)

    def forward(self, X: np.ndarray) -> np.ndarray:
        """Data in standard units, same shape as ``X``."""
        return (np.asarray(X, dtype=np.float64) - self.center) / self.spread

    def params_forward(self, params: MixtureParams) -> MixtureParams:
        """A mixture in the data's units, expressed in standard units."""
        return self._map(params, 1.0 / self.spread, -self.center / self.spread)

    def params_back(self, params: MixtureParams) -> MixtureParams:
        """A mixture fitted in standard units, expressed in the data's units."""
        return self._map(params, self.spread, self.center)

    def log_jacobian(self, n_samples: int) -> float:
        """What the data's total log-likelihood adds to that in standard units."""
        return -n_samples * float(np.sum(np.log(self.spread)))

    def mean_log_jacobian(self, X: np.ndarray) -> float:
        """What the data's mean log-likelihood per row adds to that in standard units.

        Each row's density is over its observed values, so a row gains
        ``-log spread_j`` for its observed features only (NaN marks a missing
        value); for complete data this is ``log_jacobian(1)``.
        """
        observed_share = np.mean(~np.isnan(X), axis=0)
        return -float(np.sum(np.log(self.spread) * observed_share))

    def regularisation_back(self, reg_covar: float) -> np.ndarray:
        """``reg_covar`` added in standard units, per feature in the data's units."""
        return reg_covar * self.spread**2

    @staticmethod
    def _map(params: MixtureParams, scale: np.ndarray, shift: np.ndarray):
        full = params.to_full()
        covariances = full.covariances * np.outer(scale, scale)
        mapped = MixtureParams(full.weights, full.means * scale + shift, covariances)
        return mapped.as_covariance_type(params.covariance_type)
