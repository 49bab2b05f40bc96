"""Fewer EM iterations: SQUAREM extrapolation and Aitken's stopping rule.

SQUAREM
-------
Varadhan, R. and Roland, C. (2008), "Simple and globally convergent methods
for accelerating the convergence of any EM algorithm", *Scandinavian Journal
of Statistics* 35(2):335-353. From ``theta_0`` two EM maps give
``theta_1 = M(theta_0)`` and ``theta_2 = M(theta_1)``; with
``r = theta_1 - theta_0`` and ``v = theta_2 - 2 theta_1 + theta_0`` the
extrapolated point is

    theta' = theta_0 - 2 alpha r + alpha^2 v,   alpha = -||r|| / ||v||

(the paper's scheme S3), with ``alpha <= -1``: ``alpha = -1`` gives
``theta_2`` itself. One more EM map from ``theta'`` (the stabilising step)
returns to the model's parameter set, so every covariance model's
constraints hold. The parameters are extrapolated in the storage of their
covariance model (weights, means, covariances); the weights' linear
combination still sums to one. For the models whose parameter set is not
closed under affine combinations (a shared volume, shape or orientation:
VEI, EVI, VEE, EVE, VVE, EEV, VEV, EVV), only weights and means are
extrapolated, so every scored point belongs to the model and the
stabilising step is a (generalised) EM step from it.

Monotonicity: the extrapolated point is kept only when it is a valid mixture
(non-negative weights, positive definite covariances) and its objective
(log-likelihood, plus the log prior for MAP-EM) is at least that of
``theta_1``, the last point of the plain path; otherwise the cycle falls back
to the plain EM point ``theta_2``. So the sequence of scored points never
decreases (up to rounding), which a test checks.

Aitken's stopping rule
----------------------
EM converges linearly: ``l_{k+1} - l_k ~ a (l_k - l_{k-1})`` with rate
``0 < a < 1``. Aitken's delta-squared extrapolation estimates the limit

    l_inf = l_{k-1} + (l_k - l_{k-1}) / (1 - a),
    a = (l_k - l_{k-1}) / (l_{k-1} - l_{k-2}),

and the rule stops when ``|l_inf - l_k| < tol`` (Böhning et al. 1994, "The
distribution of the likelihood ratio for mixtures of densities from the
one-parameter exponential family", *Annals of the Institute of Statistical
Mathematics* 46:373-388; McNicholas et al. 2010, used by R's ``mixture``).
Near a slow, flat approach the plain rule ``|l_k - l_{k-1}| < tol`` stops
while far from the limit; Aitken's rule measures the distance to it.
"""

from __future__ import annotations

import numpy as np

from mixtures.params import MixtureParams

__all__ = [
    "ACCELERATIONS",
    "AFFINE_MODELS",
    "STOPPING_RULES",
    "aitken_limit",
    "squarem_point",
]

#: Covariance models whose parameter set is closed under the affine
#: combinations SQUAREM makes (coefficients summing to one), apart from
#: positive definiteness, which is checked: their covariances are extrapolated.
AFFINE_MODELS = frozenset(
    {"full", "VVV", "tied", "EEE", "diag", "VVI", "spherical", "VII", "EII", "EEI"}
    | {"E", "V"}
)
#: Values of ``acceleration``: None (plain EM) or "squarem".
ACCELERATIONS = (None, "squarem")
#: Values of ``stopping``: "change" (scikit-learn's) or "aitken".
STOPPING_RULES = ("change", "aitken")


def aitken_limit(l0: float, l1: float, l2: float) -> float:
    """Aitken's estimate of the limit of a linearly converging sequence.

    NaN when the last three values do not show linear convergence (rate
    outside ``(0, 1)``): the rule then cannot stop.
    """
    previous, last = l1 - l0, l2 - l1
    if previous == 0.0:
        return float(l2) if last == 0.0 else float("nan")
    rate = last / previous
    if not 0.0 < rate < 1.0:
        return float("nan")
    return float(l1 + last / (1.0 - rate))


def _vector(params: MixtureParams) -> np.ndarray:
    return np.concatenate(
        [
            np.ravel(params.weights),
            np.ravel(params.means),
            np.ravel(params.covariances),
        ]
    )


def squarem_point(
    p0: MixtureParams,
    p1: MixtureParams,
    p2: MixtureParams,
    *,
    kernel: str | None = None,
) -> tuple[MixtureParams | None, float]:
    """The SQUAREM (S3) extrapolation from three successive EM iterates.

    Returns ``(params, alpha)``; ``params`` is None when the extrapolated
    point is not a valid mixture (a negative weight, a covariance that is not
    positive definite) or when ``alpha`` is -1 (no extrapolation beyond
    ``p2``). Its covariances are factorised on ``kernel``, as in
    :class:`~mixtures.params.MixtureParams`.
    """
    t0, t1, t2 = _vector(p0), _vector(p1), _vector(p2)
    r = t1 - t0
    v = t2 - 2.0 * t1 + t0
    norm_v = float(np.linalg.norm(v))
    if norm_v == 0.0:
        return None, -1.0
    alpha = min(-float(np.linalg.norm(r)) / norm_v, -1.0)
    if alpha == -1.0:
        return None, alpha
    theta = t0 - 2.0 * alpha * r + alpha**2 * v
    k, d = p0.means.shape
    weights = theta[:k]
    means = theta[k : k + k * d].reshape(k, d)
    covariances = theta[k + k * d :].reshape(np.shape(p0.covariances))
    if p0.covariance_type not in AFFINE_MODELS:
        # An extrapolated covariance need not belong to this model (a shared
        # volume, shape or orientation broken): its log-likelihood would not
        # be comparable, and an iterative M-step warm-started there need not
        # improve on it. Keep the last EM iterate's covariances and
        # extrapolate weights and means alone.
        covariances = np.asarray(p2.covariances)
    if np.any(weights < 0):
        return None, alpha
    try:
        point = MixtureParams(
            weights / weights.sum(),
            means,
            covariances,
            p0.covariance_type,
            kernel=kernel,
        )
    except ValueError:  # not positive definite, or not finite
        return None, alpha
    return point, alpha
