"""What every section of a report is given: the results folder, read once.

:func:`read_results` reads a results folder's ``manifest.json`` and tables
into one :class:`ReportData`; a :class:`Section` is a report section's
heading-and-content function with the condition under which it appears.
:func:`run_points` and :func:`run_data_set` give what the runner recorded
of the data a run was fitted to (:mod:`experiments.data_facts`; the report
never loads a data set), and :func:`run_params` rebuilds its point estimate.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from experiments.analysis import SAME_OPTIMUM_NATS, convergence_summary
from experiments.report_stats import params_from_components
from experiments.tables import DATA_SETS, SAMPLES, TOOLBOX, read_tables
from mixtures import MixtureParams

if TYPE_CHECKING:
    from experiments.report.document import Document

__all__ = [
    "MISSING_DATA_NOTE",
    "ReportData",
    "Section",
    "read_results",
    "run_data_set",
    "run_params",
    "run_points",
]

#: What a section says where a results folder holds no record of its data.
MISSING_DATA_NOTE = (
    "This results folder holds no record of the data (it was made by an older "
    "gmmlab); run its sweep again with gmmlab run --force to record it."
)


@dataclass(frozen=True)
class ReportData:
    """A results folder's manifest and tables, as the sections read them.

    Tables the sweep did not write are empty frames (``traces``,
    ``components``, ``convergence``) or None (``checks``, ``predictive``,
    ``model_search``, ``uncertainty``, ``data_sets``, ``samples``). ``nats``
    is the sweep's same-optimum threshold. ``toolbox`` holds the tables of
    :data:`~experiments.tables.TOOLBOX` that ``gmmlab fit`` wrote, by name.
    """

    manifest: dict[str, Any]
    runs: pd.DataFrame
    traces: pd.DataFrame
    components: pd.DataFrame
    convergence: pd.DataFrame
    checks: pd.DataFrame | None
    predictive: pd.DataFrame | None
    model_search: pd.DataFrame | None
    uncertainty: pd.DataFrame | None
    nats: float
    data_sets: pd.DataFrame | None = None
    samples: pd.DataFrame | None = None
    toolbox: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def fitted(self) -> bool:
        """Whether any run ran to the end (status other than failed)."""
        return bool((self.runs["status"] != "failed").any())


@dataclass(frozen=True)
class Section:
    """One section of the report: when it appears and what it writes."""

    name: str
    applies: Callable[[ReportData], bool]
    render: Callable[[Document, ReportData], None]


def read_results(results: Path) -> ReportData:
    """Read a results folder; ValueError when it is not one, or has no runs."""
    manifest_path = results / "manifest.json"
    if not manifest_path.is_file():
        raise ValueError(
            f"{str(results)!r} is not a results folder (no manifest.json); "
            "run `gmmlab run` first."
        )
    tables = read_tables(results)
    if "runs" not in tables:
        raise ValueError(
            f"{str(results)!r} has no runs.parquet yet; the sweep has not "
            "finished once."
        )
    manifest = json.loads(manifest_path.read_text())
    return ReportData(
        manifest=manifest,
        runs=tables["runs"],
        traces=tables.get("traces", pd.DataFrame()),
        components=tables.get("components", pd.DataFrame()),
        # Derived from the runs here, never read from a stored copy.
        convergence=convergence_summary(
            tables["runs"],
            float(manifest.get("same_optimum_nats", SAME_OPTIMUM_NATS)),
        ),
        checks=tables.get("checks"),
        predictive=tables.get("predictive"),
        model_search=tables.get("model_search"),
        uncertainty=tables.get("uncertainty"),
        nats=float(manifest.get("same_optimum_nats", SAME_OPTIMUM_NATS)),
        data_sets=tables.get(DATA_SETS),
        samples=tables.get(SAMPLES),
        toolbox={name: tables[name] for name in TOOLBOX if name in tables},
    )


def run_data_set(run: pd.Series, data: ReportData) -> pd.Series | None:
    """The ``data_sets`` row of the data a run was fitted to, or None.

    None when the folder has no such record (an older folder, or a data set
    not on the first data replicate).
    """
    if data.data_sets is None or "data_key" not in run:
        return None
    rows = data.data_sets[data.data_sets["data_key"] == run["data_key"]]
    return rows.iloc[0] if len(rows) else None


def run_points(run: pd.Series, data: ReportData) -> tuple[np.ndarray, list[str]] | None:
    """The recorded rows of a run's data, shape (n_shown, n_features), and names.

    The rows :mod:`experiments.data_facts` keeps for drawing; None where the
    folder has no record of them.
    """
    facts = run_data_set(run, data)
    if facts is None or data.samples is None:
        return None
    rows = data.samples[data.samples["data_key"] == run["data_key"]]
    X = rows.pivot(index="row", columns="feature", values="value").to_numpy(float)
    return X, list(json.loads(facts["features"]))


def run_params(run: pd.Series, components: pd.DataFrame) -> MixtureParams:
    """The point estimate of a recorded run, from the components table."""
    return params_from_components(components[components["run_id"] == run["run_id"]])
