"""Section "Convergence across seeds": where every seed ends, per start."""

from __future__ import annotations

from experiments.analysis import data_columns, reference_log_likelihood
from experiments.report.context import ReportData, Section
from experiments.report.document import Document
from experiments.report.figures.runs import convergence_figure
from experiments.report.views import chosen_cell, data_label, dataset_name
from experiments.report_stats import cell_share_at_best

__all__ = ["SECTION"]

#: The convergence table's columns, in the order shown (those present).
_COLUMNS = (
    "n_components",
    "covariance_type",
    "n_runs",
    "n_ok",
    "n_degenerate",
    "n_unconverged",
    "n_failed",
    "reference_log_likelihood",
    "best_log_likelihood",
    "share_at_best",
    "n_optima",
    "n_iter_median",
    "n_iter_max",
)


def render(doc: Document, data: ReportData) -> None:
    """A figure of final log-likelihoods per data set, then the table."""
    convergence, nats = data.convergence, data.nats
    doc.heading("Convergence across seeds (initialisation impact)")
    doc.text(
        "Final total log-likelihood of every seed on the first data replicate, "
        "per engine and initialisation, relative to the best eligible fit of "
        "that data (any engine or initialisation; 0 = best). Circles are ok "
        "fits, crosses degenerate, triangles unconverged; one row per engine "
        "and initialisation. The share in each row's name is of its seeds "
        f"that are ok and within {nats:g} "
        "nats of the best: the same number as the table below, which gives "
        "it for every data replicate."
    )
    _figures(doc, data)
    columns = [
        c
        for c in (
            "dataset",
            *data_columns(convergence),
            "data_replicate",
            "backend",
            "init",
            *_COLUMNS,
        )
        if c in convergence.columns
    ]
    doc.text(
        "Convergence table: one row per data replicate, engine, "
        "initialisation and model (n_components = K, covariance_type); "
        "reference_log_likelihood is the best eligible fit of that data and "
        "model. n_optima counts the distinct optima (log-likelihoods more than "
        f"{nats:g} nats apart) among the fits that converged under the "
        "sweep's stopping rule (status ok); it is blank for an arm run with "
        "its engine's own stopping rule (sklearn-defaults: where it stops "
        "early is not an optimum) and for posterior summaries."
    )
    shown = convergence[columns].copy()
    shown["dataset"] = shown["dataset"].map(dataset_name)
    doc.table(shown)


def _figures(doc: Document, data: ReportData) -> None:
    """One figure per data set (the chosen model's cell of a model search)."""
    runs = data.runs
    fitted = runs[runs["status"] != "failed"].copy()
    fitted["reference"] = reference_log_likelihood(fitted)
    first = fitted[fitted["data_replicate"] == fitted["data_replicate"].min()]
    keys = ["dataset", *data_columns(runs)]
    for key, group in first.groupby(keys, dropna=False, sort=True):
        values = dict(zip(keys, key, strict=True))
        label = data_label(values, runs)
        if group[["n_components", "covariance_type"]].drop_duplicates().shape[0] > 1:
            chosen, group = chosen_cell(group)  # a model search: its cell
            label = (
                f"{label} (K = {int(chosen['n_components'])}, "
                f"{chosen['covariance_type']})"
            )
        cells = sorted({(r.backend, r.init) for r in group.itertuples()})
        names = []
        for engine, init in cells:
            cell = group[(group["backend"] == engine) & (group["init"] == init)]
            share = cell_share_at_best(
                data.convergence,
                {
                    **values,
                    "backend": engine,
                    "init": init,
                    "data_replicate": cell["data_replicate"].iloc[0],
                    "n_components": cell["n_components"].iloc[0],
                    "covariance_type": cell["covariance_type"].iloc[0],
                },
            )
            at_best = f"{share:.0%} at best" if share == share else "no optimum"
            names.append(f"{engine}, {init.replace('_', ' ')}: {at_best}")
        fig = convergence_figure(group, cells, names, data.nats, label)
        doc.figure(fig, f"convergence_{label}", f"{label}: seeds' optima")


SECTION = Section("convergence", lambda data: data.fitted, render)
