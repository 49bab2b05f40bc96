"""The fast path of the degenerate-component policy changes no fit.

:func:`mixtures.degenerate.finalise_components` skips its full logic (empty
components, duplicates, reseeding, finiteness checks) when one cheap test,
``mixtures.degenerate._policy_is_idle``, finds every weight and mean finite, no
component empty and no two means equal; then only the covariance floor can
act, and it is applied (with its events) as the full path applies it. These
tests fit each case twice, once as shipped and once with that test forced to
say no (so every call takes the full path, as before the fast path existed),
and require the same fit bit for bit: parameters, trace, iterations, events.
They also check which path ran, so that no comparison is vacuous.

Behaviour only: no timings are asserted here.
"""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pytest

from mixtures import MixtureParams, fit_em
from mixtures import degenerate as em
from mixtures.covariance import get_covariance_model
from mixtures.data import load_faithful

FAITHFUL = np.asarray(load_faithful(), dtype=float)


def _fit(X, **kwargs):
    """The fit, and the warnings it issued as (category, message) pairs."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit_em(X, **kwargs)
    return result, [(w.category, str(w.message)) for w in caught]


class _Spy:
    """Counts the fast test's decisions and the full path's runs."""

    def __init__(self, monkeypatch):
        self.decisions: Counter[bool] = Counter()
        self.full_path = 0
        idle, duplicate_of = em._policy_is_idle, em._duplicate_of

        def spy_idle(*args):
            decision = idle(*args)
            self.decisions[decision] += 1
            return decision

        def spy_duplicate_of(*args):
            self.full_path += 1
            return duplicate_of(*args)

        monkeypatch.setattr(em, "_policy_is_idle", spy_idle)
        # Called by the full path only, once per call of finalise_components.
        monkeypatch.setattr(em, "_duplicate_of", spy_duplicate_of)


def _fast_and_full(monkeypatch, X, **kwargs):
    """The fit as shipped (with a spy on it), and with the full path forced.

    Both must issue the same warnings (degenerate components, convergence).
    """
    with monkeypatch.context() as patch:
        spy = _Spy(patch)
        fast, fast_warnings = _fit(X, **kwargs)
    with monkeypatch.context() as patch:
        patch.setattr(em, "_policy_is_idle", lambda *args: False)
        full, full_warnings = _fit(X, **kwargs)
    assert fast_warnings == full_warnings
    return fast, full, spy


def _assert_same_fit(fast, full):
    for name in ("weights", "means", "covariances", "precisions_cholesky"):
        np.testing.assert_array_equal(
            getattr(fast.params, name), getattr(full.params, name), err_msg=name
        )
    np.testing.assert_array_equal(fast.lower_bounds, full.lower_bounds)
    assert fast.n_iter == full.n_iter
    assert fast.converged == full.converged
    assert fast.events == full.events
    assert len(fast.restarts) == len(full.restarts)
    for fast_run, full_run in zip(fast.restarts, full.restarts, strict=True):
        np.testing.assert_array_equal(fast_run.lower_bounds, full_run.lower_bounds)
        assert fast_run.events == full_run.events
    np.testing.assert_array_equal(fast.labels, full.labels)


# -- clean data: the fast path every time --------------------------------------


@pytest.mark.parametrize(
    "covariance_type", ["VVV", "EEE", "VII", "VVI", "VEI", "VEV", "EEI", "EVE"]
)
def test_clean_fit_takes_the_fast_path_and_fits_the_same(monkeypatch, covariance_type):
    fast, full, spy = _fast_and_full(
        monkeypatch,
        FAITHFUL,
        n_components=3,
        covariance_type=covariance_type,
        max_iter=40,
        tol=0,
        random_state=0,
    )
    _assert_same_fit(fast, full)
    assert fast.events == ()
    # Initialisation and every iteration: the fast path, never the full one.
    assert spy.decisions == Counter({True: fast.n_iter + 1})
    assert spy.full_path == 0


@pytest.mark.parametrize("kernel", ["numba", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clean_fit_on_either_kernel_fits_the_same(monkeypatch, kernel, dtype):
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(150, 4)) * [1.0, 10.0, 0.1, 3.0]).astype(dtype)
    fast, full, spy = _fast_and_full(
        monkeypatch,
        X,
        n_components=4,
        sample_weight=rng.integers(0, 3, X.shape[0]).astype(float),
        max_iter=25,
        tol=0,
        random_state=1,
        kernel=kernel,
    )
    _assert_same_fit(fast, full)
    assert spy.full_path == 0


def test_many_components_use_the_vectorised_test_and_fit_the_same(monkeypatch):
    # Beyond _PAIR_LOOP_MAX_COMPONENTS the test runs as NumPy expressions.
    n_components = em._PAIR_LOOP_MAX_COMPONENTS + 2
    fast, full, spy = _fast_and_full(
        monkeypatch,
        FAITHFUL,
        n_components=n_components,
        covariance_type="diag",
        max_iter=30,
        tol=0,
        random_state=0,
    )
    _assert_same_fit(fast, full)
    assert spy.decisions[True] > 0


# -- degenerate data: the full path where the policy acts ----------------------


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical", "VEI", "VEV"])
def test_collapsing_component_fits_the_same(monkeypatch, covariance_type):
    """Many tied rows and no regularisation: a component collapses onto them.

    The fast test passes (no empty component, no equal means), the
    factorisation reports the collapse, and the floor is applied and logged
    as the full path does it.
    """
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(60, 2)), np.tile([[3.0, 3.0]], (25, 1))])
    fast, full, spy = _fast_and_full(
        monkeypatch,
        X,
        n_components=3,
        covariance_type=covariance_type,
        reg_covar=0.0,
        max_iter=40,
        random_state=1,
    )
    _assert_same_fit(fast, full)
    in_loop = [event for event in fast.events if event.iteration > 0]
    assert any(event.action == "floor" for event in in_loop)
    # Every call took the fast path: the floors were applied there.
    assert spy.decisions == Counter({True: fast.n_iter + 1})
    assert spy.full_path == 0


def test_collapse_onto_integer_data_fits_the_same(monkeypatch):
    rng = np.random.default_rng(2)
    X = np.round(rng.normal(size=(40, 2)) * 1.5)  # many repeated rows
    fast, full, spy = _fast_and_full(
        monkeypatch,
        X,
        n_components=4,
        covariance_type="diag",
        reg_covar=0.0,
        init_params="random_from_data",
        max_iter=60,
        random_state=2,
    )
    _assert_same_fit(fast, full)
    assert any(event.action == "floor" for event in fast.events)
    assert any(event.action == "reseed" for event in fast.events)
    assert spy.decisions[True] > 0
    assert spy.full_path > 0


def _start(second_mean):
    return MixtureParams(
        [0.3, 0.3, 0.4],
        [[2.0, 55.0], second_mean, [4.5, 80.0]],
        np.array([np.diag([0.1, 30.0])] * 3),
        "full",
    )


@pytest.mark.parametrize(
    ("second_mean", "reason"),
    [
        ([2.0, 55.0], "duplicate of component 0"),  # the same as component 0
        ([1e3, 1e4], "empty component"),  # far from every row
    ],
)
def test_duplicated_or_empty_component_is_reseeded_the_same(
    monkeypatch, second_mean, reason
):
    fast, full, spy = _fast_and_full(
        monkeypatch,
        FAITHFUL,
        n_components=3,
        initial_params=_start(second_mean),
        max_iter=30,
    )
    _assert_same_fit(fast, full)
    reseeds = [event for event in fast.events if event.action == "reseed"]
    assert [(e.iteration, e.component, e.reason) for e in reseeds] == [(1, 1, reason)]
    # The full path at the first iteration only, the fast one after it.
    assert spy.decisions == Counter({False: 1, True: fast.n_iter - 1})
    assert spy.full_path == 1


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_identical_values_with_restarts_fit_the_same(monkeypatch, covariance_type):
    """Scenario S1 (13 identical values): floors and reseeds at every start."""
    series = np.r_[[25.31, 24.31, 24.12, 43.46, 41.49, 37.54, 41.18], [44.45] * 13]
    fast, full, _ = _fast_and_full(
        monkeypatch,
        series,
        n_components=3,
        covariance_type=covariance_type,
        reg_covar=0.0,
        init_params="random_from_data",
        n_init=4,
        random_state=3,
    )
    _assert_same_fit(fast, full)
    assert fast.events


# -- the test itself against the full path's own rules -------------------------


def _full_path_would_act(weights, means, weight_sums, policy) -> bool:
    """The full path's rules, written out as finalise_components applies them."""
    if not (np.all(np.isfinite(weights)) and np.all(np.isfinite(means))):
        return True  # it raises
    with np.errstate(all="ignore"):
        if np.any(weight_sums / policy.mean_sample_weight < policy.empty_threshold):
            return True  # an empty component
        same_mean = np.all(
            np.abs(means[:, np.newaxis, :] - means[np.newaxis, :, :])
            <= 1e-10 * policy.feature_scale,
            axis=2,
        )
    return bool(np.any(np.tril(same_mean, k=-1)))  # a possible duplicate


def _policy(scale, mean_sample_weight=1.0, empty_threshold=1e-6):
    scale = np.asarray(scale, dtype=float)
    return em.DegeneracyPolicy(
        covariance_floor=1e-8 * scale**2,
        feature_scale=scale,
        mean_sample_weight=mean_sample_weight,
        reg_covar=1e-6,
        empty_threshold=empty_threshold,
    )


def _means_at_tolerance(scale):
    """A mean, one within ``1e-10 * scale`` of it, and one just beyond."""
    tolerance = 1e-10 * scale
    mean = np.array([1.0, -2.0])
    within = mean + tolerance
    beyond = within.copy()
    while np.all(np.abs(beyond - mean) <= tolerance):
        beyond = np.nextafter(beyond, np.inf)
    return mean, within, beyond


def _edge_cases():
    """Name -> (weights, means, weight_sums, policy)."""
    scale = np.array([0.5, 3.0])
    policy = _policy(scale, mean_sample_weight=2.0)
    weights = np.array([0.2, 0.3, 0.5])
    masses = np.array([10.0, 20.0, 30.0])
    base = np.array([[0.0, 0.0], [5.0, 1.0], [-3.0, 2.0]])
    mean, within, beyond = _means_at_tolerance(scale)
    threshold_mass = policy.empty_threshold * policy.mean_sample_weight
    cases = {"clean": (weights, base, masses, policy)}
    for label, other in (("equal", mean), ("within", within), ("beyond", beyond)):
        three = np.array([mean, other, [9.0, 9.0]])
        cases[f"means {label}"] = (weights, three, masses, policy)
    one_apart = np.array([mean, [mean[0], mean[1] + 1.0], [9.0, 9.0]])
    cases["one feature apart"] = (weights, one_apart, masses, policy)
    for label, value in (
        ("at threshold", threshold_mass),
        ("just below", np.nextafter(threshold_mass, 0.0)),
        ("zero", 0.0),
        ("nan", np.nan),
        ("inf", np.inf),
    ):
        cases[f"mass {label}"] = (weights, base, np.array([10.0, value, 30.0]), policy)
    for label, value in (("nan", np.nan), ("inf", np.inf), ("-inf", -np.inf)):
        bad = base.copy()
        bad[1, 1] = value
        cases[f"mean {label}"] = (weights, bad, masses, policy)
        bad_weights = np.array([0.2, value, 0.5])
        cases[f"weight {label}"] = (bad_weights, base, masses, policy)
    # Finite means whose differences overflow (NumPy warns in _duplicate_of).
    huge = np.full((3, 2), 1e308) * [[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0]]
    cases["differences overflow"] = (weights, huge, masses, policy)
    many = np.vstack([huge, np.arange(12.0).reshape(6, 2)])
    cases["differences overflow, K = 9"] = (np.full(9, 1 / 9), many, np.ones(9), policy)
    # Masses over a tiny or zero mean weight (NumPy warns in the division).
    cases["mass quotient overflows"] = (weights, base, masses, _policy(scale, 1e-307))
    cases["mean weight zero"] = (weights, base, masses, _policy(scale, 0.0))
    # A subnormal, inexact quotient (NumPy flags the underflow) over a zero
    # threshold, so that the component is not empty.
    subnormal = np.array([10.0, 3 * np.nextafter(0.0, 1.0), 30.0])
    cases["mass quotient underflows"] = (
        weights,
        base,
        subnormal,
        _policy(scale, 2.0, 0),
    )
    cases["tiny scale"] = (weights, base, masses, _policy([1e-300, 1.0]))
    cases["float32 means"] = (weights, base.astype(np.float32), masses, policy)
    cases["one component"] = (np.array([1.0]), base[:1], masses[:1], policy)
    cases["K = 9, clean"] = (
        np.full(9, 1 / 9),
        np.arange(18.0).reshape(9, 2),
        np.ones(9),
        policy,
    )
    return cases


def _finalise(monkeypatch, case, errstate, *, full_path):
    """finalise_components on an edge case: its outcome and its warnings."""
    weights, means, masses, policy = _edge_cases()[case]
    n_components, n_features = means.shape
    X = np.random.default_rng(0).normal(size=(20, n_features))
    with monkeypatch.context() as patch, np.errstate(**errstate):
        if full_path:
            patch.setattr(em, "_policy_is_idle", lambda *args: False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                params, events = em.finalise_components(
                    weights.copy(),
                    means.copy(),
                    np.array([np.eye(n_features)] * n_components),
                    masses.copy(),
                    X,
                    lambda: np.arange(X.shape[0]),
                    get_covariance_model("full"),
                    policy,
                    restart=0,
                    iteration=1,
                    reseeds_left=10,
                )
            except Exception as error:  # the same error either way
                outcome = (type(error), str(error))
            else:
                outcome = (
                    params.weights,
                    params.means,
                    params.covariances,
                    params.precisions_cholesky,
                    events,
                )
    return outcome, [(w.category, str(w.message)) for w in caught]


@pytest.mark.parametrize("case", sorted(_edge_cases()))
@pytest.mark.parametrize(
    "errstate", [{}, {"all": "warn"}], ids=["default errstate", "all warn"]
)
def test_edge_cases_finalise_the_same_with_the_same_warnings(
    monkeypatch, case, errstate
):
    fast, fast_warnings = _finalise(monkeypatch, case, errstate, full_path=False)
    full, full_warnings = _finalise(monkeypatch, case, errstate, full_path=True)
    assert len(fast) == len(full)
    for fast_part, full_part in zip(fast, full, strict=True):
        if isinstance(fast_part, np.ndarray):
            np.testing.assert_array_equal(fast_part, full_part)
        else:
            assert fast_part == full_part
    assert fast_warnings == full_warnings


@pytest.mark.parametrize("case", sorted(_edge_cases()))
def test_the_fast_test_says_yes_only_where_the_full_path_would_not_act(case):
    weights, means, masses, policy = _edge_cases()[case]
    idle = em._policy_is_idle(weights, means, masses, policy)
    if _full_path_would_act(weights, means, masses, policy):
        assert not idle
    conservative = {  # arithmetic that NumPy flags: left to the full path
        "differences overflow",
        "differences overflow, K = 9",
        "mass quotient overflows",
        "mass quotient underflows",
        "mean weight zero",
    }
    if case in {"clean", "means beyond", "one feature apart", "mass at threshold"}:
        assert idle
    if case in conservative:
        assert not idle


def test_the_fast_test_agrees_with_the_full_path_on_random_near_ties():
    """Means on a coarse grid (so pairs coincide) and masses near the threshold."""
    rng = np.random.default_rng(7)
    seen: Counter[bool] = Counter()
    for trial in range(400):
        n_components = int(rng.integers(1, 2 * em._PAIR_LOOP_MAX_COMPONENTS))
        n_features = int(rng.integers(1, 5))
        scale = rng.uniform(0.1, 10.0, n_features)
        policy = _policy(scale, mean_sample_weight=float(rng.uniform(0.5, 2.0)))
        means = rng.integers(0, 3, (n_components, n_features)) * 1.0
        # Nudge some means by about the tolerance, on either side of it.
        nudge = rng.choice([0.0, 0.5, 1.0, 1.5], size=means.shape)
        means = means + nudge * 1e-10 * scale * rng.choice([-1, 1], size=means.shape)
        masses = rng.uniform(0.0, 3.0, n_components) * policy.empty_threshold
        masses *= policy.mean_sample_weight * rng.choice([1.0, 1e6], n_components)
        weights = rng.dirichlet(np.ones(n_components))
        expected = not _full_path_would_act(weights, means, masses, policy)
        assert em._policy_is_idle(weights, means, masses, policy) == expected, trial
        seen[expected] += 1
    assert seen[True] > 20
    assert seen[False] > 20
