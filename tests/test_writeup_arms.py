"""The write-ups' code and starts as sweep arms: backend, recipes, checks."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from experiments.config import ConfigError, parse_config, plan_runs
from experiments.datasets import load_dataset
from experiments.runner import execute_run, run_check
from experiments.starts import ENGINE_REG_COVAR, fair_start, starting_parameters
from mixtures.backends import get_backend
from mixtures.diagnostics import degeneracy_findings
from mixtures.fitting import initial_parameters


def _start_options(params):
    return {
        "weights_init": params.weights,
        "means_init": params.means,
        "precisions_init": params.precisions,
    }


# ---------------------------------------------------------------------------
# Starting recipes


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recipes_follow_the_write_ups(seed):
    X = load_dataset("s2", seed=0).X
    homework = starting_parameters("homework", X, 4, random_state=seed)
    assert set(np.unique(homework.means)) <= {0.0, 1.0}
    np.testing.assert_allclose(homework.weights, 0.25)
    np.testing.assert_array_equal(
        homework.covariances, np.broadcast_to(np.eye(2), (4, 2, 2))
    )
    lecture = starting_parameters("lecture", X, 2, random_state=seed)
    assert lecture.weights.sum() == pytest.approx(1.0)
    assert np.all((lecture.means >= 0) & (lecture.means < 1))
    blog = starting_parameters("blog", X, 2, random_state=seed)
    np.testing.assert_allclose(blog.weights, 0.5)
    assert np.all((blog.means >= 0) & (blog.means < 1))
    again = starting_parameters("lecture", X, 2, random_state=seed)
    np.testing.assert_array_equal(lecture.means, again.means)


def test_homework_starts_coincide_as_often_as_the_combinatorics_say():
    from experiments.scenario_analysis import distinct_corner_probability

    X = np.zeros((10, 2))
    distinct = np.mean(
        [
            np.unique(
                starting_parameters("homework", X, 4, random_state=s).means, axis=0
            ).shape[0]
            == 4
            for s in range(4000)
        ]
    )
    expected = distinct_corner_probability(4, 2)
    assert expected == pytest.approx(24 / 256)
    # Binomial standard error over 4000 draws is about 0.005.
    assert distinct == pytest.approx(expected, abs=0.02)


def test_initial_parameters_are_scikit_learns_start():
    X = load_dataset("s4", seed=0).X
    ours = initial_parameters(X, 2, init_params="kmeans", random_state=7)
    reference = SklearnGaussianMixture(2, init_params="kmeans", random_state=7)
    reference._initialize_parameters(X, np.random.RandomState(7))
    np.testing.assert_allclose(ours.means, reference.means_, rtol=1e-12)
    np.testing.assert_allclose(ours.covariances, reference.covariances_, rtol=1e-12)
    np.testing.assert_allclose(ours.weights, reference.weights_, rtol=1e-12)


def test_unknown_start_is_refused():
    with pytest.raises(ValueError, match="unknown start 'nope'"):
        starting_parameters("nope", np.zeros((5, 2)), 2)


# ---------------------------------------------------------------------------
# The fair start of the write-ups' code


@pytest.mark.parametrize("dataset", ["s1", "s4"])
@pytest.mark.parametrize("init", ["random_from_data", "k-means++", "kmeans"])
def test_fair_start_never_has_a_covariance_at_reg_covar_scale(dataset, init):
    X = load_dataset(dataset, seed=0).X
    data_covariance = np.atleast_2d(np.cov(X, rowvar=False, bias=True))
    for seed in range(10):
        engines = starting_parameters(init, X, 3, random_state=seed)
        fair = fair_start(init, X, 3, random_state=seed)
        smallest = np.linalg.eigvalsh(fair.full_covariances()).min()
        assert smallest > 1000 * ENGINE_REG_COVAR
        # Only the covariances change: the same seed gives the same means.
        np.testing.assert_array_equal(fair.means, engines.means)
        np.testing.assert_array_equal(fair.weights, engines.weights)
        if init == "kmeans":
            # k-means clusters of S1 and S4 have spread: their own scatter.
            np.testing.assert_array_equal(fair.covariances, engines.covariances)
        else:
            # One point per component: the engines' start is reg_covar * I,
            # the fair one the data's covariance.
            np.testing.assert_allclose(
                engines.covariances,
                np.broadcast_to(
                    ENGINE_REG_COVAR * np.eye(X.shape[1]), (3, *data_covariance.shape)
                ),
                atol=1e-30,  # a point's scatter about itself, in rounding
            )
            np.testing.assert_allclose(
                fair.covariances,
                np.broadcast_to(data_covariance, (3, *data_covariance.shape)),
            )


def test_fair_start_replaces_only_a_k_means_cluster_without_spread():
    X = np.array([0.0] * 8 + [10, 11, 12, 13, 20, 21, 22, 23])[:, None]
    engines = starting_parameters("kmeans", X, 3, random_state=0)
    fair = fair_start("kmeans", X, 3, random_state=0)
    tied = np.abs(engines.means[:, 0]) < 1e-9  # the cluster of eight zeros
    assert tied.sum() == 1
    assert engines.covariances[tied, 0, 0] == pytest.approx(ENGINE_REG_COVAR)
    assert fair.covariances[tied, 0, 0] == pytest.approx(X.var())
    np.testing.assert_array_equal(fair.covariances[~tied], engines.covariances[~tied])
    assert degeneracy_findings(fair, X)["min_relative_variance"] > 1e-3


def test_fair_start_keeps_a_recipe_as_written():
    X = load_dataset("s2", seed=0).X
    for name in ("homework", "lecture", "blog"):
        fair = fair_start(name, X, 4, random_state=3)
        recipe = starting_parameters(name, X, 4, random_state=3)
        np.testing.assert_array_equal(fair.means, recipe.means)
        np.testing.assert_array_equal(fair.covariances, recipe.covariances)


def _s1_fit(code, start, **options):
    convention = {} if code == "normalised_over_samples" else {"convention": "1d"}
    return get_backend("function").fit(
        load_dataset("s1").X,
        3,
        function=f"experiments.writeups.{code}:em",
        max_iter=100,
        trace="final",
        **convention,
        **options,
        **_start_options(start),
    )


def test_plain_em_cannot_start_from_the_engines_random_start():
    # Seed 1 draws three different values (24.56, 40.81, 43.67): no
    # duplicate, yet from variances of reg_covar the first E-step is 0/0.
    x = load_dataset("s1").X
    engines = starting_parameters("random_from_data", x, 3, random_state=1)
    assert np.unique(engines.means).size == 3
    with pytest.raises(ValueError, match="non-finite"):
        _s1_fit("correct_1d", engines)
    fit = _s1_fit("correct_1d", fair_start("random_from_data", x, 3, random_state=1))
    assert np.all(np.isfinite(fit.params.means))


def test_fixed_s1_code_from_fair_random_starts_matches_the_engine():
    """The fixed code is EM: from the same fair start it ends where gmmlab's EM
    does, except where the start holds one value twice (EM re-seeds the twin,
    plain code cannot)."""
    x = load_dataset("s1").X
    outcomes = {"distinct": 0, "twins": 0}
    for seed in range(10):
        start = fair_start("random_from_data", x, 3, random_state=seed)
        fixed = _s1_fit("correct_1d", start)  # raises on NaN or bad weights
        engine = get_backend("em").fit(
            x, 3, tol=1e-8, max_iter=2000, **_start_options(start)
        )
        reasons = " ".join(degeneracy_findings(fixed.params, x)["reasons"])
        if np.unique(start.means).size == 3:
            outcomes["distinct"] += 1
            assert fixed.log_likelihood == pytest.approx(
                engine.log_likelihood, abs=0.01
            )
            assert "same Gaussian" not in reasons
        else:
            outcomes["twins"] += 1
            assert "same Gaussian" in reasons
            assert engine.log_likelihood > fixed.log_likelihood + 1.0
    # Both kinds of start occur in these ten seeds (3 draw 44.4457 twice).
    assert outcomes == {"distinct": 7, "twins": 3}


def test_sweep_gives_write_up_code_the_fair_start_and_engines_their_own(
    monkeypatch,
):
    import experiments.runner as runner

    made = []

    def recorded_fair_start(*args, **kwargs):
        made.append(args[0])
        return fair_start(*args, **kwargs)

    monkeypatch.setattr(runner, "fair_start", recorded_fair_start)
    config = parse_config(
        {
            "sweep": {"seeds": 10, "root_seed": 5},
            "datasets": [{"name": "s1", "init_params": ["random_from_data"]}],
            "backends": {
                "em": {},
                "s1-fixed": {
                    "engine": "function",
                    "function": "experiments.writeups.correct_1d:em",
                    "convention": "1d",
                    "max_iter": 100,
                    "trace": "final",
                },
            },
        }
    )
    runs = plan_runs(config)
    x = load_dataset("s1").X
    for spec in (r for r in runs if r.backend == "em"):
        assert execute_run(spec)["run"]["status"] != "failed"
    assert made == []  # the engines keep their own start
    fixed = [r for r in runs if r.backend == "s1-fixed"]
    assert len(fixed) == 10
    for spec in fixed:
        result = execute_run(spec)
        assert result["run"]["status"] != "failed", result["run"]["status_reason"]
        start = fair_start("random_from_data", x, 3, random_state=spec.fit_seed)
        direct = _s1_fit("correct_1d", start)
        assert result["run"]["log_likelihood"] == pytest.approx(
            direct.log_likelihood, rel=1e-12
        )
    assert made == ["random_from_data"] * 10


# ---------------------------------------------------------------------------
# The function backend


def test_function_backend_runs_correct_code_to_the_engines_optimum():
    X = load_dataset("s4", seed=0).X
    start = initial_parameters(X, 2, init_params="kmeans", random_state=3)
    backend = get_backend("function")
    assert backend.needs_start
    fit = backend.fit(
        X,
        2,
        function="experiments.writeups.correct:em",
        max_iter=500,
        **_start_options(start),
    )
    engine = get_backend("em").fit(
        X, 2, tol=1e-10, max_iter=500, **_start_options(start)
    )
    assert fit.log_likelihood == pytest.approx(engine.log_likelihood, abs=1e-4)
    # Its own trace (returned as a fourth value) is used, and is monotone.
    assert fit.n_iter == fit.loglik_trace.size < 500
    assert np.all(np.diff(fit.loglik_trace) > -1e-9)
    assert fit.converged


def test_function_backend_reruns_code_without_a_trace():
    x = load_dataset("s1").X
    start = initial_parameters(x, 3, init_params="kmeans", random_state=0)
    fit = get_backend("function").fit(
        x,
        3,
        function="experiments.writeups.correct_1d:em",
        convention="1d",
        max_iter=20,
        **_start_options(start),
    )
    assert fit.loglik_trace.size == 20  # after 1, 2, ..., 20 iterations
    assert fit.n_iter == 20
    assert not fit.converged  # no stopping rule we can see
    assert fit.loglik_trace[-1] * x.shape[0] == pytest.approx(fit.log_likelihood)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs function"),
        ({"function": "experiments.writeups.correct:em"}, "needs an explicit start"),
        ({"function": "nowhere.at_all:em", "start": True}, "cannot import"),
        (
            {
                "function": "experiments.writeups.normalised_over_samples:em",
                "start": True,
            },
            "not a distribution",
        ),
        (
            {
                "function": "experiments.writeups.correct:em",
                "start": True,
                "trace": "x",
            },
            "trace",
        ),
    ],
)
def test_function_backend_errors_say_what_is_wrong(options, message):
    X = load_dataset("s4", seed=0).X
    options = dict(options)
    if options.pop("start", False):
        options.update(_start_options(initial_parameters(X, 2, random_state=0)))
    with pytest.raises(ValueError, match=message):
        get_backend("function").fit(X, 2, **options)


# ---------------------------------------------------------------------------
# Configuration and runs


def _config(**extra):
    raw = {
        "datasets": [{"name": "s4", "init_params": ["kmeans", "lecture"]}],
        "backends": {
            "em": {},
            "loops": {
                "engine": "function",
                "function": "experiments.writeups.correct:em",
                "inits": ["lecture"],
            },
        },
    }
    raw.update(extra)
    return parse_config(raw)


def test_arm_inits_and_dataset_starts_plan_the_right_runs():
    runs = plan_runs(_config())
    plan = sorted((r.backend, r.init) for r in runs)
    assert plan == [("em", "kmeans"), ("em", "lecture"), ("loops", "lecture")]
    loops = next(r for r in runs if r.backend == "loops")
    same = next(r for r in runs if r.backend == "em" and r.init == "lecture")
    assert loops.fit_seed == same.fit_seed  # one start for both
    assert not loops.comparable


def test_same_recipe_start_gives_every_engine_the_same_path():
    runs = {(r.backend, r.init): r for r in plan_runs(_config())}
    ours = execute_run(runs[("em", "lecture")])
    theirs = execute_run(runs[("loops", "lecture")])
    assert ours["run"]["status"] == "ok"
    assert theirs["run"]["comparable"] is False
    # The same start and a correct algorithm: the same first E-step value.
    assert ours["traces"][0]["value"] == pytest.approx(
        theirs["traces"][0]["value"], rel=1e-6
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"backends": {"x": {"engine": "function"}}},
            r"\[backends.x\] a function arm needs function",
        ),
        (
            {"backends": {"em": {"inits": ["best"]}}},
            r"\[backends.em.inits\] unknown 'best'",
        ),
        (
            {"datasets": [{"name": "s4", "init_params": "nope"}]},
            r"\[datasets\[0\].init_params\] unknown 'nope'",
        ),
        (
            {"checks": [{"target": "no-colon"}]},
            r"\[checks\[0\].target\] must be 'module:function'",
        ),
    ],
)
def test_config_errors_for_the_new_keys(raw, message):
    base = {"datasets": [{"name": "s4"}], "backends": {"em": {}}}
    base.update(raw)
    with pytest.raises(ConfigError, match=message):
        parse_config(base)


def test_recorded_checks():
    from experiments.config import CheckEntry

    good = run_check(CheckEntry("experiments.writeups.correct:em", "standard"))
    assert {row["result"] for row in good} <= {"pass", "n/a"}
    early = run_check(CheckEntry("experiments.writeups.early_return:em", "standard"))
    failed = {row["check"] for row in early if row["result"] == "fail"}
    assert "runs more than one iteration and converges" in failed
    broken = run_check(CheckEntry("nowhere:em"))
    assert broken[0]["result"] == "error"
    assert "cannot import" in broken[0]["evidence"]
