"""The ``sklearn`` backend: scikit-learn's ``GaussianMixture``."""

from __future__ import annotations

import warnings

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from mixtures.backends.base import (
    MixtureFit,
    Stopwatch,
    check_backend_input,
    reject_unknown_options,
    seed_from,
    total_log_likelihood,
)
from mixtures.params import MixtureParams

__all__ = ["SklearnBackend", "fit_sklearn_model"]


def fit_sklearn_model(
    model, data: np.ndarray, covariance_type: str
) -> tuple[MixtureParams, float, list[str]]:
    """Fit a scikit-learn mixture; ``(params, seconds, warning categories)``.

    Shared by the ``sklearn`` and ``sklearn-vb`` backends: the fit is timed,
    its convergence warnings are caught and named instead of shown, and the
    fitted weights (renormalised against rounding), means and covariances
    become a :class:`MixtureParams`.
    """
    with Stopwatch() as clock, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(data)
    params = MixtureParams(
        model.weights_ / model.weights_.sum(),
        model.means_,
        model.covariances_,
        covariance_type,
    )
    return params, clock.seconds, sorted({str(w.category.__name__) for w in caught})


_OPTIONS = {
    "tol",
    "reg_covar",
    "max_iter",
    "n_init",
    "init_params",
    "weights_init",
    "means_init",
    "precisions_init",
}


class SklearnBackend:
    """scikit-learn's EM; options are its constructor's."""

    name = "sklearn"
    is_posterior = False
    #: A sweep fits it in standard units (:func:`fit_in_standard_units`).
    fits_in_standard_units = True
    #: Options :meth:`fit` accepts, for configuration checks.
    options = frozenset(_OPTIONS)

    def fit(
        self, X, n_components, *, covariance_type="full", random_state=None, **options
    ) -> MixtureFit:
        """Fit with scikit-learn's ``GaussianMixture``; see :meth:`Backend.fit`."""
        data = check_backend_input(X, n_components, covariance_type)
        reject_unknown_options(self.name, options, _OPTIONS)
        model = SklearnGaussianMixture(
            n_components,
            covariance_type=covariance_type,
            random_state=seed_from(random_state),
            **options,
        )
        params, seconds, caught = fit_sklearn_model(model, data, covariance_type)
        return MixtureFit(
            backend=self.name,
            version=sklearn.__version__,
            params=params,
            log_likelihood=total_log_likelihood(data, params),
            loglik_trace=np.asarray(model.lower_bounds_, dtype=np.float64),
            trace_kind="em_mean_loglik",
            n_iter=int(model.n_iter_),
            converged=bool(model.converged_),
            seconds=seconds,
            diagnostics={
                "n_init": model.n_init,
                "lower_bound": float(model.lower_bound_),
                "warnings": caught,
            },
            reg_covar=model.reg_covar,
        )
