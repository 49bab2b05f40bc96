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

**Steps.** :func:`fit_file` is the command; each step is a function of its
own. :func:`load_file` reads and checks the file (:class:`FileData`, with
the notes to print); :func:`search_file` runs the model search
(:class:`FileSearch`: the table with label agreement, the chosen cell and
its fit; it prints nothing and writes nothing but its resume cells);
:func:`cross_check_config` and :func:`run_cross_check` plan and run the
engine cross-check; :func:`choose_fit` picks the fit every output shows;
:func:`~experiments.userfit_outputs.file_outputs` builds every table and
the summary in the file's units (no files) and
:func:`~experiments.userfit_outputs.write_outputs` writes them and the
report; :func:`~experiments.userfit_console.echo_summary` prints the
summary. The names of what is written are :mod:`experiments.tables`'s.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from experiments import config
from experiments.analysis import SAME_OPTIMUM_NATS, choose_model
from experiments.config import SweepConfig, parse_config
from experiments.datasets import SCALINGS, Dataset, load_dataset
from experiments.report import params_from_components
from experiments.runner import run_sweep
from experiments.tables import (
    ASSIGNMENTS_CSV,
    MANIFEST,
    PARAMETERS_JSON,
    RESULTS,
    SEARCH_CELLS,
    read_tables,
)
from experiments.userfit_console import (
    MAX_FEATURES_WITH_COVARIANCES as MAX_FEATURES_WITH_COVARIANCES,
)
from experiments.userfit_console import SIGNIFICANT_DIGITS as SIGNIFICANT_DIGITS
from experiments.userfit_console import _describe as _describe
from experiments.userfit_console import _parameter_table as _parameter_table
from experiments.userfit_console import echo_summary
from experiments.userfit_outputs import FitOutputs, file_outputs, write_outputs
from experiments.userfit_outputs import _label_agreement as _label_agreement
from experiments.userfit_toolbox import check_toolbox_options, run_toolbox
from mixtures.backends.base import total_log_likelihood
from mixtures.covariance import ALIASES, mclust_name
from mixtures.diagnostics import bic, icl
from mixtures.estimator import GaussianMixture
from mixtures.params import MixtureParams
from mixtures.select import SearchResult, search, top_models

__all__ = [
    "ChosenFit",
    "FileData",
    "FileSearch",
    "FitOutputs",
    "adopt_cross_check",
    "choose_fit",
    "cross_check_config",
    "file_outputs",
    "fit_file",
    "load_file",
    "run_cross_check",
    "search_file",
    "write_outputs",
]

#: The search's finished cells, inside the results folder (see fit_file).
CHECKPOINT = SEARCH_CELLS


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
    missing: str = "error",
    backends: tuple[str, ...] = ("em", "sklearn"),
    out: str | Path,
    seeds: int = 5,
    jobs: int = 1,
    progress: bool = True,
    verbose: bool = False,
    lrt: int = 0,
    noise: bool = False,
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
    always in ``parameters.json``. ``missing="em"`` fits files with empty
    cells (see :func:`load_file`) over each row's observed values. ``lrt``
    (replicates per step, 0 for none) adds the bootstrap likelihood-ratio
    tests of the chosen model (:mod:`experiments.userfit_lrt`), ``noise``
    the search with a uniform noise component
    (:mod:`experiments.userfit_noise`); both are in the report.
    """
    check_toolbox_options(lrt, noise, missing)
    # Every check of the file happens here, before anything is planned or
    # written: a file that cannot be fitted leaves no results folder.
    file = load_file(
        path,
        columns=columns,
        label=label,
        sep=sep,
        header=header,
        scale=scale,
        missing=missing,
    )
    for note in file.notes:
        echo(note)
    out = Path(out)
    existed = out.exists()
    cells = out / CHECKPOINT
    try:
        found = search_file(
            file,
            components=components,
            models=models,
            prior=prior,
            jobs=jobs,
            progress=progress,
            # Every finished cell is kept: after Ctrl-C the same command
            # fits only the cells it had not finished.
            checkpoint=cells,
        )
    except ValueError as error:
        # Nothing to show for it: a search without a model leaves no folder.
        shutil.rmtree(cells, ignore_errors=True)
        if not existed and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise ValueError(f"{file.path.name}: {error}") from None
    if found.result.n_resumed:
        echo(
            f"resumed: {found.result.n_resumed} finished cell fits read back from "
            f"{cells} (same data and options), the others fitted now."
        )
    # Only now, with a chosen model, does anything go to disk.
    results = out / RESULTS
    results.mkdir(parents=True, exist_ok=True)
    sweep = cross_check_config(file, found, backends=backends, seeds=seeds)
    run_cross_check(sweep, results, jobs=jobs, progress=progress, echo=echo)
    chosen, notes = choose_fit(file, found, results, prior=prior)
    outputs = file_outputs(file, found, chosen, notes, prior=prior)
    extras = run_toolbox(
        file, found, out, results, lrt=lrt, noise=noise, jobs=jobs, progress=progress
    )
    index = write_outputs(outputs, out)
    echo_summary(outputs.summary, outputs.table, index, out, verbose=verbose, echo=echo)
    for line in extras:
        echo(line)
    return outputs.summary


# ---------------------------------------------------------------------------
# The file and its search (nothing printed, no output written)


@dataclass(frozen=True)
class FileData:
    """A data file read and checked for ``gmmlab fit``.

    Attributes
    ----------
    path : Path
        The file, resolved.
    data : Dataset
        Its ``file`` data set: the features as fitted (scaled with ``scale``).
    table_options : dict
        ``sep`` and ``header``, as :func:`~experiments.files.read_table` takes them.
    file_params : dict
        The ``file`` data set's parameters that were given.
    label : str or None
        The column of known classes.
    scale : str
    center, spread : ndarray of shape (n_features,)
        The file's units are ``center + spread * x`` of the fitted ``x``.
    log_jacobian : float
        ``n * sum(log spread)``: a log-likelihood of the fitted data minus
        this is one in the file's units.
    notes : tuple of str
        What the console says about how the file was read.
    missing : {"error", "em"}
        Whether missing values are fitted over (EM over observed values).
    """

    path: Path
    data: Dataset
    table_options: dict[str, Any]
    file_params: dict[str, Any]
    label: str | None
    scale: str
    center: np.ndarray
    spread: np.ndarray
    log_jacobian: float
    notes: tuple[str, ...]
    missing: str = "error"

    @property
    def kept_rows(self) -> np.ndarray:
        """The file's data rows that were fitted (all but rows with no value)."""
        dropped = self.data.notes.get("dropped_rows", [])
        n_rows = self.data.X.shape[0] + len(dropped)
        return np.setdiff1d(np.arange(n_rows), dropped)


def load_file(
    path: str | Path,
    *,
    columns: list[str] | None = None,
    label: str | None = None,
    sep: str | None = None,
    header: bool | None = None,
    scale: str = "none",
    missing: str = "error",
) -> FileData:
    """Read and check ``path`` as :func:`fit_file` fits it; ValueError if it cannot.

    With ``missing="em"``, empty cells (and ``NA``, ``NaN``) are missing
    values, fitted over; a row with no value at all is left out, said so.
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
            "missing": None if missing == "error" else missing,
        }.items()
        if value is not None
    }
    data = load_dataset(f"file:{path}", **file_params)
    notes = []
    if data.notes.get("left_out"):
        notes.append(
            f"note: columns {data.notes['left_out']} hold no numbers and are not "
            "features (choose features with --columns)."
        )
    if data.notes.get("decimal") == ",":
        notes.append(
            "note: numbers are written with a decimal comma (3,6 = 3.6); read so."
        )
    notes.extend(
        f"warning: column {name!r} holds few distinct whole numbers and looks "
        f"like a class label; if it is one, pass --label {name} to exclude it."
        for name in data.notes.get("label_like", [])
    )
    notes.extend(_missing_notes(data))
    center = np.asarray(data.notes.get("center", np.zeros(data.X.shape[1])))
    spread = np.asarray(data.notes.get("spread", np.ones(data.X.shape[1])))
    # Log-likelihoods in the file's units: log p(x) = log p(x') - sum log spread.
    log_jacobian = data.X.shape[0] * float(np.sum(np.log(spread)))
    if scale != "none":
        notes.append(
            f"note: columns {scale}-scaled for fitting; log-likelihood, BIC, ICL "
            "and parameters are in the file's units. EII, VII, EEV, VEV, EVE "
            "and VVE are not invariant to rescaling columns: with --scale they "
            "are different models than on the raw columns."
        )
    return FileData(
        path,
        data,
        table_options,
        file_params,
        label,
        scale,
        center,
        spread,
        log_jacobian,
        tuple(notes),
        missing,
    )


def _missing_notes(data) -> list[str]:
    """What the console says of the missing values of a file read with them."""
    if data.notes.get("missing") != "em":
        return []
    n_cells = data.X.size
    notes = (
        [
            f"note: {data.notes['n_missing']} of {n_cells} values are missing "
            f"({data.notes['n_missing'] / n_cells:.1%}), in "
            f"{data.notes['n_incomplete_rows']} of {data.X.shape[0]} rows; "
            "fitted by EM over each row's observed values (--missing em), which "
            "assumes they are missing at random."
        ]
        if data.notes["n_missing"]
        else [
            "note: no value of the rows fitted is missing (--missing em changes "
            "nothing for them)."
        ]
    )
    dropped = data.notes.get("dropped_rows", [])
    if dropped:
        shown = ", ".join(str(i + 1) for i in dropped[:10])
        notes.append(
            f"note: {len(dropped)} row(s) have no value in any feature column "
            f"(data rows {shown}{' ...' if len(dropped) > 10 else ''}): they "
            "carry no information, are left out of the fit, and are unassigned "
            "in assignments.csv."
        )
    return notes


@dataclass(frozen=True)
class FileSearch:
    """A file's model search and the cell it chose (in the fitted units).

    Attributes
    ----------
    result : SearchResult
    table : DataFrame
        The search's table, with ``ari`` (each cell's agreement with the
        label column) where the file has one.
    searched : GaussianMixture
        The search's fit of the chosen cell.
    best : Series
        The chosen cell's row of ``table``: the lowest BIC among ok cells.
    model : str
    n_components : int
    """

    result: SearchResult
    table: pd.DataFrame
    searched: GaussianMixture
    best: pd.Series
    model: str
    n_components: int


def search_file(
    file: FileData,
    *,
    components: list[int],
    models: list[str] | None = None,
    prior: bool = False,
    jobs: int = 1,
    progress: bool = True,
    checkpoint: Path | None = None,
) -> FileSearch:
    """Search every model x K on ``file``; ValueError when no cell is ok.

    Prints nothing (``progress`` is the search's progress bar) and writes
    nothing but the finished cells in ``checkpoint`` (see
    :func:`mixtures.select.search`), from which the same search resumes.
    """
    result = search(
        file.data.X,
        models,
        components,
        prior="default" if prior else None,
        # Units must not matter: regularisation relative to each feature.
        reg_covar_relative=True,
        n_jobs=jobs,
        progress=progress,
        checkpoint=checkpoint,
        missing=file.missing,
    )
    searched = result.best("bic")
    table = result.table.copy()
    data = file.data
    if data.labels is not None:
        # Agreement of every fitted cell's clustering with the known classes.
        table["ari"] = [
            adjusted_rand_score(data.labels, fit.predict(data.X))
            if (fit := result.fits.get((row.model, row.n_components))) is not None
            else np.nan
            for row in table.itertuples()
        ]
    best = top_models(table, 1, "bic").iloc[0]
    return FileSearch(
        result, table, searched, best, str(best["model"]), int(best["n_components"])
    )


# ---------------------------------------------------------------------------
# The engine cross-check and the chosen fit


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
    log_likelihood = total_log_likelihood(X, params)  # NaN: observed values
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
        f"fit everywhere: console, {PARAMETERS_JSON}, {ASSIGNMENTS_CSV} and report. "
        "The search missed this maximum: a defect of the search, tracked "
        "separately."
    ]


#: The engines of the cross-check that fit data with missing values.
MISSING_ENGINES = ("em",)


def cross_check_config(
    file: FileData, found: FileSearch, *, backends: tuple[str, ...], seeds: int
) -> SweepConfig:
    """The sweep that fits the chosen model and K with every engine of ``backends``."""
    # The engine cross-check at the chosen model: scikit-learn only has four.
    sklearn_name = ALIASES.get(found.model)
    engines = tuple(
        b for b in backends if b != "sklearn" or sklearn_name is not None
    ) or ("em",)
    holes = bool(np.isnan(file.data.X).any())
    if holes:
        # Only gmmlab's EM fits over observed values (MISSING_ENGINES).
        engines = tuple(b for b in engines if b in MISSING_ENGINES) or ("em",)
    # One absolute reg_covar for every engine of the cross-check (scikit-learn
    # has no relative one): 1e-6 of the geometric mean of the columns'
    # variances, as 1e-6 would be after rescaling the data to unit size.
    reg_covar = 1e-6 * float(np.exp(np.mean(np.log(np.nanvar(file.data.X, axis=0)))))
    em_options: dict[str, Any] = {"reg_covar": reg_covar}
    if holes:
        em_options["missing"] = "em"
    backend_tables = {
        name: (
            {"seeds": 1}
            if name.startswith("pymc")
            else em_options
            if name == "em"
            else {"reg_covar": reg_covar}
            if name == "sklearn"
            else {}
        )
        for name in engines
    }
    return parse_config(
        {
            "sweep": {"root_seed": 0, "seeds": seeds},
            "datasets": [
                {
                    "name": f"file:{file.path}",
                    "n_components": [found.n_components],
                    # One value per parameter: a list (the columns) is
                    # wrapped, since a sweep reads a bare list as a grid.
                    **(
                        {
                            "params": {
                                key: [value] if isinstance(value, list) else value
                                for key, value in file.file_params.items()
                            }
                        }
                        if file.file_params
                        else {}
                    ),
                }
            ],
            "backends": backend_tables,
            "grid": {
                "covariance_type": [sklearn_name or found.model],
                "init_params": ["kmeans", "random_from_data"],
            },
        },
        source=f"gmmlab fit {file.path.name}",
    )


def run_cross_check(
    sweep: SweepConfig, results: Path, *, jobs: int, progress: bool, echo=print
) -> None:
    """Run the cross-check into ``results``, afresh if its configuration changed."""
    manifest = results / MANIFEST
    replace = (
        manifest.is_file()
        and json.loads(manifest.read_text()).get("config_hash") != sweep.config_hash
    )
    run_sweep(
        sweep,
        results,
        jobs=jobs,
        force=replace,
        progress=progress,
        echo=echo,
    )


def choose_fit(
    file: FileData, found: FileSearch, results: Path, *, prior: bool
) -> tuple[ChosenFit, list[str]]:
    """The fit every output shows, and the notes on how it was chosen.

    The search's fit, or a higher maximum of the cross-check recorded in
    ``results`` (:func:`adopt_cross_check`); always the search's with
    ``prior``.
    """
    best, searched = found.best, found.searched
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
    if prior:
        # The cross-check fits by maximum likelihood: its likelihoods are
        # higher than a MAP fit's by construction, not a better maximum.
        return search_fit, []
    recorded = read_tables(results)
    return adopt_cross_check(
        search_fit,
        recorded["runs"],
        recorded.get("components", pd.DataFrame()),
        file.data.X,
        model=found.model,
        n_components=found.n_components,
        n_parameters=int(best["n_parameters"]),
        log_jacobian=file.log_jacobian,
    )


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
