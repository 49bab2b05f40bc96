"""What every section of a report is given: the results folder, read once.

:func:`read_results` reads a results folder's ``manifest.json`` and tables
into one :class:`ReportData`; a :class:`Section` is a report section's
heading-and-content function with the condition under which it appears.
:func:`run_data` regenerates the data a recorded run was fitted to, and
:func:`run_params` rebuilds its point estimate.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from experiments.analysis import SAME_OPTIMUM_NATS, convergence_summary, data_columns
from experiments.datasets import load_dataset
from experiments.evaluate import param_from_record
from experiments.report_stats import params_from_components
from experiments.tables import read_tables
from mixtures import MixtureParams

if TYPE_CHECKING:
    from experiments.report.document import Document

__all__ = ["ReportData", "Section", "read_results", "run_data", "run_params"]


@dataclass(frozen=True)
class ReportData:
    """A results folder's manifest and tables, as the sections read them.

    Tables the sweep did not write are empty frames (``traces``,
    ``components``, ``convergence``) or None (``checks``, ``predictive``,
    ``model_search``, ``uncertainty``). ``nats`` is the sweep's
    same-optimum threshold.
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
    )


def run_data(run: pd.Series, runs: pd.DataFrame):
    """Regenerate the data a recorded run was fitted to.

    From the recorded data set name, parameters (``p_*``, but the file path
    of a ``file:`` data set, which is in its name) and data seed.
    """
    values = {
        c.removeprefix("p_"): run[c]
        for c in data_columns(runs)
        if c != "p_path" and pd.notna(run[c])
    }
    values = {
        k: (int(v) if isinstance(v, float) and v.is_integer() else param_from_record(v))
        for k, v in values.items()
    }
    return load_dataset(run["dataset"], seed=int(run["data_seed"]), **values)


def run_params(run: pd.Series, components: pd.DataFrame) -> MixtureParams:
    """The point estimate of a recorded run, from the components table."""
    return params_from_components(components[components["run_id"] == run["run_id"]])
