"""``gmmlab fit --lrt``: the bootstrap likelihood-ratio tests beside BIC's choice.

After the model search, :func:`run_lrt` tests K against K + 1 for the
chosen covariance model (:func:`mixtures.lrt.bootstrap_lrt`, mclust's
``mclustBootstrapLRT``) and writes ``lrt.csv`` (one row per step) and
``lrt.png`` (each step's bootstrap distribution and observed statistic) into
the output folder, and the whole result into the results folder for the
report; :func:`describe_lrt` prints the sequence as mclust does.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

from experiments.report.figures.lrt import lrt_figure
from experiments.report.figures.style import STYLE, png_bytes
from experiments.tables import atomic_write, table_path
from mixtures.lrt import LRTResult, bootstrap_lrt

__all__ = ["LRT_CSV", "LRT_PNG", "describe_lrt", "run_lrt"]

#: The tests' table and figure in ``gmmlab fit``'s output folder.
LRT_CSV = "lrt.csv"
LRT_PNG = "lrt.png"


def run_lrt(
    X: np.ndarray,
    model: str,
    out: Path,
    results: Path,
    *,
    n_bootstrap: int,
    jobs: int,
    progress: bool,
) -> LRTResult:
    """Test ``model`` on ``X`` (n_samples, n_features) and write it."""
    result = bootstrap_lrt(
        X, model, n_bootstrap=n_bootstrap, n_jobs=jobs, progress=progress
    )
    atomic_write(result.table().to_csv(index=False), out / LRT_CSV)
    atomic_write(result.to_frame(), table_path(results, "lrt"))
    with matplotlib.rc_context(STYLE):
        atomic_write(png_bytes(lrt_figure(result)), out / LRT_PNG)
    return result


def describe_lrt(result: LRTResult, chosen_k: int) -> str:
    """The sequence as mclust prints it, and how it compares with BIC's K."""
    lines = [
        f"bootstrap likelihood-ratio tests, {result.model} "
        f"({result.bootstrap.shape[0]} replicates per step):",
    ]
    for row in result.table().itertuples():
        flagged = f"  ({row.n_flagged} without an ok fit)" if row.n_flagged else ""
        lines.append(
            f"  {row.test}: LRTS {row.lrts:10.2f}  p = {row.p_value:.3f}{flagged}"
        )
    agree = "agrees with" if result.selected == chosen_k else "differs from"
    lines.append(
        f"the tests keep K = {result.selected} at level {result.level:g}; this "
        f"{agree} BIC's K = {chosen_k}"
    )
    if np.any(result.n_flagged):
        lines.append(
            "a replicate without an ok fit of K or K + 1 keeps its best fit and "
            "counts: under the null the K + 1 maximum often has two "
            "indistinguishable components, and its statistic is then near 0"
        )
    return "\n".join(lines)
