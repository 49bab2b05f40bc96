"""The ``em`` backend: gmmlab's own EM engine (:func:`mixtures.fit_em`)."""

from __future__ import annotations

import warnings

import numpy as np

from mixtures import diagnostics
from mixtures._version import installed_version
from mixtures.backends.base import (
    MixtureFit,
    Stopwatch,
    check_backend_input,
    reject_unknown_options,
    seed_from,
    total_log_likelihood,
)
from mixtures.fitting import fit_em
from mixtures.options import SWEEP_OPTIONS

__all__ = ["EMBackend"]

#: Every option a sweep may set (the one declaration, mixtures.options),
#: and the sample weights.
_OPTIONS = SWEEP_OPTIONS | {"sample_weight"}


class EMBackend:
    """gmmlab's from-scratch EM; options are :func:`mixtures.fit_em`'s."""

    name = "em"
    is_posterior = False
    #: A sweep fits it in standard units (:func:`fit_in_standard_units`).
    fits_in_standard_units = True
    #: Options :meth:`fit` accepts, for configuration checks.
    options = frozenset(_OPTIONS)

    def fit(
        self, X, n_components, *, covariance_type="full", random_state=None, **options
    ) -> MixtureFit:
        """Fit with gmmlab's EM (:func:`mixtures.fit_em`); see :meth:`Backend.fit`.

        With ``missing="em"`` and NaN in ``X``, the fit's ``imputation`` holds
        each missing cell's conditional mean and 90% interval under the
        fitted mixture (:func:`mixtures.imputation.conditional_intervals`),
        computed after the fit's clock stops.
        """
        reject_unknown_options(self.name, options, _OPTIONS)
        data = check_backend_input(
            X, n_components, covariance_type, allow_nan=options.get("missing") == "em"
        )
        with Stopwatch() as clock, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = fit_em(
                data,
                n_components,
                covariance_type=covariance_type,
                random_state=seed_from(random_state),
                **options,
            )
        imputation = None
        if options.get("missing") == "em" and np.isnan(data).any():
            from mixtures.imputation import conditional_intervals

            # The fitted mixture's conditional distribution of each hole.
            imputation = conditional_intervals(data, result.params)
        best = result.restarts[result.best_restart]
        in_force = diagnostics.in_force(best)
        return MixtureFit(
            backend=self.name,
            version=installed_version(),
            params=result.params,
            log_likelihood=total_log_likelihood(data, result.params),
            loglik_trace=result.lower_bounds,
            trace_kind="em_mean_loglik",
            n_iter=result.n_iter,
            converged=result.converged,
            seconds=clock.seconds,
            diagnostics={
                "n_init": len(result.restarts),
                "best_restart": result.best_restart,
                "init_lower_bounds": result.init_lower_bounds.tolist(),
                "degenerate_events": len(result.events),
                "degenerate_in_force": in_force,
                "warnings": sorted({str(w.category.__name__) for w in caught}),
            },
            restart_traces=tuple(result.init_traces),
            reg_covar=options.get("reg_covar", 1e-6),
            imputation=imputation,
        )
