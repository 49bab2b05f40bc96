"""Speed of the model search (mixtures.select) on Old Faithful, same machine, same run.

The target of issue 12: the whole 14-model x 9-K search on Old Faithful
(272 x 2) in under 10 s on 2 cores. The peer is the search a scikit-learn
user runs: ``sklearn.mixture.GaussianMixture`` over its four covariance types
x the same K, from as many k-means starts per cell (``n_init``), with the
same tolerance, so seconds per fitted start compare like with like. Reported:
wall seconds (median of repeats) for gmmlab with 1 and 2 processes, the
peer's, the number of cells and starts, and seconds per start.

Run with ``python benchmarks/bench_select.py [--repeats N]``; results go to
``benchmarks/results/select-latest.json`` and a Markdown table is printed.
Never part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from mixtures.data import load_faithful
from mixtures.select import search

RESULTS = Path(__file__).parent / "results"


def _time(function, repeats: int) -> tuple[float, object]:
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def _sklearn_search(X: np.ndarray, starts: int) -> int:
    fits = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for covariance_type in ("spherical", "diag", "tied", "full"):
            for k in range(1, 10):
                SklearnGaussianMixture(
                    k,
                    covariance_type=covariance_type,
                    n_init=starts,
                    tol=1e-8,
                    max_iter=2000,
                    random_state=0,
                ).fit(X)
                fits += starts
    return fits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    X = load_faithful()
    rows = []
    for n_jobs in (1, 2):
        seconds, result = _time(lambda n=n_jobs: search(X, n_jobs=n), args.repeats)
        table = result.table
        starts = int(table["n_starts"].sum())
        rows.append(
            {
                "engine": f"gmmlab search, {n_jobs} process(es)",
                "cells": len(table),
                "starts": starts,
                "seconds": seconds,
                "ms_per_start": 1e3 * seconds / starts,
                "chosen": "{} K={}".format(
                    *result.top(1)[["model", "n_components"]].iloc[0]
                ),
            }
        )
    starts_per_cell = 3  # hc + 2 k-means, the search's default
    seconds, fits = _time(lambda: _sklearn_search(X, starts_per_cell), args.repeats)
    rows.append(
        {
            "engine": "scikit-learn, 4 types, n_init=3",
            "cells": 36,
            "starts": fits,
            "seconds": seconds,
            "ms_per_start": 1e3 * seconds / fits,
            "chosen": "",
        }
    )
    peer = rows[-1]["ms_per_start"]
    for row in rows:
        row["ratio_per_start_vs_sklearn"] = row["ms_per_start"] / peer
    record = {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "target_seconds": 10.0,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "select-latest.json").write_text(json.dumps(record, indent=2) + "\n")
    print("| engine | cells | starts | seconds | ms/start | ratio/start | chosen |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['engine']} | {row['cells']} | {row['starts']} | "
            f"{row['seconds']:.2f} | {row['ms_per_start']:.1f} | "
            f"{row['ratio_per_start_vs_sklearn']:.2f} | {row['chosen']} |"
        )


if __name__ == "__main__":
    main()
