"""The worked examples of CONTRIBUTING.md run, and do what the page says."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from mixtures import fit_em
from mixtures.covariance import COVARIANCE_MODELS, ConstrainedModel

PAGE = Path(__file__).resolve().parent.parent / "CONTRIBUTING.md"


def _examples() -> list[str]:
    if not PAGE.exists():  # an installed package without the repository
        pytest.skip("CONTRIBUTING.md is not next to the tests")
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)


def test_the_page_has_its_four_worked_examples():
    assert len(_examples()) == 4


def test_backend_example_fits_and_is_found_by_the_contract():
    namespace: dict = {}
    exec(_examples()[0], namespace)
    backend = namespace["MeansOnly"]()
    X = np.random.default_rng(0).normal(size=(300, 2))
    fit = backend.fit(X, 3, random_state=0)
    assert fit.n_components == 3
    assert np.isfinite(fit.log_likelihood)
    with pytest.raises(ValueError, match="unknown options"):
        backend.fit(X, 3, tol=1.0)


def test_dataset_example_is_reproducible(monkeypatch):
    from experiments import datasets

    namespace = {"Dataset": datasets.Dataset, "DATASETS": {}}
    exec(_examples()[1], namespace)
    two_moons = namespace["DATASETS"]["two_moons"]
    first, again, other = two_moons(seed=1), two_moons(seed=1), two_moons(seed=2)
    assert first.X.shape == (500, 2)
    np.testing.assert_array_equal(first.X, again.X)
    assert not np.array_equal(first.X, other.X)


def test_covariance_model_example_fits_its_constraint(monkeypatch):
    namespace = {"np": np, "ConstrainedModel": ConstrainedModel}
    exec(_examples()[2], namespace)
    monkeypatch.setitem(COVARIANCE_MODELS, "EIIscaled", namespace["EIIScaled"]())
    X = np.random.default_rng(0).normal(size=(300, 2)) * [1.0, 3.0]
    result = fit_em(X, 2, covariance_type="EIIscaled", random_state=0)
    covariances = result.params.covariances
    # One lambda for every component, times the identity.
    np.testing.assert_allclose(
        covariances, np.broadcast_to(covariances[0, 0, 0] * np.eye(2), (2, 2, 2))
    )
    assert result.converged


def test_option_example_reaches_every_derived_surface():
    from mixtures import options

    namespace: dict = {}
    exec(_examples()[3], namespace)
    schema = namespace["WithMinIter"]
    parameters = {p.name: p for p in options.estimator_parameters(schema)}
    assert parameters["min_iter"].default == 0
    assert parameters["min_iter"].kind is parameters["min_iter"].KEYWORD_ONLY
    assert "min_iter" in options.sklearn_constraints(schema)
    assert "min_iter" in options.sweep_options(schema)
    assert "min_iter" in options.fit_em_signature([], schema).parameters
    assert schema(min_iter=5).min_iter == 5
    with pytest.raises(ValueError, match="min_iter must be an integer >= 0"):
        schema(min_iter=-1)
