"""Bootstrap standard errors and percentile intervals for a fitted mixture.

:func:`bootstrap` refits a fitted :class:`mixtures.GaussianMixture` on
``n_bootstrap`` resampled data sets and summarises the spread of the refitted
weights, means and covariances, as R mclust's ``MclustBootstrap`` does:

* ``kind="nonparametric"`` resamples the rows of ``X`` with replacement
  (Efron & Tibshirani 1993, ch. 6);
* ``kind="parametric"`` draws ``n`` rows from the fitted mixture itself
  (Efron & Tibshirani 1993, §6.5; McLachlan & Peel 2000, §2.16).

Every replicate starts EM at the original solution (``weights_init``,
``means_init`` and ``precisions_init`` set to the fitted values, one
initialisation), so it climbs to the nearby mode of the resampled likelihood
and its components keep the meaning of the original ones. Starting there is
not a guarantee, so each replicate is then matched to the original fit with
:func:`mixtures.align.align` (a Hungarian assignment on the squared
2-Wasserstein distances between components) before its parameters are
stored; this guards against label switching.

Standard errors are the standard deviations (``ddof=1``) of the replicates
(Efron & Tibshirani 1993, eq. 6.6; Basford, Greenway, McLachlan & Peel 1997);
intervals are percentile intervals (Efron & Tibshirani 1993, ch. 13).
Covariances are reported in full (K, D, D) form whatever the covariance type.

References
----------
Efron, B. and Tibshirani, R. J. (1993). *An Introduction to the Bootstrap*.
Chapman & Hall.

McLachlan, G. J. and Peel, D. (2000). *Finite Mixture Models*, §2.16
(standard errors by the bootstrap). Wiley.

Basford, K. E., Greenway, D. R., McLachlan, G. J. and Peel, D. (1997).
Standard errors of fitted component means of normal mixtures.
*Computational Statistics*, 12, 1-17.

Scrucca, L., Fop, M., Murphy, T. B. and Raftery, A. E. (2016). mclust 5:
clustering, classification and density estimation using Gaussian finite
mixture models (``MclustBootstrap``). *The R Journal*, 8(1), 289-317.
"""

from __future__ import annotations

import numbers
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from mixtures.align import align
from mixtures.fitting import DegenerateComponentWarning
from mixtures.params import MixtureParams

__all__ = ["KINDS", "BootstrapResult", "bootstrap"]

#: The resampling schemes :func:`bootstrap` understands.
KINDS = ("nonparametric", "parametric")

#: Warnings every replicate may raise on purpose-free resamples; they are
#: recorded in :attr:`BootstrapResult.converged` / ``degenerate`` instead.
_REPLICATE_WARNINGS = (ConvergenceWarning, DegenerateComponentWarning)

_PARAMETERS = ("weights", "means", "covariances")

#: Nesting depth of :func:`_replicate_environment` in this process.
_ENVIRONMENT_DEPTH = 0


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True)
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Bootstrap replicates of a mixture's parameters and their summaries.

    ``B`` is the number of successful replicates (``n_bootstrap - n_failed``),
    ``K`` the number of components and ``D`` the number of features.
    Component ``k`` of every replicate is matched to component ``k`` of
    :attr:`reference`.

    Attributes
    ----------
    weights : ndarray of shape (B, K)
        Mixing proportions of every replicate.
    means : ndarray of shape (B, K, D)
        Component means of every replicate.
    covariances : ndarray of shape (B, K, D, D)
        Full covariance matrices of every replicate, whatever the covariance
        type (a 'tied' fit repeats its shared matrix for every component).
    reference : MixtureParams
        The original fit, in its own covariance type; the point estimates.
    kind : {'nonparametric', 'parametric'}
        How the replicate data sets were drawn.
    alpha : float
        Intervals have nominal coverage ``1 - alpha``.
    n_bootstrap : int
        Number of replicates attempted.
    failures : tuple of str
        One ``"replicate i: ExceptionType: message"`` line per failed
        replicate (an exception, or non-finite refitted parameters); failed
        replicates are left out of every array and summary.
    converged : ndarray of shape (B,), dtype bool
        Whether EM converged within ``max_iter`` in each kept replicate.
    degenerate : ndarray of shape (B,), dtype bool
        Whether each kept replicate's refit needed the degenerate-component
        policy (``degenerate_events_`` not empty). Such replicates are kept;
        mask them out with this array if they should not count.
    feature_names : tuple of str or None
        ``feature_names_in_`` of the estimator, used by :meth:`summary`.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    reference: MixtureParams
    kind: str
    alpha: float
    n_bootstrap: int
    failures: tuple[str, ...] = ()
    converged: np.ndarray | None = None
    degenerate: np.ndarray | None = None
    feature_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("weights", "means", "covariances"):
            object.__setattr__(
                self, name, _readonly(np.asarray(getattr(self, name), np.float64))
            )
        n = self.weights.shape[0]
        for name in ("converged", "degenerate"):
            value = getattr(self, name)
            value = np.ones(n, bool) if value is None else np.asarray(value, bool)
            object.__setattr__(self, name, _readonly(value))
        object.__setattr__(self, "failures", tuple(self.failures))

    # -- counts --------------------------------------------------------------

    @property
    def n_replicates(self) -> int:
        """Number of successful replicates ``B``."""
        return self.weights.shape[0]

    @property
    def n_failed(self) -> int:
        """Number of replicates that failed and were left out."""
        return len(self.failures)

    # -- summaries -----------------------------------------------------------

    def _replicates(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in _PARAMETERS}

    @cached_property
    def estimates(self) -> dict[str, np.ndarray]:
        """Point estimates of the original fit.

        Returns
        -------
        dict
            ``"weights"`` (K,), ``"means"`` (K, D) and ``"covariances"``
            (K, D, D) of :attr:`reference`.
        """
        return {
            "weights": _readonly(self.reference.weights),
            "means": _readonly(self.reference.means),
            "covariances": _readonly(self.reference.full_covariances()),
        }

    @cached_property
    def std_errors(self) -> dict[str, np.ndarray]:
        """Bootstrap standard errors: replicate standard deviations (``ddof=1``).

        Returns
        -------
        dict
            ``"weights"`` (K,), ``"means"`` (K, D), ``"covariances"`` (K, D, D).
        """
        return {
            name: _readonly(np.std(values, axis=0, ddof=1))
            for name, values in self._replicates().items()
        }

    @cached_property
    def intervals(self) -> dict[str, np.ndarray]:
        """Percentile intervals at levels ``alpha / 2`` and ``1 - alpha / 2``.

        Quantiles are interpolated linearly between order statistics
        (``numpy.quantile``'s default, R's type 7 as in mclust).

        Returns
        -------
        dict
            ``"weights"`` (2, K), ``"means"`` (2, K, D) and ``"covariances"``
            (2, K, D, D); index 0 is the lower and index 1 the upper limit.
        """
        levels = [self.alpha / 2.0, 1.0 - self.alpha / 2.0]
        return {
            name: _readonly(np.quantile(values, levels, axis=0))
            for name, values in self._replicates().items()
        }

    def summary(self) -> pd.DataFrame:
        """One row per parameter entry: estimate, standard error and interval.

        Covariance rows cover the upper triangle (``i <= j``) of each
        component's matrix only, since the matrices are symmetric.

        Returns
        -------
        pandas.DataFrame
            Columns ``parameter`` ('weights', 'means' or 'covariances'),
            ``component`` (int), ``index`` (str: '' for a weight, the feature
            for a mean, ``"i,j"`` for a covariance entry; feature names are
            used when the estimator was fitted on named columns),
            ``estimate``, ``std_error``, ``lower`` and ``upper``.
        """
        n_components, n_features = self.reference.means.shape
        names = (
            list(self.feature_names)
            if self.feature_names is not None
            else [str(j) for j in range(n_features)]
        )
        rows_i, rows_j = np.triu_indices(n_features)
        keys = {
            "weights": ((), [""]),
            "means": ((np.arange(n_features),), names),
            "covariances": (
                (rows_i, rows_j),
                [f"{names[i]},{names[j]}" for i, j in zip(rows_i, rows_j, strict=True)],
            ),
        }
        columns: dict[str, list] = {
            "parameter": [],
            "component": [],
            "index": [],
            "estimate": [],
            "std_error": [],
            "lower": [],
            "upper": [],
        }
        for name in _PARAMETERS:
            entries, labels = keys[name]
            lower, upper = self.intervals[name]
            values = {
                "estimate": self.estimates[name],
                "std_error": self.std_errors[name],
                "lower": lower,
                "upper": upper,
            }
            for k in range(n_components):
                columns["parameter"] += [name] * len(labels)
                columns["component"] += [k] * len(labels)
                columns["index"] += labels
                for column, array in values.items():
                    columns[column] += np.atleast_1d(array[k][entries]).tolist()
        return pd.DataFrame(columns)

    def __repr__(self) -> str:
        n_components, n_features = self.reference.means.shape
        return (
            f"BootstrapResult(kind={self.kind!r}, n_replicates={self.n_replicates}, "
            f"n_failed={self.n_failed}, n_components={n_components}, "
            f"n_features={n_features}, alpha={self.alpha})"
        )


# -- validation ----------------------------------------------------------------


def _check_options(n_bootstrap, kind, alpha, random_state) -> np.random.SeedSequence:
    if kind not in KINDS:
        raise ValueError(
            f"kind must be one of {', '.join(map(repr, KINDS))}; got {kind!r}. "
            "Use 'nonparametric' to resample the rows of X or 'parametric' to "
            "draw from the fitted mixture."
        )
    if (
        isinstance(n_bootstrap, bool)
        or not isinstance(n_bootstrap, numbers.Integral)
        or n_bootstrap < 2
    ):
        raise ValueError(
            f"n_bootstrap must be an integer >= 2; got {n_bootstrap!r}. Standard "
            "errors need at least two replicates; a few hundred are usual "
            "(mclust uses 999)."
        )
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, numbers.Real)
        or not 0.0 < float(alpha) < 1.0
    ):
        raise ValueError(
            f"alpha must be a number strictly between 0 and 1; got {alpha!r}. "
            "Use for example alpha=0.05 for 95% intervals."
        )
    if isinstance(random_state, np.random.SeedSequence):
        return random_state
    if random_state is None:
        return np.random.SeedSequence()
    if (
        isinstance(random_state, numbers.Integral)
        and not isinstance(random_state, bool)
        and int(random_state) >= 0
    ):
        return np.random.SeedSequence(int(random_state))
    raise ValueError(
        "random_state must be None, a non-negative int or a "
        f"numpy.random.SeedSequence; got {random_state!r}. Pass an int to make "
        "the replicates reproducible."
    )


def _reference_params(estimator) -> MixtureParams:
    """The fitted parameters of ``estimator`` as a :class:`MixtureParams`."""
    params = getattr(estimator, "_params", None)
    if callable(params):
        params = params()
        if isinstance(params, MixtureParams):
            return params
    return MixtureParams(
        estimator.weights_,
        estimator.means_,
        estimator.covariances_,
        estimator.covariance_type,
        getattr(estimator, "precisions_cholesky_", None),
    )


# -- one replicate -------------------------------------------------------------


def _draw(
    X: np.ndarray, reference: MixtureParams, kind: str, rng: np.random.Generator
) -> np.ndarray:
    n_samples = X.shape[0]
    if kind == "nonparametric":
        return X[rng.integers(0, n_samples, size=n_samples)]
    sample, _ = reference.sample(n_samples, random_state=rng)
    sample = sample.astype(X.dtype, copy=False)
    sample[np.isnan(X)] = np.nan  # the data's own missing cells, if any
    return sample


@contextmanager
def _replicate_environment() -> Iterator[None]:
    """Silence the expected replicate warnings and hold BLAS to one thread.

    Replicates are small, independent refits: one BLAS thread each avoids
    oversubscribing the cores when they run in parallel (and the engine's own
    chunk threads already hold BLAS to one thread), and keeps the rounding the
    same whatever ``n_jobs`` is.
    """
    global _ENVIRONMENT_DEPTH
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        for category in _REPLICATE_WARNINGS:
            warnings.simplefilter("ignore", category)
        _ENVIRONMENT_DEPTH += 1
        try:
            yield
        finally:
            _ENVIRONMENT_DEPTH -= 1


def _fit_quietly(estimator, X_star: np.ndarray):
    # ``bootstrap`` sets the environment up around the whole run, which covers
    # replicates run in its own process (sequentially or on worker threads).
    # Worker processes set it up per replicate; the warning filters and the
    # BLAS limit are process-wide, so this is only done on a main thread.
    if _ENVIRONMENT_DEPTH or threading.current_thread() is not threading.main_thread():
        return estimator.fit(X_star)
    with _replicate_environment():
        return estimator.fit(X_star)


def _replicate(
    template,
    X: np.ndarray,
    reference: MixtureParams,
    kind: str,
    seed: np.random.SeedSequence,
    index: int,
):
    """Refit one resample; parameters aligned to ``reference``, or an error line."""
    try:
        draw_seed, fit_seed = seed.spawn(2)
        X_star = _draw(X, reference, kind, np.random.default_rng(draw_seed))
        estimator = clone(template).set_params(
            random_state=int(fit_seed.generate_state(1)[0])
        )
        fitted = _fit_quietly(estimator, X_star)
        params = _reference_params(fitted)
        arrays = (params.weights, params.means, params.full_covariances())
        if not all(np.all(np.isfinite(a)) for a in arrays):
            raise FloatingPointError("refitted parameters are not finite")
        aligned = align(params, reference)
    except Exception as error:  # any failure excludes the replicate
        return f"replicate {index}: {type(error).__name__}: {error}"
    return (
        aligned.weights,
        aligned.means,
        aligned.full_covariances(),
        bool(getattr(fitted, "converged_", True)),
        bool(getattr(fitted, "degenerate_events_", ())),
    )


# -- entry point ---------------------------------------------------------------


def bootstrap(
    estimator,
    X,
    *,
    n_bootstrap: int = 199,
    kind: str = "nonparametric",
    alpha: float = 0.05,
    random_state=None,
    n_jobs: int | None = None,
    progress: bool = False,
) -> BootstrapResult:
    """Bootstrap the weights, means and covariances of a fitted mixture.

    Each of ``n_bootstrap`` replicates draws a data set of ``n_samples`` rows,
    refits a :func:`sklearn.base.clone` of ``estimator`` started at the
    original solution (``weights_init=weights_``, ``means_init=means_``,
    ``precisions_init=precisions_``, ``n_init=1``), and aligns the refit's
    components to the original ones (:func:`mixtures.align.align`) against
    label switching. See the module docstring for the method and references
    (Efron & Tibshirani 1993; McLachlan & Peel 2000, §2.16; Basford et al.
    1997).

    Parameters
    ----------
    estimator : mixtures.GaussianMixture
        A fitted mixture; it is not modified. Any estimator with the same
        fitted attributes and ``*_init`` parameters (for example
        ``sklearn.mixture.GaussianMixture``) also works.
    X : array-like of shape (n_samples, n_features)
        The data ``estimator`` was fitted on. For ``kind="parametric"`` only
        its number of rows (and dtype) is used.
    n_bootstrap : int, default=199
        Number of replicates, at least 2.
    kind : {'nonparametric', 'parametric'}, default='nonparametric'
        'nonparametric' resamples the rows of ``X`` with replacement;
        'parametric' draws ``n_samples`` rows from the fitted mixture.
    alpha : float, default=0.05
        Intervals are percentile intervals with levels ``alpha / 2`` and
        ``1 - alpha / 2``; must lie in (0, 1).
    random_state : None, int or numpy.random.SeedSequence, default=None
        Root of the seeds: ``SeedSequence(random_state)`` is spawned into one
        child per replicate, so replicate ``i`` is the same whatever
        ``n_jobs`` is. None draws fresh entropy. A ``SeedSequence`` passed in
        is spawned from directly, so passing the same object twice gives new,
        independent replicates (NumPy's spawning semantics); pass an int to
        repeat a run exactly.
    n_jobs : int or None, default=None
        Replicates run in parallel through :class:`joblib.Parallel`; None means
        1 unless a :func:`joblib.parallel_config` context says otherwise, -1
        means all cores.
    progress : bool, default=False
        Show a tqdm progress bar over the replicates.

    Returns
    -------
    BootstrapResult
        Replicate arrays ``weights`` (B, K), ``means`` (B, K, D) and
        ``covariances`` (B, K, D, D), with ``std_errors``, ``intervals``,
        ``n_failed`` and :meth:`BootstrapResult.summary`.

    Raises
    ------
    ValueError
        For an unfitted estimator (``sklearn.exceptions.NotFittedError``),
        ``X`` with a different number of features, ``n_bootstrap < 2``, an
        unknown ``kind``, ``alpha`` outside (0, 1) or an invalid
        ``random_state``.
    RuntimeError
        When fewer than two replicates succeed.

    Notes
    -----
    A replicate fails when its refit raises or returns non-finite parameters;
    it is left out and counted in ``n_failed``. Replicates whose EM did not
    converge or needed the degenerate-component policy are kept and flagged in
    ``converged`` and ``degenerate``; their ``ConvergenceWarning`` and
    ``DegenerateComponentWarning`` are silenced.

    Replicate ``i`` depends only on the ``i``-th child seed, and every refit
    runs with BLAS held to one thread (:mod:`threadpoolctl`), so results are
    reproducible for a given ``random_state`` and identical whatever
    ``n_jobs`` or the joblib backend is. Parallelism comes from running
    replicates side by side, which suits the many small refits a bootstrap
    makes.

    Examples
    --------
    >>> import numpy as np
    >>> from mixtures import GaussianMixture
    >>> from mixtures.bootstrapping import bootstrap
    >>> X = np.random.default_rng(0).normal(size=(200, 2))
    >>> gm = GaussianMixture(random_state=0).fit(X)
    >>> result = bootstrap(gm, X, n_bootstrap=50, random_state=0)
    >>> result.std_errors["means"].shape
    (1, 2)
    """
    root = _check_options(n_bootstrap, kind, alpha, random_state)
    check_is_fitted(estimator)
    # With missing="em", rows keep their holes: a nonparametric replicate
    # resamples them, a parametric one blanks the same cells of its draw.
    X = validate_data(
        estimator,
        X,
        dtype=[np.float64, np.float32],
        ensure_min_samples=2,
        reset=False,
        ensure_all_finite=(
            "allow-nan" if getattr(estimator, "missing", "error") == "em" else True
        ),
    )
    reference = _reference_params(estimator)
    template = clone(estimator).set_params(
        weights_init=np.array(estimator.weights_, copy=True),
        means_init=np.array(estimator.means_, copy=True),
        precisions_init=np.array(estimator.precisions_, copy=True),
        n_init=1,
        warm_start=False,
        verbose=0,
    )
    seeds = root.spawn(int(n_bootstrap))

    tasks = (
        delayed(_replicate)(template, X, reference, kind, seed, i)
        for i, seed in enumerate(seeds)
    )
    with _replicate_environment():
        outputs = Parallel(n_jobs=n_jobs, return_as="generator")(tasks)
        if progress:
            from tqdm.auto import tqdm

            outputs = tqdm(outputs, total=int(n_bootstrap), desc="bootstrap")
        outputs = list(outputs)

    failures = tuple(out for out in outputs if isinstance(out, str))
    kept = [out for out in outputs if not isinstance(out, str)]
    if len(kept) < 2:
        detail = f" First failure: {failures[0]}" if failures else ""
        raise RuntimeError(
            f"only {len(kept)} of {n_bootstrap} bootstrap replicates succeeded; "
            "at least two are needed for standard errors. Check that the "
            "estimator refits on X, or reduce n_components." + detail
        )
    weights, means, covariances, converged, degenerate = zip(*kept, strict=True)
    names = getattr(estimator, "feature_names_in_", None)
    return BootstrapResult(
        weights=np.stack(weights),
        means=np.stack(means),
        covariances=np.stack(covariances),
        reference=reference,
        kind=kind,
        alpha=float(alpha),
        n_bootstrap=int(n_bootstrap),
        failures=failures,
        converged=np.array(converged, bool),
        degenerate=np.array(degenerate, bool),
        feature_names=None if names is None else tuple(str(n) for n in names),
    )
