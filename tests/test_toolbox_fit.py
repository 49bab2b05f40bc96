"""``gmmlab fit --noise --lrt`` and the report's section "Beyond BIC" (issue 28)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from experiments.cli import main
from experiments.userfit_noise import noise_verdict
from mixtures.data import load_faithful


def _section(report: str) -> str:
    start = report.index("## Beyond BIC")
    return report[start : report.index("\n## ", start + 1)]


@pytest.fixture(scope="module")
def faithful_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("toolbox") / "faithful.csv"
    frame = pd.DataFrame(load_faithful(), columns=["eruptions", "waiting"])
    frame.to_csv(path, index=False)
    return path


def _fit(path, out, *extra) -> int:
    args = ["fit", str(path), "--models", "EEE,EEI", "--components", "1..4",
            "--backends", "em", "--seeds", "1", "--jobs", "1", "--no-progress",
            "--out", str(out), *extra]  # fmt: skip
    return main(args)


@pytest.mark.slow
def test_noise_and_lrt_reach_the_console_files_and_report(faithful_csv, capsys):
    out = faithful_csv.parent / "out"
    assert _fit(faithful_csv, out, "--noise", "--lrt", "19") == 0
    printed = capsys.readouterr().out
    assert "with a uniform noise component (initial noise:" in printed
    # Both searches score the same rows, so their BICs compare: the printed
    # verdict is the one the two tables give.
    cells = pd.read_csv(out / "noise_search.csv")
    plain = pd.read_csv(out / "model_search.csv")
    best_noise = cells[cells.status == "ok"]["bic"].min()
    best_plain = plain[plain.status == "ok"]["bic"].min()
    if best_noise < best_plain - 2:
        assert "BIC calls for the noise" in printed
    elif best_noise < best_plain:
        assert "weak evidence for the noise" in printed
    else:
        assert "does not call" in printed
    assert list(cells["n_components"]).count(0) == 1
    assert len(cells) == 1 + 2 * 4
    rows = pd.read_csv(out / "noise_assignments.csv")
    assert len(rows) == 272
    assert set(rows["component"]) >= {0, 1}
    assert (out / "noise.png").stat().st_size > 10_000
    section = _section((out / "report.md").read_text())
    for heading in ("as a density", "likelihood-ratio tests", "noise component"):
        assert heading in section
    # The density's HDRs hold about their probability of the data.
    density = section[section.index("as a density") : section.index("likelihood-ratio")]
    table = re.findall(r"^\| (0\.\d+) \| [\d.e-]+ \| ([\d.]+) \|$", density, re.M)
    assert [float(p) for p, _ in table] == [0.25, 0.5, 0.75, 0.95]
    for probability, inside in table:
        assert abs(float(inside) - float(probability)) < 0.05
    assert "| 1 vs 2 |" in section
    assert "| 2 vs 3 |" in section

    # Run again without the tests: nothing of them is left to be shown.
    assert _fit(faithful_csv, out) == 0
    section = _section((out / "report.md").read_text())
    assert "likelihood-ratio" not in section
    assert "noise component" not in section
    assert "as a density" in section  # two features: always shown
    for name in ("lrt.csv", "lrt.png", "noise_search.csv", "noise.png"):
        assert not (out / name).exists()
    assert not (out / "results" / "noise_search.parquet").exists()


def test_noise_is_refused_with_holes_and_out_of_core(faithful_csv, tmp_path, capsys):
    holes = tmp_path / "holes.csv"
    frame = pd.read_csv(faithful_csv)
    frame.iloc[3, 0] = np.nan
    frame.to_csv(holes, index=False)
    args = ["--missing", "em", "--noise"]
    assert _fit(holes, tmp_path / "o", *args) == 2
    assert "--noise does not support --missing em" in capsys.readouterr().err
    folder = tmp_path / "rows"
    folder.mkdir()
    frame.dropna().to_parquet(folder / "p.parquet")
    assert main(["fit", str(folder), "--noise", "--out", str(tmp_path / "p")]) == 2
    assert "--noise not supported yet" in capsys.readouterr().err


def test_noise_verdict_compares_the_two_best_bics():
    assert "calls for the noise" in noise_verdict(100.0, 110.0, "EEE,3")
    assert "only 1.50 below" in noise_verdict(100.0, 101.5, "EEE,3")
    said = noise_verdict(110.0, 100.0, "EEE,3")
    assert "does not call" in said
    assert "10.00 above" in said
    assert "EEE,3 stands" in said


@pytest.mark.slow
def test_classification_with_standard_scale_does_not_depend_on_the_units(tmp_path):
    from sklearn.datasets import load_iris

    from experiments.userfit import load_file
    from experiments.userfit_outputs import _classification

    frame = load_iris(as_frame=True).frame
    found = {}
    for scale in ("none", "standard"):
        for factor in (1.0, 1000.0):  # sepal width in other units
            path = tmp_path / f"iris{factor:g}.csv"
            column = "sepal width (cm)"
            frame.assign(**{column: frame[column] * factor}).to_csv(path, index=False)
            file = load_file(path, label="target", scale=scale)
            found[scale, factor] = _classification(file.data)
    # As fitted, EDDA's choice among models not closed under rescaling one
    # column (VEV, VVE...) depends on the columns' relative units, as
    # mclust's does: iris's VEV becomes VVE.
    assert found["none", 1.0]["model"] == "VEV"
    assert found["none", 1000.0]["model"] == "VVE"
    # With --scale standard the columns are fitted in standard units, and
    # nothing depends on the units.
    one, other = found["standard", 1.0], found["standard", 1000.0]
    assert one["model"] == other["model"]
    assert one["cv_error"] == other["cv_error"]
    assert one["training_error"] == other["training_error"]


@pytest.mark.slow
def test_one_feature_gets_the_density_and_its_probability_plot(faithful_csv, tmp_path):
    out = tmp_path / "one"
    args = ["fit", str(faithful_csv), "--columns", "waiting", "--components",
            "1..3", "--backends", "em", "--seeds", "1", "--jobs", "1",
            "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    section = _section((out / "report.md").read_text())
    assert "(toolbox_density.png)" in section
    assert "(toolbox_density_fit.png)" in section
    assert (out / "toolbox_density_fit.png").stat().st_size > 10_000


@pytest.mark.slow
def test_label_puts_the_cross_validated_error_beside_the_agreement(tmp_path):
    from sklearn.datasets import load_iris

    path = tmp_path / "iris.csv"
    load_iris(as_frame=True).frame.to_csv(path, index=False)
    out = tmp_path / "out"
    args = ["fit", str(path), "--label", "target", "--models", "VEV,EEE",
            "--components", "1..3", "--backends", "em", "--seeds", "1",
            "--jobs", "1", "--no-progress", "--noise", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    report = (out / "report.md").read_text()
    # The noise fit's agreement with the labels, as gmmlab fit recorded it.
    cells = pd.read_csv(out / "noise_search.csv")
    best = cells.dropna(subset=["ari"]).iloc[0]
    assert f"adjusted Rand index {best['ari']:.3f} with the noise rows" in report
    agreement = report[report.index("## Agreement with the known classes") :]
    agreement = agreement[: agreement.index("\n## ")]
    summary = json.loads((out / "parameters.json").read_text())["classification"]
    assert f"error {summary['cv_error']:.3f}" in agreement
    assert "cvMclustDA" in agreement
    assert f"common covariance model {summary['model']}" in agreement


@pytest.mark.parametrize("n_flagged", [[0, 0], [0, 7]])
def test_the_lrt_console_explains_replicates_without_an_ok_fit(n_flagged):
    from experiments.userfit_lrt import describe_lrt
    from mixtures.lrt import LRTResult

    result = LRTResult(
        model="EEE",
        n_components=np.array([1, 2]),
        observed=np.array([300.0, 1.0]),
        bootstrap=np.zeros((19, 2)),
        p_values=np.array([0.05, 0.6]),
        n_flagged=np.array(n_flagged),
        level=0.05,
        seconds=np.zeros(2),
    )
    text = describe_lrt(result, chosen_k=2)
    lines = text.splitlines()
    assert lines[1].startswith("  1 vs 2: LRTS")
    assert "without" not in lines[1]
    assert ("(7 without an ok fit)" in lines[2]) == bool(n_flagged[1])
    assert ("indistinguishable components" in text) == bool(n_flagged[1])
    assert "keep K = 2" in text
    assert "agrees with BIC's K = 2" in text
