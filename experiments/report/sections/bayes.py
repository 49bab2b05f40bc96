"""Section "Likelihood and Bayesian views of the same data".

EM's maximum beside the MAP, NUTS, ADVI and variational-Bayes fits of the
same data and model: their diagnostics, the posterior predictive check,
whether EM's estimate lies inside PyMC's intervals, and the parameters side
by side, components matched.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.analysis import best_eligible, data_columns
from experiments.analysis import posterior as posterior_fits
from experiments.report.context import ReportData, Section
from experiments.report.document import Document
from experiments.report.figures.posterior import predictive_figure
from experiments.report.views import data_label, dataset_name
from experiments.report_stats import (
    map_component_points,
    matched_to,
    mle_in_hdi,
    same_cell,
)
from mixtures.backends.pymc.backend import ELBO_WINDOW
from mixtures.backends.pymc.criticism import PARETO_K_LIMIT
from mixtures.backends.pymc.starts import MODE_GAP, MODE_RESTARTS
from mixtures.diagnostics import MAX_R_HAT, MIN_ESS_BULK

__all__ = ["SECTION"]

#: The fits table's columns after the data set's, in the order shown.
_COLUMNS = (
    "backend",
    "status",
    "n_samples",
    "d_n_conditioned",
    "log_likelihood",
    "d_map_log_likelihood",
    "d_prior_points",
    "d_prior_share_max",
    "d_elpd_loo",
    "d_elpd_loo_se",
    "d_p_loo",
    "d_pareto_k_max",
    "d_pareto_k_bad",
    "d_n_loo",
    "d_elpd_waic",
    "d_ppc_bins_outside",
    "d_ppc_bins_outside_expected",
    "d_ppc_bins",
    "d_r_hat_max",
    "d_ess_bulk_min",
    "d_divergences",
    "d_chains",
    "d_map_em_modes",
    "d_chain_start_modes",
    "d_draws",
    "d_sampling_attempts",
    "d_relabelled_draws",
    "d_responsibility_sd_mean",
    "d_min_variance_ratio",
    "d_effective_components",
    "d_elbo_window_change",
    "d_compile_seconds",
    "d_sampling_seconds",
    "seconds",
    "status_reason",
)


def render(doc: Document, data: ReportData) -> None:
    """The Bayesian fits beside EM's: diagnostics, checks and parameters."""
    runs = data.runs
    bayes = runs[posterior_fits(runs)]
    doc.heading("Likelihood and Bayesian views of the same data")
    doc.text(_introduction())
    doc.table(_fits_table(runs, bayes))
    _ties(doc, bayes)
    _inside_hdi(doc, runs, data.components)
    _predictive(doc, runs, data.predictive)
    _side_by_side(doc, runs, data.components)


def _introduction() -> str:
    """What the five estimates are and what each column of the table means."""
    return (
        "Five estimates of each data set's mixture. em: the maximum of the "
        "likelihood (best eligible k-means fit). MAP: the posterior mode under "
        "the Fraley-Raftery conjugate prior (inverse-Wishart covariances, "
        f"data-scaled; MAP-EM, the best of {MODE_RESTARTS} restarts, column "
        "map_log_likelihood). The prior is weak on the means but not always on "
        "the covariances: it adds d_prior_points points (2D + 4) to every MAP "
        "covariance, carrying a scatter of about one cluster's spread, and "
        "d_prior_share_max is the largest share of a MAP covariance's scatter "
        "that comes from the prior rather than the data; against a component "
        "of few points (n_k, given below wherever MAP or posterior meets EM) "
        "it dominates. pymc: the posterior mean of the same model sampled by "
        "NUTS (nutpie, labels resolved by Stephens' KL relabelling, never by "
        "matching to EM). Its d_chains chains are dealt round the distinct "
        f"modes that the {MODE_RESTARTS} MAP-EM restarts found (d_map_em_modes; "
        f"a mode more than {MODE_GAP:g} nats of log posterior below the best "
        "gets no chain; "
        "d_chain_start_modes is how many the chains started in), each chain "
        "scattered about its mode by one component standard deviation on "
        "every mean, far wider than the posterior. So r-hat certifies that "
        "chains from those starts sample one distribution: where "
        "d_chain_start_modes is 1, mixing within the one mode every restart "
        "reached, not the absence of modes no start led to. pymc-advi: the "
        "same model by mean-field ADVI. sklearn-vb: scikit-learn's variational "
        "BayesianGaussianMixture (its own priors: Dirichlet-process weights, "
        "Wishart precisions). Every log-likelihood scores all n rows at the "
        "point estimate; the Bayesian fits condition on n_conditioned rows "
        "(all of them unless max_samples was set). elpd_loo and elpd_waic are "
        "PSIS-LOO and WAIC from ArviZ on the pointwise log-likelihood of "
        f"thinned NUTS draws; a Pareto k above {PARETO_K_LIMIT} makes LOO "
        "unreliable for "
        "that point. ADVI has none: its draws come from its approximation, "
        "not the posterior, and PSIS-LOO would treat them as posterior draws. "
        "d_ppc_bins_outside counts the data's histogram bars outside the "
        "simultaneous 94% band of replicated histograms (figure below), "
        "beside d_ppc_bins_outside_expected, the number expected outside "
        "under the model (of d_ppc_bins bars). "
        f"A NUTS fit is ok only with r-hat <= {MAX_R_HAT}, bulk ESS >= "
        f"{MIN_ESS_BULK:g} and "
        "no divergence after relabelling; when its first draws fail r-hat or "
        "ESS it samples afresh with twice the draws (d_sampling_attempts, "
        "d_draws per chain at the end), and if it still fails it is "
        "unconverged, with the reason. fits_ok counts an engine's seeds that "
        "ended ok (the row shows its first seed). sklearn-vb's "
        "d_effective_components counts the components holding more than half "
        "a data point: its Dirichlet-process prior empties the components the "
        "data do not need, and gmmlab's degeneracy rule then calls the "
        "K-component point estimate degenerate; "
        "for VB that is the prior at work, not a failed fit. ADVI is converged "
        f"when its ELBO has no trend over its last {2 * ELBO_WINDOW:,} iterations "
        "(d_elbo_window_change, nats)."
    )


def _fits_table(runs: pd.DataFrame, bayes: pd.DataFrame) -> pd.DataFrame:
    """Per cell: EM's best fit, then each Bayesian engine's first seed."""
    columns = [
        c
        for c in ("dataset", *[c for c in data_columns(runs) if c in bayes], *_COLUMNS)
        if c in runs.columns
    ]
    views = []
    cell_keys = [
        "dataset",
        *data_columns(runs),
        "data_replicate",
        "n_components",
        "covariance_type",
    ]
    for _, cell in bayes.groupby(cell_keys, sort=True, dropna=False):
        here = runs[same_cell(runs, cell.iloc[0], cell_keys)]
        em = best_eligible(here[here["backend"] == "em"], ["dataset"])
        if len(em):
            views.append(em.iloc[0].copy())
        for _, fits in cell.groupby("backend", sort=True):
            # One row per engine: its first seed, with how many of its seeds
            # ended ok (sklearn-vb runs every seed).
            row = fits.sort_values("seed").iloc[0].copy()
            row["fits_ok"] = f"{int((fits['status'] == 'ok').sum())}/{len(fits)}"
            views.append(row)
    frame = pd.DataFrame(views)
    frame["dataset"] = frame["dataset"].map(dataset_name)
    columns = [c for c in columns if c in frame.columns]
    columns.insert(columns.index("status") + 1, "fits_ok")
    return frame[columns].dropna(axis=1, how="all")


def _ties(doc: Document, bayes: pd.DataFrame) -> None:
    """The posterior predictive check on tied values, where the data have ties."""
    ties = bayes[bayes["backend"] == "pymc"]
    if not ("d_ppc_ties_observed" in ties and (ties["d_ppc_ties_observed"] > 0).any()):
        return
    tied = ties[ties["d_ppc_ties_observed"] > 0]
    doc.text(
        "Posterior predictive check on tied values: "
        + "; ".join(
            f"{dataset_name(r.dataset)} has {int(r.d_ppc_ties_observed)} rows "
            "equal to "
            "an earlier row; data sets replicated from the posterior"
            + (
                f", rounded to the data's recording step {r.d_ppc_resolution:g},"
                if pd.notna(getattr(r, "d_ppc_resolution", np.nan))
                else " (the data are on no decimal grid of up to 6 places, so "
                "replicates are not rounded)"
            )
            + f" have {r.d_ppc_ties_replicated:.1f} on average "
            f"(p = {r.d_ppc_ties_p:.2f}, the share of replicates with at "
            "least as many)"
            for r in tied.itertuples()
        )
        + ". Where p is near 0, the ties are not rounding: repeated values "
        "(copied or imputed) that a continuous mixture cannot produce. A "
        "maximum-likelihood component can collapse onto them; the posterior "
        "cannot, because the inverse-Wishart prior keeps every draw's "
        "variances away from zero (d_min_variance_ratio: the smallest "
        "variance in any draw over the data's variance of that feature)."
    )


def _prior_weight(points, prior_points, share) -> str:
    """The prior's strength against each component's own points, as a clause.

    As recorded by the fit (:func:`mixtures.backends.pymc.prior_strength`);
    empty when the fit recorded none.
    """
    if pd.isna(prior_points) or not len(points):
        return ""
    counts = ", ".join(f"{p:.1f}" for p in points)
    return (
        f"; the prior adds {prior_points:g} points to each MAP covariance "
        f"against n_k = {counts} (components 0 to {len(points) - 1}), and up "
        f"to {100 * share:.2g}% of a MAP covariance's scatter is the prior's"
    )


def _inside_hdi(doc: Document, runs: pd.DataFrame, components) -> None:
    """How many of EM's estimates lie inside PyMC's 94% HDIs, per NUTS fit."""
    inside = mle_in_hdi(runs, components)
    if not len(inside):
        return
    keys = ["dataset", *data_columns(runs)]
    inside["label"] = [
        data_label({key: row[key] for key in keys}, runs)
        for _, row in inside.iterrows()
    ]
    doc.finding(
        f"EM's maximum-likelihood estimate lies inside PyMC's 94% HDI for "
        f"{int(inside['em_inside_hdi'].sum())} of "
        f"{int(inside['parameters'].sum())} parameters over {len(inside)} "
        "NUTS fits."
    )
    doc.text(
        "Is EM's maximum-likelihood estimate inside PyMC's 94% HDI? "
        + "; ".join(
            f"{r.label}: {r.em_inside_hdi} of {r.parameters} parameters "
            f"(NUTS fit {r.status}, conditioned on {int(r.n_conditioned):,} of "
            f"{int(r.n_samples):,} rows"
            + (f"; outside: {r.outside}" if r.outside else "")
            + _prior_weight(r.component_points, r.prior_points, r.prior_share_max)
            + ")"
            for r in inside.sort_values("label").itertuples()
        )
        + ". "
        + (
            "Every one is: the posterior concentrates around the "
            "likelihood's maximum, so the Bayesian and likelihood views "
            "agree on these data."
            if (inside["em_inside_hdi"] == inside["parameters"]).all()
            else "Where EM's estimate is outside, the prior or a different "
            "mode moves the posterior away from the likelihood's maximum; "
            "the side-by-side tables below show by how much."
        )
    )


def _predictive(doc: Document, runs: pd.DataFrame, predictive) -> None:
    """The posterior predictive figure of every NUTS fit and feature."""
    if predictive is None or predictive.empty:
        return
    nuts = runs[(runs["backend"] == "pymc") & runs["run_id"].isin(predictive["run_id"])]
    panels = [
        (run, feature)
        for _, run in nuts.sort_values(["dataset", "run_id"]).iterrows()
        for feature in sorted(
            predictive.loc[predictive["run_id"] == run["run_id"], "feature"].unique()
        )
    ]
    if not panels:
        return
    fig = predictive_figure(panels, predictive, data_columns(runs))
    counts = [
        f"{data_label({k: run[k] for k in ['dataset', *data_columns(runs)]}, runs)}"
        f": {int(run['d_ppc_bins_outside'])} of {int(run['d_ppc_bins'])} bars "
        f"outside, {run['d_ppc_bins_outside_expected']:.2f} expected"
        for _, run in nuts.drop_duplicates("run_id").iterrows()
        if pd.notna(run.get("d_ppc_bins_outside_expected", np.nan))
    ]
    totals = f" Over these panels, {'; '.join(counts)}." if counts else ""
    doc.figure(
        fig,
        "posterior_predictive",
        "Posterior predictive check of each feature (NUTS). Black steps: the "
        "data's histogram; grey band: a simultaneous 94% band of replicated "
        "histograms of n points drawn from the posterior (so it includes the "
        "sampling noise of n points): 94% of replicated histograms lie inside "
        "it at every bar at once. A pointwise 94% band would leave about 6% "
        "of the bars outside by chance, several when a feature has dozens; "
        "under the model, all of a feature's bars lie inside this band 94% of "
        "the time, and the table above gives the number expected outside "
        "(d_ppc_bins_outside_expected) beside the data's (d_ppc_bins_outside). "
        "Red marks: bars outside the band, evidence against the model only "
        "where they outnumber that expectation. The data were used to fit the "
        "model, so they fall outside less often than fresh replicates would."
        + totals
        + " Line and green band: the posterior predictive density (mean and "
        "3%-97% over draws).",
    )


def _side_by_side(doc: Document, runs: pd.DataFrame, components) -> None:
    """Per data set, EM's, scikit-learn's and the Bayesian parameters side by side."""
    first = runs[runs["data_replicate"] == 0]
    keys = ["dataset", *data_columns(runs)]
    for key, here in first.groupby(keys, dropna=False, sort=True):
        posterior = here[posterior_fits(here)]
        if posterior.empty:
            continue
        label = data_label(dict(zip(keys, key, strict=True)), runs)
        # The Bayesian cell: the same K and covariance type for every column.
        cell = posterior.iloc[0]
        here = here[
            (here["n_components"] == cell["n_components"])
            & (here["covariance_type"] == cell["covariance_type"])
        ]
        side, weight = _side_table(_compared_fits(here), components)
        if side is not None:
            doc.heading(label, level=3)
            doc.table(side)
            if weight:
                doc.text(
                    "The prior's weight in the MAP and pymc columns, in this "
                    "table's component order" + weight + "."
                )


def _compared_fits(here: pd.DataFrame) -> list[pd.Series]:
    """EM's best k-means fit, scikit-learn's from its seed, each Bayesian engine's."""
    posterior = here[posterior_fits(here)]
    chosen = []
    em = best_eligible(
        here[(here["backend"] == "em") & (here["init"] == "kmeans")], ["dataset"]
    )
    if len(em):
        chosen.append(em.iloc[0])
        twin = here[
            (here["backend"] == "sklearn")
            & (here["init"] == "kmeans")
            & (here["seed"] == em.iloc[0]["seed"])
        ]
        chosen.extend(row for _, row in twin.iterrows())
    # One column per Bayesian engine: its first seed (an engine with
    # several seeds, such as sklearn-vb, has one fit per seed).
    chosen.extend(
        row
        for _, row in posterior.sort_values(["backend", "seed"])
        .drop_duplicates("backend")
        .iterrows()
    )
    return chosen


def _side_table(chosen: list[pd.Series], components) -> tuple[pd.DataFrame | None, str]:
    """One column per fit, components matched to the first; the prior's clause."""
    side = None
    weight = ""
    reference = (
        components[components["run_id"] == chosen[0]["run_id"]]
        if chosen
        else pd.DataFrame()
    )
    for run in chosen:
        rows = matched_to(
            components[components["run_id"] == run["run_id"]], reference
        ).copy()
        if rows.empty:
            continue
        column = f"{run['backend']} ({run['status']})"
        rows[column] = rows["estimate"]
        keep = ["component", "parameter", "i", "j", "truth", column]
        if run["backend"] == "pymc" and "map" in rows:
            rows[f"{run['backend']} MAP"] = rows["map"]
            keep.append(f"{run['backend']} MAP")
            weight = _prior_weight(
                map_component_points(rows, run),
                run.get("d_prior_points", np.nan),
                run.get("d_prior_share_max", np.nan),
            )
        if run["backend"] == "pymc":
            rows[f"{column} 94% HDI"] = [
                f"[{lo:.3g}, {hi:.3g}]"
                for lo, hi in zip(rows["hdi_low"], rows["hdi_high"], strict=True)
            ]
            keep.append(f"{column} 94% HDI")
        rows = rows[keep]
        side = (
            rows
            if side is None
            else side.merge(
                rows.drop(columns="truth"), on=["component", "parameter", "i", "j"]
            )
        )
    return side, weight


def _applies(data: ReportData) -> bool:
    return data.fitted and bool(posterior_fits(data.runs).any())


SECTION = Section("bayes", _applies, render)
