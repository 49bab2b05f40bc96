"""The ``pymc`` (NUTS) and ``pymc-advi`` backends: a Bayesian Gaussian mixture.

The component labels are marginalised out, so the sampler sees a smooth
posterior over weights, means and covariances. With the data's per-feature
mean ``m`` and standard deviation ``s``, the model is::

    w                     ~ Dirichlet(1, ..., 1)
    mu_{1,1} < ... < mu_{K,1}   (ordered first coordinate)
    mu_{k,d}              ~ Normal(m_d, 2 s_d)
    full:       Sigma_k = L_k L_k^T,
                L_k ~ LKJCholeskyCov(eta=2, sd_d ~ HalfNormal(2 s_d))
    tied:       one L shared by every component, same prior
    diag:       Sigma_k = diag(sigma_k^2),  sigma_{k,d} ~ HalfNormal(2 s_d)
    spherical:  Sigma_k = sigma_k^2 I,       sigma_k ~ HalfNormal(2 mean(s))
    x_n                   ~ sum_k w_k Normal(mu_k, Sigma_k)

In one dimension the likelihood is ``pm.NormalMixture`` with ordered means.
The priors are weakly informative: centred on the data and twice as wide,
so they matter only where the data say little (an almost empty component).

Label switching is handled twice: the ordering constraint on the first
coordinate of the means stops it within a chain, and every draw is then
relabelled to the EM reference fit by the Hungarian assignment of
:mod:`mixtures.align`, which also repairs chains that settled on different
orderings (possible when clusters overlap in the first coordinate). The
point estimate is the posterior mean after relabelling. ``nuts_sampler`` may
be "pymc", or "nutpie" / "numpyro" when those are installed.
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from mixtures.align import pairwise_w2
from mixtures.backends.base import (
    MixtureFit,
    Stopwatch,
    check_backend_input,
    reject_unknown_options,
    seed_from,
    total_log_likelihood,
)
from mixtures.em import score_samples
from mixtures.fitting import fit_em
from mixtures.params import MixtureParams

__all__ = ["PyMCAdviBackend", "PyMCBackend", "build_model", "relabel_draws"]

INSTALL_HINT = "pip install 'gmmlab[bayes]'  (installs pymc and arviz)"

#: Default options of each backend; the keys are the options it accepts.
_NUTS_DEFAULTS = {
    "draws": 500,
    "tune": 500,
    "chains": 2,
    "cores": 1,
    "target_accept": 0.9,
    "nuts_sampler": "pymc",
    "init": "em",
    "max_trace_draws": 1000,
    "max_samples": None,
}
_ADVI_DEFAULTS = {
    "n_iter": 10_000,
    "learning_rate": 0.01,
    "tolerance": 1e-2,
    "draws": 1000,
    "init": "em",
    "max_trace_draws": 1000,
    "max_samples": None,
}


def _subsample(data: np.ndarray, max_samples, seed: int) -> np.ndarray:
    """At most ``max_samples`` rows, drawn without replacement from ``seed``.

    The posterior is then conditioned on the subsample only (wider than on all
    the data); the reported log-likelihood still scores every row.
    """
    if max_samples is None:
        return data
    if (
        isinstance(max_samples, bool)
        or not isinstance(max_samples, int)
        or (max_samples < 2)
    ):
        raise ValueError(f"max_samples must be an integer >= 2; got {max_samples!r}.")
    if data.shape[0] <= max_samples:
        return data
    rows = np.random.default_rng(seed).choice(data.shape[0], max_samples, replace=False)
    return data[np.sort(rows)]


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


# ---------------------------------------------------------------------------
# Model


def build_model(X: np.ndarray, n_components: int, covariance_type: str):
    """The marginalised Bayesian mixture of the module docstring, as a pm.Model.

    The model has deterministics ``weights`` (K,), ``means`` (K, D) and
    ``covariances`` (K, D, D) in every case.
    """
    pm, _ = _import_pymc()
    import pytensor.tensor as pt

    n_features = X.shape[1]
    centre = X.mean(axis=0)
    scale = X.std(axis=0) + 1e-12
    k = n_components
    ordered = pm.distributions.transforms.ordered
    with pm.Model() as model:
        weights = pm.Dirichlet("w", a=np.ones(k))
        first = pm.Normal(
            "mu_first",
            mu=centre[0],
            sigma=2 * scale[0],
            shape=k,
            transform=ordered,
            initval=np.linspace(-1, 1, k) * scale[0] + centre[0],
        )
        if n_features == 1:
            sigma = pm.HalfNormal("sigma", sigma=2 * scale[0], shape=k)
            pm.NormalMixture("x", w=weights, mu=first, sigma=sigma, observed=X[:, 0])
            means = first[:, np.newaxis]
            covariances = (sigma**2)[:, np.newaxis, np.newaxis]
        else:
            rest = pm.Normal(
                "mu_rest", mu=centre[1:], sigma=2 * scale[1:], shape=(k, n_features - 1)
            )
            means = pt.concatenate([first[:, np.newaxis], rest], axis=1)
            factors = _cholesky_factors(pm, pt, covariance_type, k, scale)
            components = [
                pm.MvNormal.dist(mu=means[j], chol=factors[j]) for j in range(k)
            ]
            pm.Mixture("x", w=weights, comp_dists=components, observed=X)
            covariances = pt.stack([f @ f.T for f in factors])
        pm.Deterministic("weights", weights)
        pm.Deterministic("means", means)
        pm.Deterministic("covariances", covariances)
    return model


def _cholesky_factors(pm, pt, covariance_type, k, scale):
    n_features = scale.shape[0]
    if covariance_type in ("full", "tied"):

        def lkj(name):
            return pm.LKJCholeskyCov(
                name,
                n=n_features,
                eta=2.0,
                sd_dist=pm.HalfNormal.dist(sigma=2 * scale, shape=n_features),
                compute_corr=True,
            )[0]

        if covariance_type == "tied":
            shared = lkj("chol")
            return [shared] * k
        return [lkj(f"chol_{j}") for j in range(k)]
    if covariance_type == "diag":
        sigma = pm.HalfNormal("sigma", sigma=2 * scale, shape=(k, n_features))
        return [pt.diag(sigma[j]) for j in range(k)]
    sigma = pm.HalfNormal("sigma", sigma=2 * scale.mean(), shape=k)
    return [sigma[j] * pt.eye(n_features) for j in range(k)]


def _initial_values(reference: MixtureParams, covariance_type: str) -> dict[str, Any]:
    """Free-variable values at the EM solution, components ordered as the model."""
    order = np.argsort(reference.means[:, 0], kind="stable")
    params = reference.permute(order)
    first = params.means[:, 0].copy()
    gaps = np.diff(first)
    if np.any(gaps <= 0):  # the ordered transform needs a strictly increasing start
        first = first + np.arange(first.size) * 1e-6 * (np.abs(first).max() + 1)
    values: dict[str, Any] = {"w": params.weights, "mu_first": first}
    covariances = params.full_covariances()
    n_features = params.n_features
    if n_features == 1:
        values["sigma"] = np.sqrt(covariances[:, 0, 0])
        return values
    values["mu_rest"] = params.means[:, 1:]
    lower = np.tril_indices(n_features)
    if covariance_type == "full":
        for j, cov in enumerate(covariances):
            values[f"chol_{j}"] = np.linalg.cholesky(cov)[lower]
    elif covariance_type == "tied":
        values["chol"] = np.linalg.cholesky(covariances.mean(axis=0))[lower]
    elif covariance_type == "diag":
        values["sigma"] = np.sqrt(np.diagonal(covariances, axis1=1, axis2=2))
    else:
        values["sigma"] = np.sqrt(np.diagonal(covariances, axis1=1, axis2=2).mean(1))
    return values


# ---------------------------------------------------------------------------
# Relabelling and summaries


def relabel_draws(
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    reference: MixtureParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Relabel every posterior draw to match ``reference`` (Hungarian, W2 cost).

    Parameters
    ----------
    weights : ndarray of shape (..., K)
    means : ndarray of shape (..., K, D)
    covariances : ndarray of shape (..., K, D, D)
        Leading axes index draws (for example chain and draw).
    reference : MixtureParams

    Returns
    -------
    weights, means, covariances : the draws, relabelled
    permutations : ndarray of shape (..., K), the order applied to each draw
    """
    lead = weights.shape[:-1]
    k = weights.shape[-1]
    flat_w = weights.reshape(-1, k)
    flat_m = means.reshape(-1, *means.shape[-2:])
    flat_c = covariances.reshape(-1, *covariances.shape[-3:])
    costs = pairwise_w2(
        reference.means, reference.full_covariances(), flat_m, flat_c
    )  # (S, K_ref, K_draw)
    orders = np.empty((flat_w.shape[0], k), dtype=int)
    for s, cost in enumerate(costs):
        rows, columns = linear_sum_assignment(cost)
        orders[s] = columns[np.argsort(rows)]
    index = np.arange(flat_w.shape[0])[:, np.newaxis]
    return (
        flat_w[index, orders].reshape(weights.shape),
        flat_m[index, orders].reshape(means.shape),
        flat_c[index, orders].reshape(covariances.shape),
        orders.reshape(*lead, k),
    )


def _summaries(draws: dict[str, np.ndarray]) -> dict[str, Any]:
    """r_hat, bulk ESS, posterior SD and 94% HDI of (chain, draw, ...) draws."""
    _, az = _import_pymc()
    dataset = az.convert_to_dataset(draws)
    with warnings.catch_warnings():
        # One chain, or a constant entry (a covariance's zeros), gives NaN r_hat.
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        r_hat = az.rhat(dataset)
        ess = az.ess(dataset, method="bulk")
        hdi = az.hdi(dataset, hdi_prob=0.94)

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


def _posterior_arrays(idata) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    posterior = idata.posterior
    return (
        np.asarray(posterior["weights"].values, dtype=np.float64),
        np.asarray(posterior["means"].values, dtype=np.float64),
        np.asarray(posterior["covariances"].values, dtype=np.float64),
    )


def _draw_log_likelihood_traces(
    X: np.ndarray, weights, means, covariances, max_draws: int
) -> tuple[np.ndarray, ...]:
    """Mean per-sample log-likelihood of the draws, one trace per chain.

    The arrays have leading axes (chain, draw); at most ``max_draws`` draws in
    all are scored, evenly thinned within each chain.
    """
    n_chains, n_draws = weights.shape[:2]
    step = max(1, int(np.ceil(n_chains * n_draws / max_draws)))
    traces = []
    for chain in range(n_chains):
        values = []
        for s in range(0, n_draws, step):
            w = weights[chain, s]
            params = MixtureParams(w / w.sum(), means[chain, s], covariances[chain, s])
            values.append(float(np.mean(score_samples(X, params))))
        traces.append(np.asarray(values))
    return tuple(traces)


def _fit_reference(X, n_components, covariance_type, seed) -> MixtureParams:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_em(
            X,
            n_components,
            covariance_type=covariance_type,
            n_init=3,
            random_state=seed,
            tol=1e-6,
        ).params


def _finish(
    backend,
    X,
    reference,
    idata,
    trace,
    trace_kind,
    n_iter,
    converged,
    seconds,
    extra,
    restart_traces=(),
) -> MixtureFit:
    pm, _ = _import_pymc()
    weights, means, covariances = _posterior_arrays(idata)
    weights, means, covariances, orders = relabel_draws(
        weights, means, covariances, reference
    )
    draws = {"weights": weights, "means": means, "covariances": covariances}
    point = MixtureParams(
        weights.mean(axis=(0, 1)) / weights.mean(axis=(0, 1)).sum(),
        means.mean(axis=(0, 1)),
        covariances.mean(axis=(0, 1)),
    )
    diagnostics = {
        **_summaries(draws),
        "relabelled_draws": int(np.sum(np.any(orders != orders[0, 0], axis=-1))),
        "reference": "em",
        **extra,
    }
    return MixtureFit(
        backend=backend,
        version=pm.__version__,
        params=point,
        log_likelihood=total_log_likelihood(X, point),
        loglik_trace=trace,
        trace_kind=trace_kind,
        n_iter=n_iter,
        converged=converged,
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
    reject_unknown_options(name, options, set(defaults))
    settings = {**defaults, **options}
    if settings["init"] not in ("em", "prior"):
        raise ValueError(f"init must be 'em' or 'prior'; got {settings['init']!r}.")
    seed = seed_from(random_state)
    seed = 0 if seed is None else seed
    return data, settings, seed, _subsample(data, settings["max_samples"], seed)


# ---------------------------------------------------------------------------
# Backends


class PyMCBackend:
    """Bayesian mixture sampled with NUTS.

    Options: ``draws`` (500), ``tune`` (500), ``chains`` (2), ``cores``
    (1), ``target_accept`` (0.9), ``nuts_sampler`` ("pymc"), ``init``
    ("em": start every chain at the EM fit; "prior": PyMC's default),
    ``max_trace_draws`` (1000: draws scored for ``loglik_trace``),
    ``max_samples`` (None: condition on a random subsample of at most this
    many rows, for speed on large data; the log-likelihood still scores all).
    ``converged`` means max r_hat < 1.01 and no divergence.
    """

    name = "pymc"
    #: Options :meth:`fit` accepts, for configuration checks.
    options = frozenset(_NUTS_DEFAULTS)

    def fit(
        self, X, n_components, *, covariance_type="full", random_state=None, **options
    ) -> MixtureFit:
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
        with Stopwatch() as clock:
            reference = _fit_reference(sample, n_components, covariance_type, seed)
            model = build_model(sample, n_components, covariance_type)
            start = time.perf_counter()
            with model, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                idata = pm.sample(
                    draws=settings["draws"],
                    tune=settings["tune"],
                    chains=settings["chains"],
                    cores=settings["cores"],
                    target_accept=settings["target_accept"],
                    nuts_sampler=settings["nuts_sampler"],
                    random_seed=seed,
                    initvals=(
                        _initial_values(reference, covariance_type)
                        if settings["init"] == "em"
                        else None
                    ),
                    init="adapt_diag"
                    if settings["init"] == "em"
                    else "jitter+adapt_diag",
                    progressbar=False,
                    compute_convergence_checks=False,
                )
            sampling_seconds = time.perf_counter() - start
        divergences = int(np.asarray(idata.sample_stats["diverging"]).sum())
        weights, means, covariances = _posterior_arrays(idata)
        chain_traces = _draw_log_likelihood_traces(
            data, weights, means, covariances, settings["max_trace_draws"]
        )
        trace = np.concatenate(chain_traces)
        fit = _finish(
            self.name,
            data,
            reference,
            idata,
            trace,
            "draw_mean_loglik",
            n_iter=settings["draws"] * settings["chains"],
            converged=False,
            seconds=clock.seconds,
            extra={
                "divergences": divergences,
                "sampling_seconds": sampling_seconds,
                "chains": settings["chains"],
                "draws": settings["draws"],
                "tune": settings["tune"],
                "n_conditioned": sample.shape[0],
            },
            restart_traces=chain_traces,
        )
        converged = fit.diagnostics["r_hat_max"] < 1.01 and divergences == 0
        object.__setattr__(fit, "converged", bool(converged))
        return fit


class PyMCAdviBackend:
    """The same Bayesian mixture fitted by mean-field ADVI.

    Options: ``n_iter`` (10,000 at most), ``learning_rate`` (0.01, Adam),
    ``tolerance`` (0.01: stop when the parameters' relative change over 100
    iterations is below it; stochastic gradients never settle much lower),
    ``draws`` (1000 from the fitted approximation), ``init`` ("em" or
    "prior"), ``max_trace_draws``. The trace is the ELBO per sample.
    """

    name = "pymc-advi"
    #: Options :meth:`fit` accepts, for configuration checks.
    options = frozenset(_ADVI_DEFAULTS)

    def fit(
        self, X, n_components, *, covariance_type="full", random_state=None, **options
    ) -> MixtureFit:
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
            reference = _fit_reference(sample, n_components, covariance_type, seed)
            model = build_model(sample, n_components, covariance_type)
            with model, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if settings["init"] == "em":
                    for name, value in _initial_values(
                        reference, covariance_type
                    ).items():
                        model.set_initval(model[name], value)
                convergence = pm.callbacks.CheckParametersConvergence(
                    tolerance=settings["tolerance"], diff="relative", every=100
                )
                approximation = pm.fit(
                    n=settings["n_iter"],
                    method="advi",
                    random_seed=seed,
                    obj_optimizer=pm.adam(learning_rate=settings["learning_rate"]),
                    callbacks=[convergence],
                    progressbar=False,
                )
                idata = approximation.sample(settings["draws"], random_seed=seed)
        losses = np.asarray(approximation.hist, dtype=np.float64)
        return _finish(
            self.name,
            data,
            reference,
            idata,
            -losses / data.shape[0],
            "advi_mean_elbo",
            n_iter=int(losses.size),
            converged=bool(losses.size < settings["n_iter"]),
            seconds=clock.seconds,
            extra={
                "final_elbo": float(-losses[-1]),
                "draws": settings["draws"],
                "n_conditioned": sample.shape[0],
            },
        )
