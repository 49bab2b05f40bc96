"""``gmmlab fit FILE``: a user's data file through the sweep machinery and a report.

The file's numeric columns are fitted with every requested engine, K (one
value or a range) and two initialisation strategies over several seeds, by
the same runner as any sweep. The best model (lowest BIC among the first
engine's fits with status ok, 'em' by default; degenerate and unconverged
fits are never chosen) is printed, written to ``parameters.json``, and used
for ``assignments.csv``: every row's most probable component and the
probability of each. Then the report is built next to them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.analysis import choose_model
from experiments.config import parse_config
from experiments.datasets import load_dataset, read_table
from experiments.report import build_report, params_from_components
from experiments.runner import run_sweep
from mixtures.em import e_step

__all__ = ["fit_file"]


def fit_file(
    path: str | Path,
    *,
    components: list[int],
    covariance_type: str = "full",
    backends: tuple[str, ...] = ("em", "sklearn"),
    out: str | Path,
    seeds: int = 5,
    jobs: int = 1,
    progress: bool = True,
    echo=print,
) -> dict:
    """Fit ``path`` and write results, report, parameters and assignments to ``out``.

    Returns the chosen model's summary (also written to ``parameters.json``).
    A second call with the same file content and options resumes (nothing
    to refit); a changed file is refitted, other options start afresh.
    """
    path = Path(path).resolve()
    read_table(path)  # clear errors for a missing or unreadable file, up front
    out = Path(out)
    backend_tables = {
        name: ({"seeds": 1} if name.startswith("pymc") else {}) for name in backends
    }
    config = parse_config(
        {
            "sweep": {"root_seed": 0, "seeds": seeds},
            "datasets": [{"name": f"file:{path}", "n_components": list(components)}],
            "backends": backend_tables,
            "grid": {
                "covariance_type": [covariance_type],
                "init_params": ["kmeans", "random_from_data"],
            },
        },
        source=f"gmmlab fit {path.name}",
    )
    manifest = out / "results" / "manifest.json"
    # Same file content and options: resume (the file's hash is part of every
    # run id, so a changed file reruns); other options: start afresh.
    replace = (
        manifest.is_file()
        and json.loads(manifest.read_text()).get("config_hash") != config.config_hash
    )
    tables = run_sweep(
        config,
        out / "results",
        jobs=jobs,
        force=replace,
        progress=progress,
        echo=echo,
    )
    runs = tables["runs"]
    mine = runs[runs["backend"] == backends[0]]
    try:
        best = choose_model(mine)
    except ValueError:
        reasons = "; ".join(sorted(set(mine["status_reason"].fillna(""))))
        raise ValueError(
            f"no {backends[0]} fit of {path.name} is usable (status ok): {reasons}"
        ) from None
    params = params_from_components(
        tables["components"][tables["components"]["run_id"] == best["run_id"]]
    )
    data = load_dataset(f"file:{path}")
    _, log_resp = e_step(data.X, params)
    probabilities = np.exp(log_resp)
    frame = read_table(path)
    assignments = frame.copy()
    assignments["component"] = probabilities.argmax(axis=1)
    for k in range(params.n_components):
        assignments[f"p_component_{k}"] = probabilities[:, k]
    assignments.to_csv(out / "assignments.csv", index=False)
    summary = {
        "file": str(path),
        "columns": data.notes["columns"],
        "backend": best["backend"],
        "n_components": int(best["n_components"]),
        "covariance_type": covariance_type,
        "init": best["init"],
        "fit_seed": int(best["fit_seed"]),
        "log_likelihood": float(best["log_likelihood"]),
        "bic": float(best["bic"]),
        "aic": float(best["aic"]),
        "weights": params.weights.tolist(),
        "means": params.means.tolist(),
        "covariances": params.covariances.tolist(),
    }
    (out / "parameters.json").write_text(json.dumps(summary, indent=2) + "\n")
    index = build_report(out / "results", out)
    echo(_describe(summary))
    echo(
        f"report: {index}\nassignments: {out / 'assignments.csv'}\n"
        f"parameters: {out / 'parameters.json'}"
    )
    return summary


def _describe(summary: dict) -> str:
    lines = [
        f"best model for {Path(summary['file']).name}: K = {summary['n_components']} "
        f"({summary['covariance_type']}, {summary['backend']}, init "
        f"{summary['init']}), log-likelihood {summary['log_likelihood']:.3f}, "
        f"BIC {summary['bic']:.2f}"
    ]
    columns = summary["columns"]
    for k, (weight, mean, cov) in enumerate(
        zip(summary["weights"], summary["means"], summary["covariances"], strict=True)
    ):
        lines.append(f"component {k}: weight {weight:.4f}")
        lines.append(
            "  mean "
            + ", ".join(f"{c}={m:.5g}" for c, m in zip(columns, mean, strict=True))
        )
        lines.append(
            "  covariance "
            + np.array2string(np.array(cov), precision=5).replace(
                "\n", "\n             "
            )
        )
    return "\n".join(lines)


def parse_components(text: str) -> list[int]:
    """``"3"`` -> [3]; ``"1..8"`` -> [1, ..., 8]."""
    try:
        if ".." in text:
            low, high = (int(part) for part in text.split("..", 1))
            values = list(range(low, high + 1))
        else:
            values = [int(text)]
    except ValueError:
        raise ValueError(
            f"--components must be K or a range like 1..8; got {text!r}."
        ) from None
    if not values or min(values) < 1:
        raise ValueError(f"--components must be positive; got {text!r}.")
    return values


def assignments_frame(path: Path) -> pd.DataFrame:
    """Read back an assignments file (for tests and notebooks)."""
    return pd.read_csv(path)
