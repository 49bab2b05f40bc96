"""From posterior draws to a :class:`MixtureFit`: relabelling and summaries.

The draws are relabelled (Stephens), summarised (r-hat, bulk ESS, posterior
SD, HDI), criticised (:mod:`.criticism`) and set beside MAP-EM's estimate in
the fit's diagnostics, shared by both backends (:func:`_posterior_fit`).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

from mixtures.backends import pymc as _package
from mixtures.backends.base import MixtureFit, total_log_likelihood
from mixtures.backends.pymc.criticism import posterior_criticism, prior_strength
from mixtures.backends.pymc.incomplete import observed_e_step, posterior_imputation
from mixtures.backends.pymc.model import _import_pymc, _subsample_rows
from mixtures.backends.pymc.starts import _Mode
from mixtures.imputation import IMPUTATION_LEVEL
from mixtures.missing import find_patterns
from mixtures.params import MixtureParams
from mixtures.relabel import apply_permutations, stephens_relabel


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


def _params_dict(params: MixtureParams) -> dict[str, list]:
    return {
        "weights": np.asarray(params.weights).tolist(),
        "means": np.asarray(params.means).tolist(),
        "covariances": params.full_covariances().tolist(),
    }


def _chain_traces(X, weights, means, covariances, max_draws) -> tuple[np.ndarray, ...]:
    """Mean per-sample log-likelihood of thinned draws, one trace per chain.

    ``X`` (N, D); draws of shape (C, S, ...). A row with missing values
    (NaN) counts with the density of its observed values.
    """
    n_chains, n_draws = weights.shape[:2]
    keep = _thin(n_chains, n_draws, max_draws)
    patterns = find_patterns(X) if np.isnan(X).any() else None
    return tuple(
        np.array(
            [
                float(
                    np.mean(
                        observed_e_step(
                            X,
                            patterns,
                            MixtureParams(
                                weights[c, s] / weights[c, s].sum(),
                                means[c, s],
                                covariances[c, s],
                            ),
                        )[0]
                    )
                )
                for s in keep
            ]
        )
        for c in range(n_chains)
    )


def _posterior_fit(
    backend: str,
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
    The fit is ``backend``'s, its ``version`` PyMC's. With missing values in
    ``data``, the missing cells are imputed from the draws
    (:func:`.incomplete.posterior_imputation`, in ``imputation``) and the
    diagnostics say what the criticism did with the holes.
    """
    draws = {"weights": weights, "means": means, "covariances": covariances}
    if summary is None:
        # Looked up on the package, where the tests replace it.
        summary = _package._summaries(draws)
    point = _posterior_mean(weights, means, covariances)
    criticism = _thinned_criticism(
        data, weights, means, covariances, settings, seed, loo=loo
    )
    map_params = modes[0].params  # MAP-EM's estimate: the best restart
    strength = prior_strength(sample, map_params)
    chain_loglik = _chain_log_likelihoods(data, weights, means, covariances)
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
        **_criticism_diagnostics(criticism),
        # The smallest variance of any component in any draw, relative to
        # the data's variance of that feature: a collapse shows here first.
        "min_variance_ratio": float(
            np.min(
                np.diagonal(covariances, axis1=-2, axis2=-1) / np.nanvar(data, axis=0)
            )
        ),
        **_missing_diagnostics(data, criticism),
    }
    if loo:
        diagnostics.update(_loo_diagnostics(criticism))
    imputation = posterior_imputation(
        data, weights, means, covariances, seed, level=IMPUTATION_LEVEL
    )
    return MixtureFit(
        backend=backend,
        version=_import_pymc()[0].__version__,
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
        imputation=imputation,
    )


def _missing_diagnostics(data: np.ndarray, criticism: dict[str, Any]) -> dict:
    """What the fit did with missing values: counts and the criticism's notes."""
    holes = np.isnan(data)
    if not holes.any():
        return {}
    return {
        "missing": "marginal",
        "missing_cells": int(holes.sum()),
        "incomplete_rows": int(holes.any(axis=1).sum()),
        "missing_patterns": int(np.unique(holes[holes.any(axis=1)], axis=0).shape[0]),
        "criticism_notes": list(criticism["notes"]),
    }


def _posterior_mean(weights, means, covariances) -> MixtureParams:
    """The mixture of the posterior means of (C, S, ...) draws."""
    return MixtureParams(
        weights.mean(axis=(0, 1)) / weights.mean(axis=(0, 1)).sum(),
        means.mean(axis=(0, 1)),
        covariances.mean(axis=(0, 1)),
    )


def _thinned_criticism(
    data, weights, means, covariances, settings, seed, *, loo: bool
) -> dict[str, Any]:
    """:func:`posterior_criticism` of at most ``pointwise_draws`` thinned draws.

    PSIS-LOO and WAIC leave out the rows the posterior was conditioned on.
    """
    n_chains, n_draws = weights.shape[:2]
    keep = _thin(n_chains, n_draws, settings["pointwise_draws"])
    return posterior_criticism(
        data,
        weights[:, keep],
        means[:, keep],
        covariances[:, keep],
        seed=seed,
        loo_rows=_subsample_rows(data.shape[0], settings["max_samples"], seed),
        loo=loo,
    )


def _chain_log_likelihoods(data, weights, means, covariances) -> list[float]:
    """The log-likelihood of ``data`` at each chain's posterior mean."""
    return [
        total_log_likelihood(
            data,
            MixtureParams(
                weights[c].mean(0) / weights[c].mean(0).sum(),
                means[c].mean(0),
                covariances[c].mean(0),
            ),
        )
        for c in range(weights.shape[0])
    ]


def _criticism_diagnostics(criticism: dict[str, Any]) -> dict[str, Any]:
    """The fit's diagnostics from :func:`posterior_criticism`'s checks.

    The histogram counts are NaN when no feature was checked (every one has
    missing values).
    """
    checked = bool(criticism["predictive_density"])
    return {
        "ppc_resolution": (
            float("nan")
            if criticism["ppc_resolution"] is None
            else criticism["ppc_resolution"]
        ),
        "ppc_bins_outside": sum(
            entry["bins_outside"] for entry in criticism["predictive_density"]
        )
        if checked
        else float("nan"),
        "ppc_bins_outside_expected": sum(
            entry["bins_outside_expected"] for entry in criticism["predictive_density"]
        )
        if checked
        else float("nan"),
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
    }


def _loo_diagnostics(criticism: dict[str, Any]) -> dict[str, Any]:
    """PSIS-LOO's and WAIC's entries in the fit's diagnostics."""
    return dict(
        elpd_loo=criticism["loo"]["elpd"],
        elpd_loo_se=criticism["loo"]["se"],
        p_loo=criticism["loo"]["p"],
        pareto_k_max=criticism["loo"]["pareto_k_max"],
        pareto_k_bad=criticism["loo"]["pareto_k_over_0_7"],
        n_loo=criticism["loo"]["n"],
        elpd_waic=criticism["waic"]["elpd"],
        p_waic=criticism["waic"]["p"],
    )
