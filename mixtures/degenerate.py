"""The degenerate-component policy: reseeding and flooring components.

EM on real data meets components whose covariance stops being positive
definite (a component collapsed onto one point or onto duplicated points: the
likelihood is unbounded there) and components whose weight falls to zero.
scikit-learn raises in the first case. Here, after every M-step (and after
initialisation), in this order:

1. **reseed** a component whose responsibility mass falls below
   ``empty_threshold`` (in units of one average sample), or which duplicates an
   earlier component (equal means and covariances, so EM can never separate
   them): its mean moves to the worst-explained sample (lowest log-likelihood
   under the current mixture, distinct from other reseeds), its covariance
   becomes the mean covariance of the other components (so it competes on
   their scale), its weight ``1 / K`` before renormalising. At most
   ``max_reseeds_per_component * K`` reseeds per run; the convergence test is
   skipped in the iteration after a reseed, because the log-likelihood may
   drop there.
2. **floor** a covariance that is not positive definite or has a conditional
   variance (squared Cholesky pivot) below the covariance floor: the floor is
   added to its diagonal. The floor is per feature,
   ``sqrt(machine epsilon) * variance of that feature in the data``, so it is
   invariant to the units of each feature and far below any covariance met on
   non-degenerate data.

Every action is a :class:`DegenerateEvent` ``(restart, iteration, component,
action, reason)``; iteration 0 is initialisation, component -1 the shared
covariance of 'tied'. Fits never raise ``LinAlgError`` and never return NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from mixtures._parallel import resolve_kernel
from mixtures.covariance import CovarianceModel
from mixtures.params import MixtureParams
from mixtures.passes import weighted_feature_variance
from mixtures.prior import ResolvedPrior

__all__ = ["DegeneracyPolicy", "DegenerateEvent", "finalise_components"]

# ---------------------------------------------------------------------------
# Degenerate components


class DegenerateEvent(NamedTuple):
    """One action of the degenerate-component policy."""

    restart: int
    iteration: int
    component: int
    action: str  # "floor" or "reseed"
    reason: str  # "collapsed covariance", "empty component", "duplicate of k"


@dataclass(frozen=True, eq=False)
class DegeneracyPolicy:
    """Data-dependent constants of the degenerate-component policy.

    Build it with :meth:`for_data`; see the module docstring for the rules.
    """

    covariance_floor: np.ndarray  # (n_features,)
    feature_scale: np.ndarray  # (n_features,) standard deviations, all > 0
    mean_sample_weight: float
    reg_covar: float | np.ndarray  # (D,) in relative mode
    empty_threshold: float = 1e-6
    max_reseeds_per_component: int = 10
    #: Hyperparameters of MAP-EM's prior; None for maximum likelihood.
    prior: ResolvedPrior | None = None
    #: Distinct rows of the data (with positive weight), exact when fewer
    #: than K, else a lower bound of at least K: with fewer than K,
    #: duplicated components cannot be separated and are not reseeded.
    n_distinct_rows: int | None = None

    @classmethod
    def for_data(
        cls,
        X: np.ndarray,
        sample_weight: np.ndarray,
        reg_covar: float | np.ndarray,
        prior: ResolvedPrior | None = None,
        n_components: int | None = None,
    ) -> DegeneracyPolicy:
        """The policy's constants for data X.

        ``n_components`` lets the count of distinct rows stop as soon as it
        reaches K (all the policy needs); None counts them all.
        """
        total = float(np.sum(sample_weight))
        return cls.from_moments(
            weighted_feature_variance(X, sample_weight),
            X.dtype,
            total / np.count_nonzero(sample_weight),
            reg_covar,
            prior,
            # No boolean-indexed copy of X when every weight is positive.
            n_distinct_rows=_count_distinct_rows(
                X if np.all(sample_weight > 0) else X[sample_weight > 0],
                enough=n_components,
            ),
        )

    @classmethod
    def from_moments(
        cls,
        variances: np.ndarray,
        dtype,
        mean_sample_weight: float,
        reg_covar: float | np.ndarray,
        prior: ResolvedPrior | None = None,
        *,
        n_distinct_rows: int | None = None,
    ) -> DegeneracyPolicy:
        """The policy's constants from the data's per-feature variances (D,).

        A variance of 0 is replaced by the largest positive one (1 if none),
        in place. :meth:`for_data` computes the variances from X; a fit that
        never holds X whole (:mod:`mixtures.dask_em`) passes its own.
        """
        positive = variances[variances > 0]
        variances[variances <= 0] = positive.max() if positive.size else 1.0
        return cls(
            covariance_floor=np.sqrt(np.finfo(dtype).eps) * variances,
            feature_scale=np.sqrt(variances),
            mean_sample_weight=mean_sample_weight,
            reg_covar=reg_covar,
            prior=prior,
            n_distinct_rows=n_distinct_rows,
        )


def _count_distinct_rows(
    X: np.ndarray, head: int = 4096, enough: int | None = None
) -> int:
    """Distinct rows of X, or a lower bound once it reaches ``enough``.

    Cheap when the first rows are distinct: with ``enough`` it looks at a
    few rows only, else at the first ``head``.
    """
    if enough is not None:
        seen = {row.tobytes() for row in X[: 4 * enough]}
        if len(seen) >= enough:
            return len(seen)
    first = np.unique(X[:head], axis=0).shape[0]
    if first == min(head, X.shape[0]):
        # All distinct so far: at least this many, more than any K in use.
        return max(first, X.shape[0] if X.shape[0] <= head else first)
    return int(np.unique(X, axis=0).shape[0])


#: Two means are equal when every coordinate differs by at most this many
#: feature scales (the one rule; ``_policy_is_idle`` applies it too).
_SAME_MEAN_RTOL = 1e-10


def _same_means(means: np.ndarray, scale: np.ndarray) -> np.ndarray | None:
    """(K, K) mask of pairs of equal means, or None when no two coincide."""
    if means.shape[0] == 1:
        return None
    same_mean = np.all(
        np.abs(means[:, np.newaxis, :] - means[np.newaxis, :, :])
        <= _SAME_MEAN_RTOL * scale,
        axis=2,
    )
    # Each component equals itself: anything beyond the diagonal is a pair.
    if np.count_nonzero(same_mean) == means.shape[0]:
        return None
    return same_mean


def _duplicate_of(
    means: np.ndarray,
    covariances: np.ndarray,
    model: CovarianceModel,
    scale: np.ndarray,
) -> dict[int, int]:
    """Map component j to an earlier component k it duplicates exactly."""
    same_mean = _same_means(means, scale)
    if same_mean is None:
        return {}
    duplicates: dict[int, int] = {}
    for j, k in zip(*np.nonzero(np.tril(same_mean, k=-1)), strict=True):
        j, k = int(j), int(k)
        if j in duplicates or k in duplicates:
            continue
        if model.shared or np.allclose(
            covariances[j], covariances[k], rtol=1e-8, atol=0
        ):
            duplicates[j] = k
    return duplicates


#: Up to this many components the fast path's test runs on Python floats
#: (a pair of means costs a few hundred nanoseconds; most pairs differ in
#: their first feature), beyond it as NumPy expressions.
_PAIR_LOOP_MAX_COMPONENTS = 8
_FLOAT64 = np.dtype(np.float64)
#: Half the largest float64: means within it cannot overflow a difference.
_HALF_MAX = float(np.finfo(np.float64).max) / 2
#: Scales from which ``_SAME_MEAN_RTOL * scale`` is a normal number.
_SMALLEST_SCALE = 1e-290
_SMALLEST_NORMAL = float(np.finfo(np.float64).tiny)


def _policy_is_idle(
    weights: np.ndarray,
    means: np.ndarray,
    weight_sums: np.ndarray,
    policy: DegeneracyPolicy,
) -> bool:
    """True when the degenerate-component policy can at most floor covariances.

    That is: every weight and mean is finite, no component is empty and no
    two means are equal, each as :func:`finalise_components` and
    :func:`_duplicate_of` decide it; then nothing is reseeded and nothing
    raises. False sends :func:`finalise_components` down its full path, which
    decides every rule itself: the test may say False where the full path
    then does nothing (costing time only), but says True only where the full
    path would find no empty component, no pair of equal means and no NaN or
    infinity, and where its arithmetic for those decisions would raise no
    floating-point flag (overflow, division by zero...), so that skipping it
    also skips no warning that NumPy's error state would have issued.
    """
    n_components = means.shape[0]
    mean_sample_weight = float(policy.mean_sample_weight)
    scales = policy.feature_scale
    if (
        n_components > _PAIR_LOOP_MAX_COMPONENTS
        or not 0.0 < mean_sample_weight < math.inf
        or not (
            weights.dtype == _FLOAT64
            and means.dtype == _FLOAT64
            and weight_sums.dtype == _FLOAT64
            and scales.dtype == _FLOAT64
        )
    ):
        return _policy_is_idle_numpy(weights, means, weight_sums, policy)
    scales = scales.tolist()
    if not min(scales) >= _SMALLEST_SCALE:
        return _policy_is_idle_numpy(weights, means, weight_sums, policy)
    # The full path's float64 operations on Python floats (IEEE doubles):
    # the same quotient and comparison for each mass, the same difference,
    # magnitude, product and comparison for each pair of means, so the same
    # decisions bit for bit, without a dozen NumPy calls.
    rows = means.tolist()
    # A sum is finite only if every term is (a NaN or infinity propagates; a
    # sum of finite terms that overflows only takes the full path). The
    # means' magnitudes within half the largest float: no difference of two
    # overflows in _duplicate_of.
    if not math.isfinite(sum(weights.tolist())):
        return False
    magnitude = 0.0
    for row in rows:
        magnitude += sum(map(abs, row))
    if not magnitude <= _HALF_MAX:
        return False
    threshold = float(policy.empty_threshold)
    for mass in weight_sums.tolist():
        quotient = mass / mean_sample_weight
        if quotient < threshold:
            return False
        if quotient == math.inf and mass != math.inf:
            return False  # overflow: NumPy's divide would flag it
        if 0.0 < abs(quotient) < _SMALLEST_NORMAL:
            return False  # underflow, flagged likewise
    for j in range(1, n_components):
        row = rows[j]
        for k in range(j):
            # Most pairs differ in their first feature: one comparison each.
            for a, b, scale in zip(row, rows[k], scales, strict=True):
                if not abs(a - b) <= _SAME_MEAN_RTOL * scale:
                    break
            else:  # every feature within tolerance: equal means
                return False
    return True


def _policy_is_idle_numpy(
    weights: np.ndarray,
    means: np.ndarray,
    weight_sums: np.ndarray,
    policy: DegeneracyPolicy,
) -> bool:
    """:func:`_policy_is_idle` as the full path's own NumPy expressions.

    Any floating-point flag raised on the way (which the full path would
    report, or not, under the caller's error state) means False: the full
    path then runs, and reports it as it always did.
    """
    try:
        with np.errstate(all="raise"):
            return (
                bool(np.all(np.isfinite(weights)))
                and bool(np.all(np.isfinite(means)))
                and not np.any(
                    weight_sums / policy.mean_sample_weight < policy.empty_threshold
                )
                and _same_means(means, policy.feature_scale) is None
            )
    except FloatingPointError:
        return False


def finalise_components(
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    weight_sums: np.ndarray,
    X: np.ndarray,
    rank_samples: Callable[[], np.ndarray],
    model: CovarianceModel,
    policy: DegeneracyPolicy,
    *,
    restart: int,
    iteration: int,
    reseeds_left: int,
    owned: bool = False,
    kernel: str | None = None,
) -> tuple[MixtureParams, list[DegenerateEvent]]:
    """Apply the degenerate-component policy and build the parameters.

    ``owned=True`` promises the arrays are the caller's own fresh ones (the
    M-step's), so the parameters adopt them instead of copying. The
    covariances are factorised on ``kernel``, ``"numba"`` or ``"numpy"``: a
    fit passes its own; None means the default, ``resolve_kernel(None)``.

    ``rank_samples`` returns sample indices from worst to best explained; it is
    called only when a component must be reseeded.
    """
    if kernel is None:
        kernel = resolve_kernel(None)
    if _policy_is_idle(weights, means, weight_sums, policy):
        # The fast path of the usual iteration. The test found every weight
        # and mean finite, no component empty and no two means equal, so the
        # full path below would find no reason to reseed (reseed == []) and
        # pass both finiteness checks: all it would do is _floor_collapsed
        # with nothing to skip, then build the parameters. That is what runs
        # here, without the bookkeeping (a dozen small NumPy calls, about
        # half of an iteration on small data).
        prec_chol, covariances, events = _floor_collapsed(
            covariances, model, policy, [], restart, iteration, kernel
        )
        params = MixtureParams._trusted(
            weights, means, covariances, model.name, prec_chol, owned=owned
        )
        return params, events
    n_components = weights.shape[0]
    reasons = _reseed_reasons(weight_sums, means, covariances, model, policy)
    reseed = sorted(reasons)[:reseeds_left]
    if len(reseed) == n_components:  # nothing to take a covariance from
        reseed = reseed[1:]

    prec_chol, covariances, events = _floor_collapsed(
        covariances, model, policy, reseed, restart, iteration, kernel
    )
    if reseed:
        weights, means, covariances = weights.copy(), means.copy(), covariances.copy()
        kept = [k for k in range(n_components) if k not in reseed]
        # A reseeded component takes the average shape of the others, so it
        # competes on their scale: a spike among initial spikes, a typical
        # cluster in the middle of a fit.
        start_cov = None if model.shared else np.mean(covariances[kept], axis=0)
        for k, point in zip(
            reseed, _distinct_rows(X, rank_samples(), len(reseed)), strict=False
        ):
            means[k] = point
            weights[k] = 1.0 / n_components
            if start_cov is not None:
                covariances[k] = start_cov
            events.append(DegenerateEvent(restart, iteration, k, "reseed", reasons[k]))
        weights = weights / weights.sum()
        prec_chol, collapsed = model.precision_cholesky(
            covariances, np.zeros_like(policy.covariance_floor), kernel=kernel
        )
        if np.any(collapsed):  # pragma: no cover - the floor keeps every one PD
            raise FloatingPointError("covariance floor failed to restore definiteness")
    for name, array in (("weights", weights), ("means", means)):
        if not np.all(np.isfinite(array)):
            raise ValueError(
                f"{name} contain NaN or infinity: EM overflowed; the data may "
                "hold values too large to square (rescale them)."
            )
    params = MixtureParams._trusted(
        weights, means, covariances, model.name, prec_chol, owned=owned
    )
    return params, events


def _reseed_reasons(
    weight_sums: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    model: CovarianceModel,
    policy: DegeneracyPolicy,
) -> dict[int, str]:
    """Why a component is to be reseeded: empty, or a duplicate of an earlier one."""
    reasons: dict[int, str] = {}
    empty = weight_sums / policy.mean_sample_weight < policy.empty_threshold
    for index in np.flatnonzero(empty):
        reasons[int(index)] = "empty component"
    # Duplicates are reseeded only when the data have a distinct point for
    # every component; otherwise reseeding would only make new duplicates.
    n_components = means.shape[0]
    separable = policy.n_distinct_rows is None or policy.n_distinct_rows >= n_components
    duplicates = _duplicate_of(means, covariances, model, policy.feature_scale)
    for j, k in duplicates.items() if separable else ():
        reasons.setdefault(j, f"duplicate of component {k}")
    return reasons


def _floor_collapsed(
    covariances: np.ndarray,
    model: CovarianceModel,
    policy: DegeneracyPolicy,
    skip: list[int],
    restart: int,
    iteration: int,
    kernel: str,
) -> tuple[np.ndarray, np.ndarray, list[DegenerateEvent]]:
    """Precision factors, with the floor added to every collapsed covariance.

    Returns ``(precisions_cholesky, covariances, events)``; components in
    ``skip`` (about to be reseeded) are not floored.
    """
    prec_chol, collapsed = model.precision_cholesky(
        covariances, policy.covariance_floor, kernel=kernel
    )
    if skip and not model.shared:  # (assigning to no element does nothing)
        collapsed[skip] = False
    if not collapsed.any():  # (the method: a fraction of np.any's cost)
        return prec_chol, covariances, []
    repaired = model.add_floor(covariances, policy.covariance_floor, collapsed)
    prec_chol, _ = model.precision_cholesky(
        repaired, np.zeros_like(policy.covariance_floor), kernel=kernel
    )
    components = [-1] if model.shared else np.flatnonzero(collapsed).tolist()
    return (
        prec_chol,
        repaired,
        [
            DegenerateEvent(restart, iteration, int(k), "floor", "collapsed covariance")
            for k in components
        ],
    )


def _distinct_rows(X: np.ndarray, order: np.ndarray, count: int) -> list[np.ndarray]:
    """The first ``count`` rows of ``X`` in ``order`` with pairwise distinct values."""
    chosen: list[np.ndarray] = []
    for index in order:
        if len(chosen) == count:
            break
        row = np.asarray(X[index], dtype=np.float64)
        if all(np.any(row != other) for other in chosen):
            chosen.append(row)
    return chosen
