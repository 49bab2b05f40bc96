"""Reports from recorded tables, and `gmmlab fit` for a user's file."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from PIL import Image
from scipy import stats

from experiments.cli import main
from experiments.datasets import load_dataset
from experiments.report import build_report
from mixtures import fit_em

from gmm_helpers import (
    markdown_tables,
    numbers_in,
    record_sweep,
    report_sweep,
    states,
)

SWEEP = report_sweep(root_seed=5, scenarios=("s1", "s4"))


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
    return record_sweep(tmp_path_factory.mktemp("sweep"), SWEEP)


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
    from experiments.analysis import convergence_summary
    from experiments.config import SAME_OPTIMUM_NATS
    from experiments.recovery import recovery_slope
    from experiments.report.formatting import cell_text

    out, _ = report
    markdown = (out / "report.md").read_text()
    convergence = _section(markdown, "Convergence across seeds (initialisation impact)")
    (table,) = [t for t in markdown_tables(convergence) if "dataset" in t]
    assert {"n_components", "covariance_type", "n_optima"} <= set(table.columns)
    # n_optima, as the convergence table computes it, with the same-optimum
    # tolerance that separates optima stated beside it.
    runs = pd.read_parquet(recorded / "runs.parquet")
    expected = convergence_summary(runs)["n_optima"]
    assert sorted(table["n_optima"]) == sorted(
        cell_text(v, "n_optima") for v in expected
    )
    assert f"{SAME_OPTIMUM_NATS:g}" in numbers_in(convergence)
    recovery = _section(markdown, "Parameter recovery against the truth")
    # One row per data set and estimator: the data's maximum, not per engine.
    assert "| synthetic n=200 | 2 | full | maximum likelihood | 1 |" in recovery
    assert "| synthetic n=800 | 2 | full | maximum likelihood | 1 |" in recovery
    slope = recovery_slope(runs).iloc[0]
    assert states(
        recovery,
        f"{slope['slope']:.2f}",
        f"{slope['slope_low']:.2f}",
        f"{slope['slope_high']:.2f}",
    )


def test_failed_runs_are_listed(report, recorded):
    _, index = report
    runs = pd.read_parquet(recorded / "runs.parquet")
    failed = runs[runs["status"] == "failed"]
    assert len(failed) == 8  # K = 500 on 100 points: 2 engines x 2 inits x 2 seeds
    text = index.read_text()
    for run_id in failed["run_id"]:
        assert run_id in text
    # In the Markdown's table of fits not eligible: each failed run, its
    # status and the reason it recorded.
    markdown = (index.parent / "report.md").read_text()
    (listed,) = markdown_tables(_section(markdown, "Fits not eligible"))
    listed = listed.set_index("run_id")
    for run in failed.itertuples():
        assert listed.loc[run.run_id, "status"] == "failed"
        assert listed.loc[run.run_id, "status_reason"] == run.status_reason


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
    search = pd.read_csv(out / "model_search.csv")
    assert len(search) == 4
    # The first line that names the file counts the cells searched.
    first = next(line for line in printed.splitlines() if "points.csv" in line)
    assert numbers_in(first)[0] == str(len(search))
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
    checker = _Checker()
    checker.feed((out / "index.html").read_text())
    assert any(heading.startswith("Model search") for heading in checker.headings)
    assert (out / "model_search_bic.png").is_file()
    assert (out / "model_search_uncertainty.png").is_file()


def test_fit_command_errors(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "missing.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    csv = tmp_path / "a.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0]}).to_csv(csv, index=False)
    assert main(["fit", str(csv), "--components", "zero"]) == 2
    assert "--components must be a positive K or a range" in capsys.readouterr().err


@pytest.mark.parametrize(
    "data_name", ["faithful", pytest.param("s2", marks=pytest.mark.slow)]
)
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
    assert states(printed, str(k), f"{log_lik:.3f}")
    # The report states the same model: in the paragraph that gives its K,
    # BIC and log-likelihood, one after another.
    text = (out / "report.md").read_text()
    chosen = [
        paragraph
        for paragraph in text.split("\n\n")
        if states(paragraph, str(k), f"{written['bic']:.2f}", f"{log_lik:.3f}")
    ]
    assert chosen, "the report names its chosen model"
    assert written["model"] in chosen[0]
    if data_name == "faithful":  # mclust's answer (see tests/test_select.py)
        assert (written["model"], k) == ("EEE", 3)
