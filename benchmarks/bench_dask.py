"""EM on a Dask array against EM in memory, same data, same run (issue 27).

Two measurements on the machine at hand:

* **throughput**: one EM iteration (the pass over the data and the M-step)
  on ``--n`` x 8 rows, K = 8, 'diag', in memory (the compiled kernel) and
  on the same array as a Dask array of ``--chunk``-row blocks on Dask's
  threaded scheduler; rows per second per core of each, and their ratio
  (target >= 0.7). Medians of ``--repeats`` after a warm-up.
* **streamed**: ``--streamed-n`` rows of the same mixture, drawn block by
  block (never whole in memory) and written as a folder of Parquet files,
  opened by :func:`mixtures.io.open_rows` and fitted to convergence with
  ``fit_em`` (k-means starts on a 50,000-row sample, ``--iterations``
  iterations at most) in a fresh process: the fit's time (its reading of
  the sample and the moments, the starts, every iteration and the final
  log-likelihood), the time of one more pass over the rows at the fitted
  parameters, and the process's peak memory against the data's size.

Run with ``python benchmarks/bench_dask.py [--n N] [--streamed-n M]
[--chunk C] [--repeats R] [--iterations I]``; results go to
``benchmarks/results/dask-latest.json`` and a Markdown table is printed.
Never part of the test run.
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile

import numpy as np
from _results import median_seconds, write_and_print

from mixtures import MixtureParams
from mixtures._parallel import n_threads, resolve_kernel
from mixtures.degenerate import DegeneracyPolicy
from mixtures.em import em_step, m_step

D, K = 8, 8


def _truth() -> MixtureParams:
    rng = np.random.default_rng(0)
    means = rng.normal(scale=4.0, size=(K, D))
    variances = rng.uniform(0.5, 2.0, size=(K, D))
    return MixtureParams(np.full(K, 1.0 / K), means, variances, "diag")


def _data(n: int) -> tuple[np.ndarray, MixtureParams]:
    truth = _truth()
    X, _ = truth.sample(n, np.random.default_rng(1))
    start = MixtureParams(
        truth.weights, truth.means + 0.1, truth.covariances * 1.1, "diag"
    )
    return X, start


def _throughput(X, start, chunk: int, repeats: int) -> dict:
    import dask.array as da

    from mixtures.dask_em import dask_total

    kernel = resolve_kernel(None)
    weights = np.ones(X.shape[0])
    policy = DegeneracyPolicy.for_data(X, weights, 1e-6, None, n_components=K)
    memory = median_seconds(
        functools.partial(em_step, X, weights, start, policy, kernel=kernel), repeats
    )
    array = da.from_array(X, chunks=(chunk, D))

    def dask_step():
        stats = dask_total(array, None, start, kernel)[0]
        return m_step(stats, start.model, 1e-6, None, start.covariances, kernel=kernel)

    distributed = median_seconds(dask_step, repeats)
    cores = n_threads()
    return {
        "rows": X.shape[0],
        "chunk rows": chunk,
        "cores": cores,
        "in-memory rows/s/core": round(X.shape[0] / memory / cores),
        "dask rows/s/core": round(X.shape[0] / distributed / cores),
        "ratio": round(memory / distributed, 3),
    }


_FIT_FROM_PARQUET = """
import json, sys, time
from mixtures import fit_em
from mixtures.io import open_rows
array = open_rows(sys.argv[1])
begin = time.perf_counter()
result = fit_em(array, int(sys.argv[2]), covariance_type="diag",
                max_iter=int(sys.argv[3]), random_state=0)
seconds = time.perf_counter() - begin
# One pass over every row at the fitted parameters, timed on its own.
from mixtures._parallel import resolve_kernel
from mixtures.dask_em import dask_total
begin = time.perf_counter()
dask_total(array, None, result.params, resolve_kernel(None))
one_pass = time.perf_counter() - begin
# VmHWM: this process image's peak (ru_maxrss would include the parent's,
# which Linux carries over a fork and exec).
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"seconds": seconds, "n_iter": result.n_iter, "pass": one_pass,
                  "converged": bool(result.converged),
                  "rss": int(peak.split()[1])}))
"""


def _streamed(n: int, chunk: int, iterations: int) -> dict:
    """Write ``n`` rows as Parquet files, block by block; fit them in a fresh
    process (its own memory)."""
    import json
    import subprocess
    import sys

    import pandas as pd

    truth = _truth()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as folder:
        for i, begin in enumerate(range(0, n, chunk)):
            rows, _ = truth.sample(min(chunk, n - begin), np.random.default_rng([2, i]))
            part = pd.DataFrame(rows, columns=[f"x{j}" for j in range(D)])
            part.to_parquet(os.path.join(folder, f"part-{i:05d}.parquet"))
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
        out = subprocess.run(
            [sys.executable, "-c", _FIT_FROM_PARQUET, folder, str(K), str(iterations)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    fit = json.loads(out.strip().splitlines()[-1])
    return {
        "rows": n,
        "parquet MB": round(size / 2**20, 1),
        "data MB in memory": round(n * D * 8 / 2**20, 1),
        "iterations": fit["n_iter"],
        "converged": fit["converged"],
        # The sample, the two moments' passes, the iterations and the final
        # log-likelihood's pass, and the k-means starts on the sample.
        "seconds of the fit": round(fit["seconds"], 2),
        "seconds per pass over the rows": round(fit["pass"], 2),
        "rows/s of one pass": round(n / fit["pass"]),
        "peak RSS MB of the fitting process": round(fit["rss"] / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--streamed-n", type=int, default=2_000_000)
    parser.add_argument("--chunk", type=int, default=250_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=200)
    args = parser.parse_args()
    X, start = _data(args.n)
    throughput = _throughput(X, start, args.chunk, args.repeats)
    del X
    streamed = _streamed(args.streamed_n, args.chunk, args.iterations)
    write_and_print(
        "dask-latest.json",
        {
            "n_components": K,
            "n_features": D,
            "covariance_type": "diag",
            "target_ratio": 0.7,
            "throughput": throughput,
            "streamed": streamed,
        },
        [throughput],
    )
    print()
    print("| " + " | ".join(streamed) + " |")
    print("|" + "---|" * len(streamed))
    print("| " + " | ".join(str(v) for v in streamed.values()) + " |")


if __name__ == "__main__":
    main()
