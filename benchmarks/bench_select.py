"""Speed of the model search (mixtures.select) on Old Faithful, same machine, same run.

The target of issue 12: the whole 14-model x 9-K search on Old Faithful
(272 x 2) in under 10 s on 2 cores. The peer is the search a scikit-learn
user runs: ``sklearn.mixture.GaussianMixture`` over its four covariance types
x the same K, from as many k-means starts per cell (``n_init``), with the
same tolerance, so seconds per fitted start compare like with like. Reported:
wall seconds (median of repeats) for gmmlab with 1 and 2 processes, the
peer's, the number of cells and starts, and seconds per start.

The same file records what the searches choose (``answers``), so that the
README states them from a committed file (``benchmarks/readme_numbers.py``):
the top models on Old Faithful with the search's defaults and with
``reg_covar_relative=True`` (what ``gmmlab fit`` runs), the top models on
Iris, the smallest relative component variance of any ``ok`` cell on Old
Faithful, and EEE,4's climb from the hierarchical start: where mclust's
default stopping rule (a relative change of the total log-likelihood below
1e-5) would stop it, where ``tol=1e-6`` stops it, and its converged maximum.
These answers are deterministic; ``--answers-only`` recomputes them and keeps
the file's timings (for a loaded machine, where timings mean nothing).

Run with ``python benchmarks/bench_select.py [--repeats N] [--answers-only]``;
results go to ``benchmarks/results/select-latest.json`` and a Markdown table
is printed. Never part of the test run.
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
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from mixtures import GaussianMixture
from mixtures.data import load_faithful
from mixtures.diagnostics import degeneracy_findings
from mixtures.select import SearchResult, search, top_models

#: mclust's default EM stopping rule, ``emControl(tol = c(1e-05, ...))``:
#: stop when |L_new - L_old| / (1 + |L_new|) < 1e-5 (L the total log-likelihood).
MCLUST_TOL = 1e-5
#: A loose tolerance (on the mean log-likelihood) under which gmmlab's search
#: ranks Old Faithful's models in mclust's order.
LOOSE_TOL = 1e-6

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


def _top(table, n: int) -> list[dict]:
    """The ``n`` best ``ok`` cells by BIC: model, K, log-likelihood, BIC."""
    return [
        {
            "model": str(row.model),
            "n_components": int(row.n_components),
            "log_likelihood": float(row.log_likelihood),
            "bic": float(row.bic),
            "n_iter": int(row.n_iter),
        }
        for row in top_models(table, n).itertuples()
    ]


def _mclust_stop(trace: np.ndarray) -> int:
    """The first iteration at which mclust's default rule would stop ``trace``."""
    for i in range(1, trace.size):
        if abs(trace[i] - trace[i - 1]) / (1 + abs(trace[i])) < MCLUST_TOL:
            return i
    raise ValueError("mclust's rule never stops this trace")


def _eee4_climb(X: np.ndarray) -> dict:
    """EEE,4 on Old Faithful from the hierarchical start, to convergence and before."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = GaussianMixture(
            4, covariance_type="EEE", init_params="hc", tol=1e-8, max_iter=2000
        ).fit(X)
    # Entry i of lower_bounds_ scores the parameters after i iterations.
    trace = np.asarray(fitted.lower_bounds_) * X.shape[0]
    stop = _mclust_stop(trace)
    loose = search(X, ["EEE", "VVE", "VEE"], range(2, 5), tol=LOOSE_TOL).table
    eee4 = loose[(loose["model"] == "EEE") & (loose["n_components"] == 4)].iloc[0]
    return {
        "mclust_tol": MCLUST_TOL,
        "mclust_stop_iteration": stop,
        "mclust_stop_log_likelihood": float(trace[stop]),
        "loose_tol": LOOSE_TOL,
        "loose_log_likelihood": float(eee4["log_likelihood"]),
        "loose_n_iter": int(eee4["n_iter"]),
        "loose_top": _top(loose, 3),
        "converged_log_likelihood": float(trace[-1]),
        "converged_n_iter": int(fitted.n_iter_),
    }


def answers(faithful: SearchResult | None = None) -> dict:
    """What the searches choose: deterministic, whatever the machine's load."""
    X = load_faithful()
    if faithful is None:
        faithful = search(X, n_jobs=2)
    ok = faithful.table[faithful.table["status"] == "ok"]
    smallest = min(
        degeneracy_findings(faithful.fits[(row.model, row.n_components)]._params(), X)[
            "min_relative_variance"
        ]
        for row in ok.itertuples()
    )
    return {
        "faithful": {
            "top": _top(faithful.table, 4),
            "ok_cells": len(ok),
            "min_relative_variance_ok": float(smallest),
        },
        "faithful_reg_covar_relative": {
            "top": _top(search(X, reg_covar_relative=True, n_jobs=2).table, 3)
        },
        "faithful_eee4_from_hc": _eee4_climb(X),
        "iris": {"top": _top(search(load_iris().data, n_jobs=2).table, 3)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--answers-only",
        action="store_true",
        help="recompute the searches' answers; keep the file's timings",
    )
    args = parser.parse_args()
    path = RESULTS / "select-latest.json"
    if args.answers_only:
        record = json.loads(path.read_text())
        record["answers"] = answers()
        path.write_text(json.dumps(record, indent=2) + "\n")
        print(json.dumps(record["answers"], indent=2))
        return
    X = load_faithful()
    rows, searched = [], None
    for n_jobs in (1, 2):
        seconds, result = _time(lambda n=n_jobs: search(X, n_jobs=n), args.repeats)
        searched = result
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
        "answers": answers(searched),
    }
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
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
