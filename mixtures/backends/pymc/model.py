"""The probabilistic model: the Bayesian mixture as a ``pm.Model``.

The model of :mod:`mixtures.backends.pymc`'s docstring: the sampler's free
(unconstrained) coordinates and their map to and from mixture parameters,
the prior's hyper-parameters, the log density as a PyMC model, and the rows
of the data the posterior is conditioned on.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from scipy.special import logsumexp

from mixtures.backends.pymc.incomplete import observed_component, pattern_values
from mixtures.missing import mean_filled
from mixtures.params import MixtureParams
from mixtures.prior import ConjugatePrior, ResolvedPrior

INSTALL_HINT = "pip install 'gmmlab[bayes]'  (installs pymc, arviz and nutpie)"
#: Free variables of the model, in the order of the sampler's flat vector.
FREE_VARIABLES = ("logits", "mu", "log_diag", "offdiag")


def _import_pymc():
    try:
        import arviz
        import pymc
    except ImportError as error:  # pragma: no cover - exercised via the registry
        raise ImportError(
            f"the PyMC backends need pymc and arviz: {INSTALL_HINT}"
        ) from error
    # A backend reports through MixtureFit, not through PyMC's progress chatter.
    logging.getLogger("pymc").setLevel(logging.ERROR)
    return pymc, arviz


def _subsample_rows(n_samples: int, max_samples, seed: int) -> np.ndarray | None:
    """Increasing indices of at most ``max_samples`` rows (None: all rows).

    Drawn without replacement from ``seed``. The posterior is then conditioned
    on those rows only (wider than on all the data); the reported
    log-likelihood still scores every row.
    """
    if max_samples is None:
        return None
    if (
        isinstance(max_samples, bool)
        or not isinstance(max_samples, int)
        or (max_samples < 2)
    ):
        raise ValueError(f"max_samples must be an integer >= 2; got {max_samples!r}.")
    if n_samples <= max_samples:
        return None
    rows = np.random.default_rng(seed).choice(n_samples, max_samples, replace=False)
    return np.sort(rows)


def _subsample(data: np.ndarray, max_samples, seed: int) -> np.ndarray:
    """The rows of ``data`` chosen by :func:`_subsample_rows` (all when None)."""
    rows = _subsample_rows(data.shape[0], max_samples, seed)
    return data if rows is None else data[rows]


# ---------------------------------------------------------------------------
# Shapes of the free variables and the map to and from mixture parameters


def _free_shapes(
    n_features: int, n_components: int, covariance_type: str
) -> dict[str, tuple[int, ...]]:
    d, k = n_features, n_components
    n_off = d * (d - 1) // 2
    shapes: dict[str, tuple[int, ...]] = {"logits": (k - 1,), "mu": (k, d)}
    if covariance_type == "full":
        shapes["log_diag"] = (k, d)
        shapes["offdiag"] = (k, n_off)
    elif covariance_type == "tied":
        shapes["log_diag"] = (d,)
        shapes["offdiag"] = (n_off,)
    elif covariance_type == "diag":
        shapes["log_diag"] = (k, d)
    elif covariance_type == "spherical":
        shapes["log_diag"] = (k,)
    else:
        raise ValueError(
            "covariance_type must be 'full', 'tied', 'diag' or 'spherical' for "
            f"the PyMC backends; got {covariance_type!r}."
        )
    return {name: shape for name, shape in shapes.items() if 0 not in shape}


def params_to_free(params: MixtureParams, covariance_type: str) -> dict[str, Any]:
    """The free (unconstrained) coordinates of ``params``, as the model's arrays.

    Inverse of :func:`draws_to_params` for one draw.
    """
    k, d = params.n_components, params.n_features
    weights = np.clip(np.asarray(params.weights, dtype=np.float64), 1e-300, None)
    covariances = params.full_covariances()
    free: dict[str, Any] = {
        "logits": np.log(weights[:-1]) - np.log(weights[-1]),
        "mu": np.array(params.means, dtype=np.float64),
    }
    rows, columns = np.tril_indices(d, -1)
    if covariance_type in ("full", "tied"):
        chosen = covariances if covariance_type == "full" else covariances[:1]
        factors = np.linalg.cholesky(np.linalg.inv(chosen))  # (., D, D) lower
        log_diag = np.log(np.diagonal(factors, axis1=1, axis2=2))
        offdiag = factors[:, rows, columns]
        if covariance_type == "tied":
            log_diag, offdiag = log_diag[0], offdiag[0]
        free["log_diag"], free["offdiag"] = log_diag, offdiag
    elif covariance_type == "diag":
        free["log_diag"] = -0.5 * np.log(np.diagonal(covariances, axis1=1, axis2=2))
    else:
        free["log_diag"] = -0.5 * np.log(
            np.diagonal(covariances, axis1=1, axis2=2).mean(axis=1)
        )
    shapes = _free_shapes(d, k, covariance_type)
    return {name: np.reshape(free[name], shape) for name, shape in shapes.items()}


def draws_to_params(
    draws: dict[str, np.ndarray], covariance_type: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights, means and covariances of draws of the free variables.

    Parameters
    ----------
    draws : dict of ndarray
        The free variables (:data:`FREE_VARIABLES`) with any leading axes
        ``(...)``, e.g. ``(chain, draw)``: ``logits`` (..., K-1), ``mu``
        (..., K, D), ``log_diag`` and ``offdiag`` as in the model.

    Returns
    -------
    weights : ndarray of shape (..., K)
    means : ndarray of shape (..., K, D)
    covariances : ndarray of shape (..., K, D, D)
    """
    means = np.asarray(draws["mu"], dtype=np.float64)
    lead, (k, d) = means.shape[:-2], means.shape[-2:]
    logits = np.asarray(
        draws.get("logits", np.zeros((*lead, 0))), dtype=np.float64
    ).reshape(*lead, k - 1)
    full_logits = np.concatenate([logits, np.zeros((*lead, 1))], axis=-1)
    weights = np.exp(full_logits - logsumexp(full_logits, axis=-1, keepdims=True))
    log_diag = np.asarray(draws["log_diag"], dtype=np.float64)
    if covariance_type in ("full", "tied"):
        if covariance_type == "tied":
            log_diag = np.broadcast_to(log_diag[..., None, :], (*lead, k, d))
        factors = np.zeros((*lead, k, d, d))
        index = np.arange(d)
        factors[..., index, index] = np.exp(log_diag)
        if d > 1:
            offdiag = np.asarray(draws["offdiag"], dtype=np.float64)
            if covariance_type == "tied":
                offdiag = np.broadcast_to(
                    offdiag[..., None, :], (*lead, k, offdiag.shape[-1])
                )
            rows, columns = np.tril_indices(d, -1)
            factors[..., rows, columns] = offdiag
        inverse = np.linalg.inv(factors)  # U^-1; Sigma = U^-T U^-1
        covariances = np.swapaxes(inverse, -1, -2) @ inverse
    else:
        if covariance_type == "spherical":
            log_diag = np.broadcast_to(log_diag[..., None], (*lead, k, d))
        variances = np.exp(-2.0 * log_diag)
        covariances = variances[..., :, None] * np.eye(d)
    return weights, means, covariances


# ---------------------------------------------------------------------------
# Model


def _hyperparameters(X: np.ndarray, n_components: int) -> ResolvedPrior:
    """The prior's hyper-parameters for data ``X`` (n_samples, n_features).

    With missing values, those of the data with each hole filled by its
    feature's observed mean: what MAP-EM with ``missing="em"`` resolves, so
    its estimate stays this posterior's mode.
    """
    if np.isnan(X).any():
        X = mean_filled(X)
    return ConjugatePrior().resolve(X, np.ones(X.shape[0]), n_components)


def _data_values(X: np.ndarray, prior: ResolvedPrior) -> dict[str, np.ndarray]:
    """The model's data containers for data ``X`` and its prior.

    With missing values (NaN), ``X`` has its holes set to 0 and the pattern
    containers of :func:`.incomplete.pattern_values` come with it.
    """
    missing = pattern_values(X) if np.isnan(X).any() else {}
    return {
        "X": np.ascontiguousarray(X, dtype=np.float64),
        **missing,
        "prior_mean": np.asarray(prior.mean, dtype=np.float64),
        "prior_scale": np.asarray(prior.scale, dtype=np.float64),
        "prior_scale_chol": np.linalg.cholesky(prior.scale),
        "prior_shrinkage": np.asarray(prior.shrinkage, dtype=np.float64),
        "prior_dof": np.asarray(prior.dof, dtype=np.float64),
    }


def build_model(
    X: np.ndarray,
    n_components: int,
    covariance_type: str = "full",
    *,
    jacobian: bool = True,
):
    """The Bayesian mixture of the module docstring, as a ``pm.Model``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data; it and the prior's hyper-parameters are ``pm.Data`` containers,
        so one compiled model serves every data set of the same ``D``. With
        missing values (NaN), each row's likelihood is its marginal over its
        observed coordinates (:mod:`.incomplete`; one compiled model then
        serves every data set of that ``D`` with missing values).
    n_components : int
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    jacobian : bool, default=True
        Include the Jacobians of the change to unconstrained coordinates (the
        density NUTS samples). With False the model's log density is the log
        posterior density in the ``(w, mu, Sigma)`` parametrisation (up to a
        constant), whose maximum is MAP-EM's estimate: a test of the model.

    Returns
    -------
    pymc.Model
        Free variables :data:`FREE_VARIABLES` (all ``pm.Flat``: their density
        is in the two potentials ``loglik`` and ``prior``).
    """
    pm, _ = _import_pymc()
    import pytensor.tensor as pt

    X = np.asarray(X, dtype=np.float64)
    d, k = X.shape[1], n_components
    shapes = _free_shapes(d, k, covariance_type)
    values = _data_values(X, _hyperparameters(X, k))
    with pm.Model() as model:
        data = {name: pm.Data(name, value) for name, value in values.items()}
        free = {name: pm.Flat(name, shape=shape) for name, shape in shapes.items()}
        logits = pt.concatenate([free["logits"], pt.zeros(1)]) if k > 1 else pt.zeros(1)
        log_w = logits - pt.logsumexp(logits)
        x = data["X"]
        diff = x[None, :, :] - free["mu"][:, None, :]  # (K, N, D)
        if "observed" in data:
            diff = diff * data["observed"][None, :, :]  # zero where missing
        z, mean_z, log_det, trace_term, wishart_log_det, log_jacobian, factor = (
            _precision_terms(free, data, diff, d, k, covariance_type)
        )
        if "observed" in data:
            component = log_w[:, None] + observed_component(
                data, diff, z, factor, log_det, covariance_type, d
            )
        else:
            component = (
                log_w[:, None]
                + log_det[:, None]
                - 0.5 * pt.sum(z**2, axis=2)
                - 0.5 * d * np.log(2 * np.pi)
            )
        pm.Potential("loglik", pt.sum(pt.logsumexp(component, axis=0)))
        nu, kappa = data["prior_dof"], data["prior_shrinkage"]
        # log IW(Sigma | nu, Lambda) up to constants, in terms of U:
        # (nu + D + 1) log|U| - tr(Lambda U U^T) / 2, per covariance matrix.
        inverse_wishart = (nu + d + 1) * wishart_log_det - 0.5 * trace_term
        mean_prior = (
            pt.sum(log_det)
            + 0.5 * d * k * pt.log(kappa)
            - 0.5 * kappa * pt.sum(mean_z**2)
        )
        prior = inverse_wishart + mean_prior
        if jacobian:
            # Dirichlet(1) is flat on the simplex; softmax's Jacobian is prod w_k.
            prior = prior + log_jacobian + pt.sum(log_w)
        pm.Potential("prior", prior)
    return model


def _precision_terms(free, data, diff, d: int, k: int, covariance_type: str) -> tuple:
    """The terms of :func:`build_model`'s log density that depend on the covariance.

    ``free`` and ``data`` are the model's variables and data containers,
    ``diff`` the (K, N, D) differences of the data from the means. Returns
    ``(z, mean_z, log_det, trace_term, wishart_log_det, log_jacobian,
    factor)``: the differences and the means' offsets from the prior mean
    whitened by each precision's factor (``z`` (K, N, D), ``mean_z`` (K, D)),
    ``log |U_k|`` per component, ``tr(Lambda_P Sigma_k^-1)`` summed, the log
    determinant in the inverse Wishart, the log Jacobian of the change to
    free coordinates, and the factors: ``U_k`` (K, D, D) for full and tied
    precisions, the scales ``1 / sigma_kd`` (K, D) for diagonal and
    spherical ones.
    """
    import pytensor.tensor as pt

    mu = free["mu"]
    log_diag = free["log_diag"]
    if covariance_type in ("full", "tied"):
        factor = pt.zeros((d, d)) if covariance_type == "tied" else pt.zeros((k, d, d))
        index = np.arange(d)
        factor = pt.set_subtensor(factor[..., index, index], pt.exp(log_diag))
        if d > 1:
            rows, columns = np.tril_indices(d, -1)
            factor = pt.set_subtensor(factor[..., rows, columns], free["offdiag"])
        factors = pt.broadcast_to(factor, (k, d, d))
        # z[k, n, :] = (x_n - mu_k)^T U_k
        z = pt.sum(diff[:, :, :, None] * factors[:, None, :, :], axis=2)
        mean_z = pt.sum((mu - data["prior_mean"])[:, :, None] * factors, axis=1)
        log_det = pt.sum(log_diag, axis=-1) * pt.ones(k)  # log |U_k|
        # tr(Lambda U U^T) = || C^T U ||_F^2 with Lambda = C C^T
        chol_t = data["prior_scale_chol"].T
        if covariance_type == "tied":
            trace_term = pt.sum(pt.dot(chol_t, factor) ** 2)
            wishart_log_det = pt.sum(log_diag)
            diag_sum = pt.sum(log_diag * np.arange(d, 0, -1))
        else:
            products = pt.sum(chol_t[None, :, :, None] * factors[:, None, :, :], axis=2)
            trace_term = pt.sum(products**2)
            wishart_log_det = pt.sum(log_diag)
            diag_sum = pt.sum(log_diag * np.arange(d, 0, -1))
        # P = U U^T -> Sigma: log|dSigma/dP| = -(D + 1) log|P|;
        # (log diag, offdiag) -> P: sum_i (D - i + 2) log U_ii (i from 1).
        log_jacobian = -2.0 * (d + 1) * wishart_log_det + diag_sum + wishart_log_det
        factor = factors
    else:
        if covariance_type == "diag":
            scales = pt.exp(log_diag)  # (K, D): 1 / sigma_kd
            log_det = pt.sum(log_diag, axis=1)
            trace_term = pt.sum(pt.diag(data["prior_scale"])[None, :] * scales**2)
        else:
            scales = pt.exp(log_diag)[:, None] * pt.ones(d)  # (K, D)
            log_det = d * log_diag
            trace_term = pt.sum(pt.trace(data["prior_scale"]) * pt.exp(2 * log_diag))
        z = diff * scales[:, None, :]
        mean_z = (mu - data["prior_mean"]) * scales
        wishart_log_det = pt.sum(log_det)
        # Sigma = exp(-2 a) per entry: log|dSigma/da| = -2 a per entry.
        log_jacobian = -2.0 * pt.sum(log_diag)
        factor = scales
    return z, mean_z, log_det, trace_term, wishart_log_det, log_jacobian, factor
