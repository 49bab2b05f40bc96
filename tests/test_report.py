"""Reports from recorded tables, and `gmmlab fit` for a user's file."""

from __future__ import annotations

import json
import re
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from PIL import Image
from scipy import stats

from experiments.cli import main
from experiments.config import load_config
from experiments.datasets import load_dataset
from experiments.report import build_report
from experiments.runner import run_sweep
from mixtures import fit_em

SWEEP = """
    [sweep]
    root_seed = 5
    seeds = 2
    [[datasets]]
    name = "s1"
    [[datasets]]
    name = "s4"
    [[datasets]]
    name = "synthetic"
    params = { n = [200, 800], n_components = 2, separation = 2.0 }
    [[datasets]]
    name = "s5"
    n_components = [2, 3, 500]
    [backends.em]
    [backends.sklearn]
    [grid]
    init_params = ["kmeans", "random_from_data"]
"""


class _Checker(HTMLParser):
    """Collects image sources and checks that tags are balanced."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.images: list[str] = []
        self.headings: list[str] = []
        self._in_heading = False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        if tag not in self.VOID:
            self.stack.append(tag)
        self._in_heading = tag in ("h2", "h3")

    def handle_endtag(self, tag):
        assert self.stack, f"closing </{tag}> with nothing open"
        assert self.stack.pop() == tag, f"mismatched </{tag}>"
        self._in_heading = False

    def handle_data(self, data):
        if self._in_heading:
            self.headings.append(data)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    config = folder / "sweep.toml"
    config.write_text(textwrap.dedent(SWEEP))
    results = folder / "results"
    run_sweep(load_config(config), results, progress=False, echo=lambda *_: None)
    return results


@pytest.fixture(scope="module")
def report(recorded, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return out, build_report(recorded, out)


def test_report_html_parses_and_every_figure_is_a_valid_png(report):
    out, index = report
    checker = _Checker()
    checker.feed(index.read_text())
    assert checker.stack == []
    assert checker.images, "the report should have figures"
    for source in checker.images:
        path = out / source
        assert path.is_file(), source
        with Image.open(path) as image:
            image.verify()
            assert image.format == "PNG"
    for section in (
        "Setup",
        "Summary",
        "Log-likelihood traces",
        "Convergence across seeds (initialisation impact)",
        "Parameter recovery against the truth",
        "Run time",
        "Model selection: BIC and ICL",
        "The fitted mixtures",
        "Fits not eligible",
    ):
        assert section in checker.headings, section
    names = {Path(s).stem for s in checker.images}
    assert {"fit_s1", "fit_s4", "recovery_vs_n", "selection_s5", "timing"} <= names
    markdown = (out / "report.md").read_text()
    assert "| dataset | backend |" in markdown


def _section(markdown: str, heading: str) -> str:
    return markdown.split(f"## {heading}\n")[1].split("\n## ")[0]


def test_convergence_and_recovery_sections_name_the_model_and_the_data_maximum(
    report, recorded
):
    from experiments.recovery import recovery_slope

    out, _ = report
    markdown = (out / "report.md").read_text()
    convergence = _section(markdown, "Convergence across seeds (initialisation impact)")
    header = next(
        line for line in convergence.splitlines() if line.startswith("| dataset")
    )
    assert "| n_components | covariance_type |" in header
    assert "n_optima counts the distinct optima" in convergence
    recovery = _section(markdown, "Parameter recovery against the truth")
    # One row per data set and estimator: the data's maximum, not per engine.
    assert "| synthetic n=200 | 2 | full | maximum likelihood | 1 |" in recovery
    assert "| synthetic n=800 | 2 | full | maximum likelihood | 1 |" in recovery
    slope = recovery_slope(pd.read_parquet(recorded / "runs.parquet")).iloc[0]
    assert (
        f"mean RMSE scales as n^{slope['slope']:.2f} "
        f"[{slope['slope_low']:.2f}, {slope['slope_high']:.2f}]"
    ) in recovery


def test_failed_runs_are_listed(report, recorded):
    _, index = report
    runs = pd.read_parquet(recorded / "runs.parquet")
    failed = runs[runs["status"] == "failed"]
    assert len(failed) == 8  # K = 500 on 100 points: 2 engines x 2 inits x 2 seeds
    text = index.read_text()
    for run_id in failed["run_id"]:
        assert run_id in text
    assert "n_samples &gt;= n_components" in text


def test_building_twice_gives_the_same_report(report, recorded, tmp_path):
    out, _ = report
    again = build_report(recorded, tmp_path)
    for path in out.iterdir():
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name
    assert again.name == "index.html"


def test_report_refuses_a_folder_that_is_not_results(tmp_path, capsys):
    with pytest.raises(ValueError, match="not a results folder"):
        build_report(tmp_path, tmp_path / "out")
    assert main(["report", str(tmp_path)]) == 2
    assert "not a results folder" in capsys.readouterr().err


def test_fit_command_equals_a_direct_engine_fit(tmp_path, capsys):
    data = load_dataset("s4", seed=3)
    csv = tmp_path / "points.csv"
    pd.DataFrame(data.X, columns=["u", "v"]).assign(tag="x").to_csv(csv, index=False)
    out = tmp_path / "fit"
    assert (
        main(
            [
                "fit",
                "--jobs",
                "1",
                str(csv),
                "--components",
                "2..3",
                "--models",
                "VVV,EEE",
                "--backends",
                "em",
                "--seeds",
                "2",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "model search on points.csv: 4 cells" in printed
    parameters = json.loads((out / "parameters.json").read_text())
    assert parameters["model"] in ("VVV", "EEE")
    # The chosen cell's fit from the hierarchical start, refitted directly.
    direct = fit_em(
        data.X,
        parameters["n_components"],
        covariance_type=parameters["model"],
        init_params="hc",
        tol=1e-8,
        max_iter=2000,
        reg_covar_relative=True,  # gmmlab fit's regularisation
    )
    assert parameters["log_likelihood"] >= direct.log_likelihood - 1e-6
    if parameters["start"] == "hc":
        # The search runs the hc start with SQUAREM (a different path to the
        # same maximum), so the means agree to EM's accuracy, not to the bit.
        assert parameters["log_likelihood"] == pytest.approx(
            direct.log_likelihood, abs=1e-5
        )
        assert_allclose(
            parameters["means"], direct.params.means, atol=1e-3 * data.X.std()
        )
    # Assignments against Bayes' rule with scipy's densities.
    weights = np.array(parameters["weights"])
    densities = np.column_stack(
        [
            w * stats.multivariate_normal(m, c).pdf(data.X)
            for w, m, c in zip(
                weights, parameters["means"], parameters["covariances"], strict=True
            )
        ]
    )
    expected = densities / densities.sum(axis=1, keepdims=True)
    assignments = pd.read_csv(out / "assignments.csv")
    assert list(assignments.columns[:3]) == ["u", "v", "tag"]
    k = parameters["n_components"]
    # Components numbered 1..K, as in mclust.
    probabilities = assignments[[f"p_component_{j}" for j in range(1, k + 1)]]
    assert_allclose(probabilities.to_numpy(), expected, rtol=1e-8, atol=1e-12)
    assert_array_equal(assignments["component"], expected.argmax(axis=1) + 1)
    assert_allclose(assignments["uncertainty"], 1 - expected.max(axis=1), atol=1e-10)
    search = pd.read_csv(out / "model_search.csv")
    assert len(search) == 4
    html_text = (out / "index.html").read_text()
    assert "Model search" in html_text
    assert (out / "model_search_bic.png").is_file()
    assert (out / "model_search_uncertainty.png").is_file()


def test_fit_command_errors(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "missing.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    csv = tmp_path / "a.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0]}).to_csv(csv, index=False)
    assert main(["fit", str(csv), "--components", "zero"]) == 2
    assert "--components must be a positive K or a range" in capsys.readouterr().err


@pytest.mark.parametrize("data_name", ["faithful", "s2"])
def test_report_and_fit_choose_the_same_model(tmp_path, capsys, data_name):
    from mixtures.data import DATA_FOLDER

    if data_name == "faithful":
        csv = DATA_FOLDER / "faithful.csv"
        components = "1..4"
    else:
        csv = tmp_path / "s2.csv"
        pd.DataFrame(load_dataset("s2", seed=5).X, columns=["u", "v"]).to_csv(
            csv, index=False
        )
        components = "3..5"
    out = tmp_path / "fit"
    assert (
        main(
            [
                "fit",
                "--jobs",
                "1",
                str(csv),
                "--components",
                components,
                "--seeds",
                "2",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    written = json.loads((out / "parameters.json").read_text())
    k, log_lik = written["n_components"], written["log_likelihood"]
    assert f"K = {k} " in printed
    assert f"log-likelihood {log_lik:.3f}" in printed
    text = (out / "report.md").read_text()
    match = re.search(
        r"Chosen: (\w+) with K = (\d+), BIC ([\d.]+), log-likelihood (-?[\d.]+)",
        text,
    )
    assert match, "the report names its chosen model"
    assert match[1] == written["model"]
    assert int(match[2]) == k
    assert float(match[4]) == pytest.approx(log_lik, abs=0.0006)
    if data_name == "faithful":  # mclust's answer (see tests/test_select.py)
        assert (written["model"], k) == ("EEE", 3)
