"""A fit becomes table rows: scores, stopping point, status, recovery.

Every run gets a ``status`` and a ``status_reason`` from
:func:`mixtures.diagnostics.classify`, the one verdict the model search and
``gmmlab fit`` use too (``failed`` when the fit raised or timed out), and a
``posterior`` flag from its backend's declared capability
(:func:`mixtures.backends.is_posterior_backend`). Only ``ok`` fits may be
"best", be selected, or enter an engine comparison
(:mod:`experiments.analysis`).

``stopped_by`` says why an iterative fit ended: ``tolerance``, ``max_iter``,
``error``, or ``not_iterative`` for posterior sampling.
"""

from __future__ import annotations

import json
import traceback as traceback_module
from typing import Any

import numpy as np

from experiments.config import RunSpec
from mixtures.align import (
    align,
    label_agreement,
    match_components,
    recovery_metrics,
)
from mixtures.backends import is_posterior_backend
from mixtures.backends.base import MixtureFit
from mixtures.diagnostics import (
    Verdict,
    bic,
    classify,
    icl,
    uncertainty,
)
from mixtures.imputation import imputation_scores
from mixtures.params import MixtureParams

__all__ = [
    "classify_fit",
    "evaluate_fit",
    "failed_result",
    "identity_row",
]

_NUMERIC_DIAGNOSTICS = (
    "r_hat_max",
    "ess_bulk_min",
    "divergences",
    "sampling_seconds",
    "degenerate_events",
    "final_elbo",
    "n_init",
    "n_conditioned",
    "chains",
    "draws",
    "compile_seconds",
    "relabelled_draws",
    "elpd_loo",
    "elpd_loo_se",
    "p_loo",
    "pareto_k_max",
    "pareto_k_bad",
    "elpd_waic",
    "p_waic",
    "ppc_ties_observed",
    "ppc_ties_replicated",
    "ppc_ties_p",
    "map_log_likelihood",
    "min_variance_ratio",
    "effective_components",
    "elbo_window_change",
    "responsibility_sd_mean",
    "responsibility_sd_max",
    "n_loo",
    "sampling_attempts",
    "ppc_resolution",
    "ppc_bins_outside",
    "ppc_bins",
    "ppc_bins_outside_expected",
    "prior_points",
    "prior_share_max",
    "map_em_modes",
    "chain_start_modes",
    "chain_random_starts",
    "rows_fitted",
)


def identity_row(spec: RunSpec) -> dict[str, Any]:
    """The columns that identify a run, from its spec alone."""
    row = {
        "run_id": spec.run_id,
        "dataset": spec.dataset,
        "data_hash": spec.data_hash,
        "data_key": spec.data_key,
        "backend": spec.backend,
        "engine": spec.engine,
        "n_components": spec.n_components,
        "covariance_type": spec.covariance_type,
        "init": spec.init,
        "data_replicate": spec.data_replicate,
        "seed": spec.seed,
        "data_seed": spec.data_seed,
        "fit_seed": spec.fit_seed,
        "comparable": spec.comparable,
        "posterior": is_posterior_backend(spec.engine),
        "stopping_tol": np.nan if spec.stopping is None else spec.stopping.tol,
        "stopping_max_iter": (
            np.nan if spec.stopping is None else float(spec.stopping.max_iter)
        ),
    }
    row.update(
        {
            f"p_{key}": recorded_param(value)
            for key, value in spec.dataset_params.items()
        }
    )
    row.update(
        {
            f"p_{spec.backend}_{key}": value
            for key, value in spec.backend_options.items()
        }
    )
    return row


def recorded_param(value):
    """A data set parameter as the runs table records it.

    A list (a file's columns) becomes its JSON text: one hashable value, so
    that runs group by their data set. :func:`param_from_record` undoes it.
    """
    return json.dumps(list(value)) if isinstance(value, list | tuple) else value


def param_from_record(value):
    """A data set parameter back from the runs table (see :func:`recorded_param`)."""
    if isinstance(value, str) and value.startswith("["):
        return json.loads(value)
    return value


def failed_result(spec: RunSpec, error: BaseException) -> dict[str, Any]:
    """The rows of a run that raised or timed out."""
    row = identity_row(spec)
    row.update(
        status="failed",
        status_reason=f"{type(error).__name__}: {error}",
        stopped_by="error",
        error=f"{type(error).__name__}: {error}",
        traceback="".join(
            traceback_module.format_exception(error, limit=-3, chain=False)
        ),
    )
    return {"run": row, "traces": [], "components": [], "predictive": []}


# ---------------------------------------------------------------------------
# Classification


def stopped_by(fit: MixtureFit) -> str:
    """Why the fit ended: ``tolerance``, ``max_iter`` or ``not_iterative``."""
    if fit.trace_kind == "draw_mean_loglik":
        return "not_iterative"
    return "tolerance" if fit.converged else "max_iter"


def classify_fit(fit: MixtureFit, X: np.ndarray, covariance_type: str) -> Verdict:
    """The verdict of :func:`mixtures.diagnostics.classify` on a backend's fit."""
    iterative = fit.trace_kind != "draw_mean_loglik"
    return classify(
        fit.params,
        X,
        reg_covar=fit.reg_covar,
        covariance_type=covariance_type,
        converged=fit.converged or not iterative,
        n_iter=fit.n_iter,
        in_force=fit.diagnostics.get("degenerate_in_force", ()),
        sampler=None if iterative else fit.diagnostics,
    )


# ---------------------------------------------------------------------------
# Rows


def _entry(array, index: tuple[int, ...], *extra: int) -> float:
    """``array[index..., extra...]`` trimmed to its rank, NaN when absent."""
    if array is None:
        return float("nan")
    array = np.asarray(array)
    return float(array[(*index[: array.ndim - len(extra)], *extra)])


def _component_rows(run_id, params, order, truth, diagnostics) -> list[dict[str, Any]]:
    """Long-form rows: one per weight, mean and covariance entry of each component.

    ``order`` maps row component ``k`` to the fit's component ``order[k]``
    (the alignment to the truth). PyMC fits add their posterior SD and 94% HDI.
    """
    covariances = params.full_covariances()
    true_covariances = None if truth is None else truth.full_covariances()
    sd = diagnostics.get("posterior_sd", {})
    hdi = diagnostics.get("hdi_94", {})
    # A Bayesian fit's MAP (posterior mode), its components matched to the
    # posterior mean's so that row k holds the same component in both.
    map_params = None
    if "map" in diagnostics:
        map_params = align(MixtureParams(**diagnostics["map"]), params)
        map_covariances = map_params.full_covariances()
    rows = []
    for k, fitted in enumerate(order):
        entries = [("weight", "weights", 0, 0)]
        entries += [("mean", "means", i, 0) for i in range(params.n_features)]
        entries += [
            ("covariance", "covariances", i, j)
            for i in range(params.n_features)
            for j in range(i, params.n_features)
        ]
        for parameter, name, i, j in entries:
            mode = np.nan
            if parameter == "weight":
                estimate = params.weights[fitted]
                true = np.nan if truth is None else truth.weights[k]
                if map_params is not None:
                    mode = map_params.weights[fitted]
            elif parameter == "mean":
                estimate = params.means[fitted, i]
                true = np.nan if truth is None else truth.means[k, i]
                if map_params is not None:
                    mode = map_params.means[fitted, i]
            else:
                estimate = covariances[fitted, i, j]
                true = np.nan if true_covariances is None else true_covariances[k, i, j]
                if map_params is not None:
                    mode = map_covariances[fitted, i, j]
            rows.append(
                {
                    "run_id": run_id,
                    "component": k,
                    "parameter": parameter,
                    "i": i,
                    "j": j,
                    "estimate": float(estimate),
                    "truth": float(true),
                    "posterior_sd": _entry(sd.get(name), (fitted, i, j)),
                    "hdi_low": _entry(hdi.get(name), (fitted, i, j), 0),
                    "hdi_high": _entry(hdi.get(name), (fitted, i, j), 1),
                    "map": float(mode),
                }
            )
    return rows


def evaluate_fit(spec: RunSpec, data, fit: MixtureFit) -> dict[str, Any]:
    """The rows of the three tables for a successful fit of ``data`` (a Dataset)."""
    X = data.X
    n_samples, n_features = X.shape
    n_parameters = fit.params.as_covariance_type(spec.covariance_type).n_parameters()
    status, reason, measures = classify_fit(fit, X, spec.covariance_type)
    row = identity_row(spec)
    trace = np.asarray(fit.loglik_trace, dtype=float)
    last_change = (
        float(n_samples * abs(trace[-1] - trace[-2]))
        if fit.trace_kind == "em_mean_loglik" and trace.size >= 2
        else np.nan
    )
    criterion = bic(fit.log_likelihood, n_parameters, n_samples)
    row.update(
        status=status,
        status_reason=reason,
        stopped_by=stopped_by(fit),
        error="",
        traceback="",
        n_samples=n_samples,
        n_features=n_features,
        n_parameters=n_parameters,
        log_likelihood=fit.log_likelihood,
        mean_log_likelihood=fit.log_likelihood / n_samples,
        bic=criterion,
        icl=icl(fit.log_likelihood, n_parameters, X, fit.params),
        mean_uncertainty=float(np.mean(uncertainty(X, fit.params))),
        aic=-2 * fit.log_likelihood + 2 * n_parameters,
        n_iter=fit.n_iter,
        converged=fit.converged,
        final_change_nats=last_change,
        seconds=fit.seconds,
        trace_kind=fit.trace_kind,
        version=fit.version,
        d_min_effective_size=measures["min_effective_size"],
        d_min_relative_variance=measures["min_relative_variance"],
    )
    row.update(
        {
            f"d_{key}": float(fit.diagnostics[key])
            for key in _NUMERIC_DIAGNOSTICS
            if key in fit.diagnostics
        }
    )
    truth = data.truth
    params = fit.params
    order = np.arange(params.n_components)
    if (
        truth is not None
        and truth.n_components == spec.n_components
        and truth.n_features == n_features
    ):
        metrics = recovery_metrics(
            params,
            truth,
            X=X,
            true_labels=data.labels,
            n_kl_samples=4000,
            random_state=spec.data_seed,
        )
        row.update({f"m_{key}": value for key, value in metrics.items()})
        order = match_components(params, truth)
    else:
        truth = None
        if data.labels is not None:
            metrics = label_agreement(X, params, data.labels)
            row.update({f"m_{key}": value for key, value in metrics.items()})
    row.update(_imputation_columns(data, fit))
    traces = [
        {
            "run_id": spec.run_id,
            "restart": restart,
            "iteration": index + 1,
            "value": float(value),
            "trace_kind": fit.trace_kind,
        }
        for restart, restart_trace in enumerate(fit.restart_traces)
        for index, value in enumerate(restart_trace)
    ]
    return {
        "run": row,
        "traces": traces,
        "components": _component_rows(
            spec.run_id, params, order, truth, fit.diagnostics
        ),
        "predictive": predictive_rows(spec.run_id, fit.diagnostics),
    }


def _imputation_columns(data, fit: MixtureFit) -> dict[str, Any]:
    """``m_imputation_*``: the fit's imputation against the removed values.

    Only where the fit imputed the holes and the data set kept the values it
    removed (``Dataset.complete``): ``m_imputation_rmse`` over the missing
    cells, ``m_imputation_coverage`` (share of removed values inside the
    intervals; NaN for a single fill, which has none), ``m_imputation_width``
    (mean interval width), ``m_imputation_level`` (nominal coverage) and
    ``m_imputation_cells`` (:func:`mixtures.imputation.imputation_scores`).
    """
    complete = getattr(data, "complete", None)
    if fit.imputation is None or complete is None:
        return {}
    scores = imputation_scores(fit.imputation, data.X, complete)
    return {f"m_{key}": value for key, value in scores.items()}


def predictive_rows(run_id: str, diagnostics: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the ``predictive`` table from a Bayesian fit's diagnostics.

    Per feature: the posterior predictive marginal density on its grid
    (``kind = "density"``: mean and 94% band over draws) and the data's
    histogram (``kind = "histogram"``: the bin from ``x`` to ``right``, the
    data's density ``mean`` and the 94% band ``low``-``high`` of replicated
    histograms of n points). Empty for fits without draws.
    """
    rows = []
    for entry in diagnostics.get("predictive_density", ()):
        feature = int(entry["feature"])
        for point, (x, mean, low, high) in enumerate(
            zip(entry["grid"], entry["mean"], entry["low"], entry["high"], strict=True)
        ):
            rows.append(
                {
                    "run_id": run_id,
                    "feature": feature,
                    "kind": "density",
                    "point": point,
                    "x": float(x),
                    "right": float("nan"),
                    "mean": float(mean),
                    "low": float(low),
                    "high": float(high),
                }
            )
        edges, heights = entry["histogram_edges"], entry["histogram_density"]
        for point, (x, height) in enumerate(zip(edges[:-1], heights, strict=True)):
            rows.append(
                {
                    "run_id": run_id,
                    "feature": feature,
                    "kind": "histogram",
                    "point": point,
                    "x": float(x),
                    "right": float(edges[point + 1]),
                    "mean": float(height),
                    "low": float(entry["replicated_low"][point]),
                    "high": float(entry["replicated_high"][point]),
                }
            )
    return rows
