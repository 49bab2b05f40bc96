"""Fitting a Gaussian mixture by EM from several initialisations.

:func:`fit_em` is the functional entry point: it validates its input,
initialises ``n_init`` times, runs :func:`mixtures.em.run_em` from each start
and keeps the best restart, exactly as scikit-learn's ``GaussianMixture``
selects it, while keeping the trace of every restart. The estimator in
:mod:`mixtures.estimator` is a thin shell around :func:`fit_validated`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array, check_random_state

from mixtures._parallel import DEVICE_KERNEL, host_kernel, resolve_kernel
from mixtures.covariance import get_covariance_model
from mixtures.em import (
    DegeneracyPolicy,
    DegenerateEvent,
    EMRun,
    ScoredPass,
    e_step,
    finalise_components,
    params_from_responsibilities,
    run_em,
    score_and_label,
)
from mixtures.initialization import initial_responsibilities
from mixtures.missing import (
    find_patterns,
    mean_filled,
    missing_score_and_label,
    missing_scored_pass,
)
from mixtures.options import (
    EMOptions,
    _as_float_array,
    fit_em_signature,
    reject_unknown,
)
from mixtures.params import MixtureParams
from mixtures.prior import as_prior

__all__ = [
    "DegenerateComponentWarning",
    "EMOptions",
    "EMResult",
    "as_random_state",
    "check_data",
    "check_sample_weight",
    "fit_em",
    "fit_validated",
    "initial_parameters",
]

logger = logging.getLogger("mixtures")


class DegenerateComponentWarning(UserWarning):
    """Issued when the degenerate-component policy had to act during a fit."""


# ---------------------------------------------------------------------------
# Validation


def check_data(X, *, allow_1d: bool, allow_nan: bool = False) -> np.ndarray:
    """Validate data as a float (n_samples, n_features) array.

    A 1-D array is one feature when ``allow_1d`` (the functional API); the
    estimator refuses it, as scikit-learn's does. NaN (a missing value) is
    refused unless ``allow_nan`` (``missing="em"``); infinities always are.
    """
    if allow_1d:
        array = np.asarray(X) if not hasattr(X, "iloc") else X
        if getattr(array, "ndim", None) == 1:
            X = np.asarray(array).reshape(-1, 1)
    if (
        type(X) is np.ndarray
        and X.ndim == 2
        and X.dtype in (np.float64, np.float32)
        and X.shape[0] >= 2
        and X.shape[1] >= 1
        and np.isfinite(X.sum())
    ):
        # Already what check_array would return (it costs 0.1 ms, which is
        # a tenth of a small fit); anything else gets its checks and messages.
        return X
    with missing_hint(allow_nan, "pass missing='em'"):
        return check_array(
            X,
            dtype=[np.float64, np.float32],
            ensure_min_samples=2,
            ensure_all_finite="allow-nan" if allow_nan else True,
        )


@contextmanager
def missing_hint(allow_nan: bool, how: str) -> Iterator[None]:
    """Add to a validator's NaN error how to fit over observed values (``how``)."""
    try:
        yield
    except ValueError as error:
        if allow_nan or "NaN" not in str(error):
            raise
        raise ValueError(
            f"{error} To fit by maximum likelihood over each row's observed "
            f"values instead, {how}."
        ) from None


def check_sample_weight(sample_weight, n_samples: int, n_components: int) -> np.ndarray:
    """Validate sample weights: finite, non-negative, shape (n_samples,).

    ``None`` gives unit weights. At least ``n_components`` samples must have
    a positive weight.
    """
    if sample_weight is None:
        return np.ones(n_samples)
    weights = _as_float_array(sample_weight, "sample_weight")
    if weights.ndim == 0:
        weights = np.full(n_samples, float(weights))
    if weights.shape != (n_samples,):
        raise ValueError(
            f"sample_weight must have shape ({n_samples},), one weight per "
            f"sample; got shape {weights.shape}."
        )
    if np.any(weights < 0):
        raise ValueError("sample_weight must be non-negative; got negative values.")
    n_positive = int(np.count_nonzero(weights))
    if n_positive == 0:
        raise ValueError("sample_weight is zero everywhere; give some samples weight.")
    if n_positive < n_components:
        raise ValueError(
            f"only {n_positive} samples have positive weight, fewer than "
            f"n_components={n_components}; decrease n_components."
        )
    return weights


def as_random_state(random_state) -> np.random.RandomState:
    """A RandomState from None, an int, a RandomState or a numpy Generator.

    A Generator is consumed once to seed a new RandomState, so the same
    Generator state always gives the same fit.
    """
    if isinstance(random_state, np.random.Generator):
        return np.random.RandomState(int(random_state.integers(2**32)))
    return check_random_state(random_state)


def initial_parameters(
    X,
    n_components: int,
    *,
    covariance_type: str = "full",
    init_params: str = "kmeans",
    random_state=None,
    reg_covar: float = 1e-6,
) -> MixtureParams:
    """The starting parameters EM (ours and scikit-learn's) derives from a seed.

    The initial responsibilities of ``init_params`` drawn as scikit-learn
    draws them, then one M-step: the parameters both engines enter their
    first E-step with (before gmmlab's degenerate-component policy, which
    leaves a healthy start untouched). Lets a third implementation start
    from exactly the same point. One exception: for the tied model from a
    start that is one-hot on K rows ('random_from_data', 'k-means++'),
    scikit-learn's covariance, (X^T X - sum_k n_k m_k m_k^T) / sum_k n_k
    with X^T X over every row, is about n / K times the data's second
    moment, while this one is the K rows' own scatter (plus ``reg_covar``).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples,)
    n_components : int
    covariance_type : str
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}
    random_state : None, int, RandomState or Generator
    reg_covar : float

    Returns
    -------
    MixtureParams of ``covariance_type``
    """
    X = check_data(X, allow_1d=True)
    model = get_covariance_model(covariance_type)
    kernel = resolve_kernel(None)  # as a fit with the default kernel="auto"
    sample_weight = np.ones(X.shape[0])
    resp = initial_responsibilities(
        X, n_components, init_params, as_random_state(random_state)
    )
    weights, means, covariances, _ = params_from_responsibilities(
        X, sample_weight, resp, model, reg_covar, kernel=kernel
    )
    return MixtureParams(weights, means, covariances, model.name, kernel=kernel)


# ---------------------------------------------------------------------------
# Results


@dataclass(frozen=True, eq=False)
class EMResult:
    """The outcome of :func:`fit_em`.

    Attributes
    ----------
    params : MixtureParams
        Parameters of the best restart.
    lower_bounds : ndarray of shape (n_iter,)
        Trace of the best restart (scikit-learn's ``lower_bounds_``).
    n_iter : int
    converged : bool
    lower_bound : float
        Best restart's final trace value (scikit-learn's ``lower_bound_``).
    log_likelihood : float
        Total (sample-weighted) log-likelihood of the data at ``params``.
    mean_log_likelihood : float
        ``log_likelihood`` divided by the total sample weight.
    labels : ndarray of shape (n_samples,)
        Most probable component of every sample under ``params``.
    best_restart : int
    restarts : tuple of EMRun
        Every restart, the best included, in the order they ran.
    """

    params: MixtureParams
    lower_bounds: np.ndarray
    n_iter: int
    converged: bool
    lower_bound: float
    log_likelihood: float
    mean_log_likelihood: float
    labels: np.ndarray
    best_restart: int
    restarts: tuple[EMRun, ...]

    @property
    def trace(self) -> np.ndarray:
        """Alias of :attr:`lower_bounds`."""
        return self.lower_bounds

    @property
    def init_lower_bounds(self) -> np.ndarray:
        """Final trace value of every restart, shape (n_init,)."""
        return np.array([run.lower_bound for run in self.restarts])

    @property
    def init_traces(self) -> list[np.ndarray]:
        """The whole trace of every restart."""
        return [run.lower_bounds for run in self.restarts]

    @property
    def events(self) -> tuple[DegenerateEvent, ...]:
        """Degenerate-component events of every restart."""
        return tuple(event for run in self.restarts for event in run.events)


# ---------------------------------------------------------------------------
# Fitting


def _initial_params(
    X: np.ndarray,
    sample_weight: np.ndarray,
    unit_weights: bool,
    options: EMOptions,
    inits: tuple,
    random_state: np.random.RandomState,
    policy: DegeneracyPolicy,
    restart: int,
    resp: np.ndarray | None,
    kernel: str,
) -> tuple[MixtureParams, list[DegenerateEvent]]:
    """Initial parameters of one restart, following scikit-learn's rules.

    Responsibilities from ``init_params`` are computed (and the random state
    consumed) unless all three of weights, means and precisions are given;
    given arrays then replace the estimated ones.
    """
    model = get_covariance_model(options.covariance_type)
    weights_init, means_init, precisions_init = inits
    n_components = options.n_components
    weights: np.ndarray | None = None
    means: np.ndarray | None = None
    covariances: np.ndarray | None = None
    if any(a is None for a in inits):
        if resp is None:
            resp = initial_responsibilities(
                X,
                n_components,
                options.init_params,
                random_state,
                None if unit_weights else sample_weight,
            )
        weights, means, covariances, weight_sums = params_from_responsibilities(
            X, sample_weight, resp, model, policy.reg_covar, policy.prior, kernel=kernel
        )
    else:
        weight_sums = np.full(n_components, np.inf)
    if weights_init is not None:
        weights = weights_init
    if means_init is not None:
        means = means_init
    if precisions_init is not None:
        prec_chol = model.precision_cholesky_from_precisions(precisions_init)
        covariances = model.covariances_from_precision_cholesky(prec_chol)
        weight_sums = np.full(n_components, np.inf)
    # Estimated from the responsibilities, or given: never missing here.
    assert weights is not None
    assert means is not None
    assert covariances is not None

    def rank_samples() -> np.ndarray:
        provisional = MixtureParams(
            weights,
            means,
            model.add_floor(
                covariances,
                policy.covariance_floor,
                np.ones(1 if model.shared else n_components, bool),
            ),
            model.name,
            kernel=kernel,
        )
        log_prob_norm, _ = e_step(X, provisional)
        positive = np.flatnonzero(sample_weight > 0)
        return positive[np.argsort(log_prob_norm[positive], kind="stable")]

    return finalise_components(
        weights,
        means,
        covariances,
        weight_sums,
        X,
        rank_samples,
        model,
        policy,
        restart=restart,
        iteration=0,
        reseeds_left=policy.max_reseeds_per_component * n_components,
        kernel=kernel,
    )


@contextmanager
def _verbose_logging(verbose: int) -> Iterator[None]:
    if not verbose:
        yield
        return
    handler = logging.StreamHandler(sys.stdout)
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


def _feature_variance(X: np.ndarray, weights: np.ndarray) -> np.ndarray:
    from mixtures.em import weighted_feature_variance

    variance = weighted_feature_variance(X, weights)
    positive = variance[variance > 0]
    return np.where(variance > 0, variance, positive.max() if positive.size else 1.0)


class _Passes(NamedTuple):
    """A fit's own passes over data the engine's cannot read (missing values).

    ``scored`` replaces the loop's pass; ``score_and_label(X, params)``
    replaces the final scoring (its ``X``, the filled data, is not read).
    """

    scored: ScoredPass
    score_and_label: Callable[
        [np.ndarray, MixtureParams], tuple[np.ndarray, np.ndarray]
    ]


def fit_validated(
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    options: EMOptions,
    random_state,
    *,
    initial_params: MixtureParams | None = None,
    initial_lower_bound: float = -np.inf,
    initial_resp: Sequence[np.ndarray] | None = None,
    device_X=None,
) -> EMResult:
    """Fit on already validated 2-D data; see :func:`fit_em` for the contract.

    ``initial_resp``, a sequence of (n_samples, n_components) responsibility
    arrays, replaces ``init_params`` and ``n_init``: restart ``r`` starts
    from ``initial_resp[r]`` (used by :mod:`mixtures.select` to share one
    set of partitions between models). ``options.kernel`` is resolved here,
    once; with 'array-api' the passes run on ``device_X`` (``X`` on another
    array-API library's device; None: ``X``), the rest on the host.

    With ``options.missing == "em"`` and NaN in ``X``, the passes are those
    of :mod:`mixtures.missing` (each row scored over its observed values),
    and the starts and the degenerate-component policy see ``X`` with its
    holes filled by the feature means.
    """
    kernel = host_kernel(options.kernel)
    passes = None
    if options.kernel == DEVICE_KERNEL:
        if np.isnan(X).any():
            raise ValueError(
                "kernel='array-api' does not fit missing values yet; use "
                "kernel='auto' with missing='em'."
            )
        from mixtures.array_api_pass import device_passes

        passes = _Passes(
            *device_passes(X if device_X is None else device_X, sample_weight)
        )
    elif options.missing == "em" and np.isnan(X).any():
        observed, patterns = X, find_patterns(X)
        X = mean_filled(observed)
        passes = _Passes(
            missing_scored_pass(observed, patterns, kernel),
            lambda _, params: missing_score_and_label(
                observed, patterns, params, kernel
            ),
        )
    return _fit_on_kernel(
        X,
        sample_weight,
        options,
        random_state,
        initial_params=initial_params,
        initial_lower_bound=initial_lower_bound,
        initial_resp=initial_resp,
        kernel=kernel,
        passes=passes,
    )


def _fit_on_kernel(
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    options: EMOptions,
    random_state,
    *,
    initial_params: MixtureParams | None,
    initial_lower_bound: float,
    initial_resp: Sequence[np.ndarray] | None,
    kernel: str,
    passes: _Passes | None = None,
) -> EMResult:
    n_samples, n_features = X.shape
    if n_samples < options.n_components:
        raise ValueError(
            "Expected n_samples >= n_components but got "
            f"n_components = {options.n_components}, n_samples = {n_samples}; "
            "decrease n_components or provide more data."
        )
    if options.reg_covar == 0 and not options.reg_covar_relative:
        n_distinct = np.unique(X, axis=0).shape[0]
        if n_distinct < options.n_components:
            # Without regularisation some component must sit on one point:
            # the likelihood is unbounded there. scikit-learn's sentence first.
            raise ValueError(
                "Fitting the mixture model failed because some components have "
                "ill-defined empirical covariance (for instance caused by "
                "singleton or collapsed samples). Try to decrease the number of "
                "components, increase reg_covar, or scale the input data. The "
                f"data have {n_distinct} distinct rows, fewer than n_components = "
                f"{options.n_components}, and reg_covar is 0."
            )
    # A univariate model on multivariate data raises here, before any work.
    get_covariance_model(options.covariance_type).shape(
        options.n_components, n_features
    )
    inits = options.initial_arrays(n_features)
    unit_weights = sample_weight is None
    weights = check_sample_weight(sample_weight, n_samples, options.n_components)
    options.check_initial_params(initial_params, n_features)
    random_state = as_random_state(random_state)
    prior = as_prior(options.prior)
    score = (
        passes.score_and_label
        if passes is not None
        else functools.partial(score_and_label, kernel=kernel)
    )
    reg_covar: float | np.ndarray = options.reg_covar
    if options.reg_covar_relative:
        # Per feature, in units of that feature's variance: the fit no longer
        # depends on the data's units.
        reg_covar = reg_covar * _feature_variance(X, weights)
    policy = DegeneracyPolicy.for_data(
        X,
        weights,
        reg_covar,
        None if prior is None else prior.resolve(X, weights, options.n_components),
        n_components=options.n_components,
    )
    n_init = 1 if initial_params is not None else options.n_init
    if initial_resp is not None and initial_params is None:
        n_init = len(initial_resp)

    restarts: list[EMRun] = []
    best_index, best_bound = 0, -np.inf
    with _verbose_logging(options.verbose):
        for restart in range(n_init):
            logger.info("Initialization %d", restart)
            if initial_params is None:
                start, init_events = _initial_params(
                    X,
                    weights,
                    unit_weights,
                    options,
                    inits,
                    random_state,
                    policy,
                    restart,
                    None if initial_resp is None else initial_resp[restart],
                    kernel,
                )
            else:
                start, init_events = initial_params, []
            run = run_em(
                X,
                weights,
                start,
                policy,
                tol=options.tol,
                max_iter=options.max_iter,
                initial_lower_bound=initial_lower_bound,
                restart=restart,
                initial_events=tuple(init_events),
                verbose_interval=options.verbose_interval if options.verbose else 0,
                acceleration=options.acceleration,
                stopping=options.stopping,
                kernel=kernel,
                scored_pass=None if passes is None else passes.scored,
            )
            restarts.append(run)
            logger.info(
                "Initialization %s. lower bound %.6f",
                "converged" if run.converged else "did not converge",
                run.lower_bound,
            )
            # scikit-learn's rule: the first restart, then any strictly better
            # one; with max_iter=0 nothing is scored and the last one is kept.
            if (
                options.max_iter == 0
                or run.lower_bound > best_bound
                or best_bound == -np.inf
            ):
                best_index, best_bound = restart, run.lower_bound

    if policy.prior is not None and options.max_iter > 0:
        # MAP-EM maximises the log-posterior, not the log-likelihood: keep
        # the restart with the highest one.
        posteriors = [
            float(np.dot(weights, score(X, run.params)[0]))
            + policy.prior.log_density(run.params)
            for run in restarts
        ]
        best_index = int(np.argmax(posteriors))
    best = restarts[best_index]
    log_prob_norm, labels = score(X, best.params)
    total = float(np.dot(weights, log_prob_norm))
    result = EMResult(
        params=best.params,
        lower_bounds=best.lower_bounds,
        n_iter=best.n_iter,
        converged=best.converged,
        lower_bound=best.lower_bound,
        log_likelihood=total,
        mean_log_likelihood=total / float(np.sum(weights)),
        labels=labels,
        best_restart=best_index,
        restarts=tuple(restarts),
    )
    _warn_about(result, options, policy)
    return result


def _warn_about(result: EMResult, options: EMOptions, policy: DegeneracyPolicy) -> None:
    if (
        policy.n_distinct_rows is not None
        and policy.n_distinct_rows < options.n_components
    ):
        warnings.warn(
            f"The data have {policy.n_distinct_rows} distinct rows, fewer than "
            f"n_components = {options.n_components}: some components duplicate "
            "others and cannot be separated. Decrease n_components.",
            DegenerateComponentWarning,
            stacklevel=4,
        )
    events = result.events
    if events:
        actions = sorted({event.action for event in events})
        counts = ", ".join(
            f"{sum(e.action == action for e in events)} {action}" for action in actions
        )
        warnings.warn(
            f"{len(events)} degenerate-component events ({counts}) across "
            f"{len(result.restarts)} initialisation(s): components collapsed, "
            "emptied or duplicated and were repaired. See degenerate_events_ "
            "(or EMResult.events); increase reg_covar or decrease n_components "
            "to avoid them.",
            DegenerateComponentWarning,
            stacklevel=4,
        )
    if not result.converged and options.max_iter > 0:
        warnings.warn(
            "Best performing initialization did not converge. Try different "
            "init parameters, or increase max_iter, tol, or check for "
            "degenerate data.",
            ConvergenceWarning,
            stacklevel=4,
        )


def fit_em(
    X,
    n_components: int = 1,
    *,
    sample_weight=None,
    random_state=None,
    initial_params: MixtureParams | None = None,
    **options,
) -> EMResult:
    """Fit a Gaussian mixture by EM and return an :class:`EMResult`.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples,)
        Data; a 1-D array is one feature. A ``dask.array.Array`` (rows in
        chunks) is fitted out of core, block by block
        (:mod:`mixtures.dask_em`); its result's ``labels`` is then lazy.
    n_components : int, default=1
    sample_weight : array-like of shape (n_samples,), optional
        Non-negative weights; integer weights fit like repeated rows.
    random_state : int, RandomState, Generator or None, default=None
    **options
        Every option of :class:`mixtures.options.EMOptions` (the one
        declaration; the signature lists them): ``covariance_type, tol,
        reg_covar, max_iter, n_init, init_params, weights_init, means_init,
        precisions_init, verbose, verbose_interval, prior,
        reg_covar_relative, acceleration, stopping, kernel``, as in
        :class:`mixtures.GaussianMixture` (scikit-learn's meanings).
    initial_params : MixtureParams, optional
        Start EM from these parameters (one restart, no initialisation).

    Returns
    -------
    EMResult

    Examples
    --------
    >>> import numpy as np
    >>> from mixtures import fit_em
    >>> x = np.r_[np.zeros(50), np.ones(50) * 5] + np.linspace(0, 1, 100)
    >>> result = fit_em(x, 2, random_state=0)
    >>> np.round(np.sort(result.params.means[:, 0]), 2)
    array([0.25, 5.75])
    """
    reject_unknown("fit_em", options, _FIT_EM_OPTIONS)
    validated = EMOptions(n_components=n_components, **options)
    from mixtures.dask_em import fit_dask, is_dask_array

    if is_dask_array(X):  # out of core: the statistics summed across blocks
        return fit_dask(
            X, sample_weight, validated, random_state, initial_params=initial_params
        )
    data = check_data(X, allow_1d=True, allow_nan=validated.missing == "em")
    return fit_validated(
        data, sample_weight, validated, random_state, initial_params=initial_params
    )


fit_em.__signature__ = fit_em_signature(  # type: ignore[attr-defined]
    list(inspect.signature(fit_em).parameters.values())[:-1]  # all but **options
)
#: The keywords fit_em passes on to EMOptions (K is its own argument).
_FIT_EM_OPTIONS = frozenset(
    spec.name for spec in dataclasses.fields(EMOptions) if spec.name != "n_components"
)
