"""Posterior criticism: PSIS-LOO, WAIC and posterior predictive checks.

From relabelled posterior draws: the pointwise log-likelihood (PSIS-LOO and
WAIC), each point's responsibilities, the posterior predictive density of
each feature with a simultaneous band of replicated histograms, the check on
tied values, and how much of each MAP covariance the prior supplies
(:func:`prior_strength`).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from mixtures.backends.pymc.incomplete import observed_e_step
from mixtures.backends.pymc.model import _hyperparameters, _import_pymc
from mixtures.em import e_step
from mixtures.missing import find_patterns, incomplete_statistics
from mixtures.params import MixtureParams

#: Grid points of the posterior predictive density of each feature.
_GRID_POINTS = 200
#: PSIS-LOO is unreliable for a point whose Pareto k is above this (Vehtari,
#: Gelman & Gabry 2017); the count of such points is ``pareto_k_over_0_7``.
PARETO_K_LIMIT = 0.7


def _ties(values: np.ndarray) -> int:
    """Rows equal to an earlier row: ``n - number of distinct rows``."""
    return int(values.shape[0] - np.unique(values, axis=0).shape[0])


def _resolution(X: np.ndarray) -> float | None:
    """The data's recording step, or None if the values are not on a grid.

    The step is ``10^-d`` for the fewest decimals ``d <= 6`` that represent
    every value.
    """
    for decimals in range(7):
        scaled = X * 10.0**decimals
        # Absolute tolerance in units of the last decimal: float64 holds a
        # value with <= 6 decimals (below 1e9) far closer than 1e-6 of a unit.
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-6):
            return 10.0**-decimals
    return None


def posterior_criticism(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    *,
    seed: int = 0,
    ppc_replicates: int = 100,
    loo_rows: np.ndarray | None = None,
    loo: bool = True,
) -> dict[str, Any]:
    """PSIS-LOO, WAIC, responsibilities and posterior predictive checks.

    With missing values (NaN) in ``X``, every row is scored over its
    observed values, so PSIS-LOO and WAIC estimate how well the model
    predicts each left-out row's observed values; the tied-values check
    compares rows equal in every observed value, replicates masked as the
    data are; and the histogram check is left out for the features with
    missing values (their observed values are a selected subset unless
    values are missing completely at random, so their histogram need not
    follow the model's marginal, and a band from it would mislead). ``notes``
    says so.

    Parameters
    ----------
    X : ndarray of shape (N, D)
        All the data (responsibilities and predictive checks score every row).
    weights : ndarray of shape (C, S, K)
    means : ndarray of shape (C, S, K, D)
    covariances : ndarray of shape (C, S, K, D, D)
        Relabelled posterior draws: ``C`` chains of ``S`` (thinned) draws.
    seed : int
        Seeds the replicated data sets.
    ppc_replicates : int
        Replicated data sets for the tied-values check and draws for the
        predictive density's band. The histogram check replicates
        :data:`_HISTOGRAM_REPLICATES` histograms from every draw.
    loo_rows : ndarray of int, optional
        The rows the posterior was conditioned on (all when None). PSIS-LOO
        and WAIC leave out one of *those* rows: a row the posterior never saw
        is not left out by removing it, so it would make them invalid.
    loo : bool, default=True
        Compute PSIS-LOO and WAIC. Both treat the draws as draws from the
        posterior; draws from an approximation (ADVI) are not, so they are
        not computed for it.

    Returns
    -------
    dict
        ``loo`` and ``waic`` (estimates, standard errors, effective number of
        parameters, Pareto-k counts, ``n`` rows scored; None when ``loo`` is
        False), ``responsibilities_mean`` and ``responsibilities_sd`` (N, K);
        the tied-values check ``ppc_ties_observed``, ``ppc_ties_replicated``
        (mean), ``ppc_ties_p`` (share of replicated data sets with at least
        the data's ties) and ``ppc_resolution`` (the step replicates are
        rounded to, as the data were recorded; None when the data are not on
        a decimal grid); ``predictive_density``: per feature without missing
        values, the posterior predictive density on a grid and the data's
        histogram with the simultaneous band of replicated histograms
        (:func:`_predictive_density`); and ``notes`` (strings: what was done
        differently for missing values, empty without them).
    """
    _, az = _import_pymc()
    k, d = means.shape[2:]
    pointwise, resp_mean, resp_sd = _pointwise(X, weights, means, covariances)
    loo_summary = waic_summary = None
    if loo:
        loo_summary, waic_summary = _loo_waic(az, weights, means, pointwise, loo_rows)
    rng = np.random.default_rng([seed, 2])
    flat_w = weights.reshape(-1, k)
    flat_m = means.reshape(-1, k, d)
    flat_c = covariances.reshape(-1, k, d, d)
    picks = rng.choice(
        flat_w.shape[0], size=min(ppc_replicates, flat_w.shape[0]), replace=False
    )
    ties = _ties_check(X, (flat_w, flat_m, flat_c), picks, rng)
    return {
        "loo": loo_summary,
        "waic": waic_summary,
        "responsibilities_mean": resp_mean,
        "responsibilities_sd": resp_sd,
        **ties,
        "predictive_density": _predictive_density(
            X, (flat_w, flat_m, flat_c), picks, rng
        ),
        "notes": _missing_notes(X, loo),
    }


def _missing_notes(X: np.ndarray, loo: bool) -> list[str]:
    """What :func:`posterior_criticism` did differently for missing values."""
    holes = np.isnan(X)
    if not holes.any():
        return []
    skipped = np.flatnonzero(holes.any(axis=0))
    notes = [
        "responsibilities and the pointwise log-likelihood score each row "
        "over its observed values",
        "the tied-values check counts rows equal in every observed value; "
        "replicates carry the data's holes",
        f"the histogram check leaves out feature(s) {', '.join(map(str, skipped))} "
        "(with missing values): unless values are missing completely at random "
        "their observed values are a selected subset, whose histogram need not "
        "follow the model's marginal",
    ]
    if loo:
        notes.insert(1, "elpd_loo and WAIC predict each left-out row's observed values")
    return notes


def _pointwise(X, weights, means, covariances):
    """Each draw's pointwise log-likelihood, and the responsibilities' mean and SD.

    Returns ``(pointwise, resp_mean, resp_sd)`` of shapes (C, S, N), (N, K)
    and (N, K), for (C, S, ...) draws. A row with missing values is scored
    over its observed values.
    """
    n_chains, n_draws, k, _ = means.shape
    n = X.shape[0]
    patterns = find_patterns(X) if np.isnan(X).any() else None
    pointwise = np.empty((n_chains, n_draws, n))
    resp_sum = np.zeros((n, k))
    resp_square = np.zeros((n, k))
    for c in range(n_chains):
        for s in range(n_draws):
            params = MixtureParams(weights[c, s], means[c, s], covariances[c, s])
            log_norm, log_resp = observed_e_step(X, patterns, params)
            pointwise[c, s] = log_norm
            resp = np.exp(log_resp)
            resp_sum += resp
            resp_square += resp**2
    total = n_chains * n_draws
    resp_mean = resp_sum / total
    resp_sd = np.sqrt(np.maximum(resp_square / total - resp_mean**2, 0.0))
    return pointwise, resp_mean, resp_sd


def _loo_waic(az, weights, means, pointwise, loo_rows):
    """PSIS-LOO's and WAIC's summaries, leaving out one of ``loo_rows`` at a time.

    Returns ``(loo, waic)`` as :func:`posterior_criticism` reports them.
    """
    scored = pointwise if loo_rows is None else pointwise[..., loo_rows]
    # The relative efficiency of the draws comes from the parameters' ESS.
    idata = az.from_dict(
        posterior={"weights": weights, "means": means},
        log_likelihood={"x": scored},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        psis = az.loo(idata, pointwise=True)
        waic = az.waic(idata)
    pareto_k = np.asarray(psis.pareto_k)
    loo_summary = {
        "elpd": float(psis.elpd_loo),
        "se": float(psis.se),
        "p": float(psis.p_loo),
        "pareto_k_max": float(np.max(pareto_k)),
        "pareto_k_over_0_7": int(np.sum(pareto_k > PARETO_K_LIMIT)),
        "n": int(scored.shape[-1]),
    }
    waic_summary = {
        "elpd": float(waic.elpd_waic),
        "se": float(waic.se),
        "p": float(waic.p_waic),
    }
    return loo_summary, waic_summary


def _ties_check(X, draws, picks, rng) -> dict[str, Any]:
    """The posterior predictive check on tied values, from the ``picks`` draws.

    Each picked draw replicates the data (rounded to the data's recording
    step when they are on a decimal grid) and its ties are counted. With
    missing values, a replicate carries the data's holes, and rows tie when
    they have the same holes and equal observed values.
    """
    flat_w, flat_m, flat_c = draws
    n = X.shape[0]
    holes = np.isnan(X)
    resolution = _resolution(X[~holes])
    replicated_ties = []
    for s in picks:
        draw = MixtureParams(flat_w[s] / flat_w[s].sum(), flat_m[s], flat_c[s])
        replicate, _ = draw.sample(n, random_state=rng)
        if resolution is not None:
            # Recorded as the data were: a continuous model's replicates tie
            # only through rounding, so this compares like with like.
            replicate = np.round(replicate / resolution) * resolution
        replicated_ties.append(_ties(np.where(holes, np.inf, replicate)))
    observed_ties = _ties(np.where(holes, np.inf, X))
    replicated = np.asarray(replicated_ties)
    return {
        "ppc_ties_observed": observed_ties,
        "ppc_ties_replicated": float(replicated.mean()),
        "ppc_ties_p": float(np.mean(replicated >= observed_ties)),
        "ppc_resolution": resolution,
    }


#: Replicated histograms per feature for the band, and as many again, drawn
#: afresh, to measure how many bars fall outside it under the model.
_HISTOGRAM_REPLICATES = 8000
#: The share of replicated histograms lying entirely inside the band.
_BAND_COVERAGE = 0.94


def simultaneous_band(
    replicated: np.ndarray, coverage: float = _BAND_COVERAGE
) -> tuple[np.ndarray, np.ndarray, float]:
    """The narrowest pointwise-quantile band holding ``coverage`` of the curves.

    Parameters
    ----------
    replicated : ndarray of shape (R, B)
        ``R`` replicated curves (histograms) over ``B`` points (bins).
    coverage : float
        The share of the ``R`` curves that must lie entirely inside the band.

    Returns
    -------
    low, high : ndarray of shape (B,)
        The ``level / 2`` and ``1 - level / 2`` quantiles of each column.
    level : float
        The pointwise two-sided level found by bisection: the largest at which
        ``coverage`` of the curves lie inside at every point (0 gives the
        columns' ranges, which hold every curve). A pointwise band at
        ``1 - coverage`` is narrower: a curve of ``B`` points crosses it
        somewhere far more often than ``1 - coverage`` of the time.
    """

    def band(level):
        return np.quantile(replicated, [level / 2, 1 - level / 2], axis=0)

    def covered(level) -> float:
        low, high = band(level)
        inside = (replicated >= low) & (replicated <= high)
        return float(np.mean(np.all(inside, axis=1)))

    lower, upper = 0.0, 1.0 - coverage
    if covered(upper) >= coverage:
        lower = upper
    for _ in range(30):
        if upper - lower < 1e-5:
            break
        middle = 0.5 * (lower + upper)
        if covered(middle) >= coverage:
            lower = middle
        else:
            upper = middle
    low, high = band(lower)
    return low, high, lower


def _replicated_histograms(probabilities, n, replicates, rng) -> np.ndarray:
    """``replicates`` multinomial histograms of ``n`` points, cycling the draws.

    ``probabilities`` (S, B + 1) are each draw's bin probabilities with the
    mass outside the bins last; the counts of the B bins come back.
    """
    chosen = probabilities[np.arange(replicates) % probabilities.shape[0]]
    return rng.multinomial(n, chosen)[:, :-1]


def _predictive_density(X, draws, picks, rng) -> list[dict[str, Any]]:
    """Per feature: the posterior predictive marginal density and histograms.

    The marginal of a Gaussian mixture along feature ``f`` is the
    one-dimensional mixture of the components' ``f``-th means and variances,
    so each of the ``picks`` draws' densities is evaluated on a grid (mean and
    3%/97% quantiles over draws). For the check, every draw's probability of
    each bin of the data's histogram (differences of the marginal CDF at the
    bin edges) gives replicated histograms of ``n`` points (multinomial
    counts, :data:`_HISTOGRAM_REPLICATES` of them, cycling the draws). Their
    band is *simultaneous* (:func:`simultaneous_band`): 94% of replicated
    histograms lie inside it at every bin, so under the model all of a
    feature's bars are inside with probability about 94%. A pointwise 94%
    band would have about 6% of the bars outside by chance, which with 30 to
    70 bins is several bars. ``bins_outside_expected`` is the mean number of
    bars outside the band over as many replicated histograms drawn afresh:
    the count to set ``bins_outside`` (the data's) against. The data were
    used to fit the model, so they fall outside less often than replicates.
    """
    from scipy.stats import norm

    weights, means, covariances = draws
    n = X.shape[0]
    out = []
    for f in np.flatnonzero(~np.isnan(X).any(axis=0)):
        low, high = float(X[:, f].min()), float(X[:, f].max())
        pad = 0.1 * (high - low if high > low else 1.0)
        grid = np.linspace(low - pad, high + pad, _GRID_POINTS)
        sd = np.sqrt(covariances[:, :, f, f])  # (S, K)
        mu = means[:, :, f]
        density = np.sum(
            weights[picks, :, None]
            * norm.pdf(grid[None, None, :], mu[picks, :, None], sd[picks, :, None]),
            axis=1,
        )  # (picks, G)
        heights, edges = np.histogram(X[:, f], bins="auto", density=True)
        widths = np.diff(edges)
        cdf = np.sum(
            weights[:, :, None]
            * norm.cdf(edges[None, None, :], mu[:, :, None], sd[:, :, None]),
            axis=1,
        )  # (S, B + 1)
        inside = np.clip(np.diff(cdf, axis=1), 0.0, None)  # (S, B)
        # Mass outside the data's range goes to one extra cell, so the counts
        # of the bins are those of n replicated points.
        probabilities = np.concatenate(
            [inside, np.clip(1.0 - inside.sum(axis=1, keepdims=True), 0.0, None)],
            axis=1,
        )
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        # Bars are compared as counts, so a data bar on the band's edge is
        # inside whatever the rounding of count / (n * width).
        counts = np.histogram(X[:, f], bins=edges)[0]
        band_low, band_high, level = simultaneous_band(
            _replicated_histograms(probabilities, n, _HISTOGRAM_REPLICATES, rng)
        )
        fresh = _replicated_histograms(probabilities, n, _HISTOGRAM_REPLICATES, rng)
        fresh_outside = (fresh < band_low) | (fresh > band_high)
        out.append(
            {
                "feature": int(f),
                "grid": grid,
                "mean": density.mean(axis=0),
                "low": np.quantile(density, 0.03, axis=0),
                "high": np.quantile(density, 0.97, axis=0),
                "histogram_edges": edges,
                "histogram_density": heights,
                "replicated_low": band_low / (n * widths),
                "replicated_high": band_high / (n * widths),
                "band_pointwise_level": level,
                "band_coverage": float(np.mean(~fresh_outside.any(axis=1))),
                "bins_outside": int(np.sum((counts < band_low) | (counts > band_high))),
                "bins_outside_expected": float(fresh_outside.sum(axis=1).mean()),
            }
        )
    return out


def prior_strength(X: np.ndarray, params: MixtureParams) -> dict[str, np.ndarray]:
    """How much the prior weighs in each component's MAP covariance.

    At MAP-EM's estimate ``params`` of data ``X``, component ``k`` holds
    ``n_k`` points (its responsibilities' sum) with scatter ``W_k`` about
    their mean, and its MAP covariance is ``(W_k + E_k) / (n_k + m_k)``
    (:mod:`mixtures.prior`): the prior acts as ``m_k`` extra points
    (``nu_P + D + 2``, i.e. ``2D + 4`` with the default ``nu_P``; for a
    covariance shared by all components, its share ``1 + (nu_P + D + 1) / K``)
    that carry the scatter ``E_k`` (``Lambda_P``, plus the pull of the
    component's mean towards ``mu_P``). ``Lambda_P`` is the data's covariance
    over ``K^(2/D)``, about one cluster's spread, so for a tight or small
    component the prior can dominate. With missing values (NaN) in ``X``,
    ``n_k`` and ``W_k`` are the expected statistics MAP-EM's M-step uses
    (:func:`_component_scatter`).

    Returns
    -------
    dict
        ``component_points`` (n_k), ``prior_points`` (m_k) and
        ``prior_scatter_share`` (``tr E_k / tr(W_k + E_k)``: the share of
        the MAP covariance's scatter the prior contributes), each of shape
        (K,), in the order of ``params``' components.
    """
    prior = _hyperparameters(X, params.n_components)
    points, centres, scatter = _component_scatter(X, params)
    _, extra_scatter, extra_points = prior.adjust(
        points, centres, params.model.single_covariance
    )
    prior_trace = np.trace(extra_scatter, axis1=1, axis2=2)
    return {
        "component_points": points,
        "prior_points": extra_points,
        "prior_scatter_share": prior_trace
        / (prior_trace + np.trace(scatter, axis1=1, axis2=2)),
    }


def _component_scatter(X: np.ndarray, params: MixtureParams):
    """Each component's points ``n_k`` (K,), mean (K, D) and scatter ``W_k`` (K, D, D).

    From the responsibilities under ``params``. A row with missing values
    counts with its responsibilities over its observed values and the
    expected values of its missing ones given them (their conditional means,
    and the conditional covariance added to the scatter: Little & Rubin
    2019, sec. 11.2), as in MAP-EM's M-step (:mod:`mixtures.missing`).
    """
    if not np.isnan(X).any():
        resp = np.exp(e_step(X, params)[1])
        points = resp.sum(axis=0)
        centres = (resp.T @ X) / points[:, None]
        centred = X[None, :, :] - centres[:, None, :]  # (K, N, D)
        return points, centres, np.einsum("nk,kni,knj->kij", resp, centred, centred)
    patterns = find_patterns(X)
    # Moments about params.means: sum r, sum r E[x - mu], sum r E[(x - mu)^2].
    s0, s1, s2, _ = incomplete_statistics(X, patterns, np.ones(X.shape[0]), params)
    if patterns.complete.size:
        complete = X[patterns.complete]
        resp = np.exp(e_step(complete, params)[1])
        centred = complete[None, :, :] - params.means[:, None, :]
        s0 = s0 + resp.sum(axis=0)
        s1 = s1 + np.einsum("nk,kni->ki", resp, centred)
        s2 = s2 + np.einsum("nk,kni,knj->kij", resp, centred, centred)
    shift = s1 / s0[:, None]
    return s0, params.means + shift, s2 - np.einsum("ki,kj->kij", s1, shift)
