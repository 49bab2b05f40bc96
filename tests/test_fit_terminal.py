"""What ``gmmlab fit`` shows a person, and how it stops when interrupted."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pandas as pd
import pytest

from experiments import userfit
from experiments.cli import _build_parser, main


def _five_features(tmp_path):
    """Two well-separated groups of 5 features, as a CSV file."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(80, 5)), rng.normal(size=(80, 5)) + 6.0])
    path = tmp_path / "five.csv"
    pd.DataFrame(X, columns=[f"f{j}" for j in range(1, 6)]).to_csv(path, index=False)
    return path


def _args(path, out):
    return ["fit", str(path), "--models", "VVV", "--components", "2",
            "--backends", "em", "--seeds", "1", "--jobs", "1", "--no-progress",
            "--out", str(out)]  # fmt: skip


def _no_partial_files(out):
    """Neither atomic_write's hidden temporaries nor anything else half-done."""
    return [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_summary_has_a_parameter_table_and_no_covariances_for_5_features(
    tmp_path, capsys
):
    out = tmp_path / "out"
    assert main(_args(_five_features(tmp_path), out)) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "parameters.json").read_text())
    # Components as rows numbered 1..K, weight and the features as columns.
    section = printed.split("weights and means of the chosen fit:\n")[1]
    header, *lines = section.split("\ncovariance matrices")[0].splitlines()
    assert header.split() == ["component", "weight", "f1", "f2", "f3", "f4", "f5"]
    rows = [line.split() for line in lines]
    assert [int(row[0]) for row in rows] == [1, 2]
    np.testing.assert_allclose([float(r[1]) for r in rows], summary["weights"], 1e-3)
    np.testing.assert_allclose(
        [[float(v) for v in r[2:]] for r in rows], summary["means"], 1e-3, 1e-3
    )
    # Rounded to 4 significant digits.
    for value in (v for row in rows for v in row[1:]):
        mantissa = value.lstrip("-").split("e")[0].replace(".", "").lstrip("0")
        assert len(mantissa) <= 4, value
    # Covariances: in parameters.json, not on the terminal.
    assert np.array(summary["covariances"]).shape == (2, 5, 5)
    assert "[[" not in printed
    assert "covariance matrices: in parameters.json" in printed
    assert f"parameters: {out / 'parameters.json'}" in printed
    # --verbose prints them; so does a file of at most 3 features.
    table = pd.read_csv(out / "model_search.csv")
    verbose = userfit._describe(summary, table, verbose=True)
    assert verbose.count("[[") == 2
    assert re.findall(r"^component (\d+): weight", verbose, flags=re.M) == ["1", "2"]
    three = {
        **summary,
        "columns": summary["columns"][:3],
        "means": [m[:3] for m in summary["means"]],
        "covariances": [[row[:3] for row in c[:3]] for c in summary["covariances"]],
    }
    assert userfit._describe(three, table).count("[[") == 2


def test_jobs_default_to_every_core(monkeypatch, capsys):
    monkeypatch.setattr(os, "cpu_count", lambda: 7)
    parser = _build_parser()
    args = parser.parse_args(["fit", "data.csv"])
    assert args.jobs == 7
    assert not args.verbose
    with pytest.raises(SystemExit):
        parser.parse_args(["fit", "--help"])
    assert "default: all cores, here 7" in " ".join(capsys.readouterr().out.split())


def test_ctrl_c_in_the_search_stops_with_one_line_and_writes_nothing(
    tmp_path, monkeypatch, capsys
):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(userfit, "search", interrupted)
    out = tmp_path / "out"
    assert main(_args(_five_features(tmp_path), out)) == 130
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith("gmmlab fit: interrupted")
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists()


def test_ctrl_c_in_the_cross_check_keeps_whole_runs_and_resumes(
    tmp_path, monkeypatch, capsys
):
    from experiments import runner

    written = runner.write_run

    def write_then_interrupt(out, result):
        written(out, result)
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "write_run", write_then_interrupt)
    path, out = _five_features(tmp_path), tmp_path / "out"
    assert main(_args(path, out)) == 130
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1
    assert "Traceback" not in captured.err
    assert _no_partial_files(out) == []
    assert not (out / "parameters.json").exists()  # no summary of a partial run
    monkeypatch.setattr(runner, "write_run", written)
    assert main(_args(path, out)) == 0
    assert "1 already done" in capsys.readouterr().out
    assert _no_partial_files(out) == []


def test_ctrl_c_mid_search_keeps_the_cells_done_and_the_rerun_fits_only_the_rest(
    tmp_path, monkeypatch, capsys
):
    from mixtures import select

    fit_cell, calls = select._fit_cell, []

    def counted(*args, **kwargs):
        calls.append((*args[1:3], "second" if "always" in kwargs else "first"))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return fit_cell(*args, **kwargs)

    monkeypatch.setattr(select, "_fit_cell", counted)
    path, out = _five_features(tmp_path), tmp_path / "out"
    args = _args(path, out)
    args[args.index("2")] = "1..3"  # three cells, two of them with a second pass
    assert main(args) == 130
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1
    assert "resumes" in captured.err
    assert "Traceback" not in captured.err
    kept = sorted(p.name for p in (out / userfit.CHECKPOINT).glob("*.cell"))
    assert len(kept) == 2  # the two cells finished before the interruption
    assert not (out / "parameters.json").exists()
    calls.clear()
    assert main(args) == 0
    assert "resumed: 2 finished cell fits" in capsys.readouterr().out
    # Only the first-pass cell not finished is fitted again; then the
    # second pass, which had not begun.
    assert [c for c in calls if c[2] == "first"] == [("VVV", 1, "first")]
    assert all(k > 1 for _, k, _ in calls[1:])
    assert (out / "parameters.json").exists()
    assert _no_partial_files(out) == []


def test_a_search_without_a_model_leaves_no_folder(tmp_path, monkeypatch):
    from mixtures.select import SearchResult

    def no_model(self, criterion="bic"):
        raise ValueError("no cell ended ok")

    monkeypatch.setattr(SearchResult, "best", no_model)
    out = tmp_path / "out"
    assert main(_args(_five_features(tmp_path), out)) == 2
    assert not out.exists()
