"""One declaration of every EM option (mixtures.options), and what derives from it."""

from __future__ import annotations

import inspect
from dataclasses import fields

import numpy as np
import pytest

from mixtures import GaussianMixture, fit_em
from mixtures.backends import get_backend
from mixtures.options import SWEEP_OPTIONS, EMOptions, sklearn_constraints

DECLARED = {spec.name: spec for spec in fields(EMOptions)}
#: Options whose values are arrays checked against the data later.
ARRAYS = {"weights_init", "means_init", "precisions_init"}


def test_estimator_and_fit_em_take_every_option_with_its_default():
    estimator = inspect.signature(GaussianMixture.__init__).parameters
    functional = inspect.signature(fit_em).parameters
    for name, spec in DECLARED.items():
        assert estimator[name].default == spec.default, name
        assert functional[name].default == spec.default, name
    assert GaussianMixture().get_params().keys() == {
        *DECLARED,
        "random_state",
        "warm_start",
    }
    assert set(sklearn_constraints()) == {*DECLARED, "random_state", "warm_start"}


@pytest.mark.parametrize("name", sorted(set(DECLARED) - ARRAYS))
def test_a_value_no_option_takes_is_refused_everywhere_with_a_valueerror(name):
    X = np.random.default_rng(0).normal(size=(40, 2))
    with pytest.raises(ValueError, match=name):
        EMOptions(**{name: object()})
    given = {"n_components": 2, name: object()}
    with pytest.raises(ValueError, match=name):
        fit_em(X, **given)
    with pytest.raises(ValueError, match=name):
        GaussianMixture(**given).fit(X)


def test_an_unknown_option_is_a_typeerror_that_lists_the_options():
    with pytest.raises(TypeError, match=r"'tolerance'.*its options are .*tol"):
        GaussianMixture(tolerance=1e-3)
    with pytest.raises(TypeError, match="'tolerance'"):
        fit_em(np.zeros((4, 1)), 1, tolerance=1e-3)


def test_a_sweep_can_set_acceleration_prior_and_kernel_but_not_the_stopping_rule():
    assert {"acceleration", "prior", "kernel", "reg_covar_relative"} <= SWEEP_OPTIONS
    assert not {"stopping", "verbose", "n_components"} & SWEEP_OPTIONS
    X = np.random.default_rng(1).normal(size=(200, 2)) + np.repeat([[0], [5]], 100, 0)
    backend = get_backend("em")
    plain = backend.fit(X, 2, random_state=0, tol=1e-10, max_iter=1000)
    fast = backend.fit(
        X, 2, random_state=0, tol=1e-10, max_iter=1000, acceleration="squarem"
    )
    assert fast.log_likelihood == pytest.approx(plain.log_likelihood, abs=1e-6)
    assert backend.fit(X, 2, random_state=0, prior="default").params.n_components == 2
    with pytest.raises(ValueError, match=r"unknown options.*stopping"):
        backend.fit(X, 2, random_state=0, stopping="aitken")
