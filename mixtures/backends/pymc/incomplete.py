"""Data with missing values (NaN) in the PyMC backends: ``missing="marginal"``.

With ``missing="marginal"`` the Bayesian mixture is fitted to data with
holes, under missingness at random: the likelihood of each row is its
*marginal* density over its observed coordinates ``o`` (Little & Rubin,
*Statistical Analysis with Missing Data*, 3rd ed. 2019, ch. 11;
Ghahramani & Jordan 1994),

    p(x_o | theta) = sum_k w_k N(x_o | mu_k[o], Sigma_k[o, o]),

and the missing cells are imputed afterwards from their posterior. With
the default ``missing="error"`` a NaN is refused by a message naming the
option.

Why the explicit marginal, not PyMC's automatic imputation
-----------------------------------------------------------
PyMC imputes masked observations of an *observed random variable* by adding
the masked cells as free variables. Since PyMC 5.6 this covers partially
observed rows of multivariate and symbolic distributions (``PartialObservedRV``,
pymc-devs/pymc#6797; on PyMC 5.28 a ``pm.Mixture`` of ``MvNormal`` rows with
NaN cells gains an ``x_unobserved`` free variable with one entry per cell).
It was not used, for these reasons:

* *It does not apply to this model as written.* The likelihood here is a
  ``pm.Potential`` in the sampler's own unconstrained coordinates, one
  ``logsumexp`` pass over the data per gradient (:mod:`.model`); automatic
  imputation needs an observed ``pm.Mixture`` of ``MvNormal`` instead.
* *It makes NUTS sample the holes.* Every missing cell becomes a dimension:
  on 1,000 rows of 4 features with 30% of the values missing, 1,212 cells
  beside the 44 parameters. Each cell's conditional posterior is itself a
  mixture over components (bimodal where components overlap), coupled to
  the parameters, so the chains mix worse and r-hat and ESS judge cells as
  well as parameters.
* *The marginal is exact and equivalent.* ``p(theta | x_obs) = integral
  p(theta, x_mis | x_obs) dx_mis``, and for a Gaussian mixture the integral
  is the closed form above, so the posterior of the parameters is the one
  the joint model gives, with NUTS's dimension the parameters'.
* *The holes' posterior is recovered exactly afterwards.* A posterior draw
  ``theta`` followed by ``x_mis ~ p(x_mis | x_obs, theta)`` is a draw from
  the joint posterior of ``(theta, x_mis)`` (:func:`posterior_imputation`).

The marginal in the sampler's coordinates
-----------------------------------------
The model holds each precision's Cholesky factor ``U_k``
(``P_k = Sigma_k^-1 = U_k U_k^T``). The precision of the observed
coordinates' marginal is the Schur complement
``Sigma_k[o, o]^-1 = P_oo - P_om P_mm^-1 P_mo``, reached by eliminating the
missing coordinates from ``P_k`` one at a time (Gaussian elimination, as
the sweep operator does; Little & Rubin 2019, ch. 7): eliminating ``j``
subtracts ``P[:, j] P[j, :] / P[j, j]`` and contributes the pivot ``P[j, j]``
to ``log |P_mm|``, so that

    r^T Sigma_oo^-1 r = r~^T S r~,
    log |Sigma_oo^-1| = 2 log |U_k| - sum_{j in m} log pivot_j,

with ``S`` the eliminated matrix (zero rows and columns at ``m``) and
``r~`` the residual ``x - mu_k`` with zeros at ``m``. The rows are grouped
by missingness pattern (:func:`mixtures.missing.find_patterns`): the
elimination runs once per (pattern, component) and gradient, for all
patterns at once, as D masked steps of elementwise arithmetic (no
factorisation, which PyTensor would run matrix by matrix), and each row
then reads its pattern's ``S``. So one compiled model serves every data
set of the same shape and every set of patterns. A diagonal or spherical
precision needs no elimination: the terms of the missing coordinates are
left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mixtures.backends.base import Imputation
from mixtures.missing import (
    MissingPatterns,
    conditional_expectations,
    find_patterns,
    missing_e_step,
)
from mixtures.params import MixtureParams

__all__ = [
    "IMPUTATION_DRAWS",
    "MISSING_CHOICES",
    "check_missing",
    "observed_component",
    "observed_e_step",
    "pattern_values",
    "posterior_imputation",
    "relabelling_rows",
]

#: What the PyMC backends do with NaN: refuse it, or fit the marginal.
MISSING_CHOICES = ("error", "marginal")
#: Posterior draws (thinned) that impute the missing cells.
IMPUTATION_DRAWS = 500
_LOG_2PI = float(np.log(2 * np.pi))


def check_missing(backend: str, data: np.ndarray, missing: Any) -> bool:
    """Check the ``missing`` option against ``data`` (n_samples, n_features).

    Returns whether the data have missing cells (to be fitted by their
    marginal). Raises ValueError for an unknown option, for NaN under
    ``missing="error"`` (the message names the option), and for a row or a
    feature with nothing observed (:func:`mixtures.missing.find_patterns`).
    """
    if missing not in MISSING_CHOICES:
        raise ValueError(
            f"missing must be one of {', '.join(map(repr, MISSING_CHOICES))}; "
            f"got {missing!r}."
        )
    holes = np.isnan(data)
    if not holes.any():
        return False
    if missing == "error":
        raise ValueError(
            f"X contains NaN: {int(holes.sum())} missing value(s) in "
            f"{int(holes.any(axis=1).sum())} row(s). Backend {backend!r} fits "
            "data with missing values only when asked: pass missing='marginal' "
            "(each row's likelihood over its observed values, the missing "
            "cells imputed from the posterior), or drop or fill them."
        )
    try:
        find_patterns(data)
    except ValueError as error:
        raise ValueError(f"{backend}: {error} (NaN marks a missing value)") from None
    return True


def pattern_values(X: np.ndarray) -> dict[str, np.ndarray]:
    """The model's data containers for ``X`` (n_samples, n_features) with NaN.

    ``X`` (its holes set to 0), ``observed`` (n_samples, n_features; 1.0
    where observed), ``pattern_missing`` (n_patterns, n_features; 1.0 where
    the pattern misses a coordinate: complete rows' pattern first, then
    :func:`mixtures.missing.find_patterns`' patterns) and ``pattern_index``
    (n_samples,), each row's pattern.
    """
    patterns = find_patterns(X)
    holes = np.isnan(X)
    offset = 1 if patterns.complete.size else 0
    missing = ~patterns.observed
    if offset:
        missing = np.vstack([np.zeros((1, X.shape[1]), bool), missing])
    index = np.zeros(X.shape[0], dtype=np.int64)
    for p, rows in enumerate(patterns.rows):
        index[rows] = p + offset
    return {
        "X": np.ascontiguousarray(np.where(holes, 0.0, X), dtype=np.float64),
        "observed": (~holes).astype(np.float64),
        "pattern_missing": missing.astype(np.float64),
        "pattern_index": index,
    }


def observed_component(data, diff, z, factor, log_det, covariance_type: str, d: int):
    """``log N(x_o | mu_k[o], Sigma_k[o, o])`` of every row, shape (K, N).

    The PyTensor graph of the module docstring. ``data`` are the model's
    containers (:func:`pattern_values`); ``diff`` (K, N, D) the residuals
    ``x - mu_k`` with zeros at the missing coordinates, ``z`` (K, N, D) the
    same whitened (``U_k^T r~``); ``factor`` is ``U_k`` (K, D, D) for full
    and tied precisions, the scales ``1 / sigma_kd`` (K, D) for diagonal and
    spherical ones; ``log_det`` (K,) is ``log |U_k|``; ``d`` is D.
    """
    import pytensor.tensor as pt

    observed = data["observed"]  # (N, D)
    constant = -0.5 * _LOG_2PI * pt.sum(observed, axis=1)  # (N,)
    if covariance_type not in ("full", "tied"):
        # A diagonal precision: the missing coordinates' terms drop out.
        half_log_det = pt.dot(pt.log(factor), observed.T)  # (K, N)
        return half_log_det - 0.5 * pt.sum(z**2, axis=2) + constant[None, :]
    missing = data["pattern_missing"]  # (P, D)
    index = data["pattern_index"]  # (N,)
    precision = pt.matmul(factor, factor.transpose(0, 2, 1))  # (K, D, D)
    schur = pt.broadcast_to(precision[None], (missing.shape[0], *precision.shape))
    log_pivots = pt.zeros((missing.shape[0], precision.shape[0]))
    for j in range(d):
        # Where the pattern misses coordinate j, eliminate it: the Schur
        # complement of the pivot (P, K, D, D); elsewhere leave it.
        pivot = schur[:, :, j, j]
        column = schur[:, :, :, j]
        eliminated = (
            column[:, :, :, None] * column[:, :, None, :] / pivot[..., None, None]
        )
        schur = schur - missing[:, j][:, None, None, None] * eliminated
        log_pivots = log_pivots + missing[:, j][:, None] * pt.log(pivot)
    # Sigma_k[o, o]^-1, embedded with zero rows and columns at m, row by row.
    inverse = schur[index]  # (N, K, D, D)
    residual = diff.dimshuffle(1, 0, 2)  # (N, K, D)
    quadratic = pt.sum(
        residual[..., :, None] * inverse * residual[..., None, :], (2, 3)
    )
    half_log_det = log_det[:, None] - 0.5 * log_pivots[index].T  # (K, N)
    return half_log_det - 0.5 * quadratic.T + constant[None, :]


def observed_e_step(
    X: np.ndarray, patterns: MissingPatterns | None, params: MixtureParams
) -> tuple[np.ndarray, np.ndarray]:
    """``log p(x_o | params)`` (N,) and log-responsibilities (N, K) of every row.

    Each row is scored over its observed values; ``patterns`` are
    :func:`mixtures.missing.find_patterns`' of ``X``, computed once by the
    caller (None: ``X`` is complete).
    """
    if patterns is None:
        from mixtures.em import e_step

        return e_step(X, params)
    return missing_e_step(X, patterns, params)


def relabelling_rows(X: np.ndarray, params: MixtureParams) -> np.ndarray:
    """Rows for the Stephens relabelling, which needs complete rows (N, D).

    ``X`` itself when complete; otherwise every hole is filled with its
    conditional expectation under ``params`` (the best MAP-EM mode). The
    relabelling only uses the rows to tell the components apart; no
    reported number is computed from the fill.
    """
    if not np.isnan(X).any():
        return X
    return conditional_expectations(X, find_patterns(X), params)


def posterior_imputation(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    seed: int,
    *,
    level: float = 0.9,
    max_draws: int = IMPUTATION_DRAWS,
) -> Imputation | None:
    """Posterior means and central intervals of the missing cells of ``X``.

    Parameters
    ----------
    X : ndarray of shape (N, D)
        Data with NaN where a value is missing.
    weights : ndarray of shape (..., K)
    means : ndarray of shape (..., K, D)
    covariances : ndarray of shape (..., K, D, D)
        Posterior draws with any leading axes, e.g. (chain, draw), taken
        together; at most ``max_draws`` of them, evenly spaced, are used.
    seed : int
        Seeds the draws of the missing values.
    level : float
        The intervals' probability.

    Returns
    -------
    Imputation or None
        None when nothing is missing. Cells in ``np.nonzero(np.isnan(X))``
        order. For each used draw ``theta_t``, every row's missing cells are
        drawn from ``p(x_m | x_o, theta_t)`` (a component from the row's
        responsibilities over its observed values, then
        ``N(mu_m + B (x_o - mu_o), C)``; Little & Rubin 2019, sec. 11.2),
        so ``(theta_t, x_m)`` is a draw from the joint posterior. ``mean``
        is the Rao-Blackwellised posterior mean, the average over draws of
        ``E[x_m | x_o, theta_t]``; ``lower`` and ``upper`` are the draws'
        ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles.
    """
    rows, columns = np.nonzero(np.isnan(X))
    if rows.size == 0:
        return None
    k, d = means.shape[-2:]
    weights, means = weights.reshape(-1, k), means.reshape(-1, k, d)
    covariances = covariances.reshape(-1, k, d, d)
    patterns = find_patterns(X, allow_empty_feature=True)
    used = np.unique(np.linspace(0, weights.shape[0] - 1, max_draws).round())
    rng = np.random.default_rng([seed, 26])
    draws = np.empty((used.size, rows.size))
    expectation = np.zeros(rows.size)
    for t, s in enumerate(used.astype(int)):
        params = MixtureParams(weights[s] / weights[s].sum(), means[s], covariances[s])
        expectation += conditional_expectations(X, patterns, params)[rows, columns]
        draws[t] = conditional_expectations(X, patterns, params, 1, rng)[
            0, rows, columns
        ]
    tail = (1 - level) / 2
    lower, upper = np.quantile(draws, [tail, 1 - tail], axis=0)
    return Imputation(
        rows=rows,
        columns=columns,
        mean=expectation / used.size,
        lower=lower,
        upper=upper,
        level=level,
    )
