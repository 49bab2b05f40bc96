"""Shared fixtures and helpers: reference mixtures with known truth."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from mixtures import MixtureParams

from gmm_helpers import BACKEND_TEST_OPTIONS, CONTRACT_TRUTH, random_mixture

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def blobs() -> tuple[np.ndarray, MixtureParams]:
    """600 points from a well-separated 2-D, 3-component mixture."""
    generator = np.random.default_rng(7)
    params = random_mixture(generator, 3, 2, separation=5.0)
    X, _ = params.sample(600, random_state=generator)
    return X, params


# ---------------------------------------------------------------------------
# Backend fits shared by the contract and PyMC tests (PyMC compiles a model
# per call, so each fit is made once per session).


@pytest.fixture(scope="session")
def contract_data() -> tuple[np.ndarray, np.ndarray]:
    """n = 600 points from a well-separated 2-D, 3-component mixture."""
    return CONTRACT_TRUTH.sample(600, random_state=2026)


_FIT_CACHE: dict = {}


@pytest.fixture(scope="session")
def backend_fit(contract_data):
    """``backend_fit(name, seed=0, **options)``: a cached fit of the contract data."""
    from mixtures.backends import get_backend

    def fit(name: str, seed: int = 0, **options):
        merged = {**BACKEND_TEST_OPTIONS.get(name, {}), **options}
        key = (name, seed, tuple(sorted(merged.items())))
        if key not in _FIT_CACHE:
            _FIT_CACHE[key] = get_backend(name).fit(
                contract_data[0], 3, random_state=seed, **merged
            )
        return _FIT_CACHE[key]

    return fit
