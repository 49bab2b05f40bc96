"""The report's rough edges, each pinned: what a new user met, and met no more.

A ``gmmlab fit`` report of a file in a deep folder (no folder in any title
or file name; no "nothing to select" after a model search; Markdown tables
one row a line; numbers rounded; conclusions first, setup last), and the
pieces that produced the other edges, each on data built to show it: the
summary's sentences when a range is one value or nothing failed, diagonal
models' parameters, the timing figure's colours, the recovery figure's
overlapping series and axis names, the selection figure's legend.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.lines import Line2D

from experiments.cli import main
from experiments.report.document import FINDINGS_HEADING, Document
from experiments.report.figures.runs import recovery_figure, timing_figure
from experiments.report.figures.selection import selection_figure
from experiments.report.figures.style import arm_colours
from experiments.report.formatting import cell_text, significant
from experiments.report.sections import summary
from experiments.report.views import data_label, dataset_name, parameter_tables
from mixtures import MixtureParams

from gmm_helpers import markdown_cells, markdown_table_lines, numbers_in

FOLDER = "a_folder_no_title_should_name"


@pytest.fixture(scope="module")
def fit_report(tmp_path_factory) -> Path:
    """``gmmlab fit`` on five columns of two clusters, from a deep folder."""
    folder = tmp_path_factory.mktemp("edges") / FOLDER
    folder.mkdir()
    rng = np.random.default_rng(3)
    points = np.vstack(
        [
            rng.normal(0.0, 1.0, (120, 5)),
            rng.normal(4.0, 0.5, (80, 5)) * [1, 2, 1, 1, 3],
        ]
    )
    csv = folder / "penguins.csv"
    pd.DataFrame(points, columns=[f"c{i}" for i in range(5)]).to_csv(csv, index=False)
    out = folder / "out"
    arguments = ["fit", "--jobs", "1", str(csv), "--components", "1..3"]
    arguments += ["--models", "VVI,VVV", "--seeds", "1", "--out", str(out)]
    assert main([*arguments, "--no-progress"]) == 0
    return out


def test_a_fit_report_names_the_file_never_its_folder(fit_report):
    figures = sorted(p.name for p in fit_report.glob("*.png"))
    assert "fit_penguins.png" in figures
    assert all(FOLDER not in name and "file_" not in name for name in figures)
    for page in ("index.html", "report.md"):
        text = (fit_report / page).read_text()
        assert FOLDER not in text, page
        assert "file:" not in text, page
    runs = pd.DataFrame({"dataset": ["file:/tmp/x/penguins.csv"], "backend": ["em"]})
    assert data_label({"dataset": "file:/tmp/x/penguins.csv"}, runs) == "penguins"
    assert dataset_name("s2") == "s2"


def test_a_fit_report_does_not_say_there_was_nothing_to_select(fit_report):
    markdown = (fit_report / "report.md").read_text()
    assert "## Model search" in markdown
    assert "nothing to select" not in markdown
    assert "## Model selection: BIC and ICL" not in markdown


def test_the_page_opens_with_its_findings_and_ends_with_its_setup(fit_report):
    markdown = (fit_report / "report.md").read_text()
    headings = re.findall(r"^## (.+)$", markdown, re.M)
    assert headings[:2] == [FINDINGS_HEADING, "Contents"]
    assert headings[-1] == "Setup"
    anchors = set(re.findall(r'^<a id="([^"]+)"></a>$', markdown, re.M))
    opening = markdown.split("\n## Contents\n")[0]
    findings = re.findall(r"^- .*\(#([^)]+)\)\)$", opening, re.M)
    assert findings, "the page opens with at least one finding"
    assert set(findings) <= anchors
    contents = markdown.split("\n## Contents\n")[1].split("\n<a id=")[0]
    assert set(re.findall(r"\(#([^)]+)\)", contents)) == anchors


def test_markdown_tables_keep_one_row_a_line(fit_report, tmp_path):
    markdown = (fit_report / "report.md").read_text()
    tables = markdown_table_lines(markdown)
    assert len(tables) > 3
    for table in tables:
        width = len(markdown_cells(table[0]))
        assert table[1] == "|" + "---|" * width
        assert all(len(markdown_cells(line)) == width for line in table), table[0]
    # A cell holding a long vector, a line break or a '|' stays in its row.
    document = Document(tmp_path)
    document.heading("t")
    long = "(" + ", ".join(["1.234"] * 40) + ")"
    document.table(pd.DataFrame({"a": [long, "two\nlines", "x | y"], "b": [1, 2, 3]}))
    document.write("t")
    rows = markdown_table_lines((tmp_path / "report.md").read_text())[0]
    assert len(rows) == 5
    assert [len(markdown_cells(row)) for row in rows] == [2] * 5


def test_numbers_are_rounded_to_what_they_support(fit_report):
    assert cell_text(0.00911809, "median seconds") == "0.00912"
    assert cell_text(13.94321, "seconds") == "13.9"
    assert cell_text(-3009.251734, "best ok log-lik") == "-3009.25"
    assert cell_text(6818.7071, "bic") == "6818.71"
    assert cell_text(0.5, "at best, kmeans") == "50%"
    assert cell_text(0.3, "share_at_best") == "30%"
    assert cell_text(0.33133, "weight") == "0.331"
    assert cell_text(13.7412, "mean 1") == "13.74"
    assert cell_text(11.5, "median iterations") == "11.5"
    assert cell_text(36.0, "n_iter_median") == "36"
    assert cell_text(float("nan"), "bic") == ""
    assert significant(48227.3) == "48227"
    assert significant(1.2341e-7) == "1.234e-07"
    # No number in the page's tables carries more digits than that.
    for table in markdown_table_lines((fit_report / "report.md").read_text()):
        for line in table[2:]:
            for cell in markdown_cells(line):
                number = re.fullmatch(r"-?(\d+)\.(\d+)%?", cell)
                if number:
                    digits = (number[1] + number[2]).lstrip("0")
                    assert len(digits) <= 4 or len(number[2]) <= 2, cell


def test_the_count_sentence_when_every_fit_is_ok():
    # All ok: the one number is the total; no "10 of 10", no "the other 0".
    everything = pd.DataFrame({"n_runs": [4, 6], "n_ok": [4, 6]})
    assert numbers_in(summary._count_sentence(everything)) == ["10"]
    # One short: 9 of 10, and the one other is not counted as "1 are".
    one_short = pd.DataFrame({"n_runs": [4, 6], "n_ok": [4, 5]})
    sentence = summary._count_sentence(one_short)
    assert numbers_in(sentence) == ["9", "10"]
    assert "1 are" not in sentence
    two_short = pd.DataFrame({"n_runs": [4, 6], "n_ok": [3, 5]})
    assert numbers_in(summary._count_sentence(two_short)) == ["8", "10", "2"]


def test_a_range_of_shares_that_is_one_value_is_not_a_range():
    runs = pd.DataFrame(
        {"dataset": ["file:/deep/folder/penguins.csv", "s2"], "backend": ["em"] * 2}
    )
    table = pd.DataFrame(
        {
            "dataset": ["file:/deep/folder/penguins.csv"],
            "backend": ["em"],
            "share_at_best_kmeans": [0.2],
        }
    )
    # One row: its one share, where it is (the file's name, the engine).
    (sentence,) = summary._share_sentences(runs, table)
    assert "between" not in sentence
    assert numbers_in(sentence) == ["20%"]
    assert "penguins" in sentence
    assert "/deep/folder" not in sentence
    # Two rows of one share: that share once, and how many rows have it.
    two = pd.concat([table, table.assign(dataset="s2")], ignore_index=True)
    (sentence,) = summary._share_sentences(runs, two)
    assert "between" not in sentence
    assert numbers_in(sentence) == ["20%", "2"]
    # Two shares: the range, its low end named by its data.
    apart = two.assign(share_at_best_kmeans=[0.2, 0.9])
    (sentence,) = summary._share_sentences(runs, apart)
    assert numbers_in(sentence)[:2] == ["20%", "90%"]
    assert "(penguins)" in sentence


def test_a_diagonal_model_prints_its_variances_not_a_matrix_of_zeros():
    variances = np.array([[1.0, 2.0], [0.5, 0.25]])
    params = MixtureParams([0.4, 0.6], [[0.0, 1.0], [2.0, 3.0]], variances, "diag")
    ((_, table),) = parameter_tables(params, ["u", "v"])
    assert list(table["variances (diagonal model)"]) == ["(1, 2)", "(0.5, 0.25)"]
    assert "covariance" not in table
    # Beyond three features: the weights, then a row per feature with each
    # component's mean and variance, and no covariance matrices (a full
    # model of the same size has one per component).
    wide = MixtureParams(
        [0.5, 0.5], np.zeros((2, 6)), np.ones((2, 6)) * [[1.0], [2.0]], "diag"
    )
    weights, per_feature = (table for _, table in parameter_tables(wide))
    assert list(weights["weight"]) == [0.5, 0.5]
    assert per_feature.shape == (6, 5)
    assert list(per_feature["variance 2"]) == [2.0] * 6
    full = np.eye(6) + 0.1
    full_wide = MixtureParams([0.5, 0.5], np.zeros((2, 6)), np.stack([full] * 2))
    assert len(parameter_tables(full_wide)) == 2 + 2
    one = MixtureParams([1.0], [[0.0, 0.0]], [[[1.0, 0.5], [0.5, 2.0]]])
    ((_, table),) = parameter_tables(one)
    assert list(table["covariance"]) == ["[[1, 0.5], [0.5, 2]]"]


def test_every_arm_of_the_timing_figure_has_its_own_colour():
    arms = [
        "blog",
        "em",
        "homework",
        "lecture-loops",
        "pymc",
        "pymc-advi",
        "s1-fixed",
        "s1-sd-as-variance",
        "s1-wrong-axis",
        "sklearn",
        "sklearn-defaults",
        "sklearn-vb",
        # Arms no colour is set aside for: their hashed colours may collide.
        *[f"arm-{i}" for i in range(8)],
    ]
    table = pd.DataFrame(
        {
            "dataset": [f"d{i % 3}" for i in range(len(arms))],
            "backend": arms,
            "median_seconds": np.linspace(0.01, 1.0, len(arms)),
        }
    )
    fig = timing_figure(table)
    legend = fig.axes[0].get_legend()
    assert sorted(t.get_text() for t in legend.get_texts()) == sorted(arms)
    drawn = {tuple(handle.get_facecolor()) for handle in legend.legend_handles}
    assert len(drawn) == len(arms)
    assert len(set(arm_colours(arms).values())) == len(arms)


def test_recovery_series_that_coincide_both_show_and_the_axes_say_what_they_are():
    n = np.repeat([100, 400, 1600], 2)
    rows = pd.DataFrame(
        {
            "p_n": n,
            "m_mean_rmse": 1 / np.sqrt(n),
            "m_cov_frobenius": 2 / np.sqrt(n),
        }
    )
    series = [
        ("pymc", "pymc", rows.assign(estimator="pymc")),
        ("sklearn-vb", "sklearn-vb", rows.assign(estimator="sklearn-vb")),
    ]
    fig = recovery_figure(rows, series)
    # Each axis names its own quantity, never a raw column name.
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert all(labels)
    assert len(set(labels)) == len(fig.axes)
    for ax in fig.axes:
        label = ax.get_ylabel()
        assert "_" not in label
        lines = {line.get_label(): line for line in ax.get_lines()}
        first, second = lines["pymc"], lines["sklearn-vb"]
        # Same values, drawn apart: shifted sideways, other marker and line.
        assert not np.allclose(first.get_xdata(), second.get_xdata())
        assert (first.get_marker(), first.get_linestyle()) != (
            second.get_marker(),
            second.get_linestyle(),
        )
        assert np.allclose(first.get_ydata(), second.get_ydata())


def test_selection_legend_names_only_what_is_on_the_axes():
    k = np.array([1, 2, 3, 4])
    rows = []
    for covariance_type, offset in (("full", 0.0), ("tied", 5.0), ("spherical", 900)):
        for kk in k:
            bic = 2000.0 + 40 * abs(kk - 2) + offset
            rows.append(
                {
                    "covariance_type": covariance_type,
                    "n_components": kk,
                    "bic": bic,
                    "icl": bic + 3,
                    "excluded_bic": np.nan,
                }
            )
    table = pd.DataFrame(rows)
    for criterion in ("bic", "icl"):
        best = table[criterion] == table[criterion].min()
        table[f"chosen_{criterion}"] = best & ~best.duplicated()
    fig = selection_figure(table, "d")
    for ax in fig.axes:
        low, high = ax.get_ylim()
        names = [t.get_text() for t in ax.get_legend().get_texts()]
        # No entry as if drawn; one entry naming it as off the axes.
        assert "spherical" not in names
        assert len([n for n in names if "spherical" in n]) == 1
        for line in ax.get_lines():
            if isinstance(line, Line2D) and not line.get_label().startswith("_"):
                y = np.asarray(line.get_ydata(), dtype=float)
                assert ((y >= low) & (y <= high)).any(), line.get_label()
