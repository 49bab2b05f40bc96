"""EM on a Dask array (issue 27): the in-memory answer, block by block."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning

from mixtures import fit_em
from mixtures.covariance import COVARIANCE_MODELS

from gmm_helpers import INNER_TOLERANCE_MODELS, INNER_TOLERANCE_RTOL

da = pytest.importorskip("dask.array")

_MULTIVARIATE = [m for m in COVARIANCE_MODELS if m not in ("E", "V")]


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = np.vstack(
        [
            rng.normal(size=(n // 2, 3)) @ np.diag([1.0, 0.5, 2.0]) + [5.0, 1.0, 0.0],
            rng.normal(size=(n - n // 2, 3)) * 0.7 + [0.0, -1.0, 1.0],
        ]
    )
    # Far from the origin: the moments must be taken about the means.
    return X + 1e4


_START = {
    "means_init": np.array([[5.0, 1.0, 0.0], [0.0, -1.0, 1.0]]) + 1e4 + 0.3,
    "weights_init": np.array([0.4, 0.6]),
}


def _assert_same_fit(ours, reference, rtol=1e-10):
    assert ours.n_iter == reference.n_iter
    assert_allclose(ours.lower_bounds, reference.lower_bounds, rtol=rtol)
    assert_allclose(ours.params.weights, reference.params.weights, rtol=rtol)
    assert_allclose(ours.params.means, reference.params.means, rtol=rtol)
    # Relative to the covariance's scale: an entry near 0 has no relative size.
    covariances = reference.params.full_covariances()
    assert_allclose(
        ours.params.full_covariances(),
        covariances,
        rtol=rtol,
        atol=rtol * np.abs(covariances).max(),
    )
    assert ours.log_likelihood == pytest.approx(reference.log_likelihood, rel=rtol)


@pytest.mark.parametrize("model", _MULTIVARIATE)
@pytest.mark.parametrize("n_chunks", [1, 2, 7])
def test_every_model_on_any_chunking_equals_the_in_memory_fit(model, n_chunks):
    X = _data()
    options = dict(covariance_type=model, tol=1e-10, max_iter=200, **_START)
    reference = fit_em(X, 2, random_state=0, **options)
    chunks = -(-X.shape[0] // n_chunks)
    ours = fit_em(da.from_array(X, chunks=(chunks, 3)), 2, random_state=0, **options)
    # Blocks sum in another order; an iterated M-step turns that into ~1e-8.
    rtol = INNER_TOLERANCE_RTOL if model in INNER_TOLERANCE_MODELS else 1e-10
    _assert_same_fit(ours, reference, rtol=rtol)
    assert_array_equal(ours.labels.compute(), reference.labels)


@pytest.mark.parametrize("model", ["E", "V"])
def test_the_univariate_models_on_a_dask_column(model):
    x = _data()[:, 0]
    options = dict(covariance_type=model, tol=1e-10, means_init=[[1e4 + 5], [1e4]])
    reference = fit_em(x, 2, random_state=0, **options)
    ours = fit_em(da.from_array(x, chunks=97), 2, random_state=0, **options)
    _assert_same_fit(ours, reference)


def test_starts_float32_and_weights_as_in_memory():
    """Data within the start sample: k-means starts equal the in-memory ones."""
    X = _data(seed=3)
    weights = np.random.default_rng(1).integers(0, 4, size=X.shape[0]).astype(float)
    weights[:150] = 0.0  # a whole block of zero weight
    options = dict(n_init=3, tol=1e-9, random_state=7)
    reference = fit_em(X, 2, sample_weight=weights, **options)
    ours = fit_em(
        da.from_array(X, chunks=(150, 3)),
        2,
        sample_weight=da.from_array(weights, chunks=100),
        **options,
    )
    _assert_same_fit(ours, reference)
    single = X.astype(np.float32)
    reference = fit_em(single, 2, **options)
    ours = fit_em(da.from_array(single, chunks=(128, 3)), 2, **options)
    _assert_same_fit(ours, reference, rtol=1e-6)


def test_larger_data_start_from_a_sample_and_converge():
    """More rows than the start sample: a sound fit, rows never gathered."""
    rng = np.random.default_rng(5)
    means = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    X = np.vstack([rng.normal(size=(4000, 2)) + m for m in means])
    from mixtures.dask_em import fit_dask
    from mixtures.options import EMOptions

    options = EMOptions(n_components=3, tol=1e-8)
    ours = fit_dask(
        da.from_array(X, chunks=(1000, 2)), None, options, 0, sample_size=500
    )
    assert ours.converged
    order = np.argsort(ours.params.means[:, 0] + 10 * ours.params.means[:, 1])
    assert_allclose(ours.params.means[order], means[[0, 1, 2]], atol=0.1)
    # The same optimum as EM in memory from the fitted parameters.
    reference = fit_em(
        X,
        3,
        means_init=ours.params.means,
        weights_init=ours.params.weights,
        precisions_init=ours.params.precisions,
        tol=1e-8,
    )
    assert ours.log_likelihood == pytest.approx(reference.log_likelihood, rel=1e-8)


@pytest.mark.parametrize("model", ["VEV", "spherical"])
def test_a_fit_from_initial_params_equals_the_in_memory_one(model):
    X = _data()
    with pytest.warns(ConvergenceWarning):  # two iterations: a start, not a fit
        start = fit_em(X, 2, covariance_type=model, max_iter=2, **_START).params
    options = dict(covariance_type=model, tol=1e-10, max_iter=200)
    reference = fit_em(X, 2, initial_params=start, **options)
    ours = fit_em(da.from_array(X, chunks=(90, 3)), 2, initial_params=start, **options)
    _assert_same_fit(ours, reference)
    assert len(ours.restarts) == 1


def _with_holes(X, rate=0.1, seed=5):
    """``X`` with ``rate`` of its cells missing at random, no row left empty."""
    X = X.copy()
    holes = np.random.default_rng(seed).random(X.shape) < rate
    holes[holes.all(axis=1), 0] = False
    X[holes] = np.nan
    return X


@pytest.mark.parametrize("model", ["VVV", "EEE", "diag", "VEI", "spherical"])
@pytest.mark.parametrize("n_chunks", [1, 7])
def test_missing_values_out_of_core_equal_the_in_memory_fit(model, n_chunks):
    X = _with_holes(_data())
    options = dict(covariance_type=model, tol=1e-10, max_iter=200, missing="em")
    reference = fit_em(X, 2, random_state=0, **options, **_START)
    chunks = -(-X.shape[0] // n_chunks)
    array = da.from_array(X, chunks=(chunks, 3))
    ours = fit_em(array, 2, random_state=0, **options, **_START)
    _assert_same_fit(ours, reference)
    assert_array_equal(ours.labels.compute(), reference.labels)


def test_missing_values_with_weights_and_kmeans_starts_equal_the_in_memory_fit():
    X = _with_holes(_data(), rate=0.2)
    weights = np.random.default_rng(2).integers(0, 4, size=X.shape[0]).astype(float)
    options = dict(covariance_type="VVV", tol=1e-10, missing="em", n_init=2)
    reference = fit_em(X, 2, random_state=4, sample_weight=weights, **options)
    ours = fit_em(
        da.from_array(X, chunks=(130, 3)),
        2,
        random_state=4,
        sample_weight=da.from_array(weights, chunks=70),
        **options,
    )
    _assert_same_fit(ours, reference)


@pytest.mark.parametrize("model", ["VVV", "VEI", "diag"])
@pytest.mark.parametrize("holes", [False, True])
def test_the_prior_out_of_core_equals_the_in_memory_fit(model, holes):
    X = _with_holes(_data()) if holes else _data()
    weights = np.linspace(0.5, 2.0, X.shape[0])
    options = dict(covariance_type=model, tol=1e-10, prior=True, missing="em", **_START)
    reference = fit_em(X, 2, random_state=0, sample_weight=weights, **options)
    ours = fit_em(
        da.from_array(X, chunks=(90, 3)),
        2,
        random_state=0,
        sample_weight=da.from_array(weights, chunks=90),
        **options,
    )
    _assert_same_fit(ours, reference)


def test_unsupported_options_and_bad_input_are_clear():
    X = da.from_array(_data(), chunks=(100, 3))
    holes = _with_holes(_data())
    with pytest.raises(ValueError, match=r"contains NaN .* missing='em'"):
        fit_em(da.from_array(holes, chunks=(100, 3)), 2)
    holes[7] = np.nan
    with pytest.raises(ValueError, match=r"1 row.* every feature missing"):
        fit_em(da.from_array(holes, chunks=(100, 3)), 2, missing="em")
    holes = _data()
    holes[:, 1] = np.nan
    with pytest.raises(ValueError, match=r"feature.* 1 .*missing in every row"):
        fit_em(da.from_array(holes, chunks=(100, 3)), 2, missing="em")
    with pytest.raises(ValueError, match="initial_params do not match"):
        fit_em(X, 3, initial_params=fit_em(np.asarray(X), 2).params)
    with pytest.raises(ValueError, match="2-D"):
        fit_em(da.zeros((4, 3, 2), chunks=2), 2)
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        fit_em(X, 2, sample_weight=da.ones(5, chunks=5))
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        fit_em(X[:1], 2)


@pytest.mark.slow
def test_a_local_cluster_of_two_worker_processes_gives_the_in_memory_fit():
    """The parameters travel to worker processes and the sums come back."""
    distributed = pytest.importorskip("distributed")
    X = _data(n=4000, seed=11)
    options = dict(covariance_type="VVV", tol=1e-10, **_START)
    reference = fit_em(X, 2, random_state=0, **options)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        ours = fit_em(da.from_array(X, chunks=(700, 3)), 2, random_state=0, **options)
        labels = ours.labels.compute()
    _assert_same_fit(ours, reference)
    assert_array_equal(labels, reference.labels)


@pytest.mark.slow
def test_the_readme_example_runs(tmp_path):
    """The README's lines, from a folder of Parquet files to a fitted model."""
    import re
    from pathlib import Path

    pd = pytest.importorskip("pandas")
    pytest.importorskip("distributed")
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## Data larger than memory") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    X = _data(n=3000, seed=2)
    folder = tmp_path / "measurements"
    folder.mkdir()
    for i, part in enumerate(np.array_split(X, 3)):
        frame = pd.DataFrame(part, columns=["a", "b", "c"])
        frame.to_parquet(folder / f"part-{i}.parquet")
    code = code.replace('Client("tcp://scheduler:8786")', "Client(processes=False)")
    code = code.replace('"measurements/"', repr(str(folder)))
    assert "open_rows" in code
    namespace: dict = {}
    try:
        exec(code, namespace)
        labels = namespace["result"].labels.compute()
    finally:
        namespace["client"].close()
    assert labels.shape == (3000,)
    reference = fit_em(X, 8, covariance_type="diag", random_state=0)
    assert namespace["result"].log_likelihood == pytest.approx(
        reference.log_likelihood, rel=1e-9
    )


def test_the_estimator_fits_and_predicts_a_dask_array_lazily():
    from mixtures import GaussianMixture

    X = _data(seed=4)
    options = dict(covariance_type="full", tol=1e-10, random_state=0, n_init=2)
    reference = GaussianMixture(2, **options).fit(X)
    model = GaussianMixture(2, **options)
    labels = model.fit_predict(da.from_array(X, chunks=(128, 3)))
    assert isinstance(labels, da.Array)
    assert_array_equal(labels.compute(), reference.predict(X))
    assert_allclose(model.means_, reference.means_, rtol=1e-10)
    assert model.n_iter_ == reference.n_iter_
    lazy = da.from_array(X, chunks=(200, 3))
    assert_allclose(model.score_samples(lazy).compute(), reference.score_samples(X))
    assert_allclose(model.predict_proba(lazy).compute(), reference.predict_proba(X))
    assert_array_equal(model.predict(lazy).compute(), reference.predict(X))
    assert model.score(lazy) == pytest.approx(reference.score(X), rel=1e-12)
    assert model.bic(lazy) == pytest.approx(reference.bic(X), rel=1e-12)
    warm = GaussianMixture(2, warm_start=True).fit(X)
    before = warm.means_.copy()
    with pytest.raises(ValueError, match="warm_start"):
        warm.fit(lazy)
    assert_array_equal(warm.means_, before)  # left as it was


def test_open_rows_reads_parquet_folders_and_zarr_lazily(tmp_path):
    pd = pytest.importorskip("pandas")
    from mixtures.io import open_rows

    X = _data(n=500, seed=6)
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, part in enumerate(np.array_split(X, 4)):
        frame = pd.DataFrame(part, columns=["a", "b", "c"]).assign(name="x")
        frame.to_parquet(folder / f"part-{i}.parquet")
    rows = open_rows(folder)  # every numeric column, in file order
    assert isinstance(rows, da.Array)
    assert rows.numblocks == (4, 1)
    assert_array_equal(rows.compute(), X)
    assert_array_equal(open_rows(folder, columns=["c", "a"]).compute(), X[:, [2, 0]])
    assert_array_equal(open_rows(folder / "part-0.parquet").compute(), X[:125])
    with pytest.raises(ValueError, match="no column"):
        open_rows(folder, columns=["d"])
    with pytest.raises(ValueError, match="not numeric"):
        open_rows(folder, columns=["a", "name"])
    zarr = pytest.importorskip("zarr")
    store = tmp_path / "rows.zarr"
    stored = zarr.open_array(str(store), mode="w", shape=X.shape, chunks=(100, 3))
    stored[:] = X
    assert_array_equal(open_rows(store).compute(), X)
    assert_array_equal(open_rows(store, columns=[1]).compute(), X[:, [1]])
    with pytest.raises(ValueError, match="out of range"):
        open_rows(store, columns=[3])
    with pytest.raises(ValueError, match="neither Parquet"):
        open_rows(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        open_rows(tmp_path / "nothing")
    fitted = fit_em(open_rows(folder), 2, random_state=0, tol=1e-10)
    assert fitted.log_likelihood == pytest.approx(
        fit_em(X, 2, random_state=0, tol=1e-10).log_likelihood, rel=1e-10
    )


def test_a_checkpointed_fit_resumes_where_it_stopped(tmp_path, monkeypatch):
    """Interrupted mid-restart, started again: the uninterrupted answer, less work."""
    import mixtures.dask_em as dask_em
    from mixtures.options import EMOptions

    X = da.from_array(_data(seed=8), chunks=(150, 3))
    options = EMOptions(n_components=2, n_init=2, tol=1e-12, max_iter=40)
    whole = dask_em.fit_dask(X, None, options, 3)
    path = tmp_path / "fit.ckpt"
    segmented = dask_em.fit_dask(
        X, None, options, 3, checkpoint=path, checkpoint_every=4
    )
    for a, b in zip(segmented.restarts, whole.restarts, strict=True):
        assert a.n_iter == b.n_iter
        assert_array_equal(a.lower_bounds, b.lower_bounds)
        assert_array_equal(a.params.means, b.params.means)
    path.unlink()

    real = dask_em.dask_total
    calls = {"n": 0}

    def interrupted(*args):
        calls["n"] += 1
        if calls["n"] > whole.restarts[0].n_iter + 6:  # inside the second restart
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(dask_em, "dask_total", interrupted)
    with pytest.raises(KeyboardInterrupt):
        dask_em.fit_dask(X, None, options, 3, checkpoint=path, checkpoint_every=4)
    assert path.exists()
    monkeypatch.setattr(dask_em, "dask_total", real)
    counted = {"n": 0}

    def counting(*args):
        counted["n"] += 1
        return real(*args)

    monkeypatch.setattr(dask_em, "dask_total", counting)
    resumed = dask_em.fit_dask(X, None, options, 3, checkpoint=path, checkpoint_every=4)
    total_passes = sum(run.n_iter for run in whole.restarts) + 1  # + the final score
    assert counted["n"] < total_passes - whole.restarts[0].n_iter  # work was skipped
    assert_array_equal(resumed.lower_bounds, whole.lower_bounds)
    assert_array_equal(resumed.params.means, whole.params.means)
    # Other inputs: the file is not trusted; the fit starts afresh.
    other = EMOptions(n_components=2, n_init=2, tol=1e-6, max_iter=40)
    fresh = dask_em.fit_dask(X, None, other, 3, checkpoint=path, checkpoint_every=4)
    assert_array_equal(
        fresh.lower_bounds, dask_em.fit_dask(X, None, other, 3).lower_bounds
    )
    with pytest.raises(ValueError, match="integer random_state"):
        dask_em.fit_dask(X, None, options, None, checkpoint=path)
    with pytest.raises(ValueError, match="checkpoint_every"):
        dask_em.fit_dask(
            X, None, options, 4, checkpoint=tmp_path / "b", checkpoint_every=0
        )


def test_the_estimator_with_missing_values_fits_and_predicts_block_by_block():
    from mixtures import GaussianMixture

    X = _with_holes(_data(), rate=0.15)
    array = da.from_array(X, chunks=(150, 3))
    options = dict(covariance_type="VEV", missing="em", random_state=0, tol=1e-10)
    ours = GaussianMixture(2, **options, **_START).fit(array)
    reference = GaussianMixture(2, **options, **_START).fit(X)
    assert_allclose(ours.means_, reference.means_, rtol=1e-10)
    assert_array_equal(ours.predict(array).compute(), reference.predict(X))
    assert_allclose(
        ours.score_samples(array).compute(), reference.score_samples(X), rtol=1e-10
    )
    assert ours.bic(array) == pytest.approx(reference.bic(X), rel=1e-10)


@pytest.mark.parametrize("init_params", ["hc", "random_from_data", "k-means++"])
def test_every_start_is_drawn_from_the_sample_as_in_memory(init_params):
    """Rows fewer than the sample: the sample is every row, the same starts."""
    X = _data(n=900, seed=4)
    options = dict(covariance_type="VVV", init_params=init_params, n_init=2)
    reference = fit_em(X, 2, random_state=3, **options)
    ours = fit_em(da.from_array(X, chunks=(200, 3)), 2, random_state=3, **options)
    _assert_same_fit(ours, reference)


def test_a_blocks_reading_and_its_pass_are_one_task():
    """No block is held between two tasks, nor moved between workers."""
    from mixtures import MixtureParams
    from mixtures.dask_em import _block_sums
    from mixtures.dask_rows import per_block

    X = da.from_array(_data(), chunks=(100, 3)) * 2.0  # a block is itself a task
    params = MixtureParams(np.ones(1), np.zeros((1, 3)), np.eye(3)[None], "full")
    parts = per_block(X, _block_sums, params, "numpy")
    graph = dict(parts[0].__dask_graph__())
    names = [key[0] if isinstance(key, tuple) else key for key in graph]
    # One fused task per block (made, scaled and reduced together), its alias
    # under the pass's name, and the unboxing of one result.
    fused = [name for name in names if name.startswith("array-mul-block_sums")]
    assert len(fused) == X.numblocks[0]
    assert len(graph) == 2 * X.numblocks[0] + 1
