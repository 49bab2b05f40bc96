"""gmmlab's experiments: data sets, sweeps, reports and the command line.

``run_sweep`` (data sets x engines x seeds x settings into Parquet tables;
``load_config`` reads a sweep's TOML), ``build_report`` (HTML and Markdown
comparison reports from those tables), ``fit_file`` (what ``gmmlab fit``
does: model search, cross-check and report for a data file) and
``load_dataset`` (every data set a sweep can name). Imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name -> the module that defines it.
_EXPORTS = {
    "run_sweep": "experiments.runner",
    "load_config": "experiments.config",
    "build_report": "experiments.report",
    "fit_file": "experiments.userfit",
    "load_dataset": "experiments.datasets",
}

__all__ = [
    "build_report",
    "fit_file",
    "load_config",
    "load_dataset",
    "run_sweep",
]

if TYPE_CHECKING:
    from experiments.config import load_config
    from experiments.datasets import load_dataset
    from experiments.report import build_report
    from experiments.runner import run_sweep
    from experiments.userfit import fit_file


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'experiments' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
