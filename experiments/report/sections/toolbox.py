"""Section "Beyond BIC": mclust's wider toolbox on ``gmmlab fit``'s data.

What ``gmmlab fit`` adds to its model search, each where it applies: the
chosen mixture as a density estimate with its highest-density regions (one
or two features), the bootstrap likelihood-ratio tests of K (``--lrt``), the
search with a uniform noise component (``--noise``); the cross-validated
classification of the label column (``--label``) is in the section "Model
search", beside the clustering's agreement with the same column. It reads
the tables of :data:`experiments.tables.TOOLBOX` and the chosen fit's
recorded parameters; it fits nothing.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from experiments.report.context import ReportData, Section
from experiments.report.document import Document
from experiments.report.figures.density import (
    density_figure,
    probability_plot_figure,
)
from experiments.report.figures.lrt import lrt_figure
from experiments.report.figures.noise import noise_figure
from experiments.userfit_noise import noise_verdict
from mixtures import MixtureParams
from mixtures.density import DEFAULT_PROBABILITIES, MixtureDensity
from mixtures.lrt import LRTResult
from mixtures.select import top_models

__all__ = ["SECTION"]


def render(doc: Document, data: ReportData) -> None:
    """Each part whose table (or, for the density, whose data) is there."""
    doc.heading("Beyond BIC: density, tests of K and noise")
    chosen = _chosen(data.model_search)
    _density(doc, data, chosen)
    if "lrt" in data.toolbox:
        _lrt(doc, data.toolbox["lrt"], chosen)
    if "noise_search" in data.toolbox:
        _noise(doc, data, chosen)


def _chosen(table: pd.DataFrame | None) -> pd.Series | None:
    """The chosen cell's row of the recorded search (None: none recorded)."""
    if table is None or "chosen" not in table:
        return None
    chosen = table[table["chosen"].fillna(False).astype(bool)]
    return None if chosen.empty else chosen.iloc[0]


def _feature_columns(points: pd.DataFrame) -> list[str]:
    return [c for c in points.columns if c not in ("component", "uncertainty", "label")]


def _density(doc: Document, data: ReportData, chosen: pd.Series | None) -> None:
    """The chosen mixture as a density, with HDRs, for one or two features."""
    points = data.uncertainty
    if chosen is None or points is None or "chosen_params" not in chosen:
        return
    names = _feature_columns(points)
    if len(names) > 2:
        return
    recorded = json.loads(chosen["chosen_params"])
    params = MixtureParams(
        recorded["weights"], recorded["means"], recorded["covariances"]
    )
    density = MixtureDensity(
        params, model=str(chosen["model"]), feature_names=tuple(names)
    )
    X = points[names].dropna().to_numpy(dtype=float)
    doc.heading("The chosen mixture as a density", level=3)
    doc.figure(
        density_figure(density, X, names),
        "toolbox_density",
        "The chosen mixture as a density estimate over the data, with its "
        "highest-density regions (mclust's densityMclust)",
    )
    if len(names) == 1:
        doc.figure(
            probability_plot_figure(density, X[:, 0]),
            "toolbox_density_fit",
            "The fitted CDF against the data's, and the Q-Q plot: points on the "
            "line y = x where the density describes the data",
        )
    probabilities = np.asarray(DEFAULT_PROBABILITIES)
    levels = density.hdr_levels(probabilities)
    inside = [(density.pdf(X) >= level).mean() for level in levels]
    doc.text(
        "A highest-density region of probability p is where the density is "
        "above the level f_p that leaves probability p inside (Hyndman 1996; "
        "levels from 100,000 seeded draws of the fitted mixture). If the "
        "mixture describes the data, the fraction of the data inside each "
        "region is close to p:"
    )
    doc.table(
        pd.DataFrame(
            {
                "probability": probabilities,
                "density level": levels,
                "fraction of the data inside": inside,
            }
        )
    )


def _lrt(doc: Document, frame: pd.DataFrame, chosen: pd.Series | None) -> None:
    """The sequence of tests, its figure, and how it compares with BIC's K."""
    result = LRTResult.from_frame(frame)
    doc.heading("How many components: bootstrap likelihood-ratio tests", level=3)
    doc.text(
        f"For {result.model}, K against K + 1 in sequence (McLachlan 1987; "
        f"mclust's mclustBootstrapLRT): {result.bootstrap.shape[0]} replicates "
        "per step drawn from the K-component fit, each fitted with K and K + 1 "
        "components; the sequence stops at the first K not rejected at level "
        f"{result.level:g}."
    )
    doc.table(result.table().rename(columns={"lrts": "LRTS", "p_value": "p"}))
    doc.figure(
        lrt_figure(result),
        "toolbox_lrt",
        "Each step's bootstrap distribution of the likelihood-ratio statistic "
        "under K components, and the observed statistic (dashed)",
    )
    if chosen is not None:
        bic_k = int(chosen["n_components"])
        agree = "agreeing with" if result.selected == bic_k else "where BIC chose"
        doc.finding(
            f"The bootstrap likelihood-ratio tests keep K = {result.selected} for "
            f"{result.model}, {agree} K = {bic_k}."
        )


def _noise(doc: Document, data: ReportData, chosen: pd.Series | None) -> None:
    """The search with a noise component: its best cells and its noise rows."""
    cells = data.toolbox["noise_search"]
    top = top_models(cells.assign(icl=np.nan), 3, "bic")
    doc.heading("With a uniform noise component", level=3)
    doc.text(
        f"The same {cells['model'].nunique() - 1} covariance models and numbers "
        "of components, each with a uniform component over the data's volume "
        "for the rows of no cluster (Banfield & Raftery 1993; mclust's "
        "initialization$noise), started from the noise found by "
        "nearest-neighbour cleaning (Byers & Raftery 1998), plus the noise "
        "alone (K = 0). BIC counts the noise proportion."
    )
    if top.empty:
        doc.text("No cell of the noise search is ok.")
        return
    doc.table(
        top[
            ["model", "n_components", "log_likelihood", "bic", "noise_weight", "start"]
        ].rename(columns={"n_components": "K"})
    )
    best = top.iloc[0]
    pick = f"{best['model']},{int(best['n_components'])}"
    if int(best["n_components"]) == 0:
        doc.finding(
            "With a noise component, BIC prefers the noise alone: no "
            "cluster stands above a uniform background."
        )
        return
    close = top[top["bic"] - best["bic"] < 2]
    if len(close) > 1:
        doc.text(
            f"The best {len(close)} cells are within 2 BIC units of each other: "
            "on Kass & Raftery's (1995) scale the evidence between them is weak."
        )
    text = (
        f"With a uniform noise component BIC keeps {pick} (noise weight "
        f"{best['noise_weight']:.3f})"
    )
    if chosen is not None:
        plain = f"{chosen['model']},{int(chosen['n_components'])}"
        text += ", " + noise_verdict(float(best["bic"]), float(chosen["bic"]), plain)
    doc.finding(text if text.endswith(".") else text + ".")
    points, rows = data.uncertainty, data.toolbox.get("noise_points")
    if points is None or rows is None or len(rows) != len(points):
        return
    if "ari" in cells and pd.notna(best.get("ari")):
        _noise_agreement(doc, best, int((rows["component"] > 0).sum()))
    names = _feature_columns(points)
    doc.figure(
        noise_figure(
            points[names].to_numpy(dtype=float),
            rows["component"],
            names,
            f"with a noise component: {pick}",
        ),
        "toolbox_noise",
        "The best fit with a noise component: rows called noise (grey crosses) "
        "and the others by component"
        + (
            ", on the first two principal components of the standardised features"
            if len(names) > 2
            else ""
        ),
    )


def _noise_agreement(doc: Document, best: pd.Series, n_clustered: int) -> None:
    """The noise fit's ARI against the known classes, as gmmlab fit recorded it."""
    text = (
        f"Against the label column: adjusted Rand index {best['ari']:.3f} with "
        "the noise rows as a class of their own"
    )
    if pd.notna(best.get("ari_clustered")):
        text += (
            f", {best['ari_clustered']:.3f} over the {n_clustered} rows not "
            "called noise"
        )
    doc.text(text + ".")


def _applies(data: ReportData) -> bool:
    if not data.fitted or data.model_search is None:
        return False
    points = data.uncertainty
    low_dimension = points is not None and len(_feature_columns(points)) <= 2
    tests = {"lrt", "noise_search"} & set(data.toolbox)
    return bool(tests) or low_dimension


SECTION = Section("toolbox", _applies, render)
