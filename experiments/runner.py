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

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.analysis import convergence_summary
from experiments.config import (
    CheckEntry,
    RunSpec,
    SweepConfig,
    engine_stopping_options,
    plan_runs,
)
from experiments.datasets import load_dataset
from experiments.evaluate import evaluate_fit, failed_result
from experiments.executors import call_with_time_limit, map_as_completed
from experiments.provenance import new_manifest, now
from experiments.starts import START_RECIPES, starting_parameters
from experiments.tables import (
    TABLES,
    atomic_write,
    completed_run_ids,
    consolidate,
    folder_lock,
    read_tables,
    write_run,
)
from mixtures.backends import get_backend

__all__ = ["execute_run", "read_tables", "run_check", "run_sweep"]


def _fit_and_evaluate(spec: RunSpec) -> dict[str, Any]:
    data = load_dataset(spec.dataset, seed=spec.data_seed, **spec.dataset_params)
    options = dict(spec.backend_options)
    if spec.init in START_RECIPES or (
        spec.engine == "function" and spec.init != "default"
    ):
        # One explicit start for every engine of the run.
        start = starting_parameters(
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
    fit = get_backend(spec.engine).fit(
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


def _run_checks(config: SweepConfig, out: Path) -> pd.DataFrame | None:
    if not config.checks:
        return None
    rows = []
    for entry in config.checks:
        try:
            rows.extend(call_with_time_limit(run_check, entry, config.timeout))
        except Exception as error:  # the time limit
            rows.append(_check_error(entry, error))
    frame = pd.DataFrame(rows)
    atomic_write(frame, out / "checks.parquet")
    return frame


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
        tables = (*TABLES, "convergence", "checks")
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


def _summary_table(runs: pd.DataFrame) -> str:
    if runs.empty:
        return "no runs"
    grouped = runs.groupby(["dataset", "backend"], sort=True)
    columns = {
        "runs": grouped.size(),
        **{
            status: grouped["status"].apply(lambda s, v=status: int((s == v).sum()))
            for status in ("ok", "degenerate", "unconverged", "failed")
        },
    }
    if "log_likelihood" in runs:
        ok = runs[runs["status"] == "ok"].groupby(["dataset", "backend"])
        columns["best ok log-lik, any K"] = ok["log_likelihood"].max().round(2)
        columns["median seconds"] = grouped["seconds"].median().round(3)
    return pd.DataFrame(columns).to_string()


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
        manifest = _prepare_folder(out, config, force)
        done = completed_run_ids(out)
        pending = [spec for spec in specs if spec.run_id not in done]
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
        checks = _run_checks(config, out)
        if checks is not None:
            tables["checks"] = checks
        runs = tables["runs"]
        statuses = runs["status"].value_counts() if len(runs) else pd.Series()
        manifest.update(
            finished_at=now(),
            n_runs=len(runs),
            n_by_status={k: int(v) for k, v in statuses.items()},
        )
        atomic_write(json.dumps(manifest, indent=2, default=str), out / "manifest.json")
    echo(_summary_table(runs))
    echo(f"tables in {out}: {', '.join(f'{t}.parquet' for t in tables)}")
    return tables
