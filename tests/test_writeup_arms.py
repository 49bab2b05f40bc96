"""The write-ups' code and starts as sweep arms: backend, recipes, checks."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from experiments.config import ConfigError, parse_config, plan_runs
from experiments.datasets import load_dataset
from experiments.runner import execute_run, run_check
from experiments.starts import starting_parameters
from mixtures.backends import get_backend
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
