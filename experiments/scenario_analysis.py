"""The numbers each scenario section of a report states (S1 to S5).

Pure functions of recorded tables, of the scenario constants and, where a
number is a property of the data rather than of a fit, of the regenerated
data set. None of them fits a model.
"""

from __future__ import annotations

import math
from typing import TypedDict, cast

import numpy as np
import pandas as pd
from scipy import stats

from experiments import scenarios
from experiments.analysis import SAME_OPTIMUM_NATS
from experiments.report_stats import degenerate_actions, params_from_components
from mixtures._parallel import resolve_kernel
from mixtures.em import score_samples
from mixtures.missing import observed_score_samples
from mixtures.params import MixtureParams

__all__ = [
    "COVERAGE_TOLERANCE",
    "MEANS_AGREE_WITHIN",
    "MISSING_ARMS",
    "S3_INTERVAL",
    "S3_NEW_POINT",
    "UNEXPLAINED_DENSITY",
    "ReportedScore",
    "affine_check",
    "best_log_likelihood_over_weights",
    "coinciding_means",
    "components_at",
    "coverage_against_nominal",
    "distinct_corner_probability",
    "duplicate_start_probability",
    "imputation_quality",
    "interval_probability",
    "least_error",
    "lower_optima",
    "means_agree",
    "missing_recovery",
    "most_repeated",
    "peak_density",
    "point_density",
    "reported_answer_score",
    "reported_beside_ours",
    "sampling_spread",
    "twins_rescued",
    "unnormalised_curve_at",
]

#: The new point and the interval the S3 section evaluates (inside the data).
S3_NEW_POINT = 0.0
S3_INTERVAL = (-0.2, 0.0)
#: A point is unexplained by a mixture whose density there is below this.
UNEXPLAINED_DENSITY = 1e-10
#: A fitted mean agrees with a write-up's reported one within this distance
#: (S1's reported means have two decimals; its components lie 9 or more apart).
MEANS_AGREE_WITHIN = 0.1


def duplicate_start_probability(values: np.ndarray, n_components: int) -> float:
    """Chance that K rows drawn without replacement share a value.

    Random-point initialisation (scikit-learn's and gmmlab's
    ``random_from_data``) draws K distinct *rows* uniformly; on data with
    repeated values two of them can still be the same *point*, and two
    components started at one point with one covariance never separate.
    With ``c_v`` copies of each distinct value v, the number of K-row draws
    whose values all differ is the elementary symmetric polynomial
    ``e_K(c)``, so the answer is ``1 - e_K(c) / C(n, K)``.
    """
    _, counts = np.unique(np.asarray(values), return_counts=True)
    # e_K by the standard recurrence over the groups.
    elementary = np.zeros(n_components + 1)
    elementary[0] = 1.0
    for count in counts:
        elementary[1:] = elementary[1:] + count * elementary[:-1]
    total = math.comb(int(counts.sum()), n_components)
    return float(1.0 - elementary[n_components] / total)


def distinct_corner_probability(n_components: int, n_features: int) -> float:
    """Chance that K means drawn uniformly from {0, 1}^D are all different.

    The S2 homework drew its initial means from random integers in {0, 1}:
    with ``m = 2^D`` corners, ``m! / ((m - K)! m^K)``.
    """
    corners = 2**n_features
    if n_components > corners:
        return 0.0
    return float(math.perm(corners, n_components) / corners**n_components)


def point_density(params: MixtureParams, x: float) -> dict[str, object]:
    """Density of a 1-D mixture at ``x``, and each component's share of it.

    Returns ``log_density`` (what ``score_samples`` returns), ``density``,
    ``contributions`` (``w_k N(x | mu_k, s_k^2)``, shape (K,), summing to the
    density) and ``membership`` (``contributions / density``, the
    responsibilities).
    """
    contributions = params.weights * stats.norm(
        params.means[:, 0], np.sqrt(params.full_covariances()[:, 0, 0])
    ).pdf(x)
    density = float(contributions.sum())
    log_density = float(score_samples(np.array([[x]]), params)[0])
    return {
        "log_density": log_density,
        "density": density,
        "contributions": contributions,
        "membership": contributions / density,
    }


def interval_probability(params: MixtureParams, low: float, high: float) -> float:
    """``P(low < X <= high)`` under a 1-D mixture: weighted normal CDF differences."""
    scale = np.sqrt(params.full_covariances()[:, 0, 0])
    mass = stats.norm.cdf(high, params.means[:, 0], scale) - stats.norm.cdf(
        low, params.means[:, 0], scale
    )
    return float(params.weights @ mass)


def unnormalised_curve_at(
    params: MixtureParams, x: float, grid=scenarios.S3_GRID
) -> float:
    """The S3 asker's curve at ``x``.

    The asker summed unnormalised bumps ``w_k exp(-(x - m_k)^2 / 2 s_k^2)`` and
    rescaled the sum to integrate to one over the evaluation grid (5,000
    points from -2 to 1.5). Each bump's area is ``w_k s_k sqrt(2 pi)``, so
    the components are weighted by ``w_k s_k`` instead of ``w_k``.
    """
    low, high, count = grid
    points = np.linspace(low, high, int(count))
    sd = np.sqrt(params.full_covariances()[:, 0, 0])

    def curve(values):
        values = np.atleast_1d(values)[:, None]
        bumps = np.exp(-((values - params.means[:, 0]) ** 2) / (2 * sd**2))
        return bumps @ params.weights

    area = np.trapezoid(curve(points), points)
    return float(curve(x)[0] / area)


def sampling_spread(X: np.ndarray, params: MixtureParams) -> dict[str, float]:
    """How much a total log-likelihood varies from sample to sample.

    ``X`` (n_samples, n_features) drawn from ``params``: ``log_likelihood``
    of X under params, and ``spread``, the estimated standard deviation of
    that total over new samples of the same size (``sqrt(n)`` times the
    standard deviation of the per-point log-density).
    """
    X = np.asarray(X, dtype=float)
    if np.isnan(X).any():  # missing values: each row over its observed ones
        per_point = observed_score_samples(X, params, kernel=resolve_kernel(None))
    else:
        per_point = score_samples(X, params)
    return {
        "log_likelihood": float(per_point.sum()),
        "spread": float(np.sqrt(per_point.size) * per_point.std(ddof=1)),
    }


def affine_check(
    scaled: MixtureParams,
    raw: MixtureParams,
    low: np.ndarray,
    span: np.ndarray,
    log_likelihood_scaled: float,
    log_likelihood_raw: float,
    n_samples: int,
) -> dict[str, float]:
    """How exactly a fit on min-max scaled data maps to the fit on raw data.

    With ``x_scaled = (x - low) / span``, the maximum-likelihood mixture maps
    through the same affine transform (means ``low + span * mu``, covariances
    ``span_i span_j Sigma_ij``, the same weights), and the log-likelihoods
    differ by the log-Jacobian, ``n * sum(log span)``. Returns the largest
    differences of weights, means (relative to span) and covariances
    (relative to ``span_i span_j``) after matching components, the measured
    and the predicted log-likelihood difference.
    """
    from mixtures.align import align

    mapped = MixtureParams(
        scaled.weights,
        low + scaled.means * span,
        scaled.full_covariances() * np.outer(span, span),
    )
    matched = align(raw, mapped)
    return {
        "weights": float(np.max(np.abs(matched.weights - mapped.weights))),
        "means": float(np.max(np.abs(matched.means - mapped.means) / span)),
        "covariances": float(
            np.max(
                np.abs(matched.full_covariances() - mapped.full_covariances())
                / np.outer(span, span)
            )
        ),
        "log_likelihood_difference": float(log_likelihood_scaled - log_likelihood_raw),
        "log_jacobian": float(n_samples * np.sum(np.log(span))),
    }


def best_log_likelihood_over_weights(
    x: np.ndarray,
    means,
    variances,
    n_steps: int = 10_000,
    floor: float = UNEXPLAINED_DENSITY,
) -> dict[str, object]:
    """Score a write-up's reported 1-D answer whose weights it did not report.

    With the means and variances fixed, the log-likelihood is concave in the
    weights; the fixed-point iteration ``w <- mean of responsibilities``
    (EM on the weights alone) climbs to its maximum. Returns
    ``log_likelihood`` (the best any weights can do), ``weights`` and
    ``n_unexplained`` (points whose density is below ``floor`` there) and
    ``unexplained`` (those points' values, sorted).
    """
    x = np.asarray(x, dtype=float)
    density = stats.norm(np.asarray(means), np.sqrt(np.asarray(variances))).pdf(
        x[:, None]
    )
    weights = np.full(density.shape[1], 1.0 / density.shape[1])
    for _ in range(n_steps):
        joint = density * weights
        weights = (joint / joint.sum(axis=1, keepdims=True)).mean(axis=0)
    mixture = density @ weights
    return {
        "log_likelihood": float(np.sum(np.log(mixture))),
        "weights": weights,
        "n_unexplained": int(np.sum(mixture < floor)),
        "unexplained": np.sort(x[mixture < floor]),
    }


def reported_beside_ours(
    ours: MixtureParams, reported_means, reported_variances=None
) -> pd.DataFrame:
    """A 1-D fit's components sorted by mean beside a write-up's (S1)."""
    order = np.argsort(ours.means[:, 0])
    reported = np.sort(np.asarray(reported_means, dtype=float))
    frame = pd.DataFrame(
        {
            "weight": ours.weights[order],
            "mean": ours.means[order, 0],
            "reported mean": reported,
            "variance": ours.full_covariances()[order, 0, 0],
        }
    )
    if reported_variances is not None:
        by_mean = dict(zip(reported_means, reported_variances, strict=True))
        frame["reported variance"] = [by_mean[m] for m in reported]
    return frame


class ReportedScore(TypedDict):
    """What :func:`reported_answer_score` returns."""

    log_likelihood: float
    below_best: float
    n_unexplained: int
    unexplained_between: tuple[int, int] | None


def reported_answer_score(
    x: np.ndarray, means, variances, best_log_likelihood: float
) -> ReportedScore:
    """A write-up's reported 1-D answer scored on the data, against the best fit.

    :func:`best_log_likelihood_over_weights`'s ``log_likelihood`` and
    ``n_unexplained``, with ``below_best`` (nats from ``best_log_likelihood``
    down to it) and ``unexplained_between`` (the unexplained values' range
    rounded outwards to whole numbers; None when every value is explained).
    """
    scored = best_log_likelihood_over_weights(x, means, variances)
    log_likelihood = cast(float, scored["log_likelihood"])
    unexplained = np.asarray(scored["unexplained"])
    return {
        "log_likelihood": log_likelihood,
        "below_best": float(best_log_likelihood - log_likelihood),
        "n_unexplained": cast(int, scored["n_unexplained"]),
        "unexplained_between": (
            (math.floor(unexplained.min()), math.ceil(unexplained.max()))
            if unexplained.size
            else None
        ),
    }


def means_agree(beside: pd.DataFrame, within: float = MEANS_AGREE_WITHIN) -> pd.Series:
    """Mask of the rows of :func:`reported_beside_ours` whose means agree."""
    return (beside["mean"] - beside["reported mean"]).abs() <= within


def most_repeated(values: np.ndarray) -> tuple[float, int]:
    """The value repeated most often in ``values``, and how many times."""
    distinct, counts = np.unique(np.asarray(values), return_counts=True)
    return float(distinct[counts.argmax()]), int(counts.max())


def coinciding_means(
    fits: pd.DataFrame, components: pd.DataFrame, decimals: int = 2
) -> list[float]:
    """The 1-D means that two components of one fit share, over ``fits``.

    Each fit's means (from the components table) rounded to ``decimals``;
    the values held by more than one component of a fit, sorted, each once.
    """
    shared: set[float] = set()
    for run_id in fits["run_id"]:
        params = params_from_components(components[components["run_id"] == run_id])
        values, counts = np.unique(
            np.round(params.means[:, 0], decimals), return_counts=True
        )
        shared.update(float(v) for v in values[counts > 1])
    return sorted(shared)


def lower_optima(
    fits: pd.DataFrame,
    engines: pd.DataFrame,
    components: pd.DataFrame,
    best: float,
    nats: float = SAME_OPTIMUM_NATS,
) -> pd.DataFrame:
    """The distinct optima that ``fits`` stop at, highest first.

    Fits within ``nats`` of the highest remaining one are one optimum. One
    row each: ``log_likelihood`` (its highest fit's), ``n_fits``,
    ``below_best`` (nats below ``best``), ``means`` (its highest fit's
    sorted 1-D means) and ``engines_there`` (whether a fit in ``engines``,
    the eligible engine fits, ends within ``nats`` of it too).
    """
    rows = []
    rest = fits.sort_values("log_likelihood", ascending=False)
    while len(rest):
        top = rest.iloc[0]
        value = float(top["log_likelihood"])
        same = (rest["log_likelihood"] - value).abs() <= nats
        params = params_from_components(
            components[components["run_id"] == top["run_id"]]
        )
        rows.append(
            {
                "log_likelihood": value,
                "n_fits": int(same.sum()),
                "below_best": best - value,
                "means": tuple(np.sort(params.means[:, 0]).tolist()),
                "engines_there": bool(
                    ((engines["log_likelihood"] - value).abs() <= nats).any()
                ),
            }
        )
        rest = rest[~same]
    columns = ["log_likelihood", "n_fits", "below_best", "means", "engines_there"]
    return pd.DataFrame(rows, columns=columns)


def twins_rescued(
    twins: pd.DataFrame,
    runs: pd.DataFrame,
    best: float,
    engine: str = "em",
    nats: float = SAME_OPTIMUM_NATS,
) -> dict[str, int]:
    """What ``engine`` did from the seeds where ``twins`` kept identical components.

    ``twins`` are fits that ended with two identical components; ``runs``
    holds ``engine``'s fits of the same data, paired by ``init`` and
    ``fit_seed`` (the same start). Returns ``seeds`` (pairs found),
    ``at_best`` (of them, ``engine``'s fit is ok and within ``nats`` of
    ``best``) and ``actions`` (its re-seeding or flooring actions on those
    fits, :func:`experiments.report_stats.degenerate_actions`).
    """
    pairs = runs[runs["backend"] == engine].merge(
        twins[["init", "fit_seed"]], on=["init", "fit_seed"]
    )
    at_best = (pairs["status"] == "ok") & (
        (pairs["log_likelihood"] - best).abs() <= nats
    )
    return {
        "seeds": len(pairs),
        "at_best": int(at_best.sum()),
        "actions": degenerate_actions(pairs),
    }


def peak_density(params: MixtureParams, grid=scenarios.S3_GRID) -> float:
    """The highest density of a 1-D mixture on S3's evaluation grid."""
    low, high, count = grid
    points = np.linspace(low, high, int(count))[:, None]
    return float(np.exp(score_samples(points, params)).max())


def components_at(params: MixtureParams, x: float) -> pd.DataFrame:
    """A 1-D mixture's components sorted by mean, and their share at ``x``.

    Columns ``component (by mean)``, ``weight``, ``mean``, ``sd``,
    ``contribution at x = {x:g}`` and ``membership probability`` (from
    :func:`point_density`).
    """
    at = point_density(params, x)
    order = np.argsort(params.means[:, 0])
    return pd.DataFrame(
        {
            "component (by mean)": np.arange(params.n_components),
            "weight": params.weights[order],
            "mean": params.means[order, 0],
            "sd": np.sqrt(params.full_covariances()[order, 0, 0]),
            f"contribution at x = {x:g}": np.asarray(at["contributions"])[order],
            "membership probability": np.asarray(at["membership"])[order],
        }
    )


#: The arms of the missing-values scenario, EM over observed values first.
MISSING_ARMS = ("em", "em-complete-case", "em-mean-imputed", "em-iterative-imputed")


def missing_recovery(runs: pd.DataFrame) -> pd.DataFrame:
    """Recovery of the means per mechanism, missing rate and arm (issue 26).

    Over every fit that ran to the end (a fill that makes a fit degenerate
    is part of what the arm does): ``fits``, ``ok``, the median
    ``m_mean_rmse`` against the truth, the median ``seconds`` and
    ``rows_used``, the median number of rows the fit saw (``d_rows_fitted``
    where an arm drops rows, else every row). One row per ``mechanism, rate,
    arm``, arms in the order of :data:`MISSING_ARMS` then any other; empty
    when ``runs`` has no ``p_mechanism``/``p_rate``.
    """
    columns = ["mechanism", "rate", "arm", "fits", "ok", "mean_rmse", "seconds"]
    columns.append("rows_used")
    if not {"p_mechanism", "p_rate"} <= set(runs.columns):
        return pd.DataFrame(columns=columns)
    ran = runs[(runs["status"] != "failed") & runs["p_mechanism"].notna()]
    rows_used = ran.get("n_samples", pd.Series(np.nan, index=ran.index))
    if "d_rows_fitted" in ran.columns:
        rows_used = ran["d_rows_fitted"].fillna(rows_used)
    table = _per_setting(
        ran.assign(rows_used=rows_used),
        fits=("status", "size"),
        ok=("status", lambda s: int((s == "ok").sum())),
        mean_rmse=("m_mean_rmse", "median"),
        seconds=("seconds", "median"),
        rows_used=("rows_used", "median"),
    )
    return table[columns]


def _per_setting(ran: pd.DataFrame, **aggregates) -> pd.DataFrame:
    """``ran`` aggregated per ``mechanism, rate, arm``, arms in :func:`_arm_order`."""
    table = (
        ran.groupby(["p_mechanism", "p_rate", "backend"], sort=True)
        .agg(**aggregates)
        .reset_index()
        .rename(
            columns={"p_mechanism": "mechanism", "p_rate": "rate", "backend": "arm"}
        )
    )
    rank = {arm: i for i, arm in enumerate(_arm_order(table["arm"]))}
    return table.sort_values(
        ["mechanism", "rate", "arm"],
        key=lambda c: c.map(rank) if c.name == "arm" else c,
    ).reset_index(drop=True)


def least_error(table: pd.DataFrame, metric: str = "mean_rmse") -> pd.DataFrame:
    """Per mechanism, at its highest rate: the arm with the smallest error.

    ``table`` is :func:`missing_recovery`'s (``metric="mean_rmse"``) or
    :func:`imputation_quality`'s (``metric="imputation_rmse"``); returns
    ``mechanism, rate, arm, METRIC`` and ``runner_up``, ``runner_up_rmse``
    (the next arm). Arms without a value of ``metric`` are left out.
    """
    rows = []
    table = table[table[metric].notna()]
    for mechanism, group in table.groupby("mechanism", sort=True):
        top = group[group["rate"] == group["rate"].max()].sort_values(metric)
        best = top.iloc[0]
        second = top.iloc[1] if len(top) > 1 else None
        rows.append(
            {
                "mechanism": mechanism,
                "rate": float(best["rate"]),
                "arm": best["arm"],
                metric: float(best[metric]),
                "runner_up": None if second is None else second["arm"],
                "runner_up_rmse": np.nan if second is None else second[metric],
            }
        )
    return pd.DataFrame(rows)


#: A coverage this close to nominal reads as "at nominal": about two binomial
#: standard errors of a 90% interval over the ~1,000 cells of one replicate
#: at 10% missing (sqrt(0.09 / 1000) = 0.0095 per 1,000 cells).
COVERAGE_TOLERANCE = 0.03


def _arm_order(arms) -> list[str]:
    """:data:`MISSING_ARMS` first, in their order, then any other arm sorted."""
    arms = set(arms)
    return [a for a in MISSING_ARMS if a in arms] + sorted(arms - set(MISSING_ARMS))


def imputation_quality(runs: pd.DataFrame) -> pd.DataFrame:
    """How well each arm filled the holes, per mechanism, missing rate and arm.

    Over every fit that ran to the end and imputed (``m_imputation_rmse``
    recorded): ``fits``; ``imputation_rmse``, the median over fits of the
    RMSE of the point imputations against the removed values; ``coverage``,
    the mean over fits of the share of removed values inside the arm's
    intervals, and ``nominal`` their nominal level (both NaN for an arm
    that fills each hole once and claims no interval); ``width``, the mean
    interval width. Rows ``mechanism, rate, arm``, arms in the order of
    :data:`MISSING_ARMS` then any other (a Bayesian arm where its runs
    exist); empty without ``p_mechanism``, ``p_rate`` or imputations.
    """
    columns = ["mechanism", "rate", "arm", "fits", "imputation_rmse", "coverage"]
    columns += ["nominal", "width"]
    needed = {"p_mechanism", "p_rate", "m_imputation_rmse"}
    if not needed <= set(runs.columns):
        return pd.DataFrame(columns=columns)
    ran = runs[
        (runs["status"] != "failed")
        & runs["p_mechanism"].notna()
        & runs["m_imputation_rmse"].notna()
    ]
    ran = ran.assign(
        coverage=ran.get("m_imputation_coverage", np.nan),
        nominal=ran.get("m_imputation_level", np.nan),
        width=ran.get("m_imputation_width", np.nan),
    )
    table = _per_setting(
        ran,
        fits=("status", "size"),
        imputation_rmse=("m_imputation_rmse", "median"),
        coverage=("coverage", "mean"),
        nominal=("nominal", "mean"),
        width=("width", "mean"),
    )
    return table[columns]


def coverage_against_nominal(
    table: pd.DataFrame, tolerance: float = COVERAGE_TOLERANCE
) -> pd.DataFrame:
    """Each interval arm's coverage against its nominal level.

    ``table`` is :func:`imputation_quality`'s; arms without intervals are
    left out. Returns ``mechanism, rate, arm, coverage, nominal, shortfall``
    (``nominal - coverage``) and ``verdict``: ``"under"`` when the shortfall
    exceeds ``tolerance``, ``"over"`` when the coverage exceeds nominal by
    more, ``"nominal"`` otherwise.
    """
    rows = table[table["coverage"].notna()]
    shortfall = rows["nominal"] - rows["coverage"]
    verdict = np.where(
        shortfall > tolerance,
        "under",
        np.where(shortfall < -tolerance, "over", "nominal"),
    )
    out = rows[["mechanism", "rate", "arm", "coverage", "nominal"]].assign(
        shortfall=shortfall, verdict=verdict
    )
    return out.reset_index(drop=True)
