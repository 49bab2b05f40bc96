"""EM on a Dask cluster (issue 27): small workers, a lost worker, the search's cells.

Each test starts a ``distributed.LocalCluster`` of two single-threaded
worker processes; the answers are compared with EM in memory.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from mixtures import MixtureParams, fit_em

da = pytest.importorskip("dask.array")

#: Rows per block of the data the workers draw themselves.
_BLOCK_ROWS = 250_000


def _truth() -> MixtureParams:
    means = np.array(
        [np.zeros(8), np.full(8, 3.0), np.r_[np.full(4, -2.0), np.ones(4)]]
    )
    variances = np.array([np.ones(8), np.full(8, 0.5), np.linspace(0.5, 2.0, 8)])
    return MixtureParams(np.array([0.5, 0.3, 0.2]), means, variances, "diag")


def _block(index: int, rows: int = _BLOCK_ROWS, out=None) -> np.ndarray:
    """Block ``index`` of the data: its own seed, drawn wherever it runs.

    Rows grouped by component, drawn in place: ``MixtureParams.sample``'s
    (rows, D, D) factors would take 8x the block's memory on a small worker.
    ``out``: the (rows, D) array to draw it into (the same numbers).
    """
    truth = _truth()
    rng = np.random.default_rng([7, index])
    counts = rng.multinomial(rows, truth.weights)
    if out is None:
        out = np.empty((rows, truth.n_features))
    block = rng.standard_normal(out=out)
    ends = np.cumsum(counts)
    for k, (begin, end) in enumerate(zip(ends - counts, ends, strict=True)):
        block[begin:end] *= np.sqrt(truth.covariances[k])
        block[begin:end] += truth.means[k]
    return block


def _drawn(n_blocks: int):
    """A Dask array of ``n_blocks`` blocks drawn on the workers, never held whole."""
    from dask import delayed

    return da.concatenate(
        [
            da.from_delayed(delayed(_block)(i), (_BLOCK_ROWS, 8), np.float64)
            for i in range(n_blocks)
        ]
    )


def _peak_memory() -> int:
    """This process's peak resident memory in bytes (Linux's VmHWM)."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024


@pytest.fixture
def distributed():
    """``distributed``, imported when a test starts (before any config is set).

    Every test here is slow: the fast loop collects this module without
    paying for the import.
    """
    return pytest.importorskip("distributed")


def _cluster(distributed, **options):
    return distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        **options,
    )


#: A start near the truth: few passes over the 1.5 GB the workers draw.
#: From means 0.02 off, EM on them stops after three iterations, the first
#: of which moves the mean log-likelihood by 2e-3: steps that change the fit,
#: then the stopping rule, each compared with EM in memory.
_START = {
    "means_init": _truth().means + 0.02,
    "weights_init": _truth().weights,
    "precisions_init": 1.0 / _truth().covariances,
    "tol": 1e-5,  # per row: mclust's tolerance is 1e-5 relative
    "covariance_type": "diag",
}


@pytest.mark.slow
def test_workers_with_a_third_of_the_datas_memory_fit_it_to_convergence(
    distributed,
):
    n_blocks = 96  # 2.4e7 x 8 float64: 1.54 GB; each worker may hold 0.5 GB
    limit = 500 * 10**6
    assert 3 * limit <= n_blocks * _BLOCK_ROWS * 8 * 8
    # Only the nanny's limit applies: no pausing or spilling, which would
    # hide a worker's growth; a worker above 95% of its limit is killed.
    config = {
        "distributed.worker.memory.target": False,
        "distributed.worker.memory.spill": False,
        "distributed.worker.memory.pause": False,
    }
    import dask

    with (
        dask.config.set(config),
        _cluster(distributed, memory_limit=limit) as cluster,
        distributed.Client(cluster) as client,
    ):
        workers = set(client.scheduler_info()["workers"])
        ours = fit_em(_drawn(n_blocks), 3, random_state=0, **_START)
        # No worker was killed (and restarted under a new address) on the way.
        assert set(client.scheduler_info()["workers"]) == workers
        peaks = client.run(_peak_memory)
    assert max(peaks.values()) < limit
    assert ours.converged
    # The in-memory answer, from the same blocks drawn here, each into its
    # rows of one array (np.concatenate would hold the 1.5 GB twice).
    X = np.empty((n_blocks * _BLOCK_ROWS, 8))
    for i in range(n_blocks):
        _block(i, out=X[i * _BLOCK_ROWS : (i + 1) * _BLOCK_ROWS])
    reference = fit_em(X, 3, random_state=0, **_START)
    assert ours.n_iter == reference.n_iter
    assert_allclose(ours.lower_bounds, reference.lower_bounds, rtol=1e-10)
    assert_allclose(ours.params.means, reference.params.means, rtol=1e-10)
    assert_allclose(ours.params.covariances, reference.params.covariances, rtol=1e-10)


def _dies_once(index: int, marker: str) -> np.ndarray:
    """Block ``index``; the first time any worker reads block 3, it dies."""
    if index == 3 and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)  # the worker process is gone, as after a crash
    return _block(index, rows=2_000)


@pytest.mark.slow
def test_a_worker_lost_in_an_iteration_changes_nothing(tmp_path, distributed):
    from dask import delayed

    marker = str(tmp_path / "died")
    X = da.concatenate(
        [
            da.from_delayed(delayed(_dies_once)(i, marker), (2_000, 8), np.float64)
            for i in range(6)
        ]
    )
    with _cluster(distributed) as cluster, distributed.Client(cluster) as client:
        workers = set(client.scheduler_info()["workers"])
        ours = fit_em(X, 3, random_state=0, **_START)
        client.wait_for_workers(2)
        replaced = set(client.scheduler_info()["workers"]) != workers
    assert os.path.exists(marker)  # a worker did die
    assert replaced
    reference = fit_em(
        np.concatenate([_block(i, rows=2_000) for i in range(6)]), 3, random_state=0,
        **_START,
    )  # fmt: skip
    assert ours.n_iter == reference.n_iter
    assert_allclose(ours.lower_bounds, reference.lower_bounds, rtol=1e-10)
    assert_allclose(ours.params.means, reference.params.means, rtol=1e-10)
    assert_array_equal(ours.labels.compute(scheduler="threads"), reference.labels)


@pytest.mark.slow
def test_gmmlab_fit_on_a_cluster_runs_the_search_cells_and_passes_on_its_workers(
    tmp_path, distributed
):
    import pandas as pd

    from experiments.cli import main

    folder = tmp_path / "rows"
    folder.mkdir()
    for i in range(3):
        pd.DataFrame(_block(i, rows=400), columns=list("abcdefgh")).to_parquet(
            folder / f"part-{i}.parquet"
        )
    out = tmp_path / "out"
    with _cluster(distributed) as cluster, distributed.Client(cluster) as client:
        argv = ["fit", str(folder), "--models", "EEI,VVI", "--components", "2..3"]
        argv += ["--scheduler", cluster.scheduler_address, "--out", str(out)]
        assert main([*argv, "--no-progress"]) == 0
        prefixes = client.run_on_scheduler(
            lambda dask_scheduler: set(dask_scheduler.task_prefixes)
        )
    # The sample search's cells (joblib's Dask backend), every pass over the
    # rows, and the assignments were tasks of the cluster.
    assert any("_fit_cell" in prefix for prefix in prefixes)
    assert {"block_moments", "block_sums", "block_entropy", "write_block"} <= prefixes
    assigned = pd.read_parquet(out / "assignments")
    assert len(assigned) == 1200
    assert assigned["component"].between(1, 3).all()
