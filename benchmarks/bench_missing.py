"""One EM iteration with missing values against one on complete data, same run.

Issue 26's target: at 10% of values missing completely at random, one EM
iteration (the pass over the data and the M-step) costs at most 2x an
iteration on complete data of the same shape (200,000 x 16, K = 16,
'full'). Both iterations start from the same parameters; the complete data
are the same rows before the holes were made. Each is timed ``--repeats``
times after one untimed warm-up (compilation, thread pools); the medians
and their ratio are reported, with the number of missingness patterns.

Run with ``python benchmarks/bench_missing.py [--n N] [--repeats R]
[--rates 0.01,0.1,0.3]``; results go to
``benchmarks/results/missing-latest.json`` and a Markdown table is printed.
Never part of the test run.
"""

from __future__ import annotations

import argparse
import functools

import numpy as np
from _results import median_seconds, write_and_print

from mixtures import MixtureParams
from mixtures._parallel import resolve_kernel
from mixtures.degenerate import DegeneracyPolicy
from mixtures.em import em_step
from mixtures.missing import find_patterns, mean_filled, missing_scored_pass

D, K = 16, 16


def _data(n: int, rng: np.random.Generator) -> tuple[np.ndarray, MixtureParams]:
    means = rng.normal(scale=4.0, size=(K, D))
    factors = rng.normal(size=(K, D, D)) / np.sqrt(D)
    covariances = factors @ factors.transpose(0, 2, 1) + 0.5 * np.eye(D)
    truth = MixtureParams(np.full(K, 1.0 / K), means, covariances)
    X, _ = truth.sample(n, rng)
    # The iteration starts near, not at, the truth.
    start = MixtureParams(truth.weights, means + 0.1, covariances * 1.1)
    return X, start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rates", default="0.01,0.1,0.3")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X, start = _data(args.n, rng)
    weights = np.ones(args.n)
    kernel = resolve_kernel(None)
    policy = DegeneracyPolicy.for_data(X, weights, 1e-6, None, n_components=K)
    complete = median_seconds(
        functools.partial(em_step, X, weights, start, policy, kernel=kernel),
        args.repeats,
    )
    rows = []
    for rate in (float(r) for r in args.rates.split(",")):
        holes = X.copy()
        holes[rng.random(X.shape) < rate] = np.nan
        holes = holes[~np.isnan(holes).all(axis=1)]
        patterns = find_patterns(holes)
        filled = mean_filled(holes)
        scored = missing_scored_pass(holes, patterns, kernel)
        w = np.ones(holes.shape[0])
        seconds = median_seconds(
            functools.partial(
                em_step, filled, w, start, policy, kernel=kernel, scored_pass=scored
            ),
            args.repeats,
        )
        rows.append(
            {
                "missing rate": rate,
                "patterns": len(patterns.rows),
                "complete rows": patterns.complete.size,
                "seconds per iteration": round(seconds, 4),
                "complete-data seconds": round(complete, 4),
                "ratio": round(seconds / complete, 2),
            }
        )
    write_and_print(
        "missing-latest.json",
        {
            "shape": [args.n, D],
            "n_components": K,
            "covariance_type": "full",
            "kernel": kernel,
            "target_ratio": 2.0,
            "rows": rows,
        },
        rows,
    )


if __name__ == "__main__":
    main()
