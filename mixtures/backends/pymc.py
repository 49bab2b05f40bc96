"""The ``pymc`` (NUTS) and ``pymc-advi`` backends: a Bayesian Gaussian mixture.

The model
---------
The component labels are marginalised out. With ``K`` components, ``D``
features and the data's mean ``xbar`` and (unbiased) covariance ``S``::

    w                     ~ Dirichlet(1, ..., 1)
    Sigma_k               ~ InverseWishart(nu_P, Lambda_P)
    mu_k | Sigma_k        ~ Normal(mu_P, Sigma_k / kappa_P)
    x_n                   ~ sum_k w_k Normal(mu_k, Sigma_k)

with the hyper-parameters of Fraley & Raftery (2007), "Bayesian
regularization for normal mixture estimation and model-based clustering",
*Journal of Classification* 24:155-181 (also R mclust's ``defaultPrior``):
``mu_P = xbar``, ``kappa_P = 0.01``, ``nu_P = D + 2`` and
``Lambda_P = S / K^(2/D)``. For ``tied`` the inverse Wishart is put once on
the shared covariance; for ``diag`` and ``spherical`` it is the same density
evaluated on the model's diagonal or scalar covariances. This is exactly the
prior of gmmlab's MAP-EM (``prior="default"``, :mod:`mixtures.prior`), so
MAP-EM's estimate is this posterior's mode (in the ``Sigma`` parametrisation)
and is reported beside the posterior mean.

Why this prior
~~~~~~~~~~~~~~
*It keeps variances away from zero.* The likelihood of a mixture is unbounded:
a component centred on a data point whose variance tends to zero sends it to
infinity. A prior whose density is positive at ``Sigma = 0`` (the half-normal
scale priors of the previous version) leaves the posterior improper near
that point, and on data with ties (a series with 13 tied values) NUTS found a
component of variance 6e-10. The inverse-Wishart density contains
``exp(-tr(Lambda_P Sigma^-1) / 2)``, which vanishes faster than any power of
``Sigma`` as ``Sigma -> 0``: the posterior is proper and has no mass there.
*It is scaled to the data,* through ``S`` and ``xbar``, so it is the same
model whatever the units. *It is weak on the means, not always on the
covariances:* ``kappa_P = 0.01`` makes the prior on a mean worth a hundredth
of a data point, and ``nu_P = D + 2`` is the smallest integer degree of
freedom with a finite prior mean of ``Sigma``; but in the MAP covariance it
acts as ``2D + 4`` extra points carrying the scatter ``Lambda_P``, about one
cluster's spread. Against a component of a few points, or one much tighter
than ``Lambda_P``, that dominates: the MAP and the posterior's covariance
then sit well above the maximum-likelihood one. Every fit records the
prior's weight per component (:func:`prior_strength`: its points against the
component's ``n_k``, and its share of the covariance's scatter). The
hierarchical prior of Richardson & Green (1997), with a common
Gamma-distributed scale, was considered and rejected: it is zero-avoiding only
through its hyper-prior, and with many tied values its marginal is improper
near the scale's zero.

Sampling
--------
The sampled coordinates are unconstrained: ``K - 1`` weight logits
(``w = softmax(logits, 0)``), the means, and each precision's Cholesky factor
``U_k`` (``Sigma_k^-1 = U_k U_k^T``, lower triangular) with log diagonal.
The log density is written directly in those coordinates (likelihood by
``logsumexp`` over components, the priors above, and the Jacobians of the
changes of variables), so the likelihood costs one pass over the data per
gradient. All the data are conditioned on by default; ``max_samples`` (an
explicit option) conditions on a random subsample instead, and the fit then
reports ``n_conditioned`` beside its numbers.

Chain starts, and what r-hat certifies
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
MAP-EM is restarted 20 times (k-means++ seeds) and its results grouped into
distinct modes (:func:`_map_em_modes`). The chains are dealt round the modes
within 10 nats of log posterior density of the best, best first, so chains
start in different modes whenever the restarts found several; and every
chain starts scattered about its mode by about one component standard
deviation on each mean (:func:`_chain_starts`, :func:`_dispersed`), which is
``sqrt(n_k)`` posterior standard deviations: overdispersed relative to the
posterior, as r-hat needs. (The previous starts moved means by a tenth of a
standard deviation: for a component of 8 points, a third of the posterior's
own spread.) ``init="random"`` starts every chain at a random point instead.
The diagnostics say where each chain started (``chain_starts``: "mode i" or
"random"), how many distinct modes the restarts found (``map_em_modes``) and
how many the chains started in (``chain_start_modes``, beside
``chain_random_starts``).

There is no ordering constraint: in more than one dimension no coordinate
ordering identifies components that overlap in that coordinate. Label
switching is resolved from the posterior itself, by the Kullback-Leibler
relabelling of Stephens (2000) (:mod:`mixtures.relabel`), never by matching
draws to an EM fit; r-hat and ESS are computed on the relabelled draws.
Chains that settle in different modes (not permutations of one another) stay
different after relabelling, so r-hat reports them; the fit is then
classified unconverged with that reason
(:func:`mixtures.diagnostics.sampler_findings`). An r-hat at most
:data:`~mixtures.diagnostics.MAX_R_HAT` certifies that chains from those
starts came to sample one distribution; it cannot
certify that no other mode holds mass that no start led to. When every
restart reached one mode (``chain_start_modes`` 1), it certifies mixing
within that mode, from starts far wider than the posterior.

The default sampler is nutpie (a Rust NUTS, with the log density compiled by
PyTensor's numba backend), called on a compiled model cached per
``(D, K, covariance type)`` in the process; PyTensor caches the compiled
kernels on disk, so a new process pays a fraction of the first compile.
``nuts_sampler="pymc"`` uses PyMC's own NUTS (C backend, also disk-cached).

Reproducibility
~~~~~~~~~~~~~~~
A fit is a function of its seed: the chain starts are computed from it
before sampling, and nutpie's chains are seeded from it. nutpie asks for
each chain's start from its worker threads in whatever order they run, so
each start is tied to the seed nutpie gives that chain, never to the order
of the calls (:func:`_nutpie_chain_seeds`). On one machine and one
installation, two fits with the same seed are identical to the last bit,
in one process or in two, whatever the number of cores. On another CPU they
are not: numba compiles gmmlab's EM kernel (which finds the chain starts)
and PyTensor's log density for the host's instruction set, with fast-math,
so vector widths and fused multiply-adds change the last bits of the
arithmetic, and a Hamiltonian trajectory amplifies a last-bit difference
until the chains are different random walks. The draws are then another
sample from the same posterior: the estimates agree within their Monte
Carlo error, and sample-based summaries (bulk ESS, Pareto-k counts) vary as
they do between seeds. On S1 with the default sweep's seed, compiling for
three CPU targets (``NUMBA_CPU_NAME`` host, haswell, generic) on one machine
gave log-likelihoods at the posterior mean of -114.602, -114.734 and
-114.523 and minimum bulk ESS of 2285, 2445 and 2015 (with the previous,
tighter starts: -114.888, -114.864 and -114.577; 972, 1296 and 2905).

Criticism
---------
From up to ``pointwise_draws`` thinned draws: the pointwise log-likelihood
(PSIS-LOO and WAIC with ArviZ, Pareto-k; NUTS only, since ADVI's draws are
not posterior draws), each point's responsibilities with their posterior
standard deviation, the posterior predictive density of each feature (mean
and 94% band), the data's histogram of each feature against a
*simultaneous* 94% band of replicated histograms with the number of bars
expected outside it under the model (:func:`_predictive_density`), and a
posterior predictive check on tied values (the number of tied values in
replicated data sets against the data's). Wherever the MAP or the posterior
is set beside the maximum-likelihood estimate, :func:`prior_strength` says
how much of each MAP covariance the prior supplies.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import warnings
from typing import Any

import numpy as np
from scipy.special import logsumexp

from mixtures.align import align
from mixtures.backends.base import (
    MixtureFit,
    Stopwatch,
    check_backend_input,
    reject_unknown_options,
    seed_from,
    total_log_likelihood,
)
from mixtures.diagnostics import sampler_findings
from mixtures.em import e_step, score_samples
from mixtures.fitting import fit_em
from mixtures.params import MixtureParams
from mixtures.prior import ConjugatePrior, ResolvedPrior
from mixtures.relabel import apply_permutations, stephens_relabel

__all__ = [
    "PyMCAdviBackend",
    "PyMCBackend",
    "build_model",
    "draws_to_params",
    "params_to_free",
    "posterior_criticism",
    "prior_strength",
    "simultaneous_band",
]

INSTALL_HINT = "pip install 'gmmlab[bayes]'  (installs pymc, arviz and nutpie)"

#: Default options of each backend; the keys are the options it accepts.
_NUTS_DEFAULTS = {
    "draws": 1000,
    "max_draws": 4000,
    "tune": 1000,
    "chains": 4,
    "cores": None,
    "target_accept": 0.8,
    "nuts_sampler": "nutpie",
    "init": "em",
    "jitter": 1.0,
    "max_trace_draws": 1000,
    "pointwise_draws": 1000,
    "max_samples": None,
}
_ADVI_DEFAULTS = {
    "n_iter": 10_000,
    "learning_rate": 0.01,
    "tolerance": 1e-2,
    "draws": 1000,
    "init": "em",
    "max_trace_draws": 1000,
    "pointwise_draws": 1000,
    "max_samples": None,
}
#: Free variables of the model, in the order of the sampler's flat vector.
FREE_VARIABLES = ("logits", "mu", "log_diag", "offdiag")
#: Grid points of the posterior predictive density of each feature.
_GRID_POINTS = 200


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
    return ConjugatePrior().resolve(X, np.ones(X.shape[0]), n_components)


def _data_values(X: np.ndarray, prior: ResolvedPrior) -> dict[str, np.ndarray]:
    """The model's data containers for data ``X`` and its prior."""
    return {
        "X": np.ascontiguousarray(X, dtype=np.float64),
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
        so one compiled model serves every data set of the same ``D``.
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
        mu = free["mu"]
        log_diag = free["log_diag"]
        x = data["X"]
        diff = x[None, :, :] - mu[:, None, :]  # (K, N, D)
        if covariance_type in ("full", "tied"):
            factor = (
                pt.zeros((d, d)) if covariance_type == "tied" else pt.zeros((k, d, d))
            )
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
                products = pt.sum(
                    chol_t[None, :, :, None] * factors[:, None, :, :], axis=2
                )
                trace_term = pt.sum(products**2)
                wishart_log_det = pt.sum(log_diag)
                diag_sum = pt.sum(log_diag * np.arange(d, 0, -1))
            # P = U U^T -> Sigma: log|dSigma/dP| = -(D + 1) log|P|;
            # (log diag, offdiag) -> P: sum_i (D - i + 2) log U_ii (i from 1).
            log_jacobian = -2.0 * (d + 1) * wishart_log_det + diag_sum + wishart_log_det
        else:
            if covariance_type == "diag":
                scales = pt.exp(log_diag)  # (K, D): 1 / sigma_kd
                log_det = pt.sum(log_diag, axis=1)
                trace_term = pt.sum(pt.diag(data["prior_scale"])[None, :] * scales**2)
            else:
                scales = pt.exp(log_diag)[:, None] * pt.ones(d)  # (K, D)
                log_det = d * log_diag
                trace_term = pt.sum(
                    pt.trace(data["prior_scale"]) * pt.exp(2 * log_diag)
                )
            z = diff * scales[:, None, :]
            mean_z = (mu - data["prior_mean"]) * scales
            wishart_log_det = pt.sum(log_det)
            # Sigma = exp(-2 a) per entry: log|dSigma/da| = -2 a per entry.
            log_jacobian = -2.0 * pt.sum(log_diag)
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


# ---------------------------------------------------------------------------
# Compiled models, cached


_COMPILED: dict[tuple, Any] = {}


def _compiled_nutpie(X: np.ndarray, n_components: int, covariance_type: str):
    """Nutpie's compiled model for this shape, built once per process.

    Returns ``(compiled, compile_seconds)``; ``compile_seconds`` is 0 when
    the model came from the cache.
    """
    try:
        import nutpie
    except ImportError as error:
        raise ImportError(
            f"nuts_sampler='nutpie' needs nutpie: {INSTALL_HINT}; or pass "
            "nuts_sampler='pymc'."
        ) from error
    key = ("nutpie", X.shape[1], n_components, covariance_type)
    if key in _COMPILED:
        return _COMPILED[key], 0.0
    start = time.perf_counter()
    model = build_model(X, n_components, covariance_type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = nutpie.compile_pymc_model(
            model,
            var_names=list(_free_shapes(X.shape[1], n_components, covariance_type)),
        )
    _COMPILED[key] = compiled
    return compiled, time.perf_counter() - start


# ---------------------------------------------------------------------------
# Chain starts

#: MAP-EM restarts (k-means++ seeds) searched for distinct posterior modes.
_MODE_RESTARTS = 20
#: A mode more than this many nats of log posterior density below the best is
#: given no chain: its posterior mass is below about e^-10 of the best mode's
#: (unless it is e^10 times wider), so a chain stuck there would fail r-hat
#: over mass that does not matter.
_MODE_GAP = 10.0
#: Two MAP-EM results are one mode when, components matched, their means are
#: within this Mahalanobis distance, their covariances this close (relative
#: Frobenius norm) and their weights this close.
_SAME_MODE = 0.05


@dataclasses.dataclass(frozen=True)
class _Mode:
    """A posterior mode found by MAP-EM, and how many restarts reached it."""

    params: MixtureParams
    log_posterior: float
    restarts: int


@dataclasses.dataclass(frozen=True)
class _ChainStarts:
    """Each chain's start (free coordinates) and where it came from.

    ``origins[c]`` is ``"mode i"`` (scattered about the i-th best MAP-EM
    mode) or ``"random"``; ``modes`` are every distinct mode the restarts
    found.
    """

    starts: tuple[dict[str, np.ndarray], ...]
    origins: tuple[str, ...]
    modes: tuple[_Mode, ...]

    def diagnostics(self) -> dict[str, Any]:
        """The ``chain_start*`` and ``map_em_modes`` diagnostics."""
        used = {origin for origin in self.origins if origin != "random"}
        return {
            "map_em_modes": len(self.modes),
            "map_em_mode_restarts": [mode.restarts for mode in self.modes],
            "map_em_mode_log_posteriors": [mode.log_posterior for mode in self.modes],
            "chain_starts": list(self.origins),
            "chain_start_modes": len(used),
            "chain_random_starts": sum(o == "random" for o in self.origins),
        }


def _map_em(X, n_components, covariance_type, seed, initial_params=None):
    """One MAP-EM fit: from k-means++ seeded by ``seed``, or from ``initial_params``.

    SQUAREM-accelerated, to ``tol=1e-8``: restarts that reach one mode then
    agree far within :data:`_SAME_MODE`.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_em(
            X,
            n_components,
            covariance_type=covariance_type,
            init_params="k-means++",
            random_state=seed,
            initial_params=initial_params,
            prior="default",
            reg_covar=0.0,  # the prior keeps covariances positive definite
            tol=1e-8,
            max_iter=1000,
            acceleration="squarem",
        ).params


def _same_mode(first: MixtureParams, second: MixtureParams) -> bool:
    """Whether two MAP-EM results are the same mode (:data:`_SAME_MODE`)."""
    second = align(second, first)
    covariances = first.full_covariances()
    others = second.full_covariances()
    for k in range(first.n_components):
        difference = second.means[k] - first.means[k]
        average = 0.5 * (covariances[k] + others[k])
        distance = np.sqrt(difference @ np.linalg.solve(average, difference))
        spread = np.linalg.norm(others[k] - covariances[k]) / np.linalg.norm(average)
        if (
            distance > _SAME_MODE
            or spread > _SAME_MODE
            or abs(second.weights[k] - first.weights[k]) > _SAME_MODE
        ):
            return False
    return True


def _map_em_modes(
    X: np.ndarray, n_components: int, covariance_type: str, seed: int
) -> tuple[_Mode, ...]:
    """The distinct modes :data:`_MODE_RESTARTS` MAP-EM restarts reach, best first.

    Restart ``r`` is seeded by the ``r``-th state of ``SeedSequence(seed)``;
    modes are ranked by log posterior density (log-likelihood plus the log
    prior of :mod:`mixtures.prior`, in the ``Sigma`` parametrisation).
    """
    prior = _hyperparameters(X, n_components)
    modes: list[_Mode] = []
    for restart_seed in np.random.SeedSequence(seed).generate_state(_MODE_RESTARTS):
        params = _map_em(X, n_components, covariance_type, int(restart_seed))
        value = total_log_likelihood(X, params) + prior.log_density(params)
        for index, mode in enumerate(modes):
            if _same_mode(mode.params, params):
                best = params if value > mode.log_posterior else mode.params
                modes[index] = _Mode(
                    best, max(value, mode.log_posterior), mode.restarts + 1
                )
                break
        else:
            modes.append(_Mode(params, value, 1))
    return tuple(sorted(modes, key=lambda mode: -mode.log_posterior))


def _random_params(
    X: np.ndarray, n_components: int, covariance_type: str, rng: np.random.Generator
) -> MixtureParams:
    """A start owing nothing to EM: means at distinct random rows of ``X``.

    Every covariance is the prior's scale ``Lambda_P`` (the data's covariance
    shrunk by ``K^(2/D)``, about one cluster's spread when K clusters tile the
    data) and the weights are equal.
    """
    d = X.shape[1]
    rows = rng.choice(X.shape[0], size=n_components, replace=False)
    scale = _hyperparameters(X, n_components).scale
    return MixtureParams(
        np.full(n_components, 1.0 / n_components),
        X[rows],
        np.broadcast_to(scale, (n_components, d, d)),
    ).as_covariance_type(covariance_type)


def _dispersed(
    params: MixtureParams, covariance_type: str, jitter: float, rng
) -> dict[str, np.ndarray]:
    """The free coordinates of ``params``, scattered about it.

    Each mean moves by ``jitter`` times its component's standard deviation
    in each coordinate: ``sqrt(n_k)`` times the posterior standard deviation
    of that mean, so chains start well apart relative to the posterior
    (Gelman and Rubin's overdispersed starts) yet in the mode's basin. The
    log scales and weight logits move by ``jitter / 2`` (scales by a factor
    of about ``e^(jitter / 2)``), and the off-diagonal entries of a
    precision's Cholesky factor by ``jitter / 2`` times their row's diagonal
    entry, so the perturbation does not depend on the data's units.
    """
    free = params_to_free(params, covariance_type)
    spread = np.sqrt(np.diagonal(params.full_covariances(), axis1=1, axis2=2))
    start = {}
    for name, value in free.items():
        noise = rng.standard_normal(np.shape(value))
        if name == "mu":
            start[name] = value + jitter * spread * noise
        elif name == "offdiag":
            d = params.n_features
            rows, _ = np.tril_indices(d, -1)
            diagonal = np.exp(free["log_diag"])[..., rows]
            start[name] = value + 0.5 * jitter * diagonal * noise
        else:
            start[name] = value + 0.5 * jitter * noise
    return start


def _chain_starts(
    X: np.ndarray,
    n_components: int,
    covariance_type: str,
    seed: int,
    chains: int,
    *,
    init: str = "em",
    jitter: float = 1.0,
) -> _ChainStarts:
    """Where each chain starts: scattered about distinct MAP-EM modes.

    With ``init="em"``, chain ``c`` starts about the ``c % m``-th best of
    the ``m`` modes within :data:`_MODE_GAP` of the best
    (:func:`_map_em_modes`), scattered by :func:`_dispersed`: every such
    mode gets a chain when there are at most ``chains``, and chains start
    apart even when there is one. With ``init="random"`` every chain starts
    at a random point (:func:`_random_params`) instead: the harder test, but
    a chain can then settle in a mode of negligible mass (on S2, a chain
    from a random point stayed 2,000 nats of log-likelihood below the
    others, with 261 divergent transitions), failing r-hat for a mode that
    does not matter. A function of ``seed`` alone.
    """
    modes = _map_em_modes(X, n_components, covariance_type, seed)
    near = [m for m in modes if m.log_posterior >= modes[0].log_posterior - _MODE_GAP]
    starts, origins = [], []
    for chain in range(chains):
        rng = np.random.default_rng([seed, 1, chain])
        if init == "random":
            random = _random_params(X, n_components, covariance_type, rng)
            starts.append(params_to_free(random, covariance_type))
            origins.append("random")
        else:
            mode = chain % len(near)
            starts.append(_dispersed(near[mode].params, covariance_type, jitter, rng))
            origins.append(f"mode {mode}")
    return _ChainStarts(tuple(starts), tuple(origins), modes)


def _flatten(start: dict[str, np.ndarray], shapes: dict[str, tuple]) -> np.ndarray:
    return np.concatenate([np.ravel(start[name]) for name in shapes])


# ---------------------------------------------------------------------------
# Sampling


def _chain_seed(value) -> int:
    """The seed nutpie passes a start function, as an int."""
    return int(np.asarray(value).ravel()[0])


def _nutpie_chain_seeds(compiled, chains: int, seed: int, point) -> list[int]:
    """The seed nutpie hands each chain's start function, in chain order.

    nutpie derives every chain's seed from ``seed`` and the chain's index,
    but calls the start function from its worker threads in whatever order
    they run, so a start chosen by call order would change from run to run
    (it did, with four cores). One draw on one core, where the chains run in
    index order, reads the seeds off; each chain's start is then chosen by
    its seed.
    """
    import nutpie

    seen: list[int] = []

    def record(chain_seed) -> np.ndarray:
        seen.append(_chain_seed(chain_seed))
        return point

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nutpie.sample(
            dataclasses.replace(compiled, initial_point_func=record),
            draws=1,
            tune=1,
            chains=chains,
            cores=1,
            seed=seed,
            progress_bar=False,
        )
    return seen


def _sample_nutpie(X, n_components, covariance_type, settings, seed, starts):
    import nutpie

    compiled, compile_seconds = _compiled_nutpie(X, n_components, covariance_type)
    shapes = _free_shapes(X.shape[1], n_components, covariance_type)
    # The chain starts are flattened in this order: nutpie's must be the same.
    names, _, layout = compiled.shape_info
    if list(names) != list(shapes) or [tuple(s) for s in layout] != list(
        shapes.values()
    ):
        raise RuntimeError(
            "nutpie lays out the free variables as "
            f"{dict(zip(names, map(tuple, layout), strict=False))}, not {shapes}: "
            "the chain starts would be scrambled. Please report this with your "
            "nutpie version."
        )
    values = _data_values(X, _hyperparameters(X, n_components))
    # Only the containers this covariance type's graph uses are shared.
    compiled = compiled.with_data(
        **{
            name: value
            for name, value in values.items()
            if name in compiled.shared_data
        }
    )
    flat = [_flatten(start, shapes) for start in starts.starts]
    chain_of = {
        chain_seed: chain
        for chain, chain_seed in enumerate(
            _nutpie_chain_seeds(compiled, settings["chains"], seed, flat[0])
        )
    }

    def initial_point(chain_seed) -> np.ndarray:
        chain_seed = _chain_seed(chain_seed)
        if chain_seed in chain_of:
            return flat[chain_of[chain_seed]]
        # nutpie retries a start whose density is not finite with a new seed.
        rng = np.random.default_rng(chain_seed % 2**63)
        random = _random_params(X, n_components, covariance_type, rng)
        return _flatten(params_to_free(random, covariance_type), shapes)

    compiled = dataclasses.replace(compiled, initial_point_func=initial_point)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = nutpie.sample(
            compiled,
            draws=settings["draws"],
            tune=settings["tune"],
            chains=settings["chains"],
            cores=settings["cores"],
            seed=seed,
            target_accept=settings["target_accept"],
            progress_bar=False,
            save_warmup=False,
        )
    sampling_seconds = time.perf_counter() - start
    draws = {name: np.asarray(idata.posterior[name].values) for name in shapes}
    divergences = int(np.asarray(idata.sample_stats["diverging"]).sum())
    return idata, draws, divergences, compile_seconds, sampling_seconds


def _sample_pymc(X, n_components, covariance_type, settings, seed, starts):
    pm, _ = _import_pymc()
    shapes = _free_shapes(X.shape[1], n_components, covariance_type)
    model = build_model(X, n_components, covariance_type)
    # pm.sample compiles inside the call: its compile time cannot be told
    # apart and is part of sampling_seconds.
    compile_seconds = float("nan")
    start = time.perf_counter()
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = pm.sample(
            draws=settings["draws"],
            tune=settings["tune"],
            chains=settings["chains"],
            cores=1 if settings["cores"] is None else settings["cores"],
            target_accept=settings["target_accept"],
            nuts_sampler=settings["nuts_sampler"],
            random_seed=seed,
            initvals=list(starts.starts),
            init="adapt_diag",
            progressbar=False,
            compute_convergence_checks=False,
        )
    sampling_seconds = time.perf_counter() - start
    draws = {name: np.asarray(idata.posterior[name].values) for name in shapes}
    divergences = int(np.asarray(idata.sample_stats["diverging"]).sum())
    return idata, draws, divergences, compile_seconds, sampling_seconds


# ---------------------------------------------------------------------------
# Summaries and criticism


def _summaries(draws: dict[str, np.ndarray]) -> dict[str, Any]:
    """r_hat, bulk ESS, posterior SD and 94% HDI of (chain, draw, ...) draws."""
    _, az = _import_pymc()
    # ArviZ logs "Shape validation failed" for ADVI's one chain of draws: a
    # shape this function expects, whose r-hat is NaN and never judged.
    # ArviZ keeps its own logger object, not the one logging.getLogger gives.
    arviz_log = getattr(az, "_log", None) or logging.getLogger("arviz")
    level = arviz_log.level
    arviz_log.setLevel(logging.ERROR)
    try:
        dataset = az.convert_to_dataset(draws)
        with warnings.catch_warnings():
            # One chain, or a constant entry (a covariance's zeros), gives NaN
            # r_hat.
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", UserWarning)
            r_hat = az.rhat(dataset)
            ess = az.ess(dataset, method="bulk")
            hdi = az.hdi(dataset, hdi_prob=0.94)
    finally:
        arviz_log.setLevel(level)

    def finite(values):
        array = np.concatenate([np.ravel(v.values) for v in values.data_vars.values()])
        return array[np.isfinite(array)]

    return {
        "r_hat_max": float(finite(r_hat).max()) if finite(r_hat).size else float("nan"),
        "ess_bulk_min": float(finite(ess).min()) if finite(ess).size else float("nan"),
        "posterior_sd": {
            name: np.asarray(v.std(axis=(0, 1))) for name, v in draws.items()
        },
        "hdi_94": {name: np.asarray(hdi[name].values) for name in draws},
    }


def _relabel(X, weights, means, covariances, seed):
    """Stephens-relabelled (C, S, ...) draws and what the relabelling did.

    Returns ``(weights, means, covariances, info)``; ``info`` holds
    ``relabel_method``, ``relabel_iterations``, ``relabel_converged`` and
    ``relabelled_draws`` (empty with one component, which needs none).
    """
    n_chains, n_draws, k = weights.shape
    if k == 1:
        return weights, means, covariances, {}
    flat = (
        weights.reshape(-1, k),
        means.reshape(-1, *means.shape[2:]),
        covariances.reshape(-1, *covariances.shape[2:]),
    )
    result = stephens_relabel(X, *flat, seed=seed)
    weights, means, covariances = (
        array.reshape(n_chains, n_draws, *array.shape[1:])
        for array in apply_permutations(result.permutations, *flat)
    )
    return (
        weights,
        means,
        covariances,
        {
            "relabel_method": "stephens-kl",
            "relabel_iterations": result.n_iter,
            "relabel_converged": result.converged,
            "relabelled_draws": result.n_changed,
        },
    )


def _thin(n_chains: int, n_draws: int, limit: int) -> np.ndarray:
    """Evenly spaced draw indices, at most ``limit`` draws over all chains."""
    step = max(1, int(np.ceil(n_chains * n_draws / max(limit, 1))))
    return np.arange(0, n_draws, step)


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
        a decimal grid); and ``predictive_density``: per feature, the
        posterior predictive density on a grid and the data's histogram with
        the simultaneous band of replicated histograms
        (:func:`_predictive_density`).
    """
    _, az = _import_pymc()
    n_chains, n_draws, k, d = means.shape
    n = X.shape[0]
    pointwise = np.empty((n_chains, n_draws, n))
    resp_sum = np.zeros((n, k))
    resp_square = np.zeros((n, k))
    for c in range(n_chains):
        for s in range(n_draws):
            params = MixtureParams(weights[c, s], means[c, s], covariances[c, s])
            log_norm, log_resp = e_step(X, params)
            pointwise[c, s] = log_norm
            resp = np.exp(log_resp)
            resp_sum += resp
            resp_square += resp**2
    total = n_chains * n_draws
    resp_mean = resp_sum / total
    resp_sd = np.sqrt(np.maximum(resp_square / total - resp_mean**2, 0.0))
    loo_summary = waic_summary = None
    if loo:
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
            "pareto_k_over_0_7": int(np.sum(pareto_k > 0.7)),
            "n": int(scored.shape[-1]),
        }
        waic_summary = {
            "elpd": float(waic.elpd_waic),
            "se": float(waic.se),
            "p": float(waic.p_waic),
        }
    rng = np.random.default_rng([seed, 2])
    flat_w = weights.reshape(-1, k)
    flat_m = means.reshape(-1, k, d)
    flat_c = covariances.reshape(-1, k, d, d)
    picks = rng.choice(
        flat_w.shape[0], size=min(ppc_replicates, flat_w.shape[0]), replace=False
    )
    resolution = _resolution(X)
    replicated_ties = []
    for s in picks:
        draw = MixtureParams(flat_w[s] / flat_w[s].sum(), flat_m[s], flat_c[s])
        replicate, _ = draw.sample(n, random_state=rng)
        if resolution is not None:
            # Recorded as the data were: a continuous model's replicates tie
            # only through rounding, so this compares like with like.
            replicate = np.round(replicate / resolution) * resolution
        replicated_ties.append(_ties(replicate))
    observed_ties = _ties(X)
    replicated = np.asarray(replicated_ties)
    return {
        "loo": loo_summary,
        "waic": waic_summary,
        "responsibilities_mean": resp_mean,
        "responsibilities_sd": resp_sd,
        "ppc_ties_observed": observed_ties,
        "ppc_ties_replicated": float(replicated.mean()),
        "ppc_ties_p": float(np.mean(replicated >= observed_ties)),
        "ppc_resolution": resolution,
        "predictive_density": _predictive_density(
            X, (flat_w, flat_m, flat_c), picks, rng
        ),
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
    for f in range(X.shape[1]):
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
                "feature": f,
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
    component the prior can dominate.

    Returns
    -------
    dict
        ``component_points`` (n_k), ``prior_points`` (m_k) and
        ``prior_scatter_share`` (``tr E_k / tr(W_k + E_k)``: the share of
        the MAP covariance's scatter the prior contributes), each of shape
        (K,), in the order of ``params``' components.
    """
    prior = _hyperparameters(X, params.n_components)
    _, log_resp = e_step(X, params)
    resp = np.exp(log_resp)
    points = resp.sum(axis=0)
    centres = (resp.T @ X) / points[:, None]
    centred = X[None, :, :] - centres[:, None, :]  # (K, N, D)
    scatter = np.einsum("nk,kni,knj->kij", resp, centred, centred)
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


def _params_dict(params: MixtureParams) -> dict[str, list]:
    return {
        "weights": np.asarray(params.weights).tolist(),
        "means": np.asarray(params.means).tolist(),
        "covariances": params.full_covariances().tolist(),
    }


def _chain_traces(X, weights, means, covariances, max_draws) -> tuple[np.ndarray, ...]:
    """Mean per-sample log-likelihood of thinned draws, one trace per chain."""
    n_chains, n_draws = weights.shape[:2]
    keep = _thin(n_chains, n_draws, max_draws)
    return tuple(
        np.array(
            [
                float(
                    np.mean(
                        score_samples(
                            X,
                            MixtureParams(
                                weights[c, s] / weights[c, s].sum(),
                                means[c, s],
                                covariances[c, s],
                            ),
                        )
                    )
                )
                for s in keep
            ]
        )
        for c in range(n_chains)
    )


def _posterior_fit(
    backend: str,
    version: str,
    data: np.ndarray,
    sample: np.ndarray,
    covariance_type: str,
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    settings: dict[str, Any],
    seed: int,
    *,
    relabelling: dict[str, Any],
    idata,
    trace,
    trace_kind: str,
    n_iter: int,
    seconds: float,
    extra: dict[str, Any],
    modes: tuple[_Mode, ...],
    restart_traces=(),
    summary: dict[str, Any] | None = None,
    loo: bool = True,
) -> MixtureFit:
    """Summarise and criticise posterior draws of shape (C, S, ...).

    The draws come relabelled (``relabelling`` says how, :func:`_relabel`);
    ``summary`` is their :func:`_summaries` when already computed; ``modes``
    are MAP-EM's (:func:`_map_em_modes`), the best of which becomes the MAP;
    ``loo=False`` leaves PSIS-LOO and WAIC out (draws not from the posterior).
    """
    n_chains, n_draws = weights.shape[:2]
    draws = {"weights": weights, "means": means, "covariances": covariances}
    if summary is None:
        summary = _summaries(draws)
    point = MixtureParams(
        weights.mean(axis=(0, 1)) / weights.mean(axis=(0, 1)).sum(),
        means.mean(axis=(0, 1)),
        covariances.mean(axis=(0, 1)),
    )
    keep = _thin(n_chains, n_draws, settings["pointwise_draws"])
    criticism = posterior_criticism(
        data,
        weights[:, keep],
        means[:, keep],
        covariances[:, keep],
        seed=seed,
        loo_rows=_subsample_rows(data.shape[0], settings["max_samples"], seed),
        loo=loo,
    )
    map_params = modes[0].params  # MAP-EM's estimate: the best restart
    strength = prior_strength(sample, map_params)
    chain_loglik = [
        total_log_likelihood(
            data,
            MixtureParams(
                weights[c].mean(0) / weights[c].mean(0).sum(),
                means[c].mean(0),
                covariances[c].mean(0),
            ),
        )
        for c in range(n_chains)
    ]
    diagnostics = {
        **summary,
        **relabelling,
        **extra,
        "n_samples": data.shape[0],
        "n_conditioned": sample.shape[0],
        "map": _params_dict(map_params),
        "map_log_likelihood": total_log_likelihood(data, map_params),
        "chain_log_likelihoods": chain_loglik,
        # The prior's weight in each MAP covariance (MAP-EM's component order).
        "prior_strength": {key: value.tolist() for key, value in strength.items()},
        "prior_points": float(strength["prior_points"].max()),
        "prior_share_max": float(strength["prior_scatter_share"].max()),
        "ppc_resolution": (
            float("nan")
            if criticism["ppc_resolution"] is None
            else criticism["ppc_resolution"]
        ),
        "ppc_bins_outside": sum(
            entry["bins_outside"] for entry in criticism["predictive_density"]
        ),
        "ppc_bins_outside_expected": sum(
            entry["bins_outside_expected"] for entry in criticism["predictive_density"]
        ),
        "ppc_bins": sum(
            entry["histogram_density"].size for entry in criticism["predictive_density"]
        ),
        "ppc_ties_observed": criticism["ppc_ties_observed"],
        "ppc_ties_replicated": criticism["ppc_ties_replicated"],
        "ppc_ties_p": criticism["ppc_ties_p"],
        "predictive_density": criticism["predictive_density"],
        "responsibilities_mean": criticism["responsibilities_mean"],
        "responsibilities_sd": criticism["responsibilities_sd"],
        # Over the rows: the posterior SD of a row's most uncertain
        # responsibility, averaged and at its largest.
        "responsibility_sd_mean": float(
            criticism["responsibilities_sd"].max(axis=1).mean()
        ),
        "responsibility_sd_max": float(criticism["responsibilities_sd"].max()),
        # The smallest variance of any component in any draw, relative to
        # the data's variance of that feature: a collapse shows here first.
        "min_variance_ratio": float(
            np.min(np.diagonal(covariances, axis1=-2, axis2=-1) / np.var(data, axis=0))
        ),
    }
    if loo:
        diagnostics.update(
            elpd_loo=criticism["loo"]["elpd"],
            elpd_loo_se=criticism["loo"]["se"],
            p_loo=criticism["loo"]["p"],
            pareto_k_max=criticism["loo"]["pareto_k_max"],
            pareto_k_bad=criticism["loo"]["pareto_k_over_0_7"],
            n_loo=criticism["loo"]["n"],
            elpd_waic=criticism["waic"]["elpd"],
            p_waic=criticism["waic"]["p"],
        )
    return MixtureFit(
        backend=backend,
        version=version,
        params=point,
        log_likelihood=total_log_likelihood(data, point),
        loglik_trace=trace,
        trace_kind=trace_kind,
        n_iter=n_iter,
        converged=False,
        seconds=seconds,
        diagnostics=diagnostics,
        restart_traces=tuple(restart_traces),
        idata=idata,
    )


def _begin(name, X, n_components, covariance_type, random_state, options, defaults):
    """Validation and set-up shared by both PyMC backends.

    Returns ``(data, settings, seed, sample)``: all rows, the merged options,
    an int seed, and the rows the posterior is conditioned on.
    """
    data = check_backend_input(X, n_components, covariance_type).astype(np.float64)
    _free_shapes(data.shape[1], n_components, covariance_type)
    reject_unknown_options(name, options, set(defaults))
    settings = {**defaults, **options}
    if settings["init"] not in ("em", "random"):
        raise ValueError(f"init must be 'em' or 'random'; got {settings['init']!r}.")
    for key in ("draws", "pointwise_draws", "max_trace_draws"):
        if (
            isinstance(settings[key], bool)
            or not isinstance(settings[key], int)
            or settings[key] < 1
        ):
            raise ValueError(f"{key} must be an integer >= 1; got {settings[key]!r}.")
    seed = seed_from(random_state)
    seed = 0 if seed is None else seed
    return data, settings, seed, _subsample(data, settings["max_samples"], seed)


# ---------------------------------------------------------------------------
# Backends


class PyMCBackend:
    """Bayesian mixture sampled with NUTS (module docstring).

    Options: ``draws`` (1000 per chain), ``tune`` (1000), ``chains`` (4),
    ``cores`` (None: as many as the machine has, up to ``chains``),
    ``target_accept`` (0.8), ``nuts_sampler`` ("nutpie"; "pymc" or any
    sampler PyMC's ``pm.sample`` accepts), ``init`` ("em": chains dealt
    round the distinct MAP-EM modes, each scattered about its mode;
    "random": every chain from a random point; see :func:`_chain_starts`),
    ``jitter`` (1.0: the scatter, in component standard deviations of each
    mean; :func:`_dispersed`), ``max_draws`` (4000:
    when the relabelled draws fail r-hat or ESS, the chains are sampled
    afresh with twice the draws, up to this many per chain; every attempt is
    in ``draw_attempts``, and a fit that still fails is unconverged),
    ``max_trace_draws`` (1000 draws scored for ``loglik_trace``),
    ``pointwise_draws`` (1000 draws for LOO, WAIC, responsibilities and the
    predictive checks), ``max_samples`` (None: all rows; an integer
    conditions on a random subsample of that many rows, and
    ``n_conditioned`` says so).

    ``converged`` means no finding of
    :func:`mixtures.diagnostics.sampler_findings` (r-hat at most
    :data:`~mixtures.diagnostics.MAX_R_HAT`, bulk ESS at least
    :data:`~mixtures.diagnostics.MIN_ESS_BULK`, no divergence), after
    relabelling. What that certifies: the chains, started about
    ``chain_start_modes`` distinct MAP-EM modes (or at
    ``chain_random_starts`` random points; ``chain_starts`` says which chain
    started where), sample one distribution. Modes that no start led to are
    not certified absent.

    Times in ``diagnostics``: ``compile_seconds`` (nutpie: building and
    compiling the model, 0 when it came from this process's cache; NaN for
    PyMC's sampler, which compiles inside ``pm.sample``) and
    ``sampling_seconds`` (the sampler's calls; the MAP-EM restarts that
    choose the chain starts come before them).
    """

    name = "pymc"
    is_posterior = True
    #: Options :meth:`fit` accepts, for configuration checks.
    options = frozenset(_NUTS_DEFAULTS)

    def fit(
        self, X, n_components, *, covariance_type="full", random_state=None, **options
    ) -> MixtureFit:
        """Fit the Bayesian mixture by NUTS on all the data; see ``Backend.fit``."""
        data, settings, seed, sample = _begin(
            self.name,
            X,
            n_components,
            covariance_type,
            random_state,
            options,
            _NUTS_DEFAULTS,
        )
        pm, _ = _import_pymc()
        if (
            isinstance(settings["max_draws"], bool)
            or not isinstance(settings["max_draws"], int)
            or settings["max_draws"] < 1
        ):
            raise ValueError(
                f"max_draws must be an integer >= 1; got {settings['max_draws']!r}."
            )
        if settings["cores"] is None:
            settings["cores"] = max(1, min(settings["chains"], os.cpu_count() or 1))
        sampler = (
            _sample_nutpie if settings["nuts_sampler"] == "nutpie" else _sample_pymc
        )
        with Stopwatch() as clock:
            starts = _chain_starts(
                sample,
                n_components,
                covariance_type,
                seed,
                settings["chains"],
                init=settings["init"],
                jitter=settings["jitter"],
            )
            attempts = []
            total_sampling = total_compile = 0.0
            while True:
                # Sample; when the relabelled draws fail r-hat or ESS, sample
                # afresh with twice the draws, up to max_draws per chain.
                idata, free, divergences, compile_seconds, sampling_seconds = sampler(
                    sample, n_components, covariance_type, settings, seed, starts
                )
                total_sampling += sampling_seconds
                total_compile += compile_seconds
                weights, means, covariances, relabelling = _relabel(
                    sample, *draws_to_params(free, covariance_type), seed
                )
                summary = _summaries(
                    {"weights": weights, "means": means, "covariances": covariances}
                )
                r_hat, ess = summary["r_hat_max"], summary["ess_bulk_min"]
                attempts.append(
                    {
                        "draws": settings["draws"],
                        "r_hat_max": r_hat,
                        "ess_bulk_min": ess,
                    }
                )
                passed = not sampler_findings({"r_hat_max": r_hat, "ess_bulk_min": ess})
                if passed or divergences:
                    break
                if 2 * settings["draws"] > settings["max_draws"]:
                    break
                settings = {**settings, "draws": 2 * settings["draws"]}
            fit = _posterior_fit(
                self.name,
                pm.__version__,
                data,
                sample,
                covariance_type,
                weights,
                means,
                covariances,
                settings,
                seed,
                relabelling=relabelling,
                summary=summary,
                idata=idata,
                trace=np.array([]),
                trace_kind="draw_mean_loglik",
                n_iter=settings["draws"] * settings["chains"],
                seconds=0.0,
                extra={
                    "divergences": divergences,
                    "compile_seconds": total_compile,
                    "sampling_seconds": total_sampling,
                    "nuts_sampler": settings["nuts_sampler"],
                    "chains": settings["chains"],
                    "draws": settings["draws"],
                    "tune": settings["tune"],
                    "draw_attempts": attempts,
                    "sampling_attempts": len(attempts),
                    **starts.diagnostics(),
                },
                modes=starts.modes,
            )
            # The log-likelihood does not depend on the labels: the draws as
            # sampled give the per-chain traces.
            chain_traces = _chain_traces(
                data, weights, means, covariances, settings["max_trace_draws"]
            )
        diagnostics = fit.diagnostics
        reasons = sampler_findings(diagnostics)
        diagnostics["unconverged_reason"] = "; ".join(reasons)
        return dataclasses.replace(
            fit,
            loglik_trace=np.concatenate(chain_traces),
            restart_traces=chain_traces,
            converged=not reasons,
            seconds=clock.seconds,
        )


class PyMCAdviBackend:
    """The same Bayesian mixture fitted by mean-field ADVI.

    Options: ``n_iter`` (10,000 at most), ``learning_rate`` (0.01, Adam),
    ``tolerance`` (0.01: stop when the parameters' relative change over 100
    iterations is below it; stochastic gradients never settle much lower),
    ``draws`` (1000 from the fitted approximation), ``init`` ("em": start at
    the best MAP-EM mode; "random": at a random point), ``max_trace_draws``,
    ``pointwise_draws``, ``max_samples``. The trace is the ELBO per sample,
    up to an additive constant: the potentials omit the priors' normalising
    constants, so it compares iterations of one fit, not fits of different
    data, K or covariance types (nor with sklearn-vb's bound).
    ``converged``: the parameters met ``tolerance`` before ``n_iter``, or the
    ELBO is stationary over its last 2,000 iterations (:func:`_elbo_stationary`).
    A mean-field Gaussian approximation has one mode, so its draws need no
    relabelling. Its draws are not posterior draws, so PSIS-LOO and WAIC
    (which treat them as such) are not computed.
    """

    name = "pymc-advi"
    is_posterior = True
    #: Options :meth:`fit` accepts, for configuration checks.
    options = frozenset(_ADVI_DEFAULTS)

    def fit(
        self, X, n_components, *, covariance_type="full", random_state=None, **options
    ) -> MixtureFit:
        """Fit the Bayesian mixture by ADVI; see :meth:`Backend.fit`."""
        data, settings, seed, sample = _begin(
            self.name,
            X,
            n_components,
            covariance_type,
            random_state,
            options,
            _ADVI_DEFAULTS,
        )
        pm, _ = _import_pymc()
        with Stopwatch() as clock:
            model = build_model(sample, n_components, covariance_type)
            starts = _chain_starts(
                sample,
                n_components,
                covariance_type,
                seed,
                1,
                init=settings["init"],
                jitter=0.0,
            )
            with model, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                convergence = pm.callbacks.CheckParametersConvergence(
                    tolerance=settings["tolerance"], diff="relative", every=100
                )
                approximation = pm.fit(
                    n=settings["n_iter"],
                    method="advi",
                    random_seed=seed,
                    start=starts.starts[0],
                    obj_optimizer=pm.adam(learning_rate=settings["learning_rate"]),
                    callbacks=[convergence],
                    progressbar=False,
                )
                idata = approximation.sample(settings["draws"], random_seed=seed)
            shapes = _free_shapes(data.shape[1], n_components, covariance_type)
            free = {name: np.asarray(idata.posterior[name].values) for name in shapes}
            weights, means, covariances = draws_to_params(free, covariance_type)
            losses = np.asarray(approximation.hist, dtype=np.float64)
            fit = _posterior_fit(
                self.name,
                pm.__version__,
                data,
                sample,
                covariance_type,
                weights,
                means,
                covariances,
                settings,
                seed,
                relabelling={},
                idata=idata,
                trace=-losses / sample.shape[0],
                trace_kind="advi_mean_elbo",
                n_iter=int(losses.size),
                seconds=0.0,
                extra={"final_elbo": float(-losses[-1]), "draws": settings["draws"]},
                modes=starts.modes,
                loo=False,
            )
        stationary, change = _elbo_stationary(-losses)
        fit.diagnostics["elbo_window_change"] = change
        # Independent draws from one approximation: r-hat and ESS say nothing.
        fit.diagnostics.pop("r_hat_max")
        fit.diagnostics.pop("ess_bulk_min")
        converged = bool(losses.size < settings["n_iter"]) or stationary
        return dataclasses.replace(fit, converged=converged, seconds=clock.seconds)


def _elbo_stationary(elbo: np.ndarray, window: int = 1000) -> tuple[bool, float]:
    """Has ADVI's stochastic ELBO stopped rising? ``(stationary, change)``.

    ``change`` is the mean ELBO of the last ``window`` iterations minus that
    of the ``window`` before (nats). Each iteration's ELBO is a fresh Monte
    Carlo estimate, so the two window means have standard errors from their
    own spread; the ELBO is stationary when the change is within two standard
    errors of zero (no trend the noise cannot explain). Parameter-change
    rules (PyMC's ``CheckParametersConvergence``) rarely fire under
    stochastic gradients, so this is the test of ``converged`` when the
    iteration budget is spent.
    """
    if elbo.size < 2 * window:
        return False, float("nan")
    last, before = elbo[-window:], elbo[-2 * window : -window]
    change = float(last.mean() - before.mean())
    error = float(np.sqrt(last.var() / window + before.var() / window))
    return abs(change) <= 2 * error, change
