"""A uniform noise component: mclust's ``initialization = list(noise = ...)``.

The mixture ``p(x) = sum_k tau_k N(x | mu_k, Sigma_k) + tau_0 / V`` is
``K`` Gaussians plus a uniform density over the data's hyper-volume ``V``
(:func:`hypervolume`, mclust's ``hypvol``) for the points of no cluster
(Banfield & Raftery 1993). EM has ``K + 1`` columns of responsibilities, the
last the noise's: the E-step is a log-sum-exp over ``log tau_k + log
phi_k(x)`` and ``log tau_0 - log V``; the M-step updates the Gaussians from
the first ``K`` columns (:func:`mixtures.em.m_step`, whose weights, summing
to one, are scaled by ``1 - tau_0``) and sets ``tau_0`` to the mean of the
last. ``V`` is fixed: BIC counts one parameter more, the noise proportion.

EM needs a first guess of which points are noise. :func:`nn_clean` gives one
by Byers & Raftery's (1998) nearest-neighbour clutter removal; a boolean mask
of the user's is the alternative. As in mclust, the Gaussians are started on
the rows not flagged (here: a fit by :func:`mixtures.fit_em` from the
hierarchical ``hc`` start, run to convergence on those rows), ``tau_0`` is the
fraction flagged, and EM then runs on every row.

:func:`fit_noise` fits one model and K; its Gaussian part is classified by
:func:`mixtures.diagnostics.classify` on the rows it explains (noise
probability < 1/2). :func:`mixtures.noise_search.search_noise` searches a
grid of models x K, and :class:`mixtures.noise_estimator.NoiseMixture` is the
scikit-learn estimator.

References
----------
Banfield, J. D. and Raftery, A. E. (1993). Model-based Gaussian and
non-Gaussian clustering. Biometrics 49:803-821.
Byers, S. and Raftery, A. E. (1998). Nearest-neighbor clutter removal for
estimating features in spatial point processes. JASA 93:577-584.
Fraley, C. and Raftery, A. E. (2002). Model-based clustering, discriminant
analysis, and density estimation. JASA 97:611-631.
Scrucca, L., Fop, M., Murphy, T. B. and Raftery, A. E. (2016). mclust 5.
The R Journal 8(1):289-317.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import gammaln, logsumexp

from mixtures._parallel import resolve_kernel
from mixtures.covariance import get_covariance_model
from mixtures.degenerate import DegeneracyPolicy, finalise_components
from mixtures.diagnostics import Verdict, bic, classify
from mixtures.em import m_step
from mixtures.fitting import _feature_variance, check_data, fit_em
from mixtures.params import MixtureParams
from mixtures.passes import estimate_log_gaussian_prob, sufficient_statistics

__all__ = [
    "NNCleanResult",
    "NoiseFit",
    "fit_noise",
    "hypervolume",
    "log_hypervolume",
    "nn_clean",
]


def _as_data(X) -> np.ndarray:
    """X as float64 (n_samples, n_features); a 1-D array is one feature."""
    return check_data(X, allow_1d=True).astype(np.float64, copy=False)


# ---------------------------------------------------------------------------
# The data's hyper-volume


def log_hypervolume(X) -> float:
    """``log V`` of the data (n_samples, n_features) or (n_samples,), a float.

    mclust's ``hypvol``, logged: the smaller of the log-volumes of the data's
    bounding box (``sum_j log range(x_j)``) and of the box of its
    principal-component scores; one feature: the log of its range. Raises
    ValueError when the data span no volume.
    """
    X = _as_data(X)
    box = _sum_log_ranges(X)
    if X.shape[1] > 1:
        centred = X - X.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        scores = centred @ vt.T
        pcs = _sum_log_ranges(scores) if vt.shape[0] == X.shape[1] else -np.inf
        box = min(box, pcs)
    if not np.isfinite(box):
        raise ValueError(
            "the data span no volume (a constant feature, or points on a "
            "lower-dimensional subspace): a uniform noise component over them "
            "is undefined; pass volume= explicitly."
        )
    return float(box)


def _sum_log_ranges(X: np.ndarray) -> float:
    with np.errstate(divide="ignore"):
        return float(np.sum(np.log(np.ptp(X, axis=0))))


def hypervolume(X) -> float:
    """The data's volume ``V``, mclust's ``hypvol``: ``exp(log_hypervolume(X))``."""
    with np.errstate(over="ignore"):
        return float(np.exp(log_hypervolume(X)))


# ---------------------------------------------------------------------------
# Byers & Raftery's nearest-neighbour clutter removal


@dataclass(frozen=True, eq=False)
class NNCleanResult:
    """The outcome of :func:`nn_clean`.

    Attributes
    ----------
    noise : ndarray of shape (n_samples,), bool
        Rows whose clutter posterior (``probability``, (n_samples,)) > 1/2.
    distances : ndarray of shape (n_samples,)
        Each row's distance to its k-th neighbour (scaled units if ``scale``).
    feature_intensity, clutter_intensity : float
        The Poisson intensities ``lambda_1 > lambda_2`` (points per unit
        volume of the distances' units); ``feature_proportion`` the first's.
    """

    noise: np.ndarray
    probability: np.ndarray
    distances: np.ndarray
    feature_intensity: float
    clutter_intensity: float
    feature_proportion: float
    k: int
    n_iter: int
    converged: bool


def nn_clean(
    X, k: int = 5, *, scale: bool = False, tol: float = 1e-10, max_iter: int = 1000
) -> NNCleanResult:
    """Initial noise by nearest-neighbour clutter removal (Byers & Raftery 1998).

    For a Poisson process of intensity ``lambda`` in D dimensions,
    ``lambda * alpha_D * d_k**D`` follows Gamma(k, 1), where ``d_k`` is a
    point's distance to its k-th nearest neighbour and ``alpha_D =
    pi**(D/2) / Gamma(D/2 + 1)`` the volume of the unit ball. The ``d_k**D``
    are fitted by a two-component mixture of such laws (feature and clutter,
    intensities ``lambda_1 > lambda_2``) by EM, with the closed-form update
    ``lambda_j = k sum_i z_ij / (alpha_D sum_i z_ij d_i**D)``, started as
    prabclus's ``NNclean`` (clutter: ``d_k > min + range / 3``). Noise: a
    clutter posterior above 1/2 (the proportions included, which
    ``NNclean``'s final classification leaves out). No edge correction.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples,)
    k : int, default=5
        Which neighbour (mclust's examples use ``NNclean(data, k = 5)``).
    scale : bool, default=False
        False: distances on the data as given, as Byers & Raftery (spatial
        coordinates) and prabclus's ``NNclean``, which mclust users call, do.
        True: on columns standardised to unit variance (units do not matter).
    tol, max_iter : float, int
        EM stops when the mean log-likelihood changes by less than ``tol``.

    Returns
    -------
    NNCleanResult
    """
    X = _as_data(X)
    n_samples, n_features = X.shape
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be an integer >= 1; got {k!r}.")
    if k >= n_samples:
        raise ValueError(f"k = {k} needs more than {k} rows; got {n_samples}.")
    if scale:
        spread = X.std(axis=0)
        X = (X - X.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    distances = cKDTree(X).query(X, k=k + 1)[0][:, k]
    log_alpha = 0.5 * n_features * math.log(math.pi) - gammaln(0.5 * n_features + 1)
    with np.errstate(divide="ignore"):
        log_y = n_features * np.log(distances)
    # Work on y / c, c the median of the positive y: no overflow for large D.
    positive = log_y[np.isfinite(log_y)]
    log_c = float(np.median(positive)) if positive.size else 0.0
    u = np.exp(log_y - log_c)
    far = distances > distances.min() + np.ptp(distances) / 3
    rates, proportion, posterior, n_iter, converged = _gamma_mixture_em(
        u, far, k, tol, max_iter
    )
    feature, clutter = np.exp(np.log(rates) - log_c - log_alpha).tolist()
    return NNCleanResult(
        posterior > 0.5,
        posterior,
        distances,
        feature,
        clutter,
        proportion,
        int(k),
        n_iter,
        converged,
    )


def _gamma_mixture_em(
    u: np.ndarray, far: np.ndarray, k: int, tol: float, max_iter: int
) -> tuple[np.ndarray, float, np.ndarray, int, bool]:
    """EM for ``p Gamma(k, rate b_1) + (1 - p) Gamma(k, rate b_2)`` on ``u``.

    Returns rates ``b_1 >= b_2``, ``p``, clutter posteriors, n_iter, converged;
    terms both share (``(k - 1) log u``...) are left out of the likelihood.
    """
    if far.all() or not far.any():  # one group empty: split at the median
        far = u > np.median(u)
    starts = [u[~far].mean(), u[far].mean() if far.any() else u.mean()]
    tiny = np.finfo(np.float64).tiny
    rates = k / np.maximum(starts, tiny)
    proportions = np.array([0.5, 0.5])
    previous, converged, n_iter = -np.inf, False, 0
    clutter = np.zeros(u.size)
    while n_iter < max_iter:
        n_iter += 1
        with np.errstate(divide="ignore"):
            joint = np.log(proportions) + k * np.log(rates) - np.outer(u, rates)
        log_norm = logsumexp(joint, axis=1)
        resp = np.exp(joint - log_norm[:, np.newaxis])
        masses = resp.sum(axis=0)
        proportions = masses / u.size
        rates = k * masses / np.maximum(resp.T @ u, tiny)
        rates = np.where(masses > 0, rates, rates.max())
        current = float(log_norm.mean())
        clutter = resp[:, 1]
        if abs(current - previous) < tol:
            converged = True
            break
        previous = current
    if rates[0] < rates[1]:
        rates, proportions, clutter = rates[::-1], proportions[::-1], 1.0 - clutter
    return rates, float(proportions[0]), clutter, n_iter, converged


# ---------------------------------------------------------------------------
# The fitted mixture with noise


@dataclass(frozen=True, eq=False)
class NoiseFit:
    """A Gaussian mixture with a uniform noise component, fitted by EM.

    Attributes
    ----------
    params : MixtureParams
        The K Gaussians, ``weights`` conditional on not being noise (summing
        to one); :attr:`weights` are theirs in the whole mixture.
    noise_weight : float
        ``tau_0``, the proportion of the noise component.
    log_volume : float
        ``log V``; the noise density is ``1 / V`` everywhere.
    log_likelihood : float
        ``sum_n log(sum_k tau_k phi_k(x_n) + tau_0 / V)``, final parameters.
    n_parameters : int
        ``params.n_parameters()`` plus one, the noise proportion.
    responsibilities : ndarray of shape (n_samples, n_components + 1)
        Posterior membership of every row; the last column is the noise.
    log_likelihoods : ndarray of shape (n_iter,)
        The log-likelihood of the parameters entering each iteration.
    n_iter, converged : int, bool
    initial_noise : ndarray of shape (n_samples,), bool
        The rows the fit started as noise.
    reg_covar : float or ndarray of shape (n_features,)
        The absolute regularisation added to every covariance; ``in_force``
        the degenerate-component repairs of the last M-step.
    status, reason : str
        The verdict of :func:`mixtures.diagnostics.classify` on the Gaussian
        part, over the rows it explains (see the module docstring).
    """

    params: MixtureParams
    noise_weight: float
    log_volume: float
    log_likelihood: float
    n_parameters: int
    responsibilities: np.ndarray = field(repr=False)
    log_likelihoods: np.ndarray = field(repr=False)
    n_iter: int
    converged: bool
    initial_noise: np.ndarray = field(repr=False)
    reg_covar: float | np.ndarray = field(repr=False)
    in_force: tuple[str, ...] = ()
    status: str = "ok"
    reason: str = ""

    @property
    def n_components(self) -> int:
        """K, the number of Gaussians (the noise not counted)."""
        return self.params.n_components

    @property
    def weights(self) -> np.ndarray:
        """The Gaussians' proportions ``tau_k`` (K,), summing to ``1 - tau_0``."""
        return (1.0 - self.noise_weight) * self.params.weights

    @property
    def bic(self) -> float:
        """``-2 log_likelihood + n_parameters log n`` (lower is better)."""
        n_samples = self.responsibilities.shape[0]
        return bic(self.log_likelihood, self.n_parameters, n_samples)

    @property
    def noise_probability(self) -> np.ndarray:
        """Posterior probability that each row is noise, shape (n_samples,)."""
        return self.responsibilities[:, -1]

    @property
    def labels(self) -> np.ndarray:
        """Classification as mclust's: 0 noise, ``1..K`` the Gaussians, (n,)."""
        return _labels(self.responsibilities)

    def e_step(self, X) -> tuple[np.ndarray, np.ndarray]:
        """``log p(x)`` (n,) of rows X and their responsibilities (n, K + 1)."""
        return _posterior(
            _log_joint(_as_data(X), self.params, self.noise_weight, self.log_volume)
        )


def _labels(resp: np.ndarray) -> np.ndarray:
    """Noise (last column) -> 0, Gaussian k (column k - 1) -> k."""
    best = np.argmax(resp, axis=1)
    return np.where(best == resp.shape[1] - 1, 0, best + 1)


def _posterior(log_joint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``log p(x_n)`` (n,) and the responsibilities from the joint log-densities."""
    log_prob = logsumexp(log_joint, axis=1)
    return log_prob, np.exp(log_joint - log_prob[:, np.newaxis])


def _log_joint(
    X: np.ndarray, params: MixtureParams, noise_weight: float, log_volume: float
) -> np.ndarray:
    """``log tau_k + log phi_k(x)`` and ``log tau_0 - log V``, (n, K + 1)."""
    n_components = params.n_components
    joint = np.empty((X.shape[0], n_components + 1))
    with np.errstate(divide="ignore"):
        joint[:, :n_components] = estimate_log_gaussian_prob(X, params)
        joint[:, :n_components] += np.log(params.weights) + np.log1p(-noise_weight)
        joint[:, n_components] = math.log(noise_weight) if noise_weight > 0 else -np.inf
    joint[:, n_components] -= log_volume
    return joint


# ---------------------------------------------------------------------------
# Fitting


#: fit_noise's EM settings and their defaults, which search_noise passes on.
_FIT_DEFAULTS: dict[str, object] = {"tol": 1e-8, "max_iter": 2000, "reg_covar": 1e-6}
_FIT_DEFAULTS |= {"reg_covar_relative": True, "init_params": "hc", "random_state": 0}


def _check_volume(X: np.ndarray, volume) -> float:
    """``log V`` from ``volume`` (None: :func:`log_hypervolume` of X)."""
    if volume is None:
        return log_hypervolume(X)
    if isinstance(volume, bool) or not isinstance(volume, int | float | np.number):
        raise ValueError(f"volume must be a positive number; got {volume!r}.")
    if not (np.isfinite(volume) and volume > 0):
        raise ValueError(f"volume must be positive and finite; got {volume!r}.")
    return math.log(float(volume))


def _check_noise(X: np.ndarray, noise) -> np.ndarray:
    """The initial noise mask (n,): the user's, checked, or :func:`nn_clean`'s."""
    if noise is None:
        return nn_clean(X, min(5, X.shape[0] - 1)).noise
    mask = np.asarray(noise)
    if mask.dtype != np.bool_:
        raise ValueError(
            f"noise must be a boolean mask of the rows; got dtype {mask.dtype}."
        )
    if mask.shape != (X.shape[0],):
        raise ValueError(
            f"noise must have shape ({X.shape[0]},), one flag per row; got "
            f"{mask.shape}."
        )
    if mask.all() or not mask.any():
        raise ValueError(
            f"noise flags {'every' if mask.all() else 'no'} row; it must flag "
            "some rows (the initial noise), not all (the Gaussians need rows)."
        )
    return mask


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"n_components must be an integer >= 1; got {k!r}.")
    return int(k)


def _start(
    X: np.ndarray, mask: np.ndarray, n_components: int, options: dict
) -> tuple[MixtureParams, float]:
    """Gaussians fitted on the rows not in ``mask``, and ``tau_0`` = its mean.

    When ``mask`` flags nothing (only :func:`nn_clean` can do that), the
    Gaussians are fitted on every row and ``tau_0`` starts at ``1 / n``.
    """
    rows = X[~mask] if mask.any() else X
    if rows.shape[0] <= n_components:
        raise ValueError(
            f"only {rows.shape[0]} rows are not noise, too few for "
            f"{n_components} components."
        )
    with warnings.catch_warnings():
        # The start's own troubles do not matter: EM on every row follows,
        # and the final fit is classified.
        warnings.simplefilter("ignore")
        start = fit_em(rows, n_components, **options)
    tau0 = float(mask.mean()) if mask.any() else 1.0 / X.shape[0]
    return start.params, tau0


def _noise_em(
    X: np.ndarray,
    params: MixtureParams,
    tau0: float,
    log_volume: float,
    reg_covar: float | np.ndarray,
    tol: float,
    max_iter: int,
):
    """EM with the noise column; returns params, tau0, trace, n_iter, converged, events.

    Each iteration scores the parameters entering it (the trace), then
    updates the Gaussians from the first K columns of the responsibilities
    and ``tau_0`` from the last. No component is reseeded (that could lower
    the likelihood); a covariance that is not positive definite is floored
    by the engine's policy (:func:`mixtures.degenerate.finalise_components`).
    """
    kernel = resolve_kernel(None)
    model = params.model
    n_samples, n_components = X.shape[0], params.n_components
    ones = np.ones(n_samples)
    policy = DegeneracyPolicy.for_data(X, ones, reg_covar, n_components=n_components)
    trace: list[float] = []
    previous, converged, n_iter = -np.inf, False, 0
    events: list = []
    while n_iter < max_iter:
        n_iter += 1
        log_prob, resp = _posterior(_log_joint(X, params, tau0, log_volume))
        trace.append(float(log_prob.sum()))
        stats = sufficient_statistics(
            X, ones, resp[:, :n_components], params.means, model
        )
        weights, means, covariances = m_step(
            stats, model, reg_covar, None, params.covariances, kernel=kernel
        )
        params, events = finalise_components(
            weights,
            means,
            covariances,
            stats.weight_sums,
            X,
            lambda: np.arange(n_samples),
            model,
            policy,
            restart=0,
            iteration=n_iter,
            reseeds_left=0,
            owned=True,
            kernel=kernel,
        )
        tau0 = float(resp[:, n_components].mean())
        current = trace[-1] / n_samples
        if abs(current - previous) < tol:
            converged = True
            break
        previous = current
    return params, tau0, np.asarray(trace), n_iter, converged, events


def fit_noise(
    X,
    n_components: int,
    covariance_type: str = "VVV",
    *,
    noise=None,
    volume: float | None = None,
    tol: float = 1e-8,
    max_iter: int = 2000,
    reg_covar: float = 1e-6,
    reg_covar_relative: bool = True,
    init_params: str = "hc",
    random_state=0,
) -> NoiseFit:
    """Fit K Gaussians plus a uniform noise component by EM.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples,)
    n_components : int
        K >= 1, the number of Gaussians (the noise not counted).
    covariance_type : str, default='VVV'
        Any of mclust's (or scikit-learn's) model names.
    noise : array-like of shape (n_samples,), bool, optional
        The rows to start as noise (some, not all); None: :func:`nn_clean`
        with k = 5 on the data as given.
    volume : float, optional
        ``V``; None: :func:`hypervolume` of X.
    tol : float, default=1e-8
        EM stops when the mean log-likelihood changes by less than this.
    max_iter : int, default=2000
        EM iterations (the start's own fit has as many).
    reg_covar : float, default=1e-6
        Added to every variance; with ``reg_covar_relative`` (the default)
        in units of each feature's variance, so the fit does not depend on
        the units.
    reg_covar_relative : bool, default=True
    init_params : str, default='hc'
        How the start's Gaussians are initialised on the rows not flagged
        (any of :func:`mixtures.fit_em`'s methods; 'hc' is mclust's).
    random_state : int, RandomState or None, default=0

    Returns
    -------
    NoiseFit
    """
    X = _as_data(X)
    given = (tol, max_iter, reg_covar, reg_covar_relative, init_params, random_state)
    settings = dict(zip(_FIT_DEFAULTS, given, strict=True))
    mask, log_volume = _check_noise(X, noise), _check_volume(X, volume)
    return _fit(
        X, _check_k(n_components), covariance_type, mask, log_volume, **settings
    )


def _fit(
    X: np.ndarray,
    n_components: int,
    covariance_type: str,
    mask: np.ndarray,
    log_volume: float,
    **options,
) -> NoiseFit:
    """:func:`fit_noise` on checked data, mask and ``log V``."""
    model = get_covariance_model(covariance_type)
    model.shape(n_components, X.shape[1])  # a univariate model on 2-D data raises
    params, tau0 = _start(
        X, mask, n_components, {**options, "covariance_type": model.name}
    )
    reg_covar: float | np.ndarray = options["reg_covar"]
    if options["reg_covar_relative"]:  # per feature, as fit_em has it
        reg_covar = reg_covar * _feature_variance(X, np.ones(X.shape[0]))
    params, tau0, trace, n_iter, converged, events = _noise_em(
        X, params, tau0, log_volume, reg_covar, options["tol"], options["max_iter"]
    )
    log_prob, resp = _posterior(_log_joint(X, params, tau0, log_volume))
    fit = NoiseFit(
        params=params,
        noise_weight=tau0,
        log_volume=log_volume,
        log_likelihood=float(log_prob.sum()),
        n_parameters=params.n_parameters() + 1,
        responsibilities=resp,
        log_likelihoods=trace,
        n_iter=n_iter,
        converged=converged,
        initial_noise=mask,
        reg_covar=reg_covar,
        in_force=tuple(
            f"{event.action} of component {event.component} ({event.reason})"
            for event in events
        ),
    )
    verdict = _verdict(fit, X)
    return replace(fit, status=verdict.status, reason=verdict.reason)


def _verdict(fit: NoiseFit, X: np.ndarray) -> Verdict:
    """:func:`classify` on the Gaussian part, over the rows it explains."""
    rows = fit.noise_probability < 0.5
    if np.count_nonzero(rows) < X.shape[1] + 1:
        return Verdict(
            "degenerate", "fewer than D + 1 rows are explained by the Gaussians", {}
        )
    return classify(
        fit.params,
        X[rows],
        reg_covar=fit.reg_covar,
        covariance_type=fit.params.covariance_type,
        converged=fit.converged,
        n_iter=fit.n_iter,
        in_force=fit.in_force,
        log_likelihood=fit.log_likelihood,
    )
