"""Arms that fill or drop missing values, then fit gmmlab's EM on what is left.

The usual alternatives to EM over observed values (:mod:`mixtures.missing`),
run as backends so a sweep compares them with it on the same data:

* ``em-complete-case``: drop every row with a missing value (listwise
  deletion), then EM;
* ``em-mean-imputed``: fill each hole with its feature's observed mean,
  then EM (shrinks covariances towards the fill);
* ``em-iterative-imputed``: fill with scikit-learn's ``IterativeImputer``
  (chained regressions, seeded), then EM.

Every arm's ``log_likelihood`` is the observed-data log-likelihood of *all*
rows under its fitted mixture (each row over its observed values), so the
arms are compared on one number; the trace is EM's on the filled or reduced
data. Options are the ``em`` backend's.

Every arm reports its estimate of the holes (``MixtureFit.imputation``):
complete-case the conditional mean and 90% interval under the mixture it
fitted to the complete rows (what a complete-case analyst would impute,
:func:`mixtures.imputation.conditional_intervals`); the filling arms their
fill, with no interval (a single imputation claims no uncertainty).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from mixtures.backends.base import (
    Imputation,
    MixtureFit,
    check_backend_input,
    reject_unknown_options,
    seed_from,
    total_log_likelihood,
)
from mixtures.backends.em import EMBackend
from mixtures.imputation import conditional_intervals, filled_imputation
from mixtures.missing import find_patterns, mean_filled
from mixtures.params import MixtureParams

__all__ = ["CompleteCaseBackend", "IterativeImputedBackend", "MeanImputedBackend"]


class _ImputedBackend:
    """Prepare the data (``_prepared``), fit the ``em`` backend, score all rows."""

    name = ""
    is_posterior = False
    fits_in_standard_units = True
    options = EMBackend.options - {"missing"}

    def fit(
        self, X, n_components, *, covariance_type="full", random_state=None, **options
    ) -> MixtureFit:
        """Fit EM on the prepared data; score every row over its observed values."""
        reject_unknown_options(self.name, options, self.options)
        data = check_backend_input(X, n_components, covariance_type, allow_nan=True)
        try:
            find_patterns(data)  # rows or features with nothing observed
        except ValueError as error:
            raise ValueError(
                f"{self.name}: {error} (NaN marks a missing value)"
            ) from None
        prepared = self._prepared(data, seed_from(random_state))
        fit = EMBackend().fit(
            prepared,
            n_components,
            covariance_type=covariance_type,
            random_state=random_state,
            **options,
        )
        diagnostics = dict(fit.diagnostics, rows_fitted=int(prepared.shape[0]))
        return dataclasses.replace(
            fit,
            backend=self.name,
            log_likelihood=total_log_likelihood(data, fit.params),
            diagnostics=diagnostics,
            imputation=(
                self._imputation(data, prepared, fit.params)
                if np.isnan(data).any()
                else None
            ),
        )

    def _prepared(self, X: np.ndarray, seed: int | None) -> np.ndarray:
        raise NotImplementedError

    def _imputation(
        self, X: np.ndarray, prepared: np.ndarray, params: MixtureParams
    ) -> Imputation:
        """The arm's estimate of the holes of ``X``: its fill, no interval."""
        return filled_imputation(X, prepared)


class CompleteCaseBackend(_ImputedBackend):
    """Listwise deletion: EM on the rows with every value observed."""

    name = "em-complete-case"

    def _prepared(self, X, seed):
        kept = X[~np.isnan(X).any(axis=1)]
        if kept.shape[0] < 2:
            raise ValueError(
                f"{self.name}: only {kept.shape[0]} row(s) have every value; "
                "complete-case analysis has nothing to fit."
            )
        return kept

    def _imputation(self, X, prepared, params):
        """The holes' conditional distribution under the complete-case mixture."""
        return conditional_intervals(X, params)


class MeanImputedBackend(_ImputedBackend):
    """Each hole filled with its feature's observed mean, then EM."""

    name = "em-mean-imputed"

    def _prepared(self, X, seed):
        return mean_filled(X)


class IterativeImputedBackend(_ImputedBackend):
    """Holes filled by scikit-learn's IterativeImputer (seeded), then EM."""

    name = "em-iterative-imputed"

    def _prepared(self, X, seed):
        from sklearn.experimental import enable_iterative_imputer  # noqa: F401
        from sklearn.impute import IterativeImputer

        if not np.isnan(X).any():
            return X
        imputer = IterativeImputer(random_state=seed, max_iter=20)
        with warnings.catch_warnings():
            # Its stopping rule often ends at max_iter: a fill, not a result.
            warnings.simplefilter("ignore", ConvergenceWarning)
            return imputer.fit_transform(X)
