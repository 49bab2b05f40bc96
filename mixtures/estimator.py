"""``GaussianMixture``: a scikit-learn estimator around :mod:`mixtures.fitting`.

The class validates input, calls :func:`mixtures.fitting.fit_validated` and
stores the result as fitted attributes; all mathematics lives in
:mod:`mixtures.em`. It is a drop-in replacement for
``sklearn.mixture.GaussianMixture`` (same constructor, attributes and
methods), and adds sample weights, the traces of every restart and a
policy for degenerate components instead of an exception.
"""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from mixtures import em
from mixtures._arrays import array_kind, on_accelerator, to_numpy
from mixtures._parallel import DEVICE_KERNEL, host_kernel
from mixtures.covariance import Diag
from mixtures.dask_em import fit_dask, is_dask_array
from mixtures.diagnostics import bic
from mixtures.fitting import as_random_state, fit_validated, missing_hint
from mixtures.missing import (
    conditional_expectations,
    find_patterns,
    missing_e_step,
    missing_score_and_label,
)
from mixtures.options import (
    EMOptions,
    estimator_parameters,
    reject_unknown,
    sklearn_constraints,
)
from mixtures.params import MixtureParams

try:  # scikit-learn's parameter validation (a private module of it)
    #: Declared as scikit-learn declares its own estimators' parameters, so
    #: an invalid one raises its ``InvalidParameterError`` (a ValueError and
    #: a TypeError) with its wording; the fit's own checks follow. Derived
    #: from the one declaration of the options (:mod:`mixtures.options`).
    _PARAMETER_CONSTRAINTS: dict = sklearn_constraints()
except ImportError:  # pragma: no cover - a future scikit-learn moved it
    _PARAMETER_CONSTRAINTS = {}

#: The fitted arrays that follow the input's array-API namespace.
_ARRAY_ATTRIBUTES = (
    "weights_",
    "means_",
    "covariances_",
    "precisions_",
    "precisions_cholesky_",
)

__all__ = ["GaussianMixture"]


def _as_dtype(array, dtype: np.dtype):
    """``array`` (any array-API library) cast to ``dtype``'s float, on its device."""
    from mixtures.array_api_pass import namespace_of

    xp = namespace_of(array)[0]
    target = getattr(xp, np.dtype(dtype).name)
    return array if array.dtype == target else xp.astype(array, target)


class GaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by expectation maximisation.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    covariance_type : str, default='full'
        scikit-learn's 'full' (one general covariance per component), 'tied'
        (one shared by all), 'diag' (one diagonal per component),
        'spherical' (one variance per component); or any of the parsimonious
        models of Celeux & Govaert (1995) under R mclust's names: 'EII',
        'VII', 'EEI', 'VEI', 'EVI', 'VVI', 'EEE', 'VEE', 'EVE', 'VVE',
        'EEV', 'VEV', 'EVV', 'VVV', and for one feature 'E' and 'V' (see
        :mod:`mixtures.covariance`). 'VII', 'VVI', 'EEE' and 'VVV' are the
        same models as 'spherical', 'diag', 'tied' and 'full'.
    tol : float, default=1e-3
        EM stops when the mean log-likelihood changes by less than ``tol``.
    reg_covar : float, default=1e-6
        Non-negative value added to the diagonal of every covariance.
    reg_covar_relative : bool, default=False
        If True, ``reg_covar`` is in units of each feature's variance (feature
        d gets ``reg_covar * var(X[:, d])``), so the fit does not depend on
        the data's units: data scaled by any factor give the same labels.
    max_iter : int, default=100
        Maximum number of EM iterations per initialisation.
    acceleration : {None, 'squarem'}, default=None
        'squarem' extrapolates every two EM steps (Varadhan & Roland 2008),
        falling back to the plain EM step whenever the extrapolated point
        would lower the objective, so the log-likelihood never decreases;
        it reaches the same optimum in fewer iterations on slowly converging
        (overlapping) mixtures. See :mod:`mixtures.accelerate`.
    stopping : {'change', 'aitken'}, default='change'
        'change' (scikit-learn's rule): stop when the mean log-likelihood
        changes by less than ``tol``. 'aitken': stop when Aitken's estimate
        of the limit of the mean log-likelihood is within ``tol`` of it.
    missing : {'error', 'em'}, default='error'
        What to do with missing values (NaN) in ``X``. 'error' refuses them,
        as scikit-learn does. 'em' maximises the likelihood of each row's
        observed values (Ghahramani & Jordan 1994; :mod:`mixtures.missing`):
        the E-step scores a row by its marginal density over its observed
        coordinates and the M-step uses the expected statistics, so every
        covariance model works unchanged. ``score_samples``, ``score``,
        ``predict`` and ``predict_proba`` then accept NaN the same way, and
        :meth:`impute` fills the holes. A row with every value missing is
        refused (it carries no information).
    kernel : {'auto', 'numba', 'numpy', 'array-api'}, default='auto'
        The implementation of the pass over the data (E-step and the
        M-step's statistics) in ``fit`` and in every method that scores
        data. 'numba': the compiled fused kernel; 'numpy': the NumPy
        fallback; both agree to 1e-10 in float64. 'array-api': ``fit``'s
        passes run on the input's own array library and device (PyTorch,
        CuPy, ...; :mod:`mixtures.array_api_pass`), the M-step and the
        starts on the host; equal to 'numba' to 1e-10 in float64. 'auto':
        'array-api' for a PyTorch or CuPy array on a GPU under
        ``sklearn.config_context(array_api_dispatch=True)``, else the
        ``GMMLAB_KERNEL`` environment variable if set, else 'numba'.
    n_init : int, default=1
        Number of initialisations; the best (highest final lower bound) is
        kept, and all are recorded in ``init_lower_bounds_``/``init_traces_``.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data', \
'hc'}, default='kmeans'
        How initial responsibilities are drawn (see
        :func:`mixtures.initialization.initial_responsibilities`); 'hc' is
        mclust's model-based hierarchical clustering (Fraley 1998), which
        is deterministic.
    weights_init : array-like of shape (n_components,), default=None
    means_init : array-like of shape (n_components, n_features), default=None
    precisions_init : array-like, default=None
        Initial precisions (inverse covariances), shaped as ``covariances_``.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation and :meth:`sample`.
    warm_start : bool, default=False
        Start the next ``fit`` from the current solution (one initialisation).
    verbose : int, default=0
        1 or more logs initialisations and every ``verbose_interval``-th
        iteration through the ``mixtures`` logger (to stdout if unconfigured).
    verbose_interval : int, default=10
    prior : None, 'default', dict or ConjugatePrior, default=None
        None fits by maximum likelihood. Otherwise MAP-EM with the conjugate
        prior of Fraley & Raftery (2007) (:mod:`mixtures.prior`): 'default'
        uses its data-dependent defaults, a dict overrides some of them.
        The prior keeps covariances away from singularity, so spurious
        maxima on a few (tied) points cannot occur.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        (K, D, D) 'full', (D, D) 'tied', (K, D) 'diag', (K,) 'spherical'
        (and their mclust names VVV, EEE, VVI, VII); (K, D, D) for the other
        ten multivariate models; (1, 1) for 'E' and (K,) for 'V'.
    precisions_ : ndarray
        Inverse covariances, shaped as ``covariances_``.
    precisions_cholesky_ : ndarray
        Upper Cholesky factors of ``precisions_``.
    converged_ : bool
        Whether the best initialisation converged.
    n_iter_ : int
        EM iterations of the best initialisation.
    lower_bound_ : float
        Mean per-sample log-likelihood scored in the best initialisation's last
        iteration (of the parameters entering it, as in scikit-learn).
    lower_bounds_ : ndarray of shape (n_iter_,)
        Entry ``k`` scores the parameters entering iteration ``k + 1``.
    init_lower_bounds_ : ndarray of shape (n_init,)
        Final lower bound of every initialisation.
    init_traces_ : list of ndarray
        Whole lower-bound trace of every initialisation.
    degenerate_events_ : list of DegenerateEvent
        Every action of the degenerate-component policy, all initialisations
        (see :mod:`mixtures.em`); a :class:`DegenerateComponentWarning` is
        issued when it is not empty.
    best_init_ : int
        Index of the kept initialisation.
    params_ : MixtureParams
        All of the above as one parameter object (what every engine
        returns); :meth:`from_result` builds a fitted estimator from one.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when ``X`` has string feature names.

    Examples
    --------
    >>> import numpy as np
    >>> from mixtures import GaussianMixture
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]])
    >>> gm = GaussianMixture(n_components=2, random_state=0).fit(X)
    >>> gm.means_
    array([[10.,  2.],
           [ 1.,  2.]])
    >>> gm.predict([[0, 0], [12, 3]])
    array([1, 0])
    """

    def __init__(self, n_components=1, **params):
        # The signature (below the class) is derived from EMOptions, the one
        # declaration of every option: scikit-learn reads it for
        # get_params/set_params/clone, and unknown names are refused here as
        # Python refuses an unknown keyword.
        reject_unknown("GaussianMixture.__init__", params, _PARAMETER_NAMES)
        self.n_components = n_components
        for parameter in _SIGNATURE.parameters.values():
            if parameter.name not in ("self", "n_components"):
                setattr(
                    self, parameter.name, params.get(parameter.name, parameter.default)
                )

    _parameter_constraints: dict = _PARAMETER_CONSTRAINTS

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # NaN is a missing value only when asked for; refused otherwise.
        tags.input_tags.allow_nan = self.missing == "em"
        return tags

    # -- fitting -------------------------------------------------------------

    def fit(self, X, y=None, sample_weight=None):
        """Fit the mixture by EM.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; integer weights fit like repeated rows.

        Returns
        -------
        self : GaussianMixture
        """
        self.fit_predict(X, y, sample_weight=sample_weight)
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit the mixture and return the most probable component of each sample.

        Equal to ``fit(X).predict(X)``.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        # Validation and fitting work on a copy of the state: on any error
        # an already fitted estimator is left exactly as it was.
        saved_state = dict(self.__dict__)
        try:
            return self._fit(X, sample_weight)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved_state)
            raise

    def _fit(self, X, sample_weight):
        if self._parameter_constraints:
            self._validate_params()
        if not isinstance(self.warm_start, bool | np.bool_):
            raise ValueError(f"warm_start must be a bool; got {self.warm_start!r}.")
        # Every constructor parameter but the two the fit itself handles;
        # arrays of another array-API library are computed on as NumPy.
        params = self.get_params(deep=False)
        options = EMOptions(
            **{
                k: to_numpy(v)
                for k, v in params.items()
                if k not in ("random_state", "warm_start")
            }
        )
        warm = self.warm_start and hasattr(self, "converged_")
        if is_dask_array(X):
            return self._fit_dask(X, sample_weight, options, warm)
        kind = array_kind(X)
        device_X = None
        if kind.namespace is not None and (
            options.kernel == DEVICE_KERNEL
            or (self.kernel == "auto" and on_accelerator(X))
        ):
            # The passes run on the input's device; the rest on the host.
            device_X = X
            options = dataclasses.replace(options, kernel=DEVICE_KERNEL)
        X, sample_weight = to_numpy(X), to_numpy(sample_weight)
        X = self._validated(X, reset=not warm, ensure_min_samples=2)
        if device_X is not None:  # the dtype validation chose, on the device
            device_X = _as_dtype(device_X, X.dtype)
        result = fit_validated(
            X,
            sample_weight,
            options,
            self.random_state,
            initial_params=self.params_ if warm else None,
            initial_lower_bound=self.lower_bound_ if warm else -np.inf,
            device_X=device_X,
        )
        self._store(result, X.dtype)
        for name in _ARRAY_ATTRIBUTES:
            setattr(self, name, kind(getattr(self, name)))
        return kind(result.labels)

    def _fit_dask(self, X, sample_weight, options, warm: bool):
        """Fit a Dask array block by block (:mod:`mixtures.dask_em`); lazy labels."""
        if warm:
            raise ValueError(
                "warm_start is not supported on a Dask array; set warm_start=False."
            )
        result = fit_dask(X, sample_weight, options, self.random_state)
        self._store(result, X.dtype if X.dtype == np.float32 else np.float64)
        self.n_features_in_ = int(X.shape[1]) if X.ndim == 2 else 1
        return result.labels

    def _blockwise(self, X, method, columns: int | None = None):
        """``method`` on every row block of the Dask array ``X``, lazily.

        Returns a Dask array of shape (n_samples,) or, with ``columns``,
        (n_samples, columns); nothing is computed or gathered here.
        """
        check_is_fitted(self)
        X = X.rechunk({1: -1}) if X.ndim == 2 else X[:, None]
        if columns is None:
            return X.map_blocks(method, drop_axis=1, dtype=np.float64)
        return X.map_blocks(method, chunks=(X.chunks[0], (columns,)), dtype=np.float64)

    # -- prediction ----------------------------------------------------------

    def _store(self, result, dtype) -> None:
        """Set every fitted attribute from an EMResult or one EMRun."""
        runs = getattr(result, "restarts", None) or (result,)
        best = getattr(result, "best_restart", 0)
        arrays = result.params.astype_arrays(np.dtype(dtype))
        self.weights_ = arrays["weights"]
        self.means_ = arrays["means"]
        self.covariances_ = arrays["covariances"]
        self.precisions_ = arrays["precisions"]
        self.precisions_cholesky_ = arrays["precisions_cholesky"]
        self.converged_ = bool(result.converged)
        self.n_iter_ = int(result.n_iter)
        self.lower_bound_ = float(result.lower_bound)
        self.lower_bounds_ = np.array(result.lower_bounds, copy=True)
        self.init_lower_bounds_ = np.array([run.lower_bound for run in runs])
        self.init_traces_ = [np.array(run.lower_bounds, copy=True) for run in runs]
        self.degenerate_events_ = [event for run in runs for event in run.events]
        self.best_init_ = int(best)

    @classmethod
    def from_result(cls, result, *, feature_names_in=None, **params) -> GaussianMixture:
        """A fitted estimator holding ``result``'s parameters, without refitting.

        Parameters
        ----------
        result : EMResult or EMRun
            :func:`mixtures.fit_em`'s result, or one run of it (a model
            search's cell, :attr:`mixtures.select.SearchResult.fits` holds
            these estimators).
        feature_names_in : array-like of str, optional
            The data's column names, as ``fit`` would record them.
        **params
            Constructor parameters (``covariance_type`` defaults to the
            result's), recorded as the estimator's settings.

        Returns
        -------
        GaussianMixture
            Fitted: ``predict``, ``score``, ``bic`` ... work at once, and
            ``params_`` is ``result.params``.
        """
        params.setdefault("covariance_type", result.params.covariance_type)
        fitted = cls(result.params.n_components, **params)
        fitted._store(result, np.float64)
        fitted.n_features_in_ = result.params.n_features
        if feature_names_in is not None:
            fitted.feature_names_in_ = np.asarray(feature_names_in, dtype=object)
        return fitted

    @property
    def params_(self) -> MixtureParams:
        """The fitted parameters as one :class:`mixtures.MixtureParams`."""
        check_is_fitted(self)
        return MixtureParams(
            to_numpy(self.weights_),
            to_numpy(self.means_),
            to_numpy(self.covariances_),
            self.covariance_type,
            to_numpy(self.precisions_cholesky_),
        )

    def _validated(self, X, *, reset: bool, **checks) -> np.ndarray:
        """``X`` as a float array; NaN allowed only with ``missing='em'``."""
        allow_nan = self.missing == "em"
        with missing_hint(allow_nan, "use GaussianMixture(missing='em')"):
            return validate_data(
                self,
                X,
                dtype=[np.float64, np.float32],
                reset=reset,
                ensure_all_finite="allow-nan" if allow_nan else True,
                **checks,
            )

    def _validate_predict(self, X) -> np.ndarray:
        check_is_fitted(self)
        return self._validated(to_numpy(X), reset=False)

    def _patterns(self, X: np.ndarray):
        """The missing-value patterns of ``X``, or None when nothing is missing."""
        if self.missing != "em" or not np.isnan(X).any():
            return None
        names = getattr(self, "feature_names_in_", None)
        return find_patterns(X, feature_names=names, allow_empty_feature=True)

    def score_samples(self, X):
        """Log-density of each sample, ``log p(x)``.

        With ``missing='em'``, a row with missing values is scored by the
        marginal density of its observed values.

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
            (a lazy Dask array for a Dask array ``X``).
        """
        if is_dask_array(X):
            return self._blockwise(X, self.score_samples)
        kind = array_kind(X)
        return kind(self._score_samples(self._validate_predict(X)))

    def _score_samples(self, X: np.ndarray) -> np.ndarray:
        kernel = host_kernel(self.kernel)
        patterns = self._patterns(X)
        if patterns is None:
            return em.score_samples(X, self.params_, kernel=kernel)
        log_prob, _ = missing_score_and_label(X, patterns, self.params_, kernel)
        return log_prob.astype(X.dtype, copy=False)

    def score(self, X, y=None):
        """Mean log-likelihood of ``X`` under the model (a float)."""
        if is_dask_array(X):
            return float(self.score_samples(X).mean().compute())
        return float(np.mean(self._score_samples(self._validate_predict(X))))

    def predict(self, X):
        """Most probable component of each sample, shape (n_samples,)."""
        if is_dask_array(X):
            return self._blockwise(X, self.predict).astype(np.int64)
        kind = array_kind(X)
        X = self._validate_predict(X)
        kernel = host_kernel(self.kernel)
        patterns = self._patterns(X)
        if patterns is None:
            return kind(em.predict_labels(X, self.params_, kernel=kernel))
        return kind(missing_score_and_label(X, patterns, self.params_, kernel)[1])

    def predict_proba(self, X):
        """Posterior probability of each component, shape (n_samples, n_components)."""
        if is_dask_array(X):
            return self._blockwise(X, self.predict_proba, self.n_components)
        kind = array_kind(X)
        X = self._validate_predict(X)
        patterns = self._patterns(X)
        if patterns is None:
            _, log_resp = em.e_step(X, self.params_)
        else:
            _, log_resp = missing_e_step(X, patterns, self.params_)
        return kind(np.exp(log_resp))

    def impute(self, X, n_draws=0, random_state=None):
        """Fill the missing values (NaN) of ``X`` from the fitted mixture.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows with missing values; each needs one observed value.
        n_draws : int, default=0
            0 returns the conditional expectation of every missing value
            given the row's observed ones, ``E[x_m | x_o]``, a mixture over
            components of the Gaussian conditional means. ``n_draws > 0``
            returns that many draws from the conditional distribution
            (multiple imputation: the spread between draws is the
            uncertainty of the fill).
        random_state : int, Generator or None, default=None
            Seeds the draws.

        Returns
        -------
        X_filled : ndarray of shape (n_samples, n_features), or of shape
            (n_draws, n_samples, n_features) when ``n_draws > 0``. Observed
            values are returned unchanged.
        """
        check_is_fitted(self)
        kind = array_kind(X)
        if isinstance(n_draws, bool) or not isinstance(n_draws, int | np.integer):
            raise ValueError(f"n_draws must be an integer >= 0; got {n_draws!r}.")
        if n_draws < 0:
            raise ValueError(f"n_draws must be an integer >= 0; got {n_draws}.")
        X = validate_data(
            self,
            to_numpy(X),
            dtype=[np.float64, np.float32],
            reset=False,
            ensure_all_finite="allow-nan",
        ).astype(np.float64)
        names = getattr(self, "feature_names_in_", None)
        patterns = find_patterns(X, feature_names=names, allow_empty_feature=True)
        filled = conditional_expectations(
            X, patterns, self.params_, int(n_draws), np.random.default_rng(random_state)
        )
        return kind(filled)

    def sample(self, n_samples=1):
        """Draw samples from the fitted mixture.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
            Component of each sample, sorted.
        """
        check_is_fitted(self)
        if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer):
            raise ValueError(f"n_samples must be an integer >= 1; got {n_samples!r}.")
        if n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples} . The sampling "
                "requires at least one sample: n_samples must be an integer >= 1."
            )
        rng = as_random_state(self.random_state)
        params = self.params_
        counts = rng.multinomial(n_samples, params.weights)
        full = params.full_covariances()
        # scikit-learn draws diagonal models feature by feature; the same
        # draws from the same seed need the same calls.
        if not isinstance(params.model, Diag):
            X = np.vstack(
                [
                    rng.multivariate_normal(mean, cov, int(count))
                    for mean, cov, count in zip(params.means, full, counts, strict=True)
                ]
            )
        else:
            std = np.sqrt(np.diagonal(full, axis1=1, axis2=2))
            X = np.vstack(
                [
                    mean + rng.standard_normal(size=(count, params.n_features)) * s
                    for mean, s, count in zip(params.means, std, counts, strict=True)
                ]
            )
        labels = np.repeat(np.arange(params.n_components), counts)
        kind = array_kind(self.means_)
        return kind(X), kind(labels)

    # -- model selection -----------------------------------------------------

    def _n_parameters(self) -> int:
        return self.params_.n_parameters()

    def bic(self, X):
        """Bayesian information criterion on ``X``; lower is better."""
        if not is_dask_array(X):
            X = self._validate_predict(X)
        return bic(self.score(X) * X.shape[0], self._n_parameters(), X.shape[0])

    def aic(self, X):
        """Akaike information criterion on ``X``; lower is better."""
        if not is_dask_array(X):
            X = self._validate_predict(X)
        return float(-2 * self.score(X) * X.shape[0] + 2 * self._n_parameters())


_SIGNATURE = inspect.Signature(
    [
        inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        *estimator_parameters(),
    ]
)
_PARAMETER_NAMES = frozenset(_SIGNATURE.parameters) - {"self", "n_components"}
GaussianMixture.__init__.__signature__ = _SIGNATURE  # type: ignore[attr-defined]
