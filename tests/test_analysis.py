"""Pure functions over tables: each checked on a hand-made frame (issue 11)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from experiments.analysis import choose_model, selection_table, summary_table
from experiments.config import parse_config
from experiments.datasets import load_dataset
from experiments.runner import run_sweep
from mixtures import MixtureParams
from mixtures.diagnostics import classification_entropy, uncertainty


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
        "posterior": False,
        "n_parameters": 5 * k,
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
            _run("h", 2, "tied", 90.0, posterior=True),  # a posterior summary
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
            posterior=True,
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
            posterior=True,
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
            posterior=True,
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


# ---------------------------------------------------------------------------
# Recovery against the data's maximum, optima, and per-data summaries (issue 23)


def _fit(run_id, replicate, n, log_likelihood, rmse, **extra):
    """A fit of the synthetic series: data replicate ``replicate`` at size ``n``."""
    row = {
        "run_id": run_id,
        "dataset": "synthetic",
        "p_n": float(n),
        "backend": "em",
        "init": "kmeans",
        "seed": 0,
        "data_replicate": replicate,
        "n_components": 3,
        "covariance_type": "full",
        "status": "ok",
        "comparable": True,
        "posterior": False,
        "log_likelihood": log_likelihood,
        "m_mean_rmse": rmse,
        "m_ari": 0.9,
        "n_iter": 10,
        "seconds": 0.1,
    }
    row.update(extra)
    return row


def test_recovery_is_measured_on_the_data_maximum_over_every_start_and_engine():
    from experiments.recovery import (
        MAXIMUM_LIKELIHOOD,
        recovery_fits,
        recovery_summary,
    )

    runs = pd.DataFrame(
        [
            # Replicate 0: the k-means fit is a local optimum; a random start
            # of the other engine found the data's maximum.
            _fit("a", 0, 250, -748.89, 0.30),
            _fit("b", 0, 250, -746.63, 0.10, init="random_from_data", seed=1),
            _fit("c", 0, 250, -746.64, 0.11, backend="sklearn", init="random"),
            # Never the maximum: degenerate, an engine's own stopping rule,
            # a posterior summary (its own estimator row instead).
            _fit("d", 0, 250, -700.0, 0.90, status="degenerate"),
            _fit("e", 0, 250, -690.0, 0.80, backend="defaults", comparable=False),
            _fit("f", 0, 250, -680.0, 0.05, backend="pymc", posterior=True),
            # Replicate 1: the k-means fit is the maximum.
            _fit("g", 1, 250, -750.0, 0.20),
            _fit("h", 1, 250, -760.0, 0.50, init="random_from_data"),
        ]
    )
    fits = recovery_fits(runs).set_index(["estimator", "data_replicate"])
    assert fits.loc[(MAXIMUM_LIKELIHOOD, 0), "run_id"] == "b"
    assert fits.loc[(MAXIMUM_LIKELIHOOD, 1), "run_id"] == "g"
    assert fits.loc[("pymc", 0), "run_id"] == "f"
    summary = recovery_summary(runs).set_index("estimator")
    # One row per data set and estimator, not per engine or start.
    assert summary.loc[MAXIMUM_LIKELIHOOD, "n_replicates"] == 2
    assert summary.loc[MAXIMUM_LIKELIHOOD, "m_mean_rmse"] == pytest.approx(0.15)
    assert summary.loc["pymc", "m_mean_rmse"] == pytest.approx(0.05)
    assert "backend" not in summary
    assert "init" not in summary


def _power_law_series(exponents, factors, sizes=(250, 1000, 4000, 16000)):
    """Replicate r's error is factors[r] * n ** exponents[r] at every n."""
    return pd.DataFrame(
        [
            _fit(f"{r}-{n}", r, n, -1.0, factor * n**exponent)
            for r, (exponent, factor) in enumerate(zip(exponents, factors, strict=True))
            for n in sizes
        ]
    )


def test_recovery_slope_and_its_bootstrap_interval_in_closed_form():
    from experiments.recovery import recovery_slope

    # Every replicate falls as n^-0.5 (at its own level): so does the median
    # of any resample, and the interval is the point.
    same = recovery_slope(_power_law_series([-0.5] * 3, [1.0, 2.0, 5.0]))
    assert len(same) == 1
    assert same["slope"].iloc[0] == pytest.approx(-0.5, abs=1e-12)
    assert same["slope_low"].iloc[0] == pytest.approx(-0.5, abs=1e-12)
    assert same["slope_high"].iloc[0] == pytest.approx(-0.5, abs=1e-12)
    # Two replicates: a quarter of resamples are replicate 0 twice (slope
    # -0.6), a quarter replicate 1 twice (-0.4), the rest their mean, whose
    # slope lies between; so the 95% interval is exactly [-0.6, -0.4].
    runs = _power_law_series([-0.6, -0.4], [1.0, 1.0])
    two = recovery_slope(runs, n_boot=4000).iloc[0]
    assert two["n_replicates"] == 2
    assert two["n_sizes"] == 4
    assert two["slope_low"] == pytest.approx(-0.6, abs=1e-12)
    assert two["slope_high"] == pytest.approx(-0.4, abs=1e-12)
    n = np.array([250.0, 1000.0, 4000.0, 16000.0])
    median = (n**-0.6 + n**-0.4) / 2
    assert two["slope"] == pytest.approx(np.polyfit(np.log(n), np.log(median), 1)[0])


def test_recovery_slope_interval_is_a_seeded_bootstrap_over_replicates():
    from experiments.recovery import recovery_slope

    rng = np.random.default_rng(3)
    exponents = rng.uniform(-0.8, -0.3, size=5)
    factors = rng.uniform(0.5, 2.0, size=5)
    runs = _power_law_series(exponents, factors)
    result = recovery_slope(runs, n_boot=500, random_state=11).iloc[0]
    # Direct recomputation: resample replicates whole, median per n, slope.
    n = np.array([250.0, 1000.0, 4000.0, 16000.0])
    errors = factors[:, None] * n[None, :] ** exponents[:, None]
    draws = np.random.default_rng(11).integers(0, 5, size=(500, 5))
    slopes = [
        np.polyfit(np.log(n), np.log(np.median(errors[d], axis=0)), 1)[0] for d in draws
    ]
    low, high = np.percentile(slopes, [2.5, 97.5])
    assert result["slope_low"] == pytest.approx(low)
    assert result["slope_high"] == pytest.approx(high)
    assert result["slope_low"] <= result["slope"] <= result["slope_high"]
    again = recovery_slope(runs, n_boot=500, random_state=11).iloc[0]
    assert again.equals(result)  # reproducible


def test_n_optima_counts_only_fits_converged_under_the_sweeps_rule():
    from experiments.analysis import convergence_summary

    converged = [-100.0, -100.004, -103.0]
    rows = [
        _run(f"em{i}", 2, "full", -2 * ll, seed=i) for i, ll in enumerate(converged)
    ]
    # Stopped at the iteration limit at a point of its own: not an optimum.
    rows.append(_run("em-cap", 2, "full", 210.0, seed=3, status="unconverged"))
    # scikit-learn's defaults stop early, each seed somewhere else: ten end
    # points, not ten optima.
    rows += [
        _run(f"def{i}", 2, "full", 202.0 + i, seed=i, backend="sk-defaults")
        for i in range(10)
    ]
    for row in rows:
        row["comparable"] = not row["backend"].endswith("defaults")
    runs = pd.DataFrame(rows).assign(n_iter=10)
    summary = convergence_summary(runs).set_index("backend")
    assert summary.loc["em", "n_optima"] == 2
    assert np.isnan(summary.loc["sk-defaults", "n_optima"])
    # Still described: its share of seeds at the sweep's best optimum.
    assert summary.loc["sk-defaults", "share_at_best"] == 0.0
    assert summary.loc["sk-defaults", "n_ok"] == 10


def _variant(run_id, scaled, log_likelihood, **extra):
    row = _run(run_id, 2, "full", -2 * log_likelihood, dataset="s5", **extra)
    row.update(p_scaled=scaled, seconds=0.5, n_iter=10)
    return row


def test_summaries_never_pool_different_data_or_rank_posteriors():
    from experiments.analysis import data_set_summary
    from experiments.runner import _summary_table

    runs = pd.DataFrame(
        [
            _variant("a", True, 48.33),
            _variant("b", True, 48.329, backend="sklearn"),
            _variant("c", True, 40.0, seed=1),
            _variant("d", True, 60.0, backend="pymc-advi", posterior=True),
            _variant("e", False, -199.33),
            _variant("f", False, -150.0, backend="sk-defaults", comparable=False),
            _variant("g", False, -199.64, backend="pymc-advi", posterior=True),
            _variant("h", False, -199.0, data_replicate=1),
        ]
    )
    table = data_set_summary(runs).set_index(["p_scaled", "data_replicate"])
    assert len(table) == 3
    scaled = table.loc[(True, 0)]
    assert scaled["best_log_likelihood"] == pytest.approx(48.33)
    assert (scaled["n_runs"], scaled["n_posterior"]) == (4, 1)
    assert (scaled["n_at_best"], scaled["n_candidates"]) == (2, 3)
    raw = table.loc[(False, 0)]
    # Neither the posterior summary nor the engine-defaults arm is best.
    assert raw["best_log_likelihood"] == pytest.approx(-199.33)
    assert (raw["n_at_best"], raw["n_candidates"]) == (1, 1)
    assert table.loc[(False, 1), "best_log_likelihood"] == pytest.approx(-199.0)
    assert (raw["n_components"], raw["covariance_type"]) == (2, "full")
    printed = _summary_table(runs).splitlines()
    rows = [line.split() for line in printed[1:4]]
    assert [r[:3] for r in rows] == [
        ["s5", "scaled=False", "0"],
        ["s5", "scaled=False", "1"],
        ["s5", "scaled=True", "0"],
    ]
    assert "48.33" in printed[3]
    assert "60.0" not in printed[3]
    assert "-199.33" in printed[1]
    assert "-150" not in printed[1]
