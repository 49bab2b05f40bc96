"""The model search on a Dask array (issue 27): starts on a sample, EM on all rows."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from mixtures import MixtureParams, fit_em
from mixtures.data import load_faithful
from mixtures.select import search

da = pytest.importorskip("dask.array")
from mixtures.dask_select import search_dask  # noqa: E402

SMALL = {"models": ["EII", "EEE", "VVV"], "n_components": [1, 2, 3]}


def test_with_every_row_as_its_sample_the_table_is_the_in_memory_one():
    X = load_faithful()
    memory = search(X, **SMALL, random_state=0)
    ours = search_dask(da.from_array(X, chunks=(50, 2)), **SMALL, random_state=0)
    columns = ["model", "n_components", "status", "n_parameters"]
    assert ours.table[columns].equals(memory.table[columns])
    # EM from a converged fit stays there: the same maxima, over 6 blocks.
    assert_allclose(
        ours.table["log_likelihood"], memory.table["log_likelihood"], rtol=1e-9
    )
    assert_allclose(ours.table["bic"], memory.table["bic"], rtol=1e-9)
    # The entropy moves to first order with the parameters (the likelihood,
    # at its maximum, to second): EM on all rows runs on past the search's stop.
    assert_allclose(ours.table["icl"], memory.table["icl"], rtol=1e-5)
    assert ours.best("bic").covariance_type == memory.best("bic").covariance_type
    assert ours.table["start"].str.startswith("sample:").all()


def _truth() -> MixtureParams:
    covariances = np.array([[[1.0, 0.6], [0.6, 1.0]], [[0.5, -0.2], [-0.2, 0.4]]])
    return MixtureParams(
        np.array([0.3, 0.45, 0.25]),
        np.array([[0.0, 0.0], [5.0, 1.0], [1.0, 6.0]]),
        np.concatenate([covariances, covariances[:1] * 2.0]),
        "full",
    )


@pytest.mark.slow
def test_a_sample_starts_the_search_and_every_row_fits_the_cells():
    X, labels = _truth().sample(20_000, np.random.default_rng(3))
    array = da.from_array(X, chunks=(3_000, 2))
    found = search_dask(array, ["VVV", "EEE"], [2, 3, 4], sample_size=1_500)
    best = found.best("bic")
    assert (best.covariance_type, best.n_components) == ("VVV", 3)
    for cell in [("VVV", 3), ("EEE", 2)]:
        row = found.table.set_index(["model", "n_components"]).loc[cell]
        fit = found.fits[cell]
        # Every row's maximum: EM in memory from the fitted parameters stays.
        again = fit_em(
            X, cell[1], covariance_type=cell[0], initial_params=fit.params_, tol=1e-10
        )
        assert row["log_likelihood"] == pytest.approx(again.log_likelihood, rel=1e-7)
        assert row["bic"] == pytest.approx(fit.bic(X), rel=1e-9)
        assert row["status"] == "ok"
    # Labels of every row, lazily, in the truth's grouping.
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(labels, best.predict(array).compute()) > 0.95


def test_bad_settings_fail_before_any_pass():
    array = da.from_array(load_faithful(), chunks=(50, 2))
    with pytest.raises(ValueError, match="tol"):
        search_dask(array, tol=-1.0)
    with pytest.raises(ValueError):
        search_dask(array, ["XYZ"], [1])


# ---------------------------------------------------------------------------
# gmmlab fit FOLDER (--scheduler): the search out of core, from the command line


def _faithful_folder(tmp_path, n_files=3):
    pd = pytest.importorskip("pandas")
    folder = tmp_path / "faithful"
    folder.mkdir()
    X = load_faithful()
    for i, part in enumerate(np.array_split(np.arange(len(X)), n_files)):
        frame = pd.DataFrame(X[part], columns=["eruptions", "waiting"])
        frame.to_parquet(folder / f"part-{i}.parquet")
    return folder, X


def test_gmmlab_fit_on_a_folder_writes_the_search_and_every_blocks_assignments(
    tmp_path, capsys
):
    import json

    import pandas as pd

    from experiments.cli import main

    folder, X = _faithful_folder(tmp_path)
    out = tmp_path / "out"
    argv = ["fit", str(folder), "--models", "EEE,VVV", "--components", "1..3"]
    assert main([*argv, "--out", str(out), "--jobs", "1", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "272 rows x 2 features in 3 blocks" in printed
    memory = search(X, ["EEE", "VVV"], [1, 2, 3], reg_covar_relative=True)
    chosen = memory.top(1).iloc[0]
    summary = json.loads((out / "parameters.json").read_text())
    assert (summary["model"], summary["n_components"]) == (
        chosen["model"],
        chosen["n_components"],
    )
    assert summary["bic"] == pytest.approx(chosen["bic"], rel=1e-9)
    assert summary["n_rows"] == 272
    assert f"best model: {chosen['model']} with K = {chosen['n_components']}" in printed
    # One file per block, every row once, probabilities summing to one.
    files = sorted((out / "assignments").glob("*.parquet"))
    assert len(files) == 3
    assigned = pd.read_parquet(out / "assignments")
    assert assigned["row"].tolist() == list(range(272))
    probabilities = assigned.filter(like="p_component_").to_numpy()
    assert_allclose(probabilities.sum(axis=1), 1.0)
    fit = memory.best("bic")
    assert (assigned["component"].to_numpy() - 1 == fit.predict(X)).all()
    assert summary["mean_uncertainty"] == pytest.approx(assigned["uncertainty"].mean())
    table = pd.read_csv(out / "model_search.csv")
    assert len(table) == 6
    assert table["chosen"].sum() == 1
    assert (out / "model_search.png").stat().st_size > 10_000
    assert not list(out.glob(".assignments*"))  # no staging folder left


def test_gmmlab_fit_out_of_core_refuses_what_it_cannot_do(
    tmp_path, capsys, monkeypatch
):
    from experiments import userfit_rows
    from experiments.cli import main

    monkeypatch.setattr(userfit_rows, "CONNECT_TIMEOUT", "1s")
    folder, _ = _faithful_folder(tmp_path)
    out = tmp_path / "out"
    assert main(["fit", str(folder), "--label", "waiting", "--out", str(out)]) == 2
    assert "--label not supported yet" in capsys.readouterr().err
    assert main(["fit", str(folder), "--scale", "standard", "--sep", "comma"]) == 2
    assert "--scale, --sep not supported" in capsys.readouterr().err
    argv = ["fit", str(folder), "--scheduler", "tcp://127.0.0.1:9", "--out", str(out)]
    pytest.importorskip("distributed")
    assert main(argv) == 2
    assert "no Dask scheduler answers" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "absent"), "--scheduler", "local"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_gmmlab_fit_on_a_folder_with_holes_and_the_prior_matches_the_search_in_memory(
    tmp_path, capsys
):
    import json

    import pandas as pd

    from experiments.cli import main

    X = load_faithful().copy()
    holes = np.random.default_rng(1).random(X.shape) < 0.1
    holes[holes.all(axis=1), 0] = False
    X[holes] = np.nan
    folder = tmp_path / "holes"
    folder.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(X)), 2)):
        pd.DataFrame(X[part], columns=["eruptions", "waiting"]).to_parquet(
            folder / f"part-{i}.parquet"
        )
    out = tmp_path / "out"
    argv = ["fit", str(folder), "--models", "EEE,VVI", "--components", "1..3"]
    argv += ["--missing", "em", "--prior", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    memory = search(
        X,
        ["EEE", "VVI"],
        [1, 2, 3],
        reg_covar_relative=True,
        prior="default",
        missing="em",
    )
    ours = pd.read_csv(out / "model_search.csv")
    assert_allclose(ours["bic"], memory.table["bic"], rtol=1e-8)
    summary = json.loads((out / "parameters.json").read_text())
    assert summary["prior"] is True
    chosen = memory.top(1).iloc[0]
    assert (summary["model"], summary["n_components"]) == (
        chosen["model"],
        chosen["n_components"],
    )
    assigned = pd.read_parquet(out / "assignments")
    fit = memory.best("bic")
    assert (assigned["component"].to_numpy() - 1 == fit.predict(X)).all()


def test_the_priors_data_covariance_is_one_pass_for_the_whole_search(monkeypatch):
    import mixtures.dask_rows as rows_module

    blocks = []
    real = rows_module._block_scatter

    def counted(*args):
        blocks.append(1)
        return real(*args)

    monkeypatch.setattr(rows_module, "_block_scatter", counted)
    X = da.from_array(load_faithful(), chunks=(100, 2))  # 3 blocks
    result = search_dask(X, ["EII", "VVV"], [1, 2], prior="default", random_state=0)
    assert (result.table["status"] == "ok").all()
    assert len(blocks) == X.numblocks[0]  # 4 cells, one pass
