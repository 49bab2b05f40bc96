"""Shared fixtures and helpers: reference mixtures with known truth."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from mixtures import MixtureParams

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.load_profile("ci" if os.environ.get("CI") else "default")


def random_mixture(
    rng: np.random.Generator,
    n_components: int,
    n_features: int,
    *,
    separation: float = 6.0,
    covariance_type: str = "full",
) -> MixtureParams:
    """A random mixture with well-separated means and moderate conditioning."""
    weights = rng.dirichlet(np.full(n_components, 5.0))
    means = rng.normal(scale=separation, size=(n_components, n_features))
    full = []
    for _ in range(n_components):
        a = rng.normal(size=(n_features, n_features)) / np.sqrt(n_features)
        full.append(a @ a.T + 0.5 * np.eye(n_features))
    params = MixtureParams(weights, means, np.array(full), "full")
    return params.as_covariance_type(covariance_type)


def sample_mixture(
    params: MixtureParams, n_samples: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n_samples`` points and their component labels."""
    labels = rng.choice(params.n_components, size=n_samples, p=params.weights)
    full = params.full_covariances()
    X = np.empty((n_samples, params.n_features))
    for k in range(params.n_components):
        idx = labels == k
        X[idx] = rng.multivariate_normal(params.means[k], full[k], size=idx.sum())
    return X, labels


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def blobs() -> tuple[np.ndarray, MixtureParams]:
    """600 points from a well-separated 2-D, 3-component mixture."""
    generator = np.random.default_rng(7)
    params = random_mixture(generator, 3, 2, separation=5.0)
    X, _ = sample_mixture(params, 600, generator)
    return X, params


# ---------------------------------------------------------------------------
# Backend fits shared by the contract and PyMC tests (PyMC compiles a model
# per call, so each fit is made once per session).

CONTRACT_TRUTH = MixtureParams(
    weights=[0.3, 0.3, 0.4],
    means=[[0.0, 0.0], [5.0, 0.5], [0.5, 5.0]],
    covariances=[
        [[0.6, 0.15], [0.15, 0.4]],
        [[0.5, -0.1], [-0.1, 0.7]],
        [[0.4, 0.0], [0.0, 0.5]],
    ],
)

#: Small but adequate settings so the whole suite stays within minutes.
BACKEND_TEST_OPTIONS = {
    "em": {},
    "sklearn": {},
    "pymc": {"draws": 500, "tune": 500},
    "pymc-advi": {"n_iter": 6000, "draws": 400},
}


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
