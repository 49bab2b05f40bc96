"""Running a sweep: :func:`execute_run` for one run, :func:`run_sweep` for all.

Each run is a pure function of its :class:`~experiments.config.RunSpec`: it
loads the data, fits through the backend registry with the sweep's stopping
rule in the engine's own units, and turns the fit into table rows
(:mod:`experiments.evaluate`). A run that raises or exceeds its timeout
becomes a ``failed`` row, so the sweep goes on.

:func:`run_sweep` holds the results folder's lock
(:func:`experiments.tables.folder_lock`), skips the runs already on disk,
executes the rest (:mod:`experiments.executors`) and writes every run the
moment it finishes (:func:`experiments.tables.write_run`): Ctrl-C or SIGKILL
lose at most the runs in flight, and the same command resumes. At the end
the parts are consolidated into the tables, and ``manifest.json``
(:mod:`experiments.provenance`) records how they were made.
"""

from __future__ import annotations

import functools
import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.analysis import (
    SAME_OPTIMUM_NATS,
    STATUSES,
    convergence_summary,
    data_columns,
    data_set_summary,
)
from experiments.config import (
    CheckEntry,
    RunSpec,
    SweepConfig,
    engine_stopping_options,
    plan_runs,
)
from experiments.data_facts import record_data
from experiments.datasets import dataset_name, load_dataset
from experiments.evaluate import evaluate_fit, failed_result
from experiments.executors import call_with_time_limit, map_as_completed
from experiments.provenance import new_manifest, now
from experiments.starts import START_RECIPES, fair_start, starting_parameters
from experiments.tables import (
    DATA_SETS,
    SAMPLES,
    TABLES,
    atomic_write,
    completed_run_ids,
    consolidate,
    folder_lock,
    read_tables,
    table_path,
    write_run,
)
from mixtures.backends import get_backend
from mixtures.backends.base import fit_in_standard_units

__all__ = ["execute_run", "read_tables", "run_check", "run_sweep"]


def _fit_and_evaluate(spec: RunSpec) -> dict[str, Any]:
    data = load_dataset(spec.dataset, seed=spec.data_seed, **spec.dataset_params)
    options = dict(spec.backend_options)
    if spec.init in START_RECIPES or (
        spec.engine == "function" and spec.init != "default"
    ):
        # One explicit start for every engine of the run; an EM function
        # gets its fair version (experiments.starts: never reg_covar * I).
        make_start = fair_start if spec.engine == "function" else starting_parameters
        start = make_start(
            spec.init,
            data.X,
            spec.n_components,
            covariance_type=spec.covariance_type,
            random_state=spec.fit_seed,
        )
        typed = (
            start
            if spec.engine == "function"
            else start.as_covariance_type(spec.covariance_type)
        )
        options.update(
            weights_init=typed.weights,
            means_init=typed.means,
            precisions_init=typed.precisions,
        )
    elif spec.init != "default":
        options["init_params"] = spec.init
    if spec.stopping is not None:
        options.update(engine_stopping_options(spec.engine, spec.stopping, data.X))
    backend = get_backend(spec.engine)
    # Maximum-likelihood engines fit in standard units, so that no verdict,
    # start or optimum depends on the units the data came in.
    fit_fn = (
        functools.partial(fit_in_standard_units, backend)
        if getattr(backend, "fits_in_standard_units", False)
        else backend.fit
    )
    fit = fit_fn(
        data.X,
        spec.n_components,
        covariance_type=spec.covariance_type,
        random_state=spec.fit_seed,
        **options,
    )
    return evaluate_fit(spec, data, fit)


def execute_run(spec: RunSpec) -> dict[str, Any]:
    """Run one sweep cell; never raises. Returns rows for the three tables."""
    try:
        return call_with_time_limit(_fit_and_evaluate, spec, spec.timeout)
    except Exception as error:  # a failed run is data, not a crash
        # (Ctrl-C inside the compiled kernel arrives as KeyboardInterrupt:
        # call_with_time_limit unwraps it, and it stops the sweep.)
        return failed_result(spec, error)


def _check_error(entry: CheckEntry, error: BaseException) -> dict[str, Any]:
    """The one row of a check that could not load, run or finish in time."""
    return {
        "target": entry.target,
        "convention": entry.convention,
        "check": "load and run",
        "result": "error",
        "evidence": f"{type(error).__name__}: {error}",
        "diagnosis": "",
    }


def run_check(entry: CheckEntry) -> list[dict[str, Any]]:
    """``gmmlab check`` on one ``[[checks]]`` target, as table rows; never raises."""
    from mixtures.check import check_em, load_function

    marks = {True: "pass", False: "fail", None: "n/a"}
    try:
        results = check_em(load_function(entry.target), convention=entry.convention)
    except Exception as error:  # a broken target is a result, not a crash
        return [_check_error(entry, error)]
    return [
        {
            "target": entry.target,
            "convention": entry.convention,
            "check": result.name,
            "result": marks[result.passed],
            "evidence": result.evidence,
            "diagnosis": result.diagnosis,
        }
        for result in results
    ]


def _run_checks(config: SweepConfig, out: Path, tables) -> None:
    """Run the sweep's ``[[checks]]``; write and add the ``checks`` table."""
    if not config.checks:
        return
    rows = []
    for entry in config.checks:
        try:
            rows.extend(call_with_time_limit(run_check, entry, config.timeout))
        except Exception as error:  # the time limit
            rows.append(_check_error(entry, error))
    frame = pd.DataFrame(rows)
    atomic_write(frame, out / "checks.parquet")
    tables["checks"] = frame


def _prepare_folder(out: Path, config: SweepConfig, force: bool) -> dict[str, Any]:
    manifest_path = out / "manifest.json"
    if manifest_path.is_file() and not force:
        previous = json.loads(manifest_path.read_text())
        if previous.get("config_hash") != config.config_hash:
            raise ValueError(
                f"results folder {str(out)!r} was made by a different configuration "
                f"({previous.get('config_source')}); choose another --out, or pass "
                "--force to replace it."
            )
    sessions = []
    if manifest_path.is_file() and not force:
        # A resumed folder holds parts made by every session: keep their
        # provenance, not only the last one's.
        previous = json.loads(manifest_path.read_text())
        sessions = [
            *previous.get("earlier_sessions", []),
            {
                key: previous.get(key)
                for key in ("git_commit", "versions", "started_at", "finished_at")
            },
        ]
    if force:
        tables = (*TABLES, "convergence", "checks", DATA_SETS, SAMPLES)
        for name in ("parts", *(f"{t}.parquet" for t in tables)):
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    manifest = new_manifest(config)
    if sessions:
        manifest["earlier_sessions"] = sessions
    atomic_write(json.dumps(manifest, indent=2, default=str), manifest_path)
    return manifest


def _summary_table(runs: pd.DataFrame, nats: float = SAME_OPTIMUM_NATS) -> str:
    """The console summary: one line per data set variant, never pooled.

    The numbers are :func:`experiments.analysis.data_set_summary`'s; this
    only lays them out. A data set's parameters are shown where they vary.
    """
    if runs.empty:
        return "no runs"
    table = data_set_summary(runs, nats)
    params = [c for c in data_columns(runs) if c in table]
    varying = [c for c in params if runs.groupby("dataset")[c].nunique().max() > 1]
    labels = [
        " ".join(
            [dataset_name(row["dataset"])]
            + [
                f"{c.removeprefix('p_')}={_plain(row[c])}"
                for c in varying
                if pd.notna(row[c])
            ]
        )
        for _, row in table.iterrows()
    ]
    model = [
        f"K={int(k)} {cov}" if pd.notna(k) else "-"
        for k, cov in zip(table["n_components"], table["covariance_type"], strict=True)
    ]
    shown = pd.DataFrame(
        {
            "data": labels,
            "replicate": table["data_replicate"],
            "fits": table["n_runs"],
            **{status: table[f"n_{status}"] for status in STATUSES},
            "posterior": table["n_posterior"],
            "model": model,
            "best ML log-lik": table["best_log_likelihood"].round(2),
            "at best": table["n_at_best"].astype(str)
            + "/"
            + table["n_candidates"].astype(str),
            "median seconds": table["median_seconds"].round(3),
        }
    )
    note = (
        "One row per data set variant and data replicate. best ML log-lik: the "
        "best ok maximum-likelihood fit of the model kept (lowest BIC), any "
        f"engine or start; at best: fits of that model within {nats:g} nats of "
        "it, of those run under the sweep's stopping rule. Posterior "
        "summaries are counted, never best."
    )
    return shown.to_string(index=False) + "\n" + note


def _plain(value) -> str:
    """A parameter value as typed: 250, not 250.0."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _record_data(out: Path, specs: list[RunSpec], tables) -> None:
    """Write (or keep) the ``data_sets`` and ``samples`` tables; add them to ``tables``.

    The report draws the data from these, never by loading a data set.
    """
    path = table_path(out, DATA_SETS)
    known = pd.read_parquet(path) if path.is_file() else None
    recorded = record_data(specs, known)
    if recorded is not None:
        for name, frame in zip((DATA_SETS, SAMPLES), recorded, strict=True):
            atomic_write(frame, table_path(out, name))
    for name in (DATA_SETS, SAMPLES):
        if table_path(out, name).is_file():
            tables[name] = pd.read_parquet(table_path(out, name))


def _stored(out: Path, tables) -> list[str]:
    """The files of ``tables`` that ``out`` holds (derived ones are not stored)."""
    return [f"{name}.parquet" for name in tables if table_path(out, name).is_file()]


def run_sweep(
    config: SweepConfig,
    out: str | Path,
    *,
    jobs: int = 1,
    scheduler: str | None = None,
    timeout: float | None = None,
    force: bool = False,
    progress: bool = True,
    echo=print,
) -> dict[str, pd.DataFrame]:
    """Run (or resume) a sweep into ``out``; return the consolidated tables.

    Raises
    ------
    ValueError
        When ``out`` belongs to another configuration (unless ``force``),
        or another process is writing it
        (:class:`~experiments.tables.FolderLockedError`).
    """
    from tqdm.auto import tqdm

    out = Path(out)
    specs = plan_runs(config)
    if timeout is not None:
        specs = [replace(spec, timeout=timeout) for spec in specs]
    with folder_lock(out, echo=echo):
        manifest_path = out / "manifest.json"
        previous = (
            json.loads(manifest_path.read_text())
            if manifest_path.is_file() and not force
            else None
        )
        manifest = _prepare_folder(out, config, force)
        done = completed_run_ids(out)
        pending = [spec for spec in specs if spec.run_id not in done]
        # A finished sweep run again runs nothing: no new session, and the
        # record of when it ran (which the report prints) stays as it was.
        nothing_ran = (
            not pending and previous is not None and bool(previous.get("finished_at"))
        )
        if nothing_ran and previous is not None:
            manifest = previous
            atomic_write(json.dumps(manifest, indent=2, default=str), manifest_path)
        echo(
            f"{len(specs)} runs in {config.source}: {len(specs) - len(pending)} "
            f"already done, {len(pending)} to run, {jobs} job(s)"
            + (f" on Dask ({scheduler})" if scheduler else "")
        )
        with tqdm(
            total=len(pending), unit="run", disable=not progress, smoothing=0.1
        ) as bar:
            lost = []
            for spec, result, error in map_as_completed(
                execute_run, pending, jobs=jobs, scheduler=scheduler
            ):
                # An error of the executor itself (a worker killed, a broken
                # pool) says nothing about the run: it is not written, so the
                # same command retries it. The run's own errors are results.
                if error is None:
                    write_run(out, result)
                else:
                    lost.append(f"{spec.run_id}: {type(error).__name__}: {error}")
                bar.update()
        if lost:
            echo(
                f"{len(lost)} run(s) were lost to a worker failure and not "
                f"recorded (first: {lost[0]}); run the same command to retry them."
            )
        tables = consolidate(
            out,
            [spec.run_id for spec in specs],
            lambda runs: convergence_summary(runs, config.same_optimum_nats),
        )
        _record_data(out, specs, tables)
        _run_checks(config, out, tables)
        runs = tables["runs"]
        statuses = runs["status"].value_counts() if len(runs) else pd.Series()
        if not nothing_ran:
            manifest["finished_at"] = now()
        manifest.update(
            n_runs=len(runs),
            n_by_status={k: int(v) for k, v in statuses.items()},
        )
        atomic_write(json.dumps(manifest, indent=2, default=str), out / "manifest.json")
    echo(_summary_table(runs, config.same_optimum_nats))
    echo(f"tables in {out}: {', '.join(_stored(out, tables))}")
    return tables
