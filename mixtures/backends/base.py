"""The one interface every engine implements, and the one result type.

A backend turns data into a :class:`MixtureFit`. Whatever the engine, the
parameters come back in full form (weights (K,), means (K, D), covariances
(K, D, D)) and the log-likelihood is computed by :func:`total_log_likelihood`,
one shared function, so numbers from different engines are comparable.
Backends never write files.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mixtures.em import score_samples
from mixtures.fitting import check_data
from mixtures.params import MixtureParams

__all__ = [
    "TRACE_KINDS",
    "Backend",
    "Imputation",
    "MixtureFit",
    "Stopwatch",
    "check_backend_input",
    "fit_in_standard_units",
    "is_posterior",
    "seed_from",
    "total_log_likelihood",
]

#: What a ``loglik_trace`` holds, per backend family.
TRACE_KINDS = {
    "em_mean_loglik": "mean per-sample log-likelihood entering each EM iteration",
    "draw_mean_loglik": "mean per-sample log-likelihood of each posterior draw",
    "advi_mean_elbo": "ELBO per sample at each ADVI iteration (up to an additive"
    " constant)",
    "vb_elbo": "scikit-learn's variational lower bound (a total, constants dropped)"
    " after each VB iteration",
}


def total_log_likelihood(X: np.ndarray, params: MixtureParams) -> float:
    """``sum_n log p(x_n)`` under ``params``: the comparable number of every fit.

    A row with missing values (NaN) counts with the density of its observed
    values (:mod:`mixtures.missing`).
    """
    X = check_data(X, allow_1d=True, allow_nan=True).astype(np.float64, copy=False)
    if np.isnan(X).any():
        from mixtures._parallel import resolve_kernel
        from mixtures.missing import observed_score_samples

        return float(
            np.sum(observed_score_samples(X, params, kernel=resolve_kernel(None)))
        )
    return float(np.sum(score_samples(X, params)))


def check_backend_input(
    X, n_components, covariance_type: str, *, allow_nan: bool = False
) -> np.ndarray:
    """Validate the arguments every backend shares; return 2-D float data.

    NaN (a missing value) only where ``allow_nan`` (the em backend with
    ``missing="em"``).
    """
    from mixtures.covariance import get_covariance_model

    if isinstance(n_components, bool) or not isinstance(n_components, int | np.integer):
        raise ValueError(f"n_components must be an integer >= 1; got {n_components!r}.")
    if n_components < 1:
        raise ValueError(f"n_components must be an integer >= 1; got {n_components}.")
    get_covariance_model(covariance_type)
    data = check_data(X, allow_1d=True, allow_nan=allow_nan)
    if data.shape[0] < n_components:
        raise ValueError(
            f"Expected n_samples >= n_components but got n_components = "
            f"{n_components}, n_samples = {data.shape[0]}."
        )
    return data


def seed_from(random_state) -> int | None:
    """An int seed from None, an int, a RandomState or a Generator."""
    if random_state is None or isinstance(random_state, int | np.integer):
        return None if random_state is None else int(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    raise ValueError(
        f"random_state must be None, an int or a numpy random generator; "
        f"got {random_state!r}."
    )


@dataclass(frozen=True, eq=False)
class Imputation:
    """An engine's estimate of the missing cells of the data it was given.

    Cells are listed in row-major order (``np.nonzero(np.isnan(X))``).

    Attributes
    ----------
    rows, columns : ndarray of int, shape (n_cells,)
        Where each missing cell is.
    mean : ndarray of shape (n_cells,)
        The point imputation: a conditional expectation (EM), a posterior
        mean (PyMC) or the fill an imputing arm used.
    lower, upper : ndarray of shape (n_cells,)
        A central interval of probability ``level`` for each cell: of the
        fitted conditional distribution (EM, plug-in) or of the posterior
        (PyMC). Equal to ``mean`` for a single fill that claims no
        uncertainty.
    level : float
        The intervals' nominal coverage, in (0, 1).
    """

    rows: np.ndarray
    columns: np.ndarray
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    level: float = 0.9

    def __post_init__(self) -> None:
        shapes = {
            np.shape(a)
            for a in (self.rows, self.columns, self.mean, self.lower, self.upper)
        }
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise ValueError(
                "an imputation's rows, columns, mean, lower and upper must be "
                f"1-D arrays of one length; got shapes {sorted(shapes)}."
            )
        if not 0 < self.level < 1:
            raise ValueError(f"level must be in (0, 1); got {self.level}.")

    @property
    def n_cells(self) -> int:
        """Number of imputed cells."""
        return int(np.size(self.mean))

    def in_units(self, scale: np.ndarray, shift: np.ndarray) -> Imputation:
        """The imputation of ``X * scale + shift`` (per column, ``scale > 0``).

        ``scale`` and ``shift`` have shape (n_features,); an affine map with
        a positive scale carries conditional means and quantiles exactly.
        """
        scale, shift = np.asarray(scale, float), np.asarray(shift, float)
        if np.any(scale <= 0):
            raise ValueError("scale must be positive in every column.")
        a, b = scale[self.columns], shift[self.columns]
        return replace(
            self,
            mean=self.mean * a + b,
            lower=self.lower * a + b,
            upper=self.upper * a + b,
        )

    def filled(self, X: np.ndarray) -> np.ndarray:
        """A copy of ``X`` (n_samples, n_features) with the cells set to ``mean``."""
        out = np.array(X, dtype=np.float64, copy=True)
        out[self.rows, self.columns] = self.mean
        return out


@dataclass(frozen=True, eq=False)
class MixtureFit:
    """One engine's fit of one data set, in a form every engine shares.

    Attributes
    ----------
    backend : str
        Registry name of the engine ("em", "sklearn", "pymc", ...).
    version : str
        Version of the library that did the fitting.
    params : MixtureParams
        Point estimate in full form; for PyMC the posterior mean after
        relabelling.
    log_likelihood : float
        Total log-likelihood of the data at ``params``
        (:func:`total_log_likelihood`).
    loglik_trace : ndarray of shape (n_points,)
        See ``trace_kind``.
    trace_kind : str
        One of :data:`TRACE_KINDS`.
    n_iter : int
        EM iterations, posterior draws or ADVI iterations.
    converged : bool
    seconds : float
        Wall time of the fit alone.
    diagnostics : dict
        Engine-specific: restarts, r_hat, ESS, divergences, intervals...
    restart_traces : tuple of ndarray
        Trace of every initialisation (EM) or chain (NUTS), ``(loglik_trace,)``
        otherwise.
    idata : arviz.InferenceData or None
        The posterior, for the PyMC backends.
    reg_covar : float or ndarray of shape (n_features,)
        What the engine added to the diagonal of every covariance (absolute,
        in the data's units), taken off before a fit is judged
        (:func:`mixtures.diagnostics.classify`); 0 for engines that add none.
    imputation : Imputation or None
        The engine's estimate of the data's missing cells, where it makes
        one; None for complete data or an engine that drops rows.
    """

    backend: str
    version: str
    params: MixtureParams
    log_likelihood: float
    loglik_trace: np.ndarray
    trace_kind: str
    n_iter: int
    converged: bool
    seconds: float
    diagnostics: dict[str, Any] = field(default_factory=dict)
    restart_traces: tuple[np.ndarray, ...] = ()
    idata: Any = None
    reg_covar: Any = 0.0
    imputation: Imputation | None = None

    def __post_init__(self) -> None:
        if self.trace_kind not in TRACE_KINDS:
            raise ValueError(
                f"trace_kind must be one of {sorted(TRACE_KINDS)}; "
                f"got {self.trace_kind!r}."
            )
        if self.params.covariance_type != "full":
            object.__setattr__(self, "params", self.params.to_full())
        if not self.restart_traces:
            object.__setattr__(self, "restart_traces", (self.loglik_trace,))

    @property
    def n_components(self) -> int:
        """Number of components of the fitted mixture."""
        return self.params.n_components


@runtime_checkable
class Backend(Protocol):
    """An engine that fits a Gaussian mixture to data.

    A backend may also define ``options`` (a set of option names its
    :meth:`fit` accepts) so sweep configurations can be checked before
    anything runs, and declares what kind of estimate it returns:
    ``is_posterior`` (True when its point estimate summarises a posterior:
    never a maximum of the likelihood, so never a reference optimum or a BIC
    choice; :func:`is_posterior` reads it, False when absent).
    """

    name: str

    def fit(
        self,
        X,
        n_components: int,
        *,
        covariance_type: str = "full",
        random_state=None,
        **options,
    ) -> MixtureFit:
        """Fit ``n_components`` components to ``X`` (n_samples, n_features)."""
        ...


def is_posterior(backend: object) -> bool:
    """The backend's declared ``is_posterior`` capability (False when absent)."""
    return bool(getattr(backend, "is_posterior", False))


def _precisions_forward(precisions, spread: np.ndarray, covariance_type: str):
    """Precisions in the data's units (any storage), in standard units."""
    precisions = np.asarray(precisions, dtype=np.float64)
    if precisions.ndim == 1:  # spherical: one common scale
        return precisions * spread[0] ** 2
    if precisions.ndim == 2 and covariance_type != "tied":  # diag
        return precisions * spread**2
    return precisions * np.outer(spread, spread)


def fit_in_standard_units(
    backend, X, n_components: int, *, covariance_type: str = "full", **options
) -> MixtureFit:
    """``backend.fit`` on the columns in standard units, mapped back to the data's.

    The fit does not depend on the data's units (:mod:`mixtures.units`): the
    columns are standardised for the covariance model, explicit starts
    (``means_init``, ``precisions_init``) are carried into standard units,
    and the fitted mixture, its log-likelihood, traces and imputation of the
    missing cells are carried back (traces shifted by the mean log-Jacobian
    per row, over each row's observed values). ``reg_covar`` then acts
    in standard units, so it is relative to each column's variance; the
    result's ``reg_covar`` is that amount in the data's units.
    """
    from mixtures.units import Standardization

    data = np.asarray(X, dtype=np.float64)
    units = Standardization.for_model(data, covariance_type)
    options = dict(options)
    if options.get("means_init") is not None:
        options["means_init"] = units.forward(options["means_init"])
    if options.get("precisions_init") is not None:
        options["precisions_init"] = _precisions_forward(
            options["precisions_init"], units.spread, covariance_type
        )
    fit = backend.fit(
        units.forward(data), n_components, covariance_type=covariance_type, **options
    )
    # Per row, over its observed values (a row with holes has fewer terms).
    shift = units.mean_log_jacobian(data)
    params = units.params_back(fit.params)
    diagnostics = dict(fit.diagnostics)
    for key in ("init_lower_bounds", "lower_bound"):
        if key in diagnostics:
            diagnostics[key] = (np.asarray(diagnostics[key]) + shift).tolist()
    return replace(
        fit,
        params=params,
        log_likelihood=total_log_likelihood(data, params),
        loglik_trace=np.asarray(fit.loglik_trace) + shift,
        restart_traces=tuple(np.asarray(t) + shift for t in fit.restart_traces),
        diagnostics=diagnostics,
        reg_covar=units.regularisation_back(float(np.max(fit.reg_covar))),
        imputation=(
            None
            if fit.imputation is None
            else fit.imputation.in_units(units.spread, units.center)
        ),
    )


class Stopwatch:
    """Context manager measuring wall seconds: ``with Stopwatch() as clock:``."""

    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc_info) -> None:
        self.seconds = time.perf_counter() - self.start


def reject_unknown_options(
    backend: str,
    options: dict[str, Any],
    allowed: Callable[[str], bool] | set[str] | frozenset[str],
) -> None:
    """ValueError naming options a backend does not understand."""
    check = allowed if callable(allowed) else allowed.__contains__
    unknown = sorted(key for key in options if not check(key))
    if unknown:
        choices = (
            "" if callable(allowed) else f"; allowed: {', '.join(sorted(allowed))}"
        )
        raise ValueError(f"backend {backend!r} got unknown options {unknown}{choices}.")
