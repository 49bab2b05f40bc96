"""``gmmlab fit DIR --scheduler ...``: the model search on data larger than memory.

A folder of Parquet files (or one file) or a Zarr array is opened lazily
(:func:`mixtures.io.open_rows`) and searched block by block on Dask
(:func:`mixtures.dask_select.search_dask`: every start on a seeded sample
in memory, then EM to convergence over every row for each cell). The
scheduler is

* ``None``: Dask's threaded scheduler in this process;
* ``"local"``: a ``distributed.LocalCluster`` of ``jobs`` single-threaded
  worker processes on this machine;
* an address (``tcp://host:8786``): a running Dask cluster, whose workers
  must see ``path`` and ``out`` at the same paths (a shared file system).

Nothing is gathered: the output folder gets ``model_search.csv``,
``parameters.json``, ``model_search.png`` (BIC over K per model) and
``assignments/``, a folder of Parquet files written by the workers, one per
block of rows (``row``, ``component`` 1..K, ``p_component_k``,
``uncertainty``), renamed into place only when every block is written. The
search is in the data's own units, regularised relative to each feature's
variance, so units do not matter (as for files in memory).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from experiments.report.figures.selection import model_search_figure
from experiments.report.figures.style import STYLE, png_bytes
from experiments.tables import (
    MODEL_SEARCH_CSV,
    PARAMETERS_JSON,
    SEARCH_CELLS,
    atomic_write,
)
from experiments.userfit_console import _describe
from mixtures.dask_rows import per_block
from mixtures.dask_select import search_dask
from mixtures.io import column_names, open_rows
from mixtures.missing import observed_e_step
from mixtures.params import MixtureParams
from mixtures.select import top_models

__all__ = ["ASSIGNMENTS_DIR", "fit_rows", "scheduler"]

#: The folder of per-block assignment files.
ASSIGNMENTS_DIR = "assignments"
#: How long to wait for a cluster's scheduler to answer.
CONNECT_TIMEOUT = "20s"
#: The BIC figure of the search.
MODEL_SEARCH_PNG = "model_search.png"


@contextlib.contextmanager
def scheduler(address: str | None, jobs: int):
    """Dask's scheduler for the ``with`` block (see the module docstring)."""
    import dask

    if address is None:
        with dask.config.set(scheduler="threads", num_workers=jobs):
            yield "threads"
        return
    from distributed import Client, LocalCluster

    if address == "local":
        with (
            LocalCluster(
                n_workers=jobs, threads_per_worker=1, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except OSError as error:
        raise ValueError(
            f"no Dask scheduler answers at {address!r} ({error}); start one, "
            "or use --scheduler local"
        ) from None
    with client:
        yield client


def _cells_on(active):
    """Where the sample search's cells run.

    On a cluster, on its workers (joblib's Dask backend); with Dask's
    threads, in ``jobs`` local processes.
    """
    if active == "threads":
        return contextlib.nullcontext()
    import joblib

    return joblib.parallel_config(backend="dask")


def fit_rows(
    path: str | Path,
    *,
    components: list[int],
    models: list[str] | None = None,
    columns: list[str] | None = None,
    address: str | None = None,
    prior: bool = False,
    missing: str = "error",
    out: str | Path,
    sample_size: int = 50_000,
    jobs: int = 1,
    progress: bool = True,
    verbose: bool = False,
    echo=print,
) -> dict:
    """Search the rows at ``path`` on Dask and write the outputs to ``out``.

    Returns the chosen fit's summary (also ``parameters.json``). ``prior``
    fits by MAP-EM (Fraley & Raftery 2007's prior), ``missing="em"`` over
    each row's observed values, as in memory.
    """
    path, out = Path(path), Path(out)
    X = open_rows(path, columns)  # reads metadata only; ValueError if unusable
    names = column_names(path, columns)
    if X.shape[0] == 0:
        raise ValueError(f"{path} has no rows.")
    echo(
        f"{path.name}: {X.shape[0]:,} rows x {X.shape[1]} features in "
        f"{X.numblocks[0]} blocks; starts searched on a sample of "
        f"{min(sample_size, X.shape[0]):,} rows, every cell then fitted on all rows"
    )
    with scheduler(address, jobs) as active, _cells_on(active):
        found = search_dask(
            X,
            models,
            components,
            sample_size=sample_size,
            random_state=0,
            n_jobs=jobs,
            reg_covar_relative=True,  # units must not matter
            prior="default" if prior else None,
            missing=missing,
            progress=progress,
            checkpoint=out / SEARCH_CELLS,
        )
        best = top_models(found.table, 1, "bic")
        if best.empty:
            raise ValueError(
                f"{path.name}: no cell of the search is ok (every fit flagged); "
                "see the reasons with fewer components or other models."
            )
        row = best.iloc[0]
        fitted = found.fits[(row["model"], int(row["n_components"]))]
        out.mkdir(parents=True, exist_ok=True)
        uncertainty = write_assignments(X, fitted.params_, out / ASSIGNMENTS_DIR)
    table = found.table.assign(
        chosen=(found.table["model"] == row["model"])
        & (found.table["n_components"] == row["n_components"])
    )
    summary = _summary(path, names, table, fitted.params_, row, uncertainty)
    summary["prior"] = bool(prior)
    summary["n_rows"] = int(X.shape[0])
    atomic_write(table.to_csv(index=False), out / MODEL_SEARCH_CSV)
    atomic_write(json.dumps(summary, indent=2) + "\n", out / PARAMETERS_JSON)
    flagged = table[table["status"] != "ok"]
    with matplotlib.rc_context(STYLE):  # the report's type sizes
        figure = model_search_figure(table, flagged, top_models(table, 3, "bic"))
        atomic_write(png_bytes(figure), out / MODEL_SEARCH_PNG)
    echo(_describe(summary, table, verbose=verbose))
    echo(
        f"assignments: {out / ASSIGNMENTS_DIR} (one Parquet file per block)\n"
        f"model search: {out / MODEL_SEARCH_CSV} and {out / MODEL_SEARCH_PNG}\n"
        f"parameters: {out / PARAMETERS_JSON}"
    )
    return summary


def _summary(path, names, table, params: MixtureParams, row, uncertainty) -> dict:
    """``parameters.json`` (the keys of the in-memory ``gmmlab fit``'s)."""
    return {
        "file": str(path),
        "columns": names,
        "model": str(row["model"]),
        "n_components": int(row["n_components"]),
        "covariance_type": str(row["model"]),
        "prior": False,
        "scale": "none",
        "source": "search",
        "start": str(row["start"]),
        "log_likelihood": float(row["log_likelihood"]),
        "bic": float(row["bic"]),
        "icl": float(row["icl"]),
        "n_parameters": int(row["n_parameters"]),
        "mean_uncertainty": uncertainty,
        "notes": [],
        "weights": params.weights.tolist(),
        "means": params.means.tolist(),
        "covariances": params.full_covariances().tolist(),
        "top3": [
            {
                "model": str(cell["model"]),
                "n_components": int(cell["n_components"]),
                "bic": float(cell["bic"]),
                "log_likelihood": float(cell["log_likelihood"]),
            }
            for _, cell in top_models(table, 3, "bic").iterrows()
        ],
        "flagged_cells": int((table["status"] != "ok").sum()),
        "degenerate_events": [],
    }


def write_assignments(X, params: MixtureParams, folder: Path) -> float:
    """Write each block's assignments as one Parquet file in ``folder``.

    The workers write them; returns the mean classification uncertainty of
    all rows. The files go to a hidden sibling folder first, which replaces ``folder``
    only when every block is written: never a half-written folder.
    """
    import dask

    staging = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    starts = np.concatenate([[0], np.cumsum(X.chunks[0])[:-1]])
    items = [
        (int(start), str(staging / f"part-{i:05d}.parquet"))
        for i, start in enumerate(starts)
    ]
    tasks = per_block(X, _write_block, params, items=items)
    sums = dask.compute(*tasks)
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)
    return float(sum(sums)) / X.shape[0]


def _write_block(
    block, _weights, item: tuple[int, str], params: MixtureParams
) -> float:
    """One block's assignments to ``file``; returns its summed uncertainty.

    A row with holes is assigned by the density of its observed values.
    ``item`` is the block's first row number and its file.
    """
    start, file = item
    _, log_resp = observed_e_step(np.asarray(block, dtype=np.float64), params)
    probabilities = np.exp(log_resp)
    frame = pd.DataFrame({"row": np.arange(start, start + len(probabilities))})
    frame["component"] = probabilities.argmax(axis=1) + 1
    for k in range(probabilities.shape[1]):
        frame[f"p_component_{k + 1}"] = probabilities[:, k]
    frame["uncertainty"] = 1.0 - probabilities.max(axis=1)
    frame.to_parquet(file, index=False)
    return float(frame["uncertainty"].sum())
