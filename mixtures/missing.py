"""EM over the observed coordinates: data with missing values (NaN).

Maximum likelihood of a Gaussian mixture from incomplete rows (Ghahramani &
Jordan 1994; Little & Rubin, *Statistical Analysis with Missing Data*, 3rd
ed. 2019, ch. 11 and 17), under missingness at random:

* the E-step scores every row by its marginal density over its observed
  coordinates, ``log sum_k w_k N(x_o | mu_o, Sigma_oo)``;
* the M-step's statistics are the *expected* complete-data ones: for a row
  with missing coordinates ``m``, given component ``k``,
  ``E[x_m | x_o] = mu_m + B_k (x_o - mu_o)`` with
  ``B_k = Sigma_mo Sigma_oo^-1``, and the conditional covariance
  ``C_k = Sigma_mm - B_k Sigma_om`` adds to the second moment.

The expected complete-data log-likelihood depends on the data only through
these statistics, so every covariance model's M-step works unchanged on
them, and the observed-data log-likelihood never decreases.

Rows are grouped by their pattern of missing coordinates, so one iteration
costs one factorisation per (pattern, component), never one per row; rows
with nothing missing go through the engine's own compiled pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from mixtures.em import ScoredPass
from mixtures.params import MixtureParams
from mixtures.passes import (
    SufficientStats,
    _scored_pass,
    e_step,
    score_and_label,
    score_samples,
)

__all__ = [
    "MissingPatterns",
    "conditional_expectations",
    "find_patterns",
    "incomplete_statistics",
    "mean_filled",
    "missing_e_step",
    "missing_score_and_label",
    "missing_scored_pass",
    "observed_e_step",
    "observed_log_prob",
    "observed_score_and_label",
    "observed_score_samples",
    "pairwise_covariance",
]

_LOG_2PI = np.log(2 * np.pi)


@dataclass(frozen=True)
class MissingPatterns:
    """The rows of a data set grouped by which coordinates they miss.

    Attributes
    ----------
    complete : ndarray of int, shape (n_complete,)
        Rows with every coordinate observed.
    observed : ndarray of bool, shape (n_patterns, n_features)
        One row per pattern of the incomplete rows: True where observed.
    rows : tuple of ndarray of int
        The rows of each pattern, in the order of ``observed``.
    n_missing : int
        Missing cells in all.
    order : ndarray of int, shape (n_incomplete,)
        ``np.concatenate(rows)``: the incomplete rows, pattern by pattern.
    starts : ndarray of int, shape (n_patterns + 1,)
        Pattern ``p``'s rows are ``order[starts[p]:starts[p + 1]]``.
    """

    complete: np.ndarray
    observed: np.ndarray
    rows: tuple[np.ndarray, ...]
    n_missing: int
    order: np.ndarray
    starts: np.ndarray

    @property
    def any_missing(self) -> bool:
        """Whether any cell is missing."""
        return self.n_missing > 0

    @property
    def n_incomplete(self) -> int:
        """Rows with at least one missing coordinate."""
        return int(sum(r.size for r in self.rows))


def find_patterns(
    X: np.ndarray, feature_names=None, *, allow_empty_feature: bool = False
) -> MissingPatterns:
    """Group the rows of ``X`` (n_samples, n_features) by missing coordinates.

    Raises
    ------
    ValueError
        When a row has every coordinate missing (it carries no information:
        the message names the rows), or, unless ``allow_empty_feature`` (for
        scoring or imputing a few rows), a feature is missing in every row.
    """
    missing = np.isnan(X)
    n_missing = int(missing.sum())
    empty_rows = np.flatnonzero(missing.all(axis=1))
    if empty_rows.size:
        shown = ", ".join(str(i) for i in empty_rows[:10])
        more = f" and {empty_rows.size - 10} more" if empty_rows.size > 10 else ""
        raise ValueError(
            f"{empty_rows.size} row(s) have every feature missing (rows {shown}"
            f"{more}, counting from 0): they carry no information about the "
            "mixture; drop them before fitting."
        )
    empty_features = np.flatnonzero(missing.all(axis=0))
    if empty_features.size and not allow_empty_feature:
        names = [
            repr(str(feature_names[j])) if feature_names is not None else str(j)
            for j in empty_features
        ]
        raise ValueError(
            f"feature(s) {', '.join(names)} are missing in every row: nothing "
            "can be learned about them; drop those columns."
        )
    incomplete = missing.any(axis=1)
    complete = np.flatnonzero(~incomplete)
    if not incomplete.any():
        nothing = np.zeros(0, dtype=np.int64)
        return MissingPatterns(
            complete, np.zeros((0, X.shape[1]), bool), (), 0, nothing, np.zeros(1, int)
        )
    rows = np.flatnonzero(incomplete)
    patterns, inverse = np.unique(missing[rows], axis=0, return_inverse=True)
    inverse = inverse.ravel()
    order = rows[np.argsort(inverse, kind="stable")]
    starts = np.concatenate([[0], np.cumsum(np.bincount(inverse))])
    groups = tuple(np.split(order, starts[1:-1]))
    return MissingPatterns(
        complete, np.ascontiguousarray(~patterns), groups, n_missing, order, starts
    )


@dataclass(frozen=True)
class _PatternTerms:
    """One pattern's terms under every component (see the module docstring)."""

    log_gauss: np.ndarray  # (n_rows, K): log N(x_o | mu_ko, Sigma_koo)
    centred: np.ndarray  # (K, n_rows, d_o): x_o - mu_ko
    regression: np.ndarray  # (K, d_m, d_o): B_k
    conditional: np.ndarray  # (K, d_m, d_m): C_k


def _pattern_terms(
    X_observed: np.ndarray, observed: np.ndarray, means, covariances
) -> _PatternTerms:
    """Marginal log-densities and conditional terms of one pattern's rows."""
    o, m = np.flatnonzero(observed), np.flatnonzero(~observed)
    s_oo = covariances[:, o][:, :, o]
    s_mo = covariances[:, m][:, :, o]
    lower = np.linalg.cholesky(s_oo)
    inverse_lower = np.linalg.inv(lower)
    centred = X_observed[np.newaxis] - means[:, o][:, np.newaxis]
    z = centred @ inverse_lower.transpose(0, 2, 1)
    log_det = 2 * np.log(np.diagonal(lower, axis1=1, axis2=2)).sum(axis=1)
    log_gauss = -0.5 * (o.size * _LOG_2PI + log_det[:, np.newaxis] + (z**2).sum(-1))
    # B = S_mo S_oo^-1 = (S_mo L^-T) L^-1.
    regression = (s_mo @ inverse_lower.transpose(0, 2, 1)) @ inverse_lower
    conditional = covariances[:, m][:, :, m] - regression @ s_mo.transpose(0, 2, 1)
    return _PatternTerms(log_gauss.T, centred, regression, conditional)


def observed_log_prob(
    X: np.ndarray, patterns: MissingPatterns, params: MixtureParams
) -> np.ndarray:
    """``log N(x_o | mu_k, Sigma_k)`` of the incomplete rows, shape (n_incomplete, K).

    Rows in the order of ``np.concatenate(patterns.rows)``.
    """
    covariances = params.full_covariances()
    return np.concatenate(
        [
            _pattern_terms(
                X[np.ix_(rows, obs)], obs, params.means, covariances
            ).log_gauss
            for obs, rows in zip(patterns.observed, patterns.rows, strict=True)
        ]
    )


def incomplete_statistics(
    X: np.ndarray,
    patterns: MissingPatterns,
    sample_weight: np.ndarray,
    params: MixtureParams,
    kernel: str = "numpy",
    layout=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Expected statistics of the incomplete rows, about the current means.

    Returns ``S0`` (K,), ``S1`` (K, D) and the full expected second moments
    ``S2`` (K, D, D), each ``sum_n w_n r_nk E[...]`` over the incomplete
    rows, and ``log p(x_o)`` of every incomplete row (n_incomplete,), rows
    in the order of ``patterns.order``. ``kernel="numba"`` runs the
    compiled pass (:mod:`mixtures._missing_kernel`) on ``layout`` (an
    :class:`~mixtures._missing_kernel.IncompleteRows` of ``X``, built here
    when not given; a loop builds it once), "numpy" this one.
    """
    if kernel == "numba":
        from mixtures._missing_kernel import (
            IncompleteRows,
            compiled_incomplete_statistics,
        )

        return compiled_incomplete_statistics(
            layout if layout is not None else IncompleteRows(X, patterns),
            sample_weight,
            params.means,
            params.full_covariances(),
            params.weights,
        )[:4]
    K, D = params.means.shape
    ks = np.arange(K)
    covariances = params.full_covariances()
    log_weights = np.log(params.weights)
    s0, s1, s2 = np.zeros(K), np.zeros((K, D)), np.zeros((K, D, D))
    log_prob = []
    for observed, rows in zip(patterns.observed, patterns.rows, strict=True):
        o, m = np.flatnonzero(observed), np.flatnonzero(~observed)
        terms = _pattern_terms(X[np.ix_(rows, o)], observed, params.means, covariances)
        weighted = terms.log_gauss + log_weights
        row_log_prob = logsumexp(weighted, axis=1)
        log_prob.append(row_log_prob)
        r = np.exp(weighted - row_log_prob[:, np.newaxis]) * sample_weight[rows, None]
        mass = r.sum(axis=0)
        first = np.einsum("nk,kni->ki", r, terms.centred)
        scatter = np.einsum("nk,kni,knj->kij", r, terms.centred, terms.centred)
        B = terms.regression
        s0 += mass
        s1[:, o] += first
        s1[:, m] += np.einsum("kmi,ki->km", B, first)
        s2[np.ix_(ks, o, o)] += scatter
        cross = B @ scatter  # (K, d_m, d_o)
        s2[np.ix_(ks, m, o)] += cross
        s2[np.ix_(ks, o, m)] += cross.transpose(0, 2, 1)
        s2[np.ix_(ks, m, m)] += (
            cross @ B.transpose(0, 2, 1) + mass[:, None, None] * terms.conditional
        )
    return s0, s1, s2, np.concatenate(log_prob)


def _recentred(s0, s1, s2, shift):
    """Moments about ``c - shift`` moved to be about ``c`` (shift (K, D))."""
    first = s1 + s0[:, None] * shift
    outer = np.einsum("ki,kj->kij", s1, shift)
    second = (
        s2
        + outer
        + outer.transpose(0, 2, 1)
        + s0[:, None, None] * np.einsum("ki,kj->kij", shift, shift)
    )
    return first, second


def mean_filled(X: np.ndarray, fill: np.ndarray | None = None) -> np.ndarray:
    """``X`` with every missing cell replaced by its feature's observed mean.

    What the starts (k-means, random rows, the hierarchical start) and the
    degenerate-component policy see; the fit itself never uses the fill.
    ``fill`` (D,) gives the means (a fit out of core passes the whole
    array's to fill its sample).
    """
    filled = np.array(X, dtype=np.float64, copy=True)
    rows, columns = np.nonzero(np.isnan(filled))
    if fill is None:
        fill = np.nanmean(X, axis=0)
    filled[rows, columns] = np.asarray(fill)[columns]
    return filled


def missing_scored_pass(
    X: np.ndarray, patterns: MissingPatterns, kernel: str
) -> ScoredPass:
    """The engine's scored pass, extended to rows with missing coordinates.

    Returns a function ``(X, sample_weight, params) -> (stats, log p(x_n)
    (n,), weighted mean log-likelihood)`` like the engine's: complete rows
    go through the engine's pass on ``kernel`` (compiled or NumPy),
    incomplete ones through :func:`incomplete_statistics`, and the
    statistics are added about the same centres. ``X`` here is the data
    the pass is built for; the ``X`` given to the returned function (the
    mean-filled data of the loop) is not read.
    """
    complete_X = np.ascontiguousarray(X[patterns.complete])
    incomplete = patterns.order
    layout = None
    if kernel == "numba" and patterns.n_incomplete:
        from mixtures._missing_kernel import IncompleteRows

        layout = IncompleteRows(X, patterns)

    def scored(_X, sample_weight, params: MixtureParams):
        model = params.model
        log_prob = np.empty(X.shape[0])
        s0, s1, s2, log_incomplete = incomplete_statistics(
            X, patterns, sample_weight, params, kernel, layout
        )
        log_prob[incomplete] = log_incomplete
        centres = params.means
        if patterns.complete.size:
            stats, log_complete, _ = _scored_pass(
                complete_X, sample_weight[patterns.complete], params, kernel
            )
            log_prob[patterns.complete] = log_complete
            centres = stats.centres
            s1, s2 = _recentred(s0, s1, s2, params.means - centres)
            stats = SufficientStats(
                stats.weight_sums + s0,
                centres,
                stats.first_moments + s1,
                stats.second_moments + model.moments_from_full(s2),
                float(np.sum(sample_weight)),
            )
        else:
            stats = SufficientStats(
                s0,
                centres,
                s1,
                model.moments_from_full(s2),
                float(np.sum(sample_weight)),
            )
        # Not np.dot: a BLAS call over every row wakes OpenBLAS's threads,
        # which then spin against the next pass's own (a third slower).
        mean = float(np.sum(sample_weight * log_prob) / np.sum(sample_weight))
        return stats, log_prob, mean

    return scored


def missing_score_and_label(
    X: np.ndarray, patterns: MissingPatterns, params: MixtureParams, kernel: str
) -> tuple[np.ndarray, np.ndarray]:
    """``log p(x_o)`` of every row (n,) and its most probable component (n,).

    Each row is scored over its observed coordinates; complete rows by the
    engine's own pass.
    """
    log_prob = np.empty(X.shape[0])
    labels = np.empty(X.shape[0], dtype=np.int64)
    if patterns.complete.size:
        log_prob[patterns.complete], labels[patterns.complete] = score_and_label(
            X[patterns.complete], params, kernel=kernel
        )
    if not patterns.rows:
        return log_prob, labels
    rows = patterns.order
    if kernel == "numba":
        from mixtures._missing_kernel import (
            IncompleteRows,
            compiled_incomplete_statistics,
        )

        log_prob[rows], labels[rows] = compiled_incomplete_statistics(
            IncompleteRows(X, patterns),
            np.ones(X.shape[0]),
            params.means,
            params.full_covariances(),
            params.weights,
        )[3:]
        return log_prob, labels
    weighted = observed_log_prob(X, patterns, params) + np.log(params.weights)
    log_prob[rows] = logsumexp(weighted, axis=1)
    labels[rows] = weighted.argmax(axis=1)
    return log_prob, labels


def missing_e_step(
    X: np.ndarray, patterns: MissingPatterns, params: MixtureParams
) -> tuple[np.ndarray, np.ndarray]:
    """The E-step over observed coordinates: ``log p(x_o)`` (n,), log-resp (n, K)."""
    log_prob = np.empty(X.shape[0])
    log_resp = np.empty((X.shape[0], params.n_components))
    if patterns.complete.size:
        log_prob[patterns.complete], log_resp[patterns.complete] = e_step(
            X[patterns.complete], params
        )
    if patterns.rows:
        rows = np.concatenate(patterns.rows)
        weighted = observed_log_prob(X, patterns, params) + np.log(params.weights)
        log_prob[rows] = logsumexp(weighted, axis=1)
        log_resp[rows] = weighted - log_prob[rows, np.newaxis]
    return log_prob, log_resp


def conditional_expectations(
    X: np.ndarray,
    patterns: MissingPatterns,
    params: MixtureParams,
    n_draws: int = 0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """``X`` with its missing cells filled.

    With ``n_draws = 0``, the conditional expectation
    ``E[x_m | x_o] = sum_k tau_k(x_o) (mu_km + B_k (x_o - mu_ko))``, shape
    (n_samples, n_features). With ``n_draws > 0``, that many draws from the
    conditional distribution (a component from ``tau(x_o)``, then
    ``N(mu_km + B_k (x_o - mu_ko), C_k)``), shape (n_draws, n_samples,
    n_features): multiple imputation.
    """
    covariances = params.full_covariances()
    log_weights = np.log(params.weights)
    out = np.repeat(X[np.newaxis], max(n_draws, 1), axis=0)
    for observed, rows in zip(patterns.observed, patterns.rows, strict=True):
        o, m = np.flatnonzero(observed), np.flatnonzero(~observed)
        terms = _pattern_terms(X[np.ix_(rows, o)], observed, params.means, covariances)
        weighted = terms.log_gauss + log_weights
        tau = np.exp(weighted - logsumexp(weighted, axis=1, keepdims=True))
        # (K, n_rows, d_m): each component's conditional mean.
        means_m = params.means[:, m][:, np.newaxis] + np.einsum(
            "kmi,kni->knm", terms.regression, terms.centred
        )
        if n_draws == 0:
            out[0][np.ix_(rows, m)] = np.einsum("nk,knm->nm", tau, means_m)
            continue
        assert rng is not None
        factors = np.linalg.cholesky(
            terms.conditional + 1e-300 * np.eye(m.size)
        )  # PSD: Schur complement of a PD matrix
        for d in range(n_draws):
            cumulative = np.cumsum(tau, axis=1)
            u = rng.random(rows.size)[:, np.newaxis]
            k = np.minimum((u > cumulative).sum(axis=1), tau.shape[1] - 1)
            noise = rng.standard_normal((rows.size, m.size))
            draws = means_m[k, np.arange(rows.size)] + np.einsum(
                "nij,nj->ni", factors[k], noise
            )
            out[d][np.ix_(rows, m)] = draws
    return out[0] if n_draws == 0 else out


def observed_e_step(X: np.ndarray, params: MixtureParams):
    """:func:`mixtures.em.e_step`, with rows scored over their observed values.

    The engine's E-step when ``X`` has no NaN; otherwise
    :func:`missing_e_step`. Returns ``log p(x_o)`` (n,) and log-resp (n, K).
    """
    if not np.isnan(X).any():
        return e_step(X, params)
    return missing_e_step(X, find_patterns(X, allow_empty_feature=True), params)


def observed_score_and_label(X: np.ndarray, params: MixtureParams, *, kernel: str):
    """:func:`mixtures.em.score_and_label`, with rows scored over observed values."""
    if not np.isnan(X).any():
        return score_and_label(X, params, kernel=kernel)
    patterns = find_patterns(X, allow_empty_feature=True)
    return missing_score_and_label(X, patterns, params, kernel)


def observed_score_samples(X: np.ndarray, params: MixtureParams, *, kernel: str):
    """:func:`mixtures.em.score_samples`, with rows scored over observed values."""
    if not np.isnan(X).any():
        return score_samples(X, params, kernel=kernel)
    return observed_score_and_label(X, params, kernel=kernel)[0]


def pairwise_covariance(X: np.ndarray) -> np.ndarray:
    """The (D, D) covariance of ``X``, each entry from the rows observing both.

    Maximum-likelihood normalisation (divided by the count); with missing
    values it need not be positive definite.
    """
    import pandas as pd

    return np.atleast_2d(pd.DataFrame(X).cov(ddof=0).to_numpy())
