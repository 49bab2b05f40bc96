"""The statistics the report states, each checked on a hand-made table.

Every expected value is worked out by hand from the table in the test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from experiments.report_stats import (
    COLLAPSED_COMPONENT,
    IDENTICAL_COMPONENTS,
    WEIGHTS_NOT_A_DISTRIBUTION,
    cell_share_at_best,
    chosen_on_first_replicate,
    degenerate_actions,
    map_component_points,
    matched_to,
    median_share_at_best,
    mle_in_hdi,
    params_from_components,
    reason_count,
    reason_mentions,
    same_cell,
    same_params,
)

from gmm_helpers import component_rows


def test_params_from_components_fills_both_triangles_and_renormalises():
    rows = pd.DataFrame(
        [
            ("weight", 0, 0, 0, 1.0),
            ("weight", 1, 0, 0, 3.0),
            ("mean", 0, 0, 0, 1.0),
            ("mean", 0, 1, 0, 2.0),
            ("mean", 1, 0, 0, -1.0),
            ("mean", 1, 1, 0, -2.0),
            ("covariance", 0, 0, 0, 2.0),
            ("covariance", 0, 1, 0, 0.5),
            ("covariance", 0, 1, 1, 1.0),
            ("covariance", 1, 0, 0, 1.0),
            ("covariance", 1, 1, 1, 4.0),
        ],
        columns=["parameter", "component", "i", "j", "estimate"],
    )
    params = params_from_components(rows)
    assert_allclose(params.weights, [0.25, 0.75])
    assert_allclose(params.means, [[1.0, 2.0], [-1.0, -2.0]])
    assert_allclose(params.covariances[0], [[2.0, 0.5], [0.5, 1.0]])
    assert_allclose(params.covariances[1], [[1.0, 0.0], [0.0, 4.0]])


def test_matched_to_renumbers_a_swapped_fit_and_keeps_a_truth_aligned_one():
    reference = component_rows("a", [0.3, 0.7], [0.0, 5.0], [1.0, 1.0])
    swapped = component_rows("b", [0.7, 0.3], [5.0, 0.0], [1.0, 1.0])
    matched = matched_to(swapped, reference)
    means = matched[matched["parameter"] == "mean"].set_index("component")
    assert means.loc[0, "estimate"] == 0.0
    assert means.loc[1, "estimate"] == 5.0
    aligned = swapped.assign(truth=1.0)  # aligned to a truth already
    assert_array_equal(matched_to(aligned, reference)["component"], [0] * 3 + [1] * 3)
    assert matched_to(swapped, reference.iloc[:0]) is swapped


def test_same_cell_and_same_params_match_missing_values():
    runs = pd.DataFrame(
        {
            "dataset": ["d", "d", "d", "e"],
            "p_n": [100.0, np.nan, 100.0, 100.0],
            "seed": [0, 1, 2, 3],
        }
    )
    assert same_cell(runs, runs.iloc[0], ["dataset", "p_n"]).tolist() == [
        True,
        False,
        True,
        False,
    ]
    assert same_cell(runs, runs.iloc[1], ["dataset", "p_n"]).tolist() == [
        False,
        True,
        False,
        False,
    ]
    # Only p_* keys count; a key the frame lacks is ignored.
    mask = same_params(runs, {"dataset": "e", "p_n": np.nan, "p_dim": 2})
    assert mask.tolist() == [False, True, False, False]


def test_reason_mentions_and_counts():
    runs = pd.DataFrame(
        {
            "status_reason": [
                "components 0 and 2 are the same Gaussian",
                None,
                "component 1 has relative variance 1e-08 < 1e-06 of the data's",
                "components 0 and 1 are the same Gaussian; component 2 has "
                "relative variance 3e-09 < 1e-06",
                "ValueError: the function returned weights that are not a "
                "distribution (sum 0.06, min 0.02).",
            ]
        }
    )
    assert reason_mentions(runs, IDENTICAL_COMPONENTS).tolist() == [
        True,
        False,
        False,
        True,
        False,
    ]
    assert reason_count(runs, IDENTICAL_COMPONENTS) == 2
    assert reason_count(runs, COLLAPSED_COMPONENT) == 2
    assert reason_count(runs, WEIGHTS_NOT_A_DISTRIBUTION) == 1
    assert reason_count(runs.iloc[[1]], IDENTICAL_COMPONENTS) == 0


@pytest.fixture
def convergence():
    rows = [
        # dataset, backend, init, replicate, K, covariance, p_scaled, share
        ("s", "em", "kmeans", 0, 2, "full", True, 0.2),
        ("s", "em", "kmeans", 1, 2, "full", True, 0.6),
        ("s", "em", "kmeans", 2, 2, "full", True, 0.7),
        ("s", "em", "kmeans", 0, 3, "full", True, 1.0),
        ("s", "em", "kmeans", 0, 2, "full", False, 0.0),
        ("s", "em", "random_from_data", 0, 2, "full", True, 0.5),
        ("s", "pymc", "kmeans", 0, 2, "full", True, np.nan),
    ]
    return pd.DataFrame(
        rows,
        columns=[
            "dataset",
            "backend",
            "init",
            "data_replicate",
            "n_components",
            "covariance_type",
            "p_scaled",
            "share_at_best",
        ],
    )


def test_median_share_at_best_over_replicates(convergence):
    cell = pd.Series({"n_components": 2, "covariance_type": "full"})
    # Rows (K = 2, scaled): 0.2, 0.6, 0.7, median 0.6.
    assert median_share_at_best(
        convergence, "s", "em", "kmeans", cell=cell, scaled=True
    ) == pytest.approx(0.6)
    # Without the model, the K = 3 row joins: 0.2, 0.6, 0.7, 1.0 -> 0.65.
    assert median_share_at_best(
        convergence, "s", "em", "kmeans", scaled=True
    ) == pytest.approx(0.65)
    # Every em k-means row: 0.0, 0.2, 0.6, 0.7, 1.0 -> 0.6.
    assert median_share_at_best(convergence, "s", "em", "kmeans") == pytest.approx(0.6)
    assert np.isnan(median_share_at_best(convergence, "s", "sklearn", "kmeans"))


def test_cell_share_at_best_reads_one_row(convergence):
    values = {
        "dataset": "s",
        "backend": "em",
        "init": "kmeans",
        "data_replicate": 1,
        "n_components": 2,
        "covariance_type": "full",
        "p_scaled": True,
    }
    assert cell_share_at_best(convergence, values) == pytest.approx(0.6)
    unscaled = {**values, "p_scaled": False, "data_replicate": 0}
    assert cell_share_at_best(convergence, unscaled) == 0.0
    assert np.isnan(cell_share_at_best(convergence, {**values, "backend": "pymc"}))
    assert np.isnan(cell_share_at_best(convergence, {**values, "data_replicate": 9}))


def _run(run_id, bic, replicate=0, status="ok", **extra):
    row = {
        "run_id": run_id,
        "dataset": "d",
        "backend": "em",
        "data_replicate": replicate,
        "seed": 0,
        "init": "kmeans",
        "n_components": 2,
        "covariance_type": "full",
        "status": status,
        "comparable": True,
        "posterior": False,
        "n_parameters": 5,
        "bic": bic,
        "log_likelihood": -bic / 2,
        "p_n": 100.0,
    }
    row.update(extra)
    return row


def test_chosen_on_first_replicate_takes_the_lowest_eligible_bic():
    runs = pd.DataFrame(
        [
            _run("a", 120.0),
            _run("b", 100.0),
            _run("c", 90.0, status="degenerate"),  # never chosen
            _run("d", 80.0, replicate=1),  # another data replicate
            _run("e", 50.0, p_n=200.0),  # another member of the series
            _run("f", 70.0, dataset="other"),
        ]
    )
    assert chosen_on_first_replicate(runs, "d", n=100.0)["run_id"] == "b"
    assert chosen_on_first_replicate(runs, "d", n=200.0)["run_id"] == "e"
    assert chosen_on_first_replicate(runs, "missing") is None
    only_degenerate = runs[runs["run_id"] == "c"]
    assert chosen_on_first_replicate(only_degenerate, "d") is None


def test_mle_in_hdi_counts_em_estimates_inside_the_intervals():
    runs = pd.DataFrame(
        [
            # EM's best eligible k-means fit (highest log-likelihood): "em1".
            _run("em1", 100.0, n_samples=250),
            _run("em2", 110.0, n_samples=250),
            # A higher maximum from another start: not the k-means fit.
            _run("em3", 90.0, n_samples=250, init="random_from_data"),
            _run(
                "nuts",
                104.0,
                backend="pymc",
                posterior=True,
                n_samples=250,
                d_n_conditioned=200.0,
                d_prior_points=8.0,
                d_prior_share_max=0.05,
            ),
        ]
    )
    em1 = component_rows("em1", [0.4, 0.6], [-1.0, 2.0], [0.5, 1.0])
    em2 = component_rows("em2", [0.5, 0.5], [-1.0, 2.3], [0.6, 1.0])
    em3 = component_rows("em3", [0.5, 0.5], [9.0, 9.0], [9.0, 9.0])
    nuts = component_rows(
        "nuts",
        [0.45, 0.55],
        [-1.05, 2.3],
        [0.6, 1.0],
        map=[0.25, -1.0, 0.6, 0.75, 2.3, 1.0],
        # weight, mean, covariance of component 0, then of component 1; the
        # covariance of component 1 has an interval of zero width.
        hdi_low=[0.3, -1.2, 0.5, 0.55, 2.1, 1.0],
        hdi_high=[0.5, -0.9, 0.7, 0.65, 2.5, 1.0],
    )
    for fit in (em1, em2, em3):
        fit["map"] = fit["hdi_low"] = fit["hdi_high"] = np.nan
    components = pd.concat([em1, em2, em3, nuts], ignore_index=True)
    table = mle_in_hdi(runs, components)
    assert len(table) == 1
    row = table.iloc[0]
    # em1 against the five intervals of nonzero width: 0.4 in [0.3, 0.5],
    # -1 in [-1.2, -0.9], 0.5 in [0.5, 0.7] (bound included), 0.6 in
    # [0.55, 0.65]; 2.0 is not in [2.1, 2.5].
    assert row["parameters"] == 5
    assert row["em_inside_hdi"] == 4
    assert row["outside"] == "mean[1,0,0]"
    # n_k of the MAP: its weights 0.25, 0.75 times the 200 conditioned rows.
    assert row["component_points"] == [50.0, 150.0]
    assert (row["prior_points"], row["prior_share_max"]) == (8.0, 0.05)
    assert (row["run_id"], row["dataset"], row["p_n"]) == ("nuts", "d", 100.0)
    assert (row["n_conditioned"], row["n_samples"]) == (200.0, 250)
    # Without em1, em2 is EM's fit: its weight 0.5 of component 1 is outside
    # [0.55, 0.65], its other four estimates inside.
    second = mle_in_hdi(runs[runs["run_id"] != "em1"], components).iloc[0]
    assert (second["em_inside_hdi"], second["outside"]) == (4, "weight[1,0,0]")
    # Without an eligible EM k-means fit of the same cell, no row.
    no_em = runs[~runs["run_id"].isin(["em1", "em2"])]
    assert mle_in_hdi(no_em, components).empty


def test_degenerate_actions_sum_the_recorded_events():
    runs = pd.DataFrame({"d_degenerate_events": [2.0, np.nan, 0.0, 3.0]})
    assert degenerate_actions(runs) == 5
    assert degenerate_actions(runs.iloc[[1]]) == 0
    # A table without the column (no gmmlab EM fit recorded it): none.
    assert degenerate_actions(pd.DataFrame({"status": ["ok"]})) == 0


def test_map_component_points_weights_times_the_conditioned_rows():
    rows = component_rows(
        "nuts",
        [0.5, 0.5],
        [0.0, 1.0],
        [1.0, 1.0],
        map=[0.2, 0.0, 1.0, 0.8, 1.0, 1.0],
    )
    # Component 1's rows first: the points still come in component order.
    rows = rows.iloc[::-1]
    conditioned = pd.Series({"n_samples": 300, "d_n_conditioned": 250.0})
    assert map_component_points(rows, conditioned) == [50.0, 200.0]
    # Conditioned on every row when d_n_conditioned is missing.
    everything = pd.Series({"n_samples": 300, "d_n_conditioned": np.nan})
    assert map_component_points(rows, everything) == [60.0, 240.0]
    assert map_component_points(rows, pd.Series({"n_samples": 10})) == [2.0, 8.0]
