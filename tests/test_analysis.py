"""Pure functions over tables: each checked on a hand-made frame (issue 11)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from experiments.analysis import choose_model, selection_table, summary_table
from experiments.config import parse_config
from experiments.datasets import load_dataset
from experiments.evaluate import classification_entropy, uncertainty
from experiments.runner import run_sweep
from mixtures import MixtureParams


def _run(run_id, k, covariance_type, bic, status="ok", **extra):
    row = {
        "run_id": run_id,
        "dataset": "d",
        "backend": "em",
        "data_replicate": 0,
        "seed": 0,
        "init": "kmeans",
        "n_components": k,
        "covariance_type": covariance_type,
        "status": status,
        "comparable": True,
        "stopped_by": "tolerance",
        "bic": bic,
        "icl": bic + 10.0 * k,
        "log_likelihood": -bic / 2,
    }
    row.update(extra)
    return row


@pytest.fixture
def search():
    return pd.DataFrame(
        [
            _run("a", 1, "full", 120.0),
            _run("b", 2, "full", 100.0),
            _run("c", 2, "full", 101.0),  # a worse seed of the same cell
            _run("d", 3, "full", 80.0, status="degenerate"),  # a spike: excluded
            _run("e", 3, "full", 105.0),
            _run("f", 2, "tied", 99.0),
            _run("g", 2, "tied", 95.0, status="unconverged"),
            _run("h", 2, "tied", 90.0, stopped_by="not_iterative"),  # posterior
            _run("i", 2, "tied", 50.0, comparable=False),  # engine defaults arm
        ]
    )


def test_selection_table_uses_only_eligible_maximum_likelihood_fits(search):
    table = selection_table(search).set_index(["covariance_type", "n_components"])
    assert table.loc[("full", 2), "bic"] == 100.0
    assert table.loc[("full", 3), "bic"] == 105.0
    assert table.loc[("full", 3), "excluded_bic"] == 80.0
    assert table.loc[("full", 3), "n_degenerate"] == 1
    assert table.loc[("tied", 2), "bic"] == 99.0
    assert table.loc[("tied", 2), "excluded_bic"] == 95.0
    # The posterior mean and the engine-defaults arm are not candidates.
    assert table.loc[("tied", 2), "n_runs"] == 2
    chosen = table[table["chosen_bic"]].index.tolist()
    assert chosen == [("tied", 2)]
    # ICL here is BIC + 10 K: (tied, 2) has 99 + 20 = 119, below K = 1's 130.
    assert table[table["chosen_icl"]].index.tolist() == [("tied", 2)]


def test_choose_model_is_the_lowest_bic_eligible_fit(search):
    assert choose_model(search)["run_id"] == "f"
    tie = pd.concat([search, pd.DataFrame([_run("0", 2, "tied", 99.0)])])
    assert choose_model(tie)["run_id"] == "0"  # ties by run id
    other = pd.DataFrame([_run("z", 2, "full", 1.0, data_replicate=1)])
    with pytest.raises(ValueError, match="one data set only"):
        choose_model(pd.concat([search, other]))
    with pytest.raises(ValueError, match="no eligible maximum-likelihood fit"):
        choose_model(search[search["status"] != "ok"])


def test_icl_penalty_and_uncertainty_against_a_closed_form():
    # Two 1-D components: responsibilities by Bayes' rule with scipy.stats.
    params = MixtureParams(
        np.array([0.3, 0.7]), np.array([[0.0], [2.0]]), np.array([[[1.0]], [[0.5]]])
    )
    X = np.array([[-1.0], [0.5], [1.0], [1.5], [3.0]])
    joint = np.column_stack(
        [
            0.3 * stats.norm(0.0, 1.0).pdf(X[:, 0]),
            0.7 * stats.norm(2.0, np.sqrt(0.5)).pdf(X[:, 0]),
        ]
    )
    tau = joint / joint.sum(axis=1, keepdims=True)
    assert classification_entropy(X, params) == pytest.approx(
        -np.sum(np.log(tau.max(axis=1)))
    )
    np.testing.assert_allclose(uncertainty(X, params), 1 - tau.max(axis=1))


def test_old_faithful_bic_search_matches_mclust(tmp_path):
    """mclust on Old Faithful: EEE (tied), K = 3, log-lik -1126.32, BIC 2314.3."""
    assert load_dataset("faithful").X.shape == (272, 2)
    config = parse_config(
        {
            "sweep": {"seeds": 3},
            "datasets": [
                {
                    "name": "faithful",
                    "n_components": "2..4",
                    "covariance_type": ["full", "tied"],
                }
            ],
            "backends": {"em": {}},
            "grid": {"init_params": ["kmeans", "random_from_data"]},
        }
    )
    runs = run_sweep(config, tmp_path / "out", progress=False, echo=lambda *_: None)[
        "runs"
    ]
    chosen = choose_model(runs)
    assert (chosen["covariance_type"], chosen["n_components"]) == ("tied", 3)
    assert chosen["log_likelihood"] == pytest.approx(-1126.32, abs=0.02)
    assert chosen["bic"] == pytest.approx(2314.3, abs=0.05)
    table = selection_table(runs)
    assert table[table["chosen_bic"]]["bic"].iloc[0] == chosen["bic"]


def test_summary_table_counts_statuses_and_shares_per_arm():
    rows = [
        _run("a", 2, "full", 100.0, seed=0, init="kmeans", n_iter=10, seconds=1.0),
        _run("b", 2, "full", 100.002, seed=1, init="kmeans", n_iter=12, seconds=2.0),
        _run("c", 2, "full", 130.0, seed=0, init="random", n_iter=30, seconds=3.0),
        _run("d", 2, "full", 60.0, seed=1, init="random", status="degenerate"),
        _run("e", 2, "full", 150.0, backend="x", comparable=False, init="kmeans"),
    ]
    runs = pd.DataFrame(rows).fillna({"n_iter": 5, "seconds": 0.5})
    table = summary_table(runs).set_index("backend")
    em = table.loc["em"]
    assert (em["n_runs"], em["n_ok"], em["n_degenerate"]) == (4, 3, 1)
    assert em["best_ok_log_likelihood"] == pytest.approx(-50.0)
    # Reference: the best eligible fit of the data (log-lik -50, run a); b is
    # 0.001 nats away, so both k-means seeds are at best, no random seed is.
    assert em["share_at_best_kmeans"] == 1.0
    assert em["share_at_best_random"] == 0.0
    assert em["median_iterations"] == 11.0
    # An arm with its own stopping rule is described, never the reference.
    assert table.loc["x", "best_ok_log_likelihood"] == pytest.approx(-75.0)
    assert table.loc["x", "share_at_best_kmeans"] == 0.0


def test_posterior_fits_are_never_an_optimum_even_when_failed_or_variational():
    from experiments.analysis import convergence_summary

    rows = [
        _run("a", 2, "full", 100.0, engine="em", trace_kind="em_mean_loglik"),
        _run(
            "p",
            2,
            "full",
            90.0,
            backend="pymc",
            engine="pymc",
            init="default",
            stopped_by="not_iterative",
            trace_kind="draw_mean_loglik",
        ),
        _run(
            "q",
            2,
            "full",
            np.nan,
            backend="pymc",
            engine="pymc",
            init="default",
            status="failed",
            stopped_by="error",
            seed=1,
        ),
        _run(
            "v",
            2,
            "full",
            80.0,
            backend="pymc-advi",
            engine="pymc-advi",
            init="default",
            trace_kind="advi_mean_elbo",
        ),
    ]
    runs = pd.DataFrame(rows).assign(n_iter=10)
    summary = convergence_summary(runs).set_index("backend")
    # The reference is the em fit, not the better-scoring posterior means.
    assert (summary["reference_log_likelihood"] == -50.0).all()
    assert np.isnan(summary.loc["pymc", "share_at_best"])  # one failed seed
    assert np.isnan(summary.loc["pymc-advi", "share_at_best"])
    assert choose_model(runs)["run_id"] == "a"
    table = selection_table(runs)
    assert table["n_runs"].tolist() == [1]
