"""The ``sklearn-vb`` backend: scikit-learn's ``BayesianGaussianMixture``.

The model
---------
A Bayesian Gaussian mixture fitted by variational inference (mean-field
variational Bayes, Bishop 2006, *Pattern Recognition and Machine Learning*,
section 10.2). The posterior over the assignments, the weights and each
component's mean and precision is approximated by a factorised
``q(z) q(pi) q(mu, Lambda)``, and the evidence lower bound (ELBO) is raised by
coordinate ascent: a variational E-step (responsibilities) and M-step
(posterior hyper-parameters), alternated like EM.

The priors (scikit-learn's names and defaults; ``K`` components, ``D``
features):

* weights: ``weight_concentration_prior_type = "dirichlet_process"`` (default),
  a truncated stick-breaking Dirichlet process (Blei & Jordan 2006,
  *Variational inference for Dirichlet process mixtures*, Bayesian Analysis
  1(1)) with concentration ``weight_concentration_prior``; or
  ``"dirichlet_distribution"``, a symmetric Dirichlet on the weights with
  that concentration (Bishop 2006, 10.2). Default concentration ``1 / K``.
  A small concentration empties the components the data do not need: that is
  what this engine is for, reported as ``effective_components`` below.
* means: Gaussian with mean ``mean_prior`` (default: the data's mean) and
  precision ``mean_precision_prior`` (default 1) times the component's
  precision.
* precisions: Wishart with ``degrees_of_freedom_prior`` (default ``D``) and
  covariance scale ``covariance_prior`` (default: the data's empirical
  covariance; its diagonal for ``diag``, its average variance for
  ``spherical``, where the Wishart reduces to Gamma distributions).

What comes back
---------------
The point estimate is the variational posterior's, exactly as scikit-learn
exposes it: ``weights_`` (the posterior mean weights, renormalised to sum to
one), ``means_`` and ``covariances_``. It is *not* a maximum-likelihood
estimate: the priors shrink it, and components the prior empties keep small
weights, so its log-likelihood (computed by the shared
:func:`~mixtures.backends.base.total_log_likelihood`) is expected to be at or
below EM's on the same data and K.

``loglik_trace`` is scikit-learn's ``lower_bounds_``, trace kind ``vb_elbo``:
the lower bound after each iteration of the best initialisation. It is a
*total* over the data with the constant terms dropped (scikit-learn's
``_compute_lower_bound``), so its level is neither a log-likelihood nor
comparable between data sets; its changes are in nats. scikit-learn stops
when one change is below ``tol`` in absolute value: ``tol`` is in nats of
that total, not per sample as in ``GaussianMixture``.

``diagnostics`` holds ``n_init``, ``lower_bound``, the weight prior
(``weight_concentration_prior_type``, and the ``weight_concentration_prior``,
``mean_precision_prior`` and ``degrees_of_freedom_prior`` scikit-learn
actually used), ``component_counts`` and ``effective_components``, and the
warnings caught.

``component_counts`` are ``N_k = sum_n r_nk``, the expected number of data
points in each component under the responsibilities of the last
variational M-step of the best initialisation (read back from the fitted
posterior: ``weight_concentration_[0] - 1`` for the Dirichlet
process, ``weight_concentration_ - weight_concentration_prior_`` for the
Dirichlet distribution). A component is *effective* when ``N_k > 0.5``, i.e.
its share of the data ``N_k / n`` exceeds ``1 / (2n)``: it holds at least
half a data point. The rule counts data, not the posterior mean weights,
because a weight also carries the prior's pseudo-counts: under a stick-
breaking prior an empty component *before* the occupied ones keeps a weight
near ``1 / (n + 1)``, and a large concentration gives every empty component
a weight of ``alpha / (K alpha + n)``.
"""

from __future__ import annotations

import numpy as np
import sklearn
from sklearn.mixture import BayesianGaussianMixture

from mixtures.backends.base import (
    MixtureFit,
    check_backend_input,
    reject_unknown_options,
    seed_from,
    total_log_likelihood,
)
from mixtures.backends.sklearn import fit_sklearn_model

__all__ = ["EFFECTIVE_COUNT", "SklearnVBBackend", "component_counts"]

_OPTIONS = {
    "weight_concentration_prior_type",
    "weight_concentration_prior",
    "mean_precision_prior",
    "mean_prior",
    "degrees_of_freedom_prior",
    "covariance_prior",
    "tol",
    "reg_covar",
    "max_iter",
    "n_init",
    "init_params",
}

#: The covariance types scikit-learn's variational mixture implements.
_COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")

#: A component is effective when it holds more than this many data points
#: (expected count under the responsibilities): a share above ``1 / (2n)``.
EFFECTIVE_COUNT = 0.5


def component_counts(model: BayesianGaussianMixture) -> np.ndarray:
    """``N_k``: each component's expected number of data points in a fitted model.

    Recovered from the weights' variational posterior, which is the prior's
    concentration plus these counts (module docstring).
    """
    concentration = model.weight_concentration_
    if model.weight_concentration_prior_type == "dirichlet_process":
        counts = np.asarray(concentration[0], dtype=np.float64) - 1.0
    else:
        counts = np.asarray(concentration, dtype=np.float64) - float(
            model.weight_concentration_prior_
        )
    return np.maximum(counts, 0.0)


class SklearnVBBackend:
    """scikit-learn's variational Bayesian mixture; options are its constructor's."""

    name = "sklearn-vb"
    is_posterior = True
    #: Options :meth:`fit` accepts, for configuration checks.
    options = frozenset(_OPTIONS)

    def fit(
        self, X, n_components, *, covariance_type="full", random_state=None, **options
    ) -> MixtureFit:
        """Fit with scikit-learn's BayesianGaussianMixture; see ``Backend.fit``."""
        if covariance_type not in _COVARIANCE_TYPES:
            allowed = ", ".join(repr(name) for name in _COVARIANCE_TYPES)
            raise ValueError(
                f"covariance_type must be one of {allowed} for backend "
                f"{self.name!r}; got {covariance_type!r}."
            )
        data = check_backend_input(X, n_components, covariance_type)
        reject_unknown_options(self.name, options, _OPTIONS)
        model = BayesianGaussianMixture(
            n_components=n_components,
            covariance_type=covariance_type,
            random_state=seed_from(random_state),
            **options,
        )
        params, seconds, caught = fit_sklearn_model(model, data, covariance_type)
        counts = component_counts(model)
        # With covariance_type="tied", scikit-learn's lower bound is an array of
        # shape (1,) (its tied Wishart term keeps a dimension): flatten.
        trace = np.asarray(model.lower_bounds_, dtype=np.float64).reshape(-1)
        return MixtureFit(
            backend=self.name,
            version=sklearn.__version__,
            params=params,
            log_likelihood=total_log_likelihood(data, params),
            loglik_trace=trace,
            trace_kind="vb_elbo",
            n_iter=int(model.n_iter_),
            converged=bool(model.converged_),
            seconds=seconds,
            diagnostics={
                "n_init": model.n_init,
                "lower_bound": float(np.ravel(model.lower_bound_)[0]),
                "weight_concentration_prior_type": (
                    model.weight_concentration_prior_type
                ),
                "weight_concentration_prior": float(model.weight_concentration_prior_),
                "mean_precision_prior": float(model.mean_precision_prior_),
                "degrees_of_freedom_prior": float(model.degrees_of_freedom_prior_),
                "component_counts": counts.tolist(),
                "effective_components": int(np.sum(counts > EFFECTIVE_COUNT)),
                "warnings": caught,
            },
            reg_covar=model.reg_covar,
        )
