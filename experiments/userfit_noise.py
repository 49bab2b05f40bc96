"""``gmmlab fit --noise``: the model search again, with a uniform noise component.

After the model search, :func:`run_noise` searches the same covariance models
and numbers of components with mclust's noise component (plus the noise-only
model, K = 0; :func:`mixtures.noise_search.search_noise`), from one initial
noise found by Byers & Raftery's nearest-neighbour cleaning. It writes
``noise_search.csv`` (every cell), ``noise_assignments.csv`` (every row's
component, 0 for noise, and its noise probability) and ``noise.png`` into the
output folder, and the report's tables into its results folder; then
:func:`describe_noise` says whether the noise changes BIC's choice.

Log-likelihoods and BIC are in the file's units, as ``model_search.csv``'s;
the volume is that of the columns as fitted (after ``--scale``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
import pandas as pd

from experiments.tables import atomic_write, table_path
from mixtures.noise_search import NoiseSearchResult, search_noise

if TYPE_CHECKING:
    from experiments.userfit import FileData, FileSearch

__all__ = [
    "NOISE_ASSIGNMENTS_CSV",
    "NOISE_CSV",
    "NOISE_PNG",
    "describe_noise",
    "noise_verdict",
    "run_noise",
]

#: The noise search's table, rows and figure in ``gmmlab fit``'s output folder.
NOISE_CSV = "noise_search.csv"
NOISE_ASSIGNMENTS_CSV = "noise_assignments.csv"
NOISE_PNG = "noise.png"


def run_noise(
    file: FileData,
    found: FileSearch,
    out: Path,
    results: Path,
    *,
    jobs: int,
    progress: bool,
) -> NoiseSearchResult:
    """Search ``file`` with a noise component over ``found``'s grid; write it."""
    table = found.result.table
    models = list(dict.fromkeys(table["model"]))
    components = [0, *sorted({int(k) for k in table["n_components"]})]
    result = search_noise(
        file.data.X, models, components, n_jobs=jobs, progress=progress
    )
    cells = result.table.copy()
    cells["log_likelihood"] -= file.log_jacobian
    cells["bic"] += 2 * file.log_jacobian
    points = _points(result)
    names = list(file.data.notes["columns"])
    if file.data.labels is not None and "component" in points:
        _agreement(cells, file.data.labels, points["component"])
    atomic_write(cells.to_csv(index=False), out / NOISE_CSV)
    assignments = pd.DataFrame({"row": file.kept_rows, **points})
    atomic_write(assignments.to_csv(index=False), out / NOISE_ASSIGNMENTS_CSV)
    atomic_write(cells, table_path(results, "noise_search"))
    atomic_write(pd.DataFrame(points), table_path(results, "noise_points"))
    if "component" in points:
        # Imported here: the report's section imports this module's verdict.
        from experiments.report.figures.noise import noise_figure
        from experiments.report.figures.style import STYLE, png_bytes

        X = file.center + file.spread * file.data.X  # the file's units
        with matplotlib.rc_context(STYLE):
            figure = noise_figure(X, points["component"], names, _title(cells))
            atomic_write(png_bytes(figure), out / NOISE_PNG)
    return result


def _agreement(cells: pd.DataFrame, labels, components) -> None:
    """The best cell's ARI against the label column, noise rows in and out.

    ``ari`` counts the noise rows as a class of their own, ``ari_clustered``
    scores only the rows not called noise; both NaN on the other cells.
    """
    from sklearn.metrics import adjusted_rand_score

    labels, components = np.asarray(labels), np.asarray(components)
    clustered = components > 0
    best = _best_row(cells).name
    cells["ari"] = np.nan
    cells["ari_clustered"] = np.nan
    cells.loc[best, "ari"] = adjusted_rand_score(labels, components)
    if clustered.any():
        cells.loc[best, "ari_clustered"] = adjusted_rand_score(
            labels[clustered], components[clustered]
        )


def _points(result: NoiseSearchResult) -> dict[str, np.ndarray]:
    """The best noise fit's rows: component (0 noise, 1..K), noise probability."""
    if result.top(1).empty or result.noise_only:
        return {}
    best = result.best()
    return {"component": best.labels, "noise_probability": best.noise_probability}


def _title(cells: pd.DataFrame) -> str:
    row = _best_row(cells)
    return (
        f"with a noise component: {row['model']}, K = {int(row['n_components'])}, "
        f"noise weight {row['noise_weight']:.3f}"
    )


def _best_row(cells: pd.DataFrame) -> pd.Series:
    ok = cells[cells["status"] == "ok"]
    return ok.sort_values(["bic", "n_parameters"], kind="stable").iloc[0]


def describe_noise(cells: pd.DataFrame, found: FileSearch, n_initial: int) -> str:
    """What the noise search chose, beside the search without noise.

    ``cells`` and ``found`` in the same units: both searches score the same
    rows, so their BICs compare, and a noise component is called for only
    when its best cell beats the best cell without noise.
    """
    plain = f"{found.model},{found.n_components}"
    initial = (
        f"{n_initial} rows by nearest-neighbour cleaning"
        if n_initial
        else "none found by nearest-neighbour cleaning, so its weight starts at 1/n"
    )
    head = f"with a uniform noise component (initial noise: {initial}), "
    if (cells["status"] == "ok").sum() == 0:
        return head + "no cell is ok; the choice without noise stands."
    row = _best_row(cells)
    if int(row["n_components"]) == 0:
        return head + (
            f"BIC prefers the noise alone (K = 0, BIC {row['bic']:.2f}): the data "
            f"show no cluster above a uniform background; without noise: {plain}."
        )
    return head + (
        f"BIC keeps {row['model']},{int(row['n_components'])} (BIC "
        f"{row['bic']:.2f}, noise weight {row['noise_weight']:.3f}); "
        + noise_verdict(float(row["bic"]), float(found.best["bic"]), plain)
    )


def noise_verdict(noise_bic: float, plain_bic: float, plain: str) -> str:
    """Whether the best noise cell beats the best cell without noise, by BIC.

    A difference under 2 is weak evidence on Kass & Raftery's (1995) scale,
    and is said so whichever way it goes.
    """
    difference = plain_bic - noise_bic
    against = f"the best without noise ({plain}, BIC {plain_bic:.2f})"
    if difference > 2:
        return f"{difference:.2f} below {against}: BIC calls for the noise component."
    if difference > 0:
        return (
            f"only {difference:.2f} below {against}: under 2, weak evidence for "
            "the noise component on Kass & Raftery's scale."
        )
    return (
        f"{-difference:.2f} above {against}: BIC does not call for a noise "
        f"component, and {plain} stands."
    )
