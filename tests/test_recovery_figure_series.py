"""The recovery-against-n figure draws only series fitted at two or more n."""

from __future__ import annotations

import pandas as pd

import experiments.report.sections.recovery as recovery


def _fits() -> pd.DataFrame:
    rows = [
        # A series over n (its smallest n is 250) ...
        *(
            {"dataset": "synthetic", "p_n": n, "m_mean_rmse": 1 / n}
            for n in (250, 1000, 4000)
        ),
        # ... and one fitted at a single, smaller n: not a line against n.
        {"dataset": "holes", "p_n": 100, "m_mean_rmse": 0.5},
    ]
    frame = pd.DataFrame(rows)
    frame["n_components"] = 3
    frame["covariance_type"] = "full"
    frame["estimator"] = "maximum likelihood"
    frame["m_cov_frobenius"] = frame["m_mean_rmse"]
    return frame


class _Doc:
    def __init__(self):
        self.figures = []

    def figure(self, figure, name, caption):
        self.figures.append(name)


def test_one_point_series_are_left_out_of_the_figure_and_its_anchor(monkeypatch):
    drawn = {}

    def figure(fits, series):
        drawn["fits"], drawn["series"] = fits, series
        return object()

    monkeypatch.setattr(recovery, "recovery_fits", lambda runs: _fits())
    monkeypatch.setattr(recovery, "data_columns", lambda runs: ["p_n"])
    monkeypatch.setattr(recovery, "recovery_figure", figure)
    doc = _Doc()
    recovery._figure(doc, runs=None)
    assert doc.figures == ["recovery_vs_n"]
    assert [label for _, label, _ in drawn["series"]] == ["maximum likelihood"]
    # The 1/sqrt(n) line is anchored at the series' own smallest n.
    assert set(drawn["fits"]["dataset"]) == {"synthetic"}
    assert drawn["fits"]["p_n"].min() == 250


def test_no_series_over_n_draws_no_figure(monkeypatch):
    fits = _fits()
    fits["dataset"] = [f"d{i}" for i in range(len(fits))]  # every series one n
    monkeypatch.setattr(recovery, "recovery_fits", lambda runs: fits)
    monkeypatch.setattr(recovery, "data_columns", lambda runs: ["p_n"])
    doc = _Doc()
    recovery._figure(doc, runs=None)
    assert doc.figures == []
