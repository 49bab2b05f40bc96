"""The ``function`` backend: someone's own EM implementation, from a given start.

It runs an EM function in one of :mod:`mixtures.check`'s calling conventions
(``fn(X, K, weights, means, covariances, max_iter)``, or the 1-D forms) from
explicit starting parameters, so a write-up's code (a buggy version, a
homework's loop, a lecture's Python loops) can be set beside the engines on
the same data and from the same start. Its result is scored like every
other fit (:func:`~mixtures.backends.base.total_log_likelihood`).

Options: ``function`` ("module:name" or "path/to/file.py:name", required),
``convention`` ("standard"), ``max_iter`` (100), the start as
``weights_init`` (K,), ``means_init`` (K, D) and ``precisions_init``
(K, D, D) (required: this backend never initialises). The trace is the
function's own when it returns one as a fourth value (taken as the mean
log-likelihood per sample at each iteration; ``own_trace = false`` ignores
it); otherwise ``trace``: ``"rerun"`` (default) records the mean
log-likelihood after 1, 2, ..., ``max_iter`` iterations by calling the
function again with each (quadratic cost; for small problems), ``"final"``
records only the end. A function that
returns its own trace as a fourth value sets ``n_iter`` (the number of
iterations it ran); otherwise ``n_iter = max_iter`` and ``converged`` is
False (the implementation has no stopping rule we can see).

Results that are not a valid mixture (NaN, weights off the simplex, a
covariance that is not positive definite) raise ValueError naming what is
wrong: the run is recorded as failed with that reason.
"""

from __future__ import annotations

import warnings

import numpy as np

from mixtures.backends.base import (
    MixtureFit,
    Stopwatch,
    check_backend_input,
    reject_unknown_options,
    total_log_likelihood,
)
from mixtures.params import MixtureParams

__all__ = ["FunctionBackend"]

_OPTIONS = {
    "function",
    "convention",
    "max_iter",
    "trace",
    "own_trace",
    "weights_init",
    "means_init",
    "precisions_init",
}


def _as_mixture(loose) -> MixtureParams:
    """The returned arrays as a valid mixture, or ValueError saying why not."""
    for name in ("weights", "means", "covariances"):
        values = np.asarray(getattr(loose, name))
        if not np.all(np.isfinite(values)):
            raise ValueError(f"the function returned non-finite {name}.")
    weights = np.asarray(loose.weights, dtype=float)
    if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0, atol=1e-6):
        raise ValueError(
            f"the function returned weights that are not a distribution "
            f"(sum {weights.sum():.6g}, min {weights.min():.3g})."
        )
    try:
        return MixtureParams(weights / weights.sum(), loose.means, loose.covariances)
    except (ValueError, np.linalg.LinAlgError) as error:
        raise ValueError(f"the function returned an invalid mixture: {error}") from None


class FunctionBackend:
    """An EM implementation given as a function (see the module docstring)."""

    name = "function"
    is_posterior = False
    #: Options :meth:`fit` accepts, for configuration checks.
    options = frozenset(_OPTIONS)
    #: It cannot fit from data alone: it needs ``function`` and a start.
    needs_start = True

    def fit(
        self, X, n_components, *, covariance_type="full", random_state=None, **options
    ) -> MixtureFit:
        """Fit with the user's EM function from a drawn start; see ``Backend.fit``."""
        from mixtures.check import call_em_function, load_function

        data = check_backend_input(X, n_components, covariance_type).astype(float)
        reject_unknown_options(self.name, options, _OPTIONS)
        if "function" not in options:
            raise ValueError("the function backend needs function = 'module:name'.")
        missing = [
            key
            for key in ("weights_init", "means_init", "precisions_init")
            if options.get(key) is None
        ]
        if missing:
            raise ValueError(
                f"the function backend needs an explicit start; missing {missing}."
            )
        fn = load_function(str(options["function"]))
        convention = options.get("convention", "standard")
        max_iter = int(options.get("max_iter", 100))
        trace_mode = options.get("trace", "rerun")
        if trace_mode not in ("rerun", "final"):
            raise ValueError(f"trace must be 'rerun' or 'final'; got {trace_mode!r}.")
        own = options.get("own_trace", True)
        precisions = np.asarray(options["precisions_init"], dtype=float)
        start = MixtureParams(
            np.asarray(options["weights_init"], dtype=float),
            np.asarray(options["means_init"], dtype=float),
            np.linalg.inv(precisions),
        )
        # The code's own warnings (overflow, 0/0 in a buggy E-step) are part
        # of its result: recorded in the diagnostics, not printed.
        with Stopwatch() as clock, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loose, own_trace = call_em_function(fn, convention, data, start, max_iter)
        messages = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
        try:
            params = _as_mixture(loose)
        except ValueError as error:
            if messages:
                raise ValueError(f"{error} It warned: {'; '.join(messages)}") from None
            raise
        n_iter = max_iter if own_trace is None else int(own_trace.size)
        if own and own_trace is not None and own_trace.size:
            trace = own_trace
        elif trace_mode == "rerun":
            values = []
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # recorded above, once
                for steps in range(1, n_iter + 1):
                    partial, _ = call_em_function(fn, convention, data, start, steps)
                    values.append(total_log_likelihood(data, _as_mixture(partial)))
            trace = np.asarray(values) / data.shape[0]
        else:
            trace = np.array([total_log_likelihood(data, params) / data.shape[0]])
        return MixtureFit(
            backend=self.name,
            version=str(options["function"]),
            params=params,
            log_likelihood=total_log_likelihood(data, params),
            loglik_trace=trace,
            trace_kind="em_mean_loglik",
            n_iter=n_iter,
            converged=own_trace is not None and n_iter < max_iter,
            seconds=clock.seconds,
            diagnostics={
                "convention": convention,
                "max_iter": max_iter,
                "warnings": messages,
            },
        )
