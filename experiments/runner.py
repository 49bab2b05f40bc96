"""Running a sweep: every run through one executor, every result on disk safely.

Each run is a pure function of its :class:`~experiments.config.RunSpec`
(:func:`execute_run`): it loads the data, fits through the backend registry,
scores the fit (:mod:`mixtures.align`) and returns table rows. A run that
raises or exceeds its timeout is returned as a ``failed`` row, so the sweep
goes on. The parent process writes each finished run to
``parts/{runs,traces,components}/RUN_ID.parquet``, atomically (a temporary
file, then ``os.replace``) and the ``runs`` part last, so a run is complete
exactly when its ``runs`` part exists. Killing the sweep at any moment
leaves every completed run readable; running the same command again resumes
by skipping completed run ids. At the end the parts are gathered, in run-id
order, into ``runs.parquet``, ``traces.parquet``, ``components.parquet`` and
``convergence.parquet``, each replaced atomically, and ``manifest.json``
records the configuration, versions, commit, platform and times.

Executors: in-process for ``jobs=1``; a process pool for ``jobs > 1``; a
Dask cluster for ``scheduler="tcp://host:port"`` or a new ``LocalCluster``
for ``scheduler="local"``. All are ``concurrent.futures`` executors driven by
the same loop, and results are independent of which ran them.

The common stopping rule: every iterative trace is also scored as if it had
stopped at the first iteration whose relative change
``|l_t - l_{t-1}| / |l_t|`` fell below ``1e-6`` (``common_n_iter``,
``common_mean_log_likelihood``), so engines with different native rules can
be compared. Posterior-draw traces have no such point (NaN).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import threading
import traceback
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.analysis import convergence_summary
from experiments.config import RunSpec, SweepConfig, plan_runs
from experiments.datasets import load_dataset
from mixtures.align import match_components, recovery_metrics
from mixtures.backends import get_backend

__all__ = ["COMMON_RULE_RTOL", "TABLES", "execute_run", "read_tables", "run_sweep"]

COMMON_RULE_RTOL = 1e-6
TABLES = ("runs", "traces", "components")
_NUMERIC_DIAGNOSTICS = (
    "r_hat_max",
    "ess_bulk_min",
    "divergences",
    "sampling_seconds",
    "degenerate_events",
    "final_elbo",
    "n_init",
)


# ---------------------------------------------------------------------------
# One run


class RunTimeoutError(TimeoutError):
    """A run exceeded the sweep's per-run timeout."""


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise RunTimeoutError after ``seconds`` (POSIX, main thread only).

    Dask workers run tasks in threads, where no alarm can be set; there the
    limit is not enforced (the README says so).
    """
    usable = (
        seconds
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise RunTimeoutError(f"run exceeded its timeout of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def common_stopping_point(trace: np.ndarray) -> tuple[int, float]:
    """``(n_iter, value)`` where the common rule would have stopped ``trace``."""
    trace = np.asarray(trace, dtype=float)
    if trace.size == 0:
        return 0, float("nan")
    change = np.abs(np.diff(trace)) <= COMMON_RULE_RTOL * np.abs(trace[1:])
    hits = np.flatnonzero(change)
    index = int(hits[0]) + 1 if hits.size else trace.size - 1
    return index + 1, float(trace[index])


def _identity(spec: RunSpec) -> dict[str, Any]:
    row = {
        "run_id": spec.run_id,
        "dataset": spec.dataset,
        "backend": spec.backend,
        "n_components": spec.n_components,
        "covariance_type": spec.covariance_type,
        "init": spec.init,
        "seed_index": spec.seed_index,
        "data_seed": spec.data_seed,
        "fit_seed": spec.fit_seed,
    }
    row.update({f"p_{key}": value for key, value in spec.dataset_params.items()})
    row.update(
        {
            f"p_{spec.backend}_{key}": value
            for key, value in spec.backend_options.items()
        }
    )
    return row


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
    estimates = {
        "weight": params.weights[:, None, None],
        "mean": params.means[:, :, None],
        "covariance": params.full_covariances(),
    }
    truths = (
        None
        if truth is None
        else {
            "weight": truth.weights[:, None, None],
            "mean": truth.means[:, :, None],
            "covariance": truth.full_covariances(),
        }
    )
    sd = diagnostics.get("posterior_sd", {})
    hdi = diagnostics.get("hdi_94", {})
    source = {"weight": "weights", "mean": "means", "covariance": "covariances"}
    shapes = {
        "weight": (1, 1),
        "mean": (params.n_features, 1),
        "covariance": (params.n_features, params.n_features),
    }
    rows = []
    for k, fitted in enumerate(order):
        for parameter, (rows_i, cols_j) in shapes.items():
            name = source[parameter]
            spread = sd.get(name)
            interval = hdi.get(name)
            for i in range(rows_i):
                for j in range(i if parameter == "covariance" else 0, cols_j):
                    rows.append(  # noqa: PERF401 - a comprehension four loops deep reads worse
                        {
                            "run_id": run_id,
                            "component": k,
                            "parameter": parameter,
                            "i": i,
                            "j": j,
                            "estimate": float(estimates[parameter][fitted, i, j]),
                            "truth": float("nan")
                            if truths is None
                            else float(truths[parameter][k, i, j]),
                            "posterior_sd": _entry(spread, (fitted, i, j)),
                            "hdi_low": _entry(interval, (fitted, i, j), 0),
                            "hdi_high": _entry(interval, (fitted, i, j), 1),
                        }
                    )
    return rows


def execute_run(spec: RunSpec) -> dict[str, Any]:
    """Run one sweep cell; never raises. Returns rows for the three tables."""
    row = _identity(spec)
    try:
        with _time_limit(spec.timeout):
            data = load_dataset(
                spec.dataset, seed=spec.data_seed, **spec.dataset_params
            )
            options = dict(spec.backend_options)
            if spec.init != "default":
                options["init_params"] = spec.init
            fit = get_backend(spec.backend).fit(
                data.X,
                spec.n_components,
                covariance_type=spec.covariance_type,
                random_state=spec.fit_seed,
                **options,
            )
    except Exception as error:  # a failed run is data, not a crash
        row.update(
            status="failed",
            error=f"{type(error).__name__}: {error}",
            traceback=traceback.format_exc(limit=3),
        )
        return {"run": row, "traces": [], "components": []}

    n_samples, n_features = data.X.shape
    n_parameters = fit.params.as_covariance_type(spec.covariance_type).n_parameters()
    common_n_iter, common_value = (
        common_stopping_point(fit.loglik_trace)
        if fit.trace_kind != "draw_mean_loglik"
        else (np.nan, np.nan)
    )
    row.update(
        status="ok",
        error="",
        traceback="",
        n_samples=n_samples,
        n_features=n_features,
        n_parameters=n_parameters,
        log_likelihood=fit.log_likelihood,
        mean_log_likelihood=fit.log_likelihood / n_samples,
        bic=-2 * fit.log_likelihood + n_parameters * np.log(n_samples),
        aic=-2 * fit.log_likelihood + 2 * n_parameters,
        n_iter=fit.n_iter,
        converged=fit.converged,
        seconds=fit.seconds,
        trace_kind=fit.trace_kind,
        version=fit.version,
        # float even when whole: NaN marks draw traces, and the schema must not
        # depend on which engines a sweep happened to contain.
        common_n_iter=float(common_n_iter),
        common_mean_log_likelihood=common_value,
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
            X=data.X,
            true_labels=data.labels,
            n_kl_samples=4000,
            random_state=spec.data_seed,
        )
        row.update({f"m_{key}": value for key, value in metrics.items()})
        order = match_components(params, truth)
    elif data.labels is not None:
        from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

        from mixtures.em import predict_labels

        predicted = predict_labels(data.X, params)
        row["m_ari"] = float(adjusted_rand_score(data.labels, predicted))
        row["m_nmi"] = float(normalized_mutual_info_score(data.labels, predicted))
        truth = None
    else:
        truth = None
    traces = [
        {
            "run_id": spec.run_id,
            "restart": restart,
            "iteration": index + 1,
            "value": float(value),
            "trace_kind": fit.trace_kind,
        }
        for restart, trace in enumerate(fit.restart_traces)
        for index, value in enumerate(trace)
    ]
    return {
        "run": row,
        "traces": traces,
        "components": _component_rows(
            spec.run_id, params, order, truth, fit.diagnostics
        ),
    }


# ---------------------------------------------------------------------------
# Writing safely


def _atomic_write_parquet(frame: pd.DataFrame, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(temporary, index=False)
    os.replace(temporary, path)


def _atomic_write_text(text: str, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _write_parts(out: Path, result: dict[str, Any]) -> None:
    run_id = result["run"]["run_id"]
    # runs last: its presence is what marks the run complete.
    for table, rows in (
        ("traces", result["traces"]),
        ("components", result["components"]),
        ("runs", [result["run"]]),
    ):
        if rows:
            _atomic_write_parquet(
                pd.DataFrame(rows), out / "parts" / table / f"{run_id}.parquet"
            )


def _completed(out: Path) -> set[str]:
    folder = out / "parts" / "runs"
    return (
        {path.stem for path in folder.glob("*.parquet")} if folder.is_dir() else set()
    )


def _read_parts(out: Path, table: str, run_ids: list[str]) -> pd.DataFrame:
    frames = []
    for run_id in run_ids:
        path = out / "parts" / table / f"{run_id}.parquet"
        if path.is_file():
            frames.append(pd.read_parquet(path))
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def read_tables(out: str | Path) -> dict[str, pd.DataFrame]:
    """The consolidated tables of a results folder, by name."""
    out = Path(out)
    return {
        name: pd.read_parquet(out / f"{name}.parquet")
        for name in (*TABLES, "convergence")
        if (out / f"{name}.parquet").is_file()
    }


# ---------------------------------------------------------------------------
# Provenance


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in (
        "gmmlab",
        "numpy",
        "scipy",
        "scikit-learn",
        "pandas",
        "pyarrow",
        "pymc",
        "arviz",
        "dask",
        "distributed",
    ):
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)
    return found


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _prepare_folder(out: Path, config: SweepConfig, force: bool) -> dict[str, Any]:
    manifest_path = out / "manifest.json"
    if manifest_path.is_file():
        previous = json.loads(manifest_path.read_text())
        if previous.get("config_hash") != config.config_hash and not force:
            raise ValueError(
                f"results folder {str(out)!r} was made by a different configuration "
                f"({previous.get('config_source')}); choose another --out, or pass "
                "--force to replace it."
            )
    if force and out.exists():
        for name in ("parts", *(f"{t}.parquet" for t in (*TABLES, "convergence"))):
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    for table in TABLES:
        (out / "parts" / table).mkdir(parents=True, exist_ok=True)
    manifest = {
        "config": config.raw,
        "config_hash": config.config_hash,
        "config_source": config.source,
        "versions": _versions(),
        "git_commit": _git_commit(),
        "platform": {
            "python": platform.python_version(),
            "system": platform.platform(),
            "machine": platform.machine(),
            "cores": os.cpu_count(),
        },
        "common_stopping_rule": f"relative change of the trace <= {COMMON_RULE_RTOL:g}",
        "started_at": _now(),
        "finished_at": None,
    }
    _atomic_write_text(json.dumps(manifest, indent=2, default=str), manifest_path)
    return manifest


# ---------------------------------------------------------------------------
# Executors


class _InlineExecutor(Executor):
    """Runs each task at submit time, in this process (jobs = 1)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)
        return future


def _worker_setup() -> None:
    # One process per core: keep each worker's numerical code single-threaded.
    os.environ["GMMLAB_NUM_THREADS"] = "1"
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


@contextlib.contextmanager
def _executor(jobs: int, scheduler: str | None) -> Iterator[Executor]:
    if scheduler is not None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ValueError(
                "--scheduler needs Dask: pip install 'gmmlab[dask]'"
            ) from None
        cluster = None
        if scheduler == "local":
            cluster = LocalCluster(
                n_workers=jobs,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            )
            client = Client(cluster)
        else:
            client = Client(scheduler)
        try:
            client.run(_worker_setup)
            yield client.get_executor(pure=False)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        return
    if jobs <= 1:
        yield _InlineExecutor()
        return
    import multiprocessing

    with ProcessPoolExecutor(
        jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_setup
    ) as pool:
        yield pool


# ---------------------------------------------------------------------------
# The sweep


def _consolidate(out: Path, specs: list[RunSpec]) -> dict[str, pd.DataFrame]:
    run_ids = sorted(spec.run_id for spec in specs)
    tables = {}
    for table in TABLES:
        frame = _read_parts(out, table, run_ids)
        if not frame.empty:
            sort = [
                c
                for c in (
                    "run_id",
                    "restart",
                    "iteration",
                    "component",
                    "parameter",
                    "i",
                    "j",
                )
                if c in frame.columns
            ]
            frame = frame.sort_values(sort, kind="stable").reset_index(drop=True)
        _atomic_write_parquet(frame, out / f"{table}.parquet")
        tables[table] = frame
    tables["convergence"] = convergence_summary(tables["runs"])
    _atomic_write_parquet(tables["convergence"], out / "convergence.parquet")
    return tables


def _summary_table(runs: pd.DataFrame) -> str:
    if runs.empty:
        return "no runs"
    grouped = runs.groupby(["dataset", "backend"], sort=True)
    summary = pd.DataFrame(
        {
            "runs": grouped.size(),
            "failed": grouped["status"].apply(lambda s: int((s != "ok").sum())),
            "median log-lik": grouped["log_likelihood"].median().round(2)
            if "log_likelihood" in runs
            else np.nan,
            "median seconds": grouped["seconds"].median().round(3)
            if "seconds" in runs
            else np.nan,
        }
    )
    return summary.to_string()


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
    """Run (or resume) a sweep into ``out``; return the consolidated tables."""
    from tqdm.auto import tqdm

    out = Path(out)
    specs = plan_runs(config)
    if timeout is not None:
        specs = [RunSpec(**{**asdict(spec), "timeout": timeout}) for spec in specs]
    manifest = _prepare_folder(out, config, force)
    done = _completed(out)
    pending = [spec for spec in specs if spec.run_id not in done]
    echo(
        f"{len(specs)} runs in {config.source}: {len(specs) - len(pending)} already "
        f"done, {len(pending)} to run, {jobs} job(s)"
        + (f" on Dask ({scheduler})" if scheduler else "")
    )
    with (
        _executor(jobs, scheduler) as executor,
        tqdm(
            total=len(pending), unit="run", disable=not progress, smoothing=0.1
        ) as bar,
    ):
        futures = {executor.submit(execute_run, spec): spec for spec in pending}
        for future in as_completed(futures):
            try:
                result = future.result()
            except Exception as error:  # the worker itself died
                spec = futures[future]
                row = _identity(spec)
                row.update(
                    status="failed",
                    error=f"{type(error).__name__}: {error}",
                    traceback="",
                )
                result = {"run": row, "traces": [], "components": []}
            _write_parts(out, result)
            bar.update()
    tables = _consolidate(out, specs)
    runs = tables["runs"]
    manifest.update(
        finished_at=_now(),
        n_runs=len(runs),
        n_failed=int((runs["status"] != "ok").sum()) if len(runs) else 0,
    )
    _atomic_write_text(
        json.dumps(manifest, indent=2, default=str), out / "manifest.json"
    )
    echo(_summary_table(runs))
    echo(f"tables in {out}: {', '.join(f'{t}.parquet' for t in tables)}")
    return tables
