"""The one verdict on a fitted mixture: statuses, degeneracy, criteria, samplers.

Every caller (the model search :mod:`mixtures.select`, the sweeps'
:mod:`experiments.evaluate`, ``gmmlab fit`` and the reports) classifies a fit
with :func:`classify`, ranks statuses by :data:`STATUSES`, scores with
:func:`bic` and :func:`icl`, and judges posterior samples with
:func:`sampler_findings`; nothing else holds these rules.

A fit is *degenerate* (a spurious or useless maximum) when

* **a component is a spike**: its variance in some direction is below
  :data:`MIN_RELATIVE_VARIANCE` times the data's variance in that direction
  (the smallest generalised eigenvalue of its covariance against the data's:
  a collapse on tied or duplicated values);
* **a component has too few points to have a covariance**: effective size
  ``n * w_k < D + 1``;
* **a component is thin and small** (:data:`THIN_RATIO`, :data:`THIN_POINTS`):
  see :func:`thin_components`;
* **two components are the same Gaussian**, exactly (EM can never separate
  them) or within :data:`INDISTINGUISHABLE` (a saddle of the likelihood, one
  Gaussian split in two, that EM leaves too slowly for any stopping rule to
  notice: the fit is a (K - 1)-component fit);
* a degenerate-component repair of gmmlab's EM is still in force at the end.

The first three concern components whose covariance can shrink alone, which
is what makes the likelihood unbounded (Day 1969; Hathaway 1985; McLachlan &
Peel 2000, section 3.10): models with a volume of their own per component
(mclust's V** models; scikit-learn's full, diag and spherical). Where the
volume is shared (E** models, tied), no component can collapse without
taking every other with it, the likelihood is bounded, and a small or thin
component is a genuine local maximum, never flagged as a spike.

**Units never change a verdict.** The regularisation the fit added to every
covariance (``reg_covar``, absolute, per feature) is taken off first, so a
component held at ``reg_covar * I`` shows the zero spread it really has; every
measure is invariant to an affine change of the data's units (generalised
eigenvalues, effective sizes, Mahalanobis distances).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import scipy.linalg

from mixtures.covariance import mclust_name
from mixtures.em import EMRun
from mixtures.missing import observed_e_step, pairwise_covariance
from mixtures.params import MixtureParams

__all__ = [
    "INDISTINGUISHABLE",
    "MAX_R_HAT",
    "MIN_ESS_BULK",
    "MIN_RELATIVE_VARIANCE",
    "STATUSES",
    "THIN_POINTS",
    "THIN_RATIO",
    "Verdict",
    "bic",
    "classification_entropy",
    "classify",
    "degeneracy_findings",
    "icl",
    "in_force",
    "sampler_findings",
    "thin_components",
    "uncertainty",
    "volume_is_free",
]

#: Every status a fit can have, best first: the order a search ranks starts
#: by and every table counts them in.
STATUSES = ("ok", "unconverged", "degenerate", "failed")

#: A posterior sample is converged when the largest split r-hat over every
#: parameter is at most this, the smallest bulk effective sample size at least
#: :data:`MIN_ESS_BULK` and no transition diverged (Vehtari et al. 2021).
MAX_R_HAT = 1.01
MIN_ESS_BULK = 400.0

MIN_RELATIVE_VARIANCE = 1e-6
_DUPLICATE_RTOL = 1e-6

#: A component is thin when its variance in some direction is below this
#: fraction of the pooled within-component variance in that direction, and
#: small when it holds fewer than ``THIN_POINTS * (D + 1)`` effective points
#: (:func:`thin_components`).
THIN_RATIO = 5e-3
THIN_POINTS = 5.0

#: Two components are indistinguishable when the Mahalanobis distance
#: between their means (under their average covariance) is below this and
#: their covariances differ by less than this, relative (Frobenius norm).
#: At distance d the split changes the density by O(d^2) and the
#: log-likelihood by O(n d^4): 0.05 needs ~10^6 rows to be seen.
INDISTINGUISHABLE = 0.05


def _data_covariance(X: np.ndarray) -> np.ndarray:
    if np.isnan(X).any():
        covariance = _pairwise_covariance(X)
    else:
        covariance = np.atleast_2d(np.cov(X, rowvar=False, bias=True))
    # A constant feature would make the pencil singular; a ridge far below
    # any real variance keeps the generalised problem defined.
    ridge = np.finfo(np.float64).eps * max(float(np.max(np.diag(covariance))), 1e-300)
    return covariance + ridge * np.eye(covariance.shape[0])


def _pairwise_covariance(X: np.ndarray) -> np.ndarray:
    """The data's covariance from pairwise-complete rows, made positive definite.

    With missing values, each entry from the rows observing both features;
    such a matrix need not be positive definite, so its eigenvalues are
    raised to a small fraction of the largest.
    """
    covariance = pairwise_covariance(X)
    values, vectors = np.linalg.eigh(covariance)
    values = np.maximum(values, 1e-12 * values.max())
    return (vectors * values) @ vectors.T


def volume_is_free(covariance_type: str) -> bool:
    """Whether each component has a volume of its own (likelihood unbounded).

    True for mclust's V** models and scikit-learn's full, diag and
    spherical (and ``V`` in one dimension); False for the E** models, tied
    and ``E``, whose shared volume bounds the likelihood.
    """
    return mclust_name(covariance_type).startswith("V")


def thin_components(
    covariances: np.ndarray, weights: np.ndarray, n_samples: int
) -> list[tuple[int, float, float]]:
    """Components that are both thin and small: ``(k, n * w_k, ratio)`` each.

    ``ratio`` is the smallest generalised eigenvalue of ``covariances[k]``
    against the pooled within-component covariance ``W = sum_j w_j Sigma_j``:
    the component's variance in its thinnest direction as a fraction of a
    typical component's variance in that direction. A component is listed
    when ``ratio < THIN_RATIO`` and ``n * w_k < THIN_POINTS * (D + 1)``.

    Why this rule. A covariance estimated from a handful of points can be
    nearly singular by chance (a few points close to a line), and EM, whose
    likelihood grows without bound as such a component narrows, settles
    there: the spurious local maximiser of Day (1969) and McLachlan & Peel
    (2000, section 3.10), "a component fitted to a small number of points
    lying close together or in a lower-dimensional subspace". Hathaway (1985)
    removed these maxima by bounding the eigenvalues of ``Sigma_j Sigma_k^-1``
    from below, and García-Escudero et al. (2015) by bounding the ratio of
    the largest to the smallest eigenvalue over all components; both rules
    act on every component, and so also forbid a genuine tight cluster. This
    rule applies the ratio bound (1 : 1/THIN_RATIO against the pooled
    covariance, so it is affine invariant) only where the sample cannot
    support the thinness: a component with fewer than ``THIN_POINTS`` points
    per covariance dimension plus one. A large thin component (many points
    on a real ridge) and a small round one are both kept.
    """
    n_components, n_features = covariances.shape[:2]
    pooled = np.einsum("k,kij->ij", weights, covariances)
    ridge = np.finfo(np.float64).eps * max(float(np.trace(pooled)), 1e-300)
    pooled = pooled + ridge * np.eye(n_features)
    found = []
    for k in range(n_components):
        size = n_samples * float(weights[k])
        if size >= THIN_POINTS * (n_features + 1):
            continue
        try:
            ratio = float(
                scipy.linalg.eigh(covariances[k], pooled, eigvals_only=True)[0]
            )
        except np.linalg.LinAlgError:  # no spread at all: the spike rule's case
            continue
        if ratio < THIN_RATIO:
            found.append((k, size, ratio))
    return found


def degeneracy_findings(
    params: MixtureParams,
    X: np.ndarray,
    reg_covar: float | np.ndarray = 0.0,
    covariance_type: str | None = None,
) -> dict[str, Any]:
    """Measures of degeneracy of ``params`` fitted to ``X`` (n_samples, n_features).

    Returns ``min_effective_size`` (smallest ``n * w_k``),
    ``min_relative_variance`` (smallest generalised eigenvalue of any
    component's covariance against the data's covariance) and ``reasons``,
    a list of sentences for every breach of the module's rules.
    ``reg_covar`` (a float, or one value per feature), the regularisation the
    fit added to every covariance, is taken off first: a component on
    duplicated points has covariance ``reg_covar * I``, which is no evidence
    of spread. ``covariance_type`` is the model that was fitted (default:
    ``params.covariance_type``); the spike, size and thinness rules apply
    only where it lets a component's volume shrink alone
    (:func:`volume_is_free`).
    """
    n_samples, n_features = X.shape
    data_covariance = _data_covariance(X)
    covariances = params.full_covariances() - np.diag(
        np.broadcast_to(np.asarray(reg_covar, dtype=float), (n_features,))
    )
    effective = n_samples * params.weights
    relative = np.array(
        [
            scipy.linalg.eigh(cov, data_covariance, eigvals_only=True)[0]
            for cov in covariances
        ]
    )
    reasons: list[str] = []
    if volume_is_free(covariance_type or params.covariance_type):
        reasons.extend(
            f"component {k} has effective size n*w = {size:.3g} < D + 1 = "
            f"{n_features + 1}"
            for k, size in enumerate(effective)
            if size < n_features + 1
        )
        reasons.extend(
            f"component {k} has relative variance {value:.2g} < "
            f"{MIN_RELATIVE_VARIANCE:g} of the data's in some direction"
            for k, value in enumerate(relative)
            if value < MIN_RELATIVE_VARIANCE
        )
        flagged = {int(text.split()[1]) for text in reasons}
        reasons.extend(
            f"component {k} is thin and small: {size:.3g} points, variance "
            f"{ratio:.2g} of the pooled within-component variance in its "
            f"thinnest direction (< {THIN_RATIO:g} with < "
            f"{THIN_POINTS * (n_features + 1):g} points): a spurious maximum"
            for k, size, ratio in thin_components(
                covariances, params.weights, n_samples
            )
            if k not in flagged
        )
    scale = np.sqrt(np.diag(data_covariance))
    for j in range(params.n_components):
        for k in range(j):
            same_mean = np.all(
                np.abs(params.means[j] - params.means[k]) <= _DUPLICATE_RTOL * scale
            )
            same_cov = np.all(
                np.abs(covariances[j] - covariances[k])
                <= _DUPLICATE_RTOL * np.outer(scale, scale)
            )
            if same_mean and same_cov:
                reasons.append(f"components {k} and {j} are the same Gaussian")
                continue
            average = 0.5 * (covariances[j] + covariances[k])
            difference = params.means[j] - params.means[k]
            try:
                squared = float(difference @ np.linalg.solve(average, difference))
            except np.linalg.LinAlgError:
                continue
            if not squared >= 0:  # average not positive definite once reg_covar is off
                continue
            distance = np.sqrt(squared)
            spread = np.linalg.norm(covariances[j] - covariances[k]) / max(
                np.linalg.norm(average), np.finfo(float).tiny
            )
            if distance < INDISTINGUISHABLE and spread < INDISTINGUISHABLE:
                reasons.append(
                    f"components {k} and {j} are indistinguishable (Mahalanobis "
                    f"distance {distance:.2g} between means, covariances "
                    f"{spread:.1%} apart): one Gaussian split in two, a saddle "
                    "EM leaves too slowly to notice"
                )
    return {
        "min_effective_size": float(effective.min()),
        "min_relative_variance": float(relative.min()),
        "reasons": reasons,
    }


class Verdict(NamedTuple):
    """A fit's status (one of :data:`STATUSES`), why, and the measures behind it."""

    status: str
    reason: str
    measures: dict[str, Any]


def classify(
    params: MixtureParams,
    X: np.ndarray,
    *,
    reg_covar: float | np.ndarray = 0.0,
    covariance_type: str | None = None,
    converged: bool = True,
    n_iter: int | None = None,
    in_force: Sequence[str] = (),
    sampler: dict[str, Any] | None = None,
    log_likelihood: float | None = None,
) -> Verdict:
    """The status of a successful fit of ``X`` (n_samples, n_features).

    ``failed`` when ``log_likelihood`` is given and not finite; ``degenerate``
    for any finding of :func:`degeneracy_findings` (with ``reg_covar``, the
    absolute regularisation per feature the fit added, taken off) or a repair
    still ``in_force``; ``unconverged`` when an iterative fit stopped at its
    iteration limit (``converged`` False) or a posterior sample's diagnostics
    (``sampler``: r-hat, ESS, divergences) fail :func:`sampler_findings`;
    ``ok`` otherwise. A fit both degenerate and unconverged is degenerate and
    its reason lists every finding. Only ``ok`` fits may be chosen.
    """
    if log_likelihood is not None and not np.isfinite(log_likelihood):
        return Verdict("failed", "non-finite log-likelihood", {})
    findings = degeneracy_findings(params, X, reg_covar, covariance_type)
    degenerate = list(findings.pop("reasons"))
    degenerate.extend(f"{action} still in force at the end" for action in in_force)
    unconverged = []
    if not converged:
        unconverged.append(
            "stopped at max_iter"
            + ("" if n_iter is None else f" after {n_iter} iterations")
        )
    if sampler is not None:
        unconverged.extend(sampler_findings(sampler))
    if degenerate:
        status = "degenerate"
    elif unconverged:
        status = "unconverged"
    else:
        status = "ok"
    return Verdict(status, "; ".join(degenerate + unconverged), findings)


def bic(log_likelihood: float, n_parameters: int, n_samples: int) -> float:
    """Schwarz's criterion with scikit-learn's sign: ``-2 loglik + p log n``.

    Lower is better; mclust reports minus this.
    """
    return float(-2.0 * log_likelihood + n_parameters * np.log(n_samples))


def icl(
    log_likelihood: float, n_parameters: int, X: np.ndarray, params: MixtureParams
) -> float:
    """ICL in mclust's form, scikit-learn's sign: BIC plus twice the entropy term.

    See :func:`classification_entropy`; lower is better.
    """
    return bic(log_likelihood, n_parameters, X.shape[0]) + 2.0 * classification_entropy(
        X, params
    )


def sampler_findings(diagnostics: dict[str, Any]) -> list[str]:
    """Why a posterior sample is not converged; empty when it is.

    Reads ``r_hat_max``, ``ess_bulk_min`` and ``divergences`` from a fit's
    diagnostics (absent keys are not checked; NaN counts as a breach) against
    :data:`MAX_R_HAT` and :data:`MIN_ESS_BULK`.
    """
    reasons = []
    r_hat = diagnostics.get("r_hat_max")
    if r_hat is not None and not r_hat <= MAX_R_HAT:
        reasons.append(f"r-hat {r_hat:.4f} > {MAX_R_HAT}")
    ess = diagnostics.get("ess_bulk_min")
    if ess is not None and not ess >= MIN_ESS_BULK:
        reasons.append(f"bulk ESS {ess:.0f} < {MIN_ESS_BULK:g}")
    divergences = diagnostics.get("divergences")
    if divergences:
        reasons.append(f"{int(divergences)} divergent transitions")
    return reasons


def in_force(run: EMRun) -> list[str]:
    """Degenerate-component actions of a run's last M-step, still in the fit.

    A floored covariance or a component reseeded and never re-fitted.
    """
    return [
        f"{event.action} of component {event.component} ({event.reason})"
        for event in run.events
        if event.iteration == run.n_iter
    ]


def uncertainty(X: np.ndarray, params: MixtureParams) -> np.ndarray:
    """Classification uncertainty ``1 - max_k tau_nk`` of every row, shape (n,)."""
    _, log_resp = observed_e_step(X, params)
    return -np.expm1(log_resp.max(axis=1))


def classification_entropy(X: np.ndarray, params: MixtureParams) -> float:
    """``-sum_n log max_k tau_nk``: the penalty ICL adds to BIC, halved.

    ICL (Biernacki, Celeux & Govaert 2000, in the form mclust uses) is the
    BIC of the classification likelihood at the MAP labels; with
    scikit-learn's sign (lower is better), ``ICL = BIC + 2 * this``.
    """
    _, log_resp = observed_e_step(X, params)
    return float(-np.sum(log_resp.max(axis=1)))
