"""Invariants of EM checked by hypothesis over random valid mixtures.

* with ``reg_covar=0`` on non-degenerate data the lower-bound trace never
  decreases (EM's defining property), for every covariance type, until the
  degenerate-component policy acts: EM itself may drive a component onto a
  single sample (a singularity of the likelihood), and the trace is monotone
  up to that moment;
* reordering components leaves the likelihood unchanged;
* translating the data translates the means and leaves the rest unchanged;
* integer sample weights fit like repeated rows.
"""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning

from mixtures import GaussianMixture, MixtureParams, fit_em
from mixtures.em import e_step
from mixtures.fitting import DegenerateComponentWarning


@st.composite
def mixtures(draw, covariance_type=None, max_components=4, max_features=4):
    """A valid mixture: simplex weights, covariances ``A A^T + eps I``."""
    n_components = draw(st.integers(1, max_components))
    n_features = draw(st.integers(1, max_features))
    seed = draw(st.integers(0, 2**32 - 1))
    if covariance_type is None:
        covariance_type = draw(st.sampled_from(["full", "tied", "diag", "spherical"]))
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(n_components, 3.0))
    means = rng.normal(scale=draw(st.floats(0.5, 8.0)), size=(n_components, n_features))
    full = np.stack(
        [
            (a := rng.normal(size=(n_features, n_features))) @ a.T / n_features
            + 0.05 * np.eye(n_features)
            for _ in range(n_components)
        ]
    )
    params = MixtureParams(weights, means, full).as_covariance_type(covariance_type)
    return params, rng


@settings(max_examples=60)
@given(mixtures())
def test_trace_never_decreases_without_regularisation(mixture):
    params, rng = mixture
    X, _ = params.sample(
        40 * params.n_components * params.n_features + 50, random_state=rng
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # A late collapse is allowed and checked below; its warning is not
        # the subject here.
        warnings.simplefilter("ignore", DegenerateComponentWarning)
        result = fit_em(
            X,
            params.n_components,
            covariance_type=params.covariance_type,
            reg_covar=0.0,
            init_params="random",
            tol=0.0,
            max_iter=30,
            random_state=int(rng.integers(2**31)),
        )
    trace = result.lower_bounds
    if result.events:
        # Only a collapse onto at most D samples may happen, never at the start.
        first = min(event.iteration for event in result.events)
        assert first > 0
        assert {event.action for event in result.events} == {"floor"}
        _, log_resp = e_step(X, result.params)
        collapsed = {event.component for event in result.events}
        mass = np.exp(log_resp).sum(axis=0)
        # A covariance is singular on at most D points (two points in 2-D
        # lie on a line).
        limit = params.n_features + 0.5
        assert all(mass[k] < limit for k in collapsed if k >= 0), mass
        trace = trace[:first]
    steps = np.diff(trace)
    assert np.all(steps >= -1e-12 * np.abs(trace[1:])), steps.min()


@settings(max_examples=40)
@given(mixtures(), st.randoms(use_true_random=False))
def test_component_order_does_not_change_the_likelihood(mixture, random):
    params, rng = mixture
    X, _ = params.sample(100, random_state=rng)
    order = list(range(params.n_components))
    random.shuffle(order)
    original, _ = e_step(X, params)
    reordered, log_resp = e_step(X, params.permute(np.array(order)))
    assert_allclose(reordered, original, rtol=1e-12, atol=1e-12)
    assert_allclose(np.exp(log_resp).sum(1), 1.0, rtol=1e-12)


@settings(max_examples=30)
@given(mixtures(max_components=3), st.floats(-1e4, 1e4))
def test_translating_the_data_translates_the_means(mixture, shift):
    params, rng = mixture
    X, _ = params.sample(60 * params.n_components + 40, random_state=rng)
    options = dict(
        n_components=params.n_components,
        covariance_type=params.covariance_type,
        max_iter=20,
        tol=0.0,
        weights_init=params.weights,
        means_init=params.means,
        precisions_init=params.precisions,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        base = fit_em(X, **options)
        moved = fit_em(X + shift, **{**options, "means_init": params.means + shift})
    assert_allclose(moved.params.means, base.params.means + shift, rtol=1e-7, atol=1e-6)
    assert_allclose(
        moved.params.covariances, base.params.covariances, rtol=1e-6, atol=1e-9
    )
    assert_allclose(moved.lower_bounds, base.lower_bounds, rtol=1e-8, atol=1e-9)


@settings(max_examples=30)
@given(mixtures(max_components=3, max_features=3), st.integers(0, 2**31 - 1))
def test_integer_weights_equal_repeated_rows(mixture, seed):
    params, rng = mixture
    X, _ = params.sample(30 * params.n_components + 20, random_state=rng)
    weights = np.random.default_rng(seed).integers(0, 4, size=X.shape[0])
    weights[: params.n_components] += 1  # enough rows keep a positive weight
    options = dict(
        covariance_type=params.covariance_type,
        max_iter=15,
        tol=0.0,
        reg_covar=1e-6,
        weights_init=params.weights,
        means_init=params.means,
        precisions_init=params.precisions,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        weighted = GaussianMixture(params.n_components, **options).fit(
            X, sample_weight=weights
        )
        repeated = GaussianMixture(params.n_components, **options).fit(
            np.repeat(X, weights, axis=0)
        )
    assert_allclose(weighted.lower_bounds_, repeated.lower_bounds_, rtol=1e-10)
    assert_allclose(weighted.means_, repeated.means_, rtol=1e-10, atol=1e-10)
    assert_allclose(
        weighted.covariances_, repeated.covariances_, rtol=1e-10, atol=1e-12
    )
    assert_allclose(weighted.weights_, repeated.weights_, rtol=1e-10)
