"""Section "Setup": the configuration, run counts, stopping rule and versions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments.analysis import SAME_OPTIMUM_NATS, STATUSES
from experiments.report.context import ReportData, Section
from experiments.report.document import Document

__all__ = ["SECTION"]


def render(doc: Document, data: ReportData) -> None:
    """The sweep's configuration, statuses, stopping rule and versions."""
    manifest, runs = data.manifest, data.runs
    doc.heading("Setup")
    counts = runs["status"].value_counts() if len(runs) else pd.Series(dtype=int)
    stopping = manifest.get("stopping", {})
    nats = manifest.get("same_optimum_nats", SAME_OPTIMUM_NATS)
    doc.text(
        f"Configuration {Path(str(manifest.get('config_source'))).name} (hash "
        f"{str(manifest.get('config_hash'))[:12]}), {len(runs)} runs: "
        + ", ".join(f"{int(counts.get(s, 0))} {s}" for s in STATUSES)
        + f"; started {manifest.get('started_at')}, finished "
        f"{manifest.get('finished_at')}; git commit {manifest.get('git_commit')}."
    )
    doc.text(
        f"Stopping rule of every iterative engine: {stopping.get('rule', '?')}, "
        f"tol = {stopping.get('tol', float('nan')):g}, max_iter = "
        f"{stopping.get('max_iter', '?')} (converted to each engine's units). "
        f"Two fits are at the same optimum when their total log-likelihoods "
        f"differ by at most {nats:g} nats. Only fits with status ok take part "
        "in 'best', model selection, engine agreement and the fitted-mixture "
        "figures; the others are counted and listed under 'Fits not eligible'."
    )
    versions = manifest.get("versions", {})
    platform_info = manifest.get("platform", {})
    doc.table(
        pd.DataFrame(
            [
                {"item": k, "value": str(v)}
                for k, v in {**versions, **platform_info}.items()
            ]
        )
    )


SECTION = Section("setup", lambda data: True, render)
