"""``gmmlab fit --missing em``: a data file with empty cells, end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from experiments.cli import main
from experiments.datasets import load_dataset
from mixtures import MixtureParams


@pytest.fixture
def holes_file(tmp_path):
    """Two Gaussian clusters in 3-D, 10% of cells empty, and one empty row."""
    rng = np.random.default_rng(0)
    truth = MixtureParams(
        [0.5, 0.5], [[0, 0, 0], [4, 4, 4]], [np.eye(3), np.eye(3) * 0.5]
    )
    X, labels = truth.sample(200, rng)
    X[rng.random(X.shape) < 0.1] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 1.0
    X[7] = np.nan  # a row with no value at all
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(group=labels)
    path = tmp_path / "holes.csv"
    frame.to_csv(path, index=False, na_rep="")
    return path, X


def test_the_file_data_set_keeps_missing_values_and_leaves_out_empty_rows(holes_file):
    path, X = holes_file
    with pytest.raises(ValueError, match="--missing em"):
        load_dataset(f"file:{path}", label_column="group")
    data = load_dataset(f"file:{path}", label_column="group", missing="em")
    assert data.X.shape == (199, 3)
    assert data.notes["dropped_rows"] == [7]
    assert data.notes["n_missing"] == int(np.isnan(np.delete(X, 7, axis=0)).sum())
    assert data.labels.shape == (199,)
    scaled = load_dataset(
        f"file:{path}", label_column="group", missing="em", scale="standard"
    )
    assert_allclose(np.nanmean(scaled.X, axis=0), 0, atol=1e-12)
    assert_allclose(np.nanstd(scaled.X, axis=0), 1)


def test_fit_with_missing_em_runs_end_to_end(holes_file, tmp_path, capsys):
    path, X = holes_file
    out = tmp_path / "out"
    args = ["fit", str(path), "--label", "group", "--models", "VII,VVV",
            "--components", "1..3", "--backends", "em,sklearn", "--seeds", "1",
            "--jobs", "1", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(args) == 2
    assert "--missing em" in capsys.readouterr().err
    assert not out.exists()
    assert main([*args, "--missing", "em"]) == 0
    printed = capsys.readouterr().out
    n_missing = int(np.isnan(np.delete(X, 7, axis=0)).sum())
    assert f"{n_missing} of 597 values are missing" in printed
    assert "data rows 8" in printed  # counted from 1, as a person reads a file
    assignments = pd.read_csv(out / "assignments.csv")
    assert len(assignments) == 200
    assert pd.isna(assignments.loc[7, "component"])
    assert assignments["component"].drop(index=7).isin([1, 2, 3]).all()
    summary = json.loads((out / "parameters.json").read_text())
    assert summary["n_components"] == 2
    runs = pd.read_parquet(out / "results" / "runs.parquet")
    # scikit-learn cannot fit missing values: the cross-check is gmmlab's EM.
    assert set(runs["backend"]) == {"em"}
    assert (runs["status"] != "failed").all(), runs["error"].tolist()
    assert (out / "index.html").is_file()


def test_the_report_says_which_rows_its_figure_cannot_draw(holes_file, tmp_path):
    path, X = holes_file
    out = tmp_path / "out"
    args = ["fit", str(path), "--label", "group", "--models", "VII",
            "--components", "2", "--backends", "em", "--seeds", "1", "--jobs",
            "1", "--no-progress", "--missing", "em", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    kept = np.delete(X, 7, axis=0)
    n_off = int(np.isnan(kept[:, :2]).any(axis=1).sum())
    page = (out / "report.md").read_text()
    assert f"({n_off} rows with a missing value in a or b are not drawn" in page


@pytest.mark.parametrize("mechanism", ["mcar", "mar", "mnar"])
def test_the_scenario_removes_the_share_asked_from_one_sample(mechanism):
    full = load_dataset("missing_synthetic", seed=3, rate=0.0, mechanism=mechanism)
    holes = load_dataset("missing_synthetic", seed=3, rate=0.3, mechanism=mechanism)
    assert not np.isnan(full.X).any()
    assert abs(np.isnan(holes.X).mean() - 0.3) < 0.03
    assert not np.isnan(holes.X[:, 0]).any()  # the first feature is always seen
    observed = ~np.isnan(holes.X)
    np.testing.assert_array_equal(holes.X[observed], full.X[observed])
    if mechanism == "mar":  # holes where the first feature is large
        large = full.X[:, 0] > np.median(full.X[:, 0])
        assert np.isnan(holes.X[large]).mean() > np.isnan(holes.X[~large]).mean()


@pytest.mark.parametrize(
    "arm", ["em-complete-case", "em-mean-imputed", "em-iterative-imputed"]
)
def test_the_imputation_arms_score_all_rows_over_their_observed_values(arm):
    from mixtures.backends import get_backend
    from mixtures.backends.base import total_log_likelihood

    data = load_dataset("missing_synthetic", seed=4, n=400, rate=0.3, mechanism="mar")
    fit = get_backend(arm).fit(data.X, 3, random_state=0, n_init=2)
    assert fit.backend == arm
    assert_allclose(fit.log_likelihood, total_log_likelihood(data.X, fit.params))
    ours = get_backend("em").fit(data.X, 3, random_state=0, n_init=2, missing="em")
    # EM over observed values maximises this very number; the others do not.
    assert ours.log_likelihood >= fit.log_likelihood - 1e-6
    if arm == "em-complete-case":
        assert fit.diagnostics["rows_fitted"] == int((~np.isnan(data.X).any(1)).sum())


def test_missing_recovery_summarises_runs_per_mechanism_rate_and_arm():
    from experiments.scenario_analysis import least_error, missing_recovery

    runs = pd.DataFrame(
        {
            "p_mechanism": ["mar"] * 4 + ["mcar"] * 2,
            "p_rate": [0.3, 0.3, 0.3, 0.1, 0.3, 0.3],
            "backend": ["em", "em", "em-mean-imputed", "em", "em", "em-complete-case"],
            "status": ["ok", "ok", "degenerate", "ok", "ok", "failed"],
            "m_mean_rmse": [0.1, 0.3, 0.9, 0.05, 0.2, 5.0],
            "seconds": [1.0, 3.0, 2.0, 1.0, 1.0, 1.0],
        }
    )
    table = missing_recovery(runs).set_index(["mechanism", "rate", "arm"])
    assert table.loc[("mar", 0.3, "em"), "fits"] == 2
    assert table.loc[("mar", 0.3, "em"), "mean_rmse"] == pytest.approx(0.2)
    assert table.loc[("mar", 0.3, "em-mean-imputed"), "ok"] == 0
    assert ("mcar", 0.3, "em-complete-case") not in table.index  # failed: no fit
    best = least_error(missing_recovery(runs)).set_index("mechanism")
    assert best.loc["mar", "arm"] == "em"
    assert best.loc["mar", "runner_up"] == "em-mean-imputed"
    assert missing_recovery(runs.drop(columns=["p_mechanism"])).empty


def test_the_scenario_sweep_gets_its_report_section(tmp_path):
    import textwrap

    from experiments.config import load_config
    from experiments.report import build_report
    from experiments.runner import run_sweep
    from experiments.scenario_analysis import least_error, missing_recovery

    config = tmp_path / "missing.toml"
    config.write_text(
        textwrap.dedent(
            """
            [sweep]
            root_seed = 2
            seeds = 1
            [[datasets]]
            name = "missing_synthetic"
            n_components = 3
            params = { n = 300, rate = [0.1, 0.3], mechanism = ["mar", "mcar"] }
            [backends.em]
            missing = "em"
            [backends.em-mean-imputed]
            """
        )
    )
    tables = run_sweep(
        load_config(config), tmp_path / "results", progress=False, echo=lambda *_: None
    )
    assert (tables["runs"]["status"] != "failed").all()
    page = build_report(tmp_path / "results", tmp_path / "report").read_text()
    assert (tmp_path / "report" / "missing_recovery.png").is_file()
    for row in least_error(missing_recovery(tables["runs"])).itertuples():
        assert (
            f"{row.arm} has the smallest error of the means ({row.mean_rmse:.3f}"
            in page
        )
    # The imputations: error per arm, coverage of the arms with intervals.
    import html

    from experiments.scenario_analysis import imputation_quality

    assert (tmp_path / "report" / "missing_imputation.png").is_file()
    quality = imputation_quality(tables["runs"])
    assert set(quality["arm"]) == {"em", "em-mean-imputed"}
    for row in least_error(quality, "imputation_rmse").itertuples():
        assert f"smallest imputation error ({row.imputation_rmse:.3f}" in page
        em = quality[
            (quality["arm"] == "em")
            & (quality["mechanism"] == row.mechanism)
            & (quality["rate"] == row.rate)
        ].iloc[0]
        assert f"em's 90% intervals hold {em.coverage:.1%}" in html.unescape(page)
