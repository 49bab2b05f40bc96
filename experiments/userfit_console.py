"""What ``gmmlab fit`` prints: the summary of the chosen fit and where it went.

:func:`echo_summary` prints the model search's top models, the chosen fit
(its notes, label agreement, repairs and flagged cells), its weights and
means as a table, its covariance matrices where they fit on a screen, and
the paths of the files written. Everything it prints comes from the
summary :func:`experiments.userfit.fit_file` writes to ``parameters.json``.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.tables import ASSIGNMENTS_CSV, MODEL_SEARCH_CSV, PARAMETERS_JSON

__all__ = ["MAX_FEATURES_WITH_COVARIANCES", "SIGNIFICANT_DIGITS", "echo_summary"]

#: Significant digits of the console's weights and means (parameters.json has all).
SIGNIFICANT_DIGITS = 4
#: Up to this many features, the console also prints covariance matrices.
MAX_FEATURES_WITH_COVARIANCES = 3


def echo_summary(
    summary: dict,
    table: pd.DataFrame,
    index: Path,
    out: Path,
    *,
    verbose: bool = False,
    echo=print,
) -> None:
    """Print the chosen fit's summary, then the report and files written to ``out``.

    ``table`` is the model search's (``model_search.csv``), ``index`` the
    report's page.
    """
    echo(_describe(summary, table, verbose=verbose))
    echo(
        f"report: {index}\nassignments: {out / ASSIGNMENTS_CSV}\n"
        f"model search: {out / MODEL_SEARCH_CSV}\n"
        f"parameters: {out / PARAMETERS_JSON}"
    )


def _parameter_table(
    weights: list[float], means: list[list[float]], columns: list[str]
) -> str:
    """Components as rows (1..K), weight and one mean per feature as columns."""
    frame = pd.DataFrame(means, columns=columns, index=range(1, len(weights) + 1))
    frame.insert(0, "weight", weights)
    # Named in the corner, the component numbers repeat in every wrapped block.
    frame.columns.name = "component"
    width = shutil.get_terminal_size((100, 24)).columns
    return frame.to_string(
        float_format=lambda value: f"{value:.{SIGNIFICANT_DIGITS}g}",
        line_width=width,
    )


def _describe(summary: dict, table: pd.DataFrame, *, verbose: bool = False) -> str:
    counts = table["status"].value_counts()
    flagged = ", ".join(
        f"{int(counts[status])} {status}" for status in counts.index if status != "ok"
    )
    lines = [
        f"model search on {Path(summary['file']).name}: {len(table)} cells "
        f"({table['model'].nunique()} models x K = "
        f"{table['n_components'].min()}..{table['n_components'].max()})"
        + (f"; never chosen: {flagged}" if flagged else "; every cell ok"),
        "top models by BIC (lower is better; mclust prints minus these):",
    ]
    for rank, row in enumerate(summary["top3"], start=1):
        lines.append(
            f"  {rank}. {row['model']},{row['n_components']}  BIC {row['bic']:.2f}  "
            f"log-likelihood {row['log_likelihood']:.3f}"
        )
    lines.append(
        f"best model: {summary['model']} with K = {summary['n_components']} "
        f"(log-likelihood {summary['log_likelihood']:.3f}, BIC {summary['bic']:.2f}, "
        f"ICL {summary['icl']:.2f}; mean classification uncertainty "
        f"{summary['mean_uncertainty']:.3f}; start {summary['start']}): the fit "
        "every output shows"
    )
    lines.extend(f"note: {note}" for note in summary["notes"])
    if "label" in summary:
        line = (
            f"agreement with column {summary['label']!r} ({summary['n_classes']} "
            f"classes): adjusted Rand index {summary['ari']:.3f}"
        )
        other = summary.get("best_at_n_classes")
        if other and summary["n_components"] != summary["n_classes"]:
            line += (
                f"; the best ok fit with K = {summary['n_classes']} is "
                f"{other['model']} (BIC {other['bic']:.2f}, ARI {other['ari']:.3f})"
            )
        lines.append(line)
        known = summary.get("classification")
        if known:
            lines.append(
                f"classifying the rows by {summary['label']!r} instead (one "
                f"Gaussian per class, {known['model']}, as mclust's EDDA): "
                f"{known['n_folds']}-fold cross-validated error "
                f"{known['cv_error']:.3f} (SE {known['cv_error_se']:.3f}), "
                f"training error {known['training_error']:.3f}"
            )
    events = summary["degenerate_events"]
    if events:
        lines.append(
            f"the chosen fit needed {len(events)} repair(s) of the degenerate-"
            "component policy on its way (none in force at the end, or it would "
            "not be ok): " + "; ".join(events[:3]) + (" ..." if len(events) > 3 else "")
        )
    flagged = table[table["status"] != "ok"]
    lines.extend(
        f"  flagged {row.model},{row.n_components} ({row.status}): {row.reason}"
        for row in flagged.head(5).itertuples()
    )
    if len(flagged) > 5:
        lines.append(f"  ... and {len(flagged) - 5} more in {MODEL_SEARCH_CSV}")
    lines.append("weights and means of the chosen fit:")
    lines.append(
        _parameter_table(summary["weights"], summary["means"], summary["columns"])
    )
    if verbose or len(summary["columns"]) <= MAX_FEATURES_WITH_COVARIANCES:
        lines.append(
            f"covariance matrices (rows and columns: {', '.join(summary['columns'])}):"
        )
        for k, (weight, cov) in enumerate(
            zip(summary["weights"], summary["covariances"], strict=True), start=1
        ):
            lines.append(f"component {k}: weight {weight:.4f}")
            matrix = np.array2string(np.array(cov), precision=4, suppress_small=True)
            lines.append(textwrap.indent(matrix, "  "))
    else:
        lines.append(
            f"covariance matrices: in {PARAMETERS_JSON} (--verbose prints them here)"
        )
    return "\n".join(lines)
