"""The results folder: table schema, atomic writes, per-run parts, the lock.

A results folder holds::

    manifest.json           configuration, versions, commit, platform, times
    .lock                   who is writing (pid, host, start), while they are
    parts/TABLE/RUN_ID.parquet   one file per finished run and table
    runs.parquet  traces.parquet  components.parquet  predictive.parquet

Every file is written by :func:`atomic_write` (a temporary file in the same
folder, then ``os.replace``), so a reader never sees half a file, and a
run's ``runs`` part is written last: a run is complete exactly when its
``runs`` part exists. The consolidated tables are gathered from the parts in
run-id order.

Tables (tidy, one row per observation):

``runs``
    One row per run: identity (``run_id``, ``dataset``, ``p_*`` data set
    parameters, ``data_hash``, ``backend`` (the arm), ``engine``,
    ``p_BACKEND_*`` options, ``n_components``, ``covariance_type``, ``init``,
    ``data_replicate``, ``seed``, ``data_seed``, ``fit_seed``,
    ``stopping_tol``, ``stopping_max_iter``, ``comparable``, ``posterior``:
    the backend summarises a posterior), outcome
    (``status``, ``status_reason``, ``stopped_by``, ``error``), scores
    (``log_likelihood``, ``bic``, ``aic``, ...), diagnostics ``d_*`` and
    recovery metrics ``m_*``. See :mod:`experiments.evaluate`.
``traces``
    ``run_id, restart, iteration, value, trace_kind``.
``components``
    ``run_id, component, parameter, i, j, estimate, truth, posterior_sd,
    hdi_low, hdi_high, map``: long form, components aligned to the truth;
    ``map`` is a Bayesian fit's posterior mode (MAP-EM under its prior).
``predictive`` (Bayesian fits only)
    ``run_id, feature, kind, point, x, right, mean, low, high``: for each
    feature, the posterior predictive marginal density on a grid (``kind =
    "density"``: mean and 94% band over the draws) and the data's histogram
    (``kind = "histogram"``: the bin from ``x`` to ``right``, the data's
    density ``mean``, and the 94% band ``low``-``high`` of replicated
    histograms of n points).
``convergence`` (returned, never stored)
    :func:`experiments.analysis.convergence_summary` of ``runs``: derived,
    so it is computed from ``runs`` wherever it is needed (the sweep's
    return value, the report) and can never go stale on disk.
``data_sets`` and ``samples``
    What the report needs to know about each data set variant of the first
    data replicate, recorded by the runner while the data are in memory
    (:mod:`experiments.data_facts`: sizes, feature names and ranges, the
    truth's log-likelihood, and the rows the report draws), so that the
    report never loads a data set.
``checks`` (when the sweep has ``[[checks]]``)
    ``target, convention, check, result, evidence, diagnosis``: the output
    of ``gmmlab check`` on each target, ``result`` in pass/fail/n/a/error.

``gmmlab fit FILE --out OUT`` (:mod:`experiments.userfit`) writes::

    OUT/model_search.csv    every cell of the model search, in the file's units
    OUT/parameters.json     the chosen fit's summary and parameters
    OUT/assignments.csv     the file's rows, their component and probabilities
    OUT/search-cells/       the search's finished cells, for a resumed search
    OUT/results/            the engine cross-check's results folder (above),
                            with two more tables:

``model_search``
    The search's table (:class:`mixtures.select.SearchResult`: ``model,
    n_components, log_likelihood, n_parameters, bic, icl, status, reason,
    start, n_iter, n_starts_ok, n_starts, n_iter_all, seconds``) in the
    file's units, ``ari`` where the file has a label column, ``chosen``
    (True on the chosen cell), and ``file, dataset, prior, scale,
    chosen_note, chosen_params`` (the chosen fit's notes and its weights,
    means and covariances as JSON, on the chosen row only).
``uncertainty``
    One row per data row: its feature columns (in the file's units),
    ``component`` (1..K), ``uncertainty`` (``1 - max_k tau_nk``) and, where
    the file has one, ``label``.

The file and folder names are the constants below; every writer and reader
uses them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from mixtures.checkpoint import write_whole

__all__ = [
    "ASSIGNMENTS_CSV",
    "CHECKS",
    "CONVERGENCE",
    "DATA_SETS",
    "MANIFEST",
    "MODEL_SEARCH",
    "MODEL_SEARCH_CSV",
    "PARAMETERS_JSON",
    "RESULTS",
    "SAMPLES",
    "SEARCH_CELLS",
    "TABLES",
    "TOOLBOX",
    "UNCERTAINTY",
    "FolderLockedError",
    "atomic_write",
    "completed_run_ids",
    "consolidate",
    "folder_lock",
    "read_tables",
    "table_path",
    "write_run",
]

#: The per-run tables, in the order their parts are written (runs last).
TABLES = ("traces", "components", "predictive", "runs")
#: The tables of a results folder besides :data:`TABLES`.
CONVERGENCE = "convergence"
CHECKS = "checks"
#: What the report needs of the data (:mod:`experiments.data_facts`).
DATA_SETS = "data_sets"
SAMPLES = "samples"
MODEL_SEARCH = "model_search"
UNCERTAINTY = "uncertainty"
#: What ``gmmlab fit`` adds to its search when asked (mclust's toolbox): the
#: bootstrap likelihood-ratio tests (``--lrt``), the search with a noise
#: component and its rows (``--noise``), the cross-validated classification
#: of the label column (``--label``). A fit without one removes its table.
TOOLBOX = ("lrt", "noise_search", "noise_points", "classification")
#: A results folder's record of its configuration, versions and times.
MANIFEST = "manifest.json"

# What ``gmmlab fit`` writes in its output folder (see the module docstring).
#: The search's table, in the file's units.
MODEL_SEARCH_CSV = "model_search.csv"
#: The chosen fit's summary and parameters.
PARAMETERS_JSON = "parameters.json"
#: Every row's component, the probability of each, and its uncertainty.
ASSIGNMENTS_CSV = "assignments.csv"
#: The search's finished cells, read back when the same search is rerun.
SEARCH_CELLS = "search-cells"
#: The engine cross-check's results folder.
RESULTS = "results"

_SORT_KEYS = (
    "run_id",
    "restart",
    "iteration",
    "component",
    "parameter",
    "i",
    "j",
    "feature",
    "kind",
    "point",
)


def atomic_write(content: str | bytes | pd.DataFrame, path: str | Path) -> None:
    """Write text, bytes or a DataFrame (as Parquet) to ``path``, all or nothing.

    The content goes to a hidden temporary file in the same folder, which then
    replaces ``path`` in one ``os.replace``; on error the temporary is removed
    and ``path`` is untouched.
    """
    if isinstance(content, pd.DataFrame):
        data = content.to_parquet(None, index=False)
    elif isinstance(content, bytes):
        data = content
    else:
        data = content.encode("utf-8")
    write_whole(Path(path), data)


def table_path(out: str | Path, table: str) -> Path:
    """Where a results folder ``out`` keeps the consolidated ``table``."""
    return Path(out) / f"{table}.parquet"


def write_run(out: Path, result: dict[str, Any]) -> None:
    """Write one finished run's rows as parts; the ``runs`` part last."""
    run_id = result["run"]["run_id"]
    rows_by_table = {
        "traces": result["traces"],
        "components": result["components"],
        "predictive": result.get("predictive", []),
        "runs": [result["run"]],
    }
    for table in TABLES:
        rows = rows_by_table[table]
        folder = out / "parts" / table
        if rows:
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write(pd.DataFrame(rows), folder / f"{run_id}.parquet")
        else:  # no stale part from an earlier, interrupted attempt
            (folder / f"{run_id}.parquet").unlink(missing_ok=True)


def completed_run_ids(out: Path) -> set[str]:
    """Run ids whose ``runs`` part exists: the runs a resume skips."""
    folder = out / "parts" / "runs"
    if not folder.is_dir():
        return set()
    return {path.stem for path in folder.glob("*.parquet")}


def _read_parts(out: Path, table: str, run_ids: list[str]) -> pd.DataFrame:
    frames = [
        pd.read_parquet(path)
        for run_id in run_ids
        if (path := out / "parts" / table / f"{run_id}.parquet").is_file()
    ]
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    keys = [c for c in _SORT_KEYS if c in frame.columns]
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def consolidate(out: Path, run_ids: list[str], summarise) -> dict[str, pd.DataFrame]:
    """Gather the parts of ``run_ids`` into the consolidated tables.

    Every recorded table is replaced atomically; the returned dict adds
    ``summarise(runs)`` as ``convergence``, which is derived and not stored
    (a ``convergence.parquet`` left by an older gmmlab is removed, so that
    nothing can read a stale one).
    """
    ordered = sorted(run_ids)
    tables = {table: _read_parts(out, table, ordered) for table in TABLES}
    for name, frame in tables.items():
        atomic_write(frame, table_path(out, name))
    table_path(out, CONVERGENCE).unlink(missing_ok=True)
    tables[CONVERGENCE] = summarise(tables["runs"])
    return tables


def read_tables(out: str | Path) -> dict[str, pd.DataFrame]:
    """The consolidated tables of a results folder, by name."""
    return {
        name: pd.read_parquet(table_path(out, name))
        for name in (
            *TABLES,
            DATA_SETS,
            SAMPLES,
            CHECKS,
            MODEL_SEARCH,
            UNCERTAINTY,
            *TOOLBOX,
        )
        if table_path(out, name).is_file()
    }


# ---------------------------------------------------------------------------
# The lock


class FolderLockedError(ValueError):
    """Another live process is writing the results folder."""


def _describe_holder(text: str) -> str:
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        return "an unknown process"
    return (
        f"pid {holder.get('pid')} on host {holder.get('host')}, started "
        f"{holder.get('started_at')} ({holder.get('command', '?')})"
    )


@contextlib.contextmanager
def folder_lock(out: Path, echo=print) -> Iterator[None]:
    """Hold ``out/.lock`` for the duration; refuse a second writer.

    The lock is an advisory ``flock`` on ``out/.lock``, which holds the
    holder's pid, host, start time and command while held and is emptied on
    release. The kernel releases a ``flock`` when its process dies, even by
    SIGKILL, so a lock left by a dead process is simply taken over (and
    reported through ``echo``). A second writer gets a
    :class:`FolderLockedError` naming the holder. (``flock`` does not reach
    across hosts on some network file systems.)
    """
    out.mkdir(parents=True, exist_ok=True)
    path = out / ".lock"
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise FolderLockedError(
                f"results folder {str(out)!r} is being written by "
                f"{_describe_holder(handle.read())}; wait for it to finish, or "
                "choose another --out."
            ) from None
        handle.seek(0)
        left = handle.read().strip()
        if left:
            echo(
                f"taking over a stale lock on {out}, left by "
                f"{_describe_holder(left)}, which is no longer running"
            )
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:])[:200],
        }
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(holder))
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()
