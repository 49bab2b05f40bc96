"""``gmmlab fit FILE``: model-based clustering of a user's data file, and a report.

1. **Model search** (:func:`mixtures.select.search`): every covariance model
   (the 14 of mclust, or E and V for one column; ``models`` restricts them)
   x every K, each from the hierarchical start and seeded k-means starts,
   every fit classified. The chosen model is the lowest BIC among cells with
   status ok; a degenerate, unconverged or failed fit is never chosen. The
   top three are printed, as mclust does; the whole table is written to
   ``model_search.csv`` and to the results folder for the report.
2. **Engine cross-check**: the sweep runner fits the chosen model and K
   with every requested engine that supports it over several seeds, so the
   report can show how the answer depends on the start and on the engine.
3. **One chosen fit**: the search's fit of the chosen cell, unless the
   cross-check's best maximum-likelihood run of the same model and K is
   higher by more than :data:`~experiments.analysis.SAME_OPTIMUM_NATS` and
   :func:`mixtures.diagnostics.classify` finds it ok (its BIC and ICL
   recomputed): then that run is the chosen fit, and a note says so (the
   search missed a maximum). The chosen fit, and no other, gives the
   console summary, ``parameters.json``, ``assignments.csv`` (every row's
   most probable component, the probability of each, and its
   classification uncertainty ``1 - max_k tau_nk``) and the report's
   chosen-fit figure and tables. Components are numbered 1..K everywhere,
   as in mclust.

**Units.** The search regularises relative to each feature's variance, so
multiplying a column by any factor changes nothing but the units of the
answer. ``scale`` ("standard" or "minmax") fits the columns after mapping
x to (x - center) / spread; the log-likelihood, BIC, ICL and parameters are
then mapped back to the file's units (the log-likelihood by the
log-Jacobian ``-n * sum(log spread)``). Rescaling columns leaves eight of
the fourteen models unchanged (their fits map onto each other), but not
EII, VII, EEV, VEV, EVE and VVE, whose volume, shape or orientation
constraint is not preserved: with ``scale`` those fit a different model.
The cross-check's engines take one absolute ``reg_covar`` (scikit-learn has
no relative one): 1e-6 times the geometric mean of the fitted columns'
variances, the same as 1e-6 on data rescaled uniformly to unit size.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from experiments import config
from experiments.analysis import SAME_OPTIMUM_NATS, choose_model
from experiments.config import parse_config
from experiments.datasets import SCALINGS, load_dataset, read_table
from experiments.report import build_report, params_from_components
from experiments.runner import run_sweep
from experiments.tables import atomic_write, read_tables
from mixtures.covariance import ALIASES, mclust_name
from mixtures.diagnostics import bic, icl
from mixtures.em import e_step, score_samples
from mixtures.params import MixtureParams
from mixtures.select import search, top_models

__all__ = ["ChosenFit", "adopt_cross_check", "fit_file"]

#: Significant digits of the console's weights and means (parameters.json has all).
SIGNIFICANT_DIGITS = 4
#: The search's finished cells, inside the results folder (see fit_file).
CHECKPOINT = "search-cells"
#: Up to this many features, the console also prints covariance matrices.
MAX_FEATURES_WITH_COVARIANCES = 3


def fit_file(
    path: str | Path,
    *,
    components: list[int],
    models: list[str] | None = None,
    columns: list[str] | None = None,
    label: str | None = None,
    sep: str | None = None,
    header: bool | None = None,
    prior: bool = False,
    scale: str = "none",
    backends: tuple[str, ...] = ("em", "sklearn"),
    out: str | Path,
    seeds: int = 5,
    jobs: int = 1,
    progress: bool = True,
    verbose: bool = False,
    echo=print,
) -> dict:
    """Search ``path`` and write everything to ``out``.

    The table, results, report, parameters and assignments go to ``out``.
    Returns the chosen model's summary (also written to ``parameters.json``).
    Given the same file and options again, the search resumes cell by cell
    from ``out/search-cells`` (:data:`CHECKPOINT`; pickles, so only read
    from a folder gmmlab wrote) and the engine cross-check from its saved
    runs; a changed file or option is fitted afresh. The console shows covariance
    matrices only with ``verbose`` or for at most three features; they are
    always in ``parameters.json``.
    """
    if scale not in SCALINGS:
        raise ValueError(f"scale must be one of {', '.join(SCALINGS)}; got {scale!r}.")
    path = Path(path).resolve()
    table_options: dict[str, Any] = {"sep": sep, "header": header}
    file_params: dict[str, Any] = {
        key: value
        for key, value in {
            **table_options,
            "columns": list(columns) if columns else None,
            "label_column": label,
            "scale": None if scale == "none" else scale,
        }.items()
        if value is not None
    }
    # Every check of the file happens here, before anything is planned or
    # written: a file that cannot be fitted leaves no results folder.
    data = load_dataset(f"file:{path}", **file_params)
    if data.notes.get("left_out"):
        echo(
            f"note: columns {data.notes['left_out']} hold no numbers and are not "
            "features (choose features with --columns)."
        )
    if data.notes.get("decimal") == ",":
        echo("note: numbers are written with a decimal comma (3,6 = 3.6); read so.")
    for name in data.notes.get("label_like", []):
        echo(
            f"warning: column {name!r} holds few distinct whole numbers and looks "
            f"like a class label; if it is one, pass --label {name} to exclude it."
        )
    center = np.asarray(data.notes.get("center", np.zeros(data.X.shape[1])))
    spread = np.asarray(data.notes.get("spread", np.ones(data.X.shape[1])))
    # Log-likelihoods in the file's units: log p(x) = log p(x') - sum log spread.
    log_jacobian = data.X.shape[0] * float(np.sum(np.log(spread)))
    if scale != "none":
        echo(
            f"note: columns {scale}-scaled for fitting; log-likelihood, BIC, ICL "
            "and parameters are in the file's units. EII, VII, EEV, VEV, EVE "
            "and VVE are not invariant to rescaling columns: with --scale they "
            "are different models than on the raw columns."
        )
    out = Path(out)
    existed = out.exists()
    cells = out / CHECKPOINT
    try:
        result = search(
            data.X,
            models,
            components,
            prior="default" if prior else None,
            # Units must not matter: regularisation relative to each feature.
            reg_covar_relative=True,
            n_jobs=jobs,
            progress=progress,
            # Every finished cell is kept: after Ctrl-C the same command
            # fits only the cells it had not finished.
            checkpoint=cells,
        )
        searched = result.best("bic")
    except ValueError as error:
        # Nothing to show for it: a search without a model leaves no folder.
        shutil.rmtree(cells, ignore_errors=True)
        if not existed and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise ValueError(f"{path.name}: {error}") from None
    if result.n_resumed:
        echo(
            f"resumed: {result.n_resumed} finished cell fits read back from "
            f"{cells} (same data and options), the others fitted now."
        )
    table = result.table.copy()
    if data.labels is not None:
        # Agreement of every fitted cell's clustering with the known classes.
        table["ari"] = [
            adjusted_rand_score(data.labels, fit.predict(data.X))
            if (fit := result.fits.get((row.model, row.n_components))) is not None
            else np.nan
            for row in table.itertuples()
        ]
    best = top_models(table, 1, "bic").iloc[0]
    model, n_components = str(best["model"]), int(best["n_components"])

    # Only now, with a chosen model, does anything go to disk.
    (out / "results").mkdir(parents=True, exist_ok=True)
    # The engine cross-check at the chosen model: scikit-learn only has four.
    sklearn_name = ALIASES.get(model)
    engines = tuple(
        b for b in backends if b != "sklearn" or sklearn_name is not None
    ) or ("em",)
    # One absolute reg_covar for every engine of the cross-check (scikit-learn
    # has no relative one): 1e-6 of the geometric mean of the columns'
    # variances, as 1e-6 would be after rescaling the data to unit size.
    reg_covar = 1e-6 * float(np.exp(np.mean(np.log(data.X.var(axis=0)))))
    backend_tables = {
        name: (
            {"seeds": 1}
            if name.startswith("pymc")
            else {"reg_covar": reg_covar}
            if name in ("em", "sklearn")
            else {}
        )
        for name in engines
    }
    config = parse_config(
        {
            "sweep": {"root_seed": 0, "seeds": seeds},
            "datasets": [
                {
                    "name": f"file:{path}",
                    "n_components": [n_components],
                    **({"params": file_params} if file_params else {}),
                }
            ],
            "backends": backend_tables,
            "grid": {
                "covariance_type": [sklearn_name or model],
                "init_params": ["kmeans", "random_from_data"],
            },
        },
        source=f"gmmlab fit {path.name}",
    )
    manifest = out / "results" / "manifest.json"
    replace = (
        manifest.is_file()
        and json.loads(manifest.read_text()).get("config_hash") != config.config_hash
    )
    run_sweep(
        config,
        out / "results",
        jobs=jobs,
        force=replace,
        progress=progress,
        echo=echo,
    )

    search_fit = ChosenFit(
        params=searched.params_,
        log_likelihood=float(best["log_likelihood"]),
        bic=float(best["bic"]),
        icl=float(best["icl"]),
        source="model search",
        start=str(best["start"]),
        n_iter=int(best["n_iter"]),
        repairs=tuple(
            f"restart {e.restart}, iteration {e.iteration}: {e.action} of "
            f"component {e.component + 1} ({e.reason})"
            for e in searched.degenerate_events_
        ),
    )
    notes: list[str] = []
    if prior:
        # The cross-check fits by maximum likelihood: its likelihoods are
        # higher than a MAP fit's by construction, not a better maximum.
        chosen = search_fit
    else:
        recorded = read_tables(out / "results")
        chosen, notes = adopt_cross_check(
            search_fit,
            recorded["runs"],
            recorded.get("components", pd.DataFrame()),
            data.X,
            model=model,
            n_components=n_components,
            n_parameters=int(best["n_parameters"]),
            log_jacobian=log_jacobian,
        )
    _, log_resp = e_step(data.X, chosen.params)
    probabilities = np.exp(log_resp)
    labels = probabilities.argmax(axis=1)
    cell = (table["model"] == model) & (table["n_components"] == n_components)
    table.loc[cell, ["log_likelihood", "bic", "icl", "start", "n_iter"]] = [
        chosen.log_likelihood,
        chosen.bic,
        chosen.icl,
        chosen.start,
        chosen.n_iter,
    ]
    if data.labels is not None:
        table.loc[cell, "ari"] = adjusted_rand_score(data.labels, labels)
    # In the file's units from here on.
    table["log_likelihood"] -= log_jacobian
    table["bic"] += 2 * log_jacobian
    table["icl"] += 2 * log_jacobian
    table["chosen"] = cell
    # An adopted maximum only lowers the chosen cell's BIC: it stays first.
    top = top_models(table, 3, "bic")
    best = top.iloc[0]
    uncertainty = 1.0 - probabilities.max(axis=1)
    frame = read_table(path, **table_options)
    assignments = frame.copy()
    # Components are numbered 1..K in every output, as in mclust.
    assignments["component"] = labels + 1
    for k in range(n_components):
        assignments[f"p_component_{k + 1}"] = probabilities[:, k]
    assignments["uncertainty"] = uncertainty
    atomic_write(assignments.to_csv(index=False), out / "assignments.csv")
    atomic_write(table.to_csv(index=False), out / "model_search.csv")
    columns = list(data.notes["columns"])
    original = data.X * spread + center
    points = pd.DataFrame(original[:, :2], columns=columns[:2])
    points["component"] = assignments["component"].to_numpy()
    points["uncertainty"] = uncertainty
    if label is not None:
        points["label"] = frame[label].astype(str).to_numpy()
    atomic_write(points, out / "results" / "uncertainty.parquet")
    # Parameters in the file's units: x = center + spread * x'.
    means = center + spread * chosen.params.means
    covariances = chosen.params.full_covariances() * np.outer(spread, spread)
    parameters = {
        "weights": chosen.params.weights.tolist(),
        "means": means.tolist(),
        "covariances": covariances.tolist(),
    }
    # The report draws the chosen fit from this record, never from a refit.
    record = table.assign(
        file=path.name,
        dataset=f"file:{path}",
        prior=bool(prior),
        scale=scale,
        chosen_note=np.where(cell, " ".join(notes), ""),
        chosen_params=np.where(cell, json.dumps(parameters), ""),
    )
    atomic_write(record, out / "results" / "model_search.parquet")
    summary = {
        "file": str(path),
        "columns": columns,
        "model": model,
        "n_components": n_components,
        "covariance_type": model,
        "prior": bool(prior),
        "scale": scale,
        "source": chosen.source,
        "start": chosen.start,
        "log_likelihood": float(best["log_likelihood"]),
        "bic": float(best["bic"]),
        "icl": float(best["icl"]),
        "n_parameters": int(best["n_parameters"]),
        "mean_uncertainty": float(uncertainty.mean()),
        "notes": notes,
        **parameters,
        "top3": [
            {
                "model": str(row["model"]),
                "n_components": int(row["n_components"]),
                "bic": float(row["bic"]),
                "log_likelihood": float(row["log_likelihood"]),
            }
            for _, row in top.iterrows()
        ],
        "flagged_cells": int((table["status"] != "ok").sum()),
        **(_label_agreement(table, best, label, data) if label is not None else {}),
        "degenerate_events": list(chosen.repairs),
    }
    atomic_write(json.dumps(summary, indent=2) + "\n", out / "parameters.json")
    index = build_report(out / "results", out)
    echo(_describe(summary, table, verbose=verbose))
    echo(
        f"report: {index}\nassignments: {out / 'assignments.csv'}\n"
        f"model search: {out / 'model_search.csv'}\n"
        f"parameters: {out / 'parameters.json'}"
    )
    return summary


@dataclass(frozen=True)
class ChosenFit:
    """The fit ``gmmlab fit`` reports, in the units it was fitted in.

    Attributes
    ----------
    params : MixtureParams
    log_likelihood, bic, icl : float
        BIC and ICL by :func:`mixtures.diagnostics.bic` and ``icl``.
    source : {"model search", "engine cross-check"}
    start : str
        The search's start (``hc``, ``kmeans-0``, ...) or the cross-check's
        engine, start and seed.
    n_iter : int
        EM iterations of that start.
    repairs : tuple of str
        Degenerate-component repairs made on the way (none in force).
    """

    params: MixtureParams
    log_likelihood: float
    bic: float
    icl: float
    source: str
    start: str
    n_iter: int
    repairs: tuple[str, ...] = ()


def adopt_cross_check(
    search_fit: ChosenFit,
    runs: pd.DataFrame,
    components: pd.DataFrame,
    X: np.ndarray,
    *,
    model: str,
    n_components: int,
    n_parameters: int,
    nats: float = SAME_OPTIMUM_NATS,
    log_jacobian: float = 0.0,
) -> tuple[ChosenFit, list[str]]:
    """The chosen fit: the search's, or a higher maximum of the cross-check.

    The cross-check's best run of the same model (scikit-learn's names are
    mapped to mclust's) and K is :func:`experiments.analysis.choose_model`'s
    choice among its eligible maximum-likelihood runs. It replaces
    ``search_fit`` when its log-likelihood on ``X``, recomputed from its
    recorded parameters, is more than ``nats`` higher; it is ok by
    :func:`mixtures.diagnostics.classify`, the verdict the sweep recorded
    (only eligible runs are chosen). Returns the fit and the sentences that say how the
    cross-check compares; log-likelihoods in them are shifted by
    ``-log_jacobian`` into the file's units.
    """
    cell = f"{model}, K = {n_components}"
    same = runs[
        (runs["covariance_type"].map(mclust_name) == model)
        & (runs["n_components"] == n_components)
    ]
    try:
        run = choose_model(same)
    except ValueError:
        return search_fit, [
            f"No run of the engine cross-check at {cell} is ok; the model "
            "search's fit is the chosen one."
        ]
    params = params_from_components(components[components["run_id"] == run.run_id])
    log_likelihood = float(np.sum(score_samples(X, params)))
    gap = log_likelihood - search_fit.log_likelihood
    where = (
        f"{run['backend']} from a {run['init']} start (seed {int(run['seed'])}, "
        f"run {run['run_id']})"
    )
    if gap <= nats:
        if gap >= -nats:
            return search_fit, [
                f"The engine cross-check's best run at {cell}, {where}, reaches "
                f"the same maximum as the model search (within {nats:g} nats)."
            ]
        return search_fit, [
            f"The engine cross-check's best run at {cell}, {where}, reached "
            f"log-likelihood {log_likelihood - log_jacobian:.3f}, {-gap:.3f} nats "
            "below the chosen fit: none of its starts found the model search's "
            "maximum."
        ]
    found = (
        f"The engine cross-check found a higher maximum at {cell} than the model "
        f"search: {where} reached log-likelihood "
        f"{log_likelihood - log_jacobian:.3f}, {gap:.3f} nats above the "
        f"search's best start ({search_fit.start}, "
        f"{search_fit.log_likelihood - log_jacobian:.3f})."
    )
    events = run.get("d_degenerate_events", np.nan)
    repairs = 0 if pd.isna(events) else int(events)
    adopted = ChosenFit(
        params=params,
        log_likelihood=log_likelihood,
        bic=bic(log_likelihood, n_parameters, X.shape[0]),
        icl=icl(log_likelihood, n_parameters, X, params),
        source="engine cross-check",
        start=f"cross-check: {run['backend']}, {run['init']}, seed {int(run['seed'])}",
        n_iter=int(run["n_iter"]),
        repairs=(f"{repairs} repair(s) in the cross-check run",) if repairs else (),
    )
    return adopted, [
        f"{found} That fit (status ok, BIC and ICL recomputed) is the chosen "
        "fit everywhere: console, parameters.json, assignments.csv and report. "
        "The search missed this maximum: a defect of the search, tracked "
        "separately."
    ]


def _label_agreement(table: pd.DataFrame, best, label: str, data) -> dict:
    """ARI of the chosen model, and of the best cell with K = classes.

    Both against the label column; the second cell is the best ok one with
    as many components as there are classes.
    """
    n_classes = int(np.unique(data.labels).size)
    at_classes = top_models(table[table["n_components"] == n_classes], 1, "bic")
    agreement = {
        "label": label,
        "n_classes": n_classes,
        "ari": float(best["ari"]),
    }
    if not at_classes.empty:
        row = at_classes.iloc[0]
        agreement["best_at_n_classes"] = {
            "model": str(row["model"]),
            "n_components": n_classes,
            "bic": float(row["bic"]),
            "ari": float(row["ari"]),
        }
    return agreement


def _parameter_table(
    weights: list[float], means: list[list[float]], columns: list[str]
) -> str:
    """Components as rows (1..K), weight and one mean per feature as columns."""
    frame = pd.DataFrame(means, columns=columns, index=range(1, len(weights) + 1))
    frame.insert(0, "weight", weights)
    # Named in the corner, the component numbers repeat in every wrapped block.
    frame.columns.name = "component"
    width = shutil.get_terminal_size((100, 24)).columns
    return frame.to_string(
        float_format=lambda value: f"{value:.{SIGNIFICANT_DIGITS}g}",
        line_width=width,
    )


def _describe(summary: dict, table: pd.DataFrame, *, verbose: bool = False) -> str:
    counts = table["status"].value_counts()
    flagged = ", ".join(
        f"{int(counts[status])} {status}" for status in counts.index if status != "ok"
    )
    lines = [
        f"model search on {Path(summary['file']).name}: {len(table)} cells "
        f"({table['model'].nunique()} models x K = "
        f"{table['n_components'].min()}..{table['n_components'].max()})"
        + (f"; never chosen: {flagged}" if flagged else "; every cell ok"),
        "top models by BIC (lower is better; mclust prints minus these):",
    ]
    for rank, row in enumerate(summary["top3"], start=1):
        lines.append(
            f"  {rank}. {row['model']},{row['n_components']}  BIC {row['bic']:.2f}  "
            f"log-likelihood {row['log_likelihood']:.3f}"
        )
    lines.append(
        f"best model: {summary['model']} with K = {summary['n_components']} "
        f"(log-likelihood {summary['log_likelihood']:.3f}, BIC {summary['bic']:.2f}, "
        f"ICL {summary['icl']:.2f}; mean classification uncertainty "
        f"{summary['mean_uncertainty']:.3f}; start {summary['start']}): the fit "
        "every output shows"
    )
    lines.extend(f"note: {note}" for note in summary["notes"])
    if "label" in summary:
        line = (
            f"agreement with column {summary['label']!r} ({summary['n_classes']} "
            f"classes): adjusted Rand index {summary['ari']:.3f}"
        )
        other = summary.get("best_at_n_classes")
        if other and summary["n_components"] != summary["n_classes"]:
            line += (
                f"; the best ok fit with K = {summary['n_classes']} is "
                f"{other['model']} (BIC {other['bic']:.2f}, ARI {other['ari']:.3f})"
            )
        lines.append(line)
    events = summary["degenerate_events"]
    if events:
        lines.append(
            f"the chosen fit needed {len(events)} repair(s) of the degenerate-"
            "component policy on its way (none in force at the end, or it would "
            "not be ok): " + "; ".join(events[:3]) + (" ..." if len(events) > 3 else "")
        )
    flagged = table[table["status"] != "ok"]
    lines.extend(
        f"  flagged {row.model},{row.n_components} ({row.status}): {row.reason}"
        for row in flagged.head(5).itertuples()
    )
    if len(flagged) > 5:
        lines.append(f"  ... and {len(flagged) - 5} more in model_search.csv")
    lines.append("weights and means of the chosen fit:")
    lines.append(
        _parameter_table(summary["weights"], summary["means"], summary["columns"])
    )
    if verbose or len(summary["columns"]) <= MAX_FEATURES_WITH_COVARIANCES:
        lines.append(
            f"covariance matrices (rows and columns: {', '.join(summary['columns'])}):"
        )
        for k, (weight, cov) in enumerate(
            zip(summary["weights"], summary["covariances"], strict=True), start=1
        ):
            lines.append(f"component {k}: weight {weight:.4f}")
            matrix = np.array2string(np.array(cov), precision=4, suppress_small=True)
            lines.append(textwrap.indent(matrix, "  "))
    else:
        lines.append(
            "covariance matrices: in parameters.json (--verbose prints them here)"
        )
    return "\n".join(lines)


def parse_components(text: str) -> list[int]:
    """``--components``: ``"3"`` -> [3]; ``"1..8"`` -> [1, ..., 8]."""
    try:
        return config.parse_components(text)
    except ValueError:
        raise ValueError(
            f"--components must be a positive K or a range like 1..8; got {text!r}."
        ) from None


def assignments_frame(path: Path) -> pd.DataFrame:
    """Read back an assignments file (for tests and notebooks)."""
    return pd.read_csv(path)
