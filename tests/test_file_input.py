"""Reading a user's data file: separators, headers, columns, and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experiments.cli import main
from experiments.datasets import load_dataset, read_table
from mixtures.data import load_faithful


@pytest.fixture
def faithful_frame():
    return load_faithful(as_frame=True)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("faithful.data", {"sep": " ", "header": False}),
        ("faithful.csv", {"header": False}),
        ("faithful.csv", {}),
        ("faithful.txt", {"sep": ";"}),
        ("faithful.tsv", {"sep": "\t"}),
    ],
)
def test_every_layout_reads_the_same_numbers(tmp_path, faithful_frame, name, kwargs):
    path = tmp_path / name
    faithful_frame.to_csv(path, index=False, **kwargs)
    data = load_dataset(f"file:{path}")
    np.testing.assert_array_equal(data.X, faithful_frame.to_numpy())  # no row lost
    if kwargs.get("header") is False:
        assert data.notes["columns"] == ["x1", "x2"]
    else:
        assert data.notes["columns"] == ["eruptions", "waiting"]


def test_separator_and_header_can_be_forced(tmp_path, faithful_frame):
    path = tmp_path / "f.csv"
    faithful_frame.to_csv(path, index=False, sep=";")
    frame = read_table(path, sep="semicolon", header=True)
    assert list(frame.columns) == ["eruptions", "waiting"]
    frame = read_table(path, sep="semicolon", header=False)
    assert len(frame) == 273  # the header line read as data, as asked


def _write(path, content: str | bytes):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", "", "is empty"),
        ("head.csv", "a,b\n", "header but no rows"),
        ("bin.csv", bytes(range(256)) * 4, "not UTF-8 text|binary"),
        ("nul.csv", b"a,b\n1,\x002\n", "binary"),
        ("x.xlsx", "a,b\n1,2\n", "must be a text table"),
        (
            "cell.csv",
            "a,b\n1,2\n3,abc\n5,6\n",
            r"'b' has a non-numeric value 'abc' on line 3",
        ),
        ("gap.csv", "a,b\n1,2\n3,\n5,6\n", "missing values in columns b"),
        ("huge.csv", "a,b\n1e300,1\n-1e300,2\n3,3\n", "squares overflow"),
        ("text.csv", "a,b\nx,y\nz,w\n", "no numeric columns"),
    ],
)
def test_bad_files_get_a_message_that_says_what_is_wrong(
    tmp_path, name, content, message
):
    path = _write(tmp_path / name, content)
    with pytest.raises(ValueError, match=message):
        load_dataset(f"file:{path}")


def test_a_directory_is_not_called_missing(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        read_table(tmp_path)


def test_columns_and_label(tmp_path):
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    path = tmp_path / "iris.csv"
    frame.to_csv(path, index=False)
    data = load_dataset(f"file:{path}")
    assert "target" in data.notes["columns"]
    assert data.notes["label_like"] == ["target"]
    labelled = load_dataset(f"file:{path}", label_column="target")
    assert "target" not in labelled.notes["columns"]
    np.testing.assert_array_equal(labelled.labels, frame["target"].to_numpy())
    chosen = load_dataset(
        f"file:{path}", columns=["petal length (cm)", "petal width (cm)"]
    )
    assert chosen.X.shape == (150, 2)
    with pytest.raises(ValueError, match="not in"):
        load_dataset(f"file:{path}", columns=["nope"])


def test_text_columns_are_left_out_and_reported(tmp_path):
    path = tmp_path / "tagged.csv"
    pd.DataFrame(
        {"u": [1.0, 2.0, 3.5], "v": [2.0, 1.0, 0.5], "tag": list("xyz")}
    ).to_csv(path, index=False)
    data = load_dataset(f"file:{path}")
    assert data.notes["columns"] == ["u", "v"]
    assert data.notes["left_out"] == ["tag"]


def test_fit_refuses_a_bad_file_before_writing_anything(tmp_path, capsys):
    path = _write(tmp_path / "cell.csv", "a,b\n1,2\n3,abc\n5,6\n")
    out = tmp_path / "out"
    assert main(["fit", str(path), "--out", str(out), "--no-progress"]) == 2
    assert "non-numeric value 'abc'" in capsys.readouterr().err
    assert not out.exists()


def test_fit_warns_about_a_label_like_column_and_honours_label(tmp_path, capsys):
    from sklearn.datasets import load_iris

    path = tmp_path / "iris.csv"
    load_iris(as_frame=True).frame.to_csv(path, index=False)
    out = tmp_path / "out"
    args = ["fit", str(path), "--models", "VVV", "--components", "2..3",
            "--backends", "em", "--seeds", "1", "--jobs", "1",
            "--no-progress"]  # fmt: skip
    # As a feature, the label makes every fit a spike on its values: the
    # search refuses them all, and the warning says why.
    assert main([*args, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "looks like a class label" in captured.out
    assert "no cell of the search is ok" in captured.err
    assert main([*args, "--out", str(out / "labelled"), "--label", "target"]) == 0
    printed = capsys.readouterr().out
    assert "looks like a class label" not in printed
    assert "target=" not in printed  # not a feature: no mean printed for it
    # The label is compared with the clustering: ARI printed, per cell in the
    # table, and in the report with a confusion table of classes x components.
    import json

    from sklearn.metrics import adjusted_rand_score

    summary = json.loads((out / "labelled" / "parameters.json").read_text())
    assignments = pd.read_csv(out / "labelled" / "assignments.csv")
    ari = adjusted_rand_score(assignments["target"], assignments["component"])
    assert summary["ari"] == pytest.approx(ari)
    assert f"adjusted Rand index {ari:.3f}" in printed
    assert "ari" in pd.read_csv(out / "labelled" / "model_search.csv")
    html = (out / "labelled" / "index.html").read_text()
    assert "Agreement with the known classes" in html
    assert f"Adjusted Rand index {ari:.3f}" in html
    # Components are numbered 1..K, as in mclust and in assignments.csv.
    assert "component 1" in html
    assert "component 0" not in html
    assert set(assignments["component"]) <= {1, 2, 3}
    # Beside the clustering, how well the features classify the known
    # classes: mclust's EDDA, cross-validated (iris: VEV, 10 folds).
    from sklearn.datasets import load_iris

    from mixtures.classify import MixtureDiscriminant, cross_validate

    iris = load_iris()
    known = summary["classification"]
    reference = MixtureDiscriminant(model_type="EDDA").fit(iris.data, iris.target)
    assert known["model"] == reference.model_
    assert known["training_error"] == pytest.approx(reference.training_error_)
    result = cross_validate(reference, iris.data, iris.target, n_folds=10)
    assert known["cv_error"] == pytest.approx(result.error)
    assert "10-fold cross-validated error" in printed


def test_fit_prints_and_reports_flagged_cells(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(100, 2)), np.tile([[4.0, 4.0]], (8, 1))])
    path = tmp_path / "dupes.csv"
    pd.DataFrame(X, columns=["u", "v"]).to_csv(path, index=False)
    out = tmp_path / "out"
    args = ["fit", str(path), "--models", "VVV,VII", "--components", "1..3",
            "--backends", "em", "--seeds", "1", "--jobs", "1",
            "--no-progress"]  # fmt: skip
    args += ["--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "never chosen:" in printed
    assert "flagged VVV," in printed
    assert "Flagged cells" in (out / "index.html").read_text()


@pytest.mark.parametrize(("sep", "suffix"), [(";", ".csv"), ("\t", ".tsv")])
def test_decimal_commas_are_read_as_numbers(tmp_path, faithful_frame, sep, suffix):
    # As spreadsheets in much of Europe save a table: 3,6;79
    path = tmp_path / f"faithful{suffix}"
    faithful_frame.to_csv(path, index=False, sep=sep, decimal=",")
    assert "3,6" in path.read_text()
    data = load_dataset(f"file:{path}")
    assert data.notes["columns"] == ["eruptions", "waiting"]  # none dropped
    assert data.notes["decimal"] == ","
    np.testing.assert_allclose(data.X, faithful_frame.to_numpy(), rtol=1e-12)


def test_a_comma_in_text_is_not_taken_for_a_decimal(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("name;x\nSmith, J;1,5\nDoe, A;2\nRoe;2,25\n")
    frame = read_table(path)
    assert frame["x"].tolist() == [1.5, 2.0, 2.25]
    assert frame["name"].tolist() == ["Smith, J", "Doe, A", "Roe"]
    plain = tmp_path / "plain.csv"
    plain.write_text("a;b\nx,1;2\ny;3\n")  # one text column: no decimal commas
    assert read_table(plain)["a"].tolist() == ["x,1", "y"]
    assert "decimal" not in read_table(plain).attrs


def test_fit_says_it_read_decimal_commas(tmp_path, faithful_frame, capsys):
    path = tmp_path / "faithful.csv"
    faithful_frame.to_csv(path, index=False, sep=";", decimal=",")
    out = tmp_path / "out"
    args = ["fit", str(path), "--models", "EEE", "--components", "2",
            "--backends", "em", "--seeds", "1", "--jobs", "1", "--no-progress",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "decimal comma" in printed
    assert "hold no numbers" not in printed
    assert "file:" not in printed  # the file by its name, not file:/abs/path


def test_a_header_is_found_when_every_column_has_decimal_commas(tmp_path):
    path = tmp_path / "all_commas.csv"
    path.write_text("x;y\n0,126;-0,132\n1,5;2,25\n-3,0;4,75\n")
    data = load_dataset(f"file:{path}")
    assert data.notes["columns"] == ["x", "y"]
    np.testing.assert_allclose(data.X, [[0.126, -0.132], [1.5, 2.25], [-3.0, 4.75]])


def test_fit_cross_checks_the_chosen_columns_together(tmp_path, faithful_frame):
    import pandas as pd

    frame = faithful_frame.assign(noise=np.arange(len(faithful_frame)) % 7)
    path = tmp_path / "three.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "out"
    args = ["fit", str(path), "--columns", "eruptions,waiting", "--models", "EEE",
            "--components", "2", "--backends", "em", "--seeds", "1", "--jobs", "1",
            "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    runs = pd.read_parquet(out / "results" / "runs.parquet")
    # One data set of both columns (2 starts x 1 seed), not one per column.
    assert runs["data_hash"].nunique() == 1
    assert len(runs) == 2
    from experiments.report.context import read_results, run_points

    # The record keeps both columns' rows (the report's figures draw them).
    X, names = run_points(runs.iloc[0], read_results(out / "results"))
    assert names == ["eruptions", "waiting"]
    np.testing.assert_array_equal(X, faithful_frame.to_numpy())
