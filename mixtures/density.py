"""Density estimation by a Gaussian mixture, as mclust's ``densityMclust``.

:func:`fit_density` runs the model search of :func:`mixtures.select.search`
(every covariance model x K, BIC by default; flagged fits are never chosen)
and returns the chosen fit as a :class:`MixtureDensity`: the mixture as a
density estimate (Fraley & Raftery 2002, section 6; Scrucca et al. 2016,
section 4), with

* its log-density and density at any point (``logpdf``, ``pdf``);
* the cumulative distribution function and quantile function of one feature
  (``cdf``, ``ppf``): a mixture of normal CDFs with the components' marginal
  means and variances, the exact CDF for one-dimensional data;
* the mixture of any subset of the features (``marginal``);
* highest density regions (Hyndman 1996): the HDR of probability ``p`` is
  ``{x : f(x) >= f_p}``, the smallest region holding probability ``p``,
  where the level ``f_p`` is the ``1 - p`` quantile of ``f(Y)`` for ``Y``
  drawn from ``f``. :meth:`MixtureDensity.hdr_levels` estimates it from
  seeded draws of the fitted mixture itself (mclust's ``hdrlevels`` takes
  the quantile over the *data* instead); in 1-D,
  :meth:`MixtureDensity.hdr_intervals` gives the region as intervals;
* for one-dimensional data, :func:`density_diagnostic`: the fitted CDF at
  the sorted data against the empirical one (the probability plot of
  mclust's ``densityMclust.diagnostic``), the fitted quantiles at the
  plotting positions (its Q-Q plot), and the Kolmogorov-Smirnov distance.

BIC is in scikit-learn's sign (``-2 loglik + p log n``, lower is better),
minus mclust's, as everywhere in gmmlab.

References
----------
Hyndman, R. J. (1996). Computing and graphing highest density regions.
The American Statistician 50:120-126.
Fraley, C. and Raftery, A. E. (2002). Model-based clustering, discriminant
analysis, and density estimation. JASA 97:611-631.
Scrucca, L., Fop, M., Murphy, T. B. and Raftery, A. E. (2016). mclust 5:
clustering, classification and density estimation using Gaussian finite
mixture models. The R Journal 8(1):289-317.
Loader, C. (1999). Local Regression and Likelihood. Springer, pp. 87-90
(the diagnostic plots).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri

from mixtures import em
from mixtures.params import MixtureParams
from mixtures.select import SearchResult, search

__all__ = [
    "DEFAULT_PROBABILITIES",
    "DensityDiagnostic",
    "MixtureDensity",
    "density_diagnostic",
    "fit_density",
]

#: The HDR probabilities drawn and reported by default.
DEFAULT_PROBABILITIES = (0.25, 0.5, 0.75, 0.95)
#: Fewest draws :meth:`MixtureDensity.hdr_levels` accepts: below this the
#: 5 % quantile of the density rests on a few dozen draws.
MIN_DRAWS = 1000


@dataclass(frozen=True, eq=False)
class MixtureDensity:
    """A Gaussian mixture used as a density estimate.

    Build one with :func:`fit_density` (which fills every field), or
    directly from parameters: ``MixtureDensity(params)``.

    Parameters
    ----------
    params : MixtureParams
        The mixture: K components in D features.
    search : SearchResult or None, default=None
        The model search the mixture was chosen by.
    model : str or None, default=None
        The chosen covariance model (mclust's name); None means
        ``params.covariance_type``.
    log_likelihood : float, default=nan
        Log-likelihood of the data the mixture was fitted to.
    bic : float, default=nan
        Its BIC, ``-2 loglik + p log n`` (lower is better; minus mclust's).
    criterion : str, default='bic'
        The criterion the search chose by.
    feature_names : tuple of str or None, default=None
        The data's column names, when it had string names.
    """

    params: MixtureParams
    search: SearchResult | None = field(default=None, repr=False)
    model: str | None = None
    log_likelihood: float = float("nan")
    bic: float = float("nan")
    criterion: str = "bic"
    feature_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.params, MixtureParams):
            raise ValueError(
                f"params must be a MixtureParams; got {type(self.params).__name__}."
            )
        if self.model is None:
            object.__setattr__(self, "model", self.params.covariance_type)

    @property
    def n_components(self) -> int:
        """Number of components, K."""
        return self.params.n_components

    @property
    def n_features(self) -> int:
        """Number of features, D."""
        return self.params.n_features

    # -- density ------------------------------------------------------------

    def logpdf(self, X) -> np.ndarray:
        """Log-density ``log f(x)`` of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Or (n_samples,) when the mixture has one feature.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return em.score_samples(self._rows(X), self.params)

    def pdf(self, X) -> np.ndarray:
        """Density ``f(x)`` of each row, (n_samples,); see :meth:`logpdf`."""
        return np.exp(self.logpdf(X))

    def _rows(self, X) -> np.ndarray:
        """``X`` as finite float64 rows of this mixture's dimension, (n, D)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1 and self.n_features == 1:
            X = X[:, np.newaxis]
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(
                f"X must have shape (n_samples, {self.n_features})"
                + (" or (n_samples,)" if self.n_features == 1 else "")
                + f"; got {X.shape}."
            )
        if not np.all(np.isfinite(X)):
            raise ValueError("X contains NaN or infinity.")
        return X

    # -- one feature: CDF and quantiles --------------------------------------

    def _check_feature(self, feature) -> int:
        if (
            isinstance(feature, bool)
            or not isinstance(feature, int | np.integer)
            or not 0 <= feature < self.n_features
        ):
            raise ValueError(
                f"feature must be an integer in [0, {self.n_features - 1}]; "
                f"got {feature!r}."
            )
        return int(feature)

    def marginal_normals(self, feature: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Means and standard deviations of the components along ``feature``.

        Returns
        -------
        means, sds : ndarray of shape (n_components,)
        """
        feature = self._check_feature(feature)
        variances = self.params.full_covariances()[:, feature, feature]
        return self.params.means[:, feature].copy(), np.sqrt(variances)

    def cdf(self, x, feature: int = 0) -> np.ndarray:
        """Marginal CDF of ``feature``: ``sum_k w_k Phi((x - mu_k) / sigma_k)``.

        The exact CDF for one-dimensional data (mclust's ``cdfMclust``); for
        more features, the CDF of the marginal distribution of one feature,
        itself a mixture of normals with the components' means and
        variances along that feature.

        Parameters
        ----------
        x : array-like of any shape
            Values of the feature.
        feature : int, default=0
            Which feature, 0-based.

        Returns
        -------
        ndarray of the shape of ``x``
        """
        means, sds = self.marginal_normals(feature)
        x = np.asarray(x, dtype=np.float64)
        if np.isnan(x).any():
            raise ValueError("x contains NaN.")
        z = (x[..., np.newaxis] - means) / sds
        return np.clip(ndtr(z) @ self.params.weights, 0.0, 1.0)

    def ppf(self, q, feature: int = 0) -> np.ndarray:
        """Quantile function of ``feature``'s marginal: the inverse of :meth:`cdf`.

        Bisection between the smallest and largest component quantile, which
        bracket the mixture's (mclust's ``quantileMclust`` does the same with
        ``uniroot``); ``-inf`` at 0 and ``inf`` at 1.

        Parameters
        ----------
        q : array-like of any shape
            Probabilities in [0, 1].
        feature : int, default=0

        Returns
        -------
        ndarray of the shape of ``q``
        """
        means, sds = self.marginal_normals(feature)
        q = np.asarray(q, dtype=np.float64)
        if not np.all((q >= 0) & (q <= 1)):
            raise ValueError("q must hold probabilities in [0, 1].")
        inner = (q > 0) & (q < 1)
        component = means + sds * ndtri(np.where(inner, q, 0.5))[..., np.newaxis]
        low, high = component.min(axis=-1), component.max(axis=-1)
        for _ in range(200):
            middle = 0.5 * (low + high)
            below = self.cdf(middle, feature) < q
            low = np.where(below, middle, low)
            high = np.where(below, high, middle)
            if np.all(high - low <= 1e-12 * np.maximum(1.0, np.abs(middle))):
                break
        out = 0.5 * (low + high)
        out = np.where(q == 0, -np.inf, out)
        return np.where(q == 1, np.inf, out)

    def marginal(self, features: int | Sequence[int]) -> MixtureParams:
        """The mixture of the chosen features: same weights, sub-means, sub-covariances.

        Parameters
        ----------
        features : int or sequence of int
            Distinct 0-based feature indices, in the order wanted.

        Returns
        -------
        MixtureParams
            'full' covariances of shape (K, F, F), F = len(features).
        """
        given = [features] if isinstance(features, int | np.integer) else features
        chosen = [self._check_feature(f) for f in given]
        if not chosen or len(set(chosen)) != len(chosen):
            raise ValueError(f"features must be distinct and not empty; got {chosen}.")
        full = self.params.full_covariances()[:, chosen][:, :, chosen]
        return MixtureParams(
            self.params.weights, self.params.means[:, chosen], full, "full"
        )

    # -- highest density regions --------------------------------------------

    def sample(self, n_samples: int, random_state=None) -> np.ndarray:
        """Draws from the mixture, (n_samples, n_features).

        Labels first, then the standard normal noise, from one generator
        (``numpy.random.default_rng(random_state)``); each component's rows
        are transformed by its Cholesky factor, in O(n D) memory.
        """
        n_samples = _check_count(n_samples, "n_samples", 1)
        rng = np.random.default_rng(random_state)
        labels = rng.choice(self.n_components, size=n_samples, p=self.params.weights)
        noise = rng.standard_normal((n_samples, self.n_features))
        factors = np.linalg.cholesky(self.params.full_covariances())
        draws = np.empty_like(noise)
        for k in range(self.n_components):
            rows = labels == k
            draws[rows] = self.params.means[k] + noise[rows] @ factors[k].T
        return draws

    def hdr_levels(
        self,
        probabilities: float | Iterable[float] = DEFAULT_PROBABILITIES,
        n_draws: int = 100_000,
        random_state=0,
    ) -> np.ndarray:
        """Density levels of the highest density regions (Hyndman 1996).

        The HDR of probability ``p`` is ``{x : f(x) >= f_p}``; ``f_p`` is the
        ``1 - p`` quantile of ``f(Y)``, estimated from ``n_draws`` seeded
        draws ``Y`` of this mixture (numpy's default, linear interpolation).
        The estimate's own error is about ``sqrt(p (1 - p) / n_draws)`` in
        probability (0.0016 at p = 0.5 with the default).

        Parameters
        ----------
        probabilities : float or iterable of float, default=(0.25, 0.5, 0.75, 0.95)
            Each strictly between 0 and 1.
        n_draws : int, default=100_000
            At least :data:`MIN_DRAWS`.
        random_state : None, int or numpy.random.Generator, default=0

        Returns
        -------
        ndarray of shape (n_probabilities,)
            One level per probability, in the given order: larger ``p``,
            lower level.
        """
        p = _check_probabilities(probabilities)
        n_draws = _check_count(n_draws, "n_draws", MIN_DRAWS)
        density = self.pdf(self.sample(n_draws, random_state))
        return np.quantile(density, 1.0 - p)

    def in_hdr(
        self, X, probability: float, n_draws: int = 100_000, random_state=0
    ) -> np.ndarray:
        """Whether each row lies in the HDR of ``probability``, (n_samples,) bool.

        The level is :meth:`hdr_levels` with the same draws settings.
        """
        level = self.hdr_levels([probability], n_draws, random_state)[0]
        return self.pdf(X) >= level

    def hdr_intervals(
        self, probability: float, n_draws: int = 100_000, random_state=0
    ) -> list[tuple[float, float]]:
        """The HDR of ``probability`` of a one-feature mixture, as intervals.

        The disjoint intervals where ``f(x) >= f_p`` (a multimodal density
        may give several), each end found by Brent's method between the
        points of a fine grid where ``f - f_p`` changes sign.

        Returns
        -------
        list of (low, high)
            In increasing order.
        """
        if self.n_features != 1:
            raise ValueError(
                "hdr_intervals needs a one-feature mixture; take marginal() of "
                f"one feature first (this one has {self.n_features})."
            )
        level = self.hdr_levels([probability], n_draws, random_state)[0]
        means, sds = self.marginal_normals(0)
        grid = np.linspace((means - 9 * sds).min(), (means + 9 * sds).max(), 20_001)
        above = self.pdf(grid) >= level
        if above[0] or above[-1]:  # a level below f at 9 sd from every mean
            raise ValueError(
                f"the HDR of {probability} reaches 9 sd beyond the components; "
                "use a smaller probability."
            )
        changes = np.flatnonzero(np.diff(above.astype(np.int8)))

        def gap(x: float) -> float:
            return float(self.pdf(np.array([x]))[0] - level)

        ends = [brentq(gap, grid[i], grid[i + 1], xtol=1e-12) for i in changes]
        # The grid reaches 9 sd beyond every component: f < f_p at both ends.
        return [
            (float(a), float(b)) for a, b in zip(ends[::2], ends[1::2], strict=True)
        ]


def _check_count(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}.")
    return int(value)


def _check_probabilities(probabilities) -> np.ndarray:
    """The probabilities as a 1-D float array, each strictly in (0, 1)."""
    try:
        p = np.atleast_1d(np.asarray(probabilities, dtype=np.float64))
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"probabilities must be numbers in (0, 1); got {probabilities!r}."
        ) from error
    if p.ndim != 1 or p.size == 0:
        raise ValueError(
            f"probabilities must be a number or a flat list; got {probabilities!r}."
        )
    if not np.all((p > 0) & (p < 1)):  # NaN fails too
        raise ValueError(
            f"probabilities must lie strictly between 0 and 1; got {p.tolist()}."
        )
    return p


def fit_density(
    X,
    models: Iterable[str] | str | None = None,
    n_components: Iterable[int] | int = range(1, 10),
    *,
    criterion: str = "bic",
    random_state: int | None = 0,
    n_jobs: int | None = None,
    progress: bool = False,
    **options,
) -> MixtureDensity:
    """Density estimate by the best mixture of a model search (``densityMclust``).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples,)
        Complete data (no NaN).
    models : iterable of str, str or None, default=None
        Covariance models (mclust's names); None: all 14, or E and V in 1-D.
    n_components : iterable of int or int, default=range(1, 10)
    criterion : {'bic', 'icl'}, default='bic'
        How the search's ``ok`` cells are ranked (lower is better);
        mclust's density estimation uses BIC.
    random_state : int or None, default=0
        Seeds the search's k-means and random starts.
    n_jobs : int or None, default=None
        Processes for the search's cells (joblib).
    progress : bool, default=False
        A progress bar over the cells.
    **options
        Any other keyword of :func:`mixtures.select.search` (``prior``,
        ``tol``, ``reg_covar``...); ``missing`` is refused.

    Returns
    -------
    MixtureDensity
        The chosen ``ok`` fit, with its model, log-likelihood, BIC and the
        whole search. ValueError when no cell is ``ok``.

    Examples
    --------
    >>> from mixtures.data import load_faithful
    >>> density = fit_density(load_faithful(), n_components=range(1, 4))
    >>> density.model, density.n_components, round(density.bic, 1)
    ('EEE', 3, 2314.3)
    """
    if criterion not in ("bic", "icl"):
        raise ValueError(f"criterion must be 'bic' or 'icl'; got {criterion!r}.")
    if options.get("missing", "error") != "error":
        raise ValueError("fit_density needs complete data: missing must be 'error'.")
    result = search(
        X,
        models,
        n_components,
        random_state=random_state,
        n_jobs=n_jobs,
        progress=progress,
        **options,
    )
    fitted = result.best(criterion)  # raises when no cell is ok
    row = result.top(1, criterion).iloc[0]
    names = getattr(fitted, "feature_names_in_", None)
    return MixtureDensity(
        params=fitted.params_,
        search=result,
        model=str(row["model"]),
        log_likelihood=float(row["log_likelihood"]),
        bic=float(row["bic"]),
        criterion=criterion,
        feature_names=None if names is None else tuple(str(n) for n in names),
    )


@dataclass(frozen=True, eq=False)
class DensityDiagnostic:
    """Goodness of fit of a one-dimensional density to its data.

    Attributes
    ----------
    x : ndarray of shape (n,)
        The data, sorted.
    fitted_cdf : ndarray of shape (n,)
        The fitted CDF at ``x``; plotted against :attr:`empirical_cdf` it is
        the probability (P-P) plot.
    empirical_cdf : ndarray of shape (n,)
        ``(i - 1/2) / n`` at the i-th smallest value (tied values keep their
        ranks): the plotting positions of the uniform distribution, R's
        ``ppoints(n)`` for n > 10.
    fitted_quantiles : ndarray of shape (n,)
        The fitted quantile function at the plotting positions; plotted
        against :attr:`x` it is the Q-Q plot.
    ks_statistic : float
        ``sup_x |F_n(x) - F(x)|``, the Kolmogorov-Smirnov distance between
        the empirical CDF ``F_n`` (right-continuous, ties included) and the
        fitted ``F``. No p-value: the parameters were fitted to the same
        data, so the KS null distribution does not apply.
    """

    x: np.ndarray
    fitted_cdf: np.ndarray
    empirical_cdf: np.ndarray
    fitted_quantiles: np.ndarray
    ks_statistic: float


def density_diagnostic(density: MixtureDensity, x=None) -> DensityDiagnostic:
    """The probability-plot and Q-Q data of a one-dimensional density.

    mclust's ``densityMclust.diagnostic`` (types 'cdf' and 'qq'), as data;
    :func:`experiments.report.figures.density.probability_plot_figure`
    draws them.

    Parameters
    ----------
    density : MixtureDensity
        A mixture of one feature.
    x : array-like of shape (n,) or (n, 1), optional
        The data; by default those of ``density.search``.

    Returns
    -------
    DensityDiagnostic
    """
    if density.n_features != 1:
        raise ValueError(
            "the diagnostic is for one-dimensional densities; this one has "
            f"{density.n_features} features."
        )
    if x is None:
        if density.search is None:
            raise ValueError("pass x: this density has no search (and no data).")
        x = density.search.X
    values = np.sort(density._rows(x)[:, 0])
    n = values.shape[0]
    if n < 2:
        raise ValueError(f"the diagnostic needs at least 2 values; got {n}.")
    fitted = density.cdf(values)
    positions = (np.arange(1, n + 1) - 0.5) / n
    # F_n jumps at each distinct value: compare F there with F_n's values
    # just before (count below / n) and at (count up to / n) the value.
    below = np.searchsorted(values, values, side="left") / n
    upto = np.searchsorted(values, values, side="right") / n
    distance = max(np.max(np.abs(upto - fitted)), np.max(np.abs(fitted - below)))
    return DensityDiagnostic(
        x=values,
        fitted_cdf=fitted,
        empirical_cdf=positions,
        fitted_quantiles=density.ppf(positions),
        ks_statistic=float(distance),
    )
