"""Section "S3": why the sum of my Gaussians does not match score_samples.

A density against a probability at the new point, each component's
contribution, and the asker's unnormalised curve against the true density.
"""

from __future__ import annotations

from typing import Any

from experiments.report.context import ReportData, Section, run_params
from experiments.report.document import Document
from experiments.report.sections.writeups import has_write_up
from experiments.report_stats import chosen_on_first_replicate
from experiments.scenario_analysis import (
    S3_INTERVAL,
    S3_NEW_POINT,
    components_at,
    interval_probability,
    peak_density,
    point_density,
    unnormalised_curve_at,
)

__all__ = ["SECTION"]


def render(doc: Document, data: ReportData) -> None:
    """The density at the new point, component by component, and the asker's."""
    doc.heading("S3: why the sum of my Gaussians does not match score_samples", 3)
    chosen = chosen_on_first_replicate(data.runs, "s3")
    if chosen is None:
        return
    params = run_params(chosen, data.components)
    x = S3_NEW_POINT
    at: dict[str, Any] = point_density(params, x)
    low, high = S3_INTERVAL
    probability = interval_probability(params, low, high)
    asker = unnormalised_curve_at(params, x)
    doc.finding(
        f"S3: score_samples returns a log density, not a probability: at x = "
        f"{x:g} the density is {at['density']:.4f} per unit of x, while "
        f"P({low:g} < X <= {high:g}) = {probability:.4f}."
    )
    doc.text(
        f"score_samples returns the log of a density, not a probability: at "
        f"the new point x = {x:g} the chosen fit ({chosen['backend']}, "
        f"log-likelihood {chosen['log_likelihood']:.2f}) gives log density "
        f"{at['log_density']:.4f}, so density {at['density']:.4f} per unit of "
        "x. A density can exceed 1 (this mixture peaks near "
        f"{peak_density(params):.1f}); the probability of any single point "
        "is 0. Probabilities belong to "
        f"intervals: P({low:g} < X <= {high:g}) = {probability:.4f}, the "
        "weighted sum of each component's normal CDF difference. The density "
        "is the sum of the components' contributions w_k N(x | m_k, s_k^2):"
    )
    table = components_at(params, x)
    doc.table(table)
    doc.text(
        "Why each component's curve is normalised on its own: the asker "
        "summed unnormalised bumps w_k exp(-(x - m_k)^2 / 2 s_k^2) and "
        "rescaled the sum over the plotting grid. A bump's area is "
        "w_k s_k sqrt(2 pi), so the narrow component (sd "
        f"{table['sd'].min():.3f}) is "
        "under-weighted against the wide ones. At x = "
        f"{x:g} the asker's curve is {asker:.4f} against the true "
        f"{at['density']:.4f}. Normalise each component, then weight and sum: "
        "that is exp(score_samples), as in the 's3' figure under The fitted "
        "mixtures."
    )


SECTION = Section("s3", lambda data: has_write_up(data, "s3"), render)
