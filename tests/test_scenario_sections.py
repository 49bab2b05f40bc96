"""The report's five scenario sections state numbers that come from the tables.

Every number checked here is recomputed independently: by brute force, with
scipy.stats and scipy.integrate, or from the recorded tables directly.
"""

from __future__ import annotations

import itertools
import math
import textwrap

import numpy as np
import pytest
from scipy import integrate, stats
from threadpoolctl import threadpool_limits

from experiments import scenarios
from experiments.analysis import choose_model, convergence_summary
from experiments.config import load_config
from experiments.datasets import load_dataset
from experiments.report import build_report, params_from_components
from experiments.runner import run_sweep
from experiments.scenario_analysis import (
    S3_INTERVAL,
    S3_NEW_POINT,
    affine_check,
    best_log_likelihood_over_weights,
    duplicate_start_probability,
    interval_probability,
    point_density,
    unnormalised_curve_at,
)
from experiments.starts import fair_start
from experiments.tables import read_tables

SWEEP = """
    [sweep]
    root_seed = 31
    seeds = 4
    [[datasets]]
    name = "s1"
    backends = ["em", "sklearn", "s1-sd-as-variance", "s1-wrong-axis", "s1-fixed"]
    [[datasets]]
    name = "s2"
    backends = ["em", "sklearn", "homework"]
    init_params = ["kmeans", "random_from_data", "homework"]
    [[datasets]]
    name = "s3"
    backends = ["em", "sklearn"]
    [[datasets]]
    name = "s4"
    backends = ["em", "sklearn", "lecture-loops"]
    init_params = ["kmeans", "lecture"]
    [[datasets]]
    name = "s5"
    params = { scaled = [true, false] }
    backends = ["em", "sklearn", "blog"]
    init_params = ["kmeans", "random_from_data", "blog"]
    [backends.em]
    [backends.sklearn]
    [backends.s1-sd-as-variance]
    engine = "function"
    function = "experiments.writeups.sd_for_variance_1d:em"
    convention = "1d"
    max_iter = 100
    [backends.s1-wrong-axis]
    engine = "function"
    function = "experiments.writeups.normalised_over_samples:em"
    max_iter = 100
    [backends.s1-fixed]
    engine = "function"
    function = "experiments.writeups.correct_1d:em"
    convention = "1d"
    max_iter = 100
    [backends.homework]
    engine = "function"
    function = "experiments.writeups.homework:em"
    max_iter = 1000
    inits = ["homework"]
    [backends.lecture-loops]
    engine = "function"
    function = "experiments.writeups.lecture_loops:em"
    max_iter = 100
    inits = ["lecture"]
    seeds = 1
    [backends.blog]
    engine = "function"
    function = "experiments.writeups.correct:em"
    max_iter = 100
    inits = ["blog"]
    [grid]
    init_params = ["kmeans", "random_from_data"]
    [[checks]]
    target = "experiments.writeups.early_return:em"
    convention = "standard"
"""


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scenarios")
    config = folder / "sweep.toml"
    config.write_text(textwrap.dedent(SWEEP))
    # BLAS on one thread, as in the sweep's workers: S3's 17,000-row fits
    # only wait on a second thread (several times slower on a busy machine).
    with threadpool_limits(1):
        run_sweep(load_config(config), folder / "results", progress=False, echo=print)
    index = build_report(folder / "results", folder / "report")
    markdown = (folder / "report" / "report.md").read_text()
    tables = read_tables(folder / "results")
    # Derived, never stored: as the report computes it.
    tables["convergence"] = convergence_summary(tables["runs"])
    return tables, markdown, index


def _section(markdown: str, heading: str) -> str:
    start = markdown.index(f"### {heading}")
    end = markdown.find("\n#", start + 4)
    return markdown[start : end if end > 0 else None]


def _chosen(tables, dataset, **params):
    runs = tables["runs"]
    mask = runs["dataset"] == dataset
    for key, value in params.items():
        mask &= runs[f"p_{key}"] == value
    run = choose_model(runs[mask])
    components = tables["components"]
    return run, params_from_components(components[components.run_id == run.run_id])


def test_duplicate_start_probability_by_brute_force():
    series = scenarios.S1_SERIES
    draws = list(itertools.combinations(range(series.size), 3))
    shared = sum(len(set(series[list(d)])) < 3 for d in draws)
    assert duplicate_start_probability(series, 3) == pytest.approx(
        shared / math.comb(series.size, 3)
    )
    assert duplicate_start_probability(np.arange(10.0), 3) == 0.0


def test_s1_section(recorded):
    tables, markdown, _ = recorded
    text = _section(markdown, "S1")
    chance = duplicate_start_probability(scenarios.S1_SERIES, 3)
    assert f"with probability {chance:.1%}" in text
    runs = tables["runs"]
    random_sklearn = runs[
        (runs.dataset == "s1")
        & (runs.backend == "sklearn")
        & (runs.init == "random_from_data")
    ]
    twins = int(random_sklearn.status_reason.str.contains("same Gaussian").sum())
    assert f"scikit-learn ended {twins} with two identical components" in text
    convergence = tables["convergence"]
    for backend in ("em", "sklearn"):
        share = convergence[
            (convergence.dataset == "s1")
            & (convergence.backend == backend)
            & (convergence.init == "kmeans")
        ]["share_at_best"].iloc[0]
        assert f"{backend} kmeans {share:.0%}" in text
    run, _ = _chosen(tables, "s1")
    assert f"log-likelihood {run['log_likelihood']:.2f}" in text
    _check_s1_write_up_code(runs[runs.dataset == "s1"], text)
    # The write-up's answer, scored independently: a finer optimum over the
    # weights cannot exceed the reported number by more than rounding.
    scored = best_log_likelihood_over_weights(
        scenarios.S1_SERIES,
        scenarios.S1_REPORTED_MEANS,
        scenarios.S1_REPORTED_VARIANCES,
    )
    density = stats.norm(
        scenarios.S1_REPORTED_MEANS, np.sqrt(scenarios.S1_REPORTED_VARIANCES)
    ).pdf(scenarios.S1_SERIES[:, None])
    assert np.sum(np.log(density @ scored["weights"])) == pytest.approx(
        scored["log_likelihood"]
    )
    for weights in np.random.default_rng(0).dirichlet(np.ones(3), 200):
        assert np.sum(np.log(density @ weights)) <= scored["log_likelihood"] + 1e-6
    assert f"log-likelihood of {scored['log_likelihood']:.1f}" in text


def _check_s1_write_up_code(s1, text):
    """The write-ups' code, from fair starts, as the section states it."""
    assert "collapses onto the repeated value with nothing to stop it" not in text
    assert f"the data's variance, {scenarios.S1_SERIES.var():.4g}" in text
    engines = s1[(s1.status == "ok") & s1.comparable.astype(bool)]
    best = engines.log_likelihood.max()
    fixed = s1[(s1.backend == "s1-fixed") & (s1.init == "random_from_data")]
    assert (fixed.status != "failed").all()  # a fair start: never NaN
    at_best = int(((fixed.log_likelihood - best).abs() <= 0.01).sum())
    assert (
        f"s1-fixed from random-point starts: {at_best} of {len(fixed)} reach "
        f"the best optimum ({best:.2f})"
    ) in text
    # Two identical components exactly where the start drew one value twice.
    x = load_dataset("s1").X
    twins = set(fixed.fit_seed[fixed.status_reason.str.contains("same Gaussian")])
    doubled = {
        seed
        for seed in fixed.fit_seed
        if np.unique(
            fair_start("random_from_data", x, 3, random_state=int(seed)).means
        ).size
        < 3
    }
    assert twins == doubled
    if twins:
        assert f"{len(twins)} end with two identical components" in text
    wrong = s1[s1.backend == "s1-wrong-axis"]
    assert wrong.status_reason.str.contains(r"sum 0\.06").all()
    assert "K/n = 3/50 = 0.06" in text


def test_s2_section(recorded):
    tables, markdown, _ = recorded
    text = _section(markdown, "S2")
    for weight in scenarios.S2_WEIGHTS:  # weights print to 3 decimals
        assert f"{weight:.3f}" in text
    run, _ = _chosen(tables, "s2")
    assert f"log-likelihood {run['log_likelihood']:.2f}" in text
    data = load_dataset("s2", seed=int(run["data_seed"]))
    truth = data.truth
    per_point = np.log(
        sum(
            w * stats.multivariate_normal(m, c).pdf(data.X)
            for w, m, c in zip(
                truth.weights, truth.means, truth.covariances, strict=True
            )
        )
    )
    assert f"parameters score our sample at {per_point.sum():.2f}" in text
    spread = np.sqrt(per_point.size) * per_point.std(ddof=1)
    assert f"by about {spread:.0f} nats" in text


def test_s3_section(recorded):
    tables, markdown, _ = recorded
    text = _section(markdown, "S3")
    _, params = _chosen(tables, "s3")
    sd = np.sqrt(params.covariances[:, 0, 0])
    contributions = params.weights * stats.norm(params.means[:, 0], sd).pdf(
        S3_NEW_POINT
    )
    at = point_density(params, S3_NEW_POINT)
    np.testing.assert_allclose(at["contributions"], contributions, rtol=1e-12)
    assert at["log_density"] == pytest.approx(np.log(contributions.sum()))
    assert f"log density {np.log(contributions.sum()):.4f}" in text
    low, high = S3_INTERVAL
    area, _ = integrate.quad(
        lambda x: params.weights @ stats.norm(params.means[:, 0], sd).pdf(x), low, high
    )
    assert interval_probability(params, low, high) == pytest.approx(area, rel=1e-8)
    assert f"= {area:.4f}" in text
    # The asker's curve weights components by w_k s_k, not w_k.
    weights = params.weights * sd / np.sum(params.weights * sd)
    expected = weights @ stats.norm(params.means[:, 0], sd).pdf(S3_NEW_POINT)
    assert unnormalised_curve_at(params, S3_NEW_POINT) == pytest.approx(
        expected, rel=1e-4
    )


def test_s4_section(recorded):
    tables, markdown, _ = recorded
    text = _section(markdown, "S4")
    runs = tables["runs"]
    s4 = runs[(runs.dataset == "s4") & (runs.backend == "em")]
    assert f"em {s4['seconds'].median() * 1e3:.1f} ms" in text
    assert "13.9 s" in text
    assert "22 ms" in text


def test_s5_section_scaling_is_affine_and_costs_the_log_jacobian(recorded):
    tables, markdown, _ = recorded
    text = _section(markdown, "S5")
    scaled_run, scaled = _chosen(tables, "s5", scaled=True)
    raw_run, raw = _chosen(tables, "s5", scaled=False)
    assert scaled_run["data_seed"] == raw_run["data_seed"]  # the same sample
    X = load_dataset("s5", seed=int(raw_run["data_seed"]), scaled=False).X
    span = X.max(axis=0) - X.min(axis=0)
    jacobian = X.shape[0] * np.log(span).sum()
    check = affine_check(
        scaled,
        raw,
        X.min(axis=0),
        span,
        scaled_run["log_likelihood"],
        raw_run["log_likelihood"],
        X.shape[0],
    )
    assert check["log_jacobian"] == pytest.approx(jacobian)
    # Maximum likelihood is equivariant: the optima map onto each other.
    assert check["log_likelihood_difference"] == pytest.approx(jacobian, abs=1e-3)
    assert check["means"] < 1e-3
    assert check["weights"] < 1e-3
    assert f"log-Jacobian n sum(log span) = {jacobian:.4f}" in text


def test_s1_the_write_ups_bugs_ran_from_the_engines_starts(recorded):
    tables, markdown, _ = recorded
    text = _section(markdown, "S1")
    runs = tables["runs"]
    s1 = runs[runs.dataset == "s1"]
    # Same start, same fit seed, for the engines and the write-up's code.
    seeds = s1.groupby(["init", "seed"])["fit_seed"].nunique()
    assert (seeds == 1).all()
    axis = s1[s1.backend == "s1-wrong-axis"]
    assert (axis.status == "failed").all()
    assert axis.error.str.contains("not a distribution").all()
    assert "s1-wrong-axis from k-means starts" in text
    fixed = s1[(s1.backend == "s1-fixed") & (s1.init == "kmeans")]
    ours = s1[(s1.backend == "em") & (s1.init == "kmeans")]
    # From the same k-means start the fixed code reaches the engine's optimum.
    np.testing.assert_allclose(
        fixed.sort_values("seed").log_likelihood,
        ours.sort_values("seed").log_likelihood,
        atol=1e-3,
    )


def test_s2_homework_start_and_rule(recorded):
    tables, markdown, _ = recorded
    text = _section(markdown, "S2")
    runs = tables["runs"]
    homework = runs[(runs.dataset == "s2") & (runs.backend == "homework")]
    run, _ = _chosen(tables, "s2")
    # Its rule: stop at |change of the total| < 0.01 after >= 5 iterations;
    # its start (means on the corners of the unit square) may duplicate a
    # component, which scikit-learn keeps and gmmlab re-seeds.
    assert (homework.n_iter >= 5).all()
    assert "4!/4^4" in text
    sound = homework[homework.status.isin(["ok", "unconverged"])]
    if sound.empty:
        assert f"Every one of the {len(homework)} runs of the homework's code" in text
        return
    short = run["log_likelihood"] - sound["log_likelihood"].max()
    assert f"its best run ends {short:.3f} nats below the best fit" in text
    assert short > 0
    cause = "rule stops it that early" if short < 1 else "its start, not its stopping"
    assert cause in text


@pytest.mark.slow
def test_s4_loops_timed_from_the_same_start(recorded):
    tables, markdown, _ = recorded
    text = _section(markdown, "S4")
    runs = tables["runs"]
    loops = runs[(runs.dataset == "s4") & (runs.backend == "lecture-loops")].iloc[0]
    em = runs[
        (runs.dataset == "s4") & (runs.backend == "em") & (runs.init == "lecture")
    ]
    assert loops["fit_seed"] in set(em["fit_seed"])
    assert f"the loops take {loops['seconds']:.2f} s" in text


def test_s5_blog_start_and_the_check_output(recorded):
    tables, markdown, _ = recorded
    text = _section(markdown, "S5")
    checks = tables["checks"]
    failed = set(checks.loc[checks.result == "fail", "check"])
    assert "runs more than one iteration and converges" in failed
    assert "a `return` inside the iteration loop" in text
    convergence = tables["convergence"]
    blog = convergence[(convergence.backend == "em") & (convergence.init == "blog")]
    assert set(blog["p_scaled"]) == {True, False}
    assert "share of blog starts at the best optimum" in text
